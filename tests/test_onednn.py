"""Tests for oneDNN's convolutions (kws_jax/models/onednn.py, layers.Conv).

Inside `layers.convolution_library('onednn')` a `layers.Conv` must give
what `nnx.Conv` gives (values and the gradients of input, kernel and
bias, to float32 rounding) through the custom calls, and outside it, or
where oneDNN's path does not apply, be `nnx.Conv` itself; the library is
built once, atomically, and a missing compiler or a failed build says
what to do.
"""

import os
import pathlib
import shutil

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kws_jax.models import layers
from kws_jax.models import onednn

_CASES = [
    # (input shape, kernel, strides, padding, bias)
    ((3, 20, 12, 4), (5, 3), 1, 'SAME', True),
    ((2, 21, 13, 1), (4, 2), (2, 3), 'VALID', False),  # One channel in.
    ((3, 17, 8), (3,), 2, 'SAME', True),  # 1-D, as tc_resnet's.
    ((2, 10, 9, 5), (3, 3), 1, [(2, 0), (1, 3)], True),  # Explicit pads.
    # As many channels out as in, 'SAME': input and output (and their
    # gradients) have one layout, as in the tutorial conv's second layer.
    ((3, 11, 7, 6), (3, 2), 1, 'SAME', True),
]


def _pair(in_shape, kernel, strides, padding, bias):
  """A layers.Conv and an nnx.Conv with the same (non-zero) parameters."""
  kwargs = dict(strides=strides, padding=padding, use_bias=bias,
                rngs=nnx.Rngs(0))
  ours = layers.Conv(in_shape[-1], 6, kernel, **kwargs)
  theirs = nnx.Conv(in_shape[-1], 6, kernel, **kwargs)
  if bias:
    ours.bias[...] = jnp.linspace(-1.0, 1.0, 6)
  nnx.update(theirs, nnx.state(ours))
  return ours, theirs


def _value_and_grads(conv, x, library):
  graphdef, params = nnx.split(conv)

  def loss(params, x):
    with layers.convolution_library(library):
      y = nnx.merge(graphdef, params)(x)
    return jnp.sum(y * jnp.sin(y)), y

  (_, y), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1),
                                             has_aux=True))(params, x)
  hlo = jax.jit(loss).lower(params, x).as_text()
  return y, jax.tree.leaves(grads), hlo


@pytest.mark.parametrize('case', _CASES)
def test_onednn_conv_equals_nnx_conv_with_gradients(case):
  in_shape = case[0]
  ours, theirs = _pair(*case)
  x = jnp.asarray(np.random.default_rng(1).standard_normal(in_shape),
                  jnp.float32)
  y, grads, hlo = _value_and_grads(ours, x, 'onednn')
  want_y, want_grads, want_hlo = _value_and_grads(theirs, x, 'onednn')
  assert 'kws_onednn_conv_forward' in hlo
  assert 'kws_onednn_conv' not in want_hlo  # nnx.Conv ignores the library.
  np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
  assert len(grads) == len(want_grads)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(got, want, rtol=1e-4,
                               atol=1e-5 * float(jnp.abs(want).max()))


def test_outside_the_library_context_it_is_nnx_conv():
  ours, theirs = _pair(*_CASES[0])
  x = jnp.ones(_CASES[0][0])
  y, _, hlo = _value_and_grads(ours, x, 'xla')
  assert 'kws_onednn' not in hlo
  np.testing.assert_array_equal(y, theirs(x))
  jaxpr = str(jax.make_jaxpr(ours)(x))  # No context at all.
  assert 'conv_general_dilated' in jaxpr and 'ffi' not in jaxpr


@pytest.mark.parametrize('kwargs', [
    dict(kernel_dilation=2), dict(feature_group_count=2),
    dict(padding='CIRCULAR')])
def test_what_onednns_path_does_not_cover_stays_with_xla(kwargs):
  conv = layers.Conv(4, 6, (3, 3), rngs=nnx.Rngs(0), **kwargs)
  reference = nnx.Conv(4, 6, (3, 3), rngs=nnx.Rngs(0), **kwargs)
  x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 9, 7, 4)),
                  jnp.float32)
  y, _, hlo = _value_and_grads(conv, x, 'onednn')
  assert 'kws_onednn' not in hlo
  np.testing.assert_array_equal(y, reference(x))


def test_an_unknown_library_is_refused():
  with pytest.raises(ValueError, match="'cudnn'.*'xla', 'onednn'"):
    with layers.convolution_library('cudnn'):
      pass


