r"""Keyword spotting on the local microphone, in the terminal.

    python -m kws_jax.listen                   # the shipped model
    python -m kws_jax.listen --graph=model.tflite --labels=labels.txt \
        --device=2                             # or part of a device's name
    python -m kws_jax.listen --list_devices

Captures audio with `sounddevice` (PortAudio), the optional extra `listen`
(`pip install 'kws-jax[listen]'`), and runs the same
`streaming.StreamingRecognizer` as the live web app (kws_jax/serve.py),
printing each detection with its time and score. When the device cannot
record at the model's rate, its own rate is resampled here.
"""

import dataclasses
import datetime
import importlib
import queue
import sys
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np
from scipy import signal

from kws_jax.runtime import streaming

# Give up when the device sends nothing for this long.
STALL_TIMEOUT_S = 5.0
INSTALL_HINT = ("pip install 'kws-jax[listen]' (or pip install sounddevice)")
PORTAUDIO_HINT = ('apt-get install libportaudio2 on Debian/Ubuntu, '
                  'brew install portaudio on macOS')


class ListenError(RuntimeError):
  """Listening cannot start or go on; the message says why and what to do."""


def import_sounddevice(
    importer: Callable[[str], ModuleType] = importlib.import_module
) -> ModuleType:
  """Imports `sounddevice`, turning its failures into clear `ListenError`s."""
  try:
    return importer('sounddevice')
  except ImportError:
    raise ListenError('Listening needs the sounddevice package: '
                      f'{INSTALL_HINT}.') from None
  except OSError as e:
    # sounddevice raises OSError when the PortAudio library is missing.
    raise ListenError(f'sounddevice cannot load PortAudio ({e}): install it '
                      f'({PORTAUDIO_HINT}).') from None


@dataclasses.dataclass(frozen=True)
class InputDevice:
  index: int
  name: str
  channels: int
  default_rate: float


def input_devices(sd: ModuleType) -> list[InputDevice]:
  """The devices PortAudio can record from."""
  try:
    devices = sd.query_devices()
  except Exception as e:  # pylint: disable=broad-except
    raise ListenError(f'Cannot list audio devices: {e}') from e
  return [InputDevice(i, str(d['name']), int(d['max_input_channels']),
                      float(d['default_samplerate']))
          for i, d in enumerate(devices) if d['max_input_channels'] > 0]


def _no_device_message(sd: ModuleType) -> str:
  return ('No audio input device found: plug in or enable a microphone '
          '(on Linux, `arecord -l` lists what ALSA sees). '
          f'PortAudio sees {len(sd.query_devices())} device(s), none with '
          'inputs.')


def format_devices(sd: ModuleType) -> str:
  """A table of the input devices, the default one marked with '*'."""
  devices = input_devices(sd)
  if not devices:
    return _no_device_message(sd)
  default = _default_input(sd)
  lines = ['Input devices (use --device=INDEX or part of a name):']
  for d in devices:
    mark = '*' if d.index == default else ' '
    lines.append(f'{mark} {d.index:3d}  {d.name}  ({d.channels} ch, '
                 f'{d.default_rate:g} Hz)')
  return '\n'.join(lines)


def _default_input(sd: ModuleType) -> int | None:
  try:
    default = sd.default.device[0]
  except (AttributeError, IndexError, TypeError):
    return None
  return None if default is None or int(default) < 0 else int(default)


def choose_device(sd: ModuleType, device: str | None) -> InputDevice:
  """The input device named by `--device`: an index, part of a name, or
  None for the system's default input.

  Raises:
    ListenError: no input device, or none (or several) match.
  """
  devices = input_devices(sd)
  if not devices:
    raise ListenError(_no_device_message(sd))
  if device is None or not str(device).strip():
    default = _default_input(sd)
    for d in devices:
      if d.index == default:
        return d
    return devices[0]
  device = str(device).strip()
  if device.isdigit():
    for d in devices:
      if d.index == int(device):
        return d
    raise ListenError(f'No input device with index {device}.\n'
                      f'{format_devices(sd)}')
  matches = [d for d in devices if device.lower() in d.name.lower()]
  if len(matches) != 1:
    what = 'No' if not matches else 'More than one'
    raise ListenError(f'{what} input device matches {device!r}.\n'
                      f'{format_devices(sd)}')
  return matches[0]


