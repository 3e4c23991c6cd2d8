"""Reliability under bad input and faults, end to end (see docs/reliability.md).

A corpus of awkward and broken audio files (tests/bad_audio.py) goes through
data preparation, training, evaluation, label_wav, wav_to_spectrogram and the
streaming tools: every good file is used, every bad one is refused with a
message naming it, and no command ends in a traceback. Training is killed
with SIGKILL in the middle of a checkpoint save and interrupted with SIGINT
(Ctrl-C), and must resume from a whole checkpoint each time.

The command-line tools run as real subprocesses with a strict UTF-8 stdout
(PYTHONIOENCODING=utf-8), so printing a file name that is not UTF-8 fails
here as it would in a user's terminal.

Set KWS_RELIABILITY_FULL=1 to also kill training at several random moments
(data preparation, compilation, steps, saves) before resuming: a few more
minutes.
"""

import concurrent.futures
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from configs import test as test_config
from kws_jax import audio_io
from kws_jax import checkpoint
from kws_jax import input_pipeline
from kws_jax import wav_to_spectrogram

import bad_audio
from conftest import make_speech_commands_dir

REPO = pathlib.Path(__file__).resolve().parent.parent
FULL = os.environ.get('KWS_RELIABILITY_FULL') == '1'
# Strict UTF-8 output, as in a terminal with a UTF-8 locale.
_ENV = {**os.environ, 'PYTHONIOENCODING': 'utf-8', 'JAX_PLATFORMS': 'cpu',
        'TF_CPP_MIN_LOG_LEVEL': '2'}
# Words of the corpus data folder: the corpus is copied into `yes` (a wanted
# word) and `cat` (an unknown word).
_CORPUS_WORDS = {'yes': '_nohash_9', 'cat': '_nohash_8'}


def _run(args, timeout=240, env=None) -> subprocess.CompletedProcess:
  return _run_all([args], timeout, env)[0]


def _run_all(commands, timeout=240, env=None
             ) -> list[subprocess.CompletedProcess]:
  """Runs `python <args>` for each command side by side (each pays for its
  own imports, the slow part)."""
  processes = [subprocess.Popen(
      [sys.executable, *args], cwd=REPO, env=env or _ENV, text=True,
      errors='backslashreplace', stdout=subprocess.PIPE,
      stderr=subprocess.PIPE) for args in commands]
  results = []
  for process, args in zip(processes, commands):
    out, err = process.communicate(timeout=timeout)
    results.append(subprocess.CompletedProcess(args, process.returncode, out,
                                               err))
  return results


def _no_traceback(result: subprocess.CompletedProcess) -> None:
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert 'Traceback' not in result.stdout, result.stdout[-3000:]


@pytest.fixture(scope='module')
def corpus_data(tmp_path_factory) -> tuple[pathlib.Path, dict[str, str]]:
  """A tiny Speech Commands folder with the corpus in two word folders, an
  empty word folder, a broken background recording and a split list that
  names a clip whose name is not UTF-8."""
  root = make_speech_commands_dir(tmp_path_factory.mktemp('data') / 'sc')
  cases = {}
  for word, suffix in _CORPUS_WORDS.items():
    for name, kind in bad_audio.write_corpus(root / word, suffix).items():
      cases[f'{word}/{name}'] = kind
  (root / 'empty_word').mkdir()
  (root / '_background_noise_' / 'broken.wav').write_bytes(b'RIFF junk')
  cases['_background_noise_/broken.wav'] = bad_audio.BAD
  (root / 'validation_list.txt').write_bytes(
      os.fsencode(f'yes/{bad_audio.NON_UTF8_NAME}') + b'\n')
  return root, cases


def _config(data_dir, tfds_dir):
  config = test_config.get_config()
  config.data_dir = str(data_dir)
  config.tfds_data_dir = str(tfds_dir)
  return config


def test_data_preparation_uses_good_clips_and_names_bad_ones(corpus_data,
                                                              tmp_path):
  root, cases = corpus_data
  data = input_pipeline.create_datasets(_config(root, tmp_path / 'tfds'))
  skipped = {name: reason for name, reason in data.summary['skipped_files']}
  expected_bad = {audio_io.printable_path(n) for n in bad_audio.bad_names(
      cases)}
  assert set(skipped) == expected_bad
  assert data.summary['num_skipped'] == len(expected_bad)
  for name, reason in skipped.items():
    assert os.path.basename(name) in reason  # Each reason names its file.
  names = set(data.train.names + data.validation.names + data.test.names)
  for name in bad_audio.good_names(cases):
    if name.startswith('_background_noise_'):
      continue
    assert audio_io.printable_path(name) in names, name
  # The list entry in raw bytes put the non-UTF-8 clip into validation.
  assert f'yes/{audio_io.printable_path(bad_audio.NON_UTF8_NAME)}' in (
      data.validation.names)
  # Only the two good background recordings are used.
  assert data.summary['background_clips'] == 2
  for split in (data.train, data.validation, data.test):
    assert split.audio.shape[1] == 16000


