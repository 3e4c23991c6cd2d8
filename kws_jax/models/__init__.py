"""Model registry and the full model: front end + backbone.

`MODELS` maps `config.model_architecture` to a backbone class. Every backbone
is an `nnx.Module` built as

    Model(*, num_classes, input_shape=(frames, bins), rngs, **config.model)

whose `__call__(features [B, frames, bins], *, rngs=None)` returns logits
[B, num_classes]. A backbone may also split that call in two, `embed(features)
-> [B, embedding_size]` and `head(embedding, *, rngs=None) -> logits`, with
an `embedding_size` attribute (tc_resnet does): `config.synthetic_adversary`
needs them. Dropout draws from the `rngs` given to the call (needed in
train mode only); dropout and BatchNorm follow `model.train()` /
`model.eval()`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kws_jax import features as features_lib
from kws_jax import labels as labels_lib
from kws_jax.models import bc_resnet
from kws_jax.models import ds_cnn
from kws_jax.models import tc_resnet
from kws_jax.models import tutorial

MODELS: dict[str, type[nnx.Module]] = {
    # The TF speech_commands tutorial's architectures.
    'single_fc': tutorial.SingleFC,
    'conv': tutorial.Conv,
    'low_latency_conv': tutorial.LowLatencyConv,
    'low_latency_svdf': tutorial.LowLatencySVDF,
    'tiny_conv': tutorial.TinyConv,
    'tiny_embedding_conv': tutorial.TinyEmbeddingConv,
    # Later, smaller and more accurate families.
    'bc_resnet': bc_resnet.Model,
    'tc_resnet': tc_resnet.Model,
    'ds_cnn': ds_cnn.Model,
}

# Name scope of the front-end ops (`predict_fn`); an exported TFLite model
# names its front-end tensors by it.
FRONTEND_SCOPE = 'frontend'

# `config.loss`: how training scores the logits. 'one_vs_rest' also fixes
# the `_unknown_` logit at 0 (`KWSModel.unknown_logit_fixed`).
LOSSES = ('softmax', 'one_vs_rest')


def unknown_row(num_classes: int, value: float) -> np.ndarray:
  """float32 [num_classes]: `value` at `_unknown_`, 0 elsewhere. A constant
  row (added or multiplied), not a scatter, which TFLite's builtins lack."""
  row = np.zeros(num_classes, np.float32)
  row[labels_lib.UNKNOWN_INDEX] = value
  return row


class DomainHead(nnx.Module):
  """Synthetic or recorded, from a backbone's embedding: one logit per clip
  (`config.synthetic_adversary`), through one hidden layer of `hidden`
  units (a small head, as Ganin et al.'s; 32 was not tuned). Training's
  alone; never exported."""

  def __init__(self, embedding_size: int, rngs: nnx.Rngs,
               hidden: int = 32):
    self.hidden = nnx.Linear(embedding_size, hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, 1, rngs=rngs)

  def __call__(self, embedding: jax.Array) -> jax.Array:
    """[B, embedding_size] -> logits [B] (above 0: synthetic)."""
    return self.out(jax.nn.relu(self.hidden(embedding)))[:, 0]


@jax.custom_vjp
def reverse_gradient(x: jax.Array, scale: jax.Array) -> jax.Array:
  """The identity forward; backward, the gradient times -scale (none for
  `scale`)."""
  return x


def _reverse_forward(x, scale):
  return x, scale


def _reverse_backward(scale, g):
  return -scale * g, jnp.zeros_like(scale)


reverse_gradient.defvjp(_reverse_forward, _reverse_backward)


