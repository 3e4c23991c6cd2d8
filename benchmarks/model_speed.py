r"""Speed of every registered architecture: params, multiply-adds, step time.

For each architecture, with its `configs/<name>.py` (front end included; the
default config for architectures without one), prints:

* params: trainable parameters;
* MACs: estimated multiply-adds for one 1-s clip, front end + backbone and
  backbone alone (XLA cost analysis; see `models.estimate_multiply_adds`);
* step time: one jitted training step on random audio (front end, forward,
  backward, adam update; with `--augment` also the waveform augmentation),
  mean over `--steps` steps after `--warmup` steps, with the spread;
* the config's full schedule at that speed, in minutes.

Usage:
  python -m benchmarks.model_speed --batch_size=100 --steps=10
  python -m benchmarks.model_speed --models=bc_resnet,tc_resnet
"""

import os
import time

from absl import app
from absl import flags
from flax import nnx
import jax
import ml_collections
import numpy as np

from benchmarks import train_steps
from kws_jax import audio_io
from kws_jax import features
from kws_jax import models

_BATCH_SIZE = flags.DEFINE_integer('batch_size', 100, 'Clips per step.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps per model.')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed steps (compilation).')
_MODELS = flags.DEFINE_list('models', [], 'Architectures; empty = all.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 12, 'Output classes.')
_AUGMENT = flags.DEFINE_bool('augment', False,
                             'Include the waveform augmentation.')


def time_train_step(config: ml_collections.ConfigDict, batch_size: int,
                    steps: int, warmup: int, with_augment: bool
                    ) -> tuple[float, float, float]:
  """Mean and stddev of the wall time and mean CPU time of a step, seconds.

  CPU time (all threads of this process) is the better measure of work when
  other processes compete for the cores: then wall time includes waiting.
  """
  step, _ = train_steps.make_train_step(config, batch_size, with_augment,
                                        _NUM_CLASSES.value)
  times, cpu_times = [], []
  for i in range(warmup + steps):
    start, cpu_start = time.perf_counter(), time.process_time()
    jax.block_until_ready(step())
    if i >= warmup:
      times.append(time.perf_counter() - start)
      cpu_times.append(time.process_time() - cpu_start)
  return float(np.mean(times)), float(np.std(times)), float(np.mean(cpu_times))


def _si(n: float) -> str:
  for unit, size in (('G', 1e9), ('M', 1e6), ('k', 1e3)):
    if abs(n) >= size:
      return f'{n / size:.1f}{unit}'
  return str(int(n))


def main(argv):
  del argv
  names = _MODELS.value or list(models.MODELS)
  header = (f'{"architecture":<20} {"config":<20} {"input":>7} {"params":>7} '
            f'{"MACs":>7} {"(bkbn)":>7} {"step ms":>13} {"cpu ms":>7} '
            f'{"schedule":>9}')
  print(f'JAX {jax.__version__} on {jax.devices()[0].platform}, '
        f'{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), '
        f'batch {_BATCH_SIZE.value}, mean of {_STEPS.value} steps after '
        f'{_WARMUP.value}; schedule = the config\'s steps at this speed.')
  print(header)
  print('-' * len(header))
  for name in names:
    config, config_name = train_steps.load_config(name)
    model = models.create_model(config, _NUM_CLASSES.value, nnx.Rngs(0))
    frames = features.num_frames(config)
    samples = audio_io.samples_per_clip(config.sample_rate,
                                        config.clip_duration_ms)
    total_macs = models.estimate_multiply_adds(model, (samples,))
    backbone_macs = models.estimate_multiply_adds(
        model.backbone, (frames, config.feature_bin_count))
    mean, std, cpu = time_train_step(config, _BATCH_SIZE.value, _STEPS.value,
                                _WARMUP.value, _AUGMENT.value)
    total_steps = sum(int(s) for s in config.how_many_training_steps.split(','))
    print(f'{name:<20} {config_name:<20} '
          f'{frames:>3}x{config.feature_bin_count:<3} '
          f'{_si(models.count_params(model)):>7} {_si(total_macs):>7} '
          f'{_si(backbone_macs):>7} {mean * 1e3:>7.1f}±{std * 1e3:<5.1f}'
          f'{cpu * 1e3:>7.0f} {total_steps * mean / 60:>6.0f}min', flush=True)


if __name__ == '__main__':
  app.run(main)
