//! Scenario 3 end to end: a 1-minute tumbling average price per ticker on event time, with
//! 20 % of ticks up to 5 s out of order, checked window by window against DuckDB computing
//! the same from the raw input, over two hours of event time; and the window state surviving
//! repeated SIGKILLs and restarts (seeded stops).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{duckdb, python, run, sluice, workspace};

/// Two hours of event time at 100 ticks/s: 720,000 ticks, 600 windows.
const SECONDS: u32 = 7200;
const TICKS: usize = 720_000;

fn generate(python: &Path, out: &Path, seconds: u32) {
    let status = Command::new(python)
        .arg(workspace().join("scripts/gen_ticks.py"))
        .arg(out)
        .args(["--seconds", &seconds.to_string()])
        .status()
        .expect("gen_ticks.py");
    assert!(status.success());
}

fn pipeline(dir: &Path, input: &Path, interval: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[source]
type = "file"
path = "{}"
batch_rows = 2048
[source.schema]
event_time = {{ type = "timestamp", nullable = false }}
ticker = {{ type = "string", nullable = false }}
price = "double"
[[transform]]
name = "per-minute"
plugin = "window"
watermark = {{ column = "event_time", max_out_of_orderness = "5s" }}
config = {{ time_column = "event_time", window = {{ type = "tumbling", size = "1m" }}, group_by = ["ticker"], aggregates = [{{ fn = "avg", column = "price", as = "avg_price" }}, {{ fn = "count", as = "ticks" }}] }}
[sink]
type = "parquet"
path = "out"
[checkpoint]
interval = "{interval}"
"#,
        input.display()
    );
    let path = dir.join("p.toml");
    std::fs::write(&path, text).expect("write pipeline");
    path
}

pub(crate) const WINDOWS: &str = "select ticker, strftime(window_start, '%H:%M') as w, avg_price, ticks from read_parquet('{out}/**/*.parquet') order by 1, 2";
pub(crate) const EXPECTED: &str = "select ticker, strftime(time_bucket(interval '1 minute', event_time::timestamp), '%H:%M') as w, avg(price) as avg_price, count(*) as ticks from read_json('{input}', format = 'newline_delimited') group by all order by 1, 2";

pub(crate) fn compare(python: &Path, out: &Path, input: &Path) -> usize {
    let got = duckdb(python, &WINDOWS.replace("{out}", &out.display().to_string()));
    let want = duckdb(python, &EXPECTED.replace("{input}", &input.display().to_string()));
    assert_eq!(got.len(), want.len(), "number of windows");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            (&g["ticker"], &g["w"], &g["ticks"]),
            (&w["ticker"], &w["w"], &w["ticks"])
        );
        let (a, b) = (
            g["avg_price"].as_f64().expect("avg"),
            w["avg_price"].as_f64().expect("avg"),
        );
        assert!((a - b).abs() <= 1e-9 * b.abs(), "{g:?} vs {w:?}");
    }
    let total: u64 = got.iter().map(|r| r["ticks"].as_u64().expect("ticks")).sum();
    total as usize
}

#[test]
fn tumbling_averages_per_ticker_equal_duckdb_and_no_tick_is_lost() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("ticks.ndjson");
    generate(&python, &input, SECONDS);
    let out = run(sluice().arg("run").arg(pipeline(tmp.path(), &input, "50ms")));
    assert!(out.status.success());
    // No tick is late inside the 5 s bound: no dead letter anywhere under the output.
    let letters = crate::support::dead_letters(&tmp.path().join("out"));
    assert!(
        letters.is_empty(),
        "no tick is late inside the 5 s bound: {:?}",
        letters.first()
    );
    assert_eq!(compare(&python, &tmp.path().join("out"), &input), TICKS);
    // 120 minutes × 5 tickers, the last window included (end of input is the final watermark).
    let windows = duckdb(
        &python,
        &format!(
            "select count(*) as n from read_parquet('{}/*.parquet')",
            tmp.path().join("out").display()
        ),
    );
    assert_eq!(windows[0]["n"], Value::from(600));
}

