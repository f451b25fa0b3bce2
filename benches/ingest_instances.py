#!/usr/bin/env python3
"""Ingest events/s through POST /v1/events with 1 and then 2 `syncwarden serve` instances on one
PostgreSQL database (a scratch database each, dropped afterwards): the same events in NDJSON
batches from 4 concurrent clients, round-robin over the instances.
Usage: benches/ingest_instances.py ADMIN_URL BIN [EVENTS] [BATCH]"""
import concurrent.futures, json, subprocess, sys, tempfile, time, urllib.request, uuid

admin, binary = sys.argv[1], sys.argv[2]
events = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 5_000
base = admin.rsplit("/", 1)[0]

def body(b):
    lines = []
    for n in range(b * batch, (b + 1) * batch):
        lines.append(json.dumps({
            "idempotency_key": f"ev-{n}", "endpoint": "items", "erp_id": f"A{n % 5000}",
            "field": "price", "old_value": "9.90", "new_value": f"{n % 100}.50",
            "source_system": "erp", "target_system": "crm", "outcome": "applied",
            "latency_ms": n % 300, "occurred_at": "2026-11-27T10:00:00Z"}))
    return ("\n".join(lines) + "\n").encode()

bodies = [body(b) for b in range(events // batch)]

def measure(n):
    db = f"sw_bench_{uuid.uuid4().hex}"
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {db}"], check=True)
    url = f"{base}/{db}"
    procs, urls = [], []
    try:
        for i in range(n):
            p = subprocess.Popen([binary, "serve", "--data-dir", tempfile.mkdtemp()], stdout=subprocess.PIPE,
                                 env={"SYNCWARDEN_DATABASE__URL": url, "SYNCWARDEN_SERVER__LISTEN": "127.0.0.1:0",
                                      "SYNCWARDEN_LOG__LEVEL": "error", "PATH": "/usr/bin:/bin"})
            procs.append(p)
            urls.append(p.stdout.readline().decode().strip().split(" on ")[1] + "/v1/events")
        def post(b):
            req = urllib.request.Request(urls[b % n], data=bodies[b], headers={"content-type": "application/x-ndjson"})
            assert urllib.request.urlopen(req, timeout=300).status == 200
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(post, range(len(bodies))))
        seconds = time.monotonic() - start
        stored = subprocess.run(["psql", url, "-tAc", "SELECT count(*) FROM field_events"], capture_output=True, check=True).stdout
        assert int(stored) == len(bodies) * batch, stored
        return len(bodies) * batch / seconds
    finally:
        for p in procs:
            p.kill(); p.wait()
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE {db} WITH (FORCE)"], check=True)

one = measure(1)
two = measure(2)
print(json.dumps({"events": len(bodies) * batch, "one_instance_events_per_sec": round(one),
                  "two_instances_events_per_sec": round(two), "ratio": round(two / one, 2)}))
