"""Checkpoints: the only module that talks to orbax.

A checkpoint is a step directory `<workdir>/checkpoints/<step>` holding
`state` (parameters, batch statistics, optimizer state, step, RNG key) and
`extra` (JSON: the resolved config, the labels, the metrics at that step).
orbax writes each one into a temporary directory and renames it when it is
complete, so a run killed mid-save never leaves a half-written latest
checkpoint. The latest `keep_checkpoints` are kept, plus the best by
validation accuracy.
"""

import contextlib
import os
import signal
import threading
from typing import Any, Iterator

from absl import logging
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

BEST_METRIC = 'validation_accuracy'


class CheckpointError(ValueError):
  """A checkpoint is missing or does not fit the current run."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


class Checkpoints:
  """Saves and restores training state in one directory."""

  def __init__(self, directory: str, *, keep: int = 5,
               read_only: bool = False):
    self.directory = os.path.abspath(directory)
    policy = preservation_policy.AnyPreservationPolicy([
        preservation_policy.LatestN(n=keep),
        preservation_policy.BestN(
            get_metric_fn=lambda metrics: metrics[BEST_METRIC], reverse=False,
            n=1, keep_checkpoints_without_metrics=False),
    ])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy, create=not read_only, read_only=read_only,
        enable_async_checkpointing=not read_only)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={'state': ocp.StandardCheckpointHandler(),
                       'extra': ocp.JsonCheckpointHandler()})

  def path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    """The step with the highest validation accuracy, if any was measured."""
    best, best_value = None, None
    for step in self.all_steps():
      try:
        value = self.restore_extra(step).get('metrics', {}).get(BEST_METRIC)
      except (OSError, ValueError, KeyError) as e:
        # Old steps are deleted in place; a run killed meanwhile leaves a
        # step folder that lacks parts. It is never the latest one.
        logging.warning('Ignoring checkpoint %s, which cannot be read: %s',
                        self.path(step), e)
        continue
      if value is not None and (best_value is None or value > best_value):
        best, best_value = step, value
    return best

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, extra: dict[str, Any],
           metrics: dict[str, float] | None = None) -> str:
    """Starts an (asynchronous) save of `state` and JSON `extra` at `step`.

    A Ctrl-C (SIGINT, or SIGTERM under kws_jax.main) arriving while the save
    is being started is held back and raised as `KeyboardInterrupt` once
    the save is under way, so the step is registered and a handler that
    saves on interrupt finds it (an interrupted start left a half-made
    temporary folder that the next save of the same step tripped over).
    """
    with _interrupts_deferred():
      self._manager.save(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardSave(state),
              extra=ocp.args.JsonSave(extra)),
          metrics=metrics, force=True)
    return self.path(step)

  def restore(self, step: int,
              abstract_state: Any = None) -> tuple[Any, dict]:
    """Restores `state` shaped like `abstract_state`, and `extra`.

    Without `abstract_state`, the state comes back as nested dicts of arrays
    on this process's first device, whatever devices wrote it.
    """
    if step not in self._manager.all_steps():
      raise CheckpointError(
          f'No checkpoint at step {step} in {self.directory}; found steps '
          f'{sorted(self._manager.all_steps())}.')
    if abstract_state is None:
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      abstract_state = jax.tree.map(
          lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
          self._manager.item_metadata(step)['state'])
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            extra=ocp.args.JsonRestore()))
    return restored['state'], dict(restored['extra'])

  def param_shapes(self, step: int) -> dict[str, tuple[int, ...]]:
    """{'backbone/conv/kernel': shape} of the stored parameters, read from
    the checkpoint's metadata (no array is loaded)."""
    metadata = self._manager.item_metadata(step)['state']
    shapes = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(metadata)[0]:
      keys = [str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k))))
              for k in path]
      if keys and keys[0] == 'params':
        shapes['/'.join(k for k in keys[1:] if k != 'value')] = tuple(
            leaf.shape)
    return shapes

  def restore_extra(self, step: int) -> dict:
    restored = self._manager.restore(
        step, args=ocp.args.Composite(extra=ocp.args.JsonRestore()))
    return dict(restored['extra'])

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
  """Holds back signals that raise KeyboardInterrupt (SIGINT, and SIGTERM
  where kws_jax.main routes it so) during the block; raises the
  KeyboardInterrupt after it."""
  if threading.current_thread() is not threading.main_thread():
    yield  # Only the main thread receives signals in Python.
    return
  received = []
  previous = {}
  for signum in (signal.SIGINT, signal.SIGTERM):
    if signal.getsignal(signum) is signal.default_int_handler:
      previous[signum] = signal.signal(
          signum, lambda number, frame: received.append(number))
  try:
    yield
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
  if received:
    raise KeyboardInterrupt


def split_step_path(path: str) -> tuple[str, int]:
  """Splits '<dir>/checkpoints/1200' into ('<dir>/checkpoints', 1200).

  A workdir or a checkpoints directory is accepted too and means its latest
  step.

  Raises:
    CheckpointError: if nothing restorable is there.
  """
  path = os.path.abspath(path.rstrip('/'))
  base = os.path.basename(path)
  if base.isdigit() and os.path.isdir(path):
    return os.path.dirname(path), int(base)
  for directory in (path, checkpoint_dir(path)):
    if os.path.isdir(directory):
      steps = Checkpoints(directory, read_only=True).all_steps()
      if steps:
        return directory, max(steps)
  raise CheckpointError(
      f'{path} is not a checkpoint: give a step directory such as '
      '<workdir>/checkpoints/1200, a checkpoints directory or a workdir that '
      'holds finished checkpoints.')


def read_extra(path: str) -> dict:
  """Reads the JSON `extra` of a checkpoint path (see `split_step_path`)."""
  directory, step = split_step_path(path)
  return Checkpoints(directory, read_only=True).restore_extra(step)

