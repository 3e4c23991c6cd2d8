"""Tests for the full-size data benchmark: the stand-in, on tiny data.

The measurements themselves start fresh processes that import JAX and
TensorFlow, too slow for a unit test; a short run of the benchmark covers
them (see the module's usage).
"""

import os
import pathlib
import re

import numpy as np
import pytest
import soundfile as sf

from benchmarks import full_size_measure
from benchmarks import full_size_standin
from configs import test as test_config
from kws_jax import audio_io
from kws_jax import input_pipeline
from kws_jax import speech_commands_builder

# 'yes/<speaker>v<k>_nohash_<n>.wav'
_COPY = re.compile(r'^(?P<speaker>[0-9a-f]+)v(?P<copy>\d+)_nohash_(?P<n>\d+)'
                   r'\.wav$')
_COPIES = 3


def _make(source: pathlib.Path, out: pathlib.Path,
          workers: int = 2) -> dict:
  clips, _ = speech_commands_builder.scan_source(str(source))
  return full_size_standin.make_standin(str(source), str(out),
                                        num_clips=_COPIES * len(clips),
                                        seed=0, workers=workers)


def _files(folder: pathlib.Path) -> dict[str, int]:
  return {str(p.relative_to(folder)): p.stat().st_mtime_ns
          for p in folder.rglob('*') if p.is_file()}


def test_standin_layout_copies_and_rerun(tiny_data_dir, tmp_path):
  out = tmp_path / 'standin'
  figures = _make(tiny_data_dir, out)
  words = ('yes', 'no', 'up', 'cat')
  # 10 clips a word in the source: each gets copies 0, 1 and 2.
  assert figures['clips'] == 40 * _COPIES and not figures['reused']
  assert figures['words'] == {w: 10 * _COPIES for w in words}
  assert figures['background_files'] == 2 and not figures['unreadable']
  assert figures['bytes'] == sum(p.stat().st_size for p in out.rglob('*')
                                 if p.is_file() and not p.name.startswith('.'))
  assert (out / full_size_standin.COMPLETE_MARKER).exists()
  assert not (out / full_size_standin.STARTED_MARKER).exists()
  assert not (out / 'validation_list.txt').exists()
  assert not (out / 'testing_list.txt').exists()
  assert not [p for p in out.rglob('*.tmp')]
  for name in os.listdir(tiny_data_dir / '_background_noise_'):
    assert ((out / '_background_noise_' / name).read_bytes() ==
            (tiny_data_dir / '_background_noise_' / name).read_bytes())

  for word in words:
    for original in (tiny_data_dir / word).iterdir():
      speaker, _, n = original.stem.partition('_nohash_')
      source = audio_io.fit_length(
          audio_io.read_audio(original, 16000), 16000)
      copies = []
      for k in range(_COPIES):
        path = out / word / f'{speaker}v{k}_nohash_{n}.wav'
        assert _COPY.match(path.name)
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames,
                info.subtype) == (16000, 1, 16000, 'PCM_16')
        audio, _ = sf.read(path, dtype='int16')
        copies.append(audio)
      # Copy 0 is the clip itself; the others differ but are not silent.
      np.testing.assert_array_equal(copies[0], audio_io.to_int16(source))
      for copy in copies[1:]:
        assert not np.array_equal(copy, copies[0])
        assert np.abs(copy).max() > 0.05 * 32768
      assert not np.array_equal(copies[1], copies[2])
    assert len(os.listdir(out / word)) == 10 * _COPIES

  # A finished stand-in with the same parameters is not written again.
  before = _files(out)
  again = _make(tiny_data_dir, out)
  assert again['reused'] and again['clips'] == figures['clips']
  assert _files(out) == before


def test_standin_is_deterministic_and_resumes(tiny_data_dir, tmp_path):
  first, second = tmp_path / 'a', tmp_path / 'b'
  _make(tiny_data_dir, first, workers=1)
  _make(tiny_data_dir, second, workers=1)
  clip = 'yes/' + sorted(os.listdir(first / 'yes'))[-1]
  assert (first / clip).read_bytes() == (second / clip).read_bytes()
  # An interrupted stand-in (no completion marker, a file missing) is
  # finished without rewriting what was there.
  os.remove(second / full_size_standin.COMPLETE_MARKER)
  (second / full_size_standin.STARTED_MARKER).write_text(
      (first / full_size_standin.COMPLETE_MARKER).read_text())
  os.remove(second / clip)
  before = _files(second)
  figures = _make(tiny_data_dir, second, workers=1)
  assert not figures['reused'] and figures['clips'] == 40 * _COPIES
  assert (first / clip).read_bytes() == (second / clip).read_bytes()
  after = _files(second)
  assert all(after[k] == v for k, v in before.items()
             if not k.startswith('.'))


