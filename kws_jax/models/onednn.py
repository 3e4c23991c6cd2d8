"""2-D convolutions through oneDNN on the CPU, as XLA custom calls.

XLA:CPU's own convolutions ran the tutorial `conv` model's training step
1.4 times slower than TensorFlow, whose CPU kernels are oneDNN's
(`benchmarks/peer_speed.py`). This module builds `onednn_conv.cc` (three
XLA FFI handlers: forward, gradient of the input, gradients of kernel and
bias) against the oneDNN of the `onednn-cpu-gomp` package and JAX's FFI
headers, registers them, and offers `conv`, a convolution with bias whose
gradient runs through the same library.

The library is built on first use with the C++ compiler (`$CXX`, else
g++), about 5 s, into `$KWS_JAX_CACHE` (default `~/.cache/kws_jax`), under
a name that hashes the source, the compiler, JAX's version and oneDNN's
path, so that a changed source or JAX builds afresh; the file appears only
when complete. `layers.Conv` calls `conv` inside
`layers.convolution_library('onednn')`, which the training step enters
when `config.train_convolutions` says so.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import threading

import jax
import jax.numpy as jnp
import numpy as np

from kws_jax import files

_SOURCE = pathlib.Path(__file__).with_name('onednn_conv.cc')
_TARGETS = ('kws_onednn_conv_forward', 'kws_onednn_conv_backward_data',
            'kws_onednn_conv_backward_weights')
_RUNTIME = 'onednn-cpu-gomp'
_HEADERS = 'onednn-devel-cpu-gomp'
_lock = threading.Lock()
_registered = False


class OnednnUnavailable(RuntimeError):
  """The oneDNN kernels cannot be built or loaded here; says why and what
  to do."""


def _package_file(package: str, suffix: str) -> pathlib.Path:
  """The installed file of `package` whose path ends with `suffix`."""
  try:
    files = importlib.metadata.distribution(package).files or []
  except importlib.metadata.PackageNotFoundError:
    files = []
  for file in files:
    if str(file).replace(os.sep, '/').endswith(suffix):
      return pathlib.Path(file.locate()).resolve()
  raise OnednnUnavailable(
      f'The {package} package (its {suffix}) is not installed; '
      "`pip install -e .` in the project's folder installs it (on Linux "
      'x86-64, the only platform it is published for).')


def cache_dir() -> pathlib.Path:
  """Where the built library is kept ($KWS_JAX_CACHE, else
  ~/.cache/kws_jax)."""
  return pathlib.Path(os.environ.get('KWS_JAX_CACHE') or
                      os.path.join(os.path.expanduser('~'), '.cache',
                                   'kws_jax'))


def build() -> pathlib.Path:
  """The kernels' shared library, built first if this setup has none.

  Raises:
    OnednnUnavailable: no compiler, no oneDNN package, or the build failed
      (with the compiler's first lines).
  """
  library = _package_file(_RUNTIME, '/libdnnl.so.3')
  include = _package_file(_HEADERS, '/include/oneapi/dnnl/dnnl.hpp').parents[2]
  compiler = os.environ.get('CXX') or 'g++'
  if not shutil.which(compiler):
    raise OnednnUnavailable(
        f'No C++ compiler {compiler!r} to build {_SOURCE} (oneDNN '
        'convolutions); install one (Debian: apt-get install g++) or name it '
        'in $CXX, or train with --config.train_convolutions=xla.')
  flags = ['-O2', '-std=c++17', '-shared', '-fPIC', '-w',
           f'-I{jax.ffi.include_dir()}', f'-I{include}']
  key = hashlib.sha256(b'\0'.join([
      _SOURCE.read_bytes(), compiler.encode(), ' '.join(flags).encode(),
      jax.__version__.encode(), importlib.metadata.version('jaxlib').encode(),
      str(library).encode()])).hexdigest()[:16]
  target = cache_dir() / f'kws_onednn_conv-{key}.so'
  if target.exists():
    return target
  try:
    target.parent.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(target) as partial:
      command = [compiler, *flags, str(_SOURCE), str(library),
                 f'-Wl,-rpath,{library.parent}', '-o', partial]
      done = subprocess.run(command, capture_output=True, text=True,
                            check=False)
      if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()[:8]
        raise OnednnUnavailable(
            f'Building {_SOURCE} failed ({" ".join(command)}):\n' +
            '\n'.join(lines) +
            '\nTrain with --config.train_convolutions=xla meanwhile.')
  except OSError as e:
    raise OnednnUnavailable(
        f'Cannot write the oneDNN convolutions into {target.parent}: {e}; '
        'name a writable folder in $KWS_JAX_CACHE.') from e
  return target


def register() -> None:
  """Builds (if needed), loads and registers the FFI targets, once."""
  global _registered
  with _lock:
    if _registered:
      return
    path = build()
    try:
      library = ctypes.cdll.LoadLibrary(str(path))
    except OSError as e:
      raise OnednnUnavailable(
          f'Cannot load {path}: {e}; delete it to build it again, or train '
          'with --config.train_convolutions=xla.') from e
    for name in _TARGETS:
      jax.ffi.register_ffi_target(
          name, jax.ffi.pycapsule(getattr(library, name)), platform='cpu')
    _registered = True


Padding = tuple[tuple[int, int], tuple[int, int]]


def _attributes(strides: tuple[int, int], padding: Padding
                ) -> dict[str, np.int64]:
  (top, bottom), (left, right) = padding
  return {name: np.int64(value) for name, value in (
      ('stride_h', strides[0]), ('stride_w', strides[1]), ('pad_top', top),
      ('pad_bottom', bottom), ('pad_left', left), ('pad_right', right))}


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def conv(x: jax.Array, kernel: jax.Array, bias: jax.Array,
         strides: tuple[int, int], padding: Padding) -> jax.Array:
  """`lax.conv_general_dilated(x, kernel, strides, padding)` + bias, NHWC.

  Args:
    x: float32 [N, H, W, C].
    kernel: float32 [KH, KW, C, O].
    bias: float32 [O].
    strides: (height, width).
    padding: ((top, bottom), (left, right)), explicit.

  Returns:
    float32 [N, OH, OW, O], OH = (H + top + bottom - KH) // stride + 1.
  """
  register()
  (top, bottom), (left, right) = padding
  out_h = (x.shape[1] + top + bottom - kernel.shape[0]) // strides[0] + 1
  out_w = (x.shape[2] + left + right - kernel.shape[1]) // strides[1] + 1
  shape = jax.ShapeDtypeStruct(
      (x.shape[0], out_h, out_w, kernel.shape[3]), jnp.float32)
  return jax.ffi.ffi_call(_TARGETS[0], shape, vmap_method='sequential')(
      x, kernel, bias, **_attributes(strides, padding))


def _forward(x, kernel, bias, strides, padding):
  return conv(x, kernel, bias, strides, padding), (x, kernel)


def _backward(strides, padding, residuals, dy):
  x, kernel = residuals
  attributes = _attributes(strides, padding)
  dx = jax.ffi.ffi_call(_TARGETS[1], jax.ShapeDtypeStruct(
      x.shape, jnp.float32), vmap_method='sequential')(dy, kernel,
                                                        **attributes)
  dkernel, dbias = jax.ffi.ffi_call(_TARGETS[2], (
      jax.ShapeDtypeStruct(kernel.shape, jnp.float32),
      jax.ShapeDtypeStruct(kernel.shape[3:], jnp.float32)),
                                    vmap_method='sequential')(
                                        x, dy, **attributes)
  return dx, dkernel, dbias


conv.defvjp(_forward, _backward)
