"""Tests for kws_jax.input_pipeline on tiny generated data."""

import logging
import math
import pathlib
import shutil
import time

import ml_collections
import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from conftest import make_speech_commands_dir
from configs import default as default_config
from configs import test as test_config
from kws_jax import data_sources
from kws_jax import input_pipeline
from kws_jax import labels
from kws_jax import partial_words

_REAL_ARCHIVE = (pathlib.Path(__file__).resolve().parents[1].parent /
                 'shared' / 'data' / 'speech_commands_dev.tar.gz')


def _config(data_dir, tmp_path, **overrides) -> ml_collections.ConfigDict:
  config = test_config.get_config()
  config.data_dir = str(data_dir)
  config.tfds_data_dir = str(tmp_path / 'tfds')
  for key, value in overrides.items():
    config[key] = value
  return config


def _shared_config(shared_tiny_data, tmp_path,
                   **overrides) -> ml_collections.ConfigDict:
  """`_config` of the session's tiny data, prepared once for all tests."""
  data_dir, tfds_dir = shared_tiny_data
  return _config(data_dir, tmp_path, tfds_data_dir=str(tfds_dir), **overrides)


@pytest.fixture
def tiny(shared_tiny_data, tmp_path):
  config = _shared_config(shared_tiny_data, tmp_path)
  return config, input_pipeline.create_datasets(config)


def test_prepare_words_list():
  assert labels.prepare_words_list(('yes', 'no')) == [
      '_silence_', '_unknown_', 'yes', 'no']
  assert labels.prepare_words_list('Up, down') == [
      '_silence_', '_unknown_', 'up', 'down']


def test_splits_follow_the_tutorials_mix(tiny, caplog):
  config, data = tiny
  with caplog.at_level(logging.INFO, logger='absl'):
    input_pipeline._log_summary(data.summary)
  assert 'train: 24 clips: _silence_ made up from noise at each draw, ' in (
      caplog.text)
  assert data.labels == ['_silence_', '_unknown_', 'yes', 'no']
  length = 16000
  for split in (data.train, data.validation, data.test):
    assert split.audio.dtype == np.int16 and split.audio.shape[1] == length
    assert split.label.dtype == np.int32
    assert split.weight.dtype == np.float32
    assert len(split.names) == len(split) == len(split.audio)

  # Training: every clip of every word (10 a word, 6 of them in training
  # by speaker), all unknown clips, one silent clip.
  counts = data.summary['counts']
  # (Training silence is made up at each draw: no clips.)
  assert counts['train'] == {'_silence_': 0, '_unknown_': 12, 'yes': 6,
                             'no': 6}
  train = data.train
  silence = train.label == 0
  assert not np.any(train.audio[silence])
  assert [train.names[i] for i in np.flatnonzero(silence)] == ['']
  num_words = np.sum(train.label >= 2)
  np.testing.assert_allclose(train.weight[train.label >= 2], 1.0)
  np.testing.assert_allclose(train.weight[silence].sum(),
                             config.silence_percentage / 100 * num_words)
  np.testing.assert_allclose(train.weight[train.label == 1].sum(),
                             config.unknown_percentage / 100 * num_words)

  # Evaluation: ceil(10% of 4 word clips) = 1 unknown and 1 silence clip.
  for name in ('validation', 'test'):
    assert counts[name] == {'_silence_': 1, '_unknown_': 1, 'yes': 2, 'no': 2}
    split = getattr(data, name)
    np.testing.assert_array_equal(split.weight, 1.0)
    made_up = split.label == 0
    assert [split.names[i] for i in np.flatnonzero(made_up)] == ['']
    assert np.any(split.audio[made_up])  # Noise, not zeros.
  assert data.summary['eval_silence'] == {'validation': 1, 'test': 1}

  assert data.background.dtype == np.float32
  assert data.background.shape == (2 * 3 * 16000,)
  assert np.abs(data.background).max() <= 1.0
  assert data.summary['num_skipped'] == 0
  assert data.summary['split_method'] == 'hash'


def test_evaluation_is_the_same_every_run(tmp_path):
  root = make_speech_commands_dir(tmp_path / 'data', words=('yes', 'no', 'up'),
                                  clips_per_word=40)
  config = _config(root, tmp_path, silence_percentage=50.0,
                   unknown_percentage=50.0)
  first = input_pipeline.create_datasets(config)
  # Another seed, a fresh TFDS cache: the same evaluation clips.
  config.seed = 7
  config.tfds_data_dir = str(tmp_path / 'tfds2')
  second = input_pipeline.create_datasets(config)
  for name in ('validation', 'test'):
    a, b = getattr(first, name), getattr(second, name)
    np.testing.assert_array_equal(a.audio, b.audio)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.names == b.names
    num_words = np.sum(a.label >= 2)
    assert np.sum(a.label == 0) == math.ceil(num_words / 2)
    assert np.sum(a.label == 1) == math.ceil(num_words / 2)  # Of 8 'up's.
  # Silence clips differ from each other (random volume and offset).
  silence = first.validation.audio[first.validation.label == 0]
  assert len({row.tobytes() for row in silence}) == len(silence)


