//! Hostile and broken components never take the host down. With the default
//! `on_error = "dead_letter"` the failing batch is bisected so only the guilty row becomes a
//! dead letter, with the reason; every other row reaches the output. `skip_batch`, `halt`
//! and quarantine behave as documented, and the sandbox gives a component nothing to reach.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{dead_letters, files_under, run, sluice, written_seqs};

/// 300 rows in batches of 100; row 150 (line 151, second batch) is the poison.
fn write_input(dir: &Path) {
    std::fs::write(dir.join("in.ndjson"), input_text()).expect("write input");
}

fn input_text() -> String {
    let mut text = String::new();
    for i in 0..300 {
        let id = if i == 150 {
            "poison".to_owned()
        } else {
            format!("dev-{}", i % 7)
        };
        text.push_str(&format!(
            "{{\"seq\":{i},\"client_id\":\"{id}\",\"temperature\":{}.5}}\n",
            i % 40
        ));
    }
    text
}

fn pipeline(dir: &Path, mode: &str, marker: &str, extra: &str) -> PathBuf {
    let component = Path::new(env!("SLUICE_PLUGIN_DIR")).join("sluice_test_faulty.wasm");
    let text = format!(
        r#"
[pipeline]
workers = 2
[source]
type = "file"
path = "in.ndjson"
batch_rows = 100
[source.schema]
seq = "long"
client_id = "string"
temperature = "double"
[[transform]]
name = "faulty"
component = "{}"
config = {{ mode = "{mode}", column = "client_id", marker = "{marker}" }}
{extra}
[sink]
type = "parquet"
path = "out"
"#,
        component.display()
    );
    let path = dir.join("p.toml");
    std::fs::write(&path, text).expect("write pipeline");
    path
}

struct Outcome {
    out: Output,
    /// The `seq` of every row in the Parquet output, read by DuckDB, in order.
    written: Vec<i64>,
    letters: Vec<Value>,
}

/// `0..300` without `missing`.
fn all_but(missing: impl Fn(i64) -> bool) -> Vec<i64> {
    (0..300).filter(|s| !missing(*s)).collect()
}

fn run_hostile(mode: &str, marker: &str, extra: &str) -> Outcome {
    let tmp = tempfile::tempdir().expect("tmp");
    write_input(tmp.path());
    let out = run(sluice().arg("run").arg(pipeline(tmp.path(), mode, marker, extra)));
    let written = written_seqs(&tmp.path().join("out"));
    let letters = dead_letters(&tmp.path().join("out/_dead_letter"));
    Outcome { out, written, letters }
}

/// Only the poison row is a dead letter, with a reason naming `reason_part`; 299 rows out.
fn only_the_poison_row_is_lost(mode: &str, reason_part: &str, extra: &str) {
    let o = run_hostile(mode, "poison", extra);
    assert!(o.out.status.success(), "the host must survive `{mode}`");
    assert_eq!(
        o.written,
        all_but(|s| s == 150),
        "every other row reaches the output, once"
    );
    assert_eq!(o.letters.len(), 1, "{:?}", o.letters);
    let l = &o.letters[0];
    assert_eq!(l["stage"], "faulty");
    assert_eq!(l["record"]["client_id"], "poison");
    assert!(l["reason"].as_str().expect("reason").contains(reason_part), "{l}");
    assert!(
        l["reason"].as_str().expect("reason").contains("component sha256"),
        "{l}"
    );
    // The dead letter names its own record, found by bisecting its batch (lines 101..200).
    let text = input_text();
    let poison = text.find("\"poison\"").expect("the poison record");
    let offset = text[..poison].rfind('\n').map_or(0, |nl| nl + 1) as u64;
    assert_eq!(l["source"]["line"], 151, "{l}");
    assert_eq!(l["source"]["offset"].as_u64(), Some(offset), "{l}");
    assert!(
        l["source"]["file"].as_str().is_some_and(|f| f.ends_with("in.ndjson")),
        "{l}"
    );
}

