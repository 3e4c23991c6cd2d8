"""The TF speech_commands tutorial's architectures (its models.py), in NNX.

Inputs are features [B, T, F] (T frames, F bins), seen as one-channel images
with time as height and frequency as width, so a "filter 8 wide, 20 high"
of the tutorial is a (20, 8) kernel here. Layer shapes, padding, weight
initialisation (truncated normal) and where dropout goes follow the tutorial,
including two quirks kept on purpose: the fully connected stacks of
`low_latency_conv` and `low_latency_svdf` have no nonlinearity between their
layers, and `single_fc` has no dropout.

Parameter counts for 98 x 40 features and 12 classes:

  single_fc             47k
  conv                 927k  (about 180-200M multiply-adds per clip)
  low_latency_conv     950k
  low_latency_svdf     751k
  tiny_conv             95k
  tiny_embedding_conv    8k
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from kws_jax.models import layers


def _truncated_normal(stddev: float) -> nnx.Initializer:
  """The tutorial's initializer: normal(0, stddev) cut at two stddevs."""
  return nnx.initializers.truncated_normal(stddev=stddev)


def _conv(in_features: int, out_features: int, kernel: tuple[int, int],
          strides: tuple[int, int], padding: str, stddev: float,
          rngs: nnx.Rngs) -> layers.Conv:
  return layers.Conv(in_features, out_features, kernel, strides, padding=padding,
                  kernel_init=_truncated_normal(stddev),
                  bias_init=nnx.initializers.zeros, rngs=rngs)


