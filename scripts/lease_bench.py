#!/usr/bin/env python3
"""Instances sharing a stream through a lease table (`[source.leases]`): what it costs and how
fast it moves. Not a test: figures depend on the machine and the emulators.

    lease_bench.py --sluice target/release/sluice [--records N] [--shards S] [--failover 3s]

Starts kinesis-local (the stream) and moto (DynamoDB) on free loopback ports, then in one run:

  1. Throughput with 1, 2 and 3 instances: a backlog of N records on a fresh stream of S
     shards, the instances started together, timed until DuckDB-free counting of the Parquet
     footers (pyarrow) shows every record: records/s, and the ratio to one instance.
  2. Takeover: two instances read a stream fed without pause; one is SIGKILLed; the time from
     the kill until a record of one of its shards, put after the kill, is in the output
     (written by the survivor).
  3. DynamoDB calls at rest: two instances on an idle stream, `sluice_lease_calls_total` read
     from each one's /metrics 60 s apart: calls per minute per instance, by call.
"""
import argparse
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from kinesis_bench import client, free_port, put, start_emulator  # noqa: E402

ENV = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
           AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")


def start_moto():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(endpoint, timeout=0.5).read()
            return proc, endpoint
        except OSError:
            if proc.poll() is not None:
                sys.exit("moto did not start")
            time.sleep(0.2)
    sys.exit("moto did not answer")


def pipeline(work, name, stream, kinesis, moto, failover, extra=""):
    path = os.path.join(work, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f'''[pipeline]
name = "{name}"
[source]
type = "kinesis"
stream = "{stream}"
region = "us-east-1"
endpoint_url = "{kinesis}"
idle_poll = "200ms"
metadata = {{ shard = "_shard" }}
{extra}
[source.leases]
table = "{name}"
failover = "{failover}"
endpoint_url = "{moto}"
[source.schema]
client_id = "string"
count = "int64"
temperature = "double"
humidity = "double"
timestamp = "string"
[sink]
type = "parquet"
path = "out-{name}"
[checkpoint]
path = "cp-{name}"
interval = "1s"
''')
    return path


