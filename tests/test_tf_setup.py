"""Tests for kws_jax.tf_setup."""

import types

from kws_jax import tf_setup


def _fake_tf(error=None):
  calls = []

  def set_visible_devices(devices, kind):
    calls.append((devices, kind))
    if error:
      raise error

  tf = types.SimpleNamespace(config=types.SimpleNamespace(
      set_visible_devices=set_visible_devices))
  return tf, calls


def test_hides_every_gpu():
  tf, calls = _fake_tf()
  tf_setup.hide_gpus_from_tf(tf)
  assert calls == [([], 'GPU')]


def test_too_late_is_not_an_error():
  # TF refuses once its devices are initialized; they are chosen by then.
  tf, calls = _fake_tf(RuntimeError('Visible devices cannot be modified'))
  tf_setup.hide_gpus_from_tf(tf)
  assert calls == [([], 'GPU')]
