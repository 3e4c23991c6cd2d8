"""Figures written as PNG files, without pyplot.

A bare `Figure` with its own Agg canvas leaves pyplot's global state and
backend (a notebook's, say) alone; the PNG goes through a temporary file and
a rename, so a failed draw never leaves half an image.
"""

import os

from matplotlib import figure
from matplotlib.backends import backend_agg


def new_figure(width: float, height: float, dpi: float = 100) -> figure.Figure:
  """A figure of `width` x `height` inches that can be saved as PNG."""
  fig = figure.Figure(figsize=(width, height), dpi=dpi)
  backend_agg.FigureCanvasAgg(fig)
  return fig


def save_png(fig: figure.Figure, path: str) -> None:
  """Writes `fig` to `path` (folders made as needed) in one rename."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  tmp = os.path.join(folder, f'.{os.path.basename(path)}.{os.getpid()}.png')
  try:
    fig.savefig(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
