"""Tests for the shared layers' fast paths (kws_jax/models/layers.py).

Each fast path must equal what it replaces: `conv_general_dilated` and
`lax.conv_general_dilated` in value and both gradients, `max_pool` and
`nnx.max_pool` (ties included); `Dropout` drops at its rate, keeps the
mean and takes what `nnx.Dropout` takes.
"""

from flax import nnx
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from kws_jax.models import layers

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _random(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape),
                     jnp.float32)


def _value_and_grads(conv, x, w, strides, padding, **kwargs):
  def f(x, w):
    return conv(x, w, strides, padding, dimension_numbers=_NHWC, **kwargs)
  y, vjp = jax.vjp(f, x, w)
  return (y, *vjp(_random(y.shape, 7).astype(y.dtype)))


@pytest.mark.parametrize('x_shape, w_shape, padding', [
    ((3, 98, 40, 1), (20, 8, 1, 64), 'SAME'),   # tutorial conv, layer 1
    ((2, 49, 20, 64), (10, 4, 64, 64), 'SAME'),  # tutorial conv, layer 2
    ((2, 98, 40, 1), (98, 8, 1, 5), 'VALID'),    # low_latency_conv
    ((2, 11, 7, 3), (3, 2, 3, 4), ((2, 0), (1, 3))),
    ((2, 6, 5, 2), (2, 2, 2, 3), ((4, 4), (0, 0))),  # pads wider than kernel
])
def test_conv_equals_lax_in_value_and_gradients(x_shape, w_shape, padding):
  x, w = _random(x_shape, 0), _random(w_shape, 1)
  want = _value_and_grads(lax.conv_general_dilated, x, w, (1, 1), padding)
  got = jax.jit(lambda x, w: _value_and_grads(
      layers.conv_general_dilated, x, w, (1, 1), padding))(x, w)
  for name, a, b in zip(('output', 'input grad', 'kernel grad'), want, got):
    assert a.shape == b.shape, name
    np.testing.assert_allclose(b, a, rtol=2e-4,
                               atol=2e-5 * float(jnp.abs(a).max()),
                               err_msg=name)


