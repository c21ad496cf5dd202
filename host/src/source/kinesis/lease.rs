//! Sharing a stream between instances through a lease table in KCL 2.x's layout (spec
//! LEASE-01..10), so operators read it with the tools they know and a KCL application's
//! table can be taken over.
//!
//! - [`item`]: a lease and its DynamoDB item (KCL's attribute names and types).
//! - [`table`]: the table's calls; every write that depends on ownership is conditional on
//!   the lease counter.
//! - [`balance`]: which leases to take or steal after a scan (pure).
//! - [`store`]: a shard's checkpoint kept in its lease, written only while the lease is held.
//! - [`sync`]: a lease for every shard of the stream, parents before children.
//! - [`cleanup`]: which ended leases can go (every child started from them).
//!
//! Who runs the shards is `pipeline::leased`'s job: it holds leases, renews them, and runs a
//! pipeline per held shard whose checkpoints go to [`store::LeaseStore`].

pub mod balance;
pub mod cleanup;
pub mod item;
pub mod store;
pub mod sync;
pub mod table;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use super::KinesisError;
use crate::config::KinesisSourceConfig;

/// What can go wrong with the lease table.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// A DynamoDB call failed.
    #[error("lease table {table}: DynamoDB {call}: {message}")]
    Api {
        /// The call.
        call: &'static str,
        /// The table.
        table: String,
        /// What the service or client said.
        message: String,
        /// Whether trying again later may succeed.
        transient: bool,
    },
    /// A request could not be built (a bug).
    #[error("building a DynamoDB request: {0}")]
    Build(String),
    /// The table did not become active.
    #[error("lease table {0} did not become active within 5 minutes")]
    NotActive(String),
    /// An item is not a lease sluice can read.
    #[error("the lease of {0} cannot be read: {1}")]
    Damaged(String, String),
    /// Listing the stream's shards failed.
    #[error(transparent)]
    Stream(#[from] KinesisError),
}

impl LeaseError {
    fn api<E, R>(call: &'static str, table: &str, e: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        // The same rules as the stream's calls: throttles, 5xx and broken connections pass.
        let (message, transient) = match KinesisError::api(call, table, e) {
            KinesisError::Api { message, transient, .. } => (message, transient),
            other => (other.to_string(), false),
        };
        let transient = transient || e.code() == Some("ProvisionedThroughputExceededException");
        LeaseError::Api {
            call,
            table: table.to_owned(),
            message,
            transient,
        }
    }

    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            LeaseError::Api { transient, .. } => *transient,
            LeaseError::Stream(e) => e.retryable(),
            _ => false,
        }
    }
}

/// A DynamoDB client for the lease table: the stream's region rules (the table's own
/// `region` first), and the table's own `endpoint_url` (a stream's endpoint serves Kinesis
/// only).
pub async fn connect(settings: &KinesisSourceConfig) -> Result<aws_sdk_dynamodb::Client, KinesisError> {
    let leases = settings.leases.as_ref();
    let table_settings = KinesisSourceConfig {
        region: leases
            .and_then(|l| l.region.clone())
            .or_else(|| settings.region.clone()),
        endpoint_url: leases.and_then(|l| l.endpoint_url.clone()),
        ..settings.clone()
    };
    let shared = super::client::shared_config(&table_settings).await?;
    Ok(aws_sdk_dynamodb::Client::new(&shared))
}
