#!/usr/bin/env bash
# Compare model sizes and LSTM against GRU on the validation split of midi_corpus, at an
# equal budget of epochs. Usage: bash checkpoints/compare.sh [OUT_ROOT] [EPOCHS] ["cell layers units" ...]
# Prints one line per model: cell, size, weights file size, best validation loss
# (nats/token), perplexity, seconds per epoch, training tokens/s.
set -euo pipefail
root="${1:-/tmp/musicgen-compare}"
epochs="${2:-8}"
mkdir -p "$root"
shift $(( $# > 2 ? 2 : $# ))
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=("lstm 2 256" "gru 2 256" "lstm 3 256" "lstm 2 384" "gru 2 384")
for spec in "${specs[@]}"; do
  set -- $spec
  out="$root/$1-$2x$3"
  musicgen train midi_corpus --out "$out" --cell "$1" --layers "$2" --units "$3" \
    --epochs "$epochs" --patience 0 --seed 0 --force --quiet
  musicgen info "$out" --json > "$out/info.json"
  python - "$out/info.json" "$1" "$2" "$3" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
state = info["state"]
size_mb = info["files"]["best.weights.h5"] / 1e6
print(f"{sys.argv[2]:4} {sys.argv[3]}x{sys.argv[4]:<4} weights {size_mb:5.1f} MB  "
      f"best val loss {state['best_val_loss']:.4f} (ppl {state['best_val_perplexity']:.2f}) "
      f"at epoch {state['best_epoch']}  {state['train_seconds'] / state['epoch']:.0f} s/epoch  "
      f"{state['metrics']['tokens_per_second']:.0f} tokens/s")
PY
done
