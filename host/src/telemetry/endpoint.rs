//! The Prometheus scrape endpoint (`[telemetry] listen`, `--metrics-addr`): the
//! `metrics-exporter-prometheus` recorder, installed once per process, serving the text
//! format over HTTP on a thread of its own (it binds before returning, so a taken port is
//! an error here).

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Histogram buckets for every `_seconds` histogram: from 100 µs (a stateless call on a
/// small batch) to 30 s (a call near the default deadline, a checkpoint to a slow store).
const SECONDS_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The exporter refused its settings or could not listen.
    #[error("cannot serve metrics on {addr}: {message}")]
    Start {
        /// The address asked for.
        addr: SocketAddr,
        /// The exporter's reason.
        message: String,
    },
}

/// Serve `/metrics` on `addr` for the rest of the process.
pub fn serve(addr: SocketAddr) -> Result<(), EndpointError> {
    let failed = |message: String| EndpointError::Start { addr, message };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .map_err(|e| failed(e.to_string()))?
        .install()
        .map_err(|e| failed(e.to_string()))?;
    super::meters::describe();
    tracing::info!(%addr, "Serving Prometheus metrics on http://{addr}/metrics");
    Ok(())
}
