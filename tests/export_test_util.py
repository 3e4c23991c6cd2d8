"""Helpers for the export / inference / evaluation tests.

* `make_level_model`: a tiny TFLite model built with TF ops alone (no JAX,
  no training) whose answer is known: it picks class k for a clip whose mean
  absolute amplitude is about k / 10. `level_clip(k)` makes such a clip.
* `small_config` / `init_model`: a fresh kws_jax model of any registered
  architecture, with random parameters drawn in numpy (no XLA compilation).
* `write_checkpoint`: a workdir with checkpoints as `train` writes them.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from typing import Sequence

import numpy as np

SAMPLE_RATE = 16000
LABELS = ['_silence_', '_unknown_', 'yes', 'no']


def level_clip(k: int, num_samples: int = SAMPLE_RATE) -> np.ndarray:
  """A clip (float32 [num_samples]) of constant level k / 10, alternating sign.

  The sign alternates every 50 samples, so the clip is a 160 Hz square wave
  that survives resampling with its level intact (away from the edges).
  """
  sign = np.where((np.arange(num_samples) // 50) % 2 == 0, 1.0, -1.0)
  return (sign * k / 10.0).astype(np.float32)


def make_level_model(path: str, labels: Sequence[str] = tuple(LABELS), *,
                     clip_samples: int = SAMPLE_RATE, android: bool = False,
                     sample_rate: int | None = None,
                     write_labels: str | None = 'stem') -> str:
  """Writes a TFLite model: class k when mean |audio| is about k / 10.

  Args:
    path: the .tflite file.
    labels: written beside it (see `write_labels`); their count is the
      number of outputs.
    clip_samples: L.
    android: inputs float32 [L, 1] + int32 [1] instead of float32 [1, L].
    sample_rate: if given, `<stem>_config.json` with this sample rate is
      written beside the model.
    write_labels: 'stem' (<stem>_labels.txt), 'plain' (labels.txt) or None.

  Returns:
    `path`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  num_classes = len(labels)
  centres = tf.constant(np.arange(num_classes, dtype=np.float32) / 10.0)

  def probabilities(audio):  # [1, L]
    level = tf.reduce_mean(tf.abs(audio), axis=1, keepdims=True)  # [1, 1]
    return tf.nn.softmax(-200.0 * tf.abs(level - centres[None]), axis=-1)

  module = tf.Module()
  if android:
    @tf.function(input_signature=[
        tf.TensorSpec([clip_samples, 1], tf.float32, name='input_audio'),
        tf.TensorSpec([1], tf.int32, name='input_sample_rate')])
    def serve(input_audio, input_sample_rate):
      del input_sample_rate
      return {'p': probabilities(tf.reshape(input_audio, [1, clip_samples]))}
  else:
    @tf.function(input_signature=[
        tf.TensorSpec([1, clip_samples], tf.float32, name='audio')])
    def serve(audio):
      return {'p': probabilities(audio)}
  module.serve = serve
  with tempfile.TemporaryDirectory() as saved:
    tf.saved_model.save(module, saved, signatures={'serving_default': serve})
    content = tf.lite.TFLiteConverter.from_saved_model(saved).convert()
  with open(path, 'wb') as f:
    f.write(content)
  stem = os.path.splitext(path)[0]
  if write_labels == 'stem':
    labels_path = f'{stem}_labels.txt'
  elif write_labels == 'plain':
    labels_path = os.path.join(os.path.dirname(path), 'labels.txt')
  else:
    labels_path = None
  if labels_path:
    with open(labels_path, 'w') as f:
      f.write(''.join(f'{label}\n' for label in labels))
  if sample_rate is not None:
    with open(f'{stem}_config.json', 'w') as f:
      json.dump({'sample_rate': sample_rate}, f)
  return path


