"""Fetching and safely unpacking a Speech Commands archive into `data_dir`.

`maybe_download_and_extract` is idempotent and crash-safe: downloads land in
a temporary file that is renamed only when complete, archives are unpacked
into a temporary folder inside `data_dir` and moved into place, and a marker
file `.extracted-<archive name>` is written last. Data without the marker is
never taken for complete, and a present marker skips all the work.
"""

import contextlib
import fcntl
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import time
from typing import Iterator
import urllib.parse
import urllib.request

from absl import logging

from kws_jax import files

_CHUNK_BYTES = 1 << 20
_PROGRESS_SECONDS = 5.0
_TIMEOUT_SECONDS = 60.0
_MARKER_PREFIX = '.extracted-'
_EXTRACTING_PREFIX = '.extracting-'


class DownloadError(RuntimeError):
  """The archive could not be fetched, verified or unpacked."""


class UnsafeArchiveError(DownloadError):
  """The archive holds a member that could write outside `data_dir`."""


def marker_path(data_url: str, data_dir: str) -> str:
  """Returns the completion marker's path for `data_url` in `data_dir`."""
  return os.path.join(data_dir, _MARKER_PREFIX + _archive_name(data_url))


def maybe_download_and_extract(data_url: str, data_dir: str, *,
                               expected_size: int | None = None,
                               expected_sha256: str | None = None) -> str:
  """Makes sure the archive at `data_url` is unpacked into `data_dir`.

  Args:
    data_url: an http(s) URL, a file:// URL, a local archive path (.tar.gz,
      .tgz, .tar, ...), or '' to use `data_dir` as it is.
    data_dir: the folder the archive's contents are unpacked into (the
      archive's top-level entries become entries of `data_dir`).
    expected_size: if given, the archive's size in bytes must match.
    expected_sha256: if given, the archive's SHA-256 (hex) must match.

  Returns:
    `data_dir`.

  Raises:
    DownloadError: the archive is missing, cannot be fetched, does not match
      the expected size/hash, or is not a readable tar archive.
    UnsafeArchiveError: an archive member has an absolute path, a `..`
      component, or is a link or a device file.
  """
  if not data_url:
    return data_dir
  os.makedirs(data_dir, exist_ok=True)
  marker = marker_path(data_url, data_dir)
  with file_lock(data_dir):
    if os.path.exists(marker):
      logging.info('%s is already extracted into %s (found %s).', data_url,
                   data_dir, marker)
      return data_dir
    _remove_stale_temporaries(data_dir)
    scheme = urllib.parse.urlparse(data_url).scheme.lower()
    if scheme in ('http', 'https'):
      archive = _download(data_url, data_dir, expected_size, expected_sha256)
    else:
      archive = local_archive_path(data_url)
      _verify(archive, expected_size, expected_sha256)
    count = _extract(archive, data_dir)
    files.write_atomic(
        marker, f'source: {data_url}\narchive: {archive}\nfiles: {count}\n')
    logging.info('Extracted %d files from %s into %s.', count, archive,
                 data_dir)
  return data_dir


def _archive_name(data_url: str) -> str:
  path = urllib.parse.urlparse(data_url).path if '://' in data_url else (
      data_url)
  name = os.path.basename(path.rstrip('/'))
  if not name:
    raise DownloadError(f'Cannot tell the archive name from {data_url!r}.')
  return name


def local_archive_path(data_url: str) -> str:
  """The file a local `data_url` (a path or file:// URL) names.

  Raises:
    DownloadError: there is no such file.
  """
  if data_url.lower().startswith('file://'):
    path = urllib.request.url2pathname(urllib.parse.urlparse(data_url).path)
  else:
    path = os.path.expanduser(data_url)
  if not os.path.isfile(path):
    raise DownloadError(
        f'Archive {path} (from data_url={data_url!r}) does not exist; give '
        'an http(s) URL, a file:// URL or a local .tar.gz path, or set '
        "data_url='' to use data_dir as it is.")
  return path


