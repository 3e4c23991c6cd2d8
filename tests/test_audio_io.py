"""Tests for kws_jax.audio_io."""

import os

import numpy as np
import pytest
import soundfile as sf

from kws_jax import audio_io

RATE = 16000


def _tone(num_samples: int, rate: int = RATE, freq: float = 440.0,
          amplitude: float = 0.5) -> np.ndarray:
  t = np.arange(num_samples) / rate
  return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize('fmt,subtype,tolerance', [
    ('WAV', 'PCM_U8', 1 / 64),
    ('WAV', 'PCM_16', 1e-4),
    ('WAV', 'PCM_24', 1e-6),
    ('WAV', 'PCM_32', 1e-6),
    ('WAV', 'FLOAT', 1e-7),
    ('WAV', 'DOUBLE', 1e-7),
    ('FLAC', 'PCM_16', 1e-4),
    ('FLAC', 'PCM_24', 1e-6),
])
def test_read_formats(tmp_path, fmt, subtype, tolerance):
  audio = _tone(1600)
  path = tmp_path / f'clip.{fmt.lower()}'
  sf.write(path, audio, RATE, format=fmt, subtype=subtype)
  got = audio_io.read_audio(path, RATE)
  assert got.dtype == np.float32
  assert got.shape == (1600,)
  np.testing.assert_allclose(got, audio, atol=tolerance)


def test_stereo_is_mixed_down(tmp_path):
  left = _tone(800, amplitude=0.4)
  right = np.zeros_like(left)
  path = tmp_path / 'stereo.wav'
  sf.write(path, np.stack([left, right], axis=1), RATE, subtype='FLOAT')
  got = audio_io.read_audio(path, RATE)
  np.testing.assert_allclose(got, left / 2, atol=1e-7)


def test_resamples(tmp_path):
  audio = _tone(8000, rate=8000, freq=200.0)
  path = tmp_path / 'slow.wav'
  sf.write(path, audio, 8000, subtype='FLOAT')
  got = audio_io.read_audio(path, RATE)
  assert got.shape == (16000,)
  want = _tone(16000, rate=RATE, freq=200.0)
  # Edges suffer from the filter's start-up; the middle must match.
  np.testing.assert_allclose(got[1000:-1000], want[1000:-1000], atol=1e-2)

  got = audio_io.read_audio(path, 44100)
  assert got.shape == (44100,)


def test_float_file_is_clipped(tmp_path):
  path = tmp_path / 'loud.wav'
  sf.write(path, np.array([0.5, 2.0, -3.0], np.float32), RATE,
           subtype='FLOAT')
  np.testing.assert_array_equal(
      audio_io.read_audio(path, RATE), np.array([0.5, 1.0, -1.0], np.float32))


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_samples_raise(tmp_path, bad):
  path = tmp_path / 'nan.wav'
  sf.write(path, np.array([0.1, bad, 0.2], np.float32), RATE, subtype='FLOAT')
  with pytest.raises(audio_io.AudioError, match='nan.wav.*NaN or infinite'):
    audio_io.read_audio(path, RATE)


def test_problem_files_raise(tmp_path):
  not_audio = tmp_path / 'notes.wav'
  not_audio.write_text('definitely not RIFF')
  with pytest.raises(audio_io.AudioError, match='notes.wav'):
    audio_io.read_audio(not_audio, RATE)

  empty_file = tmp_path / 'zero_bytes.wav'
  empty_file.write_bytes(b'')
  with pytest.raises(audio_io.AudioError, match='zero_bytes.wav'):
    audio_io.read_audio(empty_file, RATE)

  no_samples = tmp_path / 'no_samples.wav'
  sf.write(no_samples, np.zeros(0, np.float32), RATE)
  with pytest.raises(audio_io.AudioError, match='no_samples.wav.*no audio'):
    audio_io.read_audio(no_samples, RATE)

  with pytest.raises(audio_io.AudioError, match='missing.wav'):
    audio_io.read_audio(tmp_path / 'missing.wav', RATE)

  # AudioError is a ValueError, so generic callers can catch either.
  assert issubclass(audio_io.AudioError, ValueError)


def test_fit_length():
  audio = np.arange(1, 6, dtype=np.int16)
  np.testing.assert_array_equal(audio_io.fit_length(audio, 3), [1, 2, 3])
  np.testing.assert_array_equal(
      audio_io.fit_length(audio, 7), [1, 2, 3, 4, 5, 0, 0])
  assert audio_io.fit_length(audio, 7).dtype == np.int16
  np.testing.assert_array_equal(audio_io.fit_length(audio, 5), audio)
  assert audio_io.fit_length(audio, 0).shape == (0,)
  with pytest.raises(ValueError):
    audio_io.fit_length(np.zeros((2, 2)), 3)


def test_write_wav_round_trip(tmp_path):
  audio = _tone(1234)
  path = tmp_path / 'out.wav'
  audio_io.write_wav(path, audio, RATE)
  info = sf.info(path)
  assert (info.format, info.subtype, info.samplerate, info.channels) == (
      'WAV', 'PCM_16', RATE, 1)
  np.testing.assert_allclose(audio_io.read_audio(path, RATE), audio,
                             atol=1 / 32768)
  # Overwrites atomically and leaves no temporary file behind.
  audio_io.write_wav(path, np.zeros(10, np.float32), RATE)
  assert os.listdir(tmp_path) == ['out.wav']
  assert sf.info(path).frames == 10


def test_write_wav_int16_and_clipping(tmp_path):
  path = tmp_path / 'pcm.wav'
  audio_io.write_wav(path, np.array([-32768, 0, 32767], np.int16), RATE)
  data, _ = sf.read(path, dtype='int16')
  np.testing.assert_array_equal(data, [-32768, 0, 32767])

  audio_io.write_wav(path, np.array([-2.0, 0.5, 2.0]), RATE)
  data, _ = sf.read(path, dtype='int16')
  np.testing.assert_array_equal(data, [-32768, 16384, 32767])


def test_write_wav_failure_leaves_no_temp(tmp_path):
  with pytest.raises(ValueError):
    audio_io.write_wav(tmp_path / 'x.wav', np.zeros((2, 3)), RATE)
  with pytest.raises(ValueError):
    audio_io.write_wav(tmp_path / 'x.wav', np.array([np.nan]), RATE)
  assert not os.listdir(tmp_path)
