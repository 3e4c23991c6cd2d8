"""Tests for the synthesizer (kws_jax.synth) and its command line.

The planning and rendering tests need no speech engine (the signal
processing is tested in test_synth_dsp.py); the dataset
tests run once per engine installed here (`pip install -e .[synth]`,
`apt-get install flite`) and are skipped, naming the install command, for
the others.
"""

import csv
import dataclasses
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from kws_jax.synth import dataset
from kws_jax.synth import dsp
from kws_jax.synth import engines
from kws_jax.synth import espeak
from kws_jax.synth import plan
from kws_jax.synth import render
from kws_jax.synth import voices

RATE = 16000
_NAME = re.compile(r'^([a-z0-9-]+)_nohash_(\d+)\.wav$')
# Quietest clip RMS accepted: far below the -40 dBFS words are made at.
_RMS_FLOOR_DBFS = -55.0
# Quick settings: little reverb tail to compute, every path still taken.
_OPTIONS = plan.SynthesisOptions(
    reverb_probability=0.5, rt60_s_range=(0.1, 0.3), noise_probability=0.5,
    max_offset_ms=50.0)
_WORDS = ('lights', 'pause')


def _engine_or_skip(name: str) -> voices.Engine:
  try:
    return engines.create_engine(name)
  except voices.EngineUnavailableError as e:
    pytest.skip(f'engine {name} is not installed here: {e}')


def _write_background(folder) -> str:
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  sf.write(os.path.join(folder, 'noise.wav'),
           0.1 * rng.standard_normal(3 * RATE), RATE, subtype='PCM_16')
  return str(folder)


