r"""The ensemble's refusal in one model: distillation from three seeds,
measured on the words none of them heard.

The mean prediction of three default models (experiments/capacity.py's
'w1.2_x2' points, seeds 0-2) refuses far more of the words its models
never heard than any one of them at the same validation command recall
(the README's "What is not a command"), but it is three models. Each point
trains one default model (TC-ResNet8-1.2, 8000 steps; seed 0-2) to match
that mean prediction as well as the labels (`distill_weight=0.5`,
`distill_temperature=1`, the choice of experiments/distillation.py on
validation), so it keeps one model's size and speed. Its unseen-words
fold runs learn from the three seeds' runs of the same fold (`{fold}` in
`distill_from`; kws_jax refuses a teacher of another fold), so no teacher
heard the words a fold leaves out. Named 'kd_s<seed>'; compare with the
'w1.2_x2_s<seed>' points seed for seed, over the offsets
(experiments/unknown_offset.py):

  experiments/synthesize_negatives.sh /tmp/kws_synth_sweeps
  python -m experiments.sweep --sweep=experiments/capacity.py \
      --workdir=/tmp/sweeps/capacity --parallel=2 --only='^w1\.2_x2_s.' \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=data_dir=/tmp/kws_data \
      --override=synthetic_dir=/tmp/kws_synth_sweeps
  python -m experiments.sweep --sweep=experiments/ensemble_distillation.py \
      --workdir=/tmp/sweeps/ensemble_distillation --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=data_dir=/tmp/kws_data \
      --override=synthetic_dir=/tmp/kws_synth_sweeps \
      --override=distill_from=/tmp/sweeps/capacity/w1.2_x2_s0{fold},/tmp/sweeps/capacity/w1.2_x2_s1{fold},/tmp/sweeps/capacity/w1.2_x2_s2{fold}

(`--only='kd_s0'` runs one point and its folds; the 'kd_t4_w0.9_s<seed>'
points learn from softer targets, weighed more.)
"""

from experiments import capacity

BASE_CONFIG = 'configs/tc_resnet.py'

# As experiments/capacity.py's 'w1.2_x2' points, with the teachers' mean
# prediction.
SHARED = {**capacity.W1_2_X2, 'distill_weight': 0.5,
          'distill_temperature': 1.0}

UNSEEN_WORDS_FOLDS = 3


def sweep(add):
  for seed in (0, 1, 2):
    add(point_name=f'kd_s{seed}', seed=seed)
  # Softer targets, weighed more: the teachers' small probabilities (how
  # near a clip is to `_unknown_` and to the other commands) count more.
  for seed in (0, 1, 2):
    add(point_name=f'kd_t4_w0.9_s{seed}', seed=seed, distill_weight=0.9,
        distill_temperature=4.0)