def small_config(architecture: str, **overrides):
  """`configs/<architecture>.py` (else the defaults) with two words."""
  try:
    module = importlib.import_module(f'configs.{architecture}')
    config = module.get_config()
  except ModuleNotFoundError:
    from configs import default  # pylint: disable=g-import-not-at-top
    config = default.get_config()
    config.model = {}
  config.model_architecture = architecture
  config.wanted_words = ('yes', 'no')
  config.data_url = ''
  for key, value in overrides.items():
    config[key] = value
  return config


def _name(path) -> str:
  """The variable's attribute name ('kernel', 'scale', 'mean', ...)."""
  keys = [getattr(k, 'key', getattr(k, 'name', None)) for k in path]
  keys = [k for k in keys if isinstance(k, str) and k != 'value']
  return keys[-1] if keys else ''


def init_model(config, num_classes: int, seed: int = 0):
  """A freshly built model in eval mode: (eval_graphdef, params, batch_stats).

  The structure comes from the real constructor (under `nnx.eval_shape`);
  the values are drawn in numpy at the scale of the usual initializers
  (LeCun normal weights, scales near 1, small biases) with non-trivial
  BatchNorm statistics. Running the model's own initializer would cost one
  XLA compilation per architecture (5-20 s each on a CPU); conversion and
  parity do not depend on how the values were drawn.
  """
  from flax import nnx  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from kws_jax import models  # pylint: disable=g-import-not-at-top

  model = nnx.eval_shape(lambda: models.create_model(
      config, num_classes, nnx.Rngs(params=seed)))
  model.eval()
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    shape, name = leaf.shape, _name(path)
    if name == 'var':
      value = rng.uniform(0.5, 1.5, shape)
    elif name == 'scale':
      value = 1.0 + 0.1 * rng.standard_normal(shape)
    elif len(shape) < 2:  # Biases, BatchNorm means and the like.
      value = 0.1 * rng.standard_normal(shape)
    else:
      fan_in = int(np.prod(shape[:-1]))
      value = rng.standard_normal(shape) / np.sqrt(fan_in)
    return jax.numpy.asarray(value, leaf.dtype)

  params = jax.tree_util.tree_map_with_path(draw, params)
  batch_stats = jax.tree_util.tree_map_with_path(draw, batch_stats)
  return graphdef, params, batch_stats


def write_checkpoint(workdir: str, config, labels: Sequence[str],
                     steps: dict[int, float | None], seed: int = 0):
  """Writes `<workdir>/checkpoints/<step>` for each step, as training does.

  Args:
    workdir: the run folder.
    config: stored in each checkpoint's extra, as given (it may lack
      `workdir.LATER_FIELDS`, as an older run's does).
    labels: stored too.
    steps: {step: validation accuracy or None}; the parameters of step s are
      the initial ones scaled by s, so each step's model differs.
    seed: initialisation seed.

  Returns:
    {step: (params, batch_stats)} as saved, and the eval graphdef.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from kws_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from kws_jax import config_validation  # pylint: disable=g-import-not-at-top
  from kws_jax import train  # pylint: disable=g-import-not-at-top
  from kws_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top

  # The model of the config as restoring reads it (an older config lacks the
  # later fields); the config is stored as given.
  current = workdir_lib.with_later_fields(config)
  graphdef, params, batch_stats = init_model(current, len(labels), seed)
  tx = train.make_optimizer(current, config_validation.parse_schedule(current))
  ckpts = checkpoint.Checkpoints(checkpoint.checkpoint_dir(workdir), keep=10)
  for step, accuracy in steps.items():
    scaled = jax.tree.map(lambda x, s=step: x * (1.0 + 0.1 * s), params)
    state = train.new_train_state(scaled, batch_stats, tx, seed, step)
    metrics = ({checkpoint.BEST_METRIC: accuracy} if accuracy is not None
               else None)
    ckpts.save(step, state,
               {'config': config.to_dict(), 'labels': list(labels),
                'metrics': metrics or {}}, metrics=metrics)
  ckpts.wait_until_finished()
  ckpts.close()
  return {s: (jax.tree.map(lambda x, s=s: x * (1.0 + 0.1 * s), params),
              batch_stats) for s in steps}, graphdef