def test_preparation_prints_no_progress_bars_or_banners(tiny_data_dir,
                                                       tmp_path, capfd):
  """The training log is the tutorial's: TFDS's bars and banners stay out."""
  input_pipeline.create_datasets(_config(tiny_data_dir, tmp_path))
  out, err = capfd.readouterr()
  for noise in ('Generating', 'Shuffling', 'Downloading and preparing',
                'Dataset speech_commands_local downloaded'):
    assert noise not in out + err


def test_second_load_uses_the_cache(tiny_data_dir, tmp_path, caplog):
  config = _config(tiny_data_dir, tmp_path)
  input_pipeline.create_datasets(config)
  with caplog.at_level(logging.INFO, logger='absl'):
    data = input_pipeline.create_datasets(config)
  assert 'Reusing dataset' in caplog.text
  assert 'Loaded 40 clips into memory in' in caplog.text
  assert data.summary['load_seconds'] >= 0

  # Changed data is prepared again.
  sf.write(tiny_data_dir / 'yes' / 'c4ca4238_nohash_9.wav',
           np.zeros(16000, np.float32), 16000)
  changed = input_pipeline.create_datasets(config)
  assert changed.summary['tfds_dir'] != data.summary['tfds_dir']
  assert changed.summary['counts']['train']['yes'] == 7


def test_missing_wanted_word(shared_tiny_data, tmp_path):
  config = _shared_config(shared_tiny_data, tmp_path,
                          wanted_words=('yes', 'marvin'))
  with pytest.raises(ValueError, match=f"'marvin'.*{shared_tiny_data[0]}"):
    input_pipeline.create_datasets(config)


def test_missing_data_dir(tmp_path):
  config = _config(tmp_path / 'absent', tmp_path)
  with pytest.raises(FileNotFoundError, match='absent'):
    input_pipeline.create_datasets(config)


def test_skipped_files_reach_the_summary(tiny_data_dir, tmp_path):
  (tiny_data_dir / 'no' / 'c4ca4238_nohash_7.wav').write_bytes(b'junk')
  data = input_pipeline.create_datasets(_config(tiny_data_dir, tmp_path))
  assert data.summary['num_skipped'] == 1
  assert data.summary['skipped_files'][0][0] == 'no/c4ca4238_nohash_7.wav'


def test_no_background_noise(tiny_data_dir, tmp_path, caplog):
  shutil.rmtree(tiny_data_dir / '_background_noise_')
  with caplog.at_level(logging.WARNING, logger='absl'):
    data = input_pipeline.create_datasets(_config(tiny_data_dir, tmp_path))
  assert 'No background noise' in caplog.text
  assert data.background.shape == (0,)
  silence = data.validation.audio[data.validation.label == 0]
  assert len(silence) == 1 and not np.any(silence)


def test_split_lists_are_used(tmp_path):
  root = make_speech_commands_dir(tmp_path / 'data', with_lists=True)
  (root / 'validation_list.txt').write_text('yes/c4ca4238_nohash_0.wav\n')
  (root / 'testing_list.txt').write_text('no/c4ca4238_nohash_0.wav\n')
  data = input_pipeline.create_datasets(_config(root, tmp_path))
  assert data.summary['split_method'] == 'lists'
  assert [n for n in data.validation.names if n] == [
      'yes/c4ca4238_nohash_0.wav']
  assert [n for n in data.test.names if n] == ['no/c4ca4238_nohash_0.flac']


def test_train_batches_are_a_function_of_seed_and_step(tiny):
  config, data = tiny
  run = input_pipeline.train_iterator(data, config, start_step=0)
  batches = [next(run) for _ in range(6)]
  for batch in batches:
    assert batch['audio'].shape == (8, 16000)
    assert batch['audio'].dtype == np.float32
    assert batch['label'].dtype == np.int32
    assert np.abs(batch['audio']).max() <= 1.0
  resumed = input_pipeline.train_iterator(data, config, start_step=4)
  for step in (4, 5):
    got = next(resumed)
    np.testing.assert_array_equal(got['audio'], batches[step]['audio'])
    np.testing.assert_array_equal(got['label'], batches[step]['label'])
  assert any(not np.array_equal(a['label'], b['label'])
             for a, b in zip(batches, batches[1:]))

  config.seed = 1
  other = next(input_pipeline.train_iterator(data, config, start_step=0))
  assert not np.array_equal(other['audio'], batches[0]['audio'])

  # The audio is the stored clip, scaled to [-1, 1].
  index = {row.tobytes(): i for i, row in enumerate(data.train.audio)}
  for row, label in zip(batches[0]['audio'], batches[0]['label']):
    stored = np.round(row * 32768).astype(np.int16)
    assert data.train.label[index[stored.tobytes()]] == label


