"""Tests for kws_jax.wav_to_spectrogram."""

import os
import subprocess
import sys

from matplotlib import image as mpimg
import numpy as np
import pytest

from kws_jax import audio_io
from kws_jax import wav_to_spectrogram

RATE = 16000


@pytest.fixture
def tone_wav(tmp_path):
  """1 s of a 1 kHz tone in faint noise."""
  t = np.arange(RATE) / RATE
  audio = 0.5 * np.sin(2 * np.pi * 1000 * t) + 0.001 * (
      np.random.default_rng(0).standard_normal(RATE))
  path = tmp_path / 'tone.wav'
  audio_io.write_wav(path, audio.astype(np.float32), RATE)
  return path


def _is_png(path) -> bool:
  image = mpimg.imread(path)
  return image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_spectrogram_peaks_at_the_tone(tone_wav, tmp_path):
  output = tmp_path / 'spec.png'
  values = wav_to_spectrogram.wav_to_image(str(tone_wav), str(output))
  assert _is_png(output)
  # 98 frames of 30 ms every 10 ms; 512-point FFT -> 257 bins of 31.25 Hz.
  assert values.shape == (98, 257)
  peak_hz = values.mean(axis=0).argmax() * RATE / 512
  assert abs(peak_hz - 1000) <= 31.25
  assert np.all(np.isfinite(values))


@pytest.mark.parametrize('preprocess,bins', [('mfcc', 13), ('logmel', 40),
                                             ('average', 20)])
def test_features(tone_wav, tmp_path, preprocess, bins):
  output = tmp_path / f'{preprocess}.png'
  values = wav_to_spectrogram.wav_to_image(
      str(tone_wav), str(output), as_features=True, preprocess=preprocess,
      feature_bin_count=bins)
  assert values.shape == (98, bins)
  assert _is_png(output)


def test_other_rates_are_resampled(tmp_path):
  path = tmp_path / 'slow.wav'
  audio_io.write_wav(path, np.zeros(8000, np.float32), 8000)
  values = wav_to_spectrogram.wav_to_image(str(path), str(tmp_path / 'x.png'))
  assert values.shape[0] == 98  # 1 s at 16 kHz, digital silence is finite.
  assert np.all(np.isfinite(values))


def test_too_short_clip(tmp_path):
  path = tmp_path / 'blip.wav'
  audio_io.write_wav(path, np.zeros(100, np.float32), RATE)
  with pytest.raises(ValueError, match='blip.wav.*fewer than one'):
    wav_to_spectrogram.wav_to_image(str(path), str(tmp_path / 'x.png'))
  assert not os.path.exists(tmp_path / 'x.png')


def test_unreadable_file(tmp_path):
  path = tmp_path / 'bad.wav'
  path.write_text('nope')
  with pytest.raises(audio_io.AudioError, match='bad.wav'):
    wav_to_spectrogram.wav_to_image(str(path), str(tmp_path / 'x.png'))


def test_command_line(tone_wav, tmp_path):
  output = tmp_path / 'out' / 'cli.png'
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.wav_to_spectrogram',
       f'--input_wav={tone_wav}', f'--output_image={output}', '--features',
       '--preprocess=logmel'],
      cwd=root, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert _is_png(output)


def test_mfcc_colours_span_the_coefficients_after_c0(tone_wav, tmp_path):
  values = wav_to_spectrogram.wav_to_image(
      str(tone_wav), str(tmp_path / 'm.png'), as_features=True,
      preprocess='mfcc', feature_bin_count=13)
  low, high = wav_to_spectrogram.colour_range(values, 'mfcc')
  rest = values[:, 1:]
  assert (low, high) == (rest.min(), rest.max())
  # c0 lies far outside that range: with it, the rest would be one colour.
  assert np.abs(values[:, 0]).max() > 3 * max(abs(low), abs(high))
  assert wav_to_spectrogram.colour_range(values, 'logmel') == (
      values.min(), values.max())
