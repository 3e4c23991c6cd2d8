"""Config checks: every bad value is refused with a message naming the field."""

import glob
import importlib.util
import os
import subprocess
import sys

import ml_collections
import pytest

from configs import default
from configs import test as test_config
from kws_jax import checkpoint
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
    ('distill_weight', 1.5, 'distill_weight'),
    ('distill_weight', 0.5, 'distill_from and config.distill_weight'),
    ('distill_from', '/some/run', 'distill_from and config.distill_weight'),
    ('distill_temperature', 0.0, 'distill_temperature'),
    ('reverb_probability', 1.5, 'reverb_probability'),
    ('momentum', 1.0, 'momentum'),
    ('background_rms_max', 1.5, 'background_rms_max'),
    ('background_rms_max', 0.3, 'background_rms_min=0.0 must be above 0'),
    ('generated_noise', True, 'needs config.background_rms_max'),
    ('dc_offset_noise', True, 'needs config.generated_noise=True'),
    ('unknown_word_balance', -0.5, 'unknown_word_balance'),
    ('command_negatives', 2.0, 'command_negatives'),
    ('same_speaker_joins', -0.1, 'same_speaker_joins'),
    ('stream_windows', -0.1, 'stream_windows'),
    ('unknown_offset', -1.0, 'unknown_offset'),
    ('loss', 'hinge', "config.loss='hinge'"),
    ('synthetic_adversary', -1.0, 'synthetic_adversary=-1.0 must be a non'),
    ('synthetic_unknown', True, 'needs config.synthetic_dir'),
    ('unseen_words_fold', '4/3', 'unseen_words_fold'),
    ('unseen_words_fold', '1/1', 'unseen_words_fold'),
    ('unseen_words_fold', 'one', 'unseen_words_fold'),
])
def test_bad_values_are_refused_with_the_field_named(field, value, message):
  config = default.get_config()
  config[field] = value
  with pytest.raises(config_validation.ConfigError, match=message):
    config_validation.validate_config(config)


@pytest.mark.parametrize('overrides,message', [
    ({'model_architecture': 'conv'},
     r"embedding \(one of \['tc_resnet'\]\).*model_architecture=tc_resnet"),
    ({'synthetic_fraction': 0.0, 'synthetic_unknown': False},
     'needs synthetic speech in training'),
    ({'synthetic_unknown': False}, 'recorded and synthetic clips in every'),
    ({'synthetic_only_words': ('yes',)}, 'recorded and synthetic clips in'),
    ({'mixup_alpha': 0.2}, 'does not go with config.mixup_alpha=0.2'),
])
def test_what_the_synthetic_adversary_needs(overrides, message):
  config = default.get_config()
  config.model_architecture, config.model = 'tc_resnet', {}
  config.synthetic_adversary = 1.0
  config.synthetic_dir, config.synthetic_fraction = '/some/folder', 0.2
  config.synthetic_unknown = True
  config_validation.validate_config(config.copy_and_resolve_references())
  for key, value in overrides.items():
    config[key] = value
  with pytest.raises(config_validation.ConfigError, match=message):
    config_validation.validate_config(config)


def test_one_vs_rest_does_not_distill():
  config = default.get_config()
  config.loss = 'one_vs_rest'
  config.distill_from, config.distill_weight = '/some/run', 0.5
  with pytest.raises(config_validation.ConfigError,
                     match="loss='one_vs_rest' and config.distill_from"):
    config_validation.validate_config(config)


# --- Values of the wrong kind, and what the config points at ---------------


@pytest.mark.parametrize('field,value,message', [
    ('background_volume', float('nan'), 'background_volume'),
    ('background_frequency', float('nan'), 'background_frequency'),
    ('window_size_ms', float('inf'), 'window_size_ms'),
    ('window_stride_ms', float('nan'), 'window_stride_ms'),
    ('time_shift_ms', -1.0, 'time_shift_ms'),
    ('batch_size', 8.5, 'batch_size'),
    ('batch_size', True, 'batch_size'),
    ('seed', 1.5, 'seed'),
    ('keep_checkpoints', '5', 'keep_checkpoints'),
    ('check_nans', 'yes', 'check_nans'),
    ('nesterov', 1, 'nesterov'),
    ('ema_warmup', 'no', 'ema_warmup'),
    ('data_dir', '', 'data_dir'),
    ('data_dir', 7, 'data_dir'),
    ('start_checkpoint', None, 'start_checkpoint'),
    ('data_sha256', 'not-a-digest', 'data_sha256'),
])
def test_values_of_the_wrong_kind_are_refused(field, value, message):
  # Built from a dict: config files can hold any type (command-line
  # overrides are type-checked by ConfigDict already).
  config = ml_collections.ConfigDict({**default.get_config().to_dict(),
                                      field: value})
  with pytest.raises(config_validation.ConfigError, match=message):
    config_validation.validate_config(config)


