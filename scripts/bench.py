#!/usr/bin/env python3
"""Driver for scripts/bench.sh: runs each variant ROUNDS times, interleaved, and reports the
median wall time, rows/s, MB/s and peak RSS of each, with the ratios asked for.

On a shared 2-core machine the speed of the whole machine drifts by a third over minutes,
so a ratio of two medians taken a minute apart measures the drift as much as the code. Each
round therefore runs the variants in an order that puts the ones compared side by side
(DuckDB between (b) and the anomaly variant), forwards in even rounds and backwards in odd
ones, and each ratio is the median of the ratios within a round."""
import argparse
import os
import shutil
import statistics
import socket
import subprocess
import sys
import textwrap
import time

SCHEMA = """
[source.schema]
client_id = { type = "string", nullable = false }
timestamp = "string"
humidity = "double"
temperature = "double"
pressure = "double"
pitch = "double"
roll = "double"
yaw = "double"
count = "long"
"""

TRANSFORMS = """
[[transform]]
name = "mapping"
plugin = "map"
[transform.config]
mappings = [
  { from = "client_id", to = "device_id" },
  { from = "timestamp", to = "event_time", type = "timestamp", format = "%Y-%m-%d %H:%M:%S" },
  { from = "humidity" },
  { from = "temperature" },
  { from = "pressure" },
  { from = "pitch", type = "float" },
  { from = "roll", type = "float" },
  { from = "yaw", type = "float" },
  { from = "count", type = "int" },
]

[[transform]]
name = "warm"
plugin = "filter"
config.predicate = "temperature > 25"
"""


ANOMALY = """
[[transform]]
name = "spikes"
plugin = "anomaly"
[transform.config]
key = "device_id"
value = "temperature"
threshold = 4.0
warmup = 10
"""


def pipeline(path, data, out, with_wasm, checkpoint="1s", workers=None, anomaly=False):
    transforms = TRANSFORMS
    if anomaly:
        # Between map and filter, as in pipelines/iot-sensors.toml.
        mapping, warm = TRANSFORMS.split("[[transform]]\nname = \"warm\"")
        transforms = mapping + ANOMALY + "[[transform]]\nname = \"warm\"" + warm
    text = f"""
[pipeline]
name = "bench"
{f"workers = {workers}" if workers else ""}
[source]
type = "file"
path = "{os.path.abspath(data)}"
batch_rows = 8192
{SCHEMA}
{transforms if with_wasm else ""}
[sink]
type = "parquet"
path = "{os.path.abspath(out)}"
partition = {{ by = "ingest_time", granularity = "hour" }}
[checkpoint]
{f'interval = "{checkpoint}"' if checkpoint else "enabled = false"}
"""
    with open(path, "w") as f:
        f.write(text)


def duckdb_script(data, out):
    return textwrap.dedent(f"""
        import duckdb
        con = duckdb.connect()
        con.execute("SET threads = {os.cpu_count()}")
        con.execute('''
          COPY (
            SELECT client_id AS device_id,
                   strptime(timestamp, '%Y-%m-%d %H:%M:%S') AS event_time,
                   humidity, temperature, pressure,
                   pitch::FLOAT AS pitch, roll::FLOAT AS roll, yaw::FLOAT AS yaw, "count"::INTEGER AS "count",
                   year(now()) AS ingest_year, month(now()) AS ingest_month,
                   day(now()) AS ingest_day, hour(now()) AS ingest_hour
            FROM read_json('{os.path.abspath(data)}', format = 'newline_delimited',
                 columns = {{client_id: 'VARCHAR', timestamp: 'VARCHAR', humidity: 'DOUBLE',
                             temperature: 'DOUBLE', pressure: 'DOUBLE', pitch: 'DOUBLE',
                             roll: 'DOUBLE', yaw: 'DOUBLE', count: 'BIGINT'}})
            WHERE temperature > 25
          ) TO '{os.path.abspath(out)}'
          (FORMAT parquet, COMPRESSION snappy,
           PARTITION_BY (ingest_year, ingest_month, ingest_day, ingest_hour), OVERWRITE_OR_IGNORE)
        ''')
    """)


