r"""Negatives made from recorded non-command words: do new sound sequences
in real voices teach the model to refuse words it never heard?

`config.unknown_negatives` replaces that share of the `_unknown_` draws by a
recorded non-command clip reversed, its word's first or last 30-50% alone,
or the first half of one word joined to the second half of another
(`partial_words.command_negative`, as `command_negatives` does with command
clips). Each point is today's default recipe (TC-ResNet8-1.2, 8000 steps)
with them, run once on all the data and once per unseen-words fold, named
'un<share>_s<seed>'; compare with experiments/capacity.py's 'w1.2_x2_s<seed>'
points, the same recipe without them on the same synthetic folder (made by
experiments/synthesize_negatives.sh, here /tmp/kws_synth_sweeps), seed for
seed:

  experiments/synthesize_negatives.sh /tmp/kws_synth_sweeps
  python -m experiments.sweep --sweep=experiments/unknown_negatives.py \
      --workdir=/tmp/sweeps/unknown_negatives --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=data_dir=/tmp/kws_data \
      --override=synthetic_dir=/tmp/kws_synth_sweeps

(`--only='un0.3_s0'` runs one point and its folds.)
"""

from experiments import capacity

BASE_CONFIG = 'configs/tc_resnet.py'

# As experiments/capacity.py's 'w1.2_x2' points.
SHARED = capacity.W1_2_X2

UNSEEN_WORDS_FOLDS = 3


def sweep(add):
  for seed in (0, 1, 2):
    add(point_name=f'un0.3_s{seed}', seed=seed, unknown_negatives=0.3)