def choose_rate(sd: ModuleType, device: InputDevice, rate: int) -> int:
  """`rate` if the device records at it, else the device's own rate."""
  try:
    sd.check_input_settings(device=device.index, channels=1,
                            samplerate=rate, dtype='float32')
    return rate
  except Exception:  # pylint: disable=broad-except
    logging.info('%s cannot record at %d Hz; resampling from %g Hz.',
                 device.name, rate, device.default_rate)
    return int(round(device.default_rate))


class StreamResampler:
  """Resamples a stream chunk by chunk, keeping state between chunks.

  A low-pass FIR (when the rate goes down) then linear interpolation; the
  output does not depend on how the input is cut. Good enough for speech,
  and no extra latency beyond the filter's (num_taps - 1) / 2 samples.
  """

  def __init__(self, input_rate: int, output_rate: int, num_taps: int = 63):
    if input_rate <= 0 or output_rate <= 0:
      raise ValueError(f'Sample rates must be positive, got {input_rate} and '
                       f'{output_rate}.')
    self.input_rate = int(input_rate)
    self.output_rate = int(output_rate)
    self._step = self.input_rate / self.output_rate
    self._taps = None
    if self.output_rate < self.input_rate:
      # Cut below the new Nyquist frequency, with room for the transition.
      self._taps = signal.firwin(num_taps, 0.45 * self.output_rate,
                                 fs=self.input_rate)
      self._state = np.zeros(num_taps - 1)
    self._last = 0.0  # The previous filtered sample.
    self._position = 0.0  # Of the next output, from the next chunk's start.

  def process(self, chunk: np.ndarray) -> np.ndarray:
    """float [n] at input_rate -> float32 [m] at output_rate."""
    chunk = np.asarray(chunk, np.float64).reshape(-1)
    if self.input_rate == self.output_rate:
      return chunk.astype(np.float32)
    if not chunk.shape[0]:
      return np.zeros(0, np.float32)
    if self._taps is not None:
      chunk, self._state = signal.lfilter(self._taps, 1.0, chunk,
                                          zi=self._state)
    last_index = chunk.shape[0] - 1
    count = 0
    if self._position <= last_index:
      count = int(np.floor((last_index - self._position) / self._step)) + 1
    positions = self._position + self._step * np.arange(count)
    # Index 0 of `extended` is the previous chunk's last sample.
    extended = np.concatenate([[self._last], chunk])
    out = np.interp(positions + 1, np.arange(extended.shape[0]), extended)
    self._position += self._step * count - chunk.shape[0]
    self._last = chunk[-1]
    return out.astype(np.float32)


def format_detection(detection: streaming.Detection,
                     now: datetime.datetime | None = None) -> str:
  """'12:03:04  yes          0.93  at 12.34 s' (clock, label, score, time)."""
  now = now or datetime.datetime.now()
  return (f'{now:%H:%M:%S}  {detection.label:<12s} {detection.score:5.2f}  '
          f'at {detection.time_ms / 1000:.2f} s')


def recognize_blocks(recognizer: streaming.StreamingRecognizer,
                     blocks: Iterable[np.ndarray], input_rate: int,
                     write: Callable[[str], Any] = print
                     ) -> list[streaming.Detection]:
  """Feeds audio blocks to the recogniser and writes each detection.

  Args:
    recognizer: a fresh recogniser.
    blocks: float audio [n] or [n, channels] (mixed down to mono) at
      `input_rate`.
    input_rate: Hz of the blocks; resampled to the recogniser's rate.
    write: takes each detection's line.

  Returns:
    All detections, in time order.
  """
  resampler = StreamResampler(input_rate, recognizer.sample_rate)
  found = []
  for block in blocks:
    block = np.asarray(block, np.float32)
    if block.ndim == 2:
      block = block.mean(axis=1)
    for detection in recognizer.process(resampler.process(block)):
      found.append(detection)
      write(format_detection(detection))
  return found


