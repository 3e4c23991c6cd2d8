r"""Streaming vs non-streaming TFLite model: real-time factor on one CPU thread.

Builds an architecture from `configs/<name>.py` with fresh weights (speed does
not depend on the values), exports it twice in a temporary folder (the clip
model of `convert.export_tflite` and the streaming model of
`streaming_export.export_streaming_tflite`, each checked against JAX) and
streams the same synthetic recording through both with the model run every
`--clip_stride_ms`:

* model call: one run of each model (a whole clip vs one stride), median ms;
* recognizer: `streaming.StreamingRecognizer` fed `--chunk_ms` chunks, as a
  microphone would, with `Recognizer.predict` vs the streaming model's
  `ClipAdaptor` (`benchmarks.streaming_speed.measure`);
* raw stream: the streaming model's own `process()` on the same chunks, no
  recognizer.

Real-time factor (RTF) = processing time / audio duration, in wall time and
in CPU time of the calling thread (the interpreters run on it with
`--num_threads=1`); CPU time is the fairer figure on a busy machine. Each
figure is the best of `--repeats` runs.

Usage:
  python -m benchmarks.streaming_export_speed               # tc_resnet, 30 ms
  python -m benchmarks.streaming_export_speed --config=ds_cnn \
      --clip_stride_ms=20
"""

import os
import tempfile
import time
from typing import Callable, Sequence

from absl import app
from absl import flags
from flax import nnx
import numpy as np

from benchmarks import streaming_speed
from kws_jax import config_files
from kws_jax import labels as labels_lib
from kws_jax import models
from kws_jax.runtime import inference
from kws_jax.runtime import streaming
from kws_jax.runtime import streaming_inference
from tflite_export import convert
from tflite_export import streaming_export

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _define_flags() -> None:
  # Defined only when run as a program, like the other tools.
  flags.DEFINE_string('config', 'tc_resnet', 'Architecture config name '
                      '(configs/<name>.py).')
  flags.DEFINE_float('clip_stride_ms', None, 'Stride of the streaming model '
                     'and of the recognizer; default: the largest multiple of '
                     'window_stride_ms up to 30 ms.')
  flags.DEFINE_float('duration_seconds', 30, 'Length of the test stream.')
  flags.DEFINE_float('chunk_ms', 100, 'Audio per process() call, ms.')
  flags.DEFINE_integer('num_threads', 1, 'CPU threads per interpreter.')
  flags.DEFINE_integer('repeats', 3, 'Runs of each measurement; the best '
                       'counts.')


def _best_of(repeats: int, fn: Callable[[], None]) -> tuple[float, float]:
  """Least (wall, thread CPU) seconds of `repeats` calls of `fn`."""
  walls, cpus = [], []
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    walls.append(time.perf_counter() - wall)
    cpus.append(time.thread_time() - cpu)
  return min(walls), min(cpus)


def _median_call_ms(fn: Callable[[], object], calls: int = 200) -> float:
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    fn()
    times.append((time.perf_counter() - start) * 1000)
  return float(np.median(times))


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  config = config_files.load_config(f'configs/{f.config}.py', root=_REPO)
  labels = labels_lib.prepare_words_list(config.wanted_words)
  model = models.create_model(config, len(labels), nnx.Rngs(0))
  model.eval()
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  layout = streaming_export.streaming_layout(config, f.clip_stride_ms)
  stride_ms = layout.clip_stride_ms
  rate = layout.sample_rate
  audio = streaming_export.test_stream(int(f.duration_seconds * rate), rate)
  chunk = max(1, streaming.ms_to_samples(f.chunk_ms, rate))
  seconds = audio.shape[0] / rate

  with tempfile.TemporaryDirectory(prefix='kws_stream_bench_') as tmp:
    clip_export = convert.export_tflite(
        params, batch_stats, graphdef, config, labels,
        os.path.join(tmp, 'clip.tflite'))
    stream_export = streaming_export.export_streaming_tflite(
        params, batch_stats, graphdef, config, labels,
        os.path.join(tmp, 'stream.tflite'), clip_stride_ms=stride_ms)
    clip_model = inference.Recognizer(clip_export.model_path,
                                      num_threads=f.num_threads)
    stream_model = streaming_inference.StreamingTFLiteModel(
        stream_export.model_path, num_threads=f.num_threads)

    clip = audio[:layout.clip_samples]
    stride = audio[:layout.stride_samples]
    clip_ms = _median_call_ms(lambda: clip_model.predict(clip))
    stride_call_ms = _median_call_ms(lambda: stream_model.step(stride))

    def recognizer_run(predict_fn):
      def run():
        streaming_speed.measure(
            predict_fn, labels, audio, sample_rate=rate,
            clip_duration_ms=config.clip_duration_ms, chunk_ms=f.chunk_ms,
            clip_stride_ms=stride_ms)
      return run

    def raw_stream():
      stream_model.reset()
      for offset in range(0, audio.shape[0], chunk):
        stream_model.process(audio[offset:offset + chunk])

    rows = [
        ('non-streaming, StreamingRecognizer',
         _best_of(f.repeats, recognizer_run(clip_model.predict))),
        ('streaming, StreamingRecognizer + ClipAdaptor',
         _best_of(f.repeats, recognizer_run(stream_model.predict_fn()))),
        ('streaming, process() alone', _best_of(f.repeats, raw_stream)),
    ]

  print(f'{f.config}: {layout.clip_stride_ms:g} ms stride '
        f'({layout.frames_per_stride} frame(s) a call), {f.num_threads} '
        f'thread(s), {seconds:g} s of audio in {f.chunk_ms:g} ms chunks')
  print(f'parity with the JAX clip model: non-streaming '
        f'{clip_export.parity_max_abs_diff:.2g}, streaming '
        f'{stream_export.parity_max_abs_diff:.2g}; sizes '
        f'{clip_export.size_bytes} / {stream_export.size_bytes} bytes')
  print(f'model call (median): whole clip {clip_ms:.3f} ms, one stride '
        f'{stride_call_ms:.3f} ms ({clip_ms / stride_call_ms:.1f}x faster)')
  print(f'{"path":48s} {"RTF wall":>9s} {"RTF CPU":>9s}')
  for name, (wall, cpu) in rows:
    print(f'{name:48s} {wall / seconds:9.4f} {cpu / seconds:9.4f}')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
