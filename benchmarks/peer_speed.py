r"""The same networks in JAX (this project) and in TensorFlow/Keras, one run.

For each architecture (its `configs/<name>.py`), builds this project's model
and its Keras twin (`benchmarks/keras_twins.py`: same layers and parameter
count), each with the same front end (audio in: framing, FFT, the project's
mel and DCT tables), softmax cross-entropy and Adam, and times, alternating
the two frameworks step by step in one process:

* a training step on a batch of random audio (front end, forward, backward,
  update), what each framework's training loop runs per step;
* batch inference (front end and forward in eval mode).

Every measured step is printed as it comes; the summary gives medians, the
JAX/TF ratio (below 1: JAX is faster), and the achieved GFLOP/s (XLA's count
of the JAX step, used for both) against two ceilings: the CPU's nominal
peak (cores x FMA units x float32 lanes x 2 x clock; 2 FMA units per core is
an assumption, true of recent x86 cores) and a large float32 matmul measured
in each framework.

Usage:
  python -m benchmarks.peer_speed                       # all four twins
  python -m benchmarks.peer_speed --models=conv --steps=5
"""

from __future__ import annotations

import os

# TensorFlow at its fastest on a CPU: with its oneDNN kernels, which
# `kws_jax` turns off for itself (unless the environment says otherwise).
# Set before TensorFlow is imported (by keras_twins, below).
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

# pylint: disable=g-import-not-at-top,wrong-import-position
import statistics
import time
from typing import Callable

from absl import app
from absl import flags
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import keras_twins
from benchmarks import train_steps
from kws_jax import models
from kws_jax import tf_setup

_NUM_CLASSES = 12
_MATMUL_SIZE = 2048


def cpu_peak_gflops() -> tuple[float, str]:
  """Nominal float32 peak of this machine's CPUs, and how it was derived."""
  flags_line, mhz = '', 0.0
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('flags') and not flags_line:
          flags_line = line
        elif line.startswith('cpu MHz'):
          mhz = max(mhz, float(line.split(':')[1]))
  except OSError:
    pass
  cpu_flags = set(flags_line.split())
  lanes = 16 if 'avx512f' in cpu_flags else 8 if 'avx' in cpu_flags else 4
  fma = 2 if 'fma' in cpu_flags or 'avx512f' in cpu_flags else 1
  # The CPUs this process may run on (SMT siblings count as cores here).
  cores = len(os.sched_getaffinity(0)) if hasattr(
      os, 'sched_getaffinity') else os.cpu_count() or 1
  ghz = mhz / 1000 if mhz else 2.0
  peak = cores * 2 * lanes * 2 * ghz if fma == 2 else cores * lanes * 2 * ghz
  units = '2 FMA units x ' if fma == 2 else ''
  return peak, (f'{cores} cores x {units}{lanes} float32 lanes x 2 flops x '
                f'{ghz:.2f} GHz{"" if mhz else " (clock unknown, 2 GHz assumed)"}')


def _cpu_only():
  """Both frameworks on the CPU (a GPU beside would make the comparison
  JAX-on-GPU against TF-on-CPU); returns TensorFlow."""
  jax.config.update('jax_platforms', 'cpu')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf_setup.hide_gpus_from_tf(tf)
  return tf


def _matmul_gflops(tf) -> tuple[float, float]:
  """GFLOP/s of a large float32 matmul in XLA and in TensorFlow."""
  a = np.random.default_rng(0).standard_normal(
      (_MATMUL_SIZE, _MATMUL_SIZE)).astype(np.float32)
  flops = 2 * _MATMUL_SIZE**3
  jax_a = jnp.asarray(a)
  jax_matmul = jax.jit(lambda x: x @ x)
  tf_a = tf.constant(a)
  tf_matmul = tf.function(lambda x: tf.matmul(x, x))
  jax_matmul(jax_a).block_until_ready()
  tf_matmul(tf_a).numpy()
  jax_times, tf_times = [], []
  for _ in range(3):
    jax_times.append(_timed(lambda: jax_matmul(jax_a).block_until_ready()))
    tf_times.append(_timed(lambda: tf_matmul(tf_a).numpy()))
  return (flops / min(jax_times) / 1e9, flops / min(tf_times) / 1e9)


def _timed(run: Callable[[], object]) -> float:
  start = time.perf_counter()
  run()
  return time.perf_counter() - start


def _jax_inference(config, batch_size: int) -> Callable[[], None]:
  model = models.create_model(config, _NUM_CLASSES, nnx.Rngs(0))
  model.eval()
  graphdef, state = nnx.split(model)
  predict = jax.jit(lambda state, audio: nnx.merge(graphdef, state)(audio))
  audio = jnp.asarray(train_steps.random_audio(config, batch_size, seed=1))
  return lambda: predict(state, audio).block_until_ready()


