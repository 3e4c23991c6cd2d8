"""Tests for kws_jax.listen, with a stand-in for `sounddevice`.

This machine has no audio device (and maybe no PortAudio): the messages for
that are tested as they are, and the capture loop with `FakeSoundDevice`,
whose input stream plays a known array through the real callback path.
"""

import datetime
import importlib.util
import pathlib
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

from kws_jax import listen
from kws_jax.runtime import streaming

from test_serve import LABELS
from test_serve import ToneClassifier
from test_serve import expected_detections
from test_serve import tone_stream
from test_serve import WORDS_AT_MS

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLE_RATE = 16000


class FakeStream:
  """Plays `audio` through the callback in blocks, from a thread."""

  def __init__(self, audio, blocksize, callback, stall=False):
    self._audio = audio
    self._blocksize = blocksize
    self._callback = callback
    self._stall = stall
    self._stop = threading.Event()
    self.active = False

  def _play(self):
    for start in range(0, self._audio.shape[0], self._blocksize):
      if self._stop.is_set():
        break
      block = self._audio[start:start + self._blocksize, None]
      self._callback(block, block.shape[0], None, None)
    if not self._stall:
      self.active = False

  def __enter__(self):
    self.active = True
    self._thread = threading.Thread(target=self._play, daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *unused):
    self._stop.set()
    self._thread.join()
    self.active = False


class FakeSoundDevice(types.SimpleNamespace):
  """The parts of `sounddevice` that listen.py uses."""

  def __init__(self, devices, default_input=0, rates=(16000, 48000),
               audio_at=None, stall=False, fail_open=False):
    super().__init__()
    self._fail_open = fail_open
    self._devices = devices
    self.default = types.SimpleNamespace(device=[default_input, -1])
    self._rates = rates
    self._audio_at = audio_at or (lambda rate: np.zeros(rate, np.float32))
    self._stall = stall
    self.opened = []

  def query_devices(self):
    return list(self._devices)

  def check_input_settings(self, device, channels, samplerate, dtype):
    del device, channels, dtype
    if samplerate not in self._rates:
      raise ValueError('Invalid sample rate')

  def InputStream(self, device, channels, samplerate, dtype, blocksize,
                  callback):  # pylint: disable=invalid-name
    assert channels == 1 and dtype == 'float32'
    if self._fail_open:
      raise RuntimeError('Error opening InputStream: Device unavailable')
    self.opened.append((device, samplerate, blocksize))
    return FakeStream(self._audio_at(samplerate), blocksize, callback,
                      self._stall)


def _device(name, inputs, rate=48000.0):
  return {'name': name, 'max_input_channels': inputs,
          'max_output_channels': 2, 'default_samplerate': rate}


DEVICES = [_device('HDMI out', 0), _device('USB Mic', 1),
           _device('Built-in Microphone', 2, 44100.0),
           _device('USB Headset', 1)]


def _model():
  return streaming.LoadedModel(predict_fn=ToneClassifier(), labels=LABELS,
                               sample_rate=SAMPLE_RATE,
                               clip_duration_ms=1000.0)


def _words(rate):
  return tone_stream(WORDS_AT_MS, 5000.0, sample_rate=rate)


# --- Missing pieces: clear messages ---------------------------------------


def test_missing_sounddevice_says_how_to_install():

  def importer(name):
    raise ModuleNotFoundError(f"No module named '{name}'")

  with pytest.raises(listen.ListenError) as error:
    listen.import_sounddevice(importer)
  assert "pip install 'kws-jax[listen]'" in str(error.value)


def test_missing_portaudio_says_how_to_install():

  def importer(name):
    raise OSError('PortAudio library not found')

  with pytest.raises(listen.ListenError) as error:
    listen.import_sounddevice(importer)
  assert 'PortAudio library not found' in str(error.value)
  assert 'libportaudio2' in str(error.value)


def _audio_here() -> str:
  """What this machine lacks: 'package', 'portaudio', 'device' or ''."""
  if importlib.util.find_spec('sounddevice') is None:
    return 'package'
  try:
    import sounddevice  # pylint: disable=g-import-not-at-top
  except OSError:
    return 'portaudio'
  if not any(d['max_input_channels'] > 0 for d in sounddevice.query_devices()):
    return 'device'
  return ''


