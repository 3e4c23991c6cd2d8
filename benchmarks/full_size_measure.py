"""The full-size benchmark's measurements, each in a fresh Python process.

A measurement counts imports, caches and peak memory as they are for a
user only in a process of its own, so each one runs as

  python -m benchmarks.full_size_measure KIND ARGS_JSON RESULT_JSON

(KIND: 'prepare', 'startup' or 'throughput'; ARGS_JSON: the config spec,
the data folders and, for training, the run folder and steps), which
writes its figures and times to RESULT_JSON. `measure_prepare`,
`measure_startup` and `measure_throughput` start it (`run_measurement`),
log its output to `<logdir>/<tag>.log` and turn the times into figures;
`benchmarks/full_size_data.py` calls them.
"""

import time

# Read before any other import: a measurement process counts its own
# start-up ('interpreter_seconds') up to here, its imports after it.
_STARTED = time.time()

# pylint: disable=g-import-not-at-top,wrong-import-position
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
from typing import Any, Callable, Sequence

from absl import app
from absl import logging
import ml_collections

from kws_jax import config_files
from kws_jax import config_validation
from kws_jax import files
# pylint: enable=g-import-not-at-top,wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- Configs -----------------------------------------------------------------


def data_config(spec: str, data_dir: str,
                tfds_data_dir: str) -> ml_collections.ConfigDict:
  """The config reading `data_dir` as it is, prepared into `tfds_data_dir`.

  Synthetic speech is left out: what grows to full size is the recorded
  data, and the synthetic folder is the same at both sizes.
  """
  config = config_files.load_config(spec, root=REPO)
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

# --- Run in the measurement's own process ------------------------------------


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


# The measurements import the pipeline and training inside: how long those
# imports take in a fresh process is part of what they measure.


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
      donate_argnums=0,
      compiler_options=train.compiler_options(config))
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


_MEASUREMENTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    'prepare': _child_prepare, 'startup': _child_startup,
    'throughput': _child_throughput}


def _measure_here(argv: Sequence[str]) -> None:
  """The measurement process: runs KIND, writes its figures as JSON."""
  kind, args_json, result_path = argv[1:]
  logging.set_verbosity(logging.INFO)
  result = _MEASUREMENTS[kind](json.loads(args_json))
  usage = resource.getrusage(resource.RUSAGE_SELF)
  result.update(started=_STARTED, peak_rss_mb=peak_rss_mb(),
                cpu_seconds=usage.ru_utime + usage.ru_stime)
  files.write_atomic(result_path, json.dumps(result, indent=2) + '\n')


# --- Start a measurement and read its figures --------------------------------


def run_measurement(kind: str, args: dict[str, Any], logdir: str,
                    tag: str) -> dict[str, Any]:
  """Runs one measurement in a fresh `python`; adds 'launched' (the time
  just before starting it) and 'process_seconds' (its whole life)."""
  os.makedirs(logdir, exist_ok=True)
  log_path = os.path.join(logdir, f'{tag}.log')
  result_path = os.path.join(logdir, f'{tag}.result.json')
  if os.path.exists(result_path):
    os.remove(result_path)
  command = [sys.executable, '-m', 'benchmarks.full_size_measure', kind,
             json.dumps(args), result_path]
  logging.info('Measuring %s (log: %s).', tag, log_path)
  with open(log_path, 'w') as log:
    launched = time.time()
    done = subprocess.run(command, cwd=REPO, stdout=log,
                          stderr=subprocess.STDOUT, check=False)
    ended = time.time()
  if done.returncode or not os.path.exists(result_path):
    with open(log_path, errors='replace') as f:
      tail = f.read()[-3000:]
    raise RuntimeError(f'The {tag} measurement failed (exit '
                       f'{done.returncode}); {log_path} ends:\n{tail}')
  with open(result_path) as f:
    result = json.load(f)
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
  r = run_measurement('prepare', {'config': config, 'data_dir': data_dir,
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
    r = run_measurement('startup', {'config': config, 'data_dir': data_dir,
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
  r = run_measurement('throughput', {
      'config': config, 'data_dir': data_dir, 'tfds_data_dir': tfds_data_dir,
      'workdir': run_dir, 'steps': steps}, logdir, tag)
  return {k: v for k, v in r.items() if k not in ('launched', 'started')}


if __name__ == '__main__':
  app.run(_measure_here)
