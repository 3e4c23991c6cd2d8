r"""Synthetic speech made to sound recorded inside the model: does what the
synthetic near words teach then carry over to recorded voices?

The default model's fold models refuse the synthetic clips of the words
they never heard far more often than the recorded clips of the same words
(85.5% against 72.6% over 22 words, seed 0 of capacity.py's 'w1.2_x2'
points at offset 0.75): the synthetic near words draw a tight boundary
around each command for synthetic voices only. `config.synthetic_adversary`
trains a small head to tell synthetic from recorded clips on the pooled
features and reverses its gradient into the backbone (Ganin et al., 2016),
so the features cannot keep the two apart. Each point is today's default
recipe (TC-ResNet8-1.2, 8000 steps) with weight 1 (Ganin et al.'s), run
once on all the data and once per unseen-words fold, named 'adv1_s<seed>';
compare with experiments/capacity.py's 'w1.2_x2_s<seed>' points on the
same synthetic folder, over the offsets (experiments/unknown_offset.py):

  experiments/synthesize_negatives.sh /tmp/kws_synth_sweeps
  python -m experiments.sweep --sweep=experiments/synthetic_adversary.py \
      --workdir=/tmp/sweeps/synthetic_adversary --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=data_dir=/tmp/kws_data \
      --override=synthetic_dir=/tmp/kws_synth_sweeps

(`--only='adv1_s0'` runs one point and its folds.)
"""

from experiments import capacity

BASE_CONFIG = 'configs/tc_resnet.py'

# As experiments/capacity.py's 'w1.2_x2' points.
SHARED = capacity.W1_2_X2

UNSEEN_WORDS_FOLDS = 3


def sweep(add):
  for seed in (0, 1, 2):
    add(point_name=f'adv1_s{seed}', seed=seed, synthetic_adversary=1.0)
