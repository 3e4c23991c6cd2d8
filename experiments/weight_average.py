r"""One model's weights averaged over its last steps: does a cheap ensemble
in weight space refuse unseen words as three seeds together do?

Three seeds of the default recipe deciding as one refuse far more of the
words none of them heard than any one model at the same validation
command recall (README, "Three models together"); distilling them into
one model did not carry that over (experiments/ensemble_distillation.py).
Each point is today's default recipe (TC-ResNet8-1.2, 8000 steps) with an
exponential moving average of its weights (`ema_decay`, TensorFlow's
warm-up), which evaluation, the best checkpoint and export use, run once
on all the data and once per unseen-words fold, named 'ema<decay>_s<seed>';
compare with experiments/capacity.py's 'w1.2_x2_s<seed>' points seed for
seed, over the offsets (experiments/unknown_offset.py):

  python -m experiments.sweep --sweep=experiments/weight_average.py \
      --workdir=/tmp/sweeps/weight_average --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=data_dir=/tmp/kws_data \
      --override=synthetic_dir=/tmp/kws_synth_sweeps

(`--only='ema0.999_s0'` runs one point and its folds.)
"""

from experiments import capacity

BASE_CONFIG = 'configs/tc_resnet.py'

# As experiments/capacity.py's 'w1.2_x2' points.
SHARED = capacity.W1_2_X2

UNSEEN_WORDS_FOLDS = 3


def sweep(add):
  for seed in (0, 1, 2):
    add(point_name=f'ema0.999_s{seed}', seed=seed, ema_decay=0.999)