@pytest.fixture(scope='module')
def tflite_model(tmp_path_factory) -> pathlib.Path:
  """A TFLite model exported from a freshly initialised tiny_conv."""
  from tflite_export import convert  # pylint: disable=g-import-not-at-top
  import export_test_util as util  # pylint: disable=g-import-not-at-top
  config = util.small_config('tiny_conv')
  graphdef, params, batch_stats = util.init_model(config, len(util.LABELS))
  path = tmp_path_factory.mktemp('model') / 'model.tflite'
  convert.export_tflite(params, batch_stats, graphdef, config, util.LABELS,
                        str(path), verify=False)
  return path


@pytest.fixture(scope='module')
def test_set(tmp_path_factory) -> tuple[pathlib.Path, dict[str, str]]:
  """The test-set archive's layout with the corpus in three label folders
  and an empty one."""
  root = tmp_path_factory.mktemp('test_set') / 'speech_commands_test_set'
  cases = {}
  for label in ('_silence_', '_unknown_', 'yes'):
    cases = bad_audio.write_corpus(root / label)
  (root / 'no').mkdir()
  return root, cases


def test_evaluate_counts_and_names_bad_clips(tflite_model, test_set,
                                             tmp_path):
  root, cases = test_set
  result = _run(['-m', 'kws_jax.evaluate', f'--model={tflite_model}',
                 f'--test_dir={root}', f'--output_dir={tmp_path}'])
  _no_traceback(result)
  assert result.returncode == 0, result.stderr[-3000:]
  num_good, num_bad = (len(bad_audio.good_names(cases)),
                       len(bad_audio.bad_names(cases)))
  assert f'(N={3 * num_good})' in result.stdout
  assert f'{3 * num_bad} unreadable clip(s) left out' in result.stdout
  report = json.loads((tmp_path / 'results.json').read_text())
  assert report['num_unreadable'] == 3 * num_bad
  assert {os.path.basename(u['path']) for u in report['unreadable']} == set(
      bad_audio.bad_names(cases))


def test_label_wav_labels_good_files_and_names_bad_ones(tflite_model,
                                                        test_set):
  root, cases = test_set
  result = _run(['-m', 'kws_jax.label_wav', f'--graph={tflite_model}',
                 f'--wav={root / "yes"}', '--how_many_labels=2'])
  _no_traceback(result)
  assert result.returncode == 1  # Some files could not be labelled.
  good, bad = bad_audio.good_names(cases), bad_audio.bad_names(cases)
  assert result.stdout.count('(score = ') == 2 * len(good)
  errors = [l for l in result.stderr.splitlines() if l.startswith('Error: ')]
  assert len(errors) == len(bad)
  for name in bad:
    assert any(name in line for line in errors), name
  assert f'{len(bad)} of {len(good) + len(bad)} inputs' in result.stderr
  assert audio_io.printable_path(bad_audio.NON_UTF8_NAME) in result.stdout


def test_wav_to_spectrogram_draws_good_files_and_refuses_bad_ones(test_set,
                                                                   tmp_path):
  root, cases = test_set
  # The command line, with a name that is not UTF-8 (printed and drawn),
  # runs beside the in-process checks.
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    command_line = pool.submit(_run, [
        '-m', 'kws_jax.wav_to_spectrogram',
        f'--input_wav={root / "yes" / bad_audio.NON_UTF8_NAME}',
        f'--output_image={tmp_path / "cli.png"}'])
    for index, (name, kind) in enumerate(sorted(cases.items())):
      path, out = str(root / 'yes' / name), str(tmp_path / f'{index}.png')
      if kind == bad_audio.BAD:
        with pytest.raises(audio_io.AudioError) as error:
          wav_to_spectrogram.wav_to_image(path, out)
        assert audio_io.printable_path(name) in str(error.value)
      elif name.startswith('short10ms'):  # Shorter than one window.
        with pytest.raises(ValueError, match='fewer than one'):
          wav_to_spectrogram.wav_to_image(path, out)
      else:
        values = wav_to_spectrogram.wav_to_image(path, out, as_features=True)
        assert np.all(np.isfinite(values)), name
        assert os.path.getsize(out) > 0, name
    result = command_line.result()
  _no_traceback(result)
  assert result.returncode == 0 and (tmp_path / 'cli.png').is_file()
  assert 'Wrote ' in result.stdout


