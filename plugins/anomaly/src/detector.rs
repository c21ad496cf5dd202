//! The statistics of one series and the verdict on one value: pure arithmetic, no Arrow.
//!
//! A value is judged against the statistics *before* it, then (unless it is an anomaly and
//! anomalies do not update) folded into them. Its score is `|x − mean| / stddev`; with
//! `stddev = 0` the score is null when `x = mean` and `+inf` (an anomaly) otherwise. The
//! first value of a series has no statistics to be judged against and is never scored, nor
//! are the first `warmup` values.
//!
//! When anomalies do not update the statistics, `reset_after` anomalies in a row are taken
//! as a level shift: the series starts afresh from the last of them, warm-up included.
//! Without this, one value past the threshold on a drifting series freezes the statistics
//! while the series walks on, and every later value is flagged until it happens to return.
//!
//! - EWMA, the standard incremental form: `diff = x − mean; incr = alpha·diff;
//!   mean += incr; var = (1 − alpha)·(var + diff·incr)`, starting at `mean = x, var = 0`.
//! - z-score: mean and *population* standard deviation (divide by n) of the last `window`
//!   values, kept by Welford's updates (add, or replace the oldest) and recomputed exactly
//!   from the window each time it has been entirely replaced, so rounding cannot drift.

use std::collections::VecDeque;

/// The estimator and its parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimator {
    /// Exponentially weighted mean and variance with this smoothing factor, in (0, 1].
    Ewma { alpha: f64 },
    /// The last `window` values (≥ 2).
    ZScore { window: usize },
}

/// How values are judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detector {
    pub estimator: Estimator,
    /// A score at or above this is an anomaly.
    pub threshold: f64,
    /// The first `warmup` values of a series are never scored.
    pub warmup: u64,
    /// Whether an anomalous value updates the statistics.
    pub update_on_anomaly: bool,
    /// Consecutive anomalies, not folded in, after which a series starts afresh; 0 = never.
    pub reset_after: u32,
}

/// The verdict on one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// `|x − mean| / stddev`; null while warming up or when undefined.
    pub score: Option<f64>,
    pub anomaly: bool,
}

impl Verdict {
    /// Not scored, not an anomaly.
    pub const NONE: Verdict = Verdict {
        score: None,
        anomaly: false,
    };
}

/// What is known about one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Values judged so far (saturating); only compared with `warmup`.
    pub seen: u64,
    /// Anomalies in a row that were not folded into the statistics.
    pub run: u32,
    pub stats: Stats,
}

/// The running statistics of a series, of its detector's estimator.
#[derive(Debug, Clone, PartialEq)]
pub enum Stats {
    Ewma(Ewma),
    Rolling(Rolling),
}

/// EWMA state; `None` before the first value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ewma {
    pub moments: Option<Moments>,
}

/// An exponentially weighted mean and variance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub mean: f64,
    pub var: f64,
}

/// The last values of a series and their running mean and sum of squared deviations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rolling {
    /// Oldest first; never longer than the window.
    pub values: VecDeque<f64>,
    pub mean: f64,
    /// Sum of squared deviations from `mean`.
    pub m2: f64,
    /// Replacements since `mean` and `m2` were last computed exactly from `values`.
    pub since_exact: usize,
}

impl Detector {
    /// Empty statistics for a new series.
    pub fn new_series(&self) -> Series {
        let stats = match self.estimator {
            Estimator::Ewma { .. } => Stats::Ewma(Ewma::default()),
            Estimator::ZScore { .. } => Stats::Rolling(Rolling::default()),
        };
        Series { seen: 0, run: 0, stats }
    }

    /// Judge `x` (finite) against `series`, then update `series`.
    pub fn observe(&self, series: &mut Series, x: f64) -> Verdict {
        let warm = series.seen >= self.warmup;
        series.seen = series.seen.saturating_add(1);
        let verdict = match series.stats.mean_std() {
            Some((mean, std)) if warm => judge(x, mean, std, self.threshold),
            _ => Verdict::NONE,
        };
        if !verdict.anomaly || self.update_on_anomaly {
            series.run = 0;
            series.stats.update(x, self.estimator);
        } else {
            series.run = series.run.saturating_add(1);
            if self.reset_after > 0 && series.run >= self.reset_after {
                // A level shift: start afresh from `x`.
                *series = self.new_series();
                series.seen = 1;
                series.stats.update(x, self.estimator);
            }
        }
        verdict
    }
}

/// The verdict on `x` given the mean and standard deviation before it.
pub fn judge(x: f64, mean: f64, std: f64, threshold: f64) -> Verdict {
    let deviation = (x - mean).abs();
    let score = if std == 0.0 {
        if deviation == 0.0 {
            return Verdict::NONE;
        }
        f64::INFINITY
    } else {
        deviation / std
    };
    if score.is_nan() {
        // Statistics overflowed (values near f64::MAX): nothing meaningful to say.
        return Verdict::NONE;
    }
    Verdict {
        score: Some(score),
        anomaly: score >= threshold,
    }
}

