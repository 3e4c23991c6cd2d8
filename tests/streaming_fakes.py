"""Tiny synthetic speech data and a stub model for the streaming tests.

A "word" is a 1 s clip holding a tone from `TONE_START_MS` to `TONE_END_MS`;
each word has its own pitch. `ToneModel` recognises a word when at least 60%
of its tone (at the nominal loudness) lies in the clip, so the right answers
are known exactly.
"""

import os
import subprocess
import sys

import numpy as np
import soundfile as sf

LABELS = ['_silence_', '_unknown_', 'yes', 'no']
# Pitches in Hz; 'bed' and 'cat' are not wanted words, so they are unknown.
PITCHES = {'yes': 600.0, 'no': 1200.0, 'bed': 2400.0, 'cat': 3000.0}
LABEL_OF_WORD = {'yes': 'yes', 'no': 'no', 'bed': '_unknown_',
                 'cat': '_unknown_'}
TONE_START_MS = 200.0
TONE_END_MS = 600.0
TONE_AMPLITUDE = 0.5
CLIP_MS = 1000.0


def tone_word(word: str, sample_rate: int, duration_ms: float = CLIP_MS,
              amplitude: float = TONE_AMPLITUDE) -> np.ndarray:
  """A word clip, float32 [duration_ms * sample_rate / 1000]."""
  n = int(round(duration_ms * sample_rate / 1000))
  t = np.arange(n) / sample_rate
  audio = np.zeros(n, np.float32)
  on = (t * 1000 >= TONE_START_MS) & (t * 1000 < TONE_END_MS)
  audio[on] = amplitude * np.sin(2 * np.pi * PITCHES[word] * t[on])
  return audio


def place_words(words_at_ms: dict[float, str], duration_ms: float,
                sample_rate: int) -> np.ndarray:
  """A stream with word clips starting at the given times (ms)."""
  audio = np.zeros(int(round(duration_ms * sample_rate / 1000)), np.float32)
  for start_ms, word in words_at_ms.items():
    clip = tone_word(word, sample_rate)
    start = int(round(start_ms * sample_rate / 1000))
    end = min(start + clip.shape[0], audio.shape[0])
    audio[start:end] += clip[:end - start]
  return audio


class ToneModel:
  """Stub classifier: which word's tone fills the clip, by pitch.

  Scores are 0.01 for every label but the recognised one (or `_silence_`),
  which gets the rest (they sum to one). Counts its calls.
  """

  def __init__(self, sample_rate: int, clip_ms: float = CLIP_MS,
               labels=tuple(LABELS)):
    self.sample_rate = sample_rate
    self.labels = list(labels)
    self.calls = 0
    clip_samples = int(round(clip_ms * sample_rate / 1000))
    self._clip_samples = clip_samples
    t = np.arange(clip_samples) / sample_rate
    # Columns: cos and sin of each word's pitch; |projection| / that of a
    # whole nominal tone is the share of the tone in the clip.
    self._words = list(PITCHES)
    phases = 2 * np.pi * np.outer(t, [PITCHES[w] for w in self._words])
    self._basis = np.concatenate([np.cos(phases), np.sin(phases)],
                                 axis=1).astype(np.float32)
    self._full = self._magnitudes(tone_word('yes', sample_rate, clip_ms))[0]

  def _magnitudes(self, clip: np.ndarray) -> np.ndarray:
    projection = clip @ self._basis
    return np.hypot(projection[:len(self._words)],
                    projection[len(self._words):])

  def __call__(self, clip: np.ndarray) -> np.ndarray:
    self.calls += 1
    assert clip.shape == (self._clip_samples,), clip.shape
    assert clip.dtype == np.float32
    shares = self._magnitudes(clip) / self._full
    best = int(np.argmax(shares))
    label = (LABEL_OF_WORD[self._words[best]] if shares[best] >= 0.6 else
             '_silence_')
    scores = np.full(len(self.labels), 0.01, np.float32)
    scores[self.labels.index(label)] = 1.0 - 0.01 * (len(self.labels) - 1)
    return scores


