r"""Streaming speed of a TFLite model on one CPU thread, and detection delay.

Feeds a recording to `streaming.StreamingRecognizer` in chunks, as a live
microphone would, with the model run every `--clip_stride_ms` (30 ms, the
tutorial's default) over the last clip, and prints:

* real-time factor: processing time / audio duration (below 1 keeps up; the
  share of one core a live recognizer needs);
* time per model run: mean, median and 95th percentile, ms;
* with ground truth: the tutorial's accuracy line and the mean detection
  delay, i.e. detection time (the start of the triggering clip, as the
  tutorial counts) minus the word's start, and the resulting latency from
  the word's start until the detection is reported: delay + clip duration +
  one model run.

Without `--wav`, a stream is generated from `--data_dir`'s test split (as
`generate_streaming_test_wav` does); without either, low noise is timed and
no delay is reported.

Usage:
  python -m benchmarks.streaming_speed                      # shipped model
  python -m benchmarks.streaming_speed --graph=model.tflite \
      --wav=/tmp/streaming_test.wav \
      --ground_truth=/tmp/streaming_test_labels.txt
"""

import dataclasses
import os
import tempfile
import time
from typing import Sequence

from absl import app
from absl import flags
import numpy as np

from kws_jax import audio_io
from kws_jax import generate_streaming_test_wav as gen
from kws_jax.runtime import stream_scoring
from kws_jax.runtime import streaming


@dataclasses.dataclass(frozen=True)
class SpeedResult:
  """What `measure` found; times in ms unless named otherwise."""
  audio_seconds: float
  processing_seconds: float
  model_runs: int
  run_ms: tuple[float, ...]
  stats: stream_scoring.StreamingStats | None
  clip_duration_ms: float

  @property
  def real_time_factor(self) -> float:
    return self.processing_seconds / self.audio_seconds

  @property
  def latency_ms(self) -> float:
    """Word start → detection reported: delay + clip + one model run."""
    if self.stats is None:
      return float('nan')
    return (self.stats.mean_delay_ms + self.clip_duration_ms +
            float(np.mean(self.run_ms)))

  def report(self) -> str:
    runs = np.asarray(self.run_ms)
    lines = [
        f'audio {self.audio_seconds:.1f} s, processed in '
        f'{self.processing_seconds:.2f} s: real-time factor '
        f'{self.real_time_factor:.4f}',
        f'{self.model_runs} model runs: mean {runs.mean():.3f} ms, median '
        f'{np.median(runs):.3f} ms, p95 {np.percentile(runs, 95):.3f} ms']
    if self.stats is not None:
      lines.append(self.stats.summary())
    if self.stats is not None and self.stats.delays_ms:
      lines.append(
          f'mean detection delay {self.stats.mean_delay_ms:.0f} ms (clip '
          f'start - word start); latency from word start to report '
          f'{self.latency_ms:.0f} ms')
    return '\n'.join(lines)


class _TimedSteps:
  """A model's own steps, each push's time shared by the clips it scored."""

  def __init__(self, steps: streaming.ScoreSteps, run_ms: list[float]):
    self._steps = steps
    self._run_ms = run_ms

  def reset(self) -> None:
    self._steps.reset()

  def push(self, chunk: np.ndarray) -> list[tuple[int, np.ndarray]]:
    start = time.perf_counter()
    results = self._steps.push(chunk)
    if results:
      share = (time.perf_counter() - start) * 1000 / len(results)
      self._run_ms.extend([share] * len(results))
    return results


class _Timed:
  """The model as the recogniser takes it, with each run timed, in ms."""

  def __init__(self, predict_fn: streaming.PredictFn | streaming.SteppedModel):
    self._predict_fn = predict_fn
    self.run_ms: list[float] = []

  def __call__(self, clip: np.ndarray) -> np.ndarray:
    start = time.perf_counter()
    scores = self._predict_fn(clip)
    self.run_ms.append((time.perf_counter() - start) * 1000)
    return scores

  def steps(self, clip_samples: int, stride_samples: int
            ) -> _TimedSteps | None:
    # A streaming model keeps its own steps (one call a stride), timed.
    if not isinstance(self._predict_fn, streaming.SteppedModel):
      return None
    steps = self._predict_fn.steps(clip_samples, stride_samples)
    return None if steps is None else _TimedSteps(steps, self.run_ms)


