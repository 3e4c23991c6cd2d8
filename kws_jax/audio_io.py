"""Reading, length-fitting and writing of short audio clips.

Everything the project reads from disk goes through `read_audio`, so WAV
(8/16/24/32-bit PCM and float) and FLAC files are handled the same way and any
problem surfaces as one exception type, `AudioError`, that names the file.
"""

import math
import os
import tempfile

from absl import logging
import numpy as np
from scipy import signal
import soundfile as sf

# Full scale of 16-bit PCM: int16 sample `s` is the float `s / PCM16_SCALE`.
PCM16_SCALE = 32768.0


class AudioError(ValueError):
  """A file could not be used as audio; the message names the file."""


def read_audio(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
  """Reads an audio file as mono float32 at `sample_rate`.

  Args:
    path: a WAV (8/16/24/32-bit PCM or float) or FLAC file.
    sample_rate: the wanted rate in Hz; the file is resampled (polyphase
      filter) when its own rate differs.

  Returns:
    float32 [num_samples] in [-1, 1]. Multi-channel files are averaged to mono.

  Raises:
    AudioError: the file is missing, unreadable, not audio, empty, or holds
      NaN/Inf samples.
  """
  path = os.fspath(path)
  if sample_rate <= 0:
    raise ValueError(f'sample_rate must be positive, got {sample_rate}.')
  try:
    # always_2d gives [frames, channels] for mono and multi-channel alike.
    data, file_rate = sf.read(path, dtype='float32', always_2d=True)
  except FileNotFoundError as e:
    raise AudioError(f'{path}: no such file; check the path.') from e
  except (sf.SoundFileError, RuntimeError, OSError, EOFError) as e:
    raise AudioError(
        f'{path}: cannot be read as audio ({e}); use a WAV or FLAC file, '
        'or remove this file.') from e
  if data.shape[0] == 0 or data.shape[1] == 0:
    raise AudioError(
        f'{path}: holds no audio samples; remove it or re-record it.')
  if not np.all(np.isfinite(data)):
    raise AudioError(
        f'{path}: holds NaN or infinite samples; the file is corrupt, '
        're-export or remove it.')
  audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
  if file_rate != sample_rate:
    divisor = math.gcd(int(file_rate), int(sample_rate))
    audio = signal.resample_poly(
        audio, sample_rate // divisor, int(file_rate) // divisor)
    logging.log_first_n(
        logging.INFO, 'Resampling %s from %d Hz to %d Hz.', 5, path,
        file_rate, sample_rate)
  # Float files may exceed full scale and resampling can overshoot a little;
  # callers rely on [-1, 1].
  return np.clip(audio, -1.0, 1.0).astype(np.float32)


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
  """Writes mono 16-bit PCM WAV atomically.

  The data goes to a temporary file in the same folder that then replaces
  `path`, so a reader never sees a half-written file.

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
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp_path = tempfile.mkstemp(
      dir=folder, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
  try:
    with os.fdopen(fd, 'wb') as f:
      sf.write(f, pcm, int(sample_rate), format='WAV', subtype='PCM_16')
    # mkstemp makes owner-only files; a written clip is ordinary data.
    os.chmod(tmp_path, 0o644)
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.remove(tmp_path)
    raise
