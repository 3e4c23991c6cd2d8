"""Averaged predictions: several models together, and one model over shifts.

Scores trained models on the validation and test splits of their data (split
by speaker, as in training) three ways:

* each model alone;
* each model with test-time averaging: its predictions for the clip shifted
  by each of `--shifts_ms` (zero-filled, like training's time shift)
  averaged;
* the ensemble: the mean prediction of all the models, which is what
  `experiments/distillation.py` teaches the default model to match.

  python -m experiments.ensemble \
      --models=/tmp/sweeps/seeds/seed=0,/tmp/sweeps/seeds/seed=1,/tmp/sweeps/seeds/seed=2 \
      --data_dir=/tmp/kws_data --out=/tmp/sweeps/ensemble.md

The models must share labels, sample rate, clip length and the split
settings, so every model is scored on clips none of them trained on; the
data comes from the first model's stored config (`--data_dir` points it
elsewhere).
"""

from __future__ import annotations

import os
from typing import Sequence

from absl import app
from absl import flags
import numpy as np

from kws_jax import checkpoint
from kws_jax import files
from kws_jax import input_pipeline
from kws_jax import log_lines
from kws_jax import metrics as metrics_lib
from kws_jax import scoring
from kws_jax.runtime import inference

_MODELS = flags.DEFINE_list(
    'models', None, 'Training workdirs (or checkpoint paths), comma-separated.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, "The data folder; default: the first model's config's.")
_SHIFTS_MS = flags.DEFINE_list(
    'shifts_ms', ['-100', '-50', '0', '50', '100'],
    'Time shifts (ms) whose predictions test-time averaging averages.')
_WORDS = flags.DEFINE_list('words', ['on', 'off'],
                           'Words whose test recall the table shows.')
_OUT = flags.DEFINE_string('out', None, 'Also write the table here (.md).')


# Settings that must agree between the models averaged.
_SAME_FIELDS = ('wanted_words', 'sample_rate', 'clip_duration_ms',
                'validation_percentage', 'testing_percentage',
                'silence_percentage', 'unknown_percentage')


def shift(audio: np.ndarray, samples: int) -> np.ndarray:
  """Clips [N, L] moved later by `samples` (earlier if negative), zero-filled."""
  out = np.zeros_like(audio)
  if samples >= 0:
    out[:, samples:] = audio[:, :audio.shape[1] - samples]
  else:
    out[:, :samples] = audio[:, -samples:]
  return out


def shifted_mean(predictor: inference.Predictor, audio: np.ndarray,
                 shifts: Sequence[int]) -> np.ndarray:
  """The predictor's probabilities [N, C] averaged over the shifts."""
  return np.mean([predictor.predict_batch(shift(audio, s)) for s in shifts],
                 axis=0)


def _result(probabilities: np.ndarray, truth: np.ndarray,
            labels: list[str]) -> metrics_lib.ClassificationResult:
  return metrics_lib.ClassificationResult(
      metrics_lib.confusion_matrix(truth, probabilities.argmax(-1),
                                   len(labels)), labels)


def score(models: Sequence[str], data_dir: str | None,
          shifts_ms: Sequence[float]) -> list[tuple[str, dict]]:
  """Returns [(row name, {'validation': result, 'test': result})]."""
  names = [os.path.basename(os.path.normpath(m)) for m in models]
  if len(set(names)) != len(names):
    raise ValueError(f'--models: {models} repeat a folder name ({names}); '
                     'give each model a folder of its own name.')
  predictors = [scoring.CheckpointPredictor(
      checkpoint.restore_model(m, which=checkpoint.BEST)) for m in models]
  first = predictors[0]
  for model, predictor in zip(models, predictors):
    for field in _SAME_FIELDS:
      if predictor.config.get(field) != first.config.get(field):
        raise ValueError(
            f'--models: {model} has {field}={predictor.config.get(field)!r}, '
            f'{models[0]} has {first.config.get(field)!r}. Averaging needs '
            'models of the same labels, audio and data split.')
  data = input_pipeline.create_datasets(
      scoring.data_config(first.restored.config, data_dir))
  if list(data.labels) != first.labels:
    raise ValueError(f'The data gives labels {data.labels}, the models have '
                     f'{first.labels}.')
  shifts = [int(round(ms * first.sample_rate / 1000)) for ms in shifts_ms]
  if any(abs(s) >= first.clip_samples for s in shifts):
    raise ValueError(f'--shifts_ms={list(shifts_ms)}: each shift must be '
                     'shorter than the clip '
                     f'({first.config["clip_duration_ms"]} ms).')
  rows = {}
  ensemble = {}
  for split in ('test', 'validation'):
    audio = inference.to_float_audio(np.asarray(getattr(data, split).audio))
    truth = np.asarray(getattr(data, split).label)
    alone = []
    for name, predictor in zip(names, predictors):
      alone.append(predictor.predict_batch(audio))
      rows.setdefault(name, {})[split] = _result(alone[-1], truth,
                                                 first.labels)
      rows.setdefault(f'{name}, averaged over shifts', {})[split] = _result(
          shifted_mean(predictor, audio, shifts), truth, first.labels)
    ensemble[split] = _result(np.mean(alone, axis=0), truth, first.labels)
  rows[f'ensemble of {len(models)}'] = ensemble
  return list(rows.items())


def table(rows: list[tuple[str, dict]], words: Sequence[str]) -> str:
  """A Markdown table: validation and test accuracy, test recall of words."""
  lines = ['| model | validation | test | ' +
           ' | '.join(f'{w} recall' for w in words) + ' |',
           '|---|---|---|' + '---|' * len(words)]
  for name, results in rows:
    recall = results['test'].per_class()
    cells = [f'{results["validation"].accuracy:.2%}',
             f'{results["test"].accuracy:.2%}']
    cells += [f'{recall[w]["recall"]:.1%}' if w in recall else 'n/a'
              for w in words]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  log_lines.install()
  if not _MODELS.value:
    raise app.UsageError('--models: name at least one training workdir.')
  try:
    shifts_ms = [float(s) for s in _SHIFTS_MS.value]
  except ValueError as e:
    raise app.UsageError(f'--shifts_ms: {e}') from e
  text = table(score(_MODELS.value, _DATA_DIR.value, shifts_ms), _WORDS.value)
  print(text, end='')
  if _OUT.value:
    files.write_atomic(_OUT.value, text)


if __name__ == '__main__':
  app.run(main)
