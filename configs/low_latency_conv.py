"""The tutorial's `low_latency_conv`, with the tutorial README's recipe."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.model_architecture = 'low_latency_conv'
  config.model = ml_collections.ConfigDict({
      'dropout_rate': 0.5,
      'filter_width': 8,
      'filter_count': 186,
      'fc_sizes': (128, 128),
  })
  # README: --how_many_training_steps=20000,6000 --learning_rate=0.01,0.001
  config.how_many_training_steps = '20000,6000'
  config.learning_rate = '0.01,0.001'
  return config
