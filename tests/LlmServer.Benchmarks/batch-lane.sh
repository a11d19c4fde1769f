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
shared=$(cd .. && pwd)/shared
model=synth110m-q4_0
port=5310
url=http://127.0.0.1:$port
batch_size=${LLMSERVER_BENCH_BATCH:-200}
interactive=${LLMSERVER_BENCH_INTERACTIVE:-16}
busy_requests=${LLMSERVER_BENCH_BUSY:-48}
out=$(mktemp)
tmp=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

start_server() {
  rm -rf "$tmp/db" && mkdir -p "$tmp/db"
  dotnet "$dll" --model "$shared/models/$model.gguf" --urls "$url" \
    --Scheduler:Slots=8 --Scheduler:ContextSize=4096 --Sessions:Database="$tmp/db/sessions.db" \
    --Logging:LogLevel:Default=Warning >"$tmp/server.log" 2>&1 &
  server=$!
  until curl -sf "$url/health/ready" >/dev/null; do sleep 0.2; done
  node "$shared/tools/loadgen.mjs" --url "$url" --model "$model" --concurrency 1 --requests 1 --max-tokens 16 --json >/dev/null
}

stop_server() {
  kill -TERM "$server"; wait "$server" 2>/dev/null || true; server=
}

# batch.py start|wait BATCH_ID: uploads the JSONL and creates the batch (prints its id, once it is in progress),
# or waits for it to finish (prints generated tokens, seconds from creation to completion, completed, failed).
cat >"$tmp/batch.py" <<'PY'
import json, sys, time, urllib.request, uuid
url, model, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
def call(method, path, body=None, headers=None):
    req = urllib.request.Request(url + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()
def batch(batch_id):
    return json.loads(call("GET", f"/v1/batches/{batch_id}"))
if sys.argv[4] == "start":
    words = "the quick brown fox jumps over a lazy dog while seven small birds sing".split()
    lines = []
    for i in range(size):
        prompt = f"job {i:04d} " + " ".join(words[(i + k) % len(words)] for k in range(62))
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 64, "ignore_eos": True}
        lines.append(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}))
    boundary = uuid.uuid4().hex
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.jsonl\"\r\n"
            f"Content-Type: application/jsonl\r\n\r\n" + "\n".join(lines) + f"\r\n--{boundary}--\r\n").encode()
    file_id = json.loads(call("POST", "/v1/files", form, {"Content-Type": f"multipart/form-data; boundary={boundary}"}))["id"]
    created = json.loads(call("POST", "/v1/batches", json.dumps({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}).encode(), {"Content-Type": "application/json"}))
    with open(sys.argv[5], "w") as f:
        f.write(repr(time.monotonic()))
    while batch(created["id"])["status"] in ("validating",):
        time.sleep(0.05)
    print(created["id"])
else:
    batch_id, started = sys.argv[5], float(open(sys.argv[6]).read())
    while (b := batch(batch_id))["status"] not in ("completed", "failed", "cancelled", "expired"):
        time.sleep(0.1)
    seconds = time.monotonic() - started
    tokens = 0
    if b.get("output_file_id"):
        for line in call("GET", f"/v1/files/{b['output_file_id']}/content").decode().splitlines():
            if line.strip():
                tokens += json.loads(line)["response"]["body"]["usage"]["completion_tokens"]
    counts = b["request_counts"]
    print(tokens, f"{seconds:.3f}", counts["completed"], counts["failed"])
PY

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
    start_server
    case $config in
      ttft-alone)
        read -r tps p95 errors < <(loadgen 4 "$interactive" 32)
        echo "$round $config $p95 $errors" | tee -a "$out"
        ;;
      ttft-batch)
        id=$(python3 "$tmp/batch.py" "$url" "$model" "$batch_size" start "$tmp/started")
        read -r tps p95 errors < <(loadgen 4 "$interactive" 32)
        read -r status done < <(batch_status "$id")
        # Only a batch still running when the interactive load ended measured anything.
        if [ "$status" != in_progress ]; then echo "# round $round: the batch was $status ($done done) before the interactive run ended; raise LLMSERVER_BENCH_BATCH"; fi
        echo "$round $config $p95 $errors" | tee -a "$out"
        ;;
      batch-idle)
        id=$(python3 "$tmp/batch.py" "$url" "$model" "$batch_size" start "$tmp/started")
        read -r tokens seconds completed failed < <(python3 "$tmp/batch.py" "$url" "$model" "$batch_size" wait "$id" "$tmp/started")
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
