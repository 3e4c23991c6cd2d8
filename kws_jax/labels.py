"""The classes a model tells apart, and which unknown words a fold leaves out.

Every model's classes are `['_silence_', '_unknown_', *wanted_words]`: the
two made-up classes first, at fixed indices, then the commands in the
config's order. `parse_part` reads the settings that name one part of k
('i/k': an unknown-word fold, a speaker group). This module is plain
Python (no NumPy, JAX or TensorFlow), so the data pipeline, the config
checks and the tools can all share these definitions.
"""

import collections
import re
from typing import Sequence

SILENCE_LABEL = '_silence_'
UNKNOWN_LABEL = '_unknown_'
SILENCE_INDEX = 0
UNKNOWN_INDEX = 1


def normalize_words(words: Sequence[str] | str) -> tuple[str, ...]:
  """Accepts a tuple or a comma string ('yes,no') and returns a tuple.

  Command-line overrides of a tuple field arrive as a one-element tuple
  holding the whole string, so both forms are split on commas here.
  """
  if isinstance(words, str):
    words = (words,)
  out = []
  for item in words:
    out.extend(w.strip().lower() for w in str(item).split(',') if w.strip())
  return tuple(out)


def prepare_words_list(wanted_words: Sequence[str] | str) -> list[str]:
  """Returns `['_silence_', '_unknown_', *wanted_words]`.

  Args:
    wanted_words: words in order, or a comma string such as 'yes,no'.
  """
  return [SILENCE_LABEL, UNKNOWN_LABEL, *normalize_words(wanted_words)]


def parse_part(text: str, name: str, what: str) -> tuple[int, int] | None:
  """An 'i/k' setting (part i of k, 1-based) as (i, k), or None for ''.

  Args:
    text: the setting's value.
    name: the setting, for the message (e.g. '--speaker_group').
    what: what a part is, for the message (e.g. 'speaker group').

  Raises:
    ValueError: not of the form 'i/k' with 1 <= i <= k and k >= 2 (the
      message names the setting).
  """
  if not text:
    return None
  match = re.fullmatch(r'\s*(\d+)\s*/\s*(\d+)\s*', str(text))
  if not match or not 1 <= int(match[1]) <= int(match[2]) or int(
      match[2]) < 2:
    raise ValueError(
        f'{name}={text!r} must be "i/k", {what} i of k with 1 <= i <= k '
        "and k >= 2 (e.g. '1/3'), or ''.")
  return int(match[1]), int(match[2])


def parse_unseen_fold(text: str) -> tuple[int, int] | None:
  """`config.unseen_words_fold` as (i, k), or None for '' (`parse_part`)."""
  return parse_part(text, 'config.unseen_words_fold', 'unknown-word fold')


def unknown_word_folds(words: collections.Counter, num_folds: int
                       ) -> list[list[str]]:
  """The unknown words dealt into `num_folds` folds, most clips first.

  Words sorted by clip count (most first, then by name) go to folds 1, 2,
  ..., k, 1, 2, ... in turn, so the big words are spread over the folds
  and each fold is a fixed function of the data's words.
  """
  ordered = sorted(words, key=lambda w: (-words[w], w))
  return [ordered[i::num_folds] for i in range(num_folds)]


def unknown_word_fold(words: collections.Counter, fold: tuple[int, int],
                      setting: str, data: str = 'the data') -> set[str]:
  """The words of fold i of k, `fold` = (i, k), of `unknown_word_folds`.

  Raises ValueError, naming `setting` (the flag or config field that asked
  for the fold) and `data`, when `words` are fewer than the folds.
  """
  index, num_folds = fold
  if len(words) < num_folds:
    raise ValueError(
        f'{setting}={index}/{num_folds}: {data} has {len(words)} unknown '
        f'(non-command) words, fewer than {num_folds} folds.')
  return set(unknown_word_folds(words, num_folds)[index - 1])