impl Stats {
    /// The mean and standard deviation, once there is at least one value.
    pub fn mean_std(&self) -> Option<(f64, f64)> {
        match self {
            Stats::Ewma(e) => e.moments.map(|m| (m.mean, m.var.max(0.0).sqrt())),
            Stats::Rolling(r) => r.mean_std(),
        }
    }

    /// Fold `x` in. The estimator matches the statistics' kind (both come from one plan).
    pub fn update(&mut self, x: f64, estimator: Estimator) {
        match (self, estimator) {
            (Stats::Ewma(e), Estimator::Ewma { alpha }) => e.update(x, alpha),
            (Stats::Rolling(r), Estimator::ZScore { window }) => r.update(x, window),
            // Invariant: a series is created and restored by the plan's estimator only.
            _ => {}
        }
    }
}

impl Ewma {
    fn update(&mut self, x: f64, alpha: f64) {
        self.moments = Some(match self.moments {
            None => Moments { mean: x, var: 0.0 },
            Some(Moments { mean, var }) => {
                let diff = x - mean;
                let incr = alpha * diff;
                Moments {
                    mean: mean + incr,
                    var: (1.0 - alpha) * (var + diff * incr),
                }
            }
        });
    }
}

impl Rolling {
    fn mean_std(&self) -> Option<(f64, f64)> {
        if self.values.is_empty() {
            return None;
        }
        let var = (self.m2 / self.values.len() as f64).max(0.0);
        Some((self.mean, var.sqrt()))
    }

    fn update(&mut self, x: f64, window: usize) {
        if self.values.len() < window {
            self.values.push_back(x);
            let delta = x - self.mean;
            self.mean += delta / self.values.len() as f64;
            self.m2 += delta * (x - self.mean);
            return;
        }
        let Some(oldest) = self.values.pop_front() else {
            // Invariant: window ≥ 2, so a full window is not empty.
            return;
        };
        self.values.push_back(x);
        let old_mean = self.mean;
        self.mean = old_mean + (x - oldest) / self.values.len() as f64;
        self.m2 += (x - oldest) * (x - self.mean + oldest - old_mean);
        self.since_exact += 1;
        if self.since_exact >= window {
            self.recompute();
        }
    }

