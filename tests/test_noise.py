"""Tests for kws_jax/noise.py: generated noise and the silence stress set."""

import numpy as np
import pytest

from kws_jax import noise

RATE = 16000


def _band_power(x, low, high):
  spectrum = np.abs(np.fft.rfft(x)) ** 2
  freqs = np.fft.rfftfreq(len(x), 1 / RATE)
  return spectrum[(freqs >= low) & (freqs < high)].mean()


@pytest.mark.parametrize('exponent,ratio', [(0.0, 1.0), (1.0, 10.0),
                                            (2.0, 100.0)])
def test_coloured_noise_has_unit_rms_and_its_slope(exponent, ratio):
  x = noise.coloured_noise(np.random.default_rng(0), 4 * RATE, exponent)
  assert x.dtype == np.float32
  assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1, 1e-4)
  # Power per bin falls as 1/f^exponent: a decade up is 10^exponent lower.
  measured = _band_power(x, 200, 400) / _band_power(x, 2000, 4000)
  assert measured == pytest.approx(ratio, rel=0.3)


def test_hum_is_at_the_mains_frequency_and_its_harmonics():
  x = noise.hum(np.random.default_rng(1), RATE, RATE, 50.0)
  assert _band_power(x, 49, 51) > 1000 * _band_power(x, 70, 90)


def test_generated_noise_is_five_unit_rms_recordings():
  clips = noise.generated_noise(RATE, 2.0)
  assert len(clips) == 5
  for clip in clips:
    assert clip.shape == (2 * RATE,)
    assert np.sqrt(np.mean(clip.astype(np.float64) ** 2)) == pytest.approx(
        1, 1e-4)


def test_dc_offset_is_a_sixth_recording_of_one_constant():
  plain = noise.generated_noise(RATE, 2.0)
  clips = noise.generated_noise(RATE, 2.0, dc_offset=True)
  assert len(clips) == 6
  for before, after in zip(plain, clips):
    np.testing.assert_array_equal(before, after)
  np.testing.assert_array_equal(clips[5], np.ones(2 * RATE, np.float32))


def test_stress_set_spans_the_levels_and_is_fixed():
  rng = np.random.default_rng(2)
  recordings = [0.004 * rng.standard_normal(3 * RATE).astype(np.float32),
                np.zeros(3 * RATE, np.float32)]  # Silent: left out.
  audio, names = noise.silence_stress_set(recordings, RATE, RATE)
  again, _ = noise.silence_stress_set(recordings, RATE, RATE)
  np.testing.assert_array_equal(audio, again)
  assert audio.dtype == np.int16 and audio.shape == (len(names), RATE)
  sources = {n.split('@')[0] for n in names}
  assert sources == {'background0', 'white', 'pink', 'brown', 'hum50',
                     'hum60', 'clicks', 'dc', 'dc+pink'}
  assert len(names) == len(sources) * len(noise.STRESS_LEVELS)
  rms = np.sqrt(np.mean((audio / 32768.0) ** 2, axis=1))
  for name, value in zip(names, rms):
    level = float(name.split('@')[1])
    if name.startswith('dc+'):
      level *= np.sqrt(1 + 0.3 ** 2)
    if name.startswith('clicks') and level >= 0.1:
      # Clicks this loud peak past full scale and are clipped.
      assert 0.3 * level < value < level, name
      continue
    # Loud white noise is clipped a little; everything else is at its level.
    assert value == pytest.approx(level, rel=0.1 if level < 0.2 else 0.25), (
        name)
