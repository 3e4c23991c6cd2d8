"""The tools' log is the tutorial's: this project's lines, others' warnings.

orbax, TensorFlow Datasets and JAX log through absl too, at INFO: a
4,000-step training run printed about 780 orbax lines (manager set-up,
atomic renames, metadata writes) between its `Step #N` lines. `install`
filters absl's handler so that INFO lines come only from this project's
code; every library's warnings and errors still show, and `--verbosity=1`
(absl's flag, also `-v 1`) brings them back, DEBUG lines included.
"""

from __future__ import annotations

import logging as std_logging
import os

from absl import logging

# This project's code: the package, its siblings in the repository
# (tflite_export/, experiments/, configs/, benchmarks/).
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_PROJECT_DIRS = tuple(
    os.path.join(_PROJECT_ROOT, name) + os.sep
    for name in ('kws_jax', 'tflite_export', 'experiments', 'configs',
                 'benchmarks'))


class OwnInfoOnly(std_logging.Filter):
  """Passes warnings and worse from anyone, INFO and below from this project.

  At absl verbosity 1 or more, passes everything.
  """

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.WARNING or logging.get_verbosity() >= 1:
      return True
    return os.path.realpath(record.pathname).startswith(_PROJECT_DIRS)


def install() -> None:
  """Filters absl's log handler (once; call from a tool's `main`)."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, OwnInfoOnly) for f in handler.filters):
    handler.addFilter(OwnInfoOnly())
