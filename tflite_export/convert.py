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
example app); see `tflite_export/tflite_model.py`, which both exports share.
Written beside `--output` (each file atomically):

    <stem>.tflite (the --output path)  the model
    <stem>_labels.txt                   one label a line, output order
    <stem>_config.json                  the training config
    <stem>_export.json                  where it came from, shapes, size and
                                        measured figures

Several comma-separated `--workdir`s (a sweep's fold run '<point>,fold=i_k'
counts as one) are exported as one float32 clip model: the softmax of the
log of the mean of their probabilities, with `--unknown_offset` (default:
theirs) added to `_unknown_`'s, the front end run once
(`convert_ensemble`; experiments/unknown_offset.py --ensemble measures
such a mean before export). The tools take it as any clip model.

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
`kws_jax.runtime.inference.Recognizer`, and the change is reported.

This module is the whole-clip export and the command line; it runs the
streaming export for `--streaming`. Imports go one way: this module ->
`streaming_export` -> `tflite_model`, and this module -> `tflite_model`.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from absl import logging
from ai_edge_litert.interpreter import Interpreter
from flax import nnx
import jax
import ml_collections
import numpy as np

from kws_jax import audio_io
from kws_jax import checkpoint
from kws_jax import config_validation
from kws_jax import log_lines
from kws_jax import scoring
from kws_jax import workdir as workdir_lib
from kws_jax.runtime import inference
from tflite_export import streaming_export
from tflite_export import tflite_model

QUANTIZE_MODES = ('', 'int8')
# Config fields the members of an ensemble (`convert_ensemble`) must share:
# its one front end's, and the clip length the tools read.
ENSEMBLE_SHARED_FIELDS = ('sample_rate', 'clip_duration_ms', 'window_size_ms',
                          'window_stride_ms', 'feature_bin_count',
                          'preprocess')
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


def _check_android_inputs(interpreter, length: int) -> None:
  """Input 0 must be float32 [L, 1] audio and input 1 the int32 [1] rate."""
  inputs = interpreter.get_input_details()
  got = [(np.dtype(d['dtype']).name, [int(n) for n in d['shape']])
         for d in inputs]
  want = [('float32', [length, 1]), ('int32', [1])]
  if got != want:
    raise tflite_model.ConversionError(
        f'The Android signature came out with inputs {got} instead of '
        f'{want} in that order (the app feeds inputs by position); the '
        'converter ordered the inputs differently. Adjust ANDROID_*_INPUT in '
        'tflite_export/convert.py.')


def _run_tflite(model_content: bytes, audio: np.ndarray,
                sample_rate: int) -> np.ndarray:
  """Runs a converted model on one clip float32 [L]; returns [C]."""
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
                  metadata: dict[str, Any] | None = None
                  ) -> tflite_model.ExportResult:
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
  probabilities = tflite_model.probabilities_fn(
      eval_graphdef, params, batch_stats, clip_audio=bool(quantize))
  return _export(probabilities, config, labels, output_path,
                 quantize=quantize, representative_audio=representative_audio,
                 android_signature=android_signature, verify=verify,
                 metadata=metadata)


