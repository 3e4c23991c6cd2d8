"""Shared test fixtures: a tiny generated Speech Commands folder."""

import hashlib
import os
import pathlib
from typing import Sequence

# The tests' programs are small and run a few steps, so XLA's compile time
# dominates them: most of its optimizations cost more than they save here
# (as in the Flax examples' tests). Set before JAX is imported, in the
# environment, so that the command-line tools the tests start inherit it.
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')

import numpy as np
import pytest
import soundfile as sf

from kws_jax import speech_commands_builder

SAMPLE_RATE = 16000
DEFAULT_WORDS = ('yes', 'no', 'up', 'cat')
# Words written as FLAC (the rest as WAV), as in the project's dev archive.
_FLAC_WORDS = ('no', 'cat')


def _speakers() -> dict[str, list[str]]:
  """Speaker ids whose hash split (10%/10%) is 3 training, 1 + 1 others.

  Picked from a fixed sequence of ids so that the hash split of the folder
  has clips in every set, like the lists written with `with_lists`.
  """
  want = {'training': 3, 'validation': 1, 'testing': 1}
  found = {k: [] for k in want}
  i = 0
  while any(len(found[k]) < n for k, n in want.items()):
    speaker = hashlib.md5(str(i).encode()).hexdigest()[:8]
    which = speech_commands_builder.which_set(
        f'{speaker}_nohash_0.wav', 10, 10)
    if len(found[which]) < want[which]:
      found[which].append(speaker)
    i += 1
  return found


SPEAKERS = _speakers()


def _clip(rng: np.random.Generator, word_index: int,
          num_samples: int) -> np.ndarray:
  # A tone per word plus a little noise: learnable, yet not silent.
  t = np.arange(num_samples) / SAMPLE_RATE
  freq = 300.0 + 250.0 * word_index
  tone = 0.3 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
  return (tone + 0.01 * rng.standard_normal(num_samples)).astype(np.float32)


def make_speech_commands_dir(root: str | os.PathLike[str],
                             words: Sequence[str] = DEFAULT_WORDS,
                             clips_per_word: int = 10,
                             with_lists: bool = False) -> pathlib.Path:
  """Writes a tiny Speech Commands folder and returns its path.

  Layout: `<root>/<word>/<speaker>_nohash_<n>.{wav,flac}` for each word
  (clips of 0.75 s to 1 s, 16 kHz, a tone per word), five speakers whose
  hash split puts three in training and one each in validation and testing,
  and `_background_noise_/` with two 3 s noise recordings (WAV and FLAC).
  With `with_lists`, `validation_list.txt` and `testing_list.txt` name the
  validation and testing speakers' clips (always with a .wav extension, as
  in the official lists).

  Args:
    root: the folder to fill (created if needed).
    words: word folders to write.
    clips_per_word: clips in each word folder, spread over the speakers.
    with_lists: also write the split lists.
  """
  root = pathlib.Path(root)
  rng = np.random.default_rng(0)
  speakers = [s for group in SPEAKERS.values() for s in group]
  lists = {'validation': [], 'testing': []}
  for word_index, word in enumerate(words):
    (root / word).mkdir(parents=True, exist_ok=True)
    ext = 'flac' if word in _FLAC_WORDS else 'wav'
    for n in range(clips_per_word):
      speaker = speakers[n % len(speakers)]
      name = f'{speaker}_nohash_{n // len(speakers)}'
      num_samples = int(SAMPLE_RATE * rng.uniform(0.75, 1.0))
      sf.write(root / word / f'{name}.{ext}',
               _clip(rng, word_index, num_samples), SAMPLE_RATE,
               subtype='PCM_16')
      for which in lists:
        if speaker in SPEAKERS[which]:
          lists[which].append(f'{word}/{name}.wav')
  noise_dir = root / speech_commands_builder.BACKGROUND_NOISE_DIR
  noise_dir.mkdir(parents=True, exist_ok=True)
  for i, ext in enumerate(('wav', 'flac')):
    noise = 0.2 * rng.standard_normal(3 * SAMPLE_RATE)
    sf.write(noise_dir / f'noise_{i}.{ext}',
             np.clip(noise, -1, 1).astype(np.float32), SAMPLE_RATE,
             subtype='PCM_16')
  if with_lists:
    (root / 'validation_list.txt').write_text(
        '\n'.join(lists['validation']) + '\n')
    (root / 'testing_list.txt').write_text('\n'.join(lists['testing']) + '\n')
  return root


@pytest.fixture
def tiny_data_dir(tmp_path: pathlib.Path) -> pathlib.Path:
  """A fresh tiny Speech Commands folder (yes, no, up, cat) per test."""
  return make_speech_commands_dir(tmp_path / 'speech_commands')


@pytest.fixture(scope='session')
def shared_tiny_data(
    tmp_path_factory: pytest.TempPathFactory
) -> tuple[pathlib.Path, pathlib.Path]:
  """(data folder, TFDS folder) shared by every test of the session.

  The folder is `tiny_data_dir`'s; TFDS prepares it into the TFDS folder
  once per setting (clip length, split percentages) instead of once per
  test. For tests that only read the data: one that changes the folder or
  the prepared files takes `tiny_data_dir` and a TFDS folder of its own.
  """
  root = tmp_path_factory.mktemp('shared_tiny_data')
  return make_speech_commands_dir(root / 'speech_commands'), root / 'tfds'
