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

`conv_general_dilated`, `max_pool` and `Dropout` exist for the same reason
and are used by the tutorial's family (`models/tutorial.py`): the first is
what its `nnx.Conv`s call, and gives stride-1 convolutions a gradient made
of matrix products, which XLA's CPU backend runs several times faster than
its own convolution gradients (see the docstrings).
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Sequence

from flax import nnx
import jax
from jax import lax
import jax.numpy as jnp


def _same_padding(size: int, kernel: int, stride: int,
                  dilation: int) -> tuple[int, int]:
  """(before, after) padding of 'SAME' (TF/XLA convention: extra after)."""
  effective = (kernel - 1) * dilation + 1
  out = -(-size // stride)
  total = max((out - 1) * stride + effective - size, 0)
  return total // 2, total - total // 2


Pads = tuple[tuple[int, int], tuple[int, int]]
_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _pad_spatial(x: jax.Array, pads: Pads) -> jax.Array:
  """Zero-pads (or, for negative pads, crops) the two spatial axes of NHWC."""
  return lax.pad(x, jnp.zeros((), x.dtype),
                 ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))


def _correlate(x: jax.Array, w: jax.Array, pads: Pads) -> jax.Array:
  """Stride-1 correlation [B, H, W, Ci] * [kh, kw, Ci, Co] as one matmul.

  Two equal formulations; the one that materialises fewer floats is used:
  im2col (every tap a channel, one [.., kh*kw*Ci] x [kh*kw*Ci, Co] product)
  when the taps are few (a 1-channel first layer), otherwise the width taps
  as channels times a [kw*Ci, kh*Co] matrix, then a sum of kh row-shifted
  slices of the product (a 64-channel layer: 3x fewer floats than im2col).
  """
  kh, kw, ci, co = w.shape
  xp = _pad_spatial(x, pads)
  hp, wp = xp.shape[1], xp.shape[2]
  ho, wo = hp - kh + 1, wp - kw + 1
  if kh * kw * ci * ho <= (kw * ci + kh * co) * hp:
    patches = jnp.concatenate(
        [xp[:, i:i + ho, j:j + wo] for i in range(kh) for j in range(kw)],
        axis=-1)
    return jnp.einsum('bhwk,kc->bhwc', patches, w.reshape(kh * kw * ci, co))
  columns = jnp.concatenate([xp[:, :, j:j + wo] for j in range(kw)], axis=-1)
  rows = jnp.einsum('bhwk,kc->bhwc', columns,
                    w.transpose(1, 2, 0, 3).reshape(kw * ci, kh * co))
  return sum(rows[:, i:i + ho, :, i * co:(i + 1) * co] for i in range(kh))


def _kernel_gradient(x: jax.Array, g: jax.Array, kernel: tuple[int, int],
                     pads: Pads) -> jax.Array:
  """d(loss)/d(kernel) [kh, kw, Ci, Co] of `_conv2d`, g = d(loss)/d(output).

  dW[i, j] = sum over b, h, w of x_pad[b, h + i, w + j]^T g[b, h, w]: one
  matmul contracting the batch and positions, either over im2col patches of
  x, or (fewer floats for wide layers) over x with its height taps as
  channels against g placed at each of the kw width offsets.
  """
  kh, kw = kernel
  ci, co = x.shape[-1], g.shape[-1]
  xp = _pad_spatial(x, pads)
  ho, wo = g.shape[1], g.shape[2]
  wp = xp.shape[2]
  if kh * kw * ci * wo <= (kh * ci + kw * co) * wp:
    # Taps as the leading axis: for one input channel the patches are then
    # already the [taps, positions] matrix of the product (no transpose).
    patches = jnp.stack(
        [xp[:, i:i + ho, j:j + wo] for i in range(kh) for j in range(kw)])
    return jnp.einsum('tbhwi,bhwo->tio', patches, g).reshape(kh, kw, ci, co)
  rows = jnp.concatenate([xp[:, i:i + ho] for i in range(kh)], axis=-1)
  placed = jnp.concatenate(
      [jnp.pad(g, ((0, 0), (0, 0), (j, wp - wo - j), (0, 0)))
       for j in range(kw)], axis=-1)
  dw = jnp.einsum('bhwk,bhwc->kc', rows, placed)
  return dw.reshape(kh, ci, kw, co).transpose(0, 2, 1, 3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv2d(x: jax.Array, w: jax.Array, pads: Pads) -> jax.Array:
  """Stride-1 NHWC/HWIO convolution; XLA's own op outside differentiation,
  so exported models keep a plain CONV_2D."""
  return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=_NHWC)


