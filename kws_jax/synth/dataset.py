r"""A Speech Commands folder of synthetic words, written whole and resumable.

`synthesize_dataset` plans every clip (`kws_jax.synth.plan`), renders the
missing ones (`kws_jax.synth.render`), in worker processes if asked, and
writes

  <out>/<word>/<voice>_nohash_<n>.wav      16-bit mono, `clip_duration_ms` long

where `<voice>` names engine, voice and variant (`espeak-enus-f3`,
`piper-joe-sp112`, `flite-slt`), so the speaker split keeps each voice's
clips together. `<out>` also gets empty `validation_list.txt` and
`testing_list.txt` (a folder with split lists puts every unlisted clip into
training, so synthetic clips never reach validation or test), the settings
(`synthesis_settings.json`) and one row per clip with everything drawn for it
(`synthesis_manifest.csv`). Existing clips are kept unless `overwrite`;
files are written atomically.
"""

import csv
import dataclasses
import glob
import io
import json
import multiprocessing
import os
import subprocess
import time
from typing import Any, Iterable, Iterator, Sequence

from absl import logging
import numpy as np

from kws_jax import audio_io
from kws_jax import files
from kws_jax.synth import engines as engines_lib
from kws_jax.synth import plan
from kws_jax.synth import render
from kws_jax.synth import voices as voices_lib

SETTINGS_FILE = 'synthesis_settings.json'
MANIFEST_FILE = 'synthesis_manifest.csv'
# Empty split lists: the loader then puts every clip into training.
SPLIT_LISTS = ('validation_list.txt', 'testing_list.txt')

_MANIFEST_FIELDS = ('path', 'word', 'voice', 'engine', 'engine_voice',
                    'speed_perturbation', 'text', 'rate', 'pitch',
                    'expressiveness', 'loudness_dbfs', 'rt60_s', 'drr_db',
                    'snr_db', 'word_ms', 'refits', 'cropped')

# Per-process state of the rendering workers, set by `_init_worker`.
_WORKER: dict[str, Any] = {}


def _init_worker(engine_options: dict[str, dict[str, Any]],
                 options: plan.SynthesisOptions, out_dir: str,
                 background: np.ndarray | None, overwrite: bool) -> None:
  _WORKER.clear()
  _WORKER.update(engine_options=engine_options, options=options,
                 out_dir=out_dir, background=background, overwrite=overwrite,
                 engines={})


def _render_job(job: plan.Job) -> render.RenderResult:
  """Renders and writes one clip in a worker; never raises for one clip."""
  path = os.path.join(_WORKER['out_dir'], job.relpath)
  if not _WORKER['overwrite'] and os.path.exists(path):
    return render.RenderResult(job.relpath, job.voice.engine, skipped=True)
  built = _WORKER['engines']
  name = job.voice.engine
  try:
    if name not in built:
      built[name] = engines_lib.create_engine(
          name, **_WORKER['engine_options'].get(name, {}))
    clip, result = render.render_clip(built[name], job, _WORKER['options'],
                                      _WORKER['background'])
    audio_io.write_wav(path, clip, _WORKER['options'].sample_rate)
  except (RuntimeError, ValueError, OSError,
          subprocess.SubprocessError) as e:
    return render.RenderResult(job.relpath, name,
                               error=f'{type(e).__name__}: {e}')
  return result


def _remove_partial_files(out_dir: str, words: Iterable[str]) -> int:
  """Deletes temporary files an interrupted run left (hidden '.*.tmp')."""
  removed = 0
  for word in words:
    for path in glob.glob(os.path.join(glob.escape(out_dir), word,
                                       '.*.tmp')):
      os.remove(path)
      removed += 1
  return removed


def load_background(background_dir: str, sample_rate: int) -> np.ndarray:
  """All WAV/FLAC files in `background_dir`, concatenated: float32 [M]."""
  paths = sorted(p for p in glob.glob(os.path.join(glob.escape(background_dir),
                                                   '*'))
                 if p.lower().endswith(audio_io.AUDIO_EXTENSIONS))
  if not paths:
    raise FileNotFoundError(f'No .wav or .flac files in {background_dir}.')
  return np.concatenate([audio_io.read_audio(p, sample_rate) for p in paths])


