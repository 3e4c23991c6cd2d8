"""Choosing streaming settings from a model's scores on streams, run once.

A model's scores at every stride of a stream (`score_array`) are kept and
replayed through `RecognizeCommands` with each setting to try
(`detect_from_scores`), which gives the detections a live
`streaming.StreamingRecognizer` would give with that setting; each
setting's detections are scored on every stream (`RocPoint`, `sweep`),
and the rules an app's settings are chosen by live here: within the
false-alarm budget on every stream and the unseen-words budget
(`within_budgets`, `choose`), then a threshold per label
(`refine_class_thresholds`). `streaming_roc` is the tool around them.

Replaying is fast: `window_averages` averages every smoothing window at
once, to the bit as `RecognizeCommands` averages its queue, and rule 3
(`RecognizeCommands.decide`) runs only where a top score clears its
label's threshold, where alone anything can change.
"""

import csv
import dataclasses
import functools
import itertools
from typing import Iterable, Sequence

from absl import logging
import numpy as np

from kws_jax import files
from kws_jax.runtime import stream_scoring
from kws_jax.runtime import streaming

# Finer at the top: label smoothing (0.1 in the default recipe) keeps a
# model's scores under about 0.9, and averaging lowers them further, so the
# thresholds an app needs to keep words outside the vocabulary from firing
# lie between 0.7 and 0.9 (README, "Streams").
DEFAULT_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
# The false alarms an app may make, % of the words spoken: the streaming
# issue's targets (at most 3% wrong detections and 3% false positives).
DEFAULT_MAX_FALSE_ALARM_PERCENT = 3.0
# The share of non-command words (ones the model never heard) that may fire
# a command, %: the streaming issue's target.
DEFAULT_MAX_UNSEEN_FIRED_PERCENT = 1.0


def score_array(predict_fn: streaming.PredictFn | streaming.SteppedModel,
                audio: np.ndarray, sample_rate: int = 16000,
                clip_duration_ms: float = 1000,
                clip_stride_ms: float = streaming.DEFAULT_CLIP_STRIDE_MS
                ) -> tuple[np.ndarray, np.ndarray]:
  """Runs the model over a recording at every stride, without smoothing.

  Args:
    predict_fn: as for `streaming.StreamingRecognizer`.
    audio: float32 [T] at `sample_rate`.
    sample_rate: Hz.
    clip_duration_ms: the model's input length, ms.
    clip_stride_ms: ms between model runs.

  Returns:
    (times_ms float64 [N], scores float32 [N, C]): each run's clip start in ms
    and its scores; C = 0 when no clip fits.
  """
  clip_samples, stride_samples = streaming.clip_and_stride(
      clip_duration_ms, clip_stride_ms, sample_rate)
  results = streaming.steps_for(predict_fn, clip_samples,
                                stride_samples).push(audio)
  if not results:
    return np.zeros([0]), np.zeros([0, 0], np.float32)
  times = [start * 1000.0 / sample_rate for start, _ in results]
  return np.asarray(times, np.float64), np.stack([s for _, s in results])


@dataclasses.dataclass(frozen=True, eq=False)
class WindowAverages:
  """Every stride's smoothing window, averaged, as rule 3 reads it.

  Attributes:
    times_ms: float [N], each result's time.
    top_index: int [N], the label with the highest averaged score.
    top_score: float64 [N], its averaged score.
    answers: bool [N], whether the window holds enough results for an
      answer (`RecognizeCommands` rule 2).
    average_window_ms, minimum_count: the settings they were made with.
    num_labels: C, the scores' width.
  """
  times_ms: np.ndarray
  top_index: np.ndarray
  top_score: np.ndarray
  answers: np.ndarray
  average_window_ms: float
  minimum_count: int
  num_labels: int


