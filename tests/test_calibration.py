"""Tests for kws_jax.runtime.calibration: replaying cached scores, and the
rules that choose streaming settings."""

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

from kws_jax.runtime import calibration
from kws_jax.runtime import stream_scoring
from kws_jax.runtime import streaming
import streaming_fakes as fakes

RATE = 16000
WORDS = {500.0: 'yes', 2200.0: 'bed', 3400.0: 'no'}


def test_cached_scores_replay_like_streaming():
  audio = fakes.place_words(WORDS, 5000, RATE)
  model = fakes.ToneModel(RATE)
  times, scores = calibration.score_array(model, audio, RATE)
  assert scores.shape == (len(times), len(fakes.LABELS))
  np.testing.assert_allclose(times, np.arange(len(times)) * 30.0)
  for settings in [streaming.SmoothingSettings(),
                   streaming.SmoothingSettings(300, 0.5, 500, 2)]:
    want = streaming.recognize_array(
        model, audio, fakes.LABELS, sample_rate=RATE,
        average_window_ms=settings.average_window_ms,
        detection_threshold=settings.detection_threshold,
        suppression_ms=settings.suppression_ms,
        minimum_count=settings.minimum_count)
    assert calibration.detect_from_scores(times, scores, fakes.LABELS,
                                          settings) == want


def _replay(times, scores, labels, settings):
  """The recogniser fed result by result, as a live stream feeds it."""
  smoother = settings.make(labels)
  detections = []
  for time_ms, row in zip(times, scores):
    result = smoother.process_latest_result(row, float(time_ms))
    if result.is_new_command and result.found_command != '_silence_':
      detections.append(streaming.Detection(float(time_ms),
                                            result.found_command,
                                            result.score))
  return detections


@hypothesis.settings(max_examples=100, deadline=None, database=None)
@hypothesis.given(
    gaps=st.lists(st.sampled_from([0, 10, 30, 30, 30, 45]), min_size=0,
                  max_size=150),
    seed=st.integers(0, 2**16), window=st.sampled_from([0, 40, 90, 300]),
    threshold=st.sampled_from([0.2, 0.4, 0.6]),
    own=st.dictionaries(st.sampled_from(fakes.LABELS),
                        st.sampled_from([0.1, 0.3, 0.5, 0.9]), max_size=3),
    suppression=st.sampled_from([0, 60, 500]),
    minimum_count=st.integers(1, 4), ignore_unknown=st.booleans())
def test_replaying_averaged_windows_equals_the_recogniser_to_the_bit(
    gaps, seed, window, threshold, own, suppression, minimum_count,
    ignore_unknown):
  # Times that repeat and skip; peaked scores, so labels take turns.
  times = np.cumsum(np.float64(gaps))
  rng = np.random.default_rng(seed)
  scores = rng.dirichlet([0.3] * len(fakes.LABELS), len(times)).astype(
      np.float32)
  settings = streaming.SmoothingSettings(
      window, threshold, suppression, minimum_count, ignore_unknown,
      tuple(own.items()))
  want = _replay(times, scores, fakes.LABELS, settings)
  assert calibration.detect_from_scores(times, scores, fakes.LABELS,
                                        settings) == want


def test_a_replay_refuses_scores_a_recogniser_would_refuse():
  times = np.array([0.0, 30.0, 20.0])
  with pytest.raises(ValueError, match='increasing time order'):
    calibration.window_averages(times, np.zeros((3, 4)), 300, 3)
  with pytest.raises(ValueError, match='one row of scores per time'):
    calibration.window_averages(times[:2], np.zeros((3, 4)), 300, 3)
  with pytest.raises(ValueError, match='Expected 4 scores'):
    calibration.detect_from_scores(times[:2], np.zeros((2, 3)), fakes.LABELS)


def test_averaged_windows_replay_only_their_own_settings():
  times = np.arange(10) * 30.0
  scores = np.tile(np.float32([0, 0, 1, 0]), (10, 1))
  averages = calibration.window_averages(times, scores, 300, 3)
  assert calibration.detect_from_averages(
      averages, fakes.LABELS, streaming.SmoothingSettings(300, 0.5, 0, 3)
  ) == [streaming.Detection(90.0, 'yes', 1.0)]
  with pytest.raises(ValueError, match='300 ms with minimum count 3 cannot'):
    calibration.detect_from_averages(
        averages, fakes.LABELS, streaming.SmoothingSettings(500, 0.5, 0, 3))


def test_choose_takes_the_most_detections_within_the_false_alarm_budget():
  def point(threshold, correct, wrong, false_positives):
    stats = stream_scoring.StreamingStats(
        num_ground_truth=100, num_matched=correct + wrong, num_correct=correct,
        num_wrong=wrong, num_false_positives=false_positives,
        duration_ms=600_000)
    return calibration.RocPoint(
        streaming.SmoothingSettings(500, threshold, 1500, 3), (stats,))
  low, middle, high = point(0.3, 95, 20, 5), point(0.6, 85, 2, 1), point(
      0.9, 60, 0, 0)
  # Within 3% of false alarms: middle (3%) has more detections than high.
  assert calibration.choose([low, middle, high]) is middle
  assert calibration.choose([low, middle, high], 2.0) is high
  assert calibration.choose([low, middle, high], 30.0) is low
  # Equal detections: fewer false alarms win.
  fewer = point(0.7, 85, 1, 0)
  assert calibration.choose([middle, fewer]) is fewer
  # None within the budget: the fewest false alarms.
  assert calibration.choose([low, point(0.5, 90, 5, 0)]).stats.num_wrong == 5
  with pytest.raises(ValueError):
    calibration.choose([])


