//! Hot reload under continuous input: a stateful component swapped 50 times between two
//! versions (different binaries, different `version` column) at seeded random moments;
//! every kind of bad version refused while the old one keeps producing; a component written
//! slowly in chunks never loaded half-written; `sluice status` over its socket.
//!
//! Input comes through stdin at a steady pace, 1000 rows per chunk, so row `n` is in chunk
//! `n / 1000` and the version that must have processed it follows from where each reload
//! was applied (the log's `first_chunk`).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{duckdb, files_under, python, sluice};

const ROWS_PER_CHUNK: u64 = 1000;
const DEVICES: u64 = 50;

fn counter() -> PathBuf {
    Path::new(env!("SLUICE_PLUGIN_DIR")).join("sluice_test_counter.wasm")
}

/// The counter with a custom section appended: same behaviour, another binary (digest).
fn counter_v2(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(counter()).expect("counter");
    let name = b"sluice-test-version";
    let payload = b"2";
    bytes.push(0); // custom section
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    let path = dir.join("counter-v2.wasm");
    std::fs::write(&path, bytes).expect("write v2");
    path
}

fn pipeline_text(component: &Path, config: &str) -> String {
    format!(
        r#"[pipeline]
name = "reload"
[source]
type = "file"
path = "-"
batch_rows = {ROWS_PER_CHUNK}
[source.schema]
device = {{ type = "string", nullable = false }}
n = "long"
[[transform]]
name = "count"
component = "{}"
config = {{ key = "device", {config} }}
[sink]
type = "parquet"
path = "out"
"#,
        component.display()
    )
}

/// Replace the pipeline file in one step (as an editor's save or a deploy would).
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

struct Live {
    child: Child,
    feeder: Option<std::thread::JoinHandle<ChildStdin>>,
    stop_feeding: Arc<AtomicBool>,
    fed: Arc<AtomicU64>,
    /// The runtime folder its status socket is in.
    socket: PathBuf,
    log: PathBuf,
}

impl Live {
    fn start(dir: &Path, pipeline: &Path) -> Live {
        Live::start_with(dir, pipeline, sluice(), &[])
    }

