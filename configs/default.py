"""Shared defaults: the TensorFlow speech_commands tutorial's flags and values.

Every architecture's config calls `get_config()` here and overrides a few
fields. Field names are the tutorial's flag names, so
`--config.how_many_training_steps=15000,3000` means what a user of
`tensorflow/examples/speech_commands/train.py` expects.
"""

import ml_collections

# The full Speech Commands v0.02 archive, as in the tutorial.
SPEECH_COMMANDS_URL = (
    'https://storage.googleapis.com/download.tensorflow.org/data/'
    'speech_commands_v0.02.tar.gz')


def get_config() -> ml_collections.ConfigDict:
  """Returns the tutorial's defaults for the `conv` model."""
  config = ml_collections.ConfigDict()

  # --- Data ---------------------------------------------------------------
  # Archive to fetch into `data_dir`: an http(s) URL, a local .tar.gz path or
  # a file:// URL; '' uses `data_dir` as it is.
  config.data_url = SPEECH_COMMANDS_URL
  # The archive's SHA-256 (64 hex digits) to check it against; '' checks
  # nothing.
  config.data_sha256 = ''
  config.data_dir = '/tmp/speech_dataset/'
  # 'local': our TFDS builder over `data_dir` (any folder in the Speech
  # Commands layout, works offline). 'tfds': TFDS's own `speech_commands`
  # (downloads the official archives; its ten words are fixed).
  config.data_source = 'local'
  # Where TFDS keeps prepared data; '' means TFDS's default
  # (~/tensorflow_datasets or $TFDS_DATA_DIR).
  config.tfds_data_dir = ''
  # The command words; every other word is `_unknown_`. A comma-separated
  # string on the command line works too (`--config.wanted_words=yes,no`).
  config.wanted_words = ('yes', 'no', 'up', 'down', 'left', 'right', 'on',
                         'off', 'stop', 'go')
  # Sizes of the silence and unknown classes, as percentages of the number of
  # wanted-word clips in each split.
  config.silence_percentage = 10.0
  config.unknown_percentage = 10.0
  # Used only when the data has no validation_list.txt / testing_list.txt.
  config.validation_percentage = 10
  config.testing_percentage = 10

  # --- Augmentation (training only) -------------------------------------
  config.time_shift_ms = 100.0
  config.background_volume = 0.1
  config.background_frequency = 0.8

  # --- Front end (inside the model, so it is exported with it) ----------
  config.sample_rate = 16000
  config.clip_duration_ms = 1000
  config.window_size_ms = 30.0
  config.window_stride_ms = 10.0
  config.feature_bin_count = 40
  # 'mfcc', 'average' (pooled spectrogram) or 'logmel'.
  config.preprocess = 'mfcc'

  # --- Model --------------------------------------------------------------
  config.model_architecture = 'conv'
  # Settings of the chosen architecture, passed to its constructor.
  config.model = ml_collections.ConfigDict({'dropout_rate': 0.5})

  # --- Training -----------------------------------------------------------
  # Piecewise-constant schedule: train the first 15000 steps at 0.001, then
  # 3000 at 0.0001. Both are comma lists of the same length.
  config.how_many_training_steps = '15000,3000'
  config.learning_rate = '0.001,0.0001'
  # 'gradient_descent', 'momentum' or 'adam'.
  config.optimizer = 'gradient_descent'
  # For 'momentum': its coefficient, and whether it is Nesterov's.
  config.momentum = 0.9
  config.nesterov = True
  config.batch_size = 100
  config.eval_step_interval = 400
  config.save_step_interval = 100
  # A checkpoint to start from: a step directory (".../checkpoints/1200"),
  # or a workdir or checkpoints directory, meaning its LATEST step (not its
  # best: this continues a run). '' resumes from this workdir's latest
  # checkpoint if there is one (which also wins over start_checkpoint).
  config.start_checkpoint = ''
  config.check_nans = False
  # XLA compiler options of the training step only (evaluation and export
  # compile with XLA's defaults), e.g. {'xla_cpu_experimental_ynn_fusion_type':
  # 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'} (YNNPACK for matrix products only,
  # which configs/conv.py set before it took oneDNN's convolutions): what
  # compiles fastest depends on the architecture, and on the CPU.
  config.train_compiler_options = ml_collections.ConfigDict()
  # The library that runs the model's convolutions in the training step:
  # 'xla' (XLA's own) or 'onednn' (oneDNN's, built on first use with the
  # C++ compiler; CPU only, XLA's elsewhere; see kws_jax/models/onednn.py),
  # which configs/conv.py sets. Evaluation and the exports use XLA's.
  config.train_convolutions = 'xla'

  # --- Recipe options beyond the tutorial (all off by default) ------------
  # Draw every wanted word equally often (scarce words such as on/off then
  # weigh as much as the others).
  config.balance_classes = False
  # Cross entropy against (1 - s) * one-hot + s / num_classes.
  config.label_smoothing = 0.0
  # 'softmax': one softmax over every class, `_unknown_` a class like the
  # others. 'one_vs_rest': a sigmoid per class (binary cross entropy, the
  # label smoothing applied to the same targets), with `_unknown_`'s logit
  # fixed at 0: a clip is `_unknown_` when no other class claims it (no
  # logit above 0), instead of when it sounds like the unknown words
  # training had. Its scores (the softmax of those logits, as every
  # model's) are not a softmax model's: calibrate streaming thresholds on
  # it.
  config.loss = 'softmax'
  # Synthetic speech made to sound like recorded speech inside the model
  # (domain-adversarial training, Ganin et al., 2016): a small head learns
  # to tell synthetic clips from recorded ones from the pooled features,
  # and the backbone gets its gradient reversed and scaled by this weight
  # (ramped up from 0 over training), so that what the synthetic near words
  # teach carries over to recorded voices. 0: off. Needs synthetic speech
  # in every class (synthetic_unknown, no synthetic_only_words), no mixup,
  # and an architecture with an embedding (tc_resnet).
  config.synthetic_adversary = 0.0
  # SpecAugment on the features: this many time bands of up to
  # time_mask_ms, and frequency bands of up to freq_mask_bins, set to 0.
  config.time_masks = 0
  config.time_mask_ms = 0.0
  config.freq_masks = 0
  config.freq_mask_bins = 0
  # Random gain in dB, uniform in [-volume_db, volume_db], per training clip.
  config.volume_db = 0.0
  # Speed perturbation: each training clip is resampled to play at a rate
  # uniform in [1 - s, 1 + s] (tempo and pitch together, as sox's `speed`),
  # about its centre.
  config.speed_perturbation = 0.0
  # Room-like reverberation: this share of training clips is convolved with
  # a synthetic room (direct sound, then noise decaying by 60 dB over a
  # reverberation time uniform in [150 ms, reverb_max_rt60_ms], 0-12 dB
  # below the direct sound); 0 turns it off.
  config.reverb_probability = 0.0
  config.reverb_max_rt60_ms = 700.0
  # Mixup (Zhang et al., 2018): each training clip is mixed with another of
  # the batch, waveforms and targets alike, with a weight drawn from
  # Beta(mixup_alpha, mixup_alpha); 0 turns it off.
  config.mixup_alpha = 0.0
  # Exponential moving average of the weights (decay per step; 0: none).
  # Evaluation, the best checkpoint and export use the averaged weights.
  config.ema_decay = 0.0
  # Warm-up of the average: the decay after n updates is
  # min(ema_decay, (1 + n) / (10 + n)), as TensorFlow's
  # ExponentialMovingAverage with num_updates, so the average is not held
  # near the initial weights for the first ~1 / (1 - ema_decay) steps;
  # False: ema_decay from the first step.
  config.ema_warmup = True
  # (experiments/recipe.py: none of these four raised the default model's
  # validation accuracy on the shared data, so its config leaves them off.)
  # Synthetic speech (python -m kws_jax.synthesize): a folder in the Speech
  # Commands layout whose training clips of the wanted words are mixed in,
  # making up `synthetic_fraction` of each word's draws; words listed in
  # `synthetic_only_words` are trained from synthetic clips alone (their
  # real training clips are left out; validation and test stay real).
  config.synthetic_dir = ''
  config.synthetic_fraction = 0.0
  config.synthetic_only_words = ()
  # Knowledge distillation (Hinton et al., 2015): teacher models, as
  # comma-separated training workdirs (a sweep's fold run
  # '<point>,fold=i_k' is one; each its BEST step by validation
  # accuracy, else its latest, as kws_jax.evaluate and the export take) or
  # step directories, with the same labels, sample rate and clip length.
  # Each training batch, after augmentation, is also run through the
  # teachers (their averaged weights, eval mode); the loss is
  # (1 - distill_weight) x cross entropy with the labels + distill_weight x
  # distill_temperature^2 x cross entropy with the teachers' mean
  # prediction, student and teachers both softened by distill_temperature
  # (the `cross entropy` of the Step lines is then that combined loss).
  config.distill_from = ''
  config.distill_weight = 0.0
  config.distill_temperature = 1.0
  # (experiments/distillation.py: from an ensemble of three default models,
  # no gain over the default recipe on validation, so it is off.)

  # --- What is not a command: negatives and noise at real levels ---------
  # (All off here; `not_a_command` below turns on the measured recipe.)
  # Noise at absolute levels: with background_rms_max > 0, each noise window
  # is scaled to unit RMS and then to an RMS drawn log-uniformly in
  # [background_rms_min, background_rms_max] (full scale 1): for every
  # silence clip, and for other clips with probability background_frequency,
  # held at least background_min_snr_db below the clip's own RMS. Real rooms
  # reach RMS 0.1-0.3; the shipped noise recordings are at 0.002-0.006, so
  # the tutorial's volumes (0 here: background_volume) never make loud
  # silence.
  config.background_rms_min = 0.0
  config.background_rms_max = 0.0
  config.background_min_snr_db = 5.0
  # Add generated white, pink and brown noise and 50/60 Hz hum to the
  # training noise (needs background_rms_max > 0, which sets their levels).
  config.generated_noise = False
  # With generated_noise: a constant too (a microphone's DC offset), so a
  # silence clip can be an offset alone and a word can sit on one.
  config.dc_offset_noise = False
  # How evenly the unknown words are drawn: clip i of a word with n clips
  # weighs n^-unknown_word_balance, so 0 draws clips evenly (the tutorial)
  # and 1 draws every word equally often (bed, cat and happy then stop
  # crowding out the rare words).
  config.unknown_word_balance = 0.0
  # Share of `_unknown_` draws replaced by a negative made from a command
  # clip: the clip reversed, its word's first or last 30-50% alone, or the
  # first half of one command's word joined to the second half of another's.
  config.command_negatives = 0.0
  # Share of the other `_unknown_` draws replaced by a negative made the same
  # way from two recorded non-command clips (reversed, a first or last part,
  # or halves of two different words joined): new sound sequences in real
  # voices that are no command.
  config.unknown_negatives = 0.0
  # Share of the remaining `_unknown_` draws replaced by the first half of
  # one recorded word joined to the second half of another said by the same
  # speaker, one a command and the other not (in either order): a new word
  # that begins or ends like a command, in a recorded voice with no seam of
  # voice or room between its halves, which the synthetic near words cannot
  # teach for recorded voices (experiments/synthetic_gap.py). Speakers are
  # the part of a clip's name before `_nohash_`. Like the negatives above,
  # they replace any `_unknown_` draw, synthetic ones too.
  # (experiments/same_speaker_joins.py: at 0.3 they cost command recall
  # and refused fewer unseen words at equal command recall, one seed; off.)
  config.same_speaker_joins = 0.0
  # Share of command draws replaced by a stream's window that holds only
  # part of the word (10-60% of its energy, arriving at the window's end or
  # leaving at its start), labelled `_unknown_`: what a recogniser running
  # every 30 ms sees between whole words.
  config.stream_windows = 0.0
  # Synthetic clips of non-command words (e.g. kws_jax.synthesize
  # --negatives_for=...) in synthetic_dir train `_unknown_`, making up
  # synthetic_fraction of its draws, as synthetic commands make up that
  # share of each command's: synthetic speech is then no sign of either.
  config.synthetic_unknown = False
  # Added to the `_unknown_` logit whenever the model decides (validation,
  # test, scoring, the exported models), never in training's loss: words
  # the model never heard often score just under a command, and an offset
  # turns many of them into `_unknown_` for a few command clips
  # (experiments/unknown_offset.py measures the trade and chooses it on
  # validation command recall). 0: the arg-max of the network's logits.
  config.unknown_offset = 0.0
  # The unseen-words measure: 'i/k' leaves fold i of k of the data's unknown
  # words out of training, validation and test, and scores `_unknown_`
  # recall on every clip of them at the end ('' : none). Folds are the
  # unknown words by clip count, dealt in turn (experiments/negatives.py).
  config.unseen_words_fold = ''

  # --- Beyond the tutorial ------------------------------------------------
  config.seed = 0
  # The seeds of the validation and test splits' unknown subsets and made-up
  # silence clips, apart from `seed` so that runs with different seeds are
  # scored on the same clips.
  config.validation_seed = 1018
  config.test_seed = 2029
  config.eval_batch_size = 500
  # Log the `Step #N: ...` line every this many steps.
  config.log_step_interval = 1
  # Checkpoints kept besides the best one (by validation accuracy).
  config.keep_checkpoints = 5
  return config


