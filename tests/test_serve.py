"""Tests for kws_jax.serve: the live app's server, with a stub model.

`ToneClassifier` stands in for a trained model: a "word" is a tone whose
pitch names it (440 Hz 'yes', 880 Hz 'no'), so the right answers are known.
The browser test (test_browser_e2e.py) uses the same stub.
"""

import asyncio
import json
import pathlib
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Sequence

import aiohttp
from aiohttp import test_utils
from aiohttp import web
import numpy as np
import pytest

from kws_jax import serve
from kws_jax.runtime import streaming

SAMPLE_RATE = 16000
LABELS = ['_silence_', '_unknown_', 'yes', 'no', 'up', 'down']
PITCHES = {'yes': 440.0, 'no': 880.0}
WORD_MS = 500.0
FRAME_MS = 100.0
REPO = pathlib.Path(__file__).resolve().parent.parent


class ToneClassifier:
  """Stub model: which pitch fills the clip decides the word.

  A clip is 'yes' or 'no' when at least 30% of its 10 ms frames are loud
  (RMS over 0.02) and most of its energy lies within 25 Hz of that word's
  pitch; `_unknown_` when loud but of another pitch; `_silence_` otherwise.
  The chosen label scores 0.9, the others share 0.1. Loudness-independent
  enough for audio that went through a browser.
  """

  def __init__(self, sample_rate: int = SAMPLE_RATE,
               labels: Sequence[str] = tuple(LABELS),
               pitches: dict[str, float] | None = None):
    self.sample_rate = sample_rate
    self.labels = list(labels)
    self.pitches = dict(pitches or PITCHES)
    self.calls = 0

  def __call__(self, clip: np.ndarray) -> np.ndarray:
    self.calls += 1
    clip = np.asarray(clip, np.float64)
    frame = self.sample_rate // 100
    frames = clip[:clip.shape[0] // frame * frame].reshape(-1, frame)
    loud = np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 0.02)
    label = '_silence_'
    if loud >= 0.3:
      spectrum = np.abs(np.fft.rfft(clip * np.hanning(clip.shape[0])))**2
      freqs = np.fft.rfftfreq(clip.shape[0], 1.0 / self.sample_rate)
      total = spectrum.sum()
      label = '_unknown_'
      for word, pitch in self.pitches.items():
        if spectrum[np.abs(freqs - pitch) < 25].sum() > 0.6 * total:
          label = word
    scores = np.full(len(self.labels), 0.1 / (len(self.labels) - 1),
                     np.float32)
    scores[self.labels.index(label)] = 0.9
    return scores


def tone_stream(words_at_ms: dict[float, str], duration_ms: float,
                sample_rate: int = SAMPLE_RATE,
                amplitude: float = 0.4) -> np.ndarray:
  """Silence with a `WORD_MS` tone per word, starting at the given ms."""
  audio = np.zeros(streaming.ms_to_samples(duration_ms, sample_rate),
                   np.float32)
  length = streaming.ms_to_samples(WORD_MS, sample_rate)
  t = np.arange(length) / sample_rate
  # Short fades, so a tone's edges do not splash energy over other pitches.
  fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
  for start_ms, word in words_at_ms.items():
    start = streaming.ms_to_samples(start_ms, sample_rate)
    tone = amplitude * fade * np.sin(2 * np.pi * PITCHES[word] * t)
    audio[start:start + length] += tone[:audio.shape[0] - start]
  return audio


WORDS_AT_MS = {500.0: 'yes', 3000.0: 'no'}


def expected_detections() -> list[streaming.Detection]:
  """What the streaming code finds offline in the test stream."""
  return streaming.recognize_array(
      ToneClassifier(), tone_stream(WORDS_AT_MS, 5000.0), LABELS,
      sample_rate=SAMPLE_RATE)


def _settings(**overrides: Any) -> serve.ServerSettings:
  return serve.ServerSettings(**{'sample_rate': SAMPLE_RATE, **overrides})


def _run(app: web.Application,
         body: Callable[[test_utils.TestClient], Awaitable[Any]]) -> Any:
  """Serves `app` on a free local port and runs `body(client)`."""

  async def main():
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
      return await asyncio.wait_for(body(client), timeout=30)

  return asyncio.run(main())


