# The batch benchmarks' job (batch-lane.sh, batch-thrash.sh), against a running server:
#   batch_job.py URL MODEL SIZE start STARTED_FILE   uploads SIZE chat completions (64-word prompts, 64 tokens,
#       ignore_eos) as a JSONL file, creates the batch, writes the creation time to STARTED_FILE, and prints the
#       batch id once it is in progress;
#   batch_job.py URL MODEL SIZE wait BATCH_ID STARTED_FILE   waits for the batch to end and prints generated tokens,
#       seconds from creation to the end, completed lines, failed lines.
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
