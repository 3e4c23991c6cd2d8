r"""Trains a keyword-spotting model.

  python -m kws_jax.main --config=configs/bc_resnet.py --workdir=/tmp/kws \
      --config.data_url=../shared/data/speech_commands_dev.tar.gz

Any config field can be overridden with --config.<field>=<value>. Ctrl-C
(SIGINT) or SIGTERM saves a checkpoint of the last finished step and exits
with status 130; the same command then resumes from it. For several
processes (hosts), pass --jax_coordinator_address, --jax_num_processes and
--jax_process_id, or run where `jax.distributed.initialize()` detects the
cluster itself (--jax_distributed).
"""

import signal

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from kws_jax import audio_io
from kws_jax import checkpoint
from kws_jax import config_validation
from kws_jax import download
from kws_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Training configuration file.', lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for config, labels, logs and checkpoints.')
_DISTRIBUTED = flags.DEFINE_bool(
    'jax_distributed', False,
    'Call jax.distributed.initialize() (auto-detects SLURM, TPU pods, ...).')
_COORDINATOR = flags.DEFINE_string(
    'jax_coordinator_address', None, 'host:port of process 0, for several '
    'processes without a cluster manager.')
_NUM_PROCESSES = flags.DEFINE_integer('jax_num_processes', None,
                                      'Number of processes.')
_PROCESS_ID = flags.DEFINE_integer('jax_process_id', None,
                                   'This process, 0-based.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _COORDINATOR.value or _DISTRIBUTED.value:
    jax.distributed.initialize(
        coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  logging.info('JAX process %d of %d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  # A job scheduler's SIGTERM (preemption) stops training like Ctrl-C:
  # the state is saved first.
  signal.signal(signal.SIGTERM, signal.default_int_handler)
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (config_validation.ConfigError, checkpoint.CheckpointError,
          download.DownloadError, audio_io.AudioError,
          FloatingPointError) as e:
    # The user's settings or files are at fault (or, for FloatingPointError,
    # --config.check_nans caught a diverging run): say what, without a trace.
    raise SystemExit(f'error: {e}') from None
  except KeyboardInterrupt:
    # Training has saved what it had (see train.py); no traceback for Ctrl-C.
    logging.warning('Interrupted; run the same command again to resume.')
    raise SystemExit(130) from None


if __name__ == '__main__':
  app.run(main)
