r"""Writes a long WAV of test-set words over background noise, with labels.

The tutorial's `generate_streaming_test_wav`: clips of the data's *test*
split are placed at random positions (one every `clip_duration_ms +
word_gap_ms` on average) over background noise that fades from one random
noise segment to the next, and a ground-truth file notes each word's label
(`_unknown_` for words outside `--wanted_words`) and start time in ms, where
its clip was placed, as the tutorial does. `test_streaming_accuracy` then
scores a model on it.

  python -m kws_jax.generate_streaming_test_wav \
      --data_dir=/tmp/speech_dataset --test_duration_seconds=600 \
      --output_audio_file=/tmp/streaming_test.wav \
      --output_labels_file=/tmp/streaming_test_labels.txt

The test split is `testing_list.txt` when the data has one (entries
`word/clip` naming .wav or .flac; either matches the file on disk),
otherwise the tutorial's hash split (`which_set`). With `--test_dir`, words
come from a folder laid out like the official test-set archive instead
(`_unknown_/`, one folder per word), and its `_silence_/` is the
background (unless `--background_dir` names another); the log says which
folder the background came from.

`--speaker_group=i/k` takes the words of one speaker group alone: speakers
(the part of a clip's name before `_nohash_`) are dealt into k disjoint
groups by a hash of their id (`speech_commands_builder.speaker_group`), so a
speaker is always in the same group. Streams of different groups hold
different speakers: settings chosen on one can be checked on another
(experiments/calibration_rule_check.sh).

`--unseen_words_fold=i/k` keeps, of the non-command words, only those of
fold i of k, dealt as training's `config.unseen_words_fold` deals them: with
`--unknown_percentage=100` a stream of words that fold's model never heard,
to measure how often words outside its vocabulary fire a command
(experiments/streaming_calibration.sh --unseen_words).
"""

import collections
import dataclasses
import os
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from kws_jax import audio_io
from kws_jax import labels as labels_lib
from kws_jax import speech_commands_builder
from kws_jax.runtime import stream_scoring
from kws_jax.runtime import streaming

UNKNOWN_LABEL = streaming.UNKNOWN_LABEL
SILENCE_LABEL = streaming.SILENCE_LABEL
# The split lists of a Speech Commands folder, by `which_set` name.
SPLIT_LISTS = {'testing': speech_commands_builder.TESTING_LIST,
               'validation': speech_commands_builder.VALIDATION_LIST}
DEFAULT_WANTED_WORDS = ('yes', 'no', 'up', 'down', 'left', 'right', 'on',
                        'off', 'stop', 'go')

# Background segments last `clip_duration_ms` plus a crossfade into the next
# one (linear, the two envelopes summing to one).
_BACKGROUND_CROSSFADE_MS = 250.0
# Fade in and out of each word clip: the tutorial's 500 samples at 16 kHz.
_WORD_RAMP_MS = 31.25


def _audio_files(folder: str) -> list[str]:
  if not os.path.isdir(folder):
    return []
  return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
          if name.lower().endswith(audio_io.AUDIO_EXTENSIONS) and
          not name.startswith('.')]


def _speaker_group_clips(clips: dict[str, list[str]],
                         speaker_group: tuple[int, int]
                         ) -> dict[str, list[str]]:
  """The clips whose speaker is in group i of k (`speaker_group`).

  Raises:
    ValueError: a clip's name has no `_nohash_`, so no speaker to group by
      (the message names the file).
  """
  index, num_groups = speaker_group
  selected, speakers = {}, set()
  for label, paths in clips.items():
    selected[label] = []
    for path in paths:
      speaker = speech_commands_builder.speaker_id(path)
      if speaker is None:
        raise ValueError(
            f'{audio_io.printable_path(path)} has no speaker in its name '
            '(Speech Commands names clips <speaker>_nohash_<n>.wav), which '
            '--speaker_group needs; rename the clips or leave out '
            '--speaker_group.')
      if speech_commands_builder.speaker_group(speaker, num_groups) == index:
        selected[label].append(path)
        speakers.add(speaker)
  logging.info('Speaker group %d/%d: %d speakers, %d clips.', index,
               num_groups, len(speakers),
               sum(len(paths) for paths in selected.values()))
  return selected