def _frames(audio: np.ndarray, sample_format: str = 'float32',
            frame_ms: float = FRAME_MS) -> list[bytes]:
  size = streaming.ms_to_samples(frame_ms, SAMPLE_RATE)
  chunks = [audio[i:i + size] for i in range(0, audio.shape[0], size)]
  if sample_format == 'int16':
    return [np.clip(np.round(c * 32768), -32768, 32767).astype('<i2')
            .tobytes() for c in chunks]
  return [c.astype('<f4').tobytes() for c in chunks]


async def _receive_json(ws: aiohttp.ClientWebSocketResponse,
                        timeout: float = 10) -> dict[str, Any]:
  msg = await ws.receive(timeout=timeout)
  assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
  return json.loads(msg.data)


async def _stream(ws: aiohttp.ClientWebSocketResponse,
                  frames: Sequence[bytes],
                  sample_format: str = 'float32') -> list[dict[str, Any]]:
  """Sends frames and returns the messages they bring.

  Then sends a `start` (which also starts a new stream): the server handles
  messages in order, so its `started` reply comes after everything the
  frames brought.
  """
  for frame in frames:
    await ws.send_bytes(frame)
  await ws.send_json({'type': 'start', 'format': sample_format})
  messages = []
  while True:
    message = await _receive_json(ws)
    if message['type'] == 'started':
      return messages
    messages.append(message)


def _of_type(messages, kind):
  return [m for m in messages if m['type'] == kind]


def _as_detections(messages) -> list[tuple[str, float]]:
  return [(m['label'], m['time_ms']) for m in _of_type(messages, 'detection')]


def test_tone_stream_gives_both_words_offline():
  # The stub and the stream the other tests rely on.
  found = expected_detections()
  assert [d.label for d in found] == ['yes', 'no']


def test_hello_announces_labels_and_rate():
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  async def body(client):
    async with client.ws_connect('/ws') as ws:
      hello = await _receive_json(ws)
    assert hello['type'] == 'hello'
    assert hello['labels'] == LABELS
    assert hello['sample_rate'] == SAMPLE_RATE
    assert hello['clip_duration_ms'] == 1000
    assert set(hello['formats']) == {'float32', 'int16'}
    assert hello['max_frame_samples'] == SAMPLE_RATE  # 1000 ms.
    assert hello['detection_threshold'] == (
        streaming.DEFAULT_DETECTION_THRESHOLD)
    assert hello['class_thresholds'] == {}

  _run(app, body)


@pytest.mark.parametrize('sample_format', ['float32', 'int16'])
def test_stream_gives_the_offline_detections(sample_format):
  audio = tone_stream(WORDS_AT_MS, 5000.0)
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  async def body(client):
    async with client.ws_connect('/ws') as ws:
      await _receive_json(ws)
      await ws.send_json({'type': 'start', 'format': sample_format,
                          'sample_rate': SAMPLE_RATE})
      assert await _receive_json(ws) == {'type': 'started',
                                         'format': sample_format}
      return await _stream(ws, _frames(audio, sample_format), sample_format)

  messages = _run(app, body)
  want = [(d.label, round(d.time_ms, 1)) for d in expected_detections()]
  assert _as_detections(messages) == want
  for m in _of_type(messages, 'detection'):
    assert 0.7 < m['score'] <= 1.0
  scores = _of_type(messages, 'scores')
  # Throttled: one per 100 ms of audio at most, not one per 30 ms stride.
  times = [m['time_ms'] for m in scores]
  assert 20 <= len(scores) <= 5000 / 100 + 1
  assert all(b - a >= 100 for a, b in zip(times, times[1:]))
  assert all(len(m['scores']) == len(LABELS) for m in scores)
  assert not _of_type(messages, 'error')


def test_connections_have_their_own_state():
  # Two pages at once, one mid-word when the other starts: each gets
  # exactly its own stream's detections.
  audio = tone_stream(WORDS_AT_MS, 5000.0)
  other = tone_stream({1000.0: 'no'}, 3000.0)
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  async def body(client):
    async with client.ws_connect('/ws') as a, client.ws_connect('/ws') as b:
      await _receive_json(a)
      await _receive_json(b)
      first = _frames(audio)
      for frame in first[:8]:
        await a.send_bytes(frame)
      results = await asyncio.gather(_stream(a, first[8:]),
                                     _stream(b, _frames(other)))
    return results

  got_a, got_b = _run(app, body)
  assert [label for label, _ in _as_detections(got_a)] == ['yes', 'no']
  assert [label for label, _ in _as_detections(got_b)] == ['no']


