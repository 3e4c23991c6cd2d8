"""A full-size stand-in of Speech Commands, made from any smaller copy.

The shared data holds about 13.5k clips; the full Speech Commands v0.02
about 105k. `make_standin` writes a folder of full size in the Speech
Commands layout from any folder in that layout: mildly augmented copies of
its clips (gain, time shift, faint noise), each copy under a speaker id of
its own, so that the hash split treats it as a new speaker.
`benchmarks/full_size_data.py` measures the input pipeline and training on
it (`benchmarks/full_size_measure.py`).
"""

import json
import multiprocessing
import os
import shutil
import time
from typing import Any, Iterator, Sequence
import zlib

from absl import logging
import numpy as np

from kws_jax import audio_io
from kws_jax import files
from kws_jax import speech_commands_builder

# Written last into a finished stand-in; holds its parameters and figures.
COMPLETE_MARKER = '.standin_complete'
# Written first; a stand-in with it but without COMPLETE_MARKER is resumed.
STARTED_MARKER = '.standin_started'
# The stand-in's clips: 16-bit mono WAV of this length at the sample rate.
CLIP_DURATION_MS = 1000.0
SAMPLE_RATE = 16000
# Augmentation of copies 1, 2, ... (copy 0 is the original): a gain
# uniform in +-GAIN_DB, a time shift uniform in +-SHIFT_MS (zero padded) and
# white noise at an RMS level uniform in NOISE_DBFS.
GAIN_DB = 6.0
SHIFT_MS = 100.0
NOISE_DBFS = (-70.0, -50.0)
# Source clips handed to a worker at a time, and seconds between progress
# lines while the stand-in is written.
_TASK_CHUNK = 32
_PROGRESS_SECONDS = 30.0
# Files copied from the source's top level as they are (the licence of the
# recordings travels with their copies).
_TOP_LEVEL_FILES = ('LICENSE',)
# Bytes of a RIFF/WAVE header written by libsndfile for 16-bit PCM.
_WAV_HEADER_BYTES = 44


def clip_bytes(sample_rate: int = SAMPLE_RATE) -> int:
  """Bytes of one stand-in clip on disk (16-bit PCM WAV)."""
  return _WAV_HEADER_BYTES + 2 * audio_io.samples_per_clip(sample_rate,
                                                           CLIP_DURATION_MS)


def copy_name(name: str, copy: int) -> str:
  """'<speaker>_nohash_<n>.flac', copy k -> '<speaker>v<k>_nohash_<n>.wav'.

  Each copy gets its own speaker id, so the hash split (`which_set`) keeps
  every clip of one stand-in speaker in one split. A name without
  '_nohash_' is taken as the speaker, with n = 0.
  """
  stem = os.path.splitext(name)[0]
  speaker, sep, rest = stem.partition('_nohash_')
  return f'{speaker}v{copy}_nohash_{rest if sep else 0}.wav'


def plan_copies(relpaths: Sequence[str], num_clips: int,
                seed: int = 0) -> dict[str, int]:
  """How many copies of each clip make `num_clips` in each word's share.

  Each word (the folder of 'word/file') gets `num_clips` times its share of
  the clips, rounded by largest remainder so the total is exact; within a
  word every clip gets the same number of copies, and the remainder goes to
  clips drawn with `seed` (so with fewer than the source's clips, a random
  subset is kept).

  Returns:
    {relpath: copies}, copies >= 0, summing to `num_clips`.
  """
  if num_clips < 0:
    raise ValueError(f'num_clips must be >= 0, got {num_clips}.')
  by_word: dict[str, list[str]] = {}
  for relpath in sorted(relpaths):
    by_word.setdefault(relpath.split('/', 1)[0], []).append(relpath)
  if not by_word:
    return {}
  words = sorted(by_word)
  sizes = np.array([len(by_word[w]) for w in words], np.float64)
  exact = num_clips * sizes / sizes.sum()
  quota = np.floor(exact).astype(np.int64)
  order = np.argsort(-(exact - quota), kind='stable')
  quota[order[:num_clips - int(quota.sum())]] += 1
  copies = {}
  for word, total in zip(words, quota):
    clips = by_word[word]
    base, extra = divmod(int(total), len(clips))
    rng = np.random.default_rng([seed, zlib.crc32(word.encode(
        'utf-8', 'surrogateescape'))])
    for rank, index in enumerate(rng.permutation(len(clips))):
      copies[clips[index]] = base + (rank < extra)
  return copies


