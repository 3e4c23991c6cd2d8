"""Tests for kws_jax.test_streaming_accuracy and runtime.stream_scoring."""

import inspect
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from kws_jax import audio_io
from kws_jax import generate_streaming_test_wav as gen
from kws_jax.runtime import inference
from kws_jax.runtime import stream_scoring
from kws_jax.runtime import streaming
from kws_jax.runtime.streaming import Detection
import streaming_fakes as fakes

RATE = 8000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRUTH = [('yes', 1000.0), ('no', 4000.0), ('_unknown_', 7000.0)]


def _accuracy(detections, truth=TRUTH, tolerance=750, duration_ms=3.6e6,
              **kwargs):
  return stream_scoring.streaming_accuracy(
      [Detection(t, label, 0.9) for label, t in detections], truth, tolerance,
      duration_ms, **kwargs)


def test_ground_truth_file_round_trip(tmp_path):
  path = tmp_path / 'truth.txt'
  stream_scoring.write_ground_truth(path, [('no', 4000.5), ('yes', 1000.0)])
  assert path.read_text() == 'no, 4000.500000\nyes, 1000.000000\n'
  with open(path, 'a') as f:
    f.write('\nnot a pair\n_unknown_,2000\n')
  assert stream_scoring.read_ground_truth(path) == [
      ('yes', 1000.0), ('_unknown_', 2000.0), ('no', 4000.5)]
  path.write_text('yes, soon\n')
  with pytest.raises(ValueError, match='truth.txt:1'):
    stream_scoring.read_ground_truth(path)


def test_all_correct():
  stats = _accuracy([('yes', 900), ('no', 4100), ('_unknown_', 6800)])
  assert stats.outcomes == ('correct',) * 3
  assert (stats.num_ground_truth, stats.num_matched, stats.num_correct,
          stats.num_wrong, stats.num_false_positives) == (3, 3, 3, 0, 0)
  assert stats.delays_ms == (-100, 100, -200)
  assert stats.mean_delay_ms == pytest.approx(-200 / 3)
  assert stats.summary() == (
      '100.0% matched, 100.0% correctly, 0.0% wrongly, 0.0% false positives')


def test_wrong_label_and_repeats_are_wrong():
  stats = _accuracy([('no', 1000), ('no', 4000), ('no', 4500)])
  # A wrong label still matches its word; a second detection of a word
  # that is already matched is wrong too.
  assert stats.outcomes == ('wrong', 'correct', 'wrong')
  assert (stats.num_matched, stats.num_correct, stats.num_wrong) == (2, 1, 2)
  assert stats.summary() == (
      '66.7% matched, 33.3% correctly, 66.7% wrongly, 0.0% false positives')


def test_tolerance_and_false_positives():
  # 750 ms away still matches; 751 ms away is a false positive.
  stats = _accuracy([('yes', 250), ('no', 4751), ('yes', 9999)])
  assert stats.outcomes == ('correct', 'false_positive', 'false_positive')
  assert stats.false_positive_percent == pytest.approx(200 / 3)
  assert _accuracy([('yes', 1751)]).outcomes == ('false_positive',)
  assert _accuracy([('yes', 1750)]).outcomes == ('correct',)


def test_only_the_earliest_word_in_reach_counts():
  truth = [('yes', 1000.0), ('no', 1500.0)]
  # 'no' at 1400 ms is within reach of both; the tutorial compares it with
  # the earlier word only, so it is wrong.
  stats = _accuracy([('no', 1400)], truth=truth)
  assert stats.outcomes == ('wrong',)


def test_up_to_time_counts_only_words_so_far():
  stats = _accuracy([('yes', 1000)], up_to_time_ms=2000)
  # Words up to 2000 + 750 ms count.
  assert stats.num_ground_truth == 1
  assert stats.correct_percent == 100.0
  assert _accuracy([('yes', 1000)], up_to_time_ms=3300).num_ground_truth == 2


def test_no_ground_truth():
  stats = _accuracy([('yes', 10)], truth=[])
  assert stats.summary() == 'No ground truth yet, 1 false positives'
  assert math.isnan(stats.correct_percent)
  assert math.isnan(stats.mean_delay_ms)


def test_false_alarms_per_hour():
  stats = _accuracy([('no', 1000), ('yes', 20_000), ('yes', 30_000)],
                    duration_ms=30 * 60_000)
  # One wrong and two false positives in half an hour.
  assert stats.num_false_alarms == 3
  assert stats.false_alarms_per_hour == pytest.approx(6.0)
  report = stream_scoring.format_report(stats, 1000)
  assert '6.0 per hour' in report