    /// As [`start`](Self::start), from a command with settings of its own (a debounce it
    /// sets is kept) and with `flags` for `run`.
    fn start_with(dir: &Path, pipeline: &Path, mut command: std::process::Command, flags: &[&str]) -> Live {
        let log = dir.join("sluice.log");
        // The status socket lives in the runtime folder: one per test, so it holds only ours.
        let runtime = dir.join("run");
        if !command.get_envs().any(|(k, _)| k == "SLUICE_RELOAD_DEBOUNCE_MS") {
            command.env("SLUICE_RELOAD_DEBOUNCE_MS", "50");
        }
        let mut child = command
            .env("SLUICE_LOG", "info")
            .env("SLUICE_RUNTIME_DIR", &runtime)
            .arg("run")
            .args(flags)
            .arg(pipeline)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        let stop_feeding = Arc::new(AtomicBool::new(false));
        let fed = Arc::new(AtomicU64::new(0));
        let (stop, count) = (stop_feeding.clone(), fed.clone());
        // About 50,000 rows a second, in whole chunks.
        let feeder = std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let mut block = String::new();
                for _ in 0..ROWS_PER_CHUNK {
                    block.push_str(&format!("{{\"device\":\"d{}\",\"n\":{n}}}\n", n % DEVICES));
                    n += 1;
                }
                if stdin.write_all(block.as_bytes()).is_err() {
                    break;
                }
                count.store(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
            stdin
        });
        Live {
            child,
            feeder: Some(feeder),
            stop_feeding,
            fed,
            socket: runtime,
            log,
        }
    }

    fn status(&self) -> Option<Value> {
        let socket = files_under(&self.socket, ".sock").into_iter().next()?;
        let mut stream = UnixStream::connect(socket).ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stream, &mut text).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Wait until the last reload is no longer pending, or its generation is `generation`.
    fn wait_reload(&self, predicate: impl Fn(&Value) -> bool) -> Value {
        // Waits while sluice works (a reload may compile a component, slowly on a loaded
        // machine); fails once it has used no CPU for 60 s, or after 10 minutes in all (it
        // always works here: it reads the steady input).
        let started = Instant::now();
        let mut progress = (crate::support::cpu_ticks(self.child.id()), Instant::now());
        loop {
            if let Some(s) = self.status()
                && predicate(&s)
            {
                return s;
            }
            let ticks = crate::support::cpu_ticks(self.child.id());
            if ticks != progress.0 {
                progress = (ticks, Instant::now());
            }
            assert!(
                progress.1.elapsed() < Duration::from_secs(60) && started.elapsed() < Duration::from_secs(600),
                "no reload result: {:?}\n{}",
                self.status(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stop feeding, close stdin and wait for a clean exit.
    fn finish(mut self) -> (u64, String) {
        self.stop_feeding.store(true, Ordering::SeqCst);
        let stdin = self.feeder.take().expect("feeder").join().expect("feeder thread");
        drop(stdin);
        let status = self.child.wait().expect("wait");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "sluice failed: {log}");
        (self.fed.load(Ordering::SeqCst), log)
    }
}

/// The number after `key=` in a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// `(generation, first_chunk)` of every "Reload applied." log line.
fn applied(log: &str) -> Vec<(u64, u64)> {
    log.lines()
        .filter(|l| l.contains("Reload applied."))
        .filter_map(|l| Some((field(l, "generation")?, field(l, "first_chunk")?)))
        .collect()
}

/// Every value of `key` on "Reload applied." lines.
fn field_values(log: &str, key: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("Reload applied."))
        .filter_map(|l| field(l, key))
        .collect()
}

#[test]
fn fifty_reloads_of_a_stateful_component_lose_and_duplicate_nothing() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let v1 = counter();
    let v2 = counter_v2(tmp.path());
    let pipeline = tmp.path().join("p.toml");
    write_atomically(&pipeline, &pipeline_text(&v1, "tag = 1"));
    let live = Live::start(tmp.path(), &pipeline);
    live.wait_reload(|s| s["generation"] == 0);
    let mut seed = 0x5eed_u64;
    let mut tags = vec![1i64]; // by generation
    for i in 1..=50u64 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis(20 + (seed >> 33) % 100));
        let (component, tag) = if i % 2 == 1 { (&v2, 2) } else { (&v1, 1) };
        write_atomically(&pipeline, &pipeline_text(component, &format!("tag = {tag}")));
        tags.push(tag);
        live.wait_reload(|s| s["reloads_applied"] == i);
    }
    fed_up_to(&live, 500_000);
    let status = live.status().expect("status");
    assert_eq!(status["reloads_refused"], 0);
    let (fed, log) = live.finish();
    let switches = applied(&log);
    assert_eq!(switches.len(), 50, "{log}");
    // The pause figures for the closing note (not asserted: they depend on the machine).
    let mut took = field_values(&log, "took_ms");
    let mut swap = field_values(&log, "swap_us");
    took.sort_unstable();
    swap.sort_unstable();
    eprintln!(
        "reload: change → first chunk of the new version p50 {} ms, max {} ms; swap pause in the data path p50 {} µs, max {} µs",
        took[took.len() / 2],
        took[took.len() - 1],
        swap[swap.len() / 2],
        swap[swap.len() - 1]
    );
    let version_of_chunk = |chunk: u64| -> i64 {
        let g = switches
            .iter()
            .filter(|(_, first)| *first <= chunk)
            .map(|(g, _)| *g)
            .max()
            .unwrap_or(0);
        tags[g as usize]
    };
    let rows = counter_rows(&python, &tmp.path().join("out"));
    assert_eq!(rows.len() as u64, fed, "every row fed is written once");
    let mut per_device = std::collections::HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let n = r["n"].as_u64().expect("n");
        assert_eq!(n, i as u64, "rows 0..{fed} each once");
        let seen = seen_so_far(&mut per_device, r);
        assert_eq!(
            r["seen"].as_i64(),
            Some(seen),
            "the count carried over every swap: {r:?}"
        );
        assert_eq!(
            r["version"].as_i64(),
            Some(version_of_chunk(n / ROWS_PER_CHUNK)),
            "row {n} was processed by the version live at its chunk"
        );
    }
}

