"""Checks a training config before any work starts, and parses it once.

Every error says which field is wrong and what to change, so a typo costs
seconds, not an hour of training.
"""

import dataclasses
import re

import ml_collections

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


def normalize_words(words) -> tuple[str, ...]:
  """Accepts a tuple or a comma string ('yes,no') and returns a tuple.

  Command-line overrides of a tuple field arrive as a one-element tuple
  holding the whole string, so both forms are split on commas here.
  """
  if isinstance(words, str):
    words = (words,)
  out = []
  for item in words:
    out.extend(w.strip().lower() for w in str(item).split(',') if w.strip())
  return tuple(out)


def _positive(config, field, allow_zero=False):
  value = config[field]
  if value < 0 or (value == 0 and not allow_zero):
    raise ConfigError(f'config.{field}={value!r} must be '
                      f'{"non-negative" if allow_zero else "positive"}.')


def validate_config(
    config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Returns a checked copy of `config` with `wanted_words` normalized.

  Raises:
    ConfigError: naming the field and what to change.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  config.wanted_words = normalize_words(config.wanted_words)
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

  for field in ('batch_size', 'eval_step_interval', 'save_step_interval',
                'sample_rate', 'clip_duration_ms', 'window_size_ms',
                'window_stride_ms', 'feature_bin_count', 'eval_batch_size',
                'log_step_interval', 'keep_checkpoints'):
    _positive(config, field)
  for field in ('silence_percentage', 'unknown_percentage', 'time_shift_ms',
                'background_volume', 'background_frequency',
                'validation_percentage', 'testing_percentage'):
    _positive(config, field, allow_zero=True)
  for field in ('label_smoothing', 'synthetic_fraction'):
    if not 0 <= config[field] < 1:
      raise ConfigError(f'config.{field}={config[field]} must be in [0, 1).')
  for field in ('time_masks', 'time_mask_ms', 'freq_masks', 'freq_mask_bins',
                'volume_db'):
    _positive(config, field, allow_zero=True)
  if config.freq_mask_bins >= config.feature_bin_count:
    raise ConfigError(
        f'config.freq_mask_bins={config.freq_mask_bins} must be smaller than '
        f'config.feature_bin_count={config.feature_bin_count}.')
  config.synthetic_only_words = normalize_words(config.synthetic_only_words)
  strangers = set(config.synthetic_only_words) - set(config.wanted_words)
  if strangers:
    raise ConfigError(
        f'config.synthetic_only_words has {sorted(strangers)}, which are not '
        'in config.wanted_words.')
  if ((config.synthetic_only_words or config.synthetic_fraction) and
      not config.synthetic_dir):
    raise ConfigError(
        'config.synthetic_only_words / synthetic_fraction need '
        'config.synthetic_dir (a folder made by python -m kws_jax.synthesize).')
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
  return config
