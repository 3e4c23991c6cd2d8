r"""The live app: a web page that listens through the microphone.

    python -m kws_jax.serve                     # the shipped model
    python -m kws_jax.serve --graph=model.tflite --labels=labels.txt \
        --host=0.0.0.0 --certfile=cert.pem --keyfile=key.pem

serves one page (`kws_jax/static/`) at `/` and a WebSocket at `/ws`. The page
captures the microphone, resamples it to the model's rate and streams it here;
each connection gets its own `streaming.StreamingRecognizer`, whose
detections and (throttled) live scores go back to the page. See docs/app.md.

The WebSocket protocol (JSON text messages, binary audio):

* server → page, on connect: `{"type": "hello", "protocol": 1, "labels":
  [...], "sample_rate": 16000, "clip_duration_ms", "clip_stride_ms",
  "detection_threshold", "class_thresholds": {label: threshold},
  "formats": ["float32", "int16"], "max_frame_samples", "idle_timeout_s"}`
  (`class_thresholds`: the labels with a threshold of their own).
* page → server: `{"type": "start", "format": "int16" | "float32",
  "sample_rate": 16000}` (optional; starts a fresh stream; the format
  defaults to float32 and `sample_rate`, if given, must be the announced
  one), then binary frames of little-endian samples at `sample_rate`, at most
  `max_frame_samples` each.
* server → page: `{"type": "started", "format"}`; `{"type": "detection",
  "label", "score", "time_ms"}` for each command; `{"type": "scores",
  "time_ms", "scores": [...], "label", "score"}` at most every
  `scores_interval_ms` of audio (the latest clip's raw scores, and the
  smoothed top label and score); `{"type": "error", "message"}` for a frame
  or message that was refused (the stream goes on).

Close codes: 1009 a frame over the size limit; 1008 too many refused frames;
1011 the model failed; 1013 the server is full (try again later); 1001 the
server is stopping; `CLOSE_IDLE` (4408) no message for `idle_timeout_s`. A
page that stops reading its messages for `idle_timeout_s` (so that sending
to it blocks) is disconnected without a close message: it would otherwise
hold its place forever.
Times in messages are ms of audio since the stream started, as in
`streaming.Detection`.
"""

import asyncio
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import ssl
import sys
from typing import Any, Sequence
import urllib.parse

from absl import app
from absl import flags
from absl import logging
from aiohttp import web
import numpy as np

from kws_jax import audio_io
from kws_jax.runtime import streaming

STATIC_DIR = pathlib.Path(__file__).resolve().parent / 'static'
PROTOCOL_VERSION = 1
FORMATS = {'float32': np.dtype('<f4'), 'int16': np.dtype('<i2')}

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_BUSY = 1013
# An application code (4000-4999); 408 as in HTTP's Request Timeout.
CLOSE_IDLE = 4408

# Files the page is made of, by suffix; nothing else is ever served.
_CONTENT_TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.webmanifest': 'application/manifest+json',
    '.json': 'application/json',
    '.png': 'image/png',
    '.svg': 'image/svg+xml',
    '.ico': 'image/x-icon',
}
_SECURITY_HEADERS = {
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-cache',
    'Content-Security-Policy': (
        "default-src 'self'; connect-src 'self' ws: wss:; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"),
    'Permissions-Policy': 'microphone=(self)',
}


