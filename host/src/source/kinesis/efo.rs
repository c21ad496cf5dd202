//! Enhanced fan-out: a registered consumer with its own 2 MiB/s per shard (KDS-27), and one
//! `SubscribeToShard` per shard, pushed over HTTP/2 as an event stream.
//!
//! - The consumer is registered if absent, reused if present, and used only once ACTIVE
//!   (KDS-23); its ARN is looked up by name, so a re-registered consumer is found again.
//! - A subscription lasts up to 5 minutes (KDS-24). It is renewed AFTER the last
//!   `ContinuationSequenceNumber` (KCL's rule), or at the original start if no event came;
//!   after an error too. `ResourceInUse` (a second subscription within 5 s) waits 5 s.
//! - Every event's continuation is the shard's progress even without records (KDS-25): the
//!   position follows it. An event with no continuation, or with `ChildShards`, is the end.
//! - Frames are checked by the SDK's event-stream decoder (prelude and message CRC32,
//!   KDS-26); a bad frame ends the subscription with an error and we subscribe again from
//!   the last continuation, never parsing it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::types::{ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use aws_smithy_types::DateTime;

use super::shard::{Reader, Report, StreamRef, record};
use super::{KinesisError, StartAt};
use crate::retry::Backoff;

/// Register (or find) the consumer `name` on the stream and wait until it is ACTIVE; its ARN.
pub(super) async fn register(
    client: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    name: &str,
    stop: &AtomicBool,
) -> Result<String, KinesisError> {
    let consumer = |message: String| KinesisError::Consumer {
        name: name.to_owned(),
        message,
    };
    let stream_arn = match &stream.arn {
        Some(arn) => arn.clone(),
        None => client
            .describe_stream_summary()
            .set_stream_name(stream.name.clone())
            .send()
            .await
            .map_err(|e| KinesisError::api("DescribeStreamSummary", stream.label(), &e))?
            .stream_description_summary
            .map(|d| d.stream_arn)
            .ok_or_else(|| consumer("the stream has no ARN".into()))?,
    };
    let registered = client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name(name)
        .send()
        .await;
    if let Err(e) = registered {
        let e = KinesisError::api("RegisterStreamConsumer", name, &e);
        if e.code() != Some("ResourceInUseException") {
            return Err(e);
        }
        // Already registered: reuse it.
    }
    let mut backoff = Backoff::with(Duration::from_millis(250), Duration::from_secs(5)).until(Duration::from_secs(300));
    loop {
        let described = client
            .describe_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(name)
            .send()
            .await
            .map_err(|e| KinesisError::api("DescribeStreamConsumer", name, &e))?;
        let Some(d) = described.consumer_description else {
            return Err(consumer("DescribeStreamConsumer returned no description".into()));
        };
        if d.consumer_status == ConsumerStatus::Active {
            tracing::info!(consumer = name, arn = %d.consumer_arn, "Enhanced fan-out consumer is active.");
            return Ok(d.consumer_arn);
        }
        match backoff.next_delay() {
            Some(delay) if !stop.load(Ordering::Relaxed) => tokio::time::sleep(delay).await,
            _ => {
                return Err(consumer(format!(
                    "still {} after 5 minutes",
                    d.consumer_status.as_str()
                )));
            }
        }
    }
}

/// Read one shard through subscriptions until it ends, the pipeline stops, or it fails.
pub(super) async fn read(reader: Reader, consumer_arn: String, start: StartAt) {
    if let Err(e) = subscribe(&reader, &consumer_arn, start).await {
        reader.report(Report::Failed(e)).await;
    }
}

async fn subscribe(reader: &Reader, consumer_arn: &str, start: StartAt) -> Result<(), KinesisError> {
    let mut at = start;
    let mut backoff = Backoff::with(Duration::from_millis(500), Duration::from_secs(20));
    loop {
        if reader.stopped() {
            return Ok(());
        }
        let call = reader
            .client
            .subscribe_to_shard()
            .consumer_arn(consumer_arn)
            .shard_id(&*reader.shard)
            .starting_position(position(&at))
            .send()
            .await;
        let mut events = match call {
            Ok(out) => {
                // Subscribed at the tip once: later subscriptions start at that time.
                if let StartAt::Latest { opened_ms } = at {
                    at = StartAt::AtTimestamp(opened_ms);
                }
                out.event_stream
            }
            Err(e) => {
                let e = KinesisError::api("SubscribeToShard", reader.target(), &e);
                let delay = match e.code() {
                    // A subscription less than 5 s old is still open (KDS-24).
                    Some("ResourceInUseException") => Duration::from_secs(5),
                    _ if e.retryable() => backoff.next_delay().unwrap_or(Duration::from_secs(20)),
                    _ => return Err(e),
                };
                tracing::debug!(shard = %reader.shard, error = %e, ?delay, "Subscribing again later.");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        loop {
            if reader.stopped() {
                return Ok(());
            }
            let event = match events.recv().await {
                Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(e))) => e,
                Ok(Some(other)) => {
                    tracing::debug!(shard = %reader.shard, event = ?other, "Ignoring an unknown event.");
                    continue;
                }
                // The subscription's 5 minutes are over: subscribe again.
                Ok(None) => break,
                Err(e) => {
                    let e = KinesisError::api("SubscribeToShard", reader.target(), &e);
                    // A bad frame, a dropped connection, a throttle: subscribe again from the
                    // last continuation. Access denied, KMS refusals: stop.
                    if !e.retryable() && !matches!(e, KinesisError::Api { code: None, .. }) {
                        return Err(e);
                    }
                    tracing::info!(shard = %reader.shard, error = %e, "Subscription ended; subscribing again.");
                    tokio::time::sleep(backoff.next_delay().unwrap_or(Duration::from_secs(20))).await;
                    break;
                }
            };
            backoff.reset();
            let continuation = event.continuation_sequence_number;
            let children: Vec<(String, Vec<String>)> = event
                .child_shards
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.shard_id, c.parent_shards))
                .collect();
            let records: Vec<_> = event.records.into_iter().map(record).collect();
            let ended = continuation.is_empty() || !children.is_empty();
            if !continuation.is_empty() {
                at = StartAt::After(continuation.clone());
            } else if let Some(last) = records.last() {
                at = StartAt::After(last.sequence.clone());
            }
            let report = Report::Records {
                records,
                millis_behind: Some(event.millis_behind_latest),
                continuation: (!continuation.is_empty()).then_some(continuation),
            };
            if !reader.report(report).await {
                return Ok(());
            }
            if ended {
                reader.report(Report::Ended { children }).await;
                return Ok(());
            }
        }
    }
}

/// A subscription's starting position.
fn position(at: &StartAt) -> StartingPosition {
    let (kind, sequence, timestamp) = match at {
        StartAt::TrimHorizon => (ShardIteratorType::TrimHorizon, None, None),
        StartAt::Latest { .. } => (ShardIteratorType::Latest, None, None),
        StartAt::AtTimestamp(ms) => (ShardIteratorType::AtTimestamp, None, Some(DateTime::from_millis(*ms))),
        StartAt::After(s) => (ShardIteratorType::AfterSequenceNumber, Some(s.clone()), None),
        StartAt::At(s) => (ShardIteratorType::AtSequenceNumber, Some(s.clone()), None),
    };
    StartingPosition::builder()
        .r#type(kind)
        .set_sequence_number(sequence)
        .set_timestamp(timestamp)
        .build()
        // The type is always set, the only required field.
        .unwrap_or_else(|_| unreachable!("a starting position with its type"))
}