def window_averages(times_ms: np.ndarray, scores: np.ndarray,
                    average_window_ms: float, minimum_count: int
                    ) -> WindowAverages:
  """Averages each result's window as `RecognizeCommands` does, at once.

  The window of result i holds the results from the first whose time is no
  more than `average_window_ms` before it; the sum adds them in time order
  in float64, as `np.mean` does over the recogniser's queue, so the
  averages (and with them every decision) are the same to the bit.

  Raises:
    ValueError: times that go backwards, or not one score row per time.
  """
  times = np.asarray(times_ms, np.float64).reshape(-1)
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 2 or scores.shape[0] != times.shape[0]:
    raise ValueError(f'Expected one row of scores per time ({times.shape[0]} '
                     f'times), got scores of shape {scores.shape}.')
  if np.any(np.diff(times) < 0):
    raise ValueError('Results must be in increasing time order, as the '
                     'recogniser is fed them.')
  count = times.shape[0]
  last = np.arange(count)
  first = np.searchsorted(times, times - float(average_window_ms),
                          side='left')
  total = scores[first].copy()
  for offset in range(1, int(np.max(last - first, initial=0)) + 1):
    rows = first + offset
    inside = rows <= last
    total[inside] += scores[rows[inside]]
  held = last - first + 1
  average = total / held[:, None]
  top_index = np.argmax(average, axis=1) if count else np.zeros(0, int)
  answers = ((held >= minimum_count) &
             (times - times[first] >= float(average_window_ms) / 4))
  return WindowAverages(times, top_index, average[last, top_index], answers,
                        float(average_window_ms), int(minimum_count),
                        scores.shape[1])


def detect_from_averages(averages: WindowAverages, labels: Sequence[str],
                         settings: streaming.SmoothingSettings
                         ) -> list[streaming.Detection]:
  """The detections of `settings` from windows averaged with its window and
  count: rule 3 (`RecognizeCommands.decide`) at every result whose top
  score clears its label's threshold, the only ones where anything can
  change.

  Raises:
    ValueError: averages of other settings, or of another number of
      labels.
  """
  if averages.num_labels != len(labels) and averages.times_ms.shape[0]:
    raise ValueError(f'Expected {len(labels)} scores (one per label), got '
                     f'{averages.num_labels}.')
  if (averages.average_window_ms != settings.average_window_ms or
      averages.minimum_count != settings.minimum_count):
    raise ValueError(
        f'Windows averaged over {averages.average_window_ms:g} ms with '
        f'minimum count {averages.minimum_count} cannot be replayed with '
        f'{settings.describe()}.')
  smoother = settings.make(labels)
  thresholds = np.asarray(smoother.thresholds, np.float64)
  clear = averages.answers & (
      averages.top_score > thresholds[averages.top_index])
  detections = []
  for i in np.flatnonzero(clear):
    index, score = int(averages.top_index[i]), float(averages.top_score[i])
    time_ms = float(averages.times_ms[i])
    result = smoother.decide(index, score, time_ms)
    if result.is_new_command and (
        result.found_command != streaming.SILENCE_LABEL):
      detections.append(
          streaming.Detection(time_ms, result.found_command, score))
  return detections


def detect_from_scores(times_ms: np.ndarray, scores: np.ndarray,
                       labels: Sequence[str],
                       settings: streaming.SmoothingSettings = (
                           streaming.SmoothingSettings())
                       ) -> list[streaming.Detection]:
  """Replays cached per-stride scores through `RecognizeCommands`.

  Args:
    times_ms: float [N], from `score_array`.
    scores: float [N, C], from `score_array`.
    labels: class names, C of them.
    settings: smoothing settings.

  Returns:
    The detections `streaming.recognize_array` gives with the same
    settings.
  """
  return detect_from_averages(
      window_averages(times_ms, scores, settings.average_window_ms,
                      settings.minimum_count), labels, settings)


CSV_FIELDS = ('average_window_ms', 'suppression_ms', 'detection_threshold',
              'minimum_count', 'ignore_unknown', 'num_ground_truth',
              'num_correct', 'num_wrong', 'num_false_positives',
              'matched_percent', 'correct_percent',
              'wrong_percent', 'false_positive_percent',
              'false_alarms_per_hour', 'mean_delay_ms',
              'unknown_fired_percent', 'worst_false_alarm_percent',
              'unseen_fired_percent', 'class_thresholds', 'operating_point',
              'chosen')