def test_streaming_tools_skip_bad_clips_and_report_bad_inputs(
    tflite_model, test_set, tmp_path):
  root, cases = test_set
  wav, truth = tmp_path / 'stream.wav', tmp_path / 'truth.txt'
  generated = _run([
      '-m', 'kws_jax.generate_streaming_test_wav', f'--test_dir={root}',
      '--wanted_words=yes', '--test_duration_seconds=40',
      '--word_gap_ms=500', f'--output_audio_file={wav}',
      f'--output_labels_file={truth}'])
  _no_traceback(generated)
  assert generated.returncode == 0, generated.stderr[-3000:]
  assert 'Skipped ' in generated.stderr and 'unreadable clips' in (
      generated.stderr)
  (tmp_path / 'bad_truth.txt').write_text('yes, 100\nno, soon\n')
  common = ['-m', 'kws_jax.test_streaming_accuracy', f'--graph={tflite_model}']
  scored, bad_wav, bad_truth, no_truth, missing = _run_all([
      [*common, f'--wav={wav}', f'--ground_truth={truth}'],
      [*common, f'--wav={root / "yes" / "png_nohash_0.wav"}',
       f'--ground_truth={truth}'],
      [*common, f'--wav={wav}', f'--ground_truth={tmp_path / "bad_truth.txt"}'],
      [*common, f'--wav={wav}', f'--ground_truth={tmp_path / "missing.txt"}'],
      # Generating from a folder without the wanted word.
      ['-m', 'kws_jax.generate_streaming_test_wav', f'--test_dir={root}',
       '--wanted_words=no', '--unknown_percentage=0',
       f'--output_audio_file={tmp_path / "other.wav"}',
       f'--output_labels_file={tmp_path / "other.txt"}']])
  for result in (scored, bad_wav, bad_truth, no_truth, missing):
    _no_traceback(result)
  assert scored.returncode == 0 and '% matched' in scored.stdout
  assert bad_wav.returncode == 1
  assert 'png_nohash_0.wav: cannot be read as audio' in bad_wav.stderr
  assert bad_truth.returncode == 1 and "bad_truth.txt:2" in bad_truth.stderr
  assert no_truth.returncode == 1 and 'missing.txt' in no_truth.stderr
  assert missing.returncode == 1 and 'No test clips for no' in missing.stderr


# --- Killing and interrupting training -------------------------------------


def _train_command(data_dir, tfds_dir, workdir) -> list[str]:
  # 400 short steps with a save every 5: saves are frequent enough to be
  # hit (a poller starved by a busy CPU misses most of them), and the run
  # is over in seconds once compiled.
  return ['-m', 'kws_jax.main', '--config=configs/test.py',
          f'--config.data_dir={data_dir}',
          f'--config.tfds_data_dir={tfds_dir}', f'--workdir={workdir}',
          '--config.how_many_training_steps=300,100',
          '--config.save_step_interval=5', '--config.eval_step_interval=40',
          '--config.log_step_interval=20']


