#!/usr/bin/env bash
# Two replicas and the router on this machine (loopback only), each replica on one decode thread.
# Usage: scripts/run-cluster.sh MODEL.gguf [ROUTER_PORT]. Ctrl-C stops all three.
# Each replica keeps its own SQLite sessions file here, so a session lives on the replica that created it (the
# router keeps it there). With PostgreSQL, sessions outlive any one replica: export Sessions__Store=postgres ConnectionStrings__Sessions='Host=...;Database=...' first.
# Each replica has its own lease name (Sessions:ReplicaId), the same across restarts, so a restarted one takes its own
# unfinished turns back at once.
set -euo pipefail
model=${1:?usage: scripts/run-cluster.sh MODEL.gguf [ROUTER_PORT]}
port=${2:-5000}
cd "$(dirname "$0")/.."
dotnet build -c Release src/LlmServer >/dev/null
dotnet build -c Release src/LlmServer.Router >/dev/null
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2; do
  dotnet src/LlmServer/bin/Release/net10.0/LlmServer.dll --model "$model" --urls "http://127.0.0.1:$((port + i))" \
    --Model:Threads=1 --Model:BatchThreads=1 --Sessions:Database="data/replica-$i.db" --Sessions:ReplicaId="replica-$i" &
  pids+=($!)
done
dotnet src/LlmServer.Router/bin/Release/net10.0/LlmServer.Router.dll --urls "http://127.0.0.1:$port" \
  --Router:Replicas:0="http://127.0.0.1:$((port + 1))" --Router:Replicas:1="http://127.0.0.1:$((port + 2))" &
pids+=($!)
echo "router on http://127.0.0.1:$port; replicas on $((port + 1)) and $((port + 2))"
wait
