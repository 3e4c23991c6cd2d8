"""Tests for the JAX front end (kws_jax/features.py)."""

import os

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from kws_jax import features

SAMPLE_RATE = 16000


def _config(**overrides):
  config = default.get_config()
  for key, value in overrides.items():
    config[key] = value
  return config


def _noise(batch=2, samples=SAMPLE_RATE, seed=0):
  rng = np.random.default_rng(seed)
  return (0.1 * rng.standard_normal((batch, samples))).astype(np.float32)


def _tone(hz, samples=SAMPLE_RATE, amplitude=0.5):
  t = np.arange(samples) / SAMPLE_RATE
  return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None]


@pytest.mark.parametrize('preprocess', features.PREPROCESS_TYPES)
def test_shapes_and_frame_count(preprocess):
  config = _config(preprocess=preprocess)
  frontend = features.Frontend.from_config(config)
  out = frontend(jnp.asarray(_noise()))
  assert features.num_frames(config) == 98
  assert out.shape == (2, 98, 40)
  assert out.dtype == jnp.float32
  assert np.all(np.isfinite(out))


@pytest.mark.parametrize('window_ms,stride_ms,bins', [(30.0, 20.0, 40),
                                                      (25.0, 10.0, 32),
                                                      (40.0, 20.0, 10)])
def test_frames_follow_the_ms_settings(window_ms, stride_ms, bins):
  config = _config(window_size_ms=window_ms, window_stride_ms=stride_ms,
                   feature_bin_count=bins)
  window = int(SAMPLE_RATE * window_ms / 1000)
  stride = int(SAMPLE_RATE * stride_ms / 1000)
  expected = 1 + (SAMPLE_RATE - window) // stride
  assert features.num_frames(config) == expected
  out = features.Frontend.from_config(config)(jnp.asarray(_noise()))
  assert out.shape == (2, expected, bins)


@pytest.mark.parametrize('dft', features.DFTS)
@pytest.mark.parametrize('stride_ms', [10.0, 7.5, 10.0625])
def test_framing_matches_numpy(stride_ms, dft):
  """Contiguous slices by one gather ('fft'); strided slices (10, 7.5 ms
  strides) and the constant-index gather fallback (161) for 'matrices'."""
  frontend = features.Frontend(window_size_ms=30.0, window_stride_ms=stride_ms)
  audio = _noise(batch=3, samples=4000)
  window, stride = frontend.window_samples, frontend.stride_samples
  frames = 1 + (4000 - window) // stride
  expected = np.stack([audio[:, t * stride:t * stride + window]
                       for t in range(frames)], axis=1)
  np.testing.assert_array_equal(np.asarray(frontend.frame(audio, dft)),
                                expected)


@pytest.mark.parametrize('window_ms, stride_ms', [
    (30.0, 10.0), (25.0, 10.0), (64.0, 32.0), (2.0, 1.0), (0.0625, 0.0625)])
def test_both_dfts_give_the_same_spectrum(window_ms, stride_ms):
  """'matrices' (two products, features.dft_matrices) equals the FFT for
  windows that fill their FFT or not, down to a one-sample window."""
  frontend = features.Frontend(window_size_ms=window_ms,
                               window_stride_ms=stride_ms,
                               feature_bin_count=1, preprocess='average')
  audio = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, (2, 4000)),
                      jnp.float32)
  fft = np.asarray(frontend.power_spectrum(audio))
  matrices = np.asarray(frontend.power_spectrum(audio, 'matrices'))
  assert matrices.shape == fft.shape
  np.testing.assert_allclose(matrices, fft, rtol=0,
                             atol=1e-6 * float(np.abs(fft).max()))
  some = fft.shape[-1] // 2 + 1
  np.testing.assert_allclose(
      np.asarray(frontend.power_spectrum(audio, 'matrices', some)),
      fft[..., :some], rtol=0, atol=1e-6 * float(np.abs(fft).max()))
  with pytest.raises(ValueError, match='dft must be one of'):
    frontend.power_spectrum(audio, 'fast')


