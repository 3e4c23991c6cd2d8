"""Figures written as PNG files, without pyplot.

A bare `Figure` with its own Agg canvas leaves pyplot's global state and
backend (a notebook's, say) alone; the PNG goes through a temporary file and
a rename (`files.atomic_path`), so a failed draw never leaves half an image.
"""

import os

from matplotlib import figure
from matplotlib.backends import backend_agg
import numpy as np

from kws_jax import files
from kws_jax import metrics as metrics_lib


def new_figure(width: float, height: float, dpi: float = 100) -> figure.Figure:
  """A figure of `width` x `height` inches that can be saved as PNG."""
  fig = figure.Figure(figsize=(width, height), dpi=dpi)
  backend_agg.FigureCanvasAgg(fig)
  return fig


def save_png(fig: figure.Figure, path: str) -> None:
  """Writes `fig` to `path` (folders made as needed) in one rename."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with files.atomic_path(path) as tmp:
    fig.savefig(tmp, format='png')


def plot_confusion(result: metrics_lib.ClassificationResult, path: str,
                   title: str = '') -> None:
  """Writes the confusion matrix as a labelled heat map (PNG).

  Rows are true labels, columns predicted ones; each cell shows its count,
  coloured by the share of its row (recall per class on the diagonal).
  """
  confusion = result.confusion
  labels = list(result.labels)
  shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
  size = max(4.0, 0.55 * len(labels) + 2.0)
  fig = new_figure(size + 1.5, size)
  ax = fig.subplots()
  image = ax.imshow(shares, cmap='Blues', vmin=0.0, vmax=1.0)
  colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  colorbar.set_label('Share of the true class')
  ax.set_xticks(range(len(labels)), labels, rotation=45, ha='right')
  ax.set_yticks(range(len(labels)), labels)
  ax.set_xlabel('Predicted label')
  ax.set_ylabel('True label')
  ax.set_title(title or f'Accuracy {result.accuracy * 100:.1f}% '
               f'(N={result.count})')
  for i in range(len(labels)):
    for j in range(len(labels)):
      if confusion[i, j]:
        ax.text(j, i, str(int(confusion[i, j])), ha='center', va='center',
                fontsize=8, color='white' if shares[i, j] > 0.5 else 'black')
  fig.tight_layout()
  save_png(fig, path)
