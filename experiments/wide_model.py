r"""A wider TC-ResNet (8-1.5, 144k parameters) with the negatives recipe of
point 6 of experiments/negatives.py, on the unseen-words folds: does a
larger model recognise unseen speakers and words better?

  SYNTH_PSEUDO_WORDS=0 experiments/synthesize_negatives.sh /tmp/synth_neg
  python -m experiments.sweep --sweep=experiments/wide_model.py \
      --workdir=/tmp/sweeps/wide --parallel=1 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=data_dir=/tmp/kws_data --only='fold=1'

(About 35 minutes a run on the 2-core CPU; `--only='fold=1'` is the part
the README reports.)
"""

BASE_CONFIG = 'configs/tc_resnet.py'

SHARED = {'log_step_interval': 100}

UNSEEN_WORDS_FOLDS = 3


def sweep(add):
  add(point_name='wide1.5', **{'model.width_multiplier': 1.5,
                               'synthetic_dir': '/tmp/synth_neg'})
