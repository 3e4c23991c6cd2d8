"""Tests for kws_jax.generate_streaming_test_wav."""

import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kws_jax import audio_io
from kws_jax import generate_streaming_test_wav as gen
from kws_jax import speech_commands_builder
from kws_jax.runtime import stream_scoring
import streaming_fakes as fakes

RATE = 8000
WANTED = ('yes', 'no')


def _settings(**kwargs):
  defaults = dict(sample_rate=RATE, test_duration_seconds=30)
  return gen.StreamSettings(**{**defaults, **kwargs})


def _run(tmp_path, data_dir, seed=0, name='stream', **kwargs):
  settings = _settings(**kwargs)
  wav = str(tmp_path / f'{name}.wav')
  labels = str(tmp_path / f'{name}.txt')
  truth = gen.run(data_dir=data_dir, test_dir=None, background_dir=None,
                  output_audio_file=wav, output_labels_file=labels,
                  wanted_words=WANTED, settings=settings, seed=seed)
  return audio_io.read_audio(wav, RATE), truth, labels


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return fakes.make_dataset(str(tmp_path_factory.mktemp('sc')), RATE)


def test_mix_in_audio_sample_fades():
  # The tutorial's check: full level inside, nothing after the piece.
  track = np.zeros(10000)
  gen.mix_in_audio_sample(track, 2000, np.ones(1000), 0, 1000, 1.0, 100, 100)
  assert track[2500] == pytest.approx(1.0)
  assert track[3500] == 0.0
  assert track[2000] == 0.0 and track[2050] == pytest.approx(0.5)
  assert track[2950] == pytest.approx(0.5)
  # Cut short by the end of the track, and by the end of the sample.
  track = np.zeros(100)
  gen.mix_in_audio_sample(track, 90, np.ones(50), 0, 50, 2.0, 0, 0)
  np.testing.assert_array_equal(track[90:], 2.0)
  track = np.zeros(100)
  gen.mix_in_audio_sample(track, 0, np.ones(50), 40, 50, 1.0, 0, 0)
  np.testing.assert_array_equal(track, (np.arange(100) < 10).astype(float))


def test_background_segments_crossfade_to_constant_level():
  # Segments of ones, each fading into the next: the sum stays at one.
  track = np.zeros(1000)
  for offset in range(0, 1000, 200):
    gen.mix_in_audio_sample(track, offset, np.ones(250), 0, 250, 1.0,
                            50 if offset else 0, 50)
  np.testing.assert_allclose(track, 1.0)


def test_words_and_times(tmp_path, data_dir):
  audio, truth, labels_path = _run(tmp_path, data_dir)
  assert audio.shape == (30 * RATE,)
  # One word per clip + gap (3 s), placed at a random point of the gap.
  assert len(truth) == 10
  for i, (label, time_ms) in enumerate(truth):
    assert label in ('yes', 'no', '_unknown_')
    assert 3000 * i <= time_ms < 3000 * i + 2000
  assert stream_scoring.read_ground_truth(labels_path) == [
      (label, pytest.approx(time_ms, abs=1e-3)) for label, time_ms in truth]
  # The time is where the word's clip starts: the stub model hears the
  # labelled word in the clip starting there, despite the noise.
  model = fakes.ToneModel(RATE)
  for label, time_ms in truth:
    start = int(round(time_ms * RATE / 1000))
    scores = model(audio[start:start + RATE])
    assert fakes.LABELS[int(np.argmax(scores))] == label
  # Background noise is there where the word's clip is silent.
  start = int(round(truth[0][1] * RATE / 1000))
  quiet = audio[start + int(0.65 * RATE):start + int(0.95 * RATE)]
  assert 0 < np.abs(quiet).max() < 0.2


def test_seed_reproduces(tmp_path, data_dir):
  first, truth, _ = _run(tmp_path, data_dir, seed=3, name='a')
  again, truth_again, _ = _run(tmp_path, data_dir, seed=3, name='b')
  other, truth_other, _ = _run(tmp_path, data_dir, seed=4, name='c')
  np.testing.assert_array_equal(first, again)
  assert truth == truth_again
  assert truth != truth_other
  assert not np.array_equal(first, other)


