"""The project's networks rebuilt in Keras (TensorFlow), for speed comparisons.

Each twin has the layers, shapes, paddings, strides and trainable parameter
count of the NNX model of the same name with that architecture's default
settings (`configs/<name>.py`; tested), so a training step of one costs the
same arithmetic as a step of the other, with one exception: TF's CPU
depthwise convolution takes equal strides only, so `bc_resnet`'s twin runs
its two frequency-strided depthwise layers at stride 1 and keeps every
other bin (twice those small layers' work), and its SubSpectralNorm moves
the bands beside the channels with transposes. Weights are not shared: the twins
exist to be timed, not to be trained. The front end uses the project's own
tables (window, mel/pooling projection, DCT), written in TF ops.

Only what `benchmarks/peer_speed.py` compares is here: `conv` (the
tutorial's default), `tc_resnet`, `ds_cnn` and `bc_resnet`.
"""

from __future__ import annotations

from typing import Callable

import keras
import ml_collections
import tensorflow as tf

from kws_jax import features
from kws_jax.models import bc_resnet

TWINS = ('conv', 'tc_resnet', 'ds_cnn', 'bc_resnet')


def frontend(config: ml_collections.ConfigDict
             ) -> Callable[[tf.Tensor], tf.Tensor]:
  """Audio [B, L] -> features [B, frames, bins], as `features.Frontend`."""
  jax_frontend = features.Frontend.from_config(config)
  tables = jax_frontend.tables
  window = tf.constant(tables.window)
  projection = tf.constant(tables.projection)
  dct = None if tables.dct is None else tf.constant(tables.dct)

  def apply(audio: tf.Tensor) -> tf.Tensor:
    frames = tf.signal.frame(audio, jax_frontend.window_samples,
                             jax_frontend.stride_samples) * window
    spectrum = tf.signal.rfft(frames, [jax_frontend.fft_length])
    power = tf.square(tf.math.real(spectrum)) + tf.square(
        tf.math.imag(spectrum))
    if jax_frontend.preprocess == 'average':
      return power @ projection
    if jax_frontend.preprocess == 'logmel':
      return tf.math.log(power @ projection + jax_frontend.logmel_log_floor)
    mel = tf.sqrt(power) @ projection
    return tf.math.log(tf.maximum(mel, jax_frontend.mfcc_log_floor)) @ dct

  return apply


def _batch_norm(momentum: float, epsilon: float) -> keras.layers.Layer:
  return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon)


def _conv(settings: dict, inputs: keras.KerasTensor,
          num_classes: int) -> keras.KerasTensor:
  x = keras.layers.Reshape((*inputs.shape[1:], 1))(inputs)
  x = keras.layers.Conv2D(settings.get('first_filter_count', 64),
                          tuple(settings.get('first_filter', (20, 8))),
                          padding='same', activation='relu')(x)
  x = keras.layers.Dropout(settings.get('dropout_rate', 0.5))(x)
  x = keras.layers.MaxPooling2D(2, 2, padding='same')(x)
  x = keras.layers.Conv2D(settings.get('second_filter_count', 64),
                          tuple(settings.get('second_filter', (10, 4))),
                          padding='same', activation='relu')(x)
  x = keras.layers.Dropout(settings.get('dropout_rate', 0.5))(x)
  return keras.layers.Dense(num_classes)(keras.layers.Flatten()(x))


def _tc_resnet(settings: dict, inputs: keras.KerasTensor,
               num_classes: int) -> keras.KerasTensor:
  k = settings.get('width_multiplier', 1.0)
  kernel = settings.get('kernel_size', 9)
  momentum = settings.get('bn_momentum', 0.9)
  x = keras.layers.Conv1D(int(settings.get('stem_channels', 16) * k), 3,
                          padding='same', use_bias=False)(inputs)
  for base in settings.get('channels', (24, 32, 48)):
    out = int(base * k)
    for i in range(settings.get('blocks_per_stage', 1)):
      stride = 2 if i == 0 else 1
      y = keras.layers.Conv1D(out, kernel, strides=stride, padding='same',
                              use_bias=False)(x)
      y = keras.layers.ReLU()(_batch_norm(momentum, 1e-3)(y))
      y = keras.layers.Conv1D(out, kernel, padding='same', use_bias=False)(y)
      y = _batch_norm(momentum, 1e-3)(y)
      if stride != 1 or x.shape[-1] != out:
        x = keras.layers.Conv1D(out, 1, strides=stride, use_bias=False)(x)
        x = keras.layers.ReLU()(_batch_norm(momentum, 1e-3)(x))
      x = keras.layers.ReLU()(x + y)
  x = keras.layers.GlobalAveragePooling1D()(x)
  x = keras.layers.Dropout(settings.get('dropout_rate', 0.5))(x)
  return keras.layers.Dense(num_classes)(x)


