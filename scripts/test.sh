#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, then runs every check.
#   - the pinned Rust toolchain with clippy, rustfmt and the wasm32-wasip2 target;
#   - a Python venv with independent Parquet readers (pyarrow, duckdb) for end-to-end checks,
#     and the real clients the source tests produce with (paho-mqtt, boto3, aws-kinesis-agg);
#   - the services those tests start: mosquitto, kinesis-local (a Kinesis emulator on node), and
#     Prometheus with promtool (Debian's package) for the metrics tests, and tmux for sluice top's;
#   - the JavaScript SDK's packages (npm) and its unit tests on Node.js, and the Python SDK's
#     (componentize-py and flatbuffers come with the venv);
#   - formatting and lints, then every test of the workspace (unit, golden, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> Rust toolchain (rust-toolchain.toml)"
rustup toolchain install

echo "==> Python readers for end-to-end checks (.venv)"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
export SLUICE_TEST_PYTHON="$PWD/.venv/bin/python"
# A test whose service or reader is missing fails rather than skips under this command.
export SLUICE_REQUIRE_SERVICES=1
# Compiled components are cached here across test processes (first compile is slow).
export SLUICE_CACHE_DIR="$PWD/target/sluice-cache"

echo "==> mosquitto (a real MQTT broker for the MQTT source's tests)"
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get install -y -qq mosquitto >/dev/null 2>&1 \
        || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq mosquitto >/dev/null; }
fi

echo "==> tmux (the sluice top test watches its screen in one)"
if ! command -v tmux >/dev/null; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get install -y -qq tmux >/dev/null 2>&1 \
        || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq tmux >/dev/null; }
fi

echo "==> prometheus and promtool (a real Prometheus scrapes /metrics in the metrics tests)"
if ! command -v promtool >/dev/null && [ ! -x /usr/bin/promtool ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
        || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
fi

echo "==> kinesis-local (a Kinesis emulator for the Kinesis source's tests)"
if [ ! -f scripts/kinesis/node_modules/kinesis-local/main.js ]; then
    if ! command -v npm >/dev/null; then
        SUDO=""
        if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
        $SUDO apt-get install -y -qq nodejs npm >/dev/null 2>&1 \
            || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq nodejs npm >/dev/null; }
    fi
    npm ci --prefix scripts/kinesis --no-audit --no-fund
fi

echo "==> sdk-js (transforms in JavaScript): its unit tests on Node.js"
npm ci --prefix sdk-js --no-audit --no-fund
npm test --prefix sdk-js
npm ci --prefix sdk-js/examples/filter --no-audit --no-fund
npm test --prefix sdk-js/examples/filter

echo "==> sdk-py (transforms in Python): its unit tests, against pyarrow"
.venv/bin/python -m unittest discover -s sdk-py/tests

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "==> cargo test"
cargo test --locked --workspace