@dataclasses.dataclass(frozen=True)
class RocPoint:
  """One setting and how it scored.

  Attributes:
    settings: the `RecognizeCommands` settings.
    streams: its statistics on each stream, in the order given.
    unseen: its statistics on each stream of unseen non-command words
      (each scored by the model that never heard them); () without them.
    operating_point: the settings in use.
    chosen: the point chosen: `mark_chosen`'s, or the point
      `refine_class_thresholds` made from it.
    on_grid: one of the settings tried; the settings in use, when added
      only to be shown beside them, and a refined point are not, and
      `mark_chosen` never picks them (a choice must not inherit settings
      chosen on other streams).
  """
  settings: streaming.SmoothingSettings
  streams: tuple[stream_scoring.StreamingStats, ...]
  unseen: tuple[stream_scoring.StreamingStats, ...] = ()
  operating_point: bool = False
  chosen: bool = False
  on_grid: bool = True

  @functools.cached_property
  def stats(self) -> stream_scoring.StreamingStats:
    """The streams pooled (`stream_scoring.pool`): the figures reported."""
    return stream_scoring.pool(self.streams)

  @property
  def worst_false_alarm_percent(self) -> float:
    """The largest false-alarm share of any one stream (% of its words);
    NaN when a stream has no words."""
    return float(np.max([s.false_alarm_percent for s in self.streams]))

  @property
  def unseen_fired_percent(self) -> float:
    """Share of the unseen non-command words that fired a command, over
    all their streams (%); NaN without them."""
    if not self.unseen:
      return float('nan')
    return stream_scoring.pool(self.unseen).unknown_fired_percent

  def row(self) -> dict[str, float | int | bool]:
    return {
        'average_window_ms': self.settings.average_window_ms,
        'suppression_ms': self.settings.suppression_ms,
        'detection_threshold': self.settings.detection_threshold,
        'minimum_count': self.settings.minimum_count,
        'ignore_unknown': self.settings.ignore_unknown,
        'num_ground_truth': self.stats.num_ground_truth,
        'num_correct': self.stats.num_correct,
        'num_wrong': self.stats.num_wrong,
        'num_false_positives': self.stats.num_false_positives,
        'matched_percent': round(self.stats.matched_percent, 4),
        'correct_percent': round(self.stats.correct_percent, 4),
        'wrong_percent': round(self.stats.wrong_percent, 4),
        'false_positive_percent': round(self.stats.false_positive_percent,
                                        4),
        'false_alarms_per_hour': round(self.stats.false_alarms_per_hour, 4),
        'mean_delay_ms': round(self.stats.mean_delay_ms, 2),
        'unknown_fired_percent': round(self.stats.unknown_fired_percent, 4),
        'worst_false_alarm_percent': round(self.worst_false_alarm_percent,
                                           4),
        'unseen_fired_percent': round(self.unseen_fired_percent, 4),
        'class_thresholds': ' '.join(
            f'{label}={value!r}'
            for label, value in self.settings.class_thresholds),
        'operating_point': self.operating_point,
        'chosen': self.chosen,
    }


@dataclasses.dataclass(frozen=True, eq=False)
class ScoredStream:
  """A stream's model scores, computed once, and what they are scored on.

  Attributes:
    times_ms: float [N], from `score_array`.
    scores: float [N, C], from `score_array`.
    ground_truth: (label, time_ms) pairs.
    duration_ms: audio length, ms.
  """
  times_ms: np.ndarray
  scores: np.ndarray
  ground_truth: Sequence[tuple[str, float]]
  duration_ms: float
  _averages: dict[tuple[float, int], WindowAverages] = (
      dataclasses.field(default_factory=dict, repr=False))

  def detect(self, labels: Sequence[str],
             settings: streaming.SmoothingSettings
             ) -> list[streaming.Detection]:
    """`detect_from_scores`, averaging each window length once."""
    key = (settings.average_window_ms, settings.minimum_count)
    if key not in self._averages:
      self._averages[key] = window_averages(
          self.times_ms, self.scores, *key)
    return detect_from_averages(self._averages[key], labels, settings)


