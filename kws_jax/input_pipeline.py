"""Speech Commands data in memory, and batches drawn from it.

`create_datasets` fetches and prepares the data once (TFDS caches it), loads
every split into memory as int16 arrays and applies the tutorial's class
mix:

* Classes are `['_silence_', '_unknown_', *wanted_words]`.
* Training keeps every unknown clip and draws each batch with per-example
  weights, so a draw is a wanted-word clip, unknown or silence in the
  tutorial's proportions: each wanted-word clip weighs 1, all unknown clips
  together weigh `unknown_percentage`% of the wanted-word clip count, and
  silence (one all-zero clip; the augmentation adds noise to label 0) weighs
  `silence_percentage`% of it.
* Validation and test hold a fixed random subset of unknown clips and
  made-up silence clips (background noise at a random volume), as many as
  those percentages of the split's wanted-word clips, drawn with fixed seeds
  so every run scores the same clips.

`train_iterator` makes each step's batch a pure function of
`(config.seed, step)`, so resumed runs see the batches they would have seen.

At full size (about 105k clips, 3.4 GB as int16) the clips are held once:
the first load saves each split, sorted, beside the TFDS files, later runs
memory-map it, and batches are gathered from the arrays without copies.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import json
import math
import os
import time
from typing import Any, Iterator, Sequence

from absl import logging
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from kws_jax import audio_io
from kws_jax import config_validation
from kws_jax import download
from kws_jax import noise
from kws_jax import speech_commands_builder
from kws_jax import tf_setup

SILENCE_LABEL = '_silence_'
UNKNOWN_LABEL = '_unknown_'
SILENCE_INDEX = 0
UNKNOWN_INDEX = 1
# The splits of `Datasets`, by TFDS split name.
EVAL_SPLITS = ('validation', 'test')
# Fixed seeds for the evaluation splits' unknown subsets and silence clips,
# kept apart from `config.seed` so runs with different seeds are scored on
# the same clips.
_EVAL_SEEDS = {'validation': 1018, 'test': 2029}
_UNKNOWN_STREAM, _SILENCE_STREAM = 0, 1
# The training batches' streams for `config.command_negatives` and
# `config.stream_windows`.
_NEGATIVES_STREAM, _STREAM_WINDOWS_STREAM = 1, 2
# stream_window: the share of a word's energy a partial window keeps. Under
# three fifths, as the streaming issue suggests: a window must hold most of
# a word to say it.
_PART_IN_WINDOW = (0.1, 0.6)
# command_negative: the share of a word's duration kept of its first or last
# part. Up to half, not more: three fifths of most commands still say the
# word ('lef', 'stop' without its onset), and would teach a command as
# `_unknown_`.
_PART_OF_WORD = (0.3, 0.5)
# Batches prepared ahead of the training step.
_PREFETCH = 4
# Clips decoded at a time when loading prepared data.
_LOAD_CHUNK = 1024
# Data fields added after the first release, with the value that means
# "off": a config stored with an older checkpoint lacks them
# (evaluate.data_config adds them).
LATER_FIELDS = {'synthetic_dir': '', 'synthetic_fraction': 0.0,
                'synthetic_only_words': (), 'synthetic_unknown': False,
                'generated_noise': False, 'unknown_word_balance': 0.0,
                'command_negatives': 0.0, 'unseen_words_fold': '',
                'stream_windows': 0.0, 'dc_offset_noise': False}
# Seconds of each kind of generated training noise (config.generated_noise).
_GENERATED_NOISE_SECONDS = 60.0
# Beside each prepared TFDS dataset: its splits as sorted arrays, so later
# runs load them at disk speed instead of decoding every example again.
_ARRAYS_DIR = 'arrays'


@dataclasses.dataclass
class Split:
  """One split in memory.

  Attributes:
    audio: int16 [N, L] clips, full scale 32768.
    label: int32 [N] indices into `Datasets.labels`.
    weight: float32 [N] sampling weights (training); 1 for evaluation.
    names: N clip paths relative to the data folder ('' for made-up
      silence).
  """
  audio: np.ndarray
  label: np.ndarray
  weight: np.ndarray
  names: list[str]

  def __len__(self) -> int:
    return len(self.label)


@dataclasses.dataclass
class Datasets:
  """Everything training and evaluation need from the data.

  Attributes:
    labels: class names; index 0 is silence and 1 unknown.
    train, validation, test: the splits.
    background: float32 [M] training's noise: the background-noise
      recordings concatenated, in [-1, 1] at the config's sample rate, then
      any generated noise (empty if there is none).
    summary: counts per split and class, training weights, skipped files,
      timings; see `create_datasets`.
    unseen_words: with `config.unseen_words_fold`, every clip of the words
      left out (labelled `_unknown_`; names start with the word); else
      empty.
    silence_stress: `noise.silence_stress_set` from the background
      recordings, labelled `_silence_`; names give source and level.
  """
  labels: list[str]
  train: Split
  validation: Split
  test: Split
  background: np.ndarray
  summary: dict[str, Any]
  unseen_words: Split
  silence_stress: Split


def prepare_words_list(wanted_words: Sequence[str] | str) -> list[str]:
  """Returns `['_silence_', '_unknown_', *wanted_words]`.

  Args:
    wanted_words: words in order, or a comma string such as 'yes,no'.
  """
  return [SILENCE_LABEL, UNKNOWN_LABEL,
          *config_validation.normalize_words(wanted_words)]


def clip_samples(config: ml_collections.ConfigDict) -> int:
  """L, the samples in one clip: `sample_rate * clip_duration_ms / 1000`."""
  return int(config.sample_rate * config.clip_duration_ms / 1000)


@dataclasses.dataclass
class _Raw:
  """One split as stored: fixed-length clips and their word or label."""
  audio: np.ndarray  # int16 [N, L]
  label: np.ndarray  # int32 [N], already mapped to our labels
  names: list[str]
  words: list[str]  # The word of each clip (its folder).

  def subset(self, rows: np.ndarray) -> '_Raw':
    return _Raw(np.asarray(self.audio[rows]), self.label[rows],
                [self.names[i] for i in rows], [self.words[i] for i in rows])


def _empty_raw(length: int) -> _Raw:
  return _Raw(np.zeros((0, length), np.int16), np.zeros(0, np.int32), [], [])


def _labelled_split(audio: np.ndarray, label_index: int,
                    names: list[str]) -> Split:
  return Split(audio=audio, label=np.full(len(audio), label_index, np.int32),
               weight=np.ones(len(audio), np.float32), names=names)


def create_datasets(config: ml_collections.ConfigDict) -> Datasets:
  """Fetches, prepares (once) and loads the data; see the module docstring.

  Args:
    config: uses data_url, data_dir, data_source, tfds_data_dir,
      wanted_words, silence_percentage, unknown_percentage,
      validation_percentage, testing_percentage, sample_rate,
      clip_duration_ms.

  Returns:
    The splits in memory. `summary` holds 'labels', 'counts' ({split:
    {label: clips}}), 'train_weights' ({label: total sampling weight}),
    'skipped_files' ([[name, reason]]), 'num_skipped', 'background_clips',
    'background_seconds', 'eval_silence' ({split: made-up silence clips}),
    'split_method', 'prepare_seconds' and 'load_seconds'.

  Raises:
    ValueError: a wanted word is not in the data, or (tfds source) not one of
      the official ten.
  """
  tf_setup.hide_gpus_from_tf(tf)
  labels = prepare_words_list(config.wanted_words)
  length = clip_samples(config)
  if config.data_source == 'tfds':
    raw, background_clips, info = _load_official(config, labels, length)
    synthetic = _load_synthetic(config, labels, length)
  elif config.data_source == 'local':
    synthetic = _load_synthetic(config, labels, length)
    raw, background_clips, info = _load_local(
        config, labels, length,
        synthetic_words=collections.Counter(labels[i] for i in synthetic.label))
  else:
    raise ValueError(f"config.data_source={config.data_source!r}; use 'local' "
                     "or 'tfds'.")

  raw, synthetic, unseen = _leave_out_unseen_fold(raw, synthetic, config)
  training_noise = list(background_clips)
  if config.generated_noise:
    training_noise += noise.generated_noise(
        config.sample_rate, _GENERATED_NOISE_SECONDS,
        dc_offset=config.dc_offset_noise)
  background = (np.concatenate(training_noise) if training_noise
                else np.zeros(0, np.float32))
  if not background_clips:
    logging.warning(
        'No background noise recordings: evaluation silence is all zeros%s.',
        '' if training_noise else ' and training adds no noise')
  train = _training_split(raw['train'], synthetic, labels, config)
  splits = {'train': train}
  eval_silence = {}
  for name in EVAL_SPLITS:
    splits[name], eval_silence[name] = _evaluation_split(
        raw[name], name, background_clips, labels, length, config)

  summary = dict(info)
  summary['labels'] = labels
  summary['counts'] = {
      name: _count(split.label, labels) for name, split in splits.items()}
  # Training silence is one silent row that gets fresh noise at every draw
  # (unless the data brings silence clips): no clips to count.
  made_up = [n for n, l in zip(train.names, train.label)
             if l == SILENCE_INDEX and not n]
  summary['counts']['train'][SILENCE_LABEL] -= len(made_up)
  summary['train_silence_made_up'] = bool(made_up)
  summary['train_weights'] = {
      label: float(train.weight[train.label == i].sum())
      for i, label in enumerate(labels)}
  summary['eval_silence'] = eval_silence
  summary['background_clips'] = len(background_clips)
  summary['background_seconds'] = len(background) / config.sample_rate
  summary['unseen_words'] = collections.Counter(unseen.words)
  _log_summary(summary)
  stress, stress_names = noise.silence_stress_set(
      background_clips, config.sample_rate, length)
  return Datasets(labels=labels, train=train,
                  validation=splits['validation'], test=splits['test'],
                  background=background.astype(np.float32), summary=summary,
                  unseen_words=_labelled_split(unseen.audio, UNKNOWN_INDEX,
                                               unseen.names),
                  silence_stress=_labelled_split(stress, SILENCE_INDEX,
                                                 stress_names))


def unknown_word_folds(words: collections.Counter, num_folds: int
                       ) -> list[list[str]]:
  """The unknown words dealt into `num_folds` folds, most clips first.

  Words sorted by clip count (most first, then by name) go to folds 1, 2,
  ..., k, 1, 2, ... in turn, so the big words are spread over the folds
  and each fold is a fixed function of the data's words.
  """
  ordered = sorted(words, key=lambda w: (-words[w], w))
  return [ordered[i::num_folds] for i in range(num_folds)]


def _leave_out_unseen_fold(raw: dict[str, _Raw], synthetic: _Raw,
                           config: ml_collections.ConfigDict
                           ) -> tuple[dict[str, _Raw], _Raw, _Raw]:
  """Takes the words of `config.unseen_words_fold` out of every split.

  Returns the splits and synthetic clips without them, and all their
  recorded clips (every split) as one `_Raw`; the synthetic clips of those
  words are dropped, so nothing of them is trained on.
  """
  length = next(iter(raw.values())).audio.shape[1]
  fold = config_validation.parse_unseen_fold(config.unseen_words_fold)
  if fold is None:
    return raw, synthetic, _empty_raw(length)
  counts = collections.Counter(
      w for r in raw.values() for w, l in zip(r.words, r.label)
      if l == UNKNOWN_INDEX)
  index, num_folds = fold
  if len(counts) < num_folds:
    raise config_validation.ConfigError(
        f'config.unseen_words_fold={config.unseen_words_fold!r}: the data has '
        f'{len(counts)} unknown words, fewer than {num_folds} folds.')
  left_out = set(unknown_word_folds(counts, num_folds)[index - 1])
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
  return kept, synthetic, _Raw(
      np.concatenate([u.audio for u in unseen]),
      np.concatenate([u.label for u in unseen]),
      [n for u in unseen for n in u.names],
      [w for u in unseen for w in u.words])


def _count(label: np.ndarray, labels: list[str]) -> dict[str, int]:
  counts = np.bincount(label, minlength=len(labels))
  return {name: int(counts[i]) for i, name in enumerate(labels)}


def _log_summary(summary: dict[str, Any]) -> None:
  for split, counts in summary['counts'].items():
    logging.info('%s: %d clips: %s', split, sum(counts.values()), ', '.join(
        f'{k} made up from noise at each draw'
        if split == 'train' and k == SILENCE_LABEL and summary.get(
            'train_silence_made_up') else f'{k} {v}'
        for k, v in counts.items()))
  total = sum(summary['train_weights'].values()) or 1.0
  logging.info('Training draws: %s', ', '.join(
      f'{k} {100 * v / total:.1f}%'
      for k, v in summary['train_weights'].items()))
  logging.info('Background noise: %d recordings, %.1f s.',
               summary['background_clips'], summary['background_seconds'])
  if summary['num_skipped']:
    logging.warning('Skipped %d unreadable files: %s', summary['num_skipped'],
                    ', '.join(name for name, _ in summary['skipped_files']))


def _label_words(words: Sequence[str], labels: list[str]) -> np.ndarray:
  index = {word: i for i, word in enumerate(labels) if i >= 2}
  return np.array([index.get(w, UNKNOWN_INDEX) for w in words], np.int32)


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
    builder.download_and_prepare()
  logging.info('Data prepared in %s (%.1f s).', builder.data_dir,
               time.time() - started)
  return builder


def _load_synthetic(config: ml_collections.ConfigDict, labels: list[str],
                    length: int) -> _Raw:
  """Training clips from `config.synthetic_dir`.

  Only the folder's training split is read, so synthetic clips never reach
  validation or test. Words that are not wanted are `_unknown_` with
  `config.synthetic_unknown`, else dropped (alone, they would teach
  `_unknown_` what synthetic speech sounds like).
  """
  empty = _empty_raw(length)
  if not config.synthetic_dir:
    return empty
  if not os.path.isdir(config.synthetic_dir):
    raise config_validation.ConfigError(
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
  return _Raw(np.asarray(audio[keep]),
              _label_words([words[i] for i in keep], labels),
              [f'synthetic/{names[i]}' for i in keep],
              [words[i] for i in keep])


def _load_local(config: ml_collections.ConfigDict, labels: list[str],
                length: int, synthetic_words: collections.Counter):
  """Prepares `data_dir` with our builder and loads it."""
  download.maybe_download_and_extract(
      config.data_url, config.data_dir,
      expected_sha256=config.get('data_sha256', None) or None)
  started = time.time()
  builder = _prepared_builder(config.data_dir, config)
  prepared = time.time()

  available = set(builder.info.splits.keys())
  raw, words_found = {}, collections.Counter()
  for split in ('train', *EVAL_SPLITS):
    if split not in available:
      logging.warning('%s has no %s clips.', config.data_dir, split)
      raw[split] = _empty_raw(length)
      continue
    audio, words, names = _load_split(builder, split, length)
    words_found.update(words)
    raw[split] = _Raw(audio, _label_words(words, labels), names, words)
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
    # Written under temporary names and renamed, the index last: a cache
    # that exists is complete.
    with open(audio_path + '.tmp', 'wb') as f:
      np.save(f, audio)
    os.replace(audio_path + '.tmp', audio_path)
    with open(index_path + '.tmp', 'w') as f:
      json.dump({'words': words, 'names': names}, f)
    os.replace(index_path + '.tmp', index_path)
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
    raise config_validation.ConfigError(
        f'Wanted word(s) {", ".join(map(repr, missing))} not found in the '
        f'data at {where}; its words are {sorted(found)}. Fix '
        '--config.wanted_words or --config.data_dir.')


def _load_official(config: ml_collections.ConfigDict, labels: list[str],
                   length: int):
  """Loads TFDS's own `speech_commands`, mapping its labels to ours."""
  if config.sample_rate != 16000:
    raise config_validation.ConfigError(
        "TFDS's speech_commands is 16000 Hz; set --config.sample_rate=16000 "
        'or use --config.data_source=local.')
  started = time.time()
  builder = tfds.builder('speech_commands',
                         data_dir=config.tfds_data_dir or None)
  names = builder.info.features['label'].names
  official = [n for n in names if n not in (SILENCE_LABEL, UNKNOWN_LABEL)]
  extra = [w for w in labels[2:] if w not in official]
  if extra:
    raise config_validation.ConfigError(
        f"Wanted word(s) {', '.join(map(repr, extra))} are not in TFDS's "
        f'speech_commands, which has only {official}. Choose from those or '
        'use --config.data_source=local with data_dir/data_url.')
  builder.download_and_prepare()
  prepared = time.time()
  # Their ClassLabel index -> ours.
  mapping = np.array(
      [SILENCE_INDEX if name == SILENCE_LABEL else
       labels.index(name) if name in labels[2:] else UNKNOWN_INDEX
       for name in names], np.int32)

  def fit(example):
    audio = example['audio'][:length]
    audio = tf.pad(audio, [[0, length - tf.shape(audio)[0]]])
    return tf.ensure_shape(audio, [length]), example['label']

  raw = {}
  for split in ('train', *EVAL_SPLITS):
    ds = builder.as_dataset(split=split).map(fit).batch(4096)
    audio, label = [], []
    for batch_audio, batch_label in tfds.as_numpy(ds):
      audio.append(batch_audio.astype(np.int16))
      label.append(batch_label)
    audio = (np.concatenate(audio) if audio
             else np.zeros((0, length), np.int16))
    label = mapping[np.concatenate(label)] if label else np.zeros(0, np.int32)
    raw[split] = _Raw(audio, label, [f'{split}/{i}' for i in range(len(label))],
                      [labels[i] for i in label])
  # Its train split cuts the background recordings into silence clips; they
  # are the only background noise it has.
  train = raw['train']
  background_clips = [
      train.audio[i].astype(np.float32) / audio_io.PCM16_SCALE
      for i in np.flatnonzero(train.label == SILENCE_INDEX)]
  loaded = time.time()
  logging.info("Loaded TFDS's speech_commands in %.1f s.", loaded - prepared)
  info = {
      'data_source': 'tfds', 'data_dir': str(builder.data_dir),
      'tfds_dir': str(builder.data_dir), 'split_method': 'tfds',
      'skipped_files': [], 'num_skipped': 0,
      'prepare_seconds': prepared - started, 'load_seconds': loaded - prepared,
  }
  return raw, background_clips, info


