#!/usr/bin/env bash
# Makes the synthetic speech of experiments/negatives.py (points 4-7): the
# near words of each command and everyday words (as `_unknown_`), and the
# commands themselves, so synthetic speech is in every class; then made-up
# words one sound from each command (point 7 on) and, with
# SYNTH_TWO_SOUNDS=N, up to N a command two sounds from it (point 9: 40).
# About 7,700 + 3,500 (+ 3,200 for N=40) clips: 8.5 + 4 (+ 4) min in one
# process on this 2-core CPU, less with the two processes used here
# (SYNTH_WORKERS=N sets them). SYNTH_PSEUDO_WORDS=0 leaves the made-up
# words out (the folder of points 4-6).
#
#   experiments/synthesize_negatives.sh [OUT] [DATA]
#
# OUT: the folder to write (default /tmp/kws_synth). DATA: the Speech
# Commands archive or folder whose _background_noise_ is mixed into half
# the clips (default ../shared/data/speech_commands_dev.tar.gz). Running it
# again finishes an interrupted folder.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cd - >/dev/null
# Paths given are relative to where the script is run; the default data to
# the repository.
out=$(realpath -m "${1:-/tmp/kws_synth}")
data=$(realpath -m "${2:-$repo/../shared/data/speech_commands_dev.tar.gz}")
cd "$repo"
if [[ -f "$data" ]]; then
  mkdir -p "${out}_noise"
  tar xzf "$data" -C "${out}_noise" _background_noise_
  noise="${out}_noise/_background_noise_"
else
  noise="$data/_background_noise_"
fi
commands=yes,no,up,down,left,right,on,off,stop,go
passes=("--negatives_for=$commands --count=40" "--everyday_words --count=12"
        "--words=$commands --count=200")
if [[ ${SYNTH_PSEUDO_WORDS:-1} != 0 ]]; then
  passes+=("--pseudo_words_for=$commands --count=8
            --pseudo_two_sounds=${SYNTH_TWO_SOUNDS:-0}")
fi
for args in "${passes[@]}"; do
  # shellcheck disable=SC2086
  python -m kws_jax.synthesize $args --out="$out" --background_dir="$noise" \
      --num_workers="${SYNTH_WORKERS:-2}"
done
