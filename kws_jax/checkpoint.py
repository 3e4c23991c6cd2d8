"""Checkpoints: the only module that talks to orbax, and the one place that
finds a checkpoint and rebuilds the trained model from it.

A checkpoint is a step directory `<workdir>/checkpoints/<step>` holding
`state` (parameters, batch statistics, optimizer state, step, RNG key) and
`extra` (JSON: the resolved config, the labels, the metrics at that step).
orbax writes each one into a temporary directory and renames it when it is
complete, so a run killed mid-save never leaves a half-written latest
checkpoint. The latest `keep_checkpoints` are kept, plus the best by
validation accuracy.

A path naming a checkpoint (`find_checkpoint`) is a step directory, or a
workdir or checkpoints directory together with which of its steps is meant:
`BEST` (by validation accuracy; scoring, export, distillation) or `LATEST`
(resuming, `config.start_checkpoint`).
"""

import contextlib
import dataclasses
import os
import signal
import threading
from typing import Any, Iterator

from absl import logging
from flax import nnx
import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from kws_jax import config_validation
from kws_jax import workdir as workdir_lib
from kws_jax import labels as labels_lib
from kws_jax import models

BEST_METRIC = 'validation_accuracy'
# `find_checkpoint`'s choices of a step in a workdir.
BEST = 'best'
LATEST = 'latest'


class CheckpointError(ValueError):
  """A checkpoint is missing or does not fit the current run."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def param_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """{'backbone/conv/kernel': shape} of a parameter tree, NNX or stored
  (the `value` level of NNX variables left out)."""
  shapes = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    keys = [str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k))))
            for k in path]
    shapes['/'.join(k for k in keys if k != 'value')] = tuple(leaf.shape)
  return shapes


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
        save_interval_steps=0 if read_only else 1,
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
      abstract_state = _on_first_device(
          self._manager.item_metadata(step)['state'])
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            extra=ocp.args.JsonRestore()))
    return restored['state'], dict(restored['extra'])

  def restore_averaged(self, step: int, params: Any,
                       batch_stats: Any) -> tuple[Any, Any]:
    """The averaged weights of a step (`ema_params`, `ema_batch_stats`: the
    ones training evaluated and chose), shaped like the abstract `params`
    and `batch_stats` and put on this process's first device.

    The rest of the stored state is read as it was stored and dropped, so
    no optimizer needs to be rebuilt.

    Raises:
      ValueError, KeyError: the stored weights do not fit those shapes.
    """
    abstract = dict(_on_first_device(
        self._manager.item_metadata(step)['state']))
    abstract.update(ema_params=_on_first_device(params),
                    ema_batch_stats=_on_first_device(batch_stats))
    state, _ = self.restore(step, abstract)
    return state['ema_params'], state['ema_batch_stats']

  def param_shapes(self, step: int) -> dict[str, tuple[int, ...]]:
    """`param_shapes` of the stored parameters, read from the checkpoint's
    metadata (no array is loaded)."""
    shapes = param_shapes(self._manager.item_metadata(step)['state'])
    return {k[len('params/'):]: v for k, v in shapes.items()
            if k.startswith('params/')}

  def restore_extra(self, step: int) -> dict:
    restored = self._manager.restore(
        step, args=ocp.args.Composite(extra=ocp.args.JsonRestore()))
    return dict(restored['extra'])

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _on_first_device(tree: Any) -> Any:
  """Shapes and dtypes of `tree`, laid out on this process's first device
  (whatever devices wrote a checkpoint)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)


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


