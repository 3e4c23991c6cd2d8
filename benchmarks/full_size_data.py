r"""Full-size data on one machine: preparation, start-up, throughput, memory.

The shared data holds about 13.5k clips; the full Speech Commands v0.02
about 105k. This benchmark makes a stand-in of full size from any folder in
the Speech Commands layout (mildly augmented copies of its clips, see
`make_standin`) and measures, each in a fresh Python process so that
imports, caches and peak memory count as they do for a user:

* preparation (`measure_prepare`): `input_pipeline.create_datasets` with an
  empty TFDS folder, i.e. TFDS preparation of every clip, then loading into
  memory;
* cached start-up (`measure_startup`): with the TFDS cache prepared, the
  seconds from launching `python` to (i) the data in memory and (ii) the
  first training step finished;
* throughput (`measure_throughput`): `train.train_and_evaluate` for
  `--steps` steps on the stand-in and on the small set: samples per second,
  the fraction of the training time spent waiting for the input iterator,
  and peak memory.

Targets on a 2-core machine: cached start-up (i) under 10 s; training
throughput on the full-size set within 10% of that on the small set.

Usage:
  python -m benchmarks.full_size_data --source=/tmp/kws_data
  python -m benchmarks.full_size_data \
      --source=../shared/data/speech_commands_dev.tar.gz \
      --num_clips=2000 --steps=30 --standin_dir=/tmp/kws_standin_2k \
      --workdir=/tmp/kws_bench_2k

Everything printed also goes to `<workdir>/full_size_data.json`; each
measurement's log is `<workdir>/<measurement>.log`.
"""

import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Iterator, Sequence
import zlib

from absl import app
from absl import flags
from absl import logging
import ml_collections
import numpy as np

from kws_jax import audio_io
from kws_jax import config_validation
from kws_jax import download
from kws_jax import speech_commands_builder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Written last into a finished stand-in; holds its parameters and figures.
COMPLETE_MARKER = '.standin_complete'
# Written first; a stand-in with it but without COMPLETE_MARKER is resumed.
STARTED_MARKER = '.standin_started'
# The stand-in's clips: 16-bit mono WAV of this length at the sample rate.
CLIP_DURATION_MS = 1000.0
SAMPLE_RATE = 16000
# Augmentation of copies 1, 2, ... (copy 0 is the original): a gain
# uniform in +-GAIN_DB, a time shift uniform in +-SHIFT_MS (zero padded) and
# white noise at an RMS level uniform in NOISE_DBFS.
GAIN_DB = 6.0
SHIFT_MS = 100.0
NOISE_DBFS = (-70.0, -50.0)
# The targets.
STARTUP_TARGET_SECONDS = 10.0
THROUGHPUT_TOLERANCE = 0.10
# Source clips handed to a worker at a time, and seconds between progress
# lines while the stand-in is written.
_TASK_CHUNK = 32
_PROGRESS_SECONDS = 30.0
# Files copied from the source's top level as they are (the licence of the
# recordings travels with their copies).
_TOP_LEVEL_FILES = ('LICENSE',)
# Bytes of a RIFF/WAVE header written by libsndfile for 16-bit PCM.
_WAV_HEADER_BYTES = 44


def _define_flags() -> None:
  # Defined when run as a program, not at import: the tests import this
  # module in one process with others (experiments.sweep) that define
  # --workdir as well, and absl refuses a flag defined twice.
  flags.DEFINE_string(
      'source', None, 'A folder in the Speech Commands layout, or an archive '
      '(path or URL) of one, which is extracted into <workdir>/source.')
  flags.DEFINE_string('standin_dir', '/tmp/kws_full_standin',
                      'Where the full-size stand-in is written.')
  flags.DEFINE_integer('num_clips', 105000,
                       'Word clips in the stand-in (the full v0.02 set has '
                       'about 105k).')
  flags.DEFINE_integer('seed', 0, 'Seed of the stand-in\'s augmentation.')
  flags.DEFINE_integer('workers', 2, 'Processes writing the stand-in.')
  flags.DEFINE_string('workdir', '/tmp/kws_full_bench',
                      'TFDS caches, training runs, logs and the figures.')
  flags.DEFINE_integer('steps', 300, 'Training steps timed per data set.')
  flags.DEFINE_integer('startup_runs', 3,
                       'Cached start-ups measured; the median is reported.')
  flags.DEFINE_string('config', 'configs/tc_resnet.py',
                      'Training config file; "path:arg" passes arg to its '
                      'get_config.')
  flags.DEFINE_string('small_dir', None, 'The small data set for the '
                      'throughput comparison (default: --source).')
  flags.mark_flag_as_required('source')


# --- The stand-in ------------------------------------------------------------


