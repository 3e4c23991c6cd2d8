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

Several of the near words are also recorded in Speech Commands (dog, five,
nine, one, seven, learn, wow, ...); a run that leaves a word out
(`--config.exclude_words`) leaves its synthetic clips out too, so the
unseen-words measure stays honest.
"""

from typing import Sequence

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
