#!/usr/bin/env bash
# Running streams while long prompts are admitted (issue 15): the time target (Scheduler:TargetStepMs, default)
# against the token budget alone (TargetStepMs=0, the scheduler before the time target), interleaved in one run.
# Load: 4 concurrent short streams (16-word prompts, 32 tokens, 24 requests) and, at the same time, 2 concurrent long
# requests (~1,600-token prompts, 6 requests); synth110m-q4_0, 8 slots, context 32768, 2 threads.
#   bash tests/LlmServer.Benchmarks/step-budget.sh [rounds] [target-ms]
# Reports per round and as medians: running streams' ITL p95, short requests' TTFT p95, long prompts' TTFT p50,
# each as the ratio time-target / token-budget. LLMSERVER_BENCH_SHORT_REQUESTS and LLMSERVER_BENCH_LONG_REQUESTS shrink
# the load (defaults 24 and 6) on a machine too busy for the full one. LLAMA_SERVER=path/to/llama-server adds llama.cpp's
# own server to every round (same model, context, slots and threads; continuous batching) and reports the time
# target's figures as ratios to it too, beside each side's p99 and largest gap (a p95 does not see a stall that is
# rare but long). LLMSERVER_BUDGET_TOKENS sets the budget-only run's Scheduler:StepTokenBudget (2048 puts a whole
# long prompt into one step, as llama-server does). LLMSERVER_DLL runs an already built server instead of building.
# LLMSERVER_CONFIGS adds configurations of ours to every round, each "name=server arguments" and separated by ";" (e.g.
# "strict=--Scheduler:MinPromptShare=0 --Scheduler:MinPromptChunk=16"), reported beside the others and as ratios to the
# token budget alone: the points of the trade-off between running streams' gaps and long prompts' wait.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
target=${2:-80}
shared=$(cd .. && pwd)/shared
port=5188
server=${LLMSERVER_DLL:-}
if [ -z "$server" ]; then
  dotnet build -c Release -p:SkipWebBuild=true src/LlmServer >/dev/null
  server=src/LlmServer/bin/Release/net10.0/LlmServer.dll
fi
llama=${LLAMA_SERVER:-}
budget_tokens=
out=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT
echo "loadgen results in $out"

run() { # name target-ms round [server arguments...] (name "llama": llama.cpp's server)
  if [ "$1" = llama ]; then
    "$llama" -m "$shared/models/synth110m-q4_0.gguf" --host 127.0.0.1 --port "$port" -c 32768 -np 8 -t 2 -tb 2 \
      --log-disable >"$out/$1-$3.log" 2>&1 &
  else
    dotnet "$server" --model "$shared/models/synth110m-q4_0.gguf" --urls "http://127.0.0.1:$port" \
      --Scheduler:Slots=8 --Scheduler:ContextSize=32768 --Scheduler:TargetStepMs="$2" ${budget_tokens:+--Scheduler:StepTokenBudget=$budget_tokens} \
      --Model:Threads=2 --Model:BatchThreads=2 --Sessions:Database="$out/$1-$3.db" --Logging:LogLevel:Default=Warning "${@:4}" >"$out/$1-$3.log" 2>&1 &
  fi
  pid=$!
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do kill -0 "$pid" 2>/dev/null || { echo "the server exited at start" >&2; exit 1; }; sleep 0.2; done
  local lg=(node "$shared/tools/loadgen.mjs" --url "http://127.0.0.1:$port" --model synth110m-q4_0 --ignore-eos --json)
  "${lg[@]}" --concurrency 1 --requests 2 --max-tokens 8 --prompt-words 64 >/dev/null
  "${lg[@]}" --concurrency 2 --requests "${LLMSERVER_BENCH_LONG_REQUESTS:-6}" --max-tokens 32 --prompt-words 1600 --seed 7 >"$out/$1-$3-long.json" &
  local long=$!
  "${lg[@]}" --concurrency 4 --requests "${LLMSERVER_BENCH_SHORT_REQUESTS:-24}" --max-tokens 32 --prompt-words 16 >"$out/$1-$3-short.json"
  wait "$long"
  kill -TERM "$pid"; wait "$pid" || true
  pid=
}