def test_start_resets_the_stream():
  audio = tone_stream(WORDS_AT_MS, 5000.0)
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  async def body(client):
    async with client.ws_connect('/ws') as ws:
      await _receive_json(ws)
      first = await _stream(ws, _frames(audio[:SAMPLE_RATE * 2]))
      # _stream ended with a start: a new stream.
      second = await _stream(ws, _frames(audio))
    return first, second

  first, second = _run(app, body)
  assert [label for label, _ in _as_detections(first)] == ['yes']
  # Times start again from 0, and 'yes' is found again.
  assert _as_detections(second) == [
      (d.label, round(d.time_ms, 1)) for d in expected_detections()]


@pytest.mark.parametrize('message,expected', [
    (b'\x00\x01\x02', 'whole number of 4-byte samples'),
    (np.array([0.1, np.nan], '<f4').tobytes(), 'NaN or infinite'),
    (np.array([np.inf], '<f4').tobytes(), 'NaN or infinite'),
    ('not json', 'JSON'),
    ('[1, 2]', 'Unknown message'),
    (json.dumps({'type': 'dance'}), 'Unknown message'),
    (json.dumps({'type': 'start', 'format': 'mp3'}), "Unknown format 'mp3'"),
    (json.dumps({'type': 'start', 'sample_rate': 44100}), 'resample'),
])
def test_garbage_gets_an_error_and_the_stream_goes_on(message, expected):
  audio = tone_stream(WORDS_AT_MS, 5000.0)
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  async def body(client):
    async with client.ws_connect('/ws') as ws:
      await _receive_json(ws)
      frames = _frames(audio)
      for frame in frames[:10]:
        await ws.send_bytes(frame)
      if isinstance(message, bytes):
        await ws.send_bytes(message)
      else:
        await ws.send_str(message)
      return await _stream(ws, frames[10:])

  messages = _run(app, body)
  errors = _of_type(messages, 'error')
  assert len(errors) == 1 and expected in errors[0]['message'], errors
  assert _as_detections(messages) == [
      (d.label, round(d.time_ms, 1)) for d in expected_detections()]


def test_int16_frame_over_the_limit_is_refused():
  app = serve.make_app(ToneClassifier(), LABELS, _settings(max_frame_ms=100))

  async def body(client):
    async with client.ws_connect('/ws') as ws:
      await _receive_json(ws)
      await ws.send_json({'type': 'start', 'format': 'int16'})
      await _receive_json(ws)
      # 150 ms of int16 fits in the message limit but not the frame limit.
      await ws.send_bytes(np.zeros(2400, '<i2').tobytes())
      error = await _receive_json(ws)
      return error, await _stream(ws, [np.zeros(1600, '<i2').tobytes()],
                                  'int16')

  error, after = _run(app, body)
  assert error['type'] == 'error'
  assert '2400 samples is over the limit of 1600' in error['message']
  assert not _of_type(after, 'error')


def test_oversized_frame_closes_that_connection_only():
  audio = tone_stream(WORDS_AT_MS, 5000.0)
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  async def body(client):
    async with client.ws_connect('/ws') as good, \
        client.ws_connect('/ws') as bad:
      await _receive_json(good)
      await _receive_json(bad)
      # 1.5 s of float32 audio: over the 1 s limit.
      await bad.send_bytes(np.zeros(24000, '<f4').tobytes())
      closed = await bad.receive(timeout=5)
      messages = await _stream(good, _frames(audio))
      return closed.type, bad.close_code, messages

  closed_type, code, messages = _run(app, body)
  assert closed_type == aiohttp.WSMsgType.CLOSE
  assert code == serve.CLOSE_TOO_BIG
  assert [label for label, _ in _as_detections(messages)] == ['yes', 'no']


def test_too_many_bad_messages_close_the_connection():
  app = serve.make_app(ToneClassifier(), LABELS, _settings(max_errors=3))

  async def body(client):
    async with client.ws_connect('/ws') as ws:
      await _receive_json(ws)
      for _ in range(3):
        await ws.send_str('garbage')
      messages = []
      while True:
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
          return messages, msg.type, ws.close_code, msg.extra
        messages.append(json.loads(msg.data))

  messages, kind, code, reason = _run(app, body)
  assert len(_of_type(messages, 'error')) == 3
  assert kind == aiohttp.WSMsgType.CLOSE
  assert code == serve.CLOSE_POLICY
  assert 'too many refused messages' in reason


def _open_connections(app: web.Application) -> int:
  """WebSockets the app serves now (its own count of them)."""
  return len(app[serve._STATE].sockets)  # pylint: disable=protected-access