@pytest.mark.parametrize('kwargs', [
    dict(strides=(2, 2)),
    dict(strides=(1, 1), rhs_dilation=(2, 1)),
    dict(strides=(1, 1), feature_group_count=2),
])
def test_conv_falls_back_to_lax_for_other_convolutions(kwargs):
  strides = kwargs.pop('strides')
  x = _random((2, 9, 8, 4), 0)
  w = _random((3, 3, 4 // kwargs.get('feature_group_count', 1), 6), 1)
  want = _value_and_grads(lax.conv_general_dilated, x, w, strides, 'SAME',
                          **kwargs)
  got = _value_and_grads(layers.conv_general_dilated, x, w, strides, 'SAME',
                         **kwargs)
  for a, b in zip(want, got):
    np.testing.assert_array_equal(b, a)


def test_conv_module_keeps_nnx_conv_parameters():
  """Same parameter tree as a plain nnx.Conv: checkpoints stay compatible."""
  plain = nnx.Conv(1, 4, (3, 2), rngs=nnx.Rngs(0))
  fast = nnx.Conv(1, 4, (3, 2), rngs=nnx.Rngs(0),
                  conv_general_dilated=layers.conv_general_dilated)
  assert (jax.tree.map(jnp.shape, nnx.state(plain, nnx.Param)) ==
          jax.tree.map(jnp.shape, nnx.state(fast, nnx.Param)))
  x = _random((2, 5, 4, 1), 3)
  np.testing.assert_array_equal(fast(x), plain(x))


@pytest.mark.parametrize('shape', [(2, 7, 5, 3), (2, 8, 6, 3), (1, 3, 1, 2)])
def test_max_pool_equals_nnx_max_pool_with_ties(shape):
  x = jax.nn.relu(_random(shape, 0))  # Zeros: ties inside windows.
  x = x.at[0, 0, 0, 0].set(5.0).at[0, 1, 0, 0].set(5.0)  # A positive tie.

  def reference(x):
    return nnx.max_pool(x, (2, 2), strides=(2, 2), padding='SAME')

  y, vjp = jax.vjp(reference, x)
  y_fast, vjp_fast = jax.vjp(lambda x: layers.max_pool(x, (2, 2)), x)
  np.testing.assert_array_equal(y_fast, y)
  g = _random(y.shape, 1)
  np.testing.assert_array_equal(vjp_fast(g)[0], vjp(g)[0])


@pytest.mark.parametrize('dtype', [jnp.bfloat16, jnp.float16])
def test_conv_gradients_keep_half_precision(dtype):
  x, w = _random((2, 9, 8, 3), 0).astype(dtype), _random((3, 2, 3, 4), 1)
  w = w.astype(dtype)
  got = _value_and_grads(layers.conv_general_dilated, x, w, (1, 1), 'SAME')
  want = _value_and_grads(lax.conv_general_dilated, x, w, (1, 1), 'SAME')
  for a, b in zip(want, got):
    assert b.dtype == dtype
    np.testing.assert_allclose(np.float32(b), np.float32(a), rtol=0.05,
                               atol=0.05 * float(jnp.abs(a).max()))


def test_tutorial_models_take_the_fast_gradients():
  """nnx.Conv really calls the fast path (flax could bypass it by passing
  arguments it does not take), and the pooling's."""
  from configs import conv  # pylint: disable=g-import-not-at-top
  from kws_jax import models  # pylint: disable=g-import-not-at-top
  model = models.create_model(conv.get_config(), 12, nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss(params, audio):
    return nnx.merge(graphdef, params, rest)(
        audio, rngs=nnx.Rngs(dropout=0)).sum()

  jaxpr = str(jax.make_jaxpr(jax.grad(loss))(params, jnp.zeros((1, 16000))))
  # Two convolutions and one pooling, each a custom VJP.
  assert jaxpr.count('custom_vjp_call') >= 3


@pytest.mark.parametrize('rate', [0.1, 0.5, 0.9])
def test_dropout_drops_at_its_rate_and_keeps_the_mean(rate):
  dropout = layers.Dropout(rate)
  x = jnp.ones((63, 101, 7))  # Odd: the last word of each row is half used.
  y = dropout(x, rngs=nnx.Rngs(dropout=0))
  dropped = float(jnp.mean(y == 0))
  assert abs(dropped - rate) < 0.01
  # Kept values are scaled by the keep probability at 1/65536 resolution.
  np.testing.assert_allclose(y[y != 0], 1.0 / (1.0 - rate), rtol=1e-4)
  other = dropout(x, rngs=nnx.Rngs(dropout=1))
  assert not bool(jnp.all((y == 0) == (other == 0)))


def test_dropout_takes_what_nnx_dropout_takes():
  """Eval mode, edge rates, keys of every kind, nnx's errors."""
  x = jnp.ones((4, 5))
  dropout = layers.Dropout(0.5)
  dropout.eval()
  np.testing.assert_array_equal(dropout(x), x)
  np.testing.assert_array_equal(layers.Dropout(0.0)(x), x)
  np.testing.assert_array_equal(
      layers.Dropout(1.0)(x, rngs=nnx.Rngs(dropout=0)), jnp.zeros_like(x))
  by_key = layers.Dropout(0.5)(x, rngs=jax.random.key(3))
  by_stream = layers.Dropout(0.5)(x, rngs=nnx.Rngs(dropout=3).dropout)
  assert set(np.unique(by_key)) <= {0.0, 2.0}
  assert set(np.unique(by_stream)) <= {0.0, 2.0}
  for reference in (nnx.Dropout, layers.Dropout):
    with pytest.raises(ValueError, match='rngs'):
      reference(0.5)(x)
    with pytest.raises(ValueError, match='deterministic'):
      reference(0.5, deterministic=None)(x, rngs=nnx.Rngs(dropout=0))