def polars_script(data, out):
    """The same job with Polars' streaming engine: scan_ndjson -> filter -> select ->
    sink_parquet partitioned by the ingest hour (Hive folders, as sluice and DuckDB write)."""
    return textwrap.dedent(f"""
        import datetime
        import polars as pl
        now = datetime.datetime.now()
        schema = {{"client_id": pl.String, "timestamp": pl.String, "humidity": pl.Float64,
                  "temperature": pl.Float64, "pressure": pl.Float64, "pitch": pl.Float64,
                  "roll": pl.Float64, "yaw": pl.Float64, "count": pl.Int64}}
        (pl.scan_ndjson('{os.path.abspath(data)}', schema=schema)
           .filter(pl.col("temperature") > 25)
           .select(pl.col("client_id").alias("device_id"),
                   pl.col("timestamp").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S").alias("event_time"),
                   "humidity", "temperature", "pressure",
                   pl.col("pitch").cast(pl.Float32), pl.col("roll").cast(pl.Float32),
                   pl.col("yaw").cast(pl.Float32), pl.col("count").cast(pl.Int32),
                   pl.lit(now.year).alias("ingest_year"), pl.lit(now.month).alias("ingest_month"),
                   pl.lit(now.day).alias("ingest_day"), pl.lit(now.hour).alias("ingest_hour"))
           .sink_parquet(pl.PartitionBy('{os.path.abspath(out)}',
                                        key=["ingest_year", "ingest_month", "ingest_day", "ingest_hour"]),
                         compression="snappy", mkdir=True, engine="streaming"))
    """)


