"""Tests for kws_jax.runtime.inference (TFLite models built with TF, no JAX)."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from kws_jax import audio_io
from kws_jax.runtime import inference
from kws_jax.runtime import streaming

import export_test_util as util

LABELS = util.LABELS


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp('model')
  util.make_level_model(str(folder / 'level.tflite'))
  util.make_level_model(str(folder / 'android.tflite'), android=True)
  return folder


def test_loads_model_labels_and_shapes(model_dir):
  recognizer = inference.Recognizer(str(model_dir / 'level.tflite'))
  assert recognizer.labels == LABELS
  assert recognizer.labels_path == str(model_dir / 'level_labels.txt')
  assert recognizer.clip_samples == 16000
  assert recognizer.sample_rate == inference.DEFAULT_SAMPLE_RATE
  assert recognizer.config is None
  assert not recognizer.android_layout


@pytest.mark.parametrize('k', range(4))
def test_predict_gives_probabilities(model_dir, k):
  recognizer = inference.Recognizer(str(model_dir / 'level.tflite'))
  probs = recognizer.predict(util.level_clip(k))
  assert probs.shape == (4,) and probs.dtype == np.float32
  assert probs.sum() == pytest.approx(1.0, abs=1e-5)
  assert probs.argmax() == k


def test_predict_rejects_wrong_length(model_dir):
  recognizer = inference.Recognizer(str(model_dir / 'level.tflite'))
  with pytest.raises(ValueError, match=r'\(16000,\).*classify_array'):
    recognizer.predict(np.zeros(8000, np.float32))


def test_classify_file_resamples_and_pads(model_dir, tmp_path):
  recognizer = inference.Recognizer(str(model_dir / 'level.tflite'))
  # 8 kHz, 1 s: resampled to 16000 samples of level 0.3.
  path = tmp_path / 'slow.wav'
  audio_io.write_wav(path, util.level_clip(3, 8000), 8000)
  top = recognizer.classify_file(path, top_k=2)
  assert [label for label, _ in top] == ['no', 'yes']
  assert top[0][1] > 0.9 > top[1][1]
  # Too long (cropped to the first second, level 0.2) as FLAC.
  long_clip = np.concatenate([util.level_clip(2), np.zeros(8000, np.float32)])
  sf.write(tmp_path / 'long.flac', long_clip, 16000, subtype='PCM_16')
  assert recognizer.classify_file(tmp_path / 'long.flac')[0][0] == 'yes'
  # Too short: padded with zeros, halving the level to 0.1.
  audio_io.write_wav(tmp_path / 'short.wav', util.level_clip(2, 8000), 16000)
  assert recognizer.classify_file(tmp_path / 'short.wav')[0][0] == '_unknown_'


def test_classify_array_accepts_int16_and_other_rates(model_dir):
  recognizer = inference.Recognizer(str(model_dir / 'level.tflite'))
  pcm = audio_io.to_int16(util.level_clip(1))
  assert recognizer.classify_array(pcm, 16000)[0][0] == '_unknown_'
  top = recognizer.classify_array(util.level_clip(2, 44100), 44100, top_k=4)
  assert [label for label, _ in top][0] == 'yes'
  assert len(top) == 4
  assert [score for _, score in top] == sorted(
      (score for _, score in top), reverse=True)


def test_unreadable_file_names_it(model_dir, tmp_path):
  recognizer = inference.Recognizer(str(model_dir / 'level.tflite'))
  bad = tmp_path / 'bad.wav'
  bad.write_bytes(b'not audio at all')
  with pytest.raises(audio_io.AudioError, match='bad.wav'):
    recognizer.classify_file(bad)


def test_android_layout(model_dir):
  recognizer = inference.Recognizer(str(model_dir / 'android.tflite'))
  assert recognizer.android_layout
  assert recognizer.clip_samples == 16000
  assert recognizer.predict(util.level_clip(2)).argmax() == 2


def test_labels_txt_and_config_beside_the_model(tmp_path):
  util.make_level_model(str(tmp_path / 'm.tflite'), clip_samples=8000,
                        write_labels='plain', sample_rate=8000)
  recognizer = inference.Recognizer(str(tmp_path / 'm.tflite'))
  assert recognizer.labels_path == str(tmp_path / 'labels.txt')
  assert recognizer.sample_rate == 8000
  assert recognizer.clip_samples == 8000
  assert recognizer.config == {'sample_rate': 8000}
  # A 16 kHz file is resampled to the model's 8 kHz.
  audio_io.write_wav(tmp_path / 'c.wav', util.level_clip(3, 16000), 16000)
  assert recognizer.classify_file(tmp_path / 'c.wav')[0][0] == 'no'


def test_missing_model_is_named(tmp_path):
  with pytest.raises(inference.ModelError, match='nothere.tflite'):
    inference.Recognizer(str(tmp_path / 'nothere.tflite'))


def test_invalid_model_is_named(tmp_path):
  path = tmp_path / 'junk.tflite'
  path.write_bytes(b'\0' * 100)
  (tmp_path / 'junk_labels.txt').write_text('a\nb\n')
  with pytest.raises(inference.ModelError, match='junk.tflite'):
    inference.Recognizer(str(path))


def test_missing_and_empty_labels_are_named(model_dir, tmp_path):
  model = str(model_dir / 'level.tflite')
  with pytest.raises(inference.ModelError, match='nolabels.txt'):
    inference.Recognizer(model, str(tmp_path / 'nolabels.txt'))
  (tmp_path / 'empty.txt').write_text('\n\n')
  with pytest.raises(inference.ModelError, match='empty.txt.*empty'):
    inference.Recognizer(model, str(tmp_path / 'empty.txt'))
  util.make_level_model(str(tmp_path / 'orphan.tflite'), write_labels=None)
  with pytest.raises(inference.ModelError, match='labels.txt not found'):
    inference.Recognizer(str(tmp_path / 'orphan.tflite'))


def test_label_count_must_match_outputs(model_dir, tmp_path):
  labels = tmp_path / 'three.txt'
  labels.write_text('a\nb\nc\n')
  with pytest.raises(inference.ModelError,
                     match=r'three.txt lists 3 labels.*level.tflite has 4'):
    inference.Recognizer(str(model_dir / 'level.tflite'), str(labels))


def test_invalid_config_is_named(tmp_path):
  util.make_level_model(str(tmp_path / 'm.tflite'))
  (tmp_path / 'm_config.json').write_text('{not json')
  with pytest.raises(inference.ModelError, match='m_config.json'):
    inference.Recognizer(str(tmp_path / 'm.tflite'))


def test_shipped_defaults():
  assert inference.SHIPPED_MODEL.endswith(
      os.path.join('kws_jax', 'shipped', 'model.tflite'))
  assert inference.SHIPPED_LABELS.endswith(
      os.path.join('kws_jax', 'shipped', 'model_labels.txt'))
  if os.path.exists(inference.SHIPPED_MODEL):
    recognizer = inference.Recognizer()
    assert recognizer.labels_path == inference.SHIPPED_LABELS
    assert recognizer.predict(np.zeros(recognizer.clip_samples,
                                       np.float32)).shape == (
                                           len(recognizer.labels),)
  else:
    with pytest.raises(inference.ModelError, match='model.tflite not found'):
      inference.Recognizer()


def test_the_shipped_ensemble_is_three_models_deciding_as_one():
  path = os.path.join(inference.SHIPPED_DIR, 'ensemble.tflite')
  recognizer = inference.Recognizer(path)
  assert recognizer.labels == inference.Recognizer().labels
  with open(os.path.join(inference.SHIPPED_DIR,
                         'ensemble_export.json')) as f:
    members = json.load(f)['ensemble']
  assert len(members) == 3
  assert len({m['checkpoint'] for m in members}) == 3
  probabilities = recognizer.predict(
      np.zeros(recognizer.clip_samples, np.float32))
  assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
  assert recognizer.labels[probabilities.argmax()] == '_silence_'
  # It decides with its own offset, and its streaming settings were chosen
  # for it (README, "A second model").
  with open(os.path.join(inference.SHIPPED_DIR,
                         'ensemble_config.json')) as f:
    assert json.load(f)['unknown_offset'] == 0.5
  with open(os.path.join(inference.SHIPPED_DIR,
                         'ensemble_smoothing.json')) as f:
    smoothing = json.load(f)
  assert (smoothing['average_window_ms'], smoothing['detection_threshold'],
          smoothing['suppression_ms']) == (1000, 0.75, 750)


@pytest.mark.parametrize('stem', ['model', 'model_streaming', 'ensemble'])
def test_shipped_streaming_settings_fit_their_model(stem):
  """Each shipped model's calibrated settings load, and name only its
  labels; the streaming model carries the clip model's."""
  path = os.path.join(inference.SHIPPED_DIR, f'{stem}.tflite')
  settings = streaming.read_smoothing(path)
  labels = inference.read_labels(
      os.path.join(inference.SHIPPED_DIR, f'{stem}_labels.txt'))
  assert settings is not None
  assert {label for label, _ in settings.class_thresholds} <= set(labels)
  if stem == 'model_streaming':
    assert settings == streaming.read_smoothing(
        os.path.join(inference.SHIPPED_DIR, 'model.tflite'))


def test_falls_back_to_tf_lite(monkeypatch):
  import tensorflow as tf
  monkeypatch.setitem(sys.modules, 'ai_edge_litert.interpreter', None)
  assert inference.interpreter_class() is tf.lite.Interpreter


def test_runs_without_jax(model_dir):
  code = (
      'import sys, numpy as np\n'
      'from kws_jax.runtime import inference\n'
      f'r = inference.Recognizer({str(model_dir / "level.tflite")!r})\n'
      'p = r.predict(np.zeros(r.clip_samples, np.float32))\n'
      'assert p.argmax() == 0, p\n'
      'assert "jax" not in sys.modules, "inference imported JAX"\n'
      'assert "tensorflow" not in sys.modules, "inference imported TF"\n')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run([sys.executable, '-c', code], cwd=root,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr


def test_every_tool_is_told_which_model_it_loaded(caplog):
  with caplog.at_level(logging.INFO, logger='absl'):
    recognizer = inference.Recognizer()
  assert (f'Model: {inference.SHIPPED_MODEL} (the shipped model); labels: '
          f'{recognizer.labels_path}') in caplog.text
