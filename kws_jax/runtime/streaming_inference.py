"""Runs a streaming TFLite model (`convert --streaming`) stride by stride.

No JAX needed.

A streaming model takes one stride of new audio plus its state and returns
the probabilities of the latest clip and the new state (external state, as
in google-research's kws_streaming): the caller keeps the state between calls
and feeds it back. Inputs and outputs are found by name through the model's
`serving_default` signature:

    inputs   audio            float32 [1, S]  the next S samples in [-1, 1]
             audio_context    float32 [1, K]  state: the last K samples seen
             feature_buffer   float32 [1, F, bins]  state: the last F frames
    outputs  probabilities    float32 [1, C]  for the latest clip (the last
                                              L samples, zeros before the
                                              stream start)
             new_audio_context, new_feature_buffer   the state to feed back

Any input other than `audio` is a state; its new value is the output named
`new_<name>`. See docs/streaming.md for how the model works.

* `StreamingTFLiteModel(path)`: the model with its labels and sample rate;
  `step(samples)` runs one stride, `process(chunk)` takes any number of
  samples, `reset()` starts a new stream.
* `StreamingTFLiteModel.predict_fn()` / `ClipAdaptor`: the model as
  `streaming.StreamingRecognizer` (and `calibration.score_array`,
  `load_model`, the live app, ...) takes it. At the model's own stride the
  recogniser runs it through `StrideSteps` (the recogniser's step
  interface, `ScoreSteps`): one call a stride, with a state of its own for
  each stream; at any other stride it is a whole-clip `predict_fn` that
  re-primes the model at each clip.

Like `inference.Recognizer`, one interpreter is not thread-safe: use one
model per thread (several streams may share it from one thread: each
`StrideSteps` keeps its own state).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from kws_jax import audio_io
from kws_jax.runtime import inference

AUDIO_INPUT = 'audio'
OUTPUT_NAME = 'probabilities'
STATE_OUTPUT_PREFIX = 'new_'
SIGNATURE_KEY = 'serving_default'
# Clip length when no config beside the model gives `clip_duration_ms`.
DEFAULT_CLIP_DURATION_MS = 1000.0


def _signature(interpreter) -> dict[str, dict[str, int]] | None:
  """{'inputs': {name: tensor index}, 'outputs': {...}} of serving_default.

  (Or of the only signature, whatever its key.) None without signatures.
  """
  keys = list(interpreter.get_signature_list())
  key = SIGNATURE_KEY if SIGNATURE_KEY in keys else (
      keys[0] if len(keys) == 1 else None)
  if key is None:
    return None
  runner = interpreter.get_signature_runner(key)
  return {'inputs': {n: d['index'] for n, d in
                     runner.get_input_details().items()},
          'outputs': {n: d['index'] for n, d in
                      runner.get_output_details().items()}}


def is_streaming_model(model_path: str | os.PathLike[str]) -> bool:
  """True when the `.tflite` file has the streaming signature above.

  False for a missing or unreadable file too (the caller's loader reports
  those).
  """
  try:
    interpreter = inference.interpreter_class()(
        model_path=os.fspath(model_path))
    signature = _signature(interpreter)
  except (ValueError, RuntimeError, OSError):
    return False
  return bool(signature) and AUDIO_INPUT in signature['inputs'] and any(
      name.startswith(STATE_OUTPUT_PREFIX) for name in signature['outputs'])


class StreamingInterpreter:
  """One interpreter of a streaming model and its state.

  Attributes:
    stride_samples: S, samples per call.
    num_classes: C.
    state_names: the state inputs, sorted.
  """

  def __init__(self, interpreter, name: str = 'the model'):
    """Finds the signature's tensors; the state starts at zeros.

    Args:
      interpreter: a LiteRT (or tf.lite) `Interpreter`.
      name: for error messages (the file).

    Raises:
      inference.ModelError: the model has not the streaming signature.
    """
    self._interpreter = interpreter
    self._interpreter.allocate_tensors()
    signature = _signature(interpreter)
    expected = (f"expected a streaming model (tflite_export.convert "
                f"--streaming) whose signature has inputs '{AUDIO_INPUT}' and "
                f"states X, outputs '{OUTPUT_NAME}' and '"
                f"{STATE_OUTPUT_PREFIX}X' for each state")
    if not signature:
      raise inference.ModelError(f'{name} has no signature; {expected}.')
    inputs, outputs = signature['inputs'], signature['outputs']
    states = sorted(n for n in inputs if n != AUDIO_INPUT)
    if (AUDIO_INPUT not in inputs or OUTPUT_NAME not in outputs or
        not states or any(STATE_OUTPUT_PREFIX + n not in outputs
                          for n in states)):
      raise inference.ModelError(
          f'{name} has inputs {sorted(inputs)} and outputs '
          f'{sorted(outputs)}; {expected}.')
    details = {d['index']: d for d in interpreter.get_tensor_details()}
    self._audio = inputs[AUDIO_INPUT]
    self._output = outputs[OUTPUT_NAME]
    audio_shape = [int(n) for n in details[self._audio]['shape']]
    if len(audio_shape) != 2 or audio_shape[0] != 1:
      raise inference.ModelError(
          f'{name}: audio input {audio_shape}; expected [1, stride_samples].')
    self.stride_samples = audio_shape[1]
    self.num_classes = int(details[self._output]['shape'][-1])
    self.state_names = states
    self._state_in = {n: inputs[n] for n in states}
    self._state_out = {n: outputs[STATE_OUTPUT_PREFIX + n] for n in states}
    self._zero_state = {
        n: np.zeros(details[i]['shape'], np.dtype(details[i]['dtype']))
        for n, i in self._state_in.items()}
    self.state = self.zero_state()

  def zero_state(self) -> dict[str, np.ndarray]:
    """All-zero state arrays, by name."""
    return {n: v.copy() for n, v in self._zero_state.items()}

  @property
  def state_shapes(self) -> dict[str, tuple[int, ...]]:
    return {n: v.shape for n, v in self._zero_state.items()}

  def run(self, samples: np.ndarray) -> np.ndarray:
    """Feeds S samples (float32 [S]); returns probabilities float32 [C].

    Advances `state`.
    """
    interpreter = self._interpreter
    interpreter.set_tensor(
        self._audio, np.asarray(samples, np.float32).reshape(
            1, self.stride_samples))
    for n, index in self._state_in.items():
      interpreter.set_tensor(index, self.state[n])
    interpreter.invoke()
    # get_tensor copies, so the new state survives the next invoke.
    self.state = {n: interpreter.get_tensor(i)
                  for n, i in self._state_out.items()}
    return interpreter.get_tensor(self._output)[0]


class StreamingTFLiteModel:
  """A streaming TFLite model with its labels: a stream in, scores out.

  After `reset()` the model has "heard" silence: every output is the
  non-streaming model's probabilities on the last `clip_samples` samples of
  the stream, with zeros before its start (so even the first outputs, before
  a whole clip has arrived, are those of a zero-padded clip).

  Attributes:
    model_path, labels_path, labels: as for `inference.Recognizer`.
    sample_rate: Hz (from the config beside the model, else 16000).
    clip_samples: L, the clip the scores are for (from the config's
      `clip_duration_ms`, else 1000 ms).
    stride_samples: S, samples per model call.
    clip_stride_ms: S in ms.
    samples_seen: stream samples fed since the last reset.
    calls: model calls since the object was made (for tests, benchmarks).
  """

  def __init__(self, model_path: str | os.PathLike[str],
               labels_path: str | os.PathLike[str] | None = None,
               num_threads: int = 1):
    """Loads the model and its labels and computes the silence state.

    Raises:
      inference.ModelError: a file is missing or invalid, or the model is
        not a streaming model.
    """
    self.model_path = os.fspath(model_path)
    if not os.path.isfile(self.model_path):
      raise inference.ModelError(f'Model file {self.model_path} not found.')
    self.labels_path = (os.fspath(labels_path) if labels_path is not None
                        else inference.default_labels_path(self.model_path))
    self.labels = inference.read_labels(self.labels_path)
    config = {}
    found = inference.config_path(self.model_path)
    if found is not None:
      config = inference.read_config(found)
    self.config = config or None
    self.sample_rate = int(config.get('sample_rate',
                                      inference.DEFAULT_SAMPLE_RATE))
    self.clip_samples = audio_io.samples_per_clip(
        self.sample_rate,
        float(config.get('clip_duration_ms', DEFAULT_CLIP_DURATION_MS)))
    try:
      interpreter = inference.interpreter_class()(
          model_path=self.model_path, num_threads=num_threads)
    except (ValueError, RuntimeError) as e:
      raise inference.ModelError(f'Model file {self.model_path} is not a '
                                 f'usable TFLite model: {e}') from e
    self._runner = StreamingInterpreter(interpreter, self.model_path)
    if self._runner.num_classes != len(self.labels):
      raise inference.ModelError(
          f'Labels file {self.labels_path} lists {len(self.labels)} labels '
          f'but model {self.model_path} has {self._runner.num_classes} '
          'outputs; use the labels file written with this model.')
    self.stride_samples = self._runner.stride_samples
    if self.stride_samples > self.clip_samples:
      raise inference.ModelError(
          f'Model {self.model_path}: stride of {self.stride_samples} samples '
          f'is longer than the clip ({self.clip_samples}).')
    self.clip_stride_ms = self.stride_samples * 1000.0 / self.sample_rate
    self.calls = 0
    self._silence = self._silence_state()
    self.reset()

  @property
  def num_classes(self) -> int:
    return len(self.labels)

  @property
  def state_shapes(self) -> dict[str, tuple[int, ...]]:
    """Shape of each state input, by name."""
    return self._runner.state_shapes

  @property
  def state(self) -> dict[str, np.ndarray]:
    """The current state arrays, by input name (copies are not made)."""
    return self._runner.state

  def _silence_state(self) -> dict[str, np.ndarray]:
    """The state after a whole clip of zeros.

    The zero state holds all-zero features, which are not the features of
    silence (a log spectrum of silence is the log floor); running zeros
    through once fills the buffers with what silence gives.
    """
    self._runner.state = self._runner.zero_state()
    zeros = np.zeros(self.stride_samples, np.float32)
    # ceil(L / S) strides compute every frame of a clip at least once.
    for _ in range(-(-self.clip_samples // self.stride_samples)):
      self._run(zeros)
    return {n: v.copy() for n, v in self._runner.state.items()}

  def reset(self) -> None:
    """Starts a new stream, as if it followed silence."""
    self._runner.state = {n: v.copy() for n, v in self._silence.items()}
    self._pending = np.zeros(0, np.float32)
    self.samples_seen = 0

  def _run(self, samples: np.ndarray) -> np.ndarray:
    self.calls += 1
    return self._runner.run(samples)

  def silence_state(self) -> dict[str, np.ndarray]:
    """A copy of the state after silence, where every stream starts."""
    return {n: v.copy() for n, v in self._silence.items()}

  def run_stride(self, samples: np.ndarray, state: dict[str, np.ndarray]
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Runs one stride from `state`, leaving the model's own stream as it is.

    For streams that share the model (`StrideSteps`), each with its state.

    Args:
      samples: float32 [S].
      state: the state arrays by name, as `silence_state` gives them.

    Returns:
      (probabilities float32 [C], the state after the stride).
    """
    own = self._runner.state
    self._runner.state = state
    try:
      scores = self._run(samples)
      return scores, self._runner.state
    finally:
      self._runner.state = own

  def step(self, samples: np.ndarray) -> np.ndarray:
    """Feeds exactly one stride, float32 [S]; returns probabilities [C].

    The scores are for the clip of the last `clip_samples` samples.
    """
    samples = inference.to_float_audio(samples).reshape(-1)
    if samples.shape[0] != self.stride_samples or self._pending.size:
      raise ValueError(
          f'step() takes {self.stride_samples} samples with nothing pending '
          f'from process(); got {samples.shape[0]} with '
          f'{self._pending.size} pending.')
    self.samples_seen += self.stride_samples
    return self._run(samples)

  def process(self, chunk: np.ndarray) -> np.ndarray:
    """Feeds any number of samples; returns float32 [N, C], one row a stride.

    A remainder shorter than a stride is kept for the next call, so the
    results do not depend on how the audio is chunked. Row i is for the
    clip ending after the i-th complete stride of this call.
    """
    chunk = inference.to_float_audio(chunk).reshape(-1)
    audio = np.concatenate([self._pending, chunk]) if self._pending.size \
        else chunk
    count = audio.shape[0] // self.stride_samples
    rows = []
    for i in range(count):
      rows.append(self._run(
          audio[i * self.stride_samples:(i + 1) * self.stride_samples]))
    self._pending = audio[count * self.stride_samples:].copy()
    self.samples_seen += count * self.stride_samples
    if not rows:
      return np.zeros((0, self.num_classes), np.float32)
    return np.stack(rows).astype(np.float32)

  def predict_fn(self) -> ClipAdaptor:
    """The model as `streaming.StreamingRecognizer` takes it."""
    return ClipAdaptor(self)


