"""Every fast architecture with its own config's recipe, at equal steps.

The points share the default model's schedule (4000 steps) so the table
compares architectures at equal steps on the same data. (conv and low_latency_* take hours on a
2-core CPU at the tutorial's settings; add them where a GPU is at hand.)

  python -m experiments.sweep --sweep=experiments/architectures.py \
      --workdir=/tmp/sweeps/architectures --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz
"""

BASE_CONFIG = 'configs/tc_resnet.py'

SHARED = {'how_many_training_steps': '2500,1000,500',
          'learning_rate': '0.003,0.001,0.0003',
          'optimizer': 'adam',
          'log_step_interval': 100}


def sweep(add):
  add(config='configs/tc_resnet.py')
  add(config='configs/tiny_conv.py')
  add(config='configs/ds_cnn.py')
  add(config='configs/bc_resnet.py')
