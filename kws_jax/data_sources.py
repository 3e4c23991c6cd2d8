"""Speech Commands clips from disk into memory, as they are stored.

`load` fetches (`download`), prepares (once; TFDS caches it) and reads one
config's data: a local folder in the Speech Commands layout through our
TFDS builder (`speech_commands_builder`), or TFDS's own `speech_commands`;
the training clips of `config.synthetic_dir`; the background recordings.
With `config.unseen_words_fold` it takes that fold's unknown words out of
everything and returns their clips apart.

At full size (about 105k clips, 3.4 GB as int16) the clips are held once:
the first load saves each split, sorted by name, beside the TFDS files
(`arrays/`), later runs memory-map it.

What this module does not do: the tutorial's class mix, silence and the
batches (`input_pipeline`).
"""

import collections
import contextlib
import dataclasses
import io
import json
import os
import time
from typing import Any, Sequence

from absl import logging
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from kws_jax import audio_io
from kws_jax import download
from kws_jax import files
from kws_jax import labels as labels_lib
from kws_jax import speech_commands_builder
from kws_jax import tf_setup

# The word splits, by TFDS split name.
SPLITS = ('train', 'validation', 'test')
# Starts the name of every synthetic clip (`Clips.names`).
SYNTHETIC_PREFIX = 'synthetic/'
# Clips decoded at a time when loading prepared data.
_LOAD_CHUNK = 1024
# Beside each prepared TFDS dataset: its splits as sorted arrays, so later
# runs load them at disk speed instead of decoding every example again.
_ARRAYS_DIR = 'arrays'


class DataError(ValueError):
  """The data cannot serve the config: a folder is missing, a wanted word
  has no clips, a split is empty. The message names the data and what to
  change."""


@dataclasses.dataclass
class Clips:
  """One split as stored: fixed-length clips and their word or label."""
  audio: np.ndarray  # int16 [N, L]
  label: np.ndarray  # int32 [N], indices into the config's labels
  names: list[str]  # Paths relative to the data folder.
  words: list[str]  # The word of each clip (its folder).

  def subset(self, rows: np.ndarray) -> 'Clips':
    return Clips(np.asarray(self.audio[rows]), self.label[rows],
                 [self.names[i] for i in rows],
                 [self.words[i] for i in rows])


def empty_clips(length: int) -> Clips:
  """No clips of `length` samples."""
  return Clips(np.zeros((0, length), np.int16), np.zeros(0, np.int32), [],
               [])


@dataclasses.dataclass
class Loaded:
  """One config's data as stored, before the class mix.

  Attributes:
    splits: {'train', 'validation', 'test': Clips}, without the unseen
      fold's words.
    synthetic: training clips from `config.synthetic_dir` (maybe none).
    unseen: every recorded clip (all splits) of the unseen fold's words;
      labelled `_unknown_`.
    background_clips: float32 recordings in [-1, 1] at the config's rate.
    info: 'data_source', 'data_dir', 'tfds_dir', 'split_method',
      'skipped_files' ([[name, reason]]), 'num_skipped', 'prepare_seconds',
      'load_seconds'.
  """
  splits: dict[str, Clips]
  synthetic: Clips
  unseen: Clips
  background_clips: list[np.ndarray]
  info: dict[str, Any]


def load(config: ml_collections.ConfigDict, labels: list[str],
         length: int) -> Loaded:
  """Fetches, prepares (once) and reads the data of `config`.

  Args:
    config: uses data_url, data_sha256, data_dir, data_source,
      tfds_data_dir, sample_rate, clip_duration_ms, validation_percentage,
      testing_percentage, synthetic_dir, synthetic_unknown and
      unseen_words_fold.
    labels: the classes (`labels.prepare_words_list`).
    length: samples per clip.

  Raises:
    DataError: the data cannot serve the config (the message says what to
      change).
    ValueError: an unknown `config.data_source`.
  """
  # The data is read on the CPU; TF must not take accelerator memory that
  # JAX needs.
  tf_setup.hide_gpus_from_tf(tf)
  if config.data_source == 'tfds':
    splits, background_clips, info = _load_official(config, labels, length)
    synthetic = load_synthetic(config, labels, length)
  elif config.data_source == 'local':
    synthetic = load_synthetic(config, labels, length)
    splits, background_clips, info = _load_local(
        config, labels, length,
        synthetic_words=collections.Counter(labels[i] for i in synthetic.label))
  else:
    raise ValueError(f"config.data_source={config.data_source!r}; use 'local' "
                     "or 'tfds'.")
  splits, synthetic, unseen = _leave_out_unseen_fold(splits, synthetic, config)
  return Loaded(splits, synthetic, unseen, background_clips, info)


