r"""Runs the tutorial notebooks in `notebooks/` in order, with a real kernel.

  python execute_notebook.py                  # the full recipe (hours on a CPU)
  python execute_notebook.py --short          # a few minutes on the dev data
  python execute_notebook.py \
      --data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=how_many_training_steps=3000,1500,500 --output_dir=/tmp/nb

Each notebook's cell tagged `parameters` holds its defaults; the values given
here go into a cell inserted after it (tagged `injected-parameters`, as
papermill does), and only the names that notebook declares. Paths are made
absolute first, since the kernel runs in `notebooks/`.

* Default: the default model's config as it is (`configs/tc_resnet.py`: the
  full schedule, data from the config's `data_url`, and the synthetic
  folder that `experiments/synthesize_negatives.sh` makes).
* `--short`: a tiny schedule (`SHORT_OVERRIDES`), a short stream and the
  int8 comparison on 200 test clips (`SHORT_PARAMETERS`), on the shared dev
  archive (`SHARED_DATA_URL`) unpacked under `--output_dir`; for CI. Flags
  given explicitly still win.

What the cells print (the training log lines among it) is echoed to this
terminal as it arrives. The executed copies, outputs included, are written to
`--output_dir` as each notebook finishes or fails. On a failure the message
names the notebook and the cell, and the exit status is 1.

`--clear_outputs` strips outputs and execution counts from the notebooks in
place: they are committed without them.

Needs the `notebooks` extra: `pip install -e '.[notebooks]'` (nbclient,
nbformat, ipykernel).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import os
import sys
import time
from typing import Any, Callable, TextIO

from absl import app
from absl import flags

from kws_jax import config_files

ROOT = os.path.dirname(os.path.abspath(__file__))
NOTEBOOKS_DIR = os.path.join(ROOT, 'notebooks')
SHARED_DATA_URL = os.path.normpath(
    os.path.join(ROOT, '..', 'shared', 'data', 'speech_commands_dev.tar.gz'))
PARAMETERS_TAG = 'parameters'
INJECTED_TAG = 'injected-parameters'

# --short: 80 training steps, validation (and a checkpoint) at steps 40 and
# 80; a faster rate, then a slower one, like the default model's schedule.
SHORT_OVERRIDES = {
    'how_many_training_steps': '60,20',
    'learning_rate': '0.003,0.001',
    'batch_size': 64,
    'eval_step_interval': 40,
    'save_step_interval': 80,
    # No synthetic speech: making the default recipe's folder takes longer
    # than the whole short run.
    'synthetic_dir': '',
    'synthetic_fraction': 0.0,
    'synthetic_unknown': False,
}
# --short: notebook settings besides the config.
SHORT_PARAMETERS = {
    'log_step_interval': 10,
    'stream_seconds': 40.0,
    'export_int8': True,
    'max_eval_clips': 200,
}


class NotebookError(RuntimeError):
  """A notebook could not be run; the message names it and the cell."""


def parse_literal(text: str) -> Any:
  """A Python literal if `text` is one, else `text` itself."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def split_assignment(item: str, flag: str) -> tuple[str, str]:
  key, sep, value = item.partition('=')
  if not sep or not key.strip():
    raise ValueError(f'--{flag}={item!r}: expected name=value.')
  return key.strip(), value


def typed_overrides(config: Any, items: list[str]) -> dict[str, Any]:
  """Parses `key=value` overrides to the types of the config's fields.

  Strings stay strings (so `how_many_training_steps=60,20` is the tutorial's
  comma list), tuples are comma lists, numbers and booleans are parsed.

  Raises:
    ValueError: an unknown field or a value of the wrong kind.
  """
  out = {}
  for item in items:
    key, text = split_assignment(item, 'override')
    try:
      current = config
      for part in key.split('.'):
        current = current[part]
    except (KeyError, AttributeError):
      raise ValueError(f'--override={item!r}: the config has no field '
                           f'{key!r}.') from None
    try:
      out[key] = _as_type_of(current, text)
    except ValueError as e:
      raise ValueError(f'--override={item!r}: {e}') from None
  return out


def _as_type_of(current: Any, text: str) -> Any:
  if isinstance(current, bool):
    if text.lower() in ('true', '1', 'yes'):
      return True
    if text.lower() in ('false', '0', 'no'):
      return False
    raise ValueError(f'expected true or false, got {text!r}.')
  if isinstance(current, int):
    return int(text)
  if isinstance(current, float):
    return float(text)
  if isinstance(current, tuple):
    return tuple(p.strip() for p in text.split(',') if p.strip())
  if isinstance(current, str) or current is None:
    return text
  value = parse_literal(text)
  if not isinstance(value, type(current)):
    raise ValueError(f'expected a {type(current).__name__} literal.')
  return value


