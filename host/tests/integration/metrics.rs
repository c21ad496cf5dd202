//! `/metrics`: what a running pipeline exports, checked by value against what the test fed
//! it and against DuckDB's count of what it wrote, linted by `promtool check metrics`, and
//! scraped by a real Prometheus whose query API gives the rates; the shipped Grafana
//! dashboard asks only for metrics that exist.

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::prometheus::{Prometheus, free_port, get, promtool};
use crate::support::{duckdb, poll_while_running, python, sluice, wait_output, workspace};

/// The value of the sample `name{…}` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// Scrape `/metrics` on `port` while `child` runs, until `ready` holds for the text. Waits
/// as long as sluice lives: it is fed and working, so the condition comes or it exits.
fn scrape_until(child: &mut Child, port: u16, ready: impl Fn(&str) -> bool) -> String {
    poll_while_running(
        child,
        "its metrics to show what was expected",
        Duration::from_millis(100),
        || match get(port, "/metrics") {
            Some((200, body)) if ready(&body) => Ok(body),
            Some((_, body)) => Err(body),
            None => Err("(no answer)".to_owned()),
        },
    )
}

/// `promtool check metrics` on a scrape: exit 0 and nothing to say.
fn lint(text: &str) {
    let Some(promtool) = promtool() else { return };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{said}\n--- on\n{text}"
    );
    assert!(said.trim().is_empty(), "promtool check metrics found problems:\n{said}");
}

const CHUNK: usize = 500;

/// Input through stdin, so the pipeline runs until the test closes it: counts are checked
/// while it runs, then what it wrote is counted by DuckDB.
#[test]
fn metrics_count_what_was_read_rejected_transformed_and_written() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let pipeline = tmp.path().join("metered.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"[pipeline]
name = "metered"
workers = 2
[source]
type = "file"
path = "-"
batch_rows = {CHUNK}
[source.schema]
device = {{ type = "string", nullable = false }}
temperature = "double"
[[transform]]
name = "rename"
plugin = "map"
config.mappings = [{{ from = "device", to = "device_id" }}, {{ from = "temperature" }}]
[[transform]]
name = "warm"
plugin = "filter"
config.predicate = "temperature > 25"
limits = {{ fuel = 1_000_000_000 }}
[sink]
name = "lake"
type = "parquet"
path = "out"
[telemetry]
listen = "127.0.0.1:{port}"
"#
        ),
    )
    .expect("pipeline");
    // 2,000 lines in four whole chunks: every 100th is not JSON, temperatures cycle 0..49.
    let (mut bad, mut warm) = (0, 0);
    let mut input = String::new();
    for i in 0..4 * CHUNK {
        if i % 100 == 7 {
            input.push_str("{not json\n");
            bad += 1;
            continue;
        }
        let t = (i % 50) as f64;
        if t > 25.0 {
            warm += 1;
        }
        input.push_str(&format!("{{\"device\":\"d{}\",\"temperature\":{t}}}\n", i % 9));
    }
    let mut child = sluice()
        .current_dir(tmp.path())
        .args(["run", "--no-reload"])
        .arg(&pipeline)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("feed");
    stdin.flush().expect("flush");
    let lines = (4 * CHUNK) as f64;
    let text = scrape_until(&mut child, port, |t| {
        sample(t, "sluice_source_records_total", &[("pipeline", "metered")]) == Some(lines)
            && sample(t, "sluice_stage_batches_total", &[("stage", "warm")]) == Some(4.0)
    });
    let m = |name: &str, labels: &[(&str, &str)]| {
        let mut all = vec![("pipeline", "metered")];
        all.extend_from_slice(labels);
        sample(&text, name, &all).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    let good = lines - bad as f64;
    assert_eq!(sample(&text, "sluice_build_info", &[]), Some(1.0));
    assert_eq!(m("sluice_pipeline_running", &[]), 1.0);
    assert_eq!(m("sluice_source_chunks_total", &[]), 4.0);
    assert_eq!(
        m("sluice_source_bytes_total", &[]),
        input.len() as f64,
        "every input byte counted once"
    );
    assert_eq!(
        m(
            "sluice_dead_letters_total",
            &[("stage", "decode"), ("reason", "decode")]
        ),
        bad as f64
    );
    assert_eq!(m("sluice_stage_records_in_total", &[("stage", "rename")]), good);
    assert_eq!(m("sluice_stage_records_out_total", &[("stage", "rename")]), good);
    assert_eq!(m("sluice_stage_records_in_total", &[("stage", "warm")]), good);
    assert_eq!(m("sluice_stage_records_out_total", &[("stage", "warm")]), warm as f64);
    assert!(m("sluice_stage_bytes_in_total", &[("stage", "warm")]) > 0.0);
    // The filter runs with a fuel budget: what its four calls used is counted (the rename,
    // without one, has no fuel series).
    let fuel = m("sluice_stage_fuel_consumed_total", &[("stage", "warm")]);
    assert!(fuel > 0.0 && fuel < 4e9, "fuel used: {fuel}");
    assert_eq!(
        sample(&text, "sluice_stage_fuel_consumed_total", &[("stage", "rename")]),
        None
    );
    // One call per batch (nothing failed, so nothing was bisected), each timed.
    assert_eq!(m("sluice_stage_call_duration_seconds_count", &[("stage", "warm")]), 4.0);
    assert_eq!(
        m(
            "sluice_stage_call_duration_seconds_bucket",
            &[("stage", "warm"), ("le", "+Inf")]
        ),
        4.0
    );
    assert!(m("sluice_stage_call_duration_seconds_sum", &[("stage", "warm")]) > 0.0);
    let digest = text
        .lines()
        .find(|l| l.starts_with("sluice_component_info{") && l.contains("stage=\"warm\""))
        .and_then(|l| l.split("component_sha256=\"").nth(1))
        .map(|r| r[..64].to_owned())
        .unwrap_or_else(|| panic!("no component_info for warm in\n{text}"));
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()), "{digest}");
    lint(&text);

    // End the input: sluice writes and exits; DuckDB counts what it wrote.
    drop(stdin);
    let out = wait_output(&mut child, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "sluice failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let glob = tmp.path().join("out").join("**").join("*.parquet");
    let rows = duckdb(
        &py,
        &format!("select count(*) as n from read_parquet('{}')", glob.display()),
    );
    assert_eq!(
        rows[0]["n"].as_u64(),
        Some(warm),
        "DuckDB counts the rows the filter passed"
    );
}