def test_the_library_is_built_once_and_whole(tmp_path, monkeypatch):
  monkeypatch.setenv('KWS_JAX_CACHE', str(tmp_path / 'cache'))
  built = onednn.build()
  assert built.parent == tmp_path / 'cache'
  assert built.name.startswith('kws_onednn_conv-') and built.suffix == '.so'
  stamp = built.stat().st_mtime_ns
  assert onednn.build() == built  # Kept: not built again.
  assert built.stat().st_mtime_ns == stamp
  assert os.listdir(built.parent) == [built.name]  # No partial files left.


def test_no_compiler_says_what_to_do(tmp_path, monkeypatch):
  monkeypatch.setenv('KWS_JAX_CACHE', str(tmp_path / 'cache'))
  monkeypatch.setenv('CXX', str(tmp_path / 'no-such-compiler'))
  with pytest.raises(onednn.OnednnUnavailable,
                     match=r'No C\+\+ compiler.*train_convolutions=xla'):
    onednn.build()


def test_a_failed_build_names_the_source_and_leaves_nothing(
    tmp_path, monkeypatch):
  failing = shutil.which('false')
  if failing is None:
    pytest.skip('no `false` program to stand in for a failing compiler')
  monkeypatch.setenv('KWS_JAX_CACHE', str(tmp_path / 'cache'))
  monkeypatch.setenv('CXX', failing)
  with pytest.raises(onednn.OnednnUnavailable,
                     match=r'Building .*onednn_conv\.cc failed'):
    onednn.build()
  assert not list(pathlib.Path(tmp_path / 'cache').iterdir())


def test_the_tutorial_conv_models_gradients_are_xlas():
  """The whole model of configs/conv.py (front end, both convolutions,
  pooling, dropout) in training mode: every parameter's gradient."""
  from configs import conv as conv_config  # pylint: disable=g-import-not-at-top
  from kws_jax import models  # pylint: disable=g-import-not-at-top
  model = models.create_model(conv_config.get_config('tutorial'), 12,
                              nnx.Rngs(0))
  model.train()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  audio = jnp.asarray(np.random.default_rng(3).uniform(-0.3, 0.3, (3, 16000)),
                      jnp.float32)

  def loss(params, library):
    with layers.convolution_library(library):
      logits = nnx.merge(graphdef, params, rest)(
          audio, rngs=nnx.Rngs(dropout=0))
    return jnp.sum(jax.nn.log_softmax(logits)[:, 0])

  grads = {library: jax.jit(jax.grad(loss), static_argnums=1)(params, library)
           for library in layers.CONVOLUTION_LIBRARIES}
  for got, want in zip(jax.tree.leaves(grads['onednn']),
                       jax.tree.leaves(grads['xla'])):
    assert float(jnp.linalg.norm(got - want)) <= 1e-4 * float(
        jnp.linalg.norm(want))


@pytest.mark.parametrize('in_shape,kwargs', [
    ((2, 9, 7, 4), dict(padding=[(-1, 0), (0, 0)])),  # Negative padding.
    ((2, 2, 7, 4), dict(padding='VALID')),  # Kernel taller than the input.
])
def test_padding_xla_alone_handles_stays_with_xla(in_shape, kwargs):
  conv = layers.Conv(4, 6, (3, 3), rngs=nnx.Rngs(0), **kwargs)
  reference = nnx.Conv(4, 6, (3, 3), rngs=nnx.Rngs(0), **kwargs)
  x = jnp.ones(in_shape)
  with layers.convolution_library('onednn'):
    jaxpr = str(jax.make_jaxpr(conv)(x))
    y = conv(x)
  assert 'ffi' not in jaxpr
  np.testing.assert_array_equal(y, reference(x))


def test_the_kernels_refuse_what_they_cannot_compute():
  x, kernel = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 4))
  with pytest.raises(Exception, match='paddings at least 0'):
    onednn.conv(x, kernel, jnp.zeros(4), (1, 1),
                ((-1, 0), (1, 1))).block_until_ready()
  with pytest.raises(Exception, match='one value per output channel'):
    onednn.conv(x, kernel, jnp.zeros(3), (1, 1),
                ((1, 1), (1, 1))).block_until_ready()


def test_vmap_over_the_kernels_runs_them_one_by_one():
  x = jnp.asarray(np.random.default_rng(4).standard_normal((3, 2, 6, 5, 2)),
                  jnp.float32)
  kernel = jnp.asarray(np.random.default_rng(5).standard_normal((3, 3, 2, 4)),
                       jnp.float32)
  pads = ((1, 1), (1, 1))
  got = jax.vmap(lambda x: onednn.conv(x, kernel, jnp.zeros(4), (1, 1),
                                       pads))(x)
  want = jax.vmap(lambda x: jax.lax.conv_general_dilated(
      x, kernel, (1, 1), pads, dimension_numbers=('NHWC', 'HWIO', 'NHWC')))(x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
