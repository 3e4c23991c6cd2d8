"""DS-CNN-S (Zhang et al., "Hello Edge", 2017) with the paper's input.

The paper's 10 MFCCs of 40 ms windows every 20 ms (49 x 10 per clip) and its
adam recipe (5e-4, then 1e-4).
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.model_architecture = 'ds_cnn'
  config.preprocess = 'mfcc'
  config.window_size_ms = 40.0
  config.window_stride_ms = 20.0
  config.feature_bin_count = 10
  config.model = ml_collections.ConfigDict({
      'channels': 64,
      'num_blocks': 4,
      'first_filter': (10, 4),
      'first_stride': (2, 2),
      'dropout_rate': 0.2,
      'bn_epsilon': 1e-3,
  })
  config.optimizer = 'adam'
  config.how_many_training_steps = '10000,10000'
  config.learning_rate = '0.0005,0.0001'
  return config
