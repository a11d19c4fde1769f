# The batch benchmarks' server, sourced by batch-lane.sh and batch-thrash.sh (run from the repository root):
#   batch_server PORT MODEL SLOTS CONTEXT WARMUP   the server's shape; sets shared, model, url, jobs, out (the results)
#                                                  and tmp (removed at exit, with a server still running stopped);
#   start_server DLL   a fresh server process on an empty sessions database in $tmp, waited for until ready and then
#                      warmed up with WARMUP short requests; a server that exits before it is ready ends the
#                      script (exit 1) with its log's last lines;
#   stop_server        SIGTERM, and waits for it to exit.
shared=$(cd .. && pwd)/shared
jobs=tests/LlmServer.Benchmarks/batch_job.py
server=

batch_server() {
  port=$1 model=$2 slots=$3 context=$4 warmup=$5
  url=http://127.0.0.1:$port
  out=$(mktemp)
  tmp=$(mktemp -d)
  trap batch_server_cleanup EXIT
}

batch_server_cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}

start_server() { # dll
  rm -rf "$tmp/db" && mkdir -p "$tmp/db"
  dotnet "$1" --model "$shared/models/$model.gguf" --urls "$url" \
    --Scheduler:Slots="$slots" --Scheduler:ContextSize="$context" --Sessions:Database="$tmp/db/sessions.db" \
    --Logging:LogLevel:Default=Warning >"$tmp/server.log" 2>&1 &
  server=$!
  until curl -sf "$url/health/ready" >/dev/null; do
    # A server that died at start (a bad setting, a port in use, a missing model) would be waited for forever.
    if ! kill -0 "$server" 2>/dev/null; then
      echo "the server exited at start; the end of its log:" >&2
      tail -n 20 "$tmp/server.log" >&2
      server=
      exit 1
    fi
    sleep 0.2
  done
  # Another process on the port may have answered: the server must still be running.
  kill -0 "$server" 2>/dev/null || { echo "the server exited at start (is $url in use?)" >&2; tail -n 20 "$tmp/server.log" >&2; server=; exit 1; }
  node "$shared/tools/loadgen.mjs" --url "$url" --model "$model" --concurrency 1 --requests "$warmup" --max-tokens 16 --json >/dev/null
}

stop_server() {
  kill -TERM "$server"; wait "$server" 2>/dev/null || true; server=
}
