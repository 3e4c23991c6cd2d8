"""Knowledge distillation into the default model from its own ensemble.

The teachers are the three default models of experiments/seeds.py (the
same TC-ResNet8 recipe, seeds 0-2); their averaged prediction scores higher
than any one of them (see the README). Each point trains a fresh TC-ResNet8
(seed 0, default recipe) to match that prediction on every augmented batch
as well as the labels, so the student keeps the default model's size and
speed.

  python -m experiments.sweep --sweep=experiments/seeds.py \
      --workdir=/tmp/sweeps/seeds --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz
  python -m experiments.sweep --sweep=experiments/distillation.py \
      --workdir=/tmp/sweeps/distillation --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=distill_from=/tmp/sweeps/seeds/seed=0,/tmp/sweeps/seeds/seed=1,/tmp/sweeps/seeds/seed=2
"""

from configs import tc_resnet

# The paper's TC-ResNet8 (width 1), the default model when this ran.
BASE_CONFIG = 'configs/tc_resnet.py:8'

# The schedule and offset of the default model when this ran.
SHARED = {**tc_resnet.UNTIL_2026_12_05, 'log_step_interval': 100}


def sweep(add):
  for temperature in (2.0, 1.0):
    for weight in (0.5, 0.9):
      add(distill_weight=weight, distill_temperature=temperature)
  # The best of those on validation, with the other two seeds of
  # experiments/seeds.py, to compare spread with spread.
  for seed in (1, 2):
    add(distill_weight=0.5, distill_temperature=1.0, seed=seed)