#[test]
fn window_state_survives_repeated_kills_and_restarts() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("ticks.ndjson");
    generate(&python, &input, SECONDS);
    // Checkpoints every 20 ms: each run gets a little way before its stop, so the input
    // outlasts all the stops.
    let p = pipeline(tmp.path(), &input, "20ms");
    let checkpoints = tmp.path().join("out/_checkpoints");
    let latest = || crate::support::files_under(&checkpoints, ".json").last().cloned();
    // Seeded: the same stops every run. Each run is stopped a random 0–14 ms after it wrote
    // a checkpoint of its own, so every stop lands mid-stream with progress since the last.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (mut kills, mut terms) = (0, 0);
    for stop in 0..24 {
        let before = latest();
        let mut child = sluice()
            .arg("run")
            .arg(&p)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let started = std::time::Instant::now();
        while latest() == before && started.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(random(15)));
        if child.try_wait().expect("try_wait").is_some() {
            break; // the input ran out before this stop
        }
        // One stop in six is SIGTERM (state saved at the stop); the rest SIGKILL (state from
        // the last checkpoint, the batches since replayed).
        if stop % 6 == 5 {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill");
            terms += 1;
        } else {
            child.kill().expect("kill -9");
            kills += 1;
        }
        child.wait().expect("wait");
    }
    assert!(kills >= 15, "only {kills} SIGKILLs landed mid-stream");
    eprintln!("{kills} SIGKILLs and {terms} SIGTERMs mid-stream");
    let out = run(sluice().arg("run").arg(&p));
    assert!(out.status.success());
    assert_eq!(compare(&python, &tmp.path().join("out"), &input), TICKS);
}

/// Split generated ticks into one file per ticker, each spanning the whole event-time range
/// (as per-device or per-producer files do), the first ticker's times shifted `lag_secs`
/// back so that its file lags the others.
fn per_ticker_files(input: &Path, dir: &Path, lag_secs: i64) -> std::path::PathBuf {
    let text = std::fs::read_to_string(input).expect("read ticks");
    let ticks: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("tick")).collect();
    let lagging = ticks
        .iter()
        .map(|v| v["ticker"].as_str().expect("ticker"))
        .min()
        .expect("ticks")
        .to_owned();
    let mut files: std::collections::BTreeMap<String, String> = Default::default();
    for mut v in ticks {
        let ticker = v["ticker"].as_str().expect("ticker").to_owned();
        if ticker == lagging {
            let t = chrono::NaiveDateTime::parse_from_str(v["event_time"].as_str().expect("t"), "%Y-%m-%dT%H:%M:%S%.f")
                .expect("time");
            let shifted = t - chrono::Duration::seconds(lag_secs);
            v["event_time"] = Value::from(shifted.format("%Y-%m-%dT%H:%M:%S%.6f").to_string());
        }
        let out = files.entry(ticker).or_default();
        out.push_str(&v.to_string());
        out.push('\n');
    }
    let folder = dir.join("by-ticker");
    std::fs::create_dir_all(&folder).expect("mkdir");
    for (ticker, body) in &files {
        std::fs::write(folder.join(format!("{ticker}.ndjson")), body).expect("write");
    }
    folder
}

/// Per-ticker files (the first `lag_secs` behind) read side by side: no tick is late and
/// every window equals DuckDB's over all the files.
fn windows_over_per_ticker_files(lag_secs: i64) {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("ticks.ndjson");
    generate(&python, &input, 1800);
    let folder = per_ticker_files(&input, tmp.path(), lag_secs);
    let out = run(sluice()
        .arg("run")
        .arg(pipeline(tmp.path(), &folder.join("*.ndjson"), "1s")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dead = crate::support::dead_letters(&tmp.path().join("out/_dead_letter"));
    assert!(dead.is_empty(), "late ticks: {} (first {:?})", dead.len(), dead.first());
    let all = format!("{}/*.ndjson", folder.display());
    assert_eq!(compare(&python, &tmp.path().join("out"), Path::new(&all)), 180_000);
}

#[test]
fn files_that_each_span_the_whole_time_range_give_the_windows_of_a_batch_engine() {
    // One file per ticker, read side by side as partitions: each file's ticks are on time
    // inside the 5 s bound, so no window may close before every file has passed it. Read one
    // file after another, all but the first file's ticks would be late.
    windows_over_per_ticker_files(0);
}

#[test]
fn a_partition_lagging_by_minutes_holds_every_window_open() {
    // The first ticker's file runs three minutes behind the others in event time: the
    // watermark is the slowest partition's, so none of its windows closes early.
    windows_over_per_ticker_files(180);
}