def _training_env(cache_dir: pathlib.Path) -> dict[str, str]:
  # A shared compilation cache: the runs after the first skip XLA
  # compilation, about 10 s each on a small CPU.
  return {**_ENV, 'JAX_COMPILATION_CACHE_DIR': str(cache_dir),
          'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
          'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '0'}


def _start(command, log_path, env) -> subprocess.Popen:
  log = open(log_path, 'w')  # pylint: disable=consider-using-with
  # A test run started in the background by a non-interactive shell
  # inherits SIGINT ignored, children inherit that, and Python then leaves
  # it ignored. A handled signal is reset to the default at exec, so
  # handling it here gives the child the default, as a terminal would.
  if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
  return subprocess.Popen([sys.executable, *command], cwd=REPO, env=env,
                          stdout=log, stderr=subprocess.STDOUT)


def _saving(checkpoints: pathlib.Path, before: set[str]) -> bool:
  """True once a new temporary checkpoint folder (a save under way) shows."""
  try:
    names = set(os.listdir(checkpoints))
  except FileNotFoundError:
    return False
  return any('tmp' in name for name in names - before)


def _signal_when(process, ready, signum, timeout=240) -> bool:
  """Polls `ready()` every millisecond and sends `signum` when it holds.

  Returns whether the signal was sent (a loaded machine can miss a short
  save, and the run then finishes on its own).
  """
  deadline = time.monotonic() + timeout
  sent = False
  while process.poll() is None and time.monotonic() < deadline:
    if ready():
      process.send_signal(signum)
      sent = True
      break
    time.sleep(0.001)
  process.wait(timeout=120)
  return sent


def _check_latest_restores(workdir: pathlib.Path) -> int | None:
  """Restores the latest checkpoint (if any) and returns its step."""
  ckpts = checkpoint.Checkpoints(checkpoint.checkpoint_dir(str(workdir)),
                                 read_only=True)
  step = ckpts.latest_step()
  if step is not None:
    state, extra = ckpts.restore(step)
    assert int(state['step']) == step
    assert extra['labels'] == ['_silence_', '_unknown_', 'yes', 'no']
  ckpts.close()
  return step


def test_training_survives_sigkill_during_save_and_sigint(corpus_data,
                                                          tmp_path):
  root, _ = corpus_data
  env = _training_env(tmp_path / 'jax_cache')
  # Steps 1 and 2 need a signal to land while a save is under way; when the
  # poller misses every save of a run (a loaded machine), start afresh.
  for attempt in range(3):
    workdir = tmp_path / f'run{attempt}'
    command = _train_command(root, tmp_path / 'tfds', workdir)
    checkpoints = workdir / 'checkpoints'

    # 1. SIGKILL while a checkpoint is being written.
    killed = _start(command, tmp_path / 'killed.log', env)
    if not _signal_when(killed, lambda: _saving(checkpoints, set()),
                        signal.SIGKILL):
      continue
    assert killed.returncode == -signal.SIGKILL, (
        (tmp_path / 'killed.log').read_text()[-3000:])
    first = _check_latest_restores(workdir)

    # 2. Ctrl-C while a later checkpoint is being written (or mid-run): the
    # save is finished, and the run stops with status 130 and no traceback.
    before = set(os.listdir(checkpoints))
    log_path = tmp_path / 'interrupted.log'
    interrupted = _start(command, log_path, env)
    # During a save if the poller sees one; a poller starved by a busy CPU
    # can miss every save, so at the latest half-way through the run.
    sent = _signal_when(
        interrupted, lambda: _saving(checkpoints, before) or
        log_path.read_text().count('Saving to') >= 40, signal.SIGINT)
    # A signal sent as the run's last save ends can arrive after training
    # is over; the run then finishes on its own: that is a miss too.
    finished = (interrupted.returncode == 0 and
                'Final test accuracy' in log_path.read_text())
    if sent and not finished:
      break
  else:
    pytest.fail('No signal landed during a checkpoint save in 3 attempts.')
  log = (tmp_path / 'interrupted.log').read_text()
  assert interrupted.returncode == 130, log[-3000:]
  assert 'Traceback' not in log, log[-5000:]
  assert 'Interrupted; run the same command again to resume.' in log
  second = _check_latest_restores(workdir)
  assert second is not None and second > (first or 0)

  if FULL:
    # 2b. SIGTERM (a scheduler's preemption) at a random step: saved too.
    before = set(os.listdir(checkpoints))
    terminated = _start(command, tmp_path / 'terminated.log', env)
    _signal_when(terminated, lambda: len(set(os.listdir(checkpoints)) -
                                         before) >= 2, signal.SIGTERM)
    log = (tmp_path / 'terminated.log').read_text()
    assert terminated.returncode == 130, log[-3000:]
    assert 'Traceback' not in log, log[-5000:]
    assert _check_latest_restores(workdir) > second

    # 3. SIGKILL at random moments, from start-up to the last steps.
    # (A run takes about 20 s here with the compilation cache; one that
    # ends before its kill time has simply finished.)
    rng = random.Random(0)
    for delay in sorted(rng.uniform(0.0, 20.0) for _ in range(5)):
      process = _start(command, tmp_path / 'random.log', env)
      start = time.monotonic()
      _signal_when(process, lambda: time.monotonic() - start > delay,
                   signal.SIGKILL)
      assert process.returncode in (0, -signal.SIGKILL), (
          (tmp_path / 'random.log').read_text()[-3000:])
      _check_latest_restores(workdir)

  # 4. The same command resumes and completes.
  resumed = _run(command, timeout=300, env=env)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  steps = [int(line.rsplit(':', 1)[1]) for line in resumed.stderr.splitlines()
           if 'Training from step:' in line]
  assert steps and steps[0] > 1, steps
  assert 'Final test accuracy' in resumed.stderr
  # The tutorial's log: the project's own lines, not orbax's INFO lines
  # (its warnings, e.g. a slow previous save, are kept on purpose).
  assert 'Saving to' in resumed.stderr
  orbax_info = [line for line in resumed.stderr.splitlines()
                if line.startswith('I') and 'checkpoint_manager.py' in line]
  assert not orbax_info, orbax_info[:3]
  results = json.loads((workdir / 'results.json').read_text())
  assert results['steps'] == 400
  assert _check_latest_restores(workdir) == 400
