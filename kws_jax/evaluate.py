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
folder, prepared by `input_pipeline` with the model's stored config.

Prints `Test accuracy = X% (N=...)`, the confusion matrix and per-class
precision and recall, and writes `results.json` and `confusion_matrix.png`
to `--output_dir`. Unreadable clips are reported (each by name) and counted,
and evaluation goes on without them.

Evaluating a `.tflite` file needs no JAX; checkpoints are run with JAX.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from typing import Any, Iterable, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from kws_jax import audio_io
from kws_jax import config_validation
from kws_jax.runtime import inference
from kws_jax import log_lines
from kws_jax import metrics as metrics_lib
from kws_jax import plotting
from kws_jax import workdir as workdir_lib

SPLITS = ('test', 'validation')
_BATCH_SIZE = 64


@dataclasses.dataclass
class FolderResult(metrics_lib.ClassificationResult):
  """A `ClassificationResult` plus the clips that could not be read.

  Attributes:
    unreadable: [(path, reason)] of clips left out.
  """
  unreadable: list[tuple[str, str]] = dataclasses.field(default_factory=list)

  def to_dict(self) -> dict:
    out = super().to_dict()
    out['unreadable'] = [{'path': p, 'error': e} for p, e in self.unreadable]
    out['num_unreadable'] = len(self.unreadable)
    return out


# --- Models ------------------------------------------------------------------


