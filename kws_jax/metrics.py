"""Classification figures: accuracy, confusion matrix, precision and recall,
and scoring a model over a split of clips (training's evaluations, the
`evaluate` tool and export share it)."""

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from kws_jax import audio_io


@dataclasses.dataclass
class ClassificationResult:
  """Figures over one evaluated set.

  Attributes:
    confusion: int64 [C, C]; row = true class, column = predicted class, in
      label order.
    labels: class names in order.
  """
  confusion: np.ndarray
  labels: list[str]

  @property
  def count(self) -> int:
    return int(self.confusion.sum())

  @property
  def accuracy(self) -> float:
    return float(np.trace(self.confusion) / max(self.count, 1))

  @property
  def recall(self) -> np.ndarray:
    """float [C]: of the clips of each class, the share labelled correctly."""
    return np.diag(self.confusion) / np.maximum(self.confusion.sum(axis=1), 1)

  @property
  def precision(self) -> np.ndarray:
    """float [C]: of the clips given each label, the share that were right."""
    return np.diag(self.confusion) / np.maximum(self.confusion.sum(axis=0), 1)

  def per_class(self) -> dict[str, dict[str, float]]:
    support = self.confusion.sum(axis=1)
    return {
        label: {'precision': float(p), 'recall': float(r), 'count': int(n)}
        for label, p, r, n in zip(self.labels, self.precision, self.recall,
                                  support)
    }

  def to_dict(self) -> dict:
    return {
        'accuracy': self.accuracy,
        'count': self.count,
        'labels': list(self.labels),
        'confusion_matrix': self.confusion.tolist(),
        'per_class': self.per_class(),
    }


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray,
                     num_classes: int) -> np.ndarray:
  """int64 [C, C] counts of (true, predicted) pairs."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
  return matrix


def predict_split(predict_batch: Callable[[np.ndarray], np.ndarray],
                  audio: np.ndarray, batch_size: int) -> np.ndarray:
  """int [N] predicted class (highest score) of each clip.

  Args:
    predict_batch: float32 audio [b, L] in [-1, 1] -> scores [b, C], for
      b up to `batch_size` (a `Recognizer`'s `predict_batch`, or a jitted
      model's).
    audio: int16 [N, L] clips, full scale 32768.
    batch_size: clips per call.
  """
  if batch_size <= 0:
    raise ValueError(f'batch_size must be positive, got {batch_size}.')
  out = [np.asarray(predict_batch(
      audio[start:start + batch_size].astype(np.float32) /
      audio_io.PCM16_SCALE)).argmax(-1)
         for start in range(0, len(audio), batch_size)]
  return np.concatenate(out) if out else np.zeros(0, np.int64)


def score_split(predict_batch: Callable[[np.ndarray], np.ndarray], split: Any,
                labels: Sequence[str],
                batch_size: int) -> ClassificationResult:
  """Scores a split (`audio` int16 [N, L], `label` int [N] in `labels`'
  order; an `input_pipeline.Split`); see `predict_split`."""
  predictions = predict_split(predict_batch, np.asarray(split.audio),
                              batch_size)
  return ClassificationResult(
      confusion_matrix(split.label, predictions, len(labels)), list(labels))


def format_confusion(confusion: np.ndarray) -> str:
  """The matrix as rows of right-aligned counts, one row per true class."""
  width = max(len(str(int(confusion.max()))) if confusion.size else 1, 1)
  return '\n'.join(
      '[' + ' '.join(f'{int(v):{width}d}' for v in row) + ']'
      for row in confusion)


def format_per_class(result: ClassificationResult) -> str:
  """A table of precision and recall per class."""
  width = max(len(label) for label in result.labels)
  lines = [f'{"label":<{width}}  precision  recall  count']
  for label, figures in result.per_class().items():
    lines.append(f'{label:<{width}}  {figures["precision"]*100:8.1f}%'
                 f' {figures["recall"]*100:6.1f}%  {figures["count"]:5d}')
  return '\n'.join(lines)


def group_recall(predictions: np.ndarray, target: int, groups: list[str],
                 labels: list[str]) -> dict:
  """Recall of one class over clips that all belong to it, by group.

  Args:
    predictions: int [N] predicted class of each clip.
    target: the class every clip truly is.
    groups: N group names (a clip's word, a noise's source, ...).
    labels: class names.

  Returns:
    {'recall': over all clips, 'mean_recall': the mean of the groups'
    recalls (each group counts once), 'count', 'per_group': {group:
    {'recall', 'count'}}, 'heard_as': {label: clips given that wrong
    label}, most first}.
  """
  predictions = np.asarray(predictions)
  right = predictions == target
  per_group = {}
  for group in sorted(set(groups)):
    members = np.array([g == group for g in groups], bool)
    per_group[group] = {'recall': float(right[members].mean()),
                        'count': int(members.sum())}
  wrong = np.bincount(predictions[~right], minlength=len(labels))
  return {
      'recall': float(right.mean()) if len(right) else 0.0,
      'mean_recall': (float(np.mean([g['recall'] for g in per_group.values()]))
                      if per_group else 0.0),
      'count': int(len(right)),
      'per_group': per_group,
      'heard_as': {labels[i]: int(wrong[i]) for i in np.argsort(-wrong,
                                                               kind='stable')
                   if wrong[i]},
  }
