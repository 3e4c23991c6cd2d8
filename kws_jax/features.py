"""Pure-JAX audio front end: waveform in, spectral features out.

The front end is the first layer of every exported model, so it only uses
operations that jax2tf + the TFLite converter map to TFLite builtins: strided
slices and reshapes (or a gather) for framing, `rfft` or matrix products for
the spectrum (`DFTS`), elementwise math, `matmul` with
constant matrices and `log`. Every constant (window, mel and DCT matrices) is
computed once in numpy when the `Frontend` is built.

Three feature types (`preprocess`), as in the TF speech_commands tutorial:

* 'mfcc': the tutorial's `audio_ops.mfcc` defaults: magnitude spectrum, 40
  triangular mel channels 20..4000 Hz (each FFT bin split between two
  neighbouring channels), `log(max(x, 1e-12))`, DCT-II scaled by
  sqrt(2 / channels) keeping `feature_bin_count` coefficients.
* 'average': the power spectrum averaged over groups of neighbouring FFT bins.
  The tutorial pools with a fixed width of floor(fft_bins / feature_bin_count)
  and so returns ceil(fft_bins / width) bins (43 for the defaults, not 40);
  here the FFT bins are split into exactly `feature_bin_count` contiguous
  groups of near-equal width covering the whole spectrum, so the output width
  is always `feature_bin_count` (the module contract). No log, like the
  tutorial.
* 'logmel': `log(mel + 1e-6)` of `feature_bin_count` triangular (HTK mel
  scale) bands of the power spectrum, 20 Hz .. sample_rate / 2.
"""

from __future__ import annotations

import dataclasses
import functools
import math

from flax import nnx
import jax
from jax import lax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kws_jax import audio_io

PREPROCESS_TYPES = ('mfcc', 'average', 'logmel')
# How `Frontend.power_spectrum` computes the spectrum; the two agree to
# float32 rounding (tested). 'fft': what XLA runs fastest, for training and
# evaluation in JAX: each frame cut as one contiguous slice (a single
# gather) and `jnp.fft.rfft` over at most `_FFT_FRAMES` frames at a time
# (see `Frontend.power_spectrum`). 'matrices': two matrix products and a
# twiddle (`dft_matrices`) after framing by static slices, what TFLite runs
# fastest: its RFFT2D works in double precision, and the 98 frames of a
# clip took 0.54 ms against 0.21-0.24 ms (one-off profiles, one thread,
# this project's AVX-512 CPU, 2026-12-05), so the exports use it; in XLA
# the products were slower (a training batch of 100 clips: 53-72 ms
# against 24-28 ms).
DFTS = ('fft', 'matrices')

# Above this many slices per frame, framing uses one constant gather instead.
_MAX_FRAMING_SLICES = 32
# 'fft' transforms the clips in parts of at most this many frames (25 clips
# of 98; at least one clip a part).
_FFT_FRAMES = 2450


def next_power_of_two(n: int) -> int:
  """Smallest power of two >= n (n >= 1)."""
  return 1 << (int(n) - 1).bit_length()


def num_frames(config: ml_collections.ConfigDict) -> int:
  """Feature frames per clip: `1 + (L - window) // stride` (98 by default)."""
  rate = config.sample_rate
  clip_samples = audio_io.samples_per_clip(rate, config.clip_duration_ms)
  window = audio_io.samples_per_clip(rate, config.window_size_ms)
  stride = audio_io.samples_per_clip(rate, config.window_stride_ms)
  return _frames_for(clip_samples, window, stride)


def _frames_for(num_samples: int, window: int, stride: int) -> int:
  if num_samples < window:
    raise ValueError(f'{num_samples} samples are fewer than one window '
                     f'({window} samples).')
  return 1 + (num_samples - window) // stride