def notebook_parameters(args: dict[str, Any]) -> dict[str, Any]:
  """All parameters the notebooks may take, from the parsed command line.

  Args:
    args: 'config', 'overrides' (key=value list), 'params' (name=value
      list), 'short', 'output_dir', 'workdir', 'data_url', 'data_dir',
      'tfds_data_dir' (None: not given).
  """
  sys.path.insert(0, ROOT)  # The config files import `configs.default`.
  try:
    config = config_files.load_config(
        os.path.join(ROOT, 'configs', f'{args["config"]}.py'))
  except FileNotFoundError as e:
    raise ValueError(f'--config={args["config"]!r}: no such config in '
                     f'{os.path.join(ROOT, "configs")} ({e}).') from None
  output_dir = os.path.abspath(args['output_dir'])
  overrides = dict(SHORT_OVERRIDES) if args['short'] else {}
  overrides.update(typed_overrides(config, args['overrides']))
  params = dict(SHORT_PARAMETERS) if args['short'] else {}
  for item in args['params']:
    name, text = split_assignment(item, 'param')
    params[name] = parse_literal(text)

  data = {'data_url': args['data_url'], 'data_dir': args['data_dir'],
          'tfds_data_dir': args['tfds_data_dir']}
  if args['short']:
    defaults = {'data_url': SHARED_DATA_URL,
                'data_dir': os.path.join(output_dir, 'speech_dataset'),
                'tfds_data_dir': os.path.join(output_dir, 'tfds')}
    data = {k: defaults[k] if v is None else v for k, v in data.items()}
  # The kernel runs in notebooks/: relative paths must not change meaning.
  if data['data_url'] and '://' not in data['data_url']:
    data['data_url'] = os.path.abspath(data['data_url'])
  for key in ('data_dir', 'tfds_data_dir'):
    if data[key]:
      data[key] = os.path.abspath(data[key])
  workdir = os.path.abspath(args['workdir'] or
                            os.path.join(output_dir, 'workdir'))
  return {'config_name': args['config'], 'config_overrides': overrides,
          'workdir': workdir, **data, **params}


def declared_parameters(nb) -> tuple[int, list[str]]:
  """The index of the `parameters` cell and the names it assigns."""
  for index, cell in enumerate(nb.cells):
    if (cell.cell_type == 'code' and
        PARAMETERS_TAG in cell.metadata.get('tags', [])):
      names = []
      for node in ast.parse(cell.source).body:
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, ast.AnnAssign) else [])
        names.extend(t.id for t in targets if isinstance(t, ast.Name))
      return index, names
  raise NotebookError('it has no code cell tagged "parameters".')


def inject_parameters(nb, values: dict[str, Any]) -> list[str]:
  """Inserts a cell setting the values the notebook declares; returns them.

  Values equal to None are left to the notebook's defaults.
  """
  import nbformat  # pylint: disable=g-import-not-at-top
  index, names = declared_parameters(nb)
  used = [name for name in names if values.get(name) is not None]
  if not used:
    return []
  lines = ['# Parameters injected by execute_notebook.py'] + [
      f'{name} = {values[name]!r}' for name in used]
  cell = nbformat.v4.new_code_cell('\n'.join(lines))
  cell.metadata['tags'] = [INJECTED_TAG]
  nb.cells.insert(index + 1, cell)
  return used


def _make_client_class():
  """An nbclient client that echoes each output to a stream as it comes."""
  import nbclient  # pylint: disable=g-import-not-at-top

  class EchoingClient(nbclient.NotebookClient):
    """Echoes stream text (and error tracebacks) while cells run."""

    echo: TextIO = sys.stdout

    def output(self, outs, msg, display_id, cell_index):
      msg_type = msg['msg_type']
      content = msg['content']
      if msg_type == 'stream':
        self.echo.write(content.get('text', ''))
        self.echo.flush()
      elif msg_type == 'error':
        self.echo.write('\n'.join(content.get('traceback', [])) + '\n')
        self.echo.flush()
      return super().output(outs, msg, display_id, cell_index)

  return EchoingClient


@dataclasses.dataclass
class Outcome:
  """What happened to one notebook."""
  name: str
  output_path: str
  seconds: float
  error: str | None = None


def _first_line(source: str) -> str:
  for line in source.splitlines():
    if line.strip() and not line.lstrip().startswith('#'):
      return line.strip()[:80]
  return source.strip().splitlines()[0][:80] if source.strip() else ''


