#!/usr/bin/env bash
# What a busy process beside us leaves to take (issue 12): the bare decode loop's busy/quiet throughput against the
# server's, at one stream count, interleaved; each server a fresh process. The bare loop is the engine's limit, so
# its ratio is the ceiling of the server's on this machine (on two cores, a busy loop leaves decode about one).
#   bash tests/LlmServer.Benchmarks/contention-ceiling.sh [rounds] [streams]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
streams=${2:-8}
shared=$(cd .. && pwd)/shared
port=5193
model=synth110m-q4_0
dotnet build -c Release -p:SkipWebBuild=true src/LlmServer >/dev/null
dotnet build -c Release tests/LlmServer.Benchmarks >/dev/null
bench=tests/LlmServer.Benchmarks/bin/Release/net10.0/LlmServer.Benchmarks.dll
server_dll=src/LlmServer/bin/Release/net10.0/LlmServer.dll
pid=
busy=
trap 'kill $pid $busy 2>/dev/null || true' EXIT

server() { # -> generated tok/s of one loadgen run against a fresh server
  dotnet "$server_dll" --model "$shared/models/$model.gguf" --urls "http://127.0.0.1:$port" \
    --Scheduler:Slots=8 --Scheduler:ContextSize=4096 --Sessions:Database="$(mktemp -d)/sessions.db" \
    --Logging:LogLevel:Default=Warning >/dev/null 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do kill -0 "$pid" 2>/dev/null || { echo "the server exited at start" >&2; exit 1; }; sleep 0.2; done
  node "$shared/tools/loadgen.mjs" --url "http://127.0.0.1:$port" --model "$model" --concurrency "$streams" --requests "$streams" \
    --max-tokens 128 --prompt-words 64 --ignore-eos --warmup 1 --json | python3 -c "import json, sys; print(json.load(sys.stdin)['gen_tok_per_s'])"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=
}

bare() { # -> generated tok/s of the bare decode loop, same request shape
  dotnet "$bench" --child bare "$streams" "$shared/models/$model.gguf" 128 2>/dev/null | tail -1 | python3 -c "import json, sys; print(json.load(sys.stdin)['TokensPerSecond'])"
}

for round in $(seq 1 "$rounds"); do
  bare_quiet=$(bare); server_quiet=$(server)
  timeout 600 sh -c 'while :; do :; done' &
  busy=$!
  bare_busy=$(bare); server_busy=$(server)
  kill "$busy"; busy=
  python3 -c "print('round $round, $streams streams: bare loop quiet %.1f, busy %.1f (%.2f); server quiet %.1f, busy %.1f (%.2f)' % ($bare_quiet, $bare_busy, $bare_busy / $bare_quiet, $server_quiet, $server_busy, $server_busy / $server_quiet))"
done