def test_connection_limit_refuses_extra_pages_with_a_reason():
  app = serve.make_app(ToneClassifier(), LABELS,
                       _settings(max_connections=2))

  async def body(client):
    first = await client.ws_connect('/ws')
    second = await client.ws_connect('/ws')
    await _receive_json(first)
    await _receive_json(second)
    assert _open_connections(app) == 2
    third = await client.ws_connect('/ws')
    refusal = await _receive_json(third)
    closed = await third.receive(timeout=5)
    assert closed.type == aiohttp.WSMsgType.CLOSE
    assert third.close_code == serve.CLOSE_BUSY
    assert 'server busy' in closed.extra
    assert refusal == {'type': 'error', 'message': closed.extra}
    # The two open ones are unaffected, and a place freed is taken again.
    await first.send_bytes(np.zeros(1600, '<f4').tobytes())
    await first.close()
    await asyncio.sleep(0.1)
    fourth = await client.ws_connect('/ws')
    hello = await _receive_json(fourth)
    assert hello['type'] == 'hello'
    await second.close()
    await fourth.close()

  _run(app, body)


def test_idle_connection_is_closed():
  app = serve.make_app(ToneClassifier(), LABELS,
                       _settings(idle_timeout_s=0.3))

  async def body(client):
    async with client.ws_connect('/ws') as ws:
      await _receive_json(ws)
      started = time.monotonic()
      # Audio keeps it open...
      for _ in range(4):
        await ws.send_bytes(np.zeros(1600, '<f4').tobytes())
        await asyncio.sleep(0.15)
      assert not ws.closed
      # ...silence on the wire does not.
      while True:
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
          break
      return msg, ws.close_code, time.monotonic() - started

  msg, code, elapsed = _run(app, body)
  assert msg.type == aiohttp.WSMsgType.CLOSE
  assert code == serve.CLOSE_IDLE
  assert 'idle' in msg.extra
  assert elapsed < 3
  # The place is given back.
  assert _open_connections(app) == 0


def test_model_failure_closes_with_internal_error():

  def broken(clip):
    raise RuntimeError('boom')

  app = serve.make_app(broken, LABELS, _settings())

  async def body(client):
    async with client.ws_connect('/ws') as ws:
      await _receive_json(ws)
      await ws.send_bytes(np.zeros(SAMPLE_RATE, '<f4').tobytes())
      msg = await ws.receive(timeout=5)
      return msg.type, ws.close_code

  assert _run(app, body) == (aiohttp.WSMsgType.CLOSE, serve.CLOSE_INTERNAL)


def test_slow_model_does_not_block_other_requests():
  release = threading.Event()

  def slow(clip):
    release.wait(timeout=10)
    return ToneClassifier()(clip)

  app = serve.make_app(slow, LABELS, _settings())

  async def body(client):
    async with client.ws_connect('/ws') as ws:
      await _receive_json(ws)
      await ws.send_bytes(np.zeros(SAMPLE_RATE, '<f4').tobytes())
      await asyncio.sleep(0.2)  # The model is now stuck on that clip.
      started = time.monotonic()
      response = await client.get('/')
      await response.read()
      served_in = time.monotonic() - started
      async with client.ws_connect('/ws') as other:
        hello = await _receive_json(other)
      release.set()
      return served_in, hello

  served_in, hello = _run(app, body)
  assert served_in < 2
  assert hello['type'] == 'hello'


def test_cross_origin_websocket_is_refused():
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  async def body(client):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
      await client.ws_connect('/ws', origin='http://evil.example')
    host = f'{client.server.host}:{client.server.port}'
    async with client.ws_connect('/ws', origin=f'http://{host}') as ws:
      hello = await _receive_json(ws)
    return refused.value.status, hello

  status, hello = _run(app, body)
  assert status == 403
  assert hello['type'] == 'hello'


def test_plain_get_of_websocket_explains():
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  async def body(client):
    response = await client.get('/ws')
    return response.status, await response.text()

  status, text = _run(app, body)
  assert status == 426
  assert 'WebSocket' in text


# --- Static files ---------------------------------------------------------


