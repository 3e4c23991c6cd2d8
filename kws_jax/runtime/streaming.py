"""Keyword spotting on a continuous audio stream.

The model classifies one clip (`clip_duration_ms`, usually 1000 ms) at a time.
`StreamingRecognizer` takes audio in chunks of any size, runs the model every
`clip_stride_ms` over the latest clip and smooths the scores with
`RecognizeCommands`, as the TensorFlow tutorial's `test_streaming_accuracy`
does. Whole files and arrays (`recognize_file`, `recognize_array`) go through
the very same object, so offline results equal live ones.

The recogniser sees a model through one step interface, `ScoreSteps`: audio
in, (clip start, scores) out for each clip. A clip classifier (a
`PredictFn`, e.g. `inference.Recognizer.predict`) gets `WindowSteps`, which
cuts the clips from the stream and scores each; a model that runs along the
stream itself offers its own steps (`SteppedModel.steps`), as a streaming
TFLite model does at its stride (`streaming_inference.ClipAdaptor`).

Timing, as in the tutorial: the k-th model run looks at samples
[k * stride, k * stride + clip) and its time is the start of that clip,
`k * stride * 1000 / sample_rate` ms. A detection's `time_ms` is therefore
the start of the clip that triggered it; that clip's audio has only fully
arrived `clip_duration_ms` later. The last run is the last clip that fits
entirely in the audio received (the stream is not padded).

For tuning (ROC sweeps), `calibration.score_array` runs the model once
through the same steps and keeps the per-stride scores, and
`calibration.detect_from_scores` replays them with other settings, so
`detect_from_scores(*score_array(...))` equals `recognize_array(...)`.
"""

import dataclasses
import json
import os
from typing import (Any, Callable, Iterator, Mapping, Protocol, Sequence,
                    runtime_checkable)

import numpy as np

from kws_jax import audio_io
from kws_jax import files
from kws_jax.runtime import inference
from kws_jax.runtime import recognize_commands
from kws_jax.runtime import streaming_inference

# Maps one clip, float32 [clip_samples] in [-1, 1], to scores float [C].
PredictFn = Callable[[np.ndarray], np.ndarray]

SILENCE_LABEL = recognize_commands.SILENCE_LABEL
UNKNOWN_LABEL = recognize_commands.UNKNOWN_LABEL

# The tutorial's test_streaming_accuracy settings.
DEFAULT_CLIP_STRIDE_MS = 30.0
DEFAULT_AVERAGE_WINDOW_MS = 500.0
DEFAULT_DETECTION_THRESHOLD = 0.7
DEFAULT_SUPPRESSION_MS = 1500.0
DEFAULT_MINIMUM_COUNT = 3


# The calibrated `RecognizeCommands` settings of a model live beside it as
# `<stem>_smoothing.json` (written by `streaming_roc --write_smoothing`).
SMOOTHING_SUFFIX = '_smoothing.json'
_FROM_MODEL = ' (default: the model\'s calibrated setting, else {})'


