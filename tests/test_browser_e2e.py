"""End-to-end: a real browser's microphone plays known words into the page.

Headless Debian Chromium (`apt-get install -y chromium`), driven by
Playwright for Python (`pip install playwright`; no browser is downloaded:
the system Chromium is launched), is given a WAV file as its fake microphone.
The WAV holds tones that the stub model of test_serve.py takes for words
(440 Hz 'yes', 880 Hz 'no'), so the test checks the whole path: page,
getUserMedia, audio worklet, resampling, WebSocket, server, recogniser, and
the tiles lighting up. Skipped, with the reason, when Chromium or Playwright
is missing (failed instead when KWS_REQUIRE_BROWSER=1).
"""

import asyncio
import contextlib
import os
import pathlib
import threading
from typing import Any, Iterator

from aiohttp import web
import pytest
import soundfile as sf

from kws_jax import serve

from test_serve import LABELS
from test_serve import ToneClassifier
from test_serve import tone_stream

CHROMIUM = os.environ.get('KWS_CHROMIUM', '/usr/bin/chromium')
# The fake microphone's file: Chromium resamples it to the capture rate and
# plays it in a loop.
WAV_RATE = 44100
WORDS_AT_MS = {800.0: 'yes', 3000.0: 'no'}
WAV_MS = 5000.0
CHROMIUM_ARGS = [
    '--headless', '--no-sandbox', '--disable-gpu',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic',
]


def _skip(reason: str) -> None:
  # CI that installs the browser sets KWS_REQUIRE_BROWSER=1, so that a
  # broken install fails instead of skipping.
  if os.environ.get('KWS_REQUIRE_BROWSER') == '1':
    pytest.fail(f'{reason} (KWS_REQUIRE_BROWSER=1)')
  pytest.skip(reason)


def _browser_or_skip():
  if not os.path.exists(CHROMIUM):
    _skip(f'No Chromium at {CHROMIUM}: apt-get install -y chromium (or set '
          'KWS_CHROMIUM).')
  try:
    from playwright import sync_api  # pylint: disable=g-import-not-at-top
  except ImportError:
    _skip('Playwright for Python is not installed: pip install playwright '
          '(the system Chromium is used; no download).')
  return sync_api


class _Server:
  """The app on 127.0.0.1, on a free port, in a thread of its own."""

  def __init__(self, application: web.Application):
    self._app = application
    self._loop = asyncio.new_event_loop()
    self._ready = threading.Event()
    self._thread = threading.Thread(target=self._serve, daemon=True)
    self.url = ''

  def _serve(self) -> None:
    asyncio.set_event_loop(self._loop)
    self._runner = web.AppRunner(self._app)
    self._loop.run_until_complete(self._runner.setup())
    site = web.TCPSite(self._runner, '127.0.0.1', 0)
    self._loop.run_until_complete(site.start())
    port = self._runner.addresses[0][1]
    self.url = f'http://127.0.0.1:{port}/'
    self._ready.set()
    self._loop.run_forever()
    self._loop.run_until_complete(self._runner.cleanup())
    self._loop.close()

  def __enter__(self) -> '_Server':
    self._thread.start()
    assert self._ready.wait(timeout=30), 'The server did not start.'
    return self

  def __exit__(self, *unused) -> None:
    self._loop.call_soon_threadsafe(self._loop.stop)
    self._thread.join(timeout=30)


@contextlib.contextmanager
def _chromium(tmp_path: pathlib.Path, wav: pathlib.Path) -> Iterator[Any]:
  """A Playwright browser context of Chromium whose microphone plays `wav`."""
  sync_api = _browser_or_skip()
  with sync_api.sync_playwright() as p:
    try:
      context = p.chromium.launch_persistent_context(
          str(tmp_path / 'profile'), executable_path=CHROMIUM,
          headless=True,
          args=CHROMIUM_ARGS + [f'--use-file-for-fake-audio-capture={wav}'],
          viewport={'width': 1000, 'height': 800})
    except sync_api.Error as e:
      _skip(f'Chromium at {CHROMIUM} does not start under Playwright: '
            f'{str(e).splitlines()[0]}')
    try:
      yield context
    finally:
      context.close()


def _open(context: Any, url: str, errors: list[str]) -> Any:
  """A new page at `url` whose errors (uncaught or logged) go to `errors`."""
  page = context.new_page()
  page.on('pageerror', lambda error: errors.append(str(error)))
  page.on('console', lambda msg: errors.append(msg.text)
          if msg.type == 'error' else None)
  page.goto(url)
  return page


def _words_wav(tmp_path: pathlib.Path) -> pathlib.Path:
  wav = tmp_path / 'words.wav'
  sf.write(wav, tone_stream(WORDS_AT_MS, WAV_MS, sample_rate=WAV_RATE),
           WAV_RATE, subtype='PCM_16')
  return wav


@pytest.fixture
def page_with_microphone(tmp_path: pathlib.Path) -> Iterator[tuple]:
  """(page, errors, classifier): the app in Chromium hearing the words WAV."""
  classifier = ToneClassifier()
  application = serve.make_app(classifier, LABELS,
                               serve.ServerSettings(sample_rate=16000))
  with _Server(application) as server, \
      _chromium(tmp_path, _words_wav(tmp_path)) as context:
    errors = []
    yield _open(context, server.url, errors), errors, classifier