def hertz_to_mel(hz: np.ndarray | float) -> np.ndarray:
  """HTK mel scale: 1127 * ln(1 + f / 700) (f in Hz)."""
  return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def periodic_hann(length: int) -> np.ndarray:
  """Periodic Hann window [length] (what TF's audio_spectrogram uses)."""
  n = np.arange(length, dtype=np.float64)
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def tutorial_mfcc_filterbank(num_fft_bins: int, sample_rate: int,
                             num_channels: int, lower_hz: float,
                             upper_hz: float) -> np.ndarray:
  """Mel weights [num_fft_bins, num_channels] of TF's `audio_ops.mfcc`.

  Channel centres are evenly spaced in mel between `lower_hz` and `upper_hz`
  (num_channels + 1 of them, the last at `upper_hz`). Each FFT bin inside the
  range gives weight w to the channel whose centre lies at or below it and
  1 - w to the next one, w falling linearly in mel between the two centres;
  bins outside the range are unused.

  Args:
    num_fft_bins: rfft bins, fft_length // 2 + 1.
    sample_rate: Hz.
    num_channels: mel channels.
    lower_hz: lowest frequency used, Hz.
    upper_hz: highest frequency used, Hz.

  Returns:
    float64 weights to apply to the *magnitude* spectrum.
  """
  mel_low, mel_high = hertz_to_mel(lower_hz), hertz_to_mel(upper_hz)
  spacing = (mel_high - mel_low) / (num_channels + 1)
  centres = mel_low + spacing * np.arange(1, num_channels + 2)
  hz_per_bin = 0.5 * sample_rate / (num_fft_bins - 1)
  start = int(1.5 + lower_hz / hz_per_bin)
  end = int(upper_hz / hz_per_bin)

  weights = np.zeros((num_fft_bins, num_channels))
  for i in range(max(start, 0), min(end, num_fft_bins - 1) + 1):
    mel = hertz_to_mel(i * hz_per_bin)
    # Index of the last channel whose centre is below this bin (may be -1).
    band = int(np.sum(centres[:num_channels] < mel)) - 1
    if band >= 0:
      w = (centres[band + 1] - mel) / (centres[band + 1] - centres[band])
      weights[i, band] = w
    else:
      w = (centres[0] - mel) / (centres[0] - mel_low)
    if band + 1 < num_channels:
      weights[i, band + 1] = 1.0 - w
  return weights


def triangular_mel_filterbank(num_fft_bins: int, sample_rate: int,
                              num_bands: int, lower_hz: float,
                              upper_hz: float) -> np.ndarray:
  """Triangular mel weights [num_fft_bins, num_bands] for a power spectrum.

  Band edges are evenly spaced on the HTK mel scale; each band rises linearly
  (in mel) from its lower edge to its centre and falls to its upper edge. The
  DC bin is left out. This is the construction of
  `tf.signal.linear_to_mel_weight_matrix`.
  """
  bin_hz = np.linspace(0.0, sample_rate / 2.0, num_fft_bins)
  bin_mel = hertz_to_mel(bin_hz)[:, None]
  edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz),
                      num_bands + 2)
  lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
  rising = (bin_mel - lower) / (centre - lower)
  falling = (upper - bin_mel) / (upper - centre)
  weights = np.maximum(0.0, np.minimum(rising, falling))
  weights[0, :] = 0.0
  return weights


def average_pooling_matrix(num_fft_bins: int, num_groups: int) -> np.ndarray:
  """[num_fft_bins, num_groups] matrix averaging contiguous groups of bins.

  Groups have near-equal widths (they differ by at most one bin) and together
  cover every bin.
  """
  if num_groups > num_fft_bins:
    raise ValueError(f"'average' cannot make {num_groups} bins out of "
                     f'{num_fft_bins} FFT bins.')
  bounds = np.round(np.linspace(0, num_fft_bins, num_groups + 1)).astype(int)
  matrix = np.zeros((num_fft_bins, num_groups))
  for g in range(num_groups):
    matrix[bounds[g]:bounds[g + 1], g] = 1.0 / (bounds[g + 1] - bounds[g])
  return matrix


