#!/usr/bin/env python3
"""The S3 sink benchmark (scripts/s3-bench.sh): the sensor ETL of scripts/bench.sh (decode ->
map + filter -> Parquet by ingest hour, checkpoint every second) written to a local folder and
to S3 (moto's server on a free loopback port, checkpoints there too), interleaved in one run.

Prints the median wall time and rows/s of each, their ratio, the MB/s that reached the
emulator, and the sizes of the objects a run with checkpoints every 2 s leaves (objects stay
large while checkpoints are frequent). Not a test: figures depend on the machine, and against
moto (a Python server) the upload rate is the emulator's.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import SCHEMA, TRANSFORMS  # noqa: E402

ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
BUCKET = "bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(log):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=log, env={**os.environ, **ENV},
    )
    endpoint = f"http://127.0.0.1:{port}"
    import boto3
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
    for _ in range(600):
        try:
            s3.list_buckets()
            return proc, endpoint, s3
        except Exception:
            if proc.poll() is not None:
                sys.exit("moto_server exited")
            time.sleep(0.1)
    sys.exit("moto_server did not answer")


def pipeline(path, data, sink, checkpoint):
    text = f"""
[pipeline]
name = "bench"
[source]
type = "file"
path = "{os.path.abspath(data)}"
batch_rows = 8192
{SCHEMA}
{TRANSFORMS}
[sink]
{sink}
partition = {{ by = "ingest_time", granularity = "hour" }}
[checkpoint]
{checkpoint}
"""
    with open(path, "w") as f:
        f.write(text)


def s3_sink(endpoint, prefix):
    at = f'region = "us-east-1"\nendpoint_url = "{endpoint}"\nforce_path_style = true'
    sink = f'type = "s3"\nbucket = "{BUCKET}"\nprefix = "{prefix}"\n{at}'
    return sink, at


def run(cmd):
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env={**os.environ, **ENV})
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{cmd} failed:\n{proc.stdout.decode()}\n{proc.stderr.decode()}")
    return elapsed


def objects(s3, prefix):
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        found += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sluice", required=True)
    a = ap.parse_args()
    work = os.path.abspath("bench-data/s3-work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with open(f"{work}/moto.log", "w") as log:
        proc, endpoint, s3 = start_moto(log)
        try:
            s3.create_bucket(Bucket=BUCKET)
            local_times, s3_times, uploaded = [], [], []
            for r in range(a.rounds + 1):
                out = f"{work}/out-local"
                shutil.rmtree(out, ignore_errors=True)
                local = f"{work}/local.toml"
                pipeline(local, a.data, f'type = "parquet"\npath = "{out}"', f'path = "{work}/cp-{r}"\ninterval = "1s"')
                prefix = f"round-{r}/"
                sink, at = s3_sink(endpoint, prefix + "out/")
                remote = f"{work}/s3.toml"
                pipeline(remote, a.data, sink, f'store = {{ s3 = "s3://{BUCKET}/{prefix}cp/" }}\n{at}\ninterval = "1s"')
                t_local = run([a.sluice, "run", local])
                t_s3 = run([a.sluice, "run", remote])
                if r == 0:
                    continue  # warms the page cache and the compiled components
                local_times.append(t_local)
                s3_times.append(t_s3)
                uploaded.append(sum(size for _, size in objects(s3, prefix + "out/")))
            # Object sizes with checkpoints every 2 s and the default 128 MB target.
            sink, at = s3_sink(endpoint, "sizes/out/")
            sized = f"{work}/sizes.toml"
            pipeline(sized, a.data, sink, f'store = {{ s3 = "s3://{BUCKET}/sizes/cp/" }}\n{at}\ninterval = "2s"')
            t_sized = run([a.sluice, "run", sized])
            sizes = sorted(size for _, size in objects(s3, "sizes/out/"))
        finally:
            proc.kill()
    size = os.path.getsize(a.data)
    lm, sm = statistics.median(local_times), statistics.median(s3_times)
    mb = statistics.median(uploaded) / 1e6
    print(f"\n{a.rows:,} rows, {size / 1e6:.0f} MB of input, {os.cpu_count()} cores, median of {a.rounds} interleaved runs\n")
    print(f"{'variant':58} {'seconds':>8} {'rows/s':>12}")
    print(f"{'(l) map + filter -> local Parquet, checkpoint 1 s':58} {lm:8.2f} {a.rows / lm:12,.0f}")
    print(f"{'(s) the same -> S3 (moto), S3 checkpoint store':58} {sm:8.2f} {a.rows / sm:12,.0f}")
    print(f"\nratio (s)/(l) = {lm / sm:.2f}   (throughput with the S3 sink over the local sink)")
    print(f"to the emulator: {mb:.1f} MB of objects per run, {mb / sm:.1f} MB/s over the whole run")
    print(f"\nobjects of a run with checkpoints every 2 s ({t_sized:.1f} s): {len(sizes)}; "
          f"sizes min {sizes[0] / 1e6:.1f} MB, median {statistics.median(sizes) / 1e6:.1f} MB, "
          f"max {sizes[-1] / 1e6:.1f} MB" if sizes else "no objects")


if __name__ == "__main__":
    main()
