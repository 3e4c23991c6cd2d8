"""Tests for runtime.recognize_commands: one test per rule, plus properties."""

import inspect

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from kws_jax.runtime import recognize_commands
from kws_jax.runtime.recognize_commands import RecognizeCommands
from kws_jax.runtime.recognize_commands import RecognizeResult

LABELS = ['_silence_', '_unknown_', 'yes', 'no']


def _one_hot(label: str, value: float = 1.0) -> np.ndarray:
  scores = np.zeros(len(LABELS), np.float32)
  scores[LABELS.index(label)] = value
  return scores


def _feed(recognizer, label, start_ms, end_ms, stride_ms=10, value=1.0):
  """Feeds `label` at every stride in [start_ms, end_ms); returns results."""
  return [(t, recognizer.process_latest_result(_one_hot(label, value), t))
          for t in range(start_ms, end_ms, stride_ms)]


def _new_commands(results):
  return [(t, r.found_command) for t, r in results if r.is_new_command]


def test_defaults_are_the_tutorials():
  params = inspect.signature(RecognizeCommands).parameters
  assert params['average_window_duration_ms'].default == 1000
  assert params['detection_threshold'].default == 0.2
  assert params['suppression_ms'].default == 1500
  assert params['minimum_count'].default == 3


def test_wrong_number_of_scores_raises():
  recognizer = RecognizeCommands(LABELS)
  with pytest.raises(ValueError, match='Expected 4 scores'):
    recognizer.process_latest_result(np.zeros(3), 0)


def test_time_going_backwards_raises():
  recognizer = RecognizeCommands(LABELS)
  recognizer.process_latest_result(_one_hot('yes'), 100)
  recognizer.process_latest_result(_one_hot('yes'), 100)  # Equal is fine.
  with pytest.raises(ValueError, match='increasing time order'):
    recognizer.process_latest_result(_one_hot('yes'), 99)


@pytest.mark.parametrize('kwargs', [
    dict(average_window_duration_ms=-1), dict(suppression_ms=-1),
    dict(minimum_count=0)])
def test_bad_settings_raise(kwargs):
  with pytest.raises(ValueError):
    RecognizeCommands(LABELS, **kwargs)
  with pytest.raises(ValueError, match='labels'):
    RecognizeCommands([])


def test_too_few_results_give_no_answer():
  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=100,
                                 minimum_count=5)
  # Four results spanning the whole window: still fewer than minimum_count.
  results = [recognizer.process_latest_result(_one_hot('yes'), t)
             for t in (0, 40, 80, 100)]
  assert all(r == RecognizeResult('_silence_', 0.0, False) for r in results)
  fifth = recognizer.process_latest_result(_one_hot('yes'), 100)
  assert fifth == RecognizeResult('yes', 1.0, True)


def test_window_must_span_a_quarter():
  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=1000,
                                 minimum_count=1)
  # Many results, but only 240 ms apart: less than 1000 / 4.
  for t in range(0, 250, 10):
    result = recognizer.process_latest_result(_one_hot('yes'), t)
    assert result == RecognizeResult('_silence_', 0.0, False)
  assert recognizer.process_latest_result(_one_hot('yes'), 250).is_new_command


def test_no_answer_repeats_the_last_command():
  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=100,
                                 minimum_count=3)
  _feed(recognizer, 'yes', 0, 100)
  # A gap empties the window; the answer is the last command, score 0.
  result = recognizer.process_latest_result(_one_hot('no'), 10_000)
  assert result == RecognizeResult('yes', 0.0, False)


def test_scores_are_averaged_over_the_window():
  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=100,
                                 detection_threshold=2.0, minimum_count=1)
  recognizer.process_latest_result(_one_hot('yes', 0.9), 0)
  recognizer.process_latest_result(_one_hot('yes', 0.3), 50)
  result = recognizer.process_latest_result(_one_hot('no', 0.6), 100)
  # The result at 0 ms is exactly at the window's edge and stays in.
  assert result.found_command == 'yes'
  assert result.score == pytest.approx((0.9 + 0.3) / 3)
  # At 101 ms the 0 ms result is older than the window and drops out.
  result = recognizer.process_latest_result(_one_hot('no', 0.6), 101)
  assert result.found_command == 'no'
  assert result.score == pytest.approx(1.2 / 3)


def test_score_must_exceed_threshold():
  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=100,
                                 detection_threshold=0.5, minimum_count=1)
  results = _feed(recognizer, 'yes', 0, 200, value=0.5)
  assert _new_commands(results) == []
  assert results[-1][1] == RecognizeResult('yes', 0.5, False)
  results = _feed(recognizer, 'yes', 200, 400, value=0.51)
  assert _new_commands(results)[0][1] == 'yes'


