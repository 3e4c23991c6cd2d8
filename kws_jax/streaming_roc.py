r"""Sweeps the streaming settings and draws correct detections vs false alarms.

Runs the model once over each stream, keeps the scores of every stride,
then replays them through `RecognizeCommands` for each combination of
`--thresholds`, `--suppression_ms` and `--average_window_ms`, scoring each
against the ground truth as `test_streaming_accuracy` does:

  python -m kws_jax.streaming_roc --wav=/tmp/streaming_test.wav \
      --ground_truth=/tmp/streaming_test_labels.txt \
      --thresholds=0.5,0.6,0.7,0.8,0.9 --output_dir=/tmp/roc

`--wav` and `--ground_truth` take several streams as comma lists, in the
same order (e.g. streams of different speakers,
`generate_streaming_test_wav --speaker_group`). Each setting is then scored
on every stream, and the figures reported are the streams pooled: their
counts summed, so percentages are of all their words.

Writes `roc.csv` (one row per setting) and `roc.png`: the correct-detection
rate (correct detections per ground-truth word, %) against false alarms
(wrong detections and false positives) per hour, one curve per
(average window, suppression) pair. Two points are marked: the settings in
use (the model's calibrated ones, else the tutorial's, as the other tools
take them; flags override) and the chosen one: within a false-alarm budget
(`--max_false_alarm_percent`, wrong detections plus false positives as a
share of the words, 3% by default) on *every* stream, the setting with the
most correct detections (`choose`). The worst stream decides, so a choice
made on several groups of speakers keeps to the budget for each group, not
only for their pool. For both points the figures on each stream are
printed, to show the spread.

Streams of non-command words tell how often talk that holds no command
fires one; but the model has heard the data's non-command words, and a
user's are any words. `--unseen_words_wav` (with `--unseen_words_ground_truth`
and `--unseen_words_graph`, one per stream) takes streams of words that
their own model never heard: an unseen-words fold's left-out words
(`generate_streaming_test_wav --unseen_words_fold=i/k
--unknown_percentage=100`), each scored by the model trained without them
(`--config.unseen_words_fold=i/k`, the same recipe). Each setting is scored
on them too, pooled over the folds, and the chosen point must also keep the
share of those words that fire a command within
`--max_unseen_fired_percent` (1% by default, the streaming issue's target).

`--per_label_thresholds` then refines the chosen point label by label:
words outside the vocabulary are heard as some commands far more than
others (in this project's data, cat as yes), so one threshold for all must
be as high as the most tempted label needs. Starting from the grid's
choice, each round tries every label at every one of `--thresholds` and
keeps the one change that adds the most correct detections while keeping
both budgets, until no change adds any (`refine_class_thresholds`); the
result has at least the grid choice's correct detections.

To calibrate a model, run it on streams of *validation* words
(`generate_streaming_test_wav --split=validation`, one per speaker group)
with `--write_smoothing`: the chosen settings go beside the model as
`<stem>_smoothing.json`, which `test_streaming_accuracy`, `serve` and
`listen` then use unless flags say otherwise
(experiments/streaming_calibration.sh).
"""