@pytest.mark.parametrize('percentage', [0, 100])
def test_unknown_percentage(tmp_path, data_dir, percentage):
  _, truth, _ = _run(tmp_path, data_dir, unknown_percentage=percentage)
  is_unknown = [label == '_unknown_' for label, _ in truth]
  assert all(is_unknown) if percentage else not any(is_unknown)


def test_testing_list_is_honoured(data_dir):
  clips = gen.find_test_clips(data_dir, WANTED)
  names = {label: sorted(os.path.relpath(p, data_dir) for p in paths)
           for label, paths in clips.items()}
  # Only even-numbered clips are listed; 'bed' is FLAC though listed as .wav.
  assert names == {
      'yes': ['yes/00000000_nohash_0.wav', 'yes/00000002_nohash_0.wav'],
      'no': ['no/00000000_nohash_0.wav', 'no/00000002_nohash_0.wav'],
      '_unknown_': ['bed/00000000_nohash_0.flac',
                    'bed/00000002_nohash_0.flac',
                    'cat/00000000_nohash_0.wav', 'cat/00000002_nohash_0.wav']}


def test_hash_split_without_list(tmp_path):
  names = [f'{i:08x}_nohash_0.wav' for i in range(60)]
  for word in ('yes', 'no', 'bed'):
    for name in names:
      fakes.write(str(tmp_path / word / name), np.zeros(10, np.float32), RATE)
  clips = gen.find_test_clips(str(tmp_path), WANTED, 10, 10)
  want = [name for name in names if speech_commands_builder.which_set(
      name, 10, 10) == 'testing']
  assert want
  for label, word in (('yes', 'yes'), ('no', 'no'), ('_unknown_', 'bed')):
    assert [os.path.basename(p) for p in clips[label]] == want
    assert all(f'{os.sep}{word}{os.sep}' in p for p in clips[label])


def test_validation_split_is_its_own(tmp_path):
  # The hash split: the validation stream's words are validation clips,
  # none of them test clips.
  names = [f'{i:08x}_nohash_0.wav' for i in range(60)]
  for word in ('yes', 'no', 'bed'):
    for name in names:
      fakes.write(str(tmp_path / word / name), np.zeros(10, np.float32), RATE)
  validation = gen.find_test_clips(str(tmp_path), WANTED, 10, 10,
                                   split='validation')
  testing = gen.find_test_clips(str(tmp_path), WANTED, 10, 10)
  want = [name for name in names if speech_commands_builder.which_set(
      name, 10, 10) == 'validation']
  assert want
  assert [os.path.basename(p) for p in validation['yes']] == want
  assert not set(validation['yes']) & set(testing['yes'])
  # With the split lists, validation_list.txt names the clips.
  (tmp_path / 'validation_list.txt').write_text(f'no/{names[0]}\n')
  listed = gen.find_test_clips(str(tmp_path), ('no',), unknown_percentage=0,
                               split='validation')
  assert [os.path.basename(p) for p in listed['no']] == [names[0]]
  with pytest.raises(ValueError, match='--split=train: use one of'):
    gen.find_test_clips(str(tmp_path), WANTED, split='train')
  # With only the test list, as for training: the validation split is
  # empty (unlisted clips train), never the hash split's.
  (tmp_path / 'validation_list.txt').unlink()
  (tmp_path / 'testing_list.txt').write_text(f'no/{names[1]}\n')
  with pytest.raises(ValueError, match='No test clips for no'):
    gen.find_test_clips(str(tmp_path), ('no',), unknown_percentage=0,
                        split='validation')


def test_noise_only_stream_has_background_and_no_words(tmp_path, data_dir):
  audio, truth, labels = _run(tmp_path, data_dir, noise_only=True)
  assert truth == []
  assert stream_scoring.read_ground_truth(labels) == []
  assert audio.shape == (30 * RATE,)
  assert 0 < np.sqrt(np.mean(audio ** 2)) < 0.2
  # Without noise to play it would be silence: refused, not written.
  with pytest.raises(ValueError, match='--noise_only needs background'):
    _run(tmp_path, data_dir, name='silent', noise_only=True,
         background_volume=0.0)


def test_missing_word_raises(data_dir):
  with pytest.raises(ValueError, match='No test clips for go'):
    gen.find_test_clips(data_dir, ('yes', 'go'))


