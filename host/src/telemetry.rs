//! Logging set-up: `tracing` to stderr, filtered by `SLUICE_LOG` (default `warn` for
//! dependencies, `info` for sluice).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new("warn,sluice=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or a collector gets plain `key=value` text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