@dataclasses.dataclass(frozen=True)
class ServerSettings:
  """How the server listens and streams.

  Attributes:
    sample_rate: Hz of the audio the model takes (announced to the page).
    clip_duration_ms: the model's input length, ms.
    clip_stride_ms: run the model every this many ms of audio.
    smoothing: `RecognizeCommands` settings.
    max_connections: WebSockets served at once; more are refused with
      `CLOSE_BUSY`.
    idle_timeout_s: a connection with no message for this long is closed
      with `CLOSE_IDLE`; one that takes this long to accept a message from
      the server (it is not reading) is dropped.
    max_frame_ms: longest audio frame accepted, ms; a longer binary message
      is refused (float32 frames over the limit are cut off with
      `CLOSE_TOO_BIG` before being read whole).
    scores_interval_ms: send live scores at most every this many ms of audio.
    max_errors: refused frames or messages before a connection is closed
      with `CLOSE_POLICY`.
  """
  sample_rate: int = 16000
  clip_duration_ms: float = 1000.0
  clip_stride_ms: float = streaming.DEFAULT_CLIP_STRIDE_MS
  smoothing: streaming.SmoothingSettings = streaming.SmoothingSettings()
  max_connections: int = 8
  idle_timeout_s: float = 30.0
  max_frame_ms: float = 1000.0
  scores_interval_ms: float = 100.0
  max_errors: int = 20

  @property
  def max_frame_samples(self) -> int:
    return streaming.ms_to_samples(self.max_frame_ms, self.sample_rate)

  @property
  def max_message_bytes(self) -> int:
    # The largest frame in the widest format, with room to spare (aiohttp
    # refuses a message of exactly its limit); text messages are far smaller.
    return self.max_frame_samples * FORMATS['float32'].itemsize + 4096

  def validate(self) -> None:
    """Raises ValueError naming the first setting out of range."""
    positive = {
        'sample_rate': self.sample_rate,
        'clip_duration_ms': self.clip_duration_ms,
        'clip_stride_ms': self.clip_stride_ms,
        'max_connections': self.max_connections,
        'idle_timeout_s': self.idle_timeout_s,
        'max_frame_ms': self.max_frame_ms,
        'max_errors': self.max_errors,
    }
    for name, value in positive.items():
      if not value > 0:
        raise ValueError(f'{name} must be positive, got {value}.')
    if self.scores_interval_ms < 0:
      raise ValueError('scores_interval_ms must be >= 0, got '
                       f'{self.scores_interval_ms}.')
    if self.max_frame_samples < 1:
      raise ValueError(f'max_frame_ms={self.max_frame_ms} is less than one '
                       f'sample at {self.sample_rate} Hz.')


class FrameError(ValueError):
  """A message from the page that cannot be used; the text says why."""


def decode_frame(data: bytes, sample_format: str,
                 max_samples: int) -> np.ndarray:
  """A binary frame -> float32 [n] audio in [-1, 1].

  Args:
    data: little-endian samples.
    sample_format: a key of `FORMATS`.
    max_samples: the most samples a frame may hold.

  Raises:
    FrameError: a length that is not whole samples, too many samples, or
      values that are not finite.
  """
  dtype = FORMATS[sample_format]
  if len(data) % dtype.itemsize:
    raise FrameError(f'A {sample_format} frame must be a whole number of '
                     f'{dtype.itemsize}-byte samples; got {len(data)} bytes.')
  samples = np.frombuffer(data, dtype)
  if samples.shape[0] > max_samples:
    raise FrameError(f'Frame of {samples.shape[0]} samples is over the limit '
                     f'of {max_samples}; send shorter frames.')
  if dtype.kind == 'i':
    return samples.astype(np.float32) / np.float32(audio_io.PCM16_SCALE)
  samples = samples.astype(np.float32)
  if not np.all(np.isfinite(samples)):
    raise FrameError('Frame holds NaN or infinite samples.')
  return np.clip(samples, -1.0, 1.0)


def resolve_static(root: pathlib.Path, name: str) -> pathlib.Path | None:
  """The file `name` (a URL path, decoded) inside `root`, or None.

  Only regular files with a known suffix whose real path lies inside `root`
  are returned: no `..`, hidden files, absolute paths or links out.
  """
  if not name or '\x00' in name or '\\' in name or name.startswith('/'):
    return None
  parts = name.split('/')
  if any(not part or part.startswith('.') for part in parts):
    return None
  if pathlib.PurePosixPath(name).suffix not in _CONTENT_TYPES:
    return None
  root = root.resolve()
  try:
    path = (root / name).resolve(strict=True)
  except (OSError, RuntimeError):
    return None
  if not path.is_relative_to(root) or not path.is_file():
    return None
  return path