def measure(predict_fn: streaming.PredictFn | streaming.SteppedModel,
            labels: Sequence[str],
            audio: np.ndarray, *, sample_rate: int, clip_duration_ms: float,
            ground_truth: Sequence[tuple[str, float]] | None = None,
            chunk_ms: float = 100,
            clip_stride_ms: float = streaming.DEFAULT_CLIP_STRIDE_MS,
            settings: streaming.SmoothingSettings = (
                streaming.SmoothingSettings()),
            time_tolerance_ms: float = 750) -> SpeedResult:
  """Streams `audio` chunk by chunk and times it.

  Args:
    predict_fn: the model as `streaming.StreamingRecognizer` takes it (clip
      float32 [clip_samples] → scores [C], or a streaming model's
      `LoadedModel.predict_fn`, timed per clip scored).
    labels: class names.
    audio: float32 [T] at `sample_rate`.
    sample_rate: Hz.
    clip_duration_ms: the model's input length, ms.
    ground_truth: (label, time_ms) pairs, for accuracy and delay; optional.
    chunk_ms: audio fed per `process` call, ms.
    clip_stride_ms: ms between model runs.
    settings: `RecognizeCommands` settings.
    time_tolerance_ms: for matching detections to words.

  Returns:
    The measurements.
  """
  timed = _Timed(predict_fn)
  recognizer = streaming.StreamingRecognizer(
      timed, labels, sample_rate=sample_rate,
      clip_duration_ms=clip_duration_ms, clip_stride_ms=clip_stride_ms,
      **dataclasses.asdict(settings))
  chunk = max(1, streaming.ms_to_samples(chunk_ms, sample_rate))
  detections = []
  start = time.perf_counter()
  for offset in range(0, audio.shape[0], chunk):
    detections += recognizer.process(audio[offset:offset + chunk])
  processing_seconds = time.perf_counter() - start
  duration_ms = audio.shape[0] * 1000.0 / sample_rate
  stats = None
  if ground_truth is not None:
    stats = stream_scoring.streaming_accuracy(
        detections, ground_truth, time_tolerance_ms, duration_ms,
        score_unknown=not settings.ignore_unknown)
  return SpeedResult(
      audio_seconds=duration_ms / 1000, processing_seconds=processing_seconds,
      model_runs=len(timed.run_ms), run_ms=tuple(timed.run_ms), stats=stats,
      clip_duration_ms=clip_duration_ms)


def _define_flags() -> None:
  # Defined only when run as a program, like the tools it builds on.
  flags.DEFINE_string('graph', None,
                      'TFLite model; default: the shipped model.')
  flags.DEFINE_string('labels', None, 'Labels file of --graph.')
  flags.DEFINE_string('wav', None, 'Recording to stream.')
  flags.DEFINE_string('ground_truth', None,
                      '"label, time_ms" lines for --wav (for the delay).')
  flags.DEFINE_string('data_dir', None,
                      'Without --wav: make a stream from this data\'s test '
                      'split.')
  flags.DEFINE_float('duration_seconds', 120,
                     'Length of a generated stream, seconds.')
  flags.DEFINE_float('chunk_ms', 100, 'Audio per process() call, ms.')
  flags.DEFINE_float('clip_stride_ms', streaming.DEFAULT_CLIP_STRIDE_MS,
                     'How often to run the model, ms.')
  flags.DEFINE_integer('num_threads', 1, 'CPU threads for the model.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  model = streaming.load_model(f.graph, f.labels, f.num_threads)
  rate = model.sample_rate
  ground_truth = None
  if f.wav:
    audio = audio_io.read_audio(f.wav, rate)
    if f.ground_truth:
      ground_truth = stream_scoring.read_ground_truth(f.ground_truth)
  elif f.data_dir:
    with tempfile.TemporaryDirectory() as tmp:
      ground_truth = gen.run(
          data_dir=f.data_dir, test_dir=None, background_dir=None,
          output_audio_file=os.path.join(tmp, 'stream.wav'),
          output_labels_file=os.path.join(tmp, 'labels.txt'),
          wanted_words=[label for label in model.labels
                        if not label.startswith('_')],
          settings=gen.StreamSettings(
              sample_rate=rate, clip_duration_ms=model.clip_duration_ms,
              test_duration_seconds=f.duration_seconds))
      audio = audio_io.read_audio(os.path.join(tmp, 'stream.wav'), rate)
  else:
    noise = np.random.default_rng(0).normal(0, 0.01, int(
        f.duration_seconds * rate))
    audio = noise.astype(np.float32)
  # The settings the streaming tools use with this model.
  settings, source = streaming.smoothing_for(model)
  result = measure(model.predict_fn, model.labels, audio, sample_rate=rate,
                   clip_duration_ms=model.clip_duration_ms,
                   ground_truth=ground_truth, chunk_ms=f.chunk_ms,
                   clip_stride_ms=f.clip_stride_ms, settings=settings)
  print(f'model {f.graph or "shipped"}, {f.num_threads} thread(s), stride '
        f'{f.clip_stride_ms:g} ms; smoothing: {settings.describe()} '
        f'({source})')
  print(result.report())


if __name__ == '__main__':
  _define_flags()
  app.run(main)