def _settings_record(engine_names: Sequence[str],
                     engine_options: dict[str, dict[str, Any]],
                     options: plan.SynthesisOptions, seed: int,
                     background_dir: str | None) -> dict[str, Any]:
  return {
      'seed': seed, 'engines': list(engine_names),
      'engine_options': engine_options,
      'options': dataclasses.asdict(options),
      'background_dir': os.path.abspath(background_dir) if background_dir
                        else None,
  }


def _check_settings(out_dir: str, settings: dict[str, Any],
                    overwrite: bool) -> None:
  path = os.path.join(out_dir, SETTINGS_FILE)
  if os.path.isfile(path) and not overwrite:
    with open(path, encoding='utf-8') as f:
      old = json.load(f)
    # JSON turns tuples into lists; compare in JSON form.
    if old != json.loads(json.dumps(settings)):
      raise ValueError(
          f'{out_dir} holds clips made with other settings ({path}); '
          'choose a new --out or pass --overwrite to render every clip anew.')
  files.write_atomic(path, json.dumps(settings, indent=2, sort_keys=True))


def _write_manifest(out_dir: str, jobs: Sequence[plan.Job],
                    results: dict[str, render.RenderResult]) -> None:
  """Writes one row per clip on disk: what was drawn and how it came out.

  Rows of clips kept from an earlier run, and of words not planned this
  time, are carried over from the previous manifest.
  """
  path = os.path.join(out_dir, MANIFEST_FILE)
  old_rows = {}
  if os.path.isfile(path):
    with open(path, encoding='utf-8', newline='') as f:
      old_rows = {r['path']: r for r in csv.DictReader(f)}
  planned_words = {job.word for job in jobs}
  rows = [r for r in old_rows.values() if r.get('word') not in planned_words]
  for job in jobs:
    result = results.get(job.relpath)
    if result is None or result.error:
      continue  # Not reached (interrupted) or failed: no file.
    if result.skipped and job.relpath in old_rows:
      rows.append(old_rows[job.relpath])
      continue
    p = job.performance
    rendered = not result.skipped
    rows.append({
        'path': job.relpath, 'word': job.word, 'voice': job.voice.voice_id,
        'engine': job.voice.engine, 'engine_voice': job.voice.label,
        'speed_perturbation': job.voice.speed_perturbation, 'text': p.text,
        'rate': f'{(result.rate if rendered else p.rate):.3f}',
        'pitch': f'{p.pitch:.3f}', 'expressiveness': f'{p.expressiveness:.3f}',
        'loudness_dbfs': f'{job.loudness_dbfs:.1f}',
        'rt60_s': f'{job.reverb[0]:.3f}' if job.reverb else '',
        'drr_db': f'{job.reverb[1]:.1f}' if job.reverb else '',
        'snr_db': f'{job.noise[0]:.1f}' if job.noise else '',
        'word_ms': f'{result.word_ms:.0f}' if rendered else '',
        'refits': result.refits if rendered else '',
        'cropped': int(result.cropped) if rendered else '',
    })
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=_MANIFEST_FIELDS)
  writer.writeheader()
  writer.writerows(rows)
  # As bytes: the csv module's '\r\n' row ends are written as they are.
  files.write_atomic(path, text.getvalue().encode('utf-8'))