def _check_found(clips: dict[str, list[str]], where: str,
                 unknown_percentage: float,
                 speaker_group: tuple[int, int] | None
                 ) -> dict[str, list[str]]:
  """`clips` of `speaker_group` (all of them for None), each label found.

  Raises:
    ValueError: a label that is needed has no clip (the message names
      `where` and the group), or see `_speaker_group_clips`.
  """
  if speaker_group:
    clips = _speaker_group_clips(clips, speaker_group)
    where = f'{where}, --speaker_group={speaker_group[0]}/{speaker_group[1]}'
  missing = [label for label, paths in clips.items()
             if not paths and (label != UNKNOWN_LABEL or
                               unknown_percentage > 0)]
  if missing:
    raise ValueError(f'No test clips for {", ".join(missing)} in {where}; '
                     'check --wanted_words and the data folder.')
  return clips


def find_test_clips(data_dir: str, wanted_words: Sequence[str],
                    validation_percentage: float = 10,
                    testing_percentage: float = 10,
                    unknown_percentage: float = 30,
                    split: str = 'testing',
                    speaker_group: tuple[int, int] | None = None,
                    unseen_words_fold: tuple[int, int] | None = None
                    ) -> dict[str, list[str]]:
  """Lists one split's clips of a folder in Speech Commands layout.

  Args:
    data_dir: one folder per word; optionally `testing_list.txt` and
      `validation_list.txt`.
    wanted_words: the command words; any other word is `_unknown_`.
    validation_percentage: for the hash split, when there is no list (%).
    testing_percentage: likewise.
    unknown_percentage: share of unknown words wanted; 0 allows none.
    split: 'testing' (the tutorial's stream) or 'validation' (a stream to
      choose streaming settings on, without touching the test words).
    speaker_group: (i, k): only the clips of speaker group i of k
      (`speech_commands_builder.speaker_group`); None takes every clip.
    unseen_words_fold: (i, k): `_unknown_` holds only the words of fold i
      of k, dealt as training's `config.unseen_words_fold` deals them
      (`labels.unknown_word_folds` over every split's clips), so a stream
      can hold only non-command words that fold's model never heard; None
      takes every non-command word.

  Returns:
    {label: sorted paths} for each wanted word and `_unknown_`.

  Raises:
    ValueError: a label has no clip in the split (and group), the split is
      unknown, or a clip's name has no speaker while grouping.
  """
  if split not in SPLIT_LISTS:
    raise ValueError(f'--split={split}: use one of {", ".join(SPLIT_LISTS)}.')
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f'--data_dir {data_dir} is not a folder.')
  list_path = os.path.join(data_dir, SPLIT_LISTS[split])
  testing = None
  # As the training data's builder does: with either list, the lists split
  # the data (a missing one lists nothing); with neither, the hash does.
  if any(os.path.isfile(os.path.join(data_dir, name))
         for name in SPLIT_LISTS.values()):
    testing = speech_commands_builder.read_split_list(list_path) or set()
    logging.info('%s split: %d entries of %s.', split.title(), len(testing),
                 list_path)
  else:
    logging.info('No %s in %s: using the hash split (%g%% validation, %g%% '
                 'testing).', SPLIT_LISTS[split], data_dir,
                 validation_percentage, testing_percentage)
  wanted = [w.lower() for w in wanted_words]
  clips = {word: [] for word in wanted}
  clips[UNKNOWN_LABEL] = []
  unknown_counts = collections.Counter()  # Every split's, as training's.
  for folder in sorted(os.listdir(data_dir)):
    if folder.startswith(('_', '.')):
      continue
    word = folder.lower()
    paths = _audio_files(os.path.join(data_dir, folder))
    if paths and word not in clips:
      unknown_counts[folder] = len(paths)
    for path in paths:
      name = os.path.basename(path)
      if testing is not None:
        in_test = speech_commands_builder.split_list_key(
            f'{folder}/{name}') in testing
      else:
        in_test = speech_commands_builder.which_set(
            f'{folder}/{name}', validation_percentage,
            testing_percentage) == split
      if in_test:
        clips[word if word in clips else UNKNOWN_LABEL].append(path)
  if unseen_words_fold:
    index, num_folds = unseen_words_fold
    fold = labels_lib.unknown_word_fold(unknown_counts, unseen_words_fold,
                                        '--unseen_words_fold', data_dir)
    logging.info('Unseen-words fold %d of %d: non-command words %s.', index,
                 num_folds, ', '.join(sorted(fold)))
    clips[UNKNOWN_LABEL] = [p for p in clips[UNKNOWN_LABEL]
                            if os.path.basename(os.path.dirname(p)) in fold]
  return _check_found(clips, data_dir, unknown_percentage, speaker_group)


