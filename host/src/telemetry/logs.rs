//! Logging set-up: `tracing` to stderr, filtered by `SLUICE_LOG` (default `warn` for
//! dependencies, `info` for sluice). `SLUICE_LOG_FORMAT=json` writes one JSON object per
//! line (time, level, message, fields) for log collectors; the default is plain text.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new("warn,sluice=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        let _ = builder.json().flatten_event(true).try_init();
    } else {
        // Colours only on a terminal: a log file or a collector gets plain `key=value` text.
        let _ = builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
    }
}