def define_smoothing_flags() -> None:
  """Defines the streaming tools' shared absl flags.

  --clip_stride_ms (default DEFAULT_CLIP_STRIDE_MS), and --average_window_ms,
  --suppression_ms, --detection_threshold, --minimum_count, --ignore_unknown
  and --class_thresholds, whose default is the model's calibrated setting
  (`smoothing_for`), else the tutorial's value above; called by each tool's
  own flag definitions, only when it runs as a program.
  """
  from absl import flags  # Only programs define flags.
  flags.DEFINE_float('clip_stride_ms', DEFAULT_CLIP_STRIDE_MS,
                     'How often to run the model, ms.')
  flags.DEFINE_float('average_window_ms', None,
                     'Length of the window to smooth results over, ms' +
                     _FROM_MODEL.format(f'{DEFAULT_AVERAGE_WINDOW_MS:g}'))
  flags.DEFINE_float('suppression_ms', None,
                     'How long to ignore other commands after one, ms' +
                     _FROM_MODEL.format(f'{DEFAULT_SUPPRESSION_MS:g}'))
  flags.DEFINE_float('detection_threshold', None,
                     'Smoothed score a command must exceed' +
                     _FROM_MODEL.format(DEFAULT_DETECTION_THRESHOLD))
  flags.DEFINE_integer('minimum_count', None,
                       'Fewest results in the window for an answer' +
                       _FROM_MODEL.format(DEFAULT_MINIMUM_COUNT))
  flags.DEFINE_bool('ignore_unknown', None,
                    'Commands only: never report _unknown_, which then '
                    'neither suppresses nor is scored' +
                    _FROM_MODEL.format('off'))
  flags.DEFINE_list('class_thresholds', None,
                    'Labels with a threshold of their own, as label=value '
                    'pairs, e.g. off=0.3,_unknown_=0.55; they replace the '
                    'calibrated ones, all of them (default: the model\'s '
                    'calibrated ones, else none; --detection_threshold '
                    'without this flag drops them)')


@dataclasses.dataclass(frozen=True)
class Detection:
  """A newly recognised command.

  Attributes:
    time_ms: start of the clip that triggered it, in ms from the start of the
      stream (not samples).
    label: the command; never `_silence_` (may be `_unknown_`).
    score: its score averaged over the smoothing window (0..1).
  """
  time_ms: float
  label: str
  score: float


@dataclasses.dataclass(frozen=True)
class SmoothingSettings:
  """`RecognizeCommands` settings, all times in ms."""
  average_window_ms: float = DEFAULT_AVERAGE_WINDOW_MS
  detection_threshold: float = DEFAULT_DETECTION_THRESHOLD
  suppression_ms: float = DEFAULT_SUPPRESSION_MS
  minimum_count: int = DEFAULT_MINIMUM_COUNT
  # Commands only (`RecognizeCommands(ignore_unknown=True)`); the scorers
  # then leave `_unknown_` words out of the words to find.
  ignore_unknown: bool = False
  # (label, threshold) pairs: labels whose averaged score must clear a
  # threshold of their own instead of `detection_threshold`
  # (`RecognizeCommands(class_thresholds=...)`). Given as pairs or a
  # mapping; kept as pairs sorted by label, without those equal to
  # `detection_threshold`, so that equal settings compare equal and stay
  # hashable.
  class_thresholds: tuple[tuple[str, float], ...] = ()

  def __post_init__(self):
    pairs = {str(label): float(value)
             for label, value in dict(self.class_thresholds).items()}
    bad = {label: value for label, value in pairs.items()
           if not np.isfinite(value)}
    if bad:
      raise ValueError(f'Class thresholds must be numbers, got {bad}.')
    object.__setattr__(self, 'class_thresholds', tuple(sorted(
        (label, value) for label, value in pairs.items()
        if value != self.detection_threshold)))

  def make(self, labels: Sequence[str]
           ) -> recognize_commands.RecognizeCommands:
    """A fresh `RecognizeCommands` with these settings."""
    return recognize_commands.RecognizeCommands(
        labels, average_window_duration_ms=self.average_window_ms,
        detection_threshold=self.detection_threshold,
        suppression_ms=self.suppression_ms, minimum_count=self.minimum_count,
        ignore_unknown=self.ignore_unknown,
        class_thresholds=dict(self.class_thresholds))

  @classmethod
  def field_names(cls) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))

  def describe(self) -> str:
    own = ''
    if self.class_thresholds:
      own = ' (' + ', '.join(f'{label} {value:g}'
                             for label, value in self.class_thresholds) + ')'
    return (f'window {self.average_window_ms:g} ms, threshold '
            f'{self.detection_threshold:g}{own}, suppression '
            f'{self.suppression_ms:g} ms, minimum count {self.minimum_count}'
            + (', commands only' if self.ignore_unknown else ''))

  def as_json(self) -> dict[str, Any]:
    """The settings as `<stem>_smoothing.json` holds them (class
    thresholds as an object, label: threshold)."""
    payload = dataclasses.asdict(self)
    payload['class_thresholds'] = dict(self.class_thresholds)
    return payload