import csv
import dataclasses
import functools
import itertools
import os
import sys
from typing import Iterable, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from kws_jax import audio_io
from kws_jax import files
from kws_jax import plotting
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
    chosen: the point `choose` picks.
  """
  settings: streaming.SmoothingSettings
  streams: tuple[stream_scoring.StreamingStats, ...]
  unseen: tuple[stream_scoring.StreamingStats, ...] = ()
  operating_point: bool = False
  chosen: bool = False

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
            f'{label}={value:g}'
            for label, value in self.settings.class_thresholds),
        'operating_point': self.operating_point,
        'chosen': self.chosen,
    }


@dataclasses.dataclass(frozen=True, eq=False)
class ScoredStream:
  """A stream's model scores, computed once, and what they are scored on.

  Attributes:
    times_ms: float [N], from `streaming.score_array`.
    scores: float [N, C], from `streaming.score_array`.
    ground_truth: (label, time_ms) pairs.
    duration_ms: audio length, ms.
  """
  times_ms: np.ndarray
  scores: np.ndarray
  ground_truth: Sequence[tuple[str, float]]
  duration_ms: float
  _averages: dict[tuple[float, int], streaming.WindowAverages] = (
      dataclasses.field(default_factory=dict, repr=False))

  def detect(self, labels: Sequence[str],
             settings: streaming.SmoothingSettings
             ) -> list[streaming.Detection]:
    """`streaming.detect_from_scores`, averaging each window length once."""
    key = (settings.average_window_ms, settings.minimum_count)
    if key not in self._averages:
      self._averages[key] = streaming.window_averages(
          self.times_ms, self.scores, *key)
    return streaming.detect_from_averages(self._averages[key], labels,
                                          settings)


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
    operating_point: the setting to flag; added if not among `settings`.
    unseen: streams of non-command words, each scored by a model that
      never heard them (`RocPoint.unseen`).

  Returns:
    One point per setting, in order (the operating point last if added).
  """
  settings = list(settings)
  if operating_point is not None and operating_point not in settings:
    settings.append(operating_point)

  return [_score(setting, streams, unseen, labels, time_tolerance_ms,
                 setting == operating_point)
          for setting in settings]


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
      trial = dict(current, **{label: threshold})
      setting = dataclasses.replace(
          start.settings, class_thresholds=tuple(
              (name, value) for name, value in trial.items()
              if value != base))
      point = _score(setting, streams, unseen, labels, time_tolerance_ms)
      if (point.stats.num_correct > best.stats.num_correct and
          within_budgets(point, max_false_alarm_percent,
                         max_unseen_fired_percent)):
        candidates.append((point, threshold))
    if not candidates:
      return (best if best is start else
              dataclasses.replace(best, chosen=start.chosen))
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
  find (`run` checks).
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
  """`points` with the chosen one (`choose`) flagged."""
  best = choose(points, max_false_alarm_percent, max_unseen_fired_percent)
  return [dataclasses.replace(p, chosen=p is best) for p in points]


def write_csv(points: Sequence[RocPoint], path: str) -> None:
  with files.atomic_path(path) as tmp, open(tmp, 'w', newline='',
                                            encoding='utf-8') as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for point in points:
      writer.writerow(point.row())


def plot_roc(points: Sequence[RocPoint], path: str, title: str = '') -> None:
  """Draws correct-detection rate (%) against false alarms per hour."""
  fig = plotting.new_figure(7, 5, dpi=120)
  ax = fig.add_subplot()
  curves = {}
  for point in points:
    if point.settings.class_thresholds:
      continue  # Not on a threshold curve; marked below when chosen.
    key = (point.settings.average_window_ms, point.settings.suppression_ms,
           point.settings.minimum_count)
    curves.setdefault(key, []).append(point)
  for (window, suppression, count), curve in curves.items():
    curve = sorted(curve, key=lambda p: p.settings.detection_threshold)
    x = [p.stats.false_alarms_per_hour for p in curve]
    y = [p.stats.correct_percent for p in curve]
    label = f'window {window:g} ms, suppression {suppression:g} ms'
    if len({k[2] for k in curves}) > 1:
      label += f', min count {count}'
    (line,) = ax.plot(x, y, marker='o', markersize=3, label=label)
    for p, xi, yi in zip(curve, x, y):
      ax.annotate(f'{p.settings.detection_threshold:g}', (xi, yi),
                  textcoords='offset points', xytext=(3, 3), fontsize=7,
                  color=line.get_color())
  for point in points:
    if point.operating_point:
      ax.plot(point.stats.false_alarms_per_hour, point.stats.correct_percent,
              marker='*', markersize=16, color='crimson', linestyle='none',
              label=(f'in use: threshold '
                     f'{point.settings.detection_threshold:g}'))
    if point.chosen:
      ax.plot(point.stats.false_alarms_per_hour, point.stats.correct_percent,
              marker='D', markersize=10, markerfacecolor='none',
              markeredgewidth=2, color='forestgreen', linestyle='none',
              label=(f'chosen: {point.settings.describe()}'))
  ax.set_xlabel('false alarms per hour (wrong + false positives)')
  ax.set_ylabel('correct detections (% of words)')
  ax.set_title(title or 'Streaming ROC (labels: detection threshold)')
  # Margins keep points on the axes (0 false alarms, 100%) visible.
  x_max = max([1.0] + [p.stats.false_alarms_per_hour for p in points
                       if np.isfinite(p.stats.false_alarms_per_hour)])
  ax.set_xlim(-0.03 * x_max, 1.08 * x_max)
  ax.set_ylim(-2, 105)
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8, loc='lower right')
  fig.tight_layout()
  plotting.save_png(fig, path)


