r"""Checks the README's set-up figures against a run of set-up command 1.

The README's table of what set-up command 1 gives (between the
`<!-- setup-figures -->` and `<!-- /setup-figures -->` marks) is only true
while the code gives it. After set-up command 1 has trained into
/tmp/kws_train:

  python -m experiments.check_readme --workdir=/tmp/kws_train

prints each figure as the README has it and as the run gave it, and exits
with status 1 if any accuracy or recall differs by more than `--tolerance`
points (default 1.5: the synthetic speech of set-up command 1 is not
bit-for-bit repeatable (Piper's and some of eSpeak's clips differ
between runs), so two fresh runs differ by about the spread of the
seeds; 0 checks digit for digit). The best step is shown, not compared. `--write` puts the run's
figures into the README instead (for a change that is meant to move them;
commit the result with the change).

The figures are read from the run's `results.json`: the best step and its
validation accuracy, test accuracy overall and over the command clips alone,
the test recall of `_unknown_` and `_silence_`, and the silence stress set.
"""

import json
import os
import sys
from typing import Callable

from absl import app
from absl import flags
import numpy as np

from kws_jax import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = '<!-- setup-figures -->'
END = '<!-- /setup-figures -->'



def _define_flags() -> None:
  # Defined only when run as a program: tests import this module beside
  # others (experiments.sweep) that define --workdir too.
  flags.DEFINE_string('workdir', '/tmp/kws_train',
                      'The run of set-up command 1.')
  flags.DEFINE_string('readme', os.path.join(REPO, 'README.md'),
                      'The README to check or write.')
  flags.DEFINE_bool('write', False, "Write the run's figures into the README.")
  flags.DEFINE_float('tolerance', 1.5,
                     'Largest difference, in points, of a percentage.')

NON_COMMANDS = ('_silence_', '_unknown_')


def _recall(split: str, label: str) -> Callable[[dict], float]:
  return lambda r: 100 * r[split]['per_class'][label]['recall']


def commands_accuracy(split: dict) -> float:
  """Accuracy (%) over the clips whose true class is a command word."""
  confusion = np.asarray(split['confusion_matrix'])
  keep = [i for i, label in enumerate(split['labels'])
          if label not in NON_COMMANDS]
  rows = confusion[keep]
  return 100 * float(rows[np.arange(len(keep)), keep].sum() / rows.sum())


# (the row's name in the README, the figure from results.json, its format)
FIGURES = (
    ('best step (by validation accuracy)', lambda r: r['best_step'], '{:d}'),
    ('validation accuracy', lambda r: 100 * r['validation']['accuracy'],
     '{:.1f}%'),
    ('test accuracy', lambda r: 100 * r['test']['accuracy'], '{:.1f}%'),
    ('test accuracy, command clips only',
     lambda r: commands_accuracy(r['test']), '{:.1f}%'),
    ('test `_unknown_` recall', _recall('test', '_unknown_'), '{:.1f}%'),
    ('test `_silence_` recall', _recall('test', '_silence_'), '{:.1f}%'),
    ('silence stress set, silence recall',
     lambda r: 100 * r['silence_stress']['recall'], '{:.1f}%'),
)


def run_figures(results: dict) -> dict[str, str]:
  """{row name: formatted figure} of a run's results.json."""
  return {name: fmt.format(get(results)) for name, get, fmt in FIGURES}


def _block(readme: str, path: str) -> tuple[int, int]:
  start, end = readme.find(START), readme.find(END)
  if start < 0 or end < start:
    raise ValueError(f'{path} has no {START} ... {END} block: put the set-up '
                     'figures table between those marks.')
  return start + len(START), end


def readme_figures(readme: str, path: str = 'README.md') -> dict[str, str]:
  """{row name: figure} of the README's set-up figures table."""
  start, end = _block(readme, path)
  rows = {}
  for line in readme[start:end].splitlines():
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if len(cells) == 2 and not set(cells[1]) <= set('-') and (
        cells[0] != 'figure'):
      rows[cells[0]] = cells[1]
  return rows


def table(figures: dict[str, str]) -> str:
  lines = ['| figure | set-up command 1 |', '|---|---|']
  lines += [f'| {name} | {value} |' for name, value in figures.items()]
  return '\n'.join(lines)


def _differs(readme: str | None, run: str, tolerance: float) -> bool:
  if readme is None:
    return True
  if not run.endswith('%'):
    return False  # The best step: shown, not compared.
  try:
    return abs(float(readme.rstrip('%')) - float(run.rstrip('%'))) > (
        tolerance + 1e-9)
  except ValueError:
    return True


def compare(readme: dict[str, str], run: dict[str, str],
            tolerance: float = 0.0) -> list[str]:
  """Lines naming each figure that differs (missing rows included).

  Percentages differ when more than `tolerance` points apart; the best step
  is never compared.
  """
  problems = []
  for name, value in run.items():
    if _differs(readme.get(name), value, tolerance):
      problems.append(f'{name}: README says {readme.get(name, "nothing")}, '
                      f'the run gave {value}')
  for name in readme:
    if name not in run:
      problems.append(f'{name}: in the README, but no such figure is checked')
  return problems


def main(argv):
  del argv
  fl = flags.FLAGS
  results_path = os.path.join(fl.workdir, 'results.json')
  if not os.path.exists(results_path):
    sys.exit(f'error: --workdir={fl.workdir} has no results.json: run '
             "the README's set-up command 1 into it first.")
  with open(results_path) as f:
    try:
      run = run_figures(json.load(f))
    except KeyError as e:
      sys.exit(f'error: {results_path} has no {e} figure: it is not a run of '
               "set-up command 1 (whose results include the test split's "
               'per-class recall and the silence stress set).')
  with open(fl.readme, encoding='utf-8') as f:
    text = f.read()
  try:
    start, end = _block(text, fl.readme)
  except ValueError as e:
    sys.exit(f'error: {e}')
  if fl.write:
    new = text[:start] + '\n' + table(run) + '\n' + text[end:]
    files.write_atomic(fl.readme, new)
    print(f'Wrote the figures of {results_path} into {fl.readme}.')
    return
  readme = readme_figures(text, fl.readme)
  width = max(len(name) for name in run)
  for name, value in run.items():
    print(f'{name:<{width}}  README {readme.get(name, "-"):>7}  '
          f'run {value:>7}')
  problems = compare(readme, run, fl.tolerance)
  if problems:
    print(f'\n{len(problems)} figure(s) of {fl.readme} differ from '
          f'{results_path} by more than {fl.tolerance:g} points:')
    print('\n'.join(f'  {p}' for p in problems))
    sys.exit(1)
  print(f'\nThe figures of {fl.readme} match {results_path} within '
        f'{fl.tolerance:g} points.')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
