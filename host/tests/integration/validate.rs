//! `sluice validate`: golden bad pipeline files (`tests/ui/*.toml` → `*.err`), and the
//! example pipelines type-check. Set `SLUICE_BLESS=1` to rewrite the `.err` files.

use crate::support::{run, sluice, workspace};

#[test]
fn every_broken_pipeline_file_gets_its_golden_message_and_exit_code_2() {
    let ui = workspace().join("host/tests/ui");
    let mut cases: Vec<_> = std::fs::read_dir(&ui)
        .expect("tests/ui")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "expected the golden cases, found {cases:?}");
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    assert!(
        !(bless && std::env::var("CI").as_deref() == Ok("true")),
        "SLUICE_BLESS rewrites the golden files: never under CI=true"
    );
    let mut failures = Vec::new();
    for case in cases {
        let name = case.file_name().expect("name").to_string_lossy().into_owned();
        let out = run(sluice().current_dir(&ui).args(["validate", &name]));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let expected_path = case.with_extension("err");
        if bless {
            std::fs::write(&expected_path, &stderr).expect("bless");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if out.status.code() != Some(2) || stderr != expected {
            failures.push(format!(
                "{name}: exit {:?}\n--- expected\n{expected}--- got\n{stderr}",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_example_pipelines_validate_without_reading_data() {
    for entry in std::fs::read_dir(workspace().join("pipelines")).expect("pipelines") {
        let path = entry.expect("entry").path();
        // Pipelines only: `<stem>.test.toml` holds a pipeline's test cases (`sluice test`).
        if path.extension().is_none_or(|e| e != "toml") || path.to_string_lossy().ends_with(".test.toml") {
            continue;
        }
        let out = run(sluice().arg("validate").arg(&path));
        assert!(out.status.success(), "{} does not validate", path.display());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("is valid"), "{stdout}");
    }
}