def test_test_dir_layout(tmp_path):
  test_dir = tmp_path / 'test_set'
  fakes.write(str(test_dir / 'yes' / 'a_nohash_0.wav'),
              fakes.tone_word('yes', RATE), RATE)
  fakes.write(str(test_dir / 'no' / 'b_nohash_0.wav'),
              fakes.tone_word('no', RATE), RATE)
  fakes.write(str(test_dir / '_unknown_' / 'cat_c_nohash_0.wav'),
              fakes.tone_word('cat', RATE), RATE)
  noise = np.random.default_rng(0).uniform(-0.5, 0.5, RATE)
  fakes.write(str(test_dir / '_silence_' / '0.wav'), noise.astype(np.float32),
              RATE)
  wav, labels = str(tmp_path / 'out' / 's.wav'), str(tmp_path / 'out' / 's.txt')
  truth = gen.run(data_dir=None, test_dir=str(test_dir), background_dir=None,
                  output_audio_file=wav, output_labels_file=labels,
                  wanted_words=WANTED, settings=_settings(), seed=1)
  audio = audio_io.read_audio(wav, RATE)
  model = fakes.ToneModel(RATE)
  assert {label for label, _ in truth} == {'yes', 'no', '_unknown_'}
  for label, time_ms in truth:
    start = int(round(time_ms * RATE / 1000))
    assert fakes.LABELS[int(np.argmax(model(audio[start:start + RATE])))] == (
        label)
  # The _silence_ clips became the background.
  assert np.abs(audio[:int(truth[0][1] * RATE / 1000)]).max() > 0


def test_command_line(tmp_path, data_dir):
  wav, labels = tmp_path / 'cli.wav', tmp_path / 'cli.txt'
  subprocess.run(
      [sys.executable, '-m', 'kws_jax.generate_streaming_test_wav',
       f'--data_dir={data_dir}', f'--output_audio_file={wav}',
       f'--output_labels_file={labels}', '--test_duration_seconds=12',
       '--sample_rate=8000', '--wanted_words=yes,no', '--seed=5'],
      check=True, capture_output=True, cwd=os.path.dirname(
          os.path.dirname(os.path.abspath(__file__))))
  audio = audio_io.read_audio(wav, RATE)
  assert audio.shape == (12 * RATE,)
  assert len(stream_scoring.read_ground_truth(labels)) == 4


def test_test_dir_silence_is_preferred_to_a_data_dirs_noise(tmp_path, caplog):
  # The default --data_dir may exist and hold other noise: the test folder
  # named by the user gives the background.
  test_dir = tmp_path / 'test_set'
  fakes.write(str(test_dir / 'yes' / 'a_nohash_0.wav'),
              fakes.tone_word('yes', RATE), RATE)
  fakes.write(str(test_dir / 'no' / 'b_nohash_0.wav'),
              fakes.tone_word('no', RATE), RATE)
  fakes.write(str(test_dir / '_unknown_' / 'cat_c_nohash_0.wav'),
              fakes.tone_word('cat', RATE), RATE)
  fakes.write(str(test_dir / '_silence_' / '0.wav'),
              np.full(RATE, 0.5, np.float32), RATE)
  data_dir = tmp_path / 'speech_dataset'
  fakes.write(str(data_dir / '_background_noise_' / 'n.wav'),
              np.zeros(RATE, np.float32), RATE)
  wav, labels = str(tmp_path / 's.wav'), str(tmp_path / 's.txt')
  with caplog.at_level(logging.INFO, logger='absl'):
    gen.run(data_dir=str(data_dir), test_dir=str(test_dir),
            background_dir=None, output_audio_file=wav,
            output_labels_file=labels, wanted_words=WANTED,
            settings=_settings(), seed=1)
  assert (f'Background noise: 1 recordings from {test_dir / "_silence_"}'
          in caplog.text)


def _speakers_dataset(root, num_speakers=24):
  """Two clips a speaker for yes, no and bed, all in testing_list.txt."""
  listed = []
  for word in ('yes', 'no', 'bed'):
    for i in range(num_speakers):
      for n in range(2):
        name = f'{i:08x}_nohash_{n}.wav'
        fakes.write(str(root / word / name), np.zeros(10, np.float32), RATE)
        listed.append(f'{word}/{name}')
  (root / 'testing_list.txt').write_text('\n'.join(listed) + '\n')
  return str(root)


