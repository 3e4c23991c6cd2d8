"""The tutorial's class mix over the loaded data, and batches drawn from it.

`create_datasets` loads every split into memory as int16 arrays
(`data_sources`) and applies the tutorial's class mix:

* Classes are `['_silence_', '_unknown_', *wanted_words]` (`labels`).
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
`(config.seed, step)`, so resumed runs see the batches they would have seen;
batches are gathered from the (maybe memory-mapped) arrays without copies.
"""

import collections
import concurrent.futures
import dataclasses
import math
from typing import Any, Callable, Iterator

from absl import logging
import ml_collections
import numpy as np

from kws_jax import audio_io
from kws_jax import data_sources
from kws_jax import labels as labels_lib
from kws_jax import noise
from kws_jax import partial_words
from kws_jax import speech_commands_builder

_UNKNOWN_STREAM, _SILENCE_STREAM = 0, 1
# The training batches' streams for `config.command_negatives`,
# `config.stream_windows`, `config.unknown_negatives` and
# `config.same_speaker_joins`.
(_NEGATIVES_STREAM, _STREAM_WINDOWS_STREAM, _UNKNOWN_NEGATIVES_STREAM,
 _SAME_SPEAKER_STREAM) = 1, 2, 3, 4
# Batches prepared ahead of the training step.
_PREFETCH = 4
# Rows copied at a time when the training split takes some of the clips.
_COPY_ROWS = 1024
# Seconds of each kind of generated training noise (config.generated_noise).
_GENERATED_NOISE_SECONDS = 60.0


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


def _labelled_split(audio: np.ndarray, label_index: int,
                    names: list[str]) -> Split:
  return Split(audio=audio, label=np.full(len(audio), label_index, np.int32),
               weight=np.ones(len(audio), np.float32), names=names)


def create_datasets(config: ml_collections.ConfigDict) -> Datasets:
  """Fetches, prepares (once) and loads the data; see the module docstring.

  Args:
    config: uses wanted_words, silence_percentage, unknown_percentage,
      sample_rate, clip_duration_ms, generated_noise, dc_offset_noise, the
      fields of `data_sources.load` and those of `_training_split`.

  Returns:
    The splits in memory. `summary` holds 'labels', 'counts' ({split:
    {label: clips}}), 'train_weights' ({label: total sampling weight}),
    'skipped_files' ([[name, reason]]), 'num_skipped', 'background_clips',
    'background_seconds', 'eval_silence' ({split: made-up silence clips}),
    'split_method', 'prepare_seconds' and 'load_seconds'.

  Raises:
    data_sources.DataError: the data cannot serve the config: a wanted
      word is not in the data (or, tfds source, not one of the official
      ten), a folder is missing, the training split has no clips of the
      wanted words.
  """
  labels = labels_lib.prepare_words_list(config.wanted_words)
  length = audio_io.samples_per_clip(config.sample_rate,
                                     config.clip_duration_ms)
  loaded = data_sources.load(config, labels, length)
  raw, unseen = loaded.splits, loaded.unseen
  background_clips = loaded.background_clips
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
  train = _training_split(raw['train'], loaded.synthetic, labels, config)
  splits = {'train': train}
  eval_silence = {}
  for name in data_sources.SPLITS[1:]:
    splits[name], eval_silence[name] = _evaluation_split(
        raw[name], name, background_clips, labels, length, config)

  summary = dict(loaded.info)
  summary['labels'] = labels
  summary['counts'] = {
      name: _count(split.label, labels) for name, split in splits.items()}
  # Training silence is one silent row that gets fresh noise at every draw
  # (unless the data brings silence clips): no clips to count.
  made_up = [n for n, l in zip(train.names, train.label)
             if l == labels_lib.SILENCE_INDEX and not n]
  summary['counts']['train'][labels_lib.SILENCE_LABEL] -= len(made_up)
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
                  unseen_words=_labelled_split(
                      unseen.audio, labels_lib.UNKNOWN_INDEX, unseen.names),
                  silence_stress=_labelled_split(
                      stress, labels_lib.SILENCE_INDEX, stress_names))


def _count(label: np.ndarray, labels: list[str]) -> dict[str, int]:
  counts = np.bincount(label, minlength=len(labels))
  return {name: int(counts[i]) for i, name in enumerate(labels)}


