"""End-to-end training on a tiny generated dataset."""

import json
import logging
import os
import shutil

from flax import nnx
import jax
import numpy as np
import optax
import pytest

from configs import test as test_config
from kws_jax import checkpoint
from kws_jax import config_validation
from kws_jax import input_pipeline
from kws_jax import models
from kws_jax import train
from conftest import make_speech_commands_dir


def _config(data_dir, tmp_path, **overrides):
  config = test_config.get_config()
  config.data_dir = str(data_dir)
  config.tfds_data_dir = str(tmp_path / 'tfds')
  for key, value in overrides.items():
    config[key] = value
  return config


def _logged(workdir, kind):
  """The metrics.jsonl lines of one kind ('train' or 'validation')."""
  lines = (workdir / 'metrics.jsonl').read_text().splitlines()
  return [r for r in map(json.loads, lines) if r['kind'] == kind]


def _params(workdir, step):
  ckpts = checkpoint.Checkpoints(checkpoint.checkpoint_dir(workdir),
                                 read_only=True)
  state, _ = ckpts.restore(step, None)
  return jax.tree.leaves(state)


def test_train_writes_the_tutorial_log_and_workdir(tiny_data_dir, tmp_path,
                                                   caplog):
  workdir = tmp_path / 'run'
  with caplog.at_level(logging.INFO, logger='absl'):
    results = train.train_and_evaluate(_config(tiny_data_dir, tmp_path),
                                       str(workdir))
  log = caplog.text
  assert 'Training from step: 1' in log
  assert 'Step #1: rate 0.010000, accuracy ' in log
  assert 'Step #7: rate 0.001000, accuracy ' in log  # The second piece.
  assert f'Saving to "{workdir}/checkpoints/2"' in log
  assert 'Confusion Matrix:' in log
  assert 'Step 4: Validation accuracy = ' in log
  assert 'Final test accuracy = ' in log
  assert (workdir / 'tiny_conv_labels.txt').read_text().split() == [
      '_silence_', '_unknown_', 'yes', 'no']
  saved = json.loads((workdir / 'config.json').read_text())
  assert saved['wanted_words'] == ['yes', 'no']
  assert results['test']['count'] > 0
  test = results['test']
  assert (f"Final test accuracy = {test['accuracy'] * 100:.1f}% "
          f"(N={test['count']})") in log
  confusion = np.array(test['confusion_matrix'])
  assert test['accuracy'] == pytest.approx(
      np.trace(confusion) / confusion.sum())
  # The checkpoint scored at the end is the best one by validation accuracy.
  assert results['validation']['accuracy'] == pytest.approx(
      max(r['accuracy'] for r in _logged(workdir, 'validation')))
  lines = (workdir / 'metrics.jsonl').read_text().splitlines()
  assert {json.loads(l)['kind'] for l in lines} == {'train', 'validation'}
  assert os.listdir(workdir / 'tensorboard')
  steps = checkpoint.Checkpoints(checkpoint.checkpoint_dir(workdir),
                                 read_only=True).all_steps()
  assert 8 in steps


