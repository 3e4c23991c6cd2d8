"""Finding checkpoints and rebuilding the trained model (kws_jax/checkpoint.py).

The saving and resuming side is exercised end to end by tests/test_train.py.
"""

import jax
import ml_collections
import numpy as np
import pytest

from configs import test as test_config
from kws_jax import checkpoint
from kws_jax import workdir as workdir_lib

import export_test_util as util

LABELS = util.LABELS


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """Steps 3 (best validation accuracy) and 7 (latest, worse)."""
  workdir = tmp_path_factory.mktemp('run')
  saved, _ = util.write_checkpoint(str(workdir), test_config.get_config(),
                                   LABELS, {3: 0.6, 7: 0.4})
  return workdir, saved


def test_one_resolver_with_the_choice_explicit(workdir):
  workdir, _ = workdir
  directory = str(workdir / 'checkpoints')
  assert checkpoint.find_checkpoint(str(workdir), which=checkpoint.BEST) == (
      directory, 3, 'best_validation_accuracy')
  assert checkpoint.find_checkpoint(
      str(workdir), which=checkpoint.LATEST) == (directory, 7, 'latest')
  # A checkpoints directory means the same; a step directory is that step.
  assert checkpoint.find_checkpoint(directory, which=checkpoint.LATEST)[1] == 7
  for which in (checkpoint.BEST, checkpoint.LATEST):
    assert checkpoint.find_checkpoint(
        str(workdir / 'checkpoints' / '7'), which=which) == (directory, 7,
                                                             'given')
  with pytest.raises(ValueError, match='which='):
    checkpoint.find_checkpoint(str(workdir), which='newest')


def test_nothing_there_is_a_checkpoint_error(tmp_path):
  with pytest.raises(checkpoint.CheckpointError, match='holds no checkpoint'):
    checkpoint.find_checkpoint(str(tmp_path), which=checkpoint.LATEST)


def test_restore_model_gives_the_averaged_weights(workdir):
  workdir, saved = workdir
  restored = checkpoint.restore_model(str(workdir), which=checkpoint.BEST)
  assert (restored.step, restored.selected_by) == (
      3, 'best_validation_accuracy')
  assert restored.labels == LABELS
  assert restored.path == str(workdir / 'checkpoints' / '3')
  params, batch_stats = saved[3]
  for got, want in zip(jax.tree.leaves((restored.params,
                                        restored.batch_stats)),
                       jax.tree.leaves((params, batch_stats))):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want))
  latest = checkpoint.restore_model(str(workdir), which=checkpoint.LATEST)
  assert latest.step == 7


def test_a_config_stored_before_later_fields_restores(tmp_path):
  old = test_config.get_config().to_dict()
  for field in workdir_lib.LATER_FIELDS:
    del old[field]
  util.write_checkpoint(str(tmp_path), ml_collections.ConfigDict(old), LABELS,
                        {2: 0.5})
  restored = checkpoint.restore_model(str(tmp_path), which=checkpoint.BEST)
  for field, value in workdir_lib.LATER_FIELDS.items():
    got = restored.config[field]
    assert (got.to_dict() if hasattr(got, 'to_dict') else got) == value, field


def test_stored_parameter_shapes_match_the_model(workdir):
  workdir, saved = workdir
  ckpts = checkpoint.Checkpoints(checkpoint.checkpoint_dir(str(workdir)),
                                 read_only=True)
  assert ckpts.param_shapes(3) == checkpoint.param_shapes(saved[3][0])
  assert 'backbone/conv/kernel' in ckpts.param_shapes(3)


def test_opening_read_only_sets_no_save_interval_for_orbax_to_undo(
    workdir, caplog):
  workdir, _ = workdir
  with caplog.at_level('WARNING'):
    ckpts = checkpoint.Checkpoints(str(workdir / 'checkpoints'),
                                   read_only=True)
  assert ckpts.all_steps()
  assert not [r for r in caplog.records if 'save_interval_steps' in
              r.getMessage()]
