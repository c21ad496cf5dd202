//! One shard's reader as the coordinator starts it: the client and stream it reads, the
//! way back to the coordinator, and what it reports. The polling and enhanced fan-out
//! readers ([`super::poll`], [`super::efo`]) both work through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::{KinesisError, StreamRecord};
use crate::config::{KinesisSourceConfig, KinesisStream};

/// The stream, as API calls name it (an ARN, or a name).
#[derive(Debug, Clone)]
pub(crate) struct StreamRef {
    pub name: Option<String>,
    pub arn: Option<String>,
}

impl StreamRef {
    pub(crate) fn of(stream: &KinesisStream) -> Self {
        match stream {
            KinesisStream::Name(n) => StreamRef {
                name: Some(n.clone()),
                arn: None,
            },
            KinesisStream::Arn(a) => StreamRef {
                name: None,
                arn: Some(a.clone()),
            },
        }
    }

    pub(super) fn label(&self) -> String {
        self.name.clone().or_else(|| self.arn.clone()).unwrap_or_default()
    }
}

/// What a shard's reader reports.
pub(super) enum Report {
    Records {
        records: Vec<StreamRecord>,
        millis_behind: Option<i64>,
        continuation: Option<String>,
    },
    /// Closed and read to its end; its children as the last response named them.
    Ended {
        children: Vec<(String, Vec<String>)>,
    },
    Failed(KinesisError),
}

/// One shard's reader: its client, stream, settings and the way back to the coordinator.
#[derive(Clone)]
pub(super) struct Reader {
    pub client: aws_sdk_kinesis::Client,
    pub stream: StreamRef,
    pub shard: Arc<str>,
    pub settings: Arc<KinesisSourceConfig>,
    pub stop: Arc<AtomicBool>,
    pub tx: mpsc::Sender<(Arc<str>, Report)>,
}

impl Reader {
    /// Hand a report over (waits while the pipeline is behind); false once nobody listens.
    pub(super) async fn report(&self, report: Report) -> bool {
        self.tx.send((self.shard.clone(), report)).await.is_ok()
    }

    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.tx.is_closed()
    }

    pub(super) fn target(&self) -> String {
        format!("{} {}", self.stream.label(), self.shard)
    }
}

/// A record as the pipeline keeps it.
pub(super) fn record(r: aws_sdk_kinesis::types::Record) -> StreamRecord {
    StreamRecord {
        arrival_millis: r.approximate_arrival_timestamp.and_then(|t| t.to_millis().ok()),
        sequence: r.sequence_number,
        partition_key: r.partition_key.unwrap_or_default(),
        data: r.data.into_inner(),
    }
}