def test_resumed_run_ends_with_the_same_parameters(tiny_data_dir, tmp_path,
                                                   caplog):
  config = _config(tiny_data_dir, tmp_path)
  train.train_and_evaluate(config, str(tmp_path / 'straight'))
  resumed = tmp_path / 'resumed'
  train.train_and_evaluate(config, str(resumed))
  # Pretend the run died after step 4: drop the later checkpoints.
  for step in (6, 8):
    shutil.rmtree(resumed / 'checkpoints' / str(step))
  with caplog.at_level(logging.INFO, logger='absl'):
    train.train_and_evaluate(config, str(resumed))
  assert 'Training from step: 5' in caplog.text
  for a, b in zip(_params(tmp_path / 'straight', 8), _params(resumed, 8)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_start_checkpoint_from_another_architecture_is_refused(
    tiny_data_dir, tmp_path):
  first = tmp_path / 'first'
  train.train_and_evaluate(_config(tiny_data_dir, tmp_path), str(first))
  config = _config(tiny_data_dir, tmp_path, model_architecture='single_fc',
                   start_checkpoint=str(first / 'checkpoints' / '8'))
  config.model = {}
  with pytest.raises(checkpoint.CheckpointError, match='tiny_conv'):
    train.train_and_evaluate(config, str(tmp_path / 'second'))


def test_check_nans_stops_with_the_step(tiny_data_dir, tmp_path):
  config = _config(tiny_data_dir, tmp_path, check_nans=True,
                   optimizer='gradient_descent', learning_rate='1e30,1e30')
  with pytest.raises(FloatingPointError, match='NaN/Inf'):
    train.train_and_evaluate(config, str(tmp_path / 'nan'))


def test_the_training_step_compiles_with_the_configs_xla_options(
    tiny_data_dir, tmp_path, monkeypatch):
  """train_compiler_options reach the training step's compilation, and
  options XLA refuses fail before any work, naming the field."""
  config = _config(tiny_data_dir, tmp_path)
  config.train_compiler_options.xla_cpu_experimental_ynn_fusion_type = (
      'NOT_A_FUSION_TYPE')
  with pytest.raises(config_validation.ConfigError,
                     match='train_compiler_options.*not a valid enum'):
    train.train_and_evaluate(config, str(tmp_path / 'bad_option'))
  assert not (tmp_path / 'bad_option').exists()
  # A valid option reaches the step's jax.jit.
  seen = []
  real_jit = jax.jit

  def jit(fun, **kwargs):
    seen.append(kwargs.get('compiler_options'))
    return real_jit(fun, **kwargs)

  monkeypatch.setattr(train.jax, 'jit', jit)
  good = _config(tiny_data_dir, tmp_path)
  good.train_compiler_options.xla_cpu_experimental_ynn_fusion_type = (
      'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT')
  train.train_and_evaluate(good, str(tmp_path / 'good_option'))
  assert {'xla_cpu_experimental_ynn_fusion_type':
          'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'} in seen


def test_the_training_step_runs_onednns_convolutions_when_asked(
    tiny_data_dir, tmp_path, monkeypatch):
  """train_convolutions='onednn' puts the model's convolutions in the
  step through oneDNN (and only the step): same losses as XLA's to float32
  rounding; a value that names no library fails before any work."""
  from kws_jax.models import onednn  # pylint: disable=g-import-not-at-top
  traced = []
  real_conv = onednn.conv

  def conv(*args):
    traced.append(args[0].shape)
    return real_conv(*args)

  monkeypatch.setattr(onednn, 'conv', conv)
  losses = {}
  for library in ('xla', 'onednn'):
    workdir = tmp_path / library
    train.train_and_evaluate(
        _config(tiny_data_dir, tmp_path, train_convolutions=library,
                model={'dropout_rate': 0.0}), str(workdir))
    losses[library] = [r['cross_entropy'] for r in _logged(workdir, 'train')]
    assert bool(traced) == (library == 'onednn')
  # Training batches (8) only: evaluation (batches of 16) keeps XLA's.
  assert {shape[0] for shape in traced} == {8}
  np.testing.assert_allclose(losses['onednn'], losses['xla'], rtol=1e-4)
  with pytest.raises(config_validation.ConfigError,
                     match="train_convolutions='cudnn'; choose one of"):
    train.train_and_evaluate(
        _config(tiny_data_dir, tmp_path, train_convolutions='cudnn'),
        str(tmp_path / 'bad_library'))
  assert not (tmp_path / 'bad_library').exists()


def test_onednn_that_cannot_be_built_fails_before_any_work(
    tiny_data_dir, tmp_path, monkeypatch):
  monkeypatch.setattr('kws_jax.models.onednn._registered', False)
  monkeypatch.setenv('KWS_JAX_CACHE', str(tmp_path / 'cache'))
  monkeypatch.setenv('CXX', str(tmp_path / 'no-such-compiler'))
  with pytest.raises(config_validation.ConfigError,
                     match="train_convolutions='onednn': No C"):
    train.train_and_evaluate(
        _config(tiny_data_dir, tmp_path, train_convolutions='onednn'),
        str(tmp_path / 'never'))
  assert not (tmp_path / 'never').exists()


def test_mismatched_schedule_fails_before_any_work(tmp_path):
  config = _config(tmp_path / 'missing', tmp_path,
                   how_many_training_steps='10,10,10')
  with pytest.raises(config_validation.ConfigError, match='equal length'):
    train.train_and_evaluate(config, str(tmp_path / 'never'))
  assert not (tmp_path / 'never').exists()


def test_recipe_options_train(tiny_data_dir, tmp_path):
  config = _config(tiny_data_dir, tmp_path, balance_classes=True,
                   label_smoothing=0.1, time_masks=2, time_mask_ms=50.0,
                   freq_masks=2, freq_mask_bins=5, volume_db=6.0)
  workdir = tmp_path / 'recipe'
  results = train.train_and_evaluate(config, str(workdir))
  saved = json.loads((workdir / 'config.json').read_text())
  assert {k: saved[k] for k in ('balance_classes', 'label_smoothing',
                                'time_masks', 'freq_mask_bins',
                                'volume_db')} == {
      'balance_classes': True, 'label_smoothing': 0.1, 'time_masks': 2,
      'freq_mask_bins': 5, 'volume_db': 6.0}
  steps = _logged(workdir, 'train')
  assert [r['step'] for r in steps] == list(range(1, 9))
  assert all(np.isfinite(r['cross_entropy']) and r['cross_entropy'] > 0
             for r in steps)
  assert results['test']['count'] > 0


def test_ema_decay_starts_low_and_reaches_the_setting():
  decays = [float(train.ema_decay_at(0.999, jax.numpy.asarray(s),
                                     warmup=True))
            for s in (0, 10, 100, 100000)]
  np.testing.assert_allclose(decays[:3], [0.1, 11 / 20, 101 / 110])
  assert decays[3] == pytest.approx(0.999)
  assert float(train.ema_decay_at(0.0, jax.numpy.asarray(50),
                                  warmup=True)) == 0.0
  # Without the warm-up (config.ema_warmup=False): the setting throughout.
  assert float(train.ema_decay_at(0.999, jax.numpy.asarray(0),
                                  warmup=False)) == pytest.approx(0.999)


def test_momentum_comes_from_the_config():
  config = config_validation.validate_config(test_config.get_config())
  config.optimizer = 'momentum'
  schedule = config_validation.parse_schedule(config)
  params = {'w': jax.numpy.zeros(3)}
  grads = {'w': jax.numpy.ones(3)}

  def second_update(**settings):
    tx = train.make_optimizer(_with(config, **settings), schedule)
    state = tx.init(params)
    _, state = tx.update(grads, state, params)
    updates, _ = tx.update(grads, state, params)
    return float(updates['w'][0])

  rate = schedule.rate_at(1)
  # Nesterov with 0.9 (the defaults): -rate * (g + 0.9 * (g + 0.9 g)).
  assert second_update() == pytest.approx(-rate * (1 + 0.9 * 1.9))
  assert second_update(nesterov=False) == pytest.approx(-rate * 1.9)
  assert second_update(momentum=0.5, nesterov=False) == pytest.approx(
      -rate * 1.5)


def _with(config, **overrides):
  config = config.copy_and_resolve_references()
  for key, value in overrides.items():
    config[key] = value
  return config


@pytest.mark.parametrize('decay', [0.0, 0.9])
def test_averaged_weights_follow_the_parameters(tiny_data_dir, tmp_path,
                                                decay):
  config = _config(tiny_data_dir, tmp_path, ema_decay=decay,
                   mixup_alpha=0.3, speed_perturbation=0.1,
                   reverb_probability=0.5)
  workdir = tmp_path / f'ema{decay}'
  results = train.train_and_evaluate(config, str(workdir))
  # The averaged weights are the ones evaluated, chosen and scored at the
  # end: the best logged validation accuracy is scored again.
  assert results['validation']['accuracy'] == pytest.approx(
      max(r['accuracy'] for r in _logged(workdir, 'validation')))
  # The step timing leaves evaluations and checkpoints out.
  assert results['train_step_seconds'] > 0
  assert results['eval_and_checkpoint_seconds'] > 0
  assert 0 <= results['input_wait_fraction'] < 1
  ckpts = checkpoint.Checkpoints(checkpoint.checkpoint_dir(workdir),
                                 read_only=True)
  state, _ = ckpts.restore(ckpts.latest_step(), None)
  params = jax.tree.leaves(state['params'])
  averaged = jax.tree.leaves(state['ema_params'])
  same = all(np.array_equal(a, b) for a, b in zip(params, averaged))
  # Decay 0: the average is the weights; otherwise it lags behind them.
  assert same == (decay == 0.0)


def test_distillation_loss_matches_its_definition():
  rng = np.random.default_rng(0)
  logits = jax.numpy.asarray(rng.normal(size=(4, 5)), jax.numpy.float32)
  targets = jax.nn.one_hot(jax.numpy.arange(4), 5)
  teachers = jax.numpy.asarray(rng.normal(size=(2, 4, 5)), jax.numpy.float32)
  plain = float(train.distillation_loss(logits, targets, None, 0.0, 1.0))
  log_p = jax.nn.log_softmax(logits)
  assert plain == pytest.approx(float(-(targets * log_p).sum(-1).mean()))

  temperature = 2.0
  soft = jax.nn.softmax(teachers / temperature).mean(0)
  taught = -(soft * jax.nn.log_softmax(logits / temperature)).sum(-1).mean()
  mixed = float(train.distillation_loss(logits, targets, teachers, 0.3,
                                        temperature))
  assert mixed == pytest.approx(0.7 * plain + 0.3 * 4 * float(taught),
                                rel=1e-5)
  # With the teachers alone, the student is best where it matches them.
  grad = jax.grad(train.distillation_loss)(teachers[0], targets,
                                            teachers[:1], 1.0, temperature)
  np.testing.assert_allclose(grad, 0.0, atol=1e-6)
  assert np.abs(jax.grad(train.distillation_loss)(
      logits, targets, teachers[:1], 1.0, temperature)).max() > 1e-3


def test_one_vs_rest_loss_is_a_sigmoid_per_class_but_unknown():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(4, 5)).astype(np.float32)
  # Labels silence, unknown, and two words; smoothed as training does.
  targets = np.asarray(optax.smooth_labels(
      jax.nn.one_hot(np.array([0, 1, 2, 4]), 5), 0.1))
  expected = -(targets * np.log(1 / (1 + np.exp(-logits))) +
               (1 - targets) * np.log(1 - 1 / (1 + np.exp(-logits))))
  expected = np.delete(expected, 1, axis=1).sum(-1).mean()
  assert float(train.one_vs_rest_loss(jax.numpy.asarray(logits),
                                      jax.numpy.asarray(targets))) == (
      pytest.approx(expected, rel=1e-5))
  # The `_unknown_` logit (fixed at 0 by the model) takes no part.
  moved = logits.copy()
  moved[:, 1] += 3
  assert float(train.one_vs_rest_loss(moved, targets)) == pytest.approx(
      expected, rel=1e-5)
  # An `_unknown_` clip is best scored with every other logit low.
  unknown = np.asarray(jax.nn.one_hot(np.array([1]), 5))
  assert (float(train.one_vs_rest_loss(np.full((1, 5), -8.0, np.float32), unknown)) <
          float(train.one_vs_rest_loss(np.full((1, 5), 8.0, np.float32), unknown)))


