# Sourced (not run) by streaming_calibration.sh and calibration_rule_check.sh:
# how their streams are made, the settings streaming_roc tries, and reading
# its choice, kept in one place so the rule check measures exactly the
# calibration's rule. Needs $data (a Speech Commands folder) and $out.

# streaming_roc takes its streams as a comma list, so a comma in the
# output folder would split a path.
if [[ $out == *,* ]]; then
  echo "OUT ($out) has a comma, which would split the stream list; choose a folder without one." >&2
  exit 2
fi

# stream NAME [generate_streaming_test_wav flags]: $out/NAME.wav and .txt.
stream() {
  local name=$1
  shift
  python -m kws_jax.generate_streaming_test_wav --data_dir="$data" \
      --output_audio_file="$out/$name.wav" \
      --output_labels_file="$out/$name.txt" "$@" 2>>"$out/generate.log"
}

# validation_half H: 30 minutes of the validation words of speaker half H
# (1 or 2; the halves share no speaker), as $out/validation_H.wav and .txt.
validation_half() {
  stream "validation_$1" --split=validation --speaker_group="$1/2" \
      --test_duration_seconds=1800 --seed="$1"
}

# unseen_validation_stream I K: 20 minutes of fold I of K's validation
# non-command words alone, as $out/unseen_validation_I.wav and .txt.
unseen_validation_stream() {
  stream "unseen_validation_$1" --split=validation \
      --unseen_words_fold="$1/$2" --unknown_percentage=100 \
      --test_duration_seconds=1200 --seed="$((10 + $1))"
}

# unseen_roc_flags [LEFT_OUT]: streaming_roc's --unseen_words_* flags, one
# a line, for the unseen validation streams and fold models of every fold
# of $folds but LEFT_OUT (none left out without it).
unseen_roc_flags() {
  local i wavs=() truths=() graphs=()
  for i in $(seq "$folds"); do
    if [[ $i == "${1:-0}" ]]; then continue; fi
    wavs+=("$out/unseen_validation_$i.wav")
    truths+=("$out/unseen_validation_$i.txt")
    graphs+=("$out/unseen_fold_$i.tflite")
  done
  local IFS=,
  echo "--unseen_words_wav=${wavs[*]}"
  echo "--unseen_words_ground_truth=${truths[*]}"
  echo "--unseen_words_graph=${graphs[*]}"
}

# The settings streaming_roc tries.
# (The thresholds: runtime/calibration.py's DEFAULT_THRESHOLDS.)
roc_grid=(--average_window_ms=500,750,1000 --suppression_ms=750,1500
          --minimum_count=3)

# chosen_settings ROC_DIR: streaming_roc's chosen point (the row marked
# chosen in ROC_DIR/roc.csv) as test_streaming_accuracy flags, its labels'
# own thresholds included.
chosen_settings() {
  python -c 'import csv, sys
try:
  with open(sys.argv[1], encoding="utf-8") as f:
    rows = [row for row in csv.DictReader(f) if row.get("chosen") == "True"]
except OSError as e:
  sys.exit(f"Cannot read {sys.argv[1]} ({e.strerror}): streaming_roc did "
           "not finish; see its log beside the folder.")
if len(rows) != 1:
  sys.exit(f"{sys.argv[1]} marks {len(rows)} chosen points, not 1; see the "
           "streaming_roc log beside it.")
row = rows[0]
for name in ("average_window_ms", "detection_threshold", "suppression_ms",
             "minimum_count"):
  print("--" + name + "=" + row[name])
if row.get("class_thresholds"):
  print("--class_thresholds=" + ",".join(row["class_thresholds"].split()))' \
      "$1/roc.csv"
}

# split_points POINTS: the workdirs of a comma-separated list, one a line,
# read as kws_jax reads such lists (config_validation.split_paths: sweep
# folders named by their settings, 'lr=0.01,seed=1', stay whole).
split_points() {
  python -c 'import sys
from kws_jax import config_validation
for path in config_validation.split_paths(sys.argv[1]):
  print(path)' "$1"
}

# unseen_fold_count POINT: k, the number of unseen-words folds that ran
# beside the training workdir POINT (POINT,fold=1_k ... POINT,fold=k_k).
# POINT may be several workdirs, comma-separated (an ensemble's members):
# each needs the same k folds.
unseen_fold_count() {
  local point first k=
  local -a points
  mapfile -t points < <(split_points "$1")
  for point in "${points[@]}"; do
    first=$(compgen -G "$point,fold=1_*" | head -n 1 || true)
    if [[ -z $first ]]; then
      echo "No unseen-words folds beside $point (looked for $point,fold=1_k): run them first, e.g. experiments.sweep without --only, or --config.unseen_words_fold=i/k into $point,fold=i_k." >&2
      return 1
    fi
    if [[ -n $k && ${first##*_} != "$k" ]]; then
      echo "$point has ${first##*_} unseen-words folds, the workdir before it $k: an ensemble's members need the same folds." >&2
      return 1
    fi
    k=${first##*_}
    for i in $(seq "$k"); do
      if [[ ! -d "$point,fold=${i}_$k" ]]; then
        echo "Fold $i of $k is missing: no $point,fold=${i}_$k." >&2
        return 1
      fi
    done
  done
  echo "$k"
}

# unseen_folds POINT MODEL: resolves POINT's workdirs (relative to
# $invoked_from), sets $unseen_point to them and $folds to their number of
# unseen-words folds, and exports each fold's model (unseen_fold_model,
# deciding with MODEL's offset for an ensemble). Fails, naming what is
# missing, before any stream is made.
unseen_folds() {
  local point offset
  local -a points=()
  while read -r point; do
    points+=("$(cd "$invoked_from" && realpath -m "$point")")
  done < <(split_points "$1")
  unseen_point=$(IFS=,; echo "${points[*]}")
  folds=$(unseen_fold_count "$unseen_point")
  offset=$(python -c 'import json, sys; print(json.load(open(sys.argv[1])).get("unknown_offset", 0.0))' "${2%.tflite}_config.json")
  for i in $(seq "$folds"); do
    unseen_fold_model "$unseen_point" "$i" "$folds" "$offset"
  done
}

# unseen_fold_model POINT I K [OFFSET]: fold I of K's model as
# $out/unseen_fold_I.tflite (for several workdirs, the ensemble of their
# fold I runs, deciding with OFFSET, the ensemble's own).
unseen_fold_model() {
  local point runs=
  local -a points offset=()
  mapfile -t points < <(split_points "$1")
  for point in "${points[@]}"; do
    runs+=${runs:+,}$point,fold=$2_$3
  done
  if [[ ${#points[@]} -gt 1 && -n ${4:-} ]]; then
    offset=(--unknown_offset="$4")
  fi
  python -m tflite_export.convert --workdir="$runs" "${offset[@]}" \
      --output="$out/unseen_fold_$2.tflite" >>"$out/convert.log" 2>&1 || {
    echo "Exporting $runs failed; see $out/convert.log." >&2
    return 1
  }
}
