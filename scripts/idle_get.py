#!/usr/bin/env python3
# Idle GET latency: median and p90 of N keep-alive GETs per endpoint against a running server.
# Usage: scripts/idle_get.py 127.0.0.1:8080 [samples]   (against `diandan up --demo --rate-limits off`:
# 7 endpoints × samples exceed the per-token default of 300 requests a minute)
import http.client, json, sys, time, statistics
host, port = sys.argv[1].split(":")
n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
c = http.client.HTTPConnection(host, int(port))
def call(method, path, body=None, token=None):
    h = {"Content-Type": "application/json"}
    if token: h["Authorization"] = "Bearer " + token
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse(); data = r.read()
    return r.status, data
s, d = call("POST", "/api/v1/dev/login", {"role": "station_head", "user_id": "h", "org_node": "xianan"})
head = json.loads(d)["token"]
s, d = call("GET", "/api/v1/orders?limit=1", token=head)
oid = json.loads(d)["orders"][0]["order_id"]
for path in [f"/api/v1/orders/{oid}", f"/api/v1/orders/{oid}/history", "/api/v1/orders", "/api/v1/nodes/xianan/queue",
             "/api/v1/org", "/api/v1/teams", "/api/v1/nodes/xianan/stats"]:
    ts = []
    for _ in range(n):
        t = time.perf_counter(); s, _ = call("GET", path, token=head); ts.append((time.perf_counter() - t) * 1000)
        assert s == 200, (path, s)
    ts.sort()
    print(f"{path:45s} p50 {statistics.median(ts):6.2f} ms  p90 {ts[int(len(ts)*0.9)]:6.2f} ms")
