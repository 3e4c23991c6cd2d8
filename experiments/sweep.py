r"""Runs every point of a sweep and writes its results table.

  python -m experiments.sweep --sweep=experiments/recipe.py \
      --workdir=/tmp/sweeps/recipe \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz

A sweep file names a base config (`BASE_CONFIG`), optionally settings every
point shares (`SHARED`, a dict; not shown in the table), and a `sweep(add)`
function that calls `add(field=value, ...)` once per point (nested fields as
'model.scale'). A point may start from another config file with
`add(config='configs/ds_cnn.py', ...)`, and may name itself with
`point_name='...'`. The table shows the test recall of on and off (or of
the words in the file's `RECALL_WORDS`), of `_unknown_` and `_silence_`,
and the silence stress set's silence recall. A file that sets
`UNSEEN_WORDS_FOLDS = k` also runs every point once per unseen-words fold
(`unseen_words_fold='i/k'`), and `<workdir>/summary.md` gives one row per
point with the `_unknown_` recall of the words its folds left out; in any
setting (the file's or an `--override`), `{fold}` stands for the fold's
folder suffix (',fold=i_k', '' for the run on all the words), so a fold run
can name the runs of the same fold of another sweep (e.g. the teachers of
`distill_from`).
Each point trains in its own process, `python -m kws_jax.main`, into
`<workdir>/<point name>`; a point whose `results.json` exists is skipped, so
an interrupted sweep resumes where it stopped (and a half-trained point
resumes from its checkpoint). `--parallel` runs several points at once.
The table is written to `<workdir>/results.csv` and `<workdir>/results.md`.
"""

import concurrent.futures
import csv
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging

from kws_jax import config_files

_SWEEP = flags.DEFINE_string('sweep', None, 'Sweep file (Python).')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where the points train.')
_OVERRIDE = flags.DEFINE_multi_string(
    'override', [], 'field=value applied to every point (e.g. data_url=...).')
_PARALLEL = flags.DEFINE_integer('parallel', 1, 'Points trained at once.')
_ONLY = flags.DEFINE_string(
    'only', None, 'Run only the points whose name matches this regular '
    "expression (re.search), e.g. 'tiny_conv|single_fc'.")
flags.mark_flags_as_required(['sweep', 'workdir'])

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The config field of the unseen-words folds (UNSEEN_WORDS_FOLDS).
FOLD_FIELD = 'unseen_words_fold'
# In a setting's value: the fold's folder suffix (see the docstring).
FOLD_PLACEHOLDER = '{fold}'
# The table's per-word test recall columns, unless a sweep file sets
# RECALL_WORDS: the scarce words of the shared data.
DEFAULT_RECALL_WORDS = ('on', 'off')


