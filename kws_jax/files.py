"""Files written whole or not at all.

Every file the project writes (clips, models, configs, manifests, plots,
downloads) goes through `atomic_path`: the content is written to a
temporary file beside the target and renamed over it only when complete, so
an interruption or an error never leaves a half-written file under the real
name.
"""

import contextlib
import os
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it to `path` when the
  block ends without an exception, else removes it.

  The file is made readable by everyone (0o644, like an ordinary file;
  `tempfile` would make it owner-only). The writer may leave the temporary
  path unwritten only if it raises.
  """
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=folder,
                             prefix='.' + os.path.basename(path) + '.',
                             suffix='.tmp')
  os.close(fd)
  try:
    yield tmp
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
  """Writes `data` (text as UTF-8, or bytes) to `path` whole or not at all."""
  with atomic_path(path) as tmp:
    if isinstance(data, bytes):
      with open(tmp, 'wb') as f:
        f.write(data)
    else:
      with open(tmp, 'w', encoding='utf-8') as f:
        f.write(data)