class TemptedToneModel(ToneModel):
  """ToneModel that says yes weakly (0.6) and hears every non-command word
  as no (0.8): one threshold for all must stay over 0.8, and misses yes."""

  def __call__(self, clip: np.ndarray) -> np.ndarray:
    scores = super().__call__(clip)
    top = self.labels[int(np.argmax(scores))]
    if top in ('yes', '_unknown_'):
      heard, score = ('yes', 0.6) if top == 'yes' else ('no', 0.8)
      scores = np.zeros(len(self.labels), np.float32)
      scores[self.labels.index(heard)] = score
      scores[self.labels.index('_silence_')] = 1.0 - score
    return scores


def write(path, audio, sample_rate):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  sf.write(path, audio, sample_rate, subtype='PCM_16')


def make_dataset(root, sample_rate: int, clips_per_word: int = 4) -> str:
  """A folder in Speech Commands layout with tone words and noise.

  Half of each word's clips are in testing_list.txt (listed as .wav though
  the 'bed' clips are FLAC); the other half are training clips whose tone
  is the wrong word's, so using them would show.
  """
  data_dir = os.path.join(root, 'data')
  rng = np.random.default_rng(0)
  testing = []
  for word in PITCHES:
    ext = '.flac' if word == 'bed' else '.wav'
    for i in range(clips_per_word):
      name = f'{i:08x}_nohash_0{ext}'
      is_test = i % 2 == 0
      tone = word if is_test else ('no' if word == 'yes' else 'yes')
      amplitude = TONE_AMPLITUDE * (0.9 + 0.2 * rng.random())
      write(os.path.join(data_dir, word, name),
            tone_word(tone, sample_rate, amplitude=amplitude), sample_rate)
      if is_test:
        testing.append(f'{word}/{name[:-len(ext)]}.wav')
  with open(os.path.join(data_dir, 'testing_list.txt'), 'w') as f:
    f.write('\n'.join(testing) + '\n')
  noise_dir = os.path.join(data_dir, '_background_noise_')
  write(os.path.join(noise_dir, 'white.wav'),
        (rng.uniform(-1, 1, 10 * sample_rate) * 0.5).astype(np.float32),
        sample_rate)
  t = np.arange(7 * sample_rate) / sample_rate
  write(os.path.join(noise_dir, 'hum.wav'),
        (0.8 * np.sin(2 * np.pi * 100 * t)).astype(np.float32), sample_rate)
  return data_dir


def run_tool_with_tone_model(module: str, args: list[str],
                             sample_rate: int, model_path: str = '',
                             model_class: str = 'ToneModel') -> str:
  """Runs a tool's `main` in a subprocess with `ToneModel` as its model.

  The tool's flags are parsed for real; only `streaming.load_model` is
  replaced, so no trained model is needed. `model_path` plays the model's
  file (its `<stem>_smoothing.json` is read as for a real model);
  `model_class` names the stub (`ToneModel`, `TemptedToneModel`). Returns
  stdout.
  """
  tests_dir = os.path.dirname(os.path.abspath(__file__))
  code = f"""
import importlib, sys
sys.path.insert(0, {tests_dir!r})
from absl import app
from kws_jax.runtime import streaming
import streaming_fakes
model = getattr(streaming_fakes, {model_class!r})({sample_rate})
streaming.load_model = lambda *args, **kwargs: streaming.LoadedModel(
    model, streaming_fakes.LABELS, {sample_rate}, streaming_fakes.CLIP_MS,
    model_path={model_path!r},
    smoothing=streaming.read_smoothing({model_path!r}) if {model_path!r}
    else None)
tool = importlib.import_module({module!r})
tool._define_flags()
app.run(tool.main, argv=[{module!r}] + {args!r})
"""
  result = subprocess.run([sys.executable, '-c', code], check=True,
                          capture_output=True, text=True,
                          cwd=os.path.dirname(tests_dir))
  return result.stdout
