"""Reading, length-fitting and writing of short audio clips.

Everything the project reads from disk goes through `read_audio`, so WAV
(8/16/24/32-bit PCM and float) and FLAC files are handled the same way and any
problem surfaces as one exception type, `AudioError`, that names the file.
"""

import fractions
import os
import stat

from absl import logging
import numpy as np
from scipy import signal
import soundfile as sf

from kws_jax import files

# Full scale of 16-bit PCM: int16 sample `s` is the float `s / PCM16_SCALE`.
PCM16_SCALE = 32768.0
# File sample rates outside this range are taken for a corrupt header: a
# claimed 1 Hz or 2 GHz would make resampling allocate gigabytes.
MIN_FILE_RATE = 1000
MAX_FILE_RATE = 1_000_000
# Largest up/down factor of the polyphase resampler; rates with a larger
# exact ratio (e.g. 44101 Hz) are resampled by the nearest ratio within it,
# a pitch error below 1e-6, instead of designing a filter of millions of
# taps.
_MAX_RESAMPLE_FACTOR = 1000


# Audio files the project reads (with `read_audio`), by extension.
AUDIO_EXTENSIONS = ('.wav', '.flac')


def samples_per_clip(sample_rate: int, duration_ms: float) -> int:
  """Samples in `duration_ms` at `sample_rate` Hz, the tutorial's rule
  (`int(sample_rate * duration_ms / 1000)`): the one definition of a clip's
  (or window's) length in samples."""
  return int(sample_rate * duration_ms / 1000)


class AudioError(ValueError):
  """A file could not be used as audio; the message names the file."""


def printable_path(path: str | os.PathLike[str] | bytes) -> str:
  """`path` as text that can always be printed, logged or stored.

  File names on Linux are bytes; a name that is not UTF-8 (e.g. Latin-1
  from another system) decodes with surrogates, which `print`, JSON readers
  and TensorFlow strings refuse. Such bytes are shown as `\\xe9` escapes.
  """
  raw = os.fsencode(path)
  return raw.decode('utf-8', 'backslashreplace')