def test_training_with_one_vs_rest(tiny_data_dir, tmp_path):
  config = _config(tiny_data_dir, tmp_path, loss='one_vs_rest',
                   label_smoothing=0.1)
  workdir = tmp_path / 'one_vs_rest'
  train.train_and_evaluate(config, str(workdir))
  restored = checkpoint.restore_model(str(workdir), which=checkpoint.BEST)
  assert restored.config.loss == 'one_vs_rest'
  audio = np.random.default_rng(0).uniform(-0.3, 0.3, (2, 16000))
  logits = models.predict_fn(restored.eval_graphdef)(
      restored.params, restored.batch_stats, audio.astype(np.float32))
  np.testing.assert_array_equal(np.asarray(logits)[:, 1], 0)
  steps = _logged(workdir, 'train')
  assert all(np.isfinite(r['cross_entropy']) and r['cross_entropy'] > 0
             for r in steps)


def test_the_reversed_gradient_and_its_ramp():
  x = jax.numpy.asarray([1.0, -2.0])
  value, grad = jax.value_and_grad(
      lambda v: (models.reverse_gradient(v, 0.3) * 2.0).sum())(x)
  assert float(value) == pytest.approx(-2.0)
  np.testing.assert_allclose(grad, [-0.6, -0.6], rtol=1e-6)
  scales = [float(train.adversary_scale(2.0, jax.numpy.asarray(s), 100))
            for s in (0, 10, 50, 100)]
  assert scales[0] == 0 and scales == sorted(scales)
  assert scales[-1] == pytest.approx(2.0, rel=1e-3)


