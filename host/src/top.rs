//! `sluice top PIPELINE.toml`: a running pipeline at a glance, redrawn every second (Vector's
//! `vector top` is the model): what it reads and how fast, each stage's rows in and out per
//! second, batches and time inside its component, each sink's output, dead letters by stage,
//! the last checkpoint, partitions with their positions and lag, and the last reload. It
//! reads the status the pipeline serves (`sluice status`), so it needs nothing else running;
//! rates are the difference between two readings.

use std::fmt::Write as _;
use std::time::Duration;

use crate::pipeline::reload::status::Status;

/// One reading of the status, and when it was taken (milliseconds since the epoch).
#[derive(Debug, Clone)]
pub struct Reading {
    /// The status.
    pub status: Status,
    /// When.
    pub at_ms: i64,
}

fn per_second(now: u64, before: u64, seconds: f64) -> String {
    if seconds <= 0.0 {
        return "-".to_owned();
    }
    format!("{:.0}", now.saturating_sub(before) as f64 / seconds)
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One screen: `now`, with rates against `before` when there is one.
pub fn render(before: Option<&Reading>, now: &Reading) -> String {
    let s = &now.status;
    let f = &s.flow;
    let seconds = before.map_or(0.0, |b| (now.at_ms - b.at_ms) as f64 / 1e3);
    let prev = before.map(|b| &b.status);
    let mut out = String::new();
    let up = (now.at_ms - f.since_ms).max(0) as f64 / 1e3;
    let _ = writeln!(
        out,
        "sluice top: {} (pid {}), generation {}, running {:.0} s        Ctrl-C quits",
        s.pipeline, s.pid, s.generation, up
    );
    let read_rate = prev.map_or("-".to_owned(), |p| per_second(f.rows_read, p.flow.rows_read, seconds));
    let _ = writeln!(
        out,
        "read    {} rows ({:.1} MB), {read_rate} rows/s",
        grouped(f.rows_read),
        f.bytes_read as f64 / 1e6
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<20} {:>12} {:>12} {:>10} {:>10} {:>8} {:>12}",
        "STAGE", "IN rows/s", "OUT rows/s", "BATCHES", "BUSY", "FAILED", "STATE"
    );
    for st in &s.stages {
        let old = prev.and_then(|p| p.stages.iter().find(|o| o.name == st.name));
        let (rate_in, rate_out, busy) = match old {
            Some(o) if seconds > 0.0 => (
                per_second(st.rows_in, o.rows_in, seconds),
                per_second(st.rows_out, o.rows_out, seconds),
                format!("{:.0}%", st.busy_ms.saturating_sub(o.busy_ms) as f64 / (seconds * 10.0)),
            ),
            _ => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let state = st.state_bytes.map_or("-".to_owned(), |b| format!("{b} B"));
        let _ = writeln!(
            out,
            "{:<20} {rate_in:>12} {rate_out:>12} {:>10} {busy:>10} {:>8} {state:>12}",
            st.name,
            grouped(st.batches),
            st.failed_calls
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<20} {:>14} {:>8} {:>10}", "SINK", "ROWS", "FILES", "MB");
    for sink in &f.sinks {
        let _ = writeln!(
            out,
            "{:<20} {:>14} {:>8} {:>10.1}",
            sink.name,
            grouped(sink.rows),
            sink.files,
            sink.bytes as f64 / 1e6
        );
    }
    let _ = writeln!(out);
    let dead: Vec<String> = f.dead_letters.iter().map(|(st, n)| format!("{st} {n}")).collect();
    let _ = writeln!(
        out,
        "dead letters  {}",
        if dead.is_empty() {
            "none".to_owned()
        } else {
            dead.join(", ")
        }
    );
    match &f.checkpoint {
        Some(c) => {
            let _ = writeln!(
                out,
                "checkpoint    {} taken, the last {:.1} s ago in {} ms ({} B)",
                c.taken,
                (now.at_ms - c.at_ms).max(0) as f64 / 1e3,
                c.took_ms,
                c.bytes
            );
        }
        None => {
            let _ = writeln!(out, "checkpoint    none yet");
        }
    }
    for (partition, position) in f.positions.iter().take(12) {
        let lag = s
            .lag
            .get(partition)
            .map(|ms| format!(", {:.1} s behind", *ms as f64 / 1e3))
            .unwrap_or_default();
        let _ = writeln!(out, "partition     {partition} at {position}{lag}");
    }
    if f.positions.len() > 12 {
        let _ = writeln!(out, "partition     … and {} more", f.positions.len() - 12);
    }
    if let Some(r) = &s.last_reload {
        let _ = writeln!(
            out,
            "last reload   {}: {} (applied {}, refused {})",
            r.outcome, r.detail, s.reloads_applied, s.reloads_refused
        );
    }
    out
}

/// Redraw every `interval` until `stop` is set or the pipeline stops answering; `read`
/// fetches a reading. On a terminal the screen is redrawn in place (the alternate screen,
/// given back at the end); otherwise each frame is printed after the last.
pub fn run(
    mut read: impl FnMut() -> std::io::Result<Reading>,
    interval: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    use std::io::{IsTerminal, Write};
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout();
    if terminal {
        write!(stdout, "\x1b[?1049h\x1b[?25l")?;
    }
    let mut before: Option<Reading> = None;
    let result = loop {
        let now = match read() {
            Ok(r) => r,
            Err(e) => break Err(e),
        };
        let frame = render(before.as_ref(), &now);
        if terminal {
            write!(stdout, "\x1b[H\x1b[2J{}", frame.replace('\n', "\r\n"))?;
        } else {
            writeln!(stdout, "{frame}")?;
        }
        stdout.flush()?;
        before = Some(now);
        let until = std::time::Instant::now() + interval;
        while std::time::Instant::now() < until {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            break Ok(());
        }
    };
    if terminal {
        write!(stdout, "\x1b[?25h\x1b[?1049l")?;
        stdout.flush()?;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::reload::status::{Flow, StageStatus};

    fn reading(at_ms: i64, read: u64, stage_in: u64, stage_out: u64, busy_ms: u64) -> Reading {
        Reading {
            status: Status {
                pipeline: "p".into(),
                stages: vec![StageStatus {
                    name: "warm".into(),
                    rows_in: stage_in,
                    rows_out: stage_out,
                    batches: 7,
                    busy_ms,
                    ..StageStatus::default()
                }],
                flow: Flow {
                    rows_read: read,
                    since_ms: 0,
                    ..Flow::default()
                },
                ..Status::default()
            },
            at_ms,
        }
    }

    #[test]
    fn rates_are_the_difference_between_two_readings() {
        let first = reading(1_000, 10_000, 10_000, 4_000, 100);
        let screen = render(None, &first);
        assert!(screen.contains("read    10,000 rows"), "{screen}");
        assert!(
            screen.lines().any(|l| l.starts_with("warm") && l.contains(" - ")),
            "{screen}"
        );
        let second = reading(3_000, 30_000, 30_000, 10_000, 600);
        let screen = render(Some(&first), &second);
        assert!(screen.contains("30,000 rows (0.0 MB), 10000 rows/s"), "{screen}");
        let warm = screen.lines().find(|l| l.starts_with("warm")).expect("warm");
        let cells: Vec<&str> = warm.split_whitespace().collect();
        assert_eq!(cells[1..5], ["10000", "3000", "7", "25%"], "{warm}");
    }
}
