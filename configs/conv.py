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
  # XLA hands convolutions to the YNNPACK library by default; it computes
  # this model's kernel gradients (a convolution over the batch) slowly.
  # Without it the training step of benchmarks/train_steps.py took 0.91 s
  # instead of 1.45 s (batch 100, 2-core AVX-512 CPU, 2026-12-05; the
  # second conv's forward and backward 0.29-0.43 s instead of 0.74-0.83 s).
  config.train_compiler_options.xla_cpu_experimental_ynn_fusion_type = (
      'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT')
  return config if arg == 'tutorial' else default.not_a_command(config)