def _spectrum(clip: np.ndarray) -> np.ndarray:
  """Normalised long-term log spectrum: 64 bands of 125 Hz."""
  frames = clip[:len(clip) // 256 * 256].reshape(-1, 256)
  power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(256)))**2, axis=0)
  bands = power[:256 // 2].reshape(64, 2).sum(axis=1)
  log = 10 * np.log10(bands / bands.sum() + 1e-12)
  return log - log.mean()


class _ToneEngine(voices.Engine):
  """Speaks a 'word' of 300 ms / rate between silences; no TTS needed."""

  name = 'espeak'

  def __init__(self, ignore_rate: bool = False, seconds: float = 0.3):
    self._ignore_rate = ignore_rate
    self._seconds = seconds

  def voices(self):
    return [voices.Voice('espeak', f'tone+{f}', f'tone-{f}')
            for f in (200, 300, 500)]

  def speak(self, voice, performance):
    rate = 22050
    seconds = self._seconds / (1.0 if self._ignore_rate else performance.rate)
    freq = float(voice.name.split('+')[1]) * (1 + 0.1 * performance.pitch)
    t = np.arange(int(seconds * rate)) / rate
    word = 0.5 * np.sin(2 * np.pi * freq * t)
    silence = np.zeros(rate // 5)
    return np.concatenate([silence, word, silence]).astype(np.float32), rate


def _check_dataset(out, words, count, engine_prefix=''):
  """Checks layout, names and audio; returns {word: {voice: [clips]}}."""
  assert sorted(os.listdir(out)) == sorted([
      *words, 'synthesis_manifest.csv', 'synthesis_settings.json',
      'testing_list.txt', 'validation_list.txt'])
  for name in ('testing_list.txt', 'validation_list.txt'):
    assert (out / name).read_text() == ''
  clips = {}
  for word in words:
    names = sorted(os.listdir(out / word))
    assert len(names) == count, names
    clips[word] = {}
    for name in names:
      match = _NAME.match(name)
      assert match, f'{name} is not <voice>_nohash_<n>.wav'
      assert match.group(1).startswith(engine_prefix)
      info = sf.info(str(out / word / name))
      assert (info.samplerate, info.channels, info.frames, info.subtype) == (
          RATE, 1, RATE, 'PCM_16'), info
      audio, _ = sf.read(str(out / word / name), dtype='float32')
      assert dsp.dbfs(dsp.rms(audio)) > _RMS_FLOOR_DBFS, name
      assert np.max(np.abs(audio)) <= 1.0
      clips[word].setdefault(match.group(1), []).append(audio)
  with open(out / 'synthesis_manifest.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  assert sorted(r['path'] for r in rows) == sorted(
      f'{w}/{n}' for w in words for n in os.listdir(out / w))
  return clips


# ---------------------------------------------------------------------------
# Planning and the voices' names.


def test_voice_ids_are_file_name_safe():
  voice = voices.Voice('espeak', 'en-gb-x-rp+Mr serious', 'engbxrp-Mr_s')
  assert voice.voice_id == 'espeak-engbxrp-mrs'
  voice = voices.Voice('piper', '/x/en_US-joe-medium.onnx', 'joe',
                       speed_perturbation=0.94)
  assert voice.voice_id == 'piper-joe-sp094'


def test_plan_is_deterministic_balanced_and_grows():
  by_engine = {'espeak': _ToneEngine().voices(),
               'flite': [voices.Voice('flite', 'slt', 'slt')]}
  jobs = plan.plan_word('lights', 12, by_engine, _OPTIONS, seed=3,
                        has_noise=True)
  again = plan.plan_word('lights', 20, by_engine, _OPTIONS, seed=3,
                         has_noise=True)
  other = plan.plan_word('lights', 12, by_engine, _OPTIONS, seed=4,
                         has_noise=True)
  assert again[:12] == jobs
  assert other != jobs
  assert [j.voice.engine for j in jobs] == ['espeak', 'flite'] * 6
  assert len({j.relpath for j in again}) == 20
  espeak_ids = [j.voice.voice_id for j in jobs if j.voice.engine == 'espeak']
  assert sorted(espeak_ids) == sorted(
      [v.voice_id for v in by_engine['espeak']] * 2)
  assert sorted(j.clip_number for j in jobs if j.voice.engine == 'flite') == (
      list(range(6)))
  assert {j.performance.text for j in again} <= {
      'lights' + e for e in plan.EMPHASES}


def test_words_must_be_folder_names():
  with pytest.raises(ValueError, match='folder name'):
    plan.plan_word('../up', 1, {'e': _ToneEngine().voices()}, _OPTIONS,
                   0, False)


def test_options_are_validated():
  with pytest.raises(ValueError, match='rate_range'):
    plan.SynthesisOptions(rate_range=(1.2, 0.8)).validate()
  with pytest.raises(ValueError, match='reverb_probability'):
    plan.SynthesisOptions(reverb_probability=2).validate()


# ---------------------------------------------------------------------------
# Fitting a word into the clip (a stand-in engine).


def test_long_word_is_spoken_faster_to_fit():
  engine = _ToneEngine(seconds=1.5)
  job = plan.plan_word('lights', 1, {'espeak': engine.voices()},
                       _OPTIONS, 0, False)[0]
  clip, result = render.render_clip(engine, job, _OPTIONS)
  assert clip.shape == (RATE,)
  assert result.refits >= 1 and not result.cropped
  assert result.word_ms <= 900


def test_word_that_cannot_speed_up_is_cropped_with_a_fade():
  engine = _ToneEngine(ignore_rate=True, seconds=1.5)
  job = plan.plan_word('lights', 1, {'espeak': engine.voices()},
                       _OPTIONS, 0, False)[0]
  clip, result = render.render_clip(engine, job, _OPTIONS)
  assert result.cropped and result.refits == render._REFIT_TRIES
  assert clip.shape == (RATE,)
  loud = np.flatnonzero(np.abs(clip) > 1e-4)
  # 900 ms of word inside 50 ms margins (reverb may ring into them).
  assert loud[0] >= 0.05 * RATE - 1 and loud[-1] - loud[0] >= 0.85 * RATE


def test_dataset_layout_with_a_stand_in_engine(tmp_path, monkeypatch):
  monkeypatch.setattr(engines, 'create_engine',
                      lambda name, **kw: _ToneEngine())
  out = tmp_path / 'synth'
  background = _write_background(tmp_path / 'noise')
  (out / 'pause').mkdir(parents=True)
  (out / 'pause' / '.x.wav.abc.tmp').write_bytes(b'half')
  summary = dataset.synthesize_dataset(
      _WORDS, str(out), count=5, engines=['espeak'], options=_OPTIONS,
      background_dir=background)
  assert summary['written'] == 10 and summary['failed'] == 0
  clips = _check_dataset(out, _WORDS, 5, 'espeak-tone-')
  assert len(clips['lights']) == 3  # Voices take turns.
  # Growing the folder keeps what is there.
  summary = dataset.synthesize_dataset(
      _WORDS, str(out), count=6, engines=['espeak'], options=_OPTIONS,
      background_dir=background)
  assert (summary['written'], summary['skipped']) == (2, 10)
  _check_dataset(out, _WORDS, 6, 'espeak-tone-')
  with pytest.raises(ValueError, match='other settings'):
    dataset.synthesize_dataset(_WORDS, str(out), count=6,
                               engines=['espeak'], seed=1,
                               options=_OPTIONS, background_dir=background)


class _InterruptedEngine(_ToneEngine):
  """Acts as if Ctrl-C came during its third word."""

  def __init__(self):
    super().__init__()
    self.calls = 0

  def speak(self, voice, performance):
    self.calls += 1
    if self.calls == 3:
      raise KeyboardInterrupt
    return super().speak(voice, performance)


def test_interrupted_run_leaves_whole_files_and_resumes(tmp_path,
                                                        monkeypatch):
  engine = _InterruptedEngine()
  monkeypatch.setattr(engines, 'create_engine', lambda name, **kw: engine)
  out = tmp_path / 'synth'
  options = plan.SynthesisOptions()
  with pytest.raises(KeyboardInterrupt):
    dataset.synthesize_dataset(['up'], str(out), count=4,
                               engines=['espeak'], options=options)
  assert not [n for n in os.listdir(out / 'up') if n.startswith('.')]
  _check_dataset(out, ['up'], 2)
  summary = dataset.synthesize_dataset(['up'], str(out), count=4,
                                       engines=['espeak'], options=options)
  assert (summary['written'], summary['skipped']) == (2, 2)
  _check_dataset(out, ['up'], 4)


# ---------------------------------------------------------------------------
# Missing engines.


def test_missing_engines_say_how_to_install(monkeypatch):
  monkeypatch.setattr(engines.shutil, 'which', lambda name: None)
  with pytest.raises(voices.EngineUnavailableError,
                     match='apt-get install flite'):
    engines.create_engine('flite')
  monkeypatch.setitem(sys.modules, 'piper', None)
  with pytest.raises(voices.EngineUnavailableError,
                     match='pip install piper-tts'):
    engines.create_engine('piper')
  monkeypatch.setitem(sys.modules, 'espeakng_loader', None)
  monkeypatch.setattr(espeak.ctypes.util, 'find_library',
                      lambda name: None)
  espeak._espeak_library.cache_clear()
  try:
    with pytest.raises(voices.EngineUnavailableError,
                       match='pip install espeakng-loader'):
      engines.create_engine('espeak')
    with pytest.raises(voices.EngineUnavailableError,
                       match='No speech engine is installed'):
      engines.resolve_engines(['auto'])
  finally:
    espeak._espeak_library.cache_clear()


def test_command_line_names_the_missing_engine(tmp_path):
  env = dict(os.environ, PATH=str(tmp_path))  # No flite on this PATH.
  result = subprocess.run(
      [sys.executable, '-m', 'kws_jax.synthesize', '--words=up',
       f'--out={tmp_path / "o"}', '--engines=flite'],
      capture_output=True, text=True, env=env, timeout=60,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode != 0
  assert 'apt-get install flite' in result.stderr


# ---------------------------------------------------------------------------
# Real engines.


@pytest.mark.parametrize('engine_name', voices.ENGINE_NAMES)
def test_engine_writes_a_speech_commands_folder(tmp_path, engine_name):
  engine = _engine_or_skip(engine_name)
  out = tmp_path / 'synth'
  count = 4
  summary = dataset.synthesize_dataset(
      _WORDS, str(out), count=count, engines=[engine_name], options=_OPTIONS,
      background_dir=_write_background(tmp_path / 'noise'), seed=5)
  assert summary['written'] == 2 * count and summary['failed'] == 0
  clips = _check_dataset(out, _WORDS, count, f'{engine_name}-')
  assert len(clips['lights']) >= 2  # Several voices per word.

  # The same performance by two voices sounds different.
  engine_voices = engine.voices()
  job = plan.plan_word('lights', 1, {engine_name: engine_voices},
                       plan.SynthesisOptions(reverb_probability=0.0), 0,
                       False)[0]
  spectra = []
  for voice in (engine_voices[0], engine_voices[-1]):
    clip, _ = render.render_clip(
        engine, dataclasses.replace(job, voice=voice),
        plan.SynthesisOptions())
    spectra.append(_spectrum(clip))
  assert engine_voices[0].voice_id != engine_voices[-1].voice_id
  # Mean dB difference per band: 6-8 between these voices here, up to 1.4
  # between two takes of one Piper voice (it draws its own noise).
  assert np.mean(np.abs(spectra[0] - spectra[1])) > 3.0


def test_workers_write_the_same_clips_as_one_process(tmp_path):
  _engine_or_skip('espeak')
  options = plan.SynthesisOptions(reverb_probability=0.5)
  for workers in (1, 2):
    dataset.synthesize_dataset(
        ['up'], str(tmp_path / str(workers)), count=4, engines=['espeak'],
        options=options, num_workers=workers)
  names = sorted(os.listdir(tmp_path / '1' / 'up'))
  assert names == sorted(os.listdir(tmp_path / '2' / 'up'))
  for name in names:
    one, _ = sf.read(str(tmp_path / '1' / 'up' / name))
    two, _ = sf.read(str(tmp_path / '2' / 'up' / name))
    # Not bit for bit: eSpeak's waveform generator carries a little state
    # from one utterance to the next.
    np.testing.assert_allclose(dsp.rms(one), dsp.rms(two),
                               rtol=0.05)
