"""Checks a training config before any work starts, and parses it once.

Every error says which field is wrong and what to change, so a typo costs
seconds, not an hour of training. Defaults live in configs/default.py only:
every field is read as it is. A config stored by an older run gets the
fields added since when it is read (`workdir.with_later_fields`).

Whether checkpoints named by the config fit the run is checked by
`checkpoint.check_checkpoints_fit`.
"""

import dataclasses
import math
import os
import re

import ml_collections

from kws_jax import download
from kws_jax import labels
from kws_jax import rooms

_PREPROCESS = ('mfcc', 'average', 'logmel')
_OPTIMIZERS = ('gradient_descent', 'momentum', 'adam')
_DATA_SOURCES = ('local', 'tfds')
_WORD = re.compile(r'^[a-z0-9][a-z0-9_\'-]*$')


class ConfigError(ValueError):
  """A config field has a value that cannot work."""


@dataclasses.dataclass(frozen=True)
class Schedule:
  """The piecewise-constant learning-rate schedule, in steps.

  Step numbers are 1-based like the tutorial's: steps 1..steps[0] use
  learning_rates[0], the next steps[1] steps use learning_rates[1], ...
  """
  steps: tuple[int, ...]
  learning_rates: tuple[float, ...]

  @property
  def total_steps(self) -> int:
    return sum(self.steps)

  @property
  def boundaries(self) -> tuple[int, ...]:
    """Number of updates after which each later rate starts."""
    out, total = [], 0
    for n in self.steps[:-1]:
      total += n
      out.append(total)
    return tuple(out)

  def rate_at(self, step: int) -> float:
    """The learning rate used by (1-based) `step`."""
    total = 0
    for n, lr in zip(self.steps, self.learning_rates):
      total += n
      if step <= total:
        return lr
    return self.learning_rates[-1]


def _comma_list(config: ml_collections.ConfigDict, field: str, kind: type):
  raw = str(config[field])
  parts = [p.strip() for p in raw.split(',') if p.strip()]
  try:
    values = tuple(kind(p) for p in parts)
  except ValueError:
    raise ConfigError(
        f'config.{field}={raw!r} must be a comma-separated list of '
        f'{kind.__name__} values, e.g. '
        f'{"15000,3000" if kind is int else "0.001,0.0001"}.') from None
  if not values:
    raise ConfigError(f'config.{field} is empty; give at least one value.')
  return values


def parse_schedule(config: ml_collections.ConfigDict) -> Schedule:
  """Parses `how_many_training_steps` and `learning_rate` (comma lists)."""
  steps = _comma_list(config, 'how_many_training_steps', int)
  rates = _comma_list(config, 'learning_rate', float)
  if len(steps) != len(rates):
    raise ConfigError(
        '--how_many_training_steps and --learning_rate must be equal length '
        f'lists, but are {len(steps)} and {len(rates)} long: '
        f'how_many_training_steps={config.how_many_training_steps!r}, '
        f'learning_rate={config.learning_rate!r}.')
  if any(n <= 0 for n in steps):
    raise ConfigError(
        f'config.how_many_training_steps={config.how_many_training_steps!r}: '
        'every entry must be a positive number of steps.')
  if any(not lr > 0 for lr in rates):
    raise ConfigError(f'config.learning_rate={config.learning_rate!r}: every '
                      'rate must be positive.')
  return Schedule(steps, rates)


def _positive(config, field, allow_zero=False):
  value = config[field]
  # Written so that NaN fails too; bools are numbers to Python, not here.
  if (isinstance(value, bool) or not isinstance(value, (int, float)) or
      not math.isfinite(value) or not (value >= 0 if allow_zero else
                                       value > 0)):
    raise ConfigError(f'config.{field}={value!r} must be a '
                      f'{"non-negative" if allow_zero else "positive"} '
                      'finite number.')