def test_processes_get_disjoint_slices(tiny):
  config, data = tiny
  config.batch_size = 12
  whole = next(input_pipeline.train_iterator(data, config, 3))
  parts = [next(input_pipeline.train_iterator(data, config, 3, p, 3))
           for p in range(3)]
  for part in parts:
    assert part['label'].shape == (4,)
  np.testing.assert_array_equal(
      np.concatenate([p['audio'] for p in parts]), whole['audio'])
  with pytest.raises(ValueError, match='multiple'):
    next(input_pipeline.train_iterator(data, config, 0, 0, 5))


def test_draws_match_the_weights(tmp_path):
  root = make_speech_commands_dir(tmp_path / 'data',
                                  words=('yes', 'no', 'up', 'cat', 'bed'),
                                  clips_per_word=10)
  config = _config(root, tmp_path, batch_size=500, silence_percentage=20.0,
                   unknown_percentage=30.0)
  data = input_pipeline.create_datasets(config)
  run = input_pipeline.train_iterator(data, config)
  labels = np.concatenate([next(run)['label'] for _ in range(40)])
  share = np.bincount(labels, minlength=4) / len(labels)
  # Wanted words weigh 1 each (6 + 6 clips): silence 20/150, unknown 30/150.
  np.testing.assert_allclose(share, [0.2 / 1.5, 0.3 / 1.5, 0.5 / 1.5,
                                     0.5 / 1.5], atol=0.015)
  # Every unknown clip (18 of three words) is drawn.
  drawn = set()
  for _ in range(20):
    batch = next(run)
    drawn.update(row.tobytes() for row, label in
                 zip(batch['audio'], batch['label']) if label == 1)
  assert len(drawn) == np.sum(data.train.label == 1) == 18


def test_download_runs_first(tmp_path):
  root = make_speech_commands_dir(tmp_path / 'src', words=('yes', 'no', 'up'),
                                  clips_per_word=5)
  archive = tmp_path / 'sc.tar.gz'
  shutil.make_archive(str(tmp_path / 'sc'), 'gztar', root_dir=root)
  config = _config(tmp_path / 'data', tmp_path, data_url=str(archive))
  data = input_pipeline.create_datasets(config)
  assert (tmp_path / 'data' / '.extracted-sc.tar.gz').exists()
  assert sum(data.summary['counts']['train'].values()) > 0


