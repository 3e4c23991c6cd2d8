r"""Near words in recorded voices: do halves of a command and another word
said by one speaker, joined, teach the model to refuse words it never
heard?

experiments/synthetic_gap.py found that the models refuse the synthetic
clips of words they never heard far more often than the recorded ones: the
synthetic near words teach each command's edge for synthetic voices only.
`config.same_speaker_joins` replaces that share of the `_unknown_` draws by
the first half of one recorded word joined to the second half of another
of the same speaker, one a command and one not, in either order
(`partial_words.join_halves`): words that begin or end like a command, in
a recorded voice, without the change of voice and room that joins of two
speakers' halves carry. Each point is today's default recipe
(TC-ResNet8-1.2, 8000 steps) with them, run once on all the data and once
per unseen-words fold, named 'ssj<share>_s<seed>'; compare with
experiments/capacity.py's 'w1.2_x2_s<seed>' points, the same recipe without
them on the same synthetic folder (made by
experiments/synthesize_negatives.sh, here /tmp/kws_synth_sweeps), seed for
seed, over the offsets (experiments/unknown_offset.py):

  experiments/synthesize_negatives.sh /tmp/kws_synth_sweeps
  python -m experiments.sweep --sweep=experiments/same_speaker_joins.py \
      --workdir=/tmp/sweeps/same_speaker_joins --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=data_dir=/tmp/kws_data \
      --override=synthetic_dir=/tmp/kws_synth_sweeps

(`--only='ssj0.3_s0'` runs one point and its folds.)
"""

from experiments import capacity

BASE_CONFIG = 'configs/tc_resnet.py'

# As experiments/capacity.py's 'w1.2_x2' points.
SHARED = capacity.W1_2_X2

UNSEEN_WORDS_FOLDS = 3


def sweep(add):
  for seed in (0, 1, 2):
    add(point_name=f'ssj0.3_s{seed}', seed=seed, same_speaker_joins=0.3)
