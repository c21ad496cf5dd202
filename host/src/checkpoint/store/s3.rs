//! Checkpoints as objects in S3 (`[checkpoint] store = { s3 = "s3://bucket/prefix/" }`), so a
//! pipeline restarts on another machine. Keys are named as [`super::fs`] names files:
//! `<prefix>checkpoint-<epoch as 20 digits>.json`, and the newest [`KEEP`] epochs are kept.
//!
//! # How the contract is kept
//! - **Atomic and durable**: a PutObject is all or nothing, and S3 has acknowledged a durable
//!   write when it answers 200.
//! - **Monotonic**: `put` lists the prefix and refuses an epoch not above the highest found
//!   ([`StoreError::Stale`]), then writes with `If-None-Match: *`, so of two writers offering
//!   the same epoch only one succeeds; the other gets 412 Precondition Failed and reports
//!   [`StoreError::Conflict`] (two runs share one store). A 412 on a retried request whose
//!   first attempt did land is recognised by comparing the stored bytes with ours.
//! - **Latest**: ListObjectsV2 over the prefix (every page), the highest epoch, GetObject.
//!   Pruning deletes only epochs below the one just written, so never the latest.
//!
//! # Endpoints without conditional writes
//! S3 has honoured `If-None-Match: *` on PutObject since August 2024; some S3-compatible
//! servers ignore the header. There the epoch check by listing still refuses stale epochs
//! from this process, but two concurrent writers of one pipeline could race: both pass the
//! check and the later PutObject of the same epoch silently replaces the earlier one. Run one
//! writer per store there.
//!
//! # Retries and the runtime
//! Throttling (`SlowDown`, 429), 5xx answers, timeouts and dropped connections are retried with
//! [`crate::retry::Backoff`] (on top of the SDK's own few quick retries) for up to
//! [`RETRY_FOR`]; anything else fails at once. As `crate::retry` documents for connectors,
//! the store owns a small tokio runtime (one current thread, created on first use) and calls
//! it with `block_on` from the pipeline thread that checkpoints.

use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::fs::{KEEP, parse_name};
use super::{CheckpointStore, StoreError};
use crate::config::S3StoreConfig;
use crate::retry::Backoff;

/// How long a transient failure is retried before the store gives up.
pub const RETRY_FOR: Duration = Duration::from_secs(60);

/// A prefix of checkpoint objects in an S3 bucket.
#[derive(Debug)]
pub struct S3Store {
    settings: S3StoreConfig,
    conn: OnceLock<Conn>,
}

#[derive(Debug)]
struct Conn {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

/// One failed call, classified.
struct Failure {
    /// The HTTP status, when there was an answer.
    status: Option<u16>,
    message: String,
    transient: bool,
}

impl Failure {
    fn from_sdk<E>(e: SdkError<E, HttpResponse>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(str::to_owned);
        let transient = match &e {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
            // A connection that failed may work next time; missing credentials will not.
            SdkError::DispatchFailure(d) => d.is_io() || d.is_timeout(),
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
            message: DisplayErrorContext(&e).to_string(),
            transient,
        }
    }
}

impl S3Store {
    /// A store at `settings`' bucket and prefix; nothing is contacted until first use.
    pub fn new(settings: S3StoreConfig) -> Self {
        S3Store {
            settings,
            conn: OnceLock::new(),
        }
    }

    fn key(&self, epoch: u64) -> String {
        format!("{}checkpoint-{epoch:020}.json", self.settings.prefix)
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.settings.bucket)
    }

    fn remote(&self, action: &'static str, key: &str) -> impl FnOnce(Failure) -> StoreError {
        let what = self.url(key);
        move |f| StoreError::Remote {
            action,
            what,
            message: f.message,
        }
    }

