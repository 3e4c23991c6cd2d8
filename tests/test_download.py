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
