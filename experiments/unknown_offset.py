r"""The `_unknown_` offset: unseen words rejected against commands lost.

A model decides by the arg-max of its logits; adding an offset b to the
`_unknown_` logit first turns the clips whose `_unknown_` score is within b
of the top one into `_unknown_`. Words the model never heard often score just
under a command, so a small b rejects many of them for a few command clips.
This script measures that trade over a grid of offsets, for several seeds of
one recipe, from each model's raw logits (its own configured offset left
out):

* validation: accuracy and the recall of commands, `_unknown_`, `_silence_`;
* test: accuracy and the recall of commands and `_unknown_` (reported, never
  used to choose);
* unseen words: the `_unknown_` recall of the words the seed's unseen-words
  fold models (`<workdir>,fold=i_k`, from a sweep with `UNSEEN_WORDS_FOLDS`)
  never heard, pooled over its folds: the mean over words and over clips.
  Missing folds are left out (the report says how many it found).

Each figure is the mean ± sample sd over the seeds (the `--workdirs`);
with `--ensemble` the workdirs' mean prediction is scored as one model
(each fold by the mean of the workdirs' runs of that fold, which all left
out the same words).

  python -m experiments.unknown_offset \
      --workdirs=/tmp/sweeps/negatives/8_dc_offset,/tmp/sweeps/seeds_dc/seed=1,/tmp/sweeps/seeds_dc/seed=2 \
      --data_dir=/tmp/kws_data --out=/tmp/sweeps/unknown_offset.md

The rule chooses the largest offset whose mean validation command recall is
at most `--budget` points below that of offset 0. It reads validation
command recall only: choosing on the unseen words (or on test) would make
the unseen figure at the chosen offset a best case instead of a measurement.
The chosen value goes into the config field `unknown_offset`
(configs/default.py), which every decision of a trained model then applies.
"""

from __future__ import annotations

import glob
import os
from typing import Callable, Sequence

from absl import app
from absl import flags
from absl import logging
import ml_collections
import numpy as np

from kws_jax import audio_io
from kws_jax import checkpoint
from kws_jax import files
from kws_jax import input_pipeline
from kws_jax import labels as labels_lib
from kws_jax import log_lines
from kws_jax import scoring


def _define_flags() -> None:
  # Defined only when run as a program: experiments/ensemble.py, which tests
  # import beside this module, has flags of the same names.
  flags.DEFINE_list(
      'workdirs', None, 'Training workdirs, one per seed, comma-separated; '
      "each one's unseen-words folds are the folders '<workdir>,fold=*'.")
  flags.DEFINE_string(
      'data_dir', None, "The data folder; default: each model's config's.")
  flags.DEFINE_list(
      'offsets', ['0', '0.25', '0.5', '0.75', '1', '1.25', '1.5', '2'],
      'Offsets added to the _unknown_ logit (0 is always measured; '
      'negative ones too, never chosen).')
  flags.DEFINE_float(
      'budget', 1.0, 'Validation command recall (points) the chosen offset '
      'may cost against offset 0.')
  flags.DEFINE_bool(
      'ensemble', False, 'Score the mean prediction of the --workdirs (and '
      'of their fold models, fold by fold) as one model instead of each '
      'workdir as a seed.')
  flags.DEFINE_string('out', None, 'Also write the report here (.md).')


COLUMNS = ('validation accuracy', 'validation commands', 'validation unknown',
           'validation silence', 'test accuracy', 'test commands',
           'test unknown', 'unseen words', 'unseen clips')
_CHOICE = 'validation commands'
# Recall differences are ratios of clip counts: a cost of exactly the budget
# must not be refused for a rounding error.
_TOLERANCE = 1e-9


# --- Figures from log-probabilities (NumPy only) -----------------------------


def parse_offsets(texts: Sequence[str]) -> list[float]:
  """The offsets sorted, duplicates dropped, 0 added if missing.

  Negative offsets are measured (a model trained with
  `loss='one_vs_rest'` refuses more at 0 than a softmax's, so comparing
  the two at equal command recall takes them) but never chosen: 0 always
  costs nothing, so the rule's choice is at least 0.

  Raises:
    ValueError: none given, or one is not a number.
  """
  try:
    offsets = sorted({float(t) for t in texts})
  except ValueError as e:
    raise ValueError(f'--offsets: {e}') from e
  if not offsets:
    raise ValueError('--offsets: give at least one offset.')
  if 0 not in offsets:
    logging.warning('--offsets: 0 added, the baseline the rule measures the '
                    'cost against.')
    offsets = sorted([*offsets, 0.0])
  return offsets


