"""Scores a stream's detections against its ground truth, as the tutorial does.

The tutorial's ground-truth file (`label, time_ms` lines, such as
`generate_streaming_test_wav` writes) and its `StreamingAccuracyStats`: each
detection is compared with the earliest ground-truth word within
`time_tolerance_ms` of it; it is *correct* if the labels agree and that word
was not matched before, otherwise *wrong*; with no word within the tolerance
it is a *false positive*. *Matched* counts the words some detection was
compared with. Detection times are the start of the triggering clip, as in
the tutorial (see `streaming`).

Shared by the streaming tools (`test_streaming_accuracy`, `streaming_roc`,
`generate_streaming_test_wav`) and the benchmarks; NumPy only, like the rest
of the runtime.
"""

import dataclasses
import functools
import math
import operator
import os
from typing import Iterable, Sequence

from absl import app
from absl import logging
import numpy as np

from kws_jax import audio_io
from kws_jax import files
from kws_jax.runtime import streaming

MS_PER_HOUR = 3_600_000.0
UNKNOWN_LABEL = streaming.UNKNOWN_LABEL

CORRECT = 'correct'
WRONG = 'wrong'
FALSE_POSITIVE = 'false_positive'


def read_ground_truth(path: str | os.PathLike[str]) -> list[tuple[str, float]]:
  """Reads `label, time_ms` lines, sorted by time.

  Lines without exactly one comma are skipped, as in the tutorial.

  Returns:
    [(label, time_ms)] in time order.

  Raises:
    ValueError: a time is not a number (the message names file and line).
  """
  entries = []
  with open(path, encoding='utf-8') as f:
    for line_number, line in enumerate(f, 1):
      pieces = line.strip().split(',')
      if len(pieces) != 2:
        continue
      try:
        time_ms = float(pieces[1])
      except ValueError:
        time_ms = math.nan
      if not math.isfinite(time_ms):
        raise ValueError(f'{path}:{line_number}: the time {pieces[1]!r} is '
                         'not a number of ms.')
      entries.append((pieces[0].strip(), time_ms))
  return sorted(entries, key=lambda entry: entry[1])


def write_ground_truth(path: str | os.PathLike[str],
                       entries: Iterable[tuple[str, float]]) -> None:
  """Writes `label, time_ms` lines, the tutorial's format."""
  files.write_atomic(path, ''.join(f'{label}, {time_ms:f}\n'
                                   for label, time_ms in entries))


@dataclasses.dataclass(frozen=True)
class StreamingStats:
  """Detections scored against ground truth.

  Every field adds up over streams (`pool`).

  Attributes:
    num_ground_truth: ground-truth words considered.
    num_matched: of those, words some detection was compared with.
    num_correct: detections of the right word (each word counted once).
    num_wrong: detections near a word but of another label, or repeated.
    num_false_positives: detections with no word within the tolerance.
    duration_ms: length of the audio scored, ms.
    outcomes: per detection, in the order given: 'correct', 'wrong' or
      'false_positive'.
    delays_ms: per correct detection, its time minus the word's time, ms.
    num_unknown_words: ground-truth words labelled `_unknown_` (words that
      are not commands).
    num_unknown_fired: of those, words a command detection (any label but
      `_unknown_`) was compared with: a non-command word that fired a
      command.
    num_command_detections: detections labelled with a command (not
      `_unknown_`), right or wrong.
  """
  num_ground_truth: int
  num_matched: int
  num_correct: int
  num_wrong: int
  num_false_positives: int
  duration_ms: float
  outcomes: tuple[str, ...] = ()
  delays_ms: tuple[float, ...] = ()
  num_unknown_words: int = 0
  num_unknown_fired: int = 0
  num_command_detections: int = 0

  def _percent(self, count: int) -> float:
    if self.num_ground_truth == 0:
      return math.nan
    return 100.0 * count / self.num_ground_truth

  @property
  def matched_percent(self) -> float:
    return self._percent(self.num_matched)

  @property
  def correct_percent(self) -> float:
    """Correct-detection rate: correct detections per ground-truth word, %."""
    return self._percent(self.num_correct)

  @property
  def wrong_percent(self) -> float:
    return self._percent(self.num_wrong)

  @property
  def false_positive_percent(self) -> float:
    return self._percent(self.num_false_positives)

  @property
  def num_false_alarms(self) -> int:
    """Detections that were not correct (wrong ones and false positives)."""
    return self.num_wrong + self.num_false_positives

  @property
  def false_alarm_percent(self) -> float:
    """Wrong detections plus false positives, % of the words."""
    return self._percent(self.num_false_alarms)

  @property
  def false_alarms_per_hour(self) -> float:
    if self.duration_ms <= 0:
      return math.nan
    return self.num_false_alarms * MS_PER_HOUR / self.duration_ms

  @property
  def unknown_fired_percent(self) -> float:
    """Share of non-command words that fired a command, %."""
    if self.num_unknown_words == 0:
      return math.nan
    return 100.0 * self.num_unknown_fired / self.num_unknown_words

  @property
  def command_detections_per_hour(self) -> float:
    if self.duration_ms <= 0:
      return math.nan
    return self.num_command_detections * MS_PER_HOUR / self.duration_ms

  @property
  def mean_delay_ms(self) -> float:
    """Mean of `delays_ms`; NaN without correct detections."""
    return float(np.mean(self.delays_ms)) if self.delays_ms else math.nan

  def summary(self) -> str:
    """The tutorial's one-line summary."""
    if self.num_ground_truth == 0:
      # The commands-only view of a stream without commands: what fired at
      # its non-command words is wrong.
      wrong = f', {self.num_wrong} wrong' if self.num_wrong else ''
      return (f'No ground truth yet, {self.num_false_positives} false '
              f'positives{wrong}')
    return (f'{self.matched_percent:.1f}% matched, '
            f'{self.correct_percent:.1f}% correctly, '
            f'{self.wrong_percent:.1f}% wrongly, '
            f'{self.false_positive_percent:.1f}% false positives')


