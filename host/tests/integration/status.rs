//! `sluice status` of a running pipeline: rows per stage, what was read and written, the last
//! checkpoint, each partition's position; and the reload history kept across a
//! restart-to-apply reload. Checked against the status document's own consistency and
//! against DuckDB's count of what was written.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{duckdb, files_under, poll_while_running, python, sluice, wait_output};

fn pipeline_text(row_group_rows: u64) -> String {
    format!(
        r#"[pipeline]
name = "watched"
workers = 2
[source]
type = "datagen"
template = "sensors"
partitions = 3
rate = 20000
batch_rows = 500
[[transform]]
name = "rename"
plugin = "map"
config.mappings = [{{ from = "client_id", to = "device_id" }}, {{ from = "temperature" }}]
[[transform]]
name = "warm"
plugin = "filter"
config.predicate = "temperature > 25"
[sink]
name = "lake"
type = "parquet"
path = "out"
row_group_rows = {row_group_rows}
max_file_age = "100ms"
[checkpoint]
interval = "200ms"
"#
    )
}

fn status(runtime: &Path) -> Option<Value> {
    let socket = files_under(runtime, ".sock").into_iter().next()?;
    let mut stream = UnixStream::connect(socket).ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Poll the status until `ready`; sluice is paced and keeps working, so the condition comes
/// or it exits (a failure).
fn wait_status(child: &mut Child, runtime: &Path, ready: impl Fn(&Value) -> bool) -> Value {
    poll_while_running(
        child,
        "the status to be ready",
        Duration::from_millis(50),
        || match status(runtime) {
            Some(s) if ready(&s) => Ok(s),
            other => Err(format!("{other:#?}")),
        },
    )
}

fn stage<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["stages"]
        .as_array()
        .and_then(|a| a.iter().find(|st| st["name"] == name))
        .unwrap_or_else(|| panic!("no stage {name} in {s:#}"))
}

#[test]
fn status_shows_the_flow_per_stage_and_keeps_reload_history_across_a_restart() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let runtime = tmp.path().join("run");
    let pipeline = tmp.path().join("watched.toml");
    std::fs::write(&pipeline, pipeline_text(5000)).expect("pipeline");
    let mut child = sluice()
        .current_dir(tmp.path())
        .env("SLUICE_RUNTIME_DIR", &runtime)
        .env("SLUICE_RELOAD_DEBOUNCE_MS", "20")
        .env("SLUICE_LOG", "info")
        .arg("run")
        .arg(&pipeline)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice");
    let s = wait_status(&mut child, &runtime, |s| {
        s["flow"]["checkpoint"]["taken"].as_u64().unwrap_or(0) >= 3
            && s["flow"]["sinks"][0]["files"].as_u64().unwrap_or(0) >= 1
    });
    let read = s["flow"]["rows_read"].as_u64().expect("rows_read");
    let (rename, warm) = (stage(&s, "rename"), stage(&s, "warm"));
    // Stage counts are taken when asked, the flow at the last write: the stages are ahead.
    assert!(rename["rows_in"].as_u64() >= Some(read), "{s:#}");
    // A stage counts a batch in before its call and out after it, and each of the two
    // workers may be inside a call (500 rows) when the counts are read.
    let (rename_in, rename_out) = (rename["rows_in"].as_u64(), rename["rows_out"].as_u64());
    assert!(
        rename_out <= rename_in && rename_in <= rename_out.map(|out| out + 2 * 500),
        "a rename keeps every row: {s:#}"
    );
    assert!(
        warm["rows_out"].as_u64() < warm["rows_in"].as_u64(),
        "the filter drops some: {s:#}"
    );
    assert!(warm["rows_out"].as_u64() > Some(0), "{s:#}");
    assert!(
        rename["batches"].as_u64() > Some(0) && rename["failed_calls"] == 0,
        "{s:#}"
    );
    let checkpoint = &s["flow"]["checkpoint"];
    assert!(
        checkpoint["bytes"].as_u64() > Some(0) && checkpoint["at_ms"].as_i64() > Some(0),
        "{s:#}"
    );
    let positions = s["flow"]["positions"].as_object().expect("positions");
    assert_eq!(positions.len(), 3, "one position per generated partition: {s:#}");
    let published = s["flow"]["sinks"][0]["rows"].as_u64().expect("sink rows");
    assert!(
        published > 0 && published <= warm["rows_out"].as_u64().unwrap_or(0),
        "{s:#}"
    );

    // The human view says the same.
    let out = sluice()
        .env("SLUICE_RUNTIME_DIR", &runtime)
        .arg("status")
        .arg(&pipeline)
        .output()
        .expect("status");
    let view = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{view}{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "Pipeline watched",
        "rows/s",
        "sink lake",
        "checkpoint ",
        "stage rename = stock:map",
        "rows in",
        "position ",
    ] {
        assert!(view.contains(expected), "{expected:?} in\n{view}");
    }

    // A sink change is applied by a checkpoint and a restart; the status keeps the history.
    std::fs::write(&pipeline, pipeline_text(6000)).expect("pipeline");
    let s = wait_status(&mut child, &runtime, |s| {
        s["reloads_applied"] == 1
            && s["last_reload"]["outcome"] == "applied"
            && s["flow"]["checkpoint"]["taken"].as_u64() >= Some(1)
    });
    assert!(
        s["last_reload"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("restarted from the checkpoint")),
        "{s:#}"
    );
    let sid = child.id().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &sid])
        .status()
        .expect("kill");
    assert!(term.success());
    let out = wait_output(&mut child, Duration::from_secs(120));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("paused for a reload"), "{said}");
    // What the status said was published is on disk, and more (the final checkpoint).
    let glob = tmp.path().join("out").join("**").join("*.parquet");
    let rows = duckdb(
        &py,
        &format!("select count(*) as n from read_parquet('{}')", glob.display()),
    );
    assert!(rows[0]["n"].as_u64() >= Some(published), "{rows:?} vs {published}");
}

