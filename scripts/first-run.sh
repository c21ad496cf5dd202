#!/usr/bin/env bash
# First-run benchmark (see README): builds the README's run command, then runs the example
# pipeline ROUNDS times with an empty compiled-component cache and with a warm one, and prints
# the median time to the first output file and to the end. BASELINE_SLUICE=path/to/another
# sluice adds that binary's empty-cache run for a before/after ratio in the same run.
# Not a test: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
rustup toolchain install >/dev/null
cargo build --locked -p sluice
exec python3 scripts/first_run.py --sluice target/debug/sluice --rounds "$ROUNDS" \
    ${BASELINE_SLUICE:+--baseline-sluice "$BASELINE_SLUICE"}