/// A pipeline file saved while the run is starting (compiling its components, before it
/// watches the file) is not missed: the run reloads it once it watches.
#[test]
fn an_edit_saved_while_the_run_starts_is_reloaded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pipeline = tmp.path().join("p.toml");
    write_atomically(&pipeline, &pipeline_text(&counter(), "tag = 1"));
    // An empty compiled-component cache: the run compiles the component before it watches.
    let mut command = sluice();
    command.env("SLUICE_CACHE_DIR", tmp.path().join("cache"));
    let live = Live::start_with(tmp.path(), &pipeline, command, &[]);
    let started = Instant::now();
    while !std::fs::read_to_string(&live.log)
        .unwrap_or_default()
        .contains("Compiling component")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never started compiling"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    write_atomically(&pipeline, &pipeline_text(&counter(), "tag = 2"));
    // The status answers once the component is compiled: a slow machine may take long.
    let started = Instant::now();
    while live.status().is_none() {
        assert!(started.elapsed() < Duration::from_secs(900), "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = live.wait_reload(|s| s["generation"] == 1);
    assert_eq!(s["reloads_applied"], 1, "{s}");
    let (_, log) = live.finish();
    assert!(log.contains("changed while the run was starting"), "{log}");
}

/// A reload that changes one stage leaves the others' instances alone: the stateful counter
/// before a changed filter keeps counting (its `seen` column, read by DuckDB, runs on across
/// the reload), and the log names only the filter as changed.
#[test]
fn an_unchanged_stateful_stage_keeps_counting_across_a_reload_of_another() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipeline = tmp.path().join("p.toml");
    let text = |predicate: &str| {
        pipeline_text(&counter(), "tag = 1").replace(
            "[sink]",
            &format!("[[transform]]\nname = \"keep\"\nplugin = \"filter\"\nconfig.predicate = \"{predicate}\"\n[sink]"),
        )
    };
    write_atomically(&pipeline, &text("n >= 0"));
    let live = Live::start(tmp.path(), &pipeline);
    live.wait_reload(|s| s["generation"] == 0);
    feed_more(&live, 5);
    // Another predicate that keeps every row: only the filter changes.
    write_atomically(&pipeline, &text("n > -1"));
    live.wait_reload(|s| s["generation"] == 1);
    feed_more(&live, 5);
    let (fed, log) = live.finish();
    let changed: Vec<&str> = log.lines().filter(|l| l.contains("Reload applied.")).collect();
    assert_eq!(changed.len(), 1, "{log}");
    assert!(
        changed[0].contains("\"keep\"") && !changed[0].contains("\"count\""),
        "only the filter changed: {}",
        changed[0]
    );
    // Every row once, each device's count running on across the reload (DuckDB).
    let versions = check_exact(&py, &tmp.path().join("out"), fed);
    assert!(versions.iter().all(|v| *v == 1), "one version of the counter ran");
}

/// A stateless stage ahead of a stateful one runs on the decoding threads (the chain's
/// head). Changed together with a stateful version that refuses the state, it must not
/// have filtered the chunks read under the refused plan; changed on its own, it filters
/// from the chunk where the reload applied. Checked row by row with DuckDB.
#[test]
fn a_stateless_stage_ahead_of_a_stateful_one_reloads_with_the_chain() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipeline = tmp.path().join("p.toml");
    let text = |predicate: &str, config: &str| {
        pipeline_text(&counter(), config).replace(
            "[[transform]]\nname = \"count\"",
            &format!(
                "[[transform]]\nname = \"keep\"\nplugin = \"filter\"\nconfig.predicate = \"{predicate}\"\n[[transform]]\nname = \"count\""
            ),
        )
    };
    write_atomically(&pipeline, &text("n >= 0", "tag = 1"));
    let live = Live::start(tmp.path(), &pipeline);
    live.wait_reload(|s| s["generation"] == 0);
    feed_more(&live, 5);
    // The head changes, but the counter's new version refuses the state: nothing changes.
    write_atomically(&pipeline, &text("device != 'd1'", "tag = 1, refuse_state = true"));
    let s = live.wait_reload(|s| s["reloads_refused"] == 1);
    assert!(
        s["last_reload"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("refused the running state")),
        "{s}"
    );
    feed_more(&live, 5);
    // Only the head changes: from the chunk the reload applied at, d1's rows are dropped.
    write_atomically(&pipeline, &text("device != 'd1'", "tag = 1"));
    live.wait_reload(|s| s["reloads_applied"] == 1);
    feed_more(&live, 5);
    let (fed, log) = live.finish();
    let switches = applied(&log);
    assert_eq!(switches.len(), 1, "{log}");
    let first_filtered_chunk = switches[0].1;
    assert!(
        first_filtered_chunk >= 10,
        "the refused plan's chunks came first: {log}"
    );
    let rows = counter_rows(&py, &tmp.path().join("out"));
    let expected: Vec<u64> = (0..fed)
        .filter(|n| n % DEVICES != 1 || n / ROWS_PER_CHUNK < first_filtered_chunk)
        .collect();
    let got: Vec<u64> = rows.iter().map(|r| r["n"].as_u64().expect("n")).collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "rows kept: each once, d1's only before the reload"
    );
    assert!(
        got == expected,
        "the rows kept are the rows the plan of their chunk keeps"
    );
    let mut per_device = std::collections::HashMap::new();
    for r in &rows {
        let seen = seen_so_far(&mut per_device, r);
        assert_eq!(
            r["seen"].as_i64(),
            Some(seen),
            "the counter saw each kept row once: {r:?}"
        );
        assert_eq!(r["version"].as_i64(), Some(1), "the refused version never ran: {r:?}");
    }
}

