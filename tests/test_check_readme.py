"""The README's set-up figures and the tool that checks them against a run."""

import json
import os
import subprocess
import sys

import numpy as np

from experiments import check_readme

LABELS = ['_silence_', '_unknown_', 'yes', 'no']


def _results() -> dict:
  # Rows are true classes: silence 10/10, unknown 8/10, yes 9/10, no 7/10.
  confusion = np.array([[10, 0, 0, 0], [1, 8, 1, 0], [0, 1, 9, 0],
                        [0, 2, 1, 7]])
  per_class = {label: {'recall': float(confusion[i, i] / 10)}
               for i, label in enumerate(LABELS)}
  split = {'accuracy': 34 / 40, 'labels': LABELS, 'per_class': per_class,
           'confusion_matrix': confusion.tolist()}
  return {'best_step': 300, 'validation': {'accuracy': 0.91234},
          'test': split, 'silence_stress': {'recall': 0.99107}}


def _run(tmp_path, readme_text: str, *args: str):
  readme = tmp_path / 'README.md'
  readme.write_text(readme_text)
  workdir = tmp_path / 'run'
  workdir.mkdir(exist_ok=True)
  (workdir / 'results.json').write_text(json.dumps(_results()))
  done = subprocess.run(
      [sys.executable, '-m', 'experiments.check_readme',
       f'--workdir={workdir}', f'--readme={readme}', *args],
      capture_output=True, text=True, cwd=check_readme.REPO, check=False)
  return done, readme


def test_run_figures_are_read_from_results_json():
  assert check_readme.run_figures(_results()) == {
      'best step (by validation accuracy)': '300',
      'validation accuracy': '91.2%',
      'test accuracy': '85.0%',
      'test accuracy, command clips only': '80.0%',  # (9 + 7) / 20
      'test `_unknown_` recall': '80.0%',
      'test `_silence_` recall': '100.0%',
      'silence stress set, silence recall': '99.1%',
  }


def test_write_then_check_passes_and_a_changed_figure_fails(tmp_path):
  text = (f'# Title\n\nBefore.\n\n{check_readme.START}\nold\n'
          f'{check_readme.END}\n\nAfter.\n')
  done, readme = _run(tmp_path, text, '--write')
  assert done.returncode == 0, done.stderr
  written = readme.read_text()
  assert written.startswith('# Title\n\nBefore.\n') and 'After.' in written
  assert '| test accuracy | 85.0% |' in written

  done, _ = _run(tmp_path, written, '--tolerance=0')
  assert done.returncode == 0, done.stdout + done.stderr
  assert 'match' in done.stdout and 'within 0 points' in done.stdout

  drifted = written.replace('| test accuracy | 85.0% |',
                            '| test accuracy | 85.1% |')
  done, _ = _run(tmp_path, drifted, '--tolerance=0')
  assert done.returncode == 1
  assert 'test accuracy: README says 85.1%, the run gave 85.0%' in done.stdout
  # Within the default tolerance (1.5 points) it passes; beyond, it fails.
  done, _ = _run(tmp_path, drifted)
  assert done.returncode == 0, done.stdout
  far = written.replace('| test accuracy | 85.0% |',
                        '| test accuracy | 87.0% |')
  done, _ = _run(tmp_path, far)
  assert done.returncode == 1
  assert 'by more than 1.5 points' in done.stdout
  # The best step is shown, not compared.
  other_step = written.replace('| 300 |', '| 400 |')
  assert other_step != written
  done, _ = _run(tmp_path, other_step, '--tolerance=0')
  assert done.returncode == 0, done.stdout


def test_missing_block_and_missing_run_are_named(tmp_path):
  done, readme = _run(tmp_path, '# No figures here\n')
  assert done.returncode == 1
  assert f'{readme} has no {check_readme.START}' in done.stderr
  done = subprocess.run(
      [sys.executable, '-m', 'experiments.check_readme',
       f'--workdir={tmp_path / "nothing"}'],
      capture_output=True, text=True, cwd=check_readme.REPO, check=False)
  assert done.returncode == 1
  assert 'has no results.json: run the README\'s set-up command 1' in (
      done.stderr)


def test_the_readme_lists_every_checked_figure_and_no_other():
  with open(os.path.join(check_readme.REPO, 'README.md'),
            encoding='utf-8') as f:
    figures = check_readme.readme_figures(f.read())
  assert list(figures) == [name for name, _, _ in check_readme.FIGURES]
  assert all(value for value in figures.values())