def _stats(correct, false_alarms, words=100):
  return stream_scoring.StreamingStats(
      num_ground_truth=words, num_matched=correct + false_alarms,
      num_correct=correct, num_wrong=false_alarms, num_false_positives=0,
      duration_ms=1_800_000)


def test_choose_keeps_the_budget_on_every_stream():
  def point(threshold, *streams):
    return calibration.RocPoint(
        streaming.SmoothingSettings(500, threshold, 1500, 3),
        tuple(_stats(*stream) for stream in streams))
  # 0.5 keeps to 3% over the two streams pooled (6 of 200 words) only
  # because the first stream's speakers make few false alarms: the
  # second's make 5%. 0.6 keeps to 3% on each.
  pooled_only = point(0.5, (90, 1), (90, 5))
  each = point(0.6, (80, 2), (80, 3))
  strict = point(0.9, (50, 0), (50, 0))
  points = [pooled_only, each, strict]
  assert pooled_only.stats.false_alarm_percent == 3.0
  assert pooled_only.worst_false_alarm_percent == 5.0
  # The pooled figures alone (one stream of all the words) would take 0.5.
  as_one_stream = [calibration.RocPoint(p.settings, (p.stats,))
                   for p in points]
  assert calibration.choose(as_one_stream) is as_one_stream[0]
  chosen = calibration.choose(points)
  assert chosen is each
  assert all(s.false_alarm_percent <= 3.0 for s in chosen.streams)
  # None keeps to the budget on both streams: the fewest false alarms on
  # the worst stream wins (0.6: 4 against 5), although both make 6 pooled
  # and 0.5 detects more.
  assert calibration.choose([point(0.5, (90, 1), (90, 5)),
                               point(0.6, (80, 2), (80, 4))],
                              2.0).settings.detection_threshold == 0.6
  # Mark one point as chosen: the CSV row says so, with the worst stream.
  marked = calibration.mark_chosen(points)
  assert [p.chosen for p in marked] == [False, True, False]
  assert marked[1].row()['worst_false_alarm_percent'] == 3.0


def test_sweep_takes_each_settings_ignore_unknown():
  """Commands only: `_unknown_` before a word no longer swallows it, and the
  non-command word is no longer a word to find."""
  labels = ['_silence_', '_unknown_', 'yes']
  times = np.arange(0, 3000, 30, dtype=np.float64)
  # `_unknown_` at 0-300 ms (a non-command word), yes at 900-1400 ms.
  scores = np.tile(np.float32([1, 0, 0]), (len(times), 1))
  scores[times < 300] = [0, 1, 0]
  scores[(times >= 900) & (times < 1400)] = [0, 0, 1]
  truth = [('_unknown_', 0.0), ('yes', 1000.0)]
  settings = [streaming.SmoothingSettings(100, 0.5, 1500, 1, ignore)
              for ignore in (False, True)]
  tutorial, commands = calibration.sweep(
      [calibration.ScoredStream(times, scores, truth, 3000)], labels,
      settings, time_tolerance_ms=750)
  # The tutorial's recogniser: `_unknown_` is found, and suppresses yes.
  assert (tutorial.stats.num_ground_truth, tutorial.stats.num_correct) == (
      2, 1)
  assert tutorial.stats.outcomes == ('correct',)
  # Commands only: yes is the one word to find, and it is found.
  assert (commands.stats.num_ground_truth, commands.stats.num_correct,
          commands.stats.num_wrong) == (1, 1, 0)
  assert [p.row()['ignore_unknown'] for p in (tutorial, commands)] == [
      False, True]


def _unseen(fired, words=400):
  return stream_scoring.StreamingStats(
      num_ground_truth=words, num_matched=fired, num_correct=0,
      num_wrong=fired, num_false_positives=0, duration_ms=1_200_000,
      num_unknown_words=words, num_unknown_fired=fired)


