#!/usr/bin/env bash
# Exports a trained workdir as the shipped model (clip and streaming
# TFLite) and measures it: test accuracy (float and int8), its streaming
# settings chosen on validation words (streaming_calibration.sh --write),
# a 10-minute stream from the test split, the ROC and speed. Everything
# lands in $OUT; the model in kws_jax/shipped/.
#
#   experiments/ship_default_model.sh WORKDIR DATA_DIR [OUT [UNSEEN_POINT]]
#
# UNSEEN_POINT: a workdir of the same recipe whose unseen-words folds ran
# beside it (e.g. /tmp/sweeps/capacity/w1.2_x2_s0): the settings must then
# also keep the non-command words its fold models never heard from firing
# (streaming_calibration.sh --unseen_words).
set -euo pipefail
workdir=$1
data_dir=$2
out=${3:-/tmp/kws_ship}
unseen=()
if [[ -n ${4:-} ]]; then
  unseen=(--unseen_words="$4")
fi
cd "$(dirname "$0")/.."
mkdir -p "$out" kws_jax/shipped

python -m tflite_export.convert --workdir="$workdir" \
    --output=kws_jax/shipped/model.tflite 2>&1 | tee "$out/convert.log"
python -m tflite_export.convert --workdir="$workdir" --quantize=int8 \
    --data_dir="$data_dir" --output="$out/model_int8.tflite" 2>&1 | tee "$out/convert_int8.log"
python -m tflite_export.convert --workdir="$workdir" --streaming \
    --output=kws_jax/shipped/model_streaming.tflite 2>&1 | tee "$out/convert_streaming.log"
python -m kws_jax.evaluate --model=kws_jax/shipped/model.tflite \
    --data_dir="$data_dir" --split=test --output_dir="$out/eval_test" 2>&1 | tee "$out/eval_test.log"
# The streaming settings, chosen on validation words; the streaming model
# gives the clip model's scores, so it takes the same ones.
experiments/streaming_calibration.sh kws_jax/shipped/model.tflite \
    "$data_dir" "$out/calibration" --write "${unseen[@]}"
cp kws_jax/shipped/model_smoothing.json \
    kws_jax/shipped/model_streaming_smoothing.json
python -m kws_jax.generate_streaming_test_wav --data_dir="$data_dir" \
    --test_duration_seconds=600 --seed=0 \
    --output_audio_file="$out/stream.wav" \
    --output_labels_file="$out/stream_labels.txt" 2>&1 | tee "$out/stream.log"
# The tutorial's settings, as the README's table of shipped models says
# (streaming_calibration.sh's report has the calibrated ones).
python -m kws_jax.test_streaming_accuracy --wav="$out/stream.wav" \
    --ground_truth="$out/stream_labels.txt" --average_window_ms=500 \
    --detection_threshold=0.7 --suppression_ms=1500 --minimum_count=3 \
    --ignore_unknown=false 2>&1 | tee "$out/streaming_accuracy.log"
python -m kws_jax.streaming_roc --wav="$out/stream.wav" \
    --ground_truth="$out/stream_labels.txt" --output_dir="$out/roc" 2>&1 | tee "$out/roc.log"
python -m benchmarks.streaming_speed --wav="$out/stream.wav" \
    --ground_truth="$out/stream_labels.txt" 2>&1 | tee "$out/streaming_speed.log"