def test_tutorial_defaults():
  params = inspect.signature(stream_scoring.evaluate_stream).parameters
  assert params['time_tolerance_ms'].default == 750
  assert params['clip_stride_ms'].default == 30
  settings = streaming.SmoothingSettings()
  assert (settings.average_window_ms, settings.detection_threshold,
          settings.suppression_ms, settings.minimum_count) == (500, 0.7, 1500,
                                                                3)


def test_generate_stream_and_score_end_to_end(tmp_path):
  """generate → stream → accuracy with a model that hears every word."""
  data_dir = fakes.make_dataset(str(tmp_path), RATE)
  wav, labels = str(tmp_path / 's.wav'), str(tmp_path / 's.txt')
  gen.run(data_dir=data_dir, test_dir=None, background_dir=None,
          output_audio_file=wav, output_labels_file=labels,
          wanted_words=('yes', 'no'),
          settings=gen.StreamSettings(sample_rate=RATE,
                                      test_duration_seconds=60), seed=7)
  truth = stream_scoring.read_ground_truth(labels)
  audio = audio_io.read_audio(wav, RATE)
  detections, stats = stream_scoring.evaluate_stream(
      fakes.ToneModel(RATE), fakes.LABELS, audio, truth, sample_rate=RATE,
      clip_duration_ms=1000, verbose=True)
  assert len(truth) == 20
  assert {label for label, _ in truth} == {'yes', 'no', '_unknown_'}
  assert stats.summary() == (
      '100.0% matched, 100.0% correctly, 0.0% wrongly, 0.0% false positives')
  assert stats.false_alarms_per_hour == 0.0
  assert stats.duration_ms == 60_000
  # The triggering clip holds the tone ([200, 600) ms into the word) and the
  # average needs a few hundred ms of it.
  assert all(-400 <= delay <= 200 for delay in stats.delays_ms)
  assert [d.label for d in detections] == [label for label, _ in truth]

  # A deaf model finds nothing; one that always says 'yes' is mostly wrong.
  deaf = lambda clip: np.array([1.0, 0, 0, 0], np.float32)
  _, stats = stream_scoring.evaluate_stream(deaf, fakes.LABELS, audio, truth,
                                 sample_rate=RATE, clip_duration_ms=1000)
  assert stats.num_correct == stats.num_matched == 0
  assert stats.summary().startswith('0.0% matched')


def test_command_line_with_shipped_model(tmp_path):
  # Skipped only where the model cannot be there or cannot run; a shipped
  # model that fails to load fails the test.
  if not os.path.isfile(inference.SHIPPED_MODEL):
    pytest.skip('No model is shipped with this copy.')
  try:
    inference.interpreter_class()
  except ImportError:
    pytest.skip('Neither ai-edge-litert nor TensorFlow is installed.')
  model = streaming.load_model()
  rate = model.sample_rate
  data_dir = fakes.make_dataset(str(tmp_path), rate)
  wav, labels = str(tmp_path / 's.wav'), str(tmp_path / 's.txt')
  gen.run(data_dir=data_dir, test_dir=None, background_dir=None,
          output_audio_file=wav, output_labels_file=labels,
          wanted_words=('yes', 'no'),
          settings=gen.StreamSettings(sample_rate=rate,
                                      test_duration_seconds=9), seed=0)
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.test_streaming_accuracy',
       f'--wav={wav}', f'--ground_truth={labels}',
       f'--clip_duration_ms={model.clip_duration_ms:g}'],
      check=True, capture_output=True, text=True, cwd=REPO)
  assert '% matched, ' in result.stdout
  assert 'per hour' in result.stdout


