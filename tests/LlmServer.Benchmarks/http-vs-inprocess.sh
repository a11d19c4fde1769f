#!/usr/bin/env bash
# HTTP (the real server driven by ../shared/tools/loadgen.mjs) against the in-process scheduler on the same model,
# interleaved in one run. Also reports the server's CPU time per generated token. Run by hand on a quiet machine:
#   bash tests/LlmServer.Benchmarks/http-vs-inprocess.sh [rounds]
# LLMSERVER_BENCH_THREADS=N sets the decode threads of both (default 2); LLMSERVER_BENCH_MODELS picks models;
# LLMSERVER_BENCH_INPROCESS=bare compares with the bare decode loop instead of the in-process scheduler (greedy).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
shared=$(cd .. && pwd)/shared
port=5187
dotnet build -c Release -p:SkipWebBuild=true src/LlmServer >/dev/null
dotnet build -c Release tests/LlmServer.Benchmarks >/dev/null
bench=tests/LlmServer.Benchmarks/bin/Release/net10.0/LlmServer.Benchmarks.dll
server=src/LlmServer/bin/Release/net10.0/LlmServer.dll
ticks=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for model in ${LLMSERVER_BENCH_MODELS:-synth110m-q4_0 stories260K}; do
  dotnet "$server" --model "$shared/models/$model.gguf" --urls "http://127.0.0.1:$port" \
    --Scheduler:Slots=8 --Scheduler:ContextSize=4096 --Scheduler:StepTokenBudget=1024 \
    --Model:Threads="${LLMSERVER_BENCH_THREADS:-2}" --Model:BatchThreads="${LLMSERVER_BENCH_THREADS:-2}" \
    --Sessions:Database="$(mktemp -d)/sessions.db" --Logging:LogLevel:Default=Warning >/dev/null 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null || true' EXIT
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do kill -0 "$pid" 2>/dev/null || { echo "the server exited at start" >&2; exit 1; }; sleep 0.2; done
  for round in $(seq 1 "$rounds"); do
    for c in 1 4 8; do
      inproc=$( { /usr/bin/time -f "%U %S" dotnet "$bench" --child "${LLMSERVER_BENCH_INPROCESS:-greedy}" "$c" "$shared/models/$model.gguf" 128 | tail -1; } 2>/tmp/inproc.time)
      before=$(cpu_ticks "$pid")
      start=$(date +%s.%N)
      http=$( { /usr/bin/time -f "%U %S" node "$shared/tools/loadgen.mjs" --url "http://127.0.0.1:$port" --model "$model" --concurrency "$c" \
        --requests $((c * 2)) --max-tokens 128 --prompt-words 64 --ignore-eos --warmup 1 --json; } 2>/tmp/loadgen.time)
      after=$(cpu_ticks "$pid")
      python3 - "$model" "$round" "$c" "$inproc" "$http" "$before" "$after" "$ticks" "$(cat /tmp/loadgen.time)" "$(tail -1 /tmp/inproc.time)" <<'PY'
import json, sys
model, rnd, c, inproc, http, before, after, ticks, lg, ip = sys.argv[1:11]
i = json.loads(inproc); h = json.loads(http)
# The warm-up request (128 tokens) is not in loadgen's count but is in the server's CPU time.
tokens = h["gen_tokens"] + 128
agg = h["gen_tok_per_s"]
def p(name, q):
    v = h.get(name, {})
    return v.get(q) if isinstance(v, dict) else None
server_ms = (int(after) - int(before)) * 1000 / int(ticks)
u, s = (float(x) for x in lg.split()[-2:])
print(f"{model} round {rnd} c={c}: in-process {i['TokensPerSecond']:.1f} tok/s, HTTP {agg:.1f} tok/s, ratio {agg / i['TokensPerSecond']:.2f}; "
      f"TTFT p50/p95 {p('ttft_ms','p50')}/{p('ttft_ms','p95')} ms, ITL p50/p95 {p('itl_ms','p50')}/{p('itl_ms','p95')} ms; "
      f"server CPU {server_ms / max(1, tokens):.3f} ms/token (engine included); loadgen CPU {u + s:.2f} s; "
      f"TPOT p50 HTTP {p('tpot_ms','p50')} ms vs in-process {i['TimePerTokenMs']:.2f} ms (ratio {(p('tpot_ms','p50') or 0) / i['TimePerTokenMs']:.2f}); "
      f"in-process process CPU {sum(float(x) for x in ip.split()[-2:]):.2f} s for {i['Streams'] * (i['Tokens'] + 16)} tokens incl. load")
PY
    done
  done
  kill -TERM "$pid"; wait "$pid" || true
done
