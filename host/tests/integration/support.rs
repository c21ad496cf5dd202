//! Helpers: run the binary, find the independent reader, copy pipelines into a temp folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the workspace")
        .to_owned()
}

/// The `sluice` binary, sharing one compiled-component cache across tests.
///
/// The child is killed when the thread that starts it ends: each test runs on a thread of
/// its own, so a test that fails (panics) before it stops its `sluice run` leaves nothing
/// running to load the machine for the tests after it.
pub fn sluice() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    if std::env::var_os("SLUICE_CACHE_DIR").is_none() {
        cmd.env("SLUICE_CACHE_DIR", workspace().join("target").join("sluice-cache"));
    }
    cmd.env("SLUICE_LOG", "warn");
    die_with_test(&mut cmd);
    cmd
}

/// Ask the kernel to SIGKILL `cmd`'s process when the spawning thread exits.
fn die_with_test(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the forked child before exec and calls only prctl, which is
    // async-signal-safe, allocating nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Run and return output, printing it for when the test fails. A run that uses no CPU for
/// two minutes is hung: it is killed and fails the test (a hang must never stall the suite,
/// and a slow machine compiling components must never fail it).
pub fn run(cmd: &mut Command) -> Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running sluice");
    let out = wait_output(&mut child, std::time::Duration::from_secs(120));
    eprintln!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Wait for a child started with piped stdout and stderr, draining both. The child is
/// watched for progress, not timed: one that has used no CPU for `limit` (a deadlock, a wait
/// on something that never comes) is killed and fails the test, while one that works for
/// longer (a cold component compile on a loaded machine) is waited for.
pub fn wait_output(child: &mut std::process::Child, limit: std::time::Duration) -> Output {
    use std::time::Instant;
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).ok();
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).ok();
        buf
    });
    // A last resort for a child that spins without end: far past any slow machine's compile.
    const SPINNING: std::time::Duration = std::time::Duration::from_secs(15 * 60);
    let started = Instant::now();
    let mut progress = (cpu_ticks(child.id()), Instant::now());
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for sluice") {
            break status;
        }
        let ticks = cpu_ticks(child.id());
        if ticks != progress.0 {
            progress = (ticks, Instant::now());
        } else if progress.1.elapsed() > limit || started.elapsed() > SPINNING {
            child.kill().ok();
            child.wait().ok();
            panic!("the child used no CPU for {limit:?} (or ran {SPINNING:?}): hung, killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_thread.join().expect("stdout"),
        stderr: err_thread.join().expect("stderr"),
    }
}

/// CPU time a process and its waited-for children have used, in clock ticks (`/proc`'s
/// utime, stime, cutime, cstime); `None` once it is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from the state (field 3).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.get(11..15)?.iter().map(|f| f.parse::<u64>().ok()).sum()
}

/// Ask `probe` every `every` until it gives a value, while `child` (a sluice that is fed and
/// working) runs: the value comes, or sluice exits and the test fails. `probe` says what it
/// saw when it is not there yet, for the failure message; `what` names what is awaited.
pub fn poll_while_running<T>(
    child: &mut std::process::Child,
    what: &str,
    every: std::time::Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let started = std::time::Instant::now();
    loop {
        let seen = match probe() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sluice exited ({status}) while waiting for {what}; last seen:\n{seen}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(600),
            "never saw {what}; last seen:\n{seen}"
        );
        std::thread::sleep(every);
    }
}

/// Whether npm is there; when it is not, a test needing it fails under the test command
/// and is skipped (with a message) otherwise.
pub fn npm_available() -> bool {
    if Command::new("npm").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        !services_required(),
        "npm is not installed (scripts/test.sh installs Node.js and npm)"
    );
    eprintln!("SKIPPED: npm is not installed");
    false
}

/// The JavaScript SDK's own packages, installed once per test process (tests that need them
/// run side by side, and two `npm install`s in one folder at once can break each other).
pub fn sdk_js_installed() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| npm(&workspace().join("sdk-js"), &["install", "--no-audit", "--no-fund"]));
}

