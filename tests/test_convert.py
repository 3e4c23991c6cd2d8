"""Tests for tflite_export.convert: JAX/TFLite parity for every architecture."""

import json
import os
import subprocess
import sys

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kws_jax.runtime import inference
from kws_jax import models
from kws_jax.runtime import streaming
from tflite_export import convert
from tflite_export import tflite_model

import export_test_util as util

LABELS = util.LABELS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _clips(length: int = 16000) -> np.ndarray:
  """float32 [3, L]: a tone in faint noise, louder noise and silence.

  Every clip of real audio has some noise. A noiseless synthetic tone is
  avoided on purpose: its spectrum has bins holding only float rounding
  error, whose log features (MFCC floor 1e-12) differ between XLA and TFLite
  by far more than any real clip's, up to ~1e-4 in the probabilities.
  """
  rng = np.random.default_rng(0)
  t = np.arange(length) / 16000
  tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(
      length)
  noise = 0.1 * rng.standard_normal(length)
  return np.stack([tone, noise, np.zeros(length)]).astype(np.float32)


def _jax_probabilities(graphdef, params, batch_stats, audio):
  predict = models.predict_fn(graphdef)
  return np.asarray(jax.jit(
      lambda a: jax.nn.softmax(predict(params, batch_stats, a), axis=-1))(
          audio))


@pytest.mark.parametrize('architecture', sorted(models.MODELS))
def test_tflite_matches_jax(architecture, tmp_path):
  config = util.small_config(architecture)
  graphdef, params, batch_stats = util.init_model(config, len(LABELS))
  # The reference below is independent of the export's own check (off to
  # save a compilation per architecture).
  result = convert.export_tflite(params, batch_stats, graphdef, config,
                                 LABELS, str(tmp_path / 'model.tflite'),
                                 verify=False)
  recognizer = inference.Recognizer(result.model_path)
  audio = _clips()
  got = recognizer.predict_batch(audio)
  want = _jax_probabilities(graphdef, params, batch_stats, audio)
  diff = float(np.max(np.abs(got - want)))
  print(f'{architecture}: TFLite vs JAX max abs diff {diff:.3g} '
        f'({result.size_bytes} bytes)')
  assert diff < 1e-4
  np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)
  # The files beside the model.
  assert recognizer.labels == LABELS
  assert recognizer.labels_path == str(tmp_path / 'model_labels.txt')
  with open(tmp_path / 'model_config.json') as f:
    assert json.load(f)['model_architecture'] == architecture
  with open(tmp_path / 'model_export.json') as f:
    info = json.load(f)
  assert info['inputs'] == [{'name': 'audio', 'dtype': 'float32',
                             'shape': [1, 16000]}]
  assert info['outputs'][0]['shape'] == [1, len(LABELS)]
  assert not [p for p in os.listdir(tmp_path) if '.tmp' in p]


@pytest.fixture(scope='module')
def tiny_conv():
  config = util.small_config('tiny_conv')
  return config, util.init_model(config, len(LABELS))


def test_android_signature(tiny_conv, tmp_path):
  from ai_edge_litert.interpreter import Interpreter
  config, (graphdef, params, batch_stats) = tiny_conv
  result = convert.export_tflite(params, batch_stats, graphdef, config,
                                 LABELS, str(tmp_path / 'app.tflite'),
                                 android_signature=True)
  # What SpeechActivity.java does: resizeInput(0, {16000, 1}),
  # resizeInput(1, {1}), run({audio [16000][1], {16000}}) -> [1][labels].
  interpreter = Interpreter(model_path=result.model_path)
  interpreter.resize_tensor_input(0, [16000, 1])
  interpreter.resize_tensor_input(1, [1])
  interpreter.allocate_tensors()
  inputs = interpreter.get_input_details()
  assert [(np.dtype(d['dtype']), list(d['shape'])) for d in inputs] == [
      (np.float32, [16000, 1]), (np.int32, [1])]
  clip = _clips()[0]
  interpreter.set_tensor(inputs[0]['index'], clip.reshape(16000, 1))
  interpreter.set_tensor(inputs[1]['index'], np.array([16000], np.int32))
  interpreter.invoke()
  output = interpreter.get_output_details()
  assert len(output) == 1 and list(output[0]['shape']) == [1, len(LABELS)]
  got = interpreter.get_tensor(output[0]['index'])[0]
  assert result.parity_max_abs_diff < 1e-4
  want = _jax_probabilities(graphdef, params, batch_stats, clip[None])[0]
  assert np.max(np.abs(got - want)) < 1e-4
  # The Recognizer understands this layout too.
  recognizer = inference.Recognizer(result.model_path)
  assert recognizer.android_layout
  np.testing.assert_allclose(recognizer.predict(clip), want, atol=1e-4)