def test_domain_loss_counts_word_clips_only():
  logits = jax.numpy.asarray([3.0, -3.0, 3.0, 3.0])
  synthetic = jax.numpy.asarray([1.0, 0.0, 0.0, 0.0])
  label = jax.numpy.asarray([2, 3, 0, 0])  # Two silence clips, wrong.
  loss, accuracy = train.domain_loss(logits, synthetic, label)
  assert float(accuracy) == 1.0
  assert float(loss) == pytest.approx(np.log1p(np.exp(-3.0)), rel=1e-5)


def test_the_domain_heads_gradient_is_reversed_into_the_backbone_only():
  config = config_validation.validate_config(test_config.get_config())
  config.model_architecture, config.preprocess = 'tc_resnet', 'mfcc'
  config.model = {'width_multiplier': 0.5, 'dropout_rate': 0.0}
  config.synthetic_adversary = 1.0
  graphdef, params, batch_stats = nnx.split(
      models.create_model(config, 4, nnx.Rngs(0)), nnx.Param, nnx.BatchStat)
  rng = np.random.default_rng(0)
  audio = rng.uniform(-0.3, 0.3, (4, 16000)).astype(np.float32)
  synthetic, label = np.array([1.0, 0, 1, 0]), np.array([2, 3, 2, 3])

  def loss(p, reverse):
    model = nnx.merge(graphdef, p, batch_stats, copy=True)
    _, embedding = model.classify_and_embed(model.features(audio))
    if reverse:
      embedding = models.reverse_gradient(embedding, 0.7)
    return train.domain_loss(model.domain_head(embedding), synthetic,
                             label)[0]

  reversed_, plain = (jax.grad(loss)(params, r) for r in (True, False))
  flat = lambda g, part: np.concatenate(  # noqa: E731
      [np.ravel(x) for x in jax.tree.leaves(g[part])])
  np.testing.assert_allclose(flat(reversed_, 'domain_head'),
                             flat(plain, 'domain_head'), rtol=1e-6)
  backbone = flat(plain, 'backbone')
  assert np.abs(backbone).max() > 0
  # Equal up to float32 rounding (the two gradients are computed apart).
  np.testing.assert_allclose(flat(reversed_, 'backbone'), -0.7 * backbone,
                             rtol=0, atol=1e-3 * np.abs(backbone).max())


