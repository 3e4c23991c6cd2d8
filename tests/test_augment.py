"""Tests for the JAX augmentation (kws_jax/augment.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kws_jax import augment

LENGTH = 1600  # 0.1 s at 16 kHz keeps the tests quick.


def _batch(batch=6, seed=0):
  rng = np.random.default_rng(seed)
  audio = np.clip(0.3 * rng.standard_normal((batch, LENGTH)), -1, 1)
  audio = audio.astype(np.float32)
  label = np.arange(batch, dtype=np.int32) % 3  # 0 (silence), 1, 2, 0, ...
  background = (0.5 * rng.standard_normal(5 * LENGTH)).astype(np.float32)
  return jnp.asarray(audio), jnp.asarray(label), jnp.asarray(background)


def _augment(key, audio, label, background, shift=160, frequency=0.8,
             volume=0.1):
  return augment.augment_waveform(
      key, audio, label, background, time_shift_samples=shift,
      background_frequency=frequency, background_volume=volume)


def test_shape_dtype_and_determinism():
  audio, label, background = _batch()
  fn = jax.jit(functools.partial(_augment))
  a = fn(jax.random.key(0), audio, label, background)
  b = fn(jax.random.key(0), audio, label, background)
  c = fn(jax.random.key(1), audio, label, background)
  assert a.shape == audio.shape and a.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.allclose(np.asarray(a), np.asarray(c))


def test_no_shift_and_no_volume_is_identity_for_words():
  audio, label, background = _batch()
  words = np.asarray(label) != 0
  for frequency, volume in ((1.0, 0.0), (0.0, 0.5)):
    out = _augment(jax.random.key(2), audio, label, background, shift=0,
                   frequency=frequency, volume=volume)
    np.testing.assert_array_equal(np.asarray(out)[words],
                                  np.asarray(audio)[words])


def test_silence_always_gets_noise():
  _, label, background = _batch()
  silence = jnp.zeros((len(label), LENGTH))
  out = np.asarray(_augment(jax.random.key(3), silence, label, background,
                            shift=0, frequency=0.0, volume=0.0))
  is_silence = np.asarray(label) == 0
  assert np.all(np.abs(out[is_silence]).max(axis=1) > 0)
  assert np.all(out[~is_silence] == 0)


def test_noise_is_a_window_of_the_background_within_the_volume():
  _, label, background = _batch()
  label = jnp.ones_like(label)  # No silence: volume <= background_volume.
  silence = jnp.zeros((len(label), LENGTH))
  out = np.asarray(_augment(jax.random.key(4), silence, label, background,
                            shift=0, frequency=1.0, volume=0.1))
  bg = np.asarray(background)
  windows = np.lib.stride_tricks.sliding_window_view(bg, LENGTH)  # [O, L]
  for row in out:
    assert 0 < np.abs(row).max() <= 0.1 * np.abs(bg).max() + 1e-6
    # row == v * bg[o:o + L] for some offset o and volume 0 < v <= 0.1.
    volumes = windows @ row / np.sum(windows**2, axis=1)
    residual = np.abs(row[None] - volumes[:, None] * windows).max(axis=1)
    best = residual.argmin()
    assert residual[best] < 1e-5 and 0 < volumes[best] <= 0.1 + 1e-6


def test_time_shift_is_a_zero_padded_shift():
  ramp = jnp.tile(jnp.arange(1, LENGTH + 1, dtype=jnp.float32)[None], (8, 1))
  max_shift = 100
  out = np.asarray(augment.time_shift(jax.random.key(5), ramp, max_shift))
  seen = set()
  for row in out:
    first = np.flatnonzero(row)[0]
    if first > 0:  # Delayed: zeros then 1, 2, ...
      shift = first
      np.testing.assert_array_equal(row[first:],
                                    np.arange(1, LENGTH - shift + 1))
    else:  # Advanced: starts at 1 + s, zeros at the end.
      shift = -(int(row[0]) - 1)
      kept = LENGTH + shift
      np.testing.assert_array_equal(row[:kept],
                                    np.arange(1 - shift, LENGTH + 1))
      assert np.all(row[kept:] == 0)
    assert abs(shift) <= max_shift
    seen.add(shift)
  assert len(seen) > 1


def test_output_is_clipped():
  audio, label, background = _batch()
  loud = jnp.clip(audio * 10, -1.5, 1.5)
  out = np.asarray(_augment(jax.random.key(6), loud, label, background * 4,
                            shift=0, frequency=1.0, volume=1.0))
  assert out.max() <= 1.0 and out.min() >= -1.0
  assert out.max() == 1.0 and out.min() == -1.0


def test_empty_or_short_background():
  audio, label, _ = _batch()
  empty = jnp.zeros((0,), jnp.float32)
  out = jax.jit(_augment)(jax.random.key(7), audio, label, empty)
  assert out.shape == audio.shape
  # Empty background: no noise, even for silence.
  out = _augment(jax.random.key(7), audio, label, empty, shift=0)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(audio))
  short = jnp.ones((LENGTH // 3,), jnp.float32)
  out = _augment(jax.random.key(8), audio, label, short)
  assert out.shape == audio.shape and np.all(np.isfinite(np.asarray(out)))


def test_spec_augment_identity_and_masks():
  features = jnp.asarray(
      np.random.default_rng(0).uniform(1, 2, (4, 98, 40)).astype(np.float32))
  key = jax.random.key(9)
  same = augment.spec_augment(key, features, time_masks=0, time_mask_max=10,
                              freq_masks=0, freq_mask_max=5)
  np.testing.assert_array_equal(np.asarray(same), np.asarray(features))
  fn = jax.jit(functools.partial(augment.spec_augment, time_masks=2,
                                 time_mask_max=10, freq_masks=2,
                                 freq_mask_max=5))
  out = np.asarray(fn(key, features))
  np.testing.assert_array_equal(out, np.asarray(fn(key, features)))
  assert out.shape == features.shape
  kept = out != 0
  np.testing.assert_array_equal(out[kept], np.asarray(features)[kept])
  for example in out:
    zero_frames = np.all(example == 0, axis=1).sum()
    zero_bins = np.all(example == 0, axis=0).sum()
    assert zero_frames <= 2 * 10 and zero_bins <= 2 * 5
  assert (out == 0).any()


@pytest.mark.parametrize('batch', [1, 5])
def test_spec_augment_masks_stay_in_range(batch):
  features = jnp.ones((batch, 7, 3))
  out = augment.spec_augment(jax.random.key(10), features, time_masks=3,
                             time_mask_max=50, freq_masks=3, freq_mask_max=50)
  assert out.shape == features.shape


def test_change_speed_scales_frequency_about_the_centre():
  rate_limit = 0.2
  t = np.arange(LENGTH) / 16000
  tone = np.sin(2 * np.pi * 1000 * (t - t[LENGTH // 2])).astype(np.float32)
  audio = jnp.asarray(np.tile(tone, (8, 1)))
  assert augment.change_speed(jax.random.key(0), audio, 0.0) is audio
  out = np.asarray(jax.jit(augment.change_speed, static_argnums=2)(
      jax.random.key(0), audio, rate_limit))
  assert out.shape == audio.shape and np.all(np.isfinite(out))
  peaks = []
  for row in out:
    middle = row[LENGTH // 4:3 * LENGTH // 4]  # Away from the zero padding.
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle)), 16 * 1024))
    peaks.append(np.argmax(spectrum) * 16000 / (16 * 1024))
  peaks = np.array(peaks)
  # Each clip plays at a rate in [0.8, 1.2]: its tone moves with it.
  assert np.all((peaks > 1000 * 0.8 - 10) & (peaks < 1000 * 1.2 + 10))
  assert np.ptp(peaks) > 50  # Different rates per clip.
  # Resampling about the centre keeps the centre sample.
  np.testing.assert_allclose(out[:, LENGTH // 2], tone[LENGTH // 2],
                             atol=0.05)
  # A faster rate runs out of clip: zeros at both ends.
  fast = np.argmax(peaks)
  if peaks[fast] > 1050:
    assert out[fast, 0] == 0 and out[fast, -1] == 0


def test_mixup_blends_audio_and_targets_alike():
  batch, classes = 16, 16
  # Each clip is a constant equal to its index; targets one-hot.
  audio = jnp.asarray(np.repeat(np.arange(batch, dtype=np.float32)[:, None],
                                LENGTH, 1))
  targets = jnp.eye(classes)[:batch]
  same_audio, same_targets = augment.mixup(jax.random.key(0), audio, targets,
                                           0.0)
  assert same_audio is audio and same_targets is targets
  mixed_audio, mixed_targets = jax.jit(augment.mixup, static_argnums=3)(
      jax.random.key(3), audio, targets, 0.4)
  mixed_audio, mixed_targets = np.asarray(mixed_audio), np.asarray(
      mixed_targets)
  np.testing.assert_allclose(mixed_targets.sum(1), 1, atol=1e-6)
  own = mixed_targets[np.arange(batch), np.arange(batch)]
  assert np.all(own >= 0.5 - 1e-6)  # Each example stays mostly itself.
  # The audio is the same blend as the target: sum_k weight_k * k.
  np.testing.assert_allclose(mixed_audio[:, 0], mixed_targets @ np.arange(
      classes), atol=1e-4)
  partners = [np.flatnonzero((row > 1e-6) & (np.arange(classes) != i))
              for i, row in enumerate(mixed_targets)]
  assert all(len(p) <= 1 for p in partners)
  # Every example is some other example's partner exactly once.
  taken = [p[0] for p in partners if len(p)]
  assert len(taken) == len(set(taken))


def test_reverberate_puts_clips_in_rooms():
  rate, at = 16000, 2000
  clicks = jnp.zeros((64, rate)).at[:, at].set(1.0)
  assert augment.reverberate(jax.random.key(0), clicks, 0.0, 0.7,
                             rate) is clicks
  wet = np.asarray(jax.jit(augment.reverberate, static_argnums=(2, 3, 4))(
      jax.random.key(1), clicks, 1.0, 0.4, rate))
  # Causal: nothing before the click; each clip keeps its RMS.
  np.testing.assert_allclose(wet[:, :at], 0.0, atol=1e-6)
  np.testing.assert_allclose(np.sqrt((wet**2).mean(1)), np.sqrt(1 / rate),
                             rtol=1e-3)
  direct = wet[:, at]**2
  tail = (wet[:, at + 1:]**2).sum(1)
  ratio_db = 10 * np.log10(direct / tail)
  assert ratio_db.min() > -0.1 and ratio_db.max() < 12.1
  assert ratio_db.max() - ratio_db.min() > 4  # Rooms differ.
  # Reflections start 2-10 ms after the click, and have died down 60 dB by
  # the longest reverberation time.
  np.testing.assert_allclose(wet[:, at + 1:at + 32], 0.0, atol=1e-6)
  assert np.all((wet[:, at + 32:at + 320]**2).sum(1) > 0)
  late = (wet[:, at + int(0.4 * rate):]**2).sum(1)
  assert np.all(late < 1e-6 * tail)
  # A share of the clips is left dry.
  some = np.asarray(augment.reverberate(jax.random.key(2), clicks, 0.5, 0.4,
                                        rate))
  dry = np.all(some == np.asarray(clicks), axis=1)
  assert 16 < dry.sum() < 48


def test_reverberation_decays_and_does_not_wrap_around():
  rate, at = 16000, 15900
  late_clicks = jnp.zeros((16, rate)).at[:, at].set(1.0)
  wet = np.asarray(augment.reverberate(jax.random.key(3), late_clicks, 1.0,
                                       0.7, rate))
  # Linear convolution: the room's tail past the clip's end is cut off, not
  # wrapped round to its start.
  np.testing.assert_allclose(wet[:, :at], 0.0, atol=1e-6)
  # Over the shortest reverberation time (0.15 s, the only one drawn when
  # the longest is just above it) the tail falls by about 60 dB: its last
  # tenth is far below its first (after the pre-delay).
  clicks = jnp.zeros((16, rate)).at[:, 0].set(1.0)
  wet = np.asarray(augment.reverberate(jax.random.key(4), clicks, 1.0, 0.151,
                                       rate))
  taps = int(0.151 * rate)
  tenth = taps // 10
  first = (wet[:, 200:200 + tenth]**2).sum(1)
  last = (wet[:, taps - tenth:taps]**2).sum(1)
  assert np.all(10 * np.log10(first / last) > 45)


def _rms(x):
  return np.sqrt(np.mean(np.square(np.asarray(x, np.float64)), axis=-1))


def test_absolute_levels_put_silence_and_word_noise_in_range():
  audio, _, background = _batch(batch=400)
  label = jnp.asarray(np.arange(400) % 2, jnp.int32)  # silence, word, ...
  silence = np.asarray(label) == 0
  audio = jnp.where(silence[:, None], 0.0, 0.05 * audio)
  out = np.asarray(augment.augment_waveform(
      jax.random.key(5), audio, label, background, time_shift_samples=0,
      background_frequency=1.0, background_volume=0.1,
      background_rms=(0.001, 0.3), min_snr_db=5.0))
  level = _rms(out[silence])
  assert level.min() >= 0.001 * 0.99 and level.max() <= 0.3 * 1.01
  # Log-uniform: about half the clips below the geometric mean.
  assert np.mean(level < np.sqrt(0.001 * 0.3)) == pytest.approx(0.5, abs=0.1)
  assert level.max() > 0.2  # Loud silence, unlike the tutorial's rule.
  words = np.asarray(audio)[~silence]
  added = _rms(out[~silence] - words)
  assert np.all(added <= _rms(words) * 10 ** (-5 / 20) * 1.01)
  assert np.all(added >= 0.001 * 0.99)