def find_checkpoint(path: str, *, which: str) -> tuple[str, int, str]:
  """Resolves a checkpoint location to (checkpoints dir, step, how chosen).

  Args:
    path: a step directory (`<workdir>/checkpoints/<step>`): that step,
      chosen 'given'; a workdir or checkpoints directory: the step `which`
      names. `~` is expanded.
    which: `BEST`: the best step by validation accuracy
      ('best_validation_accuracy'), else the latest ('latest'); `LATEST`:
      the latest ('latest').

  Raises:
    CheckpointError: nothing restorable is there.
  """
  if which not in (BEST, LATEST):
    raise ValueError(f'which={which!r}; choose {BEST!r} or {LATEST!r}.')
  path = os.path.abspath(os.path.expanduser(os.fspath(path)).rstrip('/'))
  if os.path.basename(path).isdigit() and os.path.isdir(path):
    return os.path.dirname(path), int(os.path.basename(path)), 'given'
  for directory in (checkpoint_dir(path), path):
    if not os.path.isdir(directory):
      continue
    ckpts = Checkpoints(directory, read_only=True)
    steps = ckpts.all_steps()
    if not steps:
      continue
    best = ckpts.best_step() if which == BEST else None
    if best is not None:
      return directory, best, 'best_validation_accuracy'
    return directory, max(steps), 'latest'
  raise CheckpointError(
      f'{path} holds no checkpoint: give a training workdir, its '
      'checkpoints directory or a step directory such as '
      '<workdir>/checkpoints/1200.')


# --- Rebuilding the trained model --------------------------------------------


@dataclasses.dataclass
class RestoredModel:
  """A model rebuilt from a checkpoint and its stored config.

  Attributes:
    eval_graphdef: graph definition in eval mode.
    params: `nnx.Param` state (the averaged weights).
    batch_stats: `nnx.BatchStat` state (the averaged statistics).
    config: the training config (ConfigDict), checked, with the fields of
      later releases added (`workdir_lib.with_later_fields`).
    labels: class names in output order.
    path: the step directory restored.
    step: its step.
    selected_by: 'given', 'best_validation_accuracy' or 'latest'.
  """
  eval_graphdef: Any
  params: Any
  batch_stats: Any
  config: ml_collections.ConfigDict
  labels: list[str]
  path: str
  step: int
  selected_by: str


def restore_model(path: str, *, which: str) -> RestoredModel:
  """Rebuilds the model of a checkpoint from the config stored with it.

  Args:
    path, which: see `find_checkpoint`.

  Raises:
    CheckpointError: no checkpoint, or one without the config and labels
      that training stores, or whose weights do not fit that config.
  """
  directory, step, selected_by = find_checkpoint(path, which=which)
  ckpts = Checkpoints(directory, read_only=True)
  step_path = ckpts.path(step)
  extra = ckpts.restore_extra(step)
  if 'config' not in extra or 'labels' not in extra:
    raise CheckpointError(
        f'Checkpoint {step_path} has no stored config/labels; it was not '
        'written by kws_jax.train.')
  config = config_validation.validate_config(
      workdir_lib.with_later_fields(extra['config']))
  labels = list(extra['labels'])
  eval_def, params, batch_stats = nnx.split(
      models.abstract_model(config, len(labels)), nnx.Param, nnx.BatchStat)
  try:
    params, batch_stats = ckpts.restore_averaged(step, params, batch_stats)
  except (ValueError, KeyError) as e:
    raise CheckpointError(
        f'Checkpoint {step_path} does not fit the model its stored config '
        f'describes: {e}') from e
  logging.info('Restored %s (step %d, %s).', step_path, step, selected_by)
  return RestoredModel(eval_graphdef=eval_def, params=params,
                       batch_stats=batch_stats, config=config, labels=labels,
                       path=step_path, step=step, selected_by=selected_by)


# --- Checkpoints a run starts from or learns from ----------------------------


def check_checkpoints_fit(config: ml_collections.ConfigDict,
                          workdir: str) -> None:
  """Checks `config.start_checkpoint` and `config.distill_from` against the
  run, before any data is loaded.

  A `start_checkpoint` (its `LATEST` step) must hold the same architecture,
  labels and parameter shapes; it is only checked when the workdir holds no
  checkpoint (it would not be used otherwise). A teacher (its `BEST` step)
  must have the same labels, take the same audio and, for a run that leaves
  out an unseen-words fold, have left out the same one.

  Args:
    config: a config returned by `config_validation.validate_config`.
    workdir: the run's folder.

  Raises:
    CheckpointError: naming the field and what does not fit.
  """
  labels = labels_lib.prepare_words_list(config.wanted_words)
  for teacher in config_validation.teacher_paths(config):
    _check_teacher(config, teacher, labels)
  if config.start_checkpoint:
    own = checkpoint_dir(workdir)
    if os.path.isdir(own) and Checkpoints(own, read_only=True).all_steps():
      return  # Resuming: the workdir's own checkpoint wins.
    _check_start_checkpoint(config, labels)