def _export(probabilities: Callable[[jax.Array], jax.Array],
            config: ml_collections.ConfigDict,
            labels: list[str],
            output_path: str,
            *,
            quantize: str,
            representative_audio: np.ndarray | None,
            android_signature: bool,
            verify: bool,
            metadata: dict[str, Any] | None) -> tflite_model.ExportResult:
  """`export_tflite` of a model given as `probabilities(audio [B, L]) ->
  [B, C]` (one model's or an ensemble's; `clip_audio` for int8)."""
  architecture = config.get('model_architecture', '?')
  if quantize not in QUANTIZE_MODES:
    raise ValueError(f'quantize={quantize!r}; choose one of {QUANTIZE_MODES}.')
  length = audio_io.samples_per_clip(config.sample_rate,
                                     config.clip_duration_ms)
  if quantize:
    if representative_audio is None or not len(representative_audio):
      raise ValueError('quantize="int8" needs representative_audio, float32 '
                       '[N, L] clips to calibrate the quantization ranges.')
    representative_audio = np.asarray(representative_audio, np.float32)
    if representative_audio.ndim != 2 or (
        representative_audio.shape[1] != length):
      raise ValueError(f'representative_audio must be [N, {length}], got '
                       f'{representative_audio.shape}.')

  clips = representative_audio if quantize else ()
  if android_signature:
    rate = np.array([config.sample_rate], np.int32)

    def android(input_audio: jax.Array, input_sample_rate: jax.Array
                ) -> jax.Array:
      del input_sample_rate  # Fixed at training; the app passes it anyway.
      return probabilities(input_audio.reshape(1, length))

    fn, output = android, ANDROID_OUTPUT_NAME
    inputs = [tflite_model.Tensor(ANDROID_AUDIO_INPUT, (length, 1)),
              tflite_model.Tensor(ANDROID_RATE_INPUT, (1,), 'int32')]
    samples = [(clip.reshape(length, 1), rate) for clip in clips]
  else:
    fn, output = probabilities, OUTPUT_NAME
    inputs = [tflite_model.Tensor(AUDIO_INPUT, (1, length))]
    samples = [(clip[None],) for clip in clips]
  model_content = tflite_model.to_tflite(
      fn, inputs, [output], architecture=architecture,
      representative=samples if quantize else None)

  # Check the result against JAX on a fixed clip: a conversion that runs
  # but computes something else must not go unnoticed.
  probe = (0.1 * np.random.default_rng(0).standard_normal(length)).astype(
      np.float32)
  try:
    if android_signature:
      _check_android_inputs(Interpreter(model_content=model_content), length)
    got = _run_tflite(model_content, probe, config.sample_rate)
  except tflite_model.ConversionError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise tflite_model.conversion_error(
        f'The TFLite model of architecture {architecture!r} does not run',
        e) from e
  diff = None
  if verify:
    want = np.asarray(jax.jit(probabilities)(probe[None]))[0]
    diff = float(np.max(np.abs(got - want)))
    if not quantize and not diff < tflite_model.PARITY_WARNING:
      logging.warning('The TFLite model of %r differs from JAX by up to %g '
                      'on a test clip.', architecture, diff)
  return tflite_model.write_export(
      output_path, model_content, config, labels, inputs=inputs,
      outputs=[tflite_model.Tensor(output, (1, len(labels)))],
      parity_max_abs_diff=diff, quantize=quantize,
      android_signature=android_signature, metadata=metadata)


def _provenance(restored: checkpoint.RestoredModel) -> dict[str, Any]:
  """Where an exported model came from, for `<stem>_export.json`."""
  return {'checkpoint': restored.path, 'step': restored.step,
          'selected_by': restored.selected_by}