@pytest.mark.parametrize('path,content_type', [
    ('/', 'text/html'),
    ('/index.html', 'text/html'),
    ('/app.js', 'text/javascript'),
    ('/capture-worklet.js', 'text/javascript'),
    ('/resampler.js', 'text/javascript'),
    ('/style.css', 'text/css'),
    ('/manifest.webmanifest', 'application/manifest+json'),
    ('/icon.svg', 'image/svg+xml'),
    ('/icon-192.png', 'image/png'),
    ('/icon-512.png', 'image/png'),
])
def test_page_files_are_served(path, content_type):
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  async def body(client):
    response = await client.get(path)
    return response.status, response.headers, await response.read()

  status, headers, data = _run(app, body)
  assert status == 200
  assert headers['Content-Type'].startswith(content_type)
  assert headers['X-Content-Type-Options'] == 'nosniff'
  assert data


def test_manifest_names_existing_icons():
  static = pathlib.Path(serve.STATIC_DIR)
  manifest = json.loads((static / 'manifest.webmanifest').read_text())
  assert manifest['display'] == 'standalone'
  sizes = set()
  for icon in manifest['icons']:
    assert (static / icon['src']).is_file(), icon
    sizes.add(icon['sizes'])
  # What browsers ask of an installable app.
  assert {'192x192', '512x512'} <= sizes


def _raw_get(port: int, target: str) -> tuple[int, bytes]:
  """Sends the request line exactly as given (no client normalisation)."""
  with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
    s.sendall(f'GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n'
              'Connection: close\r\n\r\n'.encode('latin-1'))
    data = b''
    while chunk := s.recv(65536):
      data += chunk
  status = int(data.split(b' ', 2)[1])
  return status, data


TRAVERSALS = [
    '/../serve.py',
    '/..%2fserve.py',
    '/%2e%2e/serve.py',
    '/%2e%2e%2fserve.py',
    '/static/../serve.py',
    '/..%2f..%2fsetup.cfg',
    '/%2e%2e%2f%2e%2e%2fsetup.cfg',
    '/..\\serve.py',
    '/..%5cserve.py',
    '//etc/passwd',
    '/%2fetc%2fpasswd',
    '/outside.txt',
    '/link.js',
    '/.secret.js',
    '/%00index.html',
    '/index.html%00.js',
    '/notes.py',
]


def test_path_traversal_is_refused(tmp_path):
  # A static folder with a sensitive file beside it and a link out of it.
  static = tmp_path / 'static'
  shutil.copytree(serve.STATIC_DIR, static)
  (tmp_path / 'serve.py').write_text('SECRET-SOURCE')
  (tmp_path / 'setup.cfg').write_text('SECRET-SOURCE')
  (tmp_path / 'outside.txt').write_text('SECRET-SOURCE')
  (static / 'link.js').symlink_to(tmp_path / 'outside.txt')
  (static / '.secret.js').write_text('SECRET-SOURCE')
  (static / 'notes.py').write_text('SECRET-SOURCE')
  app = serve.make_app(ToneClassifier(), LABELS, _settings(),
                       static_dir=static)

  async def body(client):
    port = client.server.port
    loop = asyncio.get_running_loop()
    results = {}
    for target in TRAVERSALS + ['/app.js']:
      results[target] = await loop.run_in_executor(None, _raw_get, port,
                                                   target)
    return results

  results = _run(app, body)
  assert results['/app.js'][0] == 200
  for target in TRAVERSALS:
    status, data = results[target]
    assert status in (400, 403, 404), (target, status)
    assert b'SECRET-SOURCE' not in data, target
    assert b'root:' not in data, target


@pytest.mark.parametrize('name', [
    '../x.js', 'a/../../x.js', '/etc/passwd', '', '.', 'a//b.js', '.x.js',
    'x.py', 'index.html\x00', 'dir\\x.js'])
def test_resolve_static_refuses(tmp_path, name):
  assert serve.resolve_static(tmp_path, name) is None


def test_resolve_static_finds_files_in_subfolders(tmp_path):
  (tmp_path / 'sub').mkdir()
  (tmp_path / 'sub' / 'a.js').write_text('x')
  assert serve.resolve_static(tmp_path, 'sub/a.js') == (
      tmp_path / 'sub' / 'a.js').resolve()
  assert serve.resolve_static(tmp_path, 'sub') is None


# --- Settings, frames, TLS and the command line ---------------------------


@pytest.mark.parametrize('overrides', [
    {'max_connections': 0}, {'idle_timeout_s': 0}, {'max_frame_ms': 0},
    {'scores_interval_ms': -1}, {'sample_rate': 0}, {'clip_stride_ms': 0},
    {'max_errors': 0}, {'max_frame_ms': 0.01}])
