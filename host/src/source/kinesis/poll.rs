//! One shard read by polling: `GetShardIterator` once, then `GetRecords` following
//! `NextShardIterator` until it is absent (the shard is closed and read, KDS-09).
//!
//! - An empty response is not the end (KDS-08). A shard at the tip (`MillisBehindLatest`
//!   0, nothing returned) waits `idle_poll` before asking again (KDS-10); a busy one asks
//!   again after 200 ms, inside the 5 calls/s/shard budget (KDS-07).
//! - A throttle (`ProvisionedThroughputExceeded`, KMS throttling, `LimitExceeded`) waits
//!   1 s doubling to 10 s with jitter, then asks again with the same iterator: the position
//!   does not move and nothing is read twice (KDS-07).
//! - An expired iterator is renewed after the last record handed over, or at the original
//!   start if none was (KDS-03), never at LATEST.
//! - `ResourceNotFound` for a shard's iterator means the shard is gone: its end (KDS-22).
//!
//! What was read goes to the coordinator through a bounded channel: when the pipeline is
//! slow, `send` waits, and so does the next `GetRecords`.

use std::time::Duration;

use aws_sdk_kinesis::types::ShardIteratorType;
use aws_smithy_types::DateTime;

use super::shard::{Reader, Report, record};
use super::{KinesisError, StartAt, StreamRecord};
use crate::retry::Backoff;

/// The least time between two `GetRecords` of one shard (5 per second, KDS-07).
const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Read one shard until it ends, the pipeline stops, or reading fails for good.
pub(super) async fn read(reader: Reader, start: StartAt) {
    let outcome = poll(&reader, start).await;
    if let Err(e) = outcome {
        reader.report(Report::Failed(e)).await;
    }
}

async fn poll(reader: &Reader, start: StartAt) -> Result<(), KinesisError> {
    // Where to ask for a new iterator: after the last record handed over, else the start
    // (a shard opened at its tip: the time it was opened, never LATEST again, KDS-03).
    let mut resume_at = match start {
        StartAt::Latest { opened_ms } => StartAt::AtTimestamp(opened_ms),
        ref s => s.clone(),
    };
    let Some(mut iterator) = open(reader, &start).await? else {
        return Ok(());
    };
    let mut throttle = Backoff::with(Duration::from_secs(1), Duration::from_secs(10));
    let mut transient = Backoff::with(Duration::from_millis(200), Duration::from_secs(20));
    loop {
        if reader.stopped() {
            return Ok(());
        }
        let asked = tokio::time::Instant::now();
        let response = reader
            .client
            .get_records()
            .shard_iterator(&iterator)
            .limit(reader.settings.max_records as i32)
            .set_stream_arn(reader.stream.arn.clone())
            .send()
            .await;
        let out = match response {
            Ok(out) => out,
            Err(e) => {
                let e = KinesisError::api("GetRecords", reader.target(), &e);
                if let Recovery::Renew = recover(reader, e, &mut throttle, &mut transient).await? {
                    let Some(renewed) = open(reader, &resume_at).await? else {
                        return Ok(());
                    };
                    iterator = renewed;
                }
                continue;
            }
        };
        throttle.reset();
        transient.reset();
        let millis_behind = out.millis_behind_latest;
        let next = out.next_shard_iterator;
        let children: Vec<(String, Vec<String>)> = out
            .child_shards
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.shard_id, c.parent_shards))
            .collect();
        let records: Vec<StreamRecord> = out.records.into_iter().map(record).collect();
        let empty = records.is_empty();
        if let Some(last) = records.last() {
            resume_at = StartAt::After(last.sequence.clone());
        }
        if !reader
            .report(Report::Records {
                records,
                millis_behind,
                continuation: None,
            })
            .await
        {
            return Ok(());
        }
        let Some(next) = next else {
            reader.report(Report::Ended { children }).await;
            return Ok(());
        };
        iterator = next;
        let pause = if empty && millis_behind.unwrap_or(0) == 0 {
            reader.settings.idle_poll
        } else {
            MIN_INTERVAL
        };
        tokio::time::sleep_until(asked + pause).await;
    }
}

