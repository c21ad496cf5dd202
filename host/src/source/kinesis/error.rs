//! What can go wrong reading a stream, and which failures pass with time.

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

/// Why reading a stream failed.
#[derive(Debug, thiserror::Error)]
pub enum KinesisError {
    /// The async runtime could not start.
    #[error("cannot start the Kinesis client's runtime: {0}")]
    Runtime(String),
    /// No region in the settings, the environment or the profile.
    #[error(
        "no AWS region for the Kinesis source: set `region` in [source], or AWS_REGION / AWS_DEFAULT_REGION, or a region in the AWS profile"
    )]
    NoRegion,
    /// An API call failed.
    #[error("Kinesis {operation} ({target}): {message}")]
    Api {
        /// The operation, e.g. `GetRecords`.
        operation: &'static str,
        /// The stream or shard it was about.
        target: String,
        /// The service's error code, if any.
        code: Option<String>,
        /// What the SDK said, with its causes.
        message: String,
        /// Whether it may pass (a throttle, a dropped connection, a 5xx).
        transient: bool,
    },
    /// The enhanced fan-out consumer could not be registered or used.
    #[error("enhanced fan-out consumer {name}: {message}")]
    Consumer {
        /// The consumer's name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// Error codes that mean "slow down" (KDS-05, KDS-07; KMS throttling of encrypted streams).
const THROTTLES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "KMSThrottlingException",
    "LimitExceededException",
    "ThrottlingException",
];

/// Error codes of the service being briefly unwell.
const TRANSIENT: &[&str] = &[
    "InternalFailure",
    "InternalFailureException",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

impl KinesisError {
    /// Describe a failed SDK call.
    pub(crate) fn api<E, R>(operation: &'static str, target: impl Into<String>, e: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = e.code().map(str::to_owned);
        let transient = match e {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
            // A connection that failed may work next time; missing credentials will not.
            SdkError::DispatchFailure(_) => crate::aws::dispatch_may_pass(e),
            // An answer without an error code (a bare 5xx) is taken as passing.
            SdkError::ServiceError(_) => code
                .as_deref()
                .is_none_or(|c| THROTTLES.contains(&c) || TRANSIENT.contains(&c)),
            _ => false,
        };
        KinesisError::Api {
            operation,
            target: target.into(),
            code,
            message: DisplayErrorContext(e).to_string(),
            transient,
        }
    }

    /// The service's error code.
    pub fn code(&self) -> Option<&str> {
        match self {
            KinesisError::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// A throttle: back off ≥ 1 s before the next call (KDS-07).
    pub fn throttled(&self) -> bool {
        self.code().is_some_and(|c| THROTTLES.contains(&c))
    }

    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, KinesisError::Api { transient: true, .. })
    }
}
