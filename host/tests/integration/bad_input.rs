//! Bad input never changes a value and never stops a pipeline: every kind of value that does
//! not fit its column is a dead letter with its own line and a reason in the user's words,
//! the good rows are written exactly (read back with DuckDB), a partition value too long for
//! a folder is a dead letter rather than a poison record, and a run that writes nothing or
//! exceeds its dead-letter budget exits 3.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::crash::Rng;
use crate::support::{dead_letters, duckdb, python, run, sluice};

const SCHEMA: &str = r#"
[source.schema]
id = { type = "string", nullable = false }
i = "int32"
l = "int64"
f = "float32"
d = "double"
s = "string"
b = "bool"
t = "timestamp"
"#;

/// A pipeline reading `input` with `SCHEMA`, partitioned by `id`, with `extra` in
/// `[pipeline]` and `source_extra` in `[source]`.
fn pipeline(dir: &Path, extra: &str, source_extra: &str) -> std::path::PathBuf {
    let file = dir.join("p.toml");
    std::fs::write(
        &file,
        format!(
            "[pipeline]\nname = \"bad\"\n{extra}\n[source]\ntype = \"file\"\npath = \"in.ndjson\"\n{source_extra}\n{SCHEMA}\n\
             [sink]\ntype = \"parquet\"\npath = \"out\"\npartition = {{ by = \"field\", column = \"id\" }}\n"
        ),
    )
    .expect("write pipeline");
    file
}

/// (line, good?, text): the input of the golden test, one case per line.
fn cases() -> Vec<(&'static str, String)> {
    let long = format!("{{\"id\":\"{}\",\"i\":1}}", "x".repeat(10_000));
    vec![
        ("good", "\u{feff}{\"id\":\"g1\",\"i\":1,\"l\":9007199254740993,\"f\":0.5,\"d\":-0.0025,\"s\":\"x\",\"b\":true,\"t\":\"2026-01-05T10:00:00.25Z\"}".into()),
        ("field i: 2.7 is not an integer", "{\"id\":\"b1\",\"i\":2.7}".into()),
        ("field i: \"3\" is a string, not int32 (coerce = \"lenient\" on the source parses numeric strings)", "{\"id\":\"b2\",\"i\":\"3\"}".into()),
        ("field i: 2147483648 is out of range for int32", "{\"id\":\"b3\",\"i\":2147483648}".into()),
        ("good", "{\"id\":\"g2\",\"i\":-2147483648,\"l\":-9223372036854775808,\"d\":1e308}".into()),
        ("field l: 9223372036854775808 is out of range for int64", "{\"id\":\"b4\",\"l\":9223372036854775808}".into()),
        ("field d: number out of range for float64", "{\"id\":\"b5\",\"d\":1e400}".into()),
        ("field d: number out of range for float64", "{\"id\":\"b6\",\"d\":-1e400}".into()),
        ("field f: 1000000000000000000000000000000000000000 is out of range for float32", "{\"id\":\"b7\",\"f\":1e39}".into()),
        ("", String::new()),
        ("field b: \"true\" is a string, not bool", "{\"id\":\"b8\",\"b\":\"true\"}".into()),
        ("field s: 12 is a number, not string", "{\"id\":\"b9\",\"s\":12}".into()),
        ("field t: 1700000000 is a number, not a timestamp: write it as a string such as \"2026-01-05T10:00:00Z\"", "{\"id\":\"b10\",\"t\":1700000000}".into()),
        ("field t: \"yesterday\" is not a timestamp (expected e.g. \"2026-01-05T10:00:00Z\" or \"2026-01-05 10:00:00\")", "{\"id\":\"b11\",\"t\":\"yesterday\"}".into()),
        ("missing required field id", "{\"i\":5}".into()),
        ("missing required field id", "{\"id\":null,\"i\":5}".into()),
        ("good", "{\"id\":\"g3\",\"i\":2.0,\"s\":\"\\u00e9\\\"q\",\"b\":false}".into()),
        ("field i: an array is not int32", "{\"id\":\"b14\",\"i\":[1]}".into()),
        ("more than one JSON value in the record", "{\"id\":\"b15\"} {\"id\":\"b16\"}".into()),
        ("the record is an array, not a JSON object", "[1,2]".into()),
        ("not valid JSON: ", "{\"id\":\"b17\",".into()),
        ("not valid JSON: ", "{\"id\":\"b18\",\"d\":NaN}".into()),
        ("partition value of id cannot name a folder: ", long),
        ("good", "{\"id\":\"g4\",\"l\":-1,\"f\":-3.25,\"t\":\"2026-01-05 10:00:00\",\"extra\":{\"ignored\":[1,2]}}".into()),
    ]
}

