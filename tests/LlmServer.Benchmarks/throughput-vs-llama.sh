#!/usr/bin/env bash
# Generation throughput against llama.cpp's own llama-server, side by side: synth110m-q4_0, 8 slots, context 4096,
# 2 threads on both; loadgen's throughput shape (64-word prompts, 128 tokens, --ignore-eos; 16 requests at one stream,
# 4 x C at more). Each configuration a fresh server, each taking every place in the order in turn; prints tokens/s per
# round and our ratio to llama-server per round and as the median.
#   LLAMA_SERVER=path/to/llama-server bash tests/LlmServer.Benchmarks/throughput-vs-llama.sh [rounds] [C...]
# LLMSERVER_DLL runs an already built server instead of building this checkout. LLMSERVER_BENCH_WARM=N first runs N
# unmeasured requests of the measured shape at 8 streams on each fresh server (default 2 short ones): a fresh .NET
# server spends its first tens of seconds under load recompiling its hot paths in the background, which on 2 cores
# takes CPU from the decode (8 streams ran at about 350 tokens/s fresh and 420 to 435 after 48 such requests, in two
# runs), so a steady-state figure needs about 48.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; shift || true
streams=("$@"); [ ${#streams[@]} -gt 0 ] || streams=(1 8)
shared=$(cd .. && pwd)/shared
llama=${LLAMA_SERVER:?set LLAMA_SERVER to a llama-server binary}
port=5195
server=${LLMSERVER_DLL:-}
if [ -z "$server" ]; then
  dotnet build -c Release -p:SkipWebBuild=true src/LlmServer >/dev/null
  server=src/LlmServer/bin/Release/net10.0/LlmServer.dll
fi
out=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT
echo "loadgen results in $out"
model=$shared/models/synth110m-q4_0.gguf

run() { # side streams round
  if [ "$1" = llama ]; then
    "$llama" -m "$model" --host 127.0.0.1 --port "$port" -c 4096 -np 8 -t 2 -tb 2 --log-disable >"$out/$1.log" 2>&1 &
  else
    dotnet "$server" --model "$model" --urls "http://127.0.0.1:$port" --Scheduler:Slots=8 --Scheduler:ContextSize=4096 \
      --Model:Threads=2 --Model:BatchThreads=2 --Sessions:Database="$out/ours-$3.db" --Logging:LogLevel:Default=Warning >"$out/$1.log" 2>&1 &
  fi
  pid=$!
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do kill -0 "$pid" 2>/dev/null || { echo "$1 exited at start" >&2; exit 1; }; sleep 0.2; done
  local lg=(node "$shared/tools/loadgen.mjs" --url "http://127.0.0.1:$port" --model synth110m-q4_0 --ignore-eos --json --prompt-words 64)
  if [ -n "${LLMSERVER_BENCH_WARM:-}" ]; then
    "${lg[@]}" --concurrency 8 --requests "$LLMSERVER_BENCH_WARM" --max-tokens 128 >/dev/null
  else
    "${lg[@]}" --concurrency 1 --requests 2 --max-tokens 16 >/dev/null
  fi
  "${lg[@]}" --concurrency "$2" --requests $(( $2 == 1 ? 16 : 4 * $2 )) --max-tokens 128 >"$out/$1-c$2-r$3.json"
  kill -TERM "$pid"; wait "$pid" || true
  pid=
}

sides=(ours llama)
for round in $(seq 1 "$rounds"); do
  for c in "${streams[@]}"; do
    for i in 0 1; do run "${sides[$(( (i + round - 1) % 2 ))]}" "$c" "$round"; done
  done
done

python3 - "$out" "$rounds" "${streams[@]}" <<'PY'
import json, statistics, sys
out, rounds, streams = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def tps(side, c, r): return json.load(open(f"{out}/{side}-c{c}-r{r}.json"))["gen_tok_per_s"]
for c in streams:
    ours = [tps("ours", c, r) for r in range(1, rounds + 1)]
    llama = [tps("llama", c, r) for r in range(1, rounds + 1)]
    ratios = [a / b for a, b in zip(ours, llama)]
    print(f"{c} streams: ours {', '.join(f'{x:.0f}' for x in ours)} tok/s; llama-server {', '.join(f'{x:.0f}' for x in llama)}; "
          f"ratio per round {', '.join(f'{x:.2f}' for x in ratios)}, median {statistics.median(ratios):.2f}")
PY
