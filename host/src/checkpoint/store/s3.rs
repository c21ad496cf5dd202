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
//! Every call goes through [`crate::aws::s3::retrying`]; the client is
//! [`crate::aws::s3::S3Conn`] on a current-thread runtime, created on first use and driven by
//! the pipeline thread that checkpoints.

use std::sync::OnceLock;

use aws_sdk_s3::primitives::ByteStream;

use super::fs::{KEEP, parse_name};
use super::{CheckpointStore, StoreError};
use crate::aws::s3::{Failure, S3Conn, retrying};
use crate::config::S3Location;

/// A prefix of checkpoint objects in an S3 bucket.
#[derive(Debug)]
pub struct S3Store {
    settings: S3Location,
    conn: OnceLock<S3Conn>,
}

impl S3Store {
    /// A store at `settings`' bucket and prefix; nothing is contacted until first use.
    pub fn new(settings: S3Location) -> Self {
        S3Store {
            settings,
            conn: OnceLock::new(),
        }
    }

    fn key(&self, epoch: u64) -> String {
        format!("{}checkpoint-{epoch:020}.json", self.settings.prefix)
    }

    fn url(&self, key: &str) -> String {
        self.settings.url(key)
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
    fn conn(&self) -> Result<&S3Conn, StoreError> {
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let conn = S3Conn::connect(&self.settings, 0).map_err(|message| StoreError::Remote {
            action: "connecting to",
            what: self.location(),
            message: format!("{message} (in [checkpoint])"),
        })?;
        let _ = self.conn.set(conn);
        Ok(self.conn.get().expect("just set"))
    }

    /// Epochs under the prefix, ascending (every page of the listing).
    fn epochs(&self) -> Result<Vec<u64>, StoreError> {
        let conn = self.conn()?;
        let prefix = &self.settings.prefix;
        let mut epochs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = retrying(|| {
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
        let got = retrying(|| {
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
                    Err(e) => Err(Failure::body(e)),
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
        let put = retrying(|| {
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
        S3Store::new(S3Location {
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
