#!/usr/bin/env bash
# The server's CPU per streamed token with decode taken out: the real server over a backend whose decode sleeps a
# constant DECODE_MS (no CPU) and always picks the same token; loadgen at 1, 4 and 8 streams; the server's CPU time
# over each run divided by the tokens it streamed.
#   bash tests/LlmServer.Benchmarks/fake-decode-cpu.sh [DECODE_MS] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
decode=${1:-2}
rounds=${2:-2}
shared=$(cd .. && pwd)/shared
port=5189
model=${LLMSERVER_BENCH_MODEL:-stories260K}
dotnet build -c Release -p:SkipWebBuild=true tests/LlmServer.Benchmarks >/dev/null
bench=tests/LlmServer.Benchmarks/bin/Release/net10.0/LlmServer.Benchmarks.dll
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
dotnet "$bench" --serve-fake "$shared/models/$model.gguf" "$decode" "$port" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.2; done
node "$shared/tools/loadgen.mjs" --url "http://127.0.0.1:$port" --model "$model" --concurrency 8 --requests 16 --max-tokens 64 --json >/dev/null
for round in $(seq 1 "$rounds"); do
  for c in 1 4 8; do
    before=$(cpu_ticks "$pid")
    http=$(node "$shared/tools/loadgen.mjs" --url "http://127.0.0.1:$port" --model "$model" --concurrency "$c" \
      --requests $((c * 4)) --max-tokens 128 --prompt-words 64 --ignore-eos --json)
    after=$(cpu_ticks "$pid")
    python3 - "$round" "$c" "$http" "$before" "$after" "$ticks" "$decode" <<'PY'
import json, sys
rnd, c, http, before, after, ticks, decode = sys.argv[1:8]
h = json.loads(http)
ms = (int(after) - int(before)) * 1000 / int(ticks)
print(f"round {rnd} c={c}: {h['gen_tokens']} tokens, {h['gen_tok_per_s']:.1f} tok/s (decode {decode} ms a step), "
      f"server CPU {ms / max(1, h['gen_tokens']):.4f} ms per streamed token, TPOT p50 {h['tpot_ms']['p50']} ms, "
      f"{h.get('chunk_tokens', '?')} content chunks")
PY
  done
done
