#!/usr/bin/env bash
# Contention benchmark (issue 12): each configuration a fresh server process, rounds interleaved. For each model and
# each server build (BASE = today's, NEW = this tree), one server runs quiet (1, 4 and 8 streams) and another runs
# beside a bounded busy loop on one core (1 and 8 streams). Both builds run with their default thread settings.
# LLMSERVER_BENCH_TOKENS (128), LLMSERVER_BENCH_QUIET_STREAMS ("1 4 8"), LLMSERVER_BENCH_TIMEOUT (120 s a request),
# LLMSERVER_BENCH_BASE_ENV / LLMSERVER_BENCH_NEW_ENV (e.g. "GOMP_SPINCOUNT=300000": the environment of each side's server).
#   bash tests/LlmServer.Benchmarks/contention.sh BASE_SERVER_DLL [NEW_SERVER_DLL] [rounds]
# Build each side first: dotnet build -c Release -p:SkipWebBuild=true src/LlmServer
set -euo pipefail
cd "$(dirname "$0")/../.."
base=$1
new=${2:-src/LlmServer/bin/Release/net10.0/LlmServer.dll}
rounds=${3:-2}
shared=$(cd .. && pwd)/shared
port=5188
tokens=${LLMSERVER_BENCH_TOKENS:-128}
quiet_streams=${LLMSERVER_BENCH_QUIET_STREAMS:-1 4 8}
timeout_s=${LLMSERVER_BENCH_TIMEOUT:-120}
out=$(mktemp)
server=
busy=
cleanup() {
  if [ -n "$busy" ]; then kill "$busy" 2>/dev/null || true; fi
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
}
trap cleanup EXIT

run_loadgen() { # model concurrency -> generated tok/s, time per output token p50, failed requests
  node "$shared/tools/loadgen.mjs" --url "http://127.0.0.1:$port" --model "$1" --concurrency "$2" \
    --requests $(( $2 > 1 ? $2 : 2 )) --max-tokens "$tokens" --prompt-words 64 --ignore-eos --timeout-s "$timeout_s" --deadline-s $(( timeout_s * 2 )) --json \
    | python3 -c 'import json,sys; h=json.load(sys.stdin); print(h["gen_tok_per_s"], (h.get("tpot_ms") or {}).get("p50"), sum((h.get("errors") or {}).values()))'
}

for round in $(seq 1 "$rounds"); do
  for model in ${LLMSERVER_BENCH_MODELS:-synth110m-q4_0 stories260K}; do
    for side in base new; do
      dll=$base
      side_env=${LLMSERVER_BENCH_BASE_ENV:-}
      if [ "$side" = new ]; then dll=$new; side_env=${LLMSERVER_BENCH_NEW_ENV:-}; fi
      for load in quiet busy; do
        env $side_env dotnet "$dll" --model "$shared/models/$model.gguf" --urls "http://127.0.0.1:$port" \
          --Scheduler:Slots=8 --Scheduler:ContextSize=4096 --Scheduler:StepTokenBudget=1024 \
          --Sessions:Database="$(mktemp -d)/sessions.db" --Logging:LogLevel:Default=Warning >"$out.server.log" 2>&1 &
        server=$!
        until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do kill -0 "$server" 2>/dev/null || { echo "the server exited at start" >&2; exit 1; }; sleep 0.2; done
        node "$shared/tools/loadgen.mjs" --url "http://127.0.0.1:$port" --model "$model" --concurrency 1 --requests 1 --max-tokens 16 --json >/dev/null
        streams=$quiet_streams
        if [ "$load" = busy ]; then
          timeout 600 sh -c 'while :; do :; done' &
          busy=$!
          streams="1 8"
        fi
        for c in $streams; do
          read -r tps tpot errors < <(run_loadgen "$model" "$c")
          echo "$round $model $side $load $c $tps $tpot $errors" | tee -a "$out"
        done
        if [ -n "$busy" ]; then kill "$busy"; wait "$busy" 2>/dev/null || true; busy=; fi
        threads=$(curl -sf "http://127.0.0.1:$port/props" | python3 -c 'import json,sys; b=json.load(sys.stdin)["backend"]; t=b.get("threading") or {}; print(b["threads"], t.get("threads_max"), t.get("changes"))' || echo "? ? ?")
        echo "# round $round $model $side $load: decode threads at the end / at start / changes: $threads"
        kill -TERM "$server"; rc=0; wait "$server" 2>/dev/null || rc=$?; server=
        if [ "$rc" != 0 ]; then echo "# round $round $model $side $load: the server exited with $rc at shutdown; its log: $out.server.$round.$model.$side.$load" | tee -a "$out.notes"; cp "$out.server.log" "$out.server.$round.$model.$side.$load"; fi
      done
    done
  done
done

python3 - "$out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
data = {}
for r, model, side, load, c, tps, tpot, errors in rows:
    data.setdefault((model, side, load, int(c)), []).append(float(tps))
def med(k):
    v = data.get(k)
    return statistics.median(v) if v else float("nan")
def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a (nothing generated)"
def rng(k):
    v = data.get(k, [])
    return f"{min(v):.1f}-{max(v):.1f}" if v else "-"
for model in sorted({k[0] for k in data}):
    print(f"\n{model} (generated tok/s, median of rounds [range])")
    for side in ("base", "new"):
        for load, streams in (("quiet", (1, 4, 8)), ("busy", (1, 8))):
            print(f"  {side:4} {load:5} " + "  ".join(f"x{c}: {med((model, side, load, c)):7.1f} [{rng((model, side, load, c))}]" for c in streams))
    for side in ("base", "new"):
        print(f"  {side}: busy/quiet x1 {ratio(med((model, side, 'busy', 1)), med((model, side, 'quiet', 1)))}, x8 {ratio(med((model, side, 'busy', 8)), med((model, side, 'quiet', 8)))}")
    print("  new/base quiet " + ", ".join(f"x{c} {ratio(med((model, 'new', 'quiet', c)), med((model, 'base', 'quiet', c)))}" for c in (1, 4, 8)))
    print("  new/base busy " + ", ".join(f"x{c} {ratio(med((model, 'new', 'busy', c)), med((model, 'base', 'busy', c)))}" for c in (1, 8)))
PY