def _checked(tmp_path, **overrides):
  config = test_config.get_config()
  config.data_dir = str(tmp_path)
  for key, value in overrides.items():
    config[key] = value
  config = config_validation.validate_config(config)
  config_validation.check_before_training(config, str(tmp_path / 'run'))
  checkpoint.check_checkpoints_fit(config, str(tmp_path / 'run'))


def test_missing_data_dir_without_an_archive(tmp_path):
  with pytest.raises(config_validation.ConfigError,
                     match="data_dir=.*absent.*data_url is ''"):
    _checked(tmp_path, data_dir=str(tmp_path / 'absent'))
  _checked(tmp_path)  # An existing folder is fine.


def test_missing_local_archive(tmp_path):
  with pytest.raises(config_validation.ConfigError,
                     match='data_url.*nowhere.tar.gz.*does not exist'):
    _checked(tmp_path, data_url=str(tmp_path / 'nowhere.tar.gz'),
             data_dir=str(tmp_path / 'data'))
  # Once unpacked (marker present) the archive itself is not needed; a
  # download URL is only checked when fetched.
  (tmp_path / 'data').mkdir()
  (tmp_path / 'data' / '.extracted-nowhere.tar.gz').write_text('done')
  _checked(tmp_path, data_url=str(tmp_path / 'nowhere.tar.gz'),
           data_dir=str(tmp_path / 'data'))
  _checked(tmp_path, data_url='https://example.invalid/sc.tar.gz',
           data_dir=str(tmp_path / 'other'))


def test_model_settings_the_architecture_refuses(tmp_path):
  with pytest.raises(config_validation.ConfigError,
                     match="config.model=.*dropout.*tiny_conv"):
    _checked(tmp_path, model={'dropout': 0.5})  # A typo of dropout_rate.


def test_missing_synthetic_dir(tmp_path):
  with pytest.raises(config_validation.ConfigError,
                     match='make it with experiments/synthesize_negatives.sh'):
    _checked(tmp_path, synthetic_dir=str(tmp_path / 'absent'),
             synthetic_fraction=0.5)


@pytest.fixture(scope='module')
def start_checkpoint(tmp_path_factory):
  """A tiny_conv workdir with a checkpoint at step 3, labels yes/no."""
  import export_test_util as util  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp('first')
  config = test_config.get_config()
  config.data_url = ''
  util.write_checkpoint(str(workdir), config, util.LABELS, {3: 0.5})
  return workdir


@pytest.mark.parametrize('overrides,message', [
    ({'wanted_words': ('yes', 'up')}, 'trained on labels'),
    ({'model_architecture': 'single_fc', 'model': {}}, "holds a 'tiny_conv'"),
    ({'feature_bin_count': 20}, 'other shapes'),
    ({'window_stride_ms': 20.0}, 'other shapes'),
])
def test_start_checkpoint_that_does_not_fit(tmp_path, start_checkpoint,
                                            overrides, message):
  with pytest.raises(checkpoint.CheckpointError, match=message):
    _checked(tmp_path, start_checkpoint=str(start_checkpoint), **overrides)


def test_start_checkpoint_that_fits_or_is_not_used(tmp_path,
                                                   start_checkpoint):
  _checked(tmp_path, start_checkpoint=str(start_checkpoint))
  _checked(tmp_path, start_checkpoint=str(
      start_checkpoint / 'checkpoints' / '3'))
  with pytest.raises(checkpoint.CheckpointError, match='not a checkpoint'):
    _checked(tmp_path, start_checkpoint=str(tmp_path / 'nothing'))
  # A workdir with its own checkpoints resumes from them; start_checkpoint
  # is then not used, and not checked.
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.copytree(start_checkpoint / 'checkpoints',
                  tmp_path / 'run' / 'checkpoints')
  _checked(tmp_path, start_checkpoint=str(tmp_path / 'nothing'))


def test_command_line_reports_a_missing_data_dir_without_traceback(tmp_path):
  root = os.path.dirname(CONFIG_DIR)
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.main', '--config=configs/test.py',
       f'--config.data_dir={tmp_path / "absent"}',
       f'--workdir={tmp_path / "run"}'],
      cwd=root, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert 'error: config.data_dir=' in result.stderr
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'run').exists()  # Refused before any work.


@pytest.mark.parametrize('overrides,message', [
    ({'wanted_words': ('yes', 'up')}, 'trained on labels'),
    ({'sample_rate': 8000}, 'takes sample_rate=16000'),
    ({'clip_duration_ms': 500}, 'takes clip_duration_ms=1000'),
])
def test_teacher_that_does_not_fit(tmp_path, start_checkpoint, overrides,
                                   message):
  with pytest.raises(checkpoint.CheckpointError,
                     match=f'distill_from names .*{message}'):
    _checked(tmp_path, distill_from=str(start_checkpoint),
             distill_weight=0.5, **overrides)


def test_teacher_that_fits_or_is_missing(tmp_path, start_checkpoint):
  # Another architecture, and two teachers, are fine.
  _checked(tmp_path, distill_from=f'{start_checkpoint}, {start_checkpoint}',
           distill_weight=0.5, model_architecture='single_fc', model={})
  with pytest.raises(checkpoint.CheckpointError,
                     match='nothing.*cannot be read as a teacher'):
    _checked(tmp_path, distill_from=str(tmp_path / 'nothing'),
             distill_weight=0.5)


