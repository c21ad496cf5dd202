//! `sluice test` and `sluice replay` at the edge: a test case's expectations checked against
//! what the chain made, in words a person reads; recorded records (sample files, dead
//! letters of a past run) gathered for replay.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use serde_json::{Map, Value};

use crate::config::cases::{TestCase, record_lines as lines};
use crate::pipeline::trial::{DeadRecord, Outcome};

/// Rows as JSON objects, nulls written out (so `x = null` can be expected).
pub fn rows_json(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::LineDelimited>(&mut buf);
        for b in batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    buf.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice::<Map<String, Value>>(l).map_err(|e| ArrowError::JsonError(e.to_string())))
        .collect()
}

/// A dead letter's record, shown.
pub fn dead_record_text(record: &DeadRecord) -> String {
    match record {
        DeadRecord::Raw(raw) => String::from_utf8_lossy(raw).into_owned(),
        DeadRecord::Row(row) => rows_json(std::slice::from_ref(row))
            .ok()
            .and_then(|mut r| r.pop())
            .map_or_else(String::new, |m| Value::Object(m).to_string()),
    }
}

/// What is wrong with `outcome` for `case`: nothing when it passes.
pub fn check(case: &TestCase, outcome: &Outcome) -> Result<Vec<String>, ArrowError> {
    let mut problems = Vec::new();
    let rows = rows_json(&outcome.rows)?;
    if let Some(n) = case.expect_rows
        && rows.len() as u64 != n
    {
        problems.push(format!("expected {n} rows, got {}", rows.len()));
    }
    if let Some(expected) = &case.expect {
        compare_rows(expected, &rows, &mut problems);
    }
    compare_dead(case, outcome, &mut problems);
    Ok(problems)
}

fn compare_rows(expected: &[Map<String, Value>], rows: &[Map<String, Value>], problems: &mut Vec<String>) {
    if expected.len() != rows.len() {
        problems.push(format!("expected {} rows, got {}", expected.len(), rows.len()));
    }
    for (i, (want, got)) in expected.iter().zip(rows).enumerate() {
        for (column, value) in want {
            match got.get(column) {
                None => problems.push(format!(
                    "row {}: no column `{column}` (the row has {})",
                    i + 1,
                    got.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                )),
                Some(actual) if !same(value, actual) => {
                    problems.push(format!("row {}: `{column}`: expected {value}, got {actual}", i + 1))
                }
                Some(_) => {}
            }
        }
    }
    for (i, extra) in rows.iter().enumerate().skip(expected.len()).take(5) {
        problems.push(format!(
            "row {} was not expected: {}",
            i + 1,
            Value::Object(extra.clone())
        ));
    }
    for (i, missing) in expected.iter().enumerate().skip(rows.len()).take(5) {
        problems.push(format!("row {} is missing: {}", i + 1, Value::Object(missing.clone())));
    }
}

fn compare_dead(case: &TestCase, outcome: &Outcome, problems: &mut Vec<String>) {
    let expected = &case.expect_dead_letters;
    let got = &outcome.dead;
    let shown = |i: usize| {
        let d = &got[i];
        format!("[{}] {} — {}", d.stage, d.reason, dead_record_text(&d.record))
    };
    if expected.len() != got.len() {
        let mut p = format!("expected {} dead letters, got {}", expected.len(), got.len());
        for i in (0..got.len()).take(5) {
            p.push_str(&format!("\n  dead letter {}: {}", i + 1, shown(i)));
        }
        problems.push(p);
        return;
    }
    for (i, (want, d)) in expected.iter().zip(got).enumerate() {
        if let Some(stage) = &want.stage
            && *stage != d.stage
        {
            problems.push(format!(
                "dead letter {}: expected from stage `{stage}`, got {}",
                i + 1,
                shown(i)
            ));
        }
        if let Some(reason) = &want.reason
            && !d.reason.contains(reason.as_str())
        {
            problems.push(format!(
                "dead letter {}: expected a reason containing {reason:?}, got {}",
                i + 1,
                shown(i)
            ));
        }
    }
}

/// Whether an actual value matches an expected one: numbers as numbers (1 = 1.0, to a
/// relative 1e-9), everything else exactly.
fn same(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => a == b,
        },
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)),
        (Value::Object(a), Value::Object(b)) => a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w))),
        _ => expected == actual,
    }
}

/// A record to replay, and the stage it goes to (`None`: the source's decoder).
pub type Replayed = (Option<String>, Vec<u8>);

/// Records to replay from `path`: the lines of a file of records, or every dead letter
/// under a dead-letter folder (`dlq-*.jsonl`, in name order): a `decode` one gives its raw
/// record back to the decoder, a row one goes back to the stage that refused it.
pub fn replay_input(path: &Path) -> std::io::Result<Vec<Replayed>> {
    if !path.is_dir() {
        let bytes = std::fs::read(path)?;
        return Ok(lines(&bytes).map(|l| (None, l.to_vec())).collect());
    }
    let mut files = Vec::new();
    collect_dead_letter_files(path, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for line in lines(&std::fs::read(&f)?) {
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let stage = v.get("stage").and_then(Value::as_str).unwrap_or("decode");
            if let Some(raw) = v.get("raw_base64").and_then(Value::as_str) {
                use base64::Engine as _;
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(raw) {
                    out.push((None, bytes));
                }
            } else if let Some(raw) = v.get("raw").and_then(Value::as_str) {
                out.push((None, raw.as_bytes().to_vec()));
            } else if let Some(record) = v.get("record") {
                let to = (stage != "decode" && !stage.starts_with("sink ")).then(|| stage.to_owned());
                out.push((to, record.to_string().into_bytes()));
            }
        }
    }
    Ok(out)
}

fn collect_dead_letter_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_dead_letter_files(&path, out)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("dlq-") && n.ends_with(".jsonl"))
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_as_numbers_and_objects_by_the_keys_written() {
        assert!(same(&json!(1), &json!(1.0)));
        assert!(same(&json!(0.1), &json!(0.1 + 1e-12)));
        assert!(!same(&json!(0.1), &json!(0.11)));
        assert!(!same(&json!("1"), &json!(1)));
        assert!(same(&json!({"a": 1}), &json!({"a": 1.0, "b": 2})));
        assert!(!same(&json!({"a": 1}), &json!({"b": 1})));
        assert!(same(&json!(null), &json!(null)));
    }

    #[test]
    fn a_dead_letter_folder_replays_raw_records_to_the_decoder_and_rows_to_their_stage() {
        let dir = tempfile::tempdir().expect("tmp");
        let sub = dir.path().join("ingest_date=2026-01-01");
        std::fs::create_dir_all(&sub).expect("dir");
        std::fs::write(
            sub.join("dlq-part-000000000001-0000.jsonl"),
            concat!(
                r#"{"reason":"bad","stage":"decode","source":{},"raw":"{oops"}"#,
                "\n",
                r#"{"reason":"cold","stage":"warm","source":{},"record":{"t":1}}"#,
                "\n"
            ),
        )
        .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "not a dead letter").expect("write");
        let got = replay_input(dir.path()).expect("read");
        assert_eq!(
            got,
            vec![
                (None, b"{oops".to_vec()),
                (Some("warm".to_owned()), br#"{"t":1}"#.to_vec())
            ]
        );
    }
}
