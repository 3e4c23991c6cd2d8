"""The files a training run leaves in its workdir, besides checkpoints.

    config.json                 the resolved config the run used
    <architecture>_labels.txt   one label a line, in class order
    metrics.jsonl               one JSON line per logged step or evaluation
    results.json                final validation and test figures
    tensorboard/                TensorBoard scalars
    checkpoints/<step>/         see checkpoint.py
"""

import json
import os
from typing import Any

import ml_collections

from kws_jax import files


def labels_path(workdir: str, architecture: str) -> str:
  return os.path.join(workdir, f'{architecture}_labels.txt')


def write_atomic(path: str, text: str) -> None:
  """`files.write_atomic`, kept for the experiments that call it here."""
  files.write_atomic(path, text)


def write_json(path: str, payload: Any) -> None:
  files.write_atomic(path,
                     json.dumps(payload, indent=2, sort_keys=True) + '\n')


def write_labels(path: str, labels: list[str]) -> None:
  files.write_atomic(path, ''.join(f'{label}\n' for label in labels))


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  write_json(os.path.join(workdir, 'config.json'), config.to_dict())


def read_config(path: str) -> ml_collections.ConfigDict:
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


class MetricsLog:
  """Appends JSON lines to `metrics.jsonl` and TensorBoard scalars."""

  def __init__(self, workdir: str, enabled: bool = True):
    self._enabled = enabled
    if not enabled:
      return
    self._file = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
    from tensorboardX import SummaryWriter  # Only the writing process needs it.
    self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write(self, step: int, kind: str, scalars: dict[str, float]) -> None:
    if not self._enabled:
      return
    self._file.write(json.dumps({'step': step, 'kind': kind, **scalars}) + '\n')
    self._file.flush()
    for name, value in scalars.items():
      self._tb.add_scalar(f'{kind}/{name}', value, step)

  def close(self) -> None:
    if self._enabled:
      self._file.close()
      self._tb.close()
