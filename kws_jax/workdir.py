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


# Fields added after the first release, with the value that does what runs
# from before them did: a config stored with an older checkpoint (or beside
# an older exported model) lacks them, and gets these (`with_later_fields`).
LATER_FIELDS = {
    'data_sha256': '',
    'balance_classes': False,
    'synthetic_dir': '', 'synthetic_fraction': 0.0,
    'synthetic_only_words': (), 'synthetic_unknown': False,
    'distill_from': '', 'distill_weight': 0.0, 'distill_temperature': 1.0,
    'reverb_probability': 0.0, 'reverb_max_rt60_ms': 700.0,
    'background_rms_min': 0.0, 'background_rms_max': 0.0,
    'background_min_snr_db': 5.0, 'generated_noise': False,
    'dc_offset_noise': False, 'unknown_word_balance': 0.0,
    'command_negatives': 0.0, 'unknown_negatives': 0.0,
    'unseen_words_fold': '', 'stream_windows': 0.0,
    'unknown_offset': 0.0, 'train_compiler_options': {},
    'train_convolutions': 'xla', 'loss': 'softmax',
    'synthetic_adversary': 0.0, 'same_speaker_joins': 0.0,
    # Settings that were fixed in the code before they were fields.
    'momentum': 0.9, 'nesterov': True, 'ema_warmup': True,
    'validation_seed': 1018, 'test_seed': 2029,
}


def with_later_fields(config) -> ml_collections.ConfigDict:
  """A copy of a stored config (ConfigDict or dict) with the
  `LATER_FIELDS` it lacks added."""
  config = ml_collections.ConfigDict(
      config.to_dict() if hasattr(config, 'to_dict') else dict(config))
  for field, value in LATER_FIELDS.items():
    if field not in config:
      config[field] = value
  return config


def labels_path(workdir: str, architecture: str) -> str:
  return os.path.join(workdir, f'{architecture}_labels.txt')


def write_json(path: str, payload: Any) -> None:
  files.write_atomic(path,
                     json.dumps(payload, indent=2, sort_keys=True) + '\n')


def write_labels(path: str, labels: list[str]) -> None:
  files.write_atomic(path, ''.join(f'{label}\n' for label in labels))


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  write_json(os.path.join(workdir, 'config.json'), config.to_dict())


def read_config(path: str) -> ml_collections.ConfigDict:
  """A stored config.json, with the `LATER_FIELDS` it lacks added."""
  with open(path) as f:
    return with_later_fields(json.load(f))


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