def _conv2d_forward(x: jax.Array, w: jax.Array,
                    pads: Pads) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  return _conv2d(x, w, pads), (x, w)


def _conv2d_backward(pads: Pads, residuals: tuple[jax.Array, jax.Array],
                     g: jax.Array) -> tuple[jax.Array, jax.Array]:
  x, w = residuals
  kh, kw = w.shape[:2]
  # The input gradient is the correlation of g with the kernel flipped in
  # space and transposed in channels; stride 1 mirrors the padding.
  flipped = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  mirrored = ((kh - 1 - pads[0][0], kh - 1 - pads[0][1]),
              (kw - 1 - pads[1][0], kw - 1 - pads[1][1]))
  return (_correlate(g, flipped, mirrored),
          _kernel_gradient(x, g, (kh, kw), pads))


_conv2d.defvjp(_conv2d_forward, _conv2d_backward)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array,
                         window_strides: Sequence[int],
                         padding: str | Sequence[tuple[int, int]],
                         lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None,
                         feature_group_count: int = 1,
                         precision: Any = None,
                         **kwargs: Any) -> jax.Array:
  """`lax.conv_general_dilated` with a fast gradient for stride-1 convs.

  Pass it as `nnx.Conv(..., conv_general_dilated=conv_general_dilated)`:
  parameters, checkpoints and the forward pass (the exported graph
  included) stay those of a plain `nnx.Conv`. On the CPU backend, for 2-D
  channels-last convolutions with stride 1, no dilation and no groups, the
  gradient is computed with matrix products (`_correlate`,
  `_kernel_gradient`); all other convolutions, and every convolution on
  other backends, go to `lax.conv_general_dilated` unchanged. Being a
  custom VJP, the fast path has no forward-mode derivative (`jax.jvp`,
  `jax.hessian`); training needs only the reverse mode.

  Why: XLA's CPU backend computes a convolution's kernel gradient as a
  convolution over the batch, which it runs far below the CPU's matmul
  speed. Measured on this project's 2-core CPU (AVX2), batch 100, the
  tutorial `conv` model's second layer ([49, 20, 64] maps, 10x4x64x64
  kernel): kernel gradient 9.6 s -> 0.7-1.0 s, input gradient 1.5 s ->
  0.7-1.1 s; its first layer's kernel gradient 1.1 s -> 0.35 s (profiled
  inside the training step). With `max_pool` and `Dropout` below, the
  training step of `conv` goes from 11.8 s to 4.4-4.9 s, 3-16% slower than
  the same network in TensorFlow was in three runs of
  `python -m benchmarks.peer_speed` (2.8x slower before).
  """
  simple = (
      jax.default_backend() == 'cpu' and lhs.ndim == 4 and
      feature_group_count == 1 and
      all(int(s) == 1 for s in window_strides) and
      all(int(d) == 1 for d in (lhs_dilation or ())) and
      all(int(d) == 1 for d in (rhs_dilation or ())) and
      precision is None and all(v is None for v in kwargs.values()))
  if simple:
    simple = (lax.conv_dimension_numbers(lhs.shape, rhs.shape,
                                         dimension_numbers) ==
              lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))
  if not simple:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, precision=precision,
        **kwargs)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], (1, 1),
                                  padding)
  return _conv2d(lhs, rhs, tuple((int(lo), int(hi)) for lo, hi in padding))