def test_fft_in_parts_equals_one_transform(monkeypatch):
  """'fft' transforms whole clips `_FFT_FRAMES` frames at a time: the
  same numbers, bit for bit, as one rfft of every frame, a short last part
  included."""
  monkeypatch.setattr(features, '_FFT_FRAMES', 17)  # Parts of 2 clips.
  frontend = features.Frontend()
  audio = jnp.asarray(_noise(batch=3, samples=1600, seed=5))  # 3 x 8 frames.
  frames = np.asarray(frontend.frame(audio)) * frontend.tables.window
  spectrum = np.asarray(jnp.fft.rfft(jnp.asarray(frames), n=512, axis=-1))
  whole = np.square(spectrum.real) + np.square(spectrum.imag)
  np.testing.assert_array_equal(np.asarray(frontend.power_spectrum(audio)),
                                whole)
  assert frontend.power_spectrum(audio[:0]).shape == (0, 8, 257)


def test_features_read_only_the_bins_their_projection_uses():
  """'mfcc' stops at 4 kHz: 128 of 257 bins, and the same features as
  the whole spectrum times the whole projection."""
  frontend = features.Frontend()
  assert frontend.tables.used_bins == 128
  assert not np.any(frontend.tables.projection[128:])
  audio = _noise(batch=2, seed=4)
  whole = np.sqrt(np.asarray(frontend.power_spectrum(jnp.asarray(audio))))
  mel = np.log(np.maximum(whole @ frontend.tables.projection,
                          frontend.mfcc_log_floor))
  np.testing.assert_allclose(np.asarray(frontend(jnp.asarray(audio))),
                             mel @ frontend.tables.dct, rtol=1e-5, atol=1e-4)


def test_pure_tone_peaks_in_its_fft_bin():
  frontend = features.Frontend()
  assert frontend.fft_length == 512  # Next power of two above 480 samples.
  power = np.asarray(frontend.power_spectrum(jnp.asarray(_tone(1000.0))))
  hz_per_bin = SAMPLE_RATE / frontend.fft_length
  assert np.all(power.argmax(-1) == round(1000.0 / hz_per_bin))


@pytest.mark.parametrize('fft_bin', [10, 32, 96, 192])
def test_pure_tone_peaks_in_the_right_band(fft_bin):
  hz = fft_bin * SAMPLE_RATE / 512  # On an FFT bin: 312.5 .. 6000 Hz.
  tone = jnp.asarray(_tone(hz))
  # 'logmel': the band weighting the tone's FFT bin most (or, as the
  # window spreads the tone over neighbouring bins, the band next to it).
  logmel = features.Frontend(preprocess='logmel')
  band = logmel.tables.projection[fft_bin].argmax()
  assert np.all(np.abs(np.asarray(logmel(tone)).argmax(-1) - band) <= 1)
  # 'average': exactly the group of FFT bins holding the tone's bin.
  average = features.Frontend(preprocess='average')
  group = average.tables.projection[fft_bin].argmax()
  assert np.all(np.asarray(average(tone)).argmax(-1) == group)


def test_average_pooling_covers_every_bin_once():
  matrix = features.average_pooling_matrix(257, 40)
  assert matrix.shape == (257, 40)
  np.testing.assert_allclose((matrix > 0).sum(axis=1), 1)  # Each bin once.
  np.testing.assert_allclose(matrix.sum(axis=0), 1.0)  # Each group a mean.


