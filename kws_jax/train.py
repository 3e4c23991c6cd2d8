"""Training and evaluation loop, with the tutorial's log lines.

Reads top to bottom: check the config, load the data, build the model,
restore, then `for step in range(start, total + 1)`: a jitted train step,
the `Step #N` line, evaluation with a confusion matrix every
`eval_step_interval` steps, a checkpoint every `save_step_interval` steps.
At the end the best checkpoint (by validation accuracy) is scored on the test
split.

Data parallelism: the batch is sharded over a one-axis mesh of all devices
(`jax.sharding`), parameters are replicated; with several processes
(`jax.distributed`), each reads its own slice of every global batch, and
only process 0 logs and writes files (orbax coordinates checkpoint writes).
"""

import functools
import os
import sys
import time
from typing import Any, Callable

from absl import logging
import flax.struct
from flax import nnx
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax

from kws_jax import augment
from kws_jax import checkpoint
from kws_jax import config_validation
from kws_jax import input_pipeline
from kws_jax import labels as labels_lib
from kws_jax import metrics as metrics_lib
from kws_jax import models
from kws_jax.models import layers
from kws_jax import workdir as workdir_lib


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs. `step` counts completed steps.

  `ema_params` and `ema_batch_stats` are the exponential moving averages of
  `params` and `batch_stats` (`config.ema_decay`; with decay 0 they equal
  them). Evaluation, the best checkpoint and export use the averages.
  """
  step: jax.Array
  params: nnx.State
  batch_stats: nnx.State
  opt_state: optax.OptState
  rng: jax.Array  # uint32 key data; per-step keys are folded in from it.
  ema_params: nnx.State
  ema_batch_stats: nnx.State


def new_train_state(params: nnx.State, batch_stats: nnx.State,
                    tx: optax.GradientTransformation, seed: int,
                    step: int = 0) -> TrainState:
  """A state at `step` whose averages start at the given weights."""
  # Copies: the jitted step donates the state, and may not donate one
  # buffer twice.
  return TrainState(
      step=jnp.asarray(step, jnp.int32), params=params,
      batch_stats=batch_stats, opt_state=tx.init(params),
      rng=jax.random.key_data(jax.random.key(seed)),
      ema_params=jax.tree.map(jnp.copy, params),
      ema_batch_stats=jax.tree.map(jnp.copy, batch_stats))


def ema_decay_at(decay: float, step: jax.Array, *,
                 warmup: bool) -> jax.Array:
  """The averaging decay after `step` updates.

  With `warmup` (`config.ema_warmup`): min(decay, (1 + step) / (10 + step)),
  as TensorFlow's ExponentialMovingAverage with num_updates, so the average
  is not held near the initial weights for the first ~1/(1 - decay) steps;
  else `decay` throughout.
  """
  if not warmup:
    return jnp.asarray(decay, jnp.float32)
  step = step.astype(jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def compiler_options(config: ml_collections.ConfigDict
                     ) -> dict[str, object] | None:
  """The training step's XLA options (`config.train_compiler_options`), as
  `jax.jit` takes them; None for XLA's defaults."""
  return config.train_compiler_options.to_dict() or None


def make_optimizer(config: ml_collections.ConfigDict,
                   schedule: config_validation.Schedule
                   ) -> optax.GradientTransformation:
  """The tutorial's optimizers on a piecewise-constant schedule."""
  rate = optax.join_schedules(
      [optax.constant_schedule(lr) for lr in schedule.learning_rates],
      boundaries=list(schedule.boundaries))
  if config.optimizer == 'gradient_descent':
    return optax.sgd(rate)
  if config.optimizer == 'momentum':
    return optax.sgd(rate, momentum=config.momentum,
                     nesterov=config.nesterov)
  return optax.adam(rate)


