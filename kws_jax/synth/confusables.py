"""Words that are not commands but sound close to one: hard negatives.

A model learns what a command is NOT only from the non-command words it is
shown. The recorded `_unknown_` words of Speech Commands are few (the
shared data's are mostly bed, cat and happy), so the words that fail on new
speakers are the ones that sound like a command: dog heard as down, five as
right, nine as no. `NEAR_WORDS` lists, for each of the ten default
commands, real words that share its onset, vowel or rhyme;
`python -m kws_jax.synthesize --negatives_for=yes,no,...` speaks them
(and `--everyday_words` adds `EVERYDAY_WORDS` for breadth), and
`--config.synthetic_unknown=True` trains on them as `_unknown_`.

Real words cover a command's neighbourhood only where English happens to
have a word. `pseudo_words` fills the rest: made-up words one sound from a
command (its rime after every other onset: boun, troun; its onset before
other rimes: dine, doud), kept only where a pronouncer (eSpeak NG, through
`kws_jax.synth.espeak.pronounce`) says they keep that onset or rime and
sound like no command, no word of Speech Commands and no near or everyday
word, so a made-up word never stands in for a recorded one. (A few are rare real
words outside the lists: press, nay, ess.)

Several of the near words are also recorded in Speech Commands (dog, five,
nine, one, seven, learn, wow, ...); a run that leaves a word out
(`--config.exclude_words`) leaves its synthetic clips out too, so the
unseen-words measure stays honest.
"""

import itertools
import random
from typing import Callable, Sequence

# Command -> words that sound close to it. No command appears in any list
# (tested), so a synthetic near word never teaches `_unknown_` a command.
NEAR_WORDS: dict[str, tuple[str, ...]] = {
    'yes': ('yet', 'yeah', 'yell', 'less', 'guess', 'chess', 'bless',
            'mess', 'yep', 'dress', 'jess'),
    'no': ('know', 'snow', 'nine', 'now', 'note', 'nose', 'known', 'low',
           'new', 'nah', 'though', 'slow'),
    'up': ('cup', 'pup', 'hop', 'puff', 'pub', 'ump', 'sup', 'top', 'hut',
           'cut', 'dub'),
    'down': ('town', 'dawn', 'dog', 'round', 'gown', 'brown', 'sound',
             'done', 'drown', 'crown', 'doubt', 'seven'),
    'left': ('lift', 'loft', 'lest', 'laughed', 'theft', 'lend', 'leaf',
             'learn', 'deft', 'less', 'lets'),
    'right': ('write', 'bright', 'five', 'light', 'fight', 'ride', 'white',
              'rice', 'ripe', 'night', 'bite', 'rye'),
    'on': ('own', 'upon', 'gone', 'an', 'in', 'one', 'john', 'honk',
           'onto', 'follow', 'forward', 'wan'),
    'off': ('of', 'cough', 'often', 'awful', 'if', 'golf', 'scoff', 'staff',
            'oft', 'wow', 'loft'),
    'stop': ('stock', 'shop', 'step', 'stomp', 'stab', 'spot', 'drop',
             'stuff', 'stoop', 'strop', 'slop'),
    'go': ('goat', 'grow', 'so', 'toe', 'show', 'ghost', 'goal', 'coat',
           'dough', 'gold', 'ago', 'though'),
}

# Everyday words of no command's sound, for breadth.
EVERYDAY_WORDS: tuple[str, ...] = (
    'apple', 'water', 'table', 'window', 'morning', 'music', 'phone',
    'coffee', 'paper', 'garden', 'yellow', 'purple', 'thank', 'please',
    'hello', 'maybe', 'really', 'little', 'people', 'because', 'something',
    'kitchen', 'minute', 'party', 'number', 'picture', 'computer', 'dinner',
    'weather', 'summer', 'winter', 'family', 'mother', 'father', 'sister',
    'baby', 'money', 'sugar', 'orange', 'banana', 'pizza', 'chicken',
    'button', 'camera', 'movie', 'ticket', 'letter', 'market', 'office',
    'problem', 'question', 'answer', 'special', 'simple', 'travel', 'happen',
    'tomorrow', 'today', 'tonight', 'welcome', 'sorry', 'okay', 'where',
    'when', 'what', 'which', 'very', 'quiet', 'open', 'close', 'play',
    'pause', 'volume', 'channel', 'lights', 'alarm', 'timer', 'call',
    'send', 'read', 'turn', 'bring', 'keep', 'start', 'finish', 'again',
    'three', 'eight', 'zero', 'tree', 'house', 'bird', 'marvin', 'sheila',
    'visual', 'backward', 'six', 'two', 'four',
)