def sweep(streams: Sequence[ScoredStream], labels: Sequence[str],
          settings: Iterable[streaming.SmoothingSettings], *,
          time_tolerance_ms: float,
          operating_point: streaming.SmoothingSettings | None = None,
          unseen: Sequence[ScoredStream] = ()) -> list[RocPoint]:
  """Scores each setting on every stream's cached per-stride scores.

  Args:
    streams: the streams, scored by the model.
    labels: class names (of every model).
    settings: the settings to try.
    time_tolerance_ms: see `stream_scoring.streaming_accuracy`.
    operating_point: the setting to flag; added if not among `settings`
      (then not `on_grid`).
    unseen: streams of non-command words, each scored by a model that
      never heard them (`RocPoint.unseen`).

  Returns:
    One point per setting, in order (the operating point last if added).
  """
  settings = list(settings)
  points = [_score(setting, streams, unseen, labels, time_tolerance_ms,
                   setting == operating_point)
            for setting in settings]
  if operating_point is not None and operating_point not in settings:
    points.append(dataclasses.replace(
        _score(operating_point, streams, unseen, labels, time_tolerance_ms,
               True), on_grid=False))
  return points


def _score(setting: streaming.SmoothingSettings,
           streams: Sequence[ScoredStream], unseen: Sequence[ScoredStream],
           labels: Sequence[str], time_tolerance_ms: float,
           operating_point: bool = False) -> RocPoint:
  """One setting on every stream (see `sweep`)."""

  def on(stream):
    return stream_scoring.streaming_accuracy(
        stream.detect(labels, setting), stream.ground_truth,
        time_tolerance_ms, stream.duration_ms,
        score_unknown=not setting.ignore_unknown)

  return RocPoint(setting, tuple(on(s) for s in streams),
                  tuple(on(s) for s in unseen), operating_point)


def within_budgets(point: RocPoint,
                   max_false_alarm_percent: float = (
                       DEFAULT_MAX_FALSE_ALARM_PERCENT),
                   max_unseen_fired_percent: float = (
                       DEFAULT_MAX_UNSEEN_FIRED_PERCENT)) -> bool:
  """Whether a point keeps the false-alarm budget on every stream and, when
  scored on unseen words, the unseen-words budget (see `choose`)."""
  return (point.worst_false_alarm_percent <= max_false_alarm_percent + 1e-9
          and (not point.unseen or point.unseen_fired_percent <=
               max_unseen_fired_percent + 1e-9))


