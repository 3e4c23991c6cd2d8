"""DS-CNN: depthwise-separable CNN (Zhang et al., "Hello Edge", 2017).

arXiv:1711.07128. A strided conv, then blocks of depthwise 3x3 conv + BN +
ReLU + pointwise conv + BN + ReLU, average over time and frequency, a fully
connected layer. Depthwise convs are `layers.DepthwiseConv` and 1x1 convs
`layers.Pointwise` (one matmul), for CPU speed.

The defaults are DS-CNN-S (64 channels, 4 blocks): 23.2k parameters for 12
classes. The paper fed it 49 x 10 MFCCs (40 ms windows every 20 ms), as
`configs/ds_cnn.py` does: 2.7M multiply-adds per clip. On 98 x 40 features
the first stride of 2 x 2 leaves a 49 x 20 map and it costs about 8x that
(~22M).
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from kws_jax.models import layers


class Model(nnx.Module):
  """DS-CNN for features [B, T, F]."""

  def __init__(self,
               *,
               num_classes: int,
               input_shape: tuple[int, int],
               rngs: nnx.Rngs,
               channels: int = 64,
               num_blocks: int = 4,
               first_filter: tuple[int, int] = (10, 4),
               first_stride: tuple[int, int] = (2, 2),
               dropout_rate: float = 0.2,
               bn_momentum: float = 0.9,
               bn_epsilon: float = 1e-3):
    """Args:

      num_classes: output classes.
      input_shape: (frames, bins).
      rngs: initialisation keys.
      channels: channels of every layer (S: 64, M: 172, L: 276).
      num_blocks: depthwise-separable blocks (S, M: 4; L: 5).
      first_filter: (time, frequency) kernel of the first conv.
      first_stride: (time, frequency) stride of the first conv.
      dropout_rate: before the final fully connected layer.
      bn_momentum: BatchNorm running-average momentum.
      bn_epsilon: BatchNorm epsilon.
    """
    del input_shape  # Global pooling: any input size works.
    bn = dict(momentum=bn_momentum, epsilon=bn_epsilon, rngs=rngs)
    self.stem = layers.Conv(1, channels, tuple(first_filter),
                         strides=tuple(first_stride), padding='SAME',
                         use_bias=False, rngs=rngs)
    self.stem_norm = nnx.BatchNorm(channels, **bn)
    self.depthwise = nnx.List([
        layers.DepthwiseConv(channels, (3, 3), rngs=rngs)
        for _ in range(num_blocks)
    ])
    self.depthwise_norms = nnx.List(
        [nnx.BatchNorm(channels, **bn) for _ in range(num_blocks)])
    self.pointwise = nnx.List([
        layers.Pointwise(channels, channels, rngs=rngs)
        for _ in range(num_blocks)
    ])
    self.pointwise_norms = nnx.List(
        [nnx.BatchNorm(channels, **bn) for _ in range(num_blocks)])
    self.dropout = nnx.Dropout(dropout_rate)
    self.classifier = nnx.Linear(channels, num_classes, rngs=rngs)

  def __call__(self, features: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Features [B, T, F] -> logits [B, num_classes]."""
    x = jax.nn.relu(self.stem_norm(self.stem(features[..., None])))
    for dw, dw_norm, pw, pw_norm in zip(self.depthwise, self.depthwise_norms,
                                        self.pointwise, self.pointwise_norms):
      x = jax.nn.relu(dw_norm(dw(x)))
      x = jax.nn.relu(pw_norm(pw(x)))
    x = self.dropout(jnp.mean(x, axis=(1, 2)), rngs=rngs)
    return self.classifier(x)
