"""Tests for kws_jax.evaluate."""

import json
import logging
import os
import subprocess
import sys

from matplotlib import image as mpimg
import numpy as np
import pytest
import soundfile as sf

from kws_jax import audio_io
from kws_jax import evaluate
from kws_jax import scoring
from kws_jax.runtime import inference

import export_test_util as util

LABELS = util.LABELS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LevelPredictor(inference.Predictor):
  """Class k for clips of mean |audio| about k / 10 (like the TFLite one)."""

  def __init__(self, labels=tuple(LABELS), sample_rate=16000,
               clip_samples=16000):
    self.labels = list(labels)
    self.sample_rate = sample_rate
    self.clip_samples = clip_samples
    self.calls = 0

  def predict_batch(self, audio):
    self.calls += 1
    level = np.abs(audio).mean(axis=1)
    index = np.clip(np.round(level * 10), 0, len(self.labels) - 1)
    return np.eye(len(self.labels), dtype=np.float32)[index.astype(int)]


def _write(path, level, rate=16000, flac=False):
  path.parent.mkdir(parents=True, exist_ok=True)
  if flac:
    sf.write(path, util.level_clip(level, rate), rate, subtype='PCM_16')
  else:
    audio_io.write_wav(path, util.level_clip(level, rate), rate)


@pytest.fixture
def test_dir(tmp_path):
  """The official test set's layout; `no/` is missing, one clip is broken.

  _silence_: 2 clips (level 0); _unknown_: 2 clips, one of them sounding like
  'yes'; yes: 3 clips (one FLAC, one at 8 kHz, one in a subfolder) and a
  broken WAV, plus files that are not clips.
  """
  root = tmp_path / 'speech_commands_test_set_v0.02'
  _write(root / '_silence_' / 'a.wav', 0)
  _write(root / '_silence_' / 'b.wav', 0)
  _write(root / '_unknown_' / 'bed_1.wav', 1)
  _write(root / '_unknown_' / 'cat_2.wav', 2)
  _write(root / 'yes' / 'x.flac', 2, flac=True)
  _write(root / 'yes' / 'slow.WAV', 2, rate=8000)
  _write(root / 'yes' / 'more' / 'y.wav', 2)
  (root / 'yes' / 'broken.wav').write_bytes(b'RIFF\0\0\0\0WAVE')
  (root / 'yes' / 'notes.txt').write_text('not a clip')
  (root / 'yes' / '.DS_Store').write_bytes(b'\0')
  (root / 'LICENSE').write_text('files at the top are ignored')
  return root


def test_evaluate_folder(test_dir, caplog):
  predictor = LevelPredictor()
  with caplog.at_level(logging.WARNING, logger='absl'):
    result = scoring.evaluate_folder(predictor, str(test_dir), batch_size=3)
  assert isinstance(result, scoring.metrics_lib.ClassificationResult)
  np.testing.assert_array_equal(result.confusion, [
      [2, 0, 0, 0],
      [0, 1, 1, 0],
      [0, 0, 3, 0],
      [0, 0, 0, 0],
  ])
  assert result.count == 7
  assert result.accuracy == pytest.approx(6 / 7)
  assert [os.path.basename(p) for p, _ in result.unreadable] == ['broken.wav']
  assert 'broken.wav' in caplog.text
  assert result.to_dict()['num_unreadable'] == 1
  assert predictor.calls == 3  # Batches of 3 of the 8 files.


def test_folders_that_are_not_labels(test_dir):
  _write(test_dir / 'maybe' / 'm.wav', 1)
  _write(test_dir / 'Yes' / 'm.wav', 1)
  with pytest.raises(ValueError, match=r'not labels of the model: Yes, maybe'):
    scoring.evaluate_folder(LevelPredictor(), str(test_dir))


def test_empty_or_missing_folder(tmp_path):
  (tmp_path / 'yes').mkdir()
  with pytest.raises(ValueError, match='holds no .wav or .flac clips'):
    scoring.evaluate_folder(LevelPredictor(), str(tmp_path))
  with pytest.raises(ValueError, match='does not exist'):
    scoring.evaluate_folder(LevelPredictor(), str(tmp_path / 'nope'))


def test_evaluate_split():

  class Split:
    audio = audio_io.to_int16(np.stack(
        [util.level_clip(k) for k in (0, 1, 2, 3, 3)]))
    label = np.array([0, 1, 2, 3, 2], np.int32)

  result = scoring.evaluate_split(LevelPredictor(), Split(), batch_size=2)
  assert result.count == 5
  assert result.confusion[2, 3] == 1
  assert result.accuracy == pytest.approx(0.8)


