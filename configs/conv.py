"""The tutorial's default model, with the tutorial's recipe."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  return default.get_config()
