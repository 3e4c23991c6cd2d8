"""Tests for kws_jax/confusables.py and `synthesize --negatives_for`."""

import os
import subprocess
import sys

import pytest

from configs import default
from kws_jax import confusables

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