def test_same_command_is_not_reported_twice():
  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=100,
                                 suppression_ms=0, minimum_count=1)
  results = _feed(recognizer, 'yes', 0, 5000)
  assert _new_commands(results) == [(30, 'yes')]


def test_suppression_after_a_command():
  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=100,
                                 suppression_ms=1000, minimum_count=3)
  results = _feed(recognizer, 'yes', 0, 100)
  results += _feed(recognizer, 'no', 100, 2000)
  # 'yes' at 30 ms (3 results spanning 30 ms >= 100 / 4); 'no' must wait
  # until more than 1000 ms after that.
  assert _new_commands(results) == [(30, 'yes'), (1040, 'no')]


def test_suppression_needs_strictly_more_time():
  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=0,
                                 suppression_ms=100, minimum_count=1)
  results = [(0, recognizer.process_latest_result(_one_hot('yes'), 0)),
             (100, recognizer.process_latest_result(_one_hot('no'), 100)),
             (101, recognizer.process_latest_result(_one_hot('no'), 101))]
  assert _new_commands(results) == [(0, 'yes'), (101, 'no')]


def test_no_suppression_after_silence():
  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=0,
                                 suppression_ms=10_000, minimum_count=1)
  results = [(t, recognizer.process_latest_result(_one_hot(label), t))
             for t, label in [(0, 'yes'), (10, '_silence_'), (20, 'no'),
                              (30, '_silence_'), (40, 'no')]]
  # '_silence_' is suppressed after 'yes'; with silence never reported, 'no'
  # also waits.
  assert _new_commands(results) == [(0, 'yes')]

  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=0,
                                 suppression_ms=10_000, minimum_count=1)
  # Silence as the first command: the next command is not suppressed.
  results = [(t, recognizer.process_latest_result(_one_hot(label), t))
             for t, label in [(0, 'yes'), (20_000, '_silence_'), (20_010, 'no'),
                              (20_020, '_silence_'), (20_030, 'yes')]]
  assert _new_commands(results) == [
      (0, 'yes'), (20_000, '_silence_'), (20_010, 'no')]


def test_reset_forgets_everything():
  recognizer = RecognizeCommands(LABELS, average_window_duration_ms=100,
                                 minimum_count=1)
  first = _new_commands(_feed(recognizer, 'yes', 0, 200))
  recognizer.reset()
  # Earlier times are fine again and 'yes' is new again.
  assert _new_commands(_feed(recognizer, 'yes', 0, 200)) == first


def test_labels_are_copied():
  labels = list(LABELS)
  recognizer = RecognizeCommands(labels)
  labels[2] = 'changed'
  assert recognizer.labels == LABELS
  assert recognize_commands.SILENCE_LABEL == LABELS[0]


_STEPS = st.lists(
    st.tuples(st.integers(0, 200),  # Time step in ms.
              st.lists(st.floats(0, 1, allow_nan=False), min_size=4,
                       max_size=4)),
    min_size=1, max_size=80)


# No example database: nothing is written into the working tree.
@settings(max_examples=150, deadline=None, database=None)
@given(steps=_STEPS, window=st.integers(0, 600),
       threshold=st.floats(0, 1), suppression=st.integers(0, 1000),
       minimum_count=st.integers(1, 5))
def test_properties(steps, window, threshold, suppression, minimum_count):
  recognizer = RecognizeCommands(LABELS, window, threshold, suppression,
                                 minimum_count)
  time_ms = 0
  fed = []  # (time, scores) of everything fed so far.
  # The latest reported command; it starts as silence, reported never.
  last_label, last_time = '_silence_', None
  for step_ms, scores in steps:
    time_ms += step_ms
    scores = np.asarray(scores)
    fed.append((time_ms, scores))
    result = recognizer.process_latest_result(scores, time_ms)

    in_window = [s for t, s in fed if t >= time_ms - window]
    span = time_ms - min(t for t, _ in fed if t >= time_ms - window)
    answered = len(in_window) >= minimum_count and span >= window / 4
    if not answered:
      assert result == RecognizeResult(last_label, 0.0, False)
      continue
    # The score is the window's mean score of the top label, the maximum.
    average = np.mean(in_window, axis=0)
    assert result.score == pytest.approx(average.max())
    assert average[LABELS.index(result.found_command)] == pytest.approx(
        average.max())
    waited = last_label == '_silence_' or time_ms - last_time > suppression
    if result.is_new_command:
      assert result.score > threshold
      assert result.found_command != last_label
      assert waited
      last_label, last_time = result.found_command, time_ms
    elif result.score > threshold and waited:
      # Nothing stopped a new command except it being the same one.
      assert result.found_command == last_label


