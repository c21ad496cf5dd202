#!/usr/bin/env bash
# MQTT benchmark (issue 7): sustained messages/s through MQTT → map → filter → Parquet on a
# local mosquitto, against the same messages from a file (ratio), and publish → visible
# latency p50/p99 at a steady rate. See scripts/mqtt_bench.py. Not a test.
#   MESSAGES=200000 INFLIGHT=1000 RATE=2000 DURATION=20 scripts/mqtt-bench.sh
# With BASELINE=<another sluice binary> ROUNDS=3, both drain the same queue size in
# interleaved rounds and the ratio of the medians is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain install >/dev/null
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
command -v mosquitto >/dev/null || apt-get install -y -qq mosquitto >/dev/null
cargo build --release --locked -p sluice
exec .venv/bin/python scripts/mqtt_bench.py --sluice target/release/sluice \
    --messages "${MESSAGES:-200000}" --inflight "${INFLIGHT:-1000}" \
    --rate "${RATE:-2000}" --seconds "${DURATION:-20}" --rounds "${ROUNDS:-1}" \
    ${BASELINE:+--baseline "$BASELINE"}