def run(predict_fn: streaming.PredictFn, labels: Sequence[str],
        streams: Sequence[tuple[np.ndarray, Sequence[tuple[str, float]]]],
        *, sample_rate: int, clip_duration_ms: float, clip_stride_ms: float,
        thresholds: Sequence[float], suppressions_ms: Sequence[float],
        average_windows_ms: Sequence[float], minimum_count: int,
        in_use: streaming.SmoothingSettings, time_tolerance_ms: float,
        output_dir: str,
        max_false_alarm_percent: float = DEFAULT_MAX_FALSE_ALARM_PERCENT,
        unseen_words: Sequence[tuple[streaming.PredictFn, np.ndarray,
                                     Sequence[tuple[str, float]]]] = (),
        max_unseen_fired_percent: float = DEFAULT_MAX_UNSEEN_FIRED_PERCENT,
        per_label_thresholds: bool = False) -> list[RocPoint]:
  """Scores each stream once, sweeps the settings, writes CSV and plot.

  Args:
    streams: (audio float32 [T] at `sample_rate`, ground truth) per stream.
    in_use: the settings the tools would use now, marked (and scored even
      when not on the grid); every point takes its `ignore_unknown`.
    unseen_words: (predict_fn, audio, ground truth) per stream of
      non-command words that its model (with `labels`) never heard.
    per_label_thresholds: refine the grid's choice label by label
      (`refine_class_thresholds`, over `thresholds`); the refined point,
      when it finds more words, is added after the grid's and chosen.

  Returns:
    The points written, the chosen one flagged (`choose`, then refined).
  """
  if not thresholds or not suppressions_ms or not average_windows_ms:
    raise ValueError('Give at least one threshold, suppression and window.')
  if not streams:
    raise ValueError('Give at least one stream.')
  score_unknown = not in_use.ignore_unknown
  for index, (_, ground_truth) in enumerate(streams):
    if not any(score_unknown or label != stream_scoring.UNKNOWN_LABEL
               for label, _ in ground_truth):
      raise ValueError(
          f'Stream {index + 1} has no words to find (noise alone, or only '
          'non-command words with --ignore_unknown): the budget is a share '
          'of the words; choose on streams with words.')
  for index, (_, _, ground_truth) in enumerate(unseen_words):
    if not any(label == stream_scoring.UNKNOWN_LABEL
               for label, _ in ground_truth):
      raise ValueError(
          f'Unseen-words stream {index + 1} has no non-command word: make it '
          'with generate_streaming_test_wav --unseen_words_fold=i/k '
          '--unknown_percentage=100.')

  def score(predict, audio, ground_truth):
    times_ms, scores = streaming.score_array(
        predict, audio, sample_rate, clip_duration_ms, clip_stride_ms)
    logging.info('Scored %d clips.', times_ms.shape[0])
    return ScoredStream(times_ms, scores, ground_truth,
                        audio.shape[0] * 1000.0 / sample_rate)

  scored = [score(predict_fn, *stream) for stream in streams]
  scored_unseen = [score(*stream) for stream in unseen_words]
  settings = [
      streaming.SmoothingSettings(window, threshold, suppression,
                                  minimum_count, in_use.ignore_unknown)
      for window, suppression, threshold in itertools.product(
          average_windows_ms, suppressions_ms, thresholds)]
  points = mark_chosen(sweep(
      scored, labels, settings, time_tolerance_ms=time_tolerance_ms,
      operating_point=in_use, unseen=scored_unseen),
      max_false_alarm_percent, max_unseen_fired_percent)
  if per_label_thresholds:
    chosen = next(p for p in points if p.chosen)
    refined = refine_class_thresholds(
        chosen, scored, labels, thresholds,
        time_tolerance_ms=time_tolerance_ms, unseen=scored_unseen,
        max_false_alarm_percent=max_false_alarm_percent,
        max_unseen_fired_percent=max_unseen_fired_percent)
    if refined is not chosen:
      points = [dataclasses.replace(p, chosen=False) for p in points]
      points.append(refined)
  os.makedirs(output_dir, exist_ok=True)
  write_csv(points, os.path.join(output_dir, 'roc.csv'))
  plot_roc(points, os.path.join(output_dir, 'roc.png'))
  return points