/// `tmux` with its own server socket, run with `args`.
fn tmux(server: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("tmux")
        .args(["-L", server])
        .args(args)
        .output()
        .expect("tmux")
}

#[test]
fn top_shows_each_stage_rate_in_a_terminal() {
    if std::process::Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            !crate::support::services_required(),
            "tmux is not installed (scripts/test.sh installs it)"
        );
        eprintln!("SKIPPED: tmux is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let runtime = tmp.path().join("run");
    let pipeline = tmp.path().join("watched.toml");
    std::fs::write(&pipeline, pipeline_text(5000)).expect("pipeline");
    let mut child = sluice()
        .current_dir(tmp.path())
        .env("SLUICE_RUNTIME_DIR", &runtime)
        .args(["run", "--no-reload"])
        .arg(&pipeline)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice");
    wait_status(&mut child, &runtime, |s| {
        s["flow"]["checkpoint"]["taken"].as_u64() >= Some(1)
    });
    let server = format!("sluice-top-{}", std::process::id());
    let command = format!(
        "env SLUICE_RUNTIME_DIR={} {} top --interval 0.5 {}",
        runtime.display(),
        env!("CARGO_BIN_EXE_sluice"),
        pipeline.display()
    );
    let started = tmux(
        &server,
        &["new-session", "-d", "-s", "top", "-x", "120", "-y", "40", &command],
    );
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    // Wait for a frame with rates (the second reading); sluice keeps producing meanwhile.
    let screen = poll_while_running(&mut child, "rates on the screen", Duration::from_millis(200), || {
        let shot = tmux(&server, &["capture-pane", "-p", "-t", "top"]);
        let text = String::from_utf8_lossy(&shot.stdout).into_owned();
        let rate = text
            .lines()
            .find(|l| l.starts_with("rename"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|r| r.parse::<f64>().ok());
        if rate.is_some_and(|r| r > 0.0) {
            Ok(text)
        } else {
            Err(text)
        }
    });
    let _ = tmux(&server, &["kill-server"]);
    let _ = child.kill();
    let _ = child.wait();
    for expected in [
        "sluice top: watched",
        "STAGE",
        "rename",
        "warm",
        "SINK",
        "lake",
        "checkpoint",
        "partition",
    ] {
        assert!(screen.contains(expected), "{expected:?} on screen:\n{screen}");
    }
    eprintln!("{screen}");
}
