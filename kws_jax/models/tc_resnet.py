"""TC-ResNet: temporal convolutions with frequency bins as channels.

Choi et al., "Temporal Convolution for Real-time Keyword Spotting on Mobile
Devices", Interspeech 2019 (arXiv:1904.03814). Features [B, T, F] are read as
a 1-D sequence of T frames with F channels, so every conv is a cheap 1-D conv
over time; that makes it by far the fastest family here on a CPU.

TC-ResNet8 (the default): conv 3 -> 16k channels, then three residual blocks
of 24k, 32k, 48k channels, each conv(9, stride 2) BN ReLU conv(9) BN plus a
1x1 strided shortcut (conv BN ReLU), added and ReLU'd; average over time,
dropout, fully connected. `k` is `width_multiplier` (TC-ResNet8-1.5: 1.5).
TC-ResNet14 adds a stride-1 block after each of those (`blocks_per_stage=2`).

Parameters (40 MFCCs, 12 classes): TC-ResNet8 66k, TC-ResNet8-1.5 145k,
TC-ResNet14 137k (paper: 66k, 145k, 137k).
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from kws_jax.models import layers


class ResidualBlock(nnx.Module):
  """conv(k, stride) BN ReLU conv(k) BN + shortcut, ReLU; on [B, T, C]."""

  def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int,
               stride: int, bn_momentum: float, bn_epsilon: float,
               rngs: nnx.Rngs):
    bn = dict(momentum=bn_momentum, epsilon=bn_epsilon, rngs=rngs)
    self.conv1 = layers.Conv(in_channels, out_channels, (kernel_size,),
                          strides=(stride,), padding='SAME', use_bias=False,
                          rngs=rngs)
    self.norm1 = nnx.BatchNorm(out_channels, **bn)
    self.conv2 = layers.Conv(out_channels, out_channels, (kernel_size,),
                          padding='SAME', use_bias=False, rngs=rngs)
    self.norm2 = nnx.BatchNorm(out_channels, **bn)
    if stride != 1 or in_channels != out_channels:
      self.shortcut = layers.Conv(in_channels, out_channels, (1,),
                               strides=(stride,), use_bias=False, rngs=rngs)
      self.shortcut_norm = nnx.BatchNorm(out_channels, **bn)
    else:
      self.shortcut = None
      self.shortcut_norm = None

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, T, C_in] -> [B, ceil(T / stride), C_out]."""
    y = jax.nn.relu(self.norm1(self.conv1(x)))
    y = self.norm2(self.conv2(y))
    if self.shortcut is not None:
      x = jax.nn.relu(self.shortcut_norm(self.shortcut(x)))
    return jax.nn.relu(x + y)


class Model(nnx.Module):
  """TC-ResNet for features [B, T, F] (MFCCs in the paper)."""

  def __init__(self,
               *,
               num_classes: int,
               input_shape: tuple[int, int],
               rngs: nnx.Rngs,
               width_multiplier: float = 1.0,
               channels: tuple[int, ...] = (24, 32, 48),
               stem_channels: int = 16,
               blocks_per_stage: int = 1,
               kernel_size: int = 9,
               dropout_rate: float = 0.5,
               bn_momentum: float = 0.9,
               bn_epsilon: float = 1e-3):
    """Args:

      num_classes: output classes.
      input_shape: (frames, bins); the bins are the input channels.
      rngs: initialisation keys.
      width_multiplier: k, scales every channel count.
      channels: output channels of each stage (before k).
      stem_channels: channels of the first conv (before k).
      blocks_per_stage: 1 for TC-ResNet8, 2 for TC-ResNet14.
      kernel_size: temporal kernel of the block convs, frames.
      dropout_rate: before the final fully connected layer.
      bn_momentum: BatchNorm running-average momentum.
      bn_epsilon: BatchNorm epsilon.
    """
    _, bins = input_shape
    width = int(stem_channels * width_multiplier)
    self.stem = layers.Conv(bins, width, (3,), padding='SAME', use_bias=False,
                         rngs=rngs)
    blocks = []
    for base in channels:
      out_channels = int(base * width_multiplier)
      for i in range(blocks_per_stage):
        blocks.append(ResidualBlock(
            width, out_channels, kernel_size=kernel_size,
            stride=2 if i == 0 else 1, bn_momentum=bn_momentum,
            bn_epsilon=bn_epsilon, rngs=rngs))
        width = out_channels
    self.blocks = nnx.List(blocks)
    self.dropout = nnx.Dropout(dropout_rate)
    self.classifier = nnx.Linear(width, num_classes, rngs=rngs)
    self.embedding_size = width

  def __call__(self, features: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Features [B, T, F] -> logits [B, num_classes]."""
    return self.head(self.embed(features), rngs=rngs)

  def embed(self, features: jax.Array) -> jax.Array:
    """Features [B, T, F] -> the pooled features the classifier reads
    (before dropout), [B, embedding_size]."""
    x = self.stem(features)
    for block in self.blocks:
      x = block(x)
    return jnp.mean(x, axis=1)

  def head(self, embedding: jax.Array, *,
           rngs: nnx.Rngs | None = None) -> jax.Array:
    """`embed`'s output -> logits [B, num_classes]."""
    return self.classifier(self.dropout(embedding, rngs=rngs))