def test_a_new_model_drops_the_old_ones_streaming_settings(tiny_conv,
                                                           tmp_path):
  config, (graphdef, params, batch_stats) = tiny_conv
  output = tmp_path / 'model.tflite'
  old = streaming.write_smoothing(output, streaming.SmoothingSettings(),
                                  {'chosen_on': 'the old model'})
  assert tflite_model.sibling_paths(str(output))['smoothing'] == old
  convert.export_tflite(params, batch_stats, graphdef, config, LABELS,
                        str(output))
  assert not os.path.exists(old)
  assert streaming.read_smoothing(output) is None


def test_int8_quantization(tiny_conv, tmp_path):
  config, (graphdef, params, batch_stats) = tiny_conv
  # Calibrate on clips like the ones scored: noise of several levels, tones
  # in noise and silence.
  rng = np.random.default_rng(1)
  levels = rng.uniform(0.001, 0.3, (12, 1))
  calibration = np.concatenate([
      levels * rng.standard_normal((12, 16000)),
      _clips()]).astype(np.float32)
  float_model = convert.export_tflite(params, batch_stats, graphdef, config,
                                      LABELS, str(tmp_path / 'f.tflite'))
  result = convert.export_tflite(params, batch_stats, graphdef, config,
                                 LABELS, str(tmp_path / 'q.tflite'),
                                 quantize='int8',
                                 representative_audio=calibration)
  assert result.size_bytes < float_model.size_bytes
  assert result.info['quantize'] == 'int8'
  probs = inference.Recognizer(result.model_path).predict_batch(_clips())
  want = _jax_probabilities(graphdef, params, batch_stats, _clips())
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=2e-2)
  diff = float(np.max(np.abs(probs - want)))
  print(f'int8 vs JAX float max abs diff {diff:.3g}')
  # Only the backbone is quantized (with the front end quantized too this
  # model is off by ~0.45).
  assert diff < 0.05
  assert result.parity_max_abs_diff < 0.05
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=result.model_path)
  ops = interpreter._get_ops_details()
  types = {op['op_name'] for op in ops}
  assert {'BATCH_MATMUL', 'LOG', 'QUANTIZE', 'DEQUANTIZE'} <= types
  # The spectrum's matrix products stay float (the front end is not
  # quantized), and no RFFT2D is left (features.DFTS).
  details = interpreter.get_tensor_details()
  assert 'RFFT2D' not in types
  assert all(np.dtype(details[op['outputs'][0]]['dtype']) == np.float32
             for op in ops if op['op_name'] == 'BATCH_MATMUL')
  assert np.dtype(interpreter.get_input_details()[0]['dtype']) == np.float32


def test_int8_needs_calibration_clips(tiny_conv, tmp_path):
  config, (graphdef, params, batch_stats) = tiny_conv
  with pytest.raises(ValueError, match='representative_audio'):
    convert.export_tflite(params, batch_stats, graphdef, config, LABELS,
                          str(tmp_path / 'q.tflite'), quantize='int8')
  with pytest.raises(ValueError, match='quantize'):
    convert.export_tflite(params, batch_stats, graphdef, config, LABELS,
                          str(tmp_path / 'q.tflite'), quantize='int4')


def test_representative_clips_follow_the_weights_and_add_noise_to_silence():

  class Split:
    audio = np.zeros((4, 100), np.int16)
    audio[1:] = 1000
    weight = np.array([1.0, 1.0, 0.0, 1.0], np.float32)

  background = np.full(500, 0.5, np.float32)
  clips = tflite_model.representative_clips(
      Split(), 10, background=background, background_volume=0.2)
  # The weight-0 clip is never drawn; the silent one gets background noise.
  assert clips.shape == (3, 100) and clips.dtype == np.float32
  np.testing.assert_allclose(clips[1:], 1000 / 32768)
  assert 0 < clips[0, 0] <= 0.1 and np.all(clips[0] == clips[0, 0])