def test_the_synthetic_adversary_trains_its_head_and_reverses_its_gradient():
  config = config_validation.validate_config(test_config.get_config())
  config.model_architecture = 'tc_resnet'
  config.model = {'width_multiplier': 0.5}
  config.preprocess = 'mfcc'
  config.synthetic_adversary = 1.0
  rng = np.random.default_rng(0)
  batch = {'audio': rng.uniform(-0.3, 0.3, (8, 16000)).astype(np.float32),
           'label': np.arange(8, dtype=np.int32) % 4,
           'synthetic': (np.arange(8) % 2).astype(np.float32)}

  def step(weight, step_number=50):
    config.synthetic_adversary = weight
    graphdef, _, params, batch_stats = train.create_model(config, 4, seed=0)
    tx = train.make_optimizer(config,
                              config_validation.parse_schedule(config))
    state = train.new_train_state(params, batch_stats, tx, seed=0)
    state = state.replace(step=jax.numpy.asarray(step_number))
    new, metrics = train.train_step(
        state, batch, np.zeros(0, np.float32), graphdef=graphdef, tx=tx,
        num_classes=4, config=config)
    return state, new, metrics

  state, new, metrics = step(1.0)
  assert set(metrics) >= {'domain_cross_entropy', 'domain_accuracy'}
  head = lambda s: jax.tree.leaves(s.params['domain_head'])  # noqa: E731
  assert any(not np.array_equal(a, b) for a, b in zip(head(state), head(new)))
  # The class loss is the same with or without the head; the backbone's
  # update is not (the reversed gradient reaches it), unless its scale is
  # still 0 (step 0).
  _, plain, plain_metrics = step(0.0)
  assert float(metrics['cross_entropy']) == pytest.approx(
      float(plain_metrics['cross_entropy']), rel=1e-6)
  stem = lambda s: np.asarray(  # noqa: E731
      s.params['backbone']['stem']['kernel'])
  assert not np.allclose(stem(new), stem(plain))
  # The head is training's alone: not counted as the model's.
  every = sum(x.size for x in jax.tree.leaves(new.params))
  assert models.count_exported_params(new.params) == (
      models.count_exported_params(plain.params)) < every
  _, first, _ = step(1.0, step_number=0)
  _, plain_first, _ = step(0.0, step_number=0)
  np.testing.assert_allclose(stem(first), stem(plain_first), rtol=1e-6)


