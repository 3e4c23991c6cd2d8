"""The tutorial's default model, with the tutorial's recipe.

Its schedule, optimiser and augmentation are the tutorial's; what teaches
it what is not a command (`default.not_a_command`: noise at real levels and
synthetic negatives, as the default model has) is on, so make the synthetic
folder first with experiments/synthesize_negatives.sh.
`--config=configs/conv.py:tutorial` is the tutorial's recipe alone (its
noise volumes, 10% unknown words, no synthetic speech).
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Args: arg: None, or 'tutorial' for the tutorial's recipe alone."""
  if arg not in (None, 'tutorial'):
    raise ValueError(f"conv config: the argument may be 'tutorial', got "
                     f'{arg!r}.')
  config = default.get_config()
  # oneDNN's convolutions (those TensorFlow runs on a CPU) in the training
  # step: see kws_jax/models/layers.py's Conv for the measured gain.
  config.train_convolutions = 'onednn'
  return config if arg == 'tutorial' else default.not_a_command(config)