def copy_name(name: str, copy: int) -> str:
  """'<speaker>_nohash_<n>.flac', copy k -> '<speaker>v<k>_nohash_<n>.wav'.

  Each copy gets its own speaker id, so the hash split (`which_set`) keeps
  every clip of one stand-in speaker in one split. A name without
  '_nohash_' is taken as the speaker, with n = 0.
  """
  stem = os.path.splitext(name)[0]
  speaker, sep, rest = stem.partition('_nohash_')
  return f'{speaker}v{copy}_nohash_{rest if sep else 0}.wav'


def plan_copies(relpaths: Sequence[str], num_clips: int,
                seed: int = 0) -> dict[str, int]:
  """How many copies of each clip make `num_clips` in each word's share.

  Each word (the folder of 'word/file') gets `num_clips` times its share of
  the clips, rounded by largest remainder so the total is exact; within a
  word every clip gets the same number of copies, and the remainder goes to
  clips drawn with `seed` (so with fewer than the source's clips, a random
  subset is kept).

  Returns:
    {relpath: copies}, copies >= 0, summing to `num_clips`.
  """
  if num_clips < 0:
    raise ValueError(f'num_clips must be >= 0, got {num_clips}.')
  by_word: dict[str, list[str]] = {}
  for relpath in sorted(relpaths):
    by_word.setdefault(relpath.split('/', 1)[0], []).append(relpath)
  if not by_word:
    return {}
  words = sorted(by_word)
  sizes = np.array([len(by_word[w]) for w in words], np.float64)
  exact = num_clips * sizes / sizes.sum()
  quota = np.floor(exact).astype(np.int64)
  order = np.argsort(-(exact - quota), kind='stable')
  quota[order[:num_clips - int(quota.sum())]] += 1
  copies = {}
  for word, total in zip(words, quota):
    clips = by_word[word]
    base, extra = divmod(int(total), len(clips))
    rng = np.random.default_rng([seed, zlib.crc32(word.encode(
        'utf-8', 'surrogateescape'))])
    for rank, index in enumerate(rng.permutation(len(clips))):
      copies[clips[index]] = base + (rank < extra)
  return copies


