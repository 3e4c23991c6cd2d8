"""Tests for kws_jax/synth/dsp.py: trimming, placing, rooms and noise."""

import numpy as np
import pytest

from kws_jax.synth import dsp

RATE = 16000


def test_trim_silence_keeps_the_word_and_a_margin():
  word = 0.3 * np.sin(np.arange(4000) * 0.3)
  audio = np.concatenate([np.zeros(8000), word, np.zeros(8000)])
  trimmed = dsp.trim_silence(audio, RATE, margin_ms=30.0)
  # The word plus 30 ms (480 samples) each side, within a 10 ms frame.
  assert abs(len(trimmed) - (4000 + 960)) <= 160
  assert dsp.rms(trimmed) > 0.9 * dsp.rms(word) * np.sqrt(
      4000 / len(trimmed))
  assert dsp.trim_silence(np.zeros(1000), RATE).size == 0


def test_place_in_clip_centres_and_keeps_the_word_inside():
  word = np.ones(1000, np.float32)
  clip = dsp.place_in_clip(word, RATE)
  start = np.flatnonzero(clip)[0]
  assert start == (RATE - 1000) // 2 and clip.sum() == 1000
  far = dsp.place_in_clip(word, RATE, offset_samples=10**6)
  assert np.flatnonzero(far)[-1] == RATE - 1 and far.sum() == 1000
  with pytest.raises(ValueError, match='does not fit'):
    dsp.place_in_clip(np.ones(RATE + 1), RATE)


def test_room_impulse_response_decays_at_the_asked_ratio():
  rng = np.random.default_rng(0)
  ir = dsp.room_impulse_response(rng, RATE, rt60_s=0.4, drr_db=6.0)
  assert len(ir) == int(0.4 * RATE) and ir[0] == 1.0
  tail_energy = np.sum(ir[1:]**2)
  np.testing.assert_allclose(10 * np.log10(1.0 / tail_energy), 6.0, atol=0.1)
  first, last = ir[1:len(ir) // 10], ir[-len(ir) // 10:]
  assert np.sum(last**2) < 1e-3 * np.sum(first**2)


def test_reverb_keeps_length_and_loudness():
  rng = np.random.default_rng(1)
  clip = dsp.place_in_clip(0.1 * rng.standard_normal(4000), RATE)
  ir = dsp.room_impulse_response(rng, RATE, 0.5, 3.0)
  wet = dsp.add_reverb(clip, ir)
  assert wet.shape == clip.shape
  np.testing.assert_allclose(dsp.rms(wet), dsp.rms(clip),
                             rtol=1e-4)
  assert not np.allclose(wet, clip)


def test_mix_noise_reaches_the_snr():
  rng = np.random.default_rng(2)
  clip = np.zeros(RATE, np.float32)
  noise = rng.standard_normal(RATE)
  mixed = dsp.mix_noise(clip, noise, speech_rms=0.1, snr_db=20.0)
  np.testing.assert_allclose(dsp.rms(mixed), 0.01, rtol=1e-6)


def test_speed_perturb_changes_length():
  audio = np.zeros(11000, np.float32)
  assert len(dsp.speed_perturb(audio, 1.1)) == 10000
  assert len(dsp.speed_perturb(audio, 1.0)) == 11000