# The 35 words of Speech Commands v0.02. A made-up word never sounds like
# one: the unseen-words measure must not score a word that training has
# heard in made-up form.
RECORDED_WORDS: tuple[str, ...] = (
    'yes', 'no', 'up', 'down', 'left', 'right', 'on', 'off', 'stop', 'go',
    'zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight',
    'nine', 'bed', 'bird', 'cat', 'dog', 'happy', 'house', 'marvin',
    'sheila', 'tree', 'wow', 'backward', 'forward', 'follow', 'learn',
    'visual')

# Spelled onsets put before a command's rime.
ONSETS: tuple[str, ...] = (
    '', 'b', 'ch', 'd', 'f', 'g', 'h', 'j', 'k', 'l', 'm', 'n', 'p', 'r', 's',
    'sh', 't', 'th', 'v', 'w', 'y', 'z', 'bl', 'br', 'cl', 'cr', 'dr', 'fl',
    'fr', 'gl', 'gr', 'pl', 'pr', 'sl', 'sm', 'sn', 'sp', 'st', 'str', 'sw',
    'tr')

# Command -> (its spelled onset, spellings of its rime to try after another
# onset, other rimes to put after its onset). Onset + the first rime
# spelling is the command.
NEAR_SOUNDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    'yes': ('y', ('es', 'ess'),
            ('as', 'is', 'os', 'us', 'ees', 'ice', 'ace', 'ose', 'et', 'ell',
             'eck', 'ed', 'em', 'en', 'ep', 'eth', 'eff', 'esk')),
    'no': ('n', ('o', 'oe'),
           ('ay', 'ee', 'eye', 'oo', 'ow', 'aw', 'oy', 'ah', 'er', 'oat',
            'ode', 'ole', 'ome', 'ope', 'ose', 'oke')),
    'up': ('', ('up',),
           ('ap', 'ep', 'op', 'oop', 'eep', 'ape', 'ope', 'ut', 'uck', 'ub',
            'ud', 'um', 'un', 'uff', 'ug', 'ush', 'ull')),
    'down': ('d', ('own', 'oun'),
             ('an', 'en', 'in', 'on', 'un', 'oon', 'een', 'ane', 'ine',
              'out', 'oud', 'owl', 'ouse', 'owk', 'oum', 'ong', 'ung')),
    'left': ('l', ('eft',),
             ('aft', 'ift', 'oft', 'uft', 'eeft', 'ef', 'ept', 'est', 'eck',
              'end', 'elt', 'esk', 'ent', 'ench')),
    'right': ('r', ('ight', 'ite'),
              ('at', 'et', 'it', 'ot', 'ut', 'eet', 'ate', 'ote', 'oot',
               'out', 'ipe', 'ide', 'ife', 'ile', 'ime', 'ine', 'ise',
               'ive')),
    'on': ('', ('on',),
           ('an', 'en', 'in', 'un', 'oon', 'een', 'ane', 'awn', 'om', 'ong',
            'od', 'ot', 'ob', 'og', 'ock', 'oss', 'oll')),
    'off': ('', ('off',),
            ('aff', 'iff', 'uff', 'oof', 'eef', 'awf', 'oth', 'oss', 'osh',
             'op', 'ot', 'ock', 'ov', 'og', 'oft')),
    'stop': ('st', ('op',),
             ('ap', 'ep', 'ip', 'up', 'oop', 'eep', 'ope', 'ot', 'ock', 'ob',
              'od', 'og', 'om', 'oss', 'osh', 'oll')),
    'go': ('g', ('o', 'oe'),
           ('ay', 'oo', 'ow', 'aw', 'oy', 'ah', 'oat', 'ode', 'ole', 'ome',
            'ope', 'ose', 'oke', 'ear', 'ull')),
}

# Spelled vowels and codas: with ONSETS, the grid of made-up syllables
# from which the words two sounds from a command are taken.
VOWELS: tuple[str, ...] = ('a', 'e', 'i', 'o', 'u', 'ee', 'oo', 'ay', 'ow',
                           'oy', 'igh', 'oa', 'aw', 'ea')
CODAS: tuple[str, ...] = ('', 'b', 'd', 'f', 'g', 'k', 'l', 'm', 'n', 'p',
                          's', 't', 'sh', 'ng', 'st', 'nt', 'ft')

# A pronunciation in IPA with eSpeak's stress marks: one syllable, stressed.
_PRIMARY, _SECONDARY = '\u02c8', '\u02cc'
# What a syllable's nucleus is made of in eSpeak's IPA (vowels, the length
# mark); the consonants after it are the coda.
_NUCLEUS = frozenset('aeiouyæɑɒɔəɛɜɪʊʌɐᵻɚɝøœː')


def _onset_and_rime(pronunciation: str) -> tuple[str, str] | None:
  """(onset, rime) of a reading with one stress, else None (e.g. spelled
  out as letters, or read unstressed); the rimes tried are all one
  syllable."""
  if (pronunciation.count(_PRIMARY) != 1 or _SECONDARY in pronunciation or
      ' ' in pronunciation):
    return None
  onset, rime = pronunciation.split(_PRIMARY)
  return onset, rime


