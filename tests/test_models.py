"""Tests for the model registry and every model family (kws_jax/models/).

Driven by `models.MODELS` and by the files in `configs/`, so a new family or
config is tested without touching this file.
"""

import importlib
import pathlib

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from kws_jax import audio_io
from kws_jax import models

NUM_CLASSES = 5
INPUT_SHAPE = (98, 40)
BATCH = 4
CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / 'configs'
ARCHITECTURES = sorted(models.MODELS)


def _backbone(name, **settings):
  return models.MODELS[name](num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE,
                             rngs=nnx.Rngs(0), **settings)


def _features(seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.standard_normal((BATCH, *INPUT_SHAPE)), jnp.float32)


def _apply(model, x, rngs=None):
  """model(x) under jit (eager NNX is slow), new state written back."""
  graphdef, state = nnx.split(model)

  @jax.jit
  def apply(state, x, key):
    model = nnx.merge(graphdef, state, copy=True)
    out = model(x, rngs=None if key is None else nnx.Rngs(dropout=key))
    return out, nnx.state(model)

  out, state = apply(state, x, None if rngs is None else jax.random.key(rngs))
  nnx.update(model, state)
  return out


def test_the_unknown_offset_is_added_only_when_the_model_decides():
  config = default.get_config()
  config.model_architecture, config.model = 'tiny_conv', {}
  config.unknown_offset = 1.5
  model = models.create_model(config, NUM_CLASSES, nnx.Rngs(0))
  model.eval()
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  audio = jnp.asarray(np.random.default_rng(0).uniform(-0.3, 0.3, (2, 16000)),
                      jnp.float32)
  decided = models.predict_fn(graphdef)(params, batch_stats, audio)
  raw = models.predict_fn(graphdef, decision=False)(params, batch_stats, audio)
  # Training's loss takes the raw logits (the model's call).
  np.testing.assert_allclose(model(audio), raw, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(decided - raw,
                             np.tile([0, 1.5, 0, 0, 0], (2, 1)), atol=1e-5)
  probabilities = models.predict_fn(graphdef, probabilities=True)(
      params, batch_stats, audio)
  np.testing.assert_allclose(probabilities, jax.nn.softmax(decided),
                             rtol=1e-5, atol=1e-6)
  # No offset: the decision is the network's own.
  model.unknown_offset = 0.0
  graphdef, _, _ = nnx.split(model, nnx.Param, nnx.BatchStat)
  np.testing.assert_array_equal(
      models.predict_fn(graphdef)(params, batch_stats, audio), raw)


def test_one_vs_rest_fixes_the_unknown_logit_at_zero():
  config = default.get_config()
  config.model_architecture, config.model = 'tiny_conv', {}
  audio = jnp.asarray(np.random.default_rng(1).uniform(-0.3, 0.3, (3, 16000)),
                      jnp.float32)
  def logits(loss, offset=0.0):
    config.loss, config.unknown_offset = loss, offset
    model = models.create_model(config, NUM_CLASSES, nnx.Rngs(0))
    model.eval()
    graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    return np.asarray(models.predict_fn(graphdef)(params, batch_stats, audio))
  softmax, one_vs_rest = logits('softmax'), logits('one_vs_rest')
  assert np.all(softmax[:, 1] != 0)
  np.testing.assert_array_equal(one_vs_rest[:, 1], 0)
  # The same parameters: every other logit is the backbone's.
  np.testing.assert_array_equal(np.delete(one_vs_rest, 1, axis=1),
                                np.delete(softmax, 1, axis=1))
  # The offset is then the score every other class must beat.
  np.testing.assert_allclose(logits('one_vs_rest', 0.7)[:, 1], 0.7)


def _has_batch_stats(module):
  return bool(jax.tree.leaves(nnx.state(module, nnx.BatchStat)))


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_output_shape_and_finite(name):
  model = _backbone(name)
  model.eval()
  logits = _apply(model, _features())
  assert logits.shape == (BATCH, NUM_CLASSES)
  assert logits.dtype == jnp.float32
  assert np.all(np.isfinite(logits))


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_train_step_reaches_every_parameter(name):
  """jit, functional NNX form: nonzero gradient for every parameter leaf."""
  model = _backbone(name)
  model.train()
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  labels = jnp.arange(BATCH) % NUM_CLASSES

  @jax.jit
  def grad_fn(params, batch_stats, x, key):
    def loss_fn(params):
      # copy=True: BatchNorm may only update Variables made in this trace.
      model = nnx.merge(graphdef, params, batch_stats, copy=True)
      logits = model(x, rngs=nnx.Rngs(dropout=key))
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      return loss.mean(), (logits, nnx.state(model, nnx.BatchStat))
    return jax.grad(loss_fn, has_aux=True)(params)

  grads, (logits, new_stats) = grad_fn(params, batch_stats, _features(),
                                       jax.random.key(0))
  assert np.all(np.isfinite(logits))
  flat = jax.tree_util.tree_flatten_with_path(grads)[0]
  assert flat
  for path, grad in flat:
    norm = float(jnp.linalg.norm(grad))
    assert np.isfinite(norm) and norm > 0, (
        f'{name}: no gradient reaches {jax.tree_util.keystr(path)}')
  if _has_batch_stats(model):
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                           jax.tree.leaves(batch_stats),
                           jax.tree.leaves(new_stats))
    assert all(changed), f'{name}: some batch statistics did not update'


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_eval_mode_is_deterministic(name):
  model = _backbone(name)
  model.eval()
  stats_before = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
  x = _features()
  np.testing.assert_array_equal(np.asarray(_apply(model, x)),
                                np.asarray(_apply(model, x)))
  stats_after = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
  jax.tree.map(np.testing.assert_array_equal, stats_before, stats_after)


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_train_mode_updates_batch_stats(name):
  model = _backbone(name)
  if not _has_batch_stats(model):
    pytest.skip(f'{name} has no BatchNorm')
  model.train()
  before = jax.tree.leaves(nnx.state(model, nnx.BatchStat))
  before = [np.asarray(x) for x in before]
  _apply(model, _features(), rngs=1)
  after = jax.tree.leaves(nnx.state(model, nnx.BatchStat))
  assert all(np.any(a != np.asarray(b)) for a, b in zip(before, after))


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_full_model_splits_into_params_and_batch_stats(name):
  """What the training loop relies on: only Param and BatchStat state."""
  config = default.get_config()
  config.model_architecture = name
  config.model = {}
  model = models.create_model(config, NUM_CLASSES, nnx.Rngs(0))
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  assert models.count_params(model) == sum(
      x.size for x in jax.tree.leaves(params))
  model.eval()
  audio = jnp.zeros((2, 16000))
  merged = nnx.merge(graphdef, params, batch_stats)
  merged.eval()
  logits = merged(audio)
  assert logits.shape == (2, NUM_CLASSES)
  np.testing.assert_allclose(
      np.asarray(model.classify(model.features(audio))), np.asarray(logits),
      rtol=1e-5, atol=1e-5)