def _dense(in_features: int, out_features: int, stddev: float,
           rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(in_features, out_features,
                    kernel_init=_truncated_normal(stddev),
                    bias_init=nnx.initializers.zeros, rngs=rngs)


def _same_size(size: int, stride: int) -> int:
  """Output length of a 'SAME'-padded conv or pool."""
  return -(-size // stride)


class SingleFC(nnx.Module):
  """One fully connected layer on the flattened features (no hidden layer)."""

  def __init__(self,
               *,
               num_classes: int,
               input_shape: tuple[int, int],
               rngs: nnx.Rngs,
               dropout_rate: float = 0.0,
               init_stddev: float = 0.001):
    """Args:

      num_classes: output classes.
      input_shape: (frames, bins).
      rngs: initialisation keys.
      dropout_rate: accepted so the shared default `config.model` works; as
        in the tutorial, this model has no dropout.
      init_stddev: weight initialisation stddev (tutorial: 0.001).
    """
    del dropout_rate  # The tutorial's single_fc ignores it too.
    frames, bins = input_shape
    self.fc = _dense(frames * bins, num_classes, init_stddev, rngs)

  def __call__(self, features: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Features [B, T, F] -> logits [B, num_classes]."""
    del rngs  # No dropout.
    return self.fc(features.reshape(features.shape[0], -1))


class Conv(nnx.Module):
  """The tutorial's default `conv` model (after Sainath & Parada, 2015).

  conv (20 x 8, 64) relu, dropout, 2x2 max-pool stride 2, conv (10 x 4, 64)
  relu, dropout, fully connected to the classes. All 'SAME' padded.
  """

  def __init__(self,
               *,
               num_classes: int,
               input_shape: tuple[int, int],
               rngs: nnx.Rngs,
               dropout_rate: float = 0.5,
               first_filter: tuple[int, int] = (20, 8),
               first_filter_count: int = 64,
               second_filter: tuple[int, int] = (10, 4),
               second_filter_count: int = 64,
               init_stddev: float = 0.01):
    """Args:

      num_classes: output classes.
      input_shape: (frames, bins).
      rngs: initialisation keys.
      dropout_rate: after each conv (tutorial: 0.5).
      first_filter: (time, frequency) kernel of the first conv.
      first_filter_count: its output channels.
      second_filter: (time, frequency) kernel of the second conv.
      second_filter_count: its output channels.
      init_stddev: weight initialisation stddev (tutorial: 0.01).
    """
    frames, bins = input_shape
    self.conv1 = _conv(1, first_filter_count, tuple(first_filter), (1, 1),
                       'SAME', init_stddev, rngs)
    self.conv2 = _conv(first_filter_count, second_filter_count,
                       tuple(second_filter), (1, 1), 'SAME', init_stddev, rngs)
    self.dropout = layers.Dropout(dropout_rate)
    flat = (_same_size(frames, 2) * _same_size(bins, 2) * second_filter_count)
    self.fc = _dense(flat, num_classes, init_stddev, rngs)

  def __call__(self, features: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Features [B, T, F] -> logits [B, num_classes]."""
    x = features[..., None]
    x = self.dropout(jax.nn.relu(self.conv1(x)), rngs=rngs)
    x = layers.max_pool(x, (2, 2))
    x = self.dropout(jax.nn.relu(self.conv2(x)), rngs=rngs)
    return self.fc(x.reshape(x.shape[0], -1))


class LowLatencyConv(nnx.Module):
  """The tutorial's `low_latency_conv`: one conv spanning all frames.

  conv (T x 8, 186 filters, 'VALID', stride 1) relu, dropout, then three
  fully connected layers (128, 128, classes) with dropout between them and,
  as in the tutorial, no nonlinearity.
  """

  def __init__(self,
               *,
               num_classes: int,
               input_shape: tuple[int, int],
               rngs: nnx.Rngs,
               dropout_rate: float = 0.5,
               filter_width: int = 8,
               filter_count: int = 186,
               fc_sizes: tuple[int, ...] = (128, 128),
               init_stddev: float = 0.01):
    """Args:

      num_classes: output classes.
      input_shape: (frames, bins).
      rngs: initialisation keys.
      dropout_rate: after the conv and each hidden fc layer.
      filter_width: conv kernel size along frequency (its height is all
        frames).
      filter_count: conv output channels.
      fc_sizes: hidden fully connected layer sizes.
      init_stddev: weight initialisation stddev (tutorial: 0.01).
    """
    frames, bins = input_shape
    self.conv = _conv(1, filter_count, (frames, filter_width), (1, 1),
                      'VALID', init_stddev, rngs)
    self.dropout = layers.Dropout(dropout_rate)
    sizes = [(bins - filter_width + 1) * filter_count, *fc_sizes]
    self.hidden = nnx.List([
        _dense(n_in, n_out, init_stddev, rngs)
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ])
    self.fc = _dense(sizes[-1], num_classes, init_stddev, rngs)

  def __call__(self, features: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Features [B, T, F] -> logits [B, num_classes]."""
    x = jax.nn.relu(self.conv(features[..., None]))  # [B, 1, F - w + 1, C]
    x = self.dropout(x.reshape(x.shape[0], -1), rngs=rngs)
    for layer in self.hidden:
      x = self.dropout(layer(x), rngs=rngs)
    return self.fc(x)


class LowLatencySVDF(nnx.Module):
  """The tutorial's `low_latency_svdf`, non-streaming.

  A single-value-decomposition filter layer (Nakkiran et al. 2015): each of
  `num_units * rank` filters projects every frame with a frequency filter,
  then weights the resulting sequence over the whole clip with a time
  filter; the `rank` filters of a unit are summed, a bias added and relu
  applied. Then dropout and fully connected layers (256, 256, classes) with
  dropout between them and no nonlinearity, as in the tutorial. A streaming
  version would keep the last `frames` projections in a memory.
  """

  def __init__(self,
               *,
               num_classes: int,
               input_shape: tuple[int, int],
               rngs: nnx.Rngs,
               dropout_rate: float = 0.5,
               rank: int = 2,
               num_units: int = 1280,
               fc_sizes: tuple[int, ...] = (256, 256),
               init_stddev: float = 0.01):
    """Args:

      num_classes: output classes.
      input_shape: (frames, bins); the time filters span all frames.
      rngs: initialisation keys.
      dropout_rate: after the SVDF layer and each hidden fc layer.
      rank: filters per unit.
      num_units: SVDF output units.
      fc_sizes: hidden fully connected layer sizes.
      init_stddev: weight initialisation stddev (tutorial: 0.01).
    """
    frames, bins = input_shape
    self.rank = rank
    self.num_units = num_units
    init = _truncated_normal(init_stddev)
    num_filters = rank * num_units
    self.frequency_filters = nnx.Param(
        init(rngs.params(), (bins, num_filters), jnp.float32))
    self.time_filters = nnx.Param(
        init(rngs.params(), (frames, num_filters), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((num_units,), jnp.float32))
    self.dropout = layers.Dropout(dropout_rate)
    sizes = [num_units, *fc_sizes]
    self.hidden = nnx.List([
        _dense(n_in, n_out, init_stddev, rngs)
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ])
    self.fc = _dense(sizes[-1], num_classes, init_stddev, rngs)

  def __call__(self, features: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Features [B, T, F] -> logits [B, num_classes]."""
    projected = features @ self.frequency_filters[...]  # [B, T, filters]
    filtered = jnp.einsum('btn,tn->bn', projected, self.time_filters[...])
    units = filtered.reshape(-1, self.num_units, self.rank).sum(axis=-1)
    x = self.dropout(jax.nn.relu(units + self.bias[...]), rngs=rngs)
    for layer in self.hidden:
      x = self.dropout(layer(x), rngs=rngs)
    return self.fc(x)


class TinyConv(nnx.Module):
  """The tutorial's `tiny_conv` (for microcontrollers).

  conv (10 x 8, 8 filters, stride 2 x 2, 'SAME') relu, dropout, fully
  connected to the classes.
  """

  def __init__(self,
               *,
               num_classes: int,
               input_shape: tuple[int, int],
               rngs: nnx.Rngs,
               dropout_rate: float = 0.5,
               filter_shape: tuple[int, int] = (10, 8),
               filter_count: int = 8,
               stride: tuple[int, int] = (2, 2),
               init_stddev: float = 0.01):
    """Args:

      num_classes: output classes.
      input_shape: (frames, bins).
      rngs: initialisation keys.
      dropout_rate: after the conv.
      filter_shape: (time, frequency) kernel.
      filter_count: conv output channels.
      stride: (time, frequency) conv stride.
      init_stddev: weight initialisation stddev (tutorial: 0.01).
    """
    frames, bins = input_shape
    self.conv = _conv(1, filter_count, tuple(filter_shape), tuple(stride),
                      'SAME', init_stddev, rngs)
    self.dropout = layers.Dropout(dropout_rate)
    flat = (_same_size(frames, stride[0]) * _same_size(bins, stride[1]) *
            filter_count)
    self.fc = _dense(flat, num_classes, init_stddev, rngs)

  def __call__(self, features: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Features [B, T, F] -> logits [B, num_classes]."""
    x = self.dropout(jax.nn.relu(self.conv(features[..., None])), rngs=rngs)
    return self.fc(x.reshape(x.shape[0], -1))


class TinyEmbeddingConv(nnx.Module):
  """The tutorial's `tiny_embedding_conv`.

  conv (10 x 8, 8, stride 2 x 2) relu, dropout, conv (10 x 8, 8, stride
  8 x 8) relu, dropout, fully connected to the classes; 'SAME' padding.
  """

  def __init__(self,
               *,
               num_classes: int,
               input_shape: tuple[int, int],
               rngs: nnx.Rngs,
               dropout_rate: float = 0.5,
               filter_shape: tuple[int, int] = (10, 8),
               filter_count: int = 8,
               first_stride: tuple[int, int] = (2, 2),
               second_stride: tuple[int, int] = (8, 8),
               init_stddev: float = 0.01):
    """Args:

      num_classes: output classes.
      input_shape: (frames, bins).
      rngs: initialisation keys.
      dropout_rate: after each conv.
      filter_shape: (time, frequency) kernel of both convs.
      filter_count: output channels of both convs.
      first_stride: (time, frequency) stride of the first conv.
      second_stride: (time, frequency) stride of the second conv.
      init_stddev: weight initialisation stddev (tutorial: 0.01).
    """
    frames, bins = input_shape
    self.conv1 = _conv(1, filter_count, tuple(filter_shape),
                       tuple(first_stride), 'SAME', init_stddev, rngs)
    self.conv2 = _conv(filter_count, filter_count, tuple(filter_shape),
                       tuple(second_stride), 'SAME', init_stddev, rngs)
    self.dropout = layers.Dropout(dropout_rate)
    out_frames = _same_size(_same_size(frames, first_stride[0]),
                            second_stride[0])
    out_bins = _same_size(_same_size(bins, first_stride[1]), second_stride[1])
    self.fc = _dense(out_frames * out_bins * filter_count, num_classes,
                     init_stddev, rngs)

  def __call__(self, features: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Features [B, T, F] -> logits [B, num_classes]."""
    x = self.dropout(jax.nn.relu(self.conv1(features[..., None])), rngs=rngs)
    x = self.dropout(jax.nn.relu(self.conv2(x)), rngs=rngs)
    return self.fc(x.reshape(x.shape[0], -1))
