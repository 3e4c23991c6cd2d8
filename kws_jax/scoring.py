"""Scoring a model: on a test folder, or on a split of the training data.

The library of `python -m kws_jax.evaluate` (which adds the report and the
command line) and of the export's float/int8 check: `load_predictor` runs a
`.tflite` file with the no-JAX runtime or a checkpoint with JAX
(`CheckpointPredictor`); `evaluate_folder` scores a folder laid out like the
official `speech_commands_test_set_v0.02`; `evaluate_data_dir` a split of a
data folder, by speaker as in training, with the model's stored config
(`data_config`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Iterable, Sequence

from absl import logging
import numpy as np

from kws_jax import audio_io
from kws_jax import workdir as workdir_lib
from kws_jax import metrics as metrics_lib
from kws_jax.runtime import inference

# What `evaluate_data_dir` scores: a split of the data, or the silence stress
# set made from its background noise (`noise.silence_stress_set`).
SPLITS = ('test', 'validation', 'silence_stress')
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

  def __init__(self, restored: Any, batch_size: int = _BATCH_SIZE, *,
               decision: bool = True):
    """Args:

      restored: a `checkpoint.RestoredModel`, or a path whose best
        checkpoint is restored (`checkpoint.restore_model`).
      batch_size: clips per JAX call; batches are padded to it, so the
        model is compiled once.
      decision: with the model's `unknown_offset` (its answer); False gives
        the network's own probabilities (`models.predict_fn`).
    """
    # JAX, Flax and orbax: only checkpoints need them; scoring a .tflite
    # model loads none of them.
    import jax  # pylint: disable=g-import-not-at-top
    from kws_jax import checkpoint  # pylint: disable=g-import-not-at-top
    from kws_jax import models  # pylint: disable=g-import-not-at-top
    if not isinstance(restored, checkpoint.RestoredModel):
      restored = checkpoint.restore_model(restored, which=checkpoint.BEST)
    self.restored = restored
    self.labels = list(restored.labels)
    self.config = restored.config.to_dict()
    self.sample_rate = int(restored.config.sample_rate)
    self.clip_samples = audio_io.samples_per_clip(
        self.sample_rate, restored.config.clip_duration_ms)
    self.batch_size = batch_size
    self._predict = jax.jit(functools.partial(
        models.predict_fn(restored.eval_graphdef, probabilities=True,
                          decision=decision),
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
  runs had them (`workdir_lib.LATER_FIELDS`: off), and synthetic
  speech is left out.

  A given `data_dir` is used as it is (`data_url` cleared), so evaluation
  never downloads.
  """
  config = workdir_lib.with_later_fields(config)
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
    split: one of `SPLITS`.
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