def test_mfcc_matches_tensorflow_ops():
  """Same numbers as the tutorial's audio_spectrogram + mfcc ops."""
  tf = pytest.importorskip('tensorflow')
  audio = _noise(batch=1, seed=3)
  audio[0, 8000:] += _tone(440.0)[0, 8000:]
  spectrogram = tf.raw_ops.AudioSpectrogram(
      input=audio[0][:, None], window_size=480, stride=160,
      magnitude_squared=True)
  expected = tf.raw_ops.Mfcc(spectrogram=spectrogram, sample_rate=SAMPLE_RATE,
                             dct_coefficient_count=40).numpy()
  frontend = features.Frontend(preprocess='mfcc')
  np.testing.assert_allclose(
      np.asarray(frontend.power_spectrum(jnp.asarray(audio))),
      spectrogram.numpy(), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(frontend(jnp.asarray(audio))),
                             expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('preprocess', ['mfcc', 'logmel'])
def test_silence_gives_finite_features(preprocess):
  frontend = features.Frontend(preprocess=preprocess)
  out = np.asarray(frontend(jnp.zeros((1, SAMPLE_RATE))))
  assert np.all(np.isfinite(out))


@pytest.mark.parametrize('preprocess', features.PREPROCESS_TYPES)
def test_jit_matches_eager(preprocess):
  frontend = features.Frontend(preprocess=preprocess)
  audio = jnp.asarray(_noise())
  np.testing.assert_allclose(np.asarray(jax.jit(frontend)(audio)),
                             np.asarray(frontend(audio)), rtol=1e-5,
                             atol=1e-5)


def test_frontend_has_no_state():
  frontend = features.Frontend.from_config(_config())
  _, state = nnx.split(frontend)
  assert not jax.tree.leaves(state)
  graphdef, params, batch_stats = nnx.split(frontend, nnx.Param, nnx.BatchStat)
  assert not jax.tree.leaves(params) and not jax.tree.leaves(batch_stats)
  rebuilt = nnx.merge(graphdef, params, batch_stats)
  audio = jnp.asarray(_noise())
  np.testing.assert_array_equal(np.asarray(rebuilt(audio)),
                                np.asarray(frontend(audio)))


def test_bad_settings_raise():
  with pytest.raises(ValueError, match='preprocess'):
    features.Frontend(preprocess='micro')
  with pytest.raises(ValueError, match='mfcc_channels'):
    features.Frontend(preprocess='mfcc', feature_bin_count=64)
  with pytest.raises(ValueError, match='fewer than one window'):
    features.Frontend()(jnp.zeros((1, 100)))


def _litert_interpreter(model_content: bytes):
  try:
    # pylint: disable-next=g-import-not-at-top
    from ai_edge_litert import interpreter as litert
    return litert.Interpreter(model_content=model_content)
  except ImportError:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.lite.Interpreter(model_content=model_content)


@pytest.mark.parametrize('preprocess', features.PREPROCESS_TYPES)
def test_converts_to_tflite_builtins(preprocess, tmp_path):
  """jax2tf -> SavedModel -> TFLite with builtin ops only, same numbers."""
  tf = pytest.importorskip('tensorflow')
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  # Keep TF off any accelerator JAX may be using.
  tf.config.set_visible_devices([], 'GPU')
  frontend = features.Frontend(preprocess=preprocess)
  audio = _noise(batch=1, seed=1)
  module = tf.Module()
  module.f = tf.function(
      jax2tf.convert(frontend), autograph=False,
      input_signature=[tf.TensorSpec([1, SAMPLE_RATE], tf.float32)])
  path = os.fspath(tmp_path / 'saved_model')
  tf.saved_model.save(module, path,
                      signatures=module.f.get_concrete_function())
  converter = tf.lite.TFLiteConverter.from_saved_model(path)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  interpreter = _litert_interpreter(converter.convert())
  interpreter.allocate_tensors()
  # pylint: disable-next=protected-access
  ops = {op['op_name'] for op in interpreter._get_ops_details()}
  assert not any(op.startswith('Flex') or op == 'CUSTOM' for op in ops), ops
  interpreter.set_tensor(interpreter.get_input_details()[0]['index'], audio)
  interpreter.invoke()
  out = interpreter.get_tensor(interpreter.get_output_details()[0]['index'])
  np.testing.assert_allclose(out, np.asarray(frontend(jnp.asarray(audio))),
                             rtol=1e-4, atol=1e-4)
