//! Every example pipeline runs; the sensor pipeline's Parquet, read back by DuckDB, equals
//! what this test computes from the input files itself.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::{copy_pipelines, dead_letters, duckdb, files_under, python, run, sluice};

#[test]
fn every_example_pipeline_runs_and_writes_readable_parquet() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipelines = copy_pipelines(tmp.path());
    for entry in std::fs::read_dir(&pipelines).expect("pipelines") {
        let path = entry.expect("entry").path();
        // Pipelines only: `<stem>.test.toml` holds a pipeline's test cases (`sluice test`).
        if path.extension().is_none_or(|e| e != "toml") || path.to_string_lossy().ends_with(".test.toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if ["mqtt", "kinesis", "s3"]
            .iter()
            .any(|kind| text.contains(&format!("type = \"{kind}\"")))
        {
            // Needs a broker, a stream or a bucket: type-checked here, run in mqtt.rs,
            // kinesis_source.rs and s3_sink.rs.
            let out = run(sluice().arg("validate").arg(&path));
            assert!(out.status.success(), "{} does not validate", path.display());
            continue;
        }
        let out = run(sluice().arg("run").arg(&path));
        assert!(out.status.success(), "{} failed", path.display());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let written: u64 = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("written"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("summary has a written line");
        let glob = tmp.path().join("out").join("**").join("*.parquet");
        let rows = duckdb(
            &py,
            &format!("select count(*) as n from read_parquet('{}')", glob.display()),
        );
        assert_eq!(rows[0]["n"], Value::from(written), "{}", path.display());
        std::fs::remove_dir_all(tmp.path().join("out")).expect("clean");
    }
}

/// What the sensor pipeline must produce, computed here from the raw lines.
#[derive(Default)]
struct Expected {
    per_device: BTreeMap<String, (u64, f64, f64, f64, String)>,
    bad_lines: Vec<(String, u64)>,
    rows: u64,
}

fn is_number_or_absent(obj: &serde_json::Map<String, Value>, key: &str) -> bool {
    obj.get(key).is_none_or(|v| v.is_number() || v.is_null())
}

fn expected_from(data: &Path) -> Expected {
    let mut files: Vec<_> = std::fs::read_dir(data)
        .expect("data")
        .map(|e| e.expect("e").path())
        .collect();
    files.retain(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("sensors-"))
    });
    files.sort();
    let mut exp = Expected::default();
    for file in files {
        let name = file.file_name().expect("name").to_string_lossy().into_owned();
        for (i, line) in std::fs::read_to_string(&file).expect("read").lines().enumerate() {
            let parsed: Option<serde_json::Map<String, Value>> = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.as_object().cloned());
            let valid = parsed.filter(|o| {
                o.get("client_id").is_some_and(Value::is_string)
                    && o.get("timestamp").is_none_or(|v| v.is_string() || v.is_null())
                    && ["humidity", "temperature", "pressure", "pitch", "roll", "yaw", "count"]
                        .iter()
                        .all(|k| is_number_or_absent(o, k))
            });
            let Some(rec) = valid else {
                exp.bad_lines.push((name.clone(), i as u64 + 1));
                continue;
            };
            exp.rows += 1;
            let Some(t) = rec.get("temperature").and_then(Value::as_f64) else {
                continue;
            };
            if t <= 25.0 {
                continue;
            }
            let device = rec["client_id"].as_str().expect("string").to_owned();
            let ts = rec["timestamp"].as_str().unwrap_or_default().to_owned();
            let e = exp
                .per_device
                .entry(device)
                .or_insert((0, f64::MAX, f64::MIN, 0.0, ts.clone()));
            e.0 += 1;
            e.1 = e.1.min(t);
            e.2 = e.2.max(t);
            e.3 += t;
            if ts < e.4 {
                e.4 = ts;
            }
        }
    }
    exp
}