def _leave_out_unseen_fold(raw: dict[str, Clips], synthetic: Clips,
                           config: ml_collections.ConfigDict
                           ) -> tuple[dict[str, Clips], Clips, Clips]:
  """Takes the words of `config.unseen_words_fold` out of every split.

  Returns the splits and synthetic clips without them, and all their
  recorded clips (every split) as one `Clips`; the synthetic clips of those
  words are dropped, so nothing of them is trained on.
  """
  length = next(iter(raw.values())).audio.shape[1]
  fold = labels_lib.parse_unseen_fold(config.unseen_words_fold)
  if fold is None:
    return raw, synthetic, empty_clips(length)
  counts = collections.Counter(
      w for r in raw.values() for w, l in zip(r.words, r.label)
      if l == labels_lib.UNKNOWN_INDEX)
  index, num_folds = fold
  try:
    left_out = labels_lib.unknown_word_fold(counts, fold,
                                            'config.unseen_words_fold')
  except ValueError as e:
    raise DataError(str(e)) from None
  logging.info('Unseen-words fold %d of %d: leaving out %s (%d clips).',
               index, num_folds, ', '.join(sorted(left_out)),
               sum(counts[w] for w in left_out))
  kept, unseen = {}, []
  for split, r in raw.items():
    out = np.array([w in left_out for w in r.words], bool)
    kept[split] = r.subset(np.flatnonzero(~out))
    unseen.append(r.subset(np.flatnonzero(out)))
  synthetic = synthetic.subset(np.flatnonzero(
      [w not in left_out for w in synthetic.words]))
  return kept, synthetic, Clips(
      np.concatenate([u.audio for u in unseen]),
      np.concatenate([u.label for u in unseen]),
      [n for u in unseen for n in u.names],
      [w for u in unseen for w in u.words])


def _label_words(words: Sequence[str], labels: list[str]) -> np.ndarray:
  index = {word: i for i, word in enumerate(labels) if i >= 2}
  return np.array([index.get(w, labels_lib.UNKNOWN_INDEX) for w in words],
                  np.int32)


def _prepare(builder: tfds.core.DatasetBuilder) -> None:
  """`builder.download_and_prepare()` without TFDS's progress bars and
  printed banners in the training log (the project logs what it prepared
  and how long it took; errors still raise)."""
  tfds.disable_progress_bar()
  with contextlib.redirect_stdout(io.StringIO()):
    builder.download_and_prepare()


def _prepared_builder(source_dir: str, config: ml_collections.ConfigDict
                      ) -> speech_commands_builder.SpeechCommandsLocal:
  """Our TFDS builder over `source_dir`, prepared (once; then cached)."""
  started = time.time()
  builder_config = speech_commands_builder.make_config(
      source_dir, sample_rate=config.sample_rate,
      clip_duration_ms=config.clip_duration_ms,
      validation_percentage=config.validation_percentage,
      testing_percentage=config.testing_percentage)
  # TFDS's own preparation is not safe against several processes at once
  # (a sweep's parallel points, the hosts of one job): one prepares, the
  # others wait. The builder is made inside the lock, since it reads what
  # is prepared when it is made. A read-only source folder cannot hold the
  # lock; it is prepared unlocked.
  lock = (download.file_lock(source_dir, '.prepare.lock')
          if os.access(source_dir, os.W_OK) else contextlib.nullcontext())
  with lock:
    builder = speech_commands_builder.SpeechCommandsLocal(
        config=builder_config, data_dir=config.tfds_data_dir or None)
    _prepare(builder)
  logging.info('Data prepared in %s (%.1f s).', builder.data_dir,
               time.time() - started)
  return builder


def load_synthetic(config: ml_collections.ConfigDict, labels: list[str],
                   length: int) -> Clips:
  """Training clips from `config.synthetic_dir`.

  Only the folder's training split is read, so synthetic clips never reach
  validation or test. Words that are not wanted are `_unknown_` with
  `config.synthetic_unknown`, else dropped (alone, they would teach
  `_unknown_` what synthetic speech sounds like).
  """
  empty = empty_clips(length)
  if not config.synthetic_dir:
    return empty
  if not os.path.isdir(config.synthetic_dir):
    raise DataError(
        f'config.synthetic_dir={config.synthetic_dir!r} is not a folder; '
        'make it with experiments/synthesize_negatives.sh or python -m '
        "kws_jax.synthesize, or set --config.synthetic_dir=''.")
  builder = _prepared_builder(config.synthetic_dir, config)
  if 'train' not in builder.info.splits:
    logging.warning('%s has no training clips.', config.synthetic_dir)
    return empty
  audio, words, names = _load_split(builder, 'train', length)
  index = {word: i for i, word in enumerate(labels) if i >= 2}
  keep = [i for i, word in enumerate(words)
          if word in index or config.synthetic_unknown]
  num_wanted = sum(word in index for word in words)
  logging.info('Synthetic clips from %s: %d of the wanted words, %d of other '
               'words %s.', config.synthetic_dir, num_wanted,
               len(words) - num_wanted,
               'as _unknown_' if config.synthetic_unknown else 'left out')
  return Clips(np.asarray(audio[keep]),
              _label_words([words[i] for i in keep], labels),
              [f'{SYNTHETIC_PREFIX}{names[i]}' for i in keep],
              [words[i] for i in keep])