def create_model(config: ml_collections.ConfigDict, num_classes: int,
                 seed: int) -> tuple[nnx.GraphDef, nnx.GraphDef, nnx.State,
                                     nnx.State]:
  """Builds the model; returns train and eval graph definitions and state.

  The parameters are initialised inside one `jax.jit` (eager NNX
  initialisation would compile every op on its own).
  """
  def build():
    return models.create_model(config, num_classes, nnx.Rngs(params=seed))

  abstract = nnx.eval_shape(build)
  abstract.train()
  train_def, _, _ = nnx.split(abstract, nnx.Param, nnx.BatchStat)
  abstract.eval()
  eval_def, _, _ = nnx.split(abstract, nnx.Param, nnx.BatchStat)
  params, batch_stats = jax.jit(
      lambda: nnx.split(build(), nnx.Param, nnx.BatchStat)[1:])()
  return train_def, eval_def, params, batch_stats


def distillation_loss(logits: jax.Array, targets: jax.Array,
                      teacher_logits: jax.Array | None, weight: float,
                      temperature: float) -> jax.Array:
  """Mean loss of a batch, with or without teachers.

  Args:
    logits: the student's, [B, C].
    targets: label distributions, [B, C].
    teacher_logits: [K, B, C] from K teachers, or None (no distillation).
    weight: share of the teachers' term.
    temperature: both sides of the teachers' term are softened by it; the
      term is scaled by its square so its gradients keep their size.
  """
  loss = optax.softmax_cross_entropy(logits, targets)
  if teacher_logits is None:
    return loss.mean()
  teacher = jnp.mean(jax.nn.softmax(teacher_logits / temperature, axis=-1),
                     axis=0)
  taught = optax.softmax_cross_entropy(logits / temperature, teacher)
  return ((1 - weight) * loss + weight * temperature**2 * taught).mean()


