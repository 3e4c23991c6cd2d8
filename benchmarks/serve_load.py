r"""Load test of the live app's server on loopback.

Starts `python -m kws_jax.serve` with a TFLite model, then connects
`--clients` simulated pages at once, each streaming int16 audio in real time
(one 100 ms frame every 100 ms, as the page does) for `--seconds`, and
reports:

* latency: from sending the frame that completes a clip to receiving that
  clip's `scores` message, ms (p50, p90, p99, max);
* throughput: scores messages received against the number the server's
  throttle gives a page that keeps up (at most one per frame, and clips at
  least `scores_interval_ms` apart); below 100% means it fell behind;
* errors: refused or failed connections, `error` messages, unexpected
  closes;
* the server's resident memory (RSS) after a warm-up, at its peak, and after
  the clients left, and its CPU time.

Everything is bounded in time: the run ends `--grace_s` after the streams
even if the server hangs, and the server is stopped at the end.

  python -m benchmarks.serve_load                  # the shipped model
  python -m benchmarks.serve_load --graph=model.tflite --clients=50 \
      --seconds=30
  python -m benchmarks.serve_load --architecture=bc_resnet   # fresh model

Without `--graph` the shipped model is served; with `--architecture`, a
freshly initialised model of that architecture is exported to a temporary
folder instead (speed does not depend on the weights).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

from absl import app
from absl import flags
import aiohttp
import numpy as np

from kws_jax import labels as labels_lib
from kws_jax import serve
from kws_jax.runtime import inference

REPO = pathlib.Path(__file__).resolve().parent.parent
_FRAME_MS = 100.0  # As the page sends.


@dataclasses.dataclass
class LoadResult:
  """What one load run measured; times in ms, memory in MB."""
  clients: int
  seconds: float
  frames_sent: int = 0
  scores_received: int = 0
  scores_expected: int = 0
  detections: int = 0
  latencies_ms: list[float] = dataclasses.field(default_factory=list)
  failed_connections: int = 0
  error_messages: int = 0
  unexpected_closes: int = 0
  client_exceptions: list[str] = dataclasses.field(default_factory=list)
  rss_start_mb: float = 0.0
  rss_peak_mb: float = 0.0
  rss_end_mb: float = 0.0
  rss_after_rounds_mb: list[float] = dataclasses.field(default_factory=list)
  server_cpu_s: float = 0.0
  wall_s: float = 0.0
  server_exit_code: int | None = None

  @property
  def errors(self) -> int:
    return (self.failed_connections + self.error_messages +
            self.unexpected_closes + len(self.client_exceptions))

  def percentile(self, q: float) -> float:
    if not self.latencies_ms:
      return float('nan')
    return float(np.percentile(self.latencies_ms, q))

  def summary(self) -> dict[str, Any]:
    return {
        'clients': self.clients, 'seconds': self.seconds,
        'frames_sent': self.frames_sent,
        'scores_received': self.scores_received,
        'scores_expected': self.scores_expected,
        'throughput_percent': round(
            100.0 * self.scores_received / max(self.scores_expected, 1), 1),
        'detections': self.detections,
        'latency_ms': {name: round(self.percentile(q), 1) for name, q in
                       (('p50', 50), ('p90', 90), ('p99', 99),
                        ('max', 100))},
        'errors': self.errors,
        'failed_connections': self.failed_connections,
        'error_messages': self.error_messages,
        'unexpected_closes': self.unexpected_closes,
        'client_exceptions': self.client_exceptions[:5],
        'rss_mb': {'start': round(self.rss_start_mb, 1),
                   'peak': round(self.rss_peak_mb, 1),
                   'end': round(self.rss_end_mb, 1),
                   'growth': round(self.rss_end_mb - self.rss_start_mb, 1),
                   'after_each_round': [round(x, 1) for x in
                                        self.rss_after_rounds_mb]},
        'server_cpu_s': round(self.server_cpu_s, 1),
        'wall_s': round(self.wall_s, 1),
        'server_exit_code': self.server_exit_code,
        'cpu_count': os.cpu_count(),
    }


def _rss_mb(pid: int) -> float:
  with open(f'/proc/{pid}/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) / 1024.0
  return 0.0


def _cpu_seconds(pid: int) -> float:
  with open(f'/proc/{pid}/stat') as f:
    fields = f.read().rsplit(')', 1)[1].split()
  # utime and stime, fields 14 and 15 of stat (1-based), in clock ticks.
  return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _client_audio(index: int, seconds: float, sample_rate: int) -> np.ndarray:
  """int16 audio: faint noise with a tone burst every 2 s (varied pitch)."""
  rng = np.random.default_rng(abs(index))
  n = int(seconds * sample_rate)
  audio = 0.01 * rng.standard_normal(n)
  t = np.arange(int(0.5 * sample_rate)) / sample_rate
  for start in range(int(0.5 * sample_rate), n - t.shape[0],
                     2 * sample_rate):
    pitch = 300 + 100 * ((index + start // sample_rate) % 8)
    audio[start:start + t.shape[0]] += 0.3 * np.sin(2 * np.pi * pitch * t)
  return np.clip(np.round(audio * 32767), -32768, 32767).astype('<i2')


async def _client(url: str, index: int, seconds: float, start_at: float,
                  result: LoadResult) -> None:
  """One page: connect, stream in real time, read everything back."""
  try:
    async with aiohttp.ClientSession() as session:
      async with session.ws_connect(url, max_msg_size=0) as ws:
        hello = await ws.receive_json(timeout=30)
        if hello.get('type') != 'hello':
          result.failed_connections += 1
          return
        rate = int(hello['sample_rate'])
        clip_ms = float(hello['clip_duration_ms'])
        await ws.send_json({'type': 'start', 'format': 'int16',
                            'sample_rate': rate})
        frame = int(round(rate * _FRAME_MS / 1000))
        audio = _client_audio(index, seconds, rate)
        sent_at: list[float] = []  # Send time of each frame.
        reader = asyncio.create_task(
            _read(ws, sent_at, frame, rate, clip_ms, result))
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        began = time.monotonic()
        for k, offset in enumerate(range(0, audio.shape[0] - frame + 1,
                                         frame)):
          # Paced against the start, so that delays do not add up.
          await asyncio.sleep(max(0.0, began + k * _FRAME_MS / 1000 -
                                  time.monotonic()))
          if ws.closed:
            break
          sent_at.append(time.monotonic())
          await ws.send_bytes(audio[offset:offset + frame].tobytes())
          result.frames_sent += 1
        # Clips end at most one stride after the last frame; wait for them.
        await asyncio.sleep(1.0)
        await ws.close()
        await reader
  except (aiohttp.ClientError, asyncio.TimeoutError, OSError, TypeError) as e:
    if not isinstance(e, aiohttp.WSServerHandshakeError):
      result.client_exceptions.append(f'client {index}: {e!r}')
    else:
      result.failed_connections += 1


async def _read(ws: aiohttp.ClientWebSocketResponse, sent_at: list[float],
                frame: int, rate: int, clip_ms: float,
                result: LoadResult) -> None:
  async for msg in ws:
    if msg.type != aiohttp.WSMsgType.TEXT:
      continue
    message = json.loads(msg.data)
    kind = message.get('type')
    if kind == 'scores':
      now = time.monotonic()
      result.scores_received += 1
      # The clip's last sample, and the frame that carried it.
      last = int(round((message['time_ms'] + clip_ms) * rate / 1000)) - 1
      k = last // frame
      if 0 <= k < len(sent_at):
        result.latencies_ms.append(1000.0 * (now - sent_at[k]))
    elif kind == 'detection':
      result.detections += 1
    elif kind == 'error':
      result.error_messages += 1
  if ws.close_code not in (None, 1000):
    result.unexpected_closes += 1


async def _wait_until_serving(url: str, process: subprocess.Popen,
                              timeout: float) -> None:
  deadline = time.monotonic() + timeout
  async with aiohttp.ClientSession() as session:
    while time.monotonic() < deadline:
      if process.poll() is not None:
        raise RuntimeError(
            f'The server exited with status {process.returncode}.')
      try:
        async with session.get(url) as response:
          if response.status == 200:
            return
      except aiohttp.ClientError:
        pass
      await asyncio.sleep(0.1)
  raise TimeoutError(f'The server did not answer at {url} within '
                     f'{timeout:g} s.')


async def _sample_rss(pid: int, result: LoadResult,
                      stop: asyncio.Event) -> None:
  while not stop.is_set():
    try:
      result.rss_peak_mb = max(result.rss_peak_mb, _rss_mb(pid))
    except OSError:
      return
    try:
      await asyncio.wait_for(stop.wait(), timeout=0.5)
    except asyncio.TimeoutError:
      pass


async def _load(port: int, process: subprocess.Popen, clients: int,
                seconds: float, grace_s: float, warmup_s: float,
                rounds: int) -> LoadResult:
  base = f'http://127.0.0.1:{port}'
  url = f'ws://127.0.0.1:{port}/ws'
  await _wait_until_serving(base + '/', process, timeout=120)
  result = LoadResult(clients=clients, seconds=seconds)
  async with aiohttp.ClientSession() as session:
    async with session.ws_connect(url) as ws:
      hello = await ws.receive_json(timeout=30)
  if warmup_s > 0:  # Loads the interpreter's code paths and buffers.
    await _client(url, -1, warmup_s, time.monotonic(),
                  LoadResult(clients=1, seconds=warmup_s))
  result.rss_start_mb = result.rss_peak_mb = _rss_mb(process.pid)
  cpu_start = _cpu_seconds(process.pid)
  stop = asyncio.Event()
  sampler = asyncio.create_task(_sample_rss(process.pid, result, stop))
  started = time.monotonic()
  for _ in range(rounds):
    round_start = time.monotonic()
    # Pages arrive over the first second, not all in the same millisecond.
    tasks = [asyncio.create_task(_client(
        url, i, seconds, round_start + i / max(clients, 1), result))
             for i in range(clients)]
    done, pending = await asyncio.wait(tasks, timeout=seconds + 2 + grace_s)
    for task in pending:
      task.cancel()
      result.client_exceptions.append('client did not finish in time')
    for task in done:
      if not task.cancelled() and task.exception() is not None:
        result.client_exceptions.append(repr(task.exception()))
    await asyncio.sleep(0.5)  # Let the server drop the closed sessions.
    result.rss_after_rounds_mb.append(_rss_mb(process.pid))
  result.wall_s = time.monotonic() - started
  stop.set()
  await sampler
  result.rss_end_mb = result.rss_after_rounds_mb[-1]
  result.server_cpu_s = _cpu_seconds(process.pid) - cpu_start
  result.scores_expected = rounds * clients * _expected_scores(seconds, hello)
  return result


def _expected_scores(seconds: float, hello: dict[str, Any]) -> int:
  """Scores messages one page should get: the server's throttle replayed.

  After each frame the server sends the latest clip's scores if that clip
  starts at least `scores_interval_ms` after the last one sent.
  """
  interval = serve.ServerSettings.scores_interval_ms
  clip, stride = hello['clip_duration_ms'], hello['clip_stride_ms']
  count, last = 0, None
  frames = int(seconds * 1000 // _FRAME_MS)
  for k in range(1, frames + 1):
    end_ms = k * _FRAME_MS
    if end_ms < clip:
      continue
    latest = (end_ms - clip) // stride * stride
    if last is None or latest - last >= interval:
      count, last = count + 1, latest
  return count


def run_load(graph: str, *, labels: str | None = None, clients: int = 50,
             seconds: float = 30.0, grace_s: float = 30.0,
             warmup_s: float = 2.0, num_threads: int = 1, rounds: int = 1,
             max_connections: int | None = None,
             extra_flags: Sequence[str] = ()) -> LoadResult:
  """Starts the server on a free loopback port, loads it, stops it.

  Args:
    graph: the .tflite model.
    labels: its labels file (default: beside it).
    clients: simultaneous pages.
    seconds: audio each page streams, in real time.
    grace_s: extra time allowed past the streams before giving up.
    warmup_s: one page streams this long before the measurement.
    num_threads: the server's --num_threads.
    rounds: the clients come this many times, one round after the other
      (memory after each round shows whether sessions leak).
    max_connections: the server's limit; default: one more than `clients`
      (the warm-up page and every client fit).
    extra_flags: more `kws_jax.serve` flags.
  """
  port = _free_port()
  command = [sys.executable, '-m', 'kws_jax.serve', f'--graph={graph}',
             '--host=127.0.0.1', f'--port={port}',
             f'--max_connections={max_connections or clients + 1}',
             f'--num_threads={num_threads}',
             *([f'--labels={labels}'] if labels else []), *extra_flags]
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
  with tempfile.TemporaryFile('w+') as log:
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
      result = asyncio.run(_load(port, process, clients, seconds, grace_s,
                                 warmup_s, rounds))
    except BaseException:
      log.seek(0)
      sys.stderr.write(log.read()[-5000:])
      raise
    finally:
      process.send_signal(signal.SIGINT)
      try:
        process.wait(timeout=30)
      except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
  result.server_exit_code = process.returncode
  return result


def export_fresh_model(architecture: str, folder: str) -> str:
  """Exports a freshly initialised `architecture` model; returns its path."""
  from kws_jax import config_files  # pylint: disable=g-import-not-at-top
  from kws_jax import config_validation  # pylint: disable=g-import-not-at-top
  from kws_jax import train  # pylint: disable=g-import-not-at-top
  from tflite_export import convert  # pylint: disable=g-import-not-at-top

  config = config_validation.validate_config(
      config_files.load_config(f'configs/{architecture}.py', root=str(REPO)))
  labels = labels_lib.prepare_words_list(config.wanted_words)
  _, eval_def, params, batch_stats = train.create_model(
      config, len(labels), config.seed)
  path = os.path.join(folder, f'{architecture}.tflite')
  convert.export_tflite(params, batch_stats, eval_def, config, labels, path,
                        verify=False)
  return path


def _define_flags() -> None:
  flags.DEFINE_string('graph', None, 'The .tflite model to serve (default: '
                      'the shipped model).')
  flags.DEFINE_string('labels', None, 'Its labels file (default: beside it).')
  flags.DEFINE_string('architecture', None, 'Instead of --graph: export a '
                      'fresh model of this architecture (configs/<name>.py).')
  flags.DEFINE_integer('clients', 50, 'Simultaneous simulated pages.')
  flags.DEFINE_float('seconds', 30.0, 'Audio each page streams, in real '
                     'time.')
  flags.DEFINE_float('grace_s', 30.0, 'Time allowed past the streams.')
  flags.DEFINE_integer('num_threads', 1, "The server's --num_threads.")
  flags.DEFINE_integer('rounds', 2, 'Times the clients come, one round '
                       'after the other (a leak shows as growth per round).')
  flags.DEFINE_integer('max_connections', None, "The server's "
                       '--max_connections (default: all clients fit).')
  flags.DEFINE_string('output_json', None, 'Also write the figures here.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  with tempfile.TemporaryDirectory() as folder:
    if f.architecture:
      graph = export_fresh_model(f.architecture, folder)
    else:
      graph = f.graph or inference.SHIPPED_MODEL
    result = run_load(graph, labels=f.labels, clients=f.clients,
                      seconds=f.seconds, grace_s=f.grace_s,
                      num_threads=f.num_threads, rounds=f.rounds,
                      max_connections=f.max_connections)
  summary = {'model': f'fresh {f.architecture}' if f.architecture else
             (f.graph or 'shipped'), **result.summary()}
  text = json.dumps(summary, indent=2)
  print(text)
  if f.output_json:
    pathlib.Path(f.output_json).write_text(text + '\n')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