def validate_config(
    config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Returns a checked copy of `config` with `wanted_words` normalized.

  Raises:
    ConfigError: naming the field and what to change.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  config.wanted_words = labels.normalize_words(config.wanted_words)
  if not config.wanted_words:
    raise ConfigError('config.wanted_words is empty; name at least one word, '
                      'e.g. --config.wanted_words=yes,no.')
  for word in config.wanted_words:
    if not _WORD.match(word) or word.startswith('_'):
      raise ConfigError(
          f'config.wanted_words has {word!r}, which is not a word folder name '
          '(lower-case letters, digits, _ or -, not starting with _).')
  if len(set(config.wanted_words)) != len(config.wanted_words):
    raise ConfigError(
        f'config.wanted_words={config.wanted_words} repeats a word.')
  parse_schedule(config)

  from kws_jax import models  # Imported here: models import JAX.
  if config.model_architecture not in models.MODELS:
    raise ConfigError(
        f'config.model_architecture={config.model_architecture!r} is not '
        f'registered; choose one of {sorted(models.MODELS)}.')
  if config.preprocess not in _PREPROCESS:
    raise ConfigError(f'config.preprocess={config.preprocess!r}; choose one '
                      f'of {_PREPROCESS}.')
  if config.optimizer not in _OPTIMIZERS:
    raise ConfigError(f'config.optimizer={config.optimizer!r}; choose one of '
                      f'{_OPTIMIZERS}.')
  if config.data_source not in _DATA_SOURCES:
    raise ConfigError(f'config.data_source={config.data_source!r}; choose one '
                      f'of {_DATA_SOURCES}.')
  from kws_jax.models import layers  # pylint: disable=g-import-not-at-top
  if config.loss not in models.LOSSES:
    raise ConfigError(f'config.loss={config.loss!r}; choose one of '
                      f'{models.LOSSES}.')
  if config.train_convolutions not in layers.CONVOLUTION_LIBRARIES:
    raise ConfigError(
        f'config.train_convolutions={config.train_convolutions!r}; choose '
        f'one of {layers.CONVOLUTION_LIBRARIES}.')

  for field in ('batch_size', 'eval_step_interval', 'save_step_interval',
                'sample_rate', 'clip_duration_ms', 'window_size_ms',
                'window_stride_ms', 'feature_bin_count', 'eval_batch_size',
                'log_step_interval', 'keep_checkpoints'):
    _positive(config, field)
  for field in ('silence_percentage', 'unknown_percentage', 'time_shift_ms',
                'background_volume', 'background_frequency',
                'validation_percentage', 'testing_percentage'):
    _positive(config, field, allow_zero=True)
  for field in ('label_smoothing', 'synthetic_fraction', 'ema_decay',
                'momentum'):
    if not 0 <= config[field] < 1:
      raise ConfigError(f'config.{field}={config[field]} must be in [0, 1).')
  for field in ('time_masks', 'time_mask_ms', 'freq_masks', 'freq_mask_bins',
                'volume_db', 'mixup_alpha', 'speed_perturbation',
                'unknown_offset', 'synthetic_adversary'):
    _positive(config, field, allow_zero=True)
  if not 0 <= config.reverb_probability <= 1:
    raise ConfigError(
        f'config.reverb_probability={config.reverb_probability} is a share '
        'of clips; give a value in [0, 1].')
  shortest_ms = 1000 * rooms.MIN_RT60_S
  if config.reverb_probability and not (
      shortest_ms < config.reverb_max_rt60_ms <= 3000):
    raise ConfigError(
        f'config.reverb_max_rt60_ms={config.reverb_max_rt60_ms} must be '
        f'above {shortest_ms:g} (the shortest reverberation time drawn) and '
        'at most 3000 (a large hall); 700 is a living room.')
  _check_negatives(config)
  if config.speed_perturbation >= 0.5:
    raise ConfigError(
        f'config.speed_perturbation={config.speed_perturbation} must be below '
        '0.5 (a rate in [1 - s, 1 + s]; 0.1 is typical).')
  if config.freq_mask_bins >= config.feature_bin_count:
    raise ConfigError(
        f'config.freq_mask_bins={config.freq_mask_bins} must be smaller than '
        f'config.feature_bin_count={config.feature_bin_count}.')
  config.synthetic_only_words = labels.normalize_words(
      config.synthetic_only_words)
  strangers = set(config.synthetic_only_words) - set(config.wanted_words)
  if strangers:
    raise ConfigError(
        f'config.synthetic_only_words has {sorted(strangers)}, which are not '
        'in config.wanted_words.')
  if config.synthetic_adversary:
    _check_adversary(config)
  if ((config.synthetic_only_words or config.synthetic_fraction) and
      not config.synthetic_dir):
    raise ConfigError(
        'config.synthetic_only_words / synthetic_fraction need '
        'config.synthetic_dir (a folder made by python -m kws_jax.synthesize).')
  if not 0 <= config.distill_weight <= 1:
    raise ConfigError(f'config.distill_weight={config.distill_weight} must be '
                      'in [0, 1], e.g. 0.5.')
  _positive(config, 'distill_temperature')
  if bool(teacher_paths(config)) != bool(config.distill_weight):
    raise ConfigError(
        'config.distill_from and config.distill_weight go together: name the '
        'teacher workdirs and give the weight of their predictions (e.g. '
        f'0.5); got distill_from={config.distill_from!r}, '
        f'distill_weight={config.distill_weight}.')
  if config.loss == 'one_vs_rest' and config.distill_weight:
    raise ConfigError(
        "config.loss='one_vs_rest' and config.distill_from do not go "
        "together: distillation matches a teacher's softmax; train with "
        "config.loss='softmax' to distill.")
  if config.background_frequency > 1:
    raise ConfigError(
        f'config.background_frequency={config.background_frequency} is a '
        'probability; give a value in [0, 1].')
  if config.validation_percentage + config.testing_percentage >= 100:
    raise ConfigError(
        'config.validation_percentage + config.testing_percentage must leave '
        'some data for training (their sum is '
        f'{config.validation_percentage + config.testing_percentage}).')
  if config.window_size_ms > config.clip_duration_ms:
    raise ConfigError(
        f'config.window_size_ms={config.window_size_ms} is longer than '
        f'config.clip_duration_ms={config.clip_duration_ms}.')
  if config.time_shift_ms >= config.clip_duration_ms:
    raise ConfigError(
        f'config.time_shift_ms={config.time_shift_ms} must be shorter than '
        f'the clip (clip_duration_ms={config.clip_duration_ms}).')
  _check_types(config)
  return config


def parse_unseen_fold(text: str) -> tuple[int, int] | None:
  """`labels.parse_unseen_fold`, its fault a ConfigError."""
  try:
    return labels.parse_unseen_fold(text)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def _check_negatives(config: ml_collections.ConfigDict) -> None:
  """The noise-level and negatives fields (configs/default.py)."""
  low, high = config.background_rms_min, config.background_rms_max
  for field, value in (('background_rms_min', low),
                       ('background_rms_max', high)):
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or
        not 0 <= value <= 1):
      raise ConfigError(f'config.{field}={value!r} must be an RMS in [0, 1] '
                        '(full scale 1), e.g. 0.001 and 0.3.')
  if high and not 0 < low <= high:
    raise ConfigError(
        f'config.background_rms_min={low} must be above 0 and at most '
        f'config.background_rms_max={high} (levels are drawn log-uniformly '
        'between them; 0.001 is a quiet room).')
  if config.generated_noise and not high:
    raise ConfigError(
        'config.generated_noise=True needs config.background_rms_max > 0, '
        'which sets the generated noise levels (e.g. '
        '--config.background_rms_min=0.001 --config.background_rms_max=0.3).')
  if config.dc_offset_noise and not config.generated_noise:
    raise ConfigError(
        'config.dc_offset_noise=True adds a DC offset to the generated '
        'training noise: it needs config.generated_noise=True.')
  for field in ('unknown_word_balance', 'command_negatives',
                'unknown_negatives', 'same_speaker_joins', 'stream_windows'):
    value = config[field]
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or
        not 0 <= value <= 1):
      raise ConfigError(f'config.{field}={value!r} must be in [0, 1].')
  if config.synthetic_unknown and not (
      config.synthetic_dir and config.synthetic_fraction):
    raise ConfigError(
        'config.synthetic_unknown=True needs config.synthetic_dir and a '
        'config.synthetic_fraction above 0 (the share of synthetic draws in '
        'every class).')
  if parse_unseen_fold(config.unseen_words_fold) and (
      config.data_source != 'local'):
    raise ConfigError(
        'config.unseen_words_fold needs config.data_source=local: TFDS\'s '
        'speech_commands does not say which word an unknown clip is.')


