"""Tests for kws_jax.streaming_roc."""

import csv
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from kws_jax import audio_io
from kws_jax import generate_streaming_test_wav as gen
from kws_jax import streaming_roc
from kws_jax.runtime import calibration
from kws_jax.runtime import stream_scoring
from kws_jax.runtime import streaming
import streaming_fakes as fakes

RATE = 8000


def _write_stream(root, seconds: float, seed: int = 0,
                  unseen_words_fold: str = '', **settings):
  """(wav, ground truth) paths of a fake stream of yes, no and non-command
  words, made in `root`."""
  data_dir = fakes.make_dataset(str(root), RATE)
  wav, labels = str(root / 's.wav'), str(root / 's.txt')
  gen.run(data_dir=data_dir, test_dir=None, background_dir=None,
          output_audio_file=wav, output_labels_file=labels,
          wanted_words=('yes', 'no'),
          settings=gen.StreamSettings(sample_rate=RATE,
                                      test_duration_seconds=seconds,
                                      word_gap_ms=1000, **settings),
          seed=seed, unseen_words_fold=unseen_words_fold)
  return wav, labels


def _make_stream(tmp_path_factory, seconds: float, seed: int):
  return _write_stream(tmp_path_factory.mktemp('roc'), seconds, seed)


@pytest.fixture(scope='module')
def stream(tmp_path_factory):
  return _make_stream(tmp_path_factory, 30, seed=1)


class _NoisyToneModel(fakes.ToneModel):
  """ToneModel whose scores wobble, so thresholds matter."""

  def __call__(self, clip):
    scores = super().__call__(clip)
    wobble = 0.5 + 0.5 * np.sin(self.calls * 0.7)
    top = int(np.argmax(scores))
    scores = scores * (1 - 0.5 * wobble)
    scores[top if self.calls % 3 else 2] += 0.5 * wobble
    return scores