def test_command_line(tmp_path):
  # Run side by side: each process pays for its imports.
  commands = {
      'help': ['--helpshort'],
      'listen': [f'--graph={tmp_path / "no_model.tflite"}'],
  }
  processes = {name: subprocess.Popen(
      [sys.executable, '-m', 'kws_jax.listen', *args], cwd=REPO,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, args in commands.items()}
  results = {name: (p.communicate(timeout=120), p.returncode)
             for name, p in processes.items()}

  (help_text, _), _ = results['help']
  for flag in ('--graph', '--labels', '--device', '--list_devices',
               '--block_ms', '--average_window_ms', '--detection_threshold',
               '--suppression_ms', '--clip_stride_ms', '--minimum_count'):
    assert flag in help_text, flag

  (_, stderr), returncode = results['listen']
  missing = _audio_here()
  if not missing:
    pytest.skip('This machine has a microphone.')
  assert returncode == 1
  # The audio problem is reported before the (also missing) model.
  expected = {'package': "pip install 'kws-jax[listen]'",
              'portaudio': 'libportaudio2',
              'device': 'No audio input device found'}[missing]
  assert expected in stderr, stderr
  assert 'Traceback' not in stderr


def test_no_input_device():
  sd = FakeSoundDevice([_device('HDMI out', 0)], default_input=-1)
  with pytest.raises(listen.ListenError, match='No audio input device'):
    listen.choose_device(sd, None)
  assert 'No audio input device' in listen.format_devices(sd)


# --- Devices ---------------------------------------------------------------


def test_list_devices_shows_inputs_only_and_the_default():
  text = listen.format_devices(FakeSoundDevice(DEVICES, default_input=2))
  assert 'HDMI' not in text
  assert '*   2  Built-in Microphone  (2 ch, 44100 Hz)' in text
  assert '    1  USB Mic' in text


@pytest.mark.parametrize('device,index', [
    (None, 2), ('', 2), ('1', 1), ('3', 3), ('built-in', 2), ('MIC', None),
    ('headset', 3)])
def test_choose_device(device, index):
  sd = FakeSoundDevice(DEVICES, default_input=2)
  if index is None:
    # 'MIC' is in two names.
    with pytest.raises(listen.ListenError, match='More than one'):
      listen.choose_device(sd, device)
  else:
    assert listen.choose_device(sd, device).index == index


@pytest.mark.parametrize('device,message', [
    ('0', 'No input device with index 0'), ('9', 'index 9'),
    ('speaker', "No input device matches 'speaker'")])
def test_choose_device_refuses(device, message):
  sd = FakeSoundDevice(DEVICES)
  with pytest.raises(listen.ListenError, match=message) as error:
    listen.choose_device(sd, device)
  # The message lists what there is.
  assert 'USB Mic' in str(error.value)


def test_no_default_input_takes_the_first():
  sd = FakeSoundDevice(DEVICES, default_input=-1)
  assert listen.choose_device(sd, None).index == 1


# --- The processing loop ---------------------------------------------------


def test_listen_prints_the_words_of_the_stream():
  sd = FakeSoundDevice(DEVICES, default_input=1, audio_at=_words)
  lines = []
  found = listen.listen(sd, _model(), device='USB Mic', write=lines.append)
  want = expected_detections()
  assert found == want
  assert sd.opened == [(1, 16000, 1600)]
  assert lines[0].startswith('Listening on USB Mic at 16000 Hz for: yes, no, '
                             'up, down')
  assert len(lines) == 1 + len(want)
  for line, detection in zip(lines[1:], want):
    assert f'{detection.label} ' in line
    assert f'{detection.score:5.2f}' in line
    assert f'at {detection.time_ms / 1000:.2f} s' in line


def test_listen_resamples_a_device_that_cannot_do_the_model_rate():
  sd = FakeSoundDevice(DEVICES, default_input=2, rates=(44100,),
                       audio_at=_words)
  lines = []
  found = listen.listen(sd, _model(), write=lines.append, block_ms=50)
  assert sd.opened == [(2, 44100, 2205)]
  assert 'at 44100 Hz' in lines[0]
  want = expected_detections()
  assert [d.label for d in found] == [d.label for d in want]
  for got, expected in zip(found, want):
    assert abs(got.time_ms - expected.time_ms) <= 60


def test_listen_passes_the_settings_on():
  sd = FakeSoundDevice(DEVICES, audio_at=_words)
  # A threshold no averaged score reaches: nothing is found.
  found = listen.listen(sd, _model(), write=lambda line: None,
                        detection_threshold=0.95)
  assert not found


def test_stream_that_cannot_open_is_a_clear_error():
  sd = FakeSoundDevice(DEVICES, fail_open=True)
  with pytest.raises(listen.ListenError,
                     match='Cannot record from USB Mic at 16000 Hz: .*'
                     'Device unavailable'):
    listen.listen(sd, _model(), device='1', write=lambda line: None)


def test_stalled_stream_is_a_clear_error():
  sd = FakeSoundDevice(DEVICES, audio_at=lambda rate: np.zeros(1600),
                       stall=True)
  device = listen.choose_device(sd, '1')
  blocks = listen.microphone_blocks(sd, device, 16000, 100.0,
                                    stall_timeout_s=0.2)
  assert next(blocks).shape == (1600,)
  with pytest.raises(listen.ListenError, match='sent no audio'):
    next(blocks)


def test_recognize_blocks_mixes_down_to_mono():
  audio = _words(SAMPLE_RATE)
  stereo = np.stack([audio, audio], axis=1)
  blocks = [stereo[i:i + 1000] for i in range(0, stereo.shape[0], 1000)]
  recognizer = streaming.StreamingRecognizer(ToneClassifier(), LABELS)
  found = listen.recognize_blocks(recognizer, blocks, SAMPLE_RATE,
                                  write=lambda line: None)
  assert found == expected_detections()


def test_format_detection():
  line = listen.format_detection(
      streaming.Detection(time_ms=12340.0, label='yes', score=0.934),
      now=datetime.datetime(2024, 1, 2, 3, 4, 5))
  assert line == '03:04:05  yes           0.93  at 12.34 s'


# --- Resampling ------------------------------------------------------------


@pytest.mark.parametrize('rate', [8000, 22050, 44100, 48000])
def test_stream_resampler_gives_the_sine_whatever_the_chunks(rate):
  t = np.arange(rate) / rate
  sine = 0.5 * np.sin(2 * np.pi * 440 * t)
  whole = listen.StreamResampler(rate, SAMPLE_RATE).process(sine)
  chunked = listen.StreamResampler(rate, SAMPLE_RATE)
  sizes = [128, 7, 1000, 333, 0, 1]
  parts, start, k = [], 0, 0
  while start < rate:
    size = sizes[k % len(sizes)]
    parts.append(chunked.process(sine[start:start + size]))
    start += size
    k += 1
  parts = np.concatenate(parts)
  assert abs(whole.shape[0] - SAMPLE_RATE) <= 1
  assert parts.shape == whole.shape
  np.testing.assert_allclose(parts, whole, atol=1e-5)
  # Against the ideal 16 kHz sine, after the filter's delay.
  delay = 31 / rate if rate > SAMPLE_RATE else 0.0
  n = np.arange(whole.shape[0])
  ideal = 0.5 * np.sin(2 * np.pi * 440 * (n / SAMPLE_RATE - delay))
  error = np.abs(whole - ideal)[200:-200]
  assert error.max() < 0.01, error.max()


def test_stream_resampler_passes_the_model_rate_through():
  audio = np.random.default_rng(0).uniform(-1, 1, 1000).astype(np.float32)
  np.testing.assert_array_equal(
      listen.StreamResampler(16000, 16000).process(audio), audio)


def test_stream_resampler_removes_what_cannot_be_kept():
  # 7 kHz fits under 8 kHz; 12 kHz would alias down to 4 kHz.
  rate = 48000
  t = np.arange(rate) / rate
  for freq, keep in ((1000, True), (12000, False)):
    out = listen.StreamResampler(rate, SAMPLE_RATE).process(
        np.sin(2 * np.pi * freq * t))
    rms = np.sqrt(np.mean(out[200:-200]**2))
    assert (rms > 0.6) == keep, (freq, rms)
    if not keep:
      assert rms < 0.05
