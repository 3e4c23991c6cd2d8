"""The tutorial's `tiny_embedding_conv`, on tiny_conv's front end and recipe."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.model_architecture = 'tiny_embedding_conv'
  config.preprocess = 'logmel'
  config.window_size_ms = 30.0
  config.window_stride_ms = 20.0
  config.model = ml_collections.ConfigDict({
      'dropout_rate': 0.5,
      'filter_shape': (10, 8),
      'filter_count': 8,
      'first_stride': (2, 2),
      'second_stride': (8, 8),
  })
  config.how_many_training_steps = '15000,3000'
  config.learning_rate = '0.001,0.0001'
  return config
