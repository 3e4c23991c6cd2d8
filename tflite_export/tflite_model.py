"""From a JAX function to a TFLite model on disk: what both exports share.

The two exports differ only in the function they convert and its
signature: `convert.export_tflite` converts a whole-clip model (audio in,
probabilities out), `streaming_export.export_streaming_tflite` one step of a
streaming model (new audio and state in, probabilities and new state out).
Everything else is here, so both convert, fail and write alike:

  * `probabilities_fn`: the JAX function of the clip model (the front end
    under `FRONTEND_SCOPE`), which the streaming export is checked against;
  * `to_tflite`: `jax2tf.convert` (native serialization, its default) ->
    SavedModel in a temporary folder -> `TFLiteConverter.from_saved_model`
    with TFLite builtin ops only (no Flex/TF ops, so the model runs on
    LiteRT and on the Android example app); with calibration data, int8
    quantization of the backbone only;
  * `representative_clips`: the int8 calibration clips;
  * `PARITY_WARNING`: the difference from JAX above which an export is
    reported as suspect;
  * `write_export`: the model, `<stem>_labels.txt`, `<stem>_config.json` and
    `<stem>_export.json`, each written atomically, as an `ExportResult`.

Imports go one way: `convert` (the command line, which also runs the
streaming export) -> `streaming_export` -> this module; `convert` -> this
module. This module imports neither.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import time
import types
import warnings
from typing import Any, Callable, Iterable, Sequence

from absl import logging
from ai_edge_litert.interpreter import Interpreter
from flax import nnx
import jax
import ml_collections
import numpy as np

from kws_jax import audio_io
from kws_jax import files
from kws_jax import models
from kws_jax import tf_setup
from kws_jax import workdir as workdir_lib

# Name scope of the front-end ops in the exported program.
FRONTEND_SCOPE = models.FRONTEND_SCOPE
# Above this difference from JAX a float export is reported as suspect.
PARITY_WARNING = 1e-3
# Longest converter message kept in a ConversionError (they can run to
# pages of MLIR).
_MAX_MESSAGE = 1500


class ConversionError(RuntimeError):
  """The model could not be converted; the message names the architecture."""


def conversion_error(what: str, error: Exception) -> ConversionError:
  """A `ConversionError` saying `what` failed and why (shortened)."""
  message = str(error)
  if len(message) > _MAX_MESSAGE:
    message = message[:_MAX_MESSAGE] + ' [...]'
  return ConversionError(f'{what}: {type(error).__name__}: {message}')


@dataclasses.dataclass(frozen=True)
class Tensor:
  """One input or output of an exported model's signature."""
  name: str
  shape: tuple[int, ...]
  dtype: str = 'float32'

  def to_dict(self) -> dict[str, Any]:
    return {'name': self.name, 'dtype': self.dtype, 'shape': list(self.shape)}