class CheckpointPredictor(inference.Predictor):
  """Runs a checkpoint with JAX, with the `Recognizer` interface.

  Attributes:
    restored: the model.
    labels, sample_rate, clip_samples, config: as `Recognizer`'s.
  """

  def __init__(self, restored: Any, batch_size: int = _BATCH_SIZE):
    """Args:

      restored: a `checkpoint.RestoredModel`, or a path whose best
        checkpoint is restored (`checkpoint.restore_model`).
      batch_size: clips per JAX call; batches are padded to it, so the
        model is compiled once.
    """
    # JAX, Flax and orbax: only checkpoints need them; scoring a .tflite
    # model loads none of them.
    import jax  # pylint: disable=g-import-not-at-top
    from kws_jax import checkpoint  # pylint: disable=g-import-not-at-top
    from kws_jax import features  # pylint: disable=g-import-not-at-top
    from kws_jax import models  # pylint: disable=g-import-not-at-top
    if not isinstance(restored, checkpoint.RestoredModel):
      restored = checkpoint.restore_model(restored, which=checkpoint.BEST)
    self.restored = restored
    self.labels = list(restored.labels)
    self.config = restored.config.to_dict()
    self.sample_rate = int(restored.config.sample_rate)
    self.clip_samples = features.ms_to_samples(
        restored.config.clip_duration_ms, restored.config.sample_rate)
    self.batch_size = batch_size
    self._predict = jax.jit(functools.partial(
        models.predict_fn(restored.eval_graphdef, probabilities=True),
        restored.params, restored.batch_stats))

  def predict_batch(self, audio: np.ndarray) -> np.ndarray:
    """float32 [B, L] audio in [-1, 1] -> float32 [B, C] probabilities."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2 or audio.shape[1] != self.clip_samples:
      raise ValueError(f'Expected audio [batch, {self.clip_samples}], got '
                       f'{audio.shape}.')
    out = []
    for start in range(0, len(audio), self.batch_size):
      chunk = audio[start:start + self.batch_size]
      padded = np.pad(chunk, ((0, self.batch_size - len(chunk)), (0, 0)))
      out.append(np.asarray(self._predict(padded))[:len(chunk)])
    if not out:
      return np.zeros((0, len(self.labels)), np.float32)
    return np.concatenate(out).astype(np.float32)


def load_predictor(model: str | None,
                   num_threads: int = 1) -> inference.Predictor:
  """A `Recognizer` for a `.tflite` file (None: the shipped model), else a
  `CheckpointPredictor` for a workdir / checkpoint directory (its best
  checkpoint, or the step directory given)."""
  if model is None or not os.path.isdir(model):
    return inference.Recognizer(model, num_threads=num_threads)
  return CheckpointPredictor(model)


# --- Evaluation --------------------------------------------------------------


def find_test_clips(test_dir: str,
                    labels: Sequence[str]) -> list[tuple[str, int]]:
  """Lists a test folder's clips with their label index.

  Args:
    test_dir: `<test_dir>/<label>/**/<clip>.{wav,flac}`; hidden entries and
      files directly in `test_dir` are ignored.
    labels: the model's labels.

  Returns:
    [(path, label index)], sorted by path.

  Raises:
    ValueError: `test_dir` is missing, has folders that are not labels, or
      holds no clips.
  """
  if not os.path.isdir(test_dir):
    raise ValueError(f'Test folder {test_dir} does not exist.')
  folders = sorted(
      name for name in os.listdir(test_dir)
      if not name.startswith('.') and
      os.path.isdir(os.path.join(test_dir, name)))
  index = {label: i for i, label in enumerate(labels)}
  unknown = [name for name in folders if name not in index]
  if unknown:
    raise ValueError(
        f'Test folder {test_dir} has folders that are not labels of the '
        f'model: {", ".join(unknown)}. The model knows {", ".join(labels)}; '
        'move those clips into _unknown_/ or remove the folders.')
  clips = []
  for name in folders:
    for root, dirs, files in os.walk(os.path.join(test_dir, name)):
      dirs[:] = [d for d in dirs if not d.startswith('.')]
      clips.extend((os.path.join(root, f), index[name]) for f in files
                   if not f.startswith('.') and
                   f.lower().endswith(audio_io.AUDIO_EXTENSIONS))
  if not clips:
    raise ValueError(
        f'Test folder {test_dir} holds no .wav or .flac clips in label '
        f'folders ({", ".join(labels)}).')
  return sorted(clips)


def _batched(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
  for start in range(0, len(items), size):
    yield items[start:start + size]


def evaluate_folder(predictor: inference.Predictor, test_dir: str, *,
                    batch_size: int = _BATCH_SIZE) -> FolderResult:
  """Scores a model on a folder in the official test set's layout.

  Clips are read at the model's sample rate (resampled if needed) and
  zero-padded or cropped at the end to its clip length, as in training.

  Args:
    predictor: a `Recognizer`, `CheckpointPredictor` or any
      `inference.Predictor`.
    test_dir: see `find_test_clips`.
    batch_size: clips read and scored at a time.

  Returns:
    The confusion matrix over the model's labels, and the unreadable clips
    (each also logged as a warning).
  """
  labels = list(predictor.labels)
  clips = find_test_clips(test_dir, labels)
  confusion = np.zeros((len(labels), len(labels)), np.int64)
  unreadable = []
  for batch in _batched(clips, batch_size):
    audio, truth = [], []
    for path, label in batch:
      try:
        clip = audio_io.read_audio(path, predictor.sample_rate)
      except audio_io.AudioError as e:
        logging.warning('Skipping unreadable clip: %s', e)
        # Printable: the report prints these and stores them as JSON.
        unreadable.append((audio_io.printable_path(path), str(e)))
        continue
      audio.append(audio_io.fit_length(clip, predictor.clip_samples))
      truth.append(label)
    if audio:
      predictions = predictor.predict_batch(np.stack(audio)).argmax(-1)
      confusion += metrics_lib.confusion_matrix(
          np.array(truth), predictions, len(labels))
  return FolderResult(confusion=confusion, labels=labels,
                      unreadable=unreadable)


def evaluate_split(predictor: inference.Predictor, split: Any, *,
                   batch_size: int = _BATCH_SIZE
                   ) -> metrics_lib.ClassificationResult:
  """Scores a model on an `input_pipeline.Split` (int16 audio [N, L]).

  The split's labels must be in the predictor's label order.
  """
  audio = np.asarray(split.audio)
  if len(audio) and audio.shape[1] != predictor.clip_samples:
    raise ValueError(f'The split has clips of {audio.shape[1]} samples, the '
                     f'model takes {predictor.clip_samples}.')
  return metrics_lib.score_split(predictor.predict_batch, split,
                                 predictor.labels, batch_size)


def head(split: Any, count: int) -> Any:
  """The first `count` clips of a split (a shallow copy)."""
  return dataclasses.replace(
      split, audio=split.audio[:count], label=split.label[:count],
      weight=split.weight[:count], names=list(split.names[:count]))


def data_config(config: Any, data_dir: str | None) -> Any:
  """The training config, pointed at `data_dir` if given.

  Fields that a config stored by an older run may lack are added as those
  runs had them (`config_validation.LATER_FIELDS`: off), and synthetic
  speech is left out.

  A given `data_dir` is used as it is (`data_url` cleared), so evaluation
  never downloads.
  """
  config = config_validation.with_later_fields(config)
  # Synthetic clips only ever join training: scoring needs no synthetic
  # folder (which may be gone, or on the machine that trained).
  config.synthetic_dir = ''
  config.synthetic_fraction = 0.0
  config.synthetic_only_words = ()
  config.synthetic_unknown = False
  # Nor does it leave unseen words out: it scores whole splits (a fold of
  # other data would be other words).
  config.unseen_words_fold = ''
  if data_dir:
    config.data_dir = data_dir
    config.data_url = ''
  return config


def evaluate_data_dir(predictor: inference.Predictor, data_dir: str | None,
                      split: str = 'test') -> metrics_lib.ClassificationResult:
  """Scores `split` of a data folder, split by speaker as in training.

  Args:
    predictor: needs `config` (the training config; a `.tflite` file gets it
      from `<stem>_config.json` beside it).
    data_dir: the data folder; None uses the config's data_url/data_dir.
    split: 'test' or 'validation'.
  """
  # TensorFlow (TFDS): only scoring a data folder needs it.
  from kws_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  if split not in SPLITS:
    raise ValueError(f'split={split!r}; choose one of {SPLITS}.')
  config = getattr(predictor, 'config', None)
  if not config:
    raise ValueError(
        'Scoring a data folder needs the training config (wanted words, '
        'clip length, split percentages); none was found beside the model. '
        'Put the <stem>_config.json written at export beside it, or use '
        '--test_dir.')
  data = input_pipeline.create_datasets(data_config(config, data_dir))
  if list(data.labels) != list(predictor.labels):
    raise ValueError(f'The data gives labels {data.labels} but the model has '
                     f'{predictor.labels}.')
  return evaluate_split(predictor, getattr(data, split))


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
  predictor = load_predictor(model)
  model_name = model or inference.SHIPPED_MODEL
  if test_dir:
    result = evaluate_folder(predictor, test_dir)
    name, details = 'Test accuracy', {'test_dir': os.path.abspath(test_dir)}
  else:
    result = evaluate_data_dir(predictor, data_dir, split)
    name = f'{split.capitalize()} accuracy'
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
  flags.DEFINE_enum('split', 'test', SPLITS, 'Split of --data_dir to score.')
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
