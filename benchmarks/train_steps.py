"""Jitted training steps on random audio, shared by the speed benchmarks.

`benchmarks/model_speed.py` times them alone; `benchmarks/peer_speed.py`
times them against the Keras twins.
"""

import functools
import os
from typing import Callable

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from configs import default
from kws_jax import audio_io
from kws_jax import augment
from kws_jax import config_files
from kws_jax import models
from kws_jax import train
from kws_jax.models import layers


def load_config(name: str) -> tuple[ml_collections.ConfigDict, str]:
  """The architecture's own config if there is one, else the default."""
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = os.path.join(here, 'configs', f'{name}.py')
  if os.path.exists(path):
    return config_files.load_config(path), name
  config = default.get_config()
  config.model_architecture = name
  config.model = ml_collections.ConfigDict()
  return config, 'default'


def random_audio(config: ml_collections.ConfigDict, clips: int,
                 seed: int = 0) -> np.ndarray:
  """float32 [clips, samples] of uniform noise in [-0.5, 0.5]: timing input."""
  samples = audio_io.samples_per_clip(config.sample_rate,
                                      config.clip_duration_ms)
  return np.random.default_rng(seed).uniform(
      -0.5, 0.5, (clips, samples)).astype(np.float32)


def random_labels(clips: int, num_classes: int) -> np.ndarray:
  """int32 [clips] class indices: timing input."""
  return np.random.default_rng(0).integers(0, num_classes, clips).astype(
      np.int32)


def make_train_step(config: ml_collections.ConfigDict, batch_size: int,
                    with_augment: bool, num_classes: int = 12
                    ) -> tuple[Callable[[], jax.Array], float]:
  """One jitted training step on random audio, and its FLOPs.

  Returns `(step, flops)`: each `step()` runs one update (front end,
  forward, backward, adam update; with `with_augment` also the waveform
  augmentation) on the same batch, keeps the new state and returns the
  loss without waiting for it; `flops` is XLA's cost analysis of the step
  (with XLA's convolutions, whatever `config.train_convolutions` runs).
  """
  model = models.create_model(config, num_classes, nnx.Rngs(0))
  model.train()
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  tx = optax.adam(1e-3)
  audio = jnp.asarray(random_audio(config, batch_size))
  label = jnp.asarray(random_labels(batch_size, num_classes))
  background = jnp.asarray(random_audio(config, 10, seed=2).reshape(-1))
  shift = audio_io.samples_per_clip(config.sample_rate, config.time_shift_ms)

  # The batch is an argument, not a closed-over constant, so that XLA cannot
  # precompute the front end at compile time.
  @functools.partial(jax.jit, static_argnames='library',
                     compiler_options=train.compiler_options(config))
  def train_step(params, batch_stats, opt_state, key, audio, label,
                 background, library=config.train_convolutions):
    aug_key, dropout_key = jax.random.split(key)
    x = audio
    if with_augment:
      x = augment.augment_waveform(
          aug_key, x, label, background, time_shift_samples=shift,
          background_frequency=config.background_frequency,
          background_volume=config.background_volume)

    def loss_fn(params):
      # copy=True: BatchNorm may only update Variables made in this trace.
      model = nnx.merge(graphdef, params, batch_stats, copy=True)
      logits = model(x, rngs=nnx.Rngs(dropout=dropout_key))
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, label)
      return loss.mean(), nnx.state(model, nnx.BatchStat)

    with layers.convolution_library(library):
      (loss, new_stats), grads = jax.value_and_grad(
          loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state, loss

  key = jax.random.key(0)
  state = [params, batch_stats, tx.init(params), 0]
  arguments = (*state[:3], key, audio, label, background)
  compiled = train_step.lower(*arguments).compile()
  # XLA cannot count the arithmetic of a library's custom calls: the count
  # is that of the same step with XLA's convolutions.
  counted = (compiled if config.train_convolutions == 'xla' else
             train_step.lower(*arguments, library='xla').compile())
  flops = float((counted.cost_analysis() or {}).get('flops', 0.0))

  def step() -> jax.Array:
    params, batch_stats, opt_state, i = state
    params, batch_stats, opt_state, loss = compiled(
        params, batch_stats, opt_state, jax.random.fold_in(key, i), audio,
        label, background)
    state[:] = [params, batch_stats, opt_state, i + 1]
    return loss

  return step, flops