def synthesize_dataset(words: Sequence[str], out_dir: str, *, count: int,
                       engines: Sequence[str] = ('auto',),
                       engine_options: dict[str, dict[str, Any]] | None = None,
                       options: plan.SynthesisOptions = plan.SynthesisOptions(),
                       seed: int = 0, background_dir: str | None = None,
                       num_workers: int = 1,
                       overwrite: bool = False) -> dict[str, Any]:
  """Writes `count` synthetic clips of each word into `out_dir`.

  Args:
    words: words to speak; each becomes a folder.
    out_dir: created if needed.
    count: clips per word.
    engines: engine names, or ('auto',) for every one installed.
    engine_options: {engine: keyword options of its constructor}, e.g.
      {'piper': {'model_paths': [...]}}.
    options: clip format and variation ranges.
    seed: base random seed.
    background_dir: folder of noise recordings (for
      `options.noise_probability`).
    num_workers: rendering processes (1: in this process).
    overwrite: render clips that exist already again.

  Returns:
    Summary: {'written', 'skipped', 'failed', 'refit', 'cropped',
    'per_word', 'per_engine', 'voices', 'seconds', 'word_ms'
    (min/mean/max), 'errors' (first few)}.
  """
  started = time.time()
  options.validate()
  if count < 0:
    raise ValueError(f'count must be >= 0, got {count}')
  if num_workers < 1:
    raise ValueError(f'num_workers must be >= 1, got {num_workers}')
  words = [plan.check_word(w) for w in words]
  if not words:
    raise ValueError('No words given.')
  if len(set(words)) != len(words):
    raise ValueError(f'Words repeat: {words}')
  engine_options = engine_options or {}
  voices_by_engine = engines_lib.resolve_engines(engines, engine_options)
  background = None
  if options.noise_probability > 0:
    if not background_dir:
      raise ValueError('noise_probability > 0 needs a background_dir.')
    background = load_background(background_dir, options.sample_rate)
  logging.info('Engines: %s.', ', '.join(
      f'{e} ({len(v)} voices)' for e, v in voices_by_engine.items()))

  os.makedirs(out_dir, exist_ok=True)
  settings = _settings_record(list(voices_by_engine), engine_options, options,
                              seed, background_dir)
  _check_settings(out_dir, settings, overwrite)
  for name in SPLIT_LISTS:
    list_path = os.path.join(out_dir, name)
    if not os.path.exists(list_path):
      files.write_atomic(list_path, '')
  for word in words:
    os.makedirs(os.path.join(out_dir, word), exist_ok=True)
  stale = _remove_partial_files(out_dir, words)
  if stale:
    logging.info('Removed %d partial files of an interrupted run.', stale)

  jobs = [job for word in words
          for job in plan.plan_word(word, count, voices_by_engine, options,
                                    seed, background is not None)]
  init_args = (engine_options, options, out_dir, background, overwrite)
  results: dict[str, render.RenderResult] = {}
  last_log = time.time()

  def consume(outcomes: Iterator[render.RenderResult]) -> None:
    nonlocal last_log
    for result in outcomes:
      results[result.relpath] = result
      if result.error:
        logging.warning('%s: %s', result.relpath, result.error)
      if time.time() - last_log > 10:
        last_log = time.time()
        logging.info('%d of %d clips done.', len(results), len(jobs))

  try:
    if num_workers == 1:
      _init_worker(*init_args)
      consume(_render_job(job) for job in jobs)
    else:
      # 'spawn': the engines' libraries start fresh in each worker.
      context = multiprocessing.get_context('spawn')
      with context.Pool(num_workers, _init_worker, init_args) as pool:
        consume(pool.imap_unordered(_render_job, jobs, chunksize=4))
  finally:
    # After Ctrl-C too: no temporary files, and the manifest of what exists.
    _remove_partial_files(out_dir, words)
    _write_manifest(out_dir, jobs, results)

  summary = _summarize(jobs, results, voices_by_engine, time.time() - started)
  logging.info(
      'Wrote %d clips (%d existed, %d failed; %d spoken faster to fit, %d '
      'cropped) in %.1f s: %s.', summary['written'], summary['skipped'],
      summary['failed'], summary['refit'], summary['cropped'],
      summary['seconds'], summary['per_word'])
  if summary['failed'] and not summary['written'] and not summary['skipped']:
    raise RuntimeError(f'Every clip failed; first errors: '
                       f'{summary["errors"]}')
  return summary


def _summarize(jobs: Sequence[plan.Job],
               results: dict[str, render.RenderResult],
               voices_by_engine: dict[str, list[voices_lib.Voice]],
               seconds: float) -> dict[str, Any]:
  done = [r for r in results.values() if not r.skipped and not r.error]
  per_word: dict[str, int] = {}
  per_engine: dict[str, int] = {}
  for job in jobs:
    result = results.get(job.relpath)
    if result is not None and not result.error:
      per_word[job.word] = per_word.get(job.word, 0) + 1
      per_engine[job.voice.engine] = per_engine.get(job.voice.engine, 0) + 1
  word_ms = [r.word_ms for r in done]
  return {
      'written': len(done),
      'skipped': sum(r.skipped for r in results.values()),
      'failed': sum(bool(r.error) for r in results.values()),
      'refit': sum(r.refits > 0 for r in done),
      'cropped': sum(r.cropped for r in done),
      'per_word': per_word, 'per_engine': per_engine,
      'voices': {e: len(v) for e, v in voices_by_engine.items()},
      'word_ms': ((min(word_ms), float(np.mean(word_ms)), max(word_ms))
                  if word_ms else None),
      'seconds': seconds,
      'errors': [r.error for r in results.values() if r.error][:5],
  }