@dataclasses.dataclass
class ExportResult:
  """What an export wrote.

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
  ('smoothing', `kws_jax.runtime.streaming.smoothing_path`; see
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


def probabilities_fn(eval_graphdef: nnx.GraphDef, params: Any,
                     batch_stats: Any, *,
                     clip_audio: bool = False
                     ) -> Callable[[jax.Array], jax.Array]:
  """Returns `f(audio float32 [B, L]) -> probabilities float32 [B, C]`.

  `models.predict_fn` with the parameters bound as host numpy arrays, so
  they become constants of the exported program. The spectrum is computed
  as matrix products (`features.DFTS`: TFLite's RFFT2D is slower). The
  front end runs under the name scope `FRONTEND_SCOPE`, which names its ops
  in the TFLite model (see `_front_end_nodes`).

  Args:
    eval_graphdef: a `models.KWSModel` graph definition in eval mode.
    params: its `nnx.Param` state.
    batch_stats: its `nnx.BatchStat` state.
    clip_audio: clip the audio to [-1, 1] first (a no-op for valid audio).
      For int8 export: it gives the model input a first op that can be kept
      in float, so the raw audio is not quantized to 8 bits.
  """
  params, batch_stats = jax.device_get((params, batch_stats))
  return functools.partial(
      models.predict_fn(eval_graphdef, probabilities=True,
                        clip_audio=clip_audio, dft='matrices'),
      params, batch_stats)


def ensemble_probabilities_fn(eval_graphdefs: Sequence[nnx.GraphDef],
                              states: Sequence[tuple[Any, Any]],
                              unknown_offset: float
                              ) -> Callable[[jax.Array], jax.Array]:
  """`probabilities_fn` of several models deciding as one
  (`models.ensemble_predict_fn`): `states` holds each one's (params,
  batch_stats), bound as host numpy arrays."""
  states = jax.device_get(tuple(tuple(state) for state in states))
  return functools.partial(
      models.ensemble_predict_fn(eval_graphdefs, unknown_offset,
                                 dft='matrices'), states)


def _tensorflow() -> types.ModuleType:
  """TensorFlow, with the GPUs hidden (conversion runs on the CPU)."""
  # Imported here, not at the top: it takes seconds and is needed only once
  # a conversion starts, so `--help` and the tools that import the exports
  # for their names stay quick.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf_setup.hide_gpus_from_tf(tf)
  return tf


def to_tflite(fn: Callable[..., Any],
              inputs: Sequence[Tensor],
              outputs: Sequence[str],
              *,
              architecture: str,
              description: str = 'a TFLite model',
              representative: Iterable[Sequence[np.ndarray]] | None = None
              ) -> bytes:
  """Converts a JAX function to a TFLite model with builtin ops only.

  Args:
    fn: takes one array per entry of `inputs`, in that order, and returns
      one array per name in `outputs` (a tuple, or the array alone).
    inputs: the signature's inputs. Their names decide the converter's
      input order (it sorts by an internal map, not by argument order), so
      a layout that must come out in a fixed order (the Android app's) is
      checked by the caller after conversion.
    outputs: the signature's output names.
    architecture: named in the log and in errors.
    description: what is made, for the log and errors ('a streaming TFLite
      model').
    representative: for int8 quantization (of the backbone, see
      `_quantize_backbone`), the calibration samples, each one array per
      input; None: float32.

  Returns:
    The model file's content.

  Raises:
    ConversionError: jax2tf or the TFLite converter failed; the message
      names the architecture and the step that failed.
  """
  tf = _tensorflow()
  # Imports TensorFlow; see `_tensorflow`.
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top

  # Serialize for the CPU whatever this host runs on, so an export made on a
  # GPU machine converts the same way.
  converted = jax2tf.convert(fn, with_gradient=False,
                             native_serialization_platforms=('cpu',))

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in inputs])
  def serve(*args):
    results = converted(*args)
    if not isinstance(results, (tuple, list)):
      results = (results,)
    return dict(zip(outputs, results))

  module = tf.Module()
  module.serve = serve
  started = time.time()
  with tempfile.TemporaryDirectory(prefix='kws_saved_model_') as saved_dir:
    try:
      tf.saved_model.save(module, saved_dir, signatures={
          'serving_default': serve.get_concrete_function()})
    except Exception as e:  # pylint: disable=broad-except
      raise conversion_error(
          f'Model architecture {architecture!r} could not be converted to '
          f'{description} by jax2tf (JAX -> TF SavedModel)', e) from e
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
      with warnings.catch_warnings():
        # Calibration runs TF's own deprecated tf.lite.Interpreter.
        warnings.filterwarnings('ignore', message='.*tf.lite.Interpreter')
        if representative is None:
          model_content = converter.convert()
        else:
          samples = [dict(zip((t.name for t in inputs), sample))
                     for sample in representative]
          model_content = _quantize_backbone(
              tf, converter, lambda: iter(samples), architecture)
    except Exception as e:  # pylint: disable=broad-except
      raise conversion_error(
          f'Model architecture {architecture!r} could not be converted to '
          f'{description} with builtin ops only (SavedModel -> TFLite)',
          e) from e
  logging.info('Converted %r to %s in %.1f s (%d bytes).', architecture,
               description, time.time() - started, len(model_content))
  return model_content


def _front_end_nodes(model_content: bytes) -> list[str]:
  """Output tensor names of a TFLite model's front-end ops.

  The front end is every op up to the last one named under FRONTEND_SCOPE;
  ops are stored in execution order, and the backbone only starts once the
  features exist. Some ops there do not carry the scope in their names
  (e.g. the FFT's padding), hence the positional rule.
  """
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


def _quantize_backbone(tf: types.ModuleType, converter: Any,
                       representative: Callable[[], Iterable[Any]],
                       architecture: str) -> bytes:
  """Post-training int8 quantization of the backbone; the front end stays float.

  Quantizing the front end would ruin it: 8-bit audio, and mel energies
  spanning many decades on one linear 8-bit scale (quiet bands become 0
  before the log). Measured on a random tiny_conv: probabilities off by up
  to 0.45 with everything quantized, 0.005 with a float front end. TFLite's
  quantization debugger calibrates once and quantizes with the front-end
  nodes on its deny list.
  """
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


def representative_clips(split: Any, count: int, seed: int = 0, *,
                         background: np.ndarray | None = None,
                         background_volume: float = 0.1) -> np.ndarray:
  """Draws `count` int8 calibration clips from a training split.

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


def write_export(output_path: str,
                 model_content: bytes,
                 config: ml_collections.ConfigDict,
                 labels: Sequence[str],
                 *,
                 inputs: Sequence[Tensor],
                 outputs: Sequence[Tensor],
                 parity_max_abs_diff: float | None,
                 quantize: str = '',
                 android_signature: bool = False,
                 details: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> ExportResult:
  """Writes a converted model and the files beside it, each atomically.

  `output_path` (its folder is created), `<stem>_labels.txt` (one label a
  line, output order), `<stem>_config.json` (the training config) and
  `<stem>_export.json` (architecture, signature, sample rate, labels, size,
  parity, then `details` and `metadata`). A `<stem>_smoothing.json` chosen
  for the model this one replaces is removed.

  Args:
    output_path: the `.tflite` file.
    model_content: from `to_tflite`.
    config: the training config.
    labels: class names in output order.
    inputs: the model's inputs, as converted.
    outputs: its outputs.
    parity_max_abs_diff: the measured difference from JAX, or None.
    quantize: '' (float32) or 'int8'.
    android_signature: whether the Android example's signature was used.
    details: more entries for `<stem>_export.json` from the exporter.
    metadata: the caller's entries for it (e.g. the checkpoint).

  Returns:
    The paths written, the size and `<stem>_export.json`'s contents.
  """
  output_path = os.path.abspath(output_path)
  os.makedirs(os.path.dirname(output_path), exist_ok=True)
  paths = sibling_paths(output_path)
  config_dict = (config.to_dict() if hasattr(config, 'to_dict')
                 else dict(config))
  info = {
      'model_architecture': config.get('model_architecture', '?'),
      'quantize': quantize or 'none',
      'android_signature': bool(android_signature),
      'inputs': [t.to_dict() for t in inputs],
      'outputs': [t.to_dict() for t in outputs],
      'sample_rate': int(config.sample_rate),
      'labels': list(labels),
      'size_bytes': len(model_content),
      'parity_max_abs_diff': parity_max_abs_diff,
      **(details or {}),
      **(metadata or {}),
  }
  files.write_atomic(output_path, model_content)
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
                      parity_max_abs_diff=parity_max_abs_diff, info=info)
