r"""Converts a trained checkpoint to a TFLite model: raw audio in, probabilities out.

  python -m tflite_export.convert --workdir=/tmp/kws --output=/tmp/kws/model.tflite
  python -m tflite_export.convert --checkpoint=/tmp/kws/checkpoints/1200 \
      --output=model.tflite --quantize=int8 --android_signature
  python -m tflite_export.convert --workdir=/tmp/kws \
      --output=/tmp/kws/stream.tflite --streaming --clip_stride_ms=30

`--workdir` uses the run's best checkpoint (by validation accuracy), else its
latest; `--checkpoint` names a step directory (or a checkpoints directory /
workdir, meaning the same choice). The model is rebuilt from the config stored
in the checkpoint. The front end is part of the model, so the `.tflite` file
takes audio:

    default:              audio float32 [1, L] in [-1, 1] -> probabilities
                          float32 [1, C] (softmax inside)
    --android_signature:  float32 [L, 1], int32 [1] -> float32 [1, C]; see
                          `export_tflite`

Path: `jax2tf.convert` (native serialization, its default) -> SavedModel in a
temporary folder -> `TFLiteConverter.from_saved_model` with TFLite builtin
ops only (no Flex/TF ops, so the model runs on LiteRT and on the Android
example app). Written beside `--output` (each file atomically):

    <stem>.tflite (the --output path)  the model
    <stem>_labels.txt                   one label a line, output order
    <stem>_config.json                  the training config
    <stem>_export.json                  where it came from, shapes, size and
                                        measured figures

`--streaming` writes a streaming model instead (float32; see
`tflite_export/streaming_export.py` and docs/streaming.md): each call takes
`--clip_stride_ms` of new audio (a multiple of the config's
window_stride_ms; default the largest such stride up to 30 ms) and the model
state, and returns the probabilities of the latest clip and the new state.

`--quantize=int8`: post-training quantization of the backbone (weights and
activations to int8, calibrated on `--representative_clips` clips drawn from
the training split of the stored data config); the front end (framing, FFT,
mel/DCT, log) stays float, and so do the model's input and output. The
float model is written too, beside it as `<stem>_float.tflite` (with its
labels and config); both are scored on the test split with
`kws_jax.inference.Recognizer`, and the change is reported.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import warnings
from typing import Any, Callable, Iterator

from absl import app
from absl import flags
from absl import logging
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kws_jax import audio_io
from kws_jax import checkpoint
from kws_jax import features
from kws_jax import log_lines
from kws_jax import workdir as workdir_lib

QUANTIZE_MODES = ('', 'int8')
# Name scope of the front-end ops in the exported program.
FRONTEND_SCOPE = 'frontend'
# Input/output names. The Android example feeds inputs by position; the names
# below were chosen (and are checked after every conversion, see
# `_check_android_inputs`) so that the converter puts audio at index 0 and
# the sample rate at index 1: it orders a SavedModel signature's inputs by
# an internal map, not by argument order or name.
AUDIO_INPUT = 'audio'
OUTPUT_NAME = 'probabilities'
ANDROID_AUDIO_INPUT = 'input_audio'
ANDROID_RATE_INPUT = 'input_sample_rate'
ANDROID_OUTPUT_NAME = 'labels_softmax'
# Above this difference from JAX a float export is reported as suspect.
_PARITY_WARNING = 1e-3


class ConversionError(RuntimeError):
  """The model could not be converted; the message names the architecture."""


@dataclasses.dataclass
class ExportResult:
  """What `export_tflite` wrote.

  Attributes:
    model_path: the `.tflite` file.
    labels_path: `<stem>_labels.txt`.
    config_path: `<stem>_config.json`.
    export_path: `<stem>_export.json`.
    size_bytes: of the model file.
    parity_max_abs_diff: max |TFLite - JAX| over the probabilities of a
      fixed random clip (expect ~1e-7 for float, ~1e-2 for int8); None
      when not verified.
    info: the contents of `<stem>_export.json`.
  """
  model_path: str
  labels_path: str
  config_path: str
  export_path: str
  size_bytes: int
  parity_max_abs_diff: float | None
  info: dict[str, Any]


def sibling_paths(output_path: str) -> dict[str, str]:
  """The files beside `output_path`: written ('labels', 'config', 'export'),
  and the streaming settings a calibration wrote for an earlier model
  ('smoothing', `kws_jax.streaming.smoothing_path`; see
  `remove_stale_smoothing`)."""
  stem = os.path.splitext(os.path.abspath(output_path))[0]
  return {'labels': f'{stem}_labels.txt', 'config': f'{stem}_config.json',
          'export': f'{stem}_export.json',
          'smoothing': f'{stem}_smoothing.json'}


def remove_stale_smoothing(paths: dict[str, str]) -> None:
  """Deletes the streaming settings chosen for the model a new one replaces.

  They were calibrated on the old model's scores; the tools would otherwise
  apply them to the new model without a word.
  """
  if os.path.exists(paths['smoothing']):
    os.remove(paths['smoothing'])
    logging.warning('Removed %s: its streaming settings were chosen for the '
                    'model this export replaces (choose new ones with '
                    'kws_jax.streaming_roc --write_smoothing).',
                    paths['smoothing'])


def clip_samples(config: ml_collections.ConfigDict) -> int:
  """L, samples per clip, from `sample_rate` and `clip_duration_ms`."""
  return features.ms_to_samples(config.clip_duration_ms, config.sample_rate)


def _hide_gpus_from_tf(tf) -> None:
  # Conversion runs on the CPU; TF must not take accelerator memory JAX uses.
  try:
    tf.config.set_visible_devices([], 'GPU')
  except (RuntimeError, ValueError):
    pass  # TF already initialized its devices.


def probabilities_fn(eval_graphdef: nnx.GraphDef, params: Any,
                     batch_stats: Any, *,
                     clip_audio: bool = False
                     ) -> Callable[[jax.Array], jax.Array]:
  """Returns `f(audio float32 [B, L]) -> probabilities float32 [B, C]`.

  Parameters are closed over as host numpy arrays, so they become constants
  of the exported program. The front end runs under the name scope
  `FRONTEND_SCOPE`, which names its ops in the TFLite model (see
  `_front_end_nodes`).

  Args:
    eval_graphdef: a `models.KWSModel` graph definition in eval mode.
    params: its `nnx.Param` state.
    batch_stats: its `nnx.BatchStat` state.
    clip_audio: clip the audio to [-1, 1] first (a no-op for valid audio).
      For int8 export: it gives the model input a first op that can be kept
      in float, so the raw audio is not quantized to 8 bits.
  """
  params, batch_stats = jax.device_get((params, batch_stats))

  def probabilities(audio: jax.Array) -> jax.Array:
    model = nnx.merge(eval_graphdef, params, batch_stats)
    with jax.named_scope(FRONTEND_SCOPE):
      if clip_audio:
        audio = jnp.clip(audio, -1.0, 1.0)
      features_ = model.features(audio)
    logits = model.classify(features_)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

  return probabilities


def _front_end_nodes(model_content: bytes) -> list[str]:
  """Output tensor names of a TFLite model's front-end ops.

  The front end is every op up to the last one named under FRONTEND_SCOPE;
  ops are stored in execution order, and the backbone only starts once the
  features exist. Some ops there do not carry the scope in their names
  (e.g. the FFT's padding), hence the positional rule.
  """
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  interpreter = Interpreter(model_content=model_content)
  names = {t['index']: t['name'] for t in interpreter.get_tensor_details()}
  outputs = [[names[i] for i in op['outputs']]
             for op in interpreter._get_ops_details()]  # pylint: disable=protected-access
  marker = f'/{FRONTEND_SCOPE}/'
  last = max((i for i, op_outputs in enumerate(outputs)
              if any(marker in name for name in op_outputs)), default=None)
  if last is None:
    return []
  return [name for op_outputs in outputs[:last + 1] for name in op_outputs]


def _quantize_backbone(converter, representative, architecture: str) -> bytes:
  """Post-training int8 quantization of the backbone; the front end stays float.

  Quantizing the front end would ruin it: 8-bit audio, and mel energies
  spanning many decades on one linear 8-bit scale (quiet bands become 0
  before the log). Measured on a random tiny_conv: probabilities off by up
  to 0.45 with everything quantized, 0.005 with a float front end. TFLite's
  quantization debugger calibrates once and quantizes with the front-end
  nodes on its deny list.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = representative
  debugger = tf.lite.experimental.QuantizationDebugger(
      converter=converter, debug_dataset=representative)
  front_end = _front_end_nodes(debugger.calibrated_model)
  if not front_end:
    logging.warning('No front-end ops found by name in %r; quantizing the '
                    'whole model (expect a loss of accuracy).', architecture)
  debugger.options = tf.lite.experimental.QuantizationDebugOptions(
      denylisted_nodes=front_end)
  return debugger.get_nondebug_quantized_model()


def _write_bytes_atomic(path: str, data: bytes) -> None:
  tmp = f'{path}.tmp-{os.getpid()}'
  try:
    with open(tmp, 'wb') as f:
      f.write(data)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _truncate(message: str, limit: int = 1500) -> str:
  return message if len(message) <= limit else message[:limit] + ' [...]'


def _check_android_inputs(interpreter, length: int) -> None:
  """Input 0 must be float32 [L, 1] audio and input 1 the int32 [1] rate."""
  inputs = interpreter.get_input_details()
  got = [(np.dtype(d['dtype']).name, [int(n) for n in d['shape']])
         for d in inputs]
  want = [('float32', [length, 1]), ('int32', [1])]
  if got != want:
    raise ConversionError(
        f'The Android signature came out with inputs {got} instead of '
        f'{want} in that order (the app feeds inputs by position); the '
        'converter ordered the inputs differently. Adjust ANDROID_*_INPUT in '
        'tflite_export/convert.py.')


def _run_tflite(model_content: bytes, audio: np.ndarray,
                sample_rate: int) -> np.ndarray:
  """Runs a converted model on one clip float32 [L]; returns [C]."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  interpreter = Interpreter(model_content=model_content)
  interpreter.allocate_tensors()
  for details in interpreter.get_input_details():
    if np.dtype(details['dtype']) == np.int32:
      value = np.full(details['shape'], sample_rate, np.int32)
    else:
      value = audio.reshape(details['shape']).astype(np.float32)
    interpreter.set_tensor(details['index'], value)
  interpreter.invoke()
  output = interpreter.get_output_details()[0]
  return interpreter.get_tensor(output['index'])[0]


def export_tflite(params: Any,
                  batch_stats: Any,
                  eval_graphdef: nnx.GraphDef,
                  config: ml_collections.ConfigDict,
                  labels: list[str],
                  output_path: str,
                  *,
                  quantize: str = '',
                  representative_audio: np.ndarray | None = None,
                  android_signature: bool = False,
                  verify: bool = True,
                  metadata: dict[str, Any] | None = None) -> ExportResult:
  """Converts a model to TFLite and writes it with its labels and config.

  Default signature: `audio` float32 [1, L] in [-1, 1] -> `probabilities`
  float32 [1, C], the softmax of the model's logits.

  `android_signature=True` matches TensorFlow's TFLite speech-commands
  Android example (tensorflow/examples, lite/examples/speech_commands/android,
  SpeechActivity.java): it calls `resizeInput(0, {RECORDING_LENGTH, 1})` and
  `resizeInput(1, {1})`, then `runForMultipleInputsOutputs({floatInputBuffer,
  sampleRateList}, {0: outputScores})` with `float[RECORDING_LENGTH][1]`
  audio (16-bit samples / 32767), `int[] {SAMPLE_RATE}` and
  `float[1][labels.size()]` scores, the layout of the tutorial's
  `conv_actions_frozen.tflite` (decoded_sample_data:0 / :1, labels_softmax).
  So this export has input 0 float32 [L, 1] (`input_audio`), input 1 int32
  [1] (`input_sample_rate`; accepted and ignored, the rate is fixed at
  training) and output 0 float32 [1, C] probabilities. L is 16000 for the
  app's defaults (16 kHz, 1000 ms); the input order is checked after
  conversion.

  Args:
    params: the model's `nnx.Param` state.
    batch_stats: its `nnx.BatchStat` state.
    eval_graphdef: the graph definition of the model in eval mode (dropout
      off, BatchNorm on running statistics), as from `train.create_model`.
    config: the training config (front-end fields and
      `model_architecture`); written to `<stem>_config.json`.
    labels: class names in output order; written to `<stem>_labels.txt`.
    output_path: the `.tflite` file to write; its folder is created.
    quantize: '' (float32) or 'int8' (post-training quantization; needs
      `representative_audio`).
    representative_audio: float32 [N, L] calibration clips for 'int8'.
    android_signature: use the Android example's inputs (see above).
    verify: run the TFLite model and the JAX model on a fixed random clip
      and record the largest difference (`parity_max_abs_diff`; a float
      model differing by more than 1e-3 is logged as a warning). Costs one
      JAX compilation; tests that compare on their own turn it off.
    metadata: extra entries for `<stem>_export.json` (e.g. the checkpoint).

  Returns:
    The paths written and the measured parity with JAX.

  Raises:
    ConversionError: jax2tf or the TFLite converter failed; the message names
      the architecture and the step that failed.
    ValueError: bad arguments.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top

  _hide_gpus_from_tf(tf)
  architecture = config.get('model_architecture', '?')
  if quantize not in QUANTIZE_MODES:
    raise ValueError(f'quantize={quantize!r}; choose one of {QUANTIZE_MODES}.')
  length = clip_samples(config)
  if quantize:
    if representative_audio is None or not len(representative_audio):
      raise ValueError('quantize="int8" needs representative_audio, float32 '
                       '[N, L] clips to calibrate the quantization ranges.')
    representative_audio = np.asarray(representative_audio, np.float32)
    if representative_audio.ndim != 2 or (
        representative_audio.shape[1] != length):
      raise ValueError(f'representative_audio must be [N, {length}], got '
                       f'{representative_audio.shape}.')

  probabilities = probabilities_fn(eval_graphdef, params, batch_stats,
                                   clip_audio=bool(quantize))
  # Serialize for the CPU whatever this host runs on, so an export made on a
  # GPU machine converts the same way.
  converted = jax2tf.convert(probabilities, with_gradient=False,
                             native_serialization_platforms=('cpu',))
  module = tf.Module()
  if android_signature:
    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([length, 1], tf.float32, name=ANDROID_AUDIO_INPUT),
        tf.TensorSpec([1], tf.int32, name=ANDROID_RATE_INPUT)])
    def serve(input_audio, input_sample_rate):
      del input_sample_rate  # Fixed at training; the app passes it anyway.
      return {ANDROID_OUTPUT_NAME: converted(
          tf.reshape(input_audio, [1, length]))}

    def representative() -> Iterator[dict[str, np.ndarray]]:
      for clip in representative_audio:
        yield {ANDROID_AUDIO_INPUT: clip.reshape(length, 1),
               ANDROID_RATE_INPUT: np.array([config.sample_rate], np.int32)}
  else:
    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([1, length], tf.float32, name=AUDIO_INPUT)])
    def serve(audio):
      return {OUTPUT_NAME: converted(audio)}

    def representative() -> Iterator[dict[str, np.ndarray]]:
      for clip in representative_audio:
        yield {AUDIO_INPUT: clip[None]}
  module.serve = serve

  started = time.time()
  with tempfile.TemporaryDirectory(prefix='kws_saved_model_') as saved_dir:
    try:
      concrete = serve.get_concrete_function()
      tf.saved_model.save(module, saved_dir,
                          signatures={'serving_default': concrete})
    except Exception as e:  # pylint: disable=broad-except
      raise ConversionError(
          f'Model architecture {architecture!r} could not be converted by '
          f'jax2tf (JAX -> TF SavedModel): {type(e).__name__}: '
          f'{_truncate(str(e))}') from e
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
      with warnings.catch_warnings():
        # Calibration runs TF's own deprecated tf.lite.Interpreter.
        warnings.filterwarnings('ignore', message='.*tf.lite.Interpreter')
        if quantize == 'int8':
          model_content = _quantize_backbone(converter, representative,
                                             architecture)
        else:
          model_content = converter.convert()
    except Exception as e:  # pylint: disable=broad-except
      raise ConversionError(
          f'Model architecture {architecture!r} could not be converted to '
          'TFLite with builtin ops only (SavedModel -> TFLite): '
          f'{type(e).__name__}: {_truncate(str(e))}') from e
  logging.info('Converted %r to TFLite in %.1f s (%d bytes).', architecture,
               time.time() - started, len(model_content))

  # Check the result against JAX on a fixed clip: a conversion that runs
  # but computes something else must not go unnoticed.
  probe = (0.1 * np.random.default_rng(0).standard_normal(length)).astype(
      np.float32)
  try:
    if android_signature:
      from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
      _check_android_inputs(Interpreter(model_content=model_content), length)
    got = _run_tflite(model_content, probe, config.sample_rate)
  except ConversionError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError(
        f'The TFLite model of architecture {architecture!r} does not run: '
        f'{type(e).__name__}: {_truncate(str(e))}') from e
  diff = None
  if verify:
    want = np.asarray(jax.jit(probabilities)(probe[None]))[0]
    diff = float(np.max(np.abs(got - want)))
    if not quantize and not diff < _PARITY_WARNING:
      logging.warning('The TFLite model of %r differs from JAX by up to %g '
                      'on a test clip.', architecture, diff)

  output_path = os.path.abspath(output_path)
  os.makedirs(os.path.dirname(output_path), exist_ok=True)
  paths = sibling_paths(output_path)
  config_dict = (config.to_dict() if hasattr(config, 'to_dict')
                 else dict(config))
  info = {
      'model_architecture': architecture,
      'quantize': quantize or 'none',
      'android_signature': bool(android_signature),
      'inputs': ([{'name': ANDROID_AUDIO_INPUT, 'dtype': 'float32',
                   'shape': [length, 1]},
                  {'name': ANDROID_RATE_INPUT, 'dtype': 'int32',
                   'shape': [1]}] if android_signature else
                 [{'name': AUDIO_INPUT, 'dtype': 'float32',
                   'shape': [1, length]}]),
      'outputs': [{'name': (ANDROID_OUTPUT_NAME if android_signature
                            else OUTPUT_NAME), 'dtype': 'float32',
                   'shape': [1, len(labels)]}],
      'sample_rate': int(config.sample_rate),
      'labels': list(labels),
      'size_bytes': len(model_content),
      'parity_max_abs_diff': diff,
      **(metadata or {}),
  }
  _write_bytes_atomic(output_path, model_content)
  remove_stale_smoothing(paths)
  workdir_lib.write_labels(paths['labels'], list(labels))
  workdir_lib.write_json(paths['config'], config_dict)
  workdir_lib.write_json(paths['export'], info)
  logging.info('Wrote %s, %s, %s and %s.', output_path, paths['labels'],
               paths['config'], paths['export'])
  return ExportResult(model_path=output_path, labels_path=paths['labels'],
                      config_path=paths['config'],
                      export_path=paths['export'],
                      size_bytes=len(model_content),
                      parity_max_abs_diff=diff, info=info)