def test_bad_settings_are_refused(overrides):
  with pytest.raises(ValueError):
    serve.make_app(ToneClassifier(), LABELS, _settings(**overrides))


def test_no_labels_are_refused():
  with pytest.raises(ValueError, match='labels'):
    serve.make_app(ToneClassifier(), [], _settings())


def test_decode_frame():
  pcm = np.array([-32768, 0, 16384], '<i2').tobytes()
  np.testing.assert_array_equal(serve.decode_frame(pcm, 'int16', 10),
                                [-1.0, 0.0, 0.5])
  loud = np.array([2.0, -3.0, 0.25], '<f4').tobytes()
  np.testing.assert_array_equal(serve.decode_frame(loud, 'float32', 10),
                                [1.0, -1.0, 0.25])
  assert serve.decode_frame(b'', 'float32', 10).shape == (0,)
  with pytest.raises(serve.FrameError, match='over the limit'):
    serve.decode_frame(np.zeros(11, '<f4').tobytes(), 'float32', 10)


def test_ssl_context_needs_both_files(tmp_path):
  assert serve.ssl_context(None, None) is None
  with pytest.raises(ValueError, match='both'):
    serve.ssl_context(str(tmp_path / 'cert.pem'), None)
  with pytest.raises(ValueError, match='Cannot load'):
    serve.ssl_context(str(tmp_path / 'cert.pem'), str(tmp_path / 'key.pem'))