# Fields that count something: a float such as 8.5 would fail deep inside.
_INTEGER_FIELDS = ('batch_size', 'eval_step_interval', 'save_step_interval',
                   'sample_rate', 'feature_bin_count', 'eval_batch_size',
                   'log_step_interval', 'keep_checkpoints', 'seed',
                   'validation_seed', 'test_seed',
                   'time_masks', 'freq_masks', 'freq_mask_bins')
_STRING_FIELDS = ('data_url', 'data_dir', 'tfds_data_dir', 'start_checkpoint',
                  'synthetic_dir', 'distill_from', 'unseen_words_fold')
_BOOL_FIELDS = ('check_nans', 'balance_classes', 'generated_noise',
                'dc_offset_noise', 'synthetic_unknown', 'nesterov',
                'ema_warmup')


def _check_types(config: ml_collections.ConfigDict) -> None:
  for field in _INTEGER_FIELDS:
    value = config[field]
    if isinstance(value, bool) or not isinstance(value, int):
      raise ConfigError(f'config.{field}={value!r} must be a whole number.')
  for field in _STRING_FIELDS:
    value = config[field]
    if not isinstance(value, str):
      raise ConfigError(f'config.{field}={value!r} must be a string (a path '
                        "or URL, or '').")
  for field in _BOOL_FIELDS:
    value = config[field]
    if not isinstance(value, bool):
      raise ConfigError(f'config.{field}={value!r} must be True or False.')
  if config.data_source == 'local' and not config.data_dir:
    raise ConfigError("config.data_dir is empty; name the folder the data is "
                      'in (or is unpacked into, with data_url).')
  sha256 = config.data_sha256
  if sha256 and not re.fullmatch(r'[0-9a-fA-F]{64}', str(sha256)):
    raise ConfigError(f'config.data_sha256={sha256!r} is not a SHA-256 (64 '
                      "hex digits); give the archive's digest or ''.")


