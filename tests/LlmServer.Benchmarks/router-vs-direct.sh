#!/usr/bin/env bash
# Router overhead: loadgen (8 streams, synth110m) against one replica directly and through the router, interleaved.
# Usage: tests/LlmServer.Benchmarks/router-vs-direct.sh REPO_ROOT [ROUNDS], after `dotnet build -c Release` of
# src/LlmServer and src/LlmServer.Router. Ports 5300/5301.
set -euo pipefail
root=${1:?repo}; rounds=${2:-2}
here=$(cd "$(dirname "$0")" && pwd)
shared=$(cd "$here/../../../shared" && pwd)
model=$shared/models/synth110m-q4_0.gguf
srv=$root/src/LlmServer/bin/Release/net10.0/LlmServer.dll
rtr=$root/src/LlmServer.Router/bin/Release/net10.0/LlmServer.Router.dll
db=$(mktemp -d)
dotnet $srv --model $model --urls http://127.0.0.1:5301 --Scheduler:Slots=8 --Scheduler:ContextSize=4096 --Model:Threads=2 --Model:BatchThreads=2 --Sessions:Database=$db/s.db --Logging:LogLevel:Default=Warning >/tmp/rb-srv.log 2>&1 &
spid=$!
dotnet $rtr --urls http://127.0.0.1:5300 --Router:Replicas:0=http://127.0.0.1:5301 --Logging:LogLevel:Default=Warning >/tmp/rb-rtr.log 2>&1 &
rpid=$!
trap 'kill $spid $rpid 2>/dev/null; rm -rf $db' EXIT
for i in $(seq 1 120); do curl -sf http://127.0.0.1:5301/health/ready >/dev/null && curl -sf http://127.0.0.1:5300/router/health >/dev/null && break; sleep 1; done
sleep 3
for r in $(seq 1 $rounds); do
  for target in direct router; do
    port=$([ $target = direct ] && echo 5301 || echo 5300)
    node "$shared/tools/loadgen.mjs" --url http://127.0.0.1:$port --model synth110m-q4_0 --concurrency 8 --requests 24 --max-tokens 64 --prompt-words 64 --ignore-eos --warmup 1 --json --label $target-$r > /tmp/rb-$target-$r.json || true
    node -e "const j=JSON.parse(require('fs').readFileSync('/tmp/rb-$target-$r.json','utf8')); console.log('$target round $r ok', j.ok, 'tok/s', j.gen_tok_per_s, 'ttft p50', j.ttft_ms.p50, 'itl p50', j.itl_ms.p50)"
  done
done