fn write_input(dir: &Path, lines: &[(&str, String)]) {
    let mut text = String::new();
    for (_, line) in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(dir.join("in.ndjson"), text).expect("write input");
}

fn rows(py: &Path, dir: &Path) -> Vec<serde_json::Map<String, Value>> {
    duckdb(
        py,
        &format!(
            "select id, i, l, f, d, s, b, strftime(t, '%Y-%m-%d %H:%M:%S.%f') as t \
             from read_parquet('{}/out/**/*.parquet', hive_partitioning = true) order by id",
            dir.display()
        ),
    )
}

/// (line, reason) of every dead letter, by line.
fn dead(dir: &Path) -> Vec<(u64, String)> {
    let mut found: Vec<(u64, String)> = dead_letters(&dir.join("out/_dead_letter"))
        .iter()
        .map(|d| {
            let line = d["source"]["line"]
                .as_u64()
                .or_else(|| d["source"]["first_line"].as_u64())
                .expect("a line");
            (line, d["reason"].as_str().expect("reason").to_owned())
        })
        .collect();
    found.sort();
    found
}

#[test]
fn every_kind_of_bad_value_is_a_dead_letter_and_no_value_is_changed() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let cases = cases();
    write_input(tmp.path(), &cases);
    let out = run(sluice().arg("run").arg(pipeline(tmp.path(), "", "")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let null = Value::Null;
    let row = |id: &str, i: Value, l: Value, f: Value, d: Value, s: Value, b: Value, t: Value| json!({"id": id, "i": i, "l": l, "f": f, "d": d, "s": s, "b": b, "t": t});
    let expected = vec![
        row(
            "g1",
            json!(1),
            json!(9_007_199_254_740_993_i64),
            json!(0.5),
            json!(-0.0025),
            json!("x"),
            json!(true),
            json!("2026-01-05 10:00:00.250000"),
        ),
        row(
            "g2",
            json!(i32::MIN),
            json!(i64::MIN),
            null.clone(),
            json!(1e308),
            null.clone(),
            null.clone(),
            null.clone(),
        ),
        row(
            "g3",
            json!(2),
            null.clone(),
            null.clone(),
            null.clone(),
            json!("é\"q"),
            json!(false),
            null.clone(),
        ),
        row(
            "g4",
            null.clone(),
            json!(-1),
            json!(-3.25),
            null.clone(),
            null.clone(),
            null.clone(),
            json!("2026-01-05 10:00:00.000000"),
        ),
    ];
    let got: Vec<Value> = rows(&py, tmp.path()).into_iter().map(Value::Object).collect();
    assert_eq!(got, expected);

    let dead = dead(tmp.path());
    let mut want: Vec<(u64, &str)> = cases
        .iter()
        .enumerate()
        .filter(|(_, (why, _))| !why.is_empty() && *why != "good")
        .map(|(n, (why, _))| (n as u64 + 1, *why))
        .collect();
    want.sort();
    // The sink's dead letter names its chunk's first line (rows leave their lines behind in
    // the transforms): here line 1, as the whole file is one chunk.
    let (sink_dead, decode_dead): (Vec<_>, Vec<_>) = dead.iter().partition(|(_, r)| r.starts_with("partition value"));
    let (sink_want, decode_want): (Vec<_>, Vec<_>) = want.iter().partition(|(_, r)| r.starts_with("partition value"));
    assert_eq!(decode_dead.len(), decode_want.len(), "{dead:#?}");
    for ((line, reason), (want_line, want_reason)) in decode_dead.iter().zip(&decode_want) {
        assert_eq!(line, want_line, "{reason}");
        if want_reason.ends_with(": ") {
            assert!(reason.starts_with(want_reason), "line {line}: {reason}");
        } else {
            assert_eq!(reason, want_reason, "line {line}");
        }
    }
    assert_eq!(sink_dead.len(), sink_want.len(), "{dead:#?}");
    assert!(
        sink_dead[0].1.contains("10003 bytes") && sink_dead[0].1.len() < 200,
        "{}",
        sink_dead[0].1
    );
    // No error message echoes the 10 KB value.
    assert!(
        out.stderr.len() + out.stdout.len() < 4000,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A rerun is not poisoned: nothing left to read, nothing fails.
    let again = run(sluice().arg("run").arg(tmp.path().join("p.toml")));
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}

#[test]
fn lenient_coercion_parses_numeric_and_boolean_strings_and_nothing_else() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    write_input(tmp.path(), &cases());
    let out = run(sluice()
        .arg("run")
        .arg(pipeline(tmp.path(), "", "coerce = \"lenient\"")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = rows(&py, tmp.path());
    let by_id = |id: &str| got.iter().find(|r| r["id"] == id).cloned();
    assert_eq!(by_id("b2").map(|r| r["i"].clone()), Some(json!(3)));
    assert_eq!(by_id("b8").map(|r| r["b"].clone()), Some(json!(true)));
    assert_eq!(by_id("b9").map(|r| r["s"].clone()), Some(json!("12")));
    assert_eq!(got.len(), 7, "the four good rows and three coerced ones: {got:#?}");
    assert_eq!(dead(tmp.path()).len(), 16, "{:#?}", dead(tmp.path()));
}

#[test]
fn a_run_that_writes_nothing_or_exceeds_its_budget_exits_3_and_names_the_reason() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    // Every row fails: exit 3 with the reason, and the summary still printed.
    let mut lines = String::new();
    for n in 0..50 {
        writeln!(lines, "{{\"id\":\"a{n}\",\"i\":{n}.5}}").expect("fmt");
    }
    std::fs::write(tmp.path().join("in.ndjson"), &lines).expect("write");
    let out = run(sluice().arg("run").arg(pipeline(tmp.path(), "", "")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("nothing was written and 50 of 50 records read went to dead letters")
            && stderr.contains("50× decode, like: field i: 0.5 is not an integer"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dead letters  50"));
    // Accepted with a budget of 1.
    std::fs::remove_dir_all(tmp.path().join("out")).expect("rm");
    let out = run(sluice()
        .arg("run")
        .arg(pipeline(tmp.path(), "max_dead_letter_ratio = 1", "")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // 20% bad against a 10% budget: the run stops with exit 3 at a checkpoint after 1000
    // records; what it wrote up to there is kept, every row once.
    std::fs::remove_dir_all(tmp.path().join("out")).expect("rm");
    let mut lines = String::new();
    let mut good = 0;
    for n in 0..20_000 {
        if n % 5 == 0 {
            writeln!(lines, "{{\"id\":\"k{}\",\"i\":\"{n}\"}}", n % 7).expect("fmt");
        } else {
            good += 1;
            writeln!(lines, "{{\"id\":\"k{}\",\"i\":{n}}}", n % 7).expect("fmt");
        }
    }
    std::fs::write(tmp.path().join("in.ndjson"), &lines).expect("write");
    let file = pipeline(tmp.path(), "max_dead_letter_ratio = 0.1", "batch_rows = 500");
    let text = std::fs::read_to_string(&file).expect("read") + "[checkpoint]\ninterval = \"10ms\"\n";
    std::fs::write(&file, text).expect("write");
    let out = run(sluice().arg("run").arg(&file));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("too many dead letters") && stderr.contains("more than max_dead_letter_ratio = 0.1"),
        "{stderr}"
    );
    let written = duckdb(
        &py,
        &format!(
            "select count(*) as n, count(distinct i) as d, min(i) as lo from read_parquet('{}/out/**/*.parquet')",
            tmp.path().display()
        ),
    );
    let n = written[0]["n"].as_u64().expect("n");
    assert!(n > 0 && n < good, "stopped early, having written some: {n}");
    assert_eq!(written[0]["d"], json!(n), "no row twice");
    assert_eq!(written[0]["lo"], json!(1));
}

#[test]
fn an_mqtt_source_that_never_connects_stops_with_the_cause_and_variables_fill_the_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let file = tmp.path().join("m.toml");
    std::fs::write(
        &file,
        "[source]\ntype = \"mqtt\"\nurl = \"${SLUICE_TEST_BROKER:-mqtt://nowhere.invalid:1}\"\ntopics = [\"t/#\"]\n\
         username = \"u\"\npassword = \"${SLUICE_TEST_SECRET}\"\nconnect_attempts = 3\n\
         [source.schema]\nid = \"string\"\n[sink]\ntype = \"parquet\"\npath = \"out\"\n",
    )
    .expect("write");
    // An unset variable with no default is refused at its line, by name.
    let out = run(sluice().arg("validate").arg(&file).env_remove("SLUICE_TEST_SECRET"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("m.toml:6:") && stderr.contains("environment variable SLUICE_TEST_SECRET is not set"),
        "{stderr}"
    );
    let started = std::time::Instant::now();
    let out = run(sluice()
        .arg("run")
        .arg(&file)
        .env("SLUICE_TEST_BROKER", format!("mqtt://127.0.0.1:{port}"))
        .env("SLUICE_TEST_SECRET", "hunter2-secret"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to mqtt://127.0.0.1:{port}")) && stderr.contains("3 attempts"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "a secret in the output: {stderr}");
    // Three attempts back off 100 ms then 200 ms: well under the default's minute.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn every_bad_kind_mixed_into_100k_good_records_leaves_every_good_value_bit_for_bit() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let seed = std::env::var("SLUICE_BAD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x05ee_dbad_u64);
    let mut rng = Rng(seed | 1);
    // Every bad kind of the golden test, by its line (they carry no `n`).
    let bad: Vec<String> = cases()
        .into_iter()
        .filter(|(why, _)| !why.is_empty() && *why != "good")
        .map(|(_, line)| line)
        .collect();
    let mut text = String::new();
    let mut good: Vec<(u64, u64)> = Vec::new(); // (n, bits of d)
    let mut bad_lines = Vec::new();
    let mut line = 0u64;
    while good.len() < 100_000 {
        line += 1;
        if rng.below(50) == 0 {
            let b = &bad[rng.below(bad.len() as u64) as usize];
            text.push_str(b.trim_start_matches('\u{feff}'));
            bad_lines.push(line);
        } else {
            let n = good.len() as u64;
            // Any finite double, from its bits, written in Rust's shortest round-trip form.
            let d = loop {
                let d = f64::from_bits(rng.next());
                if d.is_finite() {
                    break d;
                }
            };
            good.push((n, d.to_bits()));
            write!(text, "{{\"id\":\"k{}\",\"i\":{},\"d\":{d:?}}}", n % 5, n).expect("fmt");
        }
        text.push('\n');
    }
    std::fs::write(tmp.path().join("in.ndjson"), &text).expect("write");
    let out = run(sluice()
        .arg("run")
        .arg(pipeline(tmp.path(), "", "batch_rows = 4096"))
        .env("SLUICE_LOG", "error"));
    assert!(
        out.status.success(),
        "seed {seed}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = duckdb(
        &py,
        &format!(
            "select i as n, d from read_parquet('{}/out/**/*.parquet') order by i",
            tmp.path().display()
        ),
    );
    assert_eq!(rows.len(), good.len(), "seed {seed}: every good record once");
    for (row, (n, bits)) in rows.iter().zip(&good) {
        assert_eq!(row["n"], json!(n), "seed {seed}");
        let d = row["d"].as_f64().expect("a double");
        assert_eq!(
            d.to_bits(),
            *bits,
            "seed {seed}: record {n}: {d:?} is not {:?}",
            f64::from_bits(*bits)
        );
    }
    let dead = dead(tmp.path());
    let decode_dead: Vec<u64> = dead
        .iter()
        .filter(|(_, r)| !r.starts_with("partition value"))
        .map(|(l, _)| *l)
        .collect();
    assert!(dead.iter().all(|(_, r)| !r.is_empty()));
    assert_eq!(
        dead.len(),
        bad_lines.len(),
        "seed {seed}: every bad record a dead letter"
    );
    assert!(decode_dead.iter().all(|l| bad_lines.contains(l)), "seed {seed}");
}
