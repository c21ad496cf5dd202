#!/usr/bin/env bash
# The crash test at full strength, for closing notes (too long for CI): 100 SIGKILLs, at random
# moments and at injected points inside the checkpoint protocol, over 2.1 million rows with a
# stateful component; the output read back by pyarrow must equal a clean run's row by row.
# KILLS, ROWS and SEED override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain install >/dev/null
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
export SLUICE_TEST_PYTHON="$PWD/.venv/bin/python"
export SLUICE_CACHE_DIR="$PWD/target/sluice-cache"
export SLUICE_CRASH_KILLS="${KILLS:-100}"
export SLUICE_CRASH_ROWS="${ROWS:-2100000}"
export SLUICE_CRASH_SEED="${SEED:-12648430}"
exec cargo test --locked -p sluice --test integration -- --exact \
    crash::kill_9_at_random_moments_loses_and_duplicates_nothing --nocapture
