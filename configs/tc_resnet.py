"""TC-ResNet8-1.2 (Choi et al., 2019, 1.2x wide) on 40 MFCCs, with adam.

The default model: TC-ResNet8 at 1.2 times the paper's channel counts
(90.6k parameters, inside the shipped model's 100k budget), which scored
0.9 points of validation accuracy over the paper's width with the default
recipe at 4000 steps, and 1.3 more at 8000 (three seeds each,
experiments/capacity.py).
`--config=configs/tc_resnet.py:8` gives the paper's TC-ResNet8 (65k),
`:14` TC-ResNet14 (two blocks a stage), `:8-1.5` / `:14-1.5` the 1.5x wide
variants; any width may follow the dash.
"""

import ml_collections

from configs import default

# What the default model trained and decided with until the evening of
# 2026-12-05 (4000 steps, `not_a_command`'s offset); the sweeps of that time
# pin it, so that their tables stay reproducible.
UNTIL_2026_12_05 = {'how_many_training_steps': '2500,1000,500',
                    'unknown_offset': 0.5}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Args: arg: '8', '14', '8-1.5', '14-1.5', ...; None means '8-1.2'."""
  depth, _, width = (arg or '8-1.2').partition('-')
  if depth not in ('8', '14'):
    raise ValueError(f'tc_resnet config: depth must be 8 or 14, got {arg!r}.')
  try:
    width_multiplier = float(width) if width else 1.0
  except ValueError:
    raise ValueError('tc_resnet config: the width after the dash must be a '
                     f'number (e.g. 8-1.5), got {arg!r}.') from None
  config = default.get_config()
  config.model_architecture = 'tc_resnet'
  config.preprocess = 'mfcc'
  config.model = ml_collections.ConfigDict({
      'width_multiplier': width_multiplier,
      'blocks_per_stage': 1 if depth == '8' else 2,
      'dropout_rate': 0.5,
      'bn_epsilon': 1e-3,
  })
  config.optimizer = 'adam'
  # 8000 steps, 40 epochs of the 19.9k training clips with the synthetic
  # speech: validation accuracy 93.8 +/- 0.2% against 92.5 +/- 0.4% at
  # 4000 steps (20 epochs), three seeds each, and the unseen words about
  # the same (experiments/capacity.py, the 'w1.2_x2' points). Each rate is
  # held as long as at 4000 steps, scaled by two.
  config.how_many_training_steps = '5000,2000,1000'
  config.learning_rate = '0.003,0.001,0.0003'
  # The recipe that scored best on validation in experiments/recipe.py:
  # every word drawn equally often, SpecAugment, label smoothing and random
  # gain (+1.2 points of validation accuracy over the plain recipe).
  config.balance_classes = True
  config.time_masks = 2
  config.time_mask_ms = 100.0
  config.freq_masks = 2
  config.freq_mask_bins = 7
  config.label_smoothing = 0.1
  config.volume_db = 6.0
  # What is not a command (experiments/negatives.py, point 8): make the
  # synthetic folder first with experiments/synthesize_negatives.sh.
  config = default.not_a_command(config)
  # The offset rule (experiments/unknown_offset.py: the largest offset that
  # costs at most 1 point of validation command recall) on this recipe's
  # three 8000-step seeds: 0.75 (0.76 points; unseen words 71.8% at 0.5,
  # 74.8% at 0.75). `not_a_command` keeps 0.5, chosen on TC-ResNet8 at
  # 4000 steps.
  config.unknown_offset = 0.75
  return config