def _self_signed(tmp_path: pathlib.Path) -> tuple[str, str]:
  """A self-signed certificate, made as docs/app.md says."""
  if shutil.which('openssl') is None:
    pytest.skip('openssl is not installed (apt-get install openssl).')
  cert, key = tmp_path / 'cert.pem', tmp_path / 'key.pem'
  subprocess.run(
      ['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
       '-keyout', str(key), '-out', str(cert), '-days', '1',
       '-subj', '/CN=localhost',
       '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
      check=True, capture_output=True)
  return str(cert), str(key)


def test_https_and_wss(tmp_path):
  cert, key = _self_signed(tmp_path)
  context = serve.ssl_context(cert, key)
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  async def main():
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    client_context = ssl.create_default_context(cafile=cert)
    try:
      async with aiohttp.ClientSession() as session:
        async with session.get(f'https://127.0.0.1:{port}/',
                               ssl=client_context) as response:
          status = response.status
        async with session.ws_connect(f'wss://127.0.0.1:{port}/ws',
                                      ssl=client_context) as ws:
          hello = await _receive_json(ws)
    finally:
      await runner.cleanup()
    return status, hello

  status, hello = asyncio.run(main())
  assert status == 200
  assert hello['labels'] == LABELS


def _run_all(commands: Sequence[Sequence[str]]) -> list[
    subprocess.CompletedProcess]:
  """Runs commands side by side (each pays for its imports)."""
  processes = [subprocess.Popen(
      [sys.executable, *command], cwd=REPO, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for command in commands]
  results = []
  for process, command in zip(processes, commands):
    out, err = process.communicate(timeout=120)
    results.append(subprocess.CompletedProcess(command, process.returncode,
                                               out, err))
  return results


def test_command_line_errors_are_clear(tmp_path):
  missing_model, one_tls_file = _run_all([
      ['-m', 'kws_jax.serve', f'--graph={tmp_path / "none.tflite"}',
       '--port=0'],
      ['-m', 'kws_jax.serve', '--certfile=cert.pem'],
  ])
  assert missing_model.returncode == 1
  assert 'none.tflite not found' in missing_model.stderr
  assert 'Traceback' not in missing_model.stderr
  assert one_tls_file.returncode != 0
  assert '--keyfile' in one_tls_file.stderr


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def tiny_tflite(tmp_path_factory) -> pathlib.Path:
  """A TFLite model in our layout (audio [1, 16000] -> [1, 6] probs)."""
  tf = pytest.importorskip('tensorflow')
  folder = tmp_path_factory.mktemp('model')
  weights = tf.constant(np.linspace(-1, 1, len(LABELS), dtype=np.float32))

  @tf.function(input_signature=[
      tf.TensorSpec([1, SAMPLE_RATE], tf.float32, name='audio')])
  def model(audio):
    level = tf.reduce_mean(tf.abs(audio), axis=1, keepdims=True)
    return tf.nn.softmax(level * weights[None, :] + weights[None, :])

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [model.get_concrete_function()], model)
  (folder / 'model.tflite').write_bytes(converter.convert())
  (folder / 'model_labels.txt').write_text('\n'.join(LABELS) + '\n')
  return folder / 'model.tflite'


def _serve_and_talk(port: int, args: list[str]) -> tuple[str, dict, dict,
                                                         str]:
  """Runs `kws_jax.serve` with `args`: (page, hello, scores, its output)."""
  process = subprocess.Popen(
      [sys.executable, '-m', 'kws_jax.serve', '--host=127.0.0.1',
       f'--port={port}', *args],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

  async def talk():
    async with aiohttp.ClientSession() as session:
      for _ in range(600):
        try:
          async with session.get(f'http://127.0.0.1:{port}/') as response:
            page = await response.text()
          break
        except aiohttp.ClientConnectionError:
          if process.poll() is not None:
            raise AssertionError('The server stopped.') from None
          await asyncio.sleep(0.1)
      async with session.ws_connect(f'ws://127.0.0.1:{port}/ws') as ws:
        hello = await _receive_json(ws)
        await ws.send_bytes(np.zeros(SAMPLE_RATE, '<f4').tobytes())
        scores = await _receive_json(ws)
    return page, hello, scores

  try:
    page, hello, scores = asyncio.run(talk())
  finally:
    process.terminate()
    output = process.communicate(timeout=30)[0]
  return page, hello, scores, output


def test_command_line_serves_a_tflite_model(tiny_tflite):
  port = _free_port()
  page, hello, scores, output = _serve_and_talk(port, [
      # Every flag, so that a renamed one fails here.
      f'--graph={tiny_tflite}',
      f'--labels={tiny_tflite.parent / "model_labels.txt"}',
      '--max_connections=3', '--idle_timeout_s=20',
      '--detection_threshold=0.5', '--average_window_ms=400',
      '--suppression_ms=1000', '--clip_stride_ms=50', '--minimum_count=2',
      '--num_threads=1'])
  assert 'Keyword spotting' in page
  assert hello['labels'] == LABELS
  assert hello['detection_threshold'] == 0.5
  assert hello['clip_stride_ms'] == 50
  assert hello['idle_timeout_s'] == 20
  assert scores['type'] == 'scores'
  probs = np.array(scores['scores'])
  np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-3)
  assert probs.argmax() == len(LABELS) - 1
  assert f'http://localhost:{port}/' in output


def test_command_line_uses_the_models_calibrated_smoothing(tiny_tflite,
                                                           tmp_path):
  # The live page takes the settings stored beside the model, flags first.
  for name in ('model.tflite', 'model_labels.txt'):
    shutil.copy(tiny_tflite.parent / name, tmp_path / name)
  graph = tmp_path / 'model.tflite'
  streaming.write_smoothing(graph, streaming.SmoothingSettings(
      average_window_ms=750, detection_threshold=0.42, suppression_ms=900,
      minimum_count=2, class_thresholds=((LABELS[-1], 0.6),)),
      {'chosen_on': 'a test'})
  _, hello, _, output = _serve_and_talk(_free_port(), [f'--graph={graph}'])
  assert hello['detection_threshold'] == 0.42
  assert hello['class_thresholds'] == {LABELS[-1]: 0.6}
  assert (f'Smoothing: window 750 ms, threshold 0.42 ({LABELS[-1]} 0.6), '
          'suppression 900 ms, minimum count 2 (calibrated, '
          f'{tmp_path}/model_smoothing.json)' in output), output
  _, hello, _, output = _serve_and_talk(
      _free_port(), [f'--graph={graph}', '--detection_threshold=0.8'])
  assert hello['detection_threshold'] == 0.8
  assert hello['class_thresholds'] == {}
  assert ('(--detection_threshold (one threshold for every label); the rest '
          'calibrated' in output), output
  _, hello, _, _ = _serve_and_talk(
      _free_port(), [f'--graph={graph}',
                     f'--class_thresholds={LABELS[0]}=0.9'])
  assert hello['class_thresholds'] == {LABELS[0]: 0.9}


# --- Abuse and load --------------------------------------------------------


def _raw_websocket(port: int) -> socket.socket:
  """A WebSocket opened by hand: a client that never reads what it gets."""
  import base64  # pylint: disable=g-import-not-at-top
  sock = socket.create_connection(('127.0.0.1', port), timeout=5)
  # A small receive buffer, so that the server's sends back up sooner.
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
  key = base64.b64encode(bytes(range(16))).decode()
  sock.sendall(
      f'GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n'
      f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n'
      'Sec-WebSocket-Version: 13\r\n\r\n'.encode())
  assert sock.recv(12) == b'HTTP/1.1 101'
  return sock


def _masked_binary_frame(payload: bytes) -> bytes:
  mask = b'\x01\x02\x03\x04'
  header = b'\x82\xfe' + len(payload).to_bytes(2, 'big')  # < 64 KiB.
  masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
  return header + mask + masked


def test_page_that_stops_reading_is_dropped():
  # A client that sends audio but never reads the replies: once sending to
  # it blocks for the idle timeout, its place is given back. Many labels
  # make each scores message large, so the buffers fill in a moment.
  labels = ['_silence_', '_unknown_', *(f'w{i}' for i in range(3000))]
  scores = np.full(len(labels), 1.0 / len(labels), np.float32)
  app = serve.make_app(lambda clip: scores, labels,
                       _settings(idle_timeout_s=1.0, scores_interval_ms=0))

  async def body(client):
    loop = asyncio.get_running_loop()
    sock = await loop.run_in_executor(None, _raw_websocket,
                                      client.server.port)
    # One stride of audio a frame: one model run and one message each.
    frame = _masked_binary_frame(np.zeros(480, '<f4').tobytes())

    def flood():
      sock.settimeout(0.5)
      try:
        while True:
          sock.sendall(frame)
      except OSError:  # Blocked (the server stopped reading), or dropped.
        pass

    await loop.run_in_executor(None, flood)
    assert _open_connections(app) == 1
    for _ in range(100):
      if _open_connections(app) == 0:
        break
      await asyncio.sleep(0.1)
    dropped = _open_connections(app) == 0
    sock.close()
    # Others are still served.
    async with client.ws_connect('/ws') as ws:
      hello = await _receive_json(ws)
    return dropped, hello

  dropped, hello = _run(app, body)
  assert dropped
  assert hello['type'] == 'hello'


def test_oversized_text_message_closes_with_1009():
  app = serve.make_app(ToneClassifier(), LABELS, _settings())
  limit = _settings().max_message_bytes

  async def body(client):
    async with client.ws_connect('/ws') as ws:
      await _receive_json(ws)
      await ws.send_str(json.dumps({'type': 'start', 'pad': 'x' * limit}))
      msg = await ws.receive(timeout=5)
      return msg.type, ws.close_code

  assert _run(app, body) == (aiohttp.WSMsgType.CLOSE, serve.CLOSE_TOO_BIG)


@pytest.mark.parametrize('request_bytes', [
    b'GARBAGE\r\n\r\n',
    b'GET / HTTP/1.1\r\nHost: x\r\nX-Big: ' + b'a' * 20000 + b'\r\n\r\n',
    b'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
    b'Connection: Upgrade\r\nSec-WebSocket-Key: short\r\n'
    b'Sec-WebSocket-Version: 13\r\n\r\n',
], ids=['garbage', 'huge_header', 'bad_websocket_key'])
def test_malformed_http_is_refused_and_the_server_goes_on(request_bytes):
  app = serve.make_app(ToneClassifier(), LABELS, _settings())

  def send(port):
    with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
      s.sendall(request_bytes)
      return s.recv(100)

  async def body(client):
    loop = asyncio.get_running_loop()
    reply = await loop.run_in_executor(None, send, client.server.port)
    response = await client.get('/')
    return reply, response.status

  reply, status = _run(app, body)
  assert reply.startswith((b'HTTP/1.0 4', b'HTTP/1.1 4')), reply
  assert status == 200


def test_short_load_on_loopback(tiny_tflite):
  # benchmarks/serve_load.py in small: 10 pages streaming in real time for
  # 5 s against `python -m kws_jax.serve` (50 pages for 30 s is the recorded
  # run; see docs/reliability.md).
  from benchmarks import serve_load  # pylint: disable=g-import-not-at-top
  result = serve_load.run_load(
      str(tiny_tflite), labels=str(tiny_tflite.parent / 'model_labels.txt'),
      clients=10, seconds=5.0, grace_s=20.0, warmup_s=1.0)
  summary = result.summary()
  assert result.errors == 0, summary
  assert result.frames_sent == 10 * 50, summary
  # Kept up: (nearly) every scores message the throttle allows arrived, and
  # quickly, even on a small shared machine.
  assert summary['throughput_percent'] >= 90, summary
  assert result.percentile(99) < 2000, summary
  assert result.rss_end_mb - result.rss_start_mb < 50, summary
  assert result.server_exit_code == 0, summary