def _tf_steps(tf, config, batch_size: int
              ) -> tuple[Callable[[], None], Callable[[], None]]:
  """(train step, inference) of the Keras twin, audio in."""
  import keras  # pylint: disable=g-import-not-at-top
  twin = keras_twins.build(config, _NUM_CLASSES)
  frontend = keras_twins.frontend(config)
  optimizer = keras.optimizers.Adam(1e-3)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  audio = tf.constant(train_steps.random_audio(config, batch_size, seed=1))
  label = tf.constant(train_steps.random_labels(batch_size, _NUM_CLASSES))

  @tf.function
  def train(audio, label):
    with tf.GradientTape() as tape:
      loss = loss_fn(label, twin(frontend(audio), training=True))
    grads = tape.gradient(loss, twin.trainable_variables)
    optimizer.apply_gradients(zip(grads, twin.trainable_variables))
    return loss

  @tf.function
  def infer(audio):
    return twin(frontend(audio), training=False)

  return (lambda: train(audio, label).numpy(),
          lambda: infer(audio).numpy())


def compare(name: str, tf, batch_size: int, steps: int, warmup: int,
            peak: float) -> dict[str, float]:
  """Times `name` in both frameworks, alternating; prints every step."""
  config, _ = train_steps.load_config(name)
  jax_step, flops = train_steps.make_train_step(config, batch_size, False,
                                                _NUM_CLASSES)
  jax_train = lambda: jax.block_until_ready(jax_step())  # noqa: E731
  jax_infer = _jax_inference(config, batch_size)
  tf_train, tf_infer = _tf_steps(tf, config, batch_size)
  for run in (jax_train, tf_train, jax_infer, tf_infer):
    for _ in range(warmup):
      run()
  times = {'jax_train': [], 'tf_train': [], 'jax_infer': [], 'tf_infer': []}
  runs = [('jax_train', jax_train), ('tf_train', tf_train),
          ('jax_infer', jax_infer), ('tf_infer', tf_infer)]
  for i in range(steps):
    # Who goes first alternates, so neither framework always runs right
    # after the other's threads.
    for key, run in (runs if i % 2 == 0 else runs[::-1]):
      times[key].append(_timed(run))
    print(f'  {name} step {i + 1}/{steps}: train JAX '
          f'{times["jax_train"][-1] * 1e3:.1f} ms, TF '
          f'{times["tf_train"][-1] * 1e3:.1f} ms; inference JAX '
          f'{times["jax_infer"][-1] * 1e3:.1f} ms, TF '
          f'{times["tf_infer"][-1] * 1e3:.1f} ms', flush=True)
  result = {key: statistics.median(values) for key, values in times.items()}
  result['gflop'] = flops / 1e9
  result['peak'] = peak
  return result


def format_row(name: str, r: dict[str, float]) -> str:
  """One line of the summary table (markdown)."""
  def rate(seconds: float) -> str:
    gflops = r['gflop'] / seconds
    return f'{gflops:.1f} ({100 * gflops / r["peak"]:.0f}%)'
  return (f'| `{name}` | {r["gflop"]:.1f} | {r["jax_train"] * 1e3:.0f} | '
          f'{r["tf_train"] * 1e3:.0f} | '
          f'**{r["jax_train"] / r["tf_train"]:.2f}** | '
          f'{rate(r["jax_train"])} | {rate(r["tf_train"])} | '
          f'{r["jax_infer"] * 1e3:.1f} | {r["tf_infer"] * 1e3:.1f} | '
          f'{r["jax_infer"] / r["tf_infer"]:.2f} |')


def _define_flags() -> None:
  # Defined only when run as a program: tests import this module beside
  # others (experiments.ensemble, benchmarks.model_speed) that define
  # --models too.
  flags.DEFINE_list('models', list(keras_twins.TWINS),
                    'Architectures with a Keras twin.')
  flags.DEFINE_integer('batch_size', 100, 'Clips per step.')
  flags.DEFINE_integer('steps', 5, 'Timed steps per framework.')
  flags.DEFINE_integer('warmup', 2, 'Untimed steps (compilation).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  fl = flags.FLAGS
  unknown = sorted(set(fl.models) - set(keras_twins.TWINS))
  if unknown:
    raise app.UsageError(f'--models: no Keras twin of {", ".join(unknown)}; '
                         f'choose from {", ".join(keras_twins.TWINS)}.')
  tf = _cpu_only()
  peak, derivation = cpu_peak_gflops()
  jax_matmul, tf_matmul = _matmul_gflops(tf)
  print(f'JAX {jax.__version__} ({jax.default_backend()}), TensorFlow '
        f'{tf.__version__}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; '
        f'batch {fl.batch_size}, median of {fl.steps} steps after '
        f'{fl.warmup}, the frameworks alternating.')
  print(f'Nominal float32 peak: {peak:.0f} GFLOP/s ({derivation}). '
        f'{_MATMUL_SIZE}x{_MATMUL_SIZE} matmul: XLA {jax_matmul:.1f}, '
        f'TF {tf_matmul:.1f} GFLOP/s.', flush=True)
  rows = []
  for name in fl.models:
    result = compare(name, tf, fl.batch_size, fl.steps, fl.warmup, peak)
    rows.append(format_row(name, result))
  print()
  print('| architecture | GFLOP a step | JAX train ms | TF train ms | '
        'JAX / TF | JAX GFLOP/s (of peak) | TF GFLOP/s (of peak) | '
        'JAX inference ms | TF inference ms | JAX / TF |')
  print('|---|---|---|---|---|---|---|---|---|---|')
  for row in rows:
    print(row)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