def pool(stats: Sequence[StreamingStats]) -> StreamingStats:
  """Several streams' statistics as those of one: every field summed.

  Counts and durations add up and the per-detection tuples follow each
  other in stream order, so the percentages are of all the streams' words
  and one stream's statistics pool to themselves.

  Raises:
    ValueError: `stats` is empty.
  """
  if not stats:
    raise ValueError('No streams to pool.')
  return StreamingStats(**{
      field.name: functools.reduce(operator.add,
                                   (getattr(s, field.name) for s in stats))
      for field in dataclasses.fields(StreamingStats)})


def streaming_accuracy(detections: Sequence[streaming.Detection],
                       ground_truth: Sequence[tuple[str, float]],
                       time_tolerance_ms: float, duration_ms: float,
                       up_to_time_ms: float | None = None,
                       score_unknown: bool = True) -> StreamingStats:
  """Scores detections against ground truth (tutorial semantics).

  With `score_unknown=False` (the commands-only view, for a recogniser with
  `ignore_unknown`), `_unknown_` detections are left out and the words to
  find are the command words alone; a command fired at a non-command word
  is still wrong, and counted in `num_unknown_fired`.

  Args:
    detections: in time order; only `.label` and `.time_ms` are used.
    ground_truth: (label, time_ms) pairs, any order.
    time_tolerance_ms: largest |detection time - word time| for a match.
    duration_ms: audio length, for false alarms per hour.
    up_to_time_ms: score as if the stream ended here: only words up to
      `up_to_time_ms + time_tolerance_ms` count (the tutorial's running
      figures); None scores everything.
    score_unknown: False for the commands-only view (above).

  Returns:
    The statistics.
  """
  truth = sorted(ground_truth, key=lambda entry: entry[1])
  latest_possible_ms = (math.inf if up_to_time_ms is None else
                        up_to_time_ms + time_tolerance_ms)
  num_ground_truth = sum(
      1 for label, t in truth if t <= latest_possible_ms and
      (score_unknown or label != UNKNOWN_LABEL))
  if not score_unknown:
    detections = [d for d in detections if d.label != UNKNOWN_LABEL]
  matched = set()  # Indices into `truth`.
  fired = set()  # Indices of `_unknown_` words a command detection met.
  outcomes, delays = [], []
  num_commands = 0
  for detection in detections:
    is_command = detection.label != UNKNOWN_LABEL
    num_commands += is_command
    outcome = FALSE_POSITIVE
    for index, (label, time_ms) in enumerate(truth):
      if (time_ms > detection.time_ms + time_tolerance_ms or
          time_ms > latest_possible_ms):
        break
      if time_ms < detection.time_ms - time_tolerance_ms:
        continue
      # Only the earliest word within the tolerance is considered.
      if label == detection.label and index not in matched:
        outcome = CORRECT
        delays.append(detection.time_ms - time_ms)
      else:
        outcome = WRONG
      if label == UNKNOWN_LABEL and is_command:
        fired.add(index)
      matched.add(index)
      break
    outcomes.append(outcome)
  return StreamingStats(
      num_ground_truth=num_ground_truth,
      num_matched=sum(score_unknown or truth[i][0] != UNKNOWN_LABEL
                      for i in matched),
      num_correct=outcomes.count(CORRECT), num_wrong=outcomes.count(WRONG),
      num_false_positives=outcomes.count(FALSE_POSITIVE),
      duration_ms=float(duration_ms), outcomes=tuple(outcomes),
      delays_ms=tuple(delays),
      num_unknown_words=sum(1 for label, t in truth
                            if label == UNKNOWN_LABEL and
                            t <= latest_possible_ms),
      num_unknown_fired=len(fired), num_command_detections=num_commands)


