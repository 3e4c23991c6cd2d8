"""experiments/ensemble.py: ensembles and test-time averaging."""

import shutil

import numpy as np
import pytest

from configs import test as test_config
from experiments import ensemble
import export_test_util as util


def test_shift_moves_clips_and_fills_with_zeros():
  audio = np.arange(1, 6, dtype=np.float32)[None]
  np.testing.assert_array_equal(ensemble.shift(audio, 2), [[0, 0, 1, 2, 3]])
  np.testing.assert_array_equal(ensemble.shift(audio, -1), [[2, 3, 4, 5, 0]])
  np.testing.assert_array_equal(ensemble.shift(audio, 0), audio)


def _workdir(tmp_path, name, data_dir, seed, **overrides):
  config = test_config.get_config()
  config.data_url = ''
  config.data_dir = str(data_dir)
  config.tfds_data_dir = str(tmp_path / 'tfds')
  for key, value in overrides.items():
    config[key] = value
  workdir = tmp_path / name
  util.write_checkpoint(str(workdir), config, ['_silence_', '_unknown_',
                                               *config.wanted_words],
                        {3: 0.5}, seed=seed)
  return str(workdir)


def test_ensemble_and_shift_averaging_score_both_splits(tiny_data_dir,
                                                         tmp_path):
  first = _workdir(tmp_path, 'a', tiny_data_dir, seed=0)
  second = _workdir(tmp_path, 'b', tiny_data_dir, seed=1)
  rows = dict(ensemble.score([first, second], None, [-100, 0, 100]))
  assert list(rows) == ['a', 'a, averaged over shifts', 'b',
                        'b, averaged over shifts', 'ensemble of 2']
  for results in rows.values():
    assert results['test'].count == rows['a']['test'].count > 0
    assert results['validation'].count == rows['a']['validation'].count > 0
  # One model twice over is that model; with no shift but 0, averaging
  # over shifts changes nothing.
  again = shutil.copytree(first, tmp_path / 'a_again')
  same = dict(ensemble.score([first, str(again)], None, [0]))
  np.testing.assert_array_equal(same['ensemble of 2']['test'].confusion,
                                same['a']['test'].confusion)
  np.testing.assert_array_equal(
      same['a, averaged over shifts']['validation'].confusion,
      same['a']['validation'].confusion)
  text = ensemble.table(list(rows.items()), ['yes', 'cat'])
  assert text.splitlines()[0] == ('| model | validation | test | yes recall '
                                  '| cat recall |')
  assert text.splitlines()[-1].startswith('| ensemble of 2 | ')
  assert text.splitlines()[-1].endswith(' | n/a |')


def test_models_that_do_not_match_are_refused(tiny_data_dir, tmp_path):
  first = _workdir(tmp_path, 'a', tiny_data_dir, seed=0)
  other = _workdir(tmp_path, 'b', tiny_data_dir, seed=0,
                   wanted_words=('yes', 'up'))
  with pytest.raises(ValueError, match="--models: .*b has wanted_words="):
    ensemble.score([first, other], None, [0])
  split = _workdir(tmp_path, 'c', tiny_data_dir, seed=0,
                   validation_percentage=20)
  with pytest.raises(ValueError, match='c has validation_percentage=20'):
    ensemble.score([first, split], None, [0])
  with pytest.raises(ValueError, match='repeat a folder name'):
    ensemble.score([first, str(tmp_path / 'x' / 'a')], None, [0])
  with pytest.raises(ValueError, match='--shifts_ms=.*shorter than the clip'):
    ensemble.score([first], None, [0, 1000])