/// A real Prometheus scrapes a paced, endless pipeline; its query API gives the rates, and
/// every metric the Grafana dashboard asks for is among those it scraped.
#[test]
fn prometheus_scrapes_rates_and_the_dashboard_asks_for_real_metrics() {
    let tmp = tempfile::tempdir().expect("tmp");
    let prometheus_dir = tmp.path().join("prometheus");
    let port = free_port();
    let pipeline = tmp.path().join("live.toml");
    std::fs::write(
        &pipeline,
        r#"[pipeline]
name = "live"
[source]
type = "datagen"
template = "sensors"
partitions = 4
rate = 2000
batch_rows = 200
[[transform]]
name = "rename"
plugin = "map"
config.mappings = [{ from = "client_id", to = "device_id" }, { from = "temperature" }]
[[transform]]
name = "warm"
plugin = "filter"
config.predicate = "temperature > 25"
[sink]
type = "parquet"
path = "out"
[checkpoint]
interval = "500ms"
"#,
    )
    .expect("pipeline");
    let mut child = sluice()
        .current_dir(tmp.path())
        .args(["run", "--no-reload", "--metrics-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(&pipeline)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice");
    let scraped = scrape_until(&mut child, port, |t| {
        sample(t, "sluice_checkpoints_total", &[("pipeline", "live")]).is_some_and(|n| n >= 1.0)
    });
    lint(&scraped);
    let Some(prometheus) = Prometheus::start(&prometheus_dir, &[format!("127.0.0.1:{port}")]) else {
        let _ = child.kill();
        return;
    };
    // Wait until Prometheus has enough scrapes for a rate over 5 s (it scrapes every second
    // and keeps going; sluice must stay alive throughout).
    let rate = "sum(rate(sluice_source_records_total{pipeline=\"live\"}[5s]))";
    let records_per_second = poll_while_running(&mut child, "a rate in Prometheus", Duration::from_millis(250), || {
        let scrapes = prometheus.query("count_over_time(up{job=\"sluice\"}[10s])");
        match prometheus.query(rate).first() {
            Some((_, v)) if *v > 0.0 && scrapes.first().is_some_and(|(_, n)| *n >= 6.0) => Ok(*v),
            _ => Err(prometheus.log()),
        }
    });
    // Paced at 2,000 rows/s; a starved machine may fall behind but never runs ahead.
    assert!(
        (200.0..=3000.0).contains(&records_per_second),
        "source rate {records_per_second}/s, paced at 2000/s"
    );
    let up = prometheus.query("up{job=\"sluice\"}");
    assert_eq!(up.first().map(|(_, v)| *v), Some(1.0), "target up");
    let per_stage = prometheus.query("sum by (stage) (rate(sluice_stage_records_in_total{pipeline=\"live\"}[5s]))");
    let stages: Vec<&str> = per_stage
        .iter()
        .filter(|(_, v)| *v > 0.0)
        .filter_map(|(l, _)| l.get("stage").and_then(|s| s.as_str()))
        .collect();
    assert!(
        stages.contains(&"rename") && stages.contains(&"warm"),
        "both stages take rows: {per_stage:?}"
    );
    let filtered = prometheus.query(
        "sum(rate(sluice_stage_records_out_total{stage=\"warm\"}[5s])) / sum(rate(sluice_stage_records_in_total{stage=\"warm\"}[5s]))",
    );
    let share = filtered.first().map_or(f64::NAN, |(_, v)| *v);
    assert!(
        share > 0.0 && share < 1.0,
        "the filter passes some rows, not all: {share}"
    );
    let p50 = prometheus.query(
        "histogram_quantile(0.5, sum by (le) (rate(sluice_stage_call_duration_seconds_bucket{stage=\"rename\"}[10s])))",
    );
    assert!(
        p50.first().is_some_and(|(_, v)| v.is_finite() && *v > 0.0),
        "a median call time: {p50:?}"
    );
    let checkpoints = prometheus.query("increase(sluice_checkpoints_total{pipeline=\"live\"}[10s])");
    assert!(
        checkpoints.first().is_some_and(|(_, v)| *v >= 1.0),
        "checkpoints keep being taken: {checkpoints:?}"
    );
    // Every metric name the dashboard's queries use was scraped (histograms by their
    // `_bucket`, `_sum` or `_count` series).
    let dashboard = workspace().join("host/grafana/sluice-dashboard.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard).expect("dashboard")).expect("dashboard JSON");
    let mut exprs = Vec::new();
    collect_exprs(&json, &mut exprs);
    assert!(exprs.len() >= 6, "the dashboard has panels with queries: {exprs:?}");
    let names: Vec<&str> = scraped
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    for expr in &exprs {
        let used: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("sluice_"))
            .collect();
        assert!(!used.is_empty(), "a dashboard query with no sluice metric: {expr}");
        for name in used {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| names.contains(b)))
                .unwrap_or(name);
            assert!(
                names.contains(&base) || known_later(base),
                "the dashboard asks for {name}, which sluice does not export"
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Metrics that exist only once something happened (a reload, a dead letter, a Kinesis
/// lag, a stateful stage) or for some sources (the backlog of files): registered on first
/// use, so a healthy stateless datagen run has none.
fn known_later(name: &str) -> bool {
    [
        "sluice_dead_letters_total",
        "sluice_reloads_total",
        "sluice_reload_last_refused_info",
        "sluice_source_lag_seconds",
        "sluice_source_backlog_bytes",
        "sluice_source_in_flight_messages",
        "sluice_stage_state_bytes",
        "sluice_stage_call_errors_total",
        "sluice_stage_fuel_consumed_total",
    ]
    .contains(&name)
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}