class _HostCallback(nnx.Module):
  """A model jax2tf cannot serialize: it calls back into Python."""

  def __init__(self):
    self.w = nnx.Param(jnp.ones((4,)))

  def __call__(self, audio):
    host = jax.pure_callback(
        lambda x: np.asarray(x) * 2,
        jax.ShapeDtypeStruct(audio.shape, audio.dtype), audio)
    return host[:, :4] * self.w[...]


def test_unconvertible_architecture_is_named(tmp_path):
  model = _HostCallback()
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  config = util.small_config('tiny_conv', model_architecture='host_callback')
  with pytest.raises(tflite_model.ConversionError, match="'host_callback'"):
    convert.export_tflite(params, batch_stats, graphdef, config, LABELS,
                          str(tmp_path / 'x.tflite'))
  assert not os.path.exists(tmp_path / 'x.tflite')


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A run with checkpoints at steps 2, 4, 6; step 4 validated best."""
  path = tmp_path_factory.mktemp('run')
  config = util.small_config('tiny_conv')
  saved, graphdef = util.write_checkpoint(
      str(path), config, LABELS, {2: 0.5, 4: 0.9, 6: 0.7})
  return path, saved, graphdef


def test_convert_checkpoint_picks_the_best_step(workdir, tmp_path):
  path, saved, graphdef = workdir
  result = convert.convert_checkpoint(str(path), str(tmp_path / 'm.tflite'))
  assert result.info['step'] == 4
  assert result.info['selected_by'] == 'best_validation_accuracy'
  got = inference.Recognizer(result.model_path).predict_batch(_clips())
  want = _jax_probabilities(graphdef, *saved[4], _clips())
  assert np.max(np.abs(got - want)) < 1e-4
  # A given step directory is used as it is.
  result = convert.convert_checkpoint(
      str(path / 'checkpoints' / '6'), str(tmp_path / 'six.tflite'))
  assert (result.info['step'], result.info['selected_by']) == (6, 'given')


def test_without_metrics_the_latest_checkpoint_is_taken(tmp_path):
  from kws_jax import checkpoint
  config = util.small_config('tiny_conv')
  util.write_checkpoint(str(tmp_path / 'run'), config, LABELS,
                        {1: None, 3: None})
  directory, step, how = checkpoint.find_checkpoint(str(tmp_path / 'run'),
                                                    which='best')
  assert (directory, step, how) == (str(tmp_path / 'run' / 'checkpoints'), 3,
                                    'latest')
  # The checkpoints directory itself works too.
  assert checkpoint.find_checkpoint(directory, which='best')[1:] == (
      3, 'latest')


def test_convert_missing_checkpoint(tmp_path):
  from kws_jax import checkpoint
  with pytest.raises(checkpoint.CheckpointError, match='holds no checkpoint'):
    convert.convert_checkpoint(str(tmp_path), str(tmp_path / 'm.tflite'))


def test_int8_from_checkpoint_reports_accuracy(tmp_path, tiny_data_dir):
  config = util.small_config('tiny_conv', data_dir=str(tiny_data_dir),
                             tfds_data_dir=str(tmp_path / 'tfds'))
  util.write_checkpoint(str(tmp_path / 'run'), config, LABELS, {5: 0.8})
  result = convert.convert_checkpoint(
      str(tmp_path / 'run'), str(tmp_path / 'q.tflite'), quantize='int8',
      num_representative=16)
  accuracy = result.info['test_accuracy']
  assert accuracy['count'] > 0
  assert 0 <= accuracy['float'] <= 1 and 0 <= accuracy['int8'] <= 1
  assert accuracy['change'] == pytest.approx(
      accuracy['int8'] - accuracy['float'])
  with open(tmp_path / 'q_export.json') as f:
    assert json.load(f)['test_accuracy'] == accuracy
  # The float model is kept beside the int8 one, with its labels.
  assert result.info['float_model'] == str(tmp_path / 'q_float.tflite')
  assert (tmp_path / 'q_float.tflite').stat().st_size > (
      tmp_path / 'q.tflite').stat().st_size
  assert (tmp_path / 'q_float_labels.txt').read_text().split() == LABELS


def test_command_line_android_signature(workdir, tmp_path):
  path, _, _ = workdir
  output = tmp_path / 'cli' / 'app.tflite'
  result = subprocess.run(
      [sys.executable, '-m', 'tflite_export.convert', f'--workdir={path}',
       f'--output={output}', '--android_signature'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Wrote {output}' in result.stdout
  recognizer = inference.Recognizer(str(output))
  assert recognizer.android_layout and recognizer.labels == LABELS
  assert recognizer.predict(_clips()[0]).shape == (len(LABELS),)


def test_an_ensemble_is_the_mean_of_its_members(tmp_path):
  """Two runs exported as one: the softmax of log(mean probabilities) +
  offset, which the members' own exports give back."""
  members = []
  for seed in (0, 1):
    config = util.small_config('tiny_conv', unknown_offset=0.5)
    saved, graphdef = util.write_checkpoint(str(tmp_path / f'run{seed}'),
                                            config, LABELS, {3: 0.9},
                                            seed=seed)
    members.append((graphdef, *saved[3]))
  sources = [str(tmp_path / 'run0'), str(tmp_path / 'run1')]
  result = convert.convert_ensemble(sources, str(tmp_path / 'ens.tflite'),
                                    unknown_offset=1.0)
  assert [m['step'] for m in result.info['ensemble']] == [3, 3]
  assert result.parity_max_abs_diff < 1e-4
  with open(tmp_path / 'ens_config.json') as f:
    assert json.load(f)['unknown_offset'] == 1.0
  got = inference.Recognizer(result.model_path).predict_batch(_clips())
  raw = [np.asarray(jax.jit(models.predict_fn(
      graphdef, probabilities=True, decision=False))(params, batch_stats,
                                                      _clips()))
         for graphdef, params, batch_stats in members]
  want = np.log(np.mean(raw, axis=0))
  want[:, 1] += 1.0
  want = np.exp(want) / np.exp(want).sum(-1, keepdims=True)
  np.testing.assert_allclose(got, want, atol=1e-4)
  # The members' own offset (0.5) when none is given.
  default = convert.convert_ensemble(sources, str(tmp_path / 'own.tflite'))
  with open(default.config_path) as f:
    assert json.load(f)['unknown_offset'] == 0.5


