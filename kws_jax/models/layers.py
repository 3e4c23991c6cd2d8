"""Layers shared by the model families.

`DepthwiseConv` exists for speed: XLA's CPU backend runs grouped
convolutions (`feature_group_count = channels`) very slowly, about 25x
slower than the same arithmetic written as a sum of shifted slices times
per-channel weights (measured on a [100, 98, 20, 16] map, 3-tap kernel,
forward + backward). Small KWS networks are mostly depthwise convolutions,
so this decides whether they train in minutes or hours on a CPU. The kernel
has the layout of an `nnx.Conv` with `feature_group_count=channels`
([kh, kw, 1, C]), so the weights can be handed to a real depthwise conv
(e.g. for TFLite's DEPTHWISE_CONV_2D) unchanged.
"""

from __future__ import annotations

import itertools
from typing import Sequence

from flax import nnx
import jax
import jax.numpy as jnp


def _same_padding(size: int, kernel: int, stride: int,
                  dilation: int) -> tuple[int, int]:
  """(before, after) padding of 'SAME' (TF/XLA convention: extra after)."""
  effective = (kernel - 1) * dilation + 1
  out = -(-size // stride)
  total = max((out - 1) * stride + effective - size, 0)
  return total // 2, total - total // 2


class DepthwiseConv(nnx.Module):
  """Depthwise convolution on channels-last maps, as shifted multiply-adds.

  Works for any number of spatial axes (the length of `kernel_size`): for
  2-D maps [B, H, W, C],
  y[b, i, j, c] = sum_{p, q} x_pad[b, i*sh + p*dh, j*sw + q*dw, c]
                  * kernel[p, q, 0, c]  (+ bias[c]).
  """

  def __init__(self,
               channels: int,
               kernel_size: Sequence[int],
               *,
               strides: Sequence[int] | None = None,
               dilation: Sequence[int] | None = None,
               padding: str | Sequence[tuple[int, int]] = 'SAME',
               use_bias: bool = False,
               kernel_init: nnx.Initializer = nnx.initializers.lecun_normal(),
               rngs: nnx.Rngs):
    """Args:

      channels: input = output channels.
      kernel_size: kernel extent per spatial axis, e.g. (kh, kw).
      strides: stride per spatial axis (default 1).
      dilation: kernel dilation per spatial axis (default 1).
      padding: 'SAME', 'VALID' or one (before, after) pair per spatial axis.
      use_bias: add a per-channel bias.
      kernel_init: initializer of the [*kernel_size, 1, C] kernel; fan-in
        is the kernel's spatial size, as for a grouped `nnx.Conv`.
      rngs: initialisation keys.
    """
    rank = len(kernel_size)
    self.kernel_size = tuple(int(k) for k in kernel_size)
    self.strides = tuple(int(s) for s in (strides or (1,) * rank))
    self.dilation = tuple(int(d) for d in (dilation or (1,) * rank))
    if len(self.strides) != rank or len(self.dilation) != rank:
      raise ValueError('kernel_size, strides and dilation need one entry per '
                       'spatial axis.')
    self.padding = (padding if isinstance(padding, str) else
                    tuple(tuple(int(p) for p in pair) for pair in padding))
    self.kernel = nnx.Param(kernel_init(
        rngs.params(), (*self.kernel_size, 1, channels), jnp.float32))
    self.bias = (nnx.Param(jnp.zeros((channels,), jnp.float32))
                 if use_bias else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, *spatial, C] -> [B, *spatial', C] ('SAME': ceil(size / stride))."""
    spatial = x.shape[1:-1]
    if len(spatial) != len(self.kernel_size):
      raise ValueError(f'Expected {len(self.kernel_size)} spatial axes, got '
                       f'input shape {x.shape}.')
    if self.padding == 'SAME':
      pads = tuple(_same_padding(n, k, s, d) for n, k, s, d in zip(
          spatial, self.kernel_size, self.strides, self.dilation))
    elif self.padding == 'VALID':
      pads = ((0, 0),) * len(spatial)
    else:
      pads = self.padding
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    out = [(n - (k - 1) * d - 1) // s + 1 for n, k, s, d in zip(
        x.shape[1:-1], self.kernel_size, self.strides, self.dilation)]
    kernel = self.kernel[...]
    y = None
    for taps in itertools.product(*(range(k) for k in self.kernel_size)):
      window = tuple(
          slice(t * d, t * d + (o - 1) * s + 1, s)
          for t, d, o, s in zip(taps, self.dilation, out, self.strides))
      term = x[(slice(None), *window)] * kernel[(*taps, 0)]
      y = term if y is None else y + term
    if self.bias is not None:
      y = y + self.bias[...]
    return y


class Pointwise(nnx.Module):
  """A 1x1 convolution on [..., C_in] maps, as one 2-D matmul.

  Flattening the leading axes first keeps it a plain matmul for XLA's CPU
  backend (faster than a 1x1 `nnx.Conv`) and a FULLY_CONNECTED op for the
  TFLite converter, which rejects some 4-D `dot_general`s (e.g. on
  [B, T, 1, C] maps: "tfl.batch_matmul op found invalid output rank").
  """

  def __init__(self,
               in_features: int,
               out_features: int,
               *,
               use_bias: bool = False,
               kernel_init: nnx.Initializer = nnx.initializers.lecun_normal(),
               rngs: nnx.Rngs):
    """Args:

      in_features: input channels.
      out_features: output channels.
      use_bias: add a per-channel bias.
      kernel_init: initializer of the [C_in, C_out] kernel.
      rngs: initialisation keys.
    """
    self.kernel = nnx.Param(kernel_init(rngs.params(),
                                        (in_features, out_features),
                                        jnp.float32))
    self.bias = (nnx.Param(jnp.zeros((out_features,), jnp.float32))
                 if use_bias else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [..., C_in] -> [..., C_out]."""
    kernel = self.kernel[...]
    y = x.reshape(-1, kernel.shape[0]) @ kernel
    if self.bias is not None:
      y = y + self.bias[...]
    return y.reshape(*x.shape[:-1], kernel.shape[1])
