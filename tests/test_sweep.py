"""A two-point sweep on tiny data: trains, tabulates, and resumes."""

import csv
import json
import os
import pathlib

import pytest

from experiments import sweep
from kws_jax import config_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_two_point_sweep_trains_tabulates_and_skips_finished(tiny_data_dir,
                                                              tmp_path):
  sweep_file = tmp_path / 'two.py'
  sweep_file.write_text(
      f"BASE_CONFIG = {os.path.join(REPO, 'configs', 'test.py')!r}\n"
      "SHARED = {'log_step_interval': 4}\n"
      "def sweep(add):\n"
      "  add(seed=0)\n"
      "  add(seed=1, **{'model.dropout_rate': 0.2})\n")
  shared = {'data_dir': str(tiny_data_dir),
            'tfds_data_dir': str(tmp_path / 'tfds')}
  out = tmp_path / 'out'
  rows = sweep.run_sweep(str(sweep_file), str(out), shared, parallel=2)
  assert [r['status'] for r in rows] == ['done', 'done']
  assert [r['point'] for r in rows] == ['seed=0',
                                        'seed=1,model.dropout_rate=0.2']
  with open(out / 'results.csv') as f:
    table = list(csv.DictReader(f))
  assert [t['seed'] for t in table] == ['0', '1']
  assert 'data_dir' not in table[0] and 'log_step_interval' not in table[0]
  saved = (out / 'seed=1,model.dropout_rate=0.2' / 'config.json').read_text()
  assert '"log_step_interval": 4' in saved and '"dropout_rate": 0.2' in saved
  # Each row holds its own point's results, in percent.
  for t in table:
    results = json.loads((out / t['point'] / 'results.json').read_text())
    assert float(t['test_accuracy']) == round(
        results['test']['accuracy'] * 100, 2)
    assert float(t['validation_accuracy']) == round(
        results['validation']['accuracy'] * 100, 2)
    assert int(t['test_count']) == results['test']['count'] > 0
    assert int(t['params']) == results['num_params'] > 0
  assert (out / 'results.md').read_text().startswith('| point |')
  # A finished point is not trained again: its log is not appended to.
  log = out / 'seed=0' / 'train.log'
  size = log.stat().st_size
  rows = sweep.run_sweep(str(sweep_file), str(out), shared)
  assert log.stat().st_size == size
  assert 'wall_seconds' not in rows[0]


def test_table_shows_the_recall_of_the_sweep_files_words(tmp_path):
  sweep_file = tmp_path / 'words.py'
  sweep_file.write_text("BASE_CONFIG = 'configs/test.py'\n"
                        "RECALL_WORDS = ('cat',)\n"
                        "def sweep(add):\n  add(seed=3)\n")
  _, _, points, recall_words = sweep.load_sweep(str(sweep_file))
  assert points == [{'seed': 3}] and recall_words == ('cat',)
  results = {'validation': {'accuracy': 0.5},
             'test': {'accuracy': 0.25, 'count': 8, 'per_class': {
                 'cat': {'recall': 0.75}, 'on': {'recall': 0.5}}}}
  table_row = sweep.row('seed=3', {'seed': 3}, results, None, recall_words)
  assert table_row['cat_recall'] == 75.0 and 'on_recall' not in table_row
  assert sweep.row('x', {}, results, None)['on_recall'] == 50.0


def test_only_runs_the_matching_points(tmp_path, monkeypatch):
  sweep_file = tmp_path / 'three.py'
  sweep_file.write_text("BASE_CONFIG = 'configs/test.py'\n"
                        "def sweep(add):\n"
                        "  for s in (1, 2, 12):\n    add(seed=s)\n")
  ran = []
  monkeypatch.setattr(sweep, 'run_point', lambda base, workdir, *args: (
      ran.append(os.path.basename(workdir)) or {'point': ran[-1]}))
  out = tmp_path / 'out'
  # seed=2 finished in an earlier run: the table shows it without running it.
  (out / 'seed=2').mkdir(parents=True)
  (out / 'seed=2' / 'results.json').write_text(
      '{"validation": {"accuracy": 0.5}, "test": {"accuracy": 0.25, '
      '"count": 8}}')
  rows = sweep.run_sweep(str(sweep_file), str(out), {}, only='seed=1')
  assert ran == ['seed=1', 'seed=12']
  assert [r['point'] for r in rows] == ['seed=1', 'seed=2', 'seed=12']
  assert rows[1]['status'] == 'done' and rows[1]['test_accuracy'] == 25.0
  (out / 'seed=2' / 'results.json').unlink()
  rows = sweep.run_sweep(str(sweep_file), str(out), {}, only='seed=12')
  assert [r.get('status') for r in rows[:2]] == ['not run', 'not run']
  with pytest.raises(ValueError, match='matches no point'):
    sweep.run_sweep(str(sweep_file), str(tmp_path / 'out'), {}, only='lr=')


def _write_results(path, validation, unseen=None):
  path.mkdir(parents=True)
  results = {'validation': {'accuracy': validation},
             'test': {'accuracy': 0.9, 'count': 10, 'per_class': {
                 '_unknown_': {'recall': 0.5}, '_silence_': {'recall': 1.0}}},
             'silence_stress': {'recall': 0.75}}
  if unseen:
    results['unseen_words'] = {'per_group': unseen, 'mean_recall': 0.0}
  (path / 'results.json').write_text(json.dumps(results))