def representative_clips(split: Any, count: int, seed: int = 0, *,
                         background: np.ndarray | None = None,
                         background_volume: float = 0.1) -> np.ndarray:
  """Draws `count` calibration clips from a training split.

  Clips are drawn without replacement (as far as the split allows) with the
  split's sampling weights, so words, unknown and silence come in the
  proportions training saw. Training's silence is an all-zero clip that the
  augmentation always mixes with background noise; calibrating on exact
  zeros instead would stretch the feature ranges to the log floor (about
  -250 for the first MFCC) and waste the int8 resolution, so all-zero clips
  get background noise here too, at a random volume up to
  `background_volume`.

  Args:
    split: an `input_pipeline.Split` (int16 audio [N, L], weight [N]).
    count: clips wanted.
    seed: for the draw.
    background: float32 [M] background noise (`Datasets.background`).
    background_volume: the augmentation's `background_volume`.

  Returns:
    float32 [min(count, N'), L] in [-1, 1], N' the clips with weight > 0.
  """
  weight = np.asarray(split.weight, np.float64)
  available = int(np.sum(weight > 0))
  if not available:
    raise ValueError('The training split has no clips to calibrate with.')
  rng = np.random.default_rng(seed)
  chosen = rng.choice(len(weight), size=min(count, available), replace=False,
                      p=weight / weight.sum())
  clips = split.audio[np.sort(chosen)].astype(np.float32) / (
      audio_io.PCM16_SCALE)
  length = clips.shape[1]
  if background is not None and len(background) >= length:
    for clip in clips:
      if not clip.any():
        start = rng.integers(0, len(background) - length + 1)
        clip[:] = (rng.uniform(0, background_volume) *
                   background[start:start + length])
  return np.clip(clips, -1.0, 1.0)


