"""The tools' log is the tutorial's: this project's lines, others' warnings.

orbax, TensorFlow Datasets and JAX log through absl too, at INFO: a
4,000-step training run printed about 780 orbax lines (manager set-up,
atomic renames, metadata writes) between its `Step #N` lines. `install`
filters absl's handler so that INFO lines come only from this project's
code, and drops the few library warnings that every run gives about what
this project does on purpose (`EXPECTED_NOTICES`); every other warning and
error still shows, and `--verbosity=1` (absl's flag, also `-v 1`) brings
everything back, DEBUG lines included.
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


# Library warnings that every run gives, about choices this project makes on
# purpose: (the logging module's path ending, the message's start).
EXPECTED_NOTICES = (
    # Our TFDS builder makes its configuration from the data folder it is
    # given (`speech_commands_builder.make_config`), not from a fixed list.
    ('tensorflow_datasets/core/dataset_builder.py',
     'Using custom data configuration'),
    # TFDS's own decoder (`Tensor.decode_example`) reads the deprecated
    # field; no caller can avoid it.
    ('tensorflow_datasets/core/features/feature.py',
     '`FeatureConnector.dtype` is deprecated'),
    # Evaluation and export open the checkpoints read-only, so that they
    # cannot change a training run's folder.
    ('orbax/checkpoint/checkpoint_manager.py', 'Given directory is read only'),
)


class OwnInfoOnly(std_logging.Filter):
  """Passes warnings and worse from anyone (but `EXPECTED_NOTICES`), INFO and
  below from this project.

  At absl verbosity 1 or more, passes everything.
  """

  def filter(self, record: std_logging.LogRecord) -> bool:
    if logging.get_verbosity() >= 1:
      return True
    if record.levelno >= std_logging.WARNING:
      return expected_notice(record) is None
    return os.path.realpath(record.pathname).startswith(_PROJECT_DIRS)


def expected_notice(record: std_logging.LogRecord
                    ) -> tuple[str, str] | None:
  """The entry of `EXPECTED_NOTICES` that `record` is, if any."""
  path = record.pathname.replace(os.sep, '/')
  message = str(record.msg)
  for ending, start in EXPECTED_NOTICES:
    if path.endswith(ending) and message.startswith(start):
      return ending, start
  return None


def install() -> None:
  """Filters absl's log handler (once; call from a tool's `main`)."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, OwnInfoOnly) for f in handler.filters):
    handler.addFilter(OwnInfoOnly())