def test_run_with_a_tflite_model_writes_the_report(test_dir, tmp_path,
                                                   capsys):
  model = util.make_level_model(str(tmp_path / 'level.tflite'))
  output_dir = tmp_path / 'eval'
  result = evaluate.run(model, test_dir=str(test_dir),
                        output_dir=str(output_dir))
  assert result.count == 7
  out = capsys.readouterr().out
  assert 'Test accuracy = 85.7% (N=7)' in out
  labels = model[:-len('.tflite')] + '_labels.txt'
  assert f'Model: {model} (labels: {labels})' in out
  assert '[2 0 0 0]' in out  # The confusion matrix.
  assert 'precision' in out and 'recall' in out
  assert '1 unreadable clip(s) left out' in out and 'broken.wav' in out
  with open(output_dir / 'results.json') as f:
    saved = json.load(f)
  assert saved['test_accuracy'] == pytest.approx(6 / 7)
  assert saved['confusion_matrix'][1] == [0, 1, 1, 0]
  assert saved['num_unreadable'] == 1
  assert saved['model'] == model and saved['labels_file'] == labels
  assert saved['per_class']['yes']['recall'] == 1.0
  image = mpimg.imread(output_dir / 'confusion_matrix.png')
  assert image.ndim == 3 and min(image.shape[:2]) > 200


def test_run_needs_one_source(tmp_path):
  with pytest.raises(ValueError, match='--test_dir'):
    evaluate.run(None)
  with pytest.raises(ValueError, match='not both'):
    evaluate.run(None, test_dir='a', data_dir='b')


def test_data_dir_needs_the_config(tmp_path):
  model = util.make_level_model(str(tmp_path / 'level.tflite'))
  with pytest.raises(ValueError, match='needs the training config'):
    evaluate.run(model, data_dir=str(tmp_path))


def test_data_dir_split_by_speaker(tiny_data_dir, tmp_path, capsys):
  model = util.make_level_model(str(tmp_path / 'level.tflite'))
  config = util.small_config('tiny_conv',
                             tfds_data_dir=str(tmp_path / 'tfds'))
  with open(tmp_path / 'level_config.json', 'w') as f:
    json.dump(config.to_dict(), f)
  result = evaluate.run(model, data_dir=str(tiny_data_dir), split='validation',
                        output_dir=str(tmp_path / 'out'))
  # The validation speaker's yes/no clips, plus made-up silence and unknown.
  assert result.count > 0
  assert result.confusion[2:].sum() > 0
  assert 'Validation accuracy = ' in capsys.readouterr().out
  with open(tmp_path / 'out' / 'results.json') as f:
    saved = json.load(f)
  assert saved['split'] == 'validation'
  assert saved['count'] == result.count
  # The silence stress set: every clip is silence.
  stress = evaluate.run(model, data_dir=str(tiny_data_dir),
                        split='silence_stress')
  assert stress.count > 0
  assert stress.confusion.sum() == stress.confusion[0].sum() == stress.count
  assert 'Silence stress accuracy = ' in capsys.readouterr().out


def test_checkpoint_predictor(tmp_path, test_dir):
  config = util.small_config('tiny_conv')
  saved, graphdef = util.write_checkpoint(str(tmp_path / 'run'), config,
                                          LABELS, {3: 0.4, 7: 0.6})
  predictor = scoring.load_predictor(str(tmp_path / 'run'))
  assert isinstance(predictor, scoring.CheckpointPredictor)
  assert predictor.restored.step == 7
  assert predictor.labels == LABELS
  assert (predictor.sample_rate, predictor.clip_samples) == (16000, 16000)
  audio = np.stack([util.level_clip(k) for k in range(3)]) + 0.01 * (
      np.random.default_rng(0).standard_normal((3, 16000)))
  from kws_jax import models
  params, batch_stats = saved[7]
  want = models.predict_fn(graphdef, probabilities=True)(params, batch_stats,
                                                         audio)
  np.testing.assert_allclose(predictor.predict_batch(audio), want, atol=1e-5)
  # The same interface as a Recognizer.
  result = scoring.evaluate_folder(predictor, str(test_dir))
  assert result.count == 7
  assert len(predictor.classify_array(audio[0], 16000, top_k=2)) == 2


def test_command_line(test_dir, tmp_path):
  model = util.make_level_model(str(tmp_path / 'level.tflite'))
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.evaluate', f'--model={model}',
       f'--test_dir={test_dir}', f'--output_dir={tmp_path / "out"}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'Test accuracy = 85.7% (N=7)' in result.stdout
  assert 'broken.wav' in result.stderr  # The warning.
  assert os.path.exists(tmp_path / 'out' / 'confusion_matrix.png')
  # An error is one clear line and exit status 1.
  (test_dir / 'maybe').mkdir()
  _write(test_dir / 'maybe' / 'm.wav', 1)
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.evaluate', f'--model={model}',
       f'--test_dir={test_dir}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert 'Error: Test folder' in result.stderr and 'maybe' in result.stderr


def test_a_config_stored_before_later_fields_loads_its_data(tiny_data_dir,
                                                            tmp_path):
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  from kws_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  from kws_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  old = test_config.get_config().to_dict()
  for field in workdir_lib.LATER_FIELDS:
    del old[field]
  old['tfds_data_dir'] = str(tmp_path / 'tfds')
  old['synthetic_dir'] = str(tmp_path / 'gone')  # Scoring never needs it.
  config = scoring.data_config(old, str(tiny_data_dir))
  assert config.generated_noise is False and config.unseen_words_fold == ''
  assert config.synthetic_dir == ''
  data = input_pipeline.create_datasets(config)
  assert len(data.test) > 0