def _training_split(raw: _Raw, synthetic: _Raw, labels: list[str],
                    config: ml_collections.ConfigDict) -> Split:
  """All clips plus silence, weighted to the tutorial's class mix.

  Each wanted word's draws total its real clip count (or, with
  `balance_classes`, the mean over the words, so scarce words are drawn as
  often as the others); `synthetic_fraction` of a word's draws come from
  its synthetic clips, and all of them for `synthetic_only_words`, whose
  real training clips are left out. `_unknown_` draws total
  `unknown_percentage`% of the words' draws, `synthetic_fraction` of them
  synthetic with `synthetic_unknown`; within the real and the synthetic
  unknown clips a clip of a word with n clips weighs n^-unknown_word_balance.
  """
  length = raw.audio.shape[1]
  synthetic_only = [labels.index(w) for w in config.get(
      'synthetic_only_words', ()) if w in labels]
  keep = np.flatnonzero(~np.isin(raw.label, synthetic_only))
  label = raw.label[keep]
  names = [raw.names[i] for i in keep]
  words = [raw.words[i] for i in keep] + list(synthetic.words)
  real = np.bincount(label, minlength=len(labels)).astype(np.float64)
  made = np.bincount(synthetic.label, minlength=len(labels)).astype(np.float64)
  wanted = np.arange(2, len(labels))
  # Each word's total draws: its real clips, else its synthetic ones.
  target = np.where(real[wanted] > 0, real[wanted], made[wanted])
  if not target.sum():
    # A ConfigError (a ValueError) so that the command line says it plainly.
    raise config_validation.ConfigError(
        f'The training split of {config.data_dir} has no clips of '
        f'{labels[2:]}; there is nothing to train on.')
  if config.get('balance_classes', False):
    target = np.full_like(target, target.mean())
  fraction = float(config.get('synthetic_fraction', 0.0))

  label = np.concatenate([label, synthetic.label])
  is_synthetic = np.arange(len(label)) >= len(names)
  names = names + list(synthetic.names)
  # One silent clip carries all of silence's weight: every draw of it gets
  # fresh noise in the augmentation, so more copies would add nothing.
  add_silence = (not np.any(label == SILENCE_INDEX) and
                 config.silence_percentage > 0)
  # Filled in place: at full size the clips are gigabytes, so no copies.
  audio = np.empty((len(label) + add_silence, length), np.int16)
  if len(keep) == len(raw.label):  # Every clip: one straight copy.
    audio[:len(keep)] = raw.audio
  else:
    for start in range(0, len(keep), _LOAD_CHUNK):
      rows = keep[start:start + _LOAD_CHUNK]
      audio[start:start + len(rows)] = raw.audio[rows]
  audio[len(keep):len(label)] = synthetic.audio
  if add_silence:
    audio[-1] = 0
    label = np.append(label, np.int32(SILENCE_INDEX))
    is_synthetic = np.append(is_synthetic, False)
    names.append('')
    words.append(SILENCE_LABEL)
  weight = np.ones(len(label), np.float32)
  word_weights = np.ones(len(label), np.float64)
  for group in (~is_synthetic, is_synthetic):
    unknown = np.flatnonzero((label == UNKNOWN_INDEX) & group)
    word_weights[unknown] = _word_balance_weights(
        [words[i] for i in unknown], config.unknown_word_balance)
  totals = [(index, total) for index, total in zip(wanted, target)]
  totals.append((UNKNOWN_INDEX, config.unknown_percentage / 100 *
                 target.sum()))
  for index, total in totals:
    own_real = (label == index) & ~is_synthetic
    own_made = (label == index) & is_synthetic
    share = 1.0 if not own_real.any() else (fraction if own_made.any() else 0)
    for members, part in ((own_real, 1 - share), (own_made, share)):
      if members.any():
        weight[members] = (part * total * word_weights[members] /
                           word_weights[members].sum())
  members = label == SILENCE_INDEX
  if members.any():
    weight[members] = (config.silence_percentage / 100 * target.sum() /
                       members.sum())
  if not np.any(label == UNKNOWN_INDEX) and config.unknown_percentage > 0:
    logging.warning('The training data has no unknown-word clips; the '
                    '_unknown_ class is never trained.')
  return Split(audio=audio, label=label, weight=weight, names=names)


