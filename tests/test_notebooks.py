"""The tutorial notebooks: committed clean, and runnable end to end.

The end-to-end test runs `python execute_notebook.py --short` on the shared
dev archive in a subprocess (a few minutes); it is skipped when the archive
or the `notebooks` extra (nbclient, ipykernel) is missing.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A script at the repository root, not part of the installed package.
_SPEC = importlib.util.spec_from_file_location(
    'execute_notebook', ROOT / 'execute_notebook.py')
execute_notebook = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault('execute_notebook', execute_notebook)
_SPEC.loader.exec_module(execute_notebook)

NOTEBOOKS = sorted(pathlib.Path(execute_notebook.NOTEBOOKS_DIR).glob(
    '[0-9]*.ipynb'))
SHARED_ARCHIVE = pathlib.Path(execute_notebook.SHARED_DATA_URL)
_MISSING = [m for m in ('nbclient', 'nbformat', 'ipykernel')
            if importlib.util.find_spec(m) is None]
needs_jupyter = pytest.mark.skipif(
    bool(_MISSING), reason=f'{", ".join(_MISSING)} not installed: '
    "pip install -e '.[notebooks]'")


def _load(path: pathlib.Path) -> dict:
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def test_the_series_is_there():
  names = [p.name for p in NOTEBOOKS]
  assert names == ['01_data_and_spectrograms.ipynb', '02_training.ipynb',
                   '03_evaluation_and_export.ipynb', '04_streaming.ipynb']


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
  for number, cell in enumerate(_load(path)['cells'], 1):
    if cell['cell_type'] != 'code':
      continue
    assert cell.get('outputs') == [], (
        f'{path.name} cell {number} has outputs; run python '
        'execute_notebook.py --clear_outputs')
    assert cell.get('execution_count') is None, (
        f'{path.name} cell {number} has an execution count; run python '
        'execute_notebook.py --clear_outputs')


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_parameters_cell_first(path):
  code = [c for c in _load(path)['cells'] if c['cell_type'] == 'code']
  assert execute_notebook.PARAMETERS_TAG in code[0]['metadata'].get('tags', [])
  source = ''.join(code[0]['source'])
  # Every notebook is pointed at the workdir or the data by its parameters.
  assert 'workdir' in source or 'data_url' in source


def test_typed_overrides_follow_the_config_fields():
  from configs import tc_resnet
  overrides = execute_notebook.typed_overrides(tc_resnet.get_config(), [
      'how_many_training_steps=60,20', 'batch_size=32',
      'background_volume=0.2', 'wanted_words=yes,no',
      'model.dropout_rate=0.3', 'check_nans=true'])
  assert overrides == {
      'how_many_training_steps': '60,20', 'batch_size': 32,
      'background_volume': 0.2, 'wanted_words': ('yes', 'no'),
      'model.dropout_rate': 0.3, 'check_nans': True}
  with pytest.raises(ValueError, match='no field'):
    execute_notebook.typed_overrides(tc_resnet.get_config(), ['nope=1'])
  with pytest.raises(ValueError, match='batch_size'):
    execute_notebook.typed_overrides(tc_resnet.get_config(),
                                     ['batch_size=many'])


def test_short_parameters_use_the_shared_data_and_absolute_paths(tmp_path):
  values = execute_notebook.notebook_parameters({
      'config': 'tc_resnet', 'overrides': ['batch_size=16'],
      'params': ['stream_seconds=30'], 'short': True,
      'output_dir': str(tmp_path), 'workdir': None, 'data_url': None,
      'data_dir': None, 'tfds_data_dir': None})
  assert values['data_url'] == execute_notebook.SHARED_DATA_URL
  assert values['data_dir'] == str(tmp_path / 'speech_dataset')
  assert values['workdir'] == str(tmp_path / 'workdir')
  assert values['config_overrides']['batch_size'] == 16  # Given wins.
  assert values['config_overrides']['how_many_training_steps'] == '60,20'
  assert values['stream_seconds'] == 30
  full = execute_notebook.notebook_parameters({
      'config': 'tc_resnet', 'overrides': [], 'params': [], 'short': False,
      'output_dir': str(tmp_path), 'workdir': 'rel/work', 'data_url': None,
      'data_dir': 'rel/data', 'tfds_data_dir': None})
  assert full['config_overrides'] == {}  # The recipe as it is.
  assert full['data_url'] is None and full['tfds_data_dir'] is None
  assert full['data_dir'] == os.path.abspath('rel/data')
  assert full['workdir'] == os.path.abspath('rel/work')


@needs_jupyter
def test_only_declared_parameters_are_injected():
  import nbformat
  nb = nbformat.v4.new_notebook()
  parameters = nbformat.v4.new_code_cell('workdir = "/tmp/a"\nsteps = 3')
  parameters.metadata['tags'] = ['parameters']
  nb.cells = [nbformat.v4.new_markdown_cell('# Title'), parameters,
              nbformat.v4.new_code_cell('print(workdir)')]
  used = execute_notebook.inject_parameters(
      nb, {'workdir': '/tmp/b', 'data_url': 'x', 'steps': None})
  assert used == ['workdir']
  assert nb.cells[2].metadata['tags'] == [execute_notebook.INJECTED_TAG]
  assert "workdir = '/tmp/b'" in nb.cells[2].source


def _run(args, cwd, timeout):
  return subprocess.run(
      [sys.executable, str(ROOT / 'execute_notebook.py'), *args], cwd=cwd,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      timeout=timeout, check=False)


@needs_jupyter
def test_a_failing_cell_is_named_and_the_copy_kept(tmp_path):
  import nbformat
  nb = nbformat.v4.new_notebook()
  parameters = nbformat.v4.new_code_cell('workdir = None')
  parameters.metadata['tags'] = ['parameters']
  nb.cells = [parameters, nbformat.v4.new_code_cell('print("before")'),
              nbformat.v4.new_code_cell('raise ValueError("no such word")'),
              nbformat.v4.new_code_cell('print("never")')]
  folder = tmp_path / 'notebooks'
  folder.mkdir()
  nbformat.write(nb, folder / '01_fails.ipynb')
  nbformat.write(nb, folder / '02_not_reached.ipynb')
  out = tmp_path / 'out'
  result = _run([f'--notebooks_dir={folder}', f'--output_dir={out}'],
                tmp_path, timeout=300)
  assert result.returncode == 1, result.stdout
  assert ('01_fails.ipynb failed in code cell 4 (cell 4 of 5, starting '
          '"raise ValueError("no such word")"): ValueError: no such word'
          in result.stdout), result.stdout
  assert 'before' in result.stdout
  executed = nbformat.read(out / '01_fails.ipynb', as_version=4)
  assert executed.cells[3].outputs[0]['output_type'] == 'error'
  assert not (out / '02_not_reached.ipynb').exists()


@needs_jupyter
@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(),
                    reason=f'{SHARED_ARCHIVE} (the shared dev data) is absent')
def test_short_run_executes_every_notebook(tmp_path):
  import nbformat
  out = tmp_path / 'notebooks'
  result = _run(['--short', f'--output_dir={out}'], ROOT, timeout=1500)
  log = result.stdout
  assert result.returncode == 0, textwrap.shorten(log[-5000:], 5000)
  # The training log lines were echoed while the notebook ran.
  assert 'Step #' in log
  assert 'Validation accuracy' in log
  for path in NOTEBOOKS:
    executed = nbformat.read(out / path.name, as_version=4)
    code = [c for c in executed.cells if c.cell_type == 'code']
    assert all(c.execution_count is not None for c in code), path.name
    assert any(c.outputs for c in code), path.name
    assert not any(o.output_type == 'error' for c in code for o in c.outputs)
  training = nbformat.read(out / '02_training.ipynb', as_version=4)
  assert any('image/png' in o.get('data', {})
             for c in training.cells if c.cell_type == 'code'
             for o in c.outputs)
  workdir = out / 'workdir'
  for name in ('metrics.jsonl', 'results.json', 'model.tflite',
               'streaming/roc/roc.png'):
    assert (workdir / name).is_file(), name