_ANY_SCORE = st.floats(allow_nan=True, allow_infinity=True, width=32)
_WILD_STEPS = st.lists(
    st.tuples(st.floats(0, 1e7, allow_nan=False),  # Time step, ms.
              st.lists(_ANY_SCORE, min_size=4, max_size=4)),
    min_size=1, max_size=60)


@settings(max_examples=150, deadline=None, database=None)
@given(steps=_WILD_STEPS, window=st.floats(0, 1e6), threshold=st.floats(
    -1, 2), suppression=st.floats(0, 1e6), minimum_count=st.integers(1, 10))
def test_any_scores_and_times_never_break_it(steps, window, threshold,
                                             suppression, minimum_count):
  # Scores straight from a broken model (NaN, infinities, huge values) and
  # large jumps in time: results come back, and a reported command always
  # beat the threshold.
  recognizer = RecognizeCommands(LABELS, window, threshold, suppression,
                                 minimum_count)
  time_ms = 0.0
  for step_ms, scores in steps:
    time_ms += step_ms
    result = recognizer.process_latest_result(np.asarray(scores), time_ms)
    assert result.found_command in LABELS
    if result.is_new_command:
      assert result.score > threshold


@settings(max_examples=100, deadline=None, database=None)
@given(first=_STEPS, second=_STEPS, window=st.integers(0, 600),
       suppression=st.integers(0, 1000), minimum_count=st.integers(1, 5))
def test_reset_is_as_good_as_new(first, second, window, suppression,
                                 minimum_count):
  used = RecognizeCommands(LABELS, window, 0.5, suppression, minimum_count)
  fresh = RecognizeCommands(LABELS, window, 0.5, suppression, minimum_count)
  time_ms = 0
  for step_ms, scores in first:
    time_ms += step_ms
    used.process_latest_result(np.asarray(scores), time_ms)
  used.reset()
  time_ms = 0
  for step_ms, scores in second:
    time_ms += step_ms
    assert used.process_latest_result(np.asarray(scores), time_ms) == (
        fresh.process_latest_result(np.asarray(scores), time_ms))


def test_ignore_unknown_never_reports_nor_suppresses_it():
  def run(sequence, **kwargs):
    recognizer = RecognizeCommands(LABELS, average_window_duration_ms=0,
                                   suppression_ms=1000, minimum_count=1,
                                   **kwargs)
    return _new_commands([(t, recognizer.process_latest_result(
        _one_hot(label), t)) for t, label in sequence])

  # An `_unknown_` just before a word: the tutorial reports it and
  # suppresses the word; commands only, the word is reported.
  swallowed = [(0, '_unknown_'), (10, 'yes')]
  assert run(swallowed) == [(0, '_unknown_')]
  assert run(swallowed, ignore_unknown=True) == [(10, 'yes')]
  # An `_unknown_` after the suppression: the tutorial reports it, which
  # clears the last command; commands only, it neither reports nor clears
  # it, so the same word again is not new; silence still clears it.
  between = [(0, 'yes'), (1500, '_unknown_'), (1600, 'yes'),
             (3000, '_silence_'), (3010, 'yes')]
  assert run(between) == [(0, 'yes'), (1500, '_unknown_'),
                          (3000, '_silence_'), (3010, 'yes')]
  assert run(between, ignore_unknown=True) == [(0, 'yes'),
                                               (3000, '_silence_'),
                                               (3010, 'yes')]


def test_a_label_may_have_a_threshold_of_its_own():
  # yes averages 0.6, no 0.8: the common threshold 0.7 lets only no
  # through; a lower one for yes and a higher one for no turn that round.
  def commands(**kwargs):
    recognizer = RecognizeCommands(LABELS, average_window_duration_ms=100,
                                   detection_threshold=0.7, suppression_ms=0,
                                   **kwargs)
    return _new_commands(_feed(recognizer, 'yes', 0, 300, value=0.6) +
                         _feed(recognizer, 'no', 300, 600, value=0.8))
  assert [c for _, c in commands()] == ['no']
  assert [c for _, c in commands(class_thresholds={'yes': 0.5})] == [
      'yes', 'no']
  assert [c for _, c in commands(class_thresholds={'yes': 0.5, 'no': 0.9})
          ] == ['yes']
  recognizer = RecognizeCommands(LABELS, detection_threshold=0.7,
                                 class_thresholds={'no': 0.9})
  assert recognizer.thresholds == [0.7, 0.7, 0.7, 0.9]
  with pytest.raises(ValueError, match=r"\['maybe'\].*not among the labels"):
    RecognizeCommands(LABELS, class_thresholds={'maybe': 0.5})