#[test]
fn a_trap_on_one_record_loses_only_that_record() {
    only_the_poison_row_is_lost("trap", "trapped", "");
}

#[test]
fn an_error_on_one_record_loses_only_that_record() {
    only_the_poison_row_is_lost("error", "failed: marker poison seen", "");
}

#[test]
fn allocating_without_bound_hits_the_memory_cap_and_loses_only_that_record() {
    only_the_poison_row_is_lost("alloc", "trapped", "limits = { memory_mb = 64 }");
}

#[test]
fn a_stack_overflow_loses_only_that_record() {
    only_the_poison_row_is_lost("stack", "trapped", "");
}

#[test]
fn bytes_that_are_not_arrow_are_a_contract_breach() {
    only_the_poison_row_is_lost("malformed", "broke the contract: unreadable Arrow IPC", "");
}

#[test]
fn a_batch_of_the_wrong_schema_is_a_contract_breach() {
    only_the_poison_row_is_lost("wrong_schema", "broke the contract", "");
}

#[test]
fn unbounded_amplification_is_refused() {
    only_the_poison_row_is_lost("amplify", "over the limit", "");
}

#[test]
fn a_fuel_budget_stops_an_infinite_loop_deterministically_and_loses_only_that_record() {
    // Fuel, unlike the deadline, fails the same call on every machine, so bisection is safe.
    only_the_poison_row_is_lost(
        "loop",
        "used up its fuel budget of 50000000 units",
        "limits = { fuel = 50_000_000 }",
    );
}

#[test]
fn an_infinite_loop_is_interrupted_and_its_batch_dead_lettered() {
    let o = run_hostile("loop", "poison", "limits = { timeout_ms = 300 }");
    assert!(o.out.status.success());
    assert_eq!(
        o.written,
        all_but(|s| (100..200).contains(&s)),
        "the other batches reach the output"
    );
    assert_eq!(
        o.letters.len(),
        100,
        "a timeout is not bisected: the batch is dead-lettered"
    );
    assert!(
        o.letters
            .iter()
            .all(|l| l["reason"].as_str().expect("r").contains("ran past its deadline"))
    );
}

#[test]
fn skip_batch_dead_letters_the_whole_batch() {
    let o = run_hostile("error", "poison", "on_error = \"skip_batch\"");
    assert!(o.out.status.success());
    assert_eq!(o.written, all_but(|s| (100..200).contains(&s)));
    assert_eq!(o.letters.len(), 100);
    assert!(o.letters.iter().any(|l| l["record"]["client_id"] == "poison"));
}

#[test]
fn halt_stops_the_pipeline_with_an_error_naming_the_stage() {
    let o = run_hostile("trap", "poison", "on_error = \"halt\"");
    assert_eq!(o.out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.out.stderr);
    assert!(
        stderr.contains("stage `faulty` (on_error = \"halt\") trapped"),
        "{stderr}"
    );
}

#[test]
fn a_component_failing_every_batch_is_quarantined_not_retried_forever() {
    let o = run_hostile("error", "*", "quarantine_after = 2");
    assert_eq!(o.out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.out.stderr);
    assert!(
        stderr.contains("stage `faulty` quarantined: its last 2 batches failed entirely"),
        "{stderr}"
    );
}

#[test]
fn the_sandbox_gives_no_filesystem_environment_or_clock() {
    let o = run_hostile("probe", "poison", "on_error = \"skip_batch\"");
    assert!(o.out.status.success());
    let reason = o.letters[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("fs=denied"), "{reason}");
    assert!(reason.contains("env=denied"), "{reason}");
    assert!(reason.contains("clock=0"), "{reason}");
}

