"""Tests for kws_jax.label_wav (TF-built TFLite model, no JAX)."""

import io
import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from kws_jax import audio_io
from kws_jax import label_wav

import export_test_util as util

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LINE = re.compile(r'^\S+ \(score = \d\.\d{5}\)$')


@pytest.fixture(scope='module')
def model(tmp_path_factory):
  return util.make_level_model(
      str(tmp_path_factory.mktemp('model') / 'level.tflite'))


@pytest.fixture
def clips(tmp_path):
  """yes.wav (level 0.2), no.flac (0.3) and sub/quiet.wav (0.1)."""
  folder = tmp_path / 'clips'
  (folder / 'sub').mkdir(parents=True)
  audio_io.write_wav(folder / 'yes.wav', util.level_clip(2), 16000)
  import soundfile as sf
  sf.write(folder / 'no.flac', util.level_clip(3), 16000, subtype='PCM_16')
  audio_io.write_wav(folder / 'sub' / 'quiet.wav', util.level_clip(1), 16000)
  return folder


def _run(*args, **kwargs):
  out, err = io.StringIO(), io.StringIO()
  status = label_wav.run(*args, out=out, err=err, **kwargs)
  return status, out.getvalue(), err.getvalue()


def test_one_file_prints_the_tutorial_lines(model, clips):
  status, out, err = _run(str(clips / 'yes.wav'), model)
  assert status == 0 and not err
  lines = out.splitlines()
  assert len(lines) == 3
  assert all(_LINE.match(line) for line in lines)
  assert lines[0].startswith('yes (score = ')


def test_how_many_labels(model, clips):
  _, out, _ = _run(str(clips / 'no.flac'), model, how_many_labels=1)
  assert out.splitlines() == [out.strip()]
  assert out.startswith('no (score = ')


def test_several_files_folders_and_globs(model, clips):
  spec = f'{clips / "yes.wav"},{clips / "*.flac"},{clips / "sub"}'
  status, out, err = _run(spec, model, how_many_labels=1)
  assert status == 0, err
  lines = out.splitlines()
  assert lines[0::2] == [f'{clips / "yes.wav"}:', f'{clips / "no.flac"}:',
                         f'{clips / "sub" / "quiet.wav"}:']
  assert [line.split()[0] for line in lines[1::2]] == ['yes', 'no',
                                                       '_unknown_']
  # A folder takes its subfolders' clips too, each file once.
  files, errors = label_wav.expand_inputs(f'{clips},{clips / "yes.wav"}')
  assert not errors
  assert sorted(files) == sorted([str(clips / 'no.flac'),
                                  str(clips / 'sub' / 'quiet.wav'),
                                  str(clips / 'yes.wav')])


def test_bad_files_are_reported_and_the_rest_labelled(model, clips):
  (clips / 'broken.wav').write_bytes(b'RIFF garbage')
  spec = (f'{clips / "broken.wav"},{clips / "missing.wav"},'
          f'{clips / "yes.wav"},{clips / "*.ogg"}')
  status, out, err = _run(spec, model)
  assert status == 1
  assert 'broken.wav' in err and 'missing.wav' in err and '*.ogg' in err
  assert '3 of 4 inputs could not be labelled' in err
  assert f'{clips / "yes.wav"}:\nyes (score = ' in out


def test_model_errors(clips, tmp_path):
  status, out, err = _run(str(clips / 'yes.wav'),
                          str(tmp_path / 'none.tflite'))
  assert status == 1 and not out
  assert 'none.tflite not found' in err


def test_command_line(model, clips):
  labels = os.path.splitext(model)[0] + '_labels.txt'
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.label_wav',
       f'--wav={clips / "no.flac"},{clips / "nothere.wav"}',
       f'--graph={model}', f'--labels={labels}', '--how_many_labels=2'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert 'nothere.wav' in result.stderr
  lines = result.stdout.splitlines()
  assert lines[0] == f'{clips / "no.flac"}:'
  assert lines[1].startswith('no (score = ') and _LINE.match(lines[2])


def test_a_long_file_is_labelled_with_a_warning(model, clips, caplog):
  long = clips / 'long.wav'
  audio_io.write_wav(long, np.tile(util.level_clip(2), 9), 16000)
  with caplog.at_level(logging.WARNING, logger='absl'):
    status, out, _ = _run(str(long), model)
  assert status == 0 and out.startswith('yes (score = ')
  assert (f'{long} is 9.00 s long; only its first 1.00 s was labelled'
          in caplog.text)
  assert 'test_streaming_accuracy' in caplog.text
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger='absl'):
    _run(str(clips / 'yes.wav'), model)
  assert 'was labelled' not in caplog.text
