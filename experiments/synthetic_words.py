"""Zero-recording words: bed, cat and happy learnt from synthetic speech alone.

Both points train the default model on `wanted_words=bed,cat,happy`, with
silence and unknown from the real clips of the other words, and are scored on
the same real test split (real bed/cat/happy clips of unseen speakers):

* `real`: the real training clips of bed, cat and happy (about 490 each);
* `synthetic_only`: none of them; 600 text-to-speech clips a word instead.

Make the synthetic clips first (eSpeak NG + Flite + Piper voices, offline):

  python -m kws_jax.synthesize --words=bed,cat,happy --out=/tmp/synth \
      --count=600
  python -m experiments.sweep --sweep=experiments/synthetic_words.py \
      --workdir=/tmp/sweeps/synthetic_words \
      --override=data_url=../shared/data/speech_commands_dev.tar.gz \
      --override=synthetic_dir=/tmp/synth
"""

from configs import tc_resnet

# The paper's TC-ResNet8 (width 1), the default model when this ran.
BASE_CONFIG = 'configs/tc_resnet.py:8'

# The schedule and offset of the default model when this ran.
SHARED = {'wanted_words': 'bed,cat,happy', **tc_resnet.UNTIL_2026_12_05,
          'log_step_interval': 100}

RECALL_WORDS = ('bed', 'cat', 'happy')


def sweep(add):
  add(synthetic_fraction=0.0)
  add(synthetic_only_words='bed,cat,happy')
