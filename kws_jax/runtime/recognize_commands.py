"""Turns a stream of per-clip scores into discrete command detections.

A model run every few tens of milliseconds over the last second of audio
gives a score vector per run. Single runs are noisy, so, as in the TensorFlow
speech_commands tutorial's `RecognizeCommands` (C++ and Python), this class:

1. keeps the results whose time lies within `average_window_duration_ms` of
   the latest one, and averages their scores;
2. gives no answer (score 0, the previous command's label) until the window
   holds at least `minimum_count` results spanning at least a quarter of the
   window;
3. reports a *new* command when the averaged top score exceeds
   `detection_threshold`, the top label differs from the last reported
   command, and more than `suppression_ms` have passed since that command
   (no wait when the last reported command was `_silence_`, or none yet).

With `class_thresholds` (not in the tutorial), some labels have a threshold
of their own: the averaged top score must exceed the top label's threshold.
Words outside the vocabulary are heard as some commands more than others
(a cat as yes, a dog as down), so a calibration can ask more of those and
less of the rest (`streaming_roc --per_label_thresholds`).

With `ignore_unknown` (not in the tutorial), an averaged top label of
`_unknown_` is treated like a score under the threshold: never reported,
and it neither starts a suppression nor clears the last command. That is
the view of an app that acts on commands only: a non-command word said as a
command arrives cannot swallow the command.

All times are in milliseconds on the caller's clock (the streaming tools use
the start of the analysed clip, as the tutorial does).
"""

import collections
import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

SILENCE_LABEL = '_silence_'
UNKNOWN_LABEL = '_unknown_'


@dataclasses.dataclass(frozen=True)
class RecognizeResult:
  """What `RecognizeCommands.process_latest_result` found.

  Attributes:
    found_command: the label with the highest averaged score (or, while too
      few results are in the window, the last reported command).
    score: its averaged score; 0.0 while too few results are in the window.
    is_new_command: True only for the result that first reports a command.
  """
  found_command: str
  score: float
  is_new_command: bool


class RecognizeCommands:
  """Smooths per-clip scores over time and reports new commands.

  A small stateful object, fed one score vector at a time in time order.
  The defaults are those of the tutorial's C++ class, except `suppression_ms`:
  1500 ms as in the tutorial's `test_streaming_accuracy` tool and in the
  TFLite micro_speech example (the C++ header says 500 ms).
  """

  def __init__(self, labels: Sequence[str],
               average_window_duration_ms: float = 1000,
               detection_threshold: float = 0.2,
               suppression_ms: float = 1500,
               minimum_count: int = 3,
               ignore_unknown: bool = False,
               class_thresholds: Mapping[str, float] | None = None):
    """Initialises the smoother.

    Args:
      labels: class names in the order of the score vectors.
      average_window_duration_ms: results older than this many ms before the
        latest one are dropped from the average.
      detection_threshold: the averaged top score must exceed this (a
        probability, 0..1) to report a command.
      suppression_ms: after a command is reported, another is reported only
        once more than this many ms have passed (unless the reported command
        was `_silence_`).
      minimum_count: fewest results in the window for an answer.
      ignore_unknown: never report `_unknown_` (see the module's notes).
      class_thresholds: label → its own threshold, in place of
        `detection_threshold` for that label.

    Raises:
      ValueError: no labels, a negative duration or count, or a class
        threshold of a label not in `labels`.
    """
    if not labels:
      raise ValueError('labels must not be empty.')
    if average_window_duration_ms < 0:
      raise ValueError('average_window_duration_ms must be >= 0, got '
                       f'{average_window_duration_ms}.')
    if suppression_ms < 0:
      raise ValueError(f'suppression_ms must be >= 0, got {suppression_ms}.')
    if minimum_count < 1:
      raise ValueError(f'minimum_count must be >= 1, got {minimum_count}.')
    self._labels = list(labels)
    class_thresholds = dict(class_thresholds or {})
    strangers = sorted(set(class_thresholds) - set(self._labels))
    if strangers:
      raise ValueError(f'class_thresholds names {strangers}, which are not '
                       f'among the labels {self._labels}.')
    if not all(math.isfinite(float(v)) for v in class_thresholds.values()):
      raise ValueError(f'class_thresholds must be numbers, got '
                       f'{class_thresholds}.')
    self._thresholds = [float(class_thresholds.get(label,
                                                   detection_threshold))
                        for label in self._labels]
    self._average_window_duration_ms = float(average_window_duration_ms)
    self._suppression_ms = float(suppression_ms)
    self._minimum_count = int(minimum_count)
    self._ignore_unknown = bool(ignore_unknown)
    self.reset()

  @property
  def labels(self) -> list[str]:
    return list(self._labels)

  @property
  def thresholds(self) -> list[float]:
    """Each label's detection threshold, in `labels` order."""
    return list(self._thresholds)

  def reset(self) -> None:
    """Forgets all results, as if newly made."""
    # (time_ms, scores float64 [C]) pairs, oldest first.
    self._results: collections.deque[tuple[float, np.ndarray]] = (
        collections.deque())
    self._previous_top_label = SILENCE_LABEL
    self._previous_top_time_ms = -math.inf

  def process_latest_result(self, scores: np.ndarray,
                            current_time_ms: float) -> RecognizeResult:
    """Adds one score vector and says what, if anything, was recognised.

    Args:
      scores: float [C], one score (probability) per label.
      current_time_ms: the result's time in ms; never earlier than the
        previous result's.

    Returns:
      The smoothed result; see `RecognizeResult`.

    Raises:
      ValueError: `scores` does not hold one value per label, or time went
        backwards.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != len(self._labels):
      raise ValueError(
          f'Expected {len(self._labels)} scores (one per label), got '
          f'{scores.shape[0]}.')
    current_time_ms = float(current_time_ms)
    if self._results and current_time_ms < self._results[-1][0]:
      raise ValueError(
          'Results must be fed in increasing time order, but got '
          f'{current_time_ms} ms after {self._results[-1][0]} ms.')

    self._results.append((current_time_ms, scores))
    time_limit_ms = current_time_ms - self._average_window_duration_ms
    while self._results[0][0] < time_limit_ms:
      self._results.popleft()

    how_many = len(self._results)
    span_ms = current_time_ms - self._results[0][0]
    if (how_many < self._minimum_count or
        span_ms < self._average_window_duration_ms / 4):
      return RecognizeResult(self._previous_top_label, 0.0, False)

    average = np.mean([s for _, s in self._results], axis=0)
    # argmax takes the first of equal scores, like the tutorial's stable sort.
    top_index = int(np.argmax(average))
    return self.decide(top_index, float(average[top_index]), current_time_ms)

  def decide(self, top_index: int, top_score: float,
             current_time_ms: float) -> RecognizeResult:
    """Rule 3 alone, for a window's averaged top label and score.

    `process_latest_result` calls it for every full window; a replay of
    cached scores (`calibration.detect_from_scores`) averages the windows
    itself and calls it only where the top score clears its label's
    threshold (`thresholds`), since nothing changes elsewhere.
    """
    top_label = self._labels[top_index]
    if self._previous_top_label == SILENCE_LABEL:
      time_since_last_ms = math.inf
    else:
      time_since_last_ms = current_time_ms - self._previous_top_time_ms
    is_new = (top_score > self._thresholds[top_index] and
              not (self._ignore_unknown and top_label == UNKNOWN_LABEL) and
              top_label != self._previous_top_label and
              time_since_last_ms > self._suppression_ms)
    if is_new:
      self._previous_top_label = top_label
      self._previous_top_time_ms = current_time_ms
    return RecognizeResult(top_label, top_score, is_new)
