//! Exactly-once under crashes: `sluice run` is killed with SIGKILL at random moments (and at
//! injected points inside checkpoint writes, row-group flushes and post-checkpoint renames)
//! while its input keeps arriving file by file, restarted each time, and its final output, read back by pyarrow, must equal a clean run's
//! row by row — no row lost, none duplicated, the stateful stage's running counts intact.
//! Also: SIGTERM stops cleanly, and a checkpoint is never applied to another source.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{dead_letters, files_under, python, run, sluice};

/// Rows in the generated input; `SLUICE_CRASH_ROWS` overrides.
const ROWS: usize = 360_000;

fn rows() -> usize {
    std::env::var("SLUICE_CRASH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROWS)
}
/// Kills that must land while sluice is running.
const KILLS: usize = 22;

/// A small seeded generator, so a failing sequence of kills can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Sensor-like rows across `files` files, with an undecodable line now and then.
pub fn write_input(dir: &Path, files: usize) {
    write_rows(dir, files, rows());
}

/// [`write_input`] with `rows` rows in all.
pub fn write_rows(dir: &Path, files: usize, rows: usize) {
    let per_file = rows / files;
    let mut rng = Rng(0x5eed);
    for f in 0..files {
        let mut text = String::with_capacity(per_file * 80);
        for j in 0..per_file {
            let i = f * per_file + j;
            if i % 9973 == 5 {
                text.push_str(&format!("not json, line {i}\n"));
                continue;
            }
            let t = (rng.below(50_000) as f64) / 1000.0 - 10.0;
            text.push_str(&format!(
                "{{\"device\":\"dev-{}\",\"i\":{i},\"bucket\":\"b{}\",\"temperature\":{t}}}\n",
                i % 50,
                i % 4
            ));
        }
        std::fs::write(dir.join(format!("in-{f:04}.ndjson")), text).expect("write input");
    }
}

/// Where a crash test's pipeline writes.
pub enum Output<'a> {
    /// Folders `out` and `raw` beside the pipeline file.
    Local,
    /// Prefixes `<prefix>out/` and `<prefix>raw/` of `bucket` on an S3 API at `endpoint`,
    /// with the checkpoints and dead letters there too: nothing local but the pipeline file.
    S3 {
        /// The server.
        endpoint: &'a str,
        /// The bucket.
        bucket: &'a str,
        /// The prefix, ending in `/`.
        prefix: &'a str,
    },
}

/// A pipeline in `dir` reading `input`: a stateful running count per device, output in
/// four partitions, small files (so files roll between checkpoints) and frequent checkpoints,
/// and a second sink archiving the raw records under the same checkpoints. Files are read
/// one at a time: the running counts depend on the order rows arrive in, and the crashing
/// run's input arrives file by file.
fn pipeline(dir: &Path, input: &Path) -> PathBuf {
    pipeline_to(dir, input, &Output::Local)
}

/// [`pipeline`], writing to `output`.
pub fn pipeline_to(dir: &Path, input: &Path, output: &Output<'_>) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let counter = Path::new(env!("SLUICE_PLUGIN_DIR")).join("sluice_test_counter.wasm");
    // Files live a few checkpoints: locally 200 ms; on S3, where a checkpoint is a few round
    // trips, long enough that kills find files open with tails and journals.
    let (rows_age, archive_age) = match output {
        Output::Local => ("200ms", "300ms"),
        Output::S3 { .. } => ("1s", "1500ms"),
    };
    let (rows, archive, rest) = match output {
        Output::Local => (
            "type = \"parquet\"\npath = \"out\"".to_owned(),
            "type = \"local\"\npath = \"raw\"".to_owned(),
            "[dead_letter]\npath = \"out/_dead_letter\"\n[checkpoint]\npath = \"out/_checkpoints\"\ninterval = \"30ms\"".to_owned(),
        ),
        Output::S3 { endpoint, bucket, prefix } => {
            let at = format!("endpoint_url = \"{endpoint}\"\nforce_path_style = true\nregion = \"us-east-1\"");
            (
                format!("type = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}out/\"\nerror_prefix = \"{prefix}out/_dead_letter/\"\n{at}"),
                format!("type = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}raw/\"\n{at}"),
                format!("[checkpoint]\nstore = {{ s3 = \"s3://{bucket}/{prefix}out/_checkpoints/\" }}\n{at}\ninterval = \"30ms\""),
            )
        }
    };
    let text = format!(
        r#"
[source]
type = "file"
path = "{input}"
batch_rows = 250
max_open_files = 1
[source.schema]
device = "string"
i = "int64"
bucket = "string"
temperature = "double"
[[transform]]
name = "count"
component = "{counter}"
config = {{ key = "device" }}
[[sink]]
name = "rows"
{rows}
target_file_mb = 1
max_file_age = "{rows_age}"
partition = {{ by = "field", column = "bucket" }}
[[sink]]
name = "archive"
format = "raw"
input = "source"
{archive}
target_file_mb = 1
max_file_age = "{archive_age}"
{rest}
"#,
        input = input.join("in-*.ndjson").display(),
        counter = counter.display(),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).expect("write pipeline");
    path
}

