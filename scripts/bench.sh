#!/usr/bin/env bash
# Sensor-ETL benchmark (see README): generates ROWS deterministic sensor lines, then in one
# run measures (a) decode → Parquet with no WASM stage, (b) the same with the map + filter
# components and a checkpoint every second, (bn) (b) without checkpoints, (b0) (b) without
# deadlines or memory caps, (c) DuckDB's COPY … TO parquet of the same job, (b1) one worker
# and (b1c) one worker confined to one core; prints rows/s, MB/s, peak RSS and the ratios
# (b)/(a), (b)/(c), (b)/(b0), (b)/(bn), (b)/(b1), (b)/(b1c) and (bm)/(b) (metrics served).
# Use ROWS ≥ 5000000 for (b)/(bn): a shorter run ends before its first one-second checkpoint.
# Not a test: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-1000000}"
ROUNDS="${ROUNDS:-3}"

rustup toolchain install >/dev/null
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements-bench.txt
cargo build --release --locked -p sluice

mkdir -p bench-data
DATA="bench-data/sensors-$ROWS.ndjson"
if [ ! -f "$DATA" ]; then
    echo "Generating $ROWS rows into $DATA"
    python3 scripts/gen_sensors.py "$DATA.tmp" --rows "$ROWS" --devices 1000 --seed 42 2>/dev/null
    mv "$DATA.tmp" "$DATA"
fi
# BASELINE_SLUICE=path/to/an/earlier/sluice adds (b) run by that binary, for a before/after ratio.
exec .venv/bin/python scripts/bench.py --data "$DATA" --rows "$ROWS" --rounds "$ROUNDS" --sluice target/release/sluice \
    ${BASELINE_SLUICE:+--baseline-sluice "$BASELINE_SLUICE"}
