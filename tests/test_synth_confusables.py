"""Tests for kws_jax/synth/confusables.py and `synthesize --negatives_for`."""

import os
import re
import subprocess
import sys

import pytest

from configs import default
from kws_jax.synth import confusables
from kws_jax.synth import espeak
from kws_jax.synth import voices

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_near_words_never_hold_a_command():
  commands = set(default.get_config().wanted_words)
  assert set(confusables.NEAR_WORDS) == commands
  for command, words in confusables.NEAR_WORDS.items():
    assert len(words) >= 10, command
    assert not set(words) & commands, command
  assert not set(confusables.EVERYDAY_WORDS) & commands


def test_near_words_of_commands_in_order_each_once():
  words = confusables.near_words(['down', 'no'])
  assert words[:3] == ['town', 'dawn', 'dog']
  assert len(words) == len(set(words))
  assert 'nine' in words and 'know' in words
  with pytest.raises(ValueError, match="No near words are listed for"):
    confusables.near_words(['lights'])


def test_command_line_refuses_a_command_without_a_list(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.synthesize', '--negatives_for=lights',
       f'--out={tmp_path / "o"}'], capture_output=True, text=True,
      timeout=120, cwd=_REPO)
  assert result.returncode != 0
  assert '--negatives_for: No near words are listed for' in result.stderr
  assert not (tmp_path / 'o').exists()


def _toy_pronounce(word: str) -> tuple[str, ...]:
  """A spelling-is-sound reader: onset + 'ˈ' + rime, from the first vowel
  letter; 'oe' sounds like 'o'; words with no vowel are 'spelled out'."""
  match = re.search('[aeiouy]', word[1:] if word[:1] == 'y' else word)
  if match is None:
    return ('ˌɛmˈɛm',)
  start = match.start() + (word[:1] == 'y')
  return (word[:start] + 'ˈ' + word[start:].replace('oe', 'o'),)


def test_pseudo_words_keep_the_onset_or_the_rime_and_sound_new():
  words = confusables.pseudo_words(['go', 'stop'], _toy_pronounce)
  assert 'bo' in words and 'stro' in words   # go's rime, other onsets
  assert 'gaw' in words and 'stip' in words  # its onset, other rimes
  assert 'so' not in words and 'goat' not in words  # near words already
  assert 'no' not in words    # a recorded word
  assert 'top' not in words   # a near word of stop
  assert len(words) == len(set(_toy_pronounce(w) for w in words))
  # Every word keeps one of its command's two parts, and changes the other.
  for word in words:
    onset, rime = _toy_pronounce(word)[0].split('ˈ')
    assert (onset, rime) != ('g', 'o') and (onset, rime) != ('st', 'op')
    assert rime in ('o', 'op') or onset in ('g', 'st'), word


def test_pseudo_words_drop_what_the_reader_spells_out_or_changes():
  def reader(word):
    if word == 'gull':    # read with another onset: not go's onset
      return ('kˈʊl',)
    if word == 'flo':     # spelled as letters
      return ('ˌɛfˌɛlˈəʊ',)
    if word == 'zo':      # read like jo, which comes first
      return _toy_pronounce('jo')
    if word == 'cho':     # read like gaw in a second accent
      return ('chˈo', 'gˈaw')
    return _toy_pronounce(word)
  words = confusables.pseudo_words(['go'], reader)
  assert 'gull' not in words and 'flo' not in words and 'blo' in words
  assert 'jo' in words and 'zo' not in words  # each sound once
  assert 'cho' in words and 'gaw' not in words  # in any accent
  with pytest.raises(ValueError, match='No near sounds are listed for'):
    confusables.pseudo_words(['lights'], reader)


def test_two_sound_words_keep_one_of_three_sounds_in_turn():
  one = confusables.pseudo_words(['go', 'stop'], _toy_pronounce)
  words = confusables.pseudo_words(['go', 'stop'], _toy_pronounce,
                                   two_sounds=6)
  assert words[:len(one)] == one  # The one-sound words come first, as before.
  extra = words[len(one):]
  assert len(extra) == 12
  assert len(set(map(_toy_pronounce, words))) == len(words)
  for command, chunk in (('go', extra[:6]), ('stop', extra[6:])):
    target = confusables._syllable(_toy_pronounce(command)[0])
    kept = []
    for word in chunk:
      heard = confusables._syllable(_toy_pronounce(word)[0])
      same = [a == b for a, b in zip(heard, target)]
      assert sum(same) == 1, (command, word, heard)
      kept.append(same.index(True))
    assert kept == [0, 1, 2, 0, 1, 2], (command, chunk)  # Kinds in turn.
  assert not set(extra) & set(confusables.RECORDED_WORDS)
  # Fixed: the same words every time.
  assert confusables.pseudo_words(['go', 'stop'], _toy_pronounce,
                                  two_sounds=6) == words


def test_syllable_splits_espeak_readings_at_the_nucleus():
  assert confusables._syllable('dˈaʊn') == ('d', 'aʊ', 'n')
  assert confusables._syllable('stˈɑːp') == ('st', 'ɑː', 'p')
  assert confusables._syllable('ɡˈoʊ') == ('ɡ', 'oʊ', '')
  assert confusables._syllable('ˈɒf') == ('', 'ɒ', 'f')
  assert confusables._syllable('ˌɛfˈɛl') is None


def test_pseudo_words_from_espeak_sound_like_no_recorded_word():
  try:
    words = confusables.pseudo_words(list(confusables.NEAR_SOUNDS),
                                     espeak.pronounce)
  except voices.EngineUnavailableError as e:
    pytest.skip(f'eSpeak NG is not installed here: {e}')
  assert len(words) > 300
  assert not set(words) & set(confusables.RECORDED_WORDS)
  recorded = {p for w in confusables.RECORDED_WORDS
              for p in espeak.pronounce(w)}
  assert not any(set(espeak.pronounce(w)) & recorded for w in words)
  # One sound from down: its onset before other rimes, its rime after
  # other onsets (spelled 'oun' where 'own' would read as in 'blown').
  assert {'dine', 'doud', 'boun'} <= set(words)
  assert 'blown' not in words
  assert espeak.pronounce('down')[0] == 'dˈaʊn'
  # Two sounds from each command: 40 more words a command, none recorded.
  more = confusables.pseudo_words(list(confusables.NEAR_SOUNDS),
                                  espeak.pronounce, two_sounds=40)
  assert more[:len(words)] == words and len(more) == len(words) + 400
  assert not any(set(espeak.pronounce(w)) & recorded for w in more)


def test_command_line_refuses_pseudo_words_for_an_unlisted_command(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.synthesize',
       '--pseudo_words_for=lights', f'--out={tmp_path / "o"}'],
      capture_output=True, text=True, timeout=120, cwd=_REPO)
  assert result.returncode != 0
  assert '--pseudo_words_for: No near sounds are listed for' in result.stderr
  assert not (tmp_path / 'o').exists()


def test_command_line_refuses_two_sounds_without_commands(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.synthesize', '--words=yes',
       '--pseudo_two_sounds=5', f'--out={tmp_path / "o"}'],
      capture_output=True, text=True, timeout=120, cwd=_REPO)
  assert result.returncode != 0
  assert '--pseudo_two_sounds needs --pseudo_words_for' in result.stderr
  assert not (tmp_path / 'o').exists()