def one_vs_rest_loss(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Binary cross entropy of a sigmoid per class, summed over the classes
  but `_unknown_`, mean over the batch (`config.loss='one_vs_rest'`).

  An `_unknown_` clip is a negative for every other class: it teaches what
  no class is, not a class of its own (its logit is fixed at 0 by the
  model). `targets` are the (smoothed) one-hot rows.
  """
  keep = 1 - models.unknown_row(logits.shape[-1], 1.0)
  losses = optax.sigmoid_binary_cross_entropy(logits, targets)
  return (losses * keep).sum(-1).mean()


def adversary_scale(weight: float, step: jax.Array,
                    total_steps: int) -> jax.Array:
  """The reversed gradient's scale at `step`: `weight` times
  2 / (1 + exp(-10 p)) - 1, p = step / total_steps (Ganin et al.'s ramp:
  0 at the start, while the features are still forming, then `weight`)."""
  progress = step.astype(jnp.float32) / total_steps
  return weight * (2 / (1 + jnp.exp(-10 * progress)) - 1)


def domain_loss(domain_logits: jax.Array, synthetic: jax.Array,
                label: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Binary cross entropy of synthetic vs recorded over the batch's word
  clips (silence is never synthetic), and the head's accuracy on them."""
  words = (label != labels_lib.SILENCE_INDEX).astype(jnp.float32)
  count = jnp.maximum(words.sum(), 1)
  losses = optax.sigmoid_binary_cross_entropy(domain_logits, synthetic)
  hits = (domain_logits > 0) == (synthetic > 0.5)
  return (losses * words).sum() / count, (hits * words).sum() / count


def train_step(state: TrainState, batch: dict[str, jax.Array],
               background: jax.Array, teachers: tuple[Any, ...] = (), *,
               graphdef: nnx.GraphDef, tx: optax.GradientTransformation,
               num_classes: int, config: ml_collections.ConfigDict,
               teacher_defs: tuple[nnx.GraphDef, ...] = ()
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One update on a batch of raw audio: augment, features, model, optimizer.

  `teachers` holds (params, batch_stats) of the models distilled from, with
  their eval-mode graph definitions in `teacher_defs` (see
  `config.distill_from`). The loss is `config.loss`'s; with a domain head
  (`config.synthetic_adversary`) its loss is added, its gradient reversed
  into the backbone (`grad_norm` counts both), and the step's metrics
  gain `domain_cross_entropy` and `domain_accuracy`.
  """
  key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  (aug_key, gain_key, mask_key, dropout_key, speed_key,
   mixup_key) = jax.random.split(key, 6)
  samples_per_ms = config.sample_rate / 1000
  audio = augment.change_speed(speed_key, batch['audio'],
                               config.speed_perturbation)
  # (Its key is folded in, leaving the split above, and so the draws of
  # runs without reverberation, as they were.)
  audio = augment.reverberate(
      jax.random.fold_in(speed_key, 1), audio, config.reverb_probability,
      config.reverb_max_rt60_ms / 1000, config.sample_rate)
  if config.volume_db:
    gain_db = jax.random.uniform(gain_key, (audio.shape[0], 1),
                                 minval=-config.volume_db,
                                 maxval=config.volume_db)
    audio = audio * 10 ** (gain_db / 20)
  audio = augment.augment_waveform(
      aug_key, audio, batch['label'], background,
      time_shift_samples=int(config.time_shift_ms * samples_per_ms),
      background_frequency=config.background_frequency,
      background_volume=config.background_volume,
      background_rms=(config.background_rms_min, config.background_rms_max),
      min_snr_db=config.background_min_snr_db)
  targets = optax.smooth_labels(
      jax.nn.one_hot(batch['label'], num_classes), config.label_smoothing)
  audio, targets = augment.mixup(mixup_key, audio, targets,
                                 config.mixup_alpha)
  # The teachers see the augmented audio, but not SpecAugment's masks.
  teacher_logits = jax.lax.stop_gradient(jnp.stack([
      models.predict_fn(definition, decision=False)(teacher_params,
                                                    teacher_stats, audio)
      for definition, (teacher_params, teacher_stats)
      in zip(teacher_defs, teachers)
  ])) if teachers else None

  def loss_fn(params):
    # copy: batch statistics are updated inside this (grad) trace.
    model = nnx.merge(graphdef, params, state.batch_stats, copy=True)
    features = augment.spec_augment(
        mask_key, model.features(audio), time_masks=config.time_masks,
        time_mask_max=int(config.time_mask_ms / config.window_stride_ms),
        freq_masks=config.freq_masks, freq_mask_max=config.freq_mask_bins)
    rngs = nnx.Rngs(dropout=dropout_key)
    if model.domain_head is None:
      logits, domain = model.classify(features, rngs=rngs), {}
    else:
      logits, embedding = model.classify_and_embed(features, rngs=rngs)
      scale = adversary_scale(
          config.synthetic_adversary, state.step,
          config_validation.parse_schedule(config).total_steps)
      domain_cross_entropy, domain_accuracy = domain_loss(
          model.domain_head(models.reverse_gradient(embedding, scale)),
          batch['synthetic'], batch['label'])
      domain = {'domain_cross_entropy': domain_cross_entropy,
                'domain_accuracy': domain_accuracy}
    if config.loss == 'one_vs_rest':
      loss = one_vs_rest_loss(logits, targets)
    else:
      loss = distillation_loss(logits, targets, teacher_logits,
                               config.distill_weight,
                               config.distill_temperature)
    # The head learns to tell the domains apart; the backbone, through the
    # reversed gradient, to hide them.
    total = loss + domain.get('domain_cross_entropy', 0.0)
    return total, (loss, logits, domain, nnx.state(model, nnx.BatchStat))

  with layers.convolution_library(config.train_convolutions):
    (_, (loss, logits, domain, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
  decay = ema_decay_at(config.ema_decay, state.step,
                       warmup=config.ema_warmup)
  average = lambda old, new: decay * old + (1 - decay) * new  # noqa: E731
  new_state = state.replace(
      step=state.step + 1, params=params, batch_stats=batch_stats,
      opt_state=opt_state,
      ema_params=jax.tree.map(average, state.ema_params, params),
      ema_batch_stats=jax.tree.map(average, state.ema_batch_stats,
                                   batch_stats))
  return new_state, {'cross_entropy': loss, 'accuracy': accuracy,
                     'grad_norm': optax.global_norm(grads), **domain}


class _Devices:
  """The mesh, and moving host batches onto it."""

  def __init__(self):
    # Auto axes: XLA propagates the batch sharding; the code stays unaware.
    self.mesh = jax.make_mesh((jax.device_count(),), ('data',),
                              axis_types=(jax.sharding.AxisType.Auto,))
    self.batch = NamedSharding(self.mesh, P('data'))
    self.replicated = NamedSharding(self.mesh, P())

  def global_batch(self, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Assembles each process's slice into one batch sharded over the mesh."""
    return {k: jax.make_array_from_process_local_data(self.batch, v)
            for k, v in local.items()}

  def local_slice(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This process's part of a batch that every process holds in full."""
    n = len(next(iter(batch.values()))) // jax.process_count()
    start = jax.process_index() * n
    return {k: v[start:start + n] for k, v in batch.items()}


def batch_predictor(predict: Callable[..., jax.Array], params: Any,
                    batch_stats: Any, batch_size: int, devices: _Devices
                    ) -> Callable[[np.ndarray], np.ndarray]:
  """`predict` as `f(audio float32 [b, L]) -> logits [b, C]` for up to
  `batch_size` clips (rounded up to a multiple of the devices), for
  `metrics_lib.score_split`; every process runs it on the same clips.

  Batches are zero-padded to that size, so the jitted `predict` is compiled
  once, and each device takes its share of every batch.
  """
  batch_size = -(-batch_size // jax.device_count()) * jax.device_count()

  def predict_batch(audio: np.ndarray) -> np.ndarray:
    real = len(audio)
    padded = np.pad(audio, ((0, batch_size - real), (0, 0)))
    logits = predict(params, batch_stats, devices.global_batch(
        devices.local_slice({'audio': padded}))['audio'])
    return np.asarray(jax.device_get(logits))[:real]

  return predict_batch


def _log_evaluation(name: str, step: int | None,
                    result: metrics_lib.ClassificationResult) -> None:
  logging.info('Confusion Matrix:\n%s',
               metrics_lib.format_confusion(result.confusion))
  if step is None:
    logging.info('%s = %.1f%% (N=%d)', name, result.accuracy * 100,
                 result.count)
  else:
    logging.info('Step %d: %s = %.1f%% (N=%d)', step, name,
                 result.accuracy * 100, result.count)


def _progress(total: int, initial: int, enabled: bool):
  """A progress bar with time remaining, only where a terminal is attached."""
  if not (enabled and sys.stderr.isatty()):
    return None
  import tqdm  # Only needed interactively.
  return tqdm.tqdm(total=total, initial=initial, unit='step', leave=False,
                   dynamic_ncols=True)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict[str, Any]:
  """Trains, evaluating and checkpointing as it goes; returns the results.

  Args:
    config: a config from `configs/`; checked before any work starts.
    workdir: where config, labels, metrics, checkpoints and results go. A
      workdir with checkpoints is resumed from its latest one.

  Returns:
    A dict with the final validation and test figures.
  """
  config = config_validation.validate_config(config)
  schedule = config_validation.parse_schedule(config)
  config_validation.check_before_training(config, workdir)
  checkpoint.check_checkpoints_fit(config, workdir)
  is_main = jax.process_index() == 0
  devices = _Devices()
  if config.batch_size % jax.device_count():
    raise config_validation.ConfigError(
        f'config.batch_size={config.batch_size} must be a multiple of the '
        f'{jax.device_count()} devices, which share each batch.')
  os.makedirs(workdir, exist_ok=True)

  data = _create_datasets_once(config)
  labels = data.labels
  if is_main:
    workdir_lib.write_config(workdir, config)
    workdir_lib.write_labels(
        workdir_lib.labels_path(workdir, config.model_architecture), labels)

  train_def, eval_def, params, batch_stats = create_model(
      config, len(labels), config.seed)
  tx = make_optimizer(config, schedule)
  state = new_train_state(params, batch_stats, tx, config.seed)
  extra = {'config': config.to_dict(), 'labels': labels}

  ckpts = checkpoint.Checkpoints(checkpoint.checkpoint_dir(workdir),
                                 keep=config.keep_checkpoints)
  # Restored arrays are laid out for this run's devices, whatever layout
  # the checkpoint was written from.
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                     sharding=devices.replicated), state)
  if ckpts.latest_step() is not None:
    state, _ = ckpts.restore(ckpts.latest_step(), abstract)
    logging.info('Resuming from "%s"', ckpts.path(ckpts.latest_step()))
  elif config.start_checkpoint:
    state = _restore_start_checkpoint(config, abstract)
  state = jax.device_put(state, devices.replicated)
  background = jax.device_put(jnp.asarray(data.background), devices.replicated)

  teacher_defs, teachers = _load_teachers(config, devices)
  step_fn = jax.jit(
      functools.partial(train_step, graphdef=train_def, tx=tx,
                        num_classes=len(labels), config=config,
                        teacher_defs=teacher_defs),
      donate_argnums=0,
      compiler_options=compiler_options(config))
  predict = jax.jit(models.predict_fn(eval_def),
                    out_shardings=devices.replicated)

  start_step = int(state.step) + 1
  total = schedule.total_steps
  logging.info('Training from step: %d', start_step)
  logging.info('%d steps to run (to step %d); the time they take is '
               'estimated after the first %d.', total - start_step + 1, total,
               _ESTIMATE_AFTER_STEPS)
  log = workdir_lib.MetricsLog(workdir, enabled=is_main)
  bar = _progress(total, start_step - 1, is_main)
  batches = input_pipeline.train_iterator(
      data, config, start_step, jax.process_index(), jax.process_count())
  started, first_timed_step = time.time(), None
  # Seconds the loop waited for the input pipeline (steps are dispatched
  # asynchronously, so the rest of a step's time is the device's).
  input_wait = paused = 0.0
  step = logged = start_step - 1
  estimated = False
  # The step whose metrics are read next. They are fetched after the next
  # step is dispatched, so the host never waits for a step before queueing
  # the one after it (the tutorial logs every step).
  pending = None

  def record(step: int, step_metrics: dict[str, jax.Array]) -> None:
    """The NaN check and the `Step #N` line of a finished step."""
    nonlocal logged
    values = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
    if config.check_nans and not np.isfinite(
        [values['cross_entropy'], values['grad_norm']]).all():
      raise FloatingPointError(
          f'Step {step}: the loss or gradients are NaN/Inf (cross '
          f'entropy {values["cross_entropy"]}). Lower '
          '--config.learning_rate or check the input data.')
    if step % config.log_step_interval == 0 or step == total:
      rate = schedule.rate_at(step)
      logging.info('Step #%d: rate %f, accuracy %.1f%%, cross entropy %f',
                   step, rate, values['accuracy'] * 100,
                   values['cross_entropy'])
      log.write(step, 'train', {**values, 'learning_rate': rate})
    # Right after the write: a Ctrl-C from here on must not write it again.
    logged = step

  def record_pending() -> None:
    nonlocal pending
    if pending is not None and pending[0] > logged:
      record(*pending)
    pending = None

  try:
    for step in range(start_step, total + 1):
      waiting = time.time()
      local_batch = next(batches)
      input_wait += time.time() - waiting
      batch = devices.global_batch(local_batch)
      state, step_metrics = step_fn(state, batch, background, teachers)
      if first_timed_step is None:  # The first step compiles; time the rest.
        jax.block_until_ready(state.step)
        started, first_timed_step = time.time(), step
        input_wait = paused = 0.0
      record_pending()  # The previous step's, while this one runs.
      if bar is not None:
        bar.update(1)
      is_last = step == total
      if config.check_nans or step % config.log_step_interval == 0 or is_last:
        pending = (step, step_metrics)
      if not estimated and step - first_timed_step >= _ESTIMATE_AFTER_STEPS:
        jax.block_until_ready(state.step)
        estimated = True
        _log_estimate((time.time() - started - paused) /
                      (step - first_timed_step), total - step)

      step_scores = None
      evaluate_now = step % config.eval_step_interval == 0 or is_last
      if evaluate_now or step % config.save_step_interval == 0:
        # Evaluation and checkpoints are timed apart from training, and
        # come after the step's own line (and its NaN check).
        record_pending()
        jax.block_until_ready(state.step)
        pausing = time.time()
      if evaluate_now:
        result = metrics_lib.score_split(
            batch_predictor(predict, state.ema_params, state.ema_batch_stats,
                            config.eval_batch_size, devices),
            data.validation, labels, config.eval_batch_size)
        _log_evaluation('Validation accuracy', step, result)
        step_scores = {checkpoint.BEST_METRIC: result.accuracy}
        log.write(step, 'validation', {'accuracy': result.accuracy})
      if step % config.save_step_interval == 0 or step_scores or is_last:
        path = ckpts.save(step, state, {**extra, 'metrics': step_scores or {}},
                          metrics=step_scores)
        logging.info('Saving to "%s"', path)
        paused += time.time() - pausing
  except KeyboardInterrupt:
    # Keep the work done so far: the next run resumes from here.
    record_pending()
    try:
      done = int(state.step)
    except RuntimeError:  # Interrupted inside a step that took its buffers.
      done = 0
    if done == step > logged:  # Its record was cut short: write it now.
      record(done, step_metrics)
    if done > (ckpts.latest_step() or 0):
      path = ckpts.save(done, state, {**extra, 'metrics': {}})
      logging.info('Interrupted; saving to "%s"', path)
    ckpts.wait_until_finished()
    raise
  finally:
    batches.close()  # Stops the input prefetch thread.
    if bar is not None:
      bar.close()
  ckpts.wait_until_finished()

  jax.block_until_ready(state.step)
  train_seconds = time.time() - started - paused
  timed_steps = step - (first_timed_step or step)
  results = _final_test(config, ckpts, state, abstract, predict, data, labels,
                        devices)
  results.update({
      'steps': total,
      'num_params': models.count_exported_params(state.params),
      # Steps after the first (compilation), evaluations and checkpoints
      # excluded.
      'train_step_seconds': train_seconds,
      'steps_per_second': timed_steps / train_seconds if timed_steps else None,
      'samples_per_second': (timed_steps * config.batch_size / train_seconds
                             if timed_steps else None),
      # Of the training steps' time (evaluations and checkpoints excluded).
      'input_wait_fraction': (input_wait / train_seconds if timed_steps
                              else None),
      'eval_and_checkpoint_seconds': paused,
  })
  if is_main:
    workdir_lib.write_json(os.path.join(workdir, 'results.json'), results)
  log.close()
  ckpts.close()
  return results


def _create_datasets_once(config) -> input_pipeline.Datasets:
  """Loads the data; with several processes, process 0 prepares it first."""
  if jax.process_count() == 1:
    return input_pipeline.create_datasets(config)
  data = None
  if jax.process_index() == 0:
    data = input_pipeline.create_datasets(config)
  multihost_utils.sync_global_devices('kws_jax: data prepared')
  return data or input_pipeline.create_datasets(config)


def _load_teachers(config, devices) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
  """The eval graph definitions and (params, batch_stats) of the models in
  `config.distill_from`, each its best checkpoint (checked by
  `checkpoint.check_checkpoints_fit`)."""
  restored = [checkpoint.restore_model(path, which=checkpoint.BEST)
              for path in config_validation.teacher_paths(config)]
  for teacher in restored:
    logging.info('Distilling from %s (%s, step %d).', teacher.path,
                 teacher.config.model_architecture, teacher.step)
  return (tuple(t.eval_graphdef for t in restored),
          jax.device_put(tuple((t.params, t.batch_stats) for t in restored),
                         devices.replicated))


def _restore_start_checkpoint(config, abstract):
  """Restores `config.start_checkpoint`, its latest step (checked to fit
  this run by `checkpoint.check_checkpoints_fit`)."""
  directory, step, _ = checkpoint.find_checkpoint(config.start_checkpoint,
                                                  which=checkpoint.LATEST)
  source = checkpoint.Checkpoints(directory, read_only=True)
  try:
    state, _ = source.restore(step, abstract)
  except (ValueError, KeyError) as e:
    raise checkpoint.CheckpointError(
        f'config.start_checkpoint={config.start_checkpoint} does not fit '
        f'this model ({e}); were the model settings changed?') from e
  logging.info('Starting from "%s"', source.path(step))
  return state


# Timed steps after which the remaining training time is estimated.
_ESTIMATE_AFTER_STEPS = 20


def _log_estimate(seconds_per_step: float, steps_left: int) -> None:
  """Logs how long the remaining steps will take at this pace."""
  left = seconds_per_step * steps_left
  finish = time.strftime('%H:%M', time.localtime(time.time() + left))
  logging.info(
      '%.3f s a step here: the %d steps left take about %s (done around %s; '
      'evaluations and checkpoints add to it).', seconds_per_step, steps_left,
      _duration(left), finish)


def _duration(seconds: float) -> str:
  """'2 h 05 min', '4 min 10 s' or '12 s'."""
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'
  if seconds >= 60:
    return f'{seconds // 60} min {seconds % 60:02d} s'
  return f'{seconds} s'


def _final_test(config, ckpts, state, abstract, predict, data, labels,
                devices) -> dict[str, Any]:
  """Scores the best checkpoint (by validation accuracy) on the test split."""
  best = ckpts.best_step()
  if best is not None and best != int(state.step):
    state, _ = ckpts.restore(best, abstract)
    state = jax.device_put(state, devices.replicated)
  best = best if best is not None else int(state.step)
  predict_batch = batch_predictor(predict, state.ema_params,
                                  state.ema_batch_stats,
                                  config.eval_batch_size, devices)
  validation = metrics_lib.score_split(predict_batch, data.validation, labels,
                                       config.eval_batch_size)
  test = metrics_lib.score_split(predict_batch, data.test, labels,
                                 config.eval_batch_size)
  logging.info('Scoring the checkpoint of step %d (best validation accuracy '
               '%.1f%%) on the test split.', best, validation.accuracy * 100)
  _log_evaluation('Final test accuracy', None, test)
  logging.info('Per class:\n%s', metrics_lib.format_per_class(test))
  results = {'best_step': best, 'validation': validation.to_dict(),
             'test': test.to_dict(), 'labels': labels}

  def score(split: input_pipeline.Split) -> np.ndarray:
    return metrics_lib.predict_split(predict_batch, split.audio,
                                     config.eval_batch_size)

  if len(data.unseen_words):
    names = data.unseen_words.names
    results['unseen_words'] = metrics_lib.group_recall(
        score(data.unseen_words), labels_lib.UNKNOWN_INDEX,
        [n.split('/')[0] for n in names], labels)
    logging.info(
        'Unseen words (fold %s, never trained on): _unknown_ recall = %.1f%% '
        '(N=%d), mean over the %d words %.1f%%; heard as %s',
        config.unseen_words_fold, results['unseen_words']['recall'] * 100,
        len(names), len(results['unseen_words']['per_group']),
        results['unseen_words']['mean_recall'] * 100,
        results['unseen_words']['heard_as'])
  if len(data.silence_stress):
    names = data.silence_stress.names
    predictions = score(data.silence_stress)
    stress = metrics_lib.group_recall(
        predictions, labels_lib.SILENCE_INDEX,
        [n.split('@')[0] for n in names], labels)
    stress['per_level'] = metrics_lib.group_recall(
        predictions, labels_lib.SILENCE_INDEX,
        [n.split('@')[1] for n in names], labels)['per_group']
    results['silence_stress'] = stress
    logging.info('Silence stress set: _silence_ recall = %.1f%% (N=%d); '
                 'heard as %s', stress['recall'] * 100, stress['count'],
                 stress['heard_as'])
  return results
