"""The tutorial's `tiny_conv` (micro_speech), with its recipe.

micro_speech trains on the 'micro' front end (a log filterbank with noise
reduction, 20 ms hops); the closest front end here is 'logmel' with the same
window and hop: 49 frames of 40 bins.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.model_architecture = 'tiny_conv'
  config.preprocess = 'logmel'
  config.window_size_ms = 30.0
  config.window_stride_ms = 20.0
  config.model = ml_collections.ConfigDict({
      'dropout_rate': 0.5,
      'filter_shape': (10, 8),
      'filter_count': 8,
      'stride': (2, 2),
  })
  config.how_many_training_steps = '15000,3000'
  config.learning_rate = '0.001,0.0001'
  return config
