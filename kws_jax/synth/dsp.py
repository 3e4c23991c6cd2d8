"""Signal processing of a spoken word: trim, fit, place, room, noise.

Pure NumPy functions of float audio [T] (no engine, no files): what turns
an engine's utterance into a clip. The synthetic rooms draw from the same
ranges as the training augmentation (`kws_jax.rooms`).
"""

import fractions
import math

import numpy as np
from scipy import signal

from kws_jax import rooms

# Silence trimming: 10 ms frames, quieter than this below the loudest frame
# is silence; this much is kept on each side.
_TRIM_FRAME_MS = 10.0
_TRIM_THRESHOLD_DB = -45.0
_TRIM_MARGIN_MS = 30.0
# Room impulse responses: reflections start after a pre-delay and fade in,
# in milliseconds here.
_REVERB_PREDELAY_MS = tuple(1000 * s for s in rooms.PREDELAY_S)
_REVERB_FADE_IN_MS = 1000 * rooms.FADE_IN_S


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