def _check_start_checkpoint(config: ml_collections.ConfigDict,
                            labels: list[str]) -> None:
  where = f'config.start_checkpoint={config.start_checkpoint}'
  try:
    directory, step, _ = find_checkpoint(config.start_checkpoint,
                                         which=LATEST)
  except CheckpointError as e:
    raise CheckpointError(f'{where} is not a checkpoint: {e}') from e
  source = Checkpoints(directory, read_only=True)
  try:
    extra = source.restore_extra(step)
    stored = source.param_shapes(step)
  except (OSError, ValueError, KeyError) as e:
    raise CheckpointError(
        f'{where} cannot be read ({e}); it is damaged or was not written by '
        'kws_jax.train.') from e
  saved = extra.get('config', {})
  if saved.get('model_architecture') != config.model_architecture:
    raise CheckpointError(
        f'{where} holds a {saved.get("model_architecture")!r} model, not '
        f'{config.model_architecture!r}; set --config.model_architecture to '
        'match or start from another checkpoint.')
  if extra.get('labels') != labels:
    raise CheckpointError(
        f'{where} was trained on labels {extra.get("labels")}, this run has '
        f'{labels}; use the same --config.wanted_words or start from another '
        'checkpoint.')
  wanted = param_shapes(nnx.state(
      models.abstract_model(config, len(labels)), nnx.Param))
  if stored != wanted:
    differ = sorted(k for k in set(stored) | set(wanted)
                    if stored.get(k) != wanted.get(k))
    if all(k.startswith('domain_head') for k in differ):
      raise CheckpointError(
          f'{where} was trained with config.synthetic_adversary='
          f"{saved.get('synthetic_adversary', 0.0)}, this run has "
          f'{config.synthetic_adversary}: one of them has a domain head, the '
          'other not. Set --config.synthetic_adversary to match (0 or not) '
          'or start from another checkpoint.')
    raise CheckpointError(
        f'{where} has parameters of other shapes than this model (first '
        f'differences: ' + ', '.join(
            f'{k} {stored.get(k)} vs {wanted.get(k)}' for k in differ[:3]) +
        '); were the model or front-end settings changed?')


def _check_teacher(config: ml_collections.ConfigDict, path: str,
                   labels: list[str]) -> None:
  where = f'config.distill_from names {path}, which'
  try:
    directory, step, _ = find_checkpoint(path, which=BEST)
    extra = Checkpoints(directory, read_only=True).restore_extra(step)
  except (OSError, ValueError, KeyError) as e:
    raise CheckpointError(
        f'{where} cannot be read as a teacher ({e}); give the workdir of a '
        'finished training run.') from e
  if extra.get('labels') != labels:
    raise CheckpointError(
        f'{where} was trained on labels {extra.get("labels")}; this run has '
        f'{labels}. A teacher needs the same --config.wanted_words.')
  saved = extra.get('config', {})
  if saved.get('loss', 'softmax') != 'softmax':
    raise CheckpointError(
        f"{where} trained with loss={saved.get('loss')!r}: its logits are "
        "not a softmax's to learn from. Distil from models trained with "
        "config.loss='softmax'.")
  for field in ('sample_rate', 'clip_duration_ms'):
    if saved.get(field) != config[field]:
      raise CheckpointError(
          f'{where} takes {field}={saved.get(field)}; this run has '
          f'{config[field]}. A teacher must take the same audio.')
  teacher_fold = saved.get('unseen_words_fold', '')
  if config.unseen_words_fold and teacher_fold != config.unseen_words_fold:
    raise CheckpointError(
        f'{where} trained with unseen_words_fold={teacher_fold!r}; this run '
        f'leaves out fold {config.unseen_words_fold!r}. A teacher that heard '
        "the words this run leaves out would teach them and void its "
        'unseen-words figure: distil from runs of the same fold (a sweep '
        "names them '<workdir>,fold=i_k').")
