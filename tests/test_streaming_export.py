"""Tests for the streaming TFLite export and `runtime.streaming_inference`.

The parity test streams a synthetic recording through a streaming model,
stride by stride, and compares every output with the non-streaming model's
probabilities on the same clip (the last L samples, zeros before the stream
start): the non-streaming TFLite model of `convert.export_tflite`, which
test_convert.py ties to JAX, and, with KWS_STREAMING_EXPORT_ALL=1, the JAX
model too. What streaming adds depends only on the front-end settings (the
backbone is used as it is), so by default the test runs for the first
registered architecture of each distinct front-end config;
KWS_STREAMING_EXPORT_ALL=1 runs every architecture (about a minute more).
"""

import ast
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from kws_jax import features
from kws_jax import models
from kws_jax.runtime import calibration
from kws_jax.runtime import inference
from kws_jax.runtime import streaming
from kws_jax.runtime import streaming_inference
from tflite_export import convert
from tflite_export import streaming_export
from tflite_export import tflite_model

import export_test_util as util

LABELS = util.LABELS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 16000
FULL = os.environ.get('KWS_STREAMING_EXPORT_ALL') == '1'
# Max |streaming - non-streaming| allowed over every output: both TFLite
# models compute each frame and the backbone with the same kernels (0.0
# measured), and vs JAX the clip model's own conversion error remains.
TFLITE_TOLERANCE = 1e-5
PARITY_TOLERANCE = 1e-4


def _front_end(architecture):
  config = util.small_config(architecture)
  return tuple(config[k] for k in (
      'sample_rate', 'clip_duration_ms', 'window_size_ms', 'window_stride_ms',
      'feature_bin_count', 'preprocess'))


def _parity_architectures():
  """Every architecture, or the first of each front-end config."""
  names = sorted(models.MODELS)
  if FULL:
    return names
  first = {}
  for name in names:
    first.setdefault(_front_end(name), name)
  return sorted(first.values())


def _jax_probabilities(graphdef, params, batch_stats, clips):
  probabilities = tflite_model.probabilities_fn(graphdef, params, batch_stats)
  return np.asarray(jax.jit(probabilities)(clips))


_EXPORTS = {}


def _export(architecture, tmp_path_factory, clip_stride_ms=None,
            **config_overrides):
  """Exports a fresh model once per module, streaming and not.

  Returns:
    ((graphdef, params, batch_stats), streaming export, clip export, config).
  """
  key = (architecture, clip_stride_ms, tuple(sorted(config_overrides.items())))
  if key not in _EXPORTS:
    config = util.small_config(architecture, **config_overrides)
    graphdef, params, batch_stats = util.init_model(config, len(LABELS))
    folder = tmp_path_factory.mktemp(architecture)
    # Parity is checked independently below; skip the exports' own checks.
    stream = streaming_export.export_streaming_tflite(
        params, batch_stats, graphdef, config, LABELS,
        str(folder / 'stream.tflite'), clip_stride_ms=clip_stride_ms,
        verify=False)
    clip = convert.export_tflite(params, batch_stats, graphdef, config,
                                 LABELS, str(folder / 'clip.tflite'),
                                 verify=False)
    _EXPORTS[key] = (graphdef, params, batch_stats), stream, clip, config
  return _EXPORTS[key]


