"""Training-time augmentation in pure JAX (batched, runs inside `jit`).

`augment_waveform` is the TF speech_commands tutorial's waveform
augmentation: a random time shift with zero padding, then background noise
mixed in at a random volume, then clipping to [-1, 1]. `change_speed`
resamples clips to random playback rates, `reverberate` puts clips in
random synthetic rooms, `mixup` blends pairs of examples (Zhang et al.,
2018), and `spec_augment` zeroes random time and frequency bands of the
features (Park et al., 2019).

Everything here draws from an explicit key and has only static shapes, so one
key gives one result and the functions trace once per input shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kws_jax import rooms

SILENCE_INDEX = 0  # Class order is ['_silence_', '_unknown_', *wanted_words].


def time_shift(key: jax.Array, audio: jax.Array,
               max_shift_samples: int) -> jax.Array:
  """Shifts each clip by a uniform integer in [-max, max] samples.

  A positive shift delays the clip (zeros in front, its end cut off), a
  negative one advances it (start cut off, zeros at the end), as the tutorial
  does with pad + slice.

  Args:
    key: PRNG key.
    audio: float32 [B, L].
    max_shift_samples: largest shift either way, samples (static).

  Returns:
    float32 [B, L].
  """
  if max_shift_samples <= 0:
    return audio
  batch, length = audio.shape
  shifts = jax.random.randint(key, (batch, 1), -max_shift_samples,
                              max_shift_samples + 1)
  source = jnp.arange(length)[None, :] - shifts  # [B, L]
  valid = (source >= 0) & (source < length)
  shifted = jnp.take_along_axis(audio, jnp.clip(source, 0, length - 1), axis=1)
  return jnp.where(valid, shifted, 0.0).astype(audio.dtype)


def change_speed(key: jax.Array, audio: jax.Array,
                 max_change: float) -> jax.Array:
  """Plays each clip at a rate uniform in [1 - max_change, 1 + max_change].

  Output sample t reads the input at `c + (t - c) * rate` (c the clip's
  centre) with linear interpolation, and zeros outside the clip: a faster
  rate shortens the word and raises its pitch, about the centre, so a
  centred word stays centred.

  Args:
    key: PRNG key.
    audio: float32 [B, L].
    max_change: largest relative rate change (static), in [0, 1).

  Returns:
    float32 [B, L].
  """
  if max_change <= 0:
    return audio
  batch, length = audio.shape
  rate = jax.random.uniform(key, (batch, 1), minval=1 - max_change,
                            maxval=1 + max_change)
  centre = (length - 1) / 2
  source = centre + (jnp.arange(length)[None, :] - centre) * rate  # [B, L]
  below = jnp.floor(source)
  frac = source - below
  below = below.astype(jnp.int32)

  def read(index):
    inside = (index >= 0) & (index < length)
    values = jnp.take_along_axis(audio, jnp.clip(index, 0, length - 1), axis=1)
    return jnp.where(inside, values, 0.0)

  out = (1 - frac) * read(below) + frac * read(below + 1)
  return out.astype(audio.dtype)


def reverberate(key: jax.Array, audio: jax.Array, probability: float,
                max_rt60_s: float, sample_rate: int) -> jax.Array:
  """Puts a share of the clips in random synthetic rooms.

  A room's impulse response is the direct sound followed by Gaussian noise
  decaying by 60 dB over its reverberation time (uniform in [0.15 s,
  max_rt60_s]), starting 2-10 ms later, at 0-12 dB below the direct
  sound's energy. Each clip is convolved with its room (FFT, the tail
  beyond the clip cut off) and scaled back to its own RMS.

  Args:
    key: PRNG key.
    audio: float32 [B, L].
    probability: share of clips reverberated (static); <= 0 returns `audio`.
    max_rt60_s: longest reverberation time, seconds (static, > 0.15).
    sample_rate: Hz (static).

  Returns:
    float32 [B, L].
  """
  if probability <= 0:
    return audio
  batch, length = audio.shape
  use_key, rt60_key, drr_key, delay_key, noise_key = jax.random.split(key, 5)
  taps = int(max_rt60_s * sample_rate)
  t = jnp.arange(taps)[None, :] / sample_rate  # [1, N]
  rt60 = jax.random.uniform(rt60_key, (batch, 1), minval=rooms.MIN_RT60_S,
                            maxval=max_rt60_s)
  delay = jax.random.uniform(delay_key, (batch, 1), minval=rooms.PREDELAY_S[0],
                             maxval=rooms.PREDELAY_S[1])
  tail = (jax.random.normal(noise_key, (batch, taps)) *
          10.0**(-3.0 * t / rt60) *
          jnp.clip((t - delay) / rooms.FADE_IN_S, 0, 1))
  drr_db = jax.random.uniform(drr_key, (batch, 1), minval=rooms.DRR_DB[0],
                              maxval=rooms.DRR_DB[1])
  tail = tail * jnp.sqrt(10.0**(-drr_db / 10) /
                         jnp.maximum(jnp.sum(tail**2, -1, keepdims=True),
                                     1e-12))
  response = tail.at[:, 0].set(1.0)
  size = 1 << (length + taps - 1).bit_length()  # Linear, not circular.
  wet = jnp.fft.irfft(jnp.fft.rfft(audio, size) * jnp.fft.rfft(response, size),
                      size)[:, :length]
  rms = lambda x: jnp.sqrt(jnp.mean(x**2, -1, keepdims=True))  # noqa: E731
  wet = wet * rms(audio) / jnp.maximum(rms(wet), 1e-9)
  use = jax.random.uniform(use_key, (batch, 1)) < probability
  return jnp.where(use, wet, audio).astype(audio.dtype)


def mixup(key: jax.Array, audio: jax.Array, targets: jax.Array,
          alpha: float) -> tuple[jax.Array, jax.Array]:
  """Mixes each example with another of the batch (mixup).

  Example i is blended with example `(i + 1) mod B` of a random permutation
  of the batch, waveform and target alike, with weight lam ~ Beta(alpha,
  alpha) on its own part, taken as max(lam, 1 - lam) so each example stays
  mostly itself.

  Args:
    key: PRNG key.
    audio: float32 [B, L].
    targets: float32 [B, C] class probabilities.
    alpha: Beta concentration (static); <= 0 returns the inputs unchanged.

  Returns:
    (audio [B, L], targets [B, C]).
  """
  if alpha <= 0:
    return audio, targets
  batch = audio.shape[0]
  lam_key, perm_key = jax.random.split(key)
  lam = jax.random.beta(lam_key, alpha, alpha, (batch, 1))
  lam = jnp.maximum(lam, 1 - lam)
  order = jax.random.permutation(perm_key, batch)
  partner = jnp.zeros(batch, jnp.int32).at[order].set(jnp.roll(order, -1))
  return (lam * audio + (1 - lam) * audio[partner],
          lam * targets + (1 - lam) * targets[partner])


def background_noise(key: jax.Array, background: jax.Array, batch: int,
                     length: int) -> jax.Array:
  """Cuts `batch` random windows of `length` samples out of `background`.

  Args:
    key: PRNG key.
    background: float32 [M], all noise recordings concatenated, M > 0. If
      M < length it is repeated to `length` samples first.
    batch: number of windows B.
    length: samples per window L.

  Returns:
    float32 [B, L], each row starting at a uniform offset in [0, M - L].
  """
  if background.shape[0] < length:
    repeats = -(-length // background.shape[0])
    background = jnp.tile(background, repeats)
  max_offset = background.shape[0] - length
  offsets = jax.random.randint(key, (batch, 1), 0, max_offset + 1)
  return background[offsets + jnp.arange(length)[None, :]]


def augment_waveform(key: jax.Array,
                     audio: jax.Array,
                     label: jax.Array,
                     background: jax.Array,
                     *,
                     time_shift_samples: int,
                     background_frequency: float,
                     background_volume: float,
                     background_rms: tuple[float, float] = (0.0, 0.0),
                     min_snr_db: float = 0.0) -> jax.Array:
  """The tutorial's waveform augmentation for one training batch.

  1. Time shift, uniform in [-time_shift_samples, time_shift_samples],
     zero padded.
  2. Background noise: a random window of `background` times a volume:
     uniform(0, 1) for silence examples (label 0), so silence is always
     noise; for the rest uniform(0, background_volume) with probability
     `background_frequency`, else 0. Skipped when `background` is empty.
     With `background_rms` = (low, high), high > 0, levels are absolute
     instead: each noise window is scaled to unit RMS, then to an RMS drawn
     log-uniformly in [low, high] (silence always; other examples with
     probability `background_frequency`, their noise held at least
     `min_snr_db` below the clip's own RMS), so silence and words both
     span the levels of real rooms.
  3. Clipping to [-1, 1].

  Args:
    key: PRNG key.
    audio: float32 [B, L] in [-1, 1].
    label: int32 [B] class indices (0 is silence).
    background: float32 [M]; M may be 0 (no noise available).
    time_shift_samples: largest shift, samples (static).
    background_frequency: probability in [0, 1] of noise on a non-silence
      example.
    background_volume: largest noise volume for non-silence examples.
    background_rms: (low, high) absolute noise RMS, full scale 1; high 0
      keeps the tutorial's volumes.
    min_snr_db: with `background_rms`, the least clip-to-noise ratio of
      non-silence examples, dB.

  Returns:
    float32 [B, L] in [-1, 1].
  """
  batch, length = audio.shape
  shift_key, offset_key, use_key, volume_key = jax.random.split(key, 4)
  audio = time_shift(shift_key, audio.astype(jnp.float32), time_shift_samples)
  if background.shape[0] > 0:
    noise = background_noise(offset_key, background.astype(jnp.float32),
                             batch, length)
    unit = jax.random.uniform(volume_key, (batch,))
    use_noise = jax.random.uniform(use_key, (batch,)) < background_frequency
    is_silence = label == SILENCE_INDEX
    if background_rms[1] > 0:
      low, high = jnp.log(background_rms[0]), jnp.log(background_rms[1])
      level = jnp.exp(low + unit * (high - low))
      ceiling = _rms(audio) * 10.0 ** (-min_snr_db / 20)
      volume = jnp.where(is_silence, level,
                         jnp.where(use_noise, jnp.minimum(level, ceiling),
                                   0.0)) / jnp.maximum(_rms(noise), 1e-9)
    else:
      volume = jnp.where(is_silence, unit,
                         jnp.where(use_noise, unit * background_volume, 0.0))
    audio = audio + volume[:, None] * noise
  return jnp.clip(audio, -1.0, 1.0)


def _rms(x: jax.Array) -> jax.Array:
  """float32 [B]: the RMS of each row of [B, L]."""
  return jnp.sqrt(jnp.mean(jnp.square(x), axis=-1))


def _band_mask(key: jax.Array, batch: int, size: int, num_masks: int,
               max_width: int) -> jax.Array:
  """Bool [B, size], True inside any of `num_masks` random bands per row.

  Each band has a width uniform in [0, max_width] (capped at `size`) and a
  start uniform over the positions where it fits.
  """
  max_width = min(max_width, size)
  width_key, start_key = jax.random.split(key)
  widths = jax.random.randint(width_key, (batch, num_masks, 1), 0,
                              max_width + 1)
  # Uniform start in [0, size - width]: scale a uniform draw per band.
  starts = jnp.floor(
      jax.random.uniform(start_key, (batch, num_masks, 1)) *
      (size - widths + 1)).astype(jnp.int32)
  positions = jnp.arange(size)[None, None, :]
  inside = (positions >= starts) & (positions < starts + widths)
  return jnp.any(inside, axis=1)


def spec_augment(key: jax.Array,
                 features: jax.Array,
                 *,
                 time_masks: int,
                 time_mask_max: int,
                 freq_masks: int,
                 freq_mask_max: int) -> jax.Array:
  """SpecAugment time and frequency masking (no time warping).

  Args:
    key: PRNG key.
    features: float32 [B, T, F].
    time_masks: number of time bands zeroed per example (0: none).
    time_mask_max: largest time band, frames.
    freq_masks: number of frequency bands zeroed per example (0: none).
    freq_mask_max: largest frequency band, bins.

  Returns:
    float32 [B, T, F], masked entries set to 0. With no masks (or zero
    maximum widths) it returns `features` unchanged.
  """
  batch, frames, bins = features.shape
  time_key, freq_key = jax.random.split(key)
  if time_masks > 0 and time_mask_max > 0:
    mask = _band_mask(time_key, batch, frames, time_masks, time_mask_max)
    features = jnp.where(mask[:, :, None], 0.0, features)
  if freq_masks > 0 and freq_mask_max > 0:
    mask = _band_mask(freq_key, batch, bins, freq_masks, freq_mask_max)
    features = jnp.where(mask[:, None, :], 0.0, features)
  return features
