"""Tests for the JAX-against-TensorFlow benchmark (benchmarks/peer_speed.py).

The comparison is only fair if the Keras twins are the same networks and
get the same features: parameter counts, output shapes and front-end
values are checked against the project's models.
"""

import os
import subprocess
import sys

from flax import nnx
import numpy as np
import pytest

tf = pytest.importorskip('tensorflow')

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import keras_twins
from benchmarks import peer_speed
from benchmarks import train_steps
from kws_jax import features
from kws_jax import models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('name', keras_twins.TWINS)
def test_twin_has_the_models_parameters_and_outputs(name):
  config, _ = train_steps.load_config(name)
  twin = keras_twins.build(config, 12)
  ours = models.create_model(config, 12, nnx.Rngs(0))
  assert (sum(int(np.prod(v.shape)) for v in twin.trainable_variables) ==
          models.count_params(ours))
  frames = features.num_frames(config)
  x = np.zeros((3, frames, config.feature_bin_count), np.float32)
  assert tuple(twin(x, training=False).shape) == (3, 12)


@pytest.mark.parametrize('name', ['conv', 'bc_resnet', 'ds_cnn'])
def test_twin_frontend_gives_the_projects_features(name):
  """mfcc (conv), log-mel (bc_resnet), and mfcc with 40 ms / 20 ms frames."""
  config, _ = train_steps.load_config(name)
  audio = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 16000))
  audio = audio.astype(np.float32)
  want = np.asarray(features.Frontend.from_config(config)(audio))
  got = keras_twins.frontend(config)(tf.constant(audio)).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_unknown_twin_is_refused():
  config, _ = train_steps.load_config('tiny_conv')
  with pytest.raises(ValueError, match='No Keras twin'):
    keras_twins.build(config, 12)


def test_cpu_peak_is_derived_from_the_machine():
  peak, derivation = peer_speed.cpu_peak_gflops()
  assert peak > 0
  assert f'{len(os.sched_getaffinity(0))} cores' in derivation


def test_benchmark_prints_every_step_and_the_table():
  result = subprocess.run(
      [sys.executable, '-m', 'benchmarks.peer_speed', '--models=tc_resnet',
       '--batch_size=2', '--steps=2', '--warmup=1'],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=True)
  out = result.stdout
  assert 'tc_resnet step 1/2: train JAX' in out
  assert 'tc_resnet step 2/2: train JAX' in out
  row = [line for line in out.splitlines() if line.startswith('| `tc_resnet`')]
  assert len(row) == 1
  ratio = float(row[0].split('|')[5].strip().strip('*'))
  assert ratio > 0


def test_benchmark_refuses_a_model_without_twin():
  result = subprocess.run(
      [sys.executable, '-m', 'benchmarks.peer_speed', '--models=tiny_conv'],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode != 0
  assert 'no Keras twin of tiny_conv' in result.stderr
