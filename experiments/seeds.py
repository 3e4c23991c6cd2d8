"""The default recipe (`configs/tc_resnet.py`) with three seeds: the spread.

The seed sets the initial weights, the batches and the augmentation; the
data split and the evaluation clips stay fixed, so the spread is that of
training alone. Each seed also runs the three unseen-words folds
(`experiments/negatives.py` says what they are), so the unseen-words
figure has its spread too; `summary.md` has one row per seed.

  python -m experiments.sweep --sweep=experiments/seeds.py \
      --workdir=/tmp/sweeps/seeds --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz

(`--only='seed=.$'` runs the three seeds without their folds.)
"""

BASE_CONFIG = 'configs/tc_resnet.py'

SHARED = {'log_step_interval': 100}

UNSEEN_WORDS_FOLDS = 3


def sweep(add):
  for seed in (0, 1, 2):
    add(seed=seed)