def _stream_and_compare(exported, clip_stride_ms=None):
  """Streams 2 s through the streaming model, compares with the clip model.

  Returns:
    (max |diff| from the clip TFLite model, from JAX (None unless FULL),
    layout, outputs compared).
  """
  model_state, result, clip_result, config = exported
  layout = streaming_export.streaming_layout(config, clip_stride_ms)
  model = streaming_inference.StreamingTFLiteModel(result.model_path)
  assert model.stride_samples == layout.stride_samples
  assert model.state_shapes == layout.state_shapes()
  assert model.labels == LABELS and model.clip_samples == 16000
  # 2 s of tone, noise bursts and noise, fed in uneven chunks.
  stream = streaming_export.test_stream(2 * RATE, RATE, seed=1)
  got = np.concatenate([model.process(stream[i:i + 1111])
                        for i in range(0, stream.shape[0], 1111)])
  clips = streaming_export.clip_windows(stream, layout)
  assert got.shape == (stream.shape[0] // layout.stride_samples, len(LABELS))
  # Every output counts, the first ones too: after reset() the model has
  # heard silence, as the zero-padded clips have.
  want = inference.Recognizer(clip_result.model_path).predict_batch(clips)
  jax_diff = None
  if FULL:
    jax_diff = float(np.max(np.abs(
        got - _jax_probabilities(*model_state, clips))))
  return float(np.max(np.abs(got - want))), jax_diff, layout, len(got)


def test_layout_of_the_configs():
  tc = streaming_export.streaming_layout(util.small_config('tc_resnet'))
  # 30 ms windows every 10 ms: 3 new frames a call, 20 ms of context.
  assert (tc.stride_samples, tc.frames_per_stride, tc.context_samples,
          tc.num_frames, tc.extra_frames) == (480, 3, 320, 98, 0)
  # 30 ms windows every 20 ms: the last 160 samples of a clip are in no
  # frame, so the context is 480 - 320 + 160.
  tiny = streaming_export.streaming_layout(util.small_config('tiny_conv'))
  assert (tiny.clip_stride_ms, tiny.frames_per_stride, tiny.context_samples,
          tiny.num_frames) == (20.0, 1, 320, 49)
  tiny = streaming_export.streaming_layout(util.small_config('tiny_conv'), 60)
  assert tiny.frames_per_stride == 3
  # Window == hop with no unused tail: one hop of context, one frame dropped.
  flat = streaming_export.streaming_layout(util.small_config(
      'tiny_conv', window_size_ms=20.0, window_stride_ms=20.0))
  assert (flat.context_samples, flat.extra_frames) == (320, 1)


@pytest.mark.parametrize('stride_ms,message', [
    (30, 'multiple of window_stride_ms=20'), (0, 'positive multiple'),
    (1000, 'at most the 49 frames of one clip, 980 ms')])
def test_bad_strides_are_refused(stride_ms, message):
  with pytest.raises(ValueError, match=message):
    streaming_export.streaming_layout(util.small_config('ds_cnn'), stride_ms)


@pytest.mark.parametrize('architecture', _parity_architectures())
def test_streaming_tflite_matches_the_clip_model(architecture,
                                                 tmp_path_factory):
  exported = _export(architecture, tmp_path_factory)
  diff, jax_diff, layout, count = _stream_and_compare(exported)
  print(f'{architecture}: {count} strides of {layout.clip_stride_ms:g} ms, '
        f'streaming vs non-streaming max abs diff: TFLite {diff:.3g}'
        + (f', JAX {jax_diff:.3g}' if jax_diff is not None else ''))
  assert diff < TFLITE_TOLERANCE
  assert jax_diff is None or jax_diff < PARITY_TOLERANCE
  # Builtin ops only, and the front end is incremental: the spectrum's
  # twiddle (features.dft_matrices; [frames, n1, n2] times a constant
  # [1, n1, n2]) sees only the new frames.
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=exported[1].model_path)
  ops = interpreter._get_ops_details()
  assert not [op for op in ops if op['op_name'].startswith(('Flex', 'CUSTOM'))]
  assert 'RFFT2D' not in {op['op_name'] for op in ops}
  details = interpreter.get_tensor_details()
  split = features.dft_split(
      features.Frontend.from_config(exported[3]).fft_length)
  twiddled = [details[op['inputs'][0]]['shape'] for op in ops
              if op['op_name'] == 'MUL' and
              tuple(details[op['inputs'][1]]['shape']) == (1, *split)]
  assert twiddled and all(
      s[0] == layout.frames_per_stride + layout.extra_frames
      for s in twiddled)


def test_both_exports_decide_with_the_unknown_offset(tmp_path_factory):
  exported = _export('tiny_conv', tmp_path_factory, unknown_offset=2.0)
  (graphdef, params, batch_stats), _, clip, _ = exported
  clips = streaming_export.clip_windows(
      streaming_export.test_stream(2 * RATE, RATE, seed=1),
      streaming_export.streaming_layout(exported[3]))[::8]
  raw = np.array(jax.jit(models.predict_fn(graphdef, decision=False))(
      params, batch_stats, clips))
  raw[:, 1] += 2.0  # `_unknown_`
  got = inference.Recognizer(clip.model_path).predict_batch(clips)
  np.testing.assert_allclose(got, jax.nn.softmax(raw), atol=PARITY_TOLERANCE)
  diff, _, _, _ = _stream_and_compare(exported)
  assert diff < TFLITE_TOLERANCE