def augment_copy(audio: np.ndarray, rng: np.random.Generator,
                 sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """A mildly changed copy of a clip: gain, time shift and faint noise.

  Args:
    audio: float32 [L] in [-1, 1].
    rng: draws the gain (+-GAIN_DB), the shift (+-SHIFT_MS, zero padded)
      and the noise level (NOISE_DBFS, RMS).
    sample_rate: Hz, to turn SHIFT_MS into samples.

  Returns:
    float32 [L] in [-1, 1].
  """
  gain = 10 ** (rng.uniform(-GAIN_DB, GAIN_DB) / 20)
  max_shift = int(sample_rate * SHIFT_MS / 1000)
  shift = int(rng.integers(-max_shift, max_shift + 1))
  shifted = np.zeros_like(audio)
  if shift >= 0:
    shifted[shift:] = audio[:len(audio) - shift]
  else:
    shifted[:shift] = audio[-shift:]
  noise = 10 ** (rng.uniform(*NOISE_DBFS) / 20) * rng.standard_normal(
      len(audio))
  return np.clip(shifted * gain + noise, -1.0, 1.0).astype(np.float32)


def _copy_rng(seed: int, relpath: str, copy: int) -> np.random.Generator:
  return np.random.default_rng(
      [seed, zlib.crc32(relpath.encode('utf-8', 'surrogateescape')), copy])


def _write_copies(task: tuple[str, str, str, int, int, int]
                  ) -> tuple[int, str | None]:
  """Writes the copies of one source clip that do not exist yet.

  Returns:
    (files written, None) or (0, why the source clip is unreadable).
  """
  source, relpath, out, copies, seed, sample_rate = task
  folder, name = relpath.split('/', 1)
  todo = [(k, os.path.join(out, folder, copy_name(name, k)))
          for k in range(copies)]
  # Files are renamed into place when complete, so one that exists is done.
  todo = [(k, path) for k, path in todo if not os.path.exists(path)]
  if not todo:
    return 0, None
  try:
    audio = audio_io.read_audio(os.path.join(source, relpath), sample_rate)
  except audio_io.AudioError as e:
    return 0, str(e)
  audio = audio_io.fit_length(
      audio, audio_io.samples_per_clip(sample_rate, CLIP_DURATION_MS))
  for k, path in todo:
    copy = audio if k == 0 else augment_copy(
        audio, _copy_rng(seed, relpath, k), sample_rate)
    audio_io.write_wav(path, copy, sample_rate)
  return len(todo), None


def _copy_file(source: str, destination: str) -> None:
  """Copies a file whole or not at all; one of the same size is taken as
  copied (a resumed run)."""
  if (os.path.isfile(destination) and
      os.path.getsize(destination) == os.path.getsize(source)):
    return
  with files.atomic_path(destination) as temporary:
    shutil.copyfile(source, temporary)


def _inside(path: str, folder: str) -> bool:
  return os.path.commonpath([path, folder]) == folder


def _read_json(path: str) -> dict[str, Any] | None:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _write_json(path: str, value: Any) -> None:
  files.write_atomic(path, json.dumps(value, indent=2) + '\n')


def _start_folder(out: str, params: dict[str, Any]) -> None:
  """Makes `out` ready: new, resumed (same parameters) or emptied."""
  if os.path.isdir(out) and os.listdir(out):
    started = _read_json(os.path.join(out, STARTED_MARKER))
    if not started and not os.path.exists(os.path.join(out, COMPLETE_MARKER)):
      raise ValueError(
          f'--standin_dir={out} is a folder that holds other files, not a '
          f'stand-in ({COMPLETE_MARKER} or {STARTED_MARKER} missing); choose '
          'a new or empty folder.')
    if started and started.get('params') == params:
      logging.info('Resuming the stand-in in %s.', out)
    else:
      logging.info('Removing the stand-in in %s (other parameters).', out)
      shutil.rmtree(out)
  os.makedirs(out, exist_ok=True)
  if os.path.exists(os.path.join(out, COMPLETE_MARKER)):
    os.remove(os.path.join(out, COMPLETE_MARKER))
  _write_json(os.path.join(out, STARTED_MARKER), {'params': params})


def _remove_temporaries(out: str) -> None:
  # Left by an interrupted run; hidden, so TFDS would skip them anyway.
  for folder, _, names in os.walk(out):
    for name in names:
      if name.startswith('.') and name.endswith('.tmp'):
        os.remove(os.path.join(folder, name))


def count_standin(out: str) -> tuple[dict[str, int], int, int]:
  """({word folder: clips}, background files, bytes of all visible files)."""
  words, background, size = {}, 0, 0
  for entry in os.scandir(out):
    if entry.name.startswith('.'):
      continue
    if entry.is_file():
      size += entry.stat().st_size
      continue
    files = [f for f in os.scandir(entry.path)
             if f.is_file() and not f.name.startswith('.')]
    size += sum(f.stat().st_size for f in files)
    if entry.name.lower() == speech_commands_builder.BACKGROUND_NOISE_DIR:
      background = len(files)
    elif not entry.name.startswith('_'):
      words[entry.name] = len(files)
  return words, background, size


def make_standin(source: str, out: str, num_clips: int, seed: int = 0,
                 workers: int = 2,
                 sample_rate: int = SAMPLE_RATE) -> dict[str, Any]:
  """Writes a stand-in of `num_clips` word clips made from `source`.

  Every word clip of `source` (WAV or FLAC, in word folders: those not
  starting with '_') is copied `plan_copies` times into `out`, copy k of
  `<word>/<speaker>_nohash_<n>` as `<word>/<speaker>v<k>_nohash_<n>.wav`:
  16-bit mono WAV at `sample_rate`, fitted to CLIP_DURATION_MS; copy 0 is
  the clip itself, later copies go through `augment_copy` with a generator
  seeded by (`seed`, the clip's path, k). `_background_noise_/` and the
  licence are copied as they are; no split lists are written, so the
  stand-in is split by name hash like the full data set without lists.

  Files are written under temporary names and renamed into place, and
  `COMPLETE_MARKER` is written last: a finished stand-in with the same
  parameters is reused as it is, an interrupted one is resumed.

  Args:
    source: a folder in the Speech Commands layout.
    out: the stand-in's folder: new, empty, or a stand-in made here.
    num_clips: word clips to write.
    seed: seeds which clips get the extra copies and the augmentation.
    workers: processes writing files (1: this process).
    sample_rate: Hz of the written clips.

  Returns:
    {'clips': written word clips, 'words': {word: clips},
    'background_files', 'bytes' (all visible files in `out`), 'seconds',
    'unreadable' ([[clip, reason]]), 'reused' (True when a finished stand-in
    was found), 'source', 'num_clips', 'seed'}.

  Raises:
    FileNotFoundError: `source` is not a folder.
    ValueError: `source` has no word clips, `num_clips` < 1, `out` and
      `source` overlap, or `out` holds files that are not a stand-in.
  """
  started = time.time()
  if num_clips < 1:
    raise ValueError(f'--num_clips={num_clips}: must be at least 1.')
  if not os.path.isdir(source):
    raise FileNotFoundError(
        f'--source={source}: no such folder; give a folder in the Speech '
        'Commands layout or an archive of one.')
  source, out = os.path.realpath(source), os.path.realpath(out)
  if _inside(out, source) or _inside(source, out):
    raise ValueError(f'--standin_dir={out} and --source={source} overlap; '
                     'write the stand-in to a folder of its own.')
  params = {'source': source, 'num_clips': num_clips, 'seed': seed,
            'sample_rate': sample_rate}
  done = _read_json(os.path.join(out, COMPLETE_MARKER))
  if done and done.get('params') == params:
    logging.info('Reusing the stand-in in %s (%s).', out, COMPLETE_MARKER)
    return {**done['figures'], 'reused': True}

  clips, _ = speech_commands_builder.scan_source(source)
  if not clips:
    raise ValueError(
        f'--source={source} holds no word clips: no .wav or .flac files in '
        'folders whose names do not start with "_".')
  copies = plan_copies([c.relpath for c in clips], num_clips, seed)
  _start_folder(out, params)
  _remove_temporaries(out)
  for folder in {relpath.split('/', 1)[0] for relpath in copies}:
    os.makedirs(os.path.join(out, folder), exist_ok=True)
  tasks = [(source, relpath, out, n, seed, sample_rate)
           for relpath, n in sorted(copies.items()) if n]
  logging.info('Writing %d clips from %d of %d source clips of %s into %s '
               'with %d workers.', num_clips, len(tasks), len(clips), source,
               out, workers)
  unreadable, done_tasks, last_log = [], 0, time.time()

  def consume(results: Iterator[tuple[int, str | None]]) -> None:
    nonlocal done_tasks, last_log
    for (_, relpath, *_), (_, error) in zip(tasks, results):
      done_tasks += 1
      if error:
        logging.warning('Skipping unreadable clip %s', error)
        unreadable.append([relpath, error])
      if time.time() - last_log > _PROGRESS_SECONDS:
        last_log = time.time()
        logging.info('%d of %d source clips copied (%.0f s).', done_tasks,
                     len(tasks), last_log - started)

  if workers <= 1:
    consume(map(_write_copies, tasks))
  else:
    # 'spawn': fresh workers, also when the caller has TensorFlow's threads.
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
      # imap keeps the order, so results pair with their tasks.
      consume(pool.imap(_write_copies, tasks, chunksize=_TASK_CHUNK))

  for name in os.listdir(source):
    path = os.path.join(source, name)
    if name.lower() == speech_commands_builder.BACKGROUND_NOISE_DIR:
      os.makedirs(os.path.join(out, name), exist_ok=True)
      for recording in sorted(os.listdir(path)):
        if not recording.startswith('.') and os.path.isfile(
            os.path.join(path, recording)):
          _copy_file(os.path.join(path, recording),
                     os.path.join(out, name, recording))
    elif name in _TOP_LEVEL_FILES and os.path.isfile(path):
      _copy_file(path, os.path.join(out, name))

  words, background, size = count_standin(out)
  figures = {
      'source': source, 'num_clips': num_clips, 'seed': seed,
      'clips': sum(words.values()), 'words': words,
      'background_files': background, 'bytes': size,
      'seconds': time.time() - started, 'unreadable': unreadable,
  }
  _write_json(os.path.join(out, COMPLETE_MARKER),
              {'params': params, 'figures': figures})
  os.remove(os.path.join(out, STARTED_MARKER))
  logging.info('Stand-in: %d clips, %.2f GB, %.0f s.', figures['clips'],
               size / 1e9, figures['seconds'])
  return {**figures, 'reused': False}