def dct_matrix(num_inputs: int, num_outputs: int) -> np.ndarray:
  """DCT-II as a [num_inputs, num_outputs] matrix, like TF's mfcc op.

  `out[k] = sqrt(2 / N) * sum_n x[n] cos(pi / N * (n + 0.5) * k)`; unlike the
  orthonormal DCT, coefficient 0 is not scaled down by sqrt(2).
  """
  n = np.arange(num_inputs)[:, None]
  k = np.arange(num_outputs)[None, :]
  return np.sqrt(2.0 / num_inputs) * np.cos(np.pi / num_inputs * (n + 0.5) * k)


def dft_split(fft_length: int) -> tuple[int, int]:
  """(n1, n2) with n1 * n2 = fft_length, n1 the largest power of two whose
  square is at most fft_length (512: 16 x 32)."""
  n1 = 1 << (fft_length.bit_length() - 1) // 2
  return n1, fft_length // n1


@functools.lru_cache(maxsize=32)
def dft_matrices(window_samples: int, fft_length: int, bins: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The first `bins` of the rfft of a zero-padded frame, as two matrix
  products and a twiddle (`DFTS`).

  One Cooley-Tukey split, fft_length = n1 * n2: sample n = n2 * a + b
  (a < n1, b < n2) and bin k = c + n1 * d (c < n1, d < D), so that
  X[c + n1 d] = sum_b w2^(b d) [W^(b c) sum_a x[n2 a + b] w1^(a c)], with
  W = exp(-2 pi i / fft_length), w1 = W^n2 and w2 = W^n1.

  Returns:
    first: float32 [A, 2 n1]: cos and -sin of 2 pi a c / n1 for the A rows a
      that hold samples (the rest is zero padding).
    twiddle: float32 [2, n1, n2]: cos and -sin of 2 pi b c / fft_length.
    second: float32 [2 n2, 2 D], D = ceil(bins / n1): the n2-point DFT as a
      real matrix from (real, imaginary) parts to (real, imaginary) parts.
  """
  n1, n2 = dft_split(fft_length)
  rows = -(-window_samples // n2)
  d_count = -(-bins // n1)
  angle = 2 * np.pi * np.outer(np.arange(rows), np.arange(n1)) / n1
  first = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1)
  angle = 2 * np.pi * np.outer(np.arange(n1), np.arange(n2)) / fft_length
  twiddle = np.stack([np.cos(angle), -np.sin(angle)])
  angle = 2 * np.pi * np.outer(np.arange(n2), np.arange(d_count)) / n2
  cos, sin = np.cos(angle), -np.sin(angle)
  # (re + i im)(cos + i sin) = (re cos - im sin) + i (re sin + im cos).
  second = np.block([[cos, sin], [-sin, cos]])
  matrices = tuple(m.astype(np.float32) for m in (first, twiddle, second))
  for m in matrices:
    m.setflags(write=False)  # Shared through the cache.
  return matrices


@dataclasses.dataclass(frozen=True, eq=False)
class FrontendTables:
  """The front end's constant numpy arrays.

  NNX treats a numpy array attribute as pytree *data*: it would then show up
  in `nnx.split` next to the parameters (and break the exhaustive
  `nnx.split(model, nnx.Param, nnx.BatchStat)` of the training loop), while
  `nnx.static(array)` is rejected. Wrapped in this (non-pytree, identity
  hashed) holder the arrays are static metadata of the graph: `nnx.split`
  gives no state for the `Frontend`, and under `jit` they are constants.

  Attributes:
    window: float32 [window_samples], periodic Hann.
    projection: float32 [fft_length // 2 + 1, channels]: mel / pooling
      weights applied to the spectrum.
    dct: float32 [channels, feature_bin_count] for 'mfcc', else None.
    used_bins: spectrum bins the projection reads (1 + its last nonzero row;
      'mfcc' stops at 4 kHz: 128 of 257 bins).
  """
  window: np.ndarray
  projection: np.ndarray
  dct: np.ndarray | None
  used_bins: int


@functools.lru_cache(maxsize=32)
def _build_tables(preprocess: str, sample_rate: int, window_samples: int,
                  fft_length: int, feature_bin_count: int, mfcc_channels: int,
                  mfcc_lower_hz: float, mfcc_upper_hz: float,
                  logmel_lower_hz: float,
                  logmel_upper_hz: float) -> FrontendTables:
  """Cached so that front ends built from one config share their tables."""
  num_fft_bins = fft_length // 2 + 1
  dct = None
  if preprocess == 'mfcc':
    projection = tutorial_mfcc_filterbank(num_fft_bins, sample_rate,
                                          mfcc_channels, mfcc_lower_hz,
                                          mfcc_upper_hz)
    dct = dct_matrix(mfcc_channels, feature_bin_count).astype(np.float32)
  elif preprocess == 'average':
    projection = average_pooling_matrix(num_fft_bins, feature_bin_count)
  else:
    projection = triangular_mel_filterbank(num_fft_bins, sample_rate,
                                           feature_bin_count, logmel_lower_hz,
                                           logmel_upper_hz)
  window = periodic_hann(window_samples).astype(np.float32)
  projection = projection.astype(np.float32)
  used_bins = int(np.flatnonzero(np.abs(projection).sum(axis=1)).max()) + 1
  for array in (window, projection, dct):
    if array is not None:
      array.setflags(write=False)  # Shared through the cache.
  return FrontendTables(window=window, projection=projection, dct=dct,
                        used_bins=used_bins)


class Frontend(nnx.Module):
  """Audio [B, L] -> features [B, frames, feature_bin_count]; no parameters.

  `frames = 1 + (L - window_samples) // stride_samples` (98 for 1 s at
  16 kHz with 30 ms windows every 10 ms). Audio is float32 in [-1, 1].
  """

  def __init__(self,
               *,
               sample_rate: int = 16000,
               window_size_ms: float = 30.0,
               window_stride_ms: float = 10.0,
               feature_bin_count: int = 40,
               preprocess: str = 'mfcc',
               mfcc_channels: int = 40,
               mfcc_lower_hz: float = 20.0,
               mfcc_upper_hz: float = 4000.0,
               mfcc_log_floor: float = 1e-12,
               logmel_lower_hz: float = 20.0,
               logmel_upper_hz: float | None = None,
               logmel_log_floor: float = 1e-6):
    """Builds the front end and its constant tables.

    Args:
      sample_rate: Hz.
      window_size_ms: analysis window, ms.
      window_stride_ms: hop between windows, ms.
      feature_bin_count: features per frame.
      preprocess: one of PREPROCESS_TYPES.
      mfcc_channels: mel channels before the DCT (TF mfcc op: 40).
      mfcc_lower_hz: lowest mel channel edge for 'mfcc', Hz (TF: 20).
      mfcc_upper_hz: highest mel channel edge for 'mfcc', Hz (TF: 4000).
      mfcc_log_floor: floor before the log for 'mfcc' (TF: 1e-12).
      logmel_lower_hz: lowest band edge for 'logmel', Hz.
      logmel_upper_hz: highest band edge for 'logmel', Hz; None is Nyquist.
      logmel_log_floor: added before the log for 'logmel'.
    """
    if preprocess not in PREPROCESS_TYPES:
      raise ValueError(f'preprocess must be one of {PREPROCESS_TYPES}, '
                       f'got {preprocess!r}.')
    self.sample_rate = int(sample_rate)
    self.window_samples = audio_io.samples_per_clip(sample_rate,
                                                    window_size_ms)
    self.stride_samples = audio_io.samples_per_clip(sample_rate,
                                                    window_stride_ms)
    if self.window_samples < 1 or self.stride_samples < 1:
      raise ValueError('window_size_ms and window_stride_ms must each be at '
                       'least one sample long.')
    self.fft_length = next_power_of_two(self.window_samples)
    self.feature_bin_count = int(feature_bin_count)
    self.preprocess = preprocess
    nyquist = sample_rate / 2.0
    if logmel_upper_hz is None:
      logmel_upper_hz = nyquist
    if preprocess == 'mfcc':
      if feature_bin_count > mfcc_channels:
        raise ValueError(f"'mfcc' keeps at most mfcc_channels={mfcc_channels} "
                         f'coefficients, got feature_bin_count='
                         f'{feature_bin_count}.')
      if not 0 <= mfcc_lower_hz < mfcc_upper_hz <= nyquist:
        raise ValueError('Need 0 <= mfcc_lower_hz < mfcc_upper_hz <= '
                         f'{nyquist} Hz.')
    if preprocess == 'logmel' and not (
        0 <= logmel_lower_hz < logmel_upper_hz <= nyquist):
      raise ValueError('Need 0 <= logmel_lower_hz < logmel_upper_hz <= '
                       f'{nyquist} Hz.')
    self.mfcc_log_floor = float(mfcc_log_floor)
    self.logmel_log_floor = float(logmel_log_floor)
    self.tables = _build_tables(preprocess, self.sample_rate,
                                self.window_samples, self.fft_length,
                                self.feature_bin_count, int(mfcc_channels),
                                float(mfcc_lower_hz), float(mfcc_upper_hz),
                                float(logmel_lower_hz), float(logmel_upper_hz))

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> Frontend:
    """Builds the front end from the tutorial's config fields."""
    return cls(sample_rate=config.sample_rate,
               window_size_ms=config.window_size_ms,
               window_stride_ms=config.window_stride_ms,
               feature_bin_count=config.feature_bin_count,
               preprocess=config.preprocess)

  def num_frames(self, num_samples: int) -> int:
    """Frames produced for clips of `num_samples` samples."""
    return _frames_for(num_samples, self.window_samples, self.stride_samples)

  def frame(self, audio: jax.Array, dft: str = 'fft') -> jax.Array:
    """Splits audio [B, L] into overlapping frames [B, frames, window].

    For `dft='fft'` (XLA) frame t is the contiguous slice starting at
    sample t * stride, all cut by one gather. For 'matrices' (the exports),
    with g = gcd(window, stride), the audio is cut into chunks of g samples
    and frame t is the window // g consecutive chunks starting at chunk
    t * stride // g; each of those window // g positions is one strided
    slice (3 slices for 30 ms / 10 ms). These are static slices and
    reshapes, which TFLite runs as builtins. When that would need many
    slices (awkward window/stride ratios) a single gather with constant
    indices is used.
    """
    batch, length = audio.shape
    window, stride = self.window_samples, self.stride_samples
    frames = self.num_frames(length)
    if dft == 'fft':
      starts = jnp.arange(frames) * stride
      cut = lambda row: jax.vmap(  # noqa: E731
          lambda start: lax.dynamic_slice(row, (start,), (window,)))(starts)
      return jax.vmap(cut)(audio)
    chunk = math.gcd(window, stride)
    chunks_per_window, chunks_per_stride = window // chunk, stride // chunk
    if chunks_per_window > _MAX_FRAMING_SLICES:
      indices = (np.arange(frames)[:, None] * stride +
                 np.arange(window)[None, :])
      return jnp.take(audio, jnp.asarray(indices, jnp.int32), axis=1)
    used_chunks = (frames - 1) * chunks_per_stride + chunks_per_window
    chunks = audio[:, :used_chunks * chunk].reshape(batch, used_chunks, chunk)
    pieces = [
        chunks[:, k:k + (frames - 1) * chunks_per_stride + 1:chunks_per_stride]
        for k in range(chunks_per_window)
    ]
    # [B, frames, chunks_per_window, chunk] -> [B, frames, window].
    return jnp.stack(pieces, axis=2).reshape(batch, frames, window)

  def power_spectrum(self, audio: jax.Array, dft: str = 'fft',
                     bins: int | None = None) -> jax.Array:
    """Audio [B, L] -> |rfft|^2 [B, frames, bins] (all fft_length // 2 + 1
    bins by default, else the first `bins`).

    Each frame is multiplied by the periodic Hann window and zero-padded at
    the end to `fft_length` (the next power of two) before the transform,
    as TF's `audio_spectrogram` does. Units: squared amplitude of [-1, 1]
    audio. `dft`: one of `DFTS`, how the transform is computed.

    'fft' frames and transforms the clips in parts of at most
    `_FFT_FRAMES` frames. Against framing by slices and one transform of
    every frame, a training step of the default model (`train.train_step`,
    batch 100: four parts of 25 clips) took 5-7% less time and its front
    end alone 61-64% less (20.8 against 7.4-8.2 ms), with the same numbers
    bit for bit (two one-off runs alternating the two in one process, 40
    rounds each, 2-core AVX-512 CPU, 2026-12-05).
    """
    if dft not in DFTS:
      raise ValueError(f'dft must be one of {DFTS}, got {dft!r}.')
    bins = self.fft_length // 2 + 1 if bins is None else int(bins)
    audio = audio.astype(jnp.float32)
    if dft == 'matrices':
      return self._power_by_matrices(
          self.frame(audio, dft) * self.tables.window, bins)
    clips = max(1, _FFT_FRAMES // self.num_frames(audio.shape[1]))
    pad = ((0, 0), (0, 0), (0, self.fft_length - self.window_samples))
    power = []
    for start in range(0, max(audio.shape[0], 1), clips):
      frames = self.frame(audio[start:start + clips]) * self.tables.window
      spectrum = jnp.fft.rfft(jnp.pad(frames, pad), axis=-1)
      # real^2 + imag^2 rather than abs(): both map to TFLite builtins, and
      # this avoids the sqrt we would square again. (TFLite cannot slice
      # complex.)
      power.append((jnp.square(spectrum.real) +
                    jnp.square(spectrum.imag))[..., :bins])
    return jnp.concatenate(power)

  def _power_by_matrices(self, frames: jax.Array, bins: int) -> jax.Array:
    """Windowed frames [B, F, window] -> |rfft|^2 [B, F, bins], as
    `dft_matrices` says."""
    first, twiddle, second = dft_matrices(self.window_samples,
                                          self.fft_length, bins)
    n1, n2 = dft_split(self.fft_length)
    rows, d_count = first.shape[0], second.shape[1] // 2
    batch, num_frames, window = frames.shape
    r = batch * num_frames
    x = jnp.pad(frames, ((0, 0), (0, 0), (0, rows * n2 - window)))
    inner = jnp.einsum('rab,ak->rkb', x.reshape(r, rows, n2), first)
    re, im = inner[:, :n1], inner[:, n1:]  # [R, c, b]
    cos, sin = twiddle
    turned = jnp.concatenate([re * cos - im * sin, re * sin + im * cos],
                             axis=-1)  # [R, c, (re, im) x b]
    outer = turned @ second  # [R, c, (re, im) x d]
    power = (jnp.square(outer[..., :d_count]) +
             jnp.square(outer[..., d_count:]))  # [R, c, d]
    # Bin c + n1 d sits at d * n1 + c once d leads c.
    return power.transpose(0, 2, 1).reshape(r, d_count * n1)[:, :bins].reshape(
        batch, num_frames, bins)

  def __call__(self, audio: jax.Array, dft: str = 'fft') -> jax.Array:
    """Audio float32 [B, L] in [-1, 1] -> features [B, frames, bins].

    `dft`: one of `DFTS` (the exports use 'matrices').
    """
    if audio.ndim != 2:
      raise ValueError(f'Expected audio [batch, samples], got {audio.shape}.')
    # Only the bins the projection reads ('mfcc': up to 4 kHz).
    power = self.power_spectrum(audio, dft, self.tables.used_bins)
    projection = jnp.asarray(self.tables.projection[:self.tables.used_bins])
    if self.preprocess == 'average':
      return power @ projection
    if self.preprocess == 'logmel':
      return jnp.log(power @ projection + self.logmel_log_floor)
    # 'mfcc': TF's mel filterbank works on the magnitude spectrum.
    mel = jnp.sqrt(power) @ projection
    log_mel = jnp.log(jnp.maximum(mel, self.mfcc_log_floor))
    return log_mel @ jnp.asarray(self.tables.dct)
