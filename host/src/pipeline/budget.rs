//! The dead-letter budget: when a run has sent so much to dead letters that going on would
//! only hide a broken input or pipeline, and when a run that wrote nothing must not pass for
//! a success. Pure decisions on counts; the writer asks at each checkpoint and at the end.

use crate::sink::dead_letter::ReasonCount;

/// Records a run reads before a budget is applied at a checkpoint: the first few records
/// say little about the share (at the end of a run the budget applies whatever the count).
pub const MIN_RECORDS: u64 = 1000;

/// Counts of this run so far.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// Records read (decoded or not).
    pub read: u64,
    /// Rows or records written by any sink.
    pub written: u64,
    /// Dead letters.
    pub dead: u64,
}

/// What the counts say.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go on.
    Fine,
    /// More dead letters than `max_dead_letter_ratio` allows: stop.
    OverBudget {
        /// The share of records read that became dead letters.
        ratio: f64,
        /// The budget.
        limit: f64,
    },
    /// With no budget set, a finished run that read records, wrote nothing and sent records
    /// to dead letters: fail rather than exit 0.
    NothingWritten,
}

/// Judge `counts` against `limit` (`max_dead_letter_ratio`), mid-run or `at_end`.
pub fn judge(limit: Option<f64>, counts: Counts, at_end: bool) -> Verdict {
    match limit {
        Some(limit) if counts.read > 0 && (at_end || counts.read >= MIN_RECORDS) => {
            let ratio = counts.dead as f64 / counts.read as f64;
            if ratio > limit {
                Verdict::OverBudget { ratio, limit }
            } else {
                Verdict::Fine
            }
        }
        None if at_end && counts.written == 0 && counts.dead > 0 => Verdict::NothingWritten,
        _ => Verdict::Fine,
    }
}

/// The message for a verdict other than [`Verdict::Fine`], naming the top reasons.
pub fn message(verdict: &Verdict, counts: Counts, top: &[ReasonCount]) -> String {
    let head = match verdict {
        Verdict::OverBudget { ratio, limit } => format!(
            "too many dead letters: {} of {} records read ({:.1}%), more than max_dead_letter_ratio = {limit}",
            counts.dead,
            counts.read,
            ratio * 100.0
        ),
        Verdict::NothingWritten => format!(
            "nothing was written and {} of {} records read went to dead letters (set [pipeline] max_dead_letter_ratio = 1 to accept this)",
            counts.dead, counts.read
        ),
        Verdict::Fine => String::new(),
    };
    let reasons: Vec<String> = top.iter().map(show).collect();
    if reasons.is_empty() {
        head
    } else {
        format!("{head}; most common reasons: {}", reasons.join("; "))
    }
}

/// `500× decode, like: field count: 2.7 is not an integer` (the first of its kind).
pub fn show(r: &ReasonCount) -> String {
    if r.example.is_empty() {
        format!("{}× {}: {}", r.count, r.stage, r.kind)
    } else if r.count == 1 {
        format!("1× {}: {}", r.stage, r.example)
    } else {
        format!("{}× {}, like: {}", r.count, r.stage, r.example)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(read: u64, written: u64, dead: u64) -> Counts {
        Counts { read, written, dead }
    }

    #[test]
    fn a_budget_applies_after_enough_records_mid_run_and_always_at_the_end() {
        let over = |v: Verdict| matches!(v, Verdict::OverBudget { .. });
        assert_eq!(judge(Some(0.1), counts(999, 0, 500), false), Verdict::Fine);
        assert!(over(judge(Some(0.1), counts(1000, 0, 101), false)));
        assert_eq!(
            judge(Some(0.1), counts(1000, 900, 100), false),
            Verdict::Fine,
            "exactly the limit is allowed"
        );
        assert!(over(judge(Some(0.1), counts(10, 8, 2), true)));
        assert_eq!(judge(Some(0.0), counts(10, 10, 0), true), Verdict::Fine);
        assert_eq!(
            judge(Some(1.0), counts(10, 0, 10), true),
            Verdict::Fine,
            "a budget of 1 accepts all"
        );
    }

    #[test]
    fn without_a_budget_only_a_run_that_wrote_nothing_but_dead_letters_fails() {
        assert_eq!(judge(None, counts(5000, 0, 5000), true), Verdict::NothingWritten);
        assert_eq!(judge(None, counts(5000, 0, 5000), false), Verdict::Fine);
        assert_eq!(judge(None, counts(5000, 1, 4999), true), Verdict::Fine);
        assert_eq!(
            judge(None, counts(5000, 0, 0), true),
            Verdict::Fine,
            "a filter may drop everything"
        );
        assert_eq!(judge(None, counts(0, 0, 0), true), Verdict::Fine);
    }

    #[test]
    fn the_message_names_the_counts_and_the_top_reasons() {
        let top = [ReasonCount {
            stage: "decode".into(),
            kind: "field count: … is not an integer".into(),
            count: 500,
            example: "field count: 2.7 is not an integer".into(),
        }];
        let m = message(
            &Verdict::OverBudget { ratio: 0.5, limit: 0.1 },
            counts(1000, 500, 500),
            &top,
        );
        assert_eq!(
            m,
            "too many dead letters: 500 of 1000 records read (50.0%), more than max_dead_letter_ratio = 0.1; most common reasons: 500× decode, like: field count: 2.7 is not an integer"
        );
    }
}