def _config_cases():
  cases = []
  for path in sorted(CONFIG_DIR.glob('*.py')):
    if path.stem != '__init__':
      cases.append((path.stem, None))
  # Config arguments (`--config=configs/<name>.py:<arg>`).
  cases += [('bc_resnet', '1.5'), ('tc_resnet', '14-1.5')]
  return cases


@pytest.mark.parametrize('config_name,arg', _config_cases())
def test_every_config_builds_its_model(config_name, arg):
  module = importlib.import_module(f'configs.{config_name}')
  config = module.get_config(arg) if arg else module.get_config()
  assert config.model_architecture in models.MODELS
  # Schedules stay the tutorial's comma strings, of equal length.
  steps = config.how_many_training_steps.split(',')
  rates = config.learning_rate.split(',')
  assert isinstance(config.how_many_training_steps, str)
  assert len(steps) == len(rates)
  num_classes = len(config.wanted_words) + 2
  model = models.create_model(config, num_classes, nnx.Rngs(0))
  model.eval()
  samples = audio_io.samples_per_clip(config.sample_rate,
                                      config.clip_duration_ms)
  graphdef, state = nnx.split(model)
  logits = jax.jit(lambda s, a: nnx.merge(graphdef, s)(a))(
      state, jnp.zeros((1, samples)))
  assert logits.shape == (1, num_classes)
  assert np.all(np.isfinite(logits))


