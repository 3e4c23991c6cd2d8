r"""Capacity: the default recipe on wider TC-ResNet8s. Does a larger model
recognise unseen speakers and words better? Widths 1 (the paper's
TC-ResNet8, 65k parameters, the default until 2026-12-05), 1.2 (91k,
inside the shipped model's 100k budget; the default since) and 1.5
(144k), three seeds each at 4000 steps, each also on the three
unseen-words folds; and width 1.2 with twice the steps (8000: with the
synthetic speech the training set grew from 8.8k to 19.9k clips, so 4000
steps are 20 epochs, not 45), named 'w1.2_x2_s<seed>': the default
schedule since 2026-12-05; and width 1.5 with the same 8000 steps
('w1.5_x2_s<seed>'), the candidate for a second, more accurate model.

  experiments/synthesize_negatives.sh /tmp/kws_synth
  python -m experiments.sweep --sweep=experiments/capacity.py \
      --workdir=/tmp/sweeps/capacity --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=data_dir=/tmp/kws_data

(`--only='_s.$'` runs the models without their folds; `summary.md`
has the unseen words of the points whose folds ran.)
"""

from configs import tc_resnet

BASE_CONFIG = 'configs/tc_resnet.py'

# The schedule and offset of the default model when this ran (the 'x2'
# points set their 8000 steps).
SHARED = {**tc_resnet.UNTIL_2026_12_05, 'log_step_interval': 100}

# Every setting of the 'w1.2_x2' points but the seed: the offset of the
# default model when they ran, its width and 8000 steps. The sweeps that
# add one option to that recipe (unknown_negatives.py, one_vs_rest.py,
# synthetic_adversary.py, same_speaker_joins.py, weight_average.py) share it
# and compare with them seed for seed.
W1_2_X2 = {**SHARED, 'how_many_training_steps': '5000,2000,1000',
           'model.width_multiplier': 1.2}

UNSEEN_WORDS_FOLDS = 3

WIDTHS = (1.0, 1.2, 1.5)


def sweep(add):
  for seed in (0, 1, 2):
    for width in WIDTHS:
      add(point_name=f'w{width:g}_s{seed}', seed=seed,
          **{'model.width_multiplier': width})
  for width in (1.2, 1.5):
    for seed in (0, 1, 2):
      add(point_name=f'w{width:g}_x2_s{seed}', seed=seed,
          how_many_training_steps='5000,2000,1000',
          **{'model.width_multiplier': width})
