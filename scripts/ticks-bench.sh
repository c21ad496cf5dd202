#!/usr/bin/env bash
# Scenario 3 benchmark (see README): generates TICKS deterministic ticks (5 tickers, 20% up to
# 5 s out of order), then in one run measures sluice's ticks JSON → 1-minute tumbling window
# per ticker (avg, min, max, count) → Parquet partitioned by ticker, checkpoint every second,
# against DuckDB's time_bucket group-by of the same file to the same partitioned Parquet;
# prints the medians, the ratio, and checks that both wrote the same windows.
# Not a test: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
TICKS="${TICKS:-5000000}"
ROUNDS="${ROUNDS:-3}"

rustup toolchain install >/dev/null
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements-bench.txt
cargo build --release --locked -p sluice

mkdir -p bench-data
DATA="bench-data/ticks-$TICKS.ndjson"
if [ ! -f "$DATA" ]; then
    echo "Generating $TICKS ticks into $DATA"
    python3 scripts/gen_ticks.py "$DATA.tmp" --seconds "$((TICKS / 100))" --rate 100
    mv "$DATA.tmp" "$DATA"
fi
exec .venv/bin/python scripts/ticks_bench.py --data "$DATA" --rounds "$ROUNDS" --sluice target/release/sluice
