"""Tests for the tools' log filter (kws_jax/log_lines.py)."""

import logging as std_logging
import os
import subprocess
import sys

from absl import logging
import pytest

from kws_jax import log_lines

_HERE = os.path.abspath(__file__)
_OWN = os.path.join(os.path.dirname(os.path.dirname(_HERE)), 'kws_jax',
                    'train.py')
_ORBAX = '/usr/lib/python3/site-packages/orbax/checkpoint/checkpoint_manager.py'


def _record(pathname, level, message='message'):
  return std_logging.LogRecord('absl', level, pathname, 1, message, (), None)


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


def test_expected_library_notices_are_dropped_at_their_source_only(
    verbosity):
  verbosity(logging.INFO)
  keep = log_lines.OwnInfoOnly().filter
  read_only = 'Given directory is read only=%s'
  assert not keep(_record(_ORBAX, std_logging.WARNING, read_only))
  assert keep(_record(_ORBAX, std_logging.WARNING, 'Something else'))
  # The same words from another module are someone else's warning.
  assert keep(_record(_OWN, std_logging.WARNING, read_only))
  for ending, start in log_lines.EXPECTED_NOTICES:
    path = '/site-packages/' + ending
    assert not keep(_record(path, std_logging.WARNING, start + ' (details)'))


def test_the_libraries_real_notices_are_the_expected_ones(tmp_path, caplog,
                                                         monkeypatch):
  """The three libraries' own calls, captured: a library that moves or
  rewords a notice fails here instead of bringing it back to every log."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core.features import feature  # pylint: disable=g-import-not-at-top
  from kws_jax import speech_commands_builder  # pylint: disable=g-import-not-at-top

  # TFDS logs its deprecation notice only 10 times a process (absl's
  # log_first_n); start the count again.
  monkeypatch.setattr(logging, '_log_counter_per_token', {})
  (tmp_path / 'ckpt').mkdir()
  with caplog.at_level(std_logging.WARNING):
    ocp.CheckpointManager(str(tmp_path / 'ckpt'),
                          options=ocp.CheckpointManagerOptions(
                              read_only=True, create=False,
                              save_interval_steps=0))
    feature.log_tf_warning('FeatureConnector')
    speech_commands_builder.SpeechCommandsLocal(
        config=speech_commands_builder.make_config(
            str(tmp_path), sample_rate=16000, clip_duration_ms=1000.0,
            validation_percentage=10.0, testing_percentage=10.0),
        data_dir=str(tmp_path / 'tfds'))
  warnings = [r for r in caplog.records if r.levelno >= std_logging.WARNING]
  notices = [log_lines.expected_notice(r) for r in warnings]
  # Every warning is an expected notice, and every notice was given.
  assert None not in notices, [(r.pathname, r.msg) for r in warnings]
  assert set(notices) == set(log_lines.EXPECTED_NOTICES)


def test_verbosity_1_brings_every_line_back(verbosity):
  verbosity(logging.DEBUG)  # --verbosity=1
  assert log_lines.OwnInfoOnly().filter(_record(_ORBAX, std_logging.INFO))
  ending, start = log_lines.EXPECTED_NOTICES[0]
  assert log_lines.OwnInfoOnly().filter(
      _record('/x/' + ending, std_logging.WARNING, start))


def test_importing_tensorflow_after_the_package_prints_no_cpp_notices():
  env = {k: v for k, v in os.environ.items()
         if k not in ('TF_ENABLE_ONEDNN_OPTS', 'TF_CPP_MIN_LOG_LEVEL')}
  done = subprocess.run(
      [sys.executable, '-c',
       'import kws_jax.data_sources, tensorflow; print("imported")'],
      env=env, capture_output=True, text=True, check=True,
      cwd=os.path.dirname(os.path.dirname(_HERE)))
  assert 'imported' in done.stdout
  assert 'oneDNN' not in done.stderr


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