def test_an_ensemble_needs_members_that_agree(tmp_path):
  def run(name, **overrides):
    config = util.small_config('tiny_conv', **overrides)
    util.write_checkpoint(str(tmp_path / name), config, LABELS, {1: 0.5})
    return str(tmp_path / name)
  plain, other_offset, more_bins = (
      run('plain'), run('offset', unknown_offset=1.0),
      run('bins', feature_bin_count=20))
  out = str(tmp_path / 'e.tflite')
  with pytest.raises(convert.EnsembleError, match='two or more'):
    convert.convert_ensemble([plain], out)
  with pytest.raises(convert.EnsembleError,
                     match=f'{plain} is named more than once'):
    convert.convert_ensemble([plain, plain + '/'], out)
  with pytest.raises(convert.EnsembleError,
                     match='different unknown_offset.*--unknown_offset'):
    convert.convert_ensemble([plain, other_offset], out)
  with pytest.raises(convert.EnsembleError,
                     match='feature_bin_count=20.*share one front end'):
    convert.convert_ensemble([plain, more_bins], out)
  assert not os.path.exists(out)
  # On the command line: one line, no traceback; the flags an ensemble
  # cannot take are named.
  cli = [sys.executable, '-m', 'tflite_export.convert', f'--output={out}']
  result = subprocess.run(cli + [f'--workdir={plain},{other_offset}'],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode != 0
  assert 'error: The members decide with different' in result.stderr
  assert f'{other_offset}/checkpoints/1: 1' in result.stderr
  assert 'Traceback' not in result.stderr
  result = subprocess.run(cli + [f'--workdir={plain},{more_bins}',
                                 '--streaming'],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert 'no --quantize or --streaming' in result.stderr
  result = subprocess.run(cli + [f'--workdir={plain}', '--unknown_offset=1'],
                          cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert '--unknown_offset is the offset of an ensemble' in result.stderr
