"""BC-ResNet: broadcasted residual learning (Kim et al., Interspeech 2021).

"Broadcasted Residual Learning for Efficient Keyword Spotting",
arXiv:2106.04140. The network keeps a 2-D (time x frequency) feature map but
does most of its work in 1-D: each block runs a frequency-depthwise conv on
the 2-D map, averages over frequency, runs a temporal depthwise conv and a
pointwise conv on the 1-D result, and broadcasts that back onto the 2-D map
as a residual. Features are [B, T, F]; maps are NHWC [B, T, F, C].

Depthwise convs are `layers.DepthwiseConv` (shifted multiply-adds, far faster
than grouped convs on XLA's CPU backend) and 1x1 convs are
`layers.Pointwise` (one matmul); the arithmetic is the paper's.

Layout for scale s (channels rounded down to integers), 98 x 40 log-mel:

  input conv 5x5, stride 2 in frequency, 16s       -> [T, 20, 16s]  BN ReLU
  stage 1: 2 blocks,  8s channels, time dilation 1 -> [T, 20,  8s]
  stage 2: 2 blocks, 12s channels, dilation 2, first block stride 2 in
           frequency                               -> [T, 10, 12s]
  stage 3: 4 blocks, 16s channels, dilation 4, stride 2 in frequency
                                                   -> [T,  5, 16s]
  stage 4: 4 blocks, 20s channels, dilation 8      -> [T,  5, 20s]
  head: depthwise conv 5 x (all frequency bins), pointwise 32s, BN ReLU,
        average over time, pointwise to the classes.

The first block of a stage whose channel count changes is a *transition*
block (1x1 conv + BN + ReLU first, no identity shortcut); the others are
*normal* blocks (identity shortcut). Channel dropout follows each block's
pointwise conv. Parameters (98 x 40 input, 12 classes) and estimated
multiply-adds per 1-s clip (backbone only):

  scale    params   multiply-adds   paper (params)
  1         9.2k        3.0M          9.2k
  1.5      17.2k        5.4M
  2        27.3k        8.3M
  3        54.2k       15.9M           54k
  6         188k       52.5M
  8         321k       88.3M          321k
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from kws_jax.models import layers

# Per stage: blocks, base channels (times scale), time dilation, frequency
# stride of the stage's first block.
STAGES = ((2, 8, 1, 1), (2, 12, 2, 2), (4, 16, 4, 2), (4, 20, 8, 1))
STEM_CHANNELS = 16
HEAD_CHANNELS = 32


def largest_divisor_at_most(n: int, limit: int) -> int:
  """Largest d <= limit that divides n (1 at worst)."""
  for d in range(min(n, max(limit, 1)), 0, -1):
    if n % d == 0:
      return d
  return 1


class SubSpectralNorm(nnx.Module):
  """BatchNorm with separate statistics for each of `sub_bands` frequency bands.

  (Chang et al., "SubSpectral Normalization for Neural Audio Data
  Processing", 2021.) The frequency axis is cut into `sub_bands` equal bands
  and each (band, channel) pair is normalised on its own, with its own scale
  and bias. When the number of bins is not divisible by `sub_bands`, the
  largest divisor of it below `sub_bands` is used instead (1 is plain
  BatchNorm).

  Written out rather than wrapping `nnx.BatchNorm` on a transposed map: the
  transpose, fused with the shifted-slice convolution before it, made XLA's
  CPU code about 6x slower. Follows `model.train()` / `model.eval()` through
  `use_running_average`, like `nnx.BatchNorm`.
  """

  def __init__(self, channels: int, bins: int, sub_bands: int, *,
               momentum: float, epsilon: float, rngs: nnx.Rngs):
    del rngs  # Deterministic initialisation.
    self.sub_bands = largest_divisor_at_most(bins, sub_bands)
    self.momentum = momentum
    self.epsilon = epsilon
    self.use_running_average = False
    shape = (self.sub_bands, 1, channels)
    self.scale = nnx.Param(jnp.ones(shape, jnp.float32))
    self.bias = nnx.Param(jnp.zeros(shape, jnp.float32))
    self.mean = nnx.BatchStat(jnp.zeros(shape, jnp.float32))
    self.var = nnx.BatchStat(jnp.ones(shape, jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, T, F, C] -> normalised x of the same shape."""
    b, t, f, c = x.shape
    y = x.reshape(b, t, self.sub_bands, f // self.sub_bands, c)
    if self.use_running_average:
      mean, var = self.mean[...], self.var[...]
    else:
      mean = jnp.mean(y, axis=(0, 1))  # [S, F/S, C] -> reduce F/S below.
      mean = jnp.mean(mean, axis=1, keepdims=True)
      var = jnp.mean(jnp.square(y - mean), axis=(0, 1, 3), keepdims=True)[0, 0]
      self.mean[...] = (self.momentum * self.mean[...] +
                        (1.0 - self.momentum) * jax.lax.stop_gradient(mean))
      self.var[...] = (self.momentum * self.var[...] +
                       (1.0 - self.momentum) * jax.lax.stop_gradient(var))
    y = (y - mean) * (jax.lax.rsqrt(var + self.epsilon) * self.scale[...])
    return (y + self.bias[...]).reshape(b, t, f, c)


class BCResBlock(nnx.Module):
  """One broadcasted-residual block on maps [B, T, F, C]."""

  def __init__(self, in_channels: int, out_channels: int, bins: int, *,
               freq_stride: int, dilation: int, sub_bands: int,
               dropout_rate: float, bn_momentum: float, bn_epsilon: float,
               rngs: nnx.Rngs):
    """Args:

      in_channels: input channels.
      out_channels: output channels; if different, a transition block.
      bins: frequency bins of the input map.
      freq_stride: stride of the frequency-depthwise conv.
      dilation: time dilation of the temporal depthwise conv.
      sub_bands: SubSpectralNorm bands.
      dropout_rate: channel dropout after the pointwise conv.
      bn_momentum: BatchNorm running-average momentum.
      bn_epsilon: BatchNorm epsilon.
      rngs: initialisation keys.
    """
    self.transition = in_channels != out_channels
    bn = dict(momentum=bn_momentum, epsilon=bn_epsilon, rngs=rngs)
    if self.transition:
      self.expand = layers.Pointwise(in_channels, out_channels, rngs=rngs)
      self.expand_norm = nnx.BatchNorm(out_channels, **bn)
    else:
      self.expand = None
      self.expand_norm = None
    # f2: frequency-depthwise conv (3 bins) + SubSpectralNorm.
    self.freq_conv = layers.DepthwiseConv(out_channels, (1, 3),
                                          strides=(1, freq_stride), rngs=rngs)
    out_bins = -(-bins // freq_stride)
    self.freq_norm = SubSpectralNorm(out_channels, out_bins, sub_bands, **bn)
    # f1: temporal depthwise conv (3 frames, dilated) + BN + swish +
    # pointwise conv + channel dropout, on the frequency average. It runs on
    # [B, T, C] rather than [B, T, 1, C]: the TFLite converter fails on a
    # matmul over [1, T, 1, C] ("tfl.batch_matmul ... invalid output rank").
    self.time_conv = layers.DepthwiseConv(out_channels, (3,),
                                          dilation=(dilation,), rngs=rngs)
    self.time_norm = nnx.BatchNorm(out_channels, **bn)
    self.pointwise = layers.Pointwise(out_channels, out_channels, rngs=rngs)
    # Spatial dropout (whole channels per example), as Dropout2d in the
    # paper's code.
    self.dropout = nnx.Dropout(dropout_rate, broadcast_dims=(1,))

  def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None) -> jax.Array:
    """x [B, T, F, C_in] -> [B, T, F / freq_stride, C_out]."""
    shortcut = x
    if self.transition:
      x = jax.nn.relu(self.expand_norm(self.expand(x)))
    x2d = self.freq_norm(self.freq_conv(x))
    x1d = jnp.mean(x2d, axis=2)  # [B, T, C]
    x1d = jax.nn.swish(self.time_norm(self.time_conv(x1d)))
    x1d = self.dropout(self.pointwise(x1d), rngs=rngs)
    out = x2d + x1d[:, :, None, :]  # Broadcast over frequency.
    if not self.transition:
      out = out + shortcut
    return jax.nn.relu(out)


class Model(nnx.Module):
  """BC-ResNet-`scale` for features [B, T, F] (log-mel in the paper)."""

  def __init__(self,
               *,
               num_classes: int,
               input_shape: tuple[int, int],
               rngs: nnx.Rngs,
               scale: float = 1,
               sub_bands: int = 5,
               dropout_rate: float = 0.1,
               bn_momentum: float = 0.9,
               bn_epsilon: float = 1e-5):
    """Args:

      num_classes: output classes.
      input_shape: (frames, bins).
      rngs: initialisation keys.
      scale: width multiplier (the paper uses 1, 1.5, 2, 3, 6, 8).
      sub_bands: SubSpectralNorm frequency bands (5 in the paper).
      dropout_rate: channel dropout in every block.
      bn_momentum: BatchNorm running-average momentum (0.9 = PyTorch's 0.1).
      bn_epsilon: BatchNorm epsilon.
    """
    _, bins = input_shape
    bn = dict(momentum=bn_momentum, epsilon=bn_epsilon, rngs=rngs)
    stem_channels = int(STEM_CHANNELS * scale)
    self.stem = layers.Conv(1, stem_channels, (5, 5), strides=(1, 2),
                         padding='SAME', use_bias=False, rngs=rngs)
    self.stem_norm = nnx.BatchNorm(stem_channels, **bn)
    bins = -(-bins // 2)
    blocks = []
    channels = stem_channels
    for num_blocks, base, dilation, stride in STAGES:
      out_channels = int(base * scale)
      for i in range(num_blocks):
        freq_stride = stride if i == 0 else 1
        blocks.append(BCResBlock(
            channels, out_channels, bins, freq_stride=freq_stride,
            dilation=dilation, sub_bands=sub_bands, dropout_rate=dropout_rate,
            bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, rngs=rngs))
        bins = -(-bins // freq_stride)
        channels = out_channels
    self.blocks = nnx.List(blocks)
    # Head: a depthwise conv over 5 frames and all remaining bins (5 for 40
    # input bins, as in the paper) collapses frequency.
    self.head_depthwise = layers.DepthwiseConv(
        channels, (5, bins), padding=((2, 2), (0, 0)), rngs=rngs)
    head_channels = int(HEAD_CHANNELS * scale)
    self.head_pointwise = layers.Pointwise(channels, head_channels,
                                           rngs=rngs)
    self.head_norm = nnx.BatchNorm(head_channels, **bn)
    self.classifier = nnx.Linear(head_channels, num_classes, rngs=rngs)

  def __call__(self, features: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Features [B, T, F] -> logits [B, num_classes]."""
    x = jax.nn.relu(self.stem_norm(self.stem(features[..., None])))
    for block in self.blocks:
      x = block(x, rngs=rngs)
    x = self.head_depthwise(x)[:, :, 0, :]  # [B, T, C]
    x = jax.nn.relu(self.head_norm(self.head_pointwise(x)))
    return self.classifier(jnp.mean(x, axis=1))
