"""BC-ResNet (Kim et al., 2021) on 40 log-mel bands, trained with adam.

The scale is the config argument: `--config=configs/bc_resnet.py:3` trains
BC-ResNet-3 (default 1; the paper uses 1, 1.5, 2, 3, 6, 8).
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Args: arg: the width scale as a string, e.g. '1.5'; None means 1."""
  scale = float(arg) if arg else 1.0
  if scale.is_integer():
    scale = int(scale)
  config = default.get_config()
  config.model_architecture = 'bc_resnet'
  config.preprocess = 'logmel'
  config.model = ml_collections.ConfigDict({
      'scale': scale,
      'sub_bands': 5,
      'dropout_rate': 0.1,
  })
  config.optimizer = 'adam'
  # About 30 epochs of the v0.02 training split at batch 100, falling rates.
  config.how_many_training_steps = '6000,3000,1000'
  config.learning_rate = '0.003,0.001,0.0003'
  return config
