"""Tests for kws_jax.audio_io."""

import os

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
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


# --- Properties, odd files and odd names (docs/reliability.md) -------------

_RATES = st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]) | (
    st.integers(audio_io.MIN_FILE_RATE, 96000))
_SHAPES = st.tuples(st.integers(1, 400), st.integers(1, 4))


def _write_any(path, data, rate, subtype):
  # Through a Python file object, as names need not be UTF-8.
  with open(path, 'wb') as f:
    sf.write(f, data, rate, subtype=subtype, format='WAV')


# No example database: nothing is written into the working tree.
@settings(max_examples=60, deadline=None, database=None)
@given(data=hnp.arrays(np.int16, _SHAPES), rate=_RATES)
def test_int16_round_trip_at_the_file_rate(tmp_path_factory, data, rate):
  path = tmp_path_factory.mktemp('pcm') / 'clip.wav'
  _write_any(path, data, rate, 'PCM_16')
  got = audio_io.read_audio(path, rate)
  want = (data.astype(np.float32) / audio_io.PCM16_SCALE).mean(axis=1)
  assert got.dtype == np.float32 and got.shape == (data.shape[0],)
  np.testing.assert_allclose(got, want, atol=1e-6)


@settings(max_examples=60, deadline=None, database=None)
@given(data=hnp.arrays(np.float32, _SHAPES, elements=st.floats(
    -4.0, 4.0, width=32)), rate=_RATES,
       subtype=st.sampled_from(['FLOAT', 'DOUBLE', 'PCM_24', 'PCM_32']))
def test_float_round_trip_is_mixed_down_and_clipped(tmp_path_factory, data,
                                                    rate, subtype):
  path = tmp_path_factory.mktemp('float') / 'clip.wav'
  if subtype.startswith('PCM'):
    data = np.clip(data, -1.0, 1.0 - 2.0**-23)  # PCM saturates; no overflow.
  _write_any(path, data, rate, subtype)
  got = audio_io.read_audio(path, rate)
  want = np.clip(data.mean(axis=1, dtype=np.float32), -1.0, 1.0)
  tolerance = 1e-6 if subtype in ('FLOAT', 'DOUBLE') else 2e-6
  np.testing.assert_allclose(got, want, atol=tolerance)
  assert np.all(np.abs(got) <= 1.0)


@settings(max_examples=40, deadline=None, database=None)
@given(data=hnp.arrays(np.float32, st.tuples(st.integers(1, 2000),
                                             st.integers(1, 2)),
                       elements=st.floats(-1.0, 1.0, width=32)),
       rate=_RATES, target=_RATES)
def test_resampled_reads_are_bounded_and_of_the_right_length(
    tmp_path_factory, data, rate, target):
  path = tmp_path_factory.mktemp('rs') / 'clip.wav'
  _write_any(path, data, rate, 'FLOAT')
  got = audio_io.read_audio(path, target)
  assert got.dtype == np.float32
  assert np.all(np.isfinite(got)) and np.all(np.abs(got) <= 1.0)
  # Within one sample (and the ratio's approximation for odd rates).
  expected = data.shape[0] * target / rate
  assert abs(got.shape[0] - expected) <= 1 + expected * 1e-5


@settings(max_examples=60, deadline=None, database=None)
@given(data=hnp.arrays(np.float32, st.integers(0, 300),
                       elements=st.floats(-2.0, 2.0, width=32)),
       rate=_RATES)
def test_write_wav_then_read_is_int16_exact(tmp_path_factory, data, rate):
  path = tmp_path_factory.mktemp('ww') / 'clip.wav'
  audio_io.write_wav(path, data, rate)
  if data.shape[0] == 0:
    with pytest.raises(audio_io.AudioError, match='no audio samples'):
      audio_io.read_audio(path, rate)
    return
  got = audio_io.read_audio(path, rate)
  want = audio_io.to_int16(data).astype(np.float32) / audio_io.PCM16_SCALE
  np.testing.assert_array_equal(got, want)


def test_resampling_odd_rates_is_bounded():
  # A prime rate: the exact ratio would need a filter of millions of taps.
  audio = np.sin(np.arange(100_000) / 10).astype(np.float32) * 0.5
  for rate, target in ((44101, 16000), (16000, 44101), (99991, 8000)):
    out = audio_io.resample(audio[:rate], rate, target)
    assert abs(out.shape[0] - target) <= 2


@pytest.mark.parametrize('rate', [1, 999, 1_000_001, 2**31 - 1])
def test_implausible_header_rates_are_refused(tmp_path, rate):
  import struct  # pylint: disable=g-import-not-at-top
  fmt = struct.pack('<IHHIIHH', 16, 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2,
                    16)
  path = tmp_path / 'odd.wav'
  path.write_bytes(b'RIFF' + struct.pack('<I', 36 + 3200) + b'WAVEfmt ' +
                   fmt + b'data' + struct.pack('<I', 3200) + bytes(3200))
  with pytest.raises(audio_io.AudioError, match=f'odd.wav.*{rate} Hz'):
    audio_io.read_audio(path, RATE)


def test_non_utf8_names_are_read_and_printable(tmp_path):
  name = os.fsdecode(b'caf\xe9.wav')  # Latin-1 bytes; not UTF-8.
  _write_any(tmp_path / name, _tone(800), RATE, 'PCM_16')
  np.testing.assert_allclose(audio_io.read_audio(tmp_path / name, RATE),
                             _tone(800), atol=1e-4)
  shown = audio_io.printable_path(name)
  assert shown == 'caf\\xe9.wav'
  shown.encode('utf-8')  # Printable in a strict UTF-8 terminal.
  broken = tmp_path / os.fsdecode(b'\xff\xfe.wav')
  broken.write_bytes(b'junk')
  with pytest.raises(audio_io.AudioError) as error:
    audio_io.read_audio(broken, RATE)
  str(error.value).encode('utf-8')
  assert '\\xff\\xfe.wav' in str(error.value)


def test_folders_fifos_and_dangling_links_are_refused(tmp_path):
  (tmp_path / 'folder.wav').mkdir()
  os.mkfifo(tmp_path / 'pipe.wav')  # Reading it would block forever.
  os.symlink(tmp_path / 'nowhere.wav', tmp_path / 'link.wav')
  for name, message in (('folder.wav', 'not a regular file'),
                        ('pipe.wav', 'not a regular file'),
                        ('link.wav', 'no such file')):
    with pytest.raises(audio_io.AudioError, match=f'{name}: {message}'):
      audio_io.read_audio(tmp_path / name, RATE)
