"""experiments/synthetic_gap.py: recorded and synthetic clips of the unseen
words, scored by the fold models that never heard them."""

import pytest

from configs import test as test_config
from experiments import synthetic_gap
import export_test_util as util
from conftest import make_speech_commands_dir


def _fold(path, shared_tiny_data, **overrides):
  data_dir, tfds_dir = shared_tiny_data
  config = test_config.get_config()
  config.data_dir, config.tfds_data_dir = str(data_dir), str(tfds_dir)
  config.unseen_words_fold = '1/2'  # cat, in the tiny data.
  for key, value in overrides.items():
    config[key] = value
  util.write_checkpoint(str(path), config,
                        ['_silence_', '_unknown_', *config.wanted_words],
                        {3: 0.5}, seed=3)
  return str(path)


@pytest.fixture
def synthetic_dir(tmp_path):
  folder = make_speech_commands_dir(tmp_path / 'synth', words=('cat', 'yes'),
                                    clips_per_word=4)
  # Synthetic folders say: everything is training.
  (folder / 'validation_list.txt').write_text('')
  (folder / 'testing_list.txt').write_text('')
  return str(folder)


def test_both_kinds_of_clip_of_the_left_out_words(shared_tiny_data,
                                                  synthetic_dir, tmp_path):
  fold = _fold(tmp_path / 'w,fold=1_2', shared_tiny_data,
               synthetic_dir=synthetic_dir, synthetic_fraction=0.2,
               synthetic_unknown=False)
  # Only cat was left out: yes's synthetic clips are not scored, and cat's
  # are, though the model's config left non-command synthetic words out.
  everything = synthetic_gap.fold_recalls(fold, None, 100.0)
  assert everything == {'cat': (10, 1.0, 4, 1.0)}
  nothing = synthetic_gap.fold_recalls(fold, None, -100.0)
  assert nothing['cat'][1] == nothing['cat'][3] == 0.0
  text = synthetic_gap.report([everything, nothing], 100.0)
  assert '| cat | 10 | 50.0% | 4 | 50.0% |' in text
  assert text.splitlines()[-1] == (
      'Mean over 1 words: recorded 50.0% ± 70.7%, synthetic 50.0% ± 70.7% '
      '(per seed: 100.0% / 100.0%, 0.0% / 0.0%).')
  assert synthetic_gap.report([everything], 100.0).splitlines()[-1] == (
      'Mean over 1 words: recorded 100.0%, synthetic 100.0% (per seed: '
      '100.0% / 100.0%).')


def test_a_fold_without_synthetic_speech_is_refused(shared_tiny_data,
                                                    tmp_path):
  fold = _fold(tmp_path / 'w,fold=1_2', shared_tiny_data)
  with pytest.raises(ValueError, match='trained without synthetic speech'):
    synthetic_gap.fold_recalls(fold, None, 0.0)
