"""PNG figures: written whole or not at all, pyplot left alone."""

import os
import subprocess
import sys

import matplotlib
import pytest

from kws_jax import plotting


def test_save_png_writes_a_png_in_new_folders(tmp_path):
  backend = matplotlib.get_backend()
  fig = plotting.new_figure(2, 1.5, dpi=50)
  fig.add_subplot().plot([0, 1], [1, 0])
  path = tmp_path / 'a' / 'b' / 'plot.png'
  plotting.save_png(fig, str(path))
  assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert os.listdir(path.parent) == ['plot.png']
  assert matplotlib.get_backend() == backend


def test_a_failed_draw_leaves_nothing(tmp_path, monkeypatch):
  fig = plotting.new_figure(2, 1.5)
  path = tmp_path / 'plot.png'
  path.write_bytes(b'the old image')

  def fail(name, **kwargs):
    with open(name, 'wb') as f:
      f.write(b'half')
    raise OSError('disk full')

  monkeypatch.setattr(fig, 'savefig', fail)
  with pytest.raises(OSError, match='disk full'):
    plotting.save_png(fig, str(path))
  assert os.listdir(tmp_path) == ['plot.png']
  assert path.read_bytes() == b'the old image'


def test_the_figures_never_load_pyplot(tmp_path):
  # pyplot (and its global backend) stays unloaded by every figure writer.
  code = (
      'import sys, numpy as np\n'
      'from kws_jax import metrics, plotting\n'
      'result = metrics.ClassificationResult(np.eye(3, dtype=np.int64), '
      "['a', 'b', 'c'])\n"
      f'plotting.plot_confusion(result, {str(tmp_path / "c.png")!r})\n'
      "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot loaded'\n")
  done = subprocess.run([sys.executable, '-c', code], capture_output=True,
                        text=True, check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  assert (tmp_path / 'c.png').is_file()