class KWSModel(nnx.Module):
  """Raw audio to logits: `classify(features(audio))`.

  The front end has no parameters, so `nnx.split(model, nnx.Param,
  nnx.BatchStat)` holds only the backbone's state.

  Attributes:
    frontend: audio -> features.
    backbone: features -> logits.
    unknown_offset: added to the `_unknown_` logit when the model decides
      (`decide`; `config.unknown_offset`), never in training's loss. A
      constant of the graph definition, not a parameter.
    unknown_logit_fixed: the `_unknown_` logit is 0 whatever the input
      (`config.loss='one_vs_rest'`): a clip is `_unknown_` when no other
      class's logit is above 0 (or above the offset). The backbone's
      `_unknown_` output is then unused.
    domain_head: a `DomainHead` on the backbone's embedding
      (`config.synthetic_adversary`), or None.
  """

  def __init__(self, frontend: features_lib.Frontend, backbone: nnx.Module,
               unknown_offset: float = 0.0, unknown_logit_fixed: bool = False,
               domain_head: DomainHead | None = None):
    self.frontend = frontend
    self.backbone = backbone
    self.unknown_offset = float(unknown_offset)
    self.unknown_logit_fixed = bool(unknown_logit_fixed)
    self.domain_head = domain_head

  def features(self, audio: jax.Array, dft: str = 'fft') -> jax.Array:
    """Audio float32 [B, L] in [-1, 1] -> features [B, frames, bins];
    `dft` as `features.Frontend` takes it."""
    return self.frontend(audio, dft)

  def classify(self, features: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Features [B, frames, bins] -> logits [B, num_classes]."""
    return self._fix_unknown(self.backbone(features, rngs=rngs))

  def classify_and_embed(self, features: jax.Array, *,
                         rngs: nnx.Rngs | None = None
                         ) -> tuple[jax.Array, jax.Array]:
    """`classify`'s logits and the backbone's embedding (backbones with
    `embed` and `head`)."""
    embedding = self.backbone.embed(features)
    return (self._fix_unknown(self.backbone.head(embedding, rngs=rngs)),
            embedding)

  def _fix_unknown(self, logits: jax.Array) -> jax.Array:
    if not self.unknown_logit_fixed:
      return logits
    keep = 1 - unknown_row(logits.shape[-1], 1.0)
    return logits * keep.astype(logits.dtype)

  def __call__(self, audio: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Audio float32 [B, L] -> logits [B, num_classes]."""
    return self.classify(self.features(audio), rngs=rngs)

  def decide(self, logits: jax.Array) -> jax.Array:
    """Logits [B, C] -> the logits the model's decision is made on.

    `unknown_offset` added to `_unknown_`'s: words the model never heard
    often score just under a command, and a small offset turns many of them
    into `_unknown_` for a small loss of commands (README, "Deciding: an
    offset for `_unknown_`"). The arg-max and the softmax of the result
    are the model's answer everywhere it is scored or exported.
    """
    if not self.unknown_offset:
      return logits
    offsets = unknown_row(logits.shape[-1], self.unknown_offset)
    return logits + offsets.astype(logits.dtype)


def model_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`config.model` as keyword arguments for the backbone constructor."""
  settings = config.get('model') or {}
  if isinstance(settings, ml_collections.ConfigDict):
    settings = settings.to_dict()
  return dict(settings)


def create_model(config: ml_collections.ConfigDict, num_classes: int,
                 rngs: nnx.Rngs) -> KWSModel:
  """Builds the front end and the `config.model_architecture` backbone.

  Args:
    config: needs the front-end fields (sample_rate, clip_duration_ms,
      window_size_ms, window_stride_ms, feature_bin_count, preprocess),
      `model_architecture`, `model` (the backbone's settings),
      `unknown_offset`, `loss` and `synthetic_adversary`.
    num_classes: output classes (silence and unknown included).
    rngs: parameter initialisation keys.

  Returns:
    The model, in train mode (NNX's default).
  """
  name = config.model_architecture
  if name not in MODELS:
    raise ValueError(f'Unknown model_architecture {name!r}; choose one of '
                     f'{sorted(MODELS)}.')
  frontend = features_lib.Frontend.from_config(config)
  input_shape = (features_lib.num_frames(config), frontend.feature_bin_count)
  backbone = MODELS[name](num_classes=num_classes, input_shape=input_shape,
                          rngs=rngs, **model_settings(config))
  domain_head = (DomainHead(backbone.embedding_size, rngs)
                 if config.synthetic_adversary else None)
  return KWSModel(frontend, backbone, config.unknown_offset,
                  unknown_logit_fixed=config.loss == 'one_vs_rest',
                  domain_head=domain_head)


def abstract_model(config: ml_collections.ConfigDict,
                   num_classes: int) -> KWSModel:
  """The model of `config` in eval mode, with shapes and no values.

  What a checkpoint restores into and what checks compare it against;
  `nnx.eval_shape` skips the (eager, slow) initialisation.
  """
  model = nnx.eval_shape(
      lambda: create_model(config, num_classes, nnx.Rngs(params=0)))
  model.eval()
  return model


def predict_fn(graphdef: nnx.GraphDef, *, probabilities: bool = False,
               clip_audio: bool = False,
               decision: bool = True,
               dft: str = 'fft') -> Callable[..., jax.Array]:
  """Returns `f(params, batch_stats, audio float32 [B, L]) -> [B, C]`.

  The one way every caller (training's evaluation and teachers, scoring a
  checkpoint, export) runs a model: `nnx.merge`, the front end under the
  name scope `FRONTEND_SCOPE`, the backbone, the decision
  (`KWSModel.decide`).

  Args:
    graphdef: a `KWSModel` graph definition (eval mode to score).
    probabilities: return the softmax (float32) instead of the logits.
    clip_audio: clip the audio to [-1, 1] first (a no-op for valid audio).
      For int8 export: it gives the model input a first op that can be kept
      in float, so the raw audio is not quantized to 8 bits.
    decision: apply the model's `unknown_offset`; False gives the network's
      own logits (a teacher's targets, or measuring offsets,
      experiments/unknown_offset.py).
    dft: how the front end computes its spectrum (`features.DFTS`); the
      TFLite exports take 'matrices'.
  """
  def predict(params, batch_stats, audio):
    model = nnx.merge(graphdef, params, batch_stats)
    with jax.named_scope(FRONTEND_SCOPE):
      if clip_audio:
        audio = jnp.clip(audio, -1.0, 1.0)
      features = model.features(audio, dft)
    logits = model.classify(features)
    if decision:
      logits = model.decide(logits)
    if probabilities:
      return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return logits
  return predict


def ensemble_predict_fn(graphdefs: Sequence[nnx.GraphDef],
                        unknown_offset: float, *,
                        dft: str = 'fft') -> Callable[..., jax.Array]:
  """Returns `f(states, audio float32 [B, L]) -> probabilities [B, C]`:
  several models deciding as one.

  `states` holds each model's (params, batch_stats). The models share one
  front end (the caller checks their front-end settings agree), so the
  features are computed once, by the first model's. The ensemble's logits
  are the log of the mean of the models' probabilities (without their own
  offsets) with `unknown_offset` added to `_unknown_`'s, as
  `KWSModel.decide` does for one model; it returns their softmax. `dft`
  as `predict_fn`'s.
  """
  def predict(states, audio):
    members = [nnx.merge(graphdef, params, batch_stats)
               for graphdef, (params, batch_stats) in zip(graphdefs, states)]
    with jax.named_scope(FRONTEND_SCOPE):
      features = members[0].features(audio, dft)
    mean = jnp.mean(jnp.stack([
        jax.nn.softmax(member.classify(features).astype(jnp.float32), -1)
        for member in members]), axis=0)
    logits = jnp.log(mean) + unknown_row(mean.shape[-1], unknown_offset)
    return jax.nn.softmax(logits, axis=-1)
  return predict


def count_exported_params(params: nnx.State) -> int:
  """Parameters of a `KWSModel`'s state that its exports hold: all but the
  training-only `domain_head`'s."""
  return sum(int(x.size) for name, part in params.items()
             if name != 'domain_head' for x in jax.tree.leaves(part))


def count_params(model: nnx.Module) -> int:
  """Number of trainable parameters (`nnx.Param` entries; no BN statistics)."""
  return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def estimate_multiply_adds(model: nnx.Module, input_shape: tuple[int, ...]
                           ) -> int:
  """Multiply-adds of one eval-mode forward pass on one example, estimated.

  XLA's cost analysis counts floating-point operations of the compiled
  batch-1 forward; half of them is taken as the multiply-add count. That is
  exact for convolutions and matmuls, which dominate, and slightly
  overcounts elementwise work (activations, normalisation, the FFT).

  Args:
    model: any module called as `model(x)`, e.g. a `KWSModel` (input: audio
      [L]) or a backbone (input: features [frames, bins]).
    input_shape: one example's input shape, without the batch axis.

  Returns:
    Estimated multiply-adds; -1 when the backend reports no cost.
  """
  graphdef, state = nnx.split(model)
  eval_model = nnx.merge(graphdef, state)  # A copy, so `model` keeps its mode.
  eval_model.eval()
  graphdef, state = nnx.split(eval_model)

  def forward(state, x):
    return nnx.merge(graphdef, state)(x)

  example = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  cost = jax.jit(forward).lower(state, example).cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per computation.
    cost = cost[0] if cost else None
  if not cost or 'flops' not in cost:
    return -1
  return int(round(cost['flops'] / 2))
