#!/usr/bin/env python3
"""Kinesis source benchmark against kinesis-local (not a test: figures depend on the machine).

    kinesis_bench.py --sluice target/release/sluice --records N --shards S [--aggregate K]

Starts the emulator on free loopback ports, creates a stream of S shards and puts N sensor
records with boto3 (PutRecords, 500 at a time; with --aggregate K, KPL aggregates of K user
records built with aws-kinesis-agg). Then, in the same run, reads the whole backlog twice:

  (k)  sluice: kinesis source → Parquet, `end = "caught_up"`, checkpoint every second;
  (r)  the baseline: a plain boto3 reader (one thread per shard, GetRecords with Limit
       10000 in a loop, KPL aggregates unpacked with aws-kinesis-agg), what a hand-written
       consumer does.

It prints records/s in total and per shard for both and the ratio (k)/(r), and samples
`sluice status` every half second while (k) catches up, to show how the lag falls.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator():
    pkg = os.path.join(HERE, "kinesis", "node_modules", "kinesis-local")
    plain, tls = free_port(), free_port()
    env = dict(os.environ, KINESIS_MOCK_PLAIN_PORT=str(plain), KINESIS_MOCK_TLS_PORT=str(tls),
               KINESIS_MOCK_CERT_PATH=os.path.join(pkg, "server.json"),
               CREATE_STREAM_DURATION="100ms", SHARD_LIMIT="1000", LOG_LEVEL="WARN")
    proc = subprocess.Popen(["node", "main.js"], cwd=pkg, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{plain}"
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", plain), timeout=0.2).close()
            return proc, endpoint
        except OSError:
            if proc.poll() is not None:
                sys.exit("kinesis-local did not start")
            time.sleep(0.2)
    sys.exit("kinesis-local did not answer")


def client(endpoint):
    import boto3
    from botocore.config import Config
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench",
                        config=Config(retries={"max_attempts": 10, "mode": "standard"},
                                      max_pool_connections=64))


def put(k, stream, records, aggregate):
    import aws_kinesis_agg.aggregator as agg
    lines = [json.dumps({"client_id": f"d-{i % 500}", "count": i, "temperature": 20 + (i % 97) / 10,
                         "humidity": 40.5, "timestamp": "2026-01-05 10:00:00"}) for i in range(records)]
    entries = []
    if aggregate > 1:
        for start in range(0, len(lines), aggregate):
            a = agg.RecordAggregator()
            for line in lines[start:start + aggregate]:
                a.add_user_record(line.split('"')[3], line.encode())
            pk, _ehk, data = a.clear_and_get().get_contents()
            entries.append({"Data": data, "PartitionKey": pk})
    else:
        entries = [{"Data": line.encode(), "PartitionKey": line.split('"')[3]} for line in lines]

    def send(chunk):
        pending = chunk
        while pending:
            out = k.put_records(StreamName=stream, Records=pending)
            pending = [e for e, r in zip(pending, out["Records"]) if "ErrorCode" in r]

    batches = [entries[i:i + 500] for i in range(0, len(entries), 500)]
    threads = []
    for t in range(8):
        th = threading.Thread(target=lambda t=t: [send(b) for b in batches[t::8]])
        th.start()
        threads.append(th)
    for th in threads:
        th.join()


def baseline(k, stream):
    """A plain boto3 consumer: one thread per shard, records counted (user records)."""
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records
    shards = [s["ShardId"] for s in k.list_shards(StreamName=stream)["Shards"]]
    counts = {}

    def read(shard):
        it = k.get_shard_iterator(StreamName=stream, ShardId=shard,
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        n = 0
        while it:
            out = k.get_records(ShardIterator=it, Limit=10000)
            for r in out["Records"]:
                n += sum(1 for _ in iter_deaggregate_records(dict(r), data_format="Boto3"))
            if not out["Records"] and out.get("MillisBehindLatest", 0) == 0:
                break
            it = out.get("NextShardIterator")
        counts[shard] = n

    started = time.perf_counter()
    threads = [threading.Thread(target=read, args=(s,)) for s in shards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, sum(counts.values())


def run_sluice(binary, endpoint, stream, work):
    pipeline = os.path.join(work, "bench.toml")
    with open(pipeline, "w") as f:
        f.write(f'''[pipeline]
name = "kinesis-bench"
[source]
type = "kinesis"
stream = "{stream}"
region = "us-east-1"
endpoint_url = "{endpoint}"
end = "caught_up"
idle_poll = "200ms"
[source.schema]
client_id = "string"
count = "int64"
temperature = "double"
humidity = "double"
timestamp = "string"
[sink]
type = "parquet"
path = "out"
[checkpoint]
path = "cp"
interval = "1s"
''')
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_EC2_METADATA_DISABLED="true", SLUICE_RUNTIME_DIR=work)
    started = time.perf_counter()
    proc = subprocess.Popen([binary, "run", pipeline], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    lags = []
    while proc.poll() is None:
        time.sleep(0.5)
        st = subprocess.run([binary, "status", pipeline], env=env, capture_output=True, text=True)
        line = next((l for l in st.stdout.splitlines() if l.strip().startswith("lag")), None)
        if line:
            lags.append((round(time.perf_counter() - started, 1), line.split(None, 1)[1]))
    out = proc.stdout.read()
    elapsed = time.perf_counter() - started
    read = next((l for l in out.splitlines() if l.strip().startswith("read")), "")
    rows = int(read.split()[1]) if read else 0
    return elapsed, rows, lags, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default=os.path.join(ROOT, "target", "release", "sluice"))
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--aggregate", type=int, default=1)
    a = ap.parse_args()
    proc, endpoint = start_emulator()
    try:
        k = client(endpoint)
        stream = "bench"
        k.create_stream(StreamName=stream, ShardCount=a.shards)
        while k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
            time.sleep(0.1)
        t0 = time.perf_counter()
        put(k, stream, a.records, a.aggregate)
        print(f"put {a.records} records ({'KPL x%d' % a.aggregate if a.aggregate > 1 else 'plain'}) "
              f"on {a.shards} shards in {time.perf_counter() - t0:.1f} s")
        with tempfile.TemporaryDirectory() as work:
            k_s, k_rows, lags, summary = run_sluice(a.sluice, endpoint, stream, work)
        r_s, r_rows = baseline(k, stream)
        print(f"(k) sluice         {k_rows} records in {k_s:.2f} s: {k_rows / k_s:,.0f} records/s, "
              f"{k_rows / k_s / a.shards:,.0f} per shard")
        print(f"(r) boto3 reader   {r_rows} records in {r_s:.2f} s: {r_rows / r_s:,.0f} records/s, "
              f"{r_rows / r_s / a.shards:,.0f} per shard")
        print(f"(k)/(r) = {(k_rows / k_s) / (r_rows / r_s):.2f}")
        print("lag while catching up (s since start: per shard):")
        for at, lag in lags:
            print(f"  {at:5.1f}  {lag}")
        if k_rows != a.records:
            sys.exit(f"sluice read {k_rows} records, {a.records} were put:\n{summary}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
