"""experiments/unknown_offset.py: the offset's trade and the rule choosing it."""

import numpy as np
import pytest

from configs import test as test_config
from experiments import unknown_offset
import export_test_util as util

NAN = float('nan')


def test_offsets_are_sorted_and_include_zero():
  assert unknown_offset.parse_offsets(['1', '0', '0.5', '1']) == [0, 0.5, 1]
  assert unknown_offset.parse_offsets(['2', '1']) == [0, 1, 2]
  assert unknown_offset.parse_offsets(['1', '-0.5']) == [-0.5, 0, 1]
  for bad in ([], ['one']):
    with pytest.raises(ValueError, match='--offsets'):
      unknown_offset.parse_offsets(bad)


def test_an_offset_flips_exactly_the_clips_within_it():
  # Each clip's top class is a command; `_unknown_` is `gap` below it.
  gaps = np.array([0.1, 0.3, 0.6, 1.2, 3.0])
  log_probs = np.full((5, 4), -10.0)
  log_probs[:, 3] = -0.5
  log_probs[:, 1] = -0.5 - gaps
  for offset in (0, 0.2, 0.5, 1, 2, 4):
    flipped = unknown_offset.offset_predictions(log_probs, offset) == 1
    np.testing.assert_array_equal(flipped, gaps < offset)
  np.testing.assert_array_equal(
      unknown_offset.offset_predictions(log_probs, 0.5), [1, 1, 3, 3, 3])


def test_scores_and_their_trade_over_offsets():
  labels = np.array([0, 1, 2, 3, 2])
  assert unknown_offset.scores(labels, np.array([0, 2, 2, 3, 1])) == {
      'accuracy': 0.6, 'commands': pytest.approx(2 / 3), 'unknown': 0.0,
      'silence': 1.0}
  assert np.isnan(unknown_offset.scores(labels[2:], labels[2:])['silence'])
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 6, 500)
  logits = rng.normal(size=(500, 6)) + 2.5 * np.eye(6)[labels]
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  figures = [unknown_offset.scores(
      labels, unknown_offset.offset_predictions(log_probs, b))
             for b in (0, 0.25, 0.5, 1, 2, 4)]
  commands = [f['commands'] for f in figures]
  unknown = [f['unknown'] for f in figures]
  assert commands == sorted(commands, reverse=True)
  assert unknown == sorted(unknown)
  assert commands[-1] < commands[0] and unknown[-1] > unknown[0]


def test_unseen_recall_over_words_and_over_clips():
  out = unknown_offset.unseen_recall(['a', 'a', 'a', 'b'],
                                     np.array([1, 1, 0, 2]))
  assert out == {'unseen words': pytest.approx(1 / 3), 'unseen clips': 0.5}
  empty = unknown_offset.unseen_recall([], np.zeros(0, int))
  assert np.isnan(empty['unseen words']) and np.isnan(empty['unseen clips'])


def _figures(**values):
  """A seed's figures at one offset: `values` by column, the rest 0.5."""
  return {c: values.get(c.replace(' ', '_'), 0.5)
          for c in unknown_offset.COLUMNS}


def test_summarise_averages_the_seeds_that_have_a_figure():
  seeds = [{0.0: _figures(validation_commands=0.9, unseen_words=0.6)},
           {0.0: _figures(validation_commands=0.8, unseen_words=NAN)},
           {0.0: _figures(validation_commands=0.7, unseen_words=NAN)}]
  [row] = unknown_offset.summarise(seeds, [0.0])
  assert row['offset'] == 0
  assert row['mean']['validation commands'] == pytest.approx(0.8)
  assert row['sd']['validation commands'] == pytest.approx(0.1)
  assert row['mean']['unseen words'] == 0.6
  assert np.isnan(row['sd']['unseen words'])  # One seed: no sd.


def _rows(commands, **columns):
  """One seed's rows at offsets 0, 0.5, 1, ... with these validation command
  recalls (and, by column, other figures)."""
  offsets = [i / 2 for i in range(len(commands))]
  seed = {b: _figures(validation_commands=c,
                      **{k: v[i] for k, v in columns.items()})
          for i, (b, c) in enumerate(zip(offsets, commands))}
  return unknown_offset.summarise([seed], offsets)