def find_test_dir_clips(test_dir: str, wanted_words: Sequence[str],
                        unknown_percentage: float = 30,
                        speaker_group: tuple[int, int] | None = None
                        ) -> dict[str, list[str]]:
  """Lists clips of a folder laid out like the official test-set archive.

  `speaker_group` as for `find_test_clips`.

  Returns:
    {label: sorted paths} from `test_dir/<word>/` and `test_dir/_unknown_/`.

  Raises:
    ValueError: a label has no clip (in the group), or a clip's name has no
      speaker while grouping.
  """
  if not os.path.isdir(test_dir):
    raise FileNotFoundError(f'--test_dir {test_dir} is not a folder.')
  folders = {name.lower(): os.path.join(test_dir, name)
             for name in os.listdir(test_dir)}
  clips = {}
  for label in [w.lower() for w in wanted_words] + [UNKNOWN_LABEL]:
    clips[label] = _audio_files(folders.get(label, ''))
  return _check_found(clips, test_dir, unknown_percentage, speaker_group)


def mix_in_audio_sample(track: np.ndarray, track_offset: int,
                        sample: np.ndarray, sample_offset: int,
                        num_samples: int, volume: float, ramp_in: int,
                        ramp_out: int) -> None:
  """Adds `sample` into `track` in place, with linear fades.

  Args:
    track: float [T], modified in place.
    track_offset: where in `track` to start, samples.
    sample: float [S] to mix in.
    sample_offset: where in `sample` to start, samples.
    num_samples: nominal length of the piece; less is mixed where track or
      sample ends first. The fades are placed relative to this length.
    volume: gain for the sample.
    ramp_in: samples of fade-in at the start (gain rising from 0 to 1).
    ramp_out: samples of fade-out before `num_samples` (falling to 0).
  """
  end = min(track_offset + num_samples, track.shape[0],
            track_offset + sample.shape[0] - sample_offset)
  count = end - track_offset
  if count <= 0:
    return
  i = np.arange(count, dtype=np.float64)
  envelope = np.ones(count)
  if ramp_in > 0:
    envelope = np.where(i < ramp_in, i / ramp_in, envelope)
  if ramp_out > 0:
    envelope = np.where(i > num_samples - ramp_out,
                        (num_samples - i) / ramp_out, envelope)
  piece = sample[sample_offset:sample_offset + count]
  track[track_offset:end] += (piece * envelope * volume).astype(track.dtype)


def load_background(background_dir: str, sample_rate: int) -> list[np.ndarray]:
  """Reads every audio file in `background_dir` (none if it is missing).

  Unreadable files are left out with a warning naming each.
  """
  background = []
  for path in _audio_files(background_dir):
    try:
      background.append(audio_io.read_audio(path, sample_rate))
    except audio_io.AudioError as e:
      logging.warning('Skipping unreadable background file: %s', e)
  return background


@dataclasses.dataclass(frozen=True)
class StreamSettings:
  """How to build the stream; durations in ms unless named otherwise."""
  sample_rate: int = 16000
  clip_duration_ms: float = 1000
  test_duration_seconds: float = 600
  word_gap_ms: float = 2000
  unknown_percentage: float = 30
  background_volume: float = 0.1
  # Background alone, no words (a stream to count false alarms on).
  noise_only: bool = False