def check_before_training(config: ml_collections.ConfigDict,
                          workdir: str) -> None:
  """Checks what `validate_config` cannot: the model and the folders named.

  Run by training after `validate_config` and before any data is loaded:
  the model is built abstractly (no parameters are drawn), so settings in
  `config.model` that its constructor refuses fail here; XLA compiles a
  tiny program with `train_compiler_options`, so options it refuses fail
  here too, and oneDNN's convolutions are built if
  `train_convolutions` asks for them; the data folder
  must exist when there is no archive to unpack into it, and a
  `synthetic_dir` must exist. (`validate_config` stays free of such checks:
  it also reads configs stored with checkpoints, whose data may be
  elsewhere.) The checkpoints the config names are checked by
  `checkpoint.check_checkpoints_fit`.

  Args:
    config: a config returned by `validate_config`.
    workdir: the run's folder.

  Raises:
    ConfigError: a setting that cannot work, naming the field.
  """
  del workdir  # Nothing in it is checked here (see checkpoint.py).
  # Imported here, as in validate_config: importing this module needs no JAX.
  import jax  # pylint: disable=g-import-not-at-top
  from kws_jax import models  # pylint: disable=g-import-not-at-top
  num_classes = len(labels.prepare_words_list(config.wanted_words))
  try:
    models.abstract_model(config, num_classes)
  except (TypeError, ValueError) as e:
    raise ConfigError(
        f'config.model={models.model_settings(config)} does not fit '
        f'config.model_architecture={config.model_architecture!r} with this '
        f'front end: {e}') from e

  options = config.train_compiler_options.to_dict()
  if options:
    try:  # XLA reads the options when it compiles; a tiny program suffices.
      jax.jit(lambda x: x + 1, compiler_options=options).lower(0.0).compile()
    except Exception as e:  # pylint: disable=broad-except
      raise ConfigError(
          f'config.train_compiler_options={options}: XLA refuses them: '
          f'{str(e).splitlines()[0]} (drop the option, or see '
          'configs/default.py for one that works).') from e

  if (config.train_convolutions == 'onednn' and
      jax.default_backend() == 'cpu'):  # Elsewhere XLA's are used.
    from kws_jax.models import onednn  # pylint: disable=g-import-not-at-top
    try:  # Built now (about 5 s the first time), not at the first step.
      onednn.register()
    except onednn.OnednnUnavailable as e:
      raise ConfigError(f"config.train_convolutions='onednn': {e}") from e

  if config.data_source == 'local':
    _check_data_source(config)
  if config.synthetic_dir and not os.path.isdir(
      os.path.expanduser(config.synthetic_dir)):
    raise ConfigError(
        f'config.synthetic_dir={config.synthetic_dir!r} is not a folder; make '
        'it with experiments/synthesize_negatives.sh '
        f'{config.synthetic_dir} (the default recipe\'s; about 15 min) or '
        'python -m kws_jax.synthesize, or train without synthetic speech: '
        "--config.synthetic_dir='' --config.synthetic_fraction=0 "
        '--config.synthetic_unknown=False.')