#[test]
fn a_component_importing_the_network_is_refused_naming_the_import() {
    let tmp = tempfile::tempdir().expect("tmp");
    write_input(tmp.path());
    let component = Path::new(env!("SLUICE_PLUGIN_DIR")).join("sluice_test_netprobe.wasm");
    let text = format!(
        "[source]\ntype = \"file\"\npath = \"in.ndjson\"\n\n[[transform]]\nname = \"probe\"\ncomponent = \"{}\"\n\n[sink]\ntype = \"parquet\"\npath = \"out\"\n",
        component.display()
    );
    std::fs::write(tmp.path().join("p.toml"), text).expect("pipeline");
    let out = run(sluice().arg("validate").arg(tmp.path().join("p.toml")));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("p.toml:7:13: `transform[0].component`"), "{stderr}");
    assert!(stderr.contains("imports `wasi:sockets/"), "{stderr}");
    assert!(
        stderr.contains("(network), which this pipeline does not grant"),
        "{stderr}"
    );
}

#[test]
fn a_hostile_pipeline_does_not_disturb_a_healthy_one_in_the_same_process() {
    let hostile_dir = tempfile::tempdir().expect("tmp");
    let healthy_dir = tempfile::tempdir().expect("tmp");
    write_input(hostile_dir.path());
    write_input(healthy_dir.path());
    // The hostile one traps on every batch until it is quarantined; the healthy one uses the
    // same component on a marker that never occurs.
    let hostile = pipeline(hostile_dir.path(), "trap", "*", "quarantine_after = 2");
    let healthy = pipeline(healthy_dir.path(), "trap", "never-seen", "");
    let out = run(sluice().arg("run").arg(&hostile).arg(&healthy));
    assert_eq!(out.status.code(), Some(1), "the hostile pipeline's failure is reported");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stage `faulty` quarantined"), "{stderr}");
    assert_eq!(
        written_seqs(&healthy_dir.path().join("out")),
        all_but(|_| false),
        "the healthy pipeline wrote everything"
    );
    assert_eq!(
        files_under(&healthy_dir.path().join("out/_dead_letter"), ".jsonl").len(),
        0
    );
}

#[test]
fn a_stateful_transform_that_traps_resumes_from_its_state_before_the_failed_batch() {
    let Some(python) = crate::support::python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    write_input(tmp.path());
    let counter = Path::new(env!("SLUICE_PLUGIN_DIR")).join("sluice_test_counter.wasm");
    let text = format!(
        r#"
[source]
type = "file"
path = "in.ndjson"
batch_rows = 100
[source.schema]
seq = "long"
client_id = "string"
temperature = "double"
[[transform]]
name = "count"
component = "{}"
config = {{ key = "client_id", trap_on = "poison" }}
[sink]
type = "parquet"
path = "out"
"#,
        counter.display()
    );
    let pipeline = tmp.path().join("p.toml");
    std::fs::write(&pipeline, text).expect("write pipeline");
    let out = run(sluice().arg("run").arg(&pipeline));
    assert!(out.status.success());
    // The whole failed batch (a stateful stage is not bisected) is dead-lettered ...
    let letters = dead_letters(&tmp.path().join("out/_dead_letter"));
    assert_eq!(letters.len(), 100);
    assert!(letters.iter().all(|l| l["stage"] == "count"));
    // ... and leaves no trace in the state: the counts go on from before it, with no gap
    // (its rows counted) and no restart from zero (state lost).
    let glob = tmp.path().join("out/*.parquet");
    let rows = crate::support::duckdb(
        &python,
        &format!(
            "select client_id, count(*) as n, max(seen) as m, count(distinct seen) as d from '{}' group by 1 order by 1",
            glob.display()
        ),
    );
    assert_eq!(rows.iter().map(|r| r["n"].as_u64().expect("n")).sum::<u64>(), 200);
    for r in &rows {
        assert_eq!(r["n"], r["m"], "{r:?}");
        assert_eq!(r["n"], r["d"], "{r:?}");
    }
}
