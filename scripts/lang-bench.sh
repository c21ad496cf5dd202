#!/usr/bin/env bash
# Transforms in three languages, one run: the stock Rust `filter`, its JavaScript port
# (sdk-js/examples/filter) and the Python example filter (sdk-py/examples/filter.py), each
# keeping `temperature > 25` of ROWS generated sensor lines (default 1,000,000), decode →
# filter → Parquet, medians of ROUNDS (3) interleaved rounds. Prints each component's size,
# its first compile (from the run's own log) and rows/s with the ratio to Rust.
# Not a test: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-1000000}"
ROUNDS="${ROUNDS:-3}"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
cargo build --release --locked -p sluice
npm ci --prefix sdk-js --no-audit --no-fund >/dev/null
npm ci --prefix sdk-js/examples/filter --no-audit --no-fund >/dev/null
npm run --prefix sdk-js/examples/filter build >/dev/null

mkdir -p bench-data/lang/deps
DATA="bench-data/sensors-$ROWS.ndjson"
if [ ! -f "$DATA" ]; then
    python3 scripts/gen_sensors.py "$DATA.tmp" --rows "$ROWS" --devices 1000 --seed 42 2>/dev/null
    mv "$DATA.tmp" "$DATA"
fi
FB="$(.venv/bin/python -c 'import flatbuffers, os; print(os.path.dirname(flatbuffers.__file__))')"
rm -rf bench-data/lang/deps/flatbuffers && cp -r "$FB" bench-data/lang/deps/
(cd sdk-py/examples && "$OLDPWD/.venv/bin/componentize-py" -q -d ../../wit -w transformer componentize filter \
    -p . -p .. -p "$OLDPWD/bench-data/lang/deps" --stub-wasi -o "$OLDPWD/bench-data/lang/filter-py.wasm")
exec .venv/bin/python - "$DATA" "$ROWS" "$ROUNDS" <<'PY'
import os, re, statistics, subprocess, sys, tempfile, time
data, rows, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
root = os.getcwd()
langs = {
    "rust": ('plugin = "filter"', 'config.predicate = "temperature > 25"', None),
    "javascript": (f'component = "{root}/sdk-js/examples/filter/dist/filter.wasm"', 'config.predicate = "temperature > 25"', f"{root}/sdk-js/examples/filter/dist/filter.wasm"),
    "python": (f'component = "{root}/bench-data/lang/filter-py.wasm"', 'config = { column = "temperature", op = ">", value = 25 }', f"{root}/bench-data/lang/filter-py.wasm"),
}
tmp = tempfile.mkdtemp(prefix="lang-bench-")
cache = os.path.join(tmp, "cache")
def pipeline(lang):
    comp, config, _ = langs[lang]
    p = os.path.join(tmp, f"{lang}.toml")
    with open(p, "w") as f:
        f.write(f"""[pipeline]
name = "{lang}"
workers = 1
[source]
type = "file"
path = "{root}/{data}"
batch_rows = 8192
[source.schema]
client_id = {{ type = "string", nullable = false }}
timestamp = "string"
humidity = "double"
temperature = "double"
pressure = "double"
count = "long"
[[transform]]
name = "warm"
{comp}
{config}
[sink]
type = "parquet"
path = "{tmp}/out-{lang}"
""")
    return p
def run(lang):
    out = os.path.join(tmp, f"out-{lang}")
    subprocess.run(["rm", "-rf", out], check=True)
    env = dict(os.environ, SLUICE_CACHE_DIR=cache, SLUICE_LOG="info")
    t = time.perf_counter()
    r = subprocess.run([f"{root}/target/release/sluice", "run", "--from-scratch", pipeline(lang)], env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{lang}: {r.stderr}")
    compiled = re.search(r"Compiled component\..*ms=(\d+)", r.stderr)
    written = re.search(r"written\s+(\d+) rows", r.stdout + r.stderr)
    return took, int(compiled.group(1)) if compiled else None, int(written.group(1))
first = {lang: run(lang) for lang in langs}   # compiles each component once (cached after)
times = {lang: [] for lang in langs}
for _ in range(rounds):
    for lang in langs:
        took, _, written = run(lang)
        times[lang].append(took)
        assert written == first["rust"][2], f"{lang} wrote {written} rows, rust {first['rust'][2]}"
rust = statistics.median(times["rust"])
print(f"{rows} rows, {first['rust'][2]} kept; medians of {rounds} rounds, one worker")
print(f"{'language':<12}{'component':>12}{'first compile':>15}{'rows/s':>12}{'vs rust':>9}")
for lang, (_, _, path) in langs.items():
    med = statistics.median(times[lang])
    size = f"{os.path.getsize(path) / 1e6:.1f} MB" if path else "stock"
    comp = f"{first[lang][1] / 1000:.1f} s" if first[lang][1] else "-"
    print(f"{lang:<12}{size:>12}{comp:>15}{rows / med:>12,.0f}{rust / med:>8.2f}x")
PY