def run_notebook(path: str, output_path: str, values: dict[str, Any], *,
                 kernel_name: str = 'python3', timeout: int = -1,
                 echo: TextIO = sys.stdout,
                 announce: Callable[[str], None] = functools.partial(
                     print, flush=True)) -> Outcome:
  """Executes one notebook and writes the executed copy, even on failure."""
  import nbclient  # pylint: disable=g-import-not-at-top
  import nbformat  # pylint: disable=g-import-not-at-top
  name = os.path.basename(path)
  nb = nbformat.read(path, as_version=4)
  try:
    used = inject_parameters(nb, values)
  except NotebookError as e:
    return Outcome(name, output_path, 0.0, f'{name}: {e}')
  announce(f'=== {name}: parameters ' +
           (', '.join(f'{k}={values[k]!r}' for k in used) or '(defaults)'))
  client = _make_client_class()(
      nb, kernel_name=kernel_name, timeout=None if timeout < 0 else timeout,
      coalesce_streams=True,
      resources={'metadata': {'path': os.path.dirname(os.path.abspath(path))}})
  client.echo = echo
  code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == 'code']
  current = {'index': None}

  def on_cell_execute(cell, cell_index):
    current['index'] = cell_index
    number = code_cells.index(cell_index) + 1
    announce(f'--- {name}, code cell {number}/{len(code_cells)}: '
             f'{_first_line(cell.source)}')

  client.on_cell_execute = on_cell_execute
  started = time.time()
  error = None
  # The kernel's own stdout/stderr (ipykernel copies the cells' output there
  # too, and adds its start-up chatter) go to a log file: what the cells print
  # reaches this terminal once, through the client.
  kernel_log_path = os.path.splitext(output_path)[0] + '.kernel.log'
  os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
  with open(kernel_log_path, 'w') as kernel_log:
    try:
      client.execute(stdout=kernel_log, stderr=kernel_log)
    except nbclient.exceptions.CellExecutionError as e:
      error = _describe_failure(name, nb, current['index'], code_cells,
                                f'{e.ename}: {e.evalue}')
    except nbclient.exceptions.CellTimeoutError:
      error = _describe_failure(name, nb, current['index'], code_cells,
                                f'timed out after {timeout} s (--timeout)')
    except nbclient.exceptions.DeadKernelError as e:
      error = _describe_failure(name, nb, current['index'], code_cells,
                                f'the kernel died ({e}); out of memory?')
    finally:
      nbformat.write(nb, output_path)
  return Outcome(name, output_path, time.time() - started, error)


def _describe_failure(name: str, nb, cell_index: int | None,
                      code_cells: list[int], reason: str) -> str:
  if cell_index is None:
    return f'{name} failed before its first cell: {reason}'
  cell = nb.cells[cell_index]
  return (f'{name} failed in code cell {code_cells.index(cell_index) + 1} '
          f'(cell {cell_index + 1} of {len(nb.cells)}, starting '
          f'"{_first_line(cell.source)}"): {reason}')


def find_notebooks(folder: str, only: list[str]) -> list[str]:
  """The numbered notebooks of `folder` in order, optionally filtered."""
  names = sorted(n for n in os.listdir(folder)
                 if n.endswith('.ipynb') and n[:1].isdigit())
  if only:
    names = [n for n in names if any(n.startswith(p) for p in only)]
  if not names:
    raise ValueError(f'No notebooks to run in {folder}'
                         f'{" matching --only" if only else ""}.')
  return [os.path.join(folder, n) for n in names]


def clear_outputs(path: str) -> bool:
  """Removes a notebook's outputs and execution counts; True if it changed."""
  import nbformat  # pylint: disable=g-import-not-at-top
  nb = nbformat.read(path, as_version=4)
  changed = False
  for cell in nb.cells:
    if cell.cell_type != 'code':
      continue
    if cell.outputs or cell.execution_count is not None:
      changed = True
    cell.outputs = []
    cell.execution_count = None
    for key in ('execution', 'collapsed', 'scrolled'):
      changed |= cell.metadata.pop(key, None) is not None
  if changed:
    nbformat.write(nb, path)
  return changed


def check_parameters_used(paths: list[str], names: list[str]) -> None:
  """Refuses `--param` names that none of the notebooks declares."""
  import nbformat  # pylint: disable=g-import-not-at-top
  declared = {}
  for path in paths:
    try:
      declared[os.path.basename(path)] = declared_parameters(
          nbformat.read(path, as_version=4))[1]
    except NotebookError as e:
      raise ValueError(f'{os.path.basename(path)}: {e}') from None
  unknown = [n for n in names
             if not any(n in found for found in declared.values())]
  if unknown:
    raise ValueError(
        f'--param {", ".join(unknown)}: no notebook takes that. They take: ' +
        '; '.join(f'{name}: {", ".join(found)}'
                  for name, found in declared.items()))


