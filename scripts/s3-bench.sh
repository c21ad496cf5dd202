#!/usr/bin/env bash
# S3 sink benchmark (see README): the sensor ETL of scripts/bench.sh to a local folder and to
# S3 (moto on a free loopback port), interleaved in one run; prints rows/s of both, their ratio,
# MB/s to the emulator and the object sizes of a run with checkpoints every 2 s.
# Not a test: figures depend on the machine, and moto (a Python server) bounds the upload rate.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-1000000}"
ROUNDS="${ROUNDS:-3}"

rustup toolchain install >/dev/null
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
cargo build --release --locked -p sluice

mkdir -p bench-data
DATA="bench-data/sensors-$ROWS.ndjson"
if [ ! -f "$DATA" ]; then
    echo "Generating $ROWS rows into $DATA"
    python3 scripts/gen_sensors.py "$DATA.tmp" --rows "$ROWS" --devices 1000 --seed 42 2>/dev/null
    mv "$DATA.tmp" "$DATA"
fi
exec .venv/bin/python scripts/s3_bench.py --data "$DATA" --rows "$ROWS" --rounds "$ROUNDS" --sluice target/release/sluice
