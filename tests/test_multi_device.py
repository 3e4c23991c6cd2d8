"""Data parallelism: 2 devices, and 2 processes with jax.distributed.

Each run is a subprocess, because the number of CPU devices and the
distributed runtime are fixed when JAX starts.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_TRAIN = textwrap.dedent('''
    import sys
    from absl import logging
    import jax
    logging.set_verbosity(logging.INFO)
    if len(sys.argv) > 4:
      jax.distributed.initialize(coordinator_address=sys.argv[4],
                                 num_processes=2, process_id=int(sys.argv[5]))
    from configs import test as test_config
    from kws_jax import train
    config = test_config.get_config()
    config.data_dir, config.tfds_data_dir = sys.argv[1], sys.argv[2]
    config.keep_checkpoints = 10
    train.train_and_evaluate(config, sys.argv[3])
    print('DEVICES', jax.device_count(), 'PROCESSES', jax.process_count())
''')


def _run(args, devices=1):
  env = dict(os.environ, PYTHONPATH=REPO,
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  return subprocess.Popen([sys.executable, '-c', _TRAIN, *map(str, args)],
                          env=env, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=400):
  out, _ = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, out[-3000:]
  return out


def _final_params(workdir):
  from kws_jax import checkpoint
  ckpts = checkpoint.Checkpoints(checkpoint.checkpoint_dir(workdir),
                                 read_only=True)
  state, extra = ckpts.restore(ckpts.latest_step(), None)
  return state['params'], extra


def _leaves(tree):
  import jax
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture
def prepared(tiny_data_dir, tmp_path):
  """Prepares the TFDS data once so the parallel runs only read it."""
  tfds_dir = tmp_path / 'tfds'
  out = _finish(_run([tiny_data_dir, tfds_dir, tmp_path / 'single']))
  assert 'DEVICES 1 PROCESSES 1' in out
  return tiny_data_dir, tfds_dir


def test_two_devices_match_one_and_resume_on_one(prepared, tmp_path):
  data_dir, tfds_dir = prepared
  workdir = tmp_path / 'two'
  out = _finish(_run([data_dir, tfds_dir, workdir], devices=2))
  assert 'DEVICES 2 PROCESSES 1' in out
  one, _ = _final_params(tmp_path / 'single')
  two, _ = _final_params(workdir)
  for a, b in zip(_leaves(one), _leaves(two)):
    # Same global batch; only the order of floating-point sums differs.
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

  # The checkpoint of step 4, written from 2 devices, resumes on 1.
  for step in (6, 8):
    shutil.rmtree(workdir / 'checkpoints' / str(step))
  out = _finish(_run([data_dir, tfds_dir, workdir], devices=1))
  assert 'Training from step: 5' in out
  resumed, _ = _final_params(workdir)
  for a, b in zip(_leaves(one), _leaves(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_two_processes_train_together_and_write_one_set_of_checkpoints(
    prepared, tmp_path):
  data_dir, tfds_dir = prepared
  address = f'127.0.0.1:{_free_port()}'
  workdir = tmp_path / 'multi'
  procs = [_run([data_dir, tfds_dir, workdir, address, i]) for i in (0, 1)]
  outs = [_finish(p) for p in procs]
  assert all('DEVICES 2 PROCESSES 2' in out for out in outs)
  steps = sorted(int(d) for d in os.listdir(workdir / 'checkpoints')
                 if d.isdigit())
  assert steps == [2, 4, 6, 8]
  assert not [d for d in os.listdir(workdir / 'checkpoints')
              if 'tmp' in d]
  results = json.loads((workdir / 'results.json').read_text())
  assert results['test']['count'] > 0
  one, _ = _final_params(tmp_path / 'single')
  multi, _ = _final_params(workdir)
  for a, b in zip(_leaves(one), _leaves(multi)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