def augment_copy(audio: np.ndarray, rng: np.random.Generator,
                 sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """A mildly changed copy of a clip: gain, time shift and faint noise.

  Args:
    audio: float32 [L] in [-1, 1].
    rng: draws the gain (+-GAIN_DB), the shift (+-SHIFT_MS, zero padded)
      and the noise level (NOISE_DBFS, RMS).
    sample_rate: Hz, to turn SHIFT_MS into samples.

  Returns:
    float32 [L] in [-1, 1].
  """
  gain = 10 ** (rng.uniform(-GAIN_DB, GAIN_DB) / 20)
  max_shift = int(sample_rate * SHIFT_MS / 1000)
  shift = int(rng.integers(-max_shift, max_shift + 1))
  shifted = np.zeros_like(audio)
  if shift >= 0:
    shifted[shift:] = audio[:len(audio) - shift]
  else:
    shifted[:shift] = audio[-shift:]
  noise = 10 ** (rng.uniform(*NOISE_DBFS) / 20) * rng.standard_normal(
      len(audio))
  return np.clip(shifted * gain + noise, -1.0, 1.0).astype(np.float32)


def _copy_rng(seed: int, relpath: str, copy: int) -> np.random.Generator:
  return np.random.default_rng(
      [seed, zlib.crc32(relpath.encode('utf-8', 'surrogateescape')), copy])


def _write_copies(task: tuple[str, str, str, int, int, int]
                  ) -> tuple[int, str | None]:
  """Writes the copies of one source clip that do not exist yet.

  Returns:
    (files written, None) or (0, why the source clip is unreadable).
  """
  source, relpath, out, copies, seed, sample_rate = task
  folder, name = relpath.split('/', 1)
  todo = [(k, os.path.join(out, folder, copy_name(name, k)))
          for k in range(copies)]
  # Files are renamed into place when complete, so one that exists is done.
  todo = [(k, path) for k, path in todo if not os.path.exists(path)]
  if not todo:
    return 0, None
  try:
    audio = audio_io.read_audio(os.path.join(source, relpath), sample_rate)
  except audio_io.AudioError as e:
    return 0, str(e)
  audio = audio_io.fit_length(
      audio, int(sample_rate * CLIP_DURATION_MS / 1000))
  for k, path in todo:
    copy = audio if k == 0 else augment_copy(
        audio, _copy_rng(seed, relpath, k), sample_rate)
    audio_io.write_wav(path, copy, sample_rate)
  return len(todo), None


def _copy_file(source: str, destination: str) -> None:
  """Copies a file under a temporary name, then renames it into place.

  A destination of the same size is taken as copied (a resumed run).
  """
  if (os.path.isfile(destination) and
      os.path.getsize(destination) == os.path.getsize(source)):
    return
  temporary = os.path.join(os.path.dirname(destination),
                           f'.{os.path.basename(destination)}.tmp')
  shutil.copyfile(source, temporary)
  os.replace(temporary, destination)


def _inside(path: str, folder: str) -> bool:
  return os.path.commonpath([path, folder]) == folder


def _read_json(path: str) -> dict[str, Any] | None:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _write_json(path: str, value: Any) -> None:
  temporary = f'{path}.tmp'
  with open(temporary, 'w') as f:
    json.dump(value, f, indent=2)
    f.write('\n')
  os.replace(temporary, path)


def _start_folder(out: str, params: dict[str, Any]) -> None:
  """Makes `out` ready: new, resumed (same parameters) or emptied."""
  if os.path.isdir(out) and os.listdir(out):
    started = _read_json(os.path.join(out, STARTED_MARKER))
    if not started and not os.path.exists(os.path.join(out, COMPLETE_MARKER)):
      raise ValueError(
          f'--standin_dir={out} is a folder that holds other files, not a '
          f'stand-in ({COMPLETE_MARKER} or {STARTED_MARKER} missing); choose '
          'a new or empty folder.')
    if started and started.get('params') == params:
      logging.info('Resuming the stand-in in %s.', out)
    else:
      logging.info('Removing the stand-in in %s (other parameters).', out)
      shutil.rmtree(out)
  os.makedirs(out, exist_ok=True)
  if os.path.exists(os.path.join(out, COMPLETE_MARKER)):
    os.remove(os.path.join(out, COMPLETE_MARKER))
  _write_json(os.path.join(out, STARTED_MARKER), {'params': params})


def _remove_temporaries(out: str) -> None:
  # Left by an interrupted run; hidden, so TFDS would skip them anyway.
  for folder, _, names in os.walk(out):
    for name in names:
      if name.startswith('.') and name.endswith('.tmp'):
        os.remove(os.path.join(folder, name))


def count_standin(out: str) -> tuple[dict[str, int], int, int]:
  """({word folder: clips}, background files, bytes of all visible files)."""
  words, background, size = {}, 0, 0
  for entry in os.scandir(out):
    if entry.name.startswith('.'):
      continue
    if entry.is_file():
      size += entry.stat().st_size
      continue
    files = [f for f in os.scandir(entry.path)
             if f.is_file() and not f.name.startswith('.')]
    size += sum(f.stat().st_size for f in files)
    if entry.name.lower() == speech_commands_builder.BACKGROUND_NOISE_DIR:
      background = len(files)
    elif not entry.name.startswith('_'):
      words[entry.name] = len(files)
  return words, background, size


def make_standin(source: str, out: str, num_clips: int, seed: int = 0,
                 workers: int = 2,
                 sample_rate: int = SAMPLE_RATE) -> dict[str, Any]:
  """Writes a stand-in of `num_clips` word clips made from `source`.

  Every word clip of `source` (WAV or FLAC, in word folders: those not
  starting with '_') is copied `plan_copies` times into `out`, copy k of
  `<word>/<speaker>_nohash_<n>` as `<word>/<speaker>v<k>_nohash_<n>.wav`:
  16-bit mono WAV at `sample_rate`, fitted to CLIP_DURATION_MS; copy 0 is
  the clip itself, later copies go through `augment_copy` with a generator
  seeded by (`seed`, the clip's path, k). `_background_noise_/` and the
  licence are copied as they are; no split lists are written, so the
  stand-in is split by name hash like the full data set without lists.

  Files are written under temporary names and renamed into place, and
  `COMPLETE_MARKER` is written last: a finished stand-in with the same
  parameters is reused as it is, an interrupted one is resumed.

  Args:
    source: a folder in the Speech Commands layout.
    out: the stand-in's folder: new, empty, or a stand-in made here.
    num_clips: word clips to write.
    seed: seeds which clips get the extra copies and the augmentation.
    workers: processes writing files (1: this process).
    sample_rate: Hz of the written clips.

  Returns:
    {'clips': written word clips, 'words': {word: clips},
    'background_files', 'bytes' (all visible files in `out`), 'seconds',
    'unreadable' ([[clip, reason]]), 'reused' (True when a finished stand-in
    was found), 'source', 'num_clips', 'seed'}.

  Raises:
    FileNotFoundError: `source` is not a folder.
    ValueError: `source` has no word clips, `num_clips` < 1, `out` and
      `source` overlap, or `out` holds files that are not a stand-in.
  """
  started = time.time()
  if num_clips < 1:
    raise ValueError(f'--num_clips={num_clips}: must be at least 1.')
  if not os.path.isdir(source):
    raise FileNotFoundError(
        f'--source={source}: no such folder; give a folder in the Speech '
        'Commands layout or an archive of one.')
  source, out = os.path.realpath(source), os.path.realpath(out)
  if _inside(out, source) or _inside(source, out):
    raise ValueError(f'--standin_dir={out} and --source={source} overlap; '
                     'write the stand-in to a folder of its own.')
  params = {'source': source, 'num_clips': num_clips, 'seed': seed,
            'sample_rate': sample_rate}
  done = _read_json(os.path.join(out, COMPLETE_MARKER))
  if done and done.get('params') == params:
    logging.info('Reusing the stand-in in %s (%s).', out, COMPLETE_MARKER)
    return {**done['figures'], 'reused': True}

  clips, _ = speech_commands_builder.scan_source(source)
  if not clips:
    raise ValueError(
        f'--source={source} holds no word clips: no .wav or .flac files in '
        'folders whose names do not start with "_".')
  copies = plan_copies([c.relpath for c in clips], num_clips, seed)
  _start_folder(out, params)
  _remove_temporaries(out)
  for folder in {relpath.split('/', 1)[0] for relpath in copies}:
    os.makedirs(os.path.join(out, folder), exist_ok=True)
  tasks = [(source, relpath, out, n, seed, sample_rate)
           for relpath, n in sorted(copies.items()) if n]
  logging.info('Writing %d clips from %d of %d source clips of %s into %s '
               'with %d workers.', num_clips, len(tasks), len(clips), source,
               out, workers)
  unreadable, done_tasks, last_log = [], 0, time.time()

  def consume(results: Iterator[tuple[int, str | None]]) -> None:
    nonlocal done_tasks, last_log
    for (_, relpath, *_), (_, error) in zip(tasks, results):
      done_tasks += 1
      if error:
        logging.warning('Skipping unreadable clip %s', error)
        unreadable.append([relpath, error])
      if time.time() - last_log > _PROGRESS_SECONDS:
        last_log = time.time()
        logging.info('%d of %d source clips copied (%.0f s).', done_tasks,
                     len(tasks), last_log - started)

  if workers <= 1:
    consume(map(_write_copies, tasks))
  else:
    # 'spawn': fresh workers, also when the caller has TensorFlow's threads.
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
      # imap keeps the order, so results pair with their tasks.
      consume(pool.imap(_write_copies, tasks, chunksize=_TASK_CHUNK))

  for name in os.listdir(source):
    path = os.path.join(source, name)
    if name.lower() == speech_commands_builder.BACKGROUND_NOISE_DIR:
      os.makedirs(os.path.join(out, name), exist_ok=True)
      for recording in sorted(os.listdir(path)):
        if not recording.startswith('.') and os.path.isfile(
            os.path.join(path, recording)):
          _copy_file(os.path.join(path, recording),
                     os.path.join(out, name, recording))
    elif name in _TOP_LEVEL_FILES and os.path.isfile(path):
      _copy_file(path, os.path.join(out, name))

  words, background, size = count_standin(out)
  figures = {
      'source': source, 'num_clips': num_clips, 'seed': seed,
      'clips': sum(words.values()), 'words': words,
      'background_files': background, 'bytes': size,
      'seconds': time.time() - started, 'unreadable': unreadable,
  }
  _write_json(os.path.join(out, COMPLETE_MARKER),
              {'params': params, 'figures': figures})
  os.remove(os.path.join(out, STARTED_MARKER))
  logging.info('Stand-in: %d clips, %.2f GB, %.0f s.', figures['clips'],
               size / 1e9, figures['seconds'])
  return {**figures, 'reused': False}


# --- Measurements, each in a fresh process -----------------------------------


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads 'path/to/config.py' or 'path:arg' (arg goes to get_config).

  A relative path is looked up from the working directory, then from the
  repository.
  """
  import importlib.util  # pylint: disable=g-import-not-at-top
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    path = os.path.join(REPO, path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'--config={spec}: no such config file.')
  module_spec = importlib.util.spec_from_file_location('benchmark_config',
                                                       path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(*([arg] if arg else []))


def data_config(spec: str, data_dir: str,
                tfds_data_dir: str) -> ml_collections.ConfigDict:
  """The config reading `data_dir` as it is, prepared into `tfds_data_dir`.

  Synthetic speech is left out: what grows to full size is the recorded
  data, and the synthetic folder is the same at both sizes.
  """
  config = load_config(spec)
  config.data_url = ''
  config.data_dir = data_dir
  config.tfds_data_dir = tfds_data_dir
  config.synthetic_dir = ''
  config.synthetic_fraction = 0.0
  config.synthetic_unknown = False
  return config


def training_config(spec: str, data_dir: str, tfds_data_dir: str,
                    steps: int) -> ml_collections.ConfigDict:
  """`data_config` trained `steps` steps at its first rate, evaluating and
  saving only after the last step."""
  config = data_config(spec, data_dir, tfds_data_dir)
  config.how_many_training_steps = str(steps)
  config.learning_rate = str(config.learning_rate).split(',')[0].strip()
  config.eval_step_interval = steps
  config.save_step_interval = steps
  config.log_step_interval = 100
  return config


def peak_rss_mb() -> float:
  """This process's peak resident memory in MB.

  VmHWM, the high-water mark of this process image; ru_maxrss is a
  fallback only, since on Linux it starts from the parent's peak when the
  parent used vfork to start it.
  """
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024 / 1e6
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def _summary_figures(summary: dict[str, Any]) -> dict[str, Any]:
  return {
      'clips': {split: sum(counts.values())
                for split, counts in summary['counts'].items()},
      'counts': summary['counts'],
      'split_method': summary.get('split_method'),
      'num_skipped': summary.get('num_skipped'),
      'background_clips': summary.get('background_clips'),
      'prepare_seconds': summary.get('prepare_seconds'),
      'load_seconds': summary.get('load_seconds'),
  }


def _data_bytes(data) -> int:
  return int(sum(s.audio.nbytes for s in (data.train, data.validation,
                                           data.test)))


def _child_prepare(args: dict[str, Any]) -> dict[str, Any]:
  from kws_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  imported = time.time()
  data = input_pipeline.create_datasets(
      data_config(args['config'], args['data_dir'], args['tfds_data_dir']))
  return {'imported': imported, 'data_ready': time.time(),
          'audio_bytes': _data_bytes(data),
          'summary': _summary_figures(data.summary)}


def _child_startup(args: dict[str, Any]) -> dict[str, Any]:
  # What `python -m kws_jax.main` imports before it loads the data.
  import functools  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from kws_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  from kws_jax import train  # pylint: disable=g-import-not-at-top
  imported = time.time()
  config = config_validation.validate_config(data_config(
      args['config'], args['data_dir'], args['tfds_data_dir']))
  data = input_pipeline.create_datasets(config)
  data_ready = time.time()
  # train_and_evaluate's set-up up to its first step, without the workdir's
  # files and checkpoints: model, optimizer, jitted step, the first batch.
  train_def, _, params, batch_stats = train.create_model(
      config, len(data.labels), config.seed)
  tx = train.make_optimizer(config, config_validation.parse_schedule(config))
  state = train.new_train_state(params, batch_stats, tx, config.seed)
  step_fn = jax.jit(
      functools.partial(train.train_step, graphdef=train_def, tx=tx,
                        num_classes=len(data.labels), config=config),
      donate_argnums=0)
  batches = input_pipeline.train_iterator(data, config, start_step=1)
  batch = next(batches)
  first_batch = time.time()
  state, _ = step_fn(state, batch, jnp.asarray(data.background))
  jax.block_until_ready(state.step)
  return {'imported': imported, 'data_ready': data_ready,
          'first_batch': first_batch, 'first_step_done': time.time(),
          'audio_bytes': _data_bytes(data),
          'summary': _summary_figures(data.summary)}


def _child_throughput(args: dict[str, Any]) -> dict[str, Any]:
  from kws_jax import train  # pylint: disable=g-import-not-at-top
  config = training_config(args['config'], args['data_dir'],
                           args['tfds_data_dir'], args['steps'])
  results = train.train_and_evaluate(config, args['workdir'])
  return {'batch_size': config.batch_size,
          **{k: results.get(k) for k in (
              'steps', 'samples_per_second', 'steps_per_second',
              'input_wait_fraction', 'train_step_seconds',
              'eval_and_checkpoint_seconds', 'num_params')}}


_CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    'prepare': _child_prepare, 'startup': _child_startup,
    'throughput': _child_throughput}
# Runs in the fresh process; the clock is read before any other import.
_CHILD_CODE = (
    'import time; started = time.time(); import sys; '
    'from benchmarks import full_size_data; '
    'full_size_data.child_main(sys.argv[1], sys.argv[2], sys.argv[3], '
    'started)')


def child_main(kind: str, args_json: str, result_path: str,
               started: float) -> None:
  """A measurement process: runs `kind`, writes its figures as JSON."""
  flags.FLAGS(['full_size_data'], known_only=True)
  logging.set_verbosity(logging.INFO)
  result = _CHILDREN[kind](json.loads(args_json))
  usage = resource.getrusage(resource.RUSAGE_SELF)
  result.update(started=started, peak_rss_mb=peak_rss_mb(),
                cpu_seconds=usage.ru_utime + usage.ru_stime)
  _write_json(result_path, result)


def _run_child(kind: str, args: dict[str, Any], logdir: str,
               tag: str) -> dict[str, Any]:
  """Runs one measurement in a fresh `python`; adds 'launched' (the time
  just before starting it) and 'process_seconds' (its whole life)."""
  os.makedirs(logdir, exist_ok=True)
  log_path = os.path.join(logdir, f'{tag}.log')
  result_path = os.path.join(logdir, f'{tag}.result.json')
  if os.path.exists(result_path):
    os.remove(result_path)
  command = [sys.executable, '-c', _CHILD_CODE, kind, json.dumps(args),
             result_path]
  logging.info('Measuring %s (log: %s).', tag, log_path)
  with open(log_path, 'w') as log:
    launched = time.time()
    done = subprocess.run(command, cwd=REPO, stdout=log,
                          stderr=subprocess.STDOUT, check=False)
    ended = time.time()
  result = _read_json(result_path)
  if done.returncode or result is None:
    with open(log_path, errors='replace') as f:
      tail = f.read()[-3000:]
    raise RuntimeError(f'The {tag} measurement failed (exit '
                       f'{done.returncode}); {log_path} ends:\n{tail}')
  return {**result, 'launched': launched, 'process_seconds': ended - launched}


def folder_bytes(path: str) -> int:
  """Bytes of all files under `path`."""
  return sum(os.path.getsize(os.path.join(folder, name))
             for folder, _, names in os.walk(path) for name in names)


def measure_prepare(config: str, data_dir: str, tfds_data_dir: str,
                    logdir: str) -> dict[str, Any]:
  """Cold preparation: `create_datasets` with `tfds_data_dir` emptied first.

  Returns:
    'seconds' (create_datasets, i.e. TFDS preparation plus loading into
    memory; after the imports), 'process_seconds' (launch to exit),
    'peak_rss_mb', 'cpu_seconds', 'tfds_bytes' (the prepared cache),
    'audio_bytes' (the splits in memory) and the data summary's figures.
  """
  shutil.rmtree(tfds_data_dir, ignore_errors=True)
  r = _run_child('prepare', {'config': config, 'data_dir': data_dir,
                             'tfds_data_dir': tfds_data_dir}, logdir,
                 'prepare')
  return {'seconds': r['data_ready'] - r['imported'],
          'process_seconds': r['process_seconds'],
          'peak_rss_mb': r['peak_rss_mb'], 'cpu_seconds': r['cpu_seconds'],
          'tfds_bytes': folder_bytes(tfds_data_dir),
          'audio_bytes': r['audio_bytes'], **r['summary']}


def measure_startup(config: str, data_dir: str, tfds_data_dir: str,
                    logdir: str, runs: int = 3) -> dict[str, Any]:
  """Cached start-up of a fresh process, `runs` times; medians reported.

  Times count from just before the process is launched: 'imports_seconds'
  to jax, TensorFlow, TFDS and kws_jax.train imported; 'data_ready_seconds'
  to `create_datasets` returned (the TFDS cache checked and every split in
  memory); 'first_step_seconds' to the first training step finished (model
  built, train step jitted and compiled, the training iterator made and its
  first batch drawn, one step run). Each run's figures are in 'runs'.
  """
  if runs < 1:
    raise ValueError(f'--startup_runs={runs}: must be at least 1.')
  results = []
  for run in range(runs):
    r = _run_child('startup', {'config': config, 'data_dir': data_dir,
                               'tfds_data_dir': tfds_data_dir}, logdir,
                   f'startup_{run}')
    results.append({
        'interpreter_seconds': r['started'] - r['launched'],
        'imports_seconds': r['imported'] - r['launched'],
        'data_ready_seconds': r['data_ready'] - r['launched'],
        'first_batch_seconds': r['first_batch'] - r['launched'],
        'first_step_seconds': r['first_step_done'] - r['launched'],
        'create_datasets_seconds': r['data_ready'] - r['imported'],
        'tfds_check_seconds': r['summary']['prepare_seconds'],
        'load_seconds': r['summary']['load_seconds'],
        'peak_rss_mb': r['peak_rss_mb'], 'cpu_seconds': r['cpu_seconds']})
  median = {k: statistics.median(r[k] for r in results)
            for k in results[0]}
  return {**median, 'runs': results,
          'data_ready_min_seconds': min(r['data_ready_seconds']
                                        for r in results),
          'data_ready_max_seconds': max(r['data_ready_seconds']
                                        for r in results)}


def measure_throughput(config: str, data_dir: str, tfds_data_dir: str,
                       run_dir: str, steps: int, logdir: str,
                       tag: str) -> dict[str, Any]:
  """`train_and_evaluate` for `steps` steps in a fresh `run_dir`.

  Returns:
    From results.json: 'samples_per_second', 'steps_per_second',
    'input_wait_fraction' (time blocked on the input iterator over
    'train_step_seconds', the training steps' time after the first,
    compiling step; train.py times evaluations and checkpoints apart, in
    'eval_and_checkpoint_seconds'); and 'peak_rss_mb', 'cpu_seconds',
    'process_seconds'.
  """
  if steps < 2:
    raise ValueError(f'--steps={steps}: at least 2 (the first compiles and '
                     'is not timed).')
  shutil.rmtree(run_dir, ignore_errors=True)  # Else training would resume.
  r = _run_child('throughput', {
      'config': config, 'data_dir': data_dir, 'tfds_data_dir': tfds_data_dir,
      'workdir': run_dir, 'steps': steps}, logdir, tag)
  return {k: v for k, v in r.items() if k not in ('launched', 'started')}


# --- The report --------------------------------------------------------------


def machine() -> dict[str, Any]:
  """The machine the figures were taken on."""
  memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  return {'cpu_count': os.cpu_count(), 'platform': platform.platform(),
          'processor': platform.processor() or platform.machine(),
          'python': platform.python_version(),
          'memory_gb': round(memory / 1e9, 1),
          'load_average': os.getloadavg()[0]}


def _ratio(full: float | None, small: float | None) -> float | None:
  return full / small if full and small else None


def compare(small: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
  """Full-size over small-set throughput and whether it meets the target
  (at least 1 - THROUGHPUT_TOLERANCE of the small set's)."""
  out = {}
  for key in ('samples_per_second',):
    ratio = _ratio(full.get(key), small.get(key))
    out[key] = {'ratio': ratio, 'within_target': (
        None if ratio is None else ratio >= 1 - THROUGHPUT_TOLERANCE)}
  return out


def _fmt(value: Any, unit: str = '', digits: int = 1) -> str:
  if value is None:
    return 'n/a'
  if isinstance(value, float):
    return f'{value:,.{digits}f}{unit}'
  return f'{value:,}{unit}'


def _yes_no(ok: bool | None) -> str:
  return 'n/a' if ok is None else ('yes' if ok else 'NO')


def markdown(figures: dict[str, Any]) -> str:
  """The figures as two Markdown tables, with the machine above them."""
  m, standin = figures['machine'], figures['standin']
  prepare, startup = figures['prepare'], figures['startup']
  small, full = figures['throughput_small'], figures['throughput_full']
  ratios = figures['comparison']
  ready_ok = startup['data_ready_seconds'] < STARTUP_TARGET_SECONDS
  lines = [
      f"{m['cpu_count']} CPUs, {m['memory_gb']} GB, {m['platform']}, "
      f"Python {m['python']}; load average {m['load_average']:.1f} at the "
      f"start, {figures['load_average_end']:.1f} at the end. Config "
      f"{figures['config']}, batch {small.get('batch_size')}, "
      f"{figures['steps']} steps a data set.",
      '',
      '| measurement | value | target |',
      '|---|---|---|',
      f"| stand-in clips (word folders) | {standin['clips']:,} "
      f"({len(standin['words'])}) | |",
      f"| stand-in on disk | {standin['bytes'] / 1e9:.2f} GB | |",
      f"| stand-in written in | "
      f"{'reused' if standin['reused'] else _fmt(standin['seconds'], ' s')}"
      ' | |',
      f"| cold preparation: create_datasets | {_fmt(prepare['seconds'], ' s')}"
      f" (TFDS {_fmt(prepare['prepare_seconds'], ' s')}, load "
      f"{_fmt(prepare['load_seconds'], ' s')}) | |",
      f"| cold preparation: peak RSS | {_fmt(prepare['peak_rss_mb'], ' MB', 0)}"
      ' | |',
      f"| TFDS cache on disk | {prepare['tfds_bytes'] / 1e9:.2f} GB | |",
      f"| clips train / validation / test | "
      f"{' / '.join(f'{n:,}' for n in prepare['clips'].values())} | |",
      f"| cached start-up: launch to data in memory (median of "
      f"{len(startup['runs'])}; range) | "
      f"{_fmt(startup['data_ready_seconds'], ' s')} "
      f"({_fmt(startup['data_ready_min_seconds'])}–"
      f"{_fmt(startup['data_ready_max_seconds'], ' s')}) | "
      f"< {STARTUP_TARGET_SECONDS:.0f} s: {_yes_no(ready_ok)} |",
      f"| … of which imports / create_datasets (TFDS check, load) | "
      f"{_fmt(startup['imports_seconds'], ' s')} / "
      f"{_fmt(startup['create_datasets_seconds'], ' s')} "
      f"({_fmt(startup['tfds_check_seconds'], ' s')}, "
      f"{_fmt(startup['load_seconds'], ' s')}) | |",
      f"| cached start-up: launch to first training step done (first "
      f"batch drawn at) | {_fmt(startup['first_step_seconds'], ' s')} "
      f"({_fmt(startup['first_batch_seconds'], ' s')}) | |",
      f"| cached start-up: peak RSS | "
      f"{_fmt(startup['peak_rss_mb'], ' MB', 0)} | |",
      '',
      '| training | small set | full-size stand-in | full / small | target |',
      '|---|---|---|---|---|',
  ]
  rows = [
      ('samples/s (training steps)', 'samples_per_second', '', 1,
       'samples_per_second'),
      ('input wait fraction', 'input_wait_fraction', '', 3, None),
      ('training steps time', 'train_step_seconds', ' s', 1, None),
      ('evaluation and checkpoint time', 'eval_and_checkpoint_seconds',
       ' s', 1, None),
      ('peak RSS', 'peak_rss_mb', ' MB', 0, None),
      ('process wall time', 'process_seconds', ' s', 0, None),
  ]
  for name, key, unit, digits, ratio_key in rows:
    a, b = small.get(key), full.get(key)
    ratio, target = '', ''
    if ratio_key:
      r = ratios[ratio_key]
      ratio = _fmt(r['ratio'], digits=3)
      target = (f'>= {1 - THROUGHPUT_TOLERANCE:.2f}: '
                f"{_yes_no(r['within_target'])}")
    lines.append(f'| {name} | {_fmt(a, unit, digits)} | '
                 f'{_fmt(b, unit, digits)} | {ratio} | {target} |')
  return '\n'.join(lines)


def resolve_source(value: str | None, flag: str, workdir: str) -> str:
  """A data folder from a folder, or an archive extracted under workdir."""
  if not value:
    raise app.UsageError(f'--{flag} is required: a folder in the Speech '
                         'Commands layout or an archive of one.')
  if os.path.isdir(value):
    return os.path.abspath(value)
  if os.path.isfile(value) or '://' in value:
    folder = os.path.join(workdir, flag)
    try:
      return download.maybe_download_and_extract(value, folder)
    except download.DownloadError as e:
      raise app.UsageError(f'--{flag}={value}: {e}') from e
  raise app.UsageError(f'--{flag}={value}: no such folder or archive.')


def _check_free_space(path: str, needed: int, flag: str) -> None:
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  free = shutil.disk_usage(existing).free
  if free < needed:
    raise app.UsageError(f'--{flag}={path}: {needed / 1e9:.1f} GB needed, '
                         f'{free / 1e9:.1f} GB free.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  workdir = os.path.abspath(f.workdir)
  standin_dir = os.path.abspath(f.standin_dir)
  if f.steps < 2:
    raise app.UsageError(f'--steps={f.steps}: at least 2 (the first step '
                         'compiles and is not timed).')
  if f.num_clips < 1:
    raise app.UsageError(f'--num_clips={f.num_clips}: at least 1.')
  if f.startup_runs < 1:
    raise app.UsageError(f'--startup_runs={f.startup_runs}: at least 1.')
  # Absolute, since the measurements run in the repository.
  config_path, sep, config_arg = f.config.partition(':')
  config_spec = (os.path.abspath(config_path) + sep + config_arg
                 if os.path.isfile(config_path) else f.config)
  try:
    # Checked now, not after an hour of writing clips.
    config_validation.validate_config(
        training_config(config_spec, standin_dir, '', f.steps))
  except FileNotFoundError as e:
    raise app.UsageError(str(e)) from e
  except ValueError as e:  # ConfigError, or get_config refusing its arg.
    raise app.UsageError(f'--config={f.config}: {e}') from e
  os.makedirs(workdir, exist_ok=True)
  source = resolve_source(f.source, 'source', workdir)
  small_dir = (resolve_source(f.small_dir, 'small_dir', workdir)
               if f.small_dir else source)
  clip_bytes = _WAV_HEADER_BYTES + 2 * int(SAMPLE_RATE * CLIP_DURATION_MS
                                           / 1000)
  if not os.path.exists(os.path.join(standin_dir, COMPLETE_MARKER)):
    _check_free_space(standin_dir, f.num_clips * clip_bytes, 'standin_dir')
  # The TFDS cache holds about as much as the stand-in.
  _check_free_space(workdir, f.num_clips * clip_bytes, 'workdir')

  figures: dict[str, Any] = {
      'machine': machine(), 'config': f.config, 'steps': f.steps,
      'source': source, 'small_dir': small_dir, 'standin_dir': standin_dir}
  results_path = os.path.join(workdir, 'full_size_data.json')
  tfds_full = os.path.join(workdir, 'tfds_full')
  # Kept between runs: the small set's cache only speeds up its run.
  tfds_small = os.path.join(workdir, 'tfds_small')

  def save(key: str, value: Any) -> None:
    figures[key] = value  # Saved at once: an hours-long run may stop.
    _write_json(results_path, figures)

  try:
    save('standin', make_standin(source, standin_dir, f.num_clips,
                                 seed=f.seed, workers=f.workers))
  except (FileNotFoundError, ValueError) as e:
    raise app.UsageError(str(e)) from e
  save('prepare', measure_prepare(config_spec, standin_dir, tfds_full,
                                  workdir))
  save('startup', measure_startup(config_spec, standin_dir, tfds_full,
                                  workdir, runs=f.startup_runs))
  save('throughput_small', measure_throughput(
      config_spec, small_dir, tfds_small, os.path.join(workdir, 'train_small'),
      f.steps, workdir, 'throughput_small'))
  save('throughput_full', measure_throughput(
      config_spec, standin_dir, tfds_full, os.path.join(workdir, 'train_full'),
      f.steps, workdir, 'throughput_full'))
  figures['load_average_end'] = os.getloadavg()[0]
  save('comparison', compare(figures['throughput_small'],
                             figures['throughput_full']))
  print(markdown(figures))
  print(f'\nAll figures: {results_path}')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
