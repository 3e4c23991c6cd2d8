"""Config checks: every bad value is refused with a message naming the field."""

import glob
import importlib.util
import os

import pytest

from configs import default
from kws_jax import config_validation

CONFIG_DIR = os.path.join(os.path.dirname(__file__), '..', 'configs')


def _load(path):
  spec = importlib.util.spec_from_file_location('cfg', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize(
    'path', sorted(glob.glob(os.path.join(CONFIG_DIR, '*.py'))),
    ids=os.path.basename)
def test_every_config_file_validates(path):
  if os.path.basename(path) == '__init__.py':
    pytest.skip('not a config')
  config_validation.validate_config(_load(path))


def test_tutorial_defaults():
  config = default.get_config()
  assert config.how_many_training_steps == '15000,3000'
  assert config.learning_rate == '0.001,0.0001'
  assert (config.batch_size, config.eval_step_interval,
          config.save_step_interval) == (100, 400, 100)
  assert (config.window_size_ms, config.window_stride_ms,
          config.feature_bin_count, config.preprocess) == (30.0, 10.0, 40,
                                                           'mfcc')


def test_schedule_is_piecewise_in_one_based_steps():
  config = default.get_config()
  schedule = config_validation.parse_schedule(config)
  assert schedule.total_steps == 18000
  assert schedule.boundaries == (15000,)
  assert schedule.rate_at(1) == 0.001
  assert schedule.rate_at(15000) == 0.001
  assert schedule.rate_at(15001) == 0.0001
  assert schedule.rate_at(18000) == 0.0001


def test_wanted_words_from_command_line_string():
  config = default.get_config()
  config.wanted_words = ('Yes, no,up',)
  assert config_validation.validate_config(config).wanted_words == ('yes', 'no',
                                                                    'up')


@pytest.mark.parametrize('field,value,message', [
    ('how_many_training_steps', '100,50,10', 'equal length'),
    ('learning_rate', '0.001,abc', 'learning_rate'),
    ('how_many_training_steps', '100,-5', 'positive'),
    ('learning_rate', '0.001,0', 'positive'),
    ('batch_size', 0, 'batch_size'),
    ('eval_step_interval', -1, 'eval_step_interval'),
    ('model_architecture', 'resnet9000', 'model_architecture'),
    ('preprocess', 'wavelet', 'preprocess'),
    ('optimizer', 'lion', 'optimizer'),
    ('background_frequency', 1.5, 'background_frequency'),
    ('silence_percentage', -1.0, 'silence_percentage'),
    ('wanted_words', ('yes', 'yes'), 'repeats'),
    ('wanted_words', ('_silence_',), 'wanted_words'),
    ('wanted_words', ('',), 'empty'),
    ('window_size_ms', 2000.0, 'window_size_ms'),
    ('validation_percentage', 95, 'validation_percentage'),
    ('data_source', 'ftp', 'data_source'),
])
def test_bad_values_are_refused_with_the_field_named(field, value, message):
  config = default.get_config()
  config[field] = value
  with pytest.raises(config_validation.ConfigError, match=message):
    config_validation.validate_config(config)