def _load_local(config: ml_collections.ConfigDict, labels: list[str],
                length: int, synthetic_words: collections.Counter
                ) -> tuple[dict[str, Clips], list[np.ndarray],
                           dict[str, Any]]:
  """Prepares `data_dir` with our builder and loads it."""
  download.maybe_download_and_extract(
      config.data_url, config.data_dir,
      expected_sha256=config.data_sha256 or None)
  started = time.time()
  builder = _prepared_builder(config.data_dir, config)
  prepared = time.time()

  available = set(builder.info.splits.keys())
  raw, words_found = {}, collections.Counter()
  for split in SPLITS:
    if split not in available:
      logging.warning('%s has no %s clips.', config.data_dir, split)
      raw[split] = empty_clips(length)
      continue
    audio, words, names = _load_split(builder, split, length)
    words_found.update(words)
    raw[split] = Clips(audio, _label_words(words, labels), names, words)
  _check_wanted_words(labels, words_found + synthetic_words, config.data_dir)

  background_clips = []
  if speech_commands_builder.BACKGROUND_SPLIT in available:
    examples = sorted(
        tfds.as_numpy(builder.as_dataset(
            split=speech_commands_builder.BACKGROUND_SPLIT)),
        key=lambda ex: ex['name'])
    background_clips = [
        ex['audio'].astype(np.float32) / audio_io.PCM16_SCALE
        for ex in examples]
  skipped = list(builder.info.metadata.get('skipped', []))
  loaded = time.time()
  logging.info('Loaded %d clips into memory in %.1f s.',
               sum(len(r.label) for r in raw.values()), loaded - prepared)
  info = {
      'data_source': 'local', 'data_dir': config.data_dir,
      'tfds_dir': str(builder.data_dir),
      'split_method': builder.info.metadata.get('split_method', ''),
      'skipped_files': skipped, 'num_skipped': len(skipped),
      'prepare_seconds': prepared - started, 'load_seconds': loaded - prepared,
  }
  return raw, background_clips, info


def _load_split(builder: tfds.core.DatasetBuilder, split: str, length: int
                ) -> tuple[np.ndarray, list[str], list[str]]:
  """A prepared split sorted by clip name: int16 [N, length], words, names.

  TFDS stores examples in a hashed order; sorting by name makes the arrays,
  and so the batches of a seed, independent of how TFDS wrote them. The
  first load decodes every example and saves the sorted arrays beside the
  TFDS files (`arrays/`); later loads memory-map them, so start-up time
  hardly grows with the data. The audio is then read-only.
  """
  folder = os.path.join(str(builder.data_dir), _ARRAYS_DIR)
  audio_path = os.path.join(folder, f'{split}.audio.npy')
  index_path = os.path.join(folder, f'{split}.index.json')
  expected = (builder.info.splits[split].num_examples, length)
  if os.path.exists(index_path):
    try:
      with open(index_path) as f:
        index = json.load(f)
      audio = np.load(audio_path, mmap_mode='r')
      if audio.shape == expected and audio.dtype == np.int16 and len(
          index['names']) == expected[0]:
        return audio, index['words'], index['names']
    except (OSError, ValueError, KeyError) as e:
      logging.warning('Ignoring the cached arrays in %s (%s).', folder, e)
    logging.warning('The cached arrays in %s do not match the prepared data; '
                    'reading it again.', folder)
  audio, words, names = _read_split(builder, split, length)
  order = np.argsort(np.array(names, dtype=object), kind='stable')
  audio = audio[order]
  words = [words[i] for i in order]
  names = [names[i] for i in order]
  try:
    os.makedirs(folder, exist_ok=True)
    # Each file whole or not at all, the index last: a cache that exists is
    # complete.
    with files.atomic_path(audio_path) as tmp:
      with open(tmp, 'wb') as f:
        np.save(f, audio)
    files.write_atomic(index_path, json.dumps({'words': words,
                                               'names': names}))
  except OSError as e:  # A read-only cache: work without the arrays.
    logging.warning('Could not save the %s arrays in %s (%s); the next run '
                    'reads the prepared data again.', split, folder, e)
  return audio, words, names


