//! The protocol's decisions, without I/O: every kind of partial state a crash can leave.

use std::time::{Duration, Instant};

use super::model::*;
use super::protocol::*;

fn checkpoint(outputs: Vec<OutputFile>) -> Checkpoint {
    Checkpoint {
        format: FORMAT_VERSION,
        sluice_version: "test".into(),
        epoch: 7,
        pipeline: "p".into(),
        source: "file:/in".into(),
        position: SourcePosition::default(),
        finished: false,
        stateful_stages: vec!["count".into()],
        states: vec![StageState {
            stage: "count".into(),
            component: "abc".into(),
            format_version: 1,
            data: vec![1, 2, 3],
        }],
        watermarks: Vec::new(),
        outputs,
        totals: Totals::default(),
    }
}

fn file(path: &str, state: FileState) -> OutputFile {
    OutputFile {
        root: "sink".into(),
        path: path.into(),
        state,
        upload: None,
    }
}

const OPEN: FileState = FileState::Open {
    len: 100,
    journal_len: 40,
};

#[test]
fn barriers_come_once_per_interval() {
    let t0 = Instant::now();
    let mut clock = BarrierClock::new(Duration::from_secs(1), t0);
    assert!(!clock.due(t0 + Duration::from_millis(999)));
    assert!(clock.due(t0 + Duration::from_millis(1000)));
    assert!(!clock.due(t0 + Duration::from_millis(1500)));
    assert!(clock.due(t0 + Duration::from_millis(2100)));
}

#[test]
fn temporary_names_are_hidden_beside_the_final_name() {
    assert_eq!(temp_path("a=1/part-1.parquet"), "a=1/.part-1.parquet.inprogress");
    assert_eq!(journal_path("part-1.parquet"), ".part-1.parquet.inprogress.meta");
    assert!(is_temporary(".part-1.parquet.inprogress"));
    assert!(is_temporary(".part-1.parquet.inprogress.meta"));
    assert!(!is_temporary("part-1.parquet"));
    assert!(!is_temporary(".checkpoint-1.json.tmp"));
}

#[test]
fn a_sealed_file_under_its_temporary_name_is_renamed() {
    let cp = checkpoint(vec![file("x.parquet", FileState::Sealed)]);
    let actions = recover_outputs(&cp, |_| Probe {
        temp_len: Some(10),
        ..Probe::default()
    })
    .expect("recover");
    assert_eq!(actions, vec![Action::Rename(file("x.parquet", FileState::Sealed))]);
}

#[test]
fn a_file_already_in_place_needs_nothing() {
    // The crash came after the post-checkpoint rename, or during an earlier recovery.
    for state in [FileState::Sealed, OPEN] {
        let cp = checkpoint(vec![file("x.parquet", state)]);
        let actions = recover_outputs(&cp, |_| Probe {
            in_place: true,
            ..Probe::default()
        })
        .expect("recover");
        assert_eq!(actions, vec![Action::Nothing(file("x.parquet", state))]);
    }
}

#[test]
fn an_open_file_that_grew_after_the_checkpoint_is_cut_back_and_sealed() {
    let cp = checkpoint(vec![file("x.parquet", OPEN)]);
    for (temp_len, journal_len) in [(100, 40), (5000, 400)] {
        let actions = recover_outputs(&cp, |_| Probe {
            temp_len: Some(temp_len),
            journal_len: Some(journal_len),
            in_place: false,
        })
        .expect("recover");
        assert_eq!(
            actions,
            vec![Action::Seal {
                file: file("x.parquet", OPEN),
                len: 100,
                journal_len: 40
            }]
        );
    }
}

#[test]
fn a_file_shorter_than_recorded_or_missing_is_refused() {
    let cp = checkpoint(vec![file("x.parquet", OPEN)]);
    let short = recover_outputs(&cp, |_| Probe {
        temp_len: Some(99),
        journal_len: Some(40),
        in_place: false,
    });
    assert!(
        matches!(
            short,
            Err(Refusal::Short {
                have: 99,
                need: 100,
                ..
            })
        ),
        "{short:?}"
    );
    let short_journal = recover_outputs(&cp, |_| Probe {
        temp_len: Some(100),
        journal_len: None,
        in_place: false,
    });
    assert!(matches!(short_journal, Err(Refusal::Short { have: 0, need: 40, .. })));
    let lost = recover_outputs(&cp, |_| Probe::default());
    assert!(matches!(lost, Err(Refusal::Lost { epoch: 7, .. })));
    let msg = lost.expect_err("lost").to_string();
    assert!(msg.contains("x.parquet") && msg.contains("--from-scratch"), "{msg}");
}

