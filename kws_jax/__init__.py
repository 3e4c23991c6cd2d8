"""Keyword spotting (Speech Commands) in JAX/Flax.

TensorFlow only reads the data (tf.data, TFDS) and converts models here, so
its oneDNN kernels (faster convolutions and matrix products) are of no use;
turned on, TensorFlow prints a notice about them from C++ at import, before
any log level applies, at the top of every tool's log. They are off, and
TensorFlow's C++ INFO lines (which CPU instructions it was built for) are
hidden, unless the environment says otherwise (e.g.
`TF_ENABLE_ONEDNN_OPTS=1`, as `benchmarks/peer_speed.py` sets it, where
TensorFlow trains; `TF_CPP_MIN_LOG_LEVEL=0`). TensorFlow reads them when it
is first imported, so this holds for a whole process that imports this
package first.
"""

import os

os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
