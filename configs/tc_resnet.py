"""TC-ResNet8 (Choi et al., 2019) on 40 MFCCs, trained with adam.

`--config=configs/tc_resnet.py:14` gives TC-ResNet14 (two blocks a stage),
`:8-1.5` / `:14-1.5` the 1.5x wide variants (default '8').
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Args: arg: '8', '14', '8-1.5' or '14-1.5'; None means '8'."""
  depth, _, width = (arg or '8').partition('-')
  if depth not in ('8', '14'):
    raise ValueError(f'tc_resnet config: depth must be 8 or 14, got {arg!r}.')
  config = default.get_config()
  config.model_architecture = 'tc_resnet'
  config.preprocess = 'mfcc'
  config.model = ml_collections.ConfigDict({
      'width_multiplier': float(width) if width else 1.0,
      'blocks_per_stage': 1 if depth == '8' else 2,
      'dropout_rate': 0.5,
  })
  config.optimizer = 'adam'
  config.how_many_training_steps = '6000,3000,1000'
  config.learning_rate = '0.003,0.001,0.0003'
  return config