def test_official_tfds_source(tmp_path):
  config = _config('', tmp_path, data_source='tfds',
                   wanted_words=('yes', 'off'))
  with tfds.testing.mock_data(num_examples=60,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    data = input_pipeline.create_datasets(config)
    builder = tfds.builder('speech_commands')
    names = builder.info.features['label'].names
    theirs = [names[ex['label']] for ex in tfds.as_numpy(
        builder.as_dataset(split='train'))]
  assert data.labels == ['_silence_', '_unknown_', 'yes', 'off']
  # Their labels map onto ours: the wanted words keep their names, the
  # other eight words join _unknown_.
  want = {'_silence_': 0, 'yes': 2, 'off': 3}
  expected = sorted(want.get(name, 1) for name in theirs)
  train = data.train
  assert sorted(train.label.tolist()) == expected
  assert train.audio.shape == (60, 16000)
  np.testing.assert_allclose(
      train.weight[train.label == 0].sum(),
      config.silence_percentage / 100 * np.sum(train.label >= 2), rtol=1e-5)
  # Their train split's silence clips are the background noise.
  assert data.background.size == 16000 * np.sum(train.label == 0)

  config.wanted_words = ('yes', 'marvin')
  with tfds.testing.mock_data(num_examples=5,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    with pytest.raises(ValueError, match="'marvin'.*only"):
      input_pipeline.create_datasets(config)


@pytest.mark.skipif(not _REAL_ARCHIVE.exists(),
                    reason=f'{_REAL_ARCHIVE} is not here (shared/ data).')
def test_real_dev_archive(tmp_path):
  config = default_config.get_config()
  config.data_url = str(_REAL_ARCHIVE)
  config.data_dir = str(tmp_path / 'data')
  config.tfds_data_dir = str(tmp_path / 'tfds')
  started = time.time()
  data = input_pipeline.create_datasets(config)
  logging.info('Real archive prepared in %.1f s.', time.time() - started)
  counts = data.summary['counts']
  assert data.summary['split_method'] == 'lists'
  assert data.summary['num_skipped'] == 0
  # The archive's README: 2,016 validation and 1,505 testing clips, 8 words
  # of about 1,200 clips, on/off about 280.
  for word in ('yes', 'no', 'up', 'down', 'left', 'right', 'stop', 'go'):
    total = sum(counts[s][word] for s in counts)
    assert 1171 <= total <= 1204, word
  assert data.summary['background_clips'] == 6
  assert counts['validation']['_silence_'] == math.ceil(
      sum(counts['validation'][w] for w in data.labels[2:]) / 10)
  # Half a gigabyte; pytest would keep it for a few runs.
  shutil.rmtree(tmp_path / 'data')
  shutil.rmtree(tmp_path / 'tfds')


def _word_weights(data):
  return {label: float(data.train.weight[data.train.label == i].sum())
          for i, label in enumerate(data.labels)}


def test_balance_classes_draws_every_word_equally(tmp_path):
  data_dir = make_speech_commands_dir(tmp_path / 'data',
                                      words=('yes', 'no', 'cat'),
                                      clips_per_word=10)
  # Make 'no' scarce: keep only 2 of its training clips.
  config = _config(data_dir, tmp_path)
  plain = input_pipeline.create_datasets(config)
  for path in sorted((data_dir / 'no').iterdir())[2:]:
    path.unlink()
  config = _config(data_dir, tmp_path, balance_classes=True)
  data = input_pipeline.create_datasets(config)
  weights = _word_weights(data)
  assert data.summary['counts']['train']['no'] < data.summary['counts'][
      'train']['yes']
  assert weights['yes'] == pytest.approx(weights['no'])
  # The plain mix weighs each clip 1.
  plain_weights = _word_weights(plain)
  assert plain_weights['yes'] == plain.summary['counts']['train']['yes']


def test_synthetic_clips_join_training_only(tmp_path):
  real = make_speech_commands_dir(tmp_path / 'real', words=('yes', 'no', 'cat'))
  synthetic = make_speech_commands_dir(tmp_path / 'synth',
                                       words=('yes', 'no', 'bed'),
                                       clips_per_word=6)
  # Synthetic folders say: everything is training.
  (synthetic / 'validation_list.txt').write_text('')
  (synthetic / 'testing_list.txt').write_text('')
  config = _config(real, tmp_path, synthetic_dir=str(synthetic),
                   synthetic_fraction=0.25)
  data = input_pipeline.create_datasets(config)
  is_synthetic = np.array([n.startswith('synthetic/') for n in
                           data.train.names])
  # 'bed' is not wanted: its synthetic clips are left out, not unknown.
  assert sorted(set(data.train.label[is_synthetic])) == [2, 3]
  assert is_synthetic.sum() == 12
  for split in (data.validation, data.test):
    assert not any(n.startswith('synthetic/') for n in split.names)
  yes = data.train.label == 2
  share = (data.train.weight[yes & is_synthetic].sum() /
           data.train.weight[yes].sum())
  assert share == pytest.approx(0.25)
  # Training's batches say which clips are synthetic (for
  # `synthetic_adversary`).
  run = input_pipeline.train_iterator(data, config, start_step=0)
  flags = np.concatenate([next(run)['synthetic'] for _ in range(20)])
  assert flags.dtype == np.float32 and set(flags) == {0.0, 1.0}
  assert flags.mean() == pytest.approx(0.25, abs=0.1)


def test_synthetic_only_words_drop_their_real_training_clips(tmp_path):
  real = make_speech_commands_dir(tmp_path / 'real', words=('yes', 'no', 'cat'))
  synthetic = make_speech_commands_dir(tmp_path / 'synth', words=('no',),
                                       clips_per_word=6)
  (synthetic / 'validation_list.txt').write_text('')
  (synthetic / 'testing_list.txt').write_text('')
  config = _config(real, tmp_path, synthetic_dir=str(synthetic),
                   synthetic_only_words=('no',))
  data = input_pipeline.create_datasets(config)
  no = data.train.label == 3
  assert no.sum() == 6
  assert all(n.startswith('synthetic/') for n, k in zip(data.train.names, no)
             if k)
  # Validation and test still score the real 'no' clips.
  assert np.sum(data.test.label == 3) > 0


def test_later_loads_map_the_saved_arrays(tiny_data_dir, tmp_path, caplog):
  config = _config(tiny_data_dir, tmp_path)
  first = input_pipeline.create_datasets(config)
  arrays = list((tmp_path / 'tfds').rglob('arrays'))
  assert len(arrays) == 1
  saved = sorted(p.name for p in arrays[0].iterdir())
  assert saved == sorted(f'{split}.{kind}' for split in
                         ('train', 'validation', 'test')
                         for kind in ('audio.npy', 'index.json'))
  second = input_pipeline.create_datasets(config)
  for name in ('train', 'validation', 'test'):
    a, b = getattr(first, name), getattr(second, name)
    np.testing.assert_array_equal(a.audio, b.audio)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.names == b.names
  # A cache that does not match the prepared data is read again, not used.
  np.save(arrays[0] / 'train.audio.npy', np.zeros((2, 5), np.int16))
  with caplog.at_level(logging.WARNING, logger='absl'):
    third = input_pipeline.create_datasets(config)
  assert 'do not match' in caplog.text
  np.testing.assert_array_equal(third.train.audio, first.train.audio)
  assert np.load(arrays[0] / 'train.audio.npy').shape[0] > 2


def test_clips_of_weight_zero_are_never_drawn():
  audio = (np.arange(6, dtype=np.int16)[:, None] *
           np.ones((1, 4), np.int16))
  split = input_pipeline.Split(
      audio=audio, label=np.arange(6, dtype=np.int32) % 3,
      weight=np.array([0, 1, 0, 3, 0, 0], np.float32), names=[''] * 6)
  empty = input_pipeline.Split(np.zeros((0, 4), np.int16),
                               np.zeros(0, np.int32),
                               np.zeros(0, np.float32), [])
  data = input_pipeline.Datasets(
      labels=['_silence_', '_unknown_', 'yes'], train=split,
      validation=empty, test=empty, background=np.zeros(0, np.float32),
      summary={}, unseen_words=empty, silence_stress=empty)
  config = ml_collections.ConfigDict({'batch_size': 400, 'seed': 0,
                                      'command_negatives': 0.0,
                                      'unknown_negatives': 0.0,
                                      'same_speaker_joins': 0.0,
                                      'stream_windows': 0.0})
  run = input_pipeline.train_iterator(data, config)
  rows = np.concatenate([np.round(next(run)['audio'][:, 0] * 32768)
                         for _ in range(5)]).astype(int)
  assert set(rows) == {1, 3}
  assert np.mean(rows == 3) == pytest.approx(0.75, abs=0.03)


def _unknown_word_totals(data):
  unknown = np.flatnonzero(data.train.label == 1)
  totals = {}
  for i in unknown:
    word = data.train.names[i].split('/')[-2]
    totals[word] = totals.get(word, 0.0) + float(data.train.weight[i])
  return totals


def test_unknown_word_balance_evens_out_the_unknown_words(tmp_path):
  data_dir = make_speech_commands_dir(tmp_path / 'data',
                                      words=('yes', 'no', 'cat', 'dog'),
                                      clips_per_word=10)
  for path in sorted((data_dir / 'dog').iterdir())[3:]:
    path.unlink()  # dog: 3 clips, cat: 10.
  plain = input_pipeline.create_datasets(_config(data_dir, tmp_path))
  balanced = input_pipeline.create_datasets(
      _config(data_dir, tmp_path, unknown_word_balance=1.0))
  before, after = _unknown_word_totals(plain), _unknown_word_totals(balanced)
  assert before['cat'] > 1.5 * before['dog']
  assert after['cat'] == pytest.approx(after['dog'])
  # The class as a whole weighs what it did.
  assert sum(after.values()) == pytest.approx(sum(before.values()))


def test_command_negatives_replace_unknown_draws_only(tmp_path):
  data_dir = make_speech_commands_dir(tmp_path / 'data',
                                      words=('yes', 'no', 'cat'))
  config = _config(data_dir, tmp_path, unknown_percentage=100.0,
                   batch_size=400)
  data = input_pipeline.create_datasets(config)
  plain = next(input_pipeline.train_iterator(data, config, start_step=3))
  config.command_negatives = 0.5
  batches = input_pipeline.train_iterator(data, config, start_step=3)
  mixed = next(batches)
  again = next(input_pipeline.train_iterator(data, config, start_step=3))
  np.testing.assert_array_equal(mixed['audio'], again['audio'])
  # The same draws and labels; only unknown rows change, about half of them.
  np.testing.assert_array_equal(mixed['label'], plain['label'])
  changed = np.any(mixed['audio'] != plain['audio'], axis=1)
  unknown = plain['label'] == 1
  assert not np.any(changed & ~unknown)
  assert np.mean(changed[unknown]) == pytest.approx(0.5, abs=0.12)
  # What replaced them is made of command clips, not of the unknown word:
  # every replaced row is a command clip reversed, cut or joined.
  commands = data.train.audio[data.train.label >= 2].astype(np.float32)
  spectra = np.abs(np.fft.rfft(commands / 32768.0, axis=1)).mean(0)
  for row in np.flatnonzero(changed)[:10]:
    own = np.abs(np.fft.rfft(mixed['audio'][row]))
    peak = np.argmax(own)
    assert spectra[peak] > 0.1 * spectra.max()


def test_unknown_negatives_are_made_of_recorded_unknown_words(tmp_path):
  """`unknown_negatives` replaces unknown draws (not those the command
  negatives took) by negatives of two recorded non-command clips: never
  of commands or of synthetic clips, halves of two words joined too."""
  real = make_speech_commands_dir(tmp_path / 'real',
                                  words=('yes', 'no', 'cat', 'dog'))
  # Synthetic unknown words, with the tones of yes and no (300, 550 Hz).
  synthetic = make_speech_commands_dir(tmp_path / 'synth',
                                       words=('bed', 'town'),
                                       clips_per_word=6)
  (synthetic / 'validation_list.txt').write_text('')
  (synthetic / 'testing_list.txt').write_text('')
  config = _config(real, tmp_path, unknown_percentage=100.0, batch_size=400,
                   synthetic_dir=str(synthetic), synthetic_fraction=0.25,
                   synthetic_unknown=True)
  data = input_pipeline.create_datasets(config)
  plain = next(input_pipeline.train_iterator(data, config, start_step=3))
  config.command_negatives = 0.3
  commands_only = next(input_pipeline.train_iterator(data, config,
                                                     start_step=3))
  config.unknown_negatives = 0.5
  mixed = next(input_pipeline.train_iterator(data, config, start_step=3))
  again = next(input_pipeline.train_iterator(data, config, start_step=3))
  np.testing.assert_array_equal(mixed['audio'], again['audio'])
  np.testing.assert_array_equal(mixed['label'], plain['label'])
  by_commands = np.any(commands_only['audio'] != plain['audio'], axis=1)
  changed = np.any(mixed['audio'] != commands_only['audio'], axis=1)
  unknown = plain['label'] == 1
  # The command negatives stay as they were; about half of the other
  # unknown draws change, and nothing else.
  np.testing.assert_array_equal(mixed['audio'][by_commands],
                                commands_only['audio'][by_commands])
  assert not np.any(changed & (~unknown | by_commands))
  assert np.mean(changed[unknown & ~by_commands]) == pytest.approx(
      0.5, abs=0.12)
  # Each is made of cat (800 Hz) and dog (1050 Hz): its loudest bin is one
  # of theirs, and some hold both (halves of the two words joined).
  both = 0
  for row in np.flatnonzero(changed):
    spectrum = np.abs(np.fft.rfft(mixed['audio'][row], n=16000))
    assert min(abs(np.argmax(spectrum) - hz) for hz in (800, 1050)) <= 5
    assert spectrum[295:305].max() < 0.1 * spectrum.max()  # No yes, bed.
    assert spectrum[545:555].max() < 0.1 * spectrum.max()  # No no, town.
    both += min(spectrum[795:805].max(), spectrum[1045:1055].max()) > (
        0.2 * spectrum.max())
  assert both >= 3


def test_same_speaker_words_pairs_each_command_with_its_speakers_words():
  names = ['yes/a_nohash_0.wav', 'no/a_nohash_0.wav', 'cat/a_nohash_0.wav',
           'dog/a_nohash_1.wav', 'yes/b_nohash_0.wav',
           'synthetic/cat/b_nohash_0.wav', 'cat/c_nohash_0.wav',
           'no/unnamed.wav', 'cat/unnamed.wav', 'yes/d_nohash_0.wav',
           'dog/d_nohash_0.wav', '']
  split = input_pipeline.Split(
      audio=np.zeros((len(names), 4), np.int16),
      label=np.array([2, 3, 1, 1, 2, 1, 1, 3, 1, 2, 1, 0], np.int32),
      # d's dog is never drawn (an unseen-words fold, say).
      weight=np.array([1] * 10 + [0, 1], np.float32), names=names)
  is_synthetic = np.array([n.startswith('synthetic/') for n in names],
                          np.float32)
  commands, words = input_pipeline.same_speaker_words(split, is_synthetic)
  # Speaker a's yes and no, each with a's cat and dog; b's only other word
  # is synthetic, c said no command, d's word is not drawn, and clips
  # without a speaker are left out.
  np.testing.assert_array_equal(commands, [0, 1])
  assert sorted(words) == [0, 1]
  for command in commands:
    np.testing.assert_array_equal(words[command], [2, 3])


def test_same_speaker_joins_join_a_command_and_another_word(tmp_path):
  data_dir = make_speech_commands_dir(tmp_path / 'data',
                                      words=('yes', 'no', 'cat'))
  config = _config(data_dir, tmp_path, unknown_percentage=100.0,
                   batch_size=400)
  data = input_pipeline.create_datasets(config)
  plain = next(input_pipeline.train_iterator(data, config, start_step=3))
  config.unknown_negatives = 0.3
  negatives = next(input_pipeline.train_iterator(data, config, start_step=3))
  config.same_speaker_joins = 0.5
  joined = next(input_pipeline.train_iterator(data, config, start_step=3))
  again = next(input_pipeline.train_iterator(data, config, start_step=3))
  np.testing.assert_array_equal(joined['audio'], again['audio'])
  np.testing.assert_array_equal(joined['label'], plain['label'])
  np.testing.assert_array_equal(joined['synthetic'], again['synthetic'])
  # The unknown negatives stay; about half of the other unknown draws
  # change, and nothing else.
  by_negatives = np.any(negatives['audio'] != plain['audio'], axis=1)
  np.testing.assert_array_equal(joined['audio'][by_negatives],
                                negatives['audio'][by_negatives])
  changed = np.any(joined['audio'] != negatives['audio'], axis=1)
  unknown = plain['label'] == 1
  assert not np.any(changed & (~unknown | by_negatives))
  assert np.mean(changed[unknown & ~by_negatives]) == pytest.approx(
      0.5, abs=0.12)
  # Each holds cat (800 Hz) and one command (yes 300 Hz or no 550 Hz):
  # half of each word.
  for row in np.flatnonzero(changed):
    spectrum = np.abs(np.fft.rfft(joined['audio'][row], n=16000))
    cat = spectrum[795:805].max()
    command = max(spectrum[295:305].max(), spectrum[545:555].max())
    assert min(cat, command) > 0.2 * spectrum.max()


def test_same_speaker_joins_need_a_speaker_with_two_kinds_of_word(tmp_path):
  data_dir = make_speech_commands_dir(tmp_path / 'data',
                                      words=('yes', 'no', 'cat'))
  for path in (data_dir / 'cat').iterdir():
    path.rename(path.with_name('x' + path.name.replace('_nohash_', '_')))
  config = _config(data_dir, tmp_path, same_speaker_joins=0.3)
  data = input_pipeline.create_datasets(config)
  with pytest.raises(ValueError, match='same_speaker_joins=0.3 needs'):
    next(input_pipeline.train_iterator(data, config))


def test_stream_windows_turn_some_command_draws_into_partial_words(
    tmp_path):
  data_dir = make_speech_commands_dir(tmp_path / 'data',
                                      words=('yes', 'no', 'cat'))
  config = _config(data_dir, tmp_path, unknown_percentage=50.0,
                   batch_size=400)
  data = input_pipeline.create_datasets(config)
  plain = next(input_pipeline.train_iterator(data, config, start_step=2))
  config.stream_windows = 0.5
  windowed = next(input_pipeline.train_iterator(data, config, start_step=2))
  again = next(input_pipeline.train_iterator(data, config, start_step=2))
  np.testing.assert_array_equal(windowed['audio'], again['audio'])
  changed = np.any(windowed['audio'] != plain['audio'], axis=1)
  commands = plain['label'] >= 2
  # Only command draws change, about half of them, and they become unknown.
  assert not np.any(changed & ~commands)
  assert np.mean(changed[commands]) == pytest.approx(0.5, abs=0.12)
  np.testing.assert_array_equal(windowed['label'][changed], 1)
  np.testing.assert_array_equal(windowed['label'][~changed],
                                plain['label'][~changed])


def test_stream_window_keeps_part_of_the_word_at_an_edge():
  rate = 16000
  clip = np.zeros(rate, np.int16)
  clip[4000:12000] = 8000  # A word of even energy, 0.25-0.75 s.
  seen = set()
  for seed in range(30):
    out = partial_words.stream_window(np.random.default_rng(seed), clip)
    assert out.dtype == np.float32 and out.shape == clip.shape
    loud = np.flatnonzero(out)
    kept = len(loud) / 8000  # The share of the word's energy kept.
    assert 0.1 <= kept <= 0.61, (seed, kept)
    assert np.all(out[loud] == 8000)
    if loud[-1] == rate - 1:
      seen.add('arriving')  # The word's start, at the window's end.
    else:
      assert loud[0] == 0
      seen.add('leaving')  # The word's end, at the window's start.
  assert seen == {'arriving', 'leaving'}
  # A silent clip stays silent.
  assert not np.any(partial_words.stream_window(
      np.random.default_rng(0), np.zeros(rate, np.int16)))


def test_command_negative_kinds():
  rate = 16000
  clip = np.zeros(rate, np.int16)
  clip[4000:12000] = (10000 * np.sin(np.arange(8000) / 5)).astype(np.int16)
  other = np.zeros(rate, np.int16)
  other[6000:10000] = 5000
  assert partial_words.word_extent(clip, 160) == (4000, 12000)
  seen = set()
  for seed in range(40):
    out = partial_words.command_negative(np.random.default_rng(seed), clip,
                                          other, True)
    assert out.dtype == np.float32 and out.shape == clip.shape
    if np.array_equal(out, clip[::-1]):
      seen.add('reversed')
      continue
    if np.any(out == 5000):  # Joined: first half of clip, then other's.
      seen.add('joined')
      start, end = partial_words.word_extent(out.astype(np.int16), 160)
      assert end - start == pytest.approx(4000 + 2000, abs=160)
      continue
    kept = np.flatnonzero(out)
    assert np.array_equal(out[kept], clip[kept].astype(np.float32))
    share = (kept[-1] - kept[0] + 1) / 8000
    assert 0.3 - 0.01 <= share <= 0.5 + 0.01
    seen.add('first' if kept[0] < 4100 else 'last')
  assert seen == {'reversed', 'joined', 'first', 'last'}
  # Without a different second command, a join is a reversal instead.
  for seed in range(10):
    out = partial_words.command_negative(np.random.default_rng(seed), clip,
                                          other, False)
    assert not np.any(out == 5000)


def test_unseen_words_fold_leaves_its_words_out_of_everything(tmp_path):
  data_dir = make_speech_commands_dir(
      tmp_path / 'data', words=('yes', 'no', 'cat', 'dog', 'bed'))
  synthetic = make_speech_commands_dir(tmp_path / 'synth',
                                       words=('yes', 'dog', 'bird'),
                                       clips_per_word=5)
  (synthetic / 'validation_list.txt').write_text('')
  (synthetic / 'testing_list.txt').write_text('')
  folds = labels.unknown_word_folds(
      __import__('collections').Counter({'bed': 10, 'cat': 10, 'dog': 10}), 2)
  assert folds == [['bed', 'dog'], ['cat']]
  config = _config(data_dir, tmp_path, unseen_words_fold='1/2',
                   synthetic_dir=str(synthetic), synthetic_fraction=0.2,
                   synthetic_unknown=True)
  data = input_pipeline.create_datasets(config)
  left_out = {'bed', 'dog'}
  for split in (data.train, data.validation, data.test):
    words = {n.split('/')[-2] for n in split.names if '/' in n}
    assert not words & left_out, words
  # Every recorded clip of them (all splits) is in the unseen set.
  assert len(data.unseen_words) == 20
  assert set(data.unseen_words.label) == {1}
  assert {n.split('/')[0] for n in data.unseen_words.names} == left_out
  # Synthetic bird stays (as unknown); synthetic dog goes.
  synthetic_words = {n.split('/')[-2] for n in data.train.names
                     if n.startswith('synthetic/')}
  assert synthetic_words == {'yes', 'bird'}
  assert data.summary['unseen_words'] == {'bed': 10, 'dog': 10}
  with pytest.raises(data_sources.DataError,
                     match='fewer than 5 folds'):
    input_pipeline.create_datasets(
        _config(data_dir, tmp_path, unseen_words_fold='1/5'))


def test_synthetic_unknown_words_make_up_their_share(tmp_path):
  real = make_speech_commands_dir(tmp_path / 'real', words=('yes', 'no', 'cat'))
  synthetic = make_speech_commands_dir(tmp_path / 'synth',
                                       words=('yes', 'bed', 'town'),
                                       clips_per_word=6)
  (synthetic / 'validation_list.txt').write_text('')
  (synthetic / 'testing_list.txt').write_text('')
  config = _config(real, tmp_path, synthetic_dir=str(synthetic),
                   synthetic_fraction=0.25, synthetic_unknown=True)
  data = input_pipeline.create_datasets(config)
  is_synthetic = np.array([n.startswith('synthetic/') for n in
                           data.train.names])
  unknown = data.train.label == 1
  assert (unknown & is_synthetic).sum() == 12
  share = (data.train.weight[unknown & is_synthetic].sum() /
           data.train.weight[unknown].sum())
  assert share == pytest.approx(0.25)
  num_words = np.sum((data.train.label >= 2) & ~is_synthetic)
  assert data.train.weight[unknown].sum() == pytest.approx(
      config.unknown_percentage / 100 * num_words)


def test_silence_stress_set_and_generated_noise(shared_tiny_data, tmp_path):
  config = _shared_config(shared_tiny_data, tmp_path)
  plain = input_pipeline.create_datasets(config)
  assert len(plain.silence_stress) > 50
  assert set(plain.silence_stress.label) == {0}
  assert len(plain.unseen_words) == 0
  config = _shared_config(shared_tiny_data, tmp_path,
                          background_rms_min=0.001, background_rms_max=0.3,
                          generated_noise=True)
  noisy = input_pipeline.create_datasets(config)
  assert len(noisy.background) == len(plain.background) + 5 * 60 * 16000
  np.testing.assert_array_equal(noisy.background[:len(plain.background)],
                                plain.background)
  # Evaluation silence is made from the recordings alone, as before.
  np.testing.assert_array_equal(noisy.validation.audio,
                                plain.validation.audio)
  config = _shared_config(shared_tiny_data, tmp_path,
                          background_rms_min=0.001, background_rms_max=0.3,
                          generated_noise=True, dc_offset_noise=True)
  offset = input_pipeline.create_datasets(config)
  assert len(offset.background) == len(noisy.background) + 60 * 16000
  np.testing.assert_array_equal(offset.background[len(noisy.background):],
                                1.0)


def test_no_training_silence_is_not_called_made_up(shared_tiny_data, tmp_path,
                                                   caplog):
  config = _shared_config(shared_tiny_data, tmp_path, silence_percentage=0.0)
  data = input_pipeline.create_datasets(config)
  with caplog.at_level(logging.INFO, logger='absl'):
    input_pipeline._log_summary(data.summary)
  assert 'train: 24 clips: _silence_ 0, ' in caplog.text
  assert 'made up from noise' not in caplog.text
