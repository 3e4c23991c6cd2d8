"""Speech-command recognition with an exported TFLite model; no JAX needed.

    recognizer = inference.Recognizer()            # the shipped model
    recognizer.classify_file('clip.wav')           # [('yes', 0.97), ...]

A model is a `.tflite` file from `tflite_export/convert.py` that maps raw
audio to class probabilities, with beside it:

    <stem>_labels.txt (or labels.txt)    one label a line, in class order
    <stem>_config.json (or config.json)  the training config; only
                                         `sample_rate` is read here (16000
                                         when there is no such file)

Two input layouts are understood, found from the model's inputs:

* ours: `audio float32 [1, L]`;
* the TensorFlow speech-commands Android example's (`--android_signature`):
  `float32 [L, 1]` audio then `int32 [1]` sample rate.

Either way the one output is `float32 [1, num_labels]` probabilities.
Quantized (int8/uint8) inputs or outputs are (de)quantized here, so callers
always see float audio and probabilities.

Only numpy, `ai_edge_litert` (or TensorFlow's `tf.lite.Interpreter` where
LiteRT is not installed) and `kws_jax.audio_io` are used. A `Recognizer` holds
one interpreter, which is not thread-safe: use one per thread.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from absl import logging
import numpy as np

from kws_jax import audio_io

# kws_jax/shipped/, beside this subpackage.
SHIPPED_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'shipped')
SHIPPED_MODEL = os.path.join(SHIPPED_DIR, 'model.tflite')
SHIPPED_LABELS = os.path.join(SHIPPED_DIR, 'model_labels.txt')
# Used when no config file beside the model says otherwise.
DEFAULT_SAMPLE_RATE = 16000


class ModelError(ValueError):
  """A model or its labels/config file is missing, invalid or inconsistent.

  The message names the file and says what to do.
  """


def interpreter_class() -> type:
  """LiteRT's `Interpreter`, else TensorFlow's `tf.lite.Interpreter`.

  Imported when a model is loaded, not with this module: LiteRT is the one
  optional dependency of the runtime, and TensorFlow (heavy) only its
  fallback.
  """
  try:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
    return Interpreter
  except ImportError:
    pass
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
        'Running a TFLite model needs ai-edge-litert (pip install '
        'ai-edge-litert) or TensorFlow; neither is installed.') from None
  return tf.lite.Interpreter


def _beside(model_path: str, suffix: str, fallback: str) -> list[str]:
  """`<stem><suffix>` and `fallback` in the model's folder, in that order."""
  folder = os.path.dirname(os.path.abspath(model_path))
  stem = os.path.splitext(os.path.basename(model_path))[0]
  return [os.path.join(folder, stem + suffix), os.path.join(folder, fallback)]


def default_labels_path(model_path: str) -> str:
  """The labels file used for `model_path` when none is given.

  `<stem>_labels.txt` beside the model if it exists, else `labels.txt` there
  (returned even when missing, so errors can name it).
  """
  candidates = _beside(model_path, '_labels.txt', 'labels.txt')
  for path in candidates:
    if os.path.isfile(path):
      return path
  return candidates[-1]


def config_path(model_path: str) -> str | None:
  """`<stem>_config.json` or `config.json` beside the model, if present."""
  for path in _beside(model_path, '_config.json', 'config.json'):
    if os.path.isfile(path):
      return path
  return None


def read_labels(path: str) -> list[str]:
  """Reads a labels file: one label a line, blank lines ignored.

  Raises:
    ModelError: the file is missing, unreadable or empty.
  """
  try:
    with open(path, encoding='utf-8') as f:
      labels = [line.strip() for line in f if line.strip()]
  except FileNotFoundError:
    raise ModelError(
        f'Labels file {path} not found; put the labels written at export '
        '(<model stem>_labels.txt) beside the model or pass its path.'
    ) from None
  except (OSError, UnicodeDecodeError) as e:
    raise ModelError(f'Labels file {path} cannot be read: {e}') from e
  if not labels:
    raise ModelError(f'Labels file {path} is empty; it should list one label '
                     'a line, in the order of the model outputs.')
  return labels


def read_config(path: str) -> dict[str, Any]:
  """Reads a JSON config file (the training config as a dict)."""
  try:
    with open(path, encoding='utf-8') as f:
      config = json.load(f)
  except (OSError, ValueError) as e:
    raise ModelError(f'Config file {path} cannot be read as JSON: {e}') from e
  if not isinstance(config, dict):
    raise ModelError(f'Config file {path} should hold a JSON object, not '
                     f'{type(config).__name__}.')
  return config


def to_float_audio(audio: np.ndarray) -> np.ndarray:
  """Int16 PCM or float audio -> float32 in [-1, 1]."""
  audio = np.asarray(audio)
  if audio.dtype == np.int16:
    return audio.astype(np.float32) / audio_io.PCM16_SCALE
  if not np.issubdtype(audio.dtype, np.floating):
    raise ValueError(f'Audio must be float in [-1, 1] or int16 PCM, got '
                     f'{audio.dtype}.')
  return audio.astype(np.float32)