/// Rows per `version` in the output, read by DuckDB.
fn versions(python: &Path, dir: &Path) -> Vec<(i64, u64)> {
    duckdb(
        python,
        &format!(
            "select version, count(*) as n from read_parquet('{}/out/**/*.parquet') group by version order by version",
            dir.display()
        ),
    )
    .iter()
    .map(|r| (r["version"].as_i64().expect("version"), r["n"].as_u64().expect("n")))
    .collect()
}

/// Feed `chunks` more chunks through `live`.
fn feed_more(live: &Live, chunks: u64) {
    fed_up_to(live, live.fed.load(Ordering::SeqCst) + chunks * ROWS_PER_CHUNK);
}

/// Wait until `target` rows were fed; a run that takes no input for 120 s (a full pipe:
/// sluice stopped reading) fails the test with its log.
fn fed_up_to(live: &Live, target: u64) {
    let mut progress = (live.fed.load(Ordering::SeqCst), Instant::now());
    while progress.0 < target {
        std::thread::sleep(Duration::from_millis(10));
        let now = live.fed.load(Ordering::SeqCst);
        if now != progress.0 {
            progress = (now, Instant::now());
        }
        assert!(
            progress.1.elapsed() < Duration::from_secs(120),
            "input stalled at row {}: {}",
            progress.0,
            std::fs::read_to_string(&live.log).unwrap_or_default()
        );
    }
}

/// SIGHUP checks the files at once, whatever the debounce; with `--no-reload` an edit is
/// never applied. Both read back by DuckDB: the version column says which ran.
#[test]
fn sighup_reloads_at_once_and_no_reload_never_does() {
    let Some(py) = python() else { return };
    for no_reload in [false, true] {
        let tmp = tempfile::tempdir().expect("tmp");
        let pipeline = tmp.path().join("p.toml");
        write_atomically(&pipeline, &pipeline_text(&counter(), "tag = 1"));
        let mut command = sluice();
        if !no_reload {
            // A debounce of an hour: the file's own events would wait that long. Without
            // reloads the usual 50 ms, so a reload would show if the flag were ignored.
            command.env("SLUICE_RELOAD_DEBOUNCE_MS", "3600000");
        }
        let flags: &[&str] = if no_reload { &["--no-reload"] } else { &[] };
        let live = Live::start_with(tmp.path(), &pipeline, command, flags);
        live.wait_reload(|s| s["generation"] == 0);
        write_atomically(&pipeline, &pipeline_text(&counter(), "tag = 2"));
        feed_more(&live, 5);
        assert_eq!(
            live.status().expect("status")["generation"],
            0,
            "no reload before the debounce"
        );
        if no_reload {
            feed_more(&live, 5);
            let s = live.status().expect("status");
            assert_eq!(
                (s["generation"].clone(), s["reloads_applied"].clone()),
                (0.into(), 0.into()),
                "{s}"
            );
        } else {
            let pid = live.child.id().to_string();
            let hup = std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .expect("kill");
            assert!(hup.success());
            live.wait_reload(|s| s["generation"] == 1);
            feed_more(&live, 5);
        }
        let (fed, log) = live.finish();
        let found = versions(&py, tmp.path());
        let total: u64 = found.iter().map(|(_, n)| n).sum();
        assert_eq!(total, fed, "every row once: {found:?}");
        if no_reload {
            assert_eq!(found, [(1, fed)], "--no-reload: only the first version ran");
            assert!(!log.contains("Reload"), "{log}");
        } else {
            assert_eq!(found.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [1, 2], "{found:?}");
        }
    }
}

