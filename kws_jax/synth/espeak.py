"""eSpeak NG through its C library: an engine and a pronouncer.

eSpeak NG is loaded once per process with ctypes (the `espeakng-loader`
wheel, which bundles library and voices, else Debian's `libespeak-ng1`) and
used in synchronous mode: `EspeakEngine` speaks every English accent in
every human-sounding voice variant (formant synthesis), and `pronounce`
reads a word as IPA, which `kws_jax.synth.confusables` uses to keep only
made-up words that sound like no real one.
"""

import ctypes
import ctypes.util
import functools
import os
import re
from typing import Sequence

import numpy as np

from kws_jax import audio_io
from kws_jax.synth import voices as voices_lib

# eSpeak NG's English accents (its voice names; 'en' is British English).
ESPEAK_ACCENTS = ('en-us', 'en', 'en-gb-scotland', 'en-gb-x-rp',
                  'en-gb-x-gbclan', 'en-gb-x-gbcwmd', 'en-us-nyc', 'en-029')
# Variants (voices/!v/) that are effects rather than voices: robots, echo,
# demonic, the speed test; the rest are used.
ESPEAK_EFFECT_VARIANTS = frozenset({
    'Demonic', 'UniRobot', 'anikaRobot', 'croak', 'fast', 'Mr serious',
    'Tweaky', *(f'robosoft{s}' for s in ('', 2, 3, 4, 5, 6, 7, 8))})
# The accents whose readings decide which made-up words are kept
# (confusables.pseudo_words): the first judges onsets and rimes.
PRONOUNCING_ACCENTS = ('en', 'en-us')
# eSpeak's defaults: 175 words per minute, pitch and pitch range 50 of 0-99.
_ESPEAK_WPM = 175
_ESPEAK_PITCH_SPAN = 30  # pitch = 50 +- this.
# espeak_ng API constants (speak_lib.h).
_ESPEAK_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_PHONEMES_IPA = 2
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4


class _EspeakLibrary:
  """libespeak-ng through ctypes, synchronous mode (one per process)."""

  def __init__(self, library_path: str, data_path: str | None):
    try:
      self._lib = ctypes.CDLL(library_path)
    except OSError as e:
      raise voices_lib.EngineUnavailableError(
          f'eSpeak NG library {library_path} cannot be loaded ({e}); '
          f'reinstall it: {voices_lib.INSTALL_HINTS["espeak"]}') from e
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
      raise voices_lib.EngineUnavailableError(
          f'eSpeak NG ({library_path}) could not start with its data '
          f'{data_path or "(default path)"}; reinstall it: '
          f'{voices_lib.INSTALL_HINTS["espeak"]}')
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
    # Optional dependency (the [synth] extra); the system library also works.
    import espeakng_loader  # pylint: disable=g-import-not-at-top
  except ImportError:
    espeakng_loader = None
  if espeakng_loader is not None:
    return _EspeakLibrary(espeakng_loader.get_library_path(),
                          espeakng_loader.get_data_path())
  library = ctypes.util.find_library('espeak-ng')
  if library is None:
    raise voices_lib.EngineUnavailableError(
        f'Engine "espeak" (eSpeak NG) is not installed: '
        f'{voices_lib.INSTALL_HINTS["espeak"]}')
  return _EspeakLibrary(library, None)


def pronounce(word: str) -> tuple[str, ...]:
  """`word` as eSpeak NG reads it in each of PRONOUNCING_ACCENTS (IPA)."""
  library = _espeak_library()
  return tuple(library.phonemes(accent, word)
               for accent in PRONOUNCING_ACCENTS)


def _slug(text: str) -> str:
  return re.sub(r'[^a-z0-9]+', '', text.lower())


class EspeakEngine(voices_lib.Engine):
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

  def voices(self) -> list[voices_lib.Voice]:
    return [voices_lib.Voice(self.name, f'{accent}+{variant}',
                             f'{_slug(accent)}-{_slug(variant)}')
            for accent in self._accents for variant in self._variants]

  def speak(self, voice: voices_lib.Voice,
            performance: voices_lib.Performance) -> tuple[np.ndarray, int]:
    audio = self._library.speak(
        voice.name, performance.text,
        rate_wpm=round(_ESPEAK_WPM * performance.rate),
        pitch=round(50 + _ESPEAK_PITCH_SPAN * performance.pitch),
        pitch_range=round(20 + 70 * performance.expressiveness))
    return (audio.astype(np.float32) / audio_io.PCM16_SCALE,
            self._library.sample_rate)
