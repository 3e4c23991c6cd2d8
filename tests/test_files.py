"""Tests for kws_jax/files.py."""

import os

import pytest

from kws_jax import files


def test_write_atomic_writes_text_and_bytes(tmp_path):
  files.write_atomic(tmp_path / 'a.txt', 'héllo\n')
  files.write_atomic(tmp_path / 'b.bin', b'\x00\x01')
  assert (tmp_path / 'a.txt').read_text(encoding='utf-8') == 'héllo\n'
  assert (tmp_path / 'b.bin').read_bytes() == b'\x00\x01'
  assert oct(os.stat(tmp_path / 'a.txt').st_mode & 0o777) == oct(0o644)
  assert sorted(os.listdir(tmp_path)) == ['a.txt', 'b.bin']


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  target = tmp_path / 'model.bin'
  target.write_bytes(b'old')
  with pytest.raises(RuntimeError, match='disk full'):
    with files.atomic_path(target) as tmp:
      with open(tmp, 'wb') as f:
        f.write(b'half')
      raise RuntimeError('disk full')
  assert target.read_bytes() == b'old'
  assert os.listdir(tmp_path) == ['model.bin']