def test_both_exports_keep_one_vs_rests_unknown_logit_at_zero(
    tmp_path_factory):
  exported = _export('tiny_conv', tmp_path_factory, loss='one_vs_rest')
  (graphdef, params, batch_stats), _, clip, _ = exported
  clips = streaming_export.clip_windows(
      streaming_export.test_stream(2 * RATE, RATE, seed=3),
      streaming_export.streaming_layout(exported[3]))[::8]
  logits = np.array(jax.jit(models.predict_fn(graphdef))(
      params, batch_stats, clips))
  np.testing.assert_array_equal(logits[:, 1], 0)  # `_unknown_`
  got = inference.Recognizer(clip.model_path).predict_batch(clips)
  np.testing.assert_allclose(got, jax.nn.softmax(logits),
                             atol=PARITY_TOLERANCE)
  diff, _, _, _ = _stream_and_compare(exported)
  assert diff < TFLITE_TOLERANCE


def test_window_equal_to_hop(tmp_path_factory):
  # No overlap and no unused tail: the context is one hop whose frame is
  # computed again and dropped.
  exported = _export('tiny_conv', tmp_path_factory, clip_stride_ms=40,
                     window_size_ms=20.0, window_stride_ms=20.0)
  diff, jax_diff, layout, _ = _stream_and_compare(exported,
                                                  clip_stride_ms=40)
  assert layout.extra_frames == 1
  assert diff < TFLITE_TOLERANCE
  assert jax_diff is None or jax_diff < PARITY_TOLERANCE


def test_chunking_and_reset(tmp_path_factory):
  _, result, _, _ = _export('tiny_conv', tmp_path_factory)
  model = streaming_inference.StreamingTFLiteModel(result.model_path)
  stream = streaming_export.test_stream(RATE, RATE, seed=2)
  stride = model.stride_samples
  by_step = np.stack([model.step(stream[i:i + stride])
                      for i in range(0, stream.shape[0] - stride + 1,
                                     stride)])
  assert model.samples_seen == len(by_step) * stride
  model.reset()
  pieces = [model.process(stream[i:i + 7]) for i in range(0, RATE, 7)]
  np.testing.assert_array_equal(np.concatenate(pieces), by_step)
  with pytest.raises(ValueError, match='step'):
    model.step(stream[:stride - 1])


@pytest.fixture(scope='module')
def tc_resnet_pair(tmp_path_factory):
  """tc_resnet's streaming model and its non-streaming TFLite model."""
  _, stream, clip, _ = _export('tc_resnet', tmp_path_factory)
  return stream.model_path, clip.model_path