def start(binary, path, work, metrics_port=None):
    args = [binary, "run", "--no-reload", path]
    if metrics_port:
        args[2:2] = ["--metrics-addr", f"127.0.0.1:{metrics_port}"]
    return subprocess.Popen(args, cwd=work, env=dict(ENV, SLUICE_RUNTIME_DIR=work),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait()


def rows(out, shards=None):
    """Rows in the published Parquet files (footers only), or only those of `shards`."""
    import pyarrow.parquet as pq
    n = 0
    for f in glob.glob(os.path.join(out, "**", "*.parquet"), recursive=True):
        name = os.path.basename(f)
        if shards is not None and not any(name.startswith(s + "-") for s in shards):
            continue
        try:
            n += pq.read_metadata(f).num_rows
        except OSError:
            pass
    return n


def wait_active(k, stream):
    while k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        time.sleep(0.1)


def throughput(a, kinesis, moto, work):
    k = client(kinesis)
    results = {}
    for n in (1, 2, 3):
        stream = f"tp{n}"
        k.create_stream(StreamName=stream, ShardCount=a.shards)
        wait_active(k, stream)
        put(k, stream, a.records, 1)
        print(f"put {a.records} records on {a.shards} shards of {stream}", flush=True)
        path = pipeline(work, stream, stream, kinesis, moto, a.failover)
        started = time.perf_counter()
        procs = [start(a.sluice, path, work) for _ in range(n)]
        out = os.path.join(work, f"out-{stream}")
        while rows(out) < a.records:
            if any(p.poll() is not None for p in procs):
                sys.exit(f"an instance exited early ({n} instances)")
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        stop(procs)
        results[n] = a.records / elapsed
        print(f"{n} instance(s): {a.records} records in {elapsed:.1f} s, {results[n]:,.0f} records/s, "
              f"{results[n] / results[1]:.2f}x one instance", flush=True)
    return results


def table_owners(moto, table):
    import boto3
    ddb = boto3.client("dynamodb", endpoint_url=moto, region_name="us-east-1",
                       aws_access_key_id="bench", aws_secret_access_key="bench")
    try:
        items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    except ddb.exceptions.ResourceNotFoundException:
        return {}
    return {i["leaseKey"]["S"]: i.get("leaseOwner", {}).get("S") for i in items}


def takeover(a, kinesis, moto, work):
    k = client(kinesis)
    stream = "takeover"
    k.create_stream(StreamName=stream, ShardCount=a.shards)
    wait_active(k, stream)
    path = pipeline(work, stream, stream, kinesis, moto, a.failover)
    procs = [start(a.sluice, path, work), start(a.sluice, path, work)]
    feeding = threading.Event()
    feeding.set()

    def feed():
        i = 0
        while feeding.is_set():
            entries = [{"Data": json.dumps({"client_id": f"d-{j}", "count": i, "temperature": 1.0,
                                            "humidity": 2.0, "timestamp": "t"}).encode(),
                        "PartitionKey": f"d-{j}"} for j in range(50)]
            k.put_records(StreamName=stream, Records=entries)
            i += 1
            time.sleep(0.05)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        victim = procs[1]

        def victims():
            return [s for s, o in table_owners(moto, stream).items() if o and o.endswith(f"-{victim.pid}")]

        # An even split that held for a few seconds (steals settled), then the kill.
        while len(victims()) != a.shards // 2:
            time.sleep(0.2)
        time.sleep(3)
        mine = victims()
        out = os.path.join(work, f"out-{stream}")
        before = rows(out, mine)
        killed = time.perf_counter()
        victim.kill()
        victim.wait()
        while rows(out, mine) <= before:
            time.sleep(0.05)
        took = time.perf_counter() - killed
        print(f"takeover: SIGKILL of one of two instances -> first new record of its {len(mine)} shards "
              f"published by the other: {took:.1f} s (failover {a.failover}, checkpoint every 1 s)", flush=True)
    finally:
        feeding.clear()
        feeder.join()
        stop(procs)


def metric_calls(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    calls = {}
    for line in text.splitlines():
        m = re.match(r'sluice_lease_calls_total\{(.*)\} (\S+)', line)
        if m:
            call = re.search(r'call="([^"]+)"', m.group(1)).group(1)
            calls[call] = calls.get(call, 0) + float(m.group(2))
    return calls


def at_rest(a, kinesis, moto, work):
    k = client(kinesis)
    stream = "rest"
    k.create_stream(StreamName=stream, ShardCount=a.shards)
    wait_active(k, stream)
    path = pipeline(work, stream, stream, kinesis, moto, a.failover)
    ports = [free_port(), free_port()]
    procs = [start(a.sluice, path, work, p) for p in ports]
    try:
        while True:
            owners = table_owners(moto, stream)
            if len(set(owners.values()) - {None}) == 2 and None not in owners.values():
                break
            time.sleep(0.2)
        time.sleep(10)
        first = [metric_calls(p) for p in ports]
        time.sleep(60)
        second = [metric_calls(p) for p in ports]
        for i, (x, y) in enumerate(zip(first, second)):
            held = sum(1 for o in table_owners(moto, stream).values() if o and o.endswith(f"-{procs[i].pid}"))
            by = {c: y.get(c, 0) - x.get(c, 0) for c in sorted(set(x) | set(y))}
            print(f"at rest, instance {i + 1} ({held} leases, failover {a.failover}): "
                  f"{sum(by.values()):.0f} DynamoDB calls/min: "
                  + ", ".join(f"{c} {v:.0f}" for c, v in by.items()), flush=True)
    finally:
        stop(procs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default=os.path.join(ROOT, "target", "release", "sluice"))
    ap.add_argument("--records", type=int, default=120000)
    ap.add_argument("--shards", type=int, default=6)
    ap.add_argument("--failover", default="3s")
    ap.add_argument("--skip", default="", help="comma-separated: throughput,takeover,rest")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    kinesis_proc, kinesis = start_emulator()
    moto_proc, moto = start_moto()
    try:
        with tempfile.TemporaryDirectory() as work:
            if "throughput" not in skip:
                throughput(a, kinesis, moto, work)
            if "takeover" not in skip:
                takeover(a, kinesis, moto, work)
            if "rest" not in skip:
                at_rest(a, kinesis, moto, work)
    finally:
        for p in (kinesis_proc, moto_proc):
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
