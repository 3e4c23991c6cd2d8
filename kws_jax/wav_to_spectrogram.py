r"""Draws a clip's spectrogram, or the model's input features, as a PNG.

  python -m kws_jax.wav_to_spectrogram --input_wav=clip.wav \
      --output_image=clip.png
  python -m kws_jax.wav_to_spectrogram --input_wav=clip.wav \
      --output_image=mfcc.png --features --preprocess=mfcc

Without `--features`: the power spectrogram in dB (time in s, frequency in
Hz), computed by the model's own front end (`features.Frontend`: periodic
Hann windows of `--window_size_ms` every `--window_stride_ms`, FFT zero-padded
to a power of two). With `--features`: what the model sees, the front end's
output for `--preprocess` ('mfcc' coefficients, 'logmel' bands or 'average'
pooled spectrum) with `--feature_bin_count` bins. The audio is read at
`--sample_rate` (resampled if the file differs).
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
import jax.numpy as jnp
import numpy as np

from kws_jax import audio_io
from kws_jax import features

# Added to the power before taking dB, so digital silence stays finite.
_POWER_FLOOR = 1e-10

_FEATURE_AXIS = {
    'mfcc': ('MFCC coefficient', 'Coefficient value'),
    'logmel': ('Mel band', 'Log mel energy'),
    'average': ('Frequency band (averaged FFT bins)', 'Power'),
}


def spectrogram_db(audio: np.ndarray,
                   frontend: features.Frontend) -> np.ndarray:
  """Power spectrogram in dB: float32 [frames, fft_length // 2 + 1].

  Args:
    audio: float32 [T] in [-1, 1], T >= one window.
    frontend: gives the framing, window and FFT size.

  Returns:
    10 log10(|rfft|^2 + 1e-10) per frame and bin (0 dB: a full-scale sine's
    peak bin is about +41 dB for a 30 ms window at 16 kHz).
  """
  power = frontend.power_spectrum(jnp.asarray(audio, jnp.float32)[None])[0]
  return np.asarray(10.0 * jnp.log10(power + _POWER_FLOOR), np.float32)


def feature_map(audio: np.ndarray, frontend: features.Frontend) -> np.ndarray:
  """The model's input features: float32 [frames, feature_bin_count]."""
  return np.asarray(frontend(jnp.asarray(audio, jnp.float32)[None])[0])


def frame_times(num_frames: int, frontend: features.Frontend) -> np.ndarray:
  """Centre of each frame in seconds: float [num_frames]."""
  starts = np.arange(num_frames) * frontend.stride_samples
  return (starts + frontend.window_samples / 2) / frontend.sample_rate


def colour_range(values: np.ndarray,
                 preprocess: str | None) -> tuple[float, float]:
  """(vmin, vmax) of the colour scale for values [frames, bins].

  MFCC coefficient 0 (the log energy) is tens of times larger than the
  others and would wash them out; their range is used, and c0 clipped.
  """
  shown = values[:, 1:] if preprocess == 'mfcc' and values.shape[1] > 1 else (
      values)
  return float(shown.min()), float(shown.max())


def render(values: np.ndarray, output_image: str, *, frontend:
           features.Frontend, title: str, as_features: bool) -> None:
  """Writes `values` [frames, bins] as a heat map with labelled axes.

  Time runs along x (frame centres, s). For a spectrogram y is frequency
  (Hz, bin k at k * sample_rate / fft_length); for features y is the
  feature index. The colour bar gives the units.
  """
  from kws_jax import plotting  # pylint: disable=g-import-not-at-top

  frames, bins = values.shape
  times = frame_times(frames, frontend)
  half_step = frontend.stride_samples / frontend.sample_rate / 2
  x_extent = (times[0] - half_step, times[-1] + half_step)
  if as_features:
    y_extent = (-0.5, bins - 0.5)
    y_label, colour_label = _FEATURE_AXIS[frontend.preprocess]
  else:
    bin_hz = frontend.sample_rate / frontend.fft_length
    y_extent = (-bin_hz / 2, (bins - 0.5) * bin_hz)
    y_label, colour_label = 'Frequency (Hz)', 'Power (dB)'

  vmin, vmax = colour_range(values, frontend.preprocess if as_features
                             else None)
  if as_features and frontend.preprocess == 'mfcc':
    colour_label += ' (range of c1 and up; c0 clipped)'

  fig = plotting.new_figure(8, 4.5)
  ax = fig.subplots()
  image = ax.imshow(values.T, origin='lower', aspect='auto',
                    extent=(*x_extent, *y_extent), cmap='magma',
                    interpolation='nearest', vmin=vmin, vmax=vmax)
  colorbar = fig.colorbar(image, ax=ax)
  colorbar.set_label(colour_label)
  ax.set_xlabel('Time (s)')
  ax.set_ylabel(y_label)
  ax.set_title(title)
  fig.tight_layout()
  plotting.save_png(fig, output_image)


def wav_to_image(input_wav: str, output_image: str, *,
                 as_features: bool = False, sample_rate: int = 16000,
                 window_size_ms: float = 30.0, window_stride_ms: float = 10.0,
                 feature_bin_count: int = 40,
                 preprocess: str = 'mfcc') -> np.ndarray:
  """Reads `input_wav` and writes its spectrogram or features to a PNG.

  Returns:
    The values drawn, [frames, bins].

  Raises:
    audio_io.AudioError: the file cannot be read.
    ValueError: the clip is shorter than one window, or bad settings.
  """
  frontend = features.Frontend(
      sample_rate=sample_rate, window_size_ms=window_size_ms,
      window_stride_ms=window_stride_ms, feature_bin_count=feature_bin_count,
      preprocess=preprocess)
  audio = audio_io.read_audio(input_wav, sample_rate)
  if len(audio) < frontend.window_samples:
    raise ValueError(
        f'{audio_io.printable_path(input_wav)}: {len(audio)} samples at '
        f'{sample_rate} Hz are fewer '
        f'than one {window_size_ms} ms window ({frontend.window_samples} '
        'samples).')
  # Matplotlib cannot draw file names that are not UTF-8.
  name = audio_io.printable_path(os.path.basename(input_wav))
  if as_features:
    values = feature_map(audio, frontend)
    title = f'{name}: {preprocess} features ({feature_bin_count} bins)'
  else:
    values = spectrogram_db(audio, frontend)
    title = (f'{name}: spectrogram ({window_size_ms:g} ms windows every '
             f'{window_stride_ms:g} ms)')
  render(values, output_image, frontend=frontend, title=title,
         as_features=as_features)
  return values


def define_flags() -> None:
  """Defines the flags; only when run as a program, so importing this module
  adds no global flags that could clash with other tools'."""
  flags.DEFINE_string('input_wav', None, 'The WAV or FLAC file to draw.')
  flags.DEFINE_string('output_image', None, 'The PNG file to write.')
  flags.DEFINE_bool('features', False, "Draw the model front end's features "
                    'instead of the spectrogram.')
  flags.DEFINE_integer('sample_rate', 16000, 'Hz; the file is resampled to '
                       'it.')
  flags.DEFINE_float('window_size_ms', 30.0, 'Analysis window, ms.')
  flags.DEFINE_float('window_stride_ms', 10.0, 'Hop between windows, ms.')
  flags.DEFINE_integer('feature_bin_count', 40, 'Features per frame '
                       '(--features).')
  flags.DEFINE_enum('preprocess', 'mfcc', list(features.PREPROCESS_TYPES),
                    'Feature type (--features).')
  flags.mark_flags_as_required(['input_wav', 'output_image'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  values = flags.FLAGS
  try:
    wav_to_image(values.input_wav, values.output_image,
                 as_features=values.features, sample_rate=values.sample_rate,
                 window_size_ms=values.window_size_ms,
                 window_stride_ms=values.window_stride_ms,
                 feature_bin_count=values.feature_bin_count,
                 preprocess=values.preprocess)
  except (ValueError, OSError) as e:  # AudioError included.
    print(f'Error: {e}', file=sys.stderr)
    sys.exit(1)
  print(f'Wrote {audio_io.printable_path(values.output_image)}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