def read_audio(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
  """Reads an audio file as mono float32 at `sample_rate`.

  Args:
    path: a WAV (8/16/24/32-bit PCM or float) or FLAC file.
    sample_rate: the wanted rate in Hz; the file is resampled (polyphase
      filter) when its own rate differs.

  Returns:
    float32 [num_samples] in [-1, 1]. Multi-channel files are averaged to mono.

  Raises:
    AudioError: the file is missing, not a regular file, unreadable, not
      audio, empty, holds NaN/Inf samples or claims an implausible sample
      rate (outside [MIN_FILE_RATE, MAX_FILE_RATE]).
  """
  path = os.fspath(path)
  shown = printable_path(path)
  if sample_rate <= 0:
    raise ValueError(f'sample_rate must be positive, got {sample_rate}.')
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError as e:
    raise AudioError(f'{shown}: no such file; check the path.') from e
  except OSError as e:
    raise AudioError(f'{shown}: cannot be read ({e.strerror}).') from e
  if not stat.S_ISREG(mode):
    # A FIFO would block the reader forever; a folder is no clip.
    raise AudioError(f'{shown}: not a regular file; remove it or rename it.')
  try:
    # libsndfile gets the name as bytes, so names that are not UTF-8 open
    # too. always_2d gives [frames, channels] for mono and multi-channel.
    data, file_rate = sf.read(path if os.name == 'nt' else os.fsencode(path),
                              dtype='float32', always_2d=True)
  except (sf.SoundFileError, RuntimeError, OSError, EOFError) as e:
    reason = str(e).replace(repr(os.fsencode(path)), '').replace(
        'Error opening : ', '')
    raise AudioError(
        f'{shown}: cannot be read as audio ({reason}); use a WAV or FLAC '
        'file, or remove this file.') from e
  if not MIN_FILE_RATE <= file_rate <= MAX_FILE_RATE:
    raise AudioError(
        f'{shown}: its header claims {file_rate} Hz, outside '
        f'[{MIN_FILE_RATE}, {MAX_FILE_RATE}]; the file is corrupt, re-export '
        'or remove it.')
  if data.shape[0] == 0 or data.shape[1] == 0:
    raise AudioError(
        f'{shown}: holds no audio samples; remove it or re-record it.')
  if not np.all(np.isfinite(data)):
    raise AudioError(
        f'{shown}: holds NaN or infinite samples; the file is corrupt, '
        're-export or remove it.')
  audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
  if file_rate != sample_rate:
    audio = resample(audio, int(file_rate), int(sample_rate))
    logging.log_first_n(
        logging.INFO, 'Resampling %s from %d Hz to %d Hz.', 5, shown,
        file_rate, sample_rate)
  # Float files may exceed full scale and resampling can overshoot a little;
  # callers rely on [-1, 1].
  return np.clip(audio, -1.0, 1.0).astype(np.float32)


def resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
  """Resamples float audio [T] from `rate` to `target_rate` Hz (polyphase).

  The up/down factors are `target_rate / rate` in lowest terms; where
  either exceeds `_MAX_RESAMPLE_FACTOR` (unusual rates such as 44101 Hz),
  the closest ratio within that bound is used.

  Returns:
    float32 [about T * target_rate / rate], not clipped.
  """
  if rate <= 0 or target_rate <= 0:
    raise ValueError(f'Sample rates must be positive, got {rate} and '
                     f'{target_rate}.')
  audio = np.asarray(audio, np.float32)
  if rate == target_rate:
    return audio
  ratio = fractions.Fraction(int(target_rate), int(rate))
  if max(ratio.numerator, ratio.denominator) > _MAX_RESAMPLE_FACTOR:
    ratio = ratio.limit_denominator(_MAX_RESAMPLE_FACTOR)
  return signal.resample_poly(
      audio, ratio.numerator, ratio.denominator).astype(np.float32)


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
  """Zero-pads the end of `audio` or crops its end to `num_samples`.

  Args:
    audio: [T] samples (any dtype).
    num_samples: the wanted length L.

  Returns:
    [L] array of the same dtype; the first min(T, L) samples are `audio`'s.
  """
  if num_samples < 0:
    raise ValueError(f'num_samples must be >= 0, got {num_samples}.')
  audio = np.asarray(audio)
  if audio.ndim != 1:
    raise ValueError(f'audio must be 1-D, got shape {audio.shape}.')
  if audio.shape[0] >= num_samples:
    return audio[:num_samples]
  return np.pad(audio, (0, num_samples - audio.shape[0]))


def to_int16(audio: np.ndarray) -> np.ndarray:
  """Converts float audio in [-1, 1] to int16 PCM (rounded, clipped)."""
  audio = np.asarray(audio)
  if audio.dtype == np.int16:
    return audio
  scaled = np.round(np.asarray(audio, np.float64) * PCM16_SCALE)
  return np.clip(scaled, -PCM16_SCALE, PCM16_SCALE - 1).astype(np.int16)


def write_wav(path: str | os.PathLike[str], audio: np.ndarray,
              sample_rate: int) -> None:
  """Writes mono 16-bit PCM WAV atomically (`files.atomic_path`), so a
  reader never sees a half-written file.

  Args:
    path: destination; its folder must exist.
    audio: [T] float in [-1, 1] (clipped) or int16.
    sample_rate: in Hz.
  """
  path = os.fspath(path)
  audio = np.asarray(audio)
  if audio.ndim != 1:
    raise ValueError(f'audio must be 1-D (mono), got shape {audio.shape}.')
  if not np.issubdtype(audio.dtype, np.integer) and not np.all(
      np.isfinite(audio)):
    raise ValueError(f'Refusing to write NaN/Inf samples to {path}.')
  pcm = to_int16(audio)
  with files.atomic_path(path) as tmp_path:
    sf.write(tmp_path, pcm, int(sample_rate), format='WAV', subtype='PCM_16')