def test_create_datasets_keeps_each_standin_speaker_in_one_split(
    tiny_data_dir, tmp_path):
  out = tmp_path / 'standin'
  _make(tiny_data_dir, out)
  config = test_config.get_config()
  config.data_dir = str(out)
  config.tfds_data_dir = str(tmp_path / 'tfds')
  # Larger shares than the default 10% so that the 15 stand-in speakers'
  # hashes reach every split.
  config.validation_percentage = 30
  config.testing_percentage = 30
  data = input_pipeline.create_datasets(config)
  assert data.summary['split_method'] == 'hash'
  splits_of = {}
  wanted = set()
  for split in ('train', 'validation', 'test'):
    for name in getattr(data, split).names:
      if not name:
        continue  # Made-up silence.
      folder, file_name = name.split('/')
      speaker = _COPY.match(file_name)['speaker'] + 'v' + _COPY.match(
          file_name)['copy']
      splits_of.setdefault(speaker, set()).add(split)
      if folder in config.wanted_words:
        wanted.add(name)
  assert all(len(s) == 1 for s in splits_of.values()), splits_of
  assert set().union(*splits_of.values()) == {'train', 'validation', 'test'}
  # 5 speakers x 3 copies, and every copy of the wanted words is used.
  assert len(splits_of) == 5 * _COPIES
  assert len(wanted) == 2 * 10 * _COPIES


@pytest.mark.parametrize('num_clips', [1, 3, 4, 8, 11, 40])
def test_plan_copies_keeps_each_words_share(num_clips):
  relpaths = [f'a/{i}.wav' for i in range(6)] + ['b/0.wav', 'b/1.wav']
  copies = full_size_standin.plan_copies(relpaths, num_clips, seed=3)
  assert sum(copies.values()) == num_clips
  per_word = {w: sum(n for p, n in copies.items() if p.startswith(w))
              for w in 'ab'}
  # a holds 3/4 of the clips: its share, rounded.
  assert abs(per_word['a'] - 0.75 * num_clips) < 1
  for word in 'ab':
    counts = [n for p, n in copies.items() if p.startswith(word)]
    assert max(counts) - min(counts) <= 1


def test_copy_name():
  assert (full_size_standin.copy_name('0a1b2c3d_nohash_4.flac', 7) ==
          '0a1b2c3dv7_nohash_4.wav')
  assert full_size_standin.copy_name('take.wav', 0) == 'takev0_nohash_0.wav'


def test_bad_inputs_name_the_flag(tmp_path, tiny_data_dir):
  with pytest.raises(FileNotFoundError, match='--source'):
    full_size_standin.make_standin(str(tmp_path / 'missing'),
                                   str(tmp_path / 'out'), 10)
  empty = tmp_path / 'empty'
  (empty / '_background_noise_').mkdir(parents=True)
  (empty / 'yes').mkdir()
  with pytest.raises(ValueError, match='--source'):
    full_size_standin.make_standin(str(empty), str(tmp_path / 'out'), 10)
  with pytest.raises(ValueError, match='--num_clips'):
    full_size_standin.make_standin(str(tiny_data_dir), str(tmp_path / 'out'),
                                   0)
  other = tmp_path / 'other'
  other.mkdir()
  (other / 'notes.txt').write_text('mine')
  with pytest.raises(ValueError, match='--standin_dir'):
    full_size_standin.make_standin(str(tiny_data_dir), str(other), 10)
  assert (other / 'notes.txt').exists()
  with pytest.raises(ValueError, match='overlap'):
    full_size_standin.make_standin(str(tiny_data_dir),
                                   str(tiny_data_dir / 'standin'), 10)


def test_measurements_train_the_config_file_on_the_given_data():
  config = full_size_measure.training_config(
      'configs/tc_resnet.py', '/data/standin', '/tmp/tfds', steps=30)
  assert config.model_architecture == 'tc_resnet'
  assert (config.data_dir, config.tfds_data_dir, config.data_url) == (
      '/data/standin', '/tmp/tfds', '')
  assert config.synthetic_fraction == 0.0 and not config.synthetic_dir
  assert config.how_many_training_steps == '30'
  assert ',' not in config.learning_rate
  assert config.eval_step_interval == config.save_step_interval == 30
  # A ':arg' reaches get_config, as with `--config=configs/tc_resnet.py:arg`.
  wider = full_size_measure.data_config('configs/tc_resnet.py:14-1.5', '', '')
  assert (wider.model.blocks_per_stage, wider.model.width_multiplier) == (
      2, 1.5)
  with pytest.raises(FileNotFoundError):
    full_size_measure.data_config('configs/nope.py', '', '')