# SmoothingSettings fields that older settings files lack (their default).
_LATER_FIELDS = ('ignore_unknown', 'class_thresholds')


def parse_class_thresholds(pairs: Sequence[str]
                           ) -> tuple[tuple[str, float], ...]:
  """'label=value' strings (the --class_thresholds flag) as settings pairs.

  Raises:
    ValueError: a piece that is not label=number, or a label named twice.
  """
  parsed = {}
  for pair in pairs:
    label, sep, value = pair.partition('=')
    try:
      if not sep or not label:
        raise ValueError
      number = float(value)
    except ValueError:
      raise ValueError(
          f'--class_thresholds takes label=value pairs, e.g. '
          f'off=0.3,_unknown_=0.55; got {pair!r}.') from None
    if label in parsed:
      raise ValueError(f'--class_thresholds names {label} twice.')
    parsed[label] = number
  return tuple(parsed.items())


def smoothing_path(model_path: str | os.PathLike[str]) -> str:
  """`<stem>_smoothing.json` beside the model."""
  stem = os.path.splitext(os.fspath(model_path))[0]
  return stem + SMOOTHING_SUFFIX


def read_smoothing(model_path: str | os.PathLike[str]
                   ) -> SmoothingSettings | None:
  """The model's calibrated settings, or None when it has none.

  Raises:
    ValueError: the file exists but is not a settings file (the message
      names it).
  """
  path = smoothing_path(model_path)
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding='utf-8') as f:
      payload = json.load(f)
    # Each field has the type of its default (float, or int for the count;
    # a yes/no field must be a JSON true or false, not a string); a field
    # added after files were first written may be missing.
    values = {}
    for field in dataclasses.fields(SmoothingSettings):
      if field.name in _LATER_FIELDS and field.name not in payload:
        continue
      value = payload[field.name]
      if isinstance(field.default, bool) and not isinstance(value, bool):
        raise TypeError(f'{field.name} must be true or false, got {value!r}')
      if field.name == 'class_thresholds':
        if not isinstance(value, dict):
          raise TypeError('class_thresholds must be an object, label: '
                          f'threshold, got {value!r}')
        value = value.items()
      values[field.name] = type(field.default)(value)
    return SmoothingSettings(**values)
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(
        f'{path} is not a smoothing settings file ({type(e).__name__}: {e}); '
        'write it again with streaming_roc --write_smoothing, or delete it '
        'to use the tutorial\'s settings.') from e


def write_smoothing(model_path: str | os.PathLike[str],
                    settings: SmoothingSettings,
                    details: dict[str, Any]) -> str:
  """Writes `settings` (and how they were chosen) beside the model.

  Returns:
    The path written (through a temporary file, so never half-written).
  """
  if not os.fspath(model_path):
    raise ValueError('write_smoothing needs the model\'s path.')
  path = smoothing_path(model_path)
  payload = dict(settings.as_json(), **details)
  files.write_atomic(path, json.dumps(payload, indent=2) + '\n')
  return path