def _same_origin(request: web.Request) -> bool:
  """False for a browser page from another site (its Origin differs).

  Clients that send no Origin (not browsers) are let in.
  """
  origin = request.headers.get('Origin')
  if origin is None:
    return True
  return urllib.parse.urlsplit(origin).netloc.lower() == request.host.lower()


@dataclasses.dataclass
class _AppState:
  predict_fn: streaming.PredictFn | streaming.SteppedModel
  labels: list[str]
  settings: ServerSettings
  static_dir: pathlib.Path
  executor: concurrent.futures.ThreadPoolExecutor
  sockets: set[web.WebSocketResponse] = dataclasses.field(default_factory=set)


_STATE = web.AppKey('kws_state', _AppState)


class _Session:
  """One WebSocket: its recogniser, frame format and error count."""

  def __init__(self, state: _AppState, ws: web.WebSocketResponse,
               peer: str):
    self._state = state
    self._settings = state.settings
    self._ws = ws
    self._peer = peer
    self._format = 'float32'
    self._errors = 0
    self._last_scores_ms = None
    self._recognizer = streaming.StreamingRecognizer(
        state.predict_fn, state.labels,
        sample_rate=self._settings.sample_rate,
        clip_duration_ms=self._settings.clip_duration_ms,
        clip_stride_ms=self._settings.clip_stride_ms,
        **dataclasses.asdict(self._settings.smoothing))

  def hello(self) -> dict[str, Any]:
    s = self._settings
    return {
        'type': 'hello',
        'protocol': PROTOCOL_VERSION,
        'labels': list(self._state.labels),
        'sample_rate': s.sample_rate,
        'clip_duration_ms': s.clip_duration_ms,
        'clip_stride_ms': s.clip_stride_ms,
        'detection_threshold': s.smoothing.detection_threshold,
        'class_thresholds': dict(s.smoothing.class_thresholds),
        'formats': list(FORMATS),
        'max_frame_samples': s.max_frame_samples,
        'idle_timeout_s': s.idle_timeout_s,
    }

  async def _send(self, payload: dict[str, Any]) -> None:
    """Sends a message, or raises `_NotReading` if that blocks too long."""
    await _bounded(self._ws.send_json(payload), self._settings.idle_timeout_s)

  async def _close(self, code: int, message: bytes) -> None:
    await _bounded(self._ws.close(code=code, message=message),
                   self._settings.idle_timeout_s)

  async def run(self) -> None:
    """Serves the connection until it closes.

    Raises:
      _NotReading: the page stopped reading; the caller drops it.
    """
    ws = self._ws
    await self._send(self.hello())
    while not ws.closed:
      try:
        msg = await ws.receive(timeout=self._settings.idle_timeout_s)
      except asyncio.TimeoutError:
        logging.info('%s: idle for %g s, closing.', self._peer,
                     self._settings.idle_timeout_s)
        await self._close(CLOSE_IDLE, (
            f'idle: no audio for {self._settings.idle_timeout_s:g} s'
        ).encode())
        return
      if msg.type == web.WSMsgType.BINARY:
        await self._audio(msg.data)
      elif msg.type == web.WSMsgType.TEXT:
        await self._command(msg.data)
      else:
        if msg.type == web.WSMsgType.ERROR:
          # aiohttp has closed it already, e.g. with 1009 for a big frame.
          logging.info('%s: closed after %s', self._peer, msg.data)
        return
      if self._errors >= self._settings.max_errors and not ws.closed:
        await self._close(CLOSE_POLICY, (
            f'too many refused messages ({self._errors})').encode())

  async def _refuse(self, message: str) -> None:
    self._errors += 1
    logging.debug('%s: %s', self._peer, message)
    await self._send({'type': 'error', 'message': message})

  async def _command(self, text: str) -> None:
    try:
      command = json.loads(text)
    except ValueError:
      await self._refuse('Text messages must be JSON objects.')
      return
    if not isinstance(command, dict) or command.get('type') != 'start':
      await self._refuse('Unknown message; expected {"type": "start", '
                         '"format": "int16" | "float32"} or binary audio.')
      return
    sample_format = command.get('format', 'float32')
    if sample_format not in FORMATS:
      await self._refuse(f'Unknown format {sample_format!r}; use one of '
                         f'{list(FORMATS)}.')
      return
    rate = command.get('sample_rate', self._settings.sample_rate)
    if rate != self._settings.sample_rate:
      await self._refuse(f'Audio must be sent at {self._settings.sample_rate}'
                         f' Hz, not {rate!r}; resample it first.')
      return
    self._format = sample_format
    self._last_scores_ms = None
    # Between two frames, so the recogniser is not in use.
    self._recognizer.reset()
    await self._send({'type': 'started', 'format': sample_format})

  async def _audio(self, data: bytes) -> None:
    try:
      samples = decode_frame(data, self._format,
                             self._settings.max_frame_samples)
    except FrameError as e:
      await self._refuse(str(e))
      return
    loop = asyncio.get_running_loop()
    try:
      # The model may take a while: run it off the event loop so that other
      # connections keep being served.
      detections = await loop.run_in_executor(
          self._state.executor, self._recognizer.process, samples)
    except Exception:  # pylint: disable=broad-except
      logging.exception('%s: the model failed.', self._peer)
      await self._close(CLOSE_INTERNAL, b'model error')
      return
    for detection in detections:
      await self._send({
          'type': 'detection', 'label': detection.label,
          'score': round(float(detection.score), 4),
          'time_ms': round(float(detection.time_ms), 1)})
    await self._maybe_send_scores()

  async def _maybe_send_scores(self) -> None:
    time_ms = self._recognizer.latest_time_ms
    if time_ms is None:
      return
    if (self._last_scores_ms is not None and
        time_ms - self._last_scores_ms < self._settings.scores_interval_ms):
      return
    self._last_scores_ms = time_ms
    result = self._recognizer.latest_result
    await self._send({
        'type': 'scores', 'time_ms': round(float(time_ms), 1),
        'scores': [round(float(s), 4) for s in self._recognizer.latest_scores],
        'label': result.found_command, 'score': round(float(result.score), 4)})


