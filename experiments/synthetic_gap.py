r"""Do synthetic negatives teach recorded voices? The unseen words, recorded
against synthetic.

Each seed's unseen-words fold models (`<workdir>,fold=i_k`) never heard
their fold's words, neither recorded nor synthetic. This scores both kinds
of clip of those words: the `_unknown_` recall of the recorded clips (the
unseen-words measure) and of the synthetic clips of the same words in the
fold model's synthetic folder, word by word, at one offset. A model whose
synthetic near words taught it where each command ends refuses both alike;
a gap says the lesson holds for synthetic voices only.

  python -m experiments.synthetic_gap \
      --workdirs=/tmp/sweeps/capacity/w1.2_x2_s0,/tmp/sweeps/capacity/w1.2_x2_s1 \
      --data_dir=/tmp/kws_data --offset=0.75

Prints a row per word (its recorded and synthetic clips, the recall of
each kind averaged over seeds) and the means over words, each seed's and
their mean ± sd.
"""

from __future__ import annotations

from absl import app
from absl import flags
import numpy as np

from experiments import unknown_offset
from kws_jax import data_sources
from kws_jax import files
from kws_jax import labels as labels_lib
from kws_jax import log_lines


def _define_flags() -> None:
  # Defined only when run as a program, as experiments/unknown_offset.py's
  # (the same names).
  flags.DEFINE_list('workdirs', None, 'Training workdirs, one per seed; '
                    "each one's unseen-words folds are '<workdir>,fold=*'.")
  flags.DEFINE_string('data_dir', None, "The data folder; default: each "
                      "model's config's.")
  flags.DEFINE_float('offset', 0.0, 'Added to the _unknown_ logit (the '
                     "models' own offsets are left out).")
  flags.DEFINE_string('out', None, 'Also write the report here (.md).')


def fold_recalls(fold: str, data_dir: str | None, offset: float
                 ) -> dict[str, tuple[int, float, int, float]]:
  """{word: (recorded clips, their recall, synthetic clips, their recall)}
  for the words fold model `fold` left out that its synthetic folder has."""
  restored, data, log_probs = unknown_offset.load_model(fold, data_dir, None)
  config = restored.config
  if not labels_lib.parse_unseen_fold(config.unseen_words_fold):
    raise ValueError(f'{fold} has no unseen_words_fold in its config.')
  if not config.synthetic_dir:
    raise ValueError(f'{fold} trained without synthetic speech '
                     '(config.synthetic_dir is empty): nothing to compare.')
  words = np.array([n.split('/')[0] for n in data.unseen_words.names])
  recorded = unknown_offset.offset_predictions(
      log_probs(data.unseen_words.audio), offset) == labels_lib.UNKNOWN_INDEX
  every = config.copy_and_resolve_references()
  every.synthetic_unknown = True  # Every word of the folder, as it is.
  length = data.unseen_words.audio.shape[1]
  synthetic = data_sources.load_synthetic(every, list(restored.labels),
                                          length)
  made_words = np.array(synthetic.words)
  out = {}
  for word in sorted(set(words)):
    made = made_words == word
    if not made.any():
      continue
    refused = unknown_offset.offset_predictions(
        log_probs(synthetic.audio[made]), offset) == labels_lib.UNKNOWN_INDEX
    mine = words == word
    out[word] = (int(mine.sum()), float(recorded[mine].mean()),
                 int(made.sum()), float(refused.mean()))
  return out


def report(per_seed: list[dict[str, tuple[int, float, int, float]]],
           offset: float) -> str:
  words = sorted({w for seed in per_seed for w in seed})
  lines = [f'Offset {offset:g}; {len(per_seed)} seeds; `_unknown_` recall '
           'of the words the fold models never heard.', '',
           '| word | recorded clips | recorded | synthetic clips | synthetic |',
           '|---|---|---|---|---|']
  for word in words:
    rows = [seed[word] for seed in per_seed if word in seed]
    lines.append(f'| {word} | {rows[0][0]} | '
                 f'{np.mean([r[1] for r in rows]):.1%} | {rows[0][2]} | '
                 f'{np.mean([r[3] for r in rows]):.1%} |')
  means = np.array([[np.mean([r[1] for r in seed.values()]),
                     np.mean([r[3] for r in seed.values()])]
                    for seed in per_seed])
  def spread(column: int) -> str:
    mean = f'{means[:, column].mean():.1%}'
    if len(means) < 2:
      return mean
    return f'{mean} ± {means[:, column].std(ddof=1):.1%}'
  lines += ['', f'Mean over {len(words)} words: recorded {spread(0)}, '
            f'synthetic {spread(1)} (per seed: '
            + ', '.join(f'{a:.1%} / {b:.1%}' for a, b in means) + ').']
  return '\n'.join(lines) + '\n'


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  log_lines.install()
  f = flags.FLAGS
  if not f.workdirs:
    raise app.UsageError('--workdirs: name at least one training workdir.')
  per_seed = []
  for workdir in f.workdirs:
    folds = unknown_offset.fold_workdirs(workdir)
    if not folds:
      raise app.UsageError(f'--workdirs: {workdir} has no unseen-words fold '
                           f'models ({workdir},fold=*).')
    seed = {}
    for fold in folds:
      seed.update(fold_recalls(fold, f.data_dir, f.offset))
    per_seed.append(seed)
  text = report(per_seed, f.offset)
  print(text, end='')
  if f.out:
    files.write_atomic(f.out, text)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