def smoothing_for(model: 'LoadedModel', **flag_values: float | int | None
                  ) -> tuple[SmoothingSettings, str]:
  """The settings a tool uses, and where they came from, for the log.

  Each of `average_window_ms`, `detection_threshold`, `suppression_ms`,
  `minimum_count`, `ignore_unknown` and `class_thresholds` is the flag's
  value when given (not None), else the model's calibrated value
  (`<stem>_smoothing.json`), else the tutorial's; a `detection_threshold`
  given without `class_thresholds` is every label's threshold (the
  calibrated class thresholds are dropped).

  Raises:
    ValueError: a class threshold of a label the model does not have.
  """
  base = model.smoothing or SmoothingSettings()
  given = {k: v for k, v in flag_values.items() if v is not None}
  unknown = set(given) - set(SmoothingSettings.field_names())
  if unknown:
    raise TypeError(f'Not smoothing settings: {sorted(unknown)}')
  settings = dataclasses.replace(base, **given)
  dropped = ('detection_threshold' in given and
             'class_thresholds' not in given and base.class_thresholds)
  if dropped:
    settings = dataclasses.replace(settings, class_thresholds=())
  strangers = [label for label, _ in settings.class_thresholds
               if label not in model.labels]
  if strangers:
    where = ('--class_thresholds' if 'class_thresholds' in given else
             f'{smoothing_path(model.model_path)} (write it again with '
             'streaming_roc --write_smoothing, or delete it)')
    raise ValueError(
        f'Class thresholds for {strangers} in {where}, which are not labels '
        f'of {model.model_path or "the model"}: '
        f'{", ".join(model.labels)}.')
  source = (f'calibrated, {smoothing_path(model.model_path)}'
            if model.smoothing else 'the tutorial\'s defaults')
  if given:
    flags_given = ', '.join(f'--{k}' for k in given)
    if dropped:
      flags_given += ' (one threshold for every label)'
    source = (flags_given
              if len(given) == len(SmoothingSettings.field_names()) else
              f'{flags_given}; the rest {source}')
  return settings, source


def smoothing_from_flags(model: 'LoadedModel', flag_values: Any
                         ) -> tuple[SmoothingSettings, str]:
  """`smoothing_for` with the flags of `define_smoothing_flags`."""
  values = {name: getattr(flag_values, name)
            for name in SmoothingSettings.field_names()}
  if values['class_thresholds'] is not None:
    values['class_thresholds'] = parse_class_thresholds(
        values['class_thresholds'])
  return smoothing_for(model, **values)


def ms_to_samples(duration_ms: float, sample_rate: int) -> int:
  """Converts ms to a whole number of samples, rounding.

  For the tools' other durations (frames, blocks, gaps); a clip's and a
  stride's length is `audio_io.samples_per_clip`, the tutorial's rule.
  """
  return int(round(sample_rate * duration_ms / 1000.0))


def _smooth(smoother: recognize_commands.RecognizeCommands, time_ms: float,
            scores: np.ndarray) -> tuple[
                recognize_commands.RecognizeResult, Detection | None]:
  """One step of the shared path: scores at `time_ms` → maybe a detection."""
  result = smoother.process_latest_result(scores, time_ms)
  if result.is_new_command and result.found_command != SILENCE_LABEL:
    return result, Detection(time_ms, result.found_command, result.score)
  return result, None


class ScoreSteps(Protocol):
  """A model run along one stream: the recogniser's step interface.

  `push` takes the stream's next samples, float32 [n] (n may be 0), and
  returns (first sample of the clip, scores float32 [C]) for each clip
  [k * stride, k * stride + clip) whose last sample arrived, in order; the
  results do not depend on how the stream is chunked. `reset` starts a new
  stream.
  """

  def reset(self) -> None:
    ...

  def push(self, chunk: np.ndarray) -> list[tuple[int, np.ndarray]]:
    ...


@runtime_checkable
class SteppedModel(Protocol):
  """A model that runs along a stream itself (a streaming model)."""

  def steps(self, clip_samples: int, stride_samples: int
            ) -> ScoreSteps | None:
    """Its steps for this clip and stride; None where it has none (the
    recogniser then calls it on each clip, as a `PredictFn`)."""