def test_training_with_the_synthetic_adversary(tiny_data_dir, tmp_path):
  synthetic = make_speech_commands_dir(tmp_path / 'synth',
                                       words=('yes', 'no', 'bed'),
                                       clips_per_word=4)
  (synthetic / 'validation_list.txt').write_text('')
  (synthetic / 'testing_list.txt').write_text('')
  config = _config(tiny_data_dir, tmp_path, model_architecture='tc_resnet',
                   preprocess='mfcc', model={'width_multiplier': 0.5},
                   synthetic_dir=str(synthetic), synthetic_fraction=0.25,
                   synthetic_unknown=True, synthetic_adversary=1.0)
  workdir = tmp_path / 'adversary'
  results = train.train_and_evaluate(config, str(workdir))
  steps = _logged(workdir, 'train')
  assert all(0 <= r['domain_accuracy'] <= 1 and r['domain_cross_entropy'] > 0
             for r in steps)
  restored = checkpoint.restore_model(str(workdir), which=checkpoint.BEST)
  assert restored.config.synthetic_adversary == 1.0
  assert results['num_params'] == models.count_exported_params(
      restored.params) < sum(x.size for x in jax.tree.leaves(restored.params))


def test_train_step_learns_from_its_teachers():
  config = config_validation.validate_config(test_config.get_config())
  train_def, _, params, batch_stats = train.create_model(config, 4, seed=0)
  _, teacher_def, teacher_params, teacher_stats = train.create_model(
      config, 4, seed=1)
  tx = train.make_optimizer(config, config_validation.parse_schedule(config))
  rng = np.random.default_rng(0)
  batch = {'audio': rng.uniform(-0.3, 0.3, (8, 16000)).astype(np.float32),
           'label': np.arange(8, dtype=np.int32) % 4}

  def loss(weight, teachers=(), student_def=train_def,
           teacher_definition=teacher_def):
    state = train.new_train_state(params, batch_stats, tx, seed=0)
    step_config = config.copy_and_resolve_references()
    step_config.distill_weight = weight
    _, metrics = train.train_step(
        state, batch, np.zeros(0, np.float32), teachers, graphdef=student_def,
        tx=tx, num_classes=4, config=step_config,
        teacher_defs=(teacher_definition,) if teachers else ())
    return float(metrics['cross_entropy'])

  teachers = ((teacher_params, teacher_stats),)
  assert loss(0.0, teachers) == pytest.approx(loss(0.0), rel=1e-6)
  assert abs(loss(1.0, teachers) - loss(0.0)) > 1e-3
  # Student and teacher learn from logits, not from decisions: neither's
  # unknown_offset moves the loss.
  offset = config.copy_and_resolve_references()
  offset.unknown_offset = 5.0
  offset_train_def, offset_teacher_def, _, _ = train.create_model(offset, 4,
                                                                 seed=0)
  assert loss(1.0, teachers, offset_train_def, offset_teacher_def) == (
      pytest.approx(loss(1.0, teachers), rel=1e-6))