def test_choose_takes_the_largest_offset_within_the_budget():
  rows = _rows([0.92, 0.918, 0.91, 0.89])
  # 0.92 -> 0.91 costs exactly one point: still within a budget of 1.
  assert unknown_offset.choose(rows, 1.0)['offset'] == 1.0
  assert unknown_offset.choose(rows, 0.5)['offset'] == 0.5
  assert unknown_offset.choose(rows, 3.0)['offset'] == 1.5
  # Even the first step costs too much: no offset.
  assert unknown_offset.choose(_rows([0.92, 0.90, 0.88]), 1.0)['offset'] == 0


def test_a_negative_offset_is_measured_never_chosen():
  offsets = [-0.5, 0.0, 0.5]
  seed = {b: _figures(validation_commands=c)
          for b, c in zip(offsets, [0.95, 0.92, 0.80])}
  rows = unknown_offset.summarise([seed], offsets)
  assert unknown_offset.cost(rows, rows[0]) == pytest.approx(-3.0)
  assert unknown_offset.choose(rows, 1.0)['offset'] == 0


def test_choose_reads_validation_commands_only():
  plain = _rows([0.92, 0.918, 0.91, 0.89])
  # Unseen words and test figures that would favour 1.5 (or 0), and other
  # validation figures that swing: the choice stays 1.0.
  tempting = _rows([0.92, 0.918, 0.91, 0.89],
                   unseen_words=[0.1, 0.2, 0.3, 0.99],
                   unseen_clips=[0.1, 0.2, 0.3, 0.99],
                   test_commands=[0.99, 0.5, 0.4, 0.99],
                   test_accuracy=[0.99, 0.5, 0.4, 0.99],
                   validation_accuracy=[0.99, 0.5, 0.4, 0.2],
                   validation_unknown=[0.1, 0.2, 0.3, 0.99])
  assert (unknown_offset.choose(plain, 1.0)['offset'] ==
          unknown_offset.choose(tempting, 1.0)['offset'] == 1.0)


def test_report_marks_the_choice_and_says_what_is_missing():
  seeds = [{0.0: _figures(validation_commands=0.9, unseen_words=NAN,
                          unseen_clips=NAN),
            1.0: _figures(validation_commands=0.895, unseen_words=NAN,
                          unseen_clips=NAN)}]
  text = unknown_offset.report(seeds, ['w: no unseen-words fold models.'],
                               [0.0, 1.0], 1.0)
  lines = text.splitlines()
  assert lines[0] == 'w: no unseen-words fold models.'
  assert lines[2].startswith('| offset | validation accuracy | ')
  assert lines[4].startswith('| 0 | 50.0% | 90.0% | ')
  assert lines[5].startswith('| 1 (chosen) | 50.0% | 89.5% | ')
  assert lines[5].endswith('| 50.0% |  |  |')  # No unseen words.
  assert lines[-1] == (
      'Chosen: unknown_offset=1 (validation command recall 90.0% -> 89.5%, '
      'cost 0.50 points; unseen words not measured; 1 seed)')


# --- End to end, on checkpoints of tiny untrained models ---------------------


def _workdir(path, shared_tiny_data, seed, **overrides):
  data_dir, tfds_dir = shared_tiny_data
  config = test_config.get_config()
  config.data_dir = str(data_dir)
  config.tfds_data_dir = str(tfds_dir)
  config.seed = seed
  for key, value in overrides.items():
    config[key] = value
  util.write_checkpoint(str(path), config, ['_silence_', '_unknown_',
                                            *config.wanted_words],
                        {3: 0.5}, seed=seed)
  return str(path)