/// What to do after a failed `GetRecords`.
enum Recovery {
    /// Ask again with the same iterator (after the backoff already slept).
    Again,
    /// The iterator expired: ask for a new one.
    Renew,
}

/// Back off after a throttle or a passing failure; a new iterator after an expired one; the
/// error itself when it will not pass.
async fn recover(
    reader: &Reader,
    e: KinesisError,
    throttle: &mut Backoff,
    transient: &mut Backoff,
) -> Result<Recovery, KinesisError> {
    if e.code() == Some("ExpiredIteratorException") {
        tracing::info!(shard = %reader.shard, "Shard iterator expired; asking for a new one from the last record read.");
        return Ok(Recovery::Renew);
    }
    let delay = if e.throttled() {
        let delay = throttle.next_delay().unwrap_or(Duration::from_secs(10));
        tracing::debug!(shard = %reader.shard, ?delay, "GetRecords throttled; backing off.");
        delay
    } else if e.retryable() {
        let delay = transient.next_delay().unwrap_or(Duration::from_secs(20));
        tracing::warn!(shard = %reader.shard, error = %e, ?delay, "GetRecords failed; trying again.");
        delay
    } else {
        return Err(e);
    };
    tokio::time::sleep(delay).await;
    Ok(Recovery::Again)
}

/// An iterator at `at`; `None` when the shard is gone (its end is reported) or the pipeline
/// is stopping.
async fn open(reader: &Reader, at: &StartAt) -> Result<Option<String>, KinesisError> {
    match iterator(reader, at).await? {
        Iterator::At(i) => Ok(Some(i)),
        Iterator::Gone => {
            reader.report(Report::Ended { children: Vec::new() }).await;
            Ok(None)
        }
        Iterator::Stopped => Ok(None),
    }
}

/// What asking for an iterator gave.
enum Iterator {
    At(String),
    /// The shard no longer exists (past the retention): its end (KDS-22).
    Gone,
    /// The pipeline is stopping: not an end.
    Stopped,
}

/// An iterator at `start`.
async fn iterator(reader: &Reader, start: &StartAt) -> Result<Iterator, KinesisError> {
    let mut throttle = Backoff::with(Duration::from_secs(1), Duration::from_secs(10));
    loop {
        if reader.stopped() {
            return Ok(Iterator::Stopped);
        }
        let mut call = reader
            .client
            .get_shard_iterator()
            .set_stream_name(reader.stream.name.clone())
            .set_stream_arn(reader.stream.arn.clone())
            .shard_id(&*reader.shard);
        call = match start {
            StartAt::TrimHorizon => call.shard_iterator_type(ShardIteratorType::TrimHorizon),
            StartAt::Latest { .. } => call.shard_iterator_type(ShardIteratorType::Latest),
            StartAt::AtTimestamp(ms) => call
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis(*ms)),
            StartAt::After(s) => call
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(s),
            StartAt::At(s) => call
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(s),
        };
        match call.send().await {
            Ok(out) => {
                return Ok(match out.shard_iterator {
                    Some(i) => Iterator::At(i),
                    // An iterator past a closed shard's end: nothing more to read.
                    None => Iterator::Gone,
                });
            }
            Err(e) => {
                let e = KinesisError::api("GetShardIterator", reader.target(), &e);
                if e.code() == Some("ResourceNotFoundException") {
                    tracing::warn!(shard = %reader.shard, "The shard is gone (past the stream's retention); treating it as read.");
                    return Ok(Iterator::Gone);
                }
                if !e.retryable() {
                    return Err(e);
                }
                let delay = throttle.next_delay().unwrap_or(Duration::from_secs(10));
                tokio::time::sleep(delay).await;
            }
        }
    }
}
