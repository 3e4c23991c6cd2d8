"""Tests for kws_jax.runtime.streaming."""

import dataclasses
import json
import os

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest
import soundfile as sf

from kws_jax.runtime import calibration
from kws_jax.runtime import inference
from kws_jax.runtime import streaming
from kws_jax.runtime import streaming_inference
import streaming_fakes as fakes

RATE = 16000
WORDS = {500.0: 'yes', 2200.0: 'bed', 3400.0: 'no'}


class _Recorder:
  """A predict_fn that keeps every clip it is given."""

  def __init__(self, model):
    self.model = model
    self.clips = []

  def __call__(self, clip):
    self.clips.append(clip.copy())
    return self.model(clip)


def _stream(chunk_size, audio, **kwargs):
  """Feeds `audio` in chunks; returns detections, clips and the recognizer."""
  recorder = _Recorder(fakes.ToneModel(kwargs.get('sample_rate', RATE)))
  recognizer = streaming.StreamingRecognizer(recorder, fakes.LABELS, **kwargs)
  detections = []
  for start in range(0, audio.shape[0], chunk_size):
    detections += recognizer.process(audio[start:start + chunk_size])
  return detections, recorder.clips, recognizer


def test_detects_each_word_once():
  audio = fakes.place_words(WORDS, 5000, RATE)
  detections = streaming.recognize_array(fakes.ToneModel(RATE), audio,
                                         fakes.LABELS, sample_rate=RATE)
  assert [d.label for d in detections] == ['yes', '_unknown_', 'no']
  for detection, word_ms in zip(detections, WORDS):
    # The clip that triggers holds the whole tone, [200, 600) ms into the
    # word: it starts between 400 ms before the word and 200 ms after it.
    assert word_ms - 400 <= detection.time_ms <= word_ms + 200
    assert detection.score > 0.7


@pytest.mark.parametrize('chunk_size', [1, 7, 480, 16000, 5 * RATE + 123])
def test_results_do_not_depend_on_chunk_size(chunk_size):
  audio = fakes.place_words(WORDS, 5000, RATE)
  want_detections, want_clips, _ = _stream(audio.shape[0], audio)
  detections, clips, _ = _stream(chunk_size, audio)
  assert detections == want_detections
  assert len(clips) == len(want_clips)
  np.testing.assert_array_equal(np.stack(clips), np.stack(want_clips))


@pytest.mark.parametrize('clip_ms,stride_ms,chunk_size', [
    (1000, 30, 1), (1000, 30, 1000), (100, 250, 7), (100, 250, 3000),
    (100, 100, 1600)])
def test_clips_are_the_streams_windows(clip_ms, stride_ms, chunk_size):
  audio = np.arange(3 * RATE + 77, dtype=np.float32) / (4 * RATE)
  clip = int(clip_ms * RATE / 1000)
  stride = int(stride_ms * RATE / 1000)
  recorder = []
  recognizer = streaming.StreamingRecognizer(
      lambda c: (recorder.append(c.copy()), np.ones(4) / 4)[1], fakes.LABELS,
      sample_rate=RATE, clip_duration_ms=clip_ms, clip_stride_ms=stride_ms)
  for start in range(0, audio.shape[0], chunk_size):
    recognizer.process(audio[start:start + chunk_size])
  # Every clip that fits, none that does not.
  starts = range(0, audio.shape[0] - clip + 1, stride)
  assert len(recorder) == len(starts)
  for got, start in zip(recorder, starts):
    np.testing.assert_array_equal(got, audio[start:start + clip])
  assert recognizer.latest_time_ms == starts[-1] * 1000 / RATE