def generate_stream(clips: dict[str, list[str]], background: list[np.ndarray],
                    settings: StreamSettings,
                    rng: np.random.Generator) -> tuple[
                        np.ndarray, list[tuple[str, float]]]:
  """Builds the test audio and its ground truth.

  Args:
    clips: {label: paths} with `_unknown_` among the labels (see
      `find_test_clips`).
    background: noise recordings, float32 at `settings.sample_rate`; may be
      empty (no noise).
    settings: durations and mix levels.
    rng: the only source of randomness.

  Returns:
    (audio float32 [test_duration_seconds * sample_rate], [(label, time_ms)])
    with each word's label and the time in ms where its clip starts. A clip
    that cannot be read is logged, dropped from the choice and another one
    drawn.

  Raises:
    ValueError: every clip of a label that was drawn is unreadable.
  """
  clips = {label: list(paths) for label, paths in clips.items()}
  rate = settings.sample_rate
  total = int(round(settings.test_duration_seconds * rate))
  track = np.zeros(total, np.float32)
  clip_samples = streaming.ms_to_samples(settings.clip_duration_ms, rate)

  # Background: a random stretch of a random recording every clip duration,
  # each fading into the next.
  crossfade = streaming.ms_to_samples(_BACKGROUND_CROSSFADE_MS, rate)
  segment = clip_samples + crossfade
  background = [b for b in background if b.shape[0] > 0]
  if background and settings.background_volume > 0:
    for offset in range(0, total, clip_samples):
      noise = background[rng.integers(len(background))]
      if noise.shape[0] < segment:
        noise = np.tile(noise, -(-segment // noise.shape[0]))
      start = int(rng.integers(noise.shape[0] - segment + 1))
      volume = rng.uniform(0, settings.background_volume)
      mix_in_audio_sample(track, offset, noise, start, segment, volume,
                          crossfade if offset > 0 else 0, crossfade)

  # Words: one per clip + gap, at a random place within the gap.
  gap = streaming.ms_to_samples(settings.word_gap_ms, rate)
  word_stride = clip_samples + gap
  ramp = streaming.ms_to_samples(_WORD_RAMP_MS, rate)
  wanted = [label for label in clips if label != UNKNOWN_LABEL]
  cache, unreadable = {}, []
  ground_truth = []
  for i in range(0 if settings.noise_only else total // word_stride):
    offset = i * word_stride + (int(rng.integers(gap)) if gap > 0 else 0)
    if rng.uniform(0, 100) < settings.unknown_percentage:
      label = UNKNOWN_LABEL
    else:
      label = wanted[rng.integers(len(wanted))]
    clip = _draw_clip(clips[label], label, rng, cache, rate, clip_samples,
                      unreadable)
    mix_in_audio_sample(track, offset, clip, 0, clip_samples, 1.0, ramp, ramp)
    ground_truth.append((label, offset * 1000.0 / rate))
  if unreadable:
    logging.warning('Skipped %d unreadable clips: %s', len(unreadable),
                    ', '.join(unreadable))
  return track, ground_truth


def _draw_clip(paths: list[str], label: str, rng: np.random.Generator,
               cache: dict[str, np.ndarray], rate: int, clip_samples: int,
               unreadable: list[str]) -> np.ndarray:
  """A random readable clip of `paths`, fitted; unreadable ones are removed
  from `paths`, added to `unreadable` (with a warning) and the draw
  repeated."""
  while paths:
    path = paths[rng.integers(len(paths))]
    if path not in cache:
      try:
        cache[path] = audio_io.fit_length(audio_io.read_audio(path, rate),
                                          clip_samples)
      except audio_io.AudioError as e:
        logging.warning('Skipping unreadable clip: %s', e)
        paths.remove(path)
        unreadable.append(audio_io.printable_path(path))
        continue
    return cache[path]
  raise ValueError(f'No readable {label} clip is left; see the warnings '
                   'above for the files that could not be read.')


def _define_flags() -> None:
  # Defined only when run as a program; see test_streaming_accuracy.py.
  flags.DEFINE_string('data_dir', '/tmp/speech_dataset',
                      'Folder in Speech Commands layout to take test-split '
                      'words (and background noise) from.')
  flags.DEFINE_string('test_dir', None,
                      'Folder laid out like the official test-set archive '
                      '(_silence_/, _unknown_/, one folder per word); takes '
                      'the words instead of --data_dir.')
  flags.DEFINE_string('background_dir', None,
                      'Noise recordings; default: <test_dir>/_silence_ with '
                      '--test_dir, else <data_dir>/_background_noise_.')
  flags.DEFINE_string('output_audio_file',
                      '/tmp/speech_commands_train/streaming_test.wav',
                      'Where to write the audio.')
  flags.DEFINE_string('output_labels_file',
                      '/tmp/speech_commands_train/streaming_test_labels.txt',
                      'Where to write the "label, time_ms" lines.')
  flags.DEFINE_float('test_duration_seconds', 600,
                     'Length of the audio, seconds.')
  flags.DEFINE_float('word_gap_ms', 2000,
                     'Average gap between words, ms.')
  flags.DEFINE_float('unknown_percentage', 30,
                     'Share of words that are not wanted words, %.')
  flags.DEFINE_float('background_volume', 0.1,
                     'Largest background gain, 0..1.')
  flags.DEFINE_list('wanted_words', list(DEFAULT_WANTED_WORDS),
                    'Command words; others are labelled _unknown_.')
  flags.DEFINE_integer('sample_rate', 16000, 'Sample rate, Hz.')
  flags.DEFINE_float('clip_duration_ms', 1000, 'Length of a word clip, ms.')
  flags.DEFINE_float('validation_percentage', 10,
                     'For the hash split (no testing_list.txt), %.')
  flags.DEFINE_float('testing_percentage', 10,
                     'For the hash split (no testing_list.txt), %.')
  flags.DEFINE_integer('seed', 0, 'Random seed; the same seed and data give '
                       'the same files.')
  flags.DEFINE_enum('split', 'testing', list(SPLIT_LISTS),
                    'Which words of --data_dir: the test split, or the '
                    'validation split (to choose streaming settings on).')
  flags.DEFINE_string('speaker_group', '',
                      "'i/k': only the words of speaker group i of k "
                      "(speakers dealt into k disjoint groups by a hash of "
                      "the name's part before _nohash_), e.g. 1/2 and 2/2 "
                      "for two halves of the speakers; '' takes every "
                      'speaker.')
  flags.DEFINE_string('unseen_words_fold', '',
                      "'i/k': the non-command words are only those of "
                      "unseen-words fold i of k, dealt as training's "
                      'config.unseen_words_fold deals them: with '
                      '--unknown_percentage=100, a stream of words the '
                      "fold's model never heard; '' takes every "
                      'non-command word.')
  flags.DEFINE_bool('noise_only', False,
                    'Background noise alone, no words (an empty ground '
                    'truth): a stream to count false alarms on.')


def _default_background_dir(data_dir: str | None,
                            test_dir: str | None) -> str:
  # The folder the words come from first: with --test_dir, its _silence_
  # (--data_dir then only has its default, which may hold other noise).
  for candidate in (
      os.path.join(test_dir, SILENCE_LABEL) if test_dir else None,
      os.path.join(data_dir, speech_commands_builder.BACKGROUND_NOISE_DIR)
      if data_dir else None):
    if candidate and os.path.isdir(candidate):
      return candidate
  return ''


def run(*, data_dir: str | None, test_dir: str | None,
        background_dir: str | None, output_audio_file: str,
        output_labels_file: str, wanted_words: Sequence[str],
        settings: StreamSettings, validation_percentage: float = 10,
        testing_percentage: float = 10, seed: int = 0,
        split: str = 'testing', speaker_group: str = '',
        unseen_words_fold: str = '') -> list[tuple[str, float]]:
  """Finds the clips, builds the stream and writes both files.

  `split` ('testing' or 'validation') picks the words of `data_dir`;
  `--test_dir` is a test set whatever it says. `speaker_group` ('i/k', or
  '' for every speaker) keeps the words of one speaker group, and
  `unseen_words_fold` ('i/k', or '') the non-command words of one
  unseen-words fold (see `find_test_clips`).

  Returns:
    The ground truth written.
  """
  if settings.clip_duration_ms <= 0 or settings.test_duration_seconds <= 0:
    raise ValueError('clip_duration_ms and test_duration_seconds must be '
                     'positive.')
  if settings.word_gap_ms < 0:
    raise ValueError(f'word_gap_ms must be >= 0, got {settings.word_gap_ms}.')
  if not 0 <= settings.unknown_percentage <= 100:
    raise ValueError('unknown_percentage must be in [0, 100], got '
                     f'{settings.unknown_percentage}.')
  if not wanted_words:
    raise ValueError('wanted_words must name at least one word.')
  if not test_dir and not data_dir:
    raise ValueError('Give data_dir (or test_dir) to take the words from.')
  if test_dir and split != 'testing':
    raise ValueError(f'--split={split} takes words from --data_dir; '
                     '--test_dir is a test set.')
  group = labels_lib.parse_part(speaker_group, '--speaker_group',
                                'speaker group')
  fold = labels_lib.parse_part(unseen_words_fold, '--unseen_words_fold',
                               'unknown-word fold')
  if fold and test_dir:
    raise ValueError('--unseen_words_fold deals the words of --data_dir as '
                     'training does; --test_dir has no words to deal (its '
                     '_unknown_ is one folder).')
  if settings.noise_only:
    clips = {}
  elif test_dir:
    clips = find_test_dir_clips(test_dir, wanted_words,
                                settings.unknown_percentage, group)
  else:
    clips = find_test_clips(data_dir, wanted_words, validation_percentage,
                            testing_percentage, settings.unknown_percentage,
                            split, group, fold)
  for label, paths in clips.items():
    logging.info('%s: %d %s clips.', label, len(paths),
                 'test' if test_dir else split)
  if background_dir is None:
    background_dir = _default_background_dir(data_dir, test_dir)
  background = load_background(background_dir, settings.sample_rate)
  if background:
    logging.info('Background noise: %d recordings from %s.', len(background),
                 background_dir)
  if settings.noise_only and not (background and
                                  settings.background_volume > 0):
    raise ValueError(
        f'--noise_only needs background noise: none found in '
        f'{background_dir or "(no folder)"} or --background_volume is 0; '
        'pass --background_dir and a volume above 0.')
  if not background and settings.background_volume > 0:
    logging.warning('No background noise found (%r); the words are mixed '
                    'into silence.', background_dir)
  audio, ground_truth = generate_stream(clips, background, settings,
                                        np.random.default_rng(seed))
  for path in (output_audio_file, output_labels_file):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  audio_io.write_wav(output_audio_file, audio, settings.sample_rate)
  stream_scoring.write_ground_truth(output_labels_file, ground_truth)
  logging.info('Wrote %.1f s with %d words to %s and %s.',
               audio.shape[0] / settings.sample_rate, len(ground_truth),
               output_audio_file, output_labels_file)
  return ground_truth


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  try:
    _run_from_flags(f)
  except (ValueError, OSError) as e:  # AudioError included.
    print(f'Error: {e}', file=sys.stderr)
    sys.exit(1)


def _run_from_flags(f: flags.FlagValues) -> None:
  run(data_dir=f.data_dir, test_dir=f.test_dir,
      background_dir=f.background_dir,
      output_audio_file=f.output_audio_file,
      output_labels_file=f.output_labels_file,
      wanted_words=f.wanted_words,
      settings=StreamSettings(
          sample_rate=f.sample_rate, clip_duration_ms=f.clip_duration_ms,
          test_duration_seconds=f.test_duration_seconds,
          word_gap_ms=f.word_gap_ms,
          unknown_percentage=f.unknown_percentage,
          background_volume=f.background_volume, noise_only=f.noise_only),
      validation_percentage=f.validation_percentage,
      testing_percentage=f.testing_percentage, seed=f.seed, split=f.split,
      speaker_group=f.speaker_group, unseen_words_fold=f.unseen_words_fold)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
