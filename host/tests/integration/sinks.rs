//! Several sinks under one checkpoint (scenario 4 locally): the raw archive holds every
//! record exactly as received, the ones that fail to decode too; the enriched Parquet holds
//! the valid rows with the added column. Both read back by independent readers (Python's
//! gzip, DuckDB).

use std::path::Path;

use serde_json::Value;

use crate::support::{
    copy_pipelines, dead_letters, duckdb, files_under, gunzip_in_order, gunzipped_lines, python, run, sluice,
};

fn input_lines(pipelines: &Path) -> Vec<String> {
    let mut lines: Vec<String> = files_under(&pipelines.join("data"), ".ndjson")
        .iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("sensors-"))
        })
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read input");
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn scenario_4_raw_archive_and_enriched_copy_from_one_read() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipelines = copy_pipelines(tmp.path());
    let out = run(sluice().arg("run").arg(pipelines.join("raw-and-enriched.toml")));
    assert!(out.status.success());
    let root = tmp.path().join("out/raw-and-enriched");
    check_scenario_4(
        &py,
        &pipelines,
        &root.join("raw"),
        &root.join("enriched"),
        &root.join("_dead_letter"),
    );
}

/// Scenario 4's output, read back independently: the archive under `raw` is every input
/// record once, byte for byte, in Firehose's `YYYY/MM/DD/HH/`; the Parquet under `enriched`
/// holds each valid record once with its derived column; the dead letters under `dead` are
/// the rest of the input.
pub fn check_scenario_4(py: &Path, pipelines: &Path, raw: &Path, enriched: &Path, dead: &Path) {
    let got = gunzipped_lines(py, raw);
    let want = input_lines(pipelines);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the archive is not the input");
    for f in files_under(raw, ".gz") {
        let rel = f.strip_prefix(raw).expect("under raw").to_string_lossy().into_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 5, "{rel}");
        assert!(
            parts[..4]
                .iter()
                .zip([4, 2, 2, 2])
                .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_digit())),
            "{rel} is not under YYYY/MM/DD/HH/"
        );
    }

    // The enriched copy: each valid record once, with its derived column; the invalid ones
    // are dead letters, and together they are the whole input.
    let rows = duckdb(
        py,
        &format!(
            "select client_id, count, temperature, temperature_f from read_parquet('{}/**/*.parquet')",
            enriched.display()
        ),
    );
    let dead = dead_letters(dead);
    assert!(!dead.is_empty(), "the sample has undecodable lines");
    assert_eq!(rows.len() + dead.len(), want.len());
    for r in &rows {
        match (r["temperature"].as_f64(), r["temperature_f"].as_f64()) {
            (Some(c), Some(f)) => assert!((f - (c * 1.8 + 32.0)).abs() < 1e-9, "{r:?}"),
            (None, None) => {}
            other => panic!("temperature_f does not follow temperature: {other:?}"),
        }
    }
    // The rows, by (client_id, count, temperature), are the input lines that are not dead
    // letters, each exactly once.
    let key = |id: &Value, count: &Value, t: &Value| {
        format!("{id}|{count}|{}", t.as_f64().map_or("null".into(), |t| t.to_string()))
    };
    let mut got_keys: Vec<String> = rows
        .iter()
        .map(|r| key(&r["client_id"], &r["count"], &r["temperature"]))
        .collect();
    let mut remaining: Vec<&String> = want.iter().collect();
    for d in &dead {
        let raw = d["raw"].as_str().expect("raw");
        let at = remaining
            .iter()
            .position(|l| *l == raw)
            .unwrap_or_else(|| panic!("dead letter {raw:?} is not an input line"));
        remaining.remove(at);
    }
    let mut want_keys: Vec<String> = remaining
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a decoded line is JSON");
            key(&v["client_id"], &v["count"], &v["temperature"])
        })
        .collect();
    got_keys.sort();
    want_keys.sort();
    assert!(
        got_keys == want_keys,
        "the enriched rows are not the valid input lines, once each"
    );
}

#[test]
fn files_read_one_at_a_time_archive_as_the_input_byte_for_byte() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipelines = copy_pipelines(tmp.path());
    let path = pipelines.join("raw-and-enriched.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    let text = text.replace(
        "path = \"data/sensors-*.ndjson\"",
        "path = \"data/sensors-*.ndjson\"\nmax_open_files = 1",
    );
    std::fs::write(&path, text).expect("write");
    let out = run(sluice().arg("run").arg(&path));
    assert!(out.status.success());
    let mut input = Vec::new();
    for f in ["sensors-1.ndjson", "sensors-2.ndjson"] {
        input.extend(std::fs::read(pipelines.join("data").join(f)).expect("read"));
    }
    let archived = gunzip_in_order(&py, &tmp.path().join("out/raw-and-enriched/raw"));
    assert!(
        archived == input,
        "{} bytes archived, {} in",
        archived.len(),
        input.len()
    );
    // A second run has nothing new to read and archives nothing.
    let out = run(sluice().arg("run").arg(&path));
    assert!(out.status.success());
    assert_eq!(
        gunzip_in_order(&py, &tmp.path().join("out/raw-and-enriched/raw")),
        input
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("read          0 rows"), "{summary}");
}