def offset_predictions(log_probs: np.ndarray, offset: float) -> np.ndarray:
  """The classes [N] chosen from log-probabilities [N, C] with `offset` added
  to `_unknown_`'s (the same arg-max as adding it to the logit)."""
  shifted = np.array(log_probs, np.float64)
  shifted[:, labels_lib.UNKNOWN_INDEX] += offset
  return shifted.argmax(-1)


def _recall(hits: np.ndarray, mask: np.ndarray) -> float:
  return float(hits[mask].mean()) if mask.any() else np.nan


def scores(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
  """Accuracy and the recall of commands, unknown and silence (NaN: none)."""
  labels = np.asarray(labels)
  hits = labels == np.asarray(predictions)
  special = (labels_lib.SILENCE_INDEX, labels_lib.UNKNOWN_INDEX)
  return {'accuracy': _recall(hits, np.ones(len(labels), bool)),
          'commands': _recall(hits, ~np.isin(labels, special)),
          'unknown': _recall(hits, labels == labels_lib.UNKNOWN_INDEX),
          'silence': _recall(hits, labels == labels_lib.SILENCE_INDEX)}


def unseen_recall(words: Sequence[str],
                  predictions: np.ndarray) -> dict[str, float]:
  """`_unknown_` recall of unseen-word clips: mean over words, over clips."""
  hits = np.asarray(predictions) == labels_lib.UNKNOWN_INDEX
  words = np.asarray(words)
  per_word = [hits[words == w].mean() for w in np.unique(words)]
  return {'unseen words': float(np.mean(per_word)) if per_word else np.nan,
          'unseen clips': float(hits.mean()) if len(hits) else np.nan}


def seed_figures(validation: tuple[np.ndarray, np.ndarray],
                 test: tuple[np.ndarray, np.ndarray],
                 unseen: tuple[Sequence[str], np.ndarray],
                 offsets: Sequence[float]) -> dict[float, dict[str, float]]:
  """One seed's `COLUMNS` at each offset.

  Args:
    validation, test: (labels [N], log-probabilities [N, C]).
    unseen: (words [M], log-probabilities [M, C]) of its fold models' unseen
      clips, pooled; M = 0 (no fold models) gives NaN.
    offsets: the grid.
  """
  figures = {}
  for offset in offsets:
    row = unseen_recall(unseen[0], offset_predictions(unseen[1], offset))
    for split, (labels, log_probs) in (('validation', validation),
                                       ('test', test)):
      for name, value in scores(labels,
                                offset_predictions(log_probs, offset)).items():
        row[f'{split} {name}'] = value
    figures[offset] = {column: row[column] for column in COLUMNS}
  return figures


def summarise(per_seed: Sequence[dict[float, dict[str, float]]],
              offsets: Sequence[float]) -> list[dict]:
  """Rows {'offset', 'mean': {column: x}, 'sd': {column: x}} over seeds.

  A column's figures are those of the seeds that have it (NaN otherwise);
  the sample sd needs two.
  """
  rows = []
  for offset in offsets:
    row = {'offset': offset, 'mean': {}, 'sd': {}}
    for column in COLUMNS:
      values = [s[offset][column] for s in per_seed
                if not np.isnan(s[offset][column])]
      row['mean'][column] = float(np.mean(values)) if values else np.nan
      row['sd'][column] = (float(np.std(values, ddof=1)) if len(values) > 1
                           else np.nan)
    rows.append(row)
  return rows


def _baseline(rows: Sequence[dict]) -> dict:
  return next(r for r in rows if r['offset'] == 0)


def cost(rows: Sequence[dict], row: dict) -> float:
  """Points of mean validation command recall `row` loses against offset 0.

  Every seed has validation figures, so this is also the mean over seeds of
  each seed's loss.
  """
  return 100 * (_baseline(rows)['mean'][_CHOICE] - row['mean'][_CHOICE])


def choose(rows: Sequence[dict], budget: float) -> dict:
  """The row of the largest offset that costs at most `budget` points.

  Only validation command recall counts (`cost`): the unseen words and test
  stay measurements of the chosen offset.
  """
  return max((r for r in rows if cost(rows, r) <= budget + _TOLERANCE),
             key=lambda r: r['offset'])


def _cell(mean: float, sd: float) -> str:
  if np.isnan(mean):
    return ''
  return f'{mean:.1%}' if np.isnan(sd) else f'{100 * mean:.1f} ± {sd:.1%}'


def report(per_seed: Sequence[dict[float, dict[str, float]]],
           notes: Sequence[str], offsets: Sequence[float],
           budget: float, ensemble_of: int = 0) -> str:
  """The Markdown report: notes, the table, the legend and the choice
  (`ensemble_of`: the number of workdirs `per_seed`'s one model averages,
  0 for seeds apart)."""
  rows = summarise(per_seed, offsets)
  base, chosen = _baseline(rows), choose(rows, budget)
  lines = [*notes, '', '| offset | ' + ' | '.join(COLUMNS) + ' |',
           '|---' * (len(COLUMNS) + 1) + '|']
  for row in rows:
    mark = ' (chosen)' if row is chosen else ''
    lines.append(f'| {row["offset"]:g}{mark} | ' + ' | '.join(
        _cell(row['mean'][c], row['sd'][c]) for c in COLUMNS) + ' |')
  lines += ['', 'Mean ± sd over seeds. unseen words: `_unknown_` recall of '
            'the words the fold models never heard, averaged over words; '
            'unseen clips: over clips.', '']
  def mean(row: dict, column: str) -> str:
    return f'{row["mean"][column]:.1%}'
  if np.isnan(chosen['mean']['unseen words']):
    unseen = 'unseen words not measured'
  else:
    unseen = (f'unseen words {mean(base, "unseen words")} -> '
              f'{mean(chosen, "unseen words")} over words, '
              f'{mean(base, "unseen clips")} -> '
              f'{mean(chosen, "unseen clips")} over clips')
  lines.append(
      f'Chosen: unknown_offset={chosen["offset"]:g} (validation command '
      f'recall {mean(base, _CHOICE)} -> {mean(chosen, _CHOICE)}, cost '
      f'{cost(rows, chosen):.2f} points; {unseen}; '
      + (f'one ensemble of {ensemble_of} seeds)' if ensemble_of else
         f"{len(per_seed)} seed{'s' if len(per_seed) > 1 else ''})"))
  return '\n'.join(lines) + '\n'


# --- Models and data ---------------------------------------------------------


def data_config(config: ml_collections.ConfigDict,
                data_dir: str | None) -> ml_collections.ConfigDict:
  """`scoring.data_config`, keeping the model's unseen-words fold: a fold
  model is scored on the words it left out."""
  out = scoring.data_config(config, data_dir)
  out.unseen_words_fold = config.unseen_words_fold
  return out


def log_probs_fn(restored: checkpoint.RestoredModel
                 ) -> Callable[[np.ndarray], np.ndarray]:
  """int16 audio [N, L] -> the network's log-probabilities [N, C], without
  the model's configured `unknown_offset`."""
  predictor = scoring.CheckpointPredictor(restored, decision=False)
  def log_probs(audio: np.ndarray) -> np.ndarray:
    probabilities = predictor.predict_batch(
        np.asarray(audio, np.float32) / audio_io.PCM16_SCALE)
    # A probability that underflowed to 0 is -inf: never the arg-max.
    with np.errstate(divide='ignore'):
      return np.log(probabilities)
  return log_probs


def fold_workdirs(workdir: str) -> list[str]:
  """The unseen-words fold models of `workdir`: the folders
  '<workdir>,fold=*' a sweep with `UNSEEN_WORDS_FOLDS` writes, sorted."""
  return sorted(glob.glob(glob.escape(os.path.normpath(workdir)) +
                          ',fold=*'))


def load_model(path: str, data_dir: str | None,
               labels: list[str] | None):
  """(restored model, its data, its log-probabilities function) of a
  workdir, checked to have `labels` (unless None)."""
  restored = checkpoint.restore_model(path, which=checkpoint.BEST)
  if labels is not None and restored.labels != labels:
    raise ValueError(f'--workdirs: {path} has labels {restored.labels}, the '
                     f'first model {labels}; the figures need one label set.')
  data = input_pipeline.create_datasets(data_config(restored.config, data_dir))
  if list(data.labels) != restored.labels:
    raise ValueError(f'{path}: the data gives labels {data.labels}, the model '
                     f'has {restored.labels}.')
  return restored, data, log_probs_fn(restored)


def _unseen(workdir: str, folds: Sequence[str], data_dir: str | None,
            labels: list[str]) -> tuple[list[str], np.ndarray, str]:
  """The fold models' unseen clips pooled: (words, log-probabilities, note)."""
  words, log_probs, num_folds = [], [], 0
  for fold in folds:
    logging.info('Scoring %s', fold)
    try:
      restored, data, fold_log_probs = load_model(fold, data_dir, labels)
    except checkpoint.CheckpointError as e:
      logging.warning('Leaving out %s: %s', fold, e)
      continue
    parsed = labels_lib.parse_unseen_fold(restored.config.unseen_words_fold)
    if parsed is None:
      raise ValueError(f'{fold} is named as an unseen-words fold of '
                       f'{workdir}, but its config has no unseen_words_fold.')
    num_folds = parsed[1]
    words += [name.split('/')[0] for name in data.unseen_words.names]
    log_probs.append(fold_log_probs(data.unseen_words.audio))
  if not log_probs:
    return [], np.zeros((0, len(labels)), np.float32), (
        f'{workdir}: no unseen-words fold models ({workdir},fold=*).')
  return words, np.concatenate(log_probs), (
      f'{workdir}: {len(log_probs)} of {num_folds} unseen-words folds, '
      f'{len(words)} clips of {len(set(words))} words.')


def mean_prediction(models: Sequence[tuple], names: Sequence[str]) -> tuple:
  """The mean prediction of several models' `seed_figures` inputs.

  Args:
    models: per model, (validation, test, unseen) as `seed_figures` takes
      them, each (labels or words, log-probabilities), of the same clips in
      the same order.
    names: the models' workdirs, for the error.

  Returns:
    (validation, test, unseen) with the log of the mean probability.

  Raises:
    ValueError: the models were scored on different clips.
  """
  out = []
  for part, name in enumerate(('validation', 'test', 'unseen words')):
    keys = [np.asarray(model[part][0]) for model in models]
    for other, key in zip(names[1:], keys[1:]):
      if key.shape != keys[0].shape or np.any(key != keys[0]):
        raise ValueError(
            f'--ensemble: the {name} clips of {other} are not those of '
            f'{names[0]} (another data folder or split, or other fold runs: '
            'see the notes on each workdir\'s folds); an ensemble needs the '
            'same clips.')
    stacked = np.stack([np.asarray(model[part][1], np.float64)
                        for model in models])
    with np.errstate(divide='ignore'):
      mean = np.log(np.mean(np.exp(stacked), axis=0))
    out.append((models[0][part][0], mean))
  return tuple(out)


def measure(workdirs: Sequence[str], data_dir: str | None,
            offsets: Sequence[float], ensemble: bool = False
            ) -> tuple[list[dict[float, dict[str, float]]], list[str]]:
  """Each workdir's `seed_figures` (with `ensemble`, those of the workdirs'
  mean prediction, their fold models' fold by fold, as one model), and a
  note on the fold models of each."""
  labels, models, notes = None, [], []
  for workdir in workdirs:
    logging.info('Scoring %s', workdir)
    restored, data, log_probs = load_model(workdir, data_dir, labels)
    labels = restored.labels
    validation = (np.asarray(data.validation.label),
                  log_probs(data.validation.audio))
    test = np.asarray(data.test.label), log_probs(data.test.audio)
    del data  # The folds load data of their own.
    folds = fold_workdirs(workdir)
    words, unseen_log_probs, note = _unseen(workdir, folds, data_dir, labels)
    notes.append(note)
    models.append((validation, test, (words, unseen_log_probs)))
  if ensemble:
    models = [mean_prediction(models, workdirs)]
    notes.append(f'Scored as one model: the mean prediction of these '
                 f'{len(workdirs)} (of their fold models, fold by fold).')
  per_seed = [seed_figures(*model, offsets) for model in models]
  if all(np.isnan(s[offsets[0]]['unseen clips']) for s in per_seed):
    notes.append('No workdir has unseen-words fold models: the unseen '
                 'columns are empty.')
  return per_seed, notes


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  log_lines.install()
  f = flags.FLAGS
  if not f.workdirs:
    raise app.UsageError('--workdirs: name at least one training workdir.')
  if f.budget < 0:
    raise app.UsageError(f'--budget={f.budget}: give points >= 0.')
  if f.ensemble and len(f.workdirs) < 2:
    raise app.UsageError('--ensemble: name two or more --workdirs to '
                         'average.')
  try:
    offsets = parse_offsets(f.offsets)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  per_seed, notes = measure(f.workdirs, f.data_dir, offsets, f.ensemble)
  text = report(per_seed, notes, offsets, f.budget,
                len(f.workdirs) if f.ensemble else 0)
  print(text, end='')
  if f.out:
    files.write_atomic(f.out, text)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
