"""Non-command clips cut from recorded words, for training `_unknown_`.

A model that hears only whole commands and other words learns to answer a
command from any part of it. These make the parts it must not answer:
`command_negative` (a command reversed, cut short, or joined from halves of
two commands; made the same way from recorded non-command words, new
sound sequences that are no command) and `stream_window` (a stream's
window that holds only the start or end of a word, as when a word enters
or leaves it). `join_halves` joins halves of two words, as the command
negatives do and as `config.same_speaker_joins` does with a command and a
non-command word of one speaker (a new word in one voice). Each keeps the
recordings' voice, room and level, so only the word tells it from a
command. NumPy only; `input_pipeline.train_iterator` applies them to
`config.command_negatives`, `config.unknown_negatives`,
`config.same_speaker_joins` and `config.stream_windows` of the draws.
"""

import numpy as np

# stream_window: the share of a word's energy a partial window keeps. Under
# three fifths, as the streaming issue suggests: a window must hold most of
# a word to say it.
_PART_IN_WINDOW = (0.1, 0.6)
# command_negative: the share of a word's duration kept of its first or last
# part. Up to half, not more: three fifths of most commands still say the
# word ('lef', 'stop' without its onset), and would teach a command as
# `_unknown_`.
_PART_OF_WORD = (0.3, 0.5)


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
  """A non-command made from two clips (of commands, or of non-command
  words): float32 in int16 units.

  One of, equally often: `clip` reversed; the first or the last
  `_PART_OF_WORD` of its word alone (the rest of the clip silent), where
  it was; or the first half of its word followed by the second half of
  `other`'s word (`other_differs`: a different word; else the reversal),
  centred. Each keeps the recording's voice, room and level, so only the
  word itself tells it from a command.
  """
  clip = clip.astype(np.float32)
  length = len(clip)
  kind = rng.integers(4)
  if kind == 0 or (kind == 3 and not other_differs):
    return clip[::-1].copy()
  if kind in (1, 2):
    start, end = word_extent(clip, max(length // 100, 1))
    out = np.zeros_like(clip)
    keep = max(int((end - start) * rng.uniform(*_PART_OF_WORD)), 1)
    part = slice(start, start + keep) if kind == 1 else slice(end - keep, end)
    out[part] = clip[part]
    return out
  return join_halves(clip, other)


def join_halves(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """The first half of `first`'s word followed by the second half of
  `second`'s, centred in a clip of `first`'s length (cut to it if longer):
  float32 in int16 units."""
  first = first.astype(np.float32)
  second = second.astype(np.float32)
  length = len(first)
  frame = max(length // 100, 1)
  start, end = word_extent(first, frame)
  second_start, second_end = word_extent(second, frame)
  joined = np.concatenate([first[start:(start + end) // 2],
                           second[(second_start + second_end) // 2:
                                  second_end]])[:length]
  out = np.zeros_like(first)
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
