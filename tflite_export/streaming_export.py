"""Streaming TFLite export: one stride of audio and the state in, scores out.

The non-streaming model (`convert.export_tflite`) takes a whole clip of L
samples. A streaming model takes only the S samples that arrived since the
last call (S = `clip_stride_ms`, a multiple of the front end's hop) plus its
state, and returns the probabilities for the latest clip and the new state.
The state is external, as in google-research's kws_streaming: the caller
feeds each call's new state into the next call.

    inputs   audio             float32 [1, S]
             audio_context     float32 [1, K]         the last K samples
             feature_buffer    float32 [1, F, bins]   the last F frames
    outputs  probabilities     float32 [1, C]
             new_audio_context, new_feature_buffer

With hop H, window W, clip L and r = (L - W) mod H (samples at the end of a
clip that no frame uses), K = W - H + r. Each call frames the K + S samples
of context plus new audio, which gives exactly m = S / H new feature frames,
the ones a non-streaming model computes for the newest m frames of the clip
ending now; they are shifted into the F-frame buffer (F frames per clip),
and the backbone runs on the whole buffer. So the front end is incremental
(m frames per call instead of F) and the backbone runs once per call on a
full clip of features, as before; it is not streamed layer by layer. That
works for every registered architecture, since the backbone is used as it
is. The output after a call equals the non-streaming model's probabilities
on the last L samples of the stream (zeros before its start) up to
rounding; the export checks that on a test stream.

`kws_jax.runtime.streaming_inference.StreamingTFLiteModel` runs such a
model. The conversion and the files written are those of the clip export
(`tflite_model`); `convert --streaming` calls this module, which imports
only `tflite_model`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from absl import logging
from ai_edge_litert.interpreter import Interpreter
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kws_jax import audio_io
from kws_jax import features
from kws_jax.runtime import streaming_inference
from tflite_export import tflite_model

AUDIO_INPUT = streaming_inference.AUDIO_INPUT
OUTPUT_NAME = streaming_inference.OUTPUT_NAME
CONTEXT_STATE = 'audio_context'
FEATURE_STATE = 'feature_buffer'
NEW = streaming_inference.STATE_OUTPUT_PREFIX
# The tutorial's streaming cadence, used (rounded down to whole hops) when
# no clip_stride_ms is given.
DEFAULT_CLIP_STRIDE_MS = 30.0
# Calls after warm-up the export compares with the non-streaming model.
_VERIFY_CALLS = 20


@dataclasses.dataclass(frozen=True)
class StreamingLayout:
  """Sizes of a streaming model, all in samples or frames.

  Attributes:
    sample_rate: Hz.
    clip_samples: L.
    stride_samples: S, new samples per call.
    window_samples: W, the front end's window.
    hop_samples: H, the front end's stride.
    frames_per_stride: m = S / H, new frames per call.
    context_samples: K, audio kept from call to call.
    num_frames: F, frames per clip (the feature buffer).
    feature_bins: features per frame.
    extra_frames: frames computed from the context and dropped (1 only when
      the window equals the hop and L - W is a whole number of hops, where
      K would otherwise be 0).
  """
  sample_rate: int
  clip_samples: int
  stride_samples: int
  window_samples: int
  hop_samples: int
  frames_per_stride: int
  context_samples: int
  num_frames: int
  feature_bins: int
  extra_frames: int = 0

  @property
  def clip_stride_ms(self) -> float:
    return self.stride_samples * 1000.0 / self.sample_rate

  def state_shapes(self) -> dict[str, tuple[int, ...]]:
    return {CONTEXT_STATE: (1, self.context_samples),
            FEATURE_STATE: (1, self.num_frames, self.feature_bins)}

  def to_dict(self) -> dict[str, Any]:
    return {**dataclasses.asdict(self), 'clip_stride_ms': self.clip_stride_ms}


def default_clip_stride_ms(config: ml_collections.ConfigDict) -> float:
  """The largest whole number of hops not above 30 ms (at least one hop)."""
  hop = float(config.window_stride_ms)
  return hop * max(1, math.floor(DEFAULT_CLIP_STRIDE_MS / hop + 1e-9))


def streaming_layout(config: ml_collections.ConfigDict,
                     clip_stride_ms: float | None = None) -> StreamingLayout:
  """Works out and checks the sizes for `config` and a stride.

  Args:
    config: the training config (front-end fields).
    clip_stride_ms: ms of audio per call; None: `default_clip_stride_ms`.

  Raises:
    ValueError: the stride is not a whole number of front-end hops, or
      brings more new frames than a clip has.
  """
  if clip_stride_ms is None:
    clip_stride_ms = default_clip_stride_ms(config)
  rate = int(config.sample_rate)
  clip = audio_io.samples_per_clip(config.sample_rate, config.clip_duration_ms)
  window = audio_io.samples_per_clip(rate, config.window_size_ms)
  hop = audio_io.samples_per_clip(rate, config.window_stride_ms)
  stride = audio_io.samples_per_clip(rate, clip_stride_ms)
  if stride <= 0 or stride % hop:
    raise ValueError(
        f'clip_stride_ms={clip_stride_ms:g} ({stride} samples) must be a '
        f'positive multiple of window_stride_ms={config.window_stride_ms:g} '
        f'({hop} samples), e.g. {default_clip_stride_ms(config):g}: each '
        'call computes whole feature frames.')
  num_frames = features.num_frames(config)
  if stride > num_frames * hop:
    raise ValueError(
        f'clip_stride_ms={clip_stride_ms:g} is too long: a call may bring at '
        f'most the {num_frames} frames of one clip, '
        f'{num_frames * hop * 1000 / rate:g} ms.')
  unused_tail = (clip - window) % hop
  context = window - hop + unused_tail
  extra = 0
  if context == 0:  # Window == hop: keep one hop, drop its frame.
    context, extra = hop, 1
  return StreamingLayout(
      sample_rate=rate, clip_samples=clip, stride_samples=stride,
      window_samples=window, hop_samples=hop,
      frames_per_stride=stride // hop, context_samples=context,
      num_frames=num_frames, feature_bins=int(config.feature_bin_count),
      extra_frames=extra)


def streaming_step_fn(eval_graphdef: nnx.GraphDef, params: Any,
                      batch_stats: Any, layout: StreamingLayout
                      ) -> Callable[..., tuple[jax.Array, ...]]:
  """Returns the step `f(audio, audio_context, feature_buffer)`.

  `audio` float32 [1, S], `audio_context` [1, K], `feature_buffer`
  [1, F, bins] -> (probabilities [1, C], new context, new buffer). The
  parameters are closed over as host numpy constants, and the front end runs
  under `tflite_model.FRONTEND_SCOPE` with the spectrum as matrix products,
  as in `tflite_model.probabilities_fn`.
  """
  params, batch_stats = jax.device_get((params, batch_stats))
  m, k = layout.frames_per_stride, layout.context_samples

  def step(audio, audio_context, feature_buffer):
    model = nnx.merge(eval_graphdef, params, batch_stats)
    with jax.named_scope(tflite_model.FRONTEND_SCOPE):
      recent = jnp.concatenate([audio_context, audio], axis=1)  # [1, K + S]
      new_frames = model.features(recent, 'matrices')[:, layout.extra_frames:]
    buffer = jnp.concatenate([feature_buffer[:, m:], new_frames], axis=1)
    logits = model.decide(model.classify(buffer))
    probabilities = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return probabilities, recent[:, -k:], buffer

  return step


def test_stream(num_samples: int, sample_rate: int, seed: int = 0
                ) -> np.ndarray:
  """float32 [num_samples]: a gliding tone and bursts in faint noise.

  Noise throughout on purpose (see tests/test_convert.py `_clips`): a
  noiseless signal has spectral bins of pure rounding error whose log
  features differ between XLA and TFLite.
  """
  rng = np.random.default_rng(seed)
  t = np.arange(num_samples) / sample_rate
  tone = 0.3 * np.sin(2 * np.pi * (300 + 200 * t) * t)
  bursts = np.where((t % 0.7) < 0.25, 0.2, 0.0) * rng.standard_normal(
      num_samples)
  audio = tone + bursts + 0.01 * rng.standard_normal(num_samples)
  return np.clip(audio, -1, 1).astype(np.float32)


def clip_windows(stream: np.ndarray, layout: StreamingLayout) -> np.ndarray:
  """The clip each streaming call scores: float32 [N, L].

  Row i is the last L samples after call i + 1 (S (i + 1) samples fed), with
  zeros before the stream start; N = len(stream) // S.
  """
  length, stride = layout.clip_samples, layout.stride_samples
  padded = np.concatenate([np.zeros(length, np.float32), stream])
  count = stream.shape[0] // stride
  return np.stack([padded[(i + 1) * stride:(i + 1) * stride + length]
                   for i in range(count)])


def run_stream(model_content: bytes, stream: np.ndarray) -> np.ndarray:
  """Runs a streaming TFLite model from the zero state: float32 [N, C]."""
  runner = streaming_inference.StreamingInterpreter(
      Interpreter(model_content=model_content))
  stride = runner.stride_samples
  return np.stack([runner.run(stream[i * stride:(i + 1) * stride])
                   for i in range(stream.shape[0] // stride)])


def warm_up_calls(layout: StreamingLayout) -> int:
  """Calls from the zero state until every buffered frame is the stream's.

  The zero context stands for zeros before the stream start, as in
  `clip_windows`, but the zero feature buffer is not the features of
  silence; after ceil(F / m) calls none of it is left.
  """
  return -(-layout.num_frames // layout.frames_per_stride)


def export_streaming_tflite(params: Any,
                            batch_stats: Any,
                            eval_graphdef: nnx.GraphDef,
                            config: ml_collections.ConfigDict,
                            labels: list[str],
                            output_path: str,
                            *,
                            clip_stride_ms: float | None = None,
                            verify: bool = True,
                            metadata: dict[str, Any] | None = None
                            ) -> tflite_model.ExportResult:
  """Converts a model to a streaming TFLite model (see the module docstring).

  Writes the same files as the clip export (`tflite_model.write_export`:
  the model, `<stem>_labels.txt`, `_config.json`, `_export.json`, the last
  with a 'streaming' entry holding the layout). Float32 only.

  Args:
    params, batch_stats, eval_graphdef, config, labels, output_path,
      metadata: as for `convert.export_tflite`.
    clip_stride_ms: audio per call, a multiple of `window_stride_ms`; None:
      `default_clip_stride_ms(config)`.
    verify: stream test audio through the TFLite model and compare the
      `_VERIFY_CALLS` outputs after warm-up with the JAX non-streaming
      model's on the same clips (`parity_max_abs_diff`; above 1e-3 is logged
      as a warning).

  Returns:
    The paths written and the parity.

  Raises:
    ConversionError: jax2tf or the TFLite converter failed, or the model
      does not run.
    ValueError: a bad stride.
  """
  architecture = config.get('model_architecture', '?')
  layout = streaming_layout(config, clip_stride_ms)
  step = streaming_step_fn(eval_graphdef, params, batch_stats, layout)
  shapes = layout.state_shapes()
  inputs = [tflite_model.Tensor(AUDIO_INPUT, (1, layout.stride_samples))] + [
      tflite_model.Tensor(name, shape) for name, shape in shapes.items()]
  outputs = [tflite_model.Tensor(OUTPUT_NAME, (1, len(labels)))] + [
      tflite_model.Tensor(NEW + name, shape)
      for name, shape in shapes.items()]
  model_content = tflite_model.to_tflite(
      step, inputs, [t.name for t in outputs], architecture=architecture,
      description=(f'a streaming TFLite model ({layout.clip_stride_ms:g} ms '
                   'a call)'))

  start = warm_up_calls(layout)
  stream = test_stream((start + _VERIFY_CALLS) * layout.stride_samples,
                       layout.sample_rate)
  try:
    got = run_stream(model_content, stream)
  except Exception as e:  # pylint: disable=broad-except
    raise tflite_model.conversion_error(
        f'The streaming TFLite model of architecture {architecture!r} does '
        'not run', e) from e
  diff = None
  if verify:
    probabilities = tflite_model.probabilities_fn(eval_graphdef, params,
                                                  batch_stats)
    want = np.asarray(jax.jit(probabilities)(
        clip_windows(stream, layout)[start:]))
    diff = float(np.max(np.abs(got[start:] - want)))
    if not diff < tflite_model.PARITY_WARNING:
      logging.warning('The streaming TFLite model of %r differs from the '
                      'non-streaming JAX model by up to %g on a test stream.',
                      architecture, diff)
  return tflite_model.write_export(
      output_path, model_content, config, labels, inputs=inputs,
      outputs=outputs, parity_max_abs_diff=diff,
      details={'streaming': layout.to_dict(),
               'parity_check': (f'{_VERIFY_CALLS} calls after warm-up on a '
                                'test stream vs the JAX non-streaming model '
                                'on the same clips')},
      metadata=metadata)