def test_training_distils_from_teachers(tiny_data_dir, tmp_path, caplog):
  teacher = tmp_path / 'teacher'
  train.train_and_evaluate(_config(tiny_data_dir, tmp_path), str(teacher))
  # A student of another architecture, taught by the teacher twice over.
  config = _config(tiny_data_dir, tmp_path, model_architecture='single_fc',
                   model={}, distill_from=f'{teacher},{teacher}',
                   distill_weight=0.7, distill_temperature=2.0)
  with caplog.at_level(logging.INFO, logger='absl'):
    results = train.train_and_evaluate(config, str(tmp_path / 'student'))
  assert caplog.text.count(f'Distilling from {teacher}/checkpoints/') == 2
  assert results['test']['count'] > 0
  # The teachers change the loss: the first step (same weights, same batch)
  # of the same student without them has another cross entropy.
  alone = _config(tiny_data_dir, tmp_path, model_architecture='single_fc',
                  model={}, how_many_training_steps='1', learning_rate='0.01')
  train.train_and_evaluate(alone, str(tmp_path / 'alone'))
  taught = _logged(tmp_path / 'student', 'train')[0]
  untaught = _logged(tmp_path / 'alone', 'train')[0]
  assert taught['step'] == untaught['step'] == 1
  assert abs(taught['cross_entropy'] - untaught['cross_entropy']) > 1e-4
  saved = json.loads((tmp_path / 'student' / 'config.json').read_text())
  assert saved['distill_from'] == f'{teacher},{teacher}'
  # A run that leaves out an unseen-words fold learns only from teachers
  # that left out the same one (this teacher heard every word).
  fold_student = _config(tiny_data_dir, tmp_path, distill_from=str(teacher),
                         distill_weight=0.7, unseen_words_fold='1/2')
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"unseen_words_fold=''; this run leaves out fold "
                           r"'1/2'"):
    checkpoint.check_checkpoints_fit(fold_student,
                                     str(tmp_path / 'fold_student'))
  # A teacher that left out the same fold is taken.
  fold_teacher = tmp_path / 'fold_teacher'
  train.train_and_evaluate(
      _config(tiny_data_dir, tmp_path, unseen_words_fold='1/2'),
      str(fold_teacher))
  fold_student.distill_from = str(fold_teacher)
  checkpoint.check_checkpoints_fit(fold_student,
                                   str(tmp_path / 'fold_student'))


def test_results_score_unseen_words_and_the_silence_stress_set(
    tiny_data_dir, tmp_path, caplog):
  # Unknown words of the tiny data: up and cat; fold 1 of 2 leaves one out.
  config = _config(tiny_data_dir, tmp_path, unseen_words_fold='1/2',
                   background_rms_min=0.001, background_rms_max=0.3,
                   generated_noise=True, unknown_word_balance=1.0,
                   command_negatives=0.5)
  with caplog.at_level(logging.INFO, logger='absl'):
    results = train.train_and_evaluate(config, str(tmp_path / 'run'))
  unseen = results['unseen_words']
  assert set(unseen['per_group']) in ({'up'}, {'cat'})
  assert unseen['count'] == 10
  assert 0 <= unseen['recall'] <= 1
  assert unseen['mean_recall'] == pytest.approx(unseen['recall'])
  assert sum(unseen['heard_as'].values()) == round(
      (1 - unseen['recall']) * unseen['count'])
  stress = results['silence_stress']
  assert stress['count'] > 50 and 0 <= stress['recall'] <= 1
  assert {'white', 'hum50', 'dc'} <= set(stress['per_group'])
  assert '0.3' in stress['per_level']
  assert 'Unseen words (fold 1/2, never trained on)' in caplog.text
  assert 'Silence stress set: _silence_ recall = ' in caplog.text
  saved = json.loads((tmp_path / 'run' / 'results.json').read_text())
  assert saved['unseen_words']['count'] == 10


