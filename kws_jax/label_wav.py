r"""Labels audio files with a TFLite model, like the tutorial's label_wav.py.

  python -m kws_jax.label_wav --wav=clip.wav
  python -m kws_jax.label_wav --graph=model.tflite --labels=model_labels.txt \
      --wav='a.wav,more/*.flac,folder/' --how_many_labels=3

For each file prints its `--how_many_labels` best labels, one a line, as the
tutorial does:

    yes (score = 0.91234)
    _unknown_ (score = 0.04321)

With several files each block starts with the file's path. `--wav` takes a
comma-separated list of files, folders (their .wav and .flac files, sorted,
subfolders included) and glob patterns. A file that cannot be read gets an
error line on stderr and the others are still labelled; the exit status is
then 1. Needs no JAX (see `kws_jax.runtime.inference`).
"""

from __future__ import annotations

import glob
import os
import sys
from typing import Sequence, TextIO

from absl import app
from absl import flags

from kws_jax import audio_io
from kws_jax.runtime import inference

_GLOB_CHARS = frozenset('*?[')


def _audio_files_in(folder: str) -> list[str]:
  found = []
  for root, dirs, files in os.walk(folder):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    found.extend(os.path.join(root, f) for f in files
                 if not f.startswith('.') and
                 f.lower().endswith(audio_io.AUDIO_EXTENSIONS))
  return sorted(found)


def expand_inputs(spec: str | Sequence[str]) -> tuple[list[str], list[str]]:
  """Expands `--wav` into files.

  Args:
    spec: comma-separated (or a list of) files, folders and glob patterns.

  Returns:
    (files in the order given, each once; errors for entries that matched
    nothing). Plain file names are passed through even when missing, so
    reading them reports the problem with the file's name.
  """
  entries = spec.split(',') if isinstance(spec, str) else list(spec)
  files, errors, seen = [], [], set()
  for entry in (e.strip() for e in entries):
    if not entry:
      continue
    if os.path.isdir(entry):
      matched = _audio_files_in(entry)
      if not matched:
        errors.append(f'{audio_io.printable_path(entry)}: folder holds no '
                      '.wav or .flac files.')
    elif _GLOB_CHARS & set(entry):
      matched = []
      for path in sorted(glob.glob(entry, recursive=True)):
        matched.extend(_audio_files_in(path) if os.path.isdir(path)
                       else [path])
      if not matched:
        errors.append(
            f'{audio_io.printable_path(entry)}: pattern matches no files.')
    else:
      matched = [entry]
    for path in matched:
      if path not in seen:
        seen.add(path)
        files.append(path)
  return files, errors


def format_labels(top: Sequence[tuple[str, float]]) -> str:
  """The tutorial's lines: `label (score = 0.91234)`."""
  return '\n'.join(f'{label} (score = {score:.5f})' for label, score in top)


def label_wavs(recognizer: inference.Predictor, paths: Sequence[str],
               how_many_labels: int = 3, *, out: TextIO = sys.stdout,
               err: TextIO = sys.stderr) -> int:
  """Prints the best labels of each file; returns the number that failed."""
  failures = 0
  for path in paths:
    try:
      top = recognizer.classify_file(path, top_k=how_many_labels)
    except audio_io.AudioError as e:
      print(f'Error: {e}', file=err)
      failures += 1
      continue
    if len(paths) > 1:
      print(f'{audio_io.printable_path(path)}:', file=out)
    print(format_labels(top), file=out)
  return failures


def run(wav: str, graph: str | None = None, labels: str | None = None,
        how_many_labels: int = 3, *, out: TextIO = sys.stdout,
        err: TextIO = sys.stderr) -> int:
  """What the command line does; returns the exit status (0 or 1)."""
  if how_many_labels < 1:
    print('Error: --how_many_labels must be at least 1.', file=err)
    return 1
  try:
    recognizer = inference.Recognizer(graph, labels)
  except inference.ModelError as e:
    print(f'Error: {e}', file=err)
    return 1
  paths, errors = expand_inputs(wav)
  for error in errors:
    print(f'Error: {error}', file=err)
  failures = label_wavs(recognizer, paths, how_many_labels, out=out, err=err)
  failures += len(errors)
  if failures:
    print(f'{failures} of {len(paths) + len(errors)} inputs could not be '
          'labelled.', file=err)
  return 1 if failures else 0


def define_flags() -> None:
  """Defines the tutorial's flags; only when run as a program, so importing
  this module adds no global flags that could clash with other tools'."""
  flags.DEFINE_string('wav', None, 'Audio file(s) to label: comma-separated '
                      'files, folders and glob patterns (WAV or FLAC).')
  flags.DEFINE_string('graph', None, 'The .tflite model; default: the '
                      'shipped model.')
  flags.DEFINE_string('labels', None, 'Labels file; default: '
                      '<model stem>_labels.txt or labels.txt beside the '
                      'model.')
  flags.DEFINE_integer('how_many_labels', 3, 'Number of results to show.')
  flags.mark_flag_as_required('wav')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  values = flags.FLAGS
  sys.exit(run(values.wav, values.graph, values.labels,
               values.how_many_labels))


if __name__ == '__main__':
  define_flags()
  app.run(main)