def refine_class_thresholds(
    start: RocPoint, streams: Sequence[ScoredStream], labels: Sequence[str],
    thresholds: Sequence[float], *, time_tolerance_ms: float,
    unseen: Sequence[ScoredStream] = (),
    max_false_alarm_percent: float = DEFAULT_MAX_FALSE_ALARM_PERCENT,
    max_unseen_fired_percent: float = DEFAULT_MAX_UNSEEN_FIRED_PERCENT
) -> RocPoint:
  """Gives labels thresholds of their own where that finds more words.

  Coordinate ascent from `start` (the grid's choice): each round tries
  every label at every threshold in `thresholds`, and takes the one change
  with the most correct detections over all streams among those that keep
  both budgets (`within_budgets`) and add at least one (ties: fewer false
  alarms, then fewer unseen words fired, then the higher threshold); it
  stops when no change adds one. Labels whose threshold ends equal to
  `start`'s `detection_threshold` are left out of `class_thresholds`.

  Returns:
    The refined point (`chosen` as `start`'s); `start` itself when it
    keeps no budget (nothing to keep) or nothing adds a detection.
  """
  if not within_budgets(start, max_false_alarm_percent,
                        max_unseen_fired_percent):
    return start
  base = start.settings.detection_threshold
  own = dict(start.settings.class_thresholds)
  best = start
  while True:
    current = {label: own.get(label, base) for label in labels}
    candidates = []
    for label, threshold in itertools.product(labels, thresholds):
      if threshold == current[label]:
        continue
      # Labels at the common threshold drop out (`SmoothingSettings`).
      setting = dataclasses.replace(
          start.settings,
          class_thresholds=dict(current, **{label: threshold}))
      point = _score(setting, streams, unseen, labels, time_tolerance_ms)
      if (point.stats.num_correct > best.stats.num_correct and
          within_budgets(point, max_false_alarm_percent,
                         max_unseen_fired_percent)):
        candidates.append((point, threshold))
    if not candidates:
      return (best if best is start else
              dataclasses.replace(best, chosen=start.chosen, on_grid=False))
    best, _ = max(candidates, key=lambda c: (
        c[0].stats.num_correct, -c[0].stats.num_false_alarms,
        -np.nan_to_num(c[0].unseen_fired_percent), c[1]))
    own = dict(best.settings.class_thresholds)
    logging.info('Refined: %s, %d correct.', best.settings.describe(),
                 best.stats.num_correct)


def choose(points: Sequence[RocPoint],
           max_false_alarm_percent: float = DEFAULT_MAX_FALSE_ALARM_PERCENT,
           max_unseen_fired_percent: float = DEFAULT_MAX_UNSEEN_FIRED_PERCENT
           ) -> RocPoint:
  """The setting an app should use: false-alarm budgets, then detections.

  Among the points whose false alarms (wrong detections plus false
  positives) are at most `max_false_alarm_percent` of the words on every
  stream (the worst stream decides) and, where the points were scored on
  unseen non-command words (`RocPoint.unseen`), whose share of those words
  that fire a command is at most `max_unseen_fired_percent`, the one with
  the most correct detections over all streams; ties go to fewer false
  alarms, then to the higher threshold. When no point keeps to both
  budgets: of those within the false-alarm budget, the one that fires at
  the fewest unseen words (ties: more correct detections); when none is
  within that either, the one whose worst stream has the fewest false
  alarms, as a share of its words (ties: more correct detections). With
  one stream, the budget is that stream's. Every stream needs words to
  find (`streaming_roc.run` checks).
  """
  if not points:
    raise ValueError('No points to choose from.')
  within = [p for p in points
            if p.worst_false_alarm_percent <= max_false_alarm_percent + 1e-9]
  quiet = [p for p in within
           if within_budgets(p, max_false_alarm_percent,
                             max_unseen_fired_percent)]
  if quiet:
    return max(quiet, key=lambda p: (
        round(p.stats.correct_percent, 6), -p.stats.num_false_alarms,
        p.settings.detection_threshold))
  if within:
    return max(within, key=lambda p: (
        -p.unseen_fired_percent, round(p.stats.correct_percent, 6)))
  return max(points, key=lambda p: (
      -p.worst_false_alarm_percent, round(p.stats.correct_percent, 6)))


def mark_chosen(points: Sequence[RocPoint],
                max_false_alarm_percent: float = (
                    DEFAULT_MAX_FALSE_ALARM_PERCENT),
                max_unseen_fired_percent: float = (
                    DEFAULT_MAX_UNSEEN_FIRED_PERCENT)) -> list[RocPoint]:
  """`points` with the one `choose` picks among those `on_grid` flagged."""
  best = choose([p for p in points if p.on_grid], max_false_alarm_percent,
                max_unseen_fired_percent)
  return [dataclasses.replace(p, chosen=p is best) for p in points]


def write_csv(points: Sequence[RocPoint], path: str) -> None:
  with files.atomic_path(path) as tmp, open(tmp, 'w', newline='',
                                            encoding='utf-8') as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for point in points:
      writer.writerow(point.row())