#[test]
fn bad_versions_are_refused_and_the_old_one_keeps_producing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let v1 = counter();
    let pipeline = tmp.path().join("p.toml");
    let good = pipeline_text(&v1, "tag = 1");
    write_atomically(&pipeline, &good);
    let live = Live::start(tmp.path(), &pipeline);
    live.wait_reload(|s| s["generation"] == 0);
    let garbage = tmp.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm this is not a component").expect("garbage");
    let pinned = pipeline_text(&counter_v2(tmp.path()), "tag = 2")
        .replace("config = {", &format!("sha256 = \"{}\"\nconfig = {{", "0".repeat(64)));
    let cases: Vec<(&str, String, &str)> = vec![
        ("invalid TOML", good.replace("[sink]", "[sink"), "p.toml:"),
        (
            "config refused by describe",
            pipeline_text(&v1, "tag = \"one\""),
            "p.toml:",
        ),
        (
            "output schema change",
            pipeline_text(&v1, "refuse_state = false"),
            "schema of the rows",
        ),
        ("compile failure", pipeline_text(&garbage, "tag = 2"), "garbage.wasm"),
        (
            "trap in open",
            pipeline_text(&v1, "tag = 2, trap_on_open = true"),
            "failed to start",
        ),
        (
            "refused state",
            pipeline_text(&v1, "tag = 2, refuse_state = true"),
            "refused the running state",
        ),
        ("digest mismatch", pinned, "not the pinned"),
        (
            "source change",
            good.replace("batch_rows = 1000", "batch_rows = 999"),
            "[source]",
        ),
    ];
    for (i, (what, text, cause)) in cases.into_iter().enumerate() {
        let before = live.fed.load(Ordering::SeqCst);
        write_atomically(&pipeline, &text);
        let s = live.wait_reload(|s| s["reloads_refused"] == (i as u64 + 1));
        let detail = s["last_reload"]["detail"].as_str().expect("detail");
        assert!(detail.contains(cause), "{what}: {detail}");
        assert_eq!(s["generation"], 0, "{what}: still the first version");
        // The old version keeps producing.
        fed_up_to(&live, before + 5 * ROWS_PER_CHUNK);
    }
    // With state = "discard" the state-refusing version is accepted and starts empty.
    write_atomically(
        &pipeline,
        &pipeline_text(&v1, "tag = 2, refuse_state = true").replace("[sink]", "state = \"discard\"\n[sink]"),
    );
    let s = live.wait_reload(|s| s["reloads_applied"] == 1);
    assert_eq!(s["generation"].as_u64().map(|g| g >= 1), Some(true));
    let shown = crate::support::run(
        sluice()
            .env("SLUICE_RUNTIME_DIR", &live.socket)
            .arg("status")
            .arg(&pipeline),
    );
    assert!(shown.status.success());
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("reloads applied 1, refused 8"), "{shown}");
    assert!(shown.contains(&format!("stage count = {}", v1.display())), "{shown}");
    let (fed, log) = live.finish();
    assert!(log.contains("Reload refused"), "{log}");
    // By the data: every row fed once; the first version (counting on) up to the chunk where
    // the discarding version took over, then the new version counting every device from 1.
    let Some(python) = python() else { return };
    let switches = applied(&log);
    assert_eq!(switches.len(), 1, "{log}");
    let first_new_chunk = switches[0].1;
    let rows = counter_rows(&python, &tmp.path().join("out"));
    assert_eq!(rows.len() as u64, fed, "every row fed is written once");
    let mut per_device: std::collections::HashMap<(String, i64), i64> = Default::default();
    for (i, r) in rows.iter().enumerate() {
        let n = r["n"].as_u64().expect("n");
        assert_eq!(n, i as u64, "rows 0..{fed} each once");
        let version = if n / ROWS_PER_CHUNK >= first_new_chunk { 2 } else { 1 };
        assert_eq!(
            r["version"].as_i64(),
            Some(version),
            "row {n}: refused versions never ran"
        );
        let seen = per_device
            .entry((r["device"].as_str().expect("device").to_owned(), version))
            .or_insert(0);
        *seen += 1;
        assert_eq!(
            r["seen"].as_i64(),
            Some(*seen),
            "row {n}: discarded state starts from 1: {r:?}"
        );
    }
}

