"""Every architecture with the default recipe, at equal steps.

Each point starts from the architecture's own config (its front end and
layer settings) and trains it with the default model's recipe and schedule
(4000 steps of Adam at 0.003/0.001/0.0003, class balancing, SpecAugment,
label smoothing, random gain), so the table compares architectures on the
same data with the same budget. The negatives (`configs/default.py`'s
`not_a_command`, which configs/tc_resnet.py and configs/conv.py take) stay
off for every point: the table was measured before them, and with them
only those two would have them. On the 2-core CPU of 2026-12-05 the
tutorial's conv takes about an hour at that budget, bc_resnet about 1.5 h
(see the README's speed table); `--only` picks the others (a regular
expression searched in each point's name: '^config=conv$' is conv alone):

  python -m experiments.sweep --sweep=experiments/architectures.py \
      --workdir=/tmp/sweeps/architectures --parallel=2 \
      --only='tc_resnet|tiny_conv|tiny_embedding_conv|single_fc|low_latency_conv|ds_cnn|bc_resnet|low_latency_svdf' \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz
"""

from configs import default

BASE_CONFIG = 'configs/tc_resnet.py'

# `not_a_command` off: every field it sets, at the plain default.
_PLAIN = default.get_config()
_WITH_NEGATIVES = default.not_a_command(default.get_config())
_NEGATIVES_OFF = {field: value for field, value in _PLAIN.items()
                  if _WITH_NEGATIVES[field] != value}

SHARED = {'how_many_training_steps': '2500,1000,500',
          'learning_rate': '0.003,0.001,0.0003',
          'optimizer': 'adam',
          'balance_classes': True,
          'time_masks': 2, 'time_mask_ms': 100.0,
          'freq_masks': 2, 'freq_mask_bins': 7,
          'label_smoothing': 0.1, 'volume_db': 6.0,
          'log_step_interval': 100, **_NEGATIVES_OFF}

ARCHITECTURES = ('tc_resnet', 'tiny_conv', 'tiny_embedding_conv', 'single_fc',
                 'low_latency_conv', 'ds_cnn', 'bc_resnet', 'low_latency_svdf',
                 'conv')


def sweep(add):
  for name in ARCHITECTURES:
    if name == 'ds_cnn':  # 10 MFCCs: masks of up to 7 would hide most.
      add(config=f'configs/{name}.py', freq_mask_bins=2)
    elif name == 'tc_resnet':  # The paper's width, the default when this ran.
      add(config='configs/tc_resnet.py:8')
    else:
      add(config=f'configs/{name}.py')
