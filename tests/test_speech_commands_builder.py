"""Tests for kws_jax.speech_commands_builder on tiny generated folders."""

import hashlib
import os
import shutil

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from conftest import make_speech_commands_dir
from conftest import SPEAKERS
from kws_jax import speech_commands_builder as scb

_MAX = 2**27 - 1


def _by_hand(filename: str, validation: float, testing: float) -> str:
  """The tutorial's rule, written out independently of the module."""
  base = os.path.basename(filename)
  cut = base.find('_nohash_')
  hash_name = base if cut < 0 else base[:cut]
  value = int(hashlib.sha1(hash_name.encode('utf-8')).hexdigest(), 16)
  percentage = (value % (_MAX + 1)) * (100.0 / _MAX)
  if percentage < validation:
    return 'validation'
  if percentage < validation + testing:
    return 'testing'
  return 'training'


def test_which_set_known_values():
  # Values worked out with hashlib: sha1(name) % 2**27 * 100 / (2**27 - 1)
  # is 5.7366 for 'cfcd2084', 16.2431 for 'eccbc87e', 56.8364 for
  # '0a7c2a8d'.
  digest = int(hashlib.sha1(b'cfcd2084').hexdigest(), 16)
  assert (digest % 2**27) * 100.0 / (2**27 - 1) == pytest.approx(5.7366, 1e-4)
  assert scb.which_set('cfcd2084_nohash_0.wav', 10, 10) == 'validation'
  assert scb.which_set('cfcd2084_nohash_0.wav', 5.7, 0.1) == 'testing'
  assert scb.which_set('cfcd2084_nohash_0.wav', 5.7, 0.01) == 'training'
  assert scb.which_set('eccbc87e_nohash_0.wav', 10, 10) == 'testing'
  assert scb.which_set('eccbc87e_nohash_0.wav', 10, 6) == 'training'
  assert scb.which_set('eccbc87e_nohash_0.wav', 16.25, 0) == 'validation'
  assert scb.which_set('0a7c2a8d_nohash_0.wav', 10, 10) == 'training'
  assert scb.which_set('0a7c2a8d_nohash_0.wav', 50, 7) == 'testing'
  # Only the base name up to `_nohash_` matters.
  for name in ('yes/cfcd2084_nohash_7.flac', '/x/y/cfcd2084_nohash_0_a.wav',
               'cfcd2084'):
    assert scb.which_set(name, 10, 10) == 'validation'
  for split, speakers in SPEAKERS.items():
    for speaker in speakers:
      assert scb.which_set(f'w/{speaker}_nohash_1.wav', 10, 10) == split


@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=1, max_size=20).filter(
    lambda s: not set(s) & set('/\x00\n\r')),
       suffix=st.sampled_from(['', '_nohash_0.wav', '_nohash_12.flac']),
       validation=st.floats(0, 60), testing=st.floats(0, 40))
def test_which_set_matches_the_rule(name, suffix, validation, testing):
  filename = f'word/{name}{suffix}'
  assert scb.which_set(filename, validation, testing) == _by_hand(
      filename, validation, testing)


def _build(source_dir, tfds_dir, **overrides):
  settings_ = dict(sample_rate=16000, clip_duration_ms=1000,
                   validation_percentage=10, testing_percentage=10)
  settings_.update(overrides)
  builder = scb.SpeechCommandsLocal(
      config=scb.make_config(str(source_dir), **settings_),
      data_dir=str(tfds_dir))
  builder.download_and_prepare()
  return builder


def _load(builder, split):
  return {ex['name'].decode(): ex for ex in tfds.as_numpy(
      builder.as_dataset(split=split))}


def test_lists_split_and_layout(tmp_path):
  root = make_speech_commands_dir(tmp_path / 'data', with_lists=True)
  # Folder names are lower-cased; '_'-folders, hidden folders, other files
  # and non-audio files are not words.
  os.rename(root / 'up', root / 'Up')
  (root / '_extra').mkdir()
  shutil.copy(root / 'yes' / os.listdir(root / 'yes')[0], root / '_extra')
  (root / '.cache').mkdir()
  (root / 'yes' / 'README.txt').write_text('not audio')
  (root / 'yes' / '._resource_fork.wav').write_bytes(b'\0\5\26\7')
  (root / 'LICENSE').write_text('CC BY 4.0')
  builder = _build(root, tmp_path / 'tfds')
  assert builder.info.metadata['split_method'] == 'lists'
  assert set(builder.info.splits.keys()) == {
      'train', 'validation', 'test', 'background'}
  speaker_split = {s: split for split, group in
                   (('train', SPEAKERS['training']),
                    ('validation', SPEAKERS['validation']),
                    ('test', SPEAKERS['testing'])) for s in group}
  for split in ('train', 'validation', 'test'):
    examples = _load(builder, split)
    assert examples
    for name, ex in examples.items():
      word = ex['word'].decode()
      assert word in ('yes', 'no', 'up', 'cat')
      assert name.split('/')[0].lower() == word
      # The lists say .wav; the 'no' and 'cat' clips are .flac and still
      # follow them.
      assert speaker_split[os.path.basename(name)[:8]] == split
      assert ex['audio'].dtype == np.int16 and ex['audio'].shape == (16000,)
  counts = {}
  for split in ('train', 'validation', 'test'):
    for ex in _load(builder, split).values():
      counts[ex['word'].decode()] = counts.get(ex['word'].decode(), 0) + 1
  assert counts == {'yes': 10, 'no': 10, 'up': 10, 'cat': 10}

  background = _load(builder, 'background')
  assert sorted(background) == ['_background_noise_/noise_0.wav',
                                '_background_noise_/noise_1.flac']
  for ex in background.values():
    assert ex['audio'].shape == (3 * 16000,)  # Kept whole, not fitted.