def test_sweep_scores_once_and_matches_direct_runs(tmp_path, stream):
  wav, labels = stream
  audio = audio_io.read_audio(wav, RATE)
  truth = stream_scoring.read_ground_truth(labels)
  model = _NoisyToneModel(RATE)
  out = tmp_path / 'roc'
  points = streaming_roc.run(
      model, fakes.LABELS, [(audio, truth)], sample_rate=RATE,
      clip_duration_ms=1000, clip_stride_ms=30,
      thresholds=[0.3, 0.5, 0.7, 0.9], suppressions_ms=[500, 1500],
      average_windows_ms=[300, 500], minimum_count=3,
      in_use=streaming.SmoothingSettings(300, 0.7, 500, 3),
      time_tolerance_ms=750, output_dir=str(out))
  # The model ran once per stride, not once per setting.
  num_clips = (audio.shape[0] - RATE) // int(0.03 * RATE) + 1
  assert model.calls == num_clips

  assert len(points) == 16
  operating = [p for p in points if p.operating_point]
  assert len(operating) == 1
  assert operating[0].settings == streaming.SmoothingSettings(300, 0.7, 500, 3)

  # Each point is what streaming the file with that setting gives.
  for point in points[::5]:
    _, stats = stream_scoring.evaluate_stream(
        _NoisyToneModel(RATE), fakes.LABELS, audio, truth, sample_rate=RATE,
        clip_duration_ms=1000, settings=point.settings)
    assert stats == point.stats
  # Thresholds trade detections for false alarms.
  assert len({(p.stats.num_correct, p.stats.num_false_alarms)
              for p in points}) > 2

  with open(out / 'roc.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 16
  assert tuple(rows[0]) == calibration.CSV_FIELDS
  assert [r['operating_point'] for r in rows].count('True') == 1
  # One point is chosen, the one `choose` picks.
  assert [r['chosen'] for r in rows].count('True') == 1
  chosen = next(p for p in points if p.chosen)
  assert chosen == calibration.choose(points)
  assert float(rows[0]['false_alarms_per_hour']) == pytest.approx(
      points[0].stats.false_alarms_per_hour, abs=1e-3)
  assert (out / 'roc.png').stat().st_size > 10_000


@pytest.fixture(scope='module')
def second_stream(tmp_path_factory):
  return _make_stream(tmp_path_factory, 21, seed=2)


def test_several_streams_are_scored_apart_and_reported_pooled(
    tmp_path, stream, second_stream):
  inputs = [(audio_io.read_audio(wav, RATE),
             stream_scoring.read_ground_truth(labels))
            for wav, labels in (stream, second_stream)]
  model = _NoisyToneModel(RATE)
  out = tmp_path / 'roc'
  points = streaming_roc.run(
      model, fakes.LABELS, inputs, sample_rate=RATE, clip_duration_ms=1000,
      clip_stride_ms=30, thresholds=[0.3, 0.6, 0.9], suppressions_ms=[500],
      average_windows_ms=[300, 500], minimum_count=3,
      in_use=streaming.SmoothingSettings(300, 0.6, 500, 3),
      time_tolerance_ms=750, output_dir=str(out))
  # The model ran once per stride of each stream, not once per setting.
  num_clips = [(audio.shape[0] - RATE) // int(0.03 * RATE) + 1
               for audio, _ in inputs]
  assert model.calls == sum(num_clips)
  # Each stream's figures are what streaming that file alone gives (the
  # stub's scores depend on its calls: the second stream's model has made
  # the first stream's).
  for point in points[::2]:
    for (audio, truth), stats, calls in zip(inputs, point.streams,
                                            (0, num_clips[0])):
      alone = _NoisyToneModel(RATE)
      alone.calls = calls
      assert stats == stream_scoring.evaluate_stream(
          alone, fakes.LABELS, audio, truth, sample_rate=RATE,
          clip_duration_ms=1000, settings=point.settings)[1]
  # The figures reported are the sums over the streams.
  with open(out / 'roc.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == len(points) == 6
  for point, row in zip(points, rows):
    first, second = point.streams
    for count in ('num_ground_truth', 'num_correct', 'num_wrong',
                  'num_false_positives'):
      assert int(row[count]) == getattr(first, count) + getattr(
          second, count)
    assert float(row['correct_percent']) == pytest.approx(
        100 * (first.num_correct + second.num_correct) /
        (first.num_ground_truth + second.num_ground_truth), abs=1e-4)
    assert float(row['false_alarms_per_hour']) == pytest.approx(
        (first.num_false_alarms + second.num_false_alarms) * 3_600_000 /
        (30_000 + 21_000), abs=1e-3)
    assert float(row['worst_false_alarm_percent']) == pytest.approx(
        max(first.false_alarm_percent, second.false_alarm_percent), abs=1e-4)
  assert len({(p.stats.num_correct, p.stats.num_false_alarms)
              for p in points}) > 2
  # The rule: within 3% on each stream, then the most correct detections.
  chosen = next(p for p in points if p.chosen)
  within = [p for p in points
            if all(s.false_alarm_percent <= 3.0 for s in p.streams)]
  if within:
    assert chosen in within
    assert chosen.stats.num_correct == max(p.stats.num_correct
                                           for p in within)


def test_a_stream_without_words_to_find_is_refused(tmp_path):
  audio = np.zeros(2 * RATE, np.float32)
  for truth, ignore_unknown in (([], False),
                                ([('_unknown_', 500.0)], True)):
    with pytest.raises(ValueError, match='Stream 1 has no words to find'):
      streaming_roc.run(
          fakes.ToneModel(RATE), fakes.LABELS, [(audio, truth)],
          sample_rate=RATE, clip_duration_ms=1000, clip_stride_ms=30,
          thresholds=[0.5], suppressions_ms=[500], average_windows_ms=[300],
          minimum_count=3,
          in_use=streaming.SmoothingSettings(300, 0.5, 500, 3,
                                             ignore_unknown),
          time_tolerance_ms=750, output_dir=str(tmp_path))


def test_operating_point_outside_the_sweep_is_added(tmp_path, stream):
  wav, labels = stream
  audio = audio_io.read_audio(wav, RATE)
  points = streaming_roc.run(
      fakes.ToneModel(RATE), fakes.LABELS,
      [(audio, stream_scoring.read_ground_truth(labels))], sample_rate=RATE,
      clip_duration_ms=1000,
      clip_stride_ms=30, thresholds=[0.5, 0.9], suppressions_ms=[500],
      average_windows_ms=[500], minimum_count=3,
      in_use=streaming.SmoothingSettings(500, 0.7, 500, 3),
      time_tolerance_ms=750, output_dir=str(tmp_path))
  assert [p.settings.detection_threshold for p in points] == [0.5, 0.9, 0.7]
  assert [p.operating_point for p in points] == [False, False, True]
  # The stub hears every word: all correct, no false alarms (with a
  # suppression shorter than the shortest gap between words).
  assert all(p.stats.correct_percent == 100.0 for p in points)
  assert all(p.stats.false_alarms_per_hour == 0.0 for p in points)


def test_command_line(tmp_path, stream):
  wav, labels = stream
  out = tmp_path / 'cli'
  stdout = fakes.run_tool_with_tone_model(
      'kws_jax.streaming_roc',
      [f'--wav={wav}', f'--ground_truth={labels}', f'--output_dir={out}',
       '--thresholds=0.5,0.7,0.9', '--suppression_ms=500,1500',
       '--average_window_ms=500'], RATE)
  assert stdout.count('false alarms/hour') == 6 + 1  # The chosen point again.
  assert 'In use: window 500 ms, threshold 0.7, suppression 1500 ms, ' \
      "minimum count 3 (the tutorial's defaults)." in stdout
  assert '<- in use' in stdout and '<- chosen' in stdout
  assert sorted(os.listdir(out)) == ['roc.csv', 'roc.png']


def test_command_line_with_two_streams(tmp_path, stream, second_stream):
  (wav, labels), (wav2, labels2) = stream, second_stream
  out = tmp_path / 'cli'
  stdout = fakes.run_tool_with_tone_model(
      'kws_jax.streaming_roc',
      [f'--wav={wav},{wav2}', f'--ground_truth={labels},{labels2}',
       f'--output_dir={out}', '--thresholds=0.5,0.9',
       '--suppression_ms=500', '--average_window_ms=500'], RATE)
  # One line a setting (pooled), then each stream for the chosen point and
  # the point in use.
  assert stdout.count('false alarms/hour') == 3 + 1
  lines = stdout.splitlines()
  chosen = next(i for i, line in enumerate(lines)
                if line.startswith('Chosen: '))
  assert lines[chosen + 1].startswith(f'  on {wav}: ')
  assert lines[chosen + 2].startswith(f'  on {wav2}: ')
  assert lines[chosen + 3] == (
      'In use, window 500 ms, threshold 0.7, suppression 1500 ms, minimum '
      'count 3, on each stream:')
  assert lines[chosen + 5].startswith(f'  on {wav2}: ')
  assert '% matched, ' in lines[chosen + 5]

  with pytest.raises(subprocess.CalledProcessError) as error:
    fakes.run_tool_with_tone_model(
        'kws_jax.streaming_roc',
        [f'--wav={wav},{wav2}', f'--ground_truth={labels}',
         f'--output_dir={out}'], RATE)
  assert ('--wav names 2 streams but --ground_truth 1 files; give one '
          'ground-truth file per stream, in the same order.'
          in error.value.stderr)


def test_written_settings_are_used_by_the_tools_unless_flags_say_otherwise(
    tmp_path, stream):
  wav, labels = stream
  model_path = tmp_path / 'my_model.tflite'
  stdout = fakes.run_tool_with_tone_model(
      'kws_jax.streaming_roc',
      [f'--wav={wav}', f'--ground_truth={labels}',
       f'--output_dir={tmp_path / "roc"}', '--thresholds=0.5,0.95',
       '--suppression_ms=400', '--average_window_ms=300',
       '--write_smoothing'], RATE, model_path=str(model_path))
  written = tmp_path / 'my_model_smoothing.json'
  assert f'Wrote {written}' in stdout
  payload = json.loads(written.read_text())
  assert payload['average_window_ms'] == 300
  assert payload['suppression_ms'] == 400
  assert payload['detection_threshold'] in (0.5, 0.95)
  assert payload['chosen_on'] == [str(wav)]
  chosen = streaming.read_smoothing(model_path)
  assert chosen.average_window_ms == 300

  stdout = fakes.run_tool_with_tone_model(
      'kws_jax.test_streaming_accuracy',
      [f'--wav={wav}', f'--ground_truth={labels}'], RATE,
      model_path=str(model_path))
  assert f'Smoothing: {chosen.describe()} (calibrated, {written}).' in stdout
  stdout = fakes.run_tool_with_tone_model(
      'kws_jax.test_streaming_accuracy',
      [f'--wav={wav}', f'--ground_truth={labels}',
       '--detection_threshold=0.8'], RATE, model_path=str(model_path))
  assert ('threshold 0.8, suppression 400 ms' in stdout and
          f'(--detection_threshold; the rest calibrated, {written})' in stdout)


def test_a_broken_settings_file_is_named(tmp_path):
  model_path = tmp_path / 'm.tflite'
  (tmp_path / 'm_smoothing.json').write_text('{"average_window_ms": 300}')
  with pytest.raises(ValueError, match='m_smoothing.json is not a smoothing'):
    streaming.read_smoothing(model_path)
  assert streaming.read_smoothing(tmp_path / 'other.tflite') is None


def test_a_settings_file_says_yes_or_no_with_json_booleans(tmp_path):
  model_path = tmp_path / 'm.tflite'
  (tmp_path / 'm_smoothing.json').write_text(json.dumps(
      {'average_window_ms': 300, 'detection_threshold': 0.6,
       'suppression_ms': 750, 'minimum_count': 3, 'ignore_unknown': 'false'}))
  with pytest.raises(ValueError, match='ignore_unknown must be true or false'):
    streaming.read_smoothing(model_path)


def test_unseen_words_streams_on_the_command_line(tmp_path, stream):
  wav, labels = stream
  unseen_wav, unseen_labels = _write_stream(
      tmp_path, 20, unseen_words_fold='1/2', unknown_percentage=100)
  model_path = tmp_path / 'my_model.tflite'
  stdout = fakes.run_tool_with_tone_model(
      'kws_jax.streaming_roc',
      [f'--wav={wav}', f'--ground_truth={labels}',
       f'--output_dir={tmp_path / "roc"}', '--thresholds=0.5,0.9',
       '--suppression_ms=500', '--average_window_ms=500',
       f'--unseen_words_wav={unseen_wav}',
       f'--unseen_words_ground_truth={unseen_labels}',
       f'--unseen_words_graph={model_path}', '--write_smoothing'], RATE,
      model_path=str(model_path))
  # The stub hears bed and cat as `_unknown_`: none fires a command.
  words = len(stream_scoring.read_ground_truth(unseen_labels))
  assert (f'  on {unseen_wav}: 0 of {words} unseen non-command words fired '
          'a command (0.0%)') in stdout
  assert '; 0.0% of unseen non-command words fired a command' in stdout
  payload = json.loads((tmp_path / 'my_model_smoothing.json').read_text())
  assert payload['unseen_fired_percent'] == 0.0
  assert payload['unseen_words_chosen_on'] == [unseen_wav]
  assert 'non-command words their models never heard' in payload['rule']
  with open(tmp_path / 'roc' / 'roc.csv', newline='') as f:
    assert {row['unseen_fired_percent'] for row in csv.DictReader(f)} == {
        '0.0'}
  with pytest.raises(subprocess.CalledProcessError) as error:
    fakes.run_tool_with_tone_model(
        'kws_jax.streaming_roc',
        [f'--wav={wav}', f'--ground_truth={labels}',
         f'--output_dir={tmp_path / "roc2"}',
         f'--unseen_words_wav={unseen_wav},{unseen_wav}',
         f'--unseen_words_ground_truth={unseen_labels}',
         f'--unseen_words_graph={model_path}'], RATE)
  assert ('--unseen_words_wav names 2 streams, --unseen_words_ground_truth 1 '
          'files and --unseen_words_graph 1 models' in error.value.stderr)


def test_an_unseen_words_stream_needs_non_command_words(tmp_path, stream):
  wav, labels = stream
  audio = audio_io.read_audio(wav, RATE)
  truth = stream_scoring.read_ground_truth(labels)
  commands = [(label, t) for label, t in truth if label != '_unknown_']
  with pytest.raises(ValueError, match='Unseen-words stream 1 has no '
                     'non-command word'):
    streaming_roc.run(
        fakes.ToneModel(RATE), fakes.LABELS, [(audio, truth)],
        sample_rate=RATE, clip_duration_ms=1000, clip_stride_ms=30,
        thresholds=[0.5], suppressions_ms=[500], average_windows_ms=[500],
        minimum_count=3, in_use=streaming.SmoothingSettings(),
        time_tolerance_ms=750, output_dir=str(tmp_path),
        unseen_words=[(fakes.ToneModel(RATE), audio, commands)])


def _common_sh(tmp_path, function, argument):
  """Runs a function of experiments/streaming_common.sh on one argument."""
  return subprocess.run(
      ['bash', '-c', f'out={tmp_path} data={tmp_path}; '
       f'source experiments/streaming_common.sh; {function} "$0"',
       str(argument)], capture_output=True, text=True,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_calibration_finds_a_points_unseen_words_folds(tmp_path):
  # streaming_calibration.sh --unseen_words=POINT takes the folds that
  # experiments.sweep runs beside POINT: POINT,fold=i_k for i = 1..k.
  def fold_count(point):
    return _common_sh(tmp_path, 'unseen_fold_count', point)
  point = tmp_path / 'w1.2_s0'
  point.mkdir()
  missing = fold_count(point)
  assert missing.returncode != 0
  assert f'No unseen-words folds beside {point}' in missing.stderr
  for i in (1, 3):
    (tmp_path / f'w1.2_s0,fold={i}_3').mkdir()
  gap = fold_count(point)
  assert gap.returncode != 0
  assert f'Fold 2 of 3 is missing: no {point},fold=2_3.' in gap.stderr
  (tmp_path / 'w1.2_s0,fold=2_3').mkdir()
  found = fold_count(point)
  assert (found.returncode, found.stdout) == (0, '3\n')
  # An ensemble's members, comma-separated: each needs the same folds.
  other = tmp_path / 'w1.2_s1'
  other.mkdir()
  for i in (1, 2):
    (tmp_path / f'w1.2_s1,fold={i}_2').mkdir()
  mismatch = fold_count(f'{point},{other}')
  assert mismatch.returncode != 0
  assert f'{other} has 2 unseen-words folds, the workdir before it 3' in (
      mismatch.stderr)
  for i in (1, 2, 3):
    (tmp_path / f'w1.2_s1,fold={i}_3').mkdir()
  shutil.rmtree(tmp_path / 'w1.2_s1,fold=1_2')
  shutil.rmtree(tmp_path / 'w1.2_s1,fold=2_2')
  both = fold_count(f'{point},{other}')
  assert (both.returncode, both.stdout) == (0, '3\n')
  # A sweep folder named by its settings holds commas of its own.
  named = tmp_path / 'lr=0.01,seed=1'
  named.mkdir()
  for i in (1, 2, 3):
    (tmp_path / f'lr=0.01,seed=1,fold={i}_3').mkdir()
  assert fold_count(f'{named},{point}').stdout == '3\n'


def test_per_label_thresholds_on_the_command_line(tmp_path, stream):
  # The stub says yes weakly and hears non-command words as no: one
  # threshold for all must stay over no's 0.8, which misses every yes; yes
  # gets a threshold of its own.
  wav, labels = stream
  model_path = tmp_path / 'my_model.tflite'
  stdout = fakes.run_tool_with_tone_model(
      'kws_jax.streaming_roc',
      [f'--wav={wav}', f'--ground_truth={labels}',
       f'--output_dir={tmp_path / "roc"}', '--thresholds=0.5,0.95',
       '--suppression_ms=500', '--average_window_ms=500',
       '--per_label_thresholds', '--write_smoothing'], RATE,
      model_path=str(model_path), model_class='TemptedToneModel')
  written = streaming.read_smoothing(model_path)
  assert (written.detection_threshold, written.class_thresholds) == (
      0.95, (('yes', 0.5),))
  assert ('One threshold for all labels: window 500 ms, threshold 0.95, '
          'suppression 500 ms') in stdout
  assert f'Chosen: {written.describe()} (' in stdout
  with open(tmp_path / 'roc' / 'roc.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  chosen = [row for row in rows if row['chosen'] == 'True']
  assert len(chosen) == 1 and chosen[0]['class_thresholds'] == 'yes=0.5'
  refined = float(chosen[0]['correct_percent'])
  grid = [float(row['correct_percent']) for row in rows
          if row['detection_threshold'] == '0.95' and
          not row['class_thresholds']]
  assert len(grid) == 1 and refined > grid[0]
  # The calibration scripts read the chosen row back as the tools' flags,
  # which find as many words on the same stream.
  flags = _common_sh(tmp_path, 'chosen_settings', tmp_path / 'roc')
  assert flags.returncode == 0, flags.stderr
  want = ['--average_window_ms=500.0', '--detection_threshold=0.95',
          '--suppression_ms=500.0', '--minimum_count=3',
          '--class_thresholds=yes=0.5']
  assert flags.stdout.split() == want
  stdout = fakes.run_tool_with_tone_model(
      'kws_jax.test_streaming_accuracy',
      [f'--wav={wav}', f'--ground_truth={labels}', *want], RATE,
      model_class='TemptedToneModel')
  assert f'Smoothing: {written.describe()} (' in stdout
  assert f'{refined:.1f}% correctly' in stdout


def test_chosen_settings_names_a_roc_without_one_choice(tmp_path):
  (tmp_path / 'roc.csv').write_text(
      ','.join(calibration.CSV_FIELDS) + '\n')
  missing = _common_sh(tmp_path, 'chosen_settings', tmp_path / 'nowhere')
  assert missing.returncode != 0
  assert 'Cannot read' in missing.stderr and 'Traceback' not in (
      missing.stderr)
  result = _common_sh(tmp_path, 'chosen_settings', tmp_path)
  assert result.returncode != 0
  assert f'{tmp_path}/roc.csv marks 0 chosen points, not 1' in result.stderr


@pytest.mark.parametrize('script', ['streaming_calibration.sh',
                                    'calibration_rule_check.sh'])
def test_a_point_without_folds_fails_before_any_stream(tmp_path, script):
  point = tmp_path / 'w1.2_s0'
  point.mkdir()
  out = tmp_path / 'out'
  result = subprocess.run(
      ['bash', f'experiments/{script}', str(tmp_path / 'm.tflite'),
       str(tmp_path), str(out), f'--unseen_words={point}'],
      capture_output=True, text=True,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode != 0
  assert f'No unseen-words folds beside {point}' in result.stderr
  assert not list(out.glob('*.wav'))


def test_unseen_roc_flags_name_every_fold_but_the_one_left_out(tmp_path):
  def flags(*left_out):
    return subprocess.run(
        ['bash', '-c', f'out={tmp_path} data={tmp_path} folds=3; '
         'source experiments/streaming_common.sh; unseen_roc_flags "$@"',
         'bash', *left_out], capture_output=True, text=True, check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ).stdout.splitlines()
  assert flags() == [
      f'--unseen_words_wav={tmp_path}/unseen_validation_1.wav,'
      f'{tmp_path}/unseen_validation_2.wav,{tmp_path}/unseen_validation_3.wav',
      f'--unseen_words_ground_truth={tmp_path}/unseen_validation_1.txt,'
      f'{tmp_path}/unseen_validation_2.txt,{tmp_path}/unseen_validation_3.txt',
      f'--unseen_words_graph={tmp_path}/unseen_fold_1.tflite,'
      f'{tmp_path}/unseen_fold_2.tflite,{tmp_path}/unseen_fold_3.tflite']
  assert flags('2') == [
      f'--unseen_words_wav={tmp_path}/unseen_validation_1.wav,'
      f'{tmp_path}/unseen_validation_3.wav',
      f'--unseen_words_ground_truth={tmp_path}/unseen_validation_1.txt,'
      f'{tmp_path}/unseen_validation_3.txt',
      f'--unseen_words_graph={tmp_path}/unseen_fold_1.tflite,'
      f'{tmp_path}/unseen_fold_3.tflite']
