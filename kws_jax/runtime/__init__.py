"""Running an exported model: NumPy and LiteRT only, no JAX, no TensorFlow.

What a phone, a Raspberry Pi or the live app needs once a model is
exported, and nothing of training:

* `inference`: `Recognizer`, a TFLite clip classifier (labels and config
  files beside the model);
* `streaming_inference`: `StreamingTFLiteModel`, a streaming TFLite model
  with external state;
* `recognize_commands`: `RecognizeCommands`, the tutorial's smoothing of
  per-clip scores into detections;
* `streaming`: `StreamingRecognizer`, which runs either kind of model along
  a stream through one step interface (`ScoreSteps`), the calibrated
  smoothing settings, and `load_model`;
* `stream_scoring`: the tutorial's ground-truth files and the scoring of a
  stream's detections against them;
* `calibration`: a stream's scores kept and replayed with other settings,
  and the rules that choose an app's settings from them.

These modules import only NumPy, SciPy (through `kws_jax.audio_io`), absl
and LiteRT (`ai_edge_litert`; TensorFlow's `tf.lite.Interpreter` only where
LiteRT is not installed). tests/test_runtime_boundary.py checks that
importing any of them loads neither JAX nor TensorFlow.
"""
