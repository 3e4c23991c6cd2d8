r"""Measures how well a model spots commands in a long recording.

The tutorial's `test_streaming_accuracy` tool: run the model over a stream
(every `clip_stride_ms`, over the last `clip_duration_ms`), smooth with
`RecognizeCommands`, and compare the detections with a ground-truth file of
`label, time_ms` lines, such as `generate_streaming_test_wav` writes:

  python -m kws_jax.test_streaming_accuracy \
      --wav=/tmp/streaming_test.wav \
      --ground_truth=/tmp/streaming_test_labels.txt --verbose

(`--graph=model.tflite --labels=labels.txt` for another model than the
shipped one.) It prints the tutorial's line

  X% matched, Y% correctly, Z% wrongly, W% false positives

each a percentage of the ground-truth words, then false alarms per hour and
the mean delay of correct detections. Scoring follows the tutorial's
`StreamingAccuracyStats` (`kws_jax.runtime.stream_scoring`, which holds
this tool's library part).

Unlike the tutorial's C++ tool, the model runs over every clip that fits in
the file (its loop bound mixed samples and ms).
"""

import sys
from typing import Sequence

from absl import app
from absl import flags

from kws_jax.runtime import stream_scoring
from kws_jax.runtime import streaming


def _define_flags() -> None:
  # Defined only when run as a program: other tools (label_wav, the ROC tool)
  # use the same flag names, and absl refuses duplicates in one process.
  flags.DEFINE_string('wav', None, 'Audio file to run the model over.')
  flags.DEFINE_string('ground_truth', None,
                      'File of "label, time_ms" lines for the audio.')
  flags.DEFINE_string('graph', None,
                      'TFLite model; default: the shipped model.')
  flags.DEFINE_string('labels', None,
                      'Labels file of --graph; default: the one beside it.')
  flags.DEFINE_float('clip_duration_ms', 1000,
                     'Length of the model\'s input clip, ms.')
  streaming.define_smoothing_flags()
  flags.adopt_module_key_flags(streaming)  # Listed by --help.
  flags.DEFINE_float('time_tolerance_ms', 750,
                     'Largest gap between a detection and its word, ms.')
  flags.DEFINE_integer('num_threads', 1, 'CPU threads for the model.')
  flags.DEFINE_bool('verbose', False,
                    'Log every detection with its outcome.')
  flags.mark_flags_as_required(['wav', 'ground_truth'])


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  try:
    model, audio, ground_truth = stream_scoring.load_inputs(
        f.graph, f.labels, f.clip_duration_ms, f.num_threads, f.wav,
        f.ground_truth)
    settings, source = streaming.smoothing_from_flags(model, f)
  except (ValueError, OSError) as e:  # ModelError and AudioError included.
    # A missing or unreadable file, or a bad --class_thresholds: one line,
    # not a traceback.
    print(f'Error: {e}', file=sys.stderr)
    sys.exit(1)
  print(f'Smoothing: {settings.describe()} ({source}).')
  _, stats = stream_scoring.evaluate_stream(
      model.predict_fn, model.labels, audio, ground_truth,
      sample_rate=model.sample_rate, clip_duration_ms=model.clip_duration_ms,
      clip_stride_ms=f.clip_stride_ms, settings=settings,
      time_tolerance_ms=f.time_tolerance_ms, verbose=f.verbose)
  print(stream_scoring.format_report(stats, model.clip_duration_ms))


if __name__ == '__main__':
  _define_flags()
  app.run(main)