def _ds_cnn(settings: dict, inputs: keras.KerasTensor,
            num_classes: int) -> keras.KerasTensor:
  channels = settings.get('channels', 64)
  momentum = settings.get('bn_momentum', 0.9)
  x = keras.layers.Reshape((*inputs.shape[1:], 1))(inputs)
  x = keras.layers.Conv2D(channels, tuple(settings.get('first_filter', (10, 4))),
                          strides=tuple(settings.get('first_stride', (2, 2))),
                          padding='same', use_bias=False)(x)
  x = keras.layers.ReLU()(_batch_norm(momentum, 1e-3)(x))
  for _ in range(settings.get('num_blocks', 4)):
    x = keras.layers.DepthwiseConv2D(3, padding='same', use_bias=False)(x)
    x = keras.layers.ReLU()(_batch_norm(momentum, 1e-3)(x))
    x = keras.layers.Conv2D(channels, 1, use_bias=False)(x)
    x = keras.layers.ReLU()(_batch_norm(momentum, 1e-3)(x))
  x = keras.layers.GlobalAveragePooling2D()(x)
  x = keras.layers.Dropout(settings.get('dropout_rate', 0.2))(x)
  return keras.layers.Dense(num_classes)(x)


def _sub_spectral_norm(x: keras.KerasTensor, sub_bands: int, momentum: float,
                       epsilon: float) -> keras.KerasTensor:
  """BatchNorm per (band, channel): bands moved next to the channels."""
  _, t, f, c = x.shape
  s = bc_resnet.largest_divisor_at_most(f, sub_bands)
  y = keras.layers.Reshape((t, s, f // s, c))(x)
  y = keras.layers.Permute((1, 3, 2, 4))(y)
  y = keras.layers.Reshape((t, f // s, s * c))(y)
  y = _batch_norm(momentum, epsilon)(y)
  y = keras.layers.Reshape((t, f // s, s, c))(y)
  y = keras.layers.Permute((1, 3, 2, 4))(y)
  return keras.layers.Reshape((t, f, c))(y)


def _bc_resnet(settings: dict, inputs: keras.KerasTensor,
               num_classes: int) -> keras.KerasTensor:
  scale = settings.get('scale', 1)
  sub_bands = settings.get('sub_bands', 5)
  rate = settings.get('dropout_rate', 0.1)
  momentum = settings.get('bn_momentum', 0.9)
  epsilon = settings.get('bn_epsilon', 1e-5)
  x = keras.layers.Reshape((*inputs.shape[1:], 1))(inputs)
  x = keras.layers.Conv2D(int(bc_resnet.STEM_CHANNELS * scale), 5,
                          strides=(1, 2), padding='same', use_bias=False)(x)
  x = keras.layers.ReLU()(_batch_norm(momentum, epsilon)(x))
  for num_blocks, base, dilation, stride in bc_resnet.STAGES:
    out = int(base * scale)
    for i in range(num_blocks):
      shortcut = x
      transition = x.shape[-1] != out
      if transition:
        x = keras.layers.Conv2D(out, 1, use_bias=False)(x)
        x = keras.layers.ReLU()(_batch_norm(momentum, epsilon)(x))
      x2d = keras.layers.DepthwiseConv2D((1, 3), padding='same',
                                         use_bias=False)(x)
      if i == 0 and stride > 1:
        # TF's CPU depthwise conv takes equal strides only: stride 1, then
        # every other bin from the second (= 'same' with stride 2 for an
        # even number of bins, as here). TF does that layer's work twice.
        x2d = keras.layers.Lambda(lambda m: m[:, :, 1::2])(x2d)
      x2d = _sub_spectral_norm(x2d, sub_bands, momentum, epsilon)
      x1d = keras.layers.Lambda(lambda m: tf.reduce_mean(m, axis=2))(x2d)
      x1d = keras.layers.DepthwiseConv1D(3, dilation_rate=dilation,
                                         padding='same', use_bias=False)(x1d)
      x1d = keras.layers.Activation('silu')(
          _batch_norm(momentum, epsilon)(x1d))
      x1d = keras.layers.Conv1D(out, 1, use_bias=False)(x1d)
      x1d = keras.layers.SpatialDropout1D(rate)(x1d)
      x = x2d + keras.layers.Reshape((x1d.shape[1], 1, out))(x1d)
      if not transition:
        x = x + shortcut
      x = keras.layers.ReLU()(x)
  x = keras.layers.ZeroPadding2D(((2, 2), (0, 0)))(x)
  x = keras.layers.DepthwiseConv2D((5, x.shape[2]), use_bias=False)(x)
  x = keras.layers.Reshape((x.shape[1], x.shape[3]))(x)
  x = keras.layers.Conv1D(int(bc_resnet.HEAD_CHANNELS * scale), 1,
                          use_bias=False)(x)
  x = keras.layers.ReLU()(_batch_norm(momentum, epsilon)(x))
  x = keras.layers.GlobalAveragePooling1D()(x)
  return keras.layers.Dense(num_classes)(x)


_BUILDERS = {'conv': _conv, 'tc_resnet': _tc_resnet, 'ds_cnn': _ds_cnn,
             'bc_resnet': _bc_resnet}


def build(config: ml_collections.ConfigDict, num_classes: int) -> keras.Model:
  """The Keras twin of `config.model_architecture`, features in, logits out."""
  name = config.model_architecture
  if name not in _BUILDERS:
    raise ValueError(f'No Keras twin of {name!r}; twins: {", ".join(TWINS)}.')
  inputs = keras.Input((features.num_frames(config), config.feature_bin_count))
  outputs = _BUILDERS[name](dict(config.model), inputs, num_classes)
  return keras.Model(inputs, outputs, name=f'{name}_twin')
