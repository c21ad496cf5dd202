//! `follow = true` against a real `sluice run`: a log written line by line while it is
//! rotated both ways (rename and copytruncate, as logrotate does) and sluice is killed with
//! SIGKILL twice. The Parquet output, read back by DuckDB, must hold every line the test
//! wrote exactly once.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::{duckdb, poll_while_running, python, sluice};

fn pipeline(dir: &Path) -> PathBuf {
    let text = r#"
[pipeline]
name = "follow"
[source]
type = "file"
path = "in"
follow = true
poll_interval = "20ms"
rotate_wait = "300ms"
batch_rows = 50
[source.schema]
n = { type = "long", nullable = false }
log = { type = "string", nullable = false }
pad = "string"
[sink]
type = "parquet"
path = "out"
max_file_age = "300ms"
[checkpoint]
interval = "100ms"
"#;
    let path = dir.join("follow.toml");
    std::fs::write(&path, text).expect("pipeline");
    path
}

fn start(pipeline: &Path) -> Child {
    sluice()
        .arg("run")
        .arg(pipeline)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice")
}

/// (log, n) → rows with it in the output.
fn written(python: &Path, out: &Path) -> BTreeMap<(String, i64), i64> {
    if !out.exists() {
        return BTreeMap::new();
    }
    let sql = format!(
        "select log, n, count(*) as c from read_parquet('{}/**/*.parquet', hive_partitioning = false) group by all",
        out.display()
    );
    duckdb(python, &sql)
        .into_iter()
        .map(|r| {
            (
                (r["log"].as_str().expect("log").to_owned(), r["n"].as_i64().expect("n")),
                r["c"].as_i64().expect("count"),
            )
        })
        .collect()
}

/// An application writing a log and the rotation that moves it.
struct Log {
    name: &'static str,
    folder: PathBuf,
    handle: std::fs::File,
    next: i64,
    rotated: usize,
}

impl Log {
    fn new(folder: &Path, name: &'static str) -> Log {
        let handle = Self::open(&folder.join(name));
        Log {
            name,
            folder: folder.to_owned(),
            handle,
            next: 0,
            rotated: 0,
        }
    }

    fn open(path: &Path) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open log")
    }

    fn path(&self) -> PathBuf {
        self.folder.join(self.name)
    }

    /// `lines` more lines, flushed one at a time as an application logs them.
    fn write(&mut self, lines: usize) {
        for _ in 0..lines {
            let pad = "x".repeat((self.next as usize * 37) % 300);
            writeln!(
                self.handle,
                "{{\"n\":{},\"log\":\"{}\",\"pad\":\"{pad}\"}}",
                self.next, self.name
            )
            .expect("write");
            self.next += 1;
        }
    }

    /// logrotate's default: rename, the application writes a little more to the file it
    /// has open, then reopens its log.
    fn rotate_by_rename(&mut self) {
        self.rotated += 1;
        std::fs::rename(self.path(), self.folder.join(format!("{}.{}", self.name, self.rotated))).expect("rename");
        self.write(7);
        self.handle = Self::open(&self.path());
    }

    /// logrotate's copytruncate: copy, then truncate the file the application keeps open.
    fn rotate_by_copytruncate(&mut self) {
        self.rotated += 1;
        std::fs::copy(self.path(), self.folder.join(format!("{}.{}", self.name, self.rotated))).expect("copy");
        self.handle.set_len(0).expect("truncate");
    }
}

#[test]
fn rotated_logs_and_two_sigkills_reach_parquet_with_every_line_once() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let folder = tmp.path().join("in");
    std::fs::create_dir_all(&folder).expect("in");
    let p = pipeline(tmp.path());
    let out = tmp.path().join("out");
    let mut app = Log::new(&folder, "app.log");
    let mut web = Log::new(&folder, "web.log");
    app.write(40);
    web.write(40);
    let mut run = start(&p);
    for round in 0..6 {
        for _ in 0..10 {
            app.write(15);
            web.write(9);
            std::thread::sleep(Duration::from_millis(15));
        }
        if round % 2 == 0 {
            app.rotate_by_rename();
        } else {
            web.rotate_by_copytruncate();
        }
        if round == 2 || round == 4 {
            // Killed while lines and a rotation are in flight; the next run starts from the
            // last checkpoint, with the files moved since.
            run.kill().expect("kill -9");
            run.wait().expect("wait");
            app.write(20);
            web.write(20);
            run = start(&p);
        }
    }
    app.write(5);
    web.write(5);
    let want = app.next + web.next;
    poll_while_running(&mut run, "every line written", Duration::from_millis(300), || {
        let rows = written(&python, &out);
        if rows.len() as i64 == want {
            Ok(())
        } else {
            Err(format!("{} of {want} lines", rows.len()))
        }
    });
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    assert!(run.wait().expect("wait").success(), "sluice stops cleanly on SIGTERM");
    let rows = written(&python, &out);
    for (log, count) in [("app.log", app.next), ("web.log", web.next)] {
        for n in 0..count {
            let c = rows.get(&(log.to_owned(), n)).copied().unwrap_or(0);
            assert_eq!(c, 1, "{log} line {n} is in the output {c} times");
        }
    }
    assert_eq!(rows.len() as i64, want, "no line that was not written");
    let dead = out.join("_dead_letter");
    assert!(
        !dead.exists() || std::fs::read_dir(&dead).expect("dead letters").next().is_none(),
        "no dead letters"
    );
}
