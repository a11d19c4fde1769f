#!/usr/bin/env bash
# Batch lane under a steady interactive load (the thrash of task s23): two server builds side by side, rounds
# interleaved (order alternating), LLMSERVER_BENCH_MODEL (stories260K; synth110m-q4_0's steps are long enough under
# load that the next interactive request mostly arrives before the gap is seen), 2 slots, each run a fresh server process (its database in a temp
# dir). A run starts a batch of LLMSERVER_BENCH_BATCH chat completions (64-word prompts, 64 tokens) and, at once,
# a closed-loop interactive load (loadgen, CONCURRENCY streams, LLMSERVER_BENCH_INTERACTIVE requests, 64-word prompts,
# 64 tokens); when the load ends it reads the scheduler's preemption counter (/metrics) and the batch's completed
# lines. Prints per build and concurrency, medians [ranges]: preemptions, batch lines completed per minute of load,
# interactive TTFT p50 / p95 and ITL p95.
#   bash tests/LlmServer.Benchmarks/batch-thrash.sh OLD_DLL NEW_DLL [rounds] [concurrencies]
# Build each first: dotnet build -c Release -p:SkipWebBuild=true src/LlmServer (the old one from an exported commit).
set -euo pipefail
cd "$(dirname "$0")/../.."
old=$1
new=$2
rounds=${3:-3}
concurrencies=${4:-"1 2"}
batch_size=${LLMSERVER_BENCH_BATCH:-200}
interactive=${LLMSERVER_BENCH_INTERACTIVE:-40}
source tests/LlmServer.Benchmarks/batch-server.sh
batch_server 5320 "${LLMSERVER_BENCH_MODEL:-stories260K}" 2 2048 2

preemptions() {
  curl -sf "$url/metrics" | awk '/^llmserver_num_preemptions_total/ { s += $2 } END { print s + 0 }'
}

run() { # build dll concurrency
  start_server "$2"
  local id started ended load done
  id=$(python3 "$jobs" "$url" "$model" "$batch_size" start "$tmp/started")
  started=$(date +%s.%N)
  load=$(node "$shared/tools/loadgen.mjs" --url "$url" --model "$model" --concurrency "$3" --requests "$interactive" \
    --max-tokens 64 --prompt-words 64 --ignore-eos --timeout-s 300 --deadline-s 1200 --json) || true # failures are counted below
  ended=$(date +%s.%N)
  done=$(curl -sf "$url/v1/batches/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["request_counts"]["completed"])')
  echo "$round $1 $3 $(preemptions) $(python3 -c "print($done * 60 / ($ended - $started))") $(echo "$load" | python3 -c 'import json,sys; h=json.load(sys.stdin); print(h["ttft_ms"]["p50"], h["ttft_ms"]["p95"], h["itl_ms"]["p95"], sum((h.get("errors") or {}).values()))')" | tee -a "$out"
  stop_server
}

for round in $(seq 1 "$rounds"); do
  for c in $concurrencies; do
    if [ $((round % 2)) -eq 1 ]; then run old "$old" "$c"; run new "$new" "$c"; else run new "$new" "$c"; run old "$old" "$c"; fi
  done
done

python3 - "$out" "$rounds" "$model" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
failed = sum(int(r[-1]) for r in rows)
print(f"\n{sys.argv[3]}, 2 slots, medians of {sys.argv[2]} rounds [range]; failed interactive requests: {failed}")
names = ["preemptions", "batch lines/min", "TTFT p50 ms", "TTFT p95 ms", "ITL p95 ms"]
def cell(vals):
    return f"{statistics.median(vals):.1f} [{min(vals):.1f}-{max(vals):.1f}]"
for c in sorted({r[2] for r in rows}):
    print(f"\nconcurrency {c}:")
    med = {}
    for build in ("old", "new"):
        sel = [r for r in rows if r[1] == build and r[2] == c]
        med[build] = [statistics.median(float(r[3 + i]) for r in sel) for i in range(5)]
        print(f"  {build}: " + ", ".join(f"{n} {cell([float(r[3 + i]) for r in sel])}" for i, n in enumerate(names)))
    print("  new / old: " + ", ".join(f"{n} {med['new'][i] / med['old'][i]:.2f}" if med['old'][i] else f"{n} -" for i, n in enumerate(names)))
PY
