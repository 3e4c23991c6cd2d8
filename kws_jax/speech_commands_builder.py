"""A TFDS builder for any folder laid out like Speech Commands.

The layout is one folder per word holding `*.wav` / `*.flac` clips, a
`_background_noise_/` folder of long recordings, and optionally
`validation_list.txt` and `testing_list.txt` naming `word/clip` paths. This
covers the official archives, the project's FLAC dev slice and users' own
recordings, and works offline.

Examples are stored as int16 at the config's sample rate; word clips are
fitted to the clip length. The builder config's name is a fingerprint of the
settings and of the folder's file listing, so TFDS reuses prepared data until
the data or the settings change.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import os
from typing import Iterator

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from kws_jax import audio_io

# The tutorial's cap on clips per word; `which_set` depends on it.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
BACKGROUND_NOISE_DIR = '_background_noise_'
VALIDATION_LIST = 'validation_list.txt'
TESTING_LIST = 'testing_list.txt'
# TFDS split names; `which_set` answers in the tutorial's words.
SPLIT_NAMES = {'training': 'train', 'validation': 'validation',
               'testing': 'test'}
BACKGROUND_SPLIT = 'background'

_NOHASH = '_nohash_'
# Reading is I/O and libsndfile bound and releases the GIL.
_READ_THREADS = 4
_READ_CHUNK = 256


def speaker_id(filename: str) -> str | None:
  """The speaker of a clip: its base name before `_nohash_`.

  Speech Commands names its clips `<speaker>_nohash_<n>.wav`.

  Returns:
    The part before the first `_nohash_`, or None when there is none.
  """
  speaker, nohash, _ = os.path.basename(filename).partition(_NOHASH)
  return speaker if nohash else None


def _name_hash(name: str) -> int:
  # surrogateescape: a name that is not UTF-8 hashes as its bytes on disk.
  return int(hashlib.sha1(
      name.encode('utf-8', 'surrogateescape')).hexdigest(), 16)


def which_set(filename: str, validation_percentage: float,
              testing_percentage: float) -> str:
  """Assigns a clip to 'training', 'validation' or 'testing' by name hash.

  The same split rule as the TensorFlow tutorial, so splits agree with it:
  the hash is of the speaker (`speaker_id`), so all clips of one speaker
  land in the same set; a name without `_nohash_` hashes whole.

  Args:
    filename: a clip path; only its base name matters.
    validation_percentage: share of clips for validation, in percent.
    testing_percentage: share of clips for testing, in percent.

  Returns:
    'training', 'validation' or 'testing'.
  """
  speaker = speaker_id(filename)
  hash_name = os.path.basename(filename) if speaker is None else speaker
  percentage_hash = ((_name_hash(hash_name) % (MAX_NUM_WAVS_PER_CLASS + 1)) *
                     (100.0 / MAX_NUM_WAVS_PER_CLASS))
  if percentage_hash < validation_percentage:
    return 'validation'
  if percentage_hash < testing_percentage + validation_percentage:
    return 'testing'
  return 'training'


def speaker_group(speaker: str, num_groups: int) -> int:
  """Which of `num_groups` disjoint speaker groups `speaker` is in, 1-based.

  A hash of the speaker id (`speaker_id`), so a speaker is always in the
  same group, whatever the other clips.
  """
  return _name_hash(speaker) % num_groups + 1


@dataclasses.dataclass(frozen=True)
class _Clip:
  """One audio file found in the source folder."""
  relpath: str  # 'word/file.ext' with '/' separators, as on disk.
  word: str  # Lower-cased folder name.


def _is_audio(name: str) -> bool:
  return name.lower().endswith(audio_io.AUDIO_EXTENSIONS)


def _is_hidden(name: str) -> bool:
  return name.startswith('.')


def _audio_entries(source_dir: str
                   ) -> Iterator[tuple[_Clip, os.DirEntry]]:
  """Every word clip and background recording with its directory entry,
  sorted by path (see `scan_source`)."""
  if not os.path.isdir(source_dir):
    raise FileNotFoundError(
        f'Data folder {source_dir} does not exist; set data_dir to a folder '
        'in the Speech Commands layout or data_url to an archive of one.')
  with os.scandir(source_dir) as it:
    folders = sorted((e for e in it if e.is_dir()), key=lambda e: e.name)
  for folder in folders:
    word = folder.name.lower()
    if _is_hidden(folder.name) or (word != BACKGROUND_NOISE_DIR and
                                   word.startswith('_')):
      continue
    # scandir's entries know their type without a system call per file,
    # which matters at 100k files.
    with os.scandir(folder.path) as it:
      entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
      # Hidden files (e.g. macOS '._x.wav' resource forks) are not clips.
      # Links that lead nowhere are kept, to be reported as unreadable.
      if (_is_audio(entry.name) and not _is_hidden(entry.name) and
          (entry.is_file() or entry.is_symlink())):
        yield _Clip(f'{folder.name}/{entry.name}', word), entry


def scan_source(source_dir: str) -> tuple[list[_Clip], list[_Clip]]:
  """Lists word clips and background recordings, sorted by path.

  Args:
    source_dir: a folder in the Speech Commands layout.

  Returns:
    (word clips, background recordings). Folders starting with '_' or '.' are
    not words; only `_background_noise_` is read (as background).

  Raises:
    FileNotFoundError: `source_dir` is not a folder.
  """
  clips, background = [], []
  for clip, _ in _audio_entries(source_dir):
    (background if clip.word == BACKGROUND_NOISE_DIR else clips).append(clip)
  return clips, background


def _listing_fingerprint(source_dir: str) -> str:
  """SHA-1 over (path, size, mtime) of every file the builder reads."""
  files = [(clip.relpath, entry) for clip, entry in
           _audio_entries(source_dir)]
  for name in (VALIDATION_LIST, TESTING_LIST):
    path = os.path.join(source_dir, name)
    if os.path.isfile(path):
      files.append((name, path))
  digest = hashlib.sha1()
  for relpath, entry in sorted(files, key=lambda f: f[0]):
    try:
      stat = os.stat(entry)  # A path or a DirEntry (one call either way).
    except FileNotFoundError:
      # A link that leads nowhere has no target to describe; its own entry
      # does.
      stat = os.lstat(os.path.join(source_dir, relpath))
    digest.update(f'{relpath}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode(
        'utf-8', 'surrogateescape'))
  return digest.hexdigest()


@dataclasses.dataclass
class SpeechCommandsLocalConfig(tfds.core.BuilderConfig):
  """Where the clips are and how to prepare them.

  Build it with `make_config`, which names it by a fingerprint.
  """
  source_dir: str = ''
  sample_rate: int = 16000
  clip_duration_ms: float = 1000.0
  validation_percentage: float = 10.0
  testing_percentage: float = 10.0

  @property
  def clip_samples(self) -> int:
    return audio_io.samples_per_clip(self.sample_rate, self.clip_duration_ms)


def make_config(source_dir: str, *, sample_rate: int, clip_duration_ms: float,
                validation_percentage: float,
                testing_percentage: float) -> SpeechCommandsLocalConfig:
  """Returns a builder config named by the settings and the data listing.

  Args:
    source_dir: a folder in the Speech Commands layout.
    sample_rate: Hz the audio is stored at.
    clip_duration_ms: word clips are padded/cropped to this length.
    validation_percentage: used only when the folder has no split lists.
    testing_percentage: likewise.
  """
  source_dir = os.path.abspath(os.path.expanduser(source_dir))
  settings = dict(source_dir=source_dir, sample_rate=int(sample_rate),
                  clip_duration_ms=float(clip_duration_ms),
                  validation_percentage=float(validation_percentage),
                  testing_percentage=float(testing_percentage))
  digest = hashlib.sha1(
      (json.dumps(settings, sort_keys=True) +
       _listing_fingerprint(source_dir)).encode()).hexdigest()
  return SpeechCommandsLocalConfig(
      name=f'sr{int(sample_rate)}_{digest[:20]}',
      description=(
          f'{source_dir} at {sample_rate} Hz, {clip_duration_ms} ms clips, '
          f'hash split {validation_percentage}%/{testing_percentage}% when '
          'there are no lists.'),
      **settings)


def read_split_list(path: str) -> set[str] | None:
  """Reads a split list (`validation_list.txt`, `testing_list.txt`).

  Returns:
    Its entries as `split_list_key`s, or None if there is no such file.
  """
  if not os.path.isfile(path):
    return None
  # surrogateescape: entries match file names that are not UTF-8 byte for
  # byte, and a stray byte in the list does not stop the run.
  with open(path, encoding='utf-8', errors='surrogateescape') as f:
    return {split_list_key(line) for line in f if line.strip()}


def split_list_key(relpath: str) -> str:
  """'Word/clip.wav' → 'word/clip', how a list entry and a clip are matched.

  Lists may say .wav where the folder holds .flac, and folders are matched
  lower-cased like the words themselves.
  """
  folder, _, name = relpath.strip().replace('\\', '/').partition('/')
  return f'{folder.lower()}/{os.path.splitext(name)[0]}'


def assign_splits(source_dir: str, clips: list[_Clip],
                  validation_percentage: float,
                  testing_percentage: float) -> tuple[dict[str, list[_Clip]],
                                                      str]:
  """Splits word clips into TFDS 'train'/'validation'/'test'.

  Returns:
    ({split: clips}, method) where method is 'lists' or 'hash'.
  """
  validation = read_split_list(os.path.join(source_dir, VALIDATION_LIST))
  testing = read_split_list(os.path.join(source_dir, TESTING_LIST))
  splits = {name: [] for name in SPLIT_NAMES.values()}
  if validation is None and testing is None:
    for clip in clips:
      which = which_set(clip.relpath, validation_percentage,
                        testing_percentage)
      splits[SPLIT_NAMES[which]].append(clip)
    return splits, 'hash'
  if validation is None or testing is None:
    logging.warning(
        'Only one of %s and %s is in %s; the other split gets no clips.',
        VALIDATION_LIST, TESTING_LIST, source_dir)
  validation, testing = validation or set(), testing or set()
  for clip in clips:
    key = split_list_key(clip.relpath)
    if key in validation:
      splits['validation'].append(clip)
    elif key in testing:
      splits['test'].append(clip)
    else:
      splits['train'].append(clip)
  return splits, 'lists'


class SpeechCommandsLocal(tfds.core.GeneratorBasedBuilder):
  """Speech Commands layout folder → train/validation/test/background."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First version.'}
  BUILDER_CONFIG_CLS = SpeechCommandsLocalConfig

  @property
  def _config(self) -> SpeechCommandsLocalConfig:
    config = self.builder_config
    if not isinstance(config, SpeechCommandsLocalConfig):
      raise ValueError(
          'SpeechCommandsLocal needs config=make_config(source_dir, ...).')
    return config

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            'Keyword clips from a local folder in the Speech Commands '
            'layout. `audio` is int16 PCM (full scale 32768); `word` is the '
            'lower-cased folder name; `name` is the path in the folder. The '
            "'background' split holds the whole _background_noise_ "
            'recordings.'),
        features=tfds.features.FeaturesDict({
            # Raw bytes: far smaller and faster to decode than int64 lists.
            'audio': tfds.features.Tensor(
                shape=(None,), dtype=np.int16, encoding='bytes'),
            'word': tfds.features.Text(),
            'name': tfds.features.Text(),
        }),
        # Filled during generation: what was skipped and how it was split.
        metadata=tfds.core.MetadataDict(),
        homepage='https://arxiv.org/abs/1804.03209',
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # The data is local.
    config = self._config
    clips, background = scan_source(config.source_dir)
    splits, method = assign_splits(
        config.source_dir, clips, config.validation_percentage,
        config.testing_percentage)
    splits[BACKGROUND_SPLIT] = background
    metadata = self.info.metadata
    metadata['source_dir'] = config.source_dir
    metadata['split_method'] = method
    metadata['skipped'] = []
    logging.info(
        'Preparing %s: %s (split by %s).', config.source_dir,
        ', '.join(f'{k} {len(v)} files' for k, v in splits.items()), method)
    # TFDS refuses empty splits; a missing split simply has no examples.
    return {name: self._generate_examples(split_clips, name)
            for name, split_clips in splits.items() if split_clips}

  def _generate_examples(self, clips: list[_Clip],
                         split: str) -> Iterator[tuple[str, dict]]:
    config = self._config
    fit = split != BACKGROUND_SPLIT

    def load(clip: _Clip) -> np.ndarray | audio_io.AudioError:
      try:
        audio = audio_io.read_audio(
            os.path.join(config.source_dir, clip.relpath),
            config.sample_rate)
      except audio_io.AudioError as e:
        return e
      if fit:
        audio = audio_io.fit_length(audio, config.clip_samples)
      return audio_io.to_int16(audio)

    with concurrent.futures.ThreadPoolExecutor(_READ_THREADS) as pool:
      # Chunks bound the decoded audio held ahead of the TFDS writer.
      loaded = (
          zip(chunk, pool.map(load, chunk))
          for chunk in (clips[i:i + _READ_CHUNK]
                        for i in range(0, len(clips), _READ_CHUNK)))
      for clip, audio in (pair for chunk in loaded for pair in chunk):
        # TFDS stores names as UTF-8; undecodable bytes become \x escapes.
        name = audio_io.printable_path(clip.relpath)
        if isinstance(audio, audio_io.AudioError):
          logging.warning('Skipping unreadable clip: %s', audio)
          self.info.metadata['skipped'].append([name, str(audio)])
          continue
        yield name, {'audio': audio, 'word': audio_io.printable_path(
            clip.word), 'name': name}
