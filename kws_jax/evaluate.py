r"""Scores a model on a test folder or on a split of the training data.

  python -m kws_jax.evaluate --model=model.tflite \
      --test_dir=speech_commands_test_set_v0.02 --output_dir=/tmp/eval
  python -m kws_jax.evaluate --model=/tmp/kws --data_dir=/tmp/speech_dataset \
      --split=validation --output_dir=/tmp/eval

`--model` is a `.tflite` file (default: the shipped model), a training
workdir (its best checkpoint by validation accuracy, else its latest), a
checkpoints directory or a step directory.

`--test_dir` is a folder laid out like the official
`speech_commands_test_set_v0.02` archive: `_silence_/`, `_unknown_/` and one
folder per word, clips with any names, WAV or FLAC. Every folder must be one
of the model's labels; label folders may be missing (counted as 0 clips).
`--data_dir` scores the `--split` (by speaker, as in training) of that data
folder, prepared by `input_pipeline` with the model's stored config;
`--split=silence_stress` scores the silence stress set instead (one-second
non-speech clips at RMS 0.0003-0.3 from that folder's background noise and
generated noise, 112 with Speech Commands' six recordings: README, "What
is not a command").

Prints `Test accuracy = X% (N=...)`, the confusion matrix and per-class
precision and recall, and writes `results.json` and `confusion_matrix.png`
to `--output_dir`. Unreadable clips are reported (each by name) and counted,
and evaluation goes on without them.

Evaluating a `.tflite` file needs no JAX; checkpoints are run with JAX.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from absl import app
from absl import flags

from kws_jax import log_lines
from kws_jax import metrics as metrics_lib
from kws_jax import plotting
from kws_jax import scoring
from kws_jax import workdir as workdir_lib
from kws_jax.runtime import inference

# --- Reports -----------------------------------------------------------------


def report(result: metrics_lib.ClassificationResult, name: str,
           output_dir: str | None, details: dict[str, Any]) -> str:
  """Formats the summary and writes results.json / confusion_matrix.png.

  Returns:
    The text printed by the command line: accuracy line, confusion matrix,
    per-class table and (for folders) unreadable-clip count.
  """
  lines = [f'{name} = {result.accuracy * 100:.1f}% (N={result.count})',
           'Confusion Matrix:', metrics_lib.format_confusion(result.confusion),
           'Per class:', metrics_lib.format_per_class(result)]
  unreadable = getattr(result, 'unreadable', [])
  if unreadable:
    lines.append(f'{len(unreadable)} unreadable clip(s) left out: ' +
                 ', '.join(path for path, _ in unreadable))
  if output_dir:
    os.makedirs(output_dir, exist_ok=True)
    workdir_lib.write_json(os.path.join(output_dir, 'results.json'),
                           {**details, name.lower().replace(' ', '_'):
                            result.accuracy, **result.to_dict()})
    plotting.plot_confusion(
        result, os.path.join(output_dir, 'confusion_matrix.png'),
        title=f'{name} {result.accuracy * 100:.1f}% (N={result.count})')
  return '\n'.join(lines)


def run(model: str | None, *, test_dir: str | None = None,
        data_dir: str | None = None, split: str = 'test',
        output_dir: str | None = None) -> metrics_lib.ClassificationResult:
  """What the command line does; see the module docstring."""
  if test_dir and data_dir:
    raise ValueError('Give either --test_dir or --data_dir, not both.')
  if not test_dir and not data_dir:
    raise ValueError('Give --test_dir (a folder in the official test set '
                     'layout) or --data_dir (a data folder; see --split).')
  predictor = scoring.load_predictor(model)
  model_name = model or inference.SHIPPED_MODEL
  if test_dir:
    result = scoring.evaluate_folder(predictor, test_dir)
    name, details = 'Test accuracy', {'test_dir': os.path.abspath(test_dir)}
  else:
    result = scoring.evaluate_data_dir(predictor, data_dir, split)
    name = f"{split.replace('_', ' ').capitalize()} accuracy"
    details = {'data_dir': os.path.abspath(data_dir), 'split': split}
  details['model'] = os.path.abspath(model_name)
  labels_path = getattr(predictor, 'labels_path', None)
  if labels_path:
    details['labels_file'] = os.path.abspath(labels_path)
  print(f'Model: {details["model"]}' + (
      f' (labels: {details["labels_file"]})' if labels_path else ''))
  print(report(result, name, output_dir, details))
  return result


def define_flags() -> None:
  """Defines the command-line flags; only when run as a program, so that
  importing this module adds no global flags that could clash with other
  tools'."""
  flags.DEFINE_string('model', None, 'A .tflite file (default: the shipped '
                      'model), a training workdir or a checkpoint directory.')
  flags.DEFINE_string('test_dir', None, 'Folder in the layout of '
                      'speech_commands_test_set_v0.02: one folder per label.')
  flags.DEFINE_string('data_dir', None, 'A data folder (Speech Commands '
                      'layout) to score with the training split rules.')
  flags.DEFINE_enum('split', 'test', scoring.SPLITS,
                    'Split of --data_dir to score.')
  flags.DEFINE_string('output_dir', None, 'Where results.json and '
                      'confusion_matrix.png go.')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  log_lines.install()
  values = flags.FLAGS
  try:
    run(values.model, test_dir=values.test_dir, data_dir=values.data_dir,
        split=values.split, output_dir=values.output_dir)
  except (inference.ModelError, ValueError, OSError) as e:
    # ValueError covers AudioError, CheckpointError and ConfigError; OSError
    # a missing --data_dir.
    print(f'Error: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  define_flags()
  app.run(main)