def _word_balance_weights(words: list[str], balance: float) -> np.ndarray:
  """float64 per clip: n^-balance for a clip of a word with n clips."""
  counts = collections.Counter(words)
  return np.array([counts[w] ** -balance for w in words], np.float64)


def _evaluation_split(raw: _Raw, split: str, background_clips: list[np.ndarray],
                      labels: list[str], length: int,
                      config: ml_collections.ConfigDict) -> tuple[Split, int]:
  """Word clips, a fixed unknown subset and fixed silence; clips made up."""
  num_words = int(np.sum(raw.label >= 2))
  seed = _EVAL_SEEDS[split]
  keep = np.flatnonzero(raw.label >= 2)

  unknown = np.flatnonzero(raw.label == UNKNOWN_INDEX)
  num_unknown = min(
      math.ceil(num_words * config.unknown_percentage / 100), len(unknown))
  rng = np.random.default_rng([seed, _UNKNOWN_STREAM])
  keep = np.concatenate(
      [keep, np.sort(rng.choice(unknown, num_unknown, replace=False))])

  num_silence = math.ceil(num_words * config.silence_percentage / 100)
  recorded = np.flatnonzero(raw.label == SILENCE_INDEX)
  rng = np.random.default_rng([seed, _SILENCE_STREAM])
  made_up = 0
  if len(recorded):
    # TFDS's own data brings its silence clips; take a fixed subset.
    keep = np.concatenate([keep, np.sort(rng.choice(
        recorded, min(num_silence, len(recorded)), replace=False))])
    silence = np.zeros((0, length), np.int16)
  else:
    silence = _made_up_silence(rng, background_clips, num_silence, length)
    made_up = len(silence)
    logging.info('%s: %d silence clips made from background noise.', split,
                 made_up)
  keep = np.sort(keep)
  audio = np.empty((len(keep) + len(silence), length), np.int16)
  audio[:len(keep)] = raw.audio[keep]
  audio[len(keep):] = silence
  label = np.concatenate(
      [raw.label[keep], np.full(len(silence), SILENCE_INDEX, np.int32)])
  names = [raw.names[i] for i in keep] + [''] * len(silence)
  if num_words == 0:
    logging.warning('The %s split has no clips of %s.', split, labels[2:])
  return Split(audio=audio, label=label,
               weight=np.ones(len(label), np.float32), names=names), made_up