@contextlib.contextmanager
def file_lock(directory: str, name: str = '.download.lock') -> Iterator[None]:
  """Holds an exclusive lock on `<directory>/<name>` for the block.

  Several processes of one job may fetch or prepare the same data at once;
  one does the work, the others wait and then find it done.
  """
  with open(os.path.join(directory, name), 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_stale_temporaries(data_dir: str) -> None:
  # Left behind by an interrupted run; safe to drop as we hold the lock.
  for name in os.listdir(data_dir):
    path = os.path.join(data_dir, name)
    if name.startswith(_EXTRACTING_PREFIX) and os.path.isdir(path):
      logging.warning('Removing %s left by an interrupted extraction.', path)
      shutil.rmtree(path, ignore_errors=True)
    elif name.startswith('.') and name.endswith(('.tmp', '.partial')):
      # A download or marker that `files.atomic_path` did not get to rename
      # ('.partial': the name older versions gave a download).
      logging.warning('Removing %s left by an interrupted download.', path)
      os.remove(path)


def _download(url: str, data_dir: str, expected_size: int | None,
              expected_sha256: str | None) -> str:
  """Downloads `url` into `data_dir` (temp file, then rename)."""
  destination = os.path.join(data_dir, _archive_name(url))
  if os.path.isfile(destination):
    # A finished download is only ever renamed into place, so it is whole;
    # the checks catch a different archive under the same name.
    try:
      _verify(destination, expected_size, expected_sha256)
      logging.info('Reusing the downloaded %s.', destination)
      return destination
    except DownloadError as e:
      logging.warning('%s; downloading it again.', e)
  sha256 = hashlib.sha256()
  received = 0
  try:
    # Checked before it takes the archive's name: a file under that name is
    # always a whole, verified download.
    with files.atomic_path(destination) as partial:
      with open(partial, 'wb') as out, urllib.request.urlopen(
          url, timeout=_TIMEOUT_SECONDS) as response:
        total = int(response.headers.get('Content-Length') or 0) or None
        logging.info('Downloading %s (%s bytes) to %s.', url,
                     total if total else 'unknown', destination)
        start = last_log = time.monotonic()
        while chunk := response.read(_CHUNK_BYTES):
          out.write(chunk)
          sha256.update(chunk)
          received += len(chunk)
          now = time.monotonic()
          if now - last_log >= _PROGRESS_SECONDS:
            last_log = now
            percent = f' ({100.0 * received / total:.1f}%)' if total else ''
            logging.info('Downloaded %.1f MB%s of %s at %.1f MB/s.',
                         received / 1e6, percent, url,
                         received / 1e6 / max(now - start, 1e-9))
      if total is not None and received != total:
        raise DownloadError(
            f'Download of {url} stopped after {received} of {total} bytes; '
            'run again to retry.')
      _check(destination, received, sha256.hexdigest(), expected_size,
             expected_sha256)
  except BaseException as e:
    # A chunked response cut short raises http.client.IncompleteRead.
    if isinstance(e, (OSError, http.client.HTTPException)):
      raise DownloadError(
          f'Could not download {url} into {data_dir}: {e}. Check the URL '
          'and the network, or download the archive yourself and pass its '
          'path as data_url.') from e
    raise
  logging.info('Downloaded %s (%d bytes).', destination, received)
  return destination


def _verify(path: str, expected_size: int | None,
            expected_sha256: str | None) -> None:
  size = os.path.getsize(path)
  digest = None
  if expected_sha256:
    sha256 = hashlib.sha256()
    with open(path, 'rb') as f:
      while chunk := f.read(_CHUNK_BYTES):
        sha256.update(chunk)
    digest = sha256.hexdigest()
  _check(path, size, digest, expected_size, expected_sha256)


def _check(path: str, size: int, digest: str | None,
           expected_size: int | None, expected_sha256: str | None) -> None:
  if expected_size is not None and size != expected_size:
    raise DownloadError(
        f'Archive {path} has {size} bytes, expected {expected_size}; it is '
        'incomplete or a different file.')
  if expected_sha256 and digest != expected_sha256.lower():
    raise DownloadError(
        f'Archive {path} has SHA-256 {digest}, expected {expected_sha256}; '
        'it is corrupt or a different file.')


def _check_member(archive: str, member: tarfile.TarInfo) -> None:
  """Raises UnsafeArchiveError unless `member` is a plain file or folder."""
  name = member.name
  def refuse(why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f'Refusing to extract {archive}: member {name!r} {why}. The archive '
        'is damaged or malicious; do not use it.')
  if name.startswith(('/', '\\')) or os.path.isabs(name) or (
      len(name) > 1 and name[1] == ':'):
    raise refuse('has an absolute path')
  if '..' in name.replace('\\', '/').split('/'):
    raise refuse("has a '..' path component")
  if member.issym() or member.islnk():
    raise refuse(f'is a link (to {member.linkname!r})')
  if member.isdev():
    raise refuse('is a device file or FIFO')
  if not (member.isfile() or member.isdir()):
    raise refuse('is not a regular file or folder')


def _extract(archive: str, data_dir: str) -> int:
  """Unpacks `archive` into `data_dir` via a temporary folder; file count."""
  staging = tempfile.mkdtemp(dir=data_dir, prefix=_EXTRACTING_PREFIX)
  count = 0
  try:
    try:
      tar = tarfile.open(archive, 'r:*')
    except (tarfile.TarError, OSError) as e:
      raise DownloadError(
          f'{archive} is not a readable tar archive ({e}); download it '
          'again.') from e
    logging.info('Extracting %s into %s.', archive, data_dir)
    with tar:
      try:
        # One pass over the stream: each member is checked before it is
        # written, and everything lands in `staging` until the end.
        for member in tar:
          _check_member(archive, member)
          if hasattr(tarfile, 'data_filter'):
            tar.extract(member, staging, filter='data')
          else:
            tar.extract(member, staging)
          count += member.isfile()
      except (tarfile.TarError, EOFError, OSError) as e:
        raise DownloadError(
            f'Could not extract {archive} ({e}); it may be truncated, '
            'download it again.') from e
    _merge_into(staging, data_dir)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return count


def _merge_into(source: str, destination: str) -> None:
  # Like unpacking over the folder: same-named files are replaced, others
  # are kept. Renames within one file system are cheap.
  for root, dirs, names in os.walk(source):
    target = os.path.join(destination, os.path.relpath(root, source))
    os.makedirs(target, exist_ok=True)
    for name in names:
      os.replace(os.path.join(root, name), os.path.join(target, name))
    for name in dirs:
      if os.path.isfile(os.path.join(target, name)):
        os.remove(os.path.join(target, name))
