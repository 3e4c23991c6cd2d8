"""What each synthetic clip will be, drawn before any audio is made.

`SynthesisOptions` holds the clip format and the ranges drawn from;
`plan_word` turns (seed, word, clip index) into a `Job`: voice, text,
rate, pitch, loudness, placement, room and noise. A clip's plan depends
on nothing else, so a folder can grow or be finished after an interruption
and get the same clips.
"""

import dataclasses
import math
import re
import zlib

import numpy as np

from kws_jax import audio_io
from kws_jax import rooms
from kws_jax.synth import voices as voices_lib

# Endings that change the intonation the engines give a single word: a
# statement, an exclamation (stressed, falling), a question (rising).
EMPHASES = ('', '.', '!', '?')
# Margin left free at each edge of the clip; the word fits in the rest.
EDGE_MARGIN_MS = 50.0


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
  # The training augmentation's rooms, up to a living room (0.7 s).
  rt60_s_range: tuple[float, float] = (rooms.MIN_RT60_S, 0.7)
  drr_db_range: tuple[float, float] = rooms.DRR_DB
  noise_probability: float = 0.0
  snr_db_range: tuple[float, float] = (5.0, 25.0)

  @property
  def num_samples(self) -> int:
    return audio_io.samples_per_clip(self.sample_rate, self.clip_duration_ms)

  def validate(self) -> None:
    """Raises ValueError naming the first setting that makes no sense."""
    if self.sample_rate <= 0:
      raise ValueError(f'sample_rate must be positive, got {self.sample_rate}')
    if self.clip_duration_ms <= 2 * EDGE_MARGIN_MS + 100:
      raise ValueError('clip_duration_ms must exceed '
                       f'{2 * EDGE_MARGIN_MS + 100:g} ms to hold a word, got '
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
  voice: voices_lib.Voice
  clip_number: int
  performance: voices_lib.Performance
  loudness_dbfs: float
  offset: float
  reverb: tuple[float, float] | None
  noise: tuple[float, int] | None
  seed: int

  @property
  def relpath(self) -> str:
    return f'{self.word}/{self.voice.voice_id}_nohash_{self.clip_number}.wav'


def check_word(word: str) -> str:
  """`word` lower-cased; raises ValueError if it cannot be a folder name."""
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


def plan_word(word: str, count: int,
              voices_by_engine: dict[str, list[voices_lib.Voice]],
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
  word = check_word(word)
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
    performance = voices_lib.Performance(
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