def _made_up_silence(rng: np.random.Generator,
                     background_clips: list[np.ndarray], count: int,
                     length: int) -> np.ndarray:
  """int16 [count, length] background snippets at random volumes in [0, 1]."""
  out = np.zeros((count, length), np.int16)
  if not background_clips:
    return out
  for row in range(count):
    clip = background_clips[rng.integers(len(background_clips))]
    start = rng.integers(max(len(clip) - length, 0) + 1)
    snippet = audio_io.fit_length(clip[start:start + length], length)
    out[row] = audio_io.to_int16(snippet * rng.uniform(0.0, 1.0))
  return out


def train_iterator(datasets: Datasets, config: ml_collections.ConfigDict,
                   start_step: int = 0, process_index: int = 0,
                   process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Yields training batches for steps `start_step, start_step + 1, ...`.

  Each step draws `config.batch_size` clip indices (with replacement) from
  the training split's weights with a NumPy generator seeded by
  `(config.seed, step)`; this process gets its contiguous slice. With
  `config.command_negatives`, that share of the `_unknown_` draws is
  replaced by a negative made from a command clip (`command_negative`).
  With `config.stream_windows`, that share of the command draws becomes a
  window that holds only part of its word, as a stream's windows do while
  a word enters or leaves (`stream_window`), labelled `_unknown_`. Batches
  are gathered from the in-memory clips by a background thread, `_PREFETCH`
  steps ahead, without copying the clips (they may be gigabytes).

  Args:
    datasets: from `create_datasets`.
    config: uses batch_size, seed, command_negatives and stream_windows.
    start_step: the first step to yield.
    process_index: this process, in [0, process_count).
    process_count: processes sharing each global batch.

  Yields:
    {'audio': float32 [B, L] in [-1, 1], 'label': int32 [B]} with
    B = batch_size / process_count.
  """
  batch_size = config.batch_size
  if batch_size % process_count:
    raise ValueError(
        f'config.batch_size={batch_size} must be a multiple of the '
        f'{process_count} processes sharing each batch.')
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} is not in '
                     f'[0, {process_count}).')
  split = datasets.train
  if not len(split) or not np.any(split.weight > 0):
    raise ValueError('The training split is empty; nothing to draw from.')
  local = batch_size // process_count
  first = process_index * local
  # Inverse-CDF sampling: clip i is drawn when u falls in
  # [cdf[i-1], cdf[i]), so clips of weight 0 never are.
  cdf = np.cumsum(split.weight, dtype=np.float64)
  cdf /= cdf[-1]
  # Command clips that training draws (weight 0: left out by the config).
  commands = np.flatnonzero((split.label > UNKNOWN_INDEX) & (split.weight > 0))
  negatives = config.command_negatives if len(commands) else 0.0
  windows = config.get('stream_windows', 0.0)

  def batch_for(step: int) -> dict[str, np.ndarray]:
    uniform = np.random.default_rng([config.seed, step]).random(batch_size)
    indices = np.minimum(np.searchsorted(cdf, uniform, side='right'),
                         len(cdf) - 1)
    audio = split.audio[indices[first:first + local]].astype(np.float32)
    if negatives:
      # Drawn for the whole batch, so every process agrees; a stream of its
      # own, so the draws above are those of runs without negatives.
      rng = np.random.default_rng([config.seed, step, _NEGATIVES_STREAM])
      replace = (split.label[indices] == UNKNOWN_INDEX) & (
          rng.random(batch_size) < negatives)
      sources = commands[rng.integers(0, len(commands), (batch_size, 2))]
      seeds = rng.integers(0, 2**31, batch_size)
      for row in np.flatnonzero(replace[first:first + local]):
        pair = sources[first + row]
        audio[row] = command_negative(
            np.random.default_rng(seeds[first + row]),
            split.audio[pair[0]], split.audio[pair[1]],
            split.label[pair[0]] != split.label[pair[1]])
    label = split.label[indices[first:first + local]]
    if windows:
      # As for the negatives: whole-batch draws, a stream of their own.
      rng = np.random.default_rng([config.seed, step, _STREAM_WINDOWS_STREAM])
      replace = (split.label[indices] > UNKNOWN_INDEX) & (
          rng.random(batch_size) < windows)
      seeds = rng.integers(0, 2**31, batch_size)
      label = label.copy()
      for row in np.flatnonzero(replace[first:first + local]):
        audio[row] = stream_window(np.random.default_rng(seeds[first + row]),
                                   audio[row])
        label[row] = UNKNOWN_INDEX
    return {'audio': audio / audio_io.PCM16_SCALE, 'label': label}

  pool = concurrent.futures.ThreadPoolExecutor(1, 'train_batches')
  try:
    pending = collections.deque(
        pool.submit(batch_for, step)
        for step in range(start_step, start_step + _PREFETCH))
    step = start_step + _PREFETCH
    while True:
      batch = pending.popleft().result()
      pending.append(pool.submit(batch_for, step))
      step += 1
      yield batch
  finally:
    pool.shutdown(wait=False, cancel_futures=True)


def word_extent(clip: np.ndarray, frame: int) -> tuple[int, int]:
  """[start, end) samples of the spoken part of a clip.

  The frames (of `frame` samples) whose RMS is within 20 dB of the loudest
  frame's, from the first to the last; the whole clip if it is silent.
  """
  usable = len(clip) // frame * frame
  energy = np.sqrt(np.mean(
      np.square(clip[:usable].astype(np.float32).reshape(-1, frame)), -1))
  loud = np.flatnonzero(energy >= 0.1 * energy.max()) if usable else []
  if not len(loud) or energy.max() == 0:
    return 0, len(clip)
  return int(loud[0] * frame), int(min((loud[-1] + 1) * frame, len(clip)))


def command_negative(rng: np.random.Generator, clip: np.ndarray,
                     other: np.ndarray, other_differs: bool) -> np.ndarray:
  """A non-command made from command clips: float32 in int16 units.

  One of, equally often: `clip` reversed; the first or the last
  `_PART_OF_WORD` of its word alone (the rest of the clip silent), where
  it was; or the first half of its word followed by the second half of
  `other`'s word (`other_differs`: a different command; else the reversal),
  centred. Each keeps the recording's voice, room and level, so only the
  word itself tells it from a command.
  """
  clip = clip.astype(np.float32)
  length = len(clip)
  kind = rng.integers(4)
  if kind == 0 or (kind == 3 and not other_differs):
    return clip[::-1].copy()
  frame = max(length // 100, 1)
  start, end = word_extent(clip, frame)
  out = np.zeros_like(clip)
  if kind in (1, 2):
    keep = max(int((end - start) * rng.uniform(*_PART_OF_WORD)), 1)
    part = slice(start, start + keep) if kind == 1 else slice(end - keep, end)
    out[part] = clip[part]
    return out
  other = other.astype(np.float32)
  other_start, other_end = word_extent(other, frame)
  joined = np.concatenate([clip[start:(start + end) // 2],
                           other[(other_start + other_end) // 2:other_end]])
  joined = joined[:length]
  offset = (length - len(joined)) // 2
  out[offset:offset + len(joined)] = joined
  return out


def stream_window(rng: np.random.Generator, clip: np.ndarray) -> np.ndarray:
  """A one-clip window of a stream that holds only part of `clip`'s word.

  The clip is shifted so that the window keeps `_PART_IN_WINDOW` of its
  word's energy: either the word's start at the window's end (the word is
  arriving) or its end at the window's start (it is leaving); the rest of
  the window is silent (the augmentation adds background as for any clip).

  Args:
    rng: the only source of randomness.
    clip: one clip, any float or int dtype (int16 units).

  Returns:
    float32 of `clip`'s shape and units.
  """
  clip = clip.astype(np.float32)
  length = len(clip)
  start, end = word_extent(clip, max(length // 100, 1))
  energy = np.cumsum(np.square(clip[start:end], dtype=np.float64))
  out = np.zeros_like(clip)
  if end <= start or energy[-1] <= 0:
    return out
  share = rng.uniform(*_PART_IN_WINDOW)
  if rng.integers(2):
    # Arriving: the samples up to where the word's energy reaches `share`,
    # at the window's end.
    cut = start + int(np.searchsorted(energy, share * energy[-1])) + 1
    out[length - cut:] = clip[:cut]
  else:
    # Leaving: the word from where its last `share` of energy begins.
    cut = start + int(np.searchsorted(energy, (1 - share) * energy[-1]))
    out[:length - cut] = clip[cut:]
  return out


def eval_iterator(split: Split,
                  batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Yields the split in order in fixed-size batches.

  Yields:
    {'audio': float32 [batch_size, L], 'label': int32 [batch_size],
    'mask': bool [batch_size]}; the last batch is zero-padded and its padding
    rows have mask False.
  """
  if batch_size <= 0:
    raise ValueError(f'batch_size must be positive, got {batch_size}.')
  for start in range(0, len(split), batch_size):
    audio = split.audio[start:start + batch_size]
    real = len(audio)
    pad = batch_size - real
    yield {
        'audio': np.pad(audio.astype(np.float32) / audio_io.PCM16_SCALE,
                        ((0, pad), (0, 0))),
        'label': np.pad(split.label[start:start + batch_size], (0, pad)),
        'mask': np.arange(batch_size) < real,
    }