def _speakers(clips):
  return {speech_commands_builder.speaker_id(p)
          for paths in clips.values() for p in paths}


@pytest.mark.parametrize('num_groups', [2, 3])
def test_speaker_groups_are_disjoint_cover_everything_and_keep_speakers(
    tmp_path, num_groups):
  data_dir = _speakers_dataset(tmp_path)
  every = gen.find_test_clips(data_dir, WANTED)
  groups = [gen.find_test_clips(data_dir, WANTED,
                                speaker_group=(i, num_groups))
            for i in range(1, num_groups + 1)]
  for label, paths in every.items():
    # Each clip is in exactly one group.
    assert sorted(p for group in groups for p in group[label]) == paths
  # A speaker's clips, of every word, are all in one group.
  speaker_sets = [_speakers(group) for group in groups]
  assert sum(len(s) for s in speaker_sets) == len(_speakers(every)) == 24
  assert all(speaker_sets)
  assert groups == [gen.find_test_clips(data_dir, WANTED,
                                        speaker_group=(i, num_groups))
                    for i in range(1, num_groups + 1)]


def test_a_speakers_group_depends_on_its_id_alone(tmp_path):
  # The same speaker lands in the same group whatever else the data holds
  # (a fixed hash of the id: these values are part of the streams' recipe).
  assert [speech_commands_builder.speaker_group(f'{i:08x}', 2)
          for i in range(8)] == [2, 2, 1, 1, 2, 1, 2, 1]
  assert speech_commands_builder.speaker_id('no/0a1b_nohash_3.wav') == '0a1b'
  assert speech_commands_builder.speaker_id('no/0a1b.wav') is None
  large = gen.find_test_clips(_speakers_dataset(tmp_path / 'large'), WANTED,
                              speaker_group=(1, 2))
  small = gen.find_test_clips(_speakers_dataset(tmp_path / 'small', 5),
                              WANTED, speaker_group=(1, 2))
  assert _speakers(small) == {s for s in _speakers(large)
                              if int(s, 16) < 5}


def test_speaker_group_streams_log_their_speakers(tmp_path, caplog):
  data_dir = _speakers_dataset(tmp_path)
  wav, labels = str(tmp_path / 's.wav'), str(tmp_path / 's.txt')
  with caplog.at_level(logging.INFO, logger='absl'):
    gen.run(data_dir=data_dir, test_dir=None, background_dir=None,
            output_audio_file=wav, output_labels_file=labels,
            wanted_words=WANTED, settings=_settings(), seed=1,
            speaker_group='2/3')
  group = gen.find_test_clips(data_dir, WANTED, speaker_group=(2, 3))
  assert (f'Speaker group 2/3: {len(_speakers(group))} speakers, '
          f'{len(_speakers(group)) * 6} clips.') in caplog.text
  assert len(stream_scoring.read_ground_truth(labels)) == 10


@pytest.mark.parametrize('spec', ['3/2', '1/1', '0/2', 'half', '1/2/3'])
def test_a_bad_speaker_group_is_refused(tmp_path, data_dir, spec):
  with pytest.raises(ValueError, match=(
      rf"--speaker_group='{spec}' must be \"i/k\", speaker group i of k")):
    gen.run(data_dir=data_dir, test_dir=None, background_dir=None,
            output_audio_file=str(tmp_path / 's.wav'),
            output_labels_file=str(tmp_path / 's.txt'), wanted_words=WANTED,
            settings=_settings(), speaker_group=spec)
  assert not (tmp_path / 's.wav').exists()


def test_speaker_groups_of_a_test_dir_and_names_without_a_speaker(tmp_path):
  test_dir = tmp_path / 'test_set'
  for i in range(12):
    for word in ('yes', 'no', '_unknown_'):
      fakes.write(str(test_dir / word / f's{i}_nohash_0.wav'),
                  np.zeros(10, np.float32), RATE)
  halves = [gen.find_test_dir_clips(str(test_dir), WANTED,
                                    speaker_group=(i, 2)) for i in (1, 2)]
  assert _speakers(halves[0]) | _speakers(halves[1]) == {
      f's{i}' for i in range(12)}
  assert not _speakers(halves[0]) & _speakers(halves[1])
  # Without `_nohash_` there is no speaker to group by: the file is named.
  fakes.write(str(test_dir / 'no' / 'recorded.wav'),
              np.zeros(10, np.float32), RATE)
  with pytest.raises(ValueError, match=r'recorded\.wav has no speaker in its '
                     'name .* --speaker_group needs'):
    gen.find_test_dir_clips(str(test_dir), WANTED, speaker_group=(1, 2))
  # Every speaker is grouped only when asked to.
  assert len(gen.find_test_dir_clips(str(test_dir), WANTED)['no']) == 13