def test_seeds_and_their_folds_end_to_end(shared_tiny_data, tmp_path):
  first = _workdir(tmp_path / 'seed=0', shared_tiny_data, seed=0)
  # The tiny data's unknown words are cat and up: fold 1 of 2 is cat. Fold
  # 2 never trained (a folder without checkpoints).
  _workdir(tmp_path / 'seed=0,fold=1_2', shared_tiny_data, seed=3,
           unseen_words_fold='1/2')
  (tmp_path / 'seed=0,fold=2_2').mkdir()
  second = _workdir(tmp_path / 'seed=1', shared_tiny_data, seed=1)
  offsets = [0.0, 0.5, 1.0, 100.0]
  per_seed, notes = unknown_offset.measure([first, second], None, offsets)
  assert notes == [f'{first}: 1 of 2 unseen-words folds, 10 clips of 1 words.',
                   f'{second}: no unseen-words fold models '
                   f'({second},fold=*).']
  assert np.isnan(per_seed[1][0.0]['unseen clips'])
  # An offset of 100 turns every clip into _unknown_.
  for seed in per_seed:
    assert seed[100.0]['validation unknown'] == 1
    assert seed[100.0]['validation commands'] == 0
  assert per_seed[0][100.0]['unseen words'] == 1
  text = unknown_offset.report(per_seed, notes, offsets, 100.0)
  lines = text.splitlines()
  assert lines[-1].startswith('Chosen: unknown_offset=100 (')
  assert lines[-1].endswith('% over clips; 2 seeds)')
  assert unknown_offset.report(
      per_seed[:1], notes, offsets, 100.0, ensemble_of=3).splitlines()[
          -1].endswith('; one ensemble of 3 seeds)')
  assert lines[-1].split('unseen words ')[1].split(' over words')[0].endswith(
      '-> 100.0%')
  assert '| 100 (chosen) | ' in text
  assert ' ± ' in text  # Two seeds: a spread.
  # As one ensemble: the second seed's folds never ran, so its unseen-word
  # clips are not the first's.
  with pytest.raises(ValueError,
                     match=f'unseen words clips of {second} are not those '
                           f'of {first}'):
    unknown_offset.measure([first, second], None, offsets, ensemble=True)


def test_the_models_own_offset_is_left_out(shared_tiny_data, tmp_path):
  # The same network, once deciding with an offset of its own: the raw
  # logits, and so every figure, are the same.
  plain = _workdir(tmp_path / 'plain', shared_tiny_data, seed=0)
  offset = _workdir(tmp_path / 'offset', shared_tiny_data, seed=0,
                    unknown_offset=5.0)
  figures, _ = unknown_offset.measure([plain, offset], None, [0.0, 1.0])
  np.testing.assert_equal(figures[0], figures[1])  # NaN: no folds.
  # Their mean prediction is the same too, scored as one model.
  ensemble, notes = unknown_offset.measure([plain, offset], None, [0.0, 1.0],
                                           ensemble=True)
  assert len(ensemble) == 1
  assert ('Scored as one model: the mean prediction of these 2 (of their '
          'fold models, fold by fold).') in notes
  for offset_value in (0.0, 1.0):
    for column, value in figures[0][offset_value].items():
      np.testing.assert_allclose(ensemble[0][offset_value][column], value)


def _log(probabilities):
  with np.errstate(divide='ignore'):
    return np.log(probabilities)


def test_the_mean_prediction_averages_probabilities():
  labels = np.array([2, 1])
  words = np.array(['dog'])
  # Clip 0: one model is sure of label 2, the other torn between 2 and 3;
  # the unseen clip: each model names another command, the mean _unknown_.
  clips = _log([[0.0, 0.0, 1.0, 0.0], [0.1, 0.9, 0.0, 0.0]])
  first = ((labels, clips), (labels, clips),
           (words, _log([[0.0, 0.4, 0.6, 0.0]])))
  clips = _log([[0.0, 0.0, 0.5, 0.5], [0.0, 1.0, 0.0, 0.0]])
  second = ((labels, clips), (labels, clips),
            (words, _log([[0.0, 0.4, 0.0, 0.6]])))
  validation, test, unseen = unknown_offset.mean_prediction(
      [first, second], ['a', 'b'])
  np.testing.assert_allclose(np.exp(validation[1]),
                             [[0, 0, 0.75, 0.25], [0.05, 0.95, 0, 0]])
  np.testing.assert_array_equal(validation[0], labels)
  np.testing.assert_array_equal(test[1], validation[1])
  assert unknown_offset.offset_predictions(unseen[1], 0.0)[0] == 1
  other = (first[0], first[1], (np.array(['cat']), first[2][1]))
  with pytest.raises(ValueError, match='unseen words clips of c are not '
                                      'those of a'):
    unknown_offset.mean_prediction([first, other], ['a', 'c'])


def test_bad_workdirs_are_refused(shared_tiny_data, tmp_path):
  first = _workdir(tmp_path / 'a', shared_tiny_data, seed=0)
  other = _workdir(tmp_path / 'b', shared_tiny_data, seed=0,
                   wanted_words=('yes', 'up'))
  with pytest.raises(ValueError, match='--workdirs: .*b has labels'):
    unknown_offset.measure([first, other], None, [0.0])
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match='empty holds no checkpoint: give a '
                     'training workdir'):
    unknown_offset.measure([str(tmp_path / 'empty')], None, [0.0])
