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
take them; flags override; shown, never chosen unless on the grid) and the
chosen one: within a false-alarm budget (`--max_false_alarm_percent`,
wrong detections plus false positives as a share of the words, 3% by
default) on *every* stream, the setting of the grid with the most correct
detections (`calibration.choose`). The worst stream decides, so a choice
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
both budgets, until no change adds any
(`calibration.refine_class_thresholds`); the result has at least the grid
choice's correct detections.

To calibrate a model, run it on streams of *validation* words
(`generate_streaming_test_wav --split=validation`, one per speaker group)
with `--write_smoothing`: the chosen settings go beside the model as
`<stem>_smoothing.json`, which `test_streaming_accuracy`, `serve` and
`listen` then use unless flags say otherwise
(experiments/streaming_calibration.sh).
"""

import dataclasses
import itertools
import os
import sys
import textwrap
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from kws_jax import audio_io
from kws_jax import plotting
from kws_jax.runtime import calibration
from kws_jax.runtime import stream_scoring
from kws_jax.runtime import streaming


def plot_roc(points: Sequence[calibration.RocPoint], path: str,
             title: str = '') -> None:
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
              label=textwrap.fill(f'in use: {point.settings.describe()}',
                                  60))
    if point.chosen:
      ax.plot(point.stats.false_alarms_per_hour, point.stats.correct_percent,
              marker='D', markersize=10, markerfacecolor='none',
              markeredgewidth=2, color='forestgreen', linestyle='none',
              label=textwrap.fill(f'chosen: {point.settings.describe()}',
                                  60))
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
        max_false_alarm_percent: float = (
            calibration.DEFAULT_MAX_FALSE_ALARM_PERCENT),
        unseen_words: Sequence[tuple[streaming.PredictFn, np.ndarray,
                                     Sequence[tuple[str, float]]]] = (),
        max_unseen_fired_percent: float = (
            calibration.DEFAULT_MAX_UNSEEN_FIRED_PERCENT),
        per_label_thresholds: bool = False) -> list[calibration.RocPoint]:
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
    times_ms, scores = calibration.score_array(
        predict, audio, sample_rate, clip_duration_ms, clip_stride_ms)
    logging.info('Scored %d clips.', times_ms.shape[0])
    return calibration.ScoredStream(times_ms, scores, ground_truth,
                                    audio.shape[0] * 1000.0 / sample_rate)

  scored = [score(predict_fn, *stream) for stream in streams]
  scored_unseen = [score(*stream) for stream in unseen_words]
  settings = [
      streaming.SmoothingSettings(window, threshold, suppression,
                                  minimum_count, in_use.ignore_unknown)
      for window, suppression, threshold in itertools.product(
          average_windows_ms, suppressions_ms, thresholds)]
  points = calibration.mark_chosen(calibration.sweep(
      scored, labels, settings, time_tolerance_ms=time_tolerance_ms,
      operating_point=in_use, unseen=scored_unseen),
      max_false_alarm_percent, max_unseen_fired_percent)
  if per_label_thresholds:
    chosen = next(p for p in points if p.chosen)
    refined = calibration.refine_class_thresholds(
        chosen, scored, labels, thresholds,
        time_tolerance_ms=time_tolerance_ms, unseen=scored_unseen,
        max_false_alarm_percent=max_false_alarm_percent,
        max_unseen_fired_percent=max_unseen_fired_percent)
    if refined is not chosen:
      points = [dataclasses.replace(p, chosen=False) for p in points]
      points.append(refined)
  os.makedirs(output_dir, exist_ok=True)
  calibration.write_csv(points, os.path.join(output_dir, 'roc.csv'))
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
  flags.DEFINE_list('thresholds',
                    [str(t) for t in calibration.DEFAULT_THRESHOLDS],
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
                     calibration.DEFAULT_MAX_FALSE_ALARM_PERCENT,
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
                     calibration.DEFAULT_MAX_UNSEEN_FIRED_PERCENT,
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


def _print_streams(point: calibration.RocPoint, names: Sequence[str],
                   unseen_names: Sequence[str]) -> None:
  for name, stats in zip(names, point.streams):
    print(f'  on {name}: {stats.summary()}')
  for name, stats in zip(unseen_names, point.unseen):
    print(f'  on {name}: {stats.num_unknown_fired} of '
          f'{stats.num_unknown_words} unseen non-command words fired a '
          f'command ({stats.unknown_fired_percent:.1f}%)')


def _unseen_note(point: calibration.RocPoint) -> str:
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
    in_use, source = streaming.smoothing_for(
        model, detection_threshold=f.detection_threshold,
        minimum_count=f.minimum_count, ignore_unknown=f.ignore_unknown)
  except (ValueError, OSError) as e:  # ModelError and AudioError included.
    # A missing or unreadable file (or settings file): one line, not a
    # traceback.
    print(f'Error: {e}', file=sys.stderr)
    sys.exit(1)
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
    grid = calibration.choose(
        [p for p in points if p.on_grid],
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
            ' (calibration.choose, then labels given thresholds of their '
            'own within the same budgets: '
            'calibration.refine_class_thresholds)'
            if chosen.settings.class_thresholds else
            ' (calibration.choose)'),
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
