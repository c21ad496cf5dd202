//! A component that traps or fails on a batch does not take the host down: that batch's rows
//! become dead letters with the reason, and every other batch reaches the output.

use std::path::Path;

use serde_json::Value;

use crate::support::{files_under, run, sluice};

fn write_input(dir: &Path) {
    let mut text = String::new();
    for i in 0..300 {
        let id = if i == 150 {
            "poison".to_owned()
        } else {
            format!("dev-{}", i % 7)
        };
        text.push_str(&format!("{{\"client_id\":\"{id}\",\"temperature\":{}.5}}\n", i % 40));
    }
    std::fs::write(dir.join("in.ndjson"), text).expect("write input");
}

fn pipeline(dir: &Path, mode: &str) -> std::path::PathBuf {
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
client_id = "string"
temperature = "double"
[[transform]]
name = "faulty"
component = "{}"
config = {{ mode = "{mode}", column = "client_id", marker = "poison" }}
[sink]
type = "parquet"
path = "out-{mode}"
"#,
        component.display()
    );
    let path = dir.join(format!("{mode}.toml"));
    std::fs::write(&path, text).expect("write pipeline");
    path
}

fn check(mode: &str, reason_part: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    write_input(tmp.path());
    let out = run(sluice().arg("run").arg(pipeline(tmp.path(), mode)));
    assert!(out.status.success(), "the host must survive a {mode}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("written       200 rows"), "{stdout}");
    let letters: Vec<Value> = files_under(&tmp.path().join(format!("out-{mode}/_dead_letter")), ".jsonl")
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .expect("read")
                .lines()
                .map(|l| serde_json::from_str(l).expect("json"))
                .collect::<Vec<Value>>()
        })
        .collect();
    assert_eq!(letters.len(), 100, "the failing batch's rows are dead letters");
    for l in &letters {
        assert_eq!(l["stage"], "faulty");
        assert!(l["reason"].as_str().expect("reason").contains(reason_part), "{l}");
        assert_eq!(l["source"]["first_line"], 101);
        assert_eq!(l["source"]["last_line"], 200);
        assert!(l["record"]["client_id"].is_string());
    }
    assert!(letters.iter().any(|l| l["record"]["client_id"] == "poison"));
}

#[test]
fn a_trapping_component_loses_only_its_batch_and_is_replaced() {
    check("trap", "trapped");
}

#[test]
fn a_component_error_sends_the_batch_to_dead_letters() {
    check("error", "failed: marker poison seen");
}
