"""A tiny, fast config for CPU tests: few steps, small batches."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data_url = ''
  config.wanted_words = ('yes', 'no')
  config.model_architecture = 'tiny_conv'
  config.model = ml_collections.ConfigDict({'dropout_rate': 0.5})
  config.how_many_training_steps = '6,2'
  config.learning_rate = '0.01,0.001'
  config.optimizer = 'adam'
  config.batch_size = 8
  config.eval_step_interval = 4
  config.save_step_interval = 2
  config.eval_batch_size = 16
  return config
