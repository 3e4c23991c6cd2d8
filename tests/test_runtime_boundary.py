"""The runtime's boundary: `kws_jax.runtime` loads neither JAX nor TensorFlow.

A phone, a Raspberry Pi or the live app runs an exported model with NumPy
and LiteRT alone; the rule is kept by this test, not by imports hidden in
functions. Every module of the subpackage (found on disk, so a new one is
checked too) and the tools built on it alone are imported in a fresh
interpreter, which then reports which of the forbidden packages it holds.
The same interpreter finally imports a module that does import JAX, to show
that the check would see one.
"""

import json
import os
import pkgutil
import subprocess
import sys

from kws_jax import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORBIDDEN = ('jax', 'jaxlib', 'flax', 'tensorflow')
# Command-line tools that need only the runtime (and their own extras).
RUNTIME_TOOLS = ('kws_jax.label_wav', 'kws_jax.test_streaming_accuracy',
                 'kws_jax.streaming_roc', 'kws_jax.serve', 'kws_jax.listen')

_PROBE = """
import importlib, json, sys

def loaded():
  return sorted({{name.split('.')[0] for name in sys.modules}} &
                set({forbidden!r}))

report = {{}}
for phase, names in (('runtime', {runtime!r}), ('tools', {tools!r}),
                     ('probe', ['jax_importer'])):
  for name in names:
    importlib.import_module(name)
  report[phase] = loaded()
print(json.dumps(report))
"""


def _runtime_modules() -> list[str]:
  return sorted(f'{runtime.__name__}.{module.name}'
                for module in pkgutil.iter_modules(runtime.__path__))


def test_the_runtime_loads_neither_jax_nor_tensorflow(tmp_path):
  modules = _runtime_modules()
  assert {'kws_jax.runtime.inference', 'kws_jax.runtime.streaming',
          'kws_jax.runtime.streaming_inference',
          'kws_jax.runtime.recognize_commands'} <= set(modules)
  (tmp_path / 'jax_importer.py').write_text('import jax  # noqa\n')
  code = _PROBE.format(forbidden=FORBIDDEN, runtime=modules,
                       tools=list(RUNTIME_TOOLS))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(tmp_path), ROOT, os.environ.get('PYTHONPATH', '')]))
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['runtime'] == [], (
      f'Importing {modules} loaded {report["runtime"]}.')
  assert report['tools'] == [], (
      f'Importing {RUNTIME_TOOLS} loaded {report["tools"]}.')
  # The check sees a forbidden import where there is one.
  assert 'jax' in report['probe']