def test_hash_split_and_stored_audio(tmp_path):
  root = make_speech_commands_dir(tmp_path / 'data', words=('yes', 'no'),
                                  clips_per_word=5)
  builder = _build(root, tmp_path / 'tfds', clip_duration_ms=500)
  assert builder.info.metadata['split_method'] == 'hash'
  wanted = {'train': 'training', 'validation': 'validation',
            'test': 'testing'}
  for split, which in wanted.items():
    for name, ex in _load(builder, split).items():
      assert _by_hand(name, 10, 10) == which
      assert ex['audio'].shape == (8000,)  # Cropped to 500 ms.
      source, rate = sf.read(root / name, dtype='int16')
      assert rate == 16000
      np.testing.assert_array_equal(ex['audio'], source[:8000])


def test_resampling_and_padding(tmp_path):
  root = tmp_path / 'data'
  (root / 'yes').mkdir(parents=True)
  # 0.5 s at 8 kHz of full-scale-ish constant: 4000 samples at 16 kHz after
  # resampling, then padded with zeros to the 1 s clip.
  sf.write(root / 'yes' / 'a_nohash_0.wav', np.full(4000, 0.5, np.float32),
           8000, subtype='PCM_16')
  builder = _build(root, tmp_path / 'tfds', validation_percentage=0,
                   testing_percentage=0)
  assert set(builder.info.splits.keys()) == {'train'}
  (ex,) = _load(builder, 'train').values()
  assert ex['audio'].shape == (16000,)
  middle = ex['audio'][1000:3000].astype(np.float32) / 32768
  np.testing.assert_allclose(middle, 0.5, atol=0.01)
  assert not np.any(ex['audio'][8100:])


def test_unreadable_clips_are_skipped_and_recorded(tmp_path):
  root = make_speech_commands_dir(tmp_path / 'data', words=('yes', 'no'),
                                  clips_per_word=5)
  (root / 'yes' / 'broken_nohash_0.wav').write_bytes(b'RIFF garbage')
  sf.write(root / 'no' / 'nan_nohash_0.wav',
           np.array([0.0, np.nan], np.float32), 16000, subtype='FLOAT')
  builder = _build(root, tmp_path / 'tfds', validation_percentage=0,
                   testing_percentage=0)
  skipped = dict(builder.info.metadata['skipped'])
  assert sorted(skipped) == ['no/nan_nohash_0.wav', 'yes/broken_nohash_0.wav']
  assert 'NaN' in skipped['no/nan_nohash_0.wav']
  assert builder.info.splits['train'].num_examples == 10
  # The record survives a reload from the TFDS cache.
  again = _build(root, tmp_path / 'tfds', validation_percentage=0,
                 testing_percentage=0)
  assert sorted(dict(again.info.metadata['skipped'])) == sorted(skipped)


def test_fingerprint_follows_data_and_settings(tmp_path):
  root = make_speech_commands_dir(tmp_path / 'data', words=('yes', 'no'),
                                  clips_per_word=5)
  settings_ = dict(sample_rate=16000, clip_duration_ms=1000,
                   validation_percentage=10, testing_percentage=10)
  first = scb.make_config(str(root), **settings_)
  assert scb.make_config(str(root), **settings_).name == first.name
  for key, value in (('sample_rate', 8000), ('clip_duration_ms', 900),
                     ('validation_percentage', 5),
                     ('testing_percentage', 5)):
    changed = scb.make_config(str(root), **{**settings_, key: value})
    assert changed.name != first.name, key

  builder = _build(root, tmp_path / 'tfds')
  total = sum(s.num_examples for s in builder.info.splits.values())
  # Unchanged data is read from the cache, not prepared again.
  cached = scb.SpeechCommandsLocal(config=scb.make_config(
      str(root), **settings_), data_dir=str(tmp_path / 'tfds'))
  assert cached.data_path == builder.data_path
  assert os.path.isdir(cached.data_path)

  # A new clip, a touched clip or a new list each give a new fingerprint.
  names = []
  sf.write(root / 'yes' / 'new_nohash_0.wav', np.zeros(100, np.float32),
           16000)
  names.append(scb.make_config(str(root), **settings_).name)
  clip = root / 'no' / sorted(os.listdir(root / 'no'))[0]
  os.utime(clip, ns=(0, 0))
  names.append(scb.make_config(str(root), **settings_).name)
  (root / 'testing_list.txt').write_text('yes/new_nohash_0.wav\n')
  names.append(scb.make_config(str(root), **settings_).name)
  assert len({first.name, *names}) == 4
  rebuilt = _build(root, tmp_path / 'tfds')
  assert rebuilt.data_path != builder.data_path
  assert sum(s.num_examples for s in rebuilt.info.splits.values()) == (
      total + 1)
  assert list(_load(rebuilt, 'test')) == ['yes/new_nohash_0.wav']


def test_missing_folder(tmp_path):
  with pytest.raises(FileNotFoundError, match='nowhere'):
    scb.make_config(str(tmp_path / 'nowhere'), sample_rate=16000,
                    clip_duration_ms=1000, validation_percentage=10,
                    testing_percentage=10)
