//! Fault injection for crash tests: `SLUICE_FAULT=<point>:<n>` kills the process with SIGKILL
//! the `n`-th time execution reaches the named point (`checkpoint-written`,
//! `checkpoint-committed`, `row-group-flushed`, `output-renamed`, and on S3 `upload-sealed`:
//! a file's last part is uploaded, its upload not yet in a checkpoint). Unset, a point costs one
//! atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn plan() -> &'static Option<(String, u64)> {
    PLAN.get_or_init(|| {
        let spec = std::env::var("SLUICE_FAULT").ok()?;
        let (name, n) = spec.rsplit_once(':')?;
        Some((name.to_owned(), n.parse().ok()?))
    })
}

/// Execution reached `name`: die here if `SLUICE_FAULT` says so.
pub fn point(name: &str) {
    let Some((target, n)) = plan() else { return };
    if target == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *n {
        // The same death as `kill -9`: no destructors, no flushing, no exit handlers.
        let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
        std::process::abort();
    }
}