def test_command_line(tmp_path):
  data_dir = fakes.make_dataset(str(tmp_path), RATE)
  wav, labels = str(tmp_path / 's.wav'), str(tmp_path / 's.txt')
  gen.run(data_dir=data_dir, test_dir=None, background_dir=None,
          output_audio_file=wav, output_labels_file=labels,
          wanted_words=('yes', 'no'),
          settings=gen.StreamSettings(sample_rate=RATE,
                                      test_duration_seconds=15), seed=2)
  stdout = fakes.run_tool_with_tone_model(
      'kws_jax.test_streaming_accuracy',
      [f'--wav={wav}', f'--ground_truth={labels}', '--verbose'], RATE)
  lines = stdout.splitlines()
  assert lines[0] == ('Smoothing: window 500 ms, threshold 0.7, suppression '
                      "1500 ms, minimum count 3 (the tutorial's defaults).")
  assert lines[1] == (
      '100.0% matched, 100.0% correctly, 0.0% wrongly, 0.0% false positives')
  assert lines[2].startswith('0 false alarms') and 'per hour' in lines[2]
  assert lines[3].startswith('command detections: ') or (
      ' command detections: ' in lines[3])
  assert lines[-1].startswith('mean delay')

  with pytest.raises(subprocess.CalledProcessError) as error:
    fakes.run_tool_with_tone_model(
        'kws_jax.test_streaming_accuracy',
        [f'--wav={wav}', f'--ground_truth={labels}',
         '--clip_duration_ms=750'], RATE)
  assert '--clip_duration_ms=1000' in error.value.stderr
  # A label's own threshold: for a label the model has, as label=value.
  stdout = fakes.run_tool_with_tone_model(
      'kws_jax.test_streaming_accuracy',
      [f'--wav={wav}', f'--ground_truth={labels}',
       '--class_thresholds=no=1.0'], RATE)
  assert 'threshold 0.7 (no 1), suppression' in stdout
  assert '0.0% wrongly' in stdout and '100.0% correctly' not in stdout
  for bad, message in (('maybe=0.5', "['maybe'] in --class_thresholds, which"),
                       ('no:0.5', 'takes label=value pairs')):
    with pytest.raises(subprocess.CalledProcessError) as error:
      fakes.run_tool_with_tone_model(
          'kws_jax.test_streaming_accuracy',
          [f'--wav={wav}', f'--ground_truth={labels}',
           f'--class_thresholds={bad}'], RATE)
    assert error.value.stderr.startswith('Error: ') and message in (
        error.value.stderr), error.value.stderr


def test_non_command_words_that_fire_a_command():
  truth = [('_unknown_', 1000.0), ('_unknown_', 4000.0), ('yes', 7000.0),
           ('_unknown_', 10000.0)]
  # A command on the first unknown word (twice: one word), `_unknown_` on
  # the second (not a command), yes on yes, and a command far from any word.
  stats = _accuracy([('no', 1100), ('up', 1300), ('_unknown_', 4000),
                     ('yes', 7000), ('go', 20000)], truth=truth,
                    duration_ms=1.8e6)
  assert (stats.num_unknown_words, stats.num_unknown_fired) == (3, 1)
  assert stats.unknown_fired_percent == pytest.approx(100 / 3)
  assert stats.num_command_detections == 4
  assert stats.command_detections_per_hour == pytest.approx(8.0)
  report = stream_scoring.format_report(stats, 1000)
  assert '4 command detections: 8.0 per hour' in report
  assert '1 of 3 non-command words fired a command (33.3%)' in report
  # Without unknown words there is no share to give.
  assert 'non-command' not in stream_scoring.format_report(
      _accuracy([], truth=[('yes', 1000.0)]), 1000)


def test_commands_only_view_leaves_unknown_words_out():
  detections = [('yes', 1000), ('_unknown_', 2000), ('stop', 7100)]
  tutorial = _accuracy(detections)
  assert (tutorial.num_ground_truth, tutorial.num_correct,
          tutorial.num_wrong, tutorial.num_false_positives) == (3, 1, 1, 1)
  commands = _accuracy(detections, score_unknown=False)
  # Words to find: yes and no; the `_unknown_` detection is not scored; the
  # command fired at the non-command word is wrong, and counted as fired.
  assert (commands.num_ground_truth, commands.num_matched,
          commands.num_correct, commands.num_wrong,
          commands.num_false_positives) == (2, 1, 1, 1, 0)
  assert (commands.num_unknown_words, commands.num_unknown_fired) == (1, 1)
  assert commands.outcomes == ('correct', 'wrong')
  assert commands.correct_percent == 50.0
  only_unknown = _accuracy([('stop', 7100)], truth=[('_unknown_', 7000.0)],
                           score_unknown=False)
  assert only_unknown.summary() == (
      'No ground truth yet, 0 false positives, 1 wrong')


def test_settings_files_without_ignore_unknown_still_load(tmp_path):
  model_path = tmp_path / 'm.tflite'
  old = {'average_window_ms': 300, 'detection_threshold': 0.6,
         'suppression_ms': 750, 'minimum_count': 3}
  (tmp_path / 'm_smoothing.json').write_text(json.dumps(old))
  assert streaming.read_smoothing(model_path) == streaming.SmoothingSettings(
      300, 0.6, 750, 3, False)
  streaming.write_smoothing(model_path, streaming.SmoothingSettings(
      300, 0.6, 750, 3, True), {'chosen_on': 'x'})
  settings = streaming.read_smoothing(model_path)
  assert settings.ignore_unknown is True
  assert settings.describe().endswith(', commands only')
