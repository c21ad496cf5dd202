//! Late data (FL-05, FL-09): what is late, where it goes, re-firing within the allowed
//! lateness, and state being forgotten.

use super::*;

fn tumbling_5s(lateness: &str) -> String {
    config(&format!(
        r#""window":{{"type":"tumbling","size":"5s"}},"aggregates":[{{"fn":"count","as":"n"}}],"allowed_lateness":"{lateness}""#
    ))
}

fn late(ms: i64) -> (Option<i64>, String) {
    (Some(ms), "late".to_owned())
}

#[test]
fn fl09_without_lateness_a_late_row_goes_to_rejected_and_never_to_the_next_window() {
    open(&tumbling_5s("0s"), &trades_schema());
    process(&at("A", &[1_000]));
    assert_eq!(watermark(4_999_999).main, strings(["0..5000 1"]));
    let out = process(&at("A", &[4_000, 5_000]));
    assert_eq!(out.rejected, [late(4_000)]);
    assert!(out.main.is_empty());
    assert_eq!(finish().main, strings(["5000..10000 1"]));
}

#[test]
fn fl09_a_row_exactly_at_the_watermark_is_late_and_one_just_after_is_not() {
    open(&tumbling_5s("0s"), &trades_schema());
    assert_eq!(watermark(3_000_000), Out::default());
    let out = process(&at("A", &[3_000, 3_001]));
    assert_eq!(out.rejected, [late(3_000)]);
    assert_eq!(finish().main, strings(["0..5000 1"]));
}

#[test]
fn fl09_with_allowed_lateness_a_late_row_refires_its_window_with_the_updated_result() {
    open(&tumbling_5s("60s"), &trades_schema());
    process(&at("A", &[1_000]));
    assert_eq!(watermark(4_999_999).main, strings(["0..5000 1"]));
    // Late, but within the lateness: the window fires again from `process`.
    let out = process(&at("A", &[4_000, 2_000]));
    assert_eq!(
        out,
        Out {
            main: strings(["0..5000 3"]),
            rejected: vec![]
        }
    );
    assert_eq!(
        watermark_ms(30_000),
        Out::default(),
        "unchanged windows do not fire again"
    );
    assert_eq!(held_windows(), 1);
    // A row is late once time + lateness ≤ watermark.
    watermark(63_999_999);
    assert_eq!(process(&at("A", &[4_000])).main, strings(["0..5000 4"]));
    assert_eq!(process(&at("A", &[3_999])).rejected, [late(3_999)]);
    // The window is kept until its cleanup time, end − 1 + lateness = 64 999 999 µs.
    watermark(64_999_998);
    assert_eq!(held_windows(), 1);
    watermark(64_999_999);
    assert_eq!(held_windows(), 0);
    let out = process(&at("A", &[4_999]));
    assert_eq!(
        out,
        Out {
            main: vec![],
            rejected: vec![late(4_999)]
        }
    );
}

#[test]
fn fl09_late_rows_for_a_window_that_never_fired_just_join_it() {
    open(&tumbling_5s("10s"), &trades_schema());
    process(&at("A", &[6_000]));
    watermark_ms(8_000);
    // 1 s + 10 s > 8 s: on time for [0, 5 s), which is due at once.
    assert_eq!(process(&at("A", &[1_000])).main, strings(["0..5000 1"]));
    assert_eq!(watermark(9_999_999).main, strings(["5000..10000 1"]));
}

#[test]
fn fl09_a_late_row_within_lateness_can_merge_a_fired_session() {
    let config = config(
        r#""window":{"type":"session","gap":"10s"},"aggregates":[{"fn":"count","as":"n"}],"allowed_lateness":"1m""#,
    );
    open(&config, &trades_schema());
    process(&at("A", &[0, 25_000]));
    assert_eq!(watermark(9_999_999).main, strings(["0..10000 1"]));
    let out = process(&at("A", &[12_000]));
    assert!(
        out.main.is_empty(),
        "[12 s, 22 s) touches neither session: {:?}",
        out.main
    );
    let out = process(&at("A", &[2_000, 15_000]));
    // 2 s joins the fired [0, 10 s) with [12 s, 22 s); 15 s bridges that to [25 s, 35 s).
    // The merged session is not due yet.
    assert!(out.main.is_empty(), "{:?}", out.main);
    assert_eq!(watermark_ms(40_000).main, strings(["0..35000 5"]));
    // Within the lateness, a row extending a fired session re-fires the merged session.
    assert_eq!(process(&at("A", &[30_000])).main, strings(["0..40000 6"]));
    assert_eq!(finish(), Out::default());
}

#[test]
fn rows_without_event_time_are_rejected_and_the_rest_are_kept() {
    open(&tumbling_5s("0s"), &trades_schema());
    let batch = trades(&[
        (Some(1_000), Some("A"), None, None),
        (None, Some("B"), None, None),
        (Some(2_000), Some("A"), None, None),
    ]);
    let out = process(&batch);
    assert_eq!(out.rejected, [(None, "null event time".to_owned())]);
    assert_eq!(finish().main, strings(["0..5000 2"]));
}

#[test]
fn no_row_is_dropped_silently() {
    open(&tumbling_5s("0s"), &trades_schema());
    let mut counted = 0;
    let mut rejected = 0;
    let mut wm = 0;
    for round in 0..20i64 {
        let times: Vec<i64> = (0..50).map(|i| round * 1_000 + i * 97 - 3_000).collect();
        let out = process(&at("A", &times));
        rejected += out.rejected.len();
        wm += 1_500;
        let fired = watermark_ms(wm);
        counted += fired
            .main
            .iter()
            .map(|r| r.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
            .sum::<usize>();
    }
    counted += finish()
        .main
        .iter()
        .map(|r| r.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum::<usize>();
    assert!(rejected > 0 && counted > 0, "{rejected} rejected, {counted} counted");
    assert_eq!(counted + rejected, 20 * 50);
}

#[test]
fn state_stays_bounded_as_the_watermark_advances() {
    let config = config(
        r#""window":{"type":"hopping","size":"10s","slide":"1s"},"group_by":["ticker"],"aggregates":[{"fn":"count","as":"n"}],"allowed_lateness":"2s""#,
    );
    open(&config, &trades_schema());
    let mut most = 0;
    for second in 0..200 {
        let t = second * 1_000;
        process(&at(if second % 2 == 0 { "A" } else { "B" }, &[t, t + 500]));
        watermark_ms(t + 400);
        most = most.max(held_windows());
    }
    // Windows still open or within lateness: those ending after wm + 1 µs − 2 s.
    assert!(most <= 14, "held up to {most} windows");
    finish();
    assert_eq!(held_windows(), 0);
}