    /// Two-pass mean and squared deviations of `values`.
    fn recompute(&mut self) {
        let n = self.values.len() as f64;
        self.mean = self.values.iter().sum::<f64>() / n;
        self.m2 = self.values.iter().map(|v| (v - self.mean) * (v - self.mean)).sum();
        self.since_exact = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(estimator: Estimator, warmup: u64) -> Detector {
        Detector {
            estimator,
            threshold: 4.0,
            warmup,
            update_on_anomaly: false,
            reset_after: 0,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn ewma_follows_the_incremental_form_by_hand() {
        // alpha = 0.5: 10 → (10, 0); 12 → diff 2, incr 1 → (11, 0.5·(0 + 2)) = (11, 1);
        // 14 → diff 3, incr 1.5 → (12.5, 0.5·(1 + 4.5)) = (12.5, 2.75).
        let mut e = Ewma::default();
        e.update(10.0, 0.5);
        assert_eq!(e.moments, Some(Moments { mean: 10.0, var: 0.0 }));
        e.update(12.0, 0.5);
        assert_eq!(e.moments, Some(Moments { mean: 11.0, var: 1.0 }));
        e.update(14.0, 0.5);
        assert_eq!(e.moments, Some(Moments { mean: 12.5, var: 2.75 }));
    }

    #[test]
    fn alpha_one_forgets_everything_but_the_last_value() {
        let mut e = Ewma::default();
        for x in [3.0, 8.0, -2.0] {
            e.update(x, 1.0);
        }
        assert_eq!(e.moments, Some(Moments { mean: -2.0, var: 0.0 }));
    }

    #[test]
    fn rolling_statistics_by_hand_while_filling_and_sliding() {
        let mut r = Rolling::default();
        assert_eq!(r.mean_std(), None);
        r.update(2.0, 3);
        assert_eq!(r.mean_std(), Some((2.0, 0.0)));
        r.update(4.0, 3);
        assert_eq!(r.mean_std(), Some((3.0, 1.0)));
        r.update(9.0, 3);
        // [2, 4, 9]: mean 5, squared deviations 9 + 1 + 16 = 26.
        let (mean, std) = r.mean_std().unwrap();
        assert!(close(mean, 5.0) && close(std, (26.0f64 / 3.0).sqrt()), "{mean} {std}");
        r.update(5.0, 3);
        // [4, 9, 5]: mean 6, squared deviations 4 + 9 + 1 = 14.
        let (mean, std) = r.mean_std().unwrap();
        assert!(close(mean, 6.0) && close(std, (14.0f64 / 3.0).sqrt()), "{mean} {std}");
        assert_eq!(r.values, [4.0, 9.0, 5.0]);
    }

    #[test]
    fn rolling_statistics_match_a_two_pass_computation_over_a_long_run() {
        let window = 7;
        let mut r = Rolling::default();
        let mut all = Vec::new();
        let mut x = 1e6;
        for i in 0..1000u32 {
            x += f64::from(i % 13) * 0.37 - 2.0;
            all.push(x);
            r.update(x, window);
            let tail = &all[all.len().saturating_sub(window)..];
            let mean = tail.iter().sum::<f64>() / tail.len() as f64;
            let var = tail.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / tail.len() as f64;
            let (m, s) = r.mean_std().unwrap();
            assert!((m - mean).abs() < 1e-6, "step {i}: mean {m} vs {mean}");
            assert!((s - var.sqrt()).abs() < 1e-6, "step {i}: std {s} vs {}", var.sqrt());
        }
    }

    #[test]
    fn scores_are_deviations_in_standard_deviations_and_the_threshold_is_inclusive() {
        assert_eq!(
            judge(14.0, 10.0, 1.0, 4.0),
            Verdict {
                score: Some(4.0),
                anomaly: true
            }
        );
        assert_eq!(
            judge(6.0, 10.0, 2.0, 2.0),
            Verdict {
                score: Some(2.0),
                anomaly: true
            }
        );
        let below = judge(13.999, 10.0, 1.0, 4.0);
        assert!(!below.anomaly && below.score.unwrap() < 4.0);
    }

    #[test]
    fn a_zero_standard_deviation_gives_no_score_or_an_infinite_one() {
        assert_eq!(judge(5.0, 5.0, 0.0, 4.0), Verdict::NONE);
        assert_eq!(
            judge(5.5, 5.0, 0.0, 4.0),
            Verdict {
                score: Some(f64::INFINITY),
                anomaly: true
            }
        );
        assert_eq!(judge(1.0, f64::INFINITY, f64::INFINITY, 4.0), Verdict::NONE);
    }

    #[test]
    fn the_first_value_and_the_warmup_are_never_scored() {
        let d = detector(Estimator::Ewma { alpha: 0.5 }, 0);
        let mut s = d.new_series();
        assert_eq!(d.observe(&mut s, 100.0), Verdict::NONE, "no statistics yet");
        assert_eq!(d.observe(&mut s, 100.0), Verdict::NONE, "stddev 0, equal to the mean");

        let d = detector(Estimator::Ewma { alpha: 0.5 }, 3);
        let mut s = d.new_series();
        for x in [1.0, 1.0, 50.0] {
            assert_eq!(d.observe(&mut s, x), Verdict::NONE);
        }
        // mean 25.5, var 0.5·(0 + 49·24.5) = 600.25, std 24.5: |1 − 25.5| / 24.5 = 1.
        assert_eq!(d.observe(&mut s, 1.0).score, Some(1.0));
    }

    #[test]
    fn anomalies_update_the_statistics_only_when_asked() {
        for update in [false, true] {
            let d = Detector {
                update_on_anomaly: update,
                ..detector(Estimator::Ewma { alpha: 0.5 }, 2)
            };
            let mut s = d.new_series();
            d.observe(&mut s, 10.0);
            d.observe(&mut s, 12.0);
            // mean 11, std 1: 20 scores 9.
            assert_eq!(
                d.observe(&mut s, 20.0),
                Verdict {
                    score: Some(9.0),
                    anomaly: true
                }
            );
            let expected = if update {
                // diff 9, incr 4.5 → mean 15.5, var 0.5·(1 + 40.5) = 20.75.
                Moments { mean: 15.5, var: 20.75 }
            } else {
                Moments { mean: 11.0, var: 1.0 }
            };
            assert_eq!(
                s.stats,
                Stats::Ewma(Ewma {
                    moments: Some(expected)
                })
            );
            assert_eq!(s.seen, 3);
        }
    }

    #[test]
    fn a_run_of_anomalies_restarts_the_series_from_the_last_of_them() {
        let d = Detector {
            reset_after: 3,
            ..detector(Estimator::Ewma { alpha: 0.5 }, 2)
        };
        let mut s = d.new_series();
        for x in [10.0, 12.0, 30.0, 11.0, 30.0, 30.0] {
            d.observe(&mut s, x);
        }
        assert_eq!(s.run, 2, "the normal 11 broke the first run");
        assert_eq!(
            s.stats,
            Stats::Ewma(Ewma {
                moments: Some(Moments { mean: 11.0, var: 0.5 })
            })
        );
        assert!(d.observe(&mut s, 31.0).anomaly, "the third in a row is still flagged");
        assert_eq!(
            s,
            Series {
                seen: 1,
                run: 0,
                stats: Stats::Ewma(Ewma {
                    moments: Some(Moments { mean: 31.0, var: 0.0 })
                })
            }
        );
        assert_eq!(d.observe(&mut s, 30.0), Verdict::NONE, "warming up again");

        let never = Detector { reset_after: 0, ..d };
        let mut s = never.new_series();
        for x in [10.0, 12.0].into_iter().chain([30.0; 50]) {
            never.observe(&mut s, x);
        }
        assert_eq!(s.run, 50);
        assert!(never.observe(&mut s, 30.0).anomaly);
    }
}