def convert_checkpoint(source: str,
                       output_path: str,
                       *,
                       quantize: str = '',
                       android_signature: bool = False,
                       data_dir: str | None = None,
                       num_representative: int = 200,
                       max_eval_clips: int = 0,
                       streaming: bool = False,
                       clip_stride_ms: float | None = None
                       ) -> tflite_model.ExportResult:
  """Exports a workdir's best (else latest) or a given checkpoint.

  Args:
    source: a workdir, checkpoints directory or step directory (see
      `kws_jax.checkpoint.find_checkpoint`).
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
  if streaming and (quantize or android_signature):
    raise ValueError('A streaming export is float32 with its own signature; '
                     'it cannot be combined with quantize or '
                     'android_signature.')
  restored = checkpoint.restore_model(source, which=checkpoint.BEST)
  metadata = _provenance(restored)
  if streaming:
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

  # Imports TensorFlow and TFDS (seconds); only the int8 export needs data.
  from kws_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  data = input_pipeline.create_datasets(
      scoring.data_config(restored.config, data_dir))
  if list(data.labels) != list(restored.labels):
    raise ValueError(
        f'The data gives labels {data.labels} but checkpoint {restored.path} '
        f'was trained on {restored.labels}.')
  calibration = tflite_model.representative_clips(
      data.train, num_representative, seed=int(restored.config.seed),
      background=data.background,
      background_volume=float(restored.config.background_volume))
  logging.info('Calibrating int8 quantization on %d training clips.',
               len(calibration))
  test = data.test
  if max_eval_clips:
    test = scoring.head(test, max_eval_clips)
  scores = {}
  # The float model is kept beside the int8 one: a user compares them, and
  # may ship either.
  float_export = export_tflite(
      restored.params, restored.batch_stats, restored.eval_graphdef,
      restored.config, restored.labels, float_path(output_path),
      android_signature=android_signature, metadata=metadata)
  scores['float'] = scoring.evaluate_split(
      inference.Recognizer(float_export.model_path), test)
  result = export_tflite(
      restored.params, restored.batch_stats, restored.eval_graphdef,
      restored.config, restored.labels, output_path, quantize='int8',
      representative_audio=calibration, android_signature=android_signature,
      metadata=metadata)
  scores['int8'] = scoring.evaluate_split(
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


class EnsembleError(ValueError):
  """Models that cannot be exported as one (`convert_ensemble`)."""


def convert_ensemble(sources: Sequence[str],
                     output_path: str,
                     *,
                     unknown_offset: float | None = None,
                     android_signature: bool = False
                     ) -> tflite_model.ExportResult:
  """Exports several trained models as one float32 clip model.

  Each source is a workdir (its best checkpoint, else its latest) or a
  checkpoint, as for `convert_checkpoint`. The model takes audio as one
  model's export does and returns the softmax of the log of the mean of the
  members' probabilities with `unknown_offset` added to `_unknown_`'s
  (`models.ensemble_predict_fn`); the front end runs once. The config
  written beside it is the first member's with that offset; the export
  info lists the members.

  Args:
    sources: two or more models with the same labels and front end.
    output_path: the `.tflite` file.
    unknown_offset: the ensemble's offset; None takes the members' own,
      which must then agree.
    android_signature: see `export_tflite`.

  Raises:
    EnsembleError: fewer than two sources, or members that differ in
      labels, front end or (without `unknown_offset`) offset.
  """
  if len(sources) < 2:
    raise EnsembleError(
        f'An ensemble needs two or more models, got {list(sources)}.')
  resolved = [os.path.realpath(s) for s in sources]
  repeated = sorted({s for s in resolved if resolved.count(s) > 1})
  if repeated:
    raise EnsembleError(
        f'{", ".join(repeated)} is named more than once: each member of an '
        'ensemble must be another run (twice would weigh it double).')
  members = [checkpoint.restore_model(s, which=checkpoint.BEST)
             for s in sources]
  first = members[0]
  for member in members[1:]:
    if member.labels != first.labels:
      raise EnsembleError(
          f'{member.path} has labels {member.labels}, {first.path} '
          f'{first.labels}: the members of an ensemble need the same labels.')
    for field in ENSEMBLE_SHARED_FIELDS:
      if member.config[field] != first.config[field]:
        raise EnsembleError(
            f'{member.path} has {field}={member.config[field]}, '
            f'{first.path} {first.config[field]}: the members of an '
            'ensemble share one front end, so these settings must agree.')
  if unknown_offset is None:
    offsets = {m.path: float(m.config.unknown_offset) for m in members}
    if len(set(offsets.values())) > 1:
      raise EnsembleError(
          'The members decide with different unknown_offset values (' +
          ', '.join(f'{path}: {value:g}' for path, value in offsets.items())
          + '); give the ensemble its own (--unknown_offset).')
    unknown_offset = offsets[first.path]
  config = ml_collections.ConfigDict(first.config.to_dict())
  config.unknown_offset = float(unknown_offset)
  probabilities = tflite_model.ensemble_probabilities_fn(
      [m.eval_graphdef for m in members],
      [(m.params, m.batch_stats) for m in members], float(unknown_offset))
  metadata = {'ensemble': [_provenance(m) for m in members]}
  return _export(probabilities, config, first.labels, output_path,
                 quantize='', representative_audio=None,
                 android_signature=android_signature, verify=True,
                 metadata=metadata)


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
                      'checkpoint by validation accuracy, else its latest. '
                      'Several, comma-separated: one model of them all (the '
                      'mean of their probabilities; float32 clip model).')
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
  flags.DEFINE_float('unknown_offset', None, 'Several --workdir models '
                     'only: the offset the ensemble adds to the log of its '
                     "mean _unknown_ probability (default: the members' "
                     'unknown_offset, which must then agree).')
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
  sources = config_validation.split_paths(values.workdir or '')
  if len(sources) > 1 and (values.quantize or values.streaming):
    raise app.UsageError('Several --workdir models are exported as one '
                         'float32 clip model: no --quantize or --streaming.')
  if values.unknown_offset is not None and len(sources) < 2:
    raise app.UsageError('--unknown_offset is the offset of an ensemble: '
                         'give several comma-separated --workdir models.')
  try:
    if len(sources) > 1:
      result = convert_ensemble(sources, values.output,
                                unknown_offset=values.unknown_offset,
                                android_signature=values.android_signature)
    else:
      result = convert_checkpoint(
          sources[0] if sources else values.checkpoint, values.output,
          quantize=values.quantize,
          android_signature=values.android_signature,
          data_dir=values.data_dir,
          num_representative=values.representative_clips,
          max_eval_clips=values.max_eval_clips, streaming=values.streaming,
          clip_stride_ms=values.clip_stride_ms)
  except (checkpoint.CheckpointError, EnsembleError) as e:
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