#[test]
fn a_component_written_slowly_is_never_loaded_half_written() {
    let tmp = tempfile::tempdir().expect("tmp");
    let target = tmp.path().join("live.wasm");
    std::fs::copy(counter(), &target).expect("copy");
    let pipeline = tmp.path().join("p.toml");
    write_atomically(&pipeline, &pipeline_text(&target, "tag = 1"));
    let live = Live::start(tmp.path(), &pipeline);
    live.wait_reload(|s| s["generation"] == 0);
    // Overwrite the component in place, in 10 pieces 150 ms apart (slower than the debounce).
    let v2 = std::fs::read(counter_v2(tmp.path())).expect("v2");
    let mut file = std::fs::File::create(&target).expect("truncate");
    for piece in v2.chunks(v2.len().div_ceil(10)) {
        file.write_all(piece).expect("write");
        file.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(file);
    let s = live.wait_reload(|s| s["reloads_applied"] == 1);
    let digest = s["stages"][0]["sha256"].as_str().expect("digest").to_owned();
    let (_, log) = live.finish();
    // Whatever was attempted on a partial file was refused; the one loaded is the whole file.
    let whole = {
        use sha2::Digest;
        sha2::Sha256::digest(&v2)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(digest, whole, "{log}");
    assert_eq!(applied(&log).len(), 1, "{log}");
    // The partial files were seen (the pieces come slower than the debounce) and refused.
    assert!(log.contains("Reload refused"), "no attempt on a partial file: {log}");
}

/// A file input of `rows` rows over `DEVICES` devices.
fn input_file(dir: &Path, rows: u64) -> PathBuf {
    let path = dir.join("input.ndjson");
    let mut text = String::with_capacity(rows as usize * 28);
    for n in 0..rows {
        text.push_str(&format!("{{\"device\":\"d{}\",\"n\":{n}}}\n", n % DEVICES));
    }
    std::fs::write(&path, text).expect("input");
    path
}

fn file_pipeline(input: &Path, config: &str, sink_extra: &str) -> String {
    pipeline_text(&counter(), config).replace("path = \"-\"", &format!("path = \"{}\"", input.display()))
        + sink_extra
        + "[checkpoint]\ninterval = \"50ms\"\n"
}

/// The counter component's output under `out`, read by DuckDB, in input order.
fn counter_rows(python: &Path, out: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    duckdb(
        python,
        &format!(
            "select device, n, seen, version from read_parquet('{}/**/*.parquet') order by n",
            out.display()
        ),
    )
}

/// Every row once, each device's count continuous; returns the versions in row order.
fn check_exact(python: &Path, out: &Path, rows: u64) -> Vec<i64> {
    let got = counter_rows(python, out);
    assert_eq!(got.len() as u64, rows, "every row once");
    let mut per_device = std::collections::HashMap::new();
    let mut versions = Vec::new();
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r["n"].as_u64(), Some(i as u64));
        let seen = seen_so_far(&mut per_device, r);
        assert_eq!(r["seen"].as_i64(), Some(seen), "{r:?}");
        versions.push(r["version"].as_i64().expect("version"));
    }
    versions
}

/// How many rows of `row`'s device there are up to it (itself included): the `seen` the
/// counter gives it when every row reaches the counter once, in order.
fn seen_so_far(
    per_device: &mut std::collections::HashMap<String, i64>,
    row: &serde_json::Map<String, serde_json::Value>,
) -> i64 {
    let seen = per_device
        .entry(row["device"].as_str().expect("device").to_owned())
        .or_insert(0);
    *seen += 1;
    *seen
}

