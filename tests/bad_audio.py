"""A corpus of awkward and broken audio files, for the reliability tests.

`write_corpus(folder)` writes one file per case and returns what each should
give: `GOOD` cases are audio that every tool must read (other rates, channel
counts, sample formats and lengths, odd file names); `BAD` cases are files
that must be refused with an `audio_io.AudioError` naming the file
(truncated or corrupt headers, empty files, text named .wav, NaN/Inf samples,
absurd sample rates in the header, dangling links). Nothing here is random.
"""

from __future__ import annotations

import os
import pathlib
import struct

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
GOOD = 'good'
BAD = 'bad'
# Not valid UTF-8: file names on Linux are bytes, and such names occur on
# disks written by other systems.
NON_UTF8_NAME = os.fsdecode(b'caf\xe9_nohash_0.wav')
SPACED_NAME = 'with space_nohash_0.wav'


def tone(seconds: float, rate: int, freq: float = 440.0,
         amplitude: float = 0.5, channels: int = 1) -> np.ndarray:
  """A sine, float32 [T] (mono) or [T, channels]."""
  t = np.arange(int(round(seconds * rate))) / rate
  mono = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
  return mono if channels == 1 else np.stack([mono] * channels, axis=1)


def wav_header(rate: int, *, channels: int = 1, bits: int = 16,
               data: bytes = b'\0' * 3200, data_bytes: int | None = None,
               format_tag: int = 1) -> bytes:
  """A hand-made RIFF/WAVE file whose header says whatever it is told."""
  size = len(data) if data_bytes is None else data_bytes
  block = max(channels * bits // 8, 1)
  fmt = struct.pack('<IHHIIHH', 16, format_tag, channels, rate,
                    (rate * block) & 0xFFFFFFFF, block, bits)
  return (b'RIFF' + struct.pack('<I', (36 + size) & 0xFFFFFFFF) + b'WAVE' +
          b'fmt ' + fmt + b'data' + struct.pack('<I', size & 0xFFFFFFFF) +
          data)


def _write(path: pathlib.Path, audio: np.ndarray, rate: int,
           subtype: str) -> None:
  # Through a Python file: soundfile cannot open names that are not UTF-8.
  with open(path, 'wb') as f:
    sf.write(f, audio, rate, subtype=subtype, format='WAV')


def write_corpus(folder: str | os.PathLike[str],
                 suffix: str = '_nohash_0') -> dict[str, str]:
  """Writes every case into `folder`; returns {file name: GOOD or BAD}.

  Good clips hold a 440 Hz tone (0.5 amplitude) so their content is known.
  File names end in `suffix` + '.wav' (the Speech Commands speaker marker)
  except the two odd names.
  """
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  cases = {}

  def good(name, audio, rate=SAMPLE_RATE, subtype='PCM_16'):
    _write(folder / name, audio, rate, subtype)
    cases[name] = GOOD

  def bad(name, data: bytes):
    (folder / name).write_bytes(data)
    cases[name] = BAD

  n = lambda stem: f'{stem}{suffix}.wav'
  # Rates, channels, sample formats and lengths.
  for rate in (8000, 22050, 48000):
    good(n(f'rate{rate}'), tone(1.0, rate), rate)
  good(n('stereo'), tone(1.0, SAMPLE_RATE, channels=2))
  good(n('six_channels'), tone(0.5, SAMPLE_RATE, channels=6))
  for subtype in ('PCM_U8', 'PCM_24', 'PCM_32', 'FLOAT', 'DOUBLE'):
    good(n(subtype.lower()), tone(1.0, SAMPLE_RATE), subtype=subtype)
  good(n('long3s'), tone(3.0, SAMPLE_RATE))
  good(n('short10ms'), tone(0.01, SAMPLE_RATE))
  good(n('loud_float'), 3.0 * tone(1.0, SAMPLE_RATE), subtype='FLOAT')
  good(SPACED_NAME, tone(1.0, SAMPLE_RATE))
  good(NON_UTF8_NAME, tone(1.0, SAMPLE_RATE))

  # Headers that promise more data than the file holds: what is there is
  # read (libsndfile's behaviour, and the useful one for a cut-off copy).
  whole = (folder / n('rate8000')).read_bytes()
  (folder / n('truncated_data')).write_bytes(whole[:4000])
  cases[n('truncated_data')] = GOOD
  (folder / n('oversized_data_chunk')).write_bytes(
      wav_header(SAMPLE_RATE, data=np.round(tone(0.1, SAMPLE_RATE) * 32767)
                 .astype('<i2').tobytes(), data_bytes=0xFFFFFFF0))
  cases[n('oversized_data_chunk')] = GOOD

  # Broken files.
  bad(n('truncated_header'), whole[:20])
  bad(n('corrupt_header'), b'RIFF' + bytes(range(40)) + whole[44:])
  bad(n('zero_length'), b'')
  bad(n('text'), b'this is not audio\n' * 20)
  bad(n('png'), b'\x89PNG\r\n\x1a\n' + bytes(200))
  bad(n('no_channels'), wav_header(SAMPLE_RATE, channels=0))
  bad(n('rate0'), wav_header(0))
  bad(n('rate1'), wav_header(1))
  bad(n('rate_huge'), wav_header(2**31 - 1))
  bad(n('no_samples'), wav_header(SAMPLE_RATE, data=b''))
  for value, stem in ((np.nan, 'nan'), (np.inf, 'inf')):
    audio = tone(1.0, SAMPLE_RATE)
    audio[100] = value
    _write(folder / n(stem), audio, SAMPLE_RATE, 'FLOAT')
    cases[n(stem)] = BAD
  os.symlink(folder / 'nowhere.wav', folder / n('dangling_link'))
  cases[n('dangling_link')] = BAD
  return cases


def good_names(cases: dict[str, str]) -> list[str]:
  return sorted(name for name, kind in cases.items() if kind == GOOD)


def bad_names(cases: dict[str, str]) -> list[str]:
  return sorted(name for name, kind in cases.items() if kind == BAD)