def _log_summary(summary: dict[str, Any]) -> None:
  for split, counts in summary['counts'].items():
    logging.info('%s: %d clips: %s', split, sum(counts.values()), ', '.join(
        f'{k} made up from noise at each draw'
        if split == 'train' and k == labels_lib.SILENCE_LABEL and summary.get(
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



def _training_split(raw: data_sources.Clips, synthetic: data_sources.Clips,
                    labels: list[str],
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
  synthetic_only = [labels.index(w) for w in config.synthetic_only_words
                    if w in labels]
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
    raise data_sources.DataError(
        f'The training split of {config.data_dir} has no clips of '
        f'{labels[2:]}; there is nothing to train on.')
  if config.balance_classes:
    target = np.full_like(target, target.mean())
  fraction = float(config.synthetic_fraction)

  label = np.concatenate([label, synthetic.label])
  is_synthetic = np.arange(len(label)) >= len(names)
  names = names + list(synthetic.names)
  # One silent clip carries all of silence's weight: every draw of it gets
  # fresh noise in the augmentation, so more copies would add nothing.
  add_silence = (not np.any(label == labels_lib.SILENCE_INDEX) and
                 config.silence_percentage > 0)
  # Filled in place: at full size the clips are gigabytes, so no copies.
  audio = np.empty((len(label) + add_silence, length), np.int16)
  if len(keep) == len(raw.label):  # Every clip: one straight copy.
    audio[:len(keep)] = raw.audio
  else:
    for start in range(0, len(keep), _COPY_ROWS):
      rows = keep[start:start + _COPY_ROWS]
      audio[start:start + len(rows)] = raw.audio[rows]
  audio[len(keep):len(label)] = synthetic.audio
  if add_silence:
    audio[-1] = 0
    label = np.append(label, np.int32(labels_lib.SILENCE_INDEX))
    is_synthetic = np.append(is_synthetic, False)
    names.append('')
    words.append(labels_lib.SILENCE_LABEL)
  weight = np.ones(len(label), np.float32)
  word_weights = np.ones(len(label), np.float64)
  for group in (~is_synthetic, is_synthetic):
    unknown = np.flatnonzero((label == labels_lib.UNKNOWN_INDEX) & group)
    word_weights[unknown] = _word_balance_weights(
        [words[i] for i in unknown], config.unknown_word_balance)
  totals = [(index, total) for index, total in zip(wanted, target)]
  totals.append((labels_lib.UNKNOWN_INDEX, config.unknown_percentage / 100 *
                 target.sum()))
  for index, total in totals:
    own_real = (label == index) & ~is_synthetic
    own_made = (label == index) & is_synthetic
    share = 1.0 if not own_real.any() else (fraction if own_made.any() else 0)
    for members, part in ((own_real, 1 - share), (own_made, share)):
      if members.any():
        weight[members] = (part * total * word_weights[members] /
                           word_weights[members].sum())
  members = label == labels_lib.SILENCE_INDEX
  if members.any():
    weight[members] = (config.silence_percentage / 100 * target.sum() /
                       members.sum())
  if (not np.any(label == labels_lib.UNKNOWN_INDEX) and
      config.unknown_percentage > 0):
    logging.warning('The training data has no unknown-word clips; the '
                    '_unknown_ class is never trained.')
  return Split(audio=audio, label=label, weight=weight, names=names)


def _word_balance_weights(words: list[str], balance: float) -> np.ndarray:
  """float64 per clip: n^-balance for a clip of a word with n clips."""
  counts = collections.Counter(words)
  return np.array([counts[w] ** -balance for w in words], np.float64)


def _evaluation_split(raw: data_sources.Clips, split: str,
                      background_clips: list[np.ndarray],
                      labels: list[str], length: int,
                      config: ml_collections.ConfigDict) -> tuple[Split, int]:
  """Word clips, a fixed unknown subset and fixed silence; clips made up."""
  num_words = int(np.sum(raw.label >= 2))
  seed = config[f'{split}_seed']
  keep = np.flatnonzero(raw.label >= 2)

  unknown = np.flatnonzero(raw.label == labels_lib.UNKNOWN_INDEX)
  num_unknown = min(
      math.ceil(num_words * config.unknown_percentage / 100), len(unknown))
  rng = np.random.default_rng([seed, _UNKNOWN_STREAM])
  keep = np.concatenate(
      [keep, np.sort(rng.choice(unknown, num_unknown, replace=False))])

  num_silence = math.ceil(num_words * config.silence_percentage / 100)
  recorded = np.flatnonzero(raw.label == labels_lib.SILENCE_INDEX)
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
      [raw.label[keep],
       np.full(len(silence), labels_lib.SILENCE_INDEX, np.int32)])
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


def same_speaker_words(split: Split, is_synthetic: np.ndarray
                       ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
  """The recorded command clips whose speaker also said a recorded
  non-command word, and for each of them those non-command clips.

  Only clips that training draws (weight > 0) and recorded ones
  (`is_synthetic` 0) count; a clip's speaker is the part of its name
  before `_nohash_` (`speech_commands_builder.speaker_id`), and clips
  without one are left out.

  Returns:
    (command clip indices into `split`, sorted; {command index: int array
    of the same speaker's non-command clip indices}).
  """
  usable = (split.weight > 0) & (is_synthetic == 0)
  by_speaker = collections.defaultdict(lambda: ([], []))
  for i in np.flatnonzero(usable & (split.label >= labels_lib.UNKNOWN_INDEX)):
    speaker = speech_commands_builder.speaker_id(split.names[i])
    if speaker is not None:
      is_unknown = split.label[i] == labels_lib.UNKNOWN_INDEX
      by_speaker[speaker][int(is_unknown)].append(i)
  words = {}
  for commands, others in by_speaker.values():
    if others:
      for command in commands:
        words[command] = np.array(others)
  return np.array(sorted(words), int), words


def train_iterator(datasets: Datasets, config: ml_collections.ConfigDict,
                   start_step: int = 0, process_index: int = 0,
                   process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Yields training batches for steps `start_step, start_step + 1, ...`.

  Each step draws `config.batch_size` clip indices (with replacement) from
  the training split's weights with a NumPy generator seeded by
  `(config.seed, step)`; this process gets its contiguous slice. With
  `config.command_negatives`, that share of the `_unknown_` draws is
  replaced by a negative made from a command clip
  (`partial_words.command_negative`); with `config.unknown_negatives`,
  that share of the other `_unknown_` draws by one made the same way from
  recorded non-command clips (not synthetic ones, whose near words' halves
  could join into a command); with `config.same_speaker_joins`, that share
  of the remaining `_unknown_` draws by halves of a recorded command and a
  recorded non-command word of one speaker joined (`same_speaker_words`),
  in either order. With `config.stream_windows`, that
  share of the command draws becomes a window that holds only part of its
  word, as a stream's windows do while a word enters or leaves
  (`partial_words.stream_window`), labelled `_unknown_`. Batches are
  gathered from the in-memory clips by a background thread, `_PREFETCH`
  steps ahead, without copying the clips (they may be gigabytes).

  Args:
    datasets: from `create_datasets`.
    config: uses batch_size, seed, command_negatives, unknown_negatives,
      same_speaker_joins and stream_windows.
    start_step: the first step to yield.
    process_index: this process, in [0, process_count).
    process_count: processes sharing each global batch.

  Yields:
    {'audio': float32 [B, L] in [-1, 1], 'label': int32 [B], 'synthetic':
    float32 [B], 1 for a synthetic clip (a negative made of two clips takes
    its first clip's)} with B = batch_size / process_count.
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
  commands = np.flatnonzero((split.label > labels_lib.UNKNOWN_INDEX) &
                            (split.weight > 0))
  negatives = config.command_negatives if len(commands) else 0.0
  is_synthetic = np.array([n.startswith(data_sources.SYNTHETIC_PREFIX)
                           for n in split.names], np.float32)
  # Recorded non-command clips that training draws (only looked for when
  # asked), and their words (the folder in a recorded clip's name).
  unknowns = np.flatnonzero(
      (split.label == labels_lib.UNKNOWN_INDEX) & (split.weight > 0) &
      (is_synthetic == 0)) if config.unknown_negatives else np.array([], int)
  unknown_negatives = config.unknown_negatives if len(unknowns) else 0.0
  word_of = {i: split.names[i].split('/')[0] for i in unknowns}
  joins = config.same_speaker_joins
  if joins:
    join_commands, join_words = same_speaker_words(split, is_synthetic)
    if not len(join_commands):
      raise ValueError(
          f'config.same_speaker_joins={joins} needs a speaker who said both '
          'a command and another word among the recorded training clips '
          '(Speech Commands names clips <speaker>_nohash_<n>.wav); the '
          'training split has none. Set it to 0.')
  windows = config.stream_windows

  def replace_with_negatives(audio: np.ndarray, synthetic: np.ndarray,
                             replace: np.ndarray, sources: np.ndarray,
                             rng: np.random.Generator,
                             key: Callable[[int], Any]) -> None:
    """Rows of this process's `audio` where `replace` (whole batch) holds
    become `command_negative`s of two clips drawn from `sources`, which
    join halves when the clips' `key`s (their words) differ."""
    pairs = sources[rng.integers(0, len(sources), (batch_size, 2))]
    seeds = rng.integers(0, 2**31, batch_size)
    for row in np.flatnonzero(replace[first:first + local]):
      pair = pairs[first + row]
      audio[row] = partial_words.command_negative(
          np.random.default_rng(seeds[first + row]),
          split.audio[pair[0]], split.audio[pair[1]],
          key(pair[0]) != key(pair[1]))
      synthetic[row] = is_synthetic[pair[0]]

  def batch_for(step: int) -> dict[str, np.ndarray]:
    uniform = np.random.default_rng([config.seed, step]).random(batch_size)
    indices = np.minimum(np.searchsorted(cdf, uniform, side='right'),
                         len(cdf) - 1)
    audio = split.audio[indices[first:first + local]].astype(np.float32)
    synthetic = is_synthetic[indices[first:first + local]]
    replaced = np.zeros(batch_size, bool)
    if negatives:
      # Drawn for the whole batch, so every process agrees; a stream of its
      # own, so the draws above are those of runs without negatives.
      rng = np.random.default_rng([config.seed, step, _NEGATIVES_STREAM])
      replaced = (split.label[indices] == labels_lib.UNKNOWN_INDEX) & (
          rng.random(batch_size) < negatives)
      replace_with_negatives(audio, synthetic, replaced, commands, rng,
                             lambda i: split.label[i])
    if unknown_negatives:
      rng = np.random.default_rng(
          [config.seed, step, _UNKNOWN_NEGATIVES_STREAM])
      replace = ((split.label[indices] == labels_lib.UNKNOWN_INDEX) &
                 ~replaced & (rng.random(batch_size) < unknown_negatives))
      replace_with_negatives(audio, synthetic, replace, unknowns, rng,
                             word_of.get)
      replaced |= replace
    if joins:
      rng = np.random.default_rng([config.seed, step, _SAME_SPEAKER_STREAM])
      replace = ((split.label[indices] == labels_lib.UNKNOWN_INDEX) &
                 ~replaced & (rng.random(batch_size) < joins))
      chosen = join_commands[rng.integers(0, len(join_commands), batch_size)]
      which = rng.random(batch_size)
      command_first = rng.integers(0, 2, batch_size).astype(bool)
      for row in np.flatnonzero(replace[first:first + local]):
        command = chosen[first + row]
        words = join_words[command]
        word = words[int(which[first + row] * len(words))]
        pair = (command, word) if command_first[first + row] else (
            word, command)
        audio[row] = partial_words.join_halves(split.audio[pair[0]],
                                               split.audio[pair[1]])
        synthetic[row] = 0.0
    label = split.label[indices[first:first + local]]
    if windows:
      # As for the negatives: whole-batch draws, a stream of their own.
      rng = np.random.default_rng([config.seed, step, _STREAM_WINDOWS_STREAM])
      replace = (split.label[indices] > labels_lib.UNKNOWN_INDEX) & (
          rng.random(batch_size) < windows)
      seeds = rng.integers(0, 2**31, batch_size)
      label = label.copy()
      for row in np.flatnonzero(replace[first:first + local]):
        audio[row] = partial_words.stream_window(
            np.random.default_rng(seeds[first + row]), audio[row])
        label[row] = labels_lib.UNKNOWN_INDEX
    return {'audio': audio / audio_io.PCM16_SCALE, 'label': label,
            'synthetic': synthetic}

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