def _pool_pads(shape: Sequence[int], window: tuple[int, int]) -> Pads:
  return tuple(_same_padding(n, k, k, 1) for n, k in zip(shape[1:3], window))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool(x: jax.Array, window: tuple[int, int]) -> jax.Array:
  """'SAME' max pool over [B, H, W, C] with stride = window (no overlap).

  The forward pass is `nnx.max_pool`'s (a MAX_POOL_2D in TFLite); the
  gradient, which goes to the first maximum of each window as lax's does,
  is a mask over the reshaped windows instead of XLA's select-and-scatter:
  on the tutorial `conv` model's [100, 98, 40, 64] map, 0.67 s -> 0.09 s
  for forward and backward on this project's 2-core CPU. A NaN in a window
  gets no gradient (NaN equals nothing); `check_nans` stops such a run.
  """
  dims = (1, *window, 1)
  return lax.reduce_window(x, -jnp.inf, lax.max, dims, dims,
                           ((0, 0), *_pool_pads(x.shape, window), (0, 0)))


def _max_pool_forward(x: jax.Array, window: tuple[int, int]
                      ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  y = max_pool(x, window)
  return y, (x, y)


def _max_pool_backward(window: tuple[int, int],
                       residuals: tuple[jax.Array, jax.Array],
                       g: jax.Array) -> tuple[jax.Array]:
  x, y = residuals
  (h_lo, h_hi), (w_lo, w_hi) = _pool_pads(x.shape, window)
  kh, kw = window
  b, ho, wo, c = y.shape
  windows = jnp.pad(x, ((0, 0), (h_lo, h_hi), (w_lo, w_hi), (0, 0)),
                    constant_values=-jnp.inf).reshape(b, ho, kh, wo, kw, c)
  taken = jnp.zeros(y.shape, bool)
  rows = []
  for i in range(kh):
    row = []
    for j in range(kw):
      first = (windows[:, :, i, :, j] == y) & ~taken
      taken = taken | first
      row.append(jnp.where(first, g, 0.0))
    rows.append(jnp.stack(row, axis=3))
  grad = jnp.stack(rows, axis=2).reshape(b, ho * kh, wo * kw, c)
  return (grad[:, h_lo:h_lo + x.shape[1], w_lo:w_lo + x.shape[2]],)


max_pool.defvjp(_max_pool_forward, _max_pool_backward)


class Dropout(nnx.Dropout):
  """`nnx.Dropout` whose mask costs half the random numbers.

  nnx.Dropout draws one 32-bit word per element; here each word gives two
  16-bit uniforms (the rate resolved to 1/65536, and the kept values scaled
  by the keep probability that resolution gives). On the tutorial `conv`
  model's [100, 98, 40, 64] map the mask goes from 0.71 s to 0.37 s a step
  on this project's 2-core CPU. Eval mode, the rates 0 and 1, broadcast
  masks and missing arguments take nnx.Dropout's own path (and its error
  messages). The masks differ from nnx.Dropout's for the same key, so only
  the tutorial family uses it: the other families' published figures were
  trained with nnx.Dropout, and keep it.
  """

  def __call__(self, inputs: jax.Array, *, deterministic: bool | None = None,
               rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None
               ) -> jax.Array:
    if deterministic is None:
      deterministic = self.deterministic
    if rngs is None:
      rngs = self.rngs
    if (deterministic is None or deterministic or rngs is None or
        self.rate in (0.0, 1.0) or self.broadcast_dims or inputs.ndim == 0):
      return super().__call__(inputs, deterministic=deterministic, rngs=rngs)
    if isinstance(rngs, nnx.Rngs):
      key = rngs[self.rng_collection]()
    elif isinstance(rngs, jax.Array):
      key = rngs
    else:
      key = rngs()
    # Two uniforms per word along the last axis, so the batch axes of the
    # mask are those of the input.
    *lead, last = inputs.shape
    words = jax.random.bits(key, (*lead, -(-last // 2)), jnp.uint32)
    uniform = lax.bitcast_convert_type(words, jnp.uint16).reshape(*lead, -1)
    threshold = min(round(self.rate * 65536), 65535)
    keep = uniform[..., :last] >= jnp.uint16(threshold)
    return jnp.where(keep, inputs / ((65536 - threshold) / 65536), 0.0)


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