budget() { budget_tokens=${LLMSERVER_BUDGET_TOKENS:-}; run budget 0 "$1"; budget_tokens=; }
declare -A extra=()
IFS=';' read -ra specs <<<"${LLMSERVER_CONFIGS:-}"
for spec in "${specs[@]}"; do
  [ -n "${spec// }" ] || continue
  name=${spec%%=*}
  [[ "$name" =~ ^[a-z0-9-]+$ && "$spec" == *=* && ! "$name" =~ ^(timed|budget|llama)$ ]] || { echo "LLMSERVER_CONFIGS: \"$spec\" is not name=arguments (a new lower-case name)" >&2; exit 2; }
  extra[$name]=${spec#*=}
done
# Each configuration takes each place in the order in turn.
configs=(timed budget "${!extra[@]}"); [ -n "$llama" ] && configs+=(llama)
for round in $(seq 1 "$rounds"); do
  for i in "${!configs[@]}"; do
    case ${configs[$(( (i + round - 1) % ${#configs[@]} ))]} in
      timed) run timed "$target" "$round" ;;
      budget) budget "$round" ;;
      llama) run llama 0 "$round" ;;
      *) name=${configs[$(( (i + round - 1) % ${#configs[@]} ))]}; read -ra args <<<"${extra[$name]}"; run "$name" "$target" "$round" "${args[@]}" ;;
    esac
  done
done

python3 - "$out" "$rounds" "$target" "$llama" "${!extra[@]}" <<'PY'
import json, statistics, sys
out, rounds, target, llama, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
def load(name, rnd, kind): return json.load(open(f"{out}/{name}-{rnd}-{kind}.json"))
def figures(name, rnd):
    s, l = load(name, rnd, "short"), load(name, rnd, "long")
    # Running streams: the inter-token gaps of every stream, short and long, while the other load runs.
    itl = max(s["itl_ms"]["p95"], l["itl_ms"]["p95"])
    return {"short ITL p95": s["itl_ms"]["p95"], "long ITL p95": l["itl_ms"]["p95"], "any ITL p95": itl,
            "any ITL p99": max(s["itl_ms"]["p99"], l["itl_ms"]["p99"]), "any ITL max": max(s["itl_ms"]["max"], l["itl_ms"]["max"]),
            "short TTFT p95": s["ttft_ms"]["p95"], "long TTFT p50": l["ttft_ms"]["p50"],
            "short ok": s["ok"], "long ok": l["ok"], "errors": {**s["errors"], **l["errors"]}}
keys = ("short ITL p95", "long ITL p95", "any ITL p95", "any ITL p99", "any ITL max", "short TTFT p95", "long TTFT p50")
ratios = {}
def ratio(label, a, b):
    for k in keys:
        if a[k] and b[k]:
            ratios.setdefault((label, k), []).append(a[k] / b[k])
for rnd in range(1, rounds + 1):
    t, b = figures("timed", rnd), figures("budget", rnd)
    print(f"round {rnd}: TargetStepMs={target}: {t}")
    print(f"round {rnd}: TargetStepMs=0:  {b}")
    ratio("timed/budget", t, b)
    for name in extra:
        e = figures(name, rnd)
        print(f"round {rnd}: {name}: {e}")
        ratio(f"{name}/budget", e, b)
    if llama:
        m = figures("llama", rnd)
        print(f"round {rnd}: llama-server:    {m}")
        ratio("timed/llama-server", t, m)
        ratio("budget/llama-server", b, m)
for (label, k), v in ratios.items():
    print(f"{k}: ratio {label} median {statistics.median(v):.2f} (rounds: {', '.join(f'{x:.2f}' for x in v)})")
PY