def run(cmd, out_dir):
    shutil.rmtree(out_dir, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, _, rusage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    if proc.returncode not in (0, None):
        sys.exit(f"{cmd[0]} failed:\n{stdout.decode()}\n{stderr.decode()}")
    if b"checkpoints" in stdout:
        last_checkpoints[0] = stdout.decode().split("checkpoints")[1].split("(")[0].strip()
    return elapsed, rusage.ru_maxrss * 1024


last_checkpoints = [None]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--baseline-sluice", help="another sluice binary (e.g. an earlier commit's) to run (b) with, for a before/after ratio in the same run")
    a = ap.parse_args()
    work = os.path.abspath("bench-data/work")
    os.makedirs(work, exist_ok=True)
    size = os.path.getsize(a.data)
    native_toml, wasm_toml = f"{work}/native.toml", f"{work}/wasm.toml"
    plain_toml = f"{work}/wasm-no-checkpoints.toml"
    pipeline(native_toml, a.data, f"{work}/out-native", with_wasm=False, checkpoint=None)
    pipeline(wasm_toml, a.data, f"{work}/out-wasm", with_wasm=True)
    pipeline(plain_toml, a.data, f"{work}/out-wasm", with_wasm=True, checkpoint=None)
    one_toml, anomaly_toml = f"{work}/wasm-one-worker.toml", f"{work}/wasm-anomaly.toml"
    pipeline(one_toml, a.data, f"{work}/out-wasm", with_wasm=True, workers=1)
    pipeline(anomaly_toml, a.data, f"{work}/out-wasm", with_wasm=True, anomaly=True)
    A, B, BN, B0 = "(a)", "(b)", "(bn)", "(b0)"
    C, P, B1, BA, BM, B1C, BASE = "(c)", "(p)", "(b1)", "(ba)", "(bm)", "(b1c)", "(b@baseline)"
    # (label, what it is, command, output folder), in the order of the table.
    table = [
        (A, "native floor: decode -> Parquet, no checkpoints", [a.sluice, "run", native_toml], f"{work}/out-native"),
        (B, "decode -> map + filter -> Parquet, checkpoint 1 s", [a.sluice, "run", wasm_toml], f"{work}/out-wasm"),
        (BN, "= (b) without checkpoints", [a.sluice, "run", plain_toml], f"{work}/out-wasm"),
        (B0, "= (b) without deadlines or memory caps", [a.sluice, "run", "--unenforced-limits", wasm_toml], f"{work}/out-wasm"),
        (C, "DuckDB COPY ... TO parquet", [sys.executable, "-c", duckdb_script(a.data, f"{work}/out-duckdb")], f"{work}/out-duckdb"),
        (P, "Polars scan_ndjson -> sink_parquet (streaming)", [sys.executable, "-c", polars_script(a.data, f"{work}/out-polars")], f"{work}/out-polars"),
        (B1, "= (b) with one worker", [a.sluice, "run", one_toml], f"{work}/out-wasm"),
        (BA, "= (b) + the anomaly stage (stateful: one worker)", [a.sluice, "run", anomaly_toml], f"{work}/out-wasm"),
        (BM, "= (b) serving Prometheus metrics", [a.sluice, "run", "--metrics-addr", f"127.0.0.1:{free_port()}", wasm_toml], f"{work}/out-wasm"),
        # Scaling per core: one worker confined to one core (its decoding thread, reader and
        # writer included) against (b), two workers on the machine's two cores.
        (B1C, "= (b1) confined to one core (taskset -c 0)", ["taskset", "-c", "0", a.sluice, "run", one_toml], f"{work}/out-wasm"),
    ]
    if a.baseline_sluice:
        table.append((BASE, "= (b) run by the baseline binary", [a.baseline_sluice, "run", wasm_toml], f"{work}/out-wasm"))
        run(table[-1][2], f"{work}/out-wasm")
    variants = {label: (cmd, out) for label, _, cmd, out in table}
    # Warm the page cache and the compiled-component caches (with and without limits).
    run(variants[B][0], f"{work}/out-wasm")
    run(variants[B0][0], f"{work}/out-wasm")
    # Side by side what is compared: (b) with DuckDB and its own variants, the anomaly
    # variant with DuckDB, (b1c) with (b1) and (b).
    order = [P, A, BN, B0, BM, B, C, BA, B1, B1C, BASE]
    order = [label for label in order if label in variants]
    times = {k: [] for k in variants}
    rss = {k: 0 for k in variants}
    for round_ in range(a.rounds):
        for name in order if round_ % 2 == 0 else reversed(order):
            cmd, out = variants[name]
            t, r = run(cmd, out)
            times[name].append(t)
            rss[name] = max(rss[name], r)
    print(f"\n{a.rows:,} rows, {size / 1e6:.0f} MB, {os.cpu_count()} cores, median of {a.rounds} interleaved runs\n")
    print(f"(b) took {last_checkpoints[0]} checkpoints per run\n")
    print(f"{'variant':58} {'seconds':>8} {'(range)':>12} {'rows/s':>12} {'MB/s':>8} {'peak RSS':>10}")
    for label, what, _, _ in table:
        m = statistics.median(times[label])
        spread = f"{min(times[label]):.2f}-{max(times[label]):.2f}"
        print(f"{label + ' ' + what:58} {m:8.2f} {spread:>12} {a.rows / m:12,.0f} {size / 1e6 / m:8.1f} {rss[label] / 2**20:8.0f} MB")

    def ratio(faster, slower):
        """The median over rounds of how many times faster `faster` ran than `slower`."""
        return statistics.median(s / f for f, s in zip(times[faster], times[slower]))

    print("\nratios: the median of each round's ratio")
    print(f"ratio (b)/(a) = {ratio(B, A):.2f}   (throughput of the WASM pipeline over the native floor)")
    print(f"ratio (b)/(c) = {ratio(B, C):.2f}   (throughput of the WASM pipeline over DuckDB)")
    print(f"ratio (b)/(p) = {ratio(B, P):.2f}   (throughput of the WASM pipeline over Polars)")
    print(f"ratio (b)/(b0) = {ratio(B, B0):.3f}  (throughput with epoch deadlines + memory caps over without)")
    print(f"ratio (b)/(bn) = {ratio(B, BN):.3f}  (throughput with a checkpoint every second over no checkpoints)")
    print(f"ratio (b)/(b1) = {ratio(B, B1):.2f}   (2 workers over 1; one worker's chunks are decoded on a thread per core, so it uses both cores too)")
    print(f"ratio (b)/(b1c) = {ratio(B, B1C):.2f}   (2 workers on 2 cores over 1 worker on 1 core)")
    print(f"ratio (ba)/(c) = {ratio(BA, C):.2f}   (the anomaly variant over DuckDB's job without it)")
    print(f"ratio (bm)/(b) = {ratio(BM, B):.3f}  (throughput with metrics recorded and served over without)")
    if a.baseline_sluice:
        print(f"ratio (b)/(b@baseline) = {ratio(B, BASE):.3f}  (this build's throughput over the baseline binary's, same data, same run)")


if __name__ == "__main__":
    main()