def test_spoken_words_light_up(page_with_microphone):
  page, errors, classifier = page_with_microphone
  # The grid comes from the server's labels: words only, in label order.
  page.wait_for_selector('#mic:not([disabled])', timeout=15000)
  tiles = page.locator('#words .tile')
  assert [tiles.nth(i).get_attribute('data-label')
          for i in range(tiles.count())] == ['yes', 'no', 'up', 'down']
  assert 'Ready' in page.inner_text('#status')

  page.click('#mic')
  page.wait_for_selector('#status[data-state="listening"]', timeout=15000)
  # Each word is highlighted when heard (the WAV plays in a loop).
  page.wait_for_selector('.tile[data-label="yes"].lit', timeout=20000)
  page.wait_for_selector('.tile[data-label="no"].lit', timeout=20000)
  hits = {label: int(page.get_attribute(f'.tile[data-label="{label}"]',
                                        'data-hits'))
          for label in ('yes', 'no', 'up', 'down')}
  assert hits['yes'] >= 1 and hits['no'] >= 1, hits
  assert hits['up'] == 0 and hits['down'] == 0, hits
  logged = page.locator('#log li').evaluate_all(
      'items => items.map(item => item.dataset.label)')
  assert 'yes' in logged and 'no' in logged, logged
  assert set(logged) <= {'yes', 'no'}, logged
  # The level meter moved and live scores arrived.
  level = page.get_attribute('#level', 'aria-valuenow')
  assert level is not None
  assert classifier.calls > 10

  page.click('#mic')
  page.wait_for_selector('#status[data-state="ready"]', timeout=5000)
  assert not errors, errors


def test_page_resampler_matches_a_sine(page_with_microphone):
  # resampler.js on its own, in the browser: 48 kHz and 44.1 kHz to 16 kHz
  # in odd chunk sizes give the 16 kHz sine, whatever the chunking.
  page, errors, _ = page_with_microphone
  page.wait_for_selector('#mic:not([disabled])', timeout=15000)
  result = page.evaluate("""async () => {
    const {Resampler} = await import('./resampler.js');
    const out = {};
    for (const rate of [48000, 44100, 16000, 8000]) {
      const x = new Float32Array(rate);
      for (let i = 0; i < x.length; i++) {
        x[i] = 0.5 * Math.sin(2 * Math.PI * 440 * i / rate);
      }
      const whole = new Resampler(rate, 16000).push(x);
      const chunked = new Resampler(rate, 16000);
      const parts = [];
      for (let i = 0, k = 0; i < x.length; k++) {
        const size = [128, 7, 1000, 333][k % 4];
        parts.push(...chunked.push(x.subarray(i, i + size)));
        i += size;
      }
      let chunkDiff = 0;
      let sineError = 0;
      for (let n = 0; n < whole.length; n++) {
        chunkDiff = Math.max(chunkDiff, Math.abs(whole[n] - parts[n]));
        if (n > 50 && n < whole.length - 50) {
          sineError = Math.max(sineError, Math.abs(
              whole[n] - 0.5 * Math.sin(2 * Math.PI * 440 * n / 16000)));
        }
      }
      out[rate] = {length: whole.length, parts: parts.length, chunkDiff,
                   sineError};
    }
    return out;
  }""")
  for rate, r in result.items():
    assert r['parts'] == r['length'], (rate, r)
    assert 15900 <= r['length'] <= 16000, (rate, r)
    assert r['chunkDiff'] < 1e-6, (rate, r)
    assert r['sineError'] < 1e-3, (rate, r)
  assert not errors, errors


def test_busy_and_idle_are_shown(tmp_path):
  # One page at a time, closed after 5 s without audio. (The first page
  # is connected, without audio, from "ready" until its first audio after
  # the click; with 1.5 s a loaded CI machine closed it as idle in between.)
  application = serve.make_app(
      ToneClassifier(), LABELS,
      serve.ServerSettings(max_connections=1, idle_timeout_s=5.0))
  with _Server(application) as server, \
      _chromium(tmp_path, _words_wav(tmp_path)) as context:
    errors = []
    first = _open(context, server.url, errors)
    first.wait_for_selector('#status[data-state="ready"]', timeout=15000)
    # Listening, the first page sends audio all the time, so it holds the
    # one place however slowly the second page loads (a page left without
    # listening could be closed as idle before the second one asks).
    first.click('#mic')
    first.wait_for_selector('#status[data-state="listening"]', timeout=15000)
    second = _open(context, server.url, errors)
    second.wait_for_selector('#status[data-state="busy"]', timeout=15000)
    assert 'server busy' in second.inner_text('#message')
    # The first page, once it stops listening, is closed as idle, quietly.
    first.click('#mic')
    first.wait_for_selector('#status[data-state="off"]', timeout=15000)
    assert first.inner_text('#status') == 'Idle'
    assert first.is_hidden('#message')
    # The place is free again: the second page connects on its button.
    second.click('#mic')
    second.wait_for_selector('#status[data-state="listening"]',
                             timeout=15000)
    second.click('#mic')
  # Chromium logs the refused connection's close; nothing else may fail.
  assert not [e for e in errors if 'WebSocket' not in e], errors
