"""The tutorial's `low_latency_svdf`, with the tutorial README's recipe."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.model_architecture = 'low_latency_svdf'
  config.model = ml_collections.ConfigDict({
      'dropout_rate': 0.5,
      'rank': 2,
      'num_units': 1280,
      'fc_sizes': (256, 256),
  })
  # README: --how_many_training_steps=100000,35000
  # --learning_rate=0.01,0.005
  config.how_many_training_steps = '100000,35000'
  config.learning_rate = '0.01,0.005'
  return config
