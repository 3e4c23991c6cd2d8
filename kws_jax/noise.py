"""Noise that is not speech: generated noise for training, and the silence
stress set.

Real silence is not quiet: the official test set's `_silence_` clips reach
an RMS of 0.1-0.3 of full scale, while the shipped background recordings are
at 0.002-0.006. `generated_noise` makes noise of other colours and mains
hum for training (the levels are set by the augmentation), and
`silence_stress_set` makes a fixed set of one-second non-speech clips over
the whole range of levels, from very quiet room tone to loud noise, with
hum, clicks and DC offset, to measure silence recall where the test split's
silence (the quiet recordings at random volumes) cannot.

All functions are NumPy and draw from the generator they are given.
"""

import numpy as np

from kws_jax import audio_io

# RMS levels of the stress set, full scale 1: very quiet room tone to loud.
STRESS_LEVELS = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3)
# The stress set's own seed, apart from any training seed.
_STRESS_SEED = 3031
# Windows drawn from a recording before it is left out as silent.
_WINDOW_TRIES = 10


def coloured_noise(rng: np.random.Generator, num_samples: int,
                   exponent: float) -> np.ndarray:
  """float32 [num_samples] noise of power spectrum ~ 1/f^exponent, RMS 1.

  exponent 0 is white noise, 1 pink, 2 brown (red).
  """
  spectrum = np.fft.rfft(rng.standard_normal(num_samples))
  freqs = np.fft.rfftfreq(num_samples)
  freqs[0] = freqs[1] if num_samples > 1 else 1.0
  spectrum *= freqs ** (-exponent / 2)
  spectrum[0] = 0.0  # No DC.
  out = np.fft.irfft(spectrum, num_samples)
  return _unit_rms(out)


def hum(rng: np.random.Generator, num_samples: int, sample_rate: int,
        mains_hz: float) -> np.ndarray:
  """float32 [num_samples] mains hum, RMS 1: the fundamental and harmonics
  up to 1 kHz at random amplitudes and phases, over a little white noise."""
  t = np.arange(num_samples) / sample_rate
  out = 0.05 * rng.standard_normal(num_samples)
  for harmonic in range(1, int(1000 // mains_hz) + 1):
    amplitude = rng.uniform(0.1, 1.0) / harmonic ** rng.uniform(0.5, 1.5)
    out += amplitude * np.sin(2 * np.pi * mains_hz * harmonic * t +
                              rng.uniform(0, 2 * np.pi))
  return _unit_rms(out)


def clicks(rng: np.random.Generator, num_samples: int,
           sample_rate: int) -> np.ndarray:
  """float32 [num_samples] a few short decaying clicks over faint noise,
  RMS 1 (keyboard, a tap on the microphone)."""
  out = 0.01 * rng.standard_normal(num_samples)
  length = int(0.005 * sample_rate)
  decay = np.exp(-np.arange(length) / (0.001 * sample_rate))
  for _ in range(rng.integers(1, 6)):
    start = rng.integers(0, num_samples - length)
    out[start:start + length] += (rng.choice((-1, 1)) * rng.uniform(0.3, 1) *
                                  decay * rng.standard_normal(length))
  return _unit_rms(out)


def generated_noise(sample_rate: int, seconds: float, seed: int = 0,
                    dc_offset: bool = False) -> list[np.ndarray]:
  """Noise recordings to add to training's background pool: white, pink and
  brown noise and 50 and 60 Hz hum, `seconds` each, RMS 1 (the
  augmentation sets the level); with `dc_offset`, also a constant (a
  microphone's DC offset: silence that is an offset alone, words over one)."""
  rng = np.random.default_rng([seed, 17])
  n = int(sample_rate * seconds)
  out = [coloured_noise(rng, n, 0.0), coloured_noise(rng, n, 1.0),
         coloured_noise(rng, n, 2.0), hum(rng, n, sample_rate, 50.0),
         hum(rng, n, sample_rate, 60.0)]
  if dc_offset:
    out.append(np.ones(n, np.float32))
  return out


def silence_stress_set(background_clips: list[np.ndarray], sample_rate: int,
                       num_samples: int) -> tuple[np.ndarray, list[str]]:
  """The silence stress set: fixed non-speech clips at every level.

  Each source at each of `STRESS_LEVELS` (RMS, full scale 1): one random
  window of each background recording, white, pink and brown noise, 50 and
  60 Hz hum, and clicks; and a DC offset of each level's size alone and
  under pink noise. Clips are clipped to [-1, 1]. The set depends only on
  the recordings, the sample rate and the clip length.

  Returns:
    (int16 [N, num_samples] clips, N names such as 'pink@0.1' or
    'background2@0.003').
  """
  rng = np.random.default_rng(_STRESS_SEED)
  sources: list[tuple[str, np.ndarray]] = []
  for i, clip in enumerate(background_clips):
    if len(clip) < num_samples or not np.any(clip):
      continue
    for _ in range(_WINDOW_TRIES):  # A window that is not digital silence.
      start = rng.integers(0, len(clip) - num_samples + 1)
      window = clip[start:start + num_samples]
      if np.any(window):
        sources.append((f'background{i}', _unit_rms(window)))
        break
  sources += [
      ('white', coloured_noise(rng, num_samples, 0.0)),
      ('pink', coloured_noise(rng, num_samples, 1.0)),
      ('brown', coloured_noise(rng, num_samples, 2.0)),
      ('hum50', hum(rng, num_samples, sample_rate, 50.0)),
      ('hum60', hum(rng, num_samples, sample_rate, 60.0)),
      ('clicks', clicks(rng, num_samples, sample_rate)),
  ]
  clips, names = [], []
  for level in STRESS_LEVELS:
    for name, source in sources:
      clips.append(level * source)
      names.append(f'{name}@{level:g}')
    clips.append(np.full(num_samples, level, np.float32))
    names.append(f'dc@{level:g}')
    clips.append(level + 0.3 * level * coloured_noise(rng, num_samples, 1.0))
    names.append(f'dc+pink@{level:g}')
  return audio_io.to_int16(np.clip(np.stack(clips), -1.0, 1.0)), names


def _unit_rms(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  rms = np.sqrt(np.mean(x ** 2))
  return (x / rms if rms > 0 else x).astype(np.float32)
