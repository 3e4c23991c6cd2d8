r"""One sigmoid per class: is `_unknown_` better learnt as what no command
is than as a class of its own?

With `config.loss='one_vs_rest'` each class but `_unknown_` has its own
sigmoid and binary cross entropy, an `_unknown_` clip is a negative for all
of them, and the `_unknown_` logit is fixed at 0: a word the model never
heard is refused when no command claims it, instead of only when it
sounds like the unknown words of training. Each point is today's default
recipe (TC-ResNet8-1.2, 8000 steps) with that loss, run once on all the
data and once per unseen-words fold, named 'ovr_s<seed>'; compare with
experiments/capacity.py's 'w1.2_x2_s<seed>' points, the same recipe with
the softmax on the same synthetic folder (made by
experiments/synthesize_negatives.sh, here /tmp/kws_synth_sweeps), seed for
seed, over the offsets (experiments/unknown_offset.py):

  experiments/synthesize_negatives.sh /tmp/kws_synth_sweeps
  python -m experiments.sweep --sweep=experiments/one_vs_rest.py \
      --workdir=/tmp/sweeps/one_vs_rest --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=data_dir=/tmp/kws_data \
      --override=synthetic_dir=/tmp/kws_synth_sweeps

(`--only='ovr_s0'` runs one point and its folds.)
"""

from experiments import capacity

BASE_CONFIG = 'configs/tc_resnet.py'

# As experiments/capacity.py's 'w1.2_x2' points.
SHARED = capacity.W1_2_X2

UNSEEN_WORDS_FOLDS = 3


def sweep(add):
  for seed in (0, 1, 2):
    add(point_name=f'ovr_s{seed}', seed=seed, loss='one_vs_rest')