#[test]
fn iot_sensors_output_matches_the_input_by_value() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipelines = copy_pipelines(tmp.path());
    let exp = expected_from(&pipelines.join("data"));
    assert!(
        exp.per_device.len() >= 3 && !exp.bad_lines.is_empty(),
        "sample data lost its shape"
    );

    let out = run(sluice().arg("run").arg(pipelines.join("iot-sensors.toml")));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("read          {} rows", exp.rows + exp.bad_lines.len() as u64)),
        "{stdout}"
    );

    let root = tmp.path().join("out/iot-sensors");
    let glob = root.join("**").join("*.parquet");
    let got = duckdb(
        &py,
        &format!(
            "select device_id, count(*) as n, min(temperature) as lo, max(temperature) as hi, sum(temperature) as total, \
             strftime(min(event_time), '%Y-%m-%d %H:%M:%S') as first \
             from read_parquet('{}', hive_partitioning = false) group by device_id order by device_id",
            glob.display()
        ),
    );
    assert_eq!(got.len(), exp.per_device.len());
    for (row, (device, (n, lo, hi, total, first))) in got.iter().zip(&exp.per_device) {
        assert_eq!(row["device_id"], Value::from(device.as_str()));
        assert_eq!(row["n"], Value::from(*n), "{device}");
        assert_eq!(row["lo"].as_f64(), Some(*lo), "{device}");
        assert_eq!(row["hi"].as_f64(), Some(*hi), "{device}");
        let sum = row["total"].as_f64().expect("sum");
        assert!((sum - total).abs() < 1e-6 * total.abs(), "{device}: {sum} vs {total}");
        assert_eq!(row["first"], Value::from(first.as_str()), "{device}");
    }

    // Types as the mapping declares them.
    let types = duckdb(
        &py,
        &format!(
            "select column_name, column_type from (describe select * from read_parquet('{}', hive_partitioning = false))",
            glob.display()
        ),
    );
    let types: BTreeMap<String, String> = types
        .iter()
        .map(|r| {
            (
                r["column_name"].as_str().expect("s").to_owned(),
                r["column_type"].as_str().expect("s").to_owned(),
            )
        })
        .collect();
    assert_eq!(types["event_time"], "TIMESTAMP");
    assert_eq!(types["pitch"], "FLOAT");
    assert_eq!(types["count"], "INTEGER");
    assert_eq!(types["is_anomaly"], "BOOLEAN");
    assert_eq!(types["anomaly_score"], "DOUBLE");
    assert!(!types.contains_key("client_id"));

    // Glue's ingest partitions, zero-padded.
    for file in files_under(&root, ".parquet") {
        let rel = file
            .strip_prefix(&root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 5, "{rel}");
        for (part, (key, width)) in parts.iter().zip([
            ("ingest_year", 4),
            ("ingest_month", 2),
            ("ingest_day", 2),
            ("ingest_hour", 2),
        ]) {
            let value = part.strip_prefix(&format!("{key}=")).unwrap_or_else(|| panic!("{rel}"));
            assert!(
                value.len() == width && value.chars().all(|c| c.is_ascii_digit()),
                "{rel}"
            );
        }
    }

    // Every bad line is a dead letter, at its file and line, with a reason and the raw text.
    let letters: Vec<Value> = dead_letters(&root.join("_dead_letter"));
    let mut got_lines: Vec<(String, u64)> = letters
        .iter()
        .map(|l| {
            assert_eq!(l["stage"], "decode");
            assert!(!l["reason"].as_str().expect("reason").is_empty());
            assert!(l["raw"].is_string());
            let file = Path::new(l["source"]["file"].as_str().expect("file"))
                .file_name()
                .expect("n")
                .to_string_lossy()
                .into_owned();
            (file, l["source"]["line"].as_u64().expect("line"))
        })
        .collect();
    got_lines.sort();
    assert_eq!(got_lines, exp.bad_lines);
}

#[test]
fn parallel_workers_keep_input_order_and_deterministic_file_names() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let lines: String = (0..5000)
        .map(|i| format!("{{\"n\":{i},\"v\":{}.25}}\n", i % 13))
        .collect();
    std::fs::write(tmp.path().join("in.ndjson"), lines).expect("input");
    let toml = r#"
[pipeline]
workers = 2
[source]
type = "file"
path = "in.ndjson"
batch_rows = 64
[source.schema]
n = "long"
v = "double"
[[transform]]
name = "odd"
plugin = "filter"
config.predicate = "v > 1"
[sink]
type = "parquet"
path = "out"
target_file_mb = 1
"#;
    std::fs::write(tmp.path().join("p.toml"), toml).expect("pipeline");
    for round in 0..2 {
        let out = run(sluice().arg("run").arg(tmp.path().join("p.toml")));
        assert!(out.status.success());
        let files = files_under(&tmp.path().join("out"), ".parquet");
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().expect("n").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["part-000000000000-0000.parquet"], "round {round}");
        let rows = duckdb(
            &py,
            &format!(
                "select n from read_parquet('{}', file_row_number = true) order by filename, file_row_number",
                tmp.path().join("out/*.parquet").display()
            ),
        );
        let got: Vec<i64> = rows.iter().map(|r| r["n"].as_i64().expect("n")).collect();
        let expected: Vec<i64> = (0..5000).filter(|i| i % 13 >= 1).collect();
        assert_eq!(got, expected, "rows must come out in input order (round {round})");
    }
}