def _define_flags() -> None:
  # Defined only when run as a program: the streaming tools share names.
  flags.DEFINE_list('wav', None,
                    'Audio files to run the model over: one stream, or '
                    'several (comma list) that each setting must keep to '
                    'the false-alarm budget on.')
  flags.DEFINE_list('ground_truth', None,
                    'Files of "label, time_ms" lines, one per --wav stream, '
                    'in the same order.')
  flags.DEFINE_string('graph', None,
                      'TFLite model; default: the shipped model.')
  flags.DEFINE_string('labels', None,
                      'Labels file of --graph; default: the one beside it.')
  flags.DEFINE_string('output_dir', None, 'Where to write roc.csv, roc.png.')
  flags.DEFINE_list('thresholds', [str(t) for t in DEFAULT_THRESHOLDS],
                    'Detection thresholds to try.')
  flags.DEFINE_list('suppression_ms',
                    [f'{streaming.DEFAULT_SUPPRESSION_MS:g}'],
                    'Suppression times to try, ms.')
  flags.DEFINE_list('average_window_ms',
                    [f'{streaming.DEFAULT_AVERAGE_WINDOW_MS:g}'],
                    'Smoothing windows to try, ms.')
  flags.DEFINE_float('detection_threshold', None,
                     'Threshold of the settings in use, marked (default: '
                     'the model\'s calibrated one, else '
                     f'{streaming.DEFAULT_DETECTION_THRESHOLD:g}).')
  flags.DEFINE_integer('minimum_count', None,
                       'Fewest results in the window for an answer, for '
                       'every point (default: the model\'s calibrated one, '
                       f'else {streaming.DEFAULT_MINIMUM_COUNT}).')
  flags.DEFINE_bool('ignore_unknown', None,
                    'Commands only, for every point: never report _unknown_, '
                    'which then neither suppresses nor is scored (default: '
                    'the model\'s calibrated setting, else off).')
  flags.DEFINE_float('max_false_alarm_percent',
                     DEFAULT_MAX_FALSE_ALARM_PERCENT,
                     'False-alarm budget of the chosen point: wrong '
                     'detections plus false positives, % of the words, '
                     'on every stream.')
  flags.DEFINE_list('unseen_words_wav', [],
                    'Streams of non-command words that their own model '
                    '(--unseen_words_graph) never heard, e.g. '
                    'generate_streaming_test_wav --unseen_words_fold=i/k '
                    '--unknown_percentage=100 for fold i\'s model: the '
                    'chosen point must keep the share of them that fire a '
                    'command within --max_unseen_fired_percent.')
  flags.DEFINE_list('unseen_words_ground_truth', [],
                    'Ground truth of each --unseen_words_wav stream.')
  flags.DEFINE_list('unseen_words_graph', [],
                    'TFLite model of each --unseen_words_wav stream: one '
                    'trained without its words (same labels as --graph).')
  flags.DEFINE_float('max_unseen_fired_percent',
                     DEFAULT_MAX_UNSEEN_FIRED_PERCENT,
                     'Budget of the chosen point on --unseen_words_wav: '
                     'non-command words that fire a command, % of them, '
                     'over all those streams.')
  flags.DEFINE_bool('per_label_thresholds', False,
                    'Refine the chosen point label by label: each label may '
                    'get its own threshold from --thresholds where that '
                    'finds more words within the budgets (choose on '
                    'validation streams, with --unseen_words_wav).')
  flags.DEFINE_bool('write_smoothing', False,
                    'Write the chosen settings beside the model as '
                    '<stem>_smoothing.json (run on a validation stream).')
  flags.DEFINE_float('clip_duration_ms', 1000,
                     'Length of the model\'s input clip, ms.')
  flags.DEFINE_float('clip_stride_ms', streaming.DEFAULT_CLIP_STRIDE_MS,
                     'How often to run the model, ms.')
  flags.DEFINE_float('time_tolerance_ms', 750,
                     'Largest gap between a detection and its word, ms.')
  flags.DEFINE_integer('num_threads', 1, 'CPU threads for the model.')
  flags.mark_flags_as_required(['wav', 'ground_truth', 'output_dir'])


