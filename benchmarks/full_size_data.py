r"""Full-size data on one machine: preparation, start-up, throughput, memory.

The shared data holds about 13.5k clips; the full Speech Commands v0.02
about 105k. This benchmark makes a stand-in of full size from any folder in
the Speech Commands layout (mildly augmented copies of its clips,
`full_size_standin.py`) and measures, each in a fresh Python process so
that imports, caches and peak memory count as they do for a user
(`full_size_measure.py`):

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
import os
import platform
import shutil
from typing import Any, Sequence

from absl import app
from absl import flags

from benchmarks import full_size_measure
from benchmarks import full_size_standin
from kws_jax import config_files
from kws_jax import config_validation
from kws_jax import download
from kws_jax import files

# The targets.
STARTUP_TARGET_SECONDS = 10.0
THROUGHPUT_TOLERANCE = 0.10


def _define_flags() -> None:
  # Defined when run as a program, not at import, so that a test can import
  # this module with others that define --workdir as well (experiments.sweep):
  # absl refuses a flag defined twice.
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
  config_path, config_arg = config_files.split_spec(f.config)
  try:
    config_spec = os.path.abspath(
        config_files.find(config_path, root=full_size_measure.REPO))
  except FileNotFoundError as e:
    raise app.UsageError(f'--config={f.config}: no such config file.') from e
  if config_arg is not None:
    config_spec += ':' + config_arg
  try:
    # Checked now, not after an hour of writing clips.
    config_validation.validate_config(full_size_measure.training_config(
        config_spec, standin_dir, '', f.steps))
  except ValueError as e:  # ConfigError, or get_config refusing its arg.
    raise app.UsageError(f'--config={f.config}: {e}') from e
  os.makedirs(workdir, exist_ok=True)
  source = resolve_source(f.source, 'source', workdir)
  small_dir = (resolve_source(f.small_dir, 'small_dir', workdir)
               if f.small_dir else source)
  clip_bytes = full_size_standin.clip_bytes()
  if not os.path.exists(os.path.join(standin_dir,
                                     full_size_standin.COMPLETE_MARKER)):
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
    files.write_atomic(results_path, json.dumps(figures, indent=2) + '\n')

  try:
    save('standin', full_size_standin.make_standin(
        source, standin_dir, f.num_clips, seed=f.seed, workers=f.workers))
  except (FileNotFoundError, ValueError) as e:
    raise app.UsageError(str(e)) from e
  save('prepare', full_size_measure.measure_prepare(
      config_spec, standin_dir, tfds_full, workdir))
  save('startup', full_size_measure.measure_startup(
      config_spec, standin_dir, tfds_full, workdir, runs=f.startup_runs))
  save('throughput_small', full_size_measure.measure_throughput(
      config_spec, small_dir, tfds_small, os.path.join(workdir, 'train_small'),
      f.steps, workdir, 'throughput_small'))
  save('throughput_full', full_size_measure.measure_throughput(
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
