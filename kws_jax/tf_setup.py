"""TensorFlow set up to live beside JAX.

TensorFlow is used only for tf.data/TFDS (the input pipeline) and for the
TFLite conversion, both on the CPU. By default it grabs every GPU it sees
and most of their memory at its first op, which JAX needs for training and
evaluation in the same process; every TensorFlow user hides the GPUs from it
first through this module.
"""

import types


def hide_gpus_from_tf(tf: types.ModuleType) -> None:
  """Makes no GPU visible to TensorFlow (`tf`, the imported module).

  Takes the module rather than importing it, so that callers that import
  TensorFlow only when they need it (the TFLite export) keep doing so.
  Does nothing once TensorFlow has initialized its devices: then it has
  already chosen them, and setting them again would raise.
  """
  try:
    tf.config.set_visible_devices([], 'GPU')
  except (RuntimeError, ValueError):
    pass  # Already initialized; the devices cannot change any more.