/// `npm` with `args` in `dir`, which must succeed.
pub fn npm(dir: &Path, args: &[&str]) {
    let out = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running npm");
    assert!(
        out.status.success(),
        "npm {args:?} in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a missing service or reader fails the test instead of skipping it: under
/// `CI=true`, and under the test command (scripts/test.sh sets `SLUICE_REQUIRE_SERVICES=1`).
pub fn services_required() -> bool {
    std::env::var("CI").as_deref() == Ok("true") || std::env::var("SLUICE_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// A Python with pyarrow and duckdb: `SLUICE_TEST_PYTHON` (set by scripts/test.sh), else
/// `python3` if it has both. When services are required a missing reader fails the test.
pub fn python() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("SLUICE_TEST_PYTHON") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![workspace().join(".venv/bin/python"), PathBuf::from("python3")],
    };
    for p in candidates {
        let ok = Command::new(&p)
            .args(["-c", "import pyarrow, duckdb"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(p);
        }
    }
    assert!(
        !services_required(),
        "no Python with pyarrow and duckdb (run scripts/test.sh, which creates .venv)"
    );
    eprintln!("SKIPPED: no Python with pyarrow and duckdb; run scripts/test.sh");
    None
}

const QUERY: &str = r#"
import datetime, decimal, duckdb, json, sys
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
rel = con.sql(sys.argv[1])
cols = rel.columns
def conv(v):
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat(sep=" ") if isinstance(v, datetime.datetime) else v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v
print(json.dumps([dict(zip(cols, [conv(v) for v in row])) for row in rel.fetchall()]))
"#;

/// Rows of a DuckDB query, as JSON objects.
pub fn duckdb(python: &Path, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = Command::new(python)
        .args(["-c", QUERY, sql])
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "duckdb query failed: {sql}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json rows");
    rows.into_iter()
        .map(|r| r.as_object().expect("row object").clone())
        .collect()
}

/// Copy `pipelines/` into `dir/pipelines` so outputs land under `dir`.
pub fn copy_pipelines(dir: &Path) -> PathBuf {
    let dst = dir.join("pipelines");
    copy_tree(&workspace().join("pipelines"), &dst);
    dst
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

/// Every file under `dir` whose name ends with `suffix`, sorted.
pub fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every dead letter under `dir` (all `.jsonl` files, in name order), parsed.
pub fn dead_letters(dir: &Path) -> Vec<serde_json::Value> {
    files_under(dir, ".jsonl")
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read dead letters");
            text.lines()
                .map(|l| serde_json::from_str(l).expect("a dead letter is JSON"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The gzip files under `dir` in name order, each gunzipped by Python, concatenated.
pub fn gunzip_in_order(python: &Path, dir: &Path) -> Vec<u8> {
    const READ: &str = "import gzip, sys\nfor f in sys.argv[1:]:\n    sys.stdout.buffer.write(gzip.open(f).read())";
    let files = files_under(dir, ".gz");
    assert!(!files.is_empty(), "no archive under {}", dir.display());
    let out = Command::new(python)
        .args(["-c", READ])
        .args(&files)
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Every line of every gzip file under `dir`, sorted, as Python's gzip reads them.
pub fn gunzipped_lines(python: &Path, dir: &Path) -> Vec<String> {
    let text = String::from_utf8(gunzip_in_order(python, dir)).expect("utf-8 records");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn a_child_that_uses_no_cpu_is_killed_and_one_that_works_is_waited_for() {
    use std::process::Stdio;
    let spawn = |script: &str| {
        Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh")
    };
    let limit = std::time::Duration::from_millis(700);
    // Busy for several times the limit: waited for.
    let mut busy = spawn("i=0; while [ $i -lt 1500000 ]; do i=$((i+1)); done; echo done");
    let out = wait_output(&mut busy, limit);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "done");
    // Asleep: killed once it has used no CPU for the limit.
    let mut idle = spawn("sleep 60");
    let started = std::time::Instant::now();
    let hung = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_output(&mut idle, limit)));
    assert!(hung.is_err(), "a child that never works is a failure");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// A loopback proxy script of `scripts/` (`throttle_proxy.py`, `s3_fault_proxy.py`) in front
/// of an endpoint, killed when dropped. It prints `listening on PORT` first and keeps its
/// counters in a `--stats` file.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`, to give a client instead of the upstream's.
    pub endpoint: String,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// Start `scripts/<script>` in front of `upstream` with `args`, and wait until it prints
    /// its port.
    pub fn start(python: &Path, script: &str, upstream: &str, args: &[&str]) -> Proxy {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = std::fs::File::create(dir.path().join("proxy.log")).expect("proxy log");
        let mut child = Command::new(python)
            .arg(workspace().join("scripts").join(script))
            .args(["--listen-port", "0", "--upstream", upstream, "--stats"])
            .arg(dir.path().join("stats.json"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("running {script}: {e}"));
        // The first line is `listening on PORT`; EOF instead means it died.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let Some(port) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("proxy.log")).unwrap_or_default();
            panic!("{script} did not start: {line:?}\n{log}");
        };
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        }
    }

    /// The counters the script keeps (see its doc).
    pub fn stats(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.path().join("stats.json")).expect("proxy stats");
        serde_json::from_str(&text).expect("proxy stats are JSON")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- proxy stderr:\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}

/// The `seq` column of every row of the Parquet files under `dir`, read by DuckDB, in order
/// (empty when there are none): what a run wrote, rather than what its summary says.
pub fn written_seqs(dir: &Path) -> Vec<i64> {
    if files_under(dir, ".parquet").is_empty() {
        return Vec::new();
    }
    let python = python().expect("a Python with duckdb reads the output");
    duckdb(
        &python,
        &format!(
            "select seq from read_parquet('{}/**/*.parquet') order by seq",
            dir.display()
        ),
    )
    .iter()
    .map(|r| r["seq"].as_i64().expect("seq"))
    .collect()
}

/// What `sluice()` promises: a run whose test thread is gone does not outlive it.
#[test]
fn a_sluice_child_is_killed_when_the_thread_that_started_it_ends() {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = tmp.path().join("stdin.toml");
    std::fs::write(
        &pipeline,
        "[pipeline]\nname = \"p\"\n[source]\ntype = \"file\"\npath = \"-\"\n[source.schema]\nn = \"long\"\n[sink]\ntype = \"parquet\"\npath = \"out\"\n",
    )
    .expect("pipeline");
    // A run that reads stdin until it ends: it would wait forever. The thread leaks the
    // child's handle (and the pipe's write end), as a panicking test would.
    let pid = std::thread::spawn(move || {
        let child = sluice()
            .arg("run")
            .arg(&pipeline)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        std::mem::forget(child);
        pid
    })
    .join()
    .expect("thread");
    // Gone, or a zombie left for this process to reap; the kill is immediate, and the
    // minute only bounds a failure.
    let dead = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    };
    let started = std::time::Instant::now();
    while !dead() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "sluice {pid} outlived its thread"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Reap it. SAFETY: waitpid on our own child's pid, with no status pointer to write.
    unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
}