def convert_checkpoint(source: str,
                       output_path: str,
                       *,
                       quantize: str = '',
                       android_signature: bool = False,
                       data_dir: str | None = None,
                       num_representative: int = 200,
                       max_eval_clips: int = 0,
                       streaming: bool = False,
                       clip_stride_ms: float | None = None) -> ExportResult:
  """Exports a workdir's best (else latest) or a given checkpoint.

  Args:
    source: a workdir, checkpoints directory or step directory (see
      `kws_jax.evaluate.restore_model`).
    output_path: the `.tflite` file.
    quantize: '' or 'int8'.
    android_signature: see `export_tflite`.
    data_dir: for 'int8', the data folder to calibrate and score with instead
      of the stored config's (used as it is, nothing is downloaded).
    num_representative: calibration clips for 'int8'.
    max_eval_clips: for 'int8', score only the first this many test clips
      (0: all).
    streaming: write a streaming model (`streaming_export`); float only.
    clip_stride_ms: for `streaming`, audio per call (None: the default of
      `streaming_export.default_clip_stride_ms`).

  Returns:
    The export; for 'int8' its `info['test_accuracy']` holds the float and
    int8 test accuracy.
  """
  from kws_jax import evaluate  # pylint: disable=g-import-not-at-top
  if streaming and (quantize or android_signature):
    raise ValueError('A streaming export is float32 with its own signature; '
                     'it cannot be combined with quantize or '
                     'android_signature.')
  restored = evaluate.restore_model(source)
  metadata = {'checkpoint': restored.path, 'step': restored.step,
              'selected_by': restored.selected_by}
  if streaming:
    from tflite_export import streaming_export  # pylint: disable=g-import-not-at-top
    return streaming_export.export_streaming_tflite(
        restored.params, restored.batch_stats, restored.eval_graphdef,
        restored.config, restored.labels, output_path,
        clip_stride_ms=clip_stride_ms, metadata=metadata)
  if not quantize:
    return export_tflite(restored.params, restored.batch_stats,
                         restored.eval_graphdef, restored.config,
                         restored.labels, output_path,
                         android_signature=android_signature,
                         metadata=metadata)

  from kws_jax import inference  # pylint: disable=g-import-not-at-top
  from kws_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  data = input_pipeline.create_datasets(
      evaluate.data_config(restored.config, data_dir))
  if list(data.labels) != list(restored.labels):
    raise ValueError(
        f'The data gives labels {data.labels} but checkpoint {restored.path} '
        f'was trained on {restored.labels}.')
  calibration = representative_clips(
      data.train, num_representative, seed=int(restored.config.seed),
      background=data.background,
      background_volume=float(restored.config.background_volume))
  logging.info('Calibrating int8 quantization on %d training clips.',
               len(calibration))
  test = data.test
  if max_eval_clips:
    test = evaluate.head(test, max_eval_clips)
  scores = {}
  # The float model is kept beside the int8 one: a user compares them, and
  # may ship either.
  float_export = export_tflite(
      restored.params, restored.batch_stats, restored.eval_graphdef,
      restored.config, restored.labels, float_path(output_path),
      android_signature=android_signature, metadata=metadata)
  scores['float'] = evaluate.evaluate_split(
      inference.Recognizer(float_export.model_path), test)
  result = export_tflite(
      restored.params, restored.batch_stats, restored.eval_graphdef,
      restored.config, restored.labels, output_path, quantize='int8',
      representative_audio=calibration, android_signature=android_signature,
      metadata=metadata)
  scores['int8'] = evaluate.evaluate_split(
      inference.Recognizer(result.model_path), test)
  change = scores['int8'].accuracy - scores['float'].accuracy
  logging.info('Test accuracy: float %.2f%%, int8 %.2f%% (%+.2f points, '
               'N=%d); model %d -> %d bytes.', scores['float'].accuracy * 100,
               scores['int8'].accuracy * 100, change * 100,
               scores['int8'].count, float_export.size_bytes,
               result.size_bytes)
  result.info.update({
      'float_model': float_export.model_path,
      'float_size_bytes': float_export.size_bytes,
      'calibration_clips': len(calibration),
      'test_accuracy': {'float': scores['float'].accuracy,
                        'int8': scores['int8'].accuracy,
                        'change': change, 'count': scores['int8'].count},
  })
  workdir_lib.write_json(result.export_path, result.info)
  return result