def microphone_blocks(sd: ModuleType, device: InputDevice, rate: int,
                      block_ms: float,
                      stall_timeout_s: float = STALL_TIMEOUT_S
                      ) -> Iterator[np.ndarray]:
  """Yields float32 [n] mono blocks from the device until its stream stops.

  Raises:
    ListenError: the stream cannot be opened, or sends nothing for
      `stall_timeout_s`.
  """
  blocks: queue.Queue[np.ndarray] = queue.Queue()
  overflows = [0]

  def callback(indata, frames, time, status):  # PortAudio's thread.
    del frames, time
    if status:
      overflows[0] += 1
    blocks.put(np.array(indata[:, 0], np.float32))

  try:
    stream = sd.InputStream(
        device=device.index, channels=1, samplerate=rate, dtype='float32',
        blocksize=streaming.ms_to_samples(block_ms, rate), callback=callback)
  except Exception as e:  # pylint: disable=broad-except
    raise ListenError(f'Cannot record from {device.name} at {rate} Hz: '
                      f'{e}') from e
  with stream:
    while stream.active or not blocks.empty():
      try:
        yield blocks.get(timeout=stall_timeout_s)
      except queue.Empty:
        if not stream.active:
          break
        raise ListenError(f'{device.name} sent no audio for '
                          f'{stall_timeout_s:g} s.') from None
  if overflows[0]:
    logging.warning('Audio input overflowed %d times: blocks were lost.',
                    overflows[0])


def listen(sd: ModuleType, model: streaming.LoadedModel,
           device: str | None = None, block_ms: float = 100.0,
           write: Callable[[str], Any] = print,
           **recognizer_settings: Any) -> list[streaming.Detection]:
  """Listens on a device and writes detections until the stream ends.

  Args:
    sd: the `sounddevice` module (or a stand-in).
    model: the classifier, from `streaming.load_model`.
    device: `--device`: index, part of a name, or None for the default.
    block_ms: audio per block read from the device.
    write: takes each output line.
    **recognizer_settings: `StreamingRecognizer` settings (clip_stride_ms,
      average_window_ms, detection_threshold, suppression_ms,
      minimum_count).

  Raises:
    ListenError: see `choose_device` and `microphone_blocks`.
  """
  chosen = choose_device(sd, device)
  rate = choose_rate(sd, chosen, model.sample_rate)
  recognizer = streaming.StreamingRecognizer(
      model.predict_fn, model.labels, sample_rate=model.sample_rate,
      clip_duration_ms=model.clip_duration_ms, **recognizer_settings)
  words = [label for label in model.labels
           if not (label.startswith('_') and label.endswith('_'))]
  write(f'Listening on {chosen.name} at {rate} Hz for: {", ".join(words)}'
        ' (Ctrl+C to stop)')
  return recognize_blocks(
      recognizer, microphone_blocks(sd, chosen, rate, block_ms), rate, write)


def _define_flags() -> None:
  # Defined only when run as a program: the streaming tools use the same
  # names, and absl refuses duplicates in one process.
  flags.DEFINE_string('graph', None,
                      'TFLite model; default: the shipped model.')
  flags.DEFINE_string('labels', None,
                      'Labels file of --graph; default: the one beside it.')
  flags.DEFINE_string('device', None,
                      'Input device: index or part of its name (see '
                      '--list_devices); default: the system default.')
  flags.DEFINE_bool('list_devices', False, 'List input devices and exit.')
  flags.DEFINE_float('block_ms', 100.0, 'Audio read per block, ms.')
  streaming.define_smoothing_flags()
  flags.adopt_module_key_flags(streaming)  # Listed by --help.
  flags.DEFINE_integer('num_threads', 1, 'CPU threads for the model.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  try:
    sd = import_sounddevice()
    if f.list_devices:
      print(format_devices(sd))
      return
    choose_device(sd, f.device)  # Fails before the model is loaded.
    model = streaming.load_model(f.graph or None, f.labels or None,
                                 f.num_threads)
    smoothing, source = streaming.smoothing_from_flags(model, f)
    print(f'Smoothing: {smoothing.describe()} ({source}).', flush=True)
    found = listen(sd, model, f.device, f.block_ms,
                   write=lambda line: print(line, flush=True),
                   clip_stride_ms=f.clip_stride_ms,
                   **dataclasses.asdict(smoothing))
  except (ListenError, ValueError) as e:  # ModelError, bad smoothing file.
    print(f'kws_jax.listen: {e}', file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt:
    print('Stopped.')
    return
  print(f'The audio stream ended; {len(found)} detection(s).')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