def _read_split(builder: tfds.core.DatasetBuilder, split: str,
                length: int) -> tuple[np.ndarray, list[str], list[str]]:
  """Reads a prepared split into int16 [N, length] plus words and names."""
  # Chunks filling one preallocated array keep the peak memory near the
  # split's size; a single batch_size=-1 tensor would double it.
  audio = np.empty((builder.info.splits[split].num_examples, length),
                   np.int16)
  words, names = [], []
  for chunk in tfds.as_numpy(
      builder.as_dataset(split=split, batch_size=_LOAD_CHUNK)):
    start = len(names)
    audio[start:start + len(chunk['name'])] = chunk['audio']
    words.extend(w.decode() for w in chunk['word'])
    names.extend(n.decode() for n in chunk['name'])
  if len(names) != len(audio):
    raise RuntimeError(
        f'{builder.data_dir} holds {len(names)} {split} clips, its info says '
        f'{len(audio)}; delete that folder to prepare the data again.')
  return audio, words, names


def _check_wanted_words(labels: list[str], found: collections.Counter,
                        where: str) -> None:
  missing = [w for w in labels[2:] if not found[w]]
  if missing:
    raise DataError(
        f'Wanted word(s) {", ".join(map(repr, missing))} not found in the '
        f'data at {where}; its words are {sorted(found)}. Fix '
        '--config.wanted_words or --config.data_dir.')


def _load_official(config: ml_collections.ConfigDict, labels: list[str],
                   length: int
                   ) -> tuple[dict[str, Clips], list[np.ndarray],
                              dict[str, Any]]:
  """Loads TFDS's own `speech_commands`, mapping its labels to ours."""
  if config.sample_rate != 16000:
    raise DataError(
        "TFDS's speech_commands is 16000 Hz; set --config.sample_rate=16000 "
        'or use --config.data_source=local.')
  started = time.time()
  builder = tfds.builder('speech_commands',
                         data_dir=config.tfds_data_dir or None)
  names = builder.info.features['label'].names
  official = [n for n in names
              if n not in (labels_lib.SILENCE_LABEL, labels_lib.UNKNOWN_LABEL)]
  extra = [w for w in labels[2:] if w not in official]
  if extra:
    raise DataError(
        f"Wanted word(s) {', '.join(map(repr, extra))} are not in TFDS's "
        f'speech_commands, which has only {official}. Choose from those or '
        'use --config.data_source=local with data_dir/data_url.')
  _prepare(builder)
  prepared = time.time()
  # Their ClassLabel index -> ours.
  mapping = np.array(
      [labels_lib.SILENCE_INDEX if name == labels_lib.SILENCE_LABEL else
       labels.index(name) if name in labels[2:] else labels_lib.UNKNOWN_INDEX
       for name in names], np.int32)

  def fit(example):
    audio = example['audio'][:length]
    audio = tf.pad(audio, [[0, length - tf.shape(audio)[0]]])
    return tf.ensure_shape(audio, [length]), example['label']

  raw = {}
  for split in SPLITS:
    ds = builder.as_dataset(split=split).map(fit).batch(4096)
    audio, label = [], []
    for batch_audio, batch_label in tfds.as_numpy(ds):
      audio.append(batch_audio.astype(np.int16))
      label.append(batch_label)
    audio = (np.concatenate(audio) if audio
             else np.zeros((0, length), np.int16))
    label = mapping[np.concatenate(label)] if label else np.zeros(0, np.int32)
    raw[split] = Clips(audio, label,
                       [f'{split}/{i}' for i in range(len(label))],
                       [labels[i] for i in label])
  # Its train split cuts the background recordings into silence clips; they
  # are the only background noise it has.
  train = raw['train']
  background_clips = [
      train.audio[i].astype(np.float32) / audio_io.PCM16_SCALE
      for i in np.flatnonzero(train.label == labels_lib.SILENCE_INDEX)]
  loaded = time.time()
  logging.info("Loaded TFDS's speech_commands in %.1f s.", loaded - prepared)
  info = {
      'data_source': 'tfds', 'data_dir': str(builder.data_dir),
      'tfds_dir': str(builder.data_dir), 'split_method': 'tfds',
      'skipped_files': [], 'num_skipped': 0,
      'prepare_seconds': prepared - started, 'load_seconds': loaded - prepared,
  }
  return raw, background_clips, info

