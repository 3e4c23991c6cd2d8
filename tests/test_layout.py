"""The code's layout holds: imports go one way, down the layers the README
names ("How the code is laid out"), and no module is over 700 lines.

Read from the source (every import, also those inside functions), so a
new module must be given its layer here.
"""

import ast
import os

import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGES = ('kws_jax', 'tflite_export')

# Bottom to top: a module imports only from its own layer or below. Within
# a layer, tools never import other tools.
LAYERS = (
    ('base', ('kws_jax.audio_io', 'kws_jax.files', 'kws_jax.labels',
              'kws_jax.rooms', 'kws_jax.log_lines', 'kws_jax.tf_setup',
              'kws_jax.config_files', 'kws_jax.workdir', 'kws_jax.plotting',
              'kws_jax.metrics')),
    ('runtime', ('kws_jax.runtime',)),
    ('data', ('kws_jax.features', 'kws_jax.download',
              'kws_jax.speech_commands_builder', 'kws_jax.data_sources',
              'kws_jax.partial_words', 'kws_jax.noise', 'kws_jax.augment',
              'kws_jax.input_pipeline')),
    ('models', ('kws_jax.models',)),
    ('training', ('kws_jax.config_validation', 'kws_jax.checkpoint',
                  'kws_jax.train', 'kws_jax.scoring')),
    ('export', ('tflite_export',)),
    ('synth', ('kws_jax.synth',)),
    ('tools', ('kws_jax.main', 'kws_jax.evaluate', 'kws_jax.label_wav',
               'kws_jax.wav_to_spectrogram',
               'kws_jax.generate_streaming_test_wav',
               'kws_jax.test_streaming_accuracy', 'kws_jax.streaming_roc',
               'kws_jax.listen', 'kws_jax.serve', 'kws_jax.synthesize')),
)
_TOOLS = len(LAYERS) - 1
_MAX_LINES = 700


def _modules() -> dict[str, str]:
  out = {}
  for package in _PACKAGES:
    for folder, _, names in os.walk(os.path.join(_REPO, package)):
      for name in names:
        if name.endswith('.py'):
          path = os.path.join(folder, name)
          module = os.path.relpath(path, _REPO)[:-3].replace(os.sep, '.')
          out[module.removesuffix('.__init__')] = path
  return out


def _imports(path: str, modules: dict[str, str]) -> set[str]:
  """The project modules `path` imports (a package's own submodules only
  by their full name, so `from kws_jax import audio_io` is audio_io)."""
  out = set()
  for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names = [f'{node.module}.{a.name}' for a in node.names]
      names = [n if n in modules else node.module for n in names]
    else:
      continue
    out.update(n for n in names if n in modules)
  return out


def _layer(module: str) -> int | None:
  best = None
  for index, (_, prefixes) in enumerate(LAYERS):
    for prefix in prefixes:
      if module == prefix or module.startswith(prefix + '.'):
        if best is None or len(prefix) > best[1]:
          best = (index, len(prefix))
  return best[0] if best else None


def test_every_module_has_a_layer():
  packages = {'kws_jax', 'tflite_export', 'kws_jax.models', 'kws_jax.runtime',
              'kws_jax.synth'}
  missing = [m for m in _modules() if m not in packages and _layer(m) is None]
  assert not missing, f'Give these modules a layer in LAYERS: {missing}'


def test_imports_go_down_the_layers():
  modules = _modules()
  wrong = []
  for module, path in modules.items():
    for imported in _imports(path, modules):
      here, there = _layer(module), _layer(imported)
      if here is None or there is None or imported == module:
        continue
      if there > here or (here == there == _TOOLS):
        wrong.append(f'{module} ({LAYERS[here][0]}) imports {imported} '
                     f'({LAYERS[there][0]})')
  assert not wrong, '\n'.join(wrong)


def test_the_check_sees_an_upward_import(tmp_path):
  bad = tmp_path / 'bad.py'
  bad.write_text('from kws_jax import train\nimport kws_jax.runtime.inference\n')
  modules = _modules()
  assert _imports(str(bad), modules) == {'kws_jax.train',
                                         'kws_jax.runtime.inference'}
  assert _layer('kws_jax.train') > _layer('kws_jax.audio_io')


@pytest.mark.parametrize('package', _PACKAGES + ('benchmarks', 'experiments'))
def test_no_module_is_over_700_lines(package):
  long = []
  for folder, _, names in os.walk(os.path.join(_REPO, package)):
    for name in names:
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        with open(path, encoding='utf-8') as f:
          count = sum(1 for _ in f)
        if count > _MAX_LINES:
          long.append(f'{os.path.relpath(path, _REPO)}: {count}')
  assert not long, long
