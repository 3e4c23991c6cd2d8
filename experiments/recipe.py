"""Ablation of the recipe options on the default model (TC-ResNet8).

Each point here switches on one more option than the previous one,
starting from none, so the table shows what each adds (4000 steps each, the
default schedule): class balancing, SpecAugment, label smoothing with random
gain, then weight averaging (EMA), speed perturbation and mixup. The last
two points add room-like reverberation alone to the default recipe (the
fourth point), for half and a fifth of the clips. `configs/tc_resnet.py` keeps those that helped (see the README's
results).

  python -m experiments.sweep --sweep=experiments/recipe.py \
      --workdir=/tmp/sweeps/recipe --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz
"""

from configs import tc_resnet

# The paper's TC-ResNet8 (width 1), the default model when this ran.
BASE_CONFIG = 'configs/tc_resnet.py:8'

# The schedule and offset of the default model when this ran.
SHARED = {**tc_resnet.UNTIL_2026_12_05, 'log_step_interval': 100}

_NONE = {'balance_classes': False, 'time_masks': 0, 'time_mask_ms': 0.0,
         'freq_masks': 0, 'freq_mask_bins': 0, 'label_smoothing': 0.0,
         'volume_db': 0.0}
_BALANCE = {**_NONE, 'balance_classes': True}
_SPEC_AUGMENT = {**_BALANCE, 'time_masks': 2, 'time_mask_ms': 100.0,
                 'freq_masks': 2, 'freq_mask_bins': 7}
_SMOOTH_GAIN = {**_SPEC_AUGMENT, 'label_smoothing': 0.1, 'volume_db': 6.0}
_EMA = {**_SMOOTH_GAIN, 'ema_decay': 0.999}
_SPEED = {**_EMA, 'speed_perturbation': 0.1}
_MIXUP = {**_SPEED, 'mixup_alpha': 0.2}
_REVERB = {**_SMOOTH_GAIN, 'reverb_probability': 0.5}
_REVERB_LIGHT = {**_SMOOTH_GAIN, 'reverb_probability': 0.2}


def sweep(add):
  for point in (_NONE, _BALANCE, _SPEC_AUGMENT, _SMOOTH_GAIN, _EMA, _SPEED,
                _MIXUP, _REVERB, _REVERB_LIGHT):
    add(**point)