def _syllable(pronunciation: str) -> tuple[str, str, str] | None:
  """(onset, nucleus, coda) of a reading with one stress, else None."""
  parts = _onset_and_rime(pronunciation)
  if parts is None:
    return None
  onset, rime = parts
  split = len(rime)
  for i, sound in enumerate(rime):
    if sound not in _NUCLEUS:
      split = i
      break
  return onset, rime[:split], rime[split:]


def pseudo_words(commands: Sequence[str],
                 pronounce: Callable[[str], Sequence[str]],
                 two_sounds: int = 0) -> list[str]:
  """Made-up words one sound from each command, in order, each sound once.

  For each command: its rime after every other onset (the first spelling of
  the rime that keeps its sound), and its onset before each other rime.
  With `two_sounds`, then up to that many words two sounds from each
  command: syllables of the ONSETS x VOWELS x CODAS grid whose reading
  keeps one of the command's onset, vowel and coda and changes the other
  two, taken in turn from the three kinds (a fixed shuffle of each), so a
  word such as dug or dag stands near down beside dine and town.

  Args:
    commands: keys of NEAR_SOUNDS.
    pronounce: word -> its pronunciations (one per reference accent, IPA
      with stress marks, as eSpeak NG writes them). The first decides
      which sounds a made-up word shares with the command; a word is
      dropped if any pronunciation equals that of a command, a word of
      RECORDED_WORDS, NEAR_WORDS or EVERYDAY_WORDS, or of a word kept
      before.
    two_sounds: words two sounds from each command, at most (0: none).

  Raises:
    ValueError: a command has no entry in NEAR_SOUNDS.
  """
  missing = [c for c in commands if c not in NEAR_SOUNDS]
  if missing:
    raise ValueError(
        f'No near sounds are listed for {missing}; they exist for '
        f'{sorted(NEAR_SOUNDS)}. Give your own with --words.')
  real = set(RECORDED_WORDS) | set(commands) | set(EVERYDAY_WORDS)
  real |= {w for words in NEAR_WORDS.values() for w in words}
  taken = {p for word in real for p in pronounce(word)}
  out: list[str] = []

  def keep(word: str) -> bool:
    sounds = list(pronounce(word))
    if word in real or taken.intersection(sounds):
      return False
    out.append(word)
    taken.update(sounds)
    return True

  for command in commands:
    onset, spellings, rimes = NEAR_SOUNDS[command]
    parts = _onset_and_rime(pronounce(command)[0])
    if parts is None:
      raise ValueError(f'{command!r} is not read as one stressed syllable '
                       f'({pronounce(command)[0]!r}).')
    for other in ONSETS:
      if other == onset:
        continue
      for spelling in spellings:
        heard = _onset_and_rime(pronounce(other + spelling)[0])
        if heard and heard[1] == parts[1] and heard[0] != parts[0]:
          keep(other + spelling)
          break
    for rime in rimes:
      heard = _onset_and_rime(pronounce(onset + rime)[0])
      if heard and heard[0] == parts[0] and heard[1] != parts[1]:
        keep(onset + rime)
  if two_sounds:
    grid = {}
    for word in (o + v + c for o in ONSETS for v in VOWELS for c in CODAS):
      heard = _syllable(pronounce(word)[0])
      if heard is not None:
        grid.setdefault(word, heard)
    for command in commands:
      _keep_two_sounds(_syllable(pronounce(command)[0]), command, grid,
                       two_sounds, keep)
  return out


def _keep_two_sounds(target: tuple[str, str, str], command: str,
                     grid: dict[str, tuple[str, str, str]], count: int,
                     keep: Callable[[str], bool]) -> None:
  """Offers `keep` the grid's words (word -> onset, nucleus, coda) two
  sounds from `target`, the three kinds in turn, until it has kept
  `count`."""
  kinds: list[list[str]] = [[], [], []]  # The sound kept: onset/vowel/coda.
  for word, heard in grid.items():
    same = [a == b for a, b in zip(heard, target)]
    if sum(same) == 1:
      kinds[same.index(True)].append(word)
  for i, words in enumerate(kinds):
    random.Random(f'{command}/{i}').shuffle(words)
  kept = 0
  for words in itertools.zip_longest(*kinds):
    for word in words:
      if kept < count and word is not None and keep(word):
        kept += 1


def near_words(commands: Sequence[str]) -> list[str]:
  """The near words of `commands`, in order, each once.

  Raises:
    ValueError: a command has no list here (the message names the ones
      that have).
  """
  missing = [c for c in commands if c not in NEAR_WORDS]
  if missing:
    raise ValueError(
        f'No near words are listed for {missing}; lists exist for '
        f'{sorted(NEAR_WORDS)}. Give your own with --words.')
  out: list[str] = []
  for command in commands:
    out.extend(w for w in NEAR_WORDS[command] if w not in out)
  return [w for w in out if w not in commands]