#[test]
fn sensor_spikes_are_flagged_and_normal_walks_are_not() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipelines = copy_pipelines(tmp.path());
    let out = run(sluice().arg("run").arg(pipelines.join("sensors-anomaly.toml")));
    assert!(out.status.success());
    let glob = tmp.path().join("out/sensors-anomaly/*.parquet");
    let rows = duckdb(
        &py,
        &format!(
            "select count(*) filter (where temperature > 35) as spikes,
                    count(*) filter (where temperature > 35 and is_anomaly) as flagged_spikes,
                    count(*) filter (where is_anomaly) as flagged,
                    count(*) as n
             from read_parquet('{}')",
            glob.display()
        ),
    );
    let r = &rows[0];
    let n = |k: &str| r[k].as_u64().expect(k);
    assert!(n("spikes") >= 5, "{r:?}");
    assert_eq!(n("flagged_spikes"), n("spikes"), "every spike is flagged: {r:?}");
    assert!(n("flagged") * 100 < n("n"), "under 1 % of readings flagged: {r:?}");
}

#[test]
fn map_parses_json_strings_into_typed_columns() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    // CloudWatch Logs-like records: each `message` holds a JSON document, as a string.
    let messages = [
        Value::from(
            r#"{"is_save_kinesis": true, "device": "d-1", "value": 21.5, "n": 7, "meta": {"time": "2024-03-01T12:00:00.250Z"}}"#,
        ),
        Value::from(r#"{"device": "d-2", "value": "19", "is_save_kinesis": false, "meta": null}"#),
        Value::Null,
        Value::from("not json at all"),
        Value::from(r#"{"device": "d-5", "value": "abc"}"#),
        Value::from(r#"{"device": "d-6", "n": 2.7}"#),
        Value::from(r#"{"device": "d-7", "meta": {"time": "yesterday"}}"#),
    ];
    let lines: String = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "{}\n",
                serde_json::json!({ "stream": format!("s-{}", i + 1), "message": m })
            )
        })
        .collect();
    std::fs::write(tmp.path().join("in.ndjson"), lines).expect("input");
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(
        &pipeline,
        r#"
[source]
type = "file"
path = "in.ndjson"
[source.schema]
stream = "string"
message = "string"

[[transform]]
name = "parse"
plugin = "map"
[transform.config]
keep_unmapped = true
drop = ["message"]
[[transform.config.json]]
from = "message"
fields = [
  { name = "device", type = "string" },
  { name = "value", type = "double" },
  { name = "n", type = "bigint" },
  { name = "at", path = "meta.time", type = "timestamp", format = "%Y-%m-%dT%H:%M:%S%.fZ" },
  { name = "is_save_kinesis", type = "bool" },
]

[sink]
type = "parquet"
path = "out"
[dead_letter]
path = "dead"
"#,
    )
    .expect("pipeline");
    let out = run(sluice().arg("run").arg(&pipeline));
    assert!(out.status.success());

    let glob = tmp.path().join("out").join("**").join("*.parquet");
    let types = duckdb(
        &py,
        &format!(
            "select column_name, column_type from (describe select * from read_parquet('{}', hive_partitioning = false))",
            glob.display()
        ),
    );
    let types: Vec<(&str, &str)> = types
        .iter()
        .map(|r| {
            (
                r["column_name"].as_str().expect("s"),
                r["column_type"].as_str().expect("s"),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("stream", "VARCHAR"),
            ("device", "VARCHAR"),
            ("value", "DOUBLE"),
            ("n", "BIGINT"),
            ("at", "TIMESTAMP"),
            ("is_save_kinesis", "BOOLEAN"),
        ]
    );
    let rows = duckdb(
        &py,
        &format!(
            "select stream, device, value, n, epoch_us(\"at\") as at_us, is_save_kinesis \
             from read_parquet('{}', hive_partitioning = false) order by stream",
            glob.display()
        ),
    );
    let rows: Vec<Value> = rows.into_iter().map(Value::Object).collect();
    assert_eq!(
        rows,
        [
            serde_json::json!({"stream": "s-1", "device": "d-1", "value": 21.5, "n": 7,
                "at_us": 1_709_294_400_250_000_i64, "is_save_kinesis": true}),
            serde_json::json!({"stream": "s-2", "device": "d-2", "value": 19.0, "n": null,
                "at_us": null, "is_save_kinesis": false}),
            serde_json::json!({"stream": "s-3", "device": null, "value": null, "n": null,
                "at_us": null, "is_save_kinesis": null}),
        ]
    );

    let mut letters: Vec<(String, String, String)> = dead_letters(&tmp.path().join("dead"))
        .iter()
        .map(|l| {
            assert_eq!(l["stage"], "parse", "{l}");
            (
                l["record"]["stream"].as_str().expect("stream").to_owned(),
                l["record"]["message"].as_str().expect("message").to_owned(),
                l["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect();
    letters.sort();
    let expected: Vec<(String, String, String)> = [
        (
            "s-4",
            r#"column "message" is not a JSON object: expected ident at line 1 column 2"#,
        ),
        (
            "s-5",
            r#"column "message" field "value": expected a double, found "abc""#,
        ),
        ("s-6", r#"column "message" field "n": expected a bigint, found 2.7"#),
        (
            "s-7",
            r#"column "message" field "meta.time": expected a timestamp with format "%Y-%m-%dT%H:%M:%S%.fZ", found "yesterday""#,
        ),
    ]
    .iter()
    .map(|(stream, reason)| {
        let i: usize = stream[2..].parse().expect("n");
        let message = messages[i - 1].as_str().expect("a string message").to_owned();
        (stream.to_string(), message, reason.to_string())
    })
    .collect();
    assert_eq!(letters, expected);
}

/// `pipelines/sensors-enriched.toml` (an inferred schema, a map with a derived and a constant
/// column, event-time partitions) by value: every row is one sensor reading of the input,
/// once, with its values; every other sensor line is a dead letter; nothing else is read.
#[test]
fn sensors_enriched_output_matches_the_input_by_value() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pipelines = copy_pipelines(tmp.path());
    // The readings, by (client_id, count, timestamp), from the sensor files only (data/ holds
    // ticks too).
    let mut readings: BTreeMap<(Option<String>, i64, String), f64> = BTreeMap::new();
    let mut lines = 0;
    for file in files_under(&pipelines.join("data"), ".ndjson") {
        if !file
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("sensors-"))
        {
            continue;
        }
        for line in std::fs::read_to_string(&file).expect("read").lines() {
            lines += 1;
            let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            // A reading without a client_id is kept with a null device (the schema is inferred).
            let id = o.get("client_id").and_then(Value::as_str).map(str::to_owned);
            if let (Some(count), Some(t), Some(ts)) = (
                o.get("count").and_then(Value::as_i64),
                o.get("temperature").and_then(Value::as_f64),
                o.get("timestamp").and_then(Value::as_str),
            ) {
                let fresh = readings.insert((id, count, ts.to_owned()), t).is_none();
                assert!(fresh, "the sample data repeats a reading: {line}");
            }
        }
    }
    let out = run(sluice().arg("run").arg(pipelines.join("sensors-enriched.toml")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = tmp.path().join("out/sensors-enriched");
    let rows = duckdb(
        &py,
        &format!(
            "select device_id, count, temperature, temperature_f, site, strftime(event_time, '%Y-%m-%d %H:%M:%S') as t, \
             hour from read_parquet('{}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)",
            root.display()
        ),
    );
    let letters = dead_letters(&root.join("_dead_letter"));
    assert_eq!(
        rows.len() + letters.len(),
        lines,
        "each sensor line is a row or a dead letter"
    );
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        let ts = r["t"].as_str().expect("event time").to_owned();
        let key = (
            r["device_id"].as_str().map(str::to_owned),
            r["count"].as_i64().expect("count"),
            ts.clone(),
        );
        assert!(seen.insert(key.clone()), "{key:?} twice");
        let Some(t) = readings.get(&key) else {
            panic!("a row that is no reading of the input: {r:?}")
        };
        assert_eq!(r["temperature"].as_f64(), Some(*t), "{key:?}");
        let f = r["temperature_f"].as_f64().expect("temperature_f");
        assert!((f - (t * 1.8 + 32.0)).abs() < 1e-9, "{key:?}: {f}");
        assert_eq!(r["site"], "lab-1");
        assert_eq!(r["hour"].as_str(), Some(&ts[11..13]), "{key:?}: partition hour");
    }
    assert!(rows.len() > 4000, "most readings are written: {}", rows.len());
}