def test_adaptor_gives_the_clip_model_scores_in_the_recognizer(
    tc_resnet_pair):
  stream_path, clip_path = tc_resnet_pair
  stream = streaming_export.test_stream(3 * RATE, RATE, seed=3)
  want_times, want = calibration.score_array(
      inference.Recognizer(clip_path).predict, stream, clip_stride_ms=30)
  model = streaming_inference.StreamingTFLiteModel(stream_path)
  adaptor = model.predict_fn()
  calls = model.calls
  times, got = calibration.score_array(adaptor, stream, clip_stride_ms=30)
  np.testing.assert_array_equal(times, want_times)
  diff = float(np.max(np.abs(got - want)))
  print(f'tc_resnet in StreamingRecognizer: streaming vs non-streaming '
        f'TFLite max abs diff {diff:.3g} over {len(got)} clips')
  assert diff < TFLITE_TOLERANCE
  # At the model's stride it runs along the stream (`StrideSteps`): the
  # first clip takes ceil(L / S) calls, every later one a single call, and
  # nothing re-primes.
  assert adaptor.reprimes == 0
  assert model.calls - calls == -(-16000 // 480) + len(got) - 1
  # Another stride still gives the right scores (re-priming at each clip).
  times, got = calibration.score_array(adaptor, stream[:int(1.3 * RATE)],
                                       clip_stride_ms=60)
  assert adaptor.reprimes == len(got)
  _, want = calibration.score_array(
      inference.Recognizer(clip_path).predict, stream[:int(1.3 * RATE)],
      clip_stride_ms=60)
  assert np.max(np.abs(got - want)) < TFLITE_TOLERANCE


def test_load_model_picks_the_streaming_runner(tc_resnet_pair):
  stream_path, clip_path = tc_resnet_pair
  loaded = streaming.load_model(stream_path)
  assert isinstance(loaded.predict_fn, streaming_inference.ClipAdaptor)
  assert (loaded.clip_stride_ms, loaded.clip_duration_ms,
          loaded.sample_rate) == (30.0, 1000.0, 16000)
  assert loaded.labels == LABELS
  assert streaming.load_model(clip_path).clip_stride_ms is None
  stream = streaming_export.test_stream(2 * RATE, RATE, seed=4)
  recognizer = streaming.StreamingRecognizer(
      loaded.predict_fn, loaded.labels, clip_stride_ms=loaded.clip_stride_ms,
      detection_threshold=0.3, minimum_count=1)
  clip_recognizer = streaming.StreamingRecognizer(
      inference.Recognizer(clip_path).predict, LABELS,
      detection_threshold=0.3, minimum_count=1)
  for i in range(0, stream.shape[0], 1600):
    assert ([d.label for d in recognizer.process(stream[i:i + 1600])] ==
            [d.label for d in clip_recognizer.process(stream[i:i + 1600])])
  np.testing.assert_allclose(recognizer.latest_scores,
                             clip_recognizer.latest_scores,
                             atol=TFLITE_TOLERANCE)


def test_streaming_cannot_be_quantized(tmp_path):
  with pytest.raises(ValueError, match='streaming'):
    convert.convert_checkpoint(str(tmp_path), str(tmp_path / 'm.tflite'),
                               streaming=True, quantize='int8')


def test_command_line_streaming(tmp_path):
  config = util.small_config('tiny_conv')
  util.write_checkpoint(str(tmp_path / 'run'), config, LABELS, {3: 0.5})
  output = tmp_path / 'out' / 'stream.tflite'
  result = subprocess.run(
      [sys.executable, '-m', 'tflite_export.convert',
       f'--workdir={tmp_path / "run"}', f'--output={output}', '--streaming',
       '--clip_stride_ms=40'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Wrote {output}' in result.stdout
  assert 'Streaming: 40 ms (640 samples) a call' in result.stdout
  model = streaming_inference.StreamingTFLiteModel(str(output))
  assert model.stride_samples == 640 and model.labels == LABELS
  # The files beside the model, with the export's own parity check.
  with open(tmp_path / 'out' / 'stream_export.json') as f:
    info = json.load(f)
  assert info['step'] == 3 and info['parity_max_abs_diff'] < PARITY_TOLERANCE
  assert info['streaming']['stride_samples'] == 640
  assert [(i['name'], i['shape']) for i in info['inputs']] == [
      ('audio', [1, 640]), ('audio_context', [1, 320]),
      ('feature_buffer', [1, 49, 40])]
  assert [o['name'] for o in info['outputs']] == [
      'probabilities', 'new_audio_context', 'new_feature_buffer']
  with open(tmp_path / 'out' / 'stream_config.json') as f:
    assert json.load(f)['model_architecture'] == 'tiny_conv'
  assert inference.read_labels(tmp_path / 'out' / 'stream_labels.txt') == (
      LABELS)
  # The clip Recognizer says what the file is.
  with pytest.raises(inference.ModelError, match='StreamingTFLiteModel'):
    inference.Recognizer(str(output))


def _tflite_export_imports(module):
  """The `tflite_export` modules `tflite_export/<module>.py` imports."""
  with open(os.path.join(ROOT, 'tflite_export', f'{module}.py')) as f:
    tree = ast.parse(f.read())
  return {alias.name for node in ast.walk(tree)
          if isinstance(node, ast.ImportFrom)
          and node.module == 'tflite_export' for alias in node.names}


def test_exports_import_one_way():
  # convert (the command line) -> streaming_export -> tflite_model.
  assert _tflite_export_imports('tflite_model') == set()
  assert _tflite_export_imports('streaming_export') == {'tflite_model'}
  assert _tflite_export_imports('convert') == {'streaming_export',
                                               'tflite_model'}
