"""The tutorial's `single_fc`: one fully connected layer on the MFCCs."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.model_architecture = 'single_fc'
  # No dropout in this model (the tutorial ignores dropout_rate for it).
  config.model = ml_collections.ConfigDict({'init_stddev': 0.001})
  return config