def test_ctrl_c_keeps_the_interrupted_steps_record(tiny_data_dir, tmp_path,
                                                   monkeypatch):
  # Ctrl-C lands while step 5's metrics are being fetched, which happens
  # once step 6 is dispatched (the loop reads a step's metrics while the
  # next one runs): the checkpoint saved on the way out holds step 6, so
  # the log and metrics.jsonl must have steps 5 and 6 too.
  device_get = jax.device_get
  fetched = []

  def interrupt_at_step_5(tree):
    if isinstance(tree, dict) and 'cross_entropy' in tree:
      fetched.append(1)
      if len(fetched) == 5:
        raise KeyboardInterrupt
    return device_get(tree)

  monkeypatch.setattr(jax, 'device_get', interrupt_at_step_5)
  workdir = tmp_path / 'run'
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(
        _config(tiny_data_dir, tmp_path, save_step_interval=100,
                eval_step_interval=100), str(workdir))
  steps = [json.loads(l)['step'] for l in
           (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert steps == [1, 2, 3, 4, 5, 6]
  assert checkpoint.Checkpoints(checkpoint.checkpoint_dir(workdir),
                                read_only=True).latest_step() == 6


def test_a_steps_metrics_are_read_while_the_next_step_runs(
    tiny_data_dir, tmp_path, monkeypatch):
  """The tutorial logs every step; reading step N's metrics must not stall
  the loop before step N + 1 is queued (asynchronous dispatch)."""
  taken = []
  train_iterator = input_pipeline.train_iterator

  def counting_iterator(*args, **kwargs):
    for batch in train_iterator(*args, **kwargs):
      taken.append(1)
      yield batch

  device_get = jax.device_get
  batches_when_read = []

  def watching_device_get(tree):
    if isinstance(tree, dict) and 'cross_entropy' in tree:
      batches_when_read.append(len(taken))
    return device_get(tree)

  monkeypatch.setattr(input_pipeline, 'train_iterator', counting_iterator)
  monkeypatch.setattr(jax, 'device_get', watching_device_get)
  train.train_and_evaluate(
      _config(tiny_data_dir, tmp_path, how_many_training_steps='6',
              learning_rate='0.01', save_step_interval=100,
              eval_step_interval=100),
      str(tmp_path / 'run'))
  # Steps 1-5 are read once the next batch was taken and its step
  # dispatched; the last step is read before the final evaluation.
  assert batches_when_read == [2, 3, 4, 5, 6, 6]


def test_the_time_left_is_estimated_in_words(caplog):
  with caplog.at_level(logging.INFO, logger='absl'):
    train._log_estimate(2.5, 18000)
  assert '2.500 s a step here: the 18000 steps left take about 12 h 30 min' in (
      caplog.text)
  assert train._duration(250) == '4 min 10 s'
  assert train._duration(12) == '12 s'


def test_a_long_run_logs_its_steps_and_their_time(tiny_data_dir, tmp_path,
                                                  caplog):
  config = _config(tiny_data_dir, tmp_path, how_many_training_steps='24',
                   learning_rate='0.01', save_step_interval=100,
                   eval_step_interval=100, log_step_interval=100)
  with caplog.at_level(logging.INFO, logger='absl'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert '24 steps to run (to step 24)' in caplog.text
  assert 's a step here: the 3 steps left take about ' in caplog.text