def test_a_group_without_clips_of_a_word_is_named(tmp_path):
  # One speaker says 'no': the other group has no 'no'.
  data_dir = _speakers_dataset(tmp_path, num_speakers=1)
  group = speech_commands_builder.speaker_group('00000000', 2)
  assert gen.find_test_clips(data_dir, WANTED, speaker_group=(group, 2))
  other = 3 - group
  with pytest.raises(ValueError, match=(
      f'No test clips for yes, no, _unknown_ in {data_dir}, '
      f'--speaker_group={other}/2; check --wanted_words')):
    gen.find_test_clips(data_dir, WANTED, speaker_group=(other, 2))


def test_command_line_speaker_group(tmp_path):
  data_dir = _speakers_dataset(tmp_path)
  command = [sys.executable, '-m', 'kws_jax.generate_streaming_test_wav',
             f'--data_dir={data_dir}', '--test_duration_seconds=6',
             f'--output_audio_file={tmp_path / "s.wav"}',
             f'--output_labels_file={tmp_path / "s.txt"}',
             '--sample_rate=8000', '--wanted_words=yes,no']
  cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run(command + ['--speaker_group=1/2'], check=True,
                 capture_output=True, cwd=cwd)
  assert len(stream_scoring.read_ground_truth(tmp_path / 's.txt')) == 2
  result = subprocess.run(command + ['--speaker_group=2'],
                          capture_output=True, text=True, cwd=cwd)
  assert result.returncode == 1
  assert result.stderr.startswith("Error: --speaker_group='2' must be")


def test_unseen_words_fold_keeps_the_folds_words(tmp_path, data_dir):
  # Dealt as training deals them, by clip count over every split: without
  # one of bed's training clips, cat (4 clips) is dealt first, although
  # the test split holds two of each and bed comes first by name.
  fewer = tmp_path / 'data'
  shutil.copytree(data_dir, fewer)
  (fewer / 'bed' / '00000001_nohash_0.flac').unlink()
  every = gen.find_test_clips(str(fewer), WANTED)
  folds = [gen.find_test_clips(str(fewer), WANTED, unseen_words_fold=(i, 2))
           for i in (1, 2)]
  words = [{os.path.basename(os.path.dirname(p)) for p in f['_unknown_']}
           for f in folds]
  assert words == [{'cat'}, {'bed'}]
  assert sorted(folds[0]['_unknown_'] + folds[1]['_unknown_']) == sorted(
      every['_unknown_'])
  # The commands stay as they are.
  assert all(f['yes'] == every['yes'] for f in folds)
  with pytest.raises(ValueError, match=r'--unseen_words_fold=1/3: .* has 2 '
                     r'unknown \(non-command\) words, fewer than 3 folds'):
    gen.find_test_clips(str(fewer), WANTED, unseen_words_fold=(1, 3))


def test_unseen_words_fold_stream_and_its_errors(tmp_path, data_dir):
  wav, labels = str(tmp_path / 's.wav'), str(tmp_path / 's.txt')
  common = dict(background_dir=None, output_audio_file=wav,
                output_labels_file=labels, wanted_words=WANTED,
                settings=_settings(unknown_percentage=100))
  truth = gen.run(data_dir=data_dir, test_dir=None, unseen_words_fold='2/2',
                  **common)
  assert truth and {label for label, _ in truth} == {'_unknown_'}
  with pytest.raises(ValueError, match="--unseen_words_fold='1/1' must be"):
    gen.run(data_dir=data_dir, test_dir=None, unseen_words_fold='1/1',
            **common)
  with pytest.raises(ValueError, match='--test_dir has no words to deal'):
    gen.run(data_dir=None, test_dir=data_dir, unseen_words_fold='1/2',
            **common)