class StrideSteps:
  """A streaming model run along one stream, one call a stride.

  The recogniser's step interface (`streaming.ScoreSteps`) for a streaming
  model: `push` feeds the stream and returns, for each stride that completes
  a clip, (the clip's first sample, its scores), the clips that
  `streaming.StreamingRecognizer` would cut from the stream at the model's
  stride, [k * S, k * S + L). The stream starts after silence with
  -L mod S zeros before it, so that every S-th sample ending a stride ends
  such a clip; each clip is then scored after exactly the samples a
  whole-clip re-prime (`ClipAdaptor.__call__`) would feed, and the scores
  are the same. The state is this object's own, so several streams can
  share one model (from one thread).
  """

  def __init__(self, model: StreamingTFLiteModel):
    self._model = model
    self._pad = -model.clip_samples % model.stride_samples
    self.reset()

  def reset(self) -> None:
    """Starts a new stream."""
    self._state = self._model.silence_state()
    self._pending = np.zeros(self._pad, np.float32)
    self._fed = 0  # Samples run through the model, the leading zeros too.

  def push(self, chunk: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Adds samples, float32 [n]; returns (clip start, scores [C]) per clip.

    A remainder shorter than a stride is kept for the next call.
    """
    chunk = np.asarray(chunk, np.float32).reshape(-1)
    audio = np.concatenate([self._pending, chunk])
    stride, clip = self._model.stride_samples, self._model.clip_samples
    count = audio.shape[0] // stride
    results = []
    for i in range(count):
      scores, self._state = self._model.run_stride(
          audio[i * stride:(i + 1) * stride], self._state)
      self._fed += stride
      start = self._fed - self._pad - clip
      if start >= 0:
        results.append((start, np.asarray(scores, np.float32).reshape(-1)))
    self._pending = audio[count * stride:].copy()
    return results


class ClipAdaptor:
  """A streaming model as `streaming.StreamingRecognizer` takes a model.

  The recogniser asks a model for its own steps along a stream
  (`steps(clip_samples, stride_samples)`). At the model's clip and stride
  these are `StrideSteps`: one model call a stride. At another stride there
  are none (`steps` gives None, and a warning is logged once): the
  recogniser then cuts the clips itself and calls the adaptor on each, which
  re-primes the model: resets it and feeds it ceil(L / S) strides (zeros
  first, up to a multiple of S, then the clip), for the same scores, more
  slowly; `reprimes` counts these. Either way the scores equal the
  non-streaming model's on the same clip up to rounding (see
  docs/streaming.md).
  """

  def __init__(self, model: StreamingTFLiteModel):
    self.model = model
    self.reprimes = 0
    self._warned = False

  def steps(self, clip_samples: int, stride_samples: int
            ) -> StrideSteps | None:
    """The model's own steps for this clip and stride, if it has them."""
    model = self.model
    if (clip_samples, stride_samples) == (model.clip_samples,
                                          model.stride_samples):
      return StrideSteps(model)
    if clip_samples == model.clip_samples and not self._warned:
      self._warned = True
      logging.warning(
          'The recognizer\'s stride (%d samples) is not the streaming '
          'model\'s (%g ms); each clip re-primes the model (correct but '
          'slow). Run the recognizer with clip_stride_ms=%g.', stride_samples,
          model.clip_stride_ms, model.clip_stride_ms)
    return None

  def __call__(self, clip: np.ndarray) -> np.ndarray:
    """Scores one whole clip, float32 [L], by re-priming the model."""
    model = self.model
    clip = inference.to_float_audio(clip).reshape(-1)
    length, stride = model.clip_samples, model.stride_samples
    if clip.shape[0] != length:
      raise ValueError(f'Expected a clip of {length} samples, got '
                       f'{clip.shape[0]}.')
    self.reprimes += 1
    model.reset()
    pad = -length % stride
    scores = model.process(np.concatenate(
        [np.zeros(pad, np.float32), clip]))
    return scores[-1]
