#!/usr/bin/env bash
# Fuzz the host's parsers with libFuzzer (cargo-fuzz, nightly toolchain, used for nothing else):
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 600 s each, every target
# Targets (host/fuzz/entry.rs): decode_json, pipeline_file, filter_predicate, map_expression,
# kpl, cloudwatch_logs. Each runs on its seed corpus (host/fuzz/corpus/TARGET, which grows
# with what the fuzzer finds); a crash is copied to host/fuzz/regressions/TARGET, which the
# regular test command replays on stable (host/tests/integration/fuzz_corpus.rs).
# At the end: executions/s and coverage per target, from libFuzzer's final stats.
# No sanitizer (-s none): the targets are safe Rust, so AddressSanitizer would only slow them;
# a panic or a broken assertion in host/fuzz/entry.rs is the finding.
set -euo pipefail
cd "$(dirname "$0")/../host"
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(decode_json pipeline_file filter_predicate map_expression kpl cloudwatch_logs)
fi
# An installed nightly is kept: updating it would rebuild everything.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal >/dev/null
# The host's build script builds the stock components with the project's pinned toolchain.
SLUICE_COMPONENT_TOOLCHAIN="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' ../rust-toolchain.toml)"
export SLUICE_COMPONENT_TOOLCHAIN
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O -s none
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t" "fuzz/artifacts/$t"
    echo "==> $t for ${seconds}s"
    status=0
    cargo +nightly fuzz run -O -s none "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 -max_len=65536 -rss_limit_mb=4096 \
        -artifact_prefix="fuzz/artifacts/$t/" >"fuzz/logs/$t.log" 2>&1 || status=$?
    for crash in fuzz/artifacts/"$t"/*; do
        [ -f "$crash" ] && cp "$crash" "fuzz/regressions/$t/" && echo "    found: $crash (kept in fuzz/regressions/$t)"
    done
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.log" | grep -o '[0-9]*$' || echo 0)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "fuzz/logs/$t.log" | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -o 'cov: [0-9]*' "fuzz/logs/$t.log" | tail -1 | grep -o '[0-9]*' || echo 0)
    ft=$(grep -o 'ft: [0-9]*' "fuzz/logs/$t.log" | tail -1 | grep -o '[0-9]*' || echo 0)
    echo "    $t: ${execs} executions (${rate} exec/s), coverage ${cov} edges, ${ft} features, exit ${status}"
done