def float_path(output_path: str) -> str:
  """Where `--quantize=int8` keeps the float model: `<stem>_float.tflite`."""
  stem, ext = os.path.splitext(output_path)
  return f'{stem}_float{ext or ".tflite"}'


def define_flags() -> None:
  """Defines the command-line flags; only when run as a program.

  Defined here rather than at import so that importing `export_tflite`
  (tests, notebooks, other tools) adds no global flags that could clash
  with another tool's (e.g. `--workdir` of `kws_jax.main`).
  """
  flags.DEFINE_string('workdir', None, 'Training workdir: export its best '
                      'checkpoint by validation accuracy, else its latest.')
  flags.DEFINE_string('checkpoint', None, 'A checkpoint step directory '
                      '(<workdir>/checkpoints/<step>) to export instead.')
  flags.DEFINE_string('output', None, 'The .tflite file to write; labels, '
                      'config and export info go beside it.')
  flags.DEFINE_enum('quantize', '', QUANTIZE_MODES, "'' (float32) or 'int8' "
                    '(post-training quantization on training clips).')
  flags.DEFINE_bool('android_signature', False, "Use the TF speech-commands "
                    "Android example's inputs: float32 [L, 1] audio and int32 "
                    '[1] sample rate.')
  flags.DEFINE_string('data_dir', None, 'int8 only: the data folder to '
                      "calibrate and score with instead of the checkpoint "
                      "config's.")
  flags.DEFINE_integer('representative_clips', 200,
                       'int8 only: calibration clips.')
  flags.DEFINE_integer('max_eval_clips', 0, 'int8 only: score the float and '
                       'int8 models on at most this many test clips (0: all).')
  flags.DEFINE_bool('streaming', False, 'Write a streaming model: one '
                    'stride of audio and the state in, probabilities and the '
                    'new state out (float32 only).')
  flags.DEFINE_float('clip_stride_ms', None, '--streaming only: ms of audio '
                     'per call, a multiple of the config\'s window_stride_ms '
                     '(default: the largest such stride up to 30 ms).')
  flags.mark_flag_as_required('output')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  log_lines.install()
  values = flags.FLAGS
  if bool(values.workdir) == bool(values.checkpoint):
    raise app.UsageError('Give exactly one of --workdir and --checkpoint.')
  if values.streaming and (values.quantize or values.android_signature):
    raise app.UsageError('--streaming cannot be combined with --quantize or '
                         '--android_signature.')
  if values.clip_stride_ms is not None and not values.streaming:
    raise app.UsageError('--clip_stride_ms needs --streaming.')
  try:
    result = convert_checkpoint(
        values.workdir or values.checkpoint, values.output,
        quantize=values.quantize, android_signature=values.android_signature,
        data_dir=values.data_dir,
        num_representative=values.representative_clips,
        max_eval_clips=values.max_eval_clips, streaming=values.streaming,
        clip_stride_ms=values.clip_stride_ms)
  except checkpoint.CheckpointError as e:
    # A wrong --workdir/--checkpoint: say so without a traceback.
    raise SystemExit(f'error: {e}') from None
  print(f'Wrote {result.model_path} ({result.size_bytes} bytes), '
        f'{result.labels_path} and {result.config_path}.')
  layout = result.info.get('streaming')
  if layout:
    print(f'Streaming: {layout["clip_stride_ms"]:g} ms '
          f'({layout["stride_samples"]} samples) a call; max abs difference '
          f'from the non-streaming model {result.parity_max_abs_diff:.3g}.')
  accuracy = result.info.get('test_accuracy')
  if accuracy:
    print(f'Test accuracy: float {accuracy["float"] * 100:.2f}%, int8 '
          f'{accuracy["int8"] * 100:.2f}% ({accuracy["change"] * 100:+.2f} '
          f'points, N={accuracy["count"]}).')


if __name__ == '__main__':
  define_flags()
  app.run(main)
