"""The scarce words (on, off) topped up with synthetic speech.

The shared data has about 210 training clips each of `on` and `off` against
about 900 of the other command words, and `off` is the default model's
weakest word (about 74% recall, confused with `up` and `on`). These points
train the default recipe with 600 text-to-speech clips of each word added
(`python -m kws_jax.synthesize`), making up `synthetic_fraction` of that
word's draws; validation and test stay real recordings of unseen speakers.

  python -m kws_jax.synthesize --words=on,off --out=/tmp/synth --count=600
  python -m experiments.sweep --sweep=experiments/scarce_words.py \
      --workdir=/tmp/sweeps/scarce_words --parallel=2 \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=synthetic_dir=/tmp/synth

Only `on` and `off` have synthetic clips in that folder, so the other words
train as before. The default recipe's point (fraction 0) is seed 0 of
experiments/seeds.py.
"""

from configs import tc_resnet

# The paper's TC-ResNet8 (width 1), the default model when this ran.
BASE_CONFIG = 'configs/tc_resnet.py:8'

# The schedule and offset of the default model when this ran.
SHARED = {**tc_resnet.UNTIL_2026_12_05, 'log_step_interval': 100}


def sweep(add):
  for fraction in (0.25, 0.5):
    add(synthetic_fraction=fraction)
