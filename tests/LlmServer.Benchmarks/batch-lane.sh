#!/usr/bin/env bash
# Batch lane benchmark (issue 16), synth110m-q4_0, 8 slots, context 4096; each configuration a fresh server process
# (its sessions and batches in a temp dir), rounds interleaved:
#   ttft-alone  interactive loadgen (4 streams, 32 tokens) on an idle server;
#   ttft-batch  the same, with a batch of LLMSERVER_BENCH_BATCH chat completions (64 tokens each) running;
#   batch-idle  that batch alone: generated tokens (the output file's usage) over the time from POST /v1/batches
#               to its completion;
#   busy        loadgen with every slot busy (8 streams, the batch's request shape: 64-word prompts, 64 tokens).
# Prints interactive TTFT p95 with the batch / without (issue: <= 1.2) and batch tok/s idle / busy (issue: >= 0.9).
# LLMSERVER_BENCH_BATCH (200), LLMSERVER_BENCH_INTERACTIVE (16 requests), LLMSERVER_BENCH_BUSY (48 requests).
#   bash tests/LlmServer.Benchmarks/batch-lane.sh [SERVER_DLL] [rounds]
# Build first: dotnet build -c Release -p:SkipWebBuild=true src/LlmServer
set -euo pipefail
cd "$(dirname "$0")/../.."
dll=${1:-src/LlmServer/bin/Release/net10.0/LlmServer.dll}
rounds=${2:-3}
batch_size=${LLMSERVER_BENCH_BATCH:-200}
interactive=${LLMSERVER_BENCH_INTERACTIVE:-16}
busy_requests=${LLMSERVER_BENCH_BUSY:-48}
source tests/LlmServer.Benchmarks/batch-server.sh
batch_server 5310 synth110m-q4_0 8 4096 1

loadgen() { # concurrency requests max_tokens -> gen tok/s, ttft p95 ms, failed requests
  node "$shared/tools/loadgen.mjs" --url "$url" --model "$model" --concurrency "$1" --requests "$2" --max-tokens "$3" \
    --prompt-words 64 --ignore-eos --timeout-s 300 --deadline-s 1200 --json \
    | python3 -c 'import json,sys; h=json.load(sys.stdin); print(h["gen_tok_per_s"], h["ttft_ms"]["p95"], sum((h.get("errors") or {}).values()))'
}

batch_status() {
  curl -sf "$url/v1/batches/$1" | python3 -c 'import json,sys; b=json.load(sys.stdin); print(b["status"], b["request_counts"]["completed"])'
}

for round in $(seq 1 "$rounds"); do
  for config in ttft-alone ttft-batch batch-idle busy; do
    start_server "$dll"
    case $config in
      ttft-alone)
        read -r tps p95 errors < <(loadgen 4 "$interactive" 32)
        echo "$round $config $p95 $errors" | tee -a "$out"
        ;;
      ttft-batch)
        id=$(python3 "$jobs" "$url" "$model" "$batch_size" start "$tmp/started")
        read -r tps p95 errors < <(loadgen 4 "$interactive" 32)
        read -r status done < <(batch_status "$id")
        # Only a batch still running when the interactive load ended measured anything.
        if [ "$status" != in_progress ]; then echo "# round $round: the batch was $status ($done done) before the interactive run ended; raise LLMSERVER_BENCH_BATCH"; fi
        echo "$round $config $p95 $errors" | tee -a "$out"
        ;;
      batch-idle)
        id=$(python3 "$jobs" "$url" "$model" "$batch_size" start "$tmp/started")
        read -r tokens seconds completed failed < <(python3 "$jobs" "$url" "$model" "$batch_size" wait "$id" "$tmp/started")
        echo "$round $config $(python3 -c "print($tokens / $seconds)") $failed" | tee -a "$out"
        ;;
      busy)
        read -r tps p95 errors < <(loadgen 8 "$busy_requests" 64)
        echo "$round $config $tps $errors" | tee -a "$out"
        ;;
    esac
    stop_server
  done
done

python3 - "$out" <<'PY'
import statistics, sys
data = {}
failed = 0
for line in open(sys.argv[1]):
    r, config, value, errors = line.split()
    data.setdefault(config, []).append(float(value))
    failed += int(errors)
def med(k):
    return statistics.median(data[k])
def rng(k):
    return f"{min(data[k]):.1f}-{max(data[k]):.1f}"
print(f"\nsynth110m-q4_0, 8 slots, medians of {len(data['busy'])} rounds [range]; failed requests: {failed}")
print(f"interactive TTFT p95 ms: alone {med('ttft-alone'):.1f} [{rng('ttft-alone')}], with the batch running {med('ttft-batch'):.1f} [{rng('ttft-batch')}]")
print(f"generated tok/s: batch alone {med('batch-idle'):.1f} [{rng('batch-idle')}], every slot busy with interactive streams {med('busy'):.1f} [{rng('busy')}]")
print(f"TTFT p95 with / without the batch: {med('ttft-batch') / med('ttft-alone'):.2f} (issue: <= 1.2)")
print(f"batch throughput idle / engine busy: {med('batch-idle') / med('busy'):.2f} (issue: >= 0.9)")
PY