# The synthetic folder of `not_a_command`: experiments/synthesize_negatives.sh
# writes it (about 15 min on one core).
SYNTHETIC_DIR = '/tmp/kws_synth'


def not_a_command(config: ml_collections.ConfigDict
                  ) -> ml_collections.ConfigDict:
  """Turns on what teaches a model what is not a command; returns `config`.

  The recipe of experiments/negatives.py, point 8 (chosen on validation,
  the silence stress set and the unseen-words folds, 3 seeds): noise at the
  levels of real rooms for silence and words alike, generated noise, hum
  and a DC offset among it; every unknown word drawn equally often, and
  `_unknown_` at 25% of the words' draws; and synthetic speech in every
  class (20% of its draws): near words of each command, made-up words one
  sound from it and everyday words as `_unknown_`, the commands themselves
  as positives. The model decides with `_unknown_`'s logit raised by 0.5
  (experiments/unknown_offset.py: the largest offset that costs at most 1
  point of validation command recall, 3 seeds of point 8; unseen words 67%
  -> 73%). The default model (configs/tc_resnet.py) and the tutorial's
  (configs/conv.py) both take it; the default model then sets the offset
  its own seeds chose.
  """
  config.background_rms_min = 0.0001
  config.background_rms_max = 0.3
  config.generated_noise = True
  config.dc_offset_noise = True
  config.unknown_word_balance = 1.0
  config.unknown_percentage = 25.0
  config.synthetic_dir = SYNTHETIC_DIR
  config.synthetic_fraction = 0.2
  config.synthetic_unknown = True
  config.unknown_offset = 0.5
  return config