def test_choose_keeps_the_unseen_words_budget_pooled_over_the_folds():
  def point(threshold, correct, false_alarms, *fired):
    return calibration.RocPoint(
        streaming.SmoothingSettings(500, threshold, 1500, 3),
        (_stats(correct, false_alarms),), tuple(_unseen(f) for f in fired))
  # 0.7 keeps to 3% of false alarms but fires at 3% of the words its
  # models never heard; 0.9 fires at 1% over both folds (8 of 800), though
  # at 2% on one of them: the folds' words are pooled, not each fold held
  # to the budget.
  loose = point(0.7, 80, 3, 4, 20)
  quiet = point(0.9, 60, 0, 0, 8)
  assert loose.unseen_fired_percent == 3.0
  assert quiet.unseen_fired_percent == 1.0
  assert calibration.choose([loose, quiet]) is quiet
  assert calibration.choose([loose, quiet], 3.0, 3.0) is loose
  # Points scored without unseen streams take the false-alarm budget alone.
  plain = [calibration.RocPoint(p.settings, p.streams)
           for p in (loose, quiet)]
  assert np.isnan(plain[0].unseen_fired_percent)
  assert calibration.choose(plain) is plain[0]
  # None within both budgets: of those within the false-alarm budget, the
  # one that fires least at unseen words; the rest as before.
  louder = point(0.8, 70, 1, 10, 10)
  assert calibration.choose([loose, louder], 3.0, 0.5) is louder
  assert calibration.choose([point(0.5, 90, 9, 0)], 3.0, 0.5).settings \
      .detection_threshold == 0.5
  assert calibration.mark_chosen([loose, quiet])[1].row()[
      'unseen_fired_percent'] == 1.0


def _blocks(times, labels, blocks):
  """Scores: `_silence_` at 1, except (start_ms, scores) blocks of 800 ms."""
  scores = np.tile(np.float32([1] + [0] * (len(labels) - 1)),
                   (len(times), 1))
  for start, row in blocks:
    scores[(times >= start) & (times < start + 800)] = row
  return scores


def test_refining_gives_a_label_its_own_threshold_where_words_allow():
  # yes is said weakly (0.6) and nothing else is heard as yes; no is said
  # at 0.95, and unseen non-command words are heard as no at 0.8. One
  # threshold for all must stay over 0.8 (else the unseen words fire) and
  # misses every yes; yes alone can go down to 0.5.
  labels = ['_silence_', '_unknown_', 'yes', 'no']
  times = np.arange(0, 13000, 30, dtype=np.float64)
  yes, no = [0.4, 0, 0.6, 0], [0.05, 0, 0, 0.95]
  commands = calibration.ScoredStream(
      times, _blocks(times, labels, [(800, yes), (3800, no), (6800, yes),
                                     (9800, no)]),
      [('yes', 1000.0), ('no', 4000.0), ('yes', 7000.0), ('no', 10000.0)],
      13000)
  heard_as_no = [0.2, 0, 0, 0.8]
  unseen = calibration.ScoredStream(
      times, _blocks(times, labels, [(800, heard_as_no), (3800, [0, 1, 0, 0]),
                                     (6800, heard_as_no),
                                     (9800, [0, 1, 0, 0])]),
      [('_unknown_', t) for t in (1000.0, 4000.0, 7000.0, 10000.0)], 13000)
  thresholds = [0.5, 0.7, 0.85]
  grid = calibration.mark_chosen(calibration.sweep(
      [commands], labels,
      [streaming.SmoothingSettings(300, t, 500, 3) for t in thresholds],
      time_tolerance_ms=750, unseen=[unseen]))
  start = next(p for p in grid if p.chosen)
  assert start.settings.detection_threshold == 0.85
  # Settings in use from elsewhere (e.g. chosen on other streams) are shown,
  # never chosen, however well they do here.
  in_use = streaming.SmoothingSettings(300, 0.85, 500, 3,
                                       class_thresholds={'yes': 0.5})
  shown = calibration.mark_chosen(calibration.sweep(
      [commands], labels,
      [streaming.SmoothingSettings(300, t, 500, 3) for t in thresholds],
      time_tolerance_ms=750, unseen=[unseen], operating_point=in_use))
  assert [(p.operating_point, p.on_grid) for p in shown][-1] == (True, False)
  assert shown[-1].stats.num_correct == 4
  assert next(p for p in shown if p.chosen).settings == start.settings
  assert (start.stats.num_correct, start.unseen_fired_percent) == (2, 0.0)
  assert [p.unseen_fired_percent for p in grid] == [50.0, 50.0, 0.0]

  refined = calibration.refine_class_thresholds(
      start, [commands], labels, thresholds, time_tolerance_ms=750,
      unseen=[unseen])
  assert refined.settings.class_thresholds == (('yes', 0.5),)
  assert refined.settings.detection_threshold == 0.85
  assert (refined.stats.num_correct, refined.stats.num_false_alarms,
          refined.unseen_fired_percent) == (4, 0, 0.0)
  assert refined.chosen and not refined.on_grid
  assert refined.row()['class_thresholds'] == 'yes=0.5'
  # The same search without the unseen words lowers every command instead.
  assert calibration.refine_class_thresholds(
      start, [commands], labels, thresholds,
      time_tolerance_ms=750).stats.num_correct == 4
  # Nothing to add, or no budget kept at the start: the start itself.
  assert calibration.refine_class_thresholds(
      start, [commands], labels, [0.85], time_tolerance_ms=750,
      unseen=[unseen]) is start
  loud = grid[0]
  assert calibration.refine_class_thresholds(
      loud, [commands], labels, thresholds, time_tolerance_ms=750,
      unseen=[unseen]) is loud