async def _websocket(request: web.Request) -> web.StreamResponse:
  state = request.app[_STATE]
  ws = web.WebSocketResponse(max_msg_size=state.settings.max_message_bytes)
  if not ws.can_prepare(request).ok:
    return web.Response(status=426, text='This address is a WebSocket; open '
                        '/ in a browser.\n', headers={'Upgrade': 'websocket'})
  if not _same_origin(request):
    logging.warning('Refused a WebSocket from origin %s.',
                    request.headers.get('Origin'))
    return web.Response(status=403, text='Cross-origin WebSocket refused.\n')
  await ws.prepare(request)
  peer = request.remote or '?'
  if len(state.sockets) >= state.settings.max_connections:
    reason = (f'server busy: {state.settings.max_connections} connections '
              'already; try again later')
    logging.warning('%s: refused, %s.', peer, reason)
    try:
      await _bounded(ws.send_json({'type': 'error', 'message': reason}),
                     state.settings.idle_timeout_s)
      await _bounded(ws.close(code=CLOSE_BUSY, message=reason.encode()),
                     state.settings.idle_timeout_s)
    except _NotReading:
      _drop(request)
    return ws
  state.sockets.add(ws)
  logging.info('%s: connected (%d open).', peer, len(state.sockets))
  try:
    await _Session(state, ws, peer).run()
  except (ConnectionError, RuntimeError) as e:
    # The peer went away while we were sending.
    logging.info('%s: connection lost: %s', peer, e)
  except _NotReading:
    logging.warning('%s: has not read its messages for %g s; dropped.', peer,
                    state.settings.idle_timeout_s)
    _drop(request)
  finally:
    state.sockets.discard(ws)
    logging.info('%s: closed with %s (%d open).', peer, ws.close_code,
                 len(state.sockets))
  return ws


