"""Tests for the shared layers' fast paths (kws_jax/models/layers.py).

Each fast path must equal what it replaces: `max_pool` and `nnx.max_pool`
(ties included) in value and gradient; `Dropout` drops at its rate, keeps
the mean, draws the fewest bits its rate needs and takes what
`nnx.Dropout` takes.
"""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kws_jax.models import layers

def _random(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape),
                     jnp.float32)


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


def test_tutorial_models_take_the_fast_pooling_gradient():
  from configs import conv  # pylint: disable=g-import-not-at-top
  from kws_jax import models  # pylint: disable=g-import-not-at-top
  model = models.create_model(conv.get_config(), 12, nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss(params, audio):
    return nnx.merge(graphdef, params, rest)(
        audio, rngs=nnx.Rngs(dropout=0)).sum()

  jaxpr = str(jax.make_jaxpr(jax.grad(loss))(params, jnp.zeros((1, 16000))))
  assert jaxpr.count('custom_vjp_call') == 1
  assert 'select_and_scatter' not in jaxpr


@pytest.mark.parametrize('rate', [0.1, 0.5, 0.9])
def test_dropout_drops_at_its_rate_and_keeps_the_mean(rate):
  dropout = layers.Dropout(rate)
  x = jnp.ones((63, 101, 7))  # Odd: the last word of each row is half used.
  y = dropout(x, rngs=nnx.Rngs(dropout=0))
  dropped = float(jnp.mean(y == 0))
  assert abs(dropped - rate) < 0.01
  # Kept values are scaled by the keep probability at the mask's resolution.
  np.testing.assert_allclose(y[y != 0], 1.0 / (1.0 - rate), rtol=1e-4)
  other = dropout(x, rngs=nnx.Rngs(dropout=1))
  assert not bool(jnp.all((y == 0) == (other == 0)))


@pytest.mark.parametrize('rate, bits', [
    (0.5, 1), (0.25, 2), (0.75, 2), (0.125, 4), (1 / 256, 8), (0.1, 16),
    (0.3, 16)])
def test_dropout_draws_the_fewest_bits_that_express_its_rate(rate, bits):
  assert layers.mask_bits(rate) == bits


def test_dropout_masks_are_the_bits_of_the_random_words():
  """Element k of a row is bits [k*b, (k+1)*b) of word k // (32/b), lowest
  first: at rate 0.5 the mask is the words' bits themselves; at 16 bits it
  is the halves of each word (what the 16-bit mask always drew)."""
  x = jnp.ones((3, 70))
  key = jax.random.key(5)
  words = np.asarray(jax.random.bits(key, (3, 3), jnp.uint32))
  bits = (words[..., None] >> np.arange(32, dtype=np.uint32)) & 1
  want = bits.reshape(3, -1)[:, :70] >= 1
  np.testing.assert_array_equal(layers.Dropout(0.5)(x, rngs=key) != 0, want)
  words = np.asarray(jax.random.bits(key, (3, 35), jnp.uint32))
  halves = words.view(np.uint16).reshape(3, -1)[:, :70]
  np.testing.assert_array_equal(layers.Dropout(0.1)(x, rngs=key) != 0,
                                halves >= round(0.1 * 65536))


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