def _abstract_params(name, **settings):
  """Parameter count without allocating (or initialising) the weights."""
  model = nnx.eval_shape(lambda: models.MODELS[name](
      num_classes=12, input_shape=INPUT_SHAPE, rngs=nnx.Rngs(0), **settings))
  return models.count_params(model)


@pytest.mark.parametrize('scale,paper', [(1, 9.2e3), (3, 54e3), (8, 321e3)])
def test_bc_resnet_size_matches_the_paper(scale, paper):
  assert abs(_abstract_params('bc_resnet', scale=scale) / paper - 1) < 0.02


@pytest.mark.parametrize('settings,paper', [
    ({}, 66e3),  # TC-ResNet8
    ({'width_multiplier': 1.5}, 145e3),  # TC-ResNet8-1.5
    ({'blocks_per_stage': 2}, 137e3),  # TC-ResNet14
])
def test_tc_resnet_size_matches_the_paper(settings, paper):
  assert abs(_abstract_params('tc_resnet', **settings) / paper - 1) < 0.03


@pytest.mark.parametrize('name', ['tc_resnet', 'ds_cnn', 'bc_resnet'])
def test_batchnorm_epsilon_is_a_setting(name):
  def epsilons(**settings):
    model = nnx.eval_shape(lambda: _backbone(name, **settings))
    return {m.epsilon for _, m in nnx.iter_graph(model)
            if hasattr(m, 'epsilon')}
  assert epsilons(bn_epsilon=1e-4) == {1e-4}
  # The default: what the family used before it was a setting.
  assert epsilons() == {1e-5 if name == 'bc_resnet' else 1e-3}


def test_bc_resnet_handles_awkward_frequency_sizes():
  """Bins not divisible by the sub-bands fall back to fewer sub-bands."""
  model = models.MODELS['bc_resnet'](num_classes=3, input_shape=(20, 30),
                                     rngs=nnx.Rngs(0))
  model.eval()
  assert _apply(model, jnp.ones((2, 20, 30))).shape == (2, 3)


def test_multiply_add_estimate():
  model = _backbone('single_fc')
  # One matmul [1, 3920] x [3920, 5] plus the bias.
  macs = models.estimate_multiply_adds(model, INPUT_SHAPE)
  expected = INPUT_SHAPE[0] * INPUT_SHAPE[1] * NUM_CLASSES
  assert expected <= macs <= expected * 1.01


def test_unknown_architecture_or_setting_raises():
  config = default.get_config()
  config.model_architecture = 'transformer_xxl'
  with pytest.raises(ValueError, match='model_architecture'):
    models.create_model(config, NUM_CLASSES, nnx.Rngs(0))
  with pytest.raises(TypeError):
    _backbone('tiny_conv', dropout=0.5)  # Typo of dropout_rate.


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_converts_to_tflite_builtins(name):
  """Front end + backbone, eval mode: TFLite builtin ops only, same output.

  Guards against layer choices the TFLite converter cannot lower (it once
  failed on a matmul over [1, T, 1, C] maps).
  """
  tf = pytest.importorskip('tensorflow')
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  config = default.get_config()
  config.model_architecture = name
  config.model = {}
  model = models.create_model(config, NUM_CLASSES, nnx.Rngs(0))
  model.eval()
  graphdef, state = nnx.split(model)

  def predict(audio):
    return jax.nn.softmax(nnx.merge(graphdef, state)(audio))

  function = tf.function(
      jax2tf.convert(predict), autograph=False,
      input_signature=[tf.TensorSpec([1, 16000], tf.float32)])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [function.get_concrete_function()])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  try:
    # pylint: disable-next=g-import-not-at-top
    from ai_edge_litert import interpreter as litert
  except ImportError:
    litert = tf.lite
  interpreter = litert.Interpreter(model_content=converter.convert())
  interpreter.allocate_tensors()
  audio = np.random.default_rng(0).uniform(-0.3, 0.3, (1, 16000))
  audio = audio.astype(np.float32)
  interpreter.set_tensor(interpreter.get_input_details()[0]['index'], audio)
  interpreter.invoke()
  out = interpreter.get_tensor(interpreter.get_output_details()[0]['index'])
  np.testing.assert_allclose(out, np.asarray(predict(jnp.asarray(audio))),
                             atol=1e-5)