#[test]
fn temporaries_the_checkpoint_does_not_list_are_leftovers() {
    let cp = checkpoint(vec![file("d/a.parquet", OPEN)]);
    let found = vec![
        ("sink".to_owned(), "d/.a.parquet.inprogress".to_owned()),
        ("sink".to_owned(), "d/.a.parquet.inprogress.meta".to_owned()),
        ("sink".to_owned(), "d/.b.parquet.inprogress".to_owned()),
        ("dead_letter".to_owned(), "d/.a.parquet.inprogress".to_owned()),
    ];
    assert_eq!(
        leftovers(Some(&cp), found.clone()),
        vec![found[2].clone(), found[3].clone()]
    );
    assert_eq!(leftovers(None, found.clone()), found);
}

#[test]
fn a_checkpoint_is_applied_only_to_its_own_source() {
    let cp = checkpoint(vec![]);
    assert_eq!(check_source(&cp, "file:/in"), Ok(()));
    let err = check_source(&cp, "file:/other").expect_err("other source");
    let msg = err.to_string();
    assert!(
        msg.contains("file:/in") && msg.contains("file:/other") && msg.contains("--from-scratch"),
        "{msg}"
    );
}

fn stage(name: &str, stateful: bool) -> StageIdentity {
    StageIdentity {
        name: name.into(),
        stateful,
    }
}

#[test]
fn states_go_to_the_stateful_stage_of_the_same_name() {
    let cp = checkpoint(vec![]);
    let states = assign_states(
        &cp,
        &[stage("map", false), stage("count", true)],
        &ReloadChanges::default(),
    )
    .expect("assign");
    assert_eq!(states.len(), 2);
    assert_eq!(states[0], None);
    assert_eq!(states[1].as_ref().map(|s| s.data.clone()), Some(vec![1, 2, 3]));
}

#[test]
fn state_without_a_stage_or_a_stage_without_state_is_refused() {
    let cp = checkpoint(vec![]);
    assert_eq!(
        assign_states(&cp, &[stage("renamed", true)], &ReloadChanges::default()),
        Err(Refusal::OrphanState { stage: "count".into() })
    );
    assert_eq!(
        assign_states(&cp, &[stage("count", false)], &ReloadChanges::default()),
        Err(Refusal::OrphanState { stage: "count".into() })
    );
    assert_eq!(
        assign_states(
            &cp,
            &[stage("count", true), stage("new", true)],
            &ReloadChanges::default()
        ),
        Err(Refusal::MissingState { stage: "new".into() })
    );
    // A stateful stage that had nothing to save is fine.
    let mut empty = checkpoint(vec![]);
    empty.states.clear();
    assert_eq!(
        assign_states(&empty, &[stage("count", true)], &ReloadChanges::default()),
        Ok(vec![None])
    );
}

#[test]
fn a_reload_that_adds_or_removes_a_stateful_stage_starts_it_empty_or_drops_its_state() {
    let cp = checkpoint(vec![]);
    let added = ReloadChanges {
        added: vec!["new".into()],
        ..ReloadChanges::default()
    };
    let states = assign_states(&cp, &[stage("count", true), stage("new", true)], &added).expect("added");
    assert_eq!(states[1], None);
    assert!(states[0].is_some());
    let removed = ReloadChanges {
        removed: vec!["count".into()],
        ..ReloadChanges::default()
    };
    assert_eq!(assign_states(&cp, &[stage("map", false)], &removed), Ok(vec![None]));
    // What the reload did not name is still refused.
    assert_eq!(
        assign_states(&cp, &[stage("other", true)], &added),
        Err(Refusal::OrphanState { stage: "count".into() })
    );
}

#[test]
fn epochs_follow_the_latest_and_formats_are_checked() {
    assert_eq!(next_epoch(None), 1);
    let cp = checkpoint(vec![file("a.parquet", OPEN), file("b.parquet", FileState::Sealed)]);
    assert_eq!(next_epoch(Some(&cp)), 8);
    let bytes = cp.to_bytes();
    assert_eq!(Checkpoint::from_bytes(&bytes), Ok(cp));
    let other =
        String::from_utf8(bytes)
            .expect("utf8")
            .replacen(&format!("\"format\": {FORMAT_VERSION}"), "\"format\": 99", 1);
    let err = Checkpoint::from_bytes(other.as_bytes()).expect_err("format 99");
    assert!(
        err.contains("format 99") && err.contains("written by sluice test"),
        "{err}"
    );
    assert!(Checkpoint::from_bytes(b"{\"format\": 1").is_err());
}