class _NotReading(Exception):
  """Sending to a page blocked for the idle timeout: it reads nothing."""


async def _bounded(send: Any, timeout_s: float) -> None:
  """Awaits a send or close; raises `_NotReading` after `timeout_s`."""
  try:
    await asyncio.wait_for(send, timeout_s)
  except asyncio.TimeoutError:
    raise _NotReading() from None


def _drop(request: web.Request) -> None:
  # A close message could not get through either; cut the connection.
  if request.transport is not None:
    request.transport.abort()


def _file_response(path: pathlib.Path) -> web.FileResponse:
  headers = dict(_SECURITY_HEADERS)
  headers['Content-Type'] = _CONTENT_TYPES[path.suffix]
  return web.FileResponse(path, headers=headers)


async def _index(request: web.Request) -> web.StreamResponse:
  path = resolve_static(request.app[_STATE].static_dir, 'index.html')
  if path is None:
    raise web.HTTPNotFound(text='index.html is missing from the static '
                           'folder.\n')
  return _file_response(path)


async def _static(request: web.Request) -> web.StreamResponse:
  path = resolve_static(request.app[_STATE].static_dir,
                        request.match_info['name'])
  if path is None:
    raise web.HTTPNotFound(text='Not found.\n')
  return _file_response(path)


async def _close_all(application: web.Application) -> None:
  state = application[_STATE]

  async def close(ws: web.WebSocketResponse) -> None:
    try:  # A page that reads nothing must not hold up the shutdown.
      await _bounded(ws.close(code=CLOSE_GOING_AWAY,
                              message=b'server stopping'),
                     min(state.settings.idle_timeout_s, 5.0))
    except _NotReading:
      pass

  await asyncio.gather(*(close(ws) for ws in list(state.sockets)))


async def _stop_executor(application: web.Application) -> None:
  application[_STATE].executor.shutdown(wait=False, cancel_futures=True)


def make_app(predict_fn: streaming.PredictFn | streaming.SteppedModel,
             labels: Sequence[str],
             settings: ServerSettings = ServerSettings(),
             static_dir: str | os.PathLike[str] = STATIC_DIR
             ) -> web.Application:
  """Builds the web app around a model.

  Args:
    predict_fn: the model as `streaming.StreamingRecognizer` takes it: clip
      float32 [clip_samples] -> scores float [len(labels)], e.g.
      `inference.Recognizer.predict` or a stub, or a streaming model
      (`LoadedModel.predict_fn`), whose steps keep a state per connection.
      It is only ever run from one worker thread, one call at a time, so a
      TFLite interpreter (not thread-safe) can be used as it is.
    labels: class names in score order, `_silence_` among them.
    settings: see `ServerSettings`.
    static_dir: the page's files.

  Returns:
    An aiohttp application: `/` the page, `/ws` the stream, `/<file>` the
    page's other files.

  Raises:
    ValueError: settings out of range, or no labels.
  """
  settings.validate()
  labels = list(labels)
  if not labels:
    raise ValueError('labels must not be empty.')
  # Fails early, with the streaming code's message, on bad durations or
  # smoothing settings (a class threshold of a label the model lacks).
  streaming.StreamingRecognizer(
      predict_fn, labels, sample_rate=settings.sample_rate,
      clip_duration_ms=settings.clip_duration_ms,
      clip_stride_ms=settings.clip_stride_ms,
      **dataclasses.asdict(settings.smoothing))
  application = web.Application()
  application[_STATE] = _AppState(
      predict_fn=predict_fn, labels=labels, settings=settings,
      static_dir=pathlib.Path(static_dir).resolve(),
      executor=concurrent.futures.ThreadPoolExecutor(
          max_workers=1, thread_name_prefix='kws-inference'))
  application.router.add_get('/', _index)
  application.router.add_get('/ws', _websocket)
  application.router.add_get('/{name:.+}', _static)
  application.on_shutdown.append(_close_all)
  application.on_cleanup.append(_stop_executor)
  return application