def format_report(stats: StreamingStats, clip_duration_ms: float) -> str:
  """The summary line, false alarms per hour and the mean delay."""
  lines = [stats.summary(),
           f'{stats.num_false_alarms} false alarms (wrong + false positives) '
           f'in {stats.duration_ms / 60_000:.1f} min: '
           f'{stats.false_alarms_per_hour:.1f} per hour',
           f'{stats.num_command_detections} command detections: '
           f'{stats.command_detections_per_hour:.1f} per hour']
  if stats.num_unknown_words:
    lines.append(f'{stats.num_unknown_fired} of {stats.num_unknown_words} '
                 'non-command words fired a command '
                 f'({stats.unknown_fired_percent:.1f}%)')
  if stats.delays_ms:
    lines.append(
        f'mean delay {stats.mean_delay_ms:.0f} ms from word start to the '
        f'detecting clip\'s start; its audio is complete '
        f'{clip_duration_ms:.0f} ms later, '
        f'{stats.mean_delay_ms + clip_duration_ms:.0f} ms after word start')
  return '\n'.join(lines)


def evaluate_stream(predict_fn: streaming.PredictFn, labels: Sequence[str],
                    audio: np.ndarray, ground_truth: Sequence[tuple[str,
                                                                    float]],
                    *, sample_rate: int, clip_duration_ms: float,
                    clip_stride_ms: float = streaming.DEFAULT_CLIP_STRIDE_MS,
                    settings: streaming.SmoothingSettings = (
                        streaming.SmoothingSettings()),
                    time_tolerance_ms: float = 750,
                    verbose: bool = False) -> tuple[
                        list[streaming.Detection], StreamingStats]:
  """Streams `audio` through the model and scores the detections.

  Args:
    predict_fn: clip float32 [clip_samples] → scores [C].
    labels: class names.
    audio: float32 [T] at `sample_rate`.
    ground_truth: (label, time_ms) pairs.
    sample_rate: Hz.
    clip_duration_ms: the model's input length, ms.
    clip_stride_ms: ms between model runs.
    settings: `RecognizeCommands` settings.
    time_tolerance_ms: see `streaming_accuracy`.
    verbose: log each detection with its outcome and the running figures.

  Returns:
    (detections, statistics).
  """
  detections = streaming.recognize_array(
      predict_fn, audio, labels, sample_rate=sample_rate,
      clip_duration_ms=clip_duration_ms, clip_stride_ms=clip_stride_ms,
      **dataclasses.asdict(settings))
  duration_ms = audio.shape[0] * 1000.0 / sample_rate
  score_unknown = not settings.ignore_unknown
  stats = streaming_accuracy(detections, ground_truth, time_tolerance_ms,
                             duration_ms, score_unknown=score_unknown)
  if verbose:
    for k, detection in enumerate(detections):
      running = streaming_accuracy(
          detections[:k + 1], ground_truth, time_tolerance_ms,
          detection.time_ms, up_to_time_ms=detection.time_ms,
          score_unknown=score_unknown)
      logging.info('%.0fms %s: %.3f (%s)', detection.time_ms, detection.label,
                   detection.score,
                   running.outcomes[-1].replace('_', ' ').title())
      logging.info('%s', running.summary())
  return detections, stats


def load_checked_model(graph: str | None, labels: str | None,
                       clip_duration_ms: float,
                       num_threads: int = 1) -> streaming.LoadedModel:
  """Loads the model and checks `clip_duration_ms` against its input.

  Raises:
    app.UsageError: they differ by more than a sample (the tools' flag is
      wrong); the message says which `--clip_duration_ms` to pass.
    ValueError: the model cannot be loaded (`inference.ModelError`).
  """
  model = streaming.load_model(graph or None, labels or None, num_threads)
  if abs(model.clip_duration_ms - clip_duration_ms) > 1000.0 / (
      model.sample_rate):
    raise app.UsageError(
        f'--clip_duration_ms={clip_duration_ms:g} but the model takes '
        f'{model.clip_duration_ms:g} ms clips; pass '
        f'--clip_duration_ms={model.clip_duration_ms:g}.')
  return model


def load_inputs(graph: str | None, labels: str | None,
                clip_duration_ms: float, num_threads: int, wav: str,
                ground_truth: str) -> tuple[streaming.LoadedModel, np.ndarray,
                                            list[tuple[str, float]]]:
  """A stream to score: the model, the audio at its rate, the ground truth.

  Raises:
    app.UsageError: see `load_checked_model`.
    ValueError, OSError: a file is missing or unreadable (`ModelError` and
      `AudioError` included); the message names it.
  """
  model = load_checked_model(graph, labels, clip_duration_ms, num_threads)
  audio = audio_io.read_audio(wav, model.sample_rate)
  return model, audio, read_ground_truth(ground_truth)
