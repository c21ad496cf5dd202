#!/usr/bin/env python3
"""Driver for scripts/ticks-bench.sh: sluice's windowed aggregation of ticks against DuckDB's
time_bucket group-by, ROUNDS interleaved runs each; medians, peak RSS, the ratio, and a check
(by DuckDB, over both outputs) that the two wrote the same windows."""
import argparse
import os
import statistics
import sys
import textwrap

from bench import run  # times one command and reads its peak RSS, as the sensor bench does


def pipeline(path, data, out):
    with open(path, "w") as f:
        f.write(f"""
[pipeline]
name = "ticks-bench"
[source]
type = "file"
path = "{os.path.abspath(data)}"
batch_rows = 8192
[source.schema]
event_time = {{ type = "timestamp", nullable = false }}
ticker = {{ type = "string", nullable = false }}
price = "double"

[[transform]]
name = "per-minute"
plugin = "window"
watermark = {{ column = "event_time", max_out_of_orderness = "5s" }}
[transform.config]
time_column = "event_time"
window = {{ type = "tumbling", size = "1m" }}
group_by = ["ticker"]
aggregates = [
  {{ fn = "avg", column = "price", as = "avg_price" }},
  {{ fn = "min", column = "price", as = "low" }},
  {{ fn = "max", column = "price", as = "high" }},
  {{ fn = "count", as = "ticks" }},
]

[sink]
type = "parquet"
path = "{os.path.abspath(out)}"
partition = {{ by = "field", column = "ticker" }}
[checkpoint]
interval = "1s"
""")


def duckdb_script(data, out):
    return textwrap.dedent(f"""
        import duckdb
        con = duckdb.connect()
        con.execute("SET threads = {os.cpu_count()}")
        con.execute('''
          COPY (
            SELECT ticker, time_bucket(INTERVAL 1 minute, event_time) AS window_start,
                   avg(price) AS avg_price, min(price) AS low, max(price) AS high, count(*) AS ticks
            FROM read_json('{os.path.abspath(data)}', format = 'newline_delimited',
                 columns = {{event_time: 'TIMESTAMP', ticker: 'VARCHAR', price: 'DOUBLE'}})
            GROUP BY ALL
          ) TO '{os.path.abspath(out)}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (ticker), OVERWRITE_OR_IGNORE)
        ''')
    """)


def same_windows(ours, theirs):
    import duckdb
    con = duckdb.connect()
    q = """SELECT ticker, window_start, round(avg_price, 6) AS avg_price, low, high, ticks
           FROM read_parquet('{}/**/*.parquet', hive_partitioning = true)"""
    a = con.execute(f"SELECT count(*) FROM ({q.format(ours)})").fetchone()[0]
    diff = con.execute(f"SELECT count(*) FROM (({q.format(ours)}) EXCEPT ({q.format(theirs)}))").fetchone()[0]
    back = con.execute(f"SELECT count(*) FROM (({q.format(theirs)}) EXCEPT ({q.format(ours)}))").fetchone()[0]
    return a, diff, back


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sluice", required=True)
    a = ap.parse_args()
    work = os.path.abspath("bench-data/work-ticks")
    os.makedirs(work, exist_ok=True)
    rows = sum(1 for _ in open(a.data, "rb"))
    size = os.path.getsize(a.data)
    toml = f"{work}/ticks.toml"
    pipeline(toml, a.data, f"{work}/out-sluice")
    variants = {
        "(w) sluice: JSON -> window (WASM) -> Parquet by ticker, checkpoint 1 s": ([a.sluice, "run", toml], f"{work}/out-sluice"),
        "(d) DuckDB: read_json -> time_bucket group-by -> Parquet by ticker": ([sys.executable, "-c", duckdb_script(a.data, f"{work}/out-duckdb")], f"{work}/out-duckdb"),
    }
    for cmd, out in variants.values():
        run(cmd, out)
    times = {k: [] for k in variants}
    rss = {k: 0 for k in variants}
    for _ in range(a.rounds):
        for name, (cmd, out) in variants.items():
            t, r = run(cmd, out)
            times[name].append(t)
            rss[name] = max(rss[name], r)
    print(f"\n{rows:,} ticks, {size / 1e6:.0f} MB, {os.cpu_count()} cores, median of {a.rounds} interleaved runs\n")
    print(f"{'variant':72} {'seconds':>8} {'ticks/s':>12} {'peak RSS':>10}")
    med = {}
    for name in variants:
        med[name] = statistics.median(times[name])
        print(f"{name:72} {med[name]:8.2f} {rows / med[name]:12,.0f} {rss[name] / 2**20:8.0f} MB")
    w, d = med.values()
    print(f"\nratio (w)/(d) = {d / w:.2f}   (throughput of sluice's windowed pipeline over DuckDB's)")
    count, only_ours, only_theirs = same_windows(f"{work}/out-sluice", f"{work}/out-duckdb")
    print(f"windows: {count:,}; only in sluice's output: {only_ours}; only in DuckDB's: {only_theirs}")
    if only_ours or only_theirs:
        sys.exit("the two outputs differ")


if __name__ == "__main__":
    main()
