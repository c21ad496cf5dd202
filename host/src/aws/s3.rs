//! The S3 client the checkpoint store and the S3 sinks share: where (bucket, prefix, region,
//! endpoint, path style), a tokio runtime that drives it, how a failed call is classified,
//! and the retry loop every call goes through.
//!
//! # Retries
//! Throttling (`SlowDown`, 429), 5xx answers, timeouts and dropped connections are retried with
//! [`crate::retry::Backoff`] for up to [`RETRY_FOR`] (the SDK's own retries are off, so every
//! attempt is seen here); anything else fails at once. When the retries run out the caller fails:
//! nothing past the failed call is checkpointed, and a restart continues from there.
//!
//! # The runtime
//! As `crate::retry` documents for connectors, the client owns its tokio runtime and the
//! pipeline's threads call it with `block_on`. The checkpoint store needs no threads of its own
//! (a current-thread runtime that runs while it is called); a sink uploads parts in the
//! background while the writer goes on, so it asks for worker threads.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

pub use crate::config::S3Location;
use crate::retry::Backoff;

/// How long a transient failure is retried before the caller gives up.
pub const RETRY_FOR: Duration = Duration::from_secs(60);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer may keep the client waiting for its next bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one attempt of a call may take in all (a part of 512 MiB at 20 MiB/s fits).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A connected client and the runtime that drives it.
#[derive(Debug)]
pub struct S3Conn {
    /// The runtime; call it with `block_on`, spawn background uploads on it.
    pub runtime: tokio::runtime::Runtime,
    /// The SDK client.
    pub client: Client,
}

impl S3Conn {
    /// A client for `location`. `workers` = 0 gives a current-thread runtime (nothing runs in
    /// the background); more gives that many worker threads for spawned tasks.
    pub fn connect(location: &S3Location, workers: usize) -> Result<S3Conn, String> {
        let runtime = match workers {
            0 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
            n => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .thread_name("sluice-s3")
                .enable_all()
                .build(),
        }
        .map_err(|e| format!("cannot start the S3 client's runtime: {e}"))?;
        let shared = runtime.block_on(super::sdk_config(
            location.region.clone(),
            location.endpoint_url.as_deref(),
        ));
        if shared.region().is_none() {
            return Err(
                "no AWS region for S3: set `region`, or AWS_REGION / AWS_DEFAULT_REGION, or a region in the AWS profile"
                    .to_owned(),
            );
        }
        // Checksums only where S3 requires them: S3-compatible servers differ in which
        // flexible checksums they accept, and TLS already protects the bytes in transit.
        // A server that stops answering fails the attempt, which is then retried, rather than
        // holding the pipeline forever (the SDK sets no read timeout of its own).
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(location.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .timeout_config(timeouts)
            // One retry policy, ours (`retrying`): it sees every attempt, so a retried call
            // knows its first attempt may have landed.
            .retry_config(RetryConfig::disabled())
            .build();
        Ok(S3Conn {
            runtime,
            client: Client::from_conf(config),
        })
    }
}

/// One failed call, classified.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The S3 error code (`NoSuchUpload`, `SlowDown`, …), when there was one.
    pub code: Option<String>,
    /// What went wrong, with the SDK's whole chain of causes.
    pub message: String,
    /// Whether trying again may succeed.
    pub transient: bool,
}

impl Failure {
    /// Classify an SDK error.
    pub fn from_sdk<E>(e: SdkError<E, HttpResponse>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(str::to_owned);
        let transient = match &e {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
            // A connection that failed may work next time; missing credentials will not.
            SdkError::DispatchFailure(_) => super::dispatch_may_pass(&e),
            SdkError::ServiceError(_) => {
                status.is_some_and(|s| s >= 500 || s == 429)
                    || matches!(
                        code.as_deref(),
                        Some("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable" | "Throttling")
                    )
            }
            _ => false,
        };
        Failure {
            status,
            code,
            message: DisplayErrorContext(&e).to_string(),
            transient,
        }
    }

    /// A body that broke off while being read: the connection dropped, so try again.
    pub fn body(e: impl std::error::Error + 'static) -> Failure {
        Failure {
            status: None,
            code: None,
            message: format!("reading the body: {}", DisplayErrorContext(&e)),
            transient: true,
        }
    }

    /// A failure of ours, not S3's: not retried.
    pub fn other(message: &str) -> Failure {
        Failure {
            status: None,
            code: None,
            message: message.to_owned(),
            transient: false,
        }
    }

    /// Whether S3 answered with this error code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// Retry `op` while it fails transiently, up to [`RETRY_FOR`].
pub fn retrying<T>(op: impl FnMut() -> Result<T, Failure>) -> Result<T, Failure> {
    Backoff::with(Duration::from_millis(100), Duration::from_secs(5))
        .until(RETRY_FOR)
        .retry(op, |f| f.transient)
}

/// [`retrying`] for async calls: the same policy, sleeping on the runtime.
pub async fn retrying_async<T, F, Fut>(mut op: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut backoff = Backoff::with(Duration::from_millis(100), Duration::from_secs(5)).until(RETRY_FOR);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(f) if f.transient => match backoff.next_delay() {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(f),
            },
            Err(f) => return Err(f),
        }
    }
}