class Predictor:
  """What every classifier here offers; subclasses give `predict_batch`.

  Subclasses set `labels` (list[str]), `sample_rate` (Hz) and `clip_samples`
  (L) and implement `predict_batch(audio float32 [B, L]) -> [B, C]`.
  """

  labels: list[str]
  sample_rate: int
  clip_samples: int

  def predict_batch(self, audio: np.ndarray) -> np.ndarray:
    """float32 [B, L] audio in [-1, 1] -> float32 [B, C] probabilities."""
    raise NotImplementedError

  def predict(self, clip: np.ndarray) -> np.ndarray:
    """One clip, float32 [L] in [-1, 1] -> probabilities float32 [C].

    Raises:
      ValueError: the clip is not [clip_samples]; `classify_array` resamples
        and fits any audio.
    """
    clip = np.asarray(clip, np.float32)
    if clip.shape != (self.clip_samples,):
      raise ValueError(
          f'predict() takes one clip of shape ({self.clip_samples},) at '
          f'{self.sample_rate} Hz, got {clip.shape}; use classify_array() '
          'to resample and pad/crop.')
    return self.predict_batch(clip[None])[0]

  def prepare(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Any mono audio -> the model's clip, float32 [L].

    Resamples to `self.sample_rate`, then zero-pads or crops the end to L
    samples, as training does with its clips.

    Args:
      audio: [T] float in [-1, 1] or int16 PCM.
      sample_rate: of `audio`, Hz.
    """
    audio = to_float_audio(audio)
    if audio.ndim != 1:
      raise ValueError(f'Audio must be mono [samples], got {audio.shape}.')
    if int(sample_rate) != self.sample_rate:
      # As `audio_io.read_audio` does to files: the filter may overshoot.
      audio = np.clip(audio_io.resample(audio, int(sample_rate),
                                        self.sample_rate), -1.0, 1.0)
    return audio_io.fit_length(audio, self.clip_samples)

  def top_k(self, probabilities: np.ndarray,
            k: int = 3) -> list[tuple[str, float]]:
    """The `k` most probable (label, probability) pairs, best first."""
    order = np.argsort(-np.asarray(probabilities), kind='stable')[:max(k, 0)]
    return [(self.labels[i], float(probabilities[i])) for i in order]

  def classify_array(self, audio: np.ndarray, sample_rate: int,
                     top_k: int = 3) -> list[tuple[str, float]]:
    """Classifies mono audio [T] at `sample_rate`; see `prepare`."""
    return self.top_k(self.predict(self.prepare(audio, sample_rate)), top_k)

  def classify_file(self, path: str | os.PathLike[str],
                    top_k: int = 3) -> list[tuple[str, float]]:
    """Classifies a WAV or FLAC file.

    Raises:
      audio_io.AudioError: the file cannot be read; the message names it.
    """
    audio = audio_io.read_audio(path, self.sample_rate)
    if len(audio) > self.clip_samples:
      logging.warning(
          '%s is %.2f s long; only its first %.2f s was labelled (the model '
          'hears one clip at a time). A longer recording is a stream: use '
          'python -m kws_jax.test_streaming_accuracy or kws_jax.listen.',
          audio_io.printable_path(path), len(audio) / self.sample_rate,
          self.clip_samples / self.sample_rate)
    clip = audio_io.fit_length(audio, self.clip_samples)
    return self.top_k(self.predict(clip), top_k)


def _describe(details: Sequence[dict[str, Any]]) -> str:
  return ', '.join(f'{d["name"]} {np.dtype(d["dtype"]).name} '
                   f'{[int(n) for n in d["shape"]]}' for d in details)


class Recognizer(Predictor):
  """Runs a speech-commands TFLite model on clips and files.

  Attributes:
    model_path: the `.tflite` file.
    labels_path: the labels file used.
    labels: class names, in output order.
    sample_rate: Hz the model expects (from the config beside the model, else
      16000).
    clip_samples: L, samples per clip (from the model's input shape).
    config: the config dict beside the model, or None.
    android_layout: True for the Android example's inputs ([L, 1] audio and
      an int32 sample rate).
  """

  def __init__(self, model_path: str | os.PathLike[str] | None = None,
               labels_path: str | os.PathLike[str] | None = None,
               num_threads: int = 1):
    """Loads the model and its labels.

    Args:
      model_path: a `.tflite` file; None is the shipped model.
      labels_path: one label a line; None is `<stem>_labels.txt` or
        `labels.txt` beside the model (for the shipped model
        SHIPPED_LABELS).
      num_threads: CPU threads for the interpreter.

    Raises:
      ModelError: a file is missing or invalid, the model's inputs/outputs
        are not a speech-commands model's, or the label count does not match
        the model's outputs.
    """
    if model_path is None:
      # Its labels: SHIPPED_LABELS, as `default_labels_path` finds them.
      model_path = SHIPPED_MODEL
    self.model_path = os.fspath(model_path)
    if not os.path.isfile(self.model_path):
      hint = (' No model has been shipped with this copy; pass the path '
              'of your own (.tflite from tflite_export.convert).' if
              os.path.abspath(self.model_path) == SHIPPED_MODEL else '')
      raise ModelError(f'Model file {self.model_path} not found.{hint}')
    self.labels_path = (os.fspath(labels_path) if labels_path is not None
                        else default_labels_path(self.model_path))
    self.labels = read_labels(self.labels_path)

    self.config = None
    self.sample_rate = DEFAULT_SAMPLE_RATE
    found_config = config_path(self.model_path)
    if found_config is not None:
      self.config = read_config(found_config)
      if 'sample_rate' in self.config:
        self.sample_rate = int(self.config['sample_rate'])

    try:
      self._interpreter = interpreter_class()(
          model_path=self.model_path, num_threads=num_threads)
      self._interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
      raise ModelError(f'Model file {self.model_path} is not a usable TFLite '
                       f'model: {e}') from e
    self._find_tensors()
    # Every tool loads its model here: say which, so that a run of the
    # shipped model is never taken for one of the user's.
    logging.info('Model: %s%s; labels: %s', self.model_path,
                 ' (the shipped model)' if os.path.abspath(self.model_path)
                 == SHIPPED_MODEL else '', self.labels_path)
    num_outputs = int(self._output['shape'][-1])
    if num_outputs != len(self.labels):
      raise ModelError(
          f'Labels file {self.labels_path} lists {len(self.labels)} labels '
          f'but model {self.model_path} has {num_outputs} outputs; use the '
          'labels file written with this model.')

  def _find_tensors(self) -> None:
    """Works out the input layout; see the module docstring."""
    inputs = self._interpreter.get_input_details()
    outputs = self._interpreter.get_output_details()
    audio = [d for d in inputs if len(d['shape']) == 2 and
             np.dtype(d['dtype']).kind in 'fiu' and
             np.dtype(d['dtype']) != np.int32]
    rate = [d for d in inputs if np.dtype(d['dtype']) == np.int32 and
            int(np.prod(d['shape'])) == 1]
    expected = ('expected audio float32 [1, L] (or the Android example\'s '
                'float32 [L, 1] plus int32 [1] sample rate) in, and '
                'probabilities [1, num_labels] out')
    if (len(audio) != 1 or len(audio) + len(rate) != len(inputs) or
        len(rate) > 1 or len(outputs) != 1 or
        len(outputs[0]['shape']) != 2 or outputs[0]['shape'][0] != 1):
      hint = ''
      if any(d['name'].endswith('audio_context:0') for d in inputs):
        hint = (' It looks like a streaming model (convert --streaming): '
                'run it with kws_jax.runtime.streaming_inference.'
                'StreamingTFLiteModel.')
      raise ModelError(
          f'Model {self.model_path} has inputs [{_describe(inputs)}] and '
          f'outputs [{_describe(outputs)}]; {expected}.{hint}')
    shape = [int(n) for n in audio[0]['shape']]
    if rate:
      if shape[1] != 1:
        raise ModelError(f'Model {self.model_path}: audio input {shape}; '
                         f'{expected}.')
      self.android_layout = True
      self.clip_samples = shape[0]
    else:
      if shape[0] != 1:
        raise ModelError(f'Model {self.model_path}: audio input {shape}; '
                         f'{expected}.')
      self.android_layout = False
      self.clip_samples = shape[1]
    self._audio, self._output = audio[0], outputs[0]
    self._rate = rate[0] if rate else None
    if self._rate is not None:
      self._interpreter.set_tensor(
          self._rate['index'],
          np.full(self._rate['shape'], self.sample_rate, np.int32))

  @property
  def num_classes(self) -> int:
    return len(self.labels)

  def _run(self, clip: np.ndarray) -> np.ndarray:
    """One clip float32 [L] -> probabilities float32 [C]."""
    details = self._audio
    data = clip.reshape(details['shape'])
    dtype = np.dtype(details['dtype'])
    if dtype != np.float32:  # A quantized input.
      scale, zero_point = details['quantization']
      info = np.iinfo(dtype)
      data = np.clip(np.round(data / scale + zero_point), info.min, info.max)
    self._interpreter.set_tensor(details['index'], data.astype(dtype))
    if self._rate is not None:
      self._interpreter.set_tensor(
          self._rate['index'],
          np.full(self._rate['shape'], self.sample_rate, np.int32))
    self._interpreter.invoke()
    out = self._interpreter.get_tensor(self._output['index'])[0]
    if np.dtype(self._output['dtype']) != np.float32:
      scale, zero_point = self._output['quantization']
      out = (out.astype(np.float32) - zero_point) * scale
    return out.astype(np.float32)

  def predict_batch(self, audio: np.ndarray) -> np.ndarray:
    """float32 [B, L] audio in [-1, 1] -> float32 [B, C] probabilities.

    The model takes one clip per call; clips are run one after another.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2 or audio.shape[1] != self.clip_samples:
      raise ValueError(f'Expected audio [batch, {self.clip_samples}], got '
                       f'{audio.shape}.')
    if not len(audio):
      return np.zeros((0, self.num_classes), np.float32)
    return np.stack([self._run(clip) for clip in audio])