#[test]
fn more_dead_letters_in_one_batch_than_a_file_holds_are_all_kept() {
    // 70 undecodable lines of 1 MiB in one batch: the dead-letter file rolls over (at
    // 64 MiB) inside the batch, and the file it rolls to must not take the first one's name.
    let tmp = tempfile::tempdir().expect("tmp");
    let line = format!("not json {}\n", "x".repeat(1 << 20));
    let mut text = String::with_capacity(71 * line.len());
    for _ in 0..70 {
        text.push_str(&line);
    }
    text.push_str("{\"id\":\"ok\"}\n");
    std::fs::write(tmp.path().join("in.ndjson"), text).expect("write");
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        "[source]\ntype = \"file\"\npath = \"in.ndjson\"\n[source.schema]\nid = \"string\"\n[sink]\ntype = \"parquet\"\npath = \"out\"\n",
    )
    .expect("write pipeline");
    let out = run(sluice().arg("run").arg(&pipeline));
    assert!(out.status.success());
    let dead = dead_letters(&tmp.path().join("out/_dead_letter"));
    assert_eq!(dead.len(), 70);
    for d in &dead {
        assert_eq!(d["raw"].as_str().map(str::len), Some(line.len() - 1));
    }
    assert!(
        files_under(&tmp.path().join("out/_dead_letter"), ".jsonl").len() >= 2,
        "it rolled over"
    );
}

/// Event-time partitions, Hive's default names and a template of one's own, end to end: each
/// row, read back by DuckDB with its folder's values, sits in the hour of its own event time,
/// across a day and a month boundary, and every input row is in each sink once.
#[test]
fn event_time_and_template_partitions_put_each_row_in_its_own_hour() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-31T20:00:00Z").expect("start");
    let mut text = String::new();
    let rows = 700u64;
    for id in 0..rows {
        // Every 5 minutes, a little out of order, over 58 hours.
        let minutes = id as i64 * 5 - if id % 7 == 3 { 17 } else { 0 };
        let t = start + chrono::Duration::minutes(minutes) + chrono::Duration::milliseconds(id as i64 % 1000);
        text.push_str(&format!(
            "{{\"id\":{id},\"event_time\":\"{}\",\"price\":{}.25}}\n",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            id % 50
        ));
    }
    std::fs::write(tmp.path().join("ticks.ndjson"), text).expect("write input");
    let pipeline = r#"
[source]
type = "file"
path = "ticks.ndjson"
batch_rows = 64
[source.schema]
id = "long"
event_time = { type = "timestamp", nullable = false }
price = "double"
[[sink]]
name = "hive"
type = "parquet"
path = "out/hive"
partition = { by = "event_time", column = "event_time" }
[[sink]]
name = "custom"
type = "parquet"
path = "out/custom"
partition = { by = "event_time", column = "event_time", template = "dt=%Y-%m-%d/hr=%H" }
"#;
    std::fs::write(tmp.path().join("p.toml"), pipeline).expect("write pipeline");
    let out = run(sluice().arg("run").arg(tmp.path().join("p.toml")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let read = |sink: &str, folders: &str| {
        duckdb(
            &py,
            &format!(
                "select count(*) as n, count(distinct id) as ids, min(id) as lo, max(id) as hi, \
                 count(*) filter (where {folders} <> strftime(event_time, '%Y-%m-%d %H')) as misplaced, \
                 count(distinct strftime(event_time, '%Y-%m-%d %H')) as hours \
                 from read_parquet('{}/out/{sink}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)",
                tmp.path().display()
            ),
        )
    };
    let hive = read("hive", "year || '-' || month || '-' || day || ' ' || hour");
    let custom = read("custom", "dt || ' ' || hr");
    for (name, found) in [("hive", &hive), ("custom", &custom)] {
        let r = &found[0];
        assert_eq!(r["n"], Value::from(rows), "{name}: {r:?}");
        assert_eq!(r["ids"], Value::from(rows), "{name}: every row once");
        assert_eq!(
            (r["lo"].clone(), r["hi"].clone()),
            (Value::from(0), Value::from(rows - 1)),
            "{name}"
        );
        assert_eq!(r["misplaced"], Value::from(0), "{name}: a row outside its event hour");
        assert!(r["hours"].as_u64().is_some_and(|h| h > 50), "{name}: {r:?}");
    }
    // The folders are named as documented.
    let folders = |sink: &str| -> Vec<String> {
        files_under(&tmp.path().join("out").join(sink), ".parquet")
            .iter()
            .map(|f| {
                f.parent()
                    .expect("folder")
                    .strip_prefix(tmp.path())
                    .expect("under")
                    .display()
                    .to_string()
            })
            .collect()
    };
    let custom = folders("custom");
    assert!(
        custom.iter().any(|f| f == "out/custom/dt=2026-02-01/hr=00"),
        "{custom:?}"
    );
    let hive = folders("hive");
    assert!(
        hive.iter().any(|f| f == "out/hive/year=2026/month=02/day=01/hour=00"),
        "{hive:?}"
    );
}
