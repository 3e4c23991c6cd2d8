#!/usr/bin/env bash
# Chooses a model's streaming settings on validation words and measures them
# on test words, in the streams the README reports:
#
#   experiments/streaming_calibration.sh MODEL DATA_DIR OUT [--write]
#       [--ignore_unknown]
#
# MODEL: a .tflite file. DATA_DIR: an unpacked Speech Commands folder (with
# its split lists), e.g. /tmp/kws_data. OUT: where the streams, the ROC and
# the reports go. --write keeps the chosen settings beside the model
# (<stem>_smoothing.json), which the streaming tools then use.
# --ignore_unknown chooses and scores the commands-only recogniser
# (_unknown_ never reported; docs/streaming.md); the report's "tutorial"
# rows stay the tutorial's recogniser and scoring, so their percentages are
# of all words, the chosen rows' of the command words.
#
# 1. A 30-minute stream of validation words (30% non-command words), and
#    streaming_roc over a grid of thresholds, windows and suppressions: the
#    chosen point has the most correct detections among those whose wrong
#    detections and false positives stay within 3% of the words.
# 2. Three 10-minute streams of test words: the tutorial's mix (30%
#    non-command words), non-command words only, and background noise
#    alone; each scored with the tutorial's settings and the chosen ones.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  sed -n '2,24p' "$0"
  exit 2
fi
model=$(realpath "$1")
data=$(realpath "$2")
out=$(realpath -m "$3")
shift 3
write=
ignore_unknown=false
for option in "$@"; do
  case $option in
    --write) write=--write ;;
    --ignore_unknown) ignore_unknown=true ;;
    *) echo "Unknown option $option; see the usage above." >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
mkdir -p "$out"
stream() {  # name, then generate_streaming_test_wav flags
  local name=$1
  shift
  python -m kws_jax.generate_streaming_test_wav --data_dir="$data" \
      --output_audio_file="$out/$name.wav" \
      --output_labels_file="$out/$name.txt" "$@" 2>>"$out/generate.log"
}
stream validation --split=validation --test_duration_seconds=1800 --seed=1
roc_flags=(--graph="$model" --wav="$out/validation.wav"
           --ground_truth="$out/validation.txt" --output_dir="$out/roc"
           --thresholds=0.3,0.4,0.5,0.6,0.7,0.8,0.9
           --average_window_ms=500,750,1000 --suppression_ms=750,1500
           --minimum_count=3 --ignore_unknown="$ignore_unknown")
if [[ $write == --write ]]; then
  roc_flags+=(--write_smoothing)
fi
python -m kws_jax.streaming_roc "${roc_flags[@]}" 2>>"$out/roc.log" \
    | tee "$out/roc.txt" | grep -E '^(In use|Chosen|Wrote)'
chosen=$(grep '^Chosen:' "$out/roc.txt")
# "Chosen: window W ms, threshold T, suppression S ms, minimum count C (...)"
read -r w t s c < <(echo "$chosen" | sed -E \
    's/^Chosen: window ([0-9.]+) ms, threshold ([0-9.]+), suppression ([0-9.]+) ms, minimum count ([0-9]+).*/\1 \2 \3 \4/')
tutorial=(--average_window_ms=500 --detection_threshold=0.7
          --suppression_ms=1500 --minimum_count=3 --ignore_unknown=false)
picked=(--average_window_ms="$w" --detection_threshold="$t"
        --suppression_ms="$s" --minimum_count="$c"
        --ignore_unknown="$ignore_unknown")
stream mixed --seed=0
stream non_command --seed=0 --unknown_percentage=100
stream noise --seed=0 --noise_only
for name in mixed non_command noise; do
  for point in tutorial chosen; do
    if [[ $point == tutorial ]]; then settings=("${tutorial[@]}");
    else settings=("${picked[@]}"); fi
    echo "== $name stream, $point settings"
    python -m kws_jax.test_streaming_accuracy --graph="$model" \
        --wav="$out/$name.wav" --ground_truth="$out/$name.txt" \
        "${settings[@]}" 2>>"$out/accuracy.log"
  done
done | tee "$out/report.txt"
