"""Tests for the tools' log filter (kws_jax/log_lines.py)."""

import logging as std_logging
import os

from absl import logging
import pytest

from kws_jax import log_lines

_HERE = os.path.abspath(__file__)
_OWN = os.path.join(os.path.dirname(os.path.dirname(_HERE)), 'kws_jax',
                    'train.py')
_ORBAX = '/usr/lib/python3/site-packages/orbax/checkpoint/checkpoint_manager.py'


def _record(pathname, level):
  return std_logging.LogRecord('absl', level, pathname, 1, 'message', (), None)


@pytest.fixture
def verbosity():
  before = logging.get_verbosity()
  yield logging.set_verbosity
  logging.set_verbosity(before)


def test_other_libraries_info_lines_are_dropped_their_warnings_kept(verbosity):
  verbosity(logging.INFO)
  keep = log_lines.OwnInfoOnly().filter
  assert keep(_record(_OWN, std_logging.INFO))
  assert not keep(_record(_ORBAX, std_logging.INFO))
  assert keep(_record(_ORBAX, std_logging.WARNING))
  assert keep(_record(_ORBAX, std_logging.ERROR))
  # A folder that only starts like the package's is someone else's.
  assert not keep(_record(_OWN.replace('kws_jax', 'kws_jax_other'),
                          std_logging.INFO))


def test_verbosity_1_brings_every_line_back(verbosity):
  verbosity(logging.DEBUG)  # --verbosity=1
  assert log_lines.OwnInfoOnly().filter(_record(_ORBAX, std_logging.INFO))


def test_install_adds_one_filter_to_absls_handler():
  handler = logging.get_absl_handler()
  before = list(handler.filters)
  for f in before:  # Start from a handler without it, whatever ran before.
    if isinstance(f, log_lines.OwnInfoOnly):
      handler.removeFilter(f)
  try:
    log_lines.install()
    log_lines.install()
    assert sum(isinstance(f, log_lines.OwnInfoOnly)
               for f in handler.filters) == 1
  finally:
    for f in list(handler.filters):
      handler.removeFilter(f)
    for f in before:
      handler.addFilter(f)