def test_time_is_in_ms_not_samples():
  rate = 8000
  recognizer = streaming.StreamingRecognizer(
      fakes.ToneModel(rate), fakes.LABELS, sample_rate=rate)
  assert recognizer.clip_samples == 8000
  assert recognizer.stride_samples == 240
  assert recognizer.process(np.zeros(rate + 240, np.float32)) == []
  # Two clips: at 0 ms and at 30 ms (240 samples at 8 kHz).
  assert recognizer.latest_time_ms == 30.0
  assert recognizer.duration_ms == 1030.0

  # The same words at two sample rates are found at the same ms.
  times = {}
  for rate in (8000, 16000):
    audio = fakes.place_words(WORDS, 5000, rate)
    detections = streaming.recognize_array(
        fakes.ToneModel(rate), audio, fakes.LABELS, sample_rate=rate)
    times[rate] = [d.time_ms for d in detections]
  assert times[8000] == times[16000]
  assert 100 <= times[8000][0] <= 700  # The first word is at 500 ms.


def test_latest_scores_and_reset():
  audio = fakes.place_words({0.0: 'yes'}, 1000, RATE)
  recognizer = streaming.StreamingRecognizer(fakes.ToneModel(RATE),
                                             fakes.LABELS, sample_rate=RATE)
  assert recognizer.latest_scores is None
  assert recognizer.latest_result is None
  recognizer.process(audio[:RATE // 2])
  assert recognizer.latest_scores is None  # No full clip yet.
  recognizer.process(audio[RATE // 2:])
  assert fakes.LABELS[int(np.argmax(recognizer.latest_scores))] == 'yes'
  assert recognizer.latest_time_ms == 0.0
  assert recognizer.latest_result.score == 0.0  # Too few results yet.

  recognizer.reset()
  assert recognizer.latest_scores is None
  assert recognizer.duration_ms == 0.0
  # After a reset the stream starts again at 0 ms.
  first = streaming.recognize_array(
      fakes.ToneModel(RATE), fakes.place_words(WORDS, 5000, RATE),
      fakes.LABELS, sample_rate=RATE)
  assert recognizer.process(fakes.place_words(WORDS, 5000, RATE)) == first


def test_settings_reach_recognize_commands():
  audio = fakes.place_words({500.0: 'yes', 2000.0: 'no'}, 4000, RATE)
  model = fakes.ToneModel(RATE)
  # 'no' is found about 2000 ms after 'yes': suppressed by 2500 ms, not by
  # 1000 ms.
  assert len(streaming.recognize_array(model, audio, fakes.LABELS,
                                       suppression_ms=2500)) == 1
  assert len(streaming.recognize_array(model, audio, fakes.LABELS,
                                       suppression_ms=1000)) == 2
  assert streaming.recognize_array(model, audio, fakes.LABELS,
                                   detection_threshold=0.99) == []


def test_recognize_file_matches_array(tmp_path):
  audio = fakes.place_words(WORDS, 5000, RATE)
  path = tmp_path / 'stream.wav'
  sf.write(path, audio, RATE, subtype='FLOAT')
  model = fakes.ToneModel(RATE)
  assert (streaming.recognize_file(model, path, fakes.LABELS,
                                   sample_rate=RATE) ==
          streaming.recognize_array(model, audio, fakes.LABELS,
                                    sample_rate=RATE))


def test_class_thresholds_compare_by_what_they_decide():
  one = streaming.SmoothingSettings(
      500, 0.7, class_thresholds=(('on', 0.5), ('off', 0.3), ('no', 0.7)))
  other = streaming.SmoothingSettings(500, 0.7,
                                      class_thresholds={'off': 0.3, 'on': 0.5})
  # Sorted, and a label at the common threshold is no label of its own.
  assert one == other and hash(one) == hash(other)
  assert one.class_thresholds == (('off', 0.3), ('on', 0.5))
  for bad in (float('nan'), float('inf')):
    with pytest.raises(ValueError, match='Class thresholds must be numbers'):
      streaming.SmoothingSettings(class_thresholds={'on': bad})


def test_class_thresholds_are_kept_beside_the_model(tmp_path):
  model_path = tmp_path / 'm.tflite'
  settings = streaming.SmoothingSettings(
      1000, 0.75, 750, 3, class_thresholds=(('no', 0.9), ('yes', 0.3)))
  streaming.write_smoothing(model_path, settings, {'rule': 'a test'})
  payload = json.loads((tmp_path / 'm_smoothing.json').read_text())
  assert payload['class_thresholds'] == {'no': 0.9, 'yes': 0.3}
  assert streaming.read_smoothing(model_path) == settings
  assert settings.describe() == (
      'window 1000 ms, threshold 0.75 (no 0.9, yes 0.3), suppression 750 ms, '
      'minimum count 3')
  # Files written before class thresholds existed have none.
  del payload['class_thresholds']
  (tmp_path / 'm_smoothing.json').write_text(json.dumps(payload))
  assert streaming.read_smoothing(model_path).class_thresholds == ()
  payload['class_thresholds'] = [['no', 0.9]]
  (tmp_path / 'm_smoothing.json').write_text(json.dumps(payload))
  with pytest.raises(ValueError, match='class_thresholds must be an object'):
    streaming.read_smoothing(model_path)


def test_a_threshold_flag_alone_is_every_labels_threshold():
  calibrated = streaming.SmoothingSettings(
      1000, 0.75, 750, 3, class_thresholds=(('no', 0.9),))
  model = streaming.LoadedModel(fakes.ToneModel(RATE), fakes.LABELS, RATE,
                                1000, model_path='m.tflite',
                                smoothing=calibrated)
  assert streaming.smoothing_for(model)[0] == calibrated
  assert streaming.smoothing_for(model, suppression_ms=500)[0] \
      .class_thresholds == (('no', 0.9),)
  only = streaming.smoothing_for(model, detection_threshold=0.6)[0]
  assert (only.detection_threshold, only.class_thresholds) == (0.6, ())
  both = streaming.smoothing_for(
      model, detection_threshold=0.6,
      class_thresholds=streaming.parse_class_thresholds(['yes=0.4']))[0]
  assert both.class_thresholds == (('yes', 0.4),)
  with pytest.raises(ValueError, match=r"\['maybe'\] in --class_thresholds, "
                     'which are not labels of m.tflite'):
    streaming.smoothing_for(model, class_thresholds=(('maybe', 0.5),))
  stale = dataclasses.replace(model, smoothing=streaming.SmoothingSettings(
      class_thresholds={'maybe': 0.5}))
  with pytest.raises(ValueError, match='in m_smoothing.json .write it again'):
    streaming.smoothing_for(stale)
  # Flags say where the settings came from, and that one threshold holds.
  assert streaming.smoothing_for(model, detection_threshold=0.6)[1] == (
      '--detection_threshold (one threshold for every label); the rest '
      'calibrated, m_smoothing.json')
  for bad in (['yes'], ['yes=high'], ['=0.5'], ['yes=0.1', 'yes=0.2']):
    with pytest.raises(ValueError, match='--class_thresholds'):
      streaming.parse_class_thresholds(bad)


def test_short_audio_gives_nothing():
  times, scores = calibration.score_array(fakes.ToneModel(RATE),
                                        np.zeros(RATE - 1, np.float32), RATE)
  assert times.shape == (0,)
  assert calibration.detect_from_scores(times, scores, fakes.LABELS) == []


def test_bad_settings_raise():
  with pytest.raises(ValueError, match='at least one sample'):
    streaming.StreamingRecognizer(fakes.ToneModel(RATE), fakes.LABELS,
                                  clip_stride_ms=0.01)
  with pytest.raises(ValueError, match='scores'):
    streaming.recognize_array(lambda clip: np.ones(3), np.zeros(RATE),
                              fakes.LABELS)


def test_speed_benchmark_measures():
  from benchmarks import streaming_speed  # pylint: disable=g-import-not-at-top
  audio = fakes.place_words(WORDS, 5000, RATE)
  truth = [(fakes.LABEL_OF_WORD[w], t) for t, w in WORDS.items()]
  result = streaming_speed.measure(
      fakes.ToneModel(RATE), fakes.LABELS, audio, sample_rate=RATE,
      clip_duration_ms=1000, ground_truth=truth)
  assert result.model_runs == (5000 - 1000) // 30 + 1
  assert result.audio_seconds == 5.0
  assert 0 < result.real_time_factor < 1
  assert result.stats.num_correct == 3
  assert -400 <= result.stats.mean_delay_ms <= 200
  assert result.latency_ms > result.stats.mean_delay_ms + 1000
  assert 'real-time factor' in result.report()


@hypothesis.settings(max_examples=20, deadline=None, database=None)
@hypothesis.given(cuts=st.lists(st.integers(0, 5 * RATE), max_size=25),
       stride_ms=st.sampled_from([30, 250, 1500]))
def test_any_chunking_gives_the_same_clips_and_detections(cuts, stride_ms):
  # Chunks of any sizes (empty ones too), as a network or a sound card
  # delivers them: the same clips, scores and detections as one piece.
  audio = fakes.place_words(WORDS, 5000, RATE)
  bounds = [0, *sorted(cuts), audio.shape[0]]
  model = fakes.ToneModel(RATE)

  def run(pieces):
    clips = []
    recognizer = streaming.StreamingRecognizer(
        lambda c: (clips.append(c.copy()), model(c))[1], fakes.LABELS,
        sample_rate=RATE, clip_stride_ms=stride_ms)
    detections = [d for piece in pieces for d in recognizer.process(piece)]
    return detections, clips

  want_detections, want_clips = run([audio])
  detections, clips = run([audio[a:b] for a, b in zip(bounds, bounds[1:])])
  assert detections == want_detections
  assert len(clips) == len(want_clips)
  for got, want in zip(clips, want_clips):
    np.testing.assert_array_equal(got, want)


@pytest.fixture(scope='module')
def shipped_streaming_model():
  path = os.path.join(inference.SHIPPED_DIR, 'model_streaming.tflite')
  if not os.path.isfile(path):
    pytest.skip('No streaming model is shipped with this copy.')
  return streaming.load_model(path)


def test_a_streaming_model_steps_to_the_scores_of_its_clips(
    shipped_streaming_model):
  """Its own steps give, bit for bit, the scores of re-priming the model at
  every clip (the recogniser's clips, cut from the stream), for streams that
  share the model, in any chunks."""
  model = shipped_streaming_model
  adaptor = model.predict_fn
  assert isinstance(adaptor, streaming_inference.ClipAdaptor)
  audio = fakes.place_words({300.0: 'yes', 1500.0: 'no'}, 3000, RATE)
  audio += np.random.default_rng(0).normal(0, 0.02, audio.shape).astype(
      np.float32)
  as_clips = lambda clip: adaptor(clip)  # No steps: re-primed at each clip.
  want_times, want = calibration.score_array(
      as_clips, audio, clip_stride_ms=model.clip_stride_ms)
  assert adaptor.reprimes == len(want_times) > 0

  recognizer = streaming.StreamingRecognizer(
      adaptor, model.labels, clip_stride_ms=model.clip_stride_ms)
  clip, stride = recognizer.clip_samples, recognizer.stride_samples
  two = [adaptor.steps(clip, stride), adaptor.steps(clip, stride)]
  got = [[], []]
  # Two streams, interleaved, in different chunks.
  for i in range(0, audio.shape[0], 700):
    got[0] += two[0].push(audio[i:i + 700])
    got[1] += two[1].push(audio[2 * i:2 * i + 1400])
  for results in got:
    np.testing.assert_array_equal([start * 1000 / RATE for start, _ in results],
                                  want_times)
    np.testing.assert_array_equal(np.stack([s for _, s in results]), want)
  assert adaptor.reprimes == len(want_times)  # The steps never re-prime.
  assert recognizer.process(audio) == streaming.recognize_array(
      as_clips, audio, model.labels, clip_stride_ms=model.clip_stride_ms)