/// `sluice run` with info logs and a short reload debounce, its output piped for
/// [`crate::support::wait_output`].
fn spawn_reloading(pipeline: &Path) -> Child {
    sluice()
        .env("SLUICE_LOG", "info")
        .env("SLUICE_RELOAD_DEBOUNCE_MS", "20")
        .arg("run")
        .arg(pipeline)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn wait_for_checkpoint(dir: &Path) {
    let started = Instant::now();
    while crate::support::files_under(&dir.join("out/_checkpoints"), ".json").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_sink_change_is_applied_by_a_checkpoint_and_a_restart_without_loss() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let rows = 1_500_000;
    let input = input_file(tmp.path(), rows);
    let pipeline = tmp.path().join("p.toml");
    write_atomically(&pipeline, &file_pipeline(&input, "tag = 1", ""));
    let mut child = spawn_reloading(&pipeline);
    wait_for_checkpoint(tmp.path());
    // A sink setting and the transform's version change together: not swappable in place.
    write_atomically(&pipeline, &file_pipeline(&input, "tag = 2", "row_group_rows = 5000\n"));
    let out = crate::support::wait_output(&mut child, Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Reload applied by a restart"), "{log}");
    assert!(
        !log.contains("stop sluice"),
        "the log does not ask for what happens by itself: {log}"
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("paused for a reload"), "{summary}");
    assert!(!summary.contains("on request"), "{summary}");
    let versions = check_exact(&python, &tmp.path().join("out"), rows);
    assert_eq!(versions.first(), Some(&1), "{log}");
    assert_eq!(versions.last(), Some(&2), "the rest ran under the new version: {log}");
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "one switch, at the restart");
}

#[test]
fn a_reload_during_crash_recovery_keeps_the_checkpoint() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let rows = 1_000_000;
    let input = input_file(tmp.path(), rows);
    let pipeline = tmp.path().join("p.toml");
    write_atomically(&pipeline, &file_pipeline(&input, "tag = 1", ""));
    let mut first = sluice()
        .arg("run")
        .arg(&pipeline)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for_checkpoint(tmp.path());
    std::thread::sleep(Duration::from_millis(100));
    first.kill().expect("kill -9");
    first.wait().expect("wait");
    // Restart, and change the transform while it recovers.
    let mut second = spawn_reloading(&pipeline);
    write_atomically(&pipeline, &file_pipeline(&input, "tag = 2", ""));
    let out = crate::support::wait_output(&mut second, Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let versions = check_exact(&python, &tmp.path().join("out"), rows);
    assert!(versions.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(versions.first(), Some(&1));
}

#[test]
fn a_reload_that_adds_a_stateful_stage_restarts_with_it_empty_and_never_exits() {
    // The README: adding a stateful transform goes through a checkpoint-and-restart. The
    // restart the reload asked for starts the new stage empty (it has no state in the
    // checkpoint) instead of refusing the checkpoint and stopping the pipeline.
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let rows = 1_500_000;
    let input = input_file(tmp.path(), rows);
    let pipeline = tmp.path().join("p.toml");
    write_atomically(&pipeline, &file_pipeline(&input, "tag = 1", ""));
    let mut child = spawn_reloading(&pipeline);
    wait_for_checkpoint(tmp.path());
    let with_anomaly = file_pipeline(&input, "tag = 1", "").replace(
        "[sink]",
        "[[transform]]\nname = \"spikes\"\nplugin = \"anomaly\"\nconfig = { key = \"device\", value = \"n\" }\n[sink]",
    );
    write_atomically(&pipeline, &with_anomaly);
    let out = crate::support::wait_output(&mut child, Duration::from_secs(300));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("Reload applied by a restart"), "{log}");
    assert!(log.contains("it starts empty"), "{log}");
    // Every row once with the counts continuous, and the rows after the restart went
    // through the new stage.
    let got = duckdb(
        &python,
        &format!(
            "select n, seen, anomaly_score is not null or is_anomaly is not null as spikes from read_parquet('{}/**/*.parquet', union_by_name = true) order by n",
            tmp.path().join("out").display()
        ),
    );
    assert_eq!(got.len() as u64, rows, "every row once");
    assert!(got.iter().enumerate().all(|(i, r)| r["n"].as_u64() == Some(i as u64)));
    assert_eq!(
        got.last().map(|r| &r["spikes"]),
        Some(&serde_json::Value::Bool(true)),
        "{log}"
    );
    assert_eq!(
        got.first().map(|r| &r["spikes"]),
        Some(&serde_json::Value::Bool(false)),
        "{log}"
    );
    // A plain restart of the same files now finds the stage in the checkpoint.
    let again = crate::support::run(sluice().arg("run").arg("--no-reload").arg(&pipeline));
    assert!(again.status.success());
}
