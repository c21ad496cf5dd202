//! Every dead letter names its own record, whatever stage refused it: rows rejected by a
//! transform after a filter dropped others and decoding refused some lines, late rows of a
//! window, and rows a sink could not place. The expected line and byte offset of each
//! record come from the text the test wrote, not from sluice; the dead letters are read as
//! plain JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::{dead_letters, run, sluice};

/// A generated input: its text, and the (line, offset) of each record by id.
struct Input {
    text: String,
    at: BTreeMap<u64, (u64, u64)>,
}

impl Input {
    fn new() -> Self {
        Input {
            text: String::new(),
            at: BTreeMap::new(),
        }
    }

    fn line(&mut self, id: Option<u64>, line: &str) {
        let number = self.text.lines().count() as u64 + 1;
        if let Some(id) = id {
            self.at.insert(id, (number, self.text.len() as u64));
        }
        self.text.push_str(line);
        self.text.push('\n');
    }
}

/// (stage, id, line, offset, reason) of every dead letter with a record id, by id.
fn named(dir: &Path) -> Vec<(String, u64, Value, Value, String)> {
    let mut found: Vec<_> = dead_letters(&dir.join("out/_dead_letter"))
        .iter()
        .filter_map(|d| {
            let id = d["record"]["id"].as_u64()?;
            Some((
                d["stage"].as_str().expect("stage").to_owned(),
                id,
                d["source"]["line"].clone(),
                d["source"]["offset"].clone(),
                d["reason"].as_str().expect("reason").to_owned(),
            ))
        })
        .collect();
    found.sort_by_key(|f| f.1);
    found
}

#[test]
fn rejected_rows_and_sink_misfits_name_their_own_line_after_a_filter_and_bad_lines() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut input = Input::new();
    let mut rejected = Vec::new();
    let mut misfit = Vec::new();
    for id in 0..2500u64 {
        if id % 97 == 5 {
            // Refused by the decoder: later rows are no longer at their line's index.
            input.line(None, "{\"id\": not json");
        }
        let keep = id % 3 != 0;
        let n = if id % 41 == 7 {
            "\"n/a\"".to_owned()
        } else {
            format!("\"{}\"", id * 2)
        };
        let zone = if id % 401 == 11 {
            "z".repeat(300)
        } else {
            format!("zone-{}", id % 4)
        };
        if keep && id % 41 == 7 {
            rejected.push(id);
        } else if keep && id % 401 == 11 {
            misfit.push(id);
        }
        input.line(
            Some(id),
            &format!("{{\"id\":{id},\"keep\":{keep},\"n\":{n},\"zone\":\"{zone}\"}}"),
        );
    }
    std::fs::write(tmp.path().join("in.ndjson"), &input.text).expect("write input");
    let pipeline = r#"
[pipeline]
workers = 2
[source]
type = "file"
path = "in.ndjson"
batch_rows = 500
[source.schema]
id = "long"
keep = "boolean"
n = "string"
zone = "string"
[[transform]]
name = "kept"
plugin = "filter"
config.predicate = "keep = true"
[[transform]]
name = "mapping"
plugin = "map"
[transform.config]
mappings = [ { from = "id" }, { from = "n", type = "int" }, { from = "zone" } ]
[sink]
type = "parquet"
path = "out"
partition = { by = "field", column = "zone" }
"#;
    std::fs::write(tmp.path().join("p.toml"), pipeline).expect("write pipeline");
    let out = run(sluice().arg("run").arg(tmp.path().join("p.toml")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let found = named(tmp.path());
    let mut want: Vec<(u64, &str)> = rejected
        .iter()
        .map(|id| (*id, "mapping"))
        .chain(misfit.iter().map(|id| (*id, "sink sink")))
        .collect();
    want.sort();
    let got: Vec<(u64, &str)> = found.iter().map(|f| (f.1, f.0.as_str())).collect();
    assert_eq!(got, want, "exactly the rejected and misfit records, each once");
    for (stage, id, line, offset, reason) in &found {
        let (want_line, want_offset) = input.at[id];
        assert_eq!(
            line,
            &Value::from(want_line),
            "{stage} dead letter of id {id}: {reason}"
        );
        assert_eq!(offset, &Value::from(want_offset), "{stage} dead letter of id {id}");
    }
}

#[test]
fn late_rows_of_a_window_name_their_own_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut input = Input::new();
    let mut late = Vec::new();
    for id in 0..1200u64 {
        // One tick a second; from the third batch on, every 37th tick is an hour old.
        let old = id >= 400 && id % 37 == 0;
        let secs = if old { id } else { 7200 + id };
        let price = if id % 5 == 0 { -1.0 } else { 10.0 + (id % 7) as f64 };
        if old && price > 0.0 {
            late.push(id);
        }
        let hh = secs / 3600;
        let mm = secs / 60 % 60;
        let ss = secs % 60;
        input.line(
            Some(id),
            &format!("{{\"id\":{id},\"event_time\":\"2026-01-05T{hh:02}:{mm:02}:{ss:02}Z\",\"ticker\":\"T{}\",\"price\":{price}}}", id % 3),
        );
    }
    std::fs::write(tmp.path().join("in.ndjson"), &input.text).expect("write input");
    let pipeline = r#"
[source]
type = "file"
path = "in.ndjson"
batch_rows = 100
[source.schema]
id = "long"
event_time = { type = "timestamp", nullable = false }
ticker = "string"
price = "double"
[[transform]]
name = "priced"
plugin = "filter"
config.predicate = "price > 0"
[[transform]]
name = "per-minute"
plugin = "window"
watermark = { column = "event_time", max_out_of_orderness = "5s" }
[transform.config]
time_column = "event_time"
window = { type = "tumbling", size = "1m" }
group_by = ["ticker"]
aggregates = [ { fn = "count", as = "ticks" } ]
[sink]
type = "parquet"
path = "out"
"#;
    std::fs::write(tmp.path().join("p.toml"), pipeline).expect("write pipeline");
    let out = run(sluice().arg("run").arg(tmp.path().join("p.toml")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let found = named(tmp.path());
    let ids: Vec<u64> = found.iter().map(|f| f.1).collect();
    assert_eq!(ids, late, "every late tick that passed the filter, once");
    for (stage, id, line, offset, reason) in &found {
        assert_eq!(stage, "per-minute");
        assert_eq!(reason, "late");
        let (want_line, want_offset) = input.at[id];
        assert_eq!(line, &Value::from(want_line), "late tick {id}");
        assert_eq!(offset, &Value::from(want_offset), "late tick {id}");
    }
}
