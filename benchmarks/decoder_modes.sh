#!/usr/bin/env bash
# The decoder's training modes on CMUdict G2P at equal wall time (issue 18,
# point 2): teacher forcing, scheduled sampling, the output-fed decoder, and
# the Bernoulli stop instead of </s>. Two runs at a time on one thread each,
# then each one's greedy WER and PER on the 12,000 test words.
#
#   bash benchmarks/decoder_modes.sh [CMUDICT_DIR] [OUT_DIR] [SECONDS]
set -euo pipefail
data=${1:-../shared/data/cmudict_g2p}
out=${2:-runs/decoder_modes}
seconds=${3:-600}
mkdir -p "$out"
common=(--task seq2seq --tokenizer char --target-tokenizer word --hidden-size 256 --embedding-dim 64
        --num-layers 2 --batch-size 128 --dropout 0.3 --val-fraction 0.03 --time-limit "$seconds"
        --eval-every 100000 --log-every 100)
pair() {  # name flags... -- name flags...
  local a=$1; shift; local flags_a=(); while [[ $1 != -- ]]; do flags_a+=("$1"); shift; done; shift
  local b=$1; shift; local flags_b=("$@")
  OMP_NUM_THREADS=1 rnnkit train "$data/g014b2b.train" "${common[@]}" "${flags_a[@]}" --out "$out/$a" >"$out/$a.log" &
  OMP_NUM_THREADS=1 rnnkit train "$data/g014b2b.train" "${common[@]}" "${flags_b[@]}" --out "$out/$b" >"$out/$b.log" &
  wait
  OMP_NUM_THREADS=1 rnnkit eval "$out/$a" "$data/g014b2b.test" --json >"$out/$a.test.json" &
  OMP_NUM_THREADS=1 rnnkit eval "$out/$b" "$data/g014b2b.test" --json >"$out/$b.test.json" &
  wait
}
pair teacher -- sampled --scheduled-sampling inverse_sigmoid --sampling-steps 1000
pair output --decoder-recurrence output -- stop --sequence-end stop
for run in teacher sampled output stop; do
  python -c "import json, sys; r = json.load(open(sys.argv[2])); s = [json.loads(l) for l in open(sys.argv[3])];
print(f'{sys.argv[1]:8} steps {s[-1][\"step\"]:>6,}  WER {100 * r[\"sequence_error_rate\"]:.2f} %  PER {100 * r[\"token_error_rate\"]:.2f} %')" \
    "$run" "$out/$run.test.json" "$out/$run/metrics.jsonl"
done
