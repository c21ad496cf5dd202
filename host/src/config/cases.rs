//! `[[test]]` tables: the test cases `sluice test` runs through a pipeline's chain, written in
//! the pipeline file or beside it in `<stem>.test.toml` (which holds only `[[test]]` tables).
//!
//! ```toml
//! [[test]]
//! name = "cold readings are dropped"
//! input = ['{"client_id":"a","temperature":30.5}', { client_id = "b", temperature = 10.0 }]
//! expect = [{ device_id = "a", temperature = 30.5 }]   # rows reaching the sinks, in order
//! expect_dead_letters = [{ stage = "decode", reason = "expected a number" }]
//! ```

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use toml::de::DeTable;

use super::diagnostic::{ConfigErrors, Diags, SourceMap};
use super::plugin_config::value_to_json;
use super::reader::{Located, Table, describe};
use super::{ConfigError, resolve};

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    /// `name` (default `test <n>`).
    pub name: String,
    /// Where it was written (`file:line`), for reports.
    pub at: String,
    /// `stage`: the transform the records are fed to (default: the first, through the
    /// source's decoder; a later stage gets them decoded into its own input schema).
    pub stage: Option<Located<String>>,
    /// `input` (JSON text or inline tables) or the lines of `input_file`: the records.
    pub input: Vec<Vec<u8>>,
    /// `expect`: the rows that reach the end of the chain, in order; only the columns a row
    /// names are compared.
    pub expect: Option<Vec<Map<String, Value>>>,
    /// `expect_rows`: how many rows reach the end of the chain.
    pub expect_rows: Option<u64>,
    /// `expect_dead_letters`: every dead letter, in order (`stage`, and `reason` as a part of
    /// the reason). Absent means none.
    pub expect_dead_letters: Vec<ExpectedDeadLetter>,
}

/// A dead letter a test expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedDeadLetter {
    /// The stage that sent it (`decode` for records that could not be decoded).
    pub stage: Option<String>,
    /// A part of its reason.
    pub reason: Option<String>,
}

/// Read every `[[test]]` table of `top`.
pub(crate) fn read_tests(top: &mut Table<'_, '_>, d: &mut Diags, base: &Path, map: &SourceMap) -> Vec<TestCase> {
    let mut cases = Vec::new();
    for (i, mut t) in top.opt_tables(d, "test").into_iter().enumerate() {
        if let Some(case) = read_case(&mut t, d, base, map, i) {
            cases.push(case);
        }
        t.finish(d);
    }
    cases
}

fn read_case(t: &mut Table<'_, '_>, d: &mut Diags, base: &Path, map: &SourceMap, i: usize) -> Option<TestCase> {
    let name = t
        .opt_str(d, "name")
        .map_or_else(|| format!("test {}", i + 1), |n| n.value);
    let stage = t.opt_str(d, "stage");
    let input_key = t.child_key("input");
    let inline = t.raw("input").and_then(|raw| match value_to_json(raw, &input_key, d)? {
        Value::Array(items) => Some(items.into_iter().map(record_bytes).collect::<Vec<_>>()),
        _ => {
            d.push(
                raw.span(),
                &input_key,
                format!(
                    "expected an array of records (JSON strings or inline tables), found {}",
                    describe(raw.get_ref())
                ),
            );
            None
        }
    });
    let file = t.opt_str(d, "input_file");
    let input = match (inline, file) {
        (Some(_), Some(f)) => {
            d.push(f.span, &f.key, "give `input` or `input_file`, not both");
            return None;
        }
        (Some(records), None) => records,
        (None, Some(f)) => {
            let path = resolve(base, &f.value);
            match std::fs::read(&path) {
                Ok(bytes) => record_lines(&bytes).map(<[u8]>::to_vec).collect(),
                Err(e) => {
                    d.push(f.span, &f.key, format!("cannot read {}: {e}", path.display()));
                    return None;
                }
            }
        }
        (None, None) => {
            d.push(
                t.span(),
                t.key(),
                "missing key `input`: expected the records to feed (or `input_file`)",
            );
            return None;
        }
    };
    let expect_key = t.child_key("expect");
    let expect = match t.raw("expect") {
        None => None,
        Some(raw) => match value_to_json(raw, &expect_key, d)? {
            Value::Array(rows) if rows.iter().all(Value::is_object) => Some(
                rows.into_iter()
                    .filter_map(|r| match r {
                        Value::Object(m) => Some(m),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => {
                d.push(
                    raw.span(),
                    &expect_key,
                    format!(
                        "expected an array of rows as inline tables, found {}",
                        describe(raw.get_ref())
                    ),
                );
                return None;
            }
        },
    };
    let expect_rows = t.opt_uint(d, "expect_rows", 0..=u64::MAX).map(|n| n.value);
    let mut expect_dead_letters = Vec::new();
    for mut dl in t.opt_tables(d, "expect_dead_letters") {
        expect_dead_letters.push(ExpectedDeadLetter {
            stage: dl.opt_str(d, "stage").map(|s| s.value),
            reason: dl.opt_str(d, "reason").map(|s| s.value),
        });
        dl.finish(d);
    }
    let (line, _) = map.locate(t.span().start);
    Some(TestCase {
        name,
        at: format!("{}:{line}", map.path().display()),
        stage,
        input,
        expect,
        expect_rows,
        expect_dead_letters,
    })
}

/// The records of a file of one record per line: `\r\n` ends taken off, blank lines skipped.
pub fn record_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
}

/// A record as the source would deliver it: a string is the record's text, anything else
/// is written as JSON.
fn record_bytes(v: Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

/// `<dir>/<stem>.test.toml` beside a pipeline file.
pub fn tests_file(pipeline: &Path) -> PathBuf {
    let stem = pipeline
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    pipeline.with_file_name(format!("{stem}.test.toml"))
}

/// The test cases of `<stem>.test.toml` beside `pipeline`, if that file exists.
pub fn load_tests_beside(pipeline: &Path) -> Result<Vec<TestCase>, ConfigError> {
    let path = tests_file(pipeline);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(ConfigError::Read { path, error }),
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let map = SourceMap::new(&path, &text);
    let mut d = Diags::default();
    let (root, syntax) = DeTable::parse_recoverable(&text);
    for err in syntax {
        d.push(
            err.span().unwrap_or(0..0),
            "",
            format!("invalid TOML: {}", err.message().trim()),
        );
    }
    if !d.0.is_empty() {
        return Err(ConfigErrors::new(map, d.0).into());
    }
    let mut top = Table::new(root.get_ref(), root.span(), "");
    let cases = read_tests(&mut top, &mut d, &base, &map);
    top.finish(&mut d);
    if d.0.is_empty() {
        Ok(cases)
    } else {
        Err(ConfigErrors::new(map, d.0).into())
    }
}