def define_flags() -> None:
  """Defines the flags; only when run as a program, so that importing this
  module (tests) adds no global flags that could clash with other tools'."""
  flags.DEFINE_string('notebooks_dir', NOTEBOOKS_DIR,
                      'Folder of the numbered notebooks.')
  flags.DEFINE_list('only', [], 'Run only the notebooks whose names start '
                    'with one of these (e.g. 01,02); later ones need the '
                    'workdir the earlier ones filled.')
  flags.DEFINE_string('output_dir', '/tmp/kws_notebooks', 'Where the '
                      'executed copies (with outputs) go; also the default '
                      'home of --workdir.')
  flags.DEFINE_string('workdir', None, 'Training workdir shared by the '
                      'notebooks; default <output_dir>/workdir. One with '
                      'checkpoints is resumed.')
  flags.DEFINE_string('data_url', None, "Archive to unpack into --data_dir; "
                      "'' uses --data_dir as it is. Default: the config's "
                      '(with --short, the shared dev archive).')
  flags.DEFINE_string('data_dir', None, "Data folder. Default: the config's "
                      '(with --short, <output_dir>/speech_dataset).')
  flags.DEFINE_string('tfds_data_dir', None, 'Where TFDS keeps the prepared '
                      "data. Default: the config's (with --short, "
                      '<output_dir>/tfds).')
  flags.DEFINE_string('config', 'tc_resnet',
                      'Config module in configs/ (without .py).')
  flags.DEFINE_multi_string('override', [], 'A config field as key=value, '
                            'e.g. how_many_training_steps=3000,1000 or '
                            'model.dropout_rate=0.2; repeat the flag for '
                            'several.')
  flags.DEFINE_multi_string('param', [], 'A notebook parameter as '
                            'name=value (a Python literal, else a string), '
                            'e.g. stream_seconds=120; see the parameters '
                            'cells.')
  flags.DEFINE_bool('short', False, 'Tiny schedule and stream on the shared '
                    'dev data (CI).')
  flags.DEFINE_integer('timeout', -1,
                       'Seconds a cell may run; -1 for no limit.')
  flags.DEFINE_string('kernel_name', 'python3', 'Jupyter kernel.')
  flags.DEFINE_bool('clear_outputs', False, 'Only clear the outputs and '
                    'execution counts of the notebooks in --notebooks_dir '
                    '(before committing them), then exit.')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  missing = [m for m in ('nbclient', 'nbformat', 'ipykernel')
             if importlib.util.find_spec(m) is None]
  if missing:
    sys.exit(f'error: {", ".join(missing)} not installed; install the '
             "notebooks extra: pip install -e '.[notebooks]'")
  f = flags.FLAGS
  if f.clear_outputs:
    for path in find_notebooks(f.notebooks_dir, f.only):
      if clear_outputs(path):
        print(f'Cleared {path}')
    return
  try:
    values = notebook_parameters({
        'config': f.config, 'overrides': f.override, 'params': f.param,
        'short': f.short, 'output_dir': f.output_dir, 'workdir': f.workdir,
        'data_url': f.data_url, 'data_dir': f.data_dir,
        'tfds_data_dir': f.tfds_data_dir})
    paths = find_notebooks(f.notebooks_dir, f.only)
    check_parameters_used(paths, [split_assignment(p, 'param')[0]
                                  for p in f.param])
  except ValueError as e:
    sys.exit(f'error: {e}')
  if values['data_url'] == SHARED_DATA_URL and not os.path.isfile(
      SHARED_DATA_URL):
    sys.exit(f'error: --short uses the shared dev archive {SHARED_DATA_URL}, '
             'which is missing; pass --data_url or --data_dir.')
  output_dir = os.path.abspath(f.output_dir)
  os.makedirs(output_dir, exist_ok=True)
  started = time.time()
  for path in paths:
    outcome = run_notebook(
        path, os.path.join(output_dir, os.path.basename(path)), values,
        kernel_name=f.kernel_name, timeout=f.timeout)
    if outcome.error:
      print(f'\nerror: {outcome.error}\nThe executed copy with the '
            f'traceback is {outcome.output_path}.', file=sys.stderr)
      sys.exit(1)
    print(f'=== {outcome.name} done in {outcome.seconds:.0f} s: '
          f'{outcome.output_path}', flush=True)
  print(f'All notebooks ran in {time.time() - started:.0f} s; executed '
        f'copies are in {output_dir}.')


if __name__ == '__main__':
  define_flags()
  app.run(main)