def test_unseen_word_folds_are_added_and_summarised(tmp_path):
  sweep_file = tmp_path / 'folds.py'
  sweep_file.write_text("BASE_CONFIG = 'configs/test.py'\n"
                        "UNSEEN_WORDS_FOLDS = 2\n"
                        "def sweep(add):\n"
                        "  add(point_name='plain')\n"
                        "  add(point_name='more', unknown_percentage=20.0)\n")
  _, _, points, _ = sweep.load_sweep(str(sweep_file))
  names = [sweep.point_name(p) for p in points]
  assert names == ['plain', 'more', 'plain,fold=1_2', 'plain,fold=2_2',
                   'more,fold=1_2', 'more,fold=2_2']
  assert points[5] == {'point_name': 'more', 'unknown_percentage': 20.0,
                       'unseen_words_fold': '2/2'}
  _write_results(tmp_path / 'plain', 0.8)
  _write_results(tmp_path / 'plain,fold=1_2', 0.7, {
      'dog': {'recall': 0.5, 'count': 2}, 'bed': {'recall': 1.0, 'count': 6}})
  _write_results(tmp_path / 'plain,fold=2_2', 0.7, {
      'cat': {'recall': 0.0, 'count': 2}})
  _write_results(tmp_path / 'more,fold=1_2', 0.7, {
      'dog': {'recall': 1.0, 'count': 2}})
  rows = sweep.summarize_folds(str(tmp_path), points)
  assert [r['recipe'] for r in rows] == ['plain', 'more']
  plain, more = rows
  assert plain['validation_accuracy'] == 80.0
  assert plain['unknown_recall'] == 50.0
  assert plain['stress_silence_recall'] == 75.0
  assert plain['unseen_words_recall'] == 50.0  # (0.5 + 1 + 0) / 3 words.
  assert plain['unseen_clips_recall'] == 70.0  # (1 + 6 + 0) / 10 clips.
  assert (plain['unseen_words'], plain['folds']) == (3, 2)
  assert plain['least_recognised'].startswith('cat 0% dog 50%')
  assert 'validation_accuracy' not in more  # Its all-words run is missing.
  assert (more['unseen_words_recall'], more['folds']) == (100.0, 1)


def test_fold_placeholder_names_the_same_fold_of_other_runs():
  teachers = '/runs/a{fold},/runs/b{fold}'
  plain = sweep.command('base.py', '/w/kd', {'distill_from': teachers})
  fold = sweep.command('base.py', '/w/kd,fold=2_3',
                       {'distill_from': teachers, 'unseen_words_fold': '2/3'})
  assert '--config.distill_from=/runs/a,/runs/b' in plain
  assert ('--config.distill_from=/runs/a,fold=2_3,/runs/b,fold=2_3'
          in fold)
  assert '--config.unseen_words_fold=2/3' in fold
  # The folder a fold point trains in has the same suffix.
  assert sweep.point_name({'point_name': 'kd', 'unseen_words_fold': '2/3'}
                          ) == 'kd,fold=2_3'


def test_fold_points_of_config_files_keep_distinct_names(tmp_path):
  sweep_file = tmp_path / 'archs.py'
  sweep_file.write_text("BASE_CONFIG = 'configs/test.py'\n"
                        "UNSEEN_WORDS_FOLDS = 2\n"
                        "def sweep(add):\n"
                        "  add(config='configs/ds_cnn.py')\n"
                        "  add(config='configs/tc_resnet.py', seed=1)\n"
                        "  add(point_name='x' * 300)\n")
  _, _, points, _ = sweep.load_sweep(str(sweep_file))
  names = [sweep.point_name(p) for p in points]
  assert names[:2] == ['config=ds_cnn', 'config=tc_resnet,seed=1']
  assert 'config=ds_cnn,fold=1_2' in names
  assert 'config=tc_resnet,seed=1,fold=2_2' in names
  assert len(set(names)) == len(names) == 9
  assert all(len(n) <= 200 for n in names)
  sweep_file.write_text("BASE_CONFIG = 'configs/test.py'\n"
                        "UNSEEN_WORDS_FOLDS = 1\n"
                        "def sweep(add):\n  add(seed=1)\n")
  with pytest.raises(ValueError, match='UNSEEN_WORDS_FOLDS=1'):
    sweep.load_sweep(str(sweep_file))


def _has_field(config, key: str) -> bool:
  """Whether 'a.b.c' names a field of `config`."""
  for part in key.split('.'):
    if part not in config:
      return False
    config = config[part]
  return True


@pytest.mark.parametrize('name', sorted(
    f for f in os.listdir(os.path.join(REPO, 'experiments'))
    if f.endswith('.py') and f not in ('__init__.py', 'sweep.py') and
    'def sweep(' in pathlib.Path(REPO, 'experiments', f).read_text()))
def test_every_sweep_file_names_only_fields_of_its_config(name):
  """A misspelt field fails here, not hours into a sweep."""
  base, shared, points, _ = sweep.load_sweep(
      os.path.join(REPO, 'experiments', name))
  for point in points:
    # A point may name its own config file (relative to the repository).
    path = os.path.join(REPO, point.get('config', base))
    config = config_files.load_config(path)
    for key in {**shared, **point}:
      assert key in ('point_name', 'config') or _has_field(config, key), (
          f'{name}: {key} is not a field of {path}')
