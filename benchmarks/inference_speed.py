r"""Milliseconds per one-second clip on one CPU thread: JAX and TFLite.

For each architecture (its `configs/<name>.py`, freshly initialised weights:
speed does not depend on training), prints the jitted JAX model's latency
for one clip, the exported TFLite model's (float32, and int8 with the
backbone quantised), model file sizes and the parameter count.

  python -m benchmarks.inference_speed
  python -m benchmarks.inference_speed --models=tc_resnet --runs=200

JAX is pinned to one thread with XLA_FLAGS before it starts; the TFLite
interpreter is given num_threads=1.
"""

import os
import sys

# One CPU thread for XLA too, set before JAX is imported.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_cpu_multi_thread_eigen=false')

import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np

from kws_jax import audio_io
from kws_jax import config_files
from kws_jax import labels as labels_lib
from kws_jax import models
from kws_jax import train
from kws_jax.runtime import inference
from tflite_export import convert

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MODELS = flags.DEFINE_list('models', [], 'Architectures; empty = all.')
_RUNS = flags.DEFINE_integer('runs', 100, 'Timed clips per model.')
_INT8 = flags.DEFINE_bool('int8', True, 'Also time the int8 model.')


def _time(fn, clip, runs: int) -> float:
  """Median ms of `fn(clip)` over `runs` calls, after 5 warm-up calls."""
  for _ in range(5):
    fn(clip)
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn(clip)
    times.append(time.perf_counter() - start)
  return float(np.median(times) * 1000)


def measure(name: str, runs: int, int8: bool) -> dict:
  config = config_files.load_config(f'configs/{name}.py', root=_REPO)
  labels = labels_lib.prepare_words_list(config.wanted_words)
  _, eval_def, params, batch_stats = train.create_model(config, len(labels),
                                                        seed=0)
  predict = jax.jit(models.predict_fn(eval_def))
  length = audio_io.samples_per_clip(config.sample_rate,
                                     config.clip_duration_ms)
  rng = np.random.default_rng(0)
  clip = (0.1 * rng.standard_normal(length)).astype(np.float32)

  row = {'architecture': name,
         'params': sum(x.size for x in jax.tree.leaves(params)),
         'jax_ms': _time(lambda c: jax.block_until_ready(
             predict(params, batch_stats, c[None])), clip, runs)}
  with tempfile.TemporaryDirectory() as tmp:
    variants = [('float', '')] + ([('int8', 'int8')] if int8 else [])
    for kind, quantize in variants:
      path = os.path.join(tmp, f'{kind}.tflite')
      convert.export_tflite(
          params, batch_stats, eval_def, config, labels, path,
          quantize=quantize, verify=False,
          representative_audio=(0.1 * rng.standard_normal(
              (32, length))).astype(np.float32) if quantize else None)
      recognizer = inference.Recognizer(path, num_threads=1)
      row[f'tflite_{kind}_ms'] = _time(recognizer.predict, clip, runs)
      row[f'tflite_{kind}_kb'] = os.path.getsize(path) / 1024
  return row


def main(argv):
  del argv
  names = _MODELS.value or list(models.MODELS)
  print(f'JAX {jax.__version__}, one CPU thread, median of {_RUNS.value} '
        'clips (1 s of 16 kHz audio each), fresh weights.')
  header = ('architecture', 'params', 'jax_ms', 'tflite_float_ms',
            'tflite_float_kb', 'tflite_int8_ms', 'tflite_int8_kb')
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  for name in names:
    try:
      row = measure(name, _RUNS.value, _INT8.value)
    except Exception as e:  # pylint: disable=broad-except
      print(f'| {name} | failed: {type(e).__name__}: {e} |', file=sys.stdout)
      continue
    print('| ' + ' | '.join(
        f'{row[k]:.2f}' if isinstance(row.get(k), float) else
        str(row.get(k, '')) for k in header) + ' |', flush=True)


if __name__ == '__main__':
  app.run(main)