def ssl_context(certfile: str | None,
                keyfile: str | None) -> ssl.SSLContext | None:
  """A server TLS context from PEM files; None when neither is given.

  Raises:
    ValueError: only one given, or the files cannot be loaded.
  """
  if not certfile and not keyfile:
    return None
  if not certfile or not keyfile:
    raise ValueError('HTTPS needs both --certfile and --keyfile.')
  context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
  try:
    context.load_cert_chain(certfile, keyfile)
  except (OSError, ssl.SSLError) as e:
    raise ValueError(f'Cannot load certificate {certfile} with key {keyfile}: '
                     f'{e}') from e
  return context


def _define_flags() -> None:
  # Defined only when run as a program: the streaming tools use the same
  # names, and absl refuses duplicates in one process.
  flags.DEFINE_string('graph', None,
                      'TFLite model; default: the shipped model.')
  flags.DEFINE_string('labels', None,
                      'Labels file of --graph; default: the one beside it.')
  flags.DEFINE_string('host', '127.0.0.1',
                      'Address to listen on; 0.0.0.0 for the whole LAN '
                      '(phones then need HTTPS: --certfile/--keyfile).')
  flags.DEFINE_integer('port', 8000, 'Port to listen on.')
  flags.DEFINE_string('certfile', None, 'PEM certificate, to serve HTTPS.')
  flags.DEFINE_string('keyfile', None, 'PEM private key of --certfile.')
  flags.DEFINE_integer('max_connections', ServerSettings.max_connections,
                       'Pages served at once; more are refused.')
  flags.DEFINE_float('idle_timeout_s', ServerSettings.idle_timeout_s,
                     'Close a connection that sends nothing for this long.')
  streaming.define_smoothing_flags()
  flags.adopt_module_key_flags(streaming)  # Listed by --help.
  flags.DEFINE_integer('num_threads', 1, 'CPU threads for the model.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  try:
    context = ssl_context(f.certfile, f.keyfile)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  try:
    model = streaming.load_model(f.graph or None, f.labels or None,
                                 f.num_threads)
    smoothing, source = streaming.smoothing_from_flags(model, f)
  except ValueError as e:  # ModelError, a bad <stem>_smoothing.json or
    # --class_thresholds.
    print(f'kws_jax.serve: {e}', file=sys.stderr)
    sys.exit(1)
  logging.info('Smoothing: %s (%s).', smoothing.describe(), source)
  settings = ServerSettings(
      sample_rate=model.sample_rate,
      clip_duration_ms=model.clip_duration_ms,
      clip_stride_ms=f.clip_stride_ms,
      smoothing=smoothing,
      max_connections=f.max_connections,
      idle_timeout_s=f.idle_timeout_s)
  try:
    application = make_app(model.predict_fn, model.labels, settings)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  scheme = 'https' if context else 'http'
  shown_host = 'localhost' if f.host in ('127.0.0.1', '::1') else f.host
  logging.info('Model: %d labels at %d Hz.', len(model.labels),
               model.sample_rate)
  print(f'Open {scheme}://{shown_host}:{f.port}/ in a browser '
        '(Ctrl+C to stop).', flush=True)
  if context is None and f.host not in ('127.0.0.1', 'localhost', '::1'):
    logging.warning(
        'Browsers only allow the microphone on https:// or localhost pages; '
        'other devices need --certfile/--keyfile (see docs/app.md).')
  web.run_app(application, host=f.host, port=f.port, ssl_context=context,
              print=None, access_log=None)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
