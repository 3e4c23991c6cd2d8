"""Tests for kws_jax.download (local archives and a local HTTP server)."""

import functools
import hashlib
import http.server
import io
import os
import pathlib
import tarfile
import threading

import pytest

from kws_jax import download


def _make_archive(path: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
  with tarfile.open(path, 'w:gz') as tar:
    for name, data in files.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return path


_FILES = {
    'yes/a_nohash_0.wav': b'yes-a',
    'no/b_nohash_1.wav': b'no-b',
    '_background_noise_/noise.wav': b'noise',
    'validation_list.txt': b'yes/a_nohash_0.wav\n',
}


def _read_tree(root: pathlib.Path) -> dict[str, bytes]:
  return {
      str(p.relative_to(root)): p.read_bytes()
      for p in root.rglob('*') if p.is_file() and not p.name.startswith('.')
  }


def test_empty_url_does_nothing(tmp_path):
  data_dir = tmp_path / 'data'
  assert download.maybe_download_and_extract('', str(data_dir)) == str(
      data_dir)
  assert not data_dir.exists()


@pytest.mark.parametrize('as_file_url', [False, True])
def test_local_archive(tmp_path, as_file_url):
  archive = _make_archive(tmp_path / 'sc.tar.gz', _FILES)
  data_dir = tmp_path / 'data'
  url = archive.as_uri() if as_file_url else str(archive)
  download.maybe_download_and_extract(url, str(data_dir))
  assert _read_tree(data_dir) == _FILES
  assert (data_dir / '.extracted-sc.tar.gz').exists()
  # No temporaries are left behind.
  assert not [n for n in os.listdir(data_dir) if n.startswith('.extracting')]


def test_marker_skips_work(tmp_path, monkeypatch):
  archive = _make_archive(tmp_path / 'sc.tar.gz', _FILES)
  data_dir = tmp_path / 'data'
  download.maybe_download_and_extract(str(archive), str(data_dir))

  def fail(*args, **kwargs):
    raise AssertionError('extracted again')
  monkeypatch.setattr(download, '_extract', fail)
  download.maybe_download_and_extract(str(archive), str(data_dir))


def test_interrupted_extraction_is_redone(tmp_path, monkeypatch):
  archive = _make_archive(tmp_path / 'sc.tar.gz', _FILES)
  data_dir = tmp_path / 'data'
  real_merge = download._merge_into

  def crash(source, destination):
    raise KeyboardInterrupt
  monkeypatch.setattr(download, '_merge_into', crash)
  with pytest.raises(KeyboardInterrupt):
    download.maybe_download_and_extract(str(archive), str(data_dir))
  assert not (data_dir / '.extracted-sc.tar.gz').exists()
  assert _read_tree(data_dir) == {}

  # A stale staging folder (e.g. after a kill -9) is cleaned up too.
  (data_dir / '.extracting-stale' / 'yes').mkdir(parents=True)
  monkeypatch.setattr(download, '_merge_into', real_merge)
  download.maybe_download_and_extract(str(archive), str(data_dir))
  assert _read_tree(data_dir) == _FILES
  assert not (data_dir / '.extracting-stale').exists()


def test_missing_and_corrupt_archives(tmp_path):
  with pytest.raises(download.DownloadError, match='does not exist'):
    download.maybe_download_and_extract(
        str(tmp_path / 'nope.tar.gz'), str(tmp_path / 'data'))
  garbage = tmp_path / 'garbage.tar.gz'
  garbage.write_bytes(b'not a tar archive at all')
  with pytest.raises(download.DownloadError, match='garbage.tar.gz'):
    download.maybe_download_and_extract(str(garbage), str(tmp_path / 'data'))
  assert not (tmp_path / 'data' / '.extracted-garbage.tar.gz').exists()


def test_size_and_sha256_checks(tmp_path):
  archive = _make_archive(tmp_path / 'sc.tar.gz', _FILES)
  digest = hashlib.sha256(archive.read_bytes()).hexdigest()
  size = archive.stat().st_size
  with pytest.raises(download.DownloadError, match='SHA-256'):
    download.maybe_download_and_extract(
        str(archive), str(tmp_path / 'bad'), expected_sha256='0' * 64)
  with pytest.raises(download.DownloadError, match='bytes, expected'):
    download.maybe_download_and_extract(
        str(archive), str(tmp_path / 'bad'), expected_size=size + 1)
  assert not (tmp_path / 'bad' / '.extracted-sc.tar.gz').exists()
  download.maybe_download_and_extract(
      str(archive), str(tmp_path / 'good'), expected_size=size,
      expected_sha256=digest.upper())
  assert _read_tree(tmp_path / 'good') == _FILES


def _unsafe_member(kind: str) -> tarfile.TarInfo:
  if kind == 'absolute':
    info = tarfile.TarInfo('/tmp/evil.txt')
  elif kind == 'traversal':
    info = tarfile.TarInfo('yes/../../evil.txt')
  elif kind == 'symlink':
    info = tarfile.TarInfo('yes/link')
    info.type = tarfile.SYMTYPE
    info.linkname = '/etc/passwd'
  elif kind == 'hardlink':
    info = tarfile.TarInfo('yes/hard')
    info.type = tarfile.LNKTYPE
    info.linkname = 'yes/a_nohash_0.wav'
  elif kind == 'device':
    info = tarfile.TarInfo('yes/dev')
    info.type = tarfile.CHRTYPE
  else:
    info = tarfile.TarInfo('yes/fifo')
    info.type = tarfile.FIFOTYPE
  return info


@pytest.mark.parametrize(
    'kind', ['absolute', 'traversal', 'symlink', 'hardlink', 'device', 'fifo'])
def test_unsafe_members_are_refused(tmp_path, kind):
  archive = tmp_path / 'evil.tar.gz'
  with tarfile.open(archive, 'w:gz') as tar:
    data = b'fine'
    info = tarfile.TarInfo('yes/a_nohash_0.wav')
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    evil = _unsafe_member(kind)
    payload = b'evil' if evil.isfile() else b''
    evil.size = len(payload)
    tar.addfile(evil, io.BytesIO(payload))
  data_dir = tmp_path / 'data'
  with pytest.raises(download.UnsafeArchiveError) as error:
    download.maybe_download_and_extract(str(archive), str(data_dir))
  assert 'evil.tar.gz' in str(error.value)
  assert evil.name in str(error.value)
  # Nothing was moved into place, not even the safe member.
  assert _read_tree(data_dir) == {}
  assert not (tmp_path / 'evil.txt').exists()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

  def log_message(self, *args):
    pass


@pytest.fixture
def http_root(tmp_path):
  root = tmp_path / 'www'
  root.mkdir()
  server = http.server.ThreadingHTTPServer(
      ('127.0.0.1', 0), functools.partial(_QuietHandler, directory=str(root)))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield root, f'http://127.0.0.1:{server.server_address[1]}'
  server.shutdown()
  server.server_close()


def test_http_download(tmp_path, http_root):
  root, base_url = http_root
  archive = _make_archive(root / 'sc.tar.gz', _FILES)
  digest = hashlib.sha256(archive.read_bytes()).hexdigest()
  data_dir = tmp_path / 'data'
  download.maybe_download_and_extract(
      f'{base_url}/sc.tar.gz', str(data_dir), expected_sha256=digest)
  tree = _read_tree(data_dir)
  del tree['sc.tar.gz']
  assert tree == _FILES
  # The archive is kept (renamed from its temporary name), no partials.
  assert (data_dir / 'sc.tar.gz').read_bytes() == archive.read_bytes()
  assert not [n for n in os.listdir(data_dir) if n.endswith('.partial')]

  # With the marker present, nothing is fetched even if the server is gone.
  archive.unlink()
  download.maybe_download_and_extract(f'{base_url}/sc.tar.gz', str(data_dir))


def test_http_errors(tmp_path, http_root):
  root, base_url = http_root
  data_dir = tmp_path / 'data'
  with pytest.raises(download.DownloadError, match='Could not download'):
    download.maybe_download_and_extract(f'{base_url}/missing.tar.gz',
                                        str(data_dir))
  _make_archive(root / 'sc.tar.gz', _FILES)
  with pytest.raises(download.DownloadError, match='SHA-256'):
    download.maybe_download_and_extract(
        f'{base_url}/sc.tar.gz', str(data_dir), expected_sha256='ab' * 32)
  # Neither a partial file nor the rejected archive is left to be reused.
  assert sorted(os.listdir(data_dir)) == ['.download.lock']


# --- Faults and hostile archives (docs/reliability.md) ---------------------


@pytest.mark.parametrize('name', [
    '..\\..\\evil.txt', 'yes\\..\\..\\evil.txt', 'C:\\evil.txt', 'c:evil.txt',
    './../evil.txt', 'yes/./../../evil.txt', '\\\\server\\share\\evil.txt'])
def test_windows_style_and_dotted_escapes_are_refused(tmp_path, name):
  archive = _make_archive(tmp_path / 'evil.tar.gz', {name: b'evil'})
  with pytest.raises(download.UnsafeArchiveError, match='evil.tar.gz'):
    download.maybe_download_and_extract(str(archive), str(tmp_path / 'data'))
  assert _read_tree(tmp_path / 'data') == {}


def test_truncated_archive_is_refused_and_nothing_moved(tmp_path):
  big = {f'yes/{i}_nohash_0.wav': os.urandom(20000) for i in range(5)}
  archive = _make_archive(tmp_path / 'sc.tar.gz', big)
  whole = archive.read_bytes()
  archive.write_bytes(whole[:len(whole) // 2])
  with pytest.raises(download.DownloadError, match='sc.tar.gz'):
    download.maybe_download_and_extract(str(archive), str(tmp_path / 'data'))
  assert _read_tree(tmp_path / 'data') == {}
  assert not (tmp_path / 'data' / '.extracted-sc.tar.gz').exists()


def test_kill_during_merge_is_redone(tmp_path, monkeypatch):
  # Killed while moving files into place: some are there, the marker is
  # not, and the next run finishes the job.
  archive = _make_archive(tmp_path / 'sc.tar.gz', _FILES)
  data_dir = tmp_path / 'data'
  real_replace = os.replace
  moved = []

  def dying_replace(source, destination):
    if len(moved) == 2:
      raise KeyboardInterrupt  # Stands in for the kill.
    moved.append(destination)
    real_replace(source, destination)

  monkeypatch.setattr(download.os, 'replace', dying_replace)
  with pytest.raises(KeyboardInterrupt):
    download.maybe_download_and_extract(str(archive), str(data_dir))
  assert len(_read_tree(data_dir)) == 2
  assert not (data_dir / '.extracted-sc.tar.gz').exists()
  monkeypatch.setattr(download.os, 'replace', real_replace)
  download.maybe_download_and_extract(str(archive), str(data_dir))
  assert _read_tree(data_dir) == _FILES


def test_partial_download_left_by_a_kill_is_not_used(tmp_path, http_root):
  root, base_url = http_root
  archive = _make_archive(root / 'sc.tar.gz', _FILES)
  data_dir = tmp_path / 'data'
  data_dir.mkdir()
  # What a download killed half-way leaves: a temporary file, no archive
  # under the real name and no marker.
  stale = data_dir / '.sc.tar.gz.x1y2.partial'
  stale.write_bytes(archive.read_bytes()[:100])
  download.maybe_download_and_extract(f'{base_url}/sc.tar.gz', str(data_dir))
  assert not stale.exists()
  assert (data_dir / 'sc.tar.gz').read_bytes() == archive.read_bytes()
  tree = _read_tree(data_dir)
  del tree['sc.tar.gz']
  assert tree == _FILES


def test_archive_downloaded_before_a_kill_is_checked_before_reuse(
    tmp_path, http_root):
  # Killed after the download but before extraction: the archive is reused
  # if it has the expected digest, fetched again if not.
  root, base_url = http_root
  archive = _make_archive(root / 'sc.tar.gz', _FILES)
  digest = hashlib.sha256(archive.read_bytes()).hexdigest()
  data_dir = tmp_path / 'data'
  data_dir.mkdir()
  (data_dir / 'sc.tar.gz').write_bytes(b'another archive of the same name')
  download.maybe_download_and_extract(f'{base_url}/sc.tar.gz', str(data_dir),
                                      expected_sha256=digest)
  assert (data_dir / 'sc.tar.gz').read_bytes() == archive.read_bytes()
  assert (data_dir / '.extracted-sc.tar.gz').exists()


class _LyingHandler(http.server.BaseHTTPRequestHandler):
  """Promises 100000 bytes and sends 5000, plainly or chunked."""

  def log_message(self, *args):
    pass

  def do_GET(self):  # pylint: disable=invalid-name
    self.send_response(200)
    if self.path.endswith('chunked.tar.gz'):
      self.send_header('Transfer-Encoding', 'chunked')
      self.end_headers()
      self.wfile.write(b'186a0\r\n' + b'x' * 5000)  # A 100000-byte chunk...
    else:
      self.send_header('Content-Length', '100000')
      self.end_headers()
      self.wfile.write(b'x' * 5000)
    self.wfile.flush()
    self.close_connection = True  # ...then the connection drops.


@pytest.mark.parametrize('name', ['short.tar.gz', 'chunked.tar.gz'])
def test_download_cut_short_is_rejected(tmp_path, name):
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _LyingHandler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  data_dir = tmp_path / 'data'
  try:
    with pytest.raises(download.DownloadError, match=name):
      download.maybe_download_and_extract(
          f'http://127.0.0.1:{server.server_address[1]}/{name}',
          str(data_dir))
  finally:
    server.shutdown()
    server.server_close()
  assert sorted(os.listdir(data_dir)) == ['.download.lock']


def test_http_download_of_the_wrong_size_is_rejected(tmp_path, http_root):
  root, base_url = http_root
  archive = _make_archive(root / 'sc.tar.gz', _FILES)
  data_dir = tmp_path / 'data'
  with pytest.raises(download.DownloadError, match='bytes, expected'):
    download.maybe_download_and_extract(
        f'{base_url}/sc.tar.gz', str(data_dir),
        expected_size=archive.stat().st_size - 1)
  assert sorted(os.listdir(data_dir)) == ['.download.lock']