pub fn spawn(pipeline: &Path, fault: Option<&str>) -> Child {
    let mut cmd = sluice();
    cmd.arg("run").arg(pipeline).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.envs(crate::moto::ENV.iter().copied());
    if let Some(f) = fault {
        cmd.env("SLUICE_FAULT", f);
    }
    cmd.spawn().expect("spawning sluice")
}

pub fn killed(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// Wait for `child`; it is killed as hung only after 120 s without using any CPU (a cold
/// component compile on a loaded machine is slow, not hung).
pub fn wait(child: &mut Child) -> ExitStatus {
    let mut progress = (crate::support::cpu_ticks(child.id()), Instant::now());
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        let ticks = crate::support::cpu_ticks(child.id());
        if ticks != progress.0 {
            progress = (ticks, Instant::now());
        } else if progress.1.elapsed() > Duration::from_secs(120) {
            child.kill().ok();
            panic!("sluice used no CPU for 120 s: hung, killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn run_to_end(pipeline: &Path) -> Duration {
    let started = Instant::now();
    let out = run(sluice().arg("run").arg(pipeline).envs(crate::moto::ENV.iter().copied()));
    assert!(out.status.success(), "run failed");
    started.elapsed()
}

const COMPARE: &str = r#"
import json, os, sys, collections
import pyarrow.dataset as ds
def rows(d):
    t = ds.dataset(d, format="parquet", partitioning="hive").to_table()
    cols = t.column_names
    return sorted(tuple(r[c] for c in cols) for r in t.to_pylist()), cols
a, ca = rows(sys.argv[1])
b, cb = rows(sys.argv[2])
assert sorted(ca) == sorted(cb), (ca, cb)
cols_i = ca.index("i")
count = collections.Counter(r[cols_i] for r in b)
# The clean run against the input itself, by value: every decodable line once, with its
# values, and each device's running count rising by one in input order.
want = {}
for name in sorted(os.listdir(sys.argv[3])):
    for line in open(os.path.join(sys.argv[3], name)):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        want[r["i"]] = (r["device"], r["bucket"], r["temperature"])
ci = {c: ca.index(c) for c in ("i", "device", "bucket", "temperature", "seen")}
got = {r[ci["i"]]: (r[ci["device"]], r[ci["bucket"]], r[ci["temperature"]]) for r in a}
seen, counts_ok = {}, True
for r in sorted(a, key=lambda r: r[ci["i"]]):
    d = r[ci["device"]]
    seen[d] = seen.get(d, 0) + 1
    counts_ok = counts_ok and r[ci["seen"]] == seen[d]
print(json.dumps({
    "clean_is_input": got == want and len(a) == len(want), "clean_counts_ok": counts_ok,
    "clean_rows": len(a), "rows": len(b), "equal": a == b,
    "duplicated": sum(1 for v in count.values() if v > 1),
    "missing": len(set(r[cols_i] for r in a) - set(count)),
    "seen_total_clean": sum(r[ca.index("seen")] for r in a),
    "seen_total": sum(r[ca.index("seen")] for r in b),
    "first_difference": next((str((x, y)) for x, y in zip(a, b) if x != y), None),
}))
"#;

/// Compare two outputs with pyarrow (an independent reader), and the clean one with the
/// input in `input`.
fn compare(python: &Path, clean: &Path, other: &Path, input: &Path) -> Value {
    let out = Command::new(python)
        .args(["-c", COMPARE])
        .arg(clean)
        .arg(other)
        .arg(input)
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

pub fn assert_same_output(python: &Path, clean: &Path, other: &Path) {
    let report = compare(python, &clean.join("out"), &other.join("out"), &clean.join("../input"));
    eprintln!("comparison: {report}");
    assert_eq!(
        report["clean_is_input"], true,
        "the clean run is not the input: {report}"
    );
    assert_eq!(report["clean_counts_ok"], true, "{report}");
    assert_eq!(report["duplicated"], 0, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    assert_eq!(report["rows"], report["clean_rows"], "{report}");
    assert_eq!(report["seen_total"], report["seen_total_clean"], "{report}");
    assert_eq!(report["equal"], true, "{report}");
    let leftovers: Vec<PathBuf> = files_under(&other.join("out"), ".inprogress")
        .into_iter()
        .chain(files_under(&other.join("out"), ".meta"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let key = |v: &Value| format!("{}:{}", v["source"]["line"], v["raw"]);
    let mut a: Vec<String> = dead_letters(&clean.join("out/_dead_letter")).iter().map(key).collect();
    let mut b: Vec<String> = dead_letters(&other.join("out/_dead_letter")).iter().map(key).collect();
    a.sort();
    b.sort();
    assert!(!a.is_empty(), "the input has undecodable lines");
    assert_eq!(a, b, "dead letters differ");
    // The archive holds every input record exactly once, as received (gunzipped by Python).
    let input = |dir: &Path| {
        let mut lines: Vec<String> = files_under(&dir.join("../input"), ".ndjson")
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).expect("read input");
                text.lines().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        lines
    };
    let archived = crate::support::gunzipped_lines(python, &other.join("raw"));
    assert!(files_under(&other.join("raw"), ".inprogress").is_empty());
    assert_eq!(archived.len(), input(other).len(), "archived records");
    assert!(archived == input(other), "the archive differs from the input");
    assert_eq!(archived, crate::support::gunzipped_lines(python, &clean.join("raw")));
}

/// How [`kill_repeatedly`] times its kills.
pub struct Timing {
    /// A run with nothing to do.
    pub startup: Duration,
    /// Time per input file.
    pub per_file: Duration,
    /// Seeds the kill times.
    pub seed: u64,
    /// Kills that must land while sluice is running.
    pub kills: usize,
    /// The local checkpoint folder, when there is one: at least a third of the random kills
    /// must land after the run advanced a checkpoint (not only in start-up or recovery; 11 of
    /// 17 did here).
    pub checkpoints: Option<PathBuf>,
}

/// Run `crashy` again and again while the files of `input` arrive in `arriving` one per
/// attempt, killing it with SIGKILL at random moments and at each of `faults` (injected
/// points), until `timing.kills` kills landed and every fault point fired; then hand over the
/// rest of the input.
pub fn kill_repeatedly(crashy: &Path, input: &Path, arriving: &Path, faults: &[&str], timing: &Timing) {
    std::fs::create_dir_all(arriving).expect("mkdir");
    let mut staged: Vec<PathBuf> = files_under(input, ".ndjson");
    staged.reverse();
    let mut rng = Rng(timing.seed);
    let (startup, per_file) = (timing.startup, timing.per_file);
    let mut kills = 0;
    let mut injected = 0;
    let (mut random_kills, mut after_progress) = (0, 0);
    let latest = || {
        timing
            .checkpoints
            .as_ref()
            .and_then(|dir| files_under(dir, ".json").last().cloned())
    };
    let mut fired = std::collections::BTreeSet::new();
    let mut attempts = 0;
    // Delays shrink when a run finishes before its kill and grow back slowly when kills land.
    let mut scale = 1.0_f64;
    while kills < timing.kills || fired.len() < faults.len() {
        attempts += 1;
        if let Some(next) = staged.pop() {
            std::fs::copy(&next, arriving.join(next.file_name().expect("name"))).expect("stage input");
        }
        let status = if attempts % 4 == 0 {
            // Die inside the protocol: after the n-th checkpoint file is written but before
            // it is committed, right after committing, after a row group is flushed, or
            // between renames of sealed files.
            // The fault points that have not fired yet come first, in turn.
            let unfired: Vec<&&str> = faults.iter().filter(|f| !fired.contains(*f)).collect();
            let point = match unfired.len() {
                0 => &faults[(attempts / 4) % faults.len()],
                n => unfired[(attempts / 4) % n],
            };
            // At its first, second or third occurrence in this run (seeded).
            let nth = 1 + rng.below(3);
            let mut child = spawn(crashy, Some(&format!("{point}:{nth}")));
            let status = wait(&mut child);
            if killed(status) {
                injected += 1;
                fired.insert(*point);
            }
            status
        } else {
            // Sometimes during start-up or recovery, mostly while rows flow.
            let delay = (startup.mul_f64(0.3 + rng.below(700) as f64 / 1000.0)
                + per_file.mul_f64(2.0 * rng.below(1000) as f64 / 1000.0))
            .mul_f64(scale);
            // Every other one waits for the run to advance a checkpoint first, then a random
            // moment more: on a loaded machine start-up stretches, and kills timed by the
            // clock alone would all land before any progress.
            let after_a_checkpoint = timing.checkpoints.is_some() && rng.below(2) == 0;
            let before = latest();
            let mut child = spawn(crashy, None);
            if after_a_checkpoint {
                // (Bounded only so that a run that hangs is killed rather than waited on.)
                let since = Instant::now();
                while latest() == before
                    && child.try_wait().expect("try_wait").is_none()
                    && since.elapsed() < Duration::from_secs(120)
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                std::thread::sleep(per_file.mul_f64(rng.below(1000) as f64 / 1000.0));
            } else {
                std::thread::sleep(delay);
            }
            if child.try_wait().expect("try_wait").is_none() {
                child.kill().expect("SIGKILL");
            }
            let status = wait(&mut child);
            if killed(status) {
                random_kills += 1;
                if latest() != before {
                    after_progress += 1;
                }
            }
            status
        };
        if killed(status) {
            kills += 1;
            scale = (scale * 1.1).min(1.0);
        } else {
            assert!(status.success(), "sluice failed on restart: {status}");
            scale *= 0.6;
            if staged.is_empty() {
                break;
            }
        }
    }
    for rest in staged {
        std::fs::copy(&rest, arriving.join(rest.file_name().expect("name"))).expect("stage input");
    }
    eprintln!(
        "{kills} kills ({injected} injected; {after_progress} of {random_kills} random ones after a checkpoint advanced) in {attempts} attempts, seed {:#x}",
        timing.seed
    );
    if timing.checkpoints.is_some() {
        assert!(
            3 * after_progress >= random_kills,
            "only {after_progress} of {random_kills} random kills landed after the run advanced a checkpoint"
        );
    }
    assert!(
        kills >= timing.kills,
        "only {kills} kills landed before the run finished"
    );
    assert_eq!(
        fired.len(),
        faults.len(),
        "fault points that never fired: {fired:?} of {faults:?}"
    );
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let Some(python) = python() else { return };
    let seed = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xc0ffee_u64);
    let kills_wanted = std::env::var("SLUICE_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(KILLS);
    // The input comes in files, handed to the crashing pipeline one per attempt: however
    // fast or slow this machine is, there is always input left for the next kill to land in
    // (and new files appearing after a checkpoint are part of what is tested).
    let files = 2 * kills_wanted + 8;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).expect("mkdir");
    write_input(&input, files);
    let clean = pipeline(&tmp.path().join("clean"), &input);
    let full = run_to_end(&clean);
    // A run with nothing left to do measures start-up (and shows a rerun does nothing).
    let startup = run_to_end(&clean);
    let per_file = full.saturating_sub(startup).max(Duration::from_millis(20)) / files as u32;

    let arriving = tmp.path().join("arriving");
    let crashy = pipeline(&tmp.path().join("crashy"), &arriving);
    let faults = [
        "checkpoint-written",
        "checkpoint-committed",
        "row-group-flushed",
        "output-renamed",
    ];
    let timing = Timing {
        startup,
        per_file,
        seed,
        kills: kills_wanted,
        checkpoints: Some(crashy.parent().expect("dir").join("out/_checkpoints")),
    };
    kill_repeatedly(&crashy, &input, &arriving, &faults, &timing);
    run_to_end(&crashy);
    assert_same_output(&python, clean.parent().expect("dir"), crashy.parent().expect("dir"));
    // With nothing new to read, a rerun changes no output file.
    let listing = |dir: &Path| -> Vec<(PathBuf, u64)> {
        ["out", "raw"]
            .iter()
            .flat_map(|d| files_under(&dir.join(d), ""))
            .filter(|f| !f.starts_with(dir.join("out/_checkpoints")))
            .map(|f| {
                let len = std::fs::metadata(&f).map_or(0, |m| m.len());
                (f, len)
            })
            .collect()
    };
    let dir = crashy.parent().expect("dir");
    let before = listing(dir);
    run_to_end(&crashy);
    assert_eq!(listing(dir), before, "a rerun with nothing new changed the output");
}

#[test]
fn sigterm_stops_at_a_checkpoint_and_the_next_run_continues() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).expect("mkdir");
    write_input(&input, 3);
    let clean = pipeline(&tmp.path().join("clean"), &input);
    run_to_end(&clean);

    let stopped = pipeline(&tmp.path().join("stopped"), &input);
    let checkpoints = stopped.parent().expect("dir").join("out/_checkpoints");
    let latest = || files_under(&checkpoints, ".json").last().cloned();
    let mut stops = 0;
    for _ in 0..3 {
        let before = latest();
        let mut child = sluice()
            .arg("run")
            .arg(&stopped)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Stop it as soon as it has taken a checkpoint of its own: mid-run, past start-up.
        let started = Instant::now();
        while latest() == before && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        let status = wait(&mut child);
        assert!(status.success(), "SIGTERM must exit 0, got {status}");
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout).expect("read");
        eprintln!("{stdout}");
        if stdout.contains("on request") {
            stops += 1;
        }
    }
    assert!(
        stops >= 2,
        "SIGTERM arrived after the run finished in all but {stops} runs"
    );
    run_to_end(&stopped);
    assert_same_output(&python, clean.parent().expect("dir"), stopped.parent().expect("dir"));
}

#[test]
fn a_checkpoint_of_another_source_is_refused_until_from_scratch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, n) in [(&a, 3), (&b, 5)] {
        std::fs::create_dir_all(dir).expect("mkdir");
        let text: String = (0..n)
            .map(|i| format!("{{\"device\":\"d{i}\",\"i\":{i},\"bucket\":\"x\",\"temperature\":1.5}}\n"))
            .collect();
        std::fs::write(dir.join("in-0000.ndjson"), text).expect("write");
    }
    let first = pipeline(&tmp.path().join("p"), &a);
    run_to_end(&first);
    // The same pipeline file, now reading another folder: same sink, same checkpoint folder.
    let second = pipeline(&tmp.path().join("p"), &b);
    let out = run(sluice().arg("run").arg(&second));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("never applied to a different source")
            && stderr.contains(&a.display().to_string())
            && stderr.contains(&b.display().to_string())
            && stderr.contains("--from-scratch"),
        "{stderr}"
    );
    let out = run(sluice().arg("run").arg(&second).arg("--from-scratch"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("read          5 rows"));

    // A checkpoint in a format this sluice does not read is refused, naming the format.
    let ckpt = files_under(&tmp.path().join("p/out/_checkpoints"), ".json");
    let last = ckpt.last().expect("a checkpoint");
    let text = std::fs::read_to_string(last).expect("read");
    std::fs::write(last, text.replacen("\"format\": 2", "\"format\": 42", 1)).expect("write");
    let out = run(sluice().arg("run").arg(&second));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("checkpoint format 42") && stderr.contains("--from-scratch"),
        "{stderr}"
    );
}