def load_sweep(path: str) -> tuple[str, dict[str, Any], list[dict[str, Any]],
                                  tuple[str, ...]]:
  """Returns (base config path, shared overrides, per-point overrides,
  words whose test recall the table shows)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'--sweep={path}: no such sweep file.')
  module = config_files.load_module(path, 'sweep_file')
  for name in ('BASE_CONFIG', 'sweep'):
    if not hasattr(module, name):
      raise ValueError(f'Sweep file {path} must define {name}; see '
                       'experiments/README.md.')
  points: list[dict[str, Any]] = []
  module.sweep(lambda **overrides: points.append(overrides))
  if not points:
    raise ValueError(f'Sweep file {path} added no points.')
  folds = getattr(module, 'UNSEEN_WORDS_FOLDS', 0)
  if folds and (not isinstance(folds, int) or folds < 2):
    raise ValueError(f'Sweep file {path}: UNSEEN_WORDS_FOLDS={folds!r} must be '
                     'a whole number of at least 2 (or 0: no folds).')
  points += [{**point, FOLD_FIELD: f'{i}/{folds}'}
             for point in points for i in range(1, folds + 1)]
  base = module.BASE_CONFIG
  if not os.path.isabs(base):
    base = os.path.join(REPO, base)
  return (base, dict(getattr(module, 'SHARED', {})), points,
          tuple(getattr(module, 'RECALL_WORDS', DEFAULT_RECALL_WORDS)))


def point_name(overrides: dict[str, Any]) -> str:
  """A readable, file-system-safe name such as 'learning_rate=0.01,seed=1'.

  A point's own `point_name` replaces the list of its settings (all but an
  unseen-words fold, which is added as ',fold=i_k').
  """
  fold = overrides.get(FOLD_FIELD)
  overrides = {k: v for k, v in overrides.items() if k != FOLD_FIELD}
  if 'point_name' in overrides:
    text = str(overrides['point_name'])
  elif not overrides:
    text = 'base'
  else:
    text = ','.join(f'{k}={_flag_value(v)}' for k, v in overrides.items())
  text = re.sub(r'config=(?:[^,]*/)?([^/,]+?)(?:\.py)?(?=,|$)', r'config=\1',
                text)
  suffix = fold_suffix(fold)
  # Cut to 200 characters, the fold kept: it tells the folds apart.
  return re.sub(r'[^A-Za-z0-9_.,=+-]', '_',
                text[:200 - len(suffix)] + suffix)


def _flag_value(value: Any) -> str:
  if isinstance(value, (tuple, list)):
    return ','.join(str(v) for v in value)
  return str(value)


def fold_suffix(fold: str | None) -> str:
  """The folder suffix of an unseen-words fold 'i/k': ',fold=i_k' ('' for
  None)."""
  return f',fold={fold.replace("/", "_")}' if fold else ''


def command(base: str, workdir: str, overrides: dict[str, Any]) -> list[str]:
  """The training command of a point, `FOLD_PLACEHOLDER` filled in."""
  suffix = fold_suffix(overrides.get(FOLD_FIELD))
  return [sys.executable, '-m', 'kws_jax.main', f'--config={base}',
          f'--workdir={workdir}'] + [
              f'--config.{k}=' +
              _flag_value(v).replace(FOLD_PLACEHOLDER, suffix)
              for k, v in overrides.items()]


def run_point(base: str, workdir: str, overrides: dict[str, Any],
              shown: dict[str, Any],
              recall_words: tuple[str, ...] = DEFAULT_RECALL_WORDS) -> dict:
  """Trains one point unless its results exist; returns its table row.

  `overrides` go to the command line; `shown` (the point's own) to the table.
  """
  results_path = os.path.join(workdir, 'results.json')
  seconds = None
  if not os.path.exists(results_path):
    os.makedirs(workdir, exist_ok=True)
    started = time.time()
    with open(os.path.join(workdir, 'train.log'), 'a') as log:
      done = subprocess.run(command(base, workdir, overrides), cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT)
    seconds = time.time() - started
    if done.returncode != 0:
      logging.error('Point %s failed (exit %d); see %s/train.log', workdir,
                    done.returncode, workdir)
      return {'point': os.path.basename(workdir), 'status': 'failed'}
  with open(results_path) as f:
    results = json.load(f)
  return row(os.path.basename(workdir), shown, results, seconds, recall_words)


def row(name: str, overrides: dict[str, Any], results: dict,
        wall_seconds: float | None,
        recall_words: tuple[str, ...] = DEFAULT_RECALL_WORDS
        ) -> dict[str, Any]:
  per_class = results['test'].get('per_class', {})
  out = {'point': name, 'status': 'done'}
  out.update({k: _flag_value(v) for k, v in overrides.items()})
  out.update({
      'validation_accuracy': round(results['validation']['accuracy'] * 100, 2),
      'test_accuracy': round(results['test']['accuracy'] * 100, 2),
      'test_count': results['test']['count'],
      'params': results.get('num_params'),
      # (Runs from before 2026-11-24 called it train_seconds_excluding_compile
      # and counted evaluations in.)
      'train_seconds': round(results.get(
          'train_step_seconds',
          results.get('train_seconds_excluding_compile', 0))),
  })
  for word in recall_words:
    if word in per_class:
      out[f'{word}_recall'] = round(per_class[word]['recall'] * 100, 1)
  for label, column in (('_unknown_', 'unknown_recall'),
                        ('_silence_', 'silence_recall')):
    if label in per_class:
      out[column] = round(per_class[label]['recall'] * 100, 1)
  if 'silence_stress' in results:
    out['stress_silence_recall'] = round(
        results['silence_stress']['recall'] * 100, 1)
  if 'unseen_words' in results:
    out['unseen_words_recall'] = round(
        results['unseen_words']['mean_recall'] * 100, 1)
  if wall_seconds is not None:
    out['wall_seconds'] = round(wall_seconds)
  return out


def write_tables(workdir: str, rows: list[dict[str, Any]],
                 name: str = 'results') -> None:
  """Writes `<workdir>/<name>.csv` and `<name>.md`."""
  columns: list[str] = []
  for r in rows:
    columns.extend(k for k in r if k not in columns)
  with open(os.path.join(workdir, f'{name}.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
  lines = ['| ' + ' | '.join(columns) + ' |',
           '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(str(r.get(c, '')) for c in columns) + ' |'
            for r in rows]
  with open(os.path.join(workdir, f'{name}.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')


def summarize_folds(workdir: str, points: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
  """One row per recipe: its all-words run, and its unseen-words folds.

  Points that differ only in `unseen_words_fold` are one recipe. Its row
  has the figures of the point without a fold (validation, test, unknown
  and silence recall, the silence stress set) and, over its finished fold
  points, the `_unknown_` recall of every word left out (each word scored
  by the fold that left it out): the mean over words and over clips, the
  number of words and folds, and the five least recognised words.
  """
  recipes: dict[str, dict[str, Any]] = {}
  for point in points:
    recipe = {k: v for k, v in point.items() if k != FOLD_FIELD}
    entry = recipes.setdefault(point_name(recipe), {'all': None, 'folds': []})
    results_path = os.path.join(workdir, point_name(point), 'results.json')
    if not os.path.exists(results_path):
      continue
    with open(results_path) as f:
      results = json.load(f)
    if FOLD_FIELD in point:
      entry['folds'].append(results)
    else:
      entry['all'] = results
  rows = []
  for name, entry in recipes.items():
    out = {'recipe': name}
    if entry['all']:
      figures = row(name, {}, entry['all'], None, ())
      out.update({k: v for k, v in figures.items()
                  if k not in ('point', 'status', 'test_count', 'params',
                               'unseen_words_recall')})
    per_word = {}
    for results in entry['folds']:
      per_word.update(results.get('unseen_words', {}).get('per_group', {}))
    if per_word:
      clips = sum(w['count'] for w in per_word.values())
      out['unseen_words_recall'] = round(100 * sum(
          w['recall'] for w in per_word.values()) / len(per_word), 1)
      out['unseen_clips_recall'] = round(100 * sum(
          w['recall'] * w['count'] for w in per_word.values()) / clips, 1)
      out['unseen_words'] = len(per_word)
      out['folds'] = len(entry['folds'])
      worst = sorted(per_word, key=lambda w: per_word[w]['recall'])[:5]
      out['least_recognised'] = ' '.join(
          f'{w} {100 * per_word[w]["recall"]:.0f}%' for w in worst)
    rows.append(out)
  return rows


def run_sweep(sweep_path: str, workdir: str, shared: dict[str, Any],
              parallel: int = 1, only: str | None = None
              ) -> list[dict[str, Any]]:
  """Runs (or skips, if finished) every point; returns the table rows.

  With `only`, just the points whose name matches that regular expression
  run; the table still lists the others, with their results if they have
  finished before, else as 'not run'.
  """
  base, from_file, points, recall_words = load_sweep(sweep_path)
  selected = [p for p in points
              if not only or re.search(only, point_name(p))]
  if not selected:
    raise ValueError(f'--only={only!r} matches no point of {sweep_path}.')
  shared = {**from_file, **shared}
  os.makedirs(workdir, exist_ok=True)
  jobs = []
  for point in points:
    settings = {**shared, **point}
    settings.pop('point_name', None)
    point_base = settings.pop('config', base)
    if not os.path.isabs(point_base):
      point_base = os.path.join(REPO, point_base)
    shown = {k: v for k, v in point.items() if k != 'point_name'}
    jobs.append((point_base, os.path.join(workdir, point_name(point)),
                 settings, shown, recall_words))
  names = [j[1] for j in jobs]
  if len(set(names)) != len(names):
    raise ValueError(f'Sweep file {sweep_path} has duplicate points.')
  with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
    futures = [pool.submit(run_point, *job) if point in selected
               else None for job, point in zip(jobs, points)]
    rows = [f.result() if f else _earlier_row(job)
            for f, job in zip(futures, jobs)]
  write_tables(workdir, rows)
  if any(FOLD_FIELD in p for p in points):
    write_tables(workdir, summarize_folds(workdir, points), 'summary')
  return rows


def _earlier_row(job) -> dict[str, Any]:
  """The row of a point left out by --only: its results if it has any."""
  _, point_dir, _, shown, recall_words = job
  name = os.path.basename(point_dir)
  results_path = os.path.join(point_dir, 'results.json')
  if not os.path.exists(results_path):
    return {'point': name, 'status': 'not run'}
  with open(results_path) as f:
    return row(name, shown, json.load(f), None, recall_words)


def _parse_overrides(items: list[str]) -> dict[str, str]:
  out = {}
  for item in items:
    if '=' not in item:
      raise app.UsageError(f'--override={item!r} must look like field=value.')
    key, value = item.split('=', 1)
    out[key.strip()] = value
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  rows = run_sweep(_SWEEP.value, _WORKDIR.value,
                   _parse_overrides(_OVERRIDE.value), _PARALLEL.value,
                   _ONLY.value)
  failed = [r['point'] for r in rows if r['status'] == 'failed']
  logging.info('Results table: %s', os.path.join(_WORKDIR.value,
                                                 'results.md'))
  for name in ('results.md', 'summary.md'):
    path = os.path.join(_WORKDIR.value, name)
    if os.path.exists(path):
      with open(path) as f:
        print(f.read())
  if failed:
    raise SystemExit(f'{len(failed)} point(s) failed: {failed}')


if __name__ == '__main__':
  app.run(main)