    /// The runtime and client, made on first use.
    fn conn(&self) -> Result<&Conn, StoreError> {
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let failed = |message: String| StoreError::Remote {
            action: "connecting to",
            what: self.location(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(format!("cannot start the S3 client's runtime: {e}")))?;
        let s = &self.settings;
        let shared = runtime.block_on(crate::aws::sdk_config(s.region.clone(), s.endpoint_url.as_deref()));
        if shared.region().is_none() {
            return Err(failed(
                "no AWS region for the S3 checkpoint store: set `region` in [checkpoint], or AWS_REGION / AWS_DEFAULT_REGION, or a region in the AWS profile".to_owned(),
            ));
        }
        // Checksums only where S3 requires them: S3-compatible servers differ in which
        // flexible checksums they accept, and TLS already protects the bytes in transit.
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(s.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        let client = Client::from_conf(config);
        let _ = self.conn.set(Conn { runtime, client });
        Ok(self.conn.get().expect("just set"))
    }

    /// Retry `op` while it fails transiently, up to [`RETRY_FOR`].
    fn retrying<T>(&self, op: impl FnMut() -> Result<T, Failure>) -> Result<T, Failure> {
        Backoff::with(Duration::from_millis(100), Duration::from_secs(5))
            .until(RETRY_FOR)
            .retry(op, |f| f.transient)
    }

    /// Epochs under the prefix, ascending (every page of the listing).
    fn epochs(&self) -> Result<Vec<u64>, StoreError> {
        let conn = self.conn()?;
        let prefix = &self.settings.prefix;
        let mut epochs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .retrying(|| {
                    conn.runtime
                        .block_on(
                            conn.client
                                .list_objects_v2()
                                .bucket(&self.settings.bucket)
                                .prefix(prefix)
                                .set_continuation_token(token.clone())
                                .send(),
                        )
                        .map_err(Failure::from_sdk)
                })
                .map_err(self.remote("listing", prefix))?;
            epochs.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key()?.strip_prefix(prefix.as_str()))
                    .filter_map(parse_name),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// The object's bytes, or `None` if it is gone.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.conn()?;
        let got = self.retrying(|| {
            conn.runtime.block_on(async {
                let sent = conn
                    .client
                    .get_object()
                    .bucket(&self.settings.bucket)
                    .key(key)
                    .send()
                    .await;
                let object = match sent {
                    Ok(o) => o,
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
                    Err(e) => return Err(Failure::from_sdk(e)),
                };
                match object.body.collect().await {
                    Ok(bytes) => Ok(Some(bytes.to_vec())),
                    Err(e) => Err(Failure {
                        status: None,
                        message: format!("reading the body: {}", DisplayErrorContext(&e)),
                        transient: true,
                    }),
                }
            })
        });
        got.map_err(self.remote("reading", key))
    }
}

impl S3Store {
    /// The conditional write alone, without `put`'s epoch check: store `bytes` as `epoch`
    /// unless the key exists. Existing identical bytes are success (a retried request whose
    /// first attempt landed); different bytes are [`StoreError::Conflict`].
    pub fn put_if_absent(&self, epoch: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let key = self.key(epoch);
        let put = self.retrying(|| {
            conn.runtime
                .block_on(
                    conn.client
                        .put_object()
                        .bucket(&self.settings.bucket)
                        .key(&key)
                        .content_type("application/json")
                        .if_none_match("*")
                        .body(ByteStream::from(bytes.to_vec()))
                        .send(),
                )
                .map_err(Failure::from_sdk)
        });
        match put {
            Ok(_) => Ok(()),
            // 412: the key exists. 409: a concurrent conditional write to it is in flight.
            Err(f) if matches!(f.status, Some(412 | 409)) => {
                if self.get(&key)?.as_deref() == Some(bytes) {
                    Ok(())
                } else {
                    Err(StoreError::Conflict {
                        epoch,
                        what: self.url(&key),
                    })
                }
            }
            Err(f) => Err(self.remote("writing", &key)(f)),
        }
    }
}

impl CheckpointStore for S3Store {
    fn latest(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        // A writer elsewhere may prune the epoch listed between the listing and the read:
        // list again then (a newer one exists).
        for _ in 0..5 {
            let Some(&epoch) = self.epochs()?.last() else {
                return Ok(None);
            };
            if let Some(bytes) = self.get(&self.key(epoch))? {
                return Ok(Some((epoch, bytes)));
            }
        }
        Err(StoreError::Remote {
            action: "reading",
            what: self.location(),
            message: "the newest checkpoint vanished between listing and reading five times over".to_owned(),
        })
    }

    fn put(&mut self, epoch: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let epochs = self.epochs()?;
        if let Some(&latest) = epochs.last()
            && epoch <= latest
        {
            return Err(StoreError::Stale { epoch, latest });
        }
        self.put_if_absent(epoch, bytes)?;
        crate::fault::point("checkpoint-committed");
        let conn = self.conn()?;
        // Pruning is best effort: a leftover is harmless and deleted next time.
        let mut all = epochs;
        all.push(epoch);
        for old in &all[..all.len().saturating_sub(KEEP)] {
            let _ = conn.runtime.block_on(
                conn.client
                    .delete_object()
                    .bucket(&self.settings.bucket)
                    .key(self.key(*old))
                    .send(),
            );
        }
        Ok(())
    }

    fn location(&self) -> String {
        self.url(&self.settings.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> S3Store {
        S3Store::new(S3StoreConfig {
            bucket: "bucket".into(),
            prefix: prefix.into(),
            region: None,
            endpoint_url: None,
            force_path_style: false,
        })
    }

    #[test]
    fn keys_are_named_as_the_file_store_names_files() {
        let s = store("cp/");
        assert_eq!(s.key(7), "cp/checkpoint-00000000000000000007.json");
        assert_eq!(s.location(), "s3://bucket/cp/");
        assert_eq!(parse_name(s.key(7).strip_prefix("cp/").expect("prefix")), Some(7));
        // Objects in a deeper "folder" are not this store's.
        assert_eq!(parse_name("sub/checkpoint-00000000000000000007.json"), None);
        assert_eq!(store("").key(1), "checkpoint-00000000000000000001.json");
    }
}