def _check_data_source(config: ml_collections.ConfigDict) -> None:
  data_dir = os.path.expanduser(config.data_dir)
  if not config.data_url:
    if not os.path.isdir(data_dir):
      raise ConfigError(
          f'config.data_dir={config.data_dir!r} is not a folder and '
          "config.data_url is '', so there is no data: point data_dir at a "
          'folder in the Speech Commands layout, or set data_url to an '
          'archive to unpack into it.')
    return
  if '://' in config.data_url and not config.data_url.lower().startswith(
      'file://'):
    return  # A download; its errors are reported when it is fetched.
  if os.path.exists(download.marker_path(config.data_url, data_dir)):
    return  # Unpacked before; the archive itself is no longer needed.
  try:
    download.local_archive_path(config.data_url)
  except download.DownloadError as e:
    raise ConfigError(f'config.data_url: {e}') from e


def _check_adversary(config: ml_collections.ConfigDict) -> None:
  """`synthetic_adversary` needs an embedding, synthetic speech in every
  class it scores, and unmixed clips."""
  from kws_jax import models  # pylint: disable=g-import-not-at-top
  name = f'config.synthetic_adversary={config.synthetic_adversary}'
  if not hasattr(models.MODELS[config.model_architecture], 'embed'):
    with_embedding = sorted(n for n, m in models.MODELS.items()
                            if hasattr(m, 'embed'))
    raise ConfigError(
        f'{name} needs an architecture with an embedding (one of '
        f'{with_embedding}); config.model_architecture is '
        f'{config.model_architecture!r}. Set --config.model_architecture='
        f'{with_embedding[0]} or --config.synthetic_adversary=0.')
  if not config.synthetic_fraction:
    raise ConfigError(
        f'{name} needs synthetic speech in training: set config.synthetic_dir '
        'and config.synthetic_fraction (e.g. 0.2), or '
        '--config.synthetic_adversary=0.')
  # A class of one kind of clip only would be told apart by its kind: the
  # reversed gradient would then hide the class itself.
  if config.synthetic_only_words or not config.synthetic_unknown:
    raise ConfigError(
        f'{name} needs recorded and synthetic clips in every class: leave '
        'config.synthetic_only_words empty and set '
        'config.synthetic_unknown=True, or --config.synthetic_adversary=0.')
  if config.mixup_alpha:
    raise ConfigError(
        f'{name} does not go with config.mixup_alpha={config.mixup_alpha} '
        '(a mixed clip is neither synthetic nor recorded); set one to 0.')


# A sweep folder name's setting after a comma ('seed=1', 'fold=2_3').
_SWEEP_SETTING = re.compile(r'[A-Za-z_][\w.]*=')


def teacher_paths(config: ml_collections.ConfigDict) -> list[str]:
  """The paths named by `config.distill_from` (`split_paths`)."""
  return split_paths(config.distill_from)


def split_paths(text: str) -> list[str]:
  """Comma-separated paths (training workdirs, checkpoints), blanks left
  out.

  A piece of the form `field=value` without a '/' continues the path
  before it: experiments/sweep.py names its folders by their settings
  ('.../learning_rate=0.01,seed=1') and its unseen-words fold runs
  '<point>,fold=i_k'.
  """
  paths = []
  for piece in (p.strip() for p in text.split(',')):
    if paths and _SWEEP_SETTING.match(piece) and '/' not in piece:
      paths[-1] += ',' + piece
    elif piece:
      paths.append(piece)
  return paths
