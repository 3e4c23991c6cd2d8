"""Config files by path: `configs/<name>.py`, optionally with `:arg`.

A config file is a Python file with `get_config(arg=None)` returning a
`ConfigDict` (big_vision's convention); a spec names one as 'path.py' or
'path.py:arg', the form `python -m kws_jax.main --config=...` takes. The
benchmarks and the sweep runner load such files (and sweep files, Python
files of the same kind) through this module, so a spec means the same
everywhere.

The files in `configs/` import `configs.default`, so the folder that holds
`configs/` (the repository root) must be importable: the commands run from
there.
"""

import importlib.util
import os
import types

import ml_collections


def split_spec(spec: str) -> tuple[str, str | None]:
  """'configs/x.py:arg' -> ('configs/x.py', 'arg'); without ':', arg None."""
  path, sep, arg = spec.partition(':')
  return path, (arg if sep and arg else None)


def find(path: str, root: str | None = None) -> str:
  """`path` as it is if it names a file, else joined to `root`.

  Raises:
    FileNotFoundError: neither names a file.
  """
  if os.path.isfile(path):
    return path
  if root and not os.path.isabs(path):
    rooted = os.path.join(root, path)
    if os.path.isfile(rooted):
      return rooted
  raise FileNotFoundError(f'No such file: {path}')


def load_module(path: str, name: str = 'config_file') -> types.ModuleType:
  """Runs the Python file `path` as a new module called `name`.

  The module is not entered in `sys.modules`: each call runs the file
  afresh, so two files (or one file twice) never share state.

  Raises:
    FileNotFoundError: `path` is not a file.
  """
  spec = importlib.util.spec_from_file_location(name, path)
  if spec is None or spec.loader is None or not os.path.isfile(path):
    raise FileNotFoundError(f'No such file: {path}')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config(spec: str, root: str | None = None
                ) -> ml_collections.ConfigDict:
  """The config of `spec`: 'path.py' -> get_config(), 'path.py:arg' ->
  get_config('arg').

  Args:
    spec: a config file's path, optionally followed by ':arg'.
    root: where a relative path is looked up when it names no file from the
      working directory (e.g. the repository root).

  Raises:
    FileNotFoundError: no such config file.
    AttributeError: the file has no `get_config`.
    ValueError (or the file's own error): `get_config` refused `arg`.
  """
  path, arg = split_spec(spec)
  module = load_module(find(path, root))
  return module.get_config(arg) if arg is not None else module.get_config()
