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

`max_pool` and `Dropout` exist for the same reason and are used by the
tutorial's family (`models/tutorial.py`; see their docstrings).

`Conv` is `nnx.Conv` with the same parameters and results, whose 2-D (and
1-D) float32 convolutions run through oneDNN (`models/onednn.py`) inside
`convolution_library('onednn')`, bias and its gradient included: the
library TensorFlow's CPU kernels use. The training step enters it when
`config.train_convolutions` is 'onednn' (`configs/conv.py`); evaluation
and the exports use XLA's convolutions (TFLite builtins). On this
project's 2-core AVX-512 CPU the tutorial `conv` model's training step in
`benchmarks/peer_speed.py` went from 1.39 times TensorFlow's (684
against 491 ms, 2026-12-05) to 0.92-0.93 (394 against 424 ms,
2026-12-06; the README's speed table).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
from typing import Iterator, Sequence

from flax import nnx
from flax.nnx.nn import dtypes
from flax.nnx.nn import linear
import jax
from jax import lax
import jax.numpy as jnp

from kws_jax.models import onednn

CONVOLUTION_LIBRARIES = ('xla', 'onednn')
_library = contextvars.ContextVar('convolution_library', default='xla')


@contextlib.contextmanager
def convolution_library(name: str) -> Iterator[None]:
  """`Conv`s traced inside run through library `name`: 'xla' (XLA's own
  convolutions) or 'onednn' (oneDNN's, on a CPU backend; elsewhere XLA's,
  which hand them to the device's libraries)."""
  if name not in CONVOLUTION_LIBRARIES:
    raise ValueError(f'Convolution library {name!r}; choose one of '
                     f'{CONVOLUTION_LIBRARIES}.')
  token = _library.set(name)
  try:
    yield
  finally:
    _library.reset(token)


class Conv(nnx.Conv):
  """`nnx.Conv` that runs through oneDNN inside `convolution_library`.

  Takes oneDNN's path for 1-D and 2-D float32 convolutions with one batch
  axis, no dilation or groups or mask, zero padding ('SAME', 'VALID' or
  explicit, not negative) and nnx's own convolution and dtype functions,
  on one CPU device; anything else, and everything outside the context, is
  `nnx.Conv`'s own call. (On several devices XLA cannot split a custom
  call over the batch: it would gather the whole batch on each device.)
  """

  def _onednn_padding(self, inputs: jax.Array, out_sharding
                      ) -> list[tuple[int, int]] | None:
    """The explicit padding of oneDNN's path, or None where it does not
    apply."""
    rank = len(self.kernel_size)
    ones = (1,) * rank
    if not (_library.get() == 'onednn' and jax.default_backend() == 'cpu'
            and jax.device_count() == 1
            and rank in (1, 2) and inputs.ndim == rank + 2
            and out_sharding is None and self.mask is None
            and self.feature_group_count == 1
            and self._per_axis(self.input_dilation) == ones
            and self._per_axis(self.kernel_dilation) == ones
            and inputs.dtype == jnp.float32
            and self.param_dtype == jnp.float32
            and self.dtype in (None, jnp.float32)
            and self.preferred_element_type is None
            and self.precision is None
            and self.conv_general_dilated is lax.conv_general_dilated
            and self.promote_dtype is dtypes.promote_dtype):
      return None
    padding = linear.canonicalize_padding(self.padding, rank)
    if isinstance(padding, str):
      padding = padding.upper()
    if padding in ('SAME', 'VALID'):
      padding = lax.padtype_to_pads(inputs.shape[1:-1], self.kernel_size,
                                    self._per_axis(self.strides), padding)
    elif isinstance(padding, str):  # CIRCULAR, REFLECT, CAUSAL.
      return None
    padding = [tuple(int(p) for p in pair) for pair in padding]
    if any(p < 0 for pair in padding for p in pair) or any(
        size + before + after < kernel for size, (before, after), kernel in
        zip(inputs.shape[1:-1], padding, self.kernel_size)):
      return None  # Negative padding, or no output: XLA's to handle.
    return padding

  def _per_axis(self, value) -> tuple[int, ...]:
    """A stride or dilation setting per spatial axis, as nnx.Conv reads it
    (None or an int: the same on every axis)."""
    value = 1 if value is None else value
    return ((value,) * len(self.kernel_size) if isinstance(value, int)
            else tuple(value))

  def __call__(self, inputs: jax.Array, out_sharding=None) -> jax.Array:
    padding = self._onednn_padding(inputs, out_sharding)
    if padding is None:
      return super().__call__(inputs, out_sharding)
    strides, kernel = self._per_axis(self.strides), self.kernel[...]
    one_d = len(self.kernel_size) == 1
    if one_d:  # [B, T, C] as [B, T, 1, C].
      inputs, kernel = inputs[:, :, None], kernel[:, None]
      strides, padding = (*strides, 1), [*padding, (0, 0)]
    bias = (self.bias[...] if self.bias is not None else
            jnp.zeros((self.out_features,), jnp.float32))
    y = onednn.conv(inputs, kernel, bias, tuple(strides),
                    tuple(tuple(pair) for pair in padding))
    return y[:, :, 0] if one_d else y


Pads = tuple[tuple[int, int], tuple[int, int]]


def _pool_pads(shape: Sequence[int], window: tuple[int, int]) -> Pads:
  """'SAME' padding (TF/XLA convention: the extra after) of a pool whose
  stride is its window."""
  return tuple(lax.padtype_to_pads(shape[1:3], window, window, 'SAME'))


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


def mask_bits(rate: float) -> int:
  """Bits of one uniform that `Dropout` draws per element for `rate`.

  The fewest of 1, 2, 4 and 8 that express the rate exactly (0.5: one bit,
  0.25 or 0.75: two), else 16 (the rate resolved to 1/65536).
  """
  for bits in (1, 2, 4, 8):
    if float(rate * (1 << bits)).is_integer():
      return bits
  return 16


class Dropout(nnx.Dropout):
  """`nnx.Dropout` whose mask costs as few random bits as its rate needs.

  nnx.Dropout draws one 32-bit word per element; here each word is cut
  into uniforms of `mask_bits(rate)` bits (one bit for the tutorial's 0.5,
  16 for a rate like 0.1), and kept values are scaled by the keep
  probability that resolution gives. On the tutorial `conv` model's
  [100, 98, 40, 64] map the mask of rate 0.5 took 27 ms where 16 bits a
  value took 194 ms and nnx's 32 bits 319 ms (one-off profile, this
  project's 2-core AVX-512 CPU, 2026-12-05); the `conv` training step of
  benchmarks/train_steps.py went from 0.91 s to 0.76-0.78 s. Eval mode,
  the rates 0 and 1, broadcast masks and missing arguments take
  nnx.Dropout's own path (and its error messages).
  The masks differ from nnx.Dropout's for the same key, so only the
  tutorial family uses it: the other families' published figures were
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
    bits = mask_bits(self.rate)
    levels, per_word = 1 << bits, 32 // bits
    # The uniforms of a word lie along the last axis (lowest bits first),
    # so the batch axes of the mask are those of the input.
    *lead, last = inputs.shape
    words = jax.random.bits(key, (*lead, -(-last // per_word)), jnp.uint32)
    shifts = jnp.arange(per_word, dtype=jnp.uint32) * bits
    uniform = ((words[..., None] >> shifts) & jnp.uint32(levels - 1)
               ).reshape(*lead, -1)[..., :last]
    threshold = min(round(self.rate * levels), levels - 1)
    keep = uniform >= jnp.uint32(threshold)
    return jnp.where(keep, inputs / ((levels - threshold) / levels), 0.0)


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
      # A dilated kernel covers (k - 1) * d + 1 samples.
      pads = tuple(lax.padtype_to_pads(
          spatial, [(k - 1) * d + 1 for k, d in zip(self.kernel_size,
                                                     self.dilation)],
          self.strides, 'SAME'))
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