def test_a_start_checkpoint_with_a_domain_head_says_so(tmp_path):
  import export_test_util as util  # pylint: disable=g-import-not-at-top
  config = test_config.get_config()
  config.data_url = ''
  config.model_architecture, config.preprocess = 'tc_resnet', 'mfcc'
  config.model = {'width_multiplier': 0.5}
  config.synthetic_adversary = 1.0
  util.write_checkpoint(str(tmp_path / 'first'), config, util.LABELS,
                        {3: 0.5})
  config.synthetic_adversary = 0.0
  config.start_checkpoint = str(tmp_path / 'first')
  with pytest.raises(checkpoint.CheckpointError,
                     match='synthetic_adversary=1.0, this run has 0.0'):
    checkpoint.check_checkpoints_fit(config, str(tmp_path / 'run'))


def test_a_one_vs_rest_teacher_is_refused(tmp_path):
  import export_test_util as util  # pylint: disable=g-import-not-at-top
  config = test_config.get_config()
  config.data_url, config.loss = '', 'one_vs_rest'
  util.write_checkpoint(str(tmp_path / 'teacher'), config, util.LABELS,
                        {3: 0.5})
  config.loss = 'softmax'
  config.distill_from, config.distill_weight = str(tmp_path / 'teacher'), 0.5
  with pytest.raises(checkpoint.CheckpointError,
                     match="trained with loss='one_vs_rest'"):
    checkpoint.check_checkpoints_fit(config, str(tmp_path / 'run'))


def test_reverberation_time_is_checked_only_when_used():
  config = default.get_config()
  config.reverb_max_rt60_ms = 100.0
  config_validation.validate_config(config)  # Off: not used.
  config.reverb_probability = 0.5
  with pytest.raises(config_validation.ConfigError,
                     match='reverb_max_rt60_ms=100.0 must be above 150'):
    config_validation.validate_config(config)
  config.reverb_max_rt60_ms = 70000.0  # A typo for 700.
  with pytest.raises(config_validation.ConfigError, match='at most 3000'):
    config_validation.validate_config(config)


def test_teachers_are_comma_separated_sweep_folders_kept_whole():
  config = default.get_config()
  config.distill_from = ('/runs/a,fold=1_3, /runs/b,fold=1_3,relative/c,'
                         '/runs/fold=2,/w/learning_rate=0.01,seed=1,'
                         '/w/model.width_multiplier=1.5,seed=2,fold=1_3')
  assert config_validation.teacher_paths(config) == [
      '/runs/a,fold=1_3', '/runs/b,fold=1_3', 'relative/c', '/runs/fold=2',
      '/w/learning_rate=0.01,seed=1',
      '/w/model.width_multiplier=1.5,seed=2,fold=1_3']


def test_distillation_needs_a_teacher_named():
  config = default.get_config()
  config.distill_weight = 0.5
  config.distill_from = ' , '  # Commas alone name no teacher.
  with pytest.raises(config_validation.ConfigError,
                     match="go together.*distill_from=' , '"):
    config_validation.validate_config(config)


def test_unseen_words_fold_parses_and_needs_local_data():
  assert config_validation.parse_unseen_fold('') is None
  assert config_validation.parse_unseen_fold('2/3') == (2, 3)
  config = default.get_config()
  config.unseen_words_fold = '1/3'
  config.data_source = 'tfds'
  with pytest.raises(config_validation.ConfigError, match='data_source=local'):
    config_validation.validate_config(config)


@pytest.mark.parametrize('args,message', [
    (['--config=configs/test.py', '--config.learnig_rate=0.1'],
     'error: --config.learnig_rate: configs/test.py has no such field; did '
     'you mean --config.learning_rate'),
    (['--config=configs/tc_resnet.py', '--config.model.widht=2'],
     'error: --config.model.widht: configs/tc_resnet.py has no such field; '
     'did you mean --config.model.width_multiplier'),
    (['--config=configs/tcresnet.py'],
     'error: --config=configs/tcresnet.py: no such config file; did you mean '
     'configs/tc_resnet.py'),
    (['--config=configs/test.py', '--config.batch_size=abc'],
     'error: flag --config.batch_size=abc: invalid literal'),
])
def test_command_line_mistakes_are_one_line(tmp_path, args, message):
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.main', *args,
       f'--workdir={tmp_path / "run"}'],
      cwd=os.path.dirname(CONFIG_DIR), capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1].startswith(message), (
      result.stderr[-2000:])
  assert not (tmp_path / 'run').exists()


def test_convert_names_a_workdir_without_checkpoints(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'tflite_export.convert',
       f'--workdir={tmp_path}', f'--output={tmp_path / "m.tflite"}'],
      cwd=os.path.dirname(CONFIG_DIR), capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: {tmp_path} holds no checkpoint: give a training workdir, its '
      'checkpoints directory or a step directory such as '
      '<workdir>/checkpoints/1200.')