class _ClipWindows:
  """Cuts a chunked stream into clips of `clip` samples every `stride`."""

  def __init__(self, clip_samples: int, stride_samples: int):
    self._clip = clip_samples
    self._stride = stride_samples
    self.reset()

  def reset(self) -> None:
    # `_buffer[:_fill]` holds stream samples from absolute index `_start` on.
    self._buffer = np.zeros(2 * self._clip + self._stride, np.float32)
    self._fill = 0
    self._start = 0
    self._next = 0  # Absolute index of the next clip's first sample.

  def push(self, chunk: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Adds samples; yields (first sample index, clip copy) per full clip."""
    chunk = np.asarray(chunk, np.float32).reshape(-1)
    pos = 0
    while pos < chunk.shape[0]:
      # Samples before the next clip's start are never needed again.
      drop = min(self._next - self._start, self._fill)
      if drop > 0:
        self._buffer[:self._fill - drop] = self._buffer[drop:self._fill]
        self._fill -= drop
        self._start += drop
      if self._fill == 0 and self._start < self._next:
        # A stride longer than the clip: skip samples no clip uses.
        skip = min(self._next - self._start, chunk.shape[0] - pos)
        self._start += skip
        pos += skip
        continue
      take = min(self._buffer.shape[0] - self._fill, chunk.shape[0] - pos)
      self._buffer[self._fill:self._fill + take] = chunk[pos:pos + take]
      self._fill += take
      pos += take
      while self._next + self._clip <= self._start + self._fill:
        offset = self._next - self._start
        yield self._next, self._buffer[offset:offset + self._clip].copy()
        self._next += self._stride


class WindowSteps:
  """A clip classifier's steps: each clip cut from the stream and scored."""

  def __init__(self, predict_fn: PredictFn, clip_samples: int,
               stride_samples: int):
    self._predict_fn = predict_fn
    self._windows = _ClipWindows(clip_samples, stride_samples)

  def reset(self) -> None:
    self._windows.reset()

  def push(self, chunk: np.ndarray) -> list[tuple[int, np.ndarray]]:
    return [(start, np.asarray(self._predict_fn(clip), np.float32).reshape(-1))
            for start, clip in self._windows.push(chunk)]


def steps_for(model: PredictFn | SteppedModel, clip_samples: int,
              stride_samples: int) -> ScoreSteps:
  """The steps of `model` along a stream: its own, else `WindowSteps`."""
  if isinstance(model, SteppedModel):
    steps = model.steps(clip_samples, stride_samples)
    if steps is not None:
      return steps
  return WindowSteps(model, clip_samples, stride_samples)


def clip_and_stride(clip_duration_ms: float, clip_stride_ms: float,
                    sample_rate: int) -> tuple[int, int]:
  """(clip, stride) in samples; ValueError where either has none."""
  clip_samples = audio_io.samples_per_clip(sample_rate, clip_duration_ms)
  # The stride rounds (a streaming model's stride comes back from ms that
  # its samples were turned into, and must not lose one).
  stride_samples = ms_to_samples(clip_stride_ms, sample_rate)
  if clip_samples <= 0 or stride_samples <= 0:
    raise ValueError(
        f'clip_duration_ms={clip_duration_ms} and clip_stride_ms='
        f'{clip_stride_ms} must each be at least one sample at '
        f'{sample_rate} Hz.')
  return clip_samples, stride_samples


class StreamingRecognizer:
  """Runs a clip classifier over a stream and reports commands.

  Feed audio with `process(chunk)` in chunks of any size (a remainder is kept
  for the next call); each call returns the commands detected in it. The
  results do not depend on how the audio is chunked.
  """

  def __init__(self, predict_fn: PredictFn | SteppedModel,
               labels: Sequence[str],
               sample_rate: int = 16000,
               clip_duration_ms: float = 1000,
               clip_stride_ms: float = DEFAULT_CLIP_STRIDE_MS,
               average_window_ms: float = DEFAULT_AVERAGE_WINDOW_MS,
               detection_threshold: float = DEFAULT_DETECTION_THRESHOLD,
               suppression_ms: float = DEFAULT_SUPPRESSION_MS,
               minimum_count: int = DEFAULT_MINIMUM_COUNT,
               ignore_unknown: bool = False,
               class_thresholds: (tuple[tuple[str, float], ...] |
                                  Mapping[str, float]) = ()):
    """Initialises the recognizer.

    Args:
      predict_fn: the model: a clip classifier, float32 [clip_samples] to
        scores float [C] (probabilities in `labels` order), e.g.
        `inference.Recognizer.predict`; or a `SteppedModel` (a streaming
        model's `LoadedModel.predict_fn`), run through its own steps.
      labels: class names, `_silence_` among them.
      sample_rate: of the audio fed in, Hz.
      clip_duration_ms: the model's input length in ms.
      clip_stride_ms: run the model every this many ms of audio.
      average_window_ms: `RecognizeCommands` smoothing window, ms.
      detection_threshold: averaged score a command must exceed (0..1).
      suppression_ms: quiet time after a command before another, ms.
      minimum_count: fewest results in the window for an answer.
      ignore_unknown: commands only: never report `_unknown_`.
      class_thresholds: labels with a threshold of their own, as (label,
        threshold) pairs or a mapping.

    Raises:
      ValueError: a duration that gives no samples, or a class threshold of
        a label not in `labels`.
    """
    if sample_rate <= 0:
      raise ValueError(f'sample_rate must be positive, got {sample_rate}.')
    self._labels = list(labels)
    self._sample_rate = int(sample_rate)
    self._clip_samples, self._stride_samples = clip_and_stride(
        clip_duration_ms, clip_stride_ms, sample_rate)
    self._settings = SmoothingSettings(
        average_window_ms, detection_threshold, suppression_ms,
        minimum_count, ignore_unknown, class_thresholds)
    self._smoother = self._settings.make(self._labels)
    self._steps = steps_for(predict_fn, self._clip_samples,
                            self._stride_samples)
    self.reset()

  @property
  def labels(self) -> list[str]:
    return list(self._labels)

  @property
  def sample_rate(self) -> int:
    return self._sample_rate

  @property
  def clip_samples(self) -> int:
    return self._clip_samples

  @property
  def stride_samples(self) -> int:
    return self._stride_samples

  @property
  def settings(self) -> SmoothingSettings:
    return self._settings

  @property
  def latest_scores(self) -> np.ndarray | None:
    """float32 [C]: the model's scores for the latest clip (a live meter);
    None before the first full clip."""
    return self._latest_scores

  @property
  def latest_time_ms(self) -> float | None:
    """Start time in ms of the latest clip scored; None before the first."""
    return self._latest_time_ms

  @property
  def latest_result(self) -> recognize_commands.RecognizeResult | None:
    """The smoothed result after the latest clip; None before the first."""
    return self._latest_result

  @property
  def duration_ms(self) -> float:
    """Audio received so far, in ms."""
    return self._samples_seen * 1000.0 / self._sample_rate

  def reset(self) -> None:
    """Starts a new stream: drops buffered audio, scores and smoothing."""
    self._steps.reset()
    self._smoother.reset()
    self._samples_seen = 0
    self._latest_scores = None
    self._latest_time_ms = None
    self._latest_result = None

  def sample_to_ms(self, sample_index: int) -> float:
    """Time in ms of stream sample `sample_index`."""
    return sample_index * 1000.0 / self._sample_rate

  def process(self, chunk: np.ndarray) -> list[Detection]:
    """Adds audio and returns the commands detected.

    Args:
      chunk: float32 [n] samples in [-1, 1] at `sample_rate`; n may be 0.

    Returns:
      New detections in time order.
    """
    chunk = np.asarray(chunk, np.float32).reshape(-1)
    self._samples_seen += chunk.shape[0]
    detections = []
    for start, scores in self._steps.push(chunk):
      detection = self._update(self.sample_to_ms(start), scores)
      if detection is not None:
        detections.append(detection)
    return detections

  def _update(self, time_ms: float, scores: np.ndarray) -> Detection | None:
    self._latest_scores = scores
    self._latest_time_ms = time_ms
    self._latest_result, detection = _smooth(self._smoother, time_ms, scores)
    return detection


def recognize_array(predict_fn: PredictFn | SteppedModel, audio: np.ndarray,
                    labels: Sequence[str], **kwargs) -> list[Detection]:
  """Runs a whole recording through a fresh `StreamingRecognizer`.

  Args:
    predict_fn: as for `StreamingRecognizer`.
    audio: float32 [T] at the recognizer's sample rate.
    labels: class names.
    **kwargs: `StreamingRecognizer` settings (sample_rate, clip_duration_ms,
      clip_stride_ms, and the fields of `SmoothingSettings`).

  Returns:
    All detections, in time order.
  """
  recognizer = StreamingRecognizer(predict_fn, labels, **kwargs)
  return recognizer.process(audio)


def recognize_file(predict_fn: PredictFn | SteppedModel,
                   path: str | os.PathLike[str],
                   labels: Sequence[str], sample_rate: int = 16000,
                   **kwargs) -> list[Detection]:
  """Runs `recognize_array` on an audio file, resampled to `sample_rate`."""
  audio = audio_io.read_audio(path, sample_rate)
  return recognize_array(predict_fn, audio, labels, sample_rate=sample_rate,
                         **kwargs)


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """A classifier ready for streaming.

  Attributes:
    predict_fn: the model as `StreamingRecognizer` takes it: clip float32
      [clip_samples] → probabilities float32 [C], which for a streaming
      model is also a `SteppedModel` (`streaming_inference.ClipAdaptor`).
    labels: class names.
    sample_rate: Hz the model expects.
    clip_duration_ms: the model's input length, ms.
    clip_stride_ms: for a streaming model, the stride it is made for (run
      the recognizer with it: any other stride re-primes the model at every
      clip, which is correct but slow); None for a clip model.
    model_path: the .tflite file.
    smoothing: its calibrated settings (`<stem>_smoothing.json`), if any.
  """
  predict_fn: PredictFn | SteppedModel
  labels: list[str]
  sample_rate: int
  clip_duration_ms: float
  clip_stride_ms: float | None = None
  model_path: str = ''
  smoothing: SmoothingSettings | None = None


def load_model(model_path: str | None = None, labels_path: str | None = None,
               num_threads: int = 1) -> LoadedModel:
  """Loads a TFLite model with `inference.Recognizer` (None: shipped model).

  A streaming model (`tflite_export.convert --streaming`) is loaded with
  `streaming_inference.StreamingTFLiteModel` instead; at its stride the
  recogniser runs it one call a stride (`ClipAdaptor.steps`).

  Args:
    model_path: a .tflite file, or None for the shipped model.
    labels_path: its labels file, or None for the one beside it / shipped.
    num_threads: CPU threads for the interpreter.
  """
  if model_path is not None and streaming_inference.is_streaming_model(
      model_path):
    model = streaming_inference.StreamingTFLiteModel(
        model_path, labels_path, num_threads)
    return LoadedModel(
        predict_fn=model.predict_fn(), labels=list(model.labels),
        sample_rate=model.sample_rate,
        clip_duration_ms=model.clip_samples * 1000.0 / model.sample_rate,
        clip_stride_ms=model.clip_stride_ms, model_path=model_path,
        smoothing=read_smoothing(model_path))
  recognizer = inference.Recognizer(model_path=model_path,
                                    labels_path=labels_path,
                                    num_threads=num_threads)
  return LoadedModel(
      predict_fn=recognizer.predict, labels=list(recognizer.labels),
      sample_rate=int(recognizer.sample_rate),
      clip_duration_ms=recognizer.clip_samples * 1000.0 /
      recognizer.sample_rate, model_path=recognizer.model_path,
      smoothing=read_smoothing(recognizer.model_path))
