r"""Trains a keyword-spotting model.

  python -m kws_jax.main --config=configs/bc_resnet.py --workdir=/tmp/kws \
      --config.data_url=../shared/data/speech_commands_dev.tar.gz

Any config field can be overridden with --config.<field>=<value>. Ctrl-C
(SIGINT) or SIGTERM saves a checkpoint of the last finished step and exits
with status 130; the same command then resumes from it. For several
processes (hosts), pass --jax_coordinator_address, --jax_num_processes and
--jax_process_id, or run where `jax.distributed.initialize()` detects the
cluster itself (--jax_distributed).
"""

import difflib
import glob
import os
import signal
import sys
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from kws_jax import audio_io
from kws_jax import checkpoint
from kws_jax import config_files
from kws_jax import config_validation
from kws_jax import data_sources
from kws_jax import download
from kws_jax import log_lines
from kws_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Training configuration file.', lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for config, labels, logs and checkpoints.')
_DISTRIBUTED = flags.DEFINE_bool(
    'jax_distributed', False,
    'Call jax.distributed.initialize() (auto-detects SLURM, TPU pods, ...).')
_COORDINATOR = flags.DEFINE_string(
    'jax_coordinator_address', None, 'host:port of process 0, for several '
    'processes without a cluster manager.')
_NUM_PROCESSES = flags.DEFINE_integer('jax_num_processes', None,
                                      'Number of processes.')
_PROCESS_ID = flags.DEFINE_integer('jax_process_id', None,
                                   'This process, 0-based.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  log_lines.install()
  if _COORDINATOR.value or _DISTRIBUTED.value:
    jax.distributed.initialize(
        coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  logging.info('JAX process %d of %d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  # A job scheduler's SIGTERM (preemption) stops training like Ctrl-C:
  # the state is saved first.
  signal.signal(signal.SIGTERM, signal.default_int_handler)
  try:
    # A config file that failed to load is an object that raises on first
    # use; use it here.
    config = _CONFIG.value
    config.to_dict()
  except Exception as e:  # pylint: disable=broad-except
    raise SystemExit(f'error: {explain_flag_error(sys.argv, e)}') from None
  try:
    train.train_and_evaluate(config, _WORKDIR.value)
  except (config_validation.ConfigError, data_sources.DataError,
          checkpoint.CheckpointError, download.DownloadError,
          audio_io.AudioError, FloatingPointError) as e:
    # The user's settings or files are at fault (or, for FloatingPointError,
    # --config.check_nans caught a diverging run): say what, without a trace.
    raise SystemExit(f'error: {e}') from None
  except KeyboardInterrupt:
    # Training has saved what it had (see train.py); no traceback for Ctrl-C.
    logging.warning('Interrupted; run the same command again to resume.')
    raise SystemExit(130) from None


def parse_flags(argv: Sequence[str]) -> list[str]:
  """Parses the command line; a bad config file or field is one line.

  ml_collections reports a misspelled `--config.<field>` as several chained
  tracebacks (or, for a nested field, as the bare name); this says which
  flag is wrong and the closest valid names instead.
  """
  try:
    return flags.FLAGS(list(argv))
  except Exception as e:  # pylint: disable=broad-except
    # Whatever parsing raised (absl's flags.Error, or ml_collections'
    # AttributeError for an unknown field), the command line is at fault.
    raise SystemExit(f'error: {explain_flag_error(argv, e)}') from None


def explain_flag_error(argv: Sequence[str], error: Exception) -> str:
  """One line naming the flag at fault, with the closest valid names."""
  path, overrides = None, []
  for arg in argv[1:]:
    name, _, value = arg.lstrip('-').partition('=')
    if name == 'config':
      path = value
    elif name.startswith('config.'):
      overrides.append(name[len('config.'):])
  if path is not None:
    file = path.split(':', 1)[0]
    if not os.path.isfile(file):
      found = sorted(glob.glob(os.path.join(os.path.dirname(file) or '.',
                                            '*.py')))
      close = difflib.get_close_matches(os.path.basename(file),
                                        [os.path.basename(f) for f in found])
      return (f'--config={path}: no such config file'
              f'{_did_you_mean(close, os.path.dirname(file))}; the configs '
              f'are in configs/ ({", ".join(os.path.basename(f) for f in found if not f.endswith("__init__.py"))}).')
    fields = _config_fields(file, path.partition(':')[2] or None)
    for field in overrides:
      if fields is not None and field not in fields:
        # Suggest fields of the same level: model.width for model.widht.
        parent = field.rpartition('.')[0]
        siblings = [f for f in fields if f.rpartition('.')[0] == parent]
        close = difflib.get_close_matches(field, siblings, n=3)
        return (f'--config.{field}: {path} has no such field'
                f'{_did_you_mean(close, prefix="--config.")} (configs/'
                'default.py describes every field).')
  # Anything else (a value of the wrong type, ...): absl's message names
  # the flag in its first line.
  text = str(error).strip()
  first = text.splitlines()[0] if text else repr(error)
  if first.endswith(':'):  # The reason is in the exception it wraps.
    while error.__cause__ is not None or error.__context__ is not None:
      error = error.__cause__ or error.__context__
    first += ' ' + (str(error).strip().splitlines() or [repr(error)])[-1]
  return first


def _did_you_mean(names: Sequence[str], folder: str = '',
                  prefix: str = '') -> str:
  if not names:
    return ''
  names = [prefix + (os.path.join(folder, n) if folder else n) for n in names]
  return '; did you mean ' + ' or '.join(names) + '?'


def _config_fields(file: str, arg: str | None) -> set[str] | None:
  """Every field of a config file, nested ones as 'model.width'."""
  try:
    module = config_files.load_module(file)
    config = module.get_config(arg) if arg else module.get_config()
  except Exception:  # pylint: disable=broad-except
    return None  # The file's own error is what gets reported.
  fields = set()

  def walk(node: Any, prefix: str) -> None:
    for key, value in node.items():
      fields.add(prefix + key)
      if hasattr(value, 'items'):
        walk(value, f'{prefix}{key}.')

  walk(config, '')
  return fields


if __name__ == '__main__':
  # The config files import `configs`, which lives beside kws_jax.
  sys.path.insert(0, os.getcwd())
  app.run(main, flags_parser=parse_flags)
