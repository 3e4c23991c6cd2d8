"""One synthetic clip from its plan: speak, fit, place, room, noise.

`render_clip` asks the job's engine for the word, resamples and trims it,
speaks it again faster when it is too long for the clip, sets its loudness,
places it, and adds the planned room and noise (`kws_jax.synth.dsp`).
"""

import dataclasses
import math

import numpy as np

from kws_jax import audio_io
from kws_jax.synth import dsp
from kws_jax.synth import plan
from kws_jax.synth import voices as voices_lib

# A word too long to fit is spoken again this much faster than needed, at
# most this many times, then cropped with a fade-out.
_REFIT_SPEEDUP = 1.08
_REFIT_TRIES = 2
_FADE_MS = 20.0
_PEAK_LIMIT = 0.99


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


def _spoken_word(engine: voices_lib.Engine, job: plan.Job,
                 options: plan.SynthesisOptions, rate: float) -> np.ndarray:
  performance = dataclasses.replace(job.performance, rate=rate)
  audio, rate_hz = engine.speak(job.voice, performance)
  audio = audio_io.resample(audio, rate_hz, options.sample_rate)
  audio = dsp.speed_perturb(audio, job.voice.speed_perturbation)
  return dsp.trim_silence(audio, options.sample_rate)


def render_clip(engine: voices_lib.Engine, job: plan.Job,
                options: plan.SynthesisOptions,
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
  max_word = num_samples - 2 * int(plan.EDGE_MARGIN_MS * sr / 1000)
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
    word = dsp.fade_out_crop(word, max_word, int(_FADE_MS * sr / 1000))
  result.word_ms = 1000.0 * len(word) / sr
  word_rms = dsp.rms(word)
  if word_rms < 1e-5:
    raise ValueError(f'{job.voice.voice_id} said nothing for '
                     f'{job.performance.text!r}.')
  word = word * (10**(job.loudness_dbfs / 20) / word_rms)
  offset = int(job.offset * options.max_offset_ms * sr / 1000)
  clip = dsp.place_in_clip(word, num_samples, offset)
  rng = np.random.default_rng(job.seed)
  if job.reverb is not None:
    rt60_s, drr_db = job.reverb
    clip = dsp.add_reverb(clip,
                          dsp.room_impulse_response(rng, sr, rt60_s, drr_db))
  if job.noise is not None:
    if background is None or len(background) < num_samples:
      raise ValueError('Noise was planned but there is no background audio '
                       f'of at least {num_samples} samples.')
    snr_db, start = job.noise
    start %= len(background) - num_samples + 1
    speech_rms = 10**(job.loudness_dbfs / 20)
    clip = dsp.mix_noise(clip, background[start:start + num_samples],
                         speech_rms, snr_db)
  peak = float(np.max(np.abs(clip)))
  if peak > _PEAK_LIMIT:
    clip *= _PEAK_LIMIT / peak
  result.clip_rms_dbfs = dsp.dbfs(dsp.rms(clip))
  return clip.astype(np.float32), result
