"""Tests for kws_jax/config_files.py: config files by path and ':arg'."""

import os

import pytest

from experiments import negatives
from experiments import sweep
from kws_jax import config_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('spec,expected', [
    ('configs/conv.py', ('configs/conv.py', None)),
    ('configs/tc_resnet.py:14-1.5', ('configs/tc_resnet.py', '14-1.5')),
    ('configs/conv.py:', ('configs/conv.py', None)),
])
def test_split_spec(spec, expected):
  assert config_files.split_spec(spec) == expected


def test_load_config_passes_the_arg_to_get_config():
  path = os.path.join(REPO, 'configs', 'tc_resnet.py')
  default = config_files.load_config(path)
  paper = config_files.load_config(path + ':8')
  wide = config_files.load_config(path + ':14-1.5')
  assert default.model_architecture == wide.model_architecture == 'tc_resnet'
  # The default model is TC-ResNet8-1.2; ':8' is the paper's width.
  assert (default.model.blocks_per_stage, default.model.width_multiplier) == (
      1, 1.2)
  assert (paper.model.blocks_per_stage, paper.model.width_multiplier) == (
      1, 1.0)
  assert (wide.model.blocks_per_stage, wide.model.width_multiplier) == (
      2, 1.5)
  with pytest.raises(ValueError, match='depth must be 8 or 14'):
    config_files.load_config(path + ':9')
  with pytest.raises(ValueError, match=r"width after the dash .*'8-wide'"):
    config_files.load_config(path + ':8-wide')


def test_relative_paths_are_found_from_the_root(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.syspath_prepend(REPO)  # The config imports configs.default.
  with pytest.raises(FileNotFoundError, match='configs/conv.py'):
    config_files.load_config('configs/conv.py')
  config = config_files.load_config('configs/conv.py', root=REPO)
  assert config.model_architecture == 'conv'
  assert config_files.find('configs/conv.py', REPO) == os.path.join(
      REPO, 'configs', 'conv.py')
  # A file in the working directory wins over the root's.
  (tmp_path / 'configs').mkdir()
  (tmp_path / 'configs' / 'conv.py').write_text(
      'import ml_collections\n'
      'def get_config(arg=None):\n'
      '  return ml_collections.ConfigDict({"arg": arg})\n')
  assert config_files.load_config('configs/conv.py:x', root=REPO).arg == 'x'
  assert config_files.load_config('configs/conv.py', root=REPO).arg is None


def test_load_module_runs_the_file_afresh_each_time(tmp_path):
  path = tmp_path / 'counter.py'
  path.write_text('COUNT = []\nCOUNT.append(1)\n')
  first = config_files.load_module(str(path), 'counter')
  second = config_files.load_module(str(path), 'counter')
  assert first is not second and first.COUNT == second.COUNT == [1]
  assert first.__name__ == 'counter'
  with pytest.raises(FileNotFoundError):
    config_files.load_module(str(tmp_path / 'missing.py'))
  with pytest.raises(FileNotFoundError):
    config_files.load_module(str(tmp_path))  # A folder is not a file.


def test_conv_takes_the_negatives_recipe_and_tutorial_leaves_it_out():
  conv = config_files.load_config('configs/conv.py', root=REPO)
  tutorial = config_files.load_config('configs/conv.py:tutorial', root=REPO)
  tc_resnet = config_files.load_config('configs/tc_resnet.py', root=REPO)
  negatives = ('background_rms_min', 'background_rms_max', 'generated_noise',
               'dc_offset_noise', 'unknown_word_balance', 'unknown_percentage',
               'synthetic_dir', 'synthetic_fraction', 'synthetic_unknown')
  for field in negatives:
    assert conv[field] == tc_resnet[field], field
  assert conv.dc_offset_noise and conv.synthetic_dir
  assert not tutorial.dc_offset_noise and not tutorial.synthetic_dir
  # The offset is each recipe's own (the offset rule on its seeds).
  assert conv.unknown_offset == 0.5 and tutorial.unknown_offset == 0.0
  assert tc_resnet.unknown_offset == 0.75
  assert tutorial.unknown_percentage == 10.0
  # The rest of conv is the tutorial's recipe.
  assert conv.how_many_training_steps == tutorial.how_many_training_steps
  assert conv.optimizer == tutorial.optimizer == 'gradient_descent'
  with pytest.raises(ValueError, match='tutorial'):
    config_files.load_config('configs/conv.py:8', root=REPO)


def test_the_negatives_sweep_pins_the_recipe_it_compares():
  """Its points are a history: a later default (the DC offset, the unknown
  offset) must not leak into them."""
  for name, recipe in negatives.RECIPES.items():
    assert recipe['unknown_offset'] == 0.0, name
    assert recipe['dc_offset_noise'] == (name >= '8'), name


@pytest.mark.parametrize('name', ['capacity', 'distillation', 'negatives',
                                  'recipe', 'scarce_words', 'synthetic_words'])
def test_the_sweeps_of_4000_steps_pin_the_schedule_and_offset_of_then(name):
  """The default's 8000 steps and offset 0.75 must not leak into them."""
  _, shared, points, _ = sweep.load_sweep(
      os.path.join(REPO, 'experiments', f'{name}.py'))
  assert shared['how_many_training_steps'] == '2500,1000,500'
  assert shared['unknown_offset'] == 0.5
  base = config_files.load_config('configs/tc_resnet.py', root=REPO)
  assert base.how_many_training_steps != shared['how_many_training_steps']
  assert base.unknown_offset != shared['unknown_offset']
  assert points