def _floats(name: str, values: Sequence[str]) -> list[float]:
  try:
    return [float(v) for v in values]
  except ValueError as e:
    raise app.UsageError(f'--{name} must be a comma list of numbers, got '
                         f'{",".join(values)!r}.') from e


def _print_streams(point: RocPoint, names: Sequence[str],
                   unseen_names: Sequence[str]) -> None:
  for name, stats in zip(names, point.streams):
    print(f'  on {name}: {stats.summary()}')
  for name, stats in zip(unseen_names, point.unseen):
    print(f'  on {name}: {stats.num_unknown_fired} of '
          f'{stats.num_unknown_words} unseen non-command words fired a '
          f'command ({stats.unknown_fired_percent:.1f}%)')


def _unseen_note(point: RocPoint) -> str:
  if not point.unseen:
    return ''
  return (f'; {point.unseen_fired_percent:.1f}% of unseen non-command words '
          'fired a command')


def _load_unseen(f: flags.FlagValues, model: streaming.LoadedModel
                 ) -> list[tuple[streaming.PredictFn, np.ndarray,
                                 list[tuple[str, float]]]]:
  """The --unseen_words_* streams with their models (checked)."""
  counts = {len(f.unseen_words_wav), len(f.unseen_words_ground_truth),
            len(f.unseen_words_graph)}
  if len(counts) > 1:
    raise app.UsageError(
        f'--unseen_words_wav names {len(f.unseen_words_wav)} streams, '
        f'--unseen_words_ground_truth {len(f.unseen_words_ground_truth)} '
        f'files and --unseen_words_graph {len(f.unseen_words_graph)} '
        'models; give one of each per stream, in the same order.')
  unseen = []
  for wav, truth, graph in zip(f.unseen_words_wav,
                               f.unseen_words_ground_truth,
                               f.unseen_words_graph):
    other = stream_scoring.load_checked_model(
        graph, None, f.clip_duration_ms, f.num_threads)
    if (list(other.labels) != list(model.labels) or
        other.sample_rate != model.sample_rate):
      raise ValueError(
          f'--unseen_words_graph {graph} has other labels or another sample '
          f'rate than --graph {model.model_path}: it must be the same '
          'recipe, trained without the stream\'s words.')
    unseen.append((other.predict_fn,
                   audio_io.read_audio(wav, model.sample_rate),
                   stream_scoring.read_ground_truth(truth)))
  return unseen


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  if len(f.wav) != len(f.ground_truth):
    raise app.UsageError(
        f'--wav names {len(f.wav)} streams but --ground_truth '
        f'{len(f.ground_truth)} files; give one ground-truth file per '
        'stream, in the same order.')
  try:
    model = stream_scoring.load_checked_model(
        f.graph, f.labels, f.clip_duration_ms, f.num_threads)
    streams = [(audio_io.read_audio(wav, model.sample_rate),
                stream_scoring.read_ground_truth(truth))
               for wav, truth in zip(f.wav, f.ground_truth)]
    unseen = _load_unseen(f, model)
  except (ValueError, OSError) as e:  # ModelError and AudioError included.
    # A missing or unreadable file: one line, not a traceback.
    print(f'Error: {e}', file=sys.stderr)
    sys.exit(1)
  in_use, source = streaming.smoothing_for(
      model, detection_threshold=f.detection_threshold,
      minimum_count=f.minimum_count, ignore_unknown=f.ignore_unknown)
  print(f'In use: {in_use.describe()} ({source}).')
  points = run(
      model.predict_fn, model.labels, streams,
      sample_rate=model.sample_rate, clip_duration_ms=model.clip_duration_ms,
      clip_stride_ms=f.clip_stride_ms,
      thresholds=_floats('thresholds', f.thresholds),
      suppressions_ms=_floats('suppression_ms', f.suppression_ms),
      average_windows_ms=_floats('average_window_ms', f.average_window_ms),
      minimum_count=in_use.minimum_count, in_use=in_use,
      time_tolerance_ms=f.time_tolerance_ms, output_dir=f.output_dir,
      max_false_alarm_percent=f.max_false_alarm_percent,
      unseen_words=unseen,
      max_unseen_fired_percent=f.max_unseen_fired_percent,
      per_label_thresholds=f.per_label_thresholds)
  for point in points:
    marks = (('  <- in use' if point.operating_point else '') +
             ('  <- chosen' if point.chosen else ''))
    print(f'{point.settings.describe()}: {point.stats.summary()}; '
          f'{point.stats.false_alarms_per_hour:.1f} false alarms/hour'
          f'{_unseen_note(point)}{marks}')
  print(f'Wrote {os.path.join(f.output_dir, "roc.csv")} and roc.png.')
  chosen = next(p for p in points if p.chosen)
  if chosen.settings.class_thresholds:
    grid = choose([p for p in points if not p.settings.class_thresholds],
                  f.max_false_alarm_percent, f.max_unseen_fired_percent)
    print(f'One threshold for all labels: {grid.settings.describe()} '
          f'({grid.stats.summary()}{_unseen_note(grid)}).')
  print(f'Chosen: {chosen.settings.describe()} ({chosen.stats.summary()}; '
        f'{chosen.stats.false_alarms_per_hour:.1f} false alarms/hour'
        f'{_unseen_note(chosen)}).')
  _print_streams(chosen, f.wav, f.unseen_words_wav)
  operating = next(p for p in points if p.operating_point)
  print(f'In use, {operating.settings.describe()}, on each stream:')
  _print_streams(operating, f.wav, f.unseen_words_wav)
  if f.write_smoothing:
    rule = ('most correct detections among the settings whose wrong '
            'detections plus false positives are at most '
            f'{f.max_false_alarm_percent:g}% of the words on every stream')
    unseen_details = {}
    if unseen:
      rule += (' and which fire a command at most at '
               f'{f.max_unseen_fired_percent:g}% of the non-command words '
               'their models never heard')
      unseen_details = {
          'unseen_words_chosen_on': [os.path.abspath(wav)
                                     for wav in f.unseen_words_wav],
          'unseen_fired_percent': round(chosen.unseen_fired_percent, 2)}
    path = streaming.write_smoothing(model.model_path, chosen.settings, {
        'chosen_on': [os.path.abspath(wav) for wav in f.wav],
        'rule': rule + (
            ' (streaming_roc.choose, then labels given thresholds of their '
            'own within the same budgets: refine_class_thresholds)'
            if chosen.settings.class_thresholds else
            ' (streaming_roc.choose)'),
        'correct_percent': round(chosen.stats.correct_percent, 2),
        'wrong_percent': round(chosen.stats.wrong_percent, 2),
        'false_positive_percent': round(
            chosen.stats.false_positive_percent, 2),
        'worst_false_alarm_percent': round(
            chosen.worst_false_alarm_percent, 2),
        'false_alarms_per_hour': round(chosen.stats.false_alarms_per_hour, 1),
        **unseen_details,
    })
    print(f'Wrote {path}: test_streaming_accuracy, serve and listen now use '
          'these settings with this model.')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
