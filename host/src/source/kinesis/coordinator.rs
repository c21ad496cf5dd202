//! The coordinator: lists the shards, starts a reader for each shard that is ours and whose
//! parents are done, and relays what readers report to the pipeline's reader thread in one
//! ordered stream of [`News`]. It lists again when a shard ends (its children) and every
//! minute (a reshard of a shard we do not read yet).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::assign::Assign;
use super::lineage::{self, Known, ShardInfo};
use super::shard::{Reader, Report, StreamRef};
use super::{KinesisError, News, StartAt, efo, now_ms, poll, sentinel, start_of};
use crate::config::{KinesisConsumer, KinesisSourceConfig, KinesisStart};
use crate::retry::Backoff;
use crate::source::position::PartitionPosition;

/// How often the shards are listed again without a shard ending.
const RELIST: Duration = Duration::from_secs(60);

/// What a coordinator starts with.
pub(super) struct Setup {
    pub client: aws_sdk_kinesis::Client,
    pub settings: Arc<KinesisSourceConfig>,
    /// Positions from the checkpoint (empty on a first run).
    pub resumed: BTreeMap<String, PartitionPosition>,
    pub assigner: Box<dyn Assign>,
    pub stop: Arc<AtomicBool>,
}

/// Run until stopped or failed; `out` carries everything to the reader thread.
pub(super) async fn run(setup: Setup, out: mpsc::Sender<News>) {
    if let Err(e) = coordinate(setup, &out).await {
        out.send(News::Failed(e)).await.ok();
    }
}

/// A shard to start: where, the position to record, and the part of an aggregate to skip.
struct Start {
    shard: String,
    at: StartAt,
    position: PartitionPosition,
    skip: Option<(String, u64)>,
}

/// The coordinator's state.
struct Coordinator<'a> {
    setup: Setup,
    stream: StreamRef,
    consumer_arn: Option<String>,
    out: &'a mpsc::Sender<News>,
    /// What readers report on.
    tx: mpsc::Sender<(Arc<str>, Report)>,
    listed: Vec<ShardInfo>,
    known: Known,
    /// Every shard's position as the checkpoint will hold it.
    positions: BTreeMap<String, PartitionPosition>,
    /// Shards being read, and whether their last read found them at the tip.
    running: BTreeMap<Arc<str>, bool>,
    /// Where a shard without a position starts (see [`restart_start`]).
    start: KinesisStart,
}

/// Where shards without a position start on a later run. A first run at `latest` stands at
/// the time it opened its shards (their `AT_TIMESTAMP` sentinels): a shard it did not get to
/// record, or a child, starts at that time rather than at its trim horizon or its tip.
fn restart_start(start: KinesisStart, resumed: &BTreeMap<String, PartitionPosition>) -> KinesisStart {
    let opened = resumed
        .values()
        .filter_map(|p| match p {
            PartitionPosition::Shard { at_ms, .. } => *at_ms,
            _ => None,
        })
        .min();
    match (start, opened) {
        (KinesisStart::Latest, Some(t)) if !resumed.is_empty() => KinesisStart::AtTimestamp(t),
        _ => start,
    }
}

async fn coordinate(setup: Setup, out: &mpsc::Sender<News>) -> Result<(), KinesisError> {
    let stream = StreamRef::of(&setup.settings.stream);
    let consumer_arn = match &setup.settings.consumer {
        KinesisConsumer::Polling => None,
        KinesisConsumer::Efo(name) => Some(efo::register(&setup.client, &stream, name, &setup.stop).await?),
    };
    let mut first = setup.resumed.is_empty();
    let mut known = Known::default();
    for (shard, p) in &setup.resumed {
        known.started.insert(shard.clone());
        if matches!(p, PartitionPosition::Shard { ended: true, .. }) {
            known.ended.insert(shard.clone());
        }
    }
    let listed = list_shards(&setup.client, &stream, &setup.stop).await?;
    let (tx, mut rx) = mpsc::channel::<(Arc<str>, Report)>(4);
    let start = restart_start(setup.settings.start, &setup.resumed);
    let mut c = Coordinator {
        start,
        positions: setup.resumed.clone(),
        setup,
        stream,
        consumer_arn,
        out,
        tx,
        listed,
        known,
        running: BTreeMap::new(),
    };
    let mut relist = tokio::time::interval(RELIST);
    relist.tick().await;
    loop {
        if !c.start_ready(first).await {
            return Ok(());
        }
        first = false;
        if c.setup.settings.end_caught_up && c.running.values().all(|&at_tip| at_tip) {
            // Nothing left to start and every shard at the tip (or none to read).
            out.send(News::CaughtUp).await.ok();
            return Ok(());
        }
        // Relay reports until a shard ends, all are at the tip, or it is time to list again.
        loop {
            tokio::select! {
                report = rx.recv() => {
                    let Some((shard, report)) = report else { return Ok(()) };
                    match report {
                        Report::Records { records, millis_behind, continuation } => {
                            // A closed shard is never "at the tip": its empty pages come
                            // before its end (KDS-08); nor is a shard that did not say.
                            let closed = c.listed.iter().any(|s| s.closed && *s.id == *shard);
                            let at_tip = records.is_empty() && millis_behind == Some(0) && !closed;
                            if let Some(c) = c.running.get_mut(&shard) {
                                *c = at_tip;
                            }
                            let news = News::Records { shard, records, millis_behind, continuation };
                            if out.send(news).await.is_err() {
                                return Ok(());
                            }
                            if c.setup.settings.end_caught_up && at_tip && c.running.values().all(|&t| t) {
                                break;
                            }
                        }
                        Report::Ended { children } => {
                            if !c.ended(shard, children).await {
                                return Ok(());
                            }
                            break;
                        }
                        Report::Failed(e) => return Err(e),
                    }
                }
                _ = relist.tick() => break,
            }
        }
        c.relist().await?;
    }
}

impl Coordinator<'_> {
    /// Start every shard that may start; false once the pipeline no longer listens.
    async fn start_ready(&mut self, first: bool) -> bool {
        let settings = self.setup.settings.clone();
        let owned: std::collections::BTreeSet<String> = self.setup.assigner.owned(&self.listed).into_iter().collect();
        let mut starts = Vec::new();
        for (shard, p) in &self.positions {
            // A shard the listing no longer shows is read from its position all the same.
            let ours = owned.contains(shard) || !self.listed.iter().any(|s| &s.id == shard);
            if self.running.contains_key(shard.as_str()) || !ours {
                continue;
            }
            if let Some((at, skip)) = start_of(p, settings.start) {
                starts.push(Start {
                    shard: shard.clone(),
                    at,
                    position: p.clone(),
                    skip,
                });
            }
        }
        for (shard, at) in lineage::ready(&self.listed, &owned, &self.known, self.start, first, now_ms()) {
            let position = sentinel(&at);
            starts.push(Start {
                shard,
                at,
                position,
                skip: None,
            });
        }
        for s in starts {
            if !self.start(s).await {
                return false;
            }
        }
        true
    }

    /// Announce a shard and spawn its reader.
    async fn start(&mut self, s: Start) -> bool {
        if self.setup.stop.load(Ordering::Relaxed) {
            return false;
        }
        let retired = lineage::retired_by(&s.shard, &self.listed, &self.known);
        self.known.started.insert(s.shard.clone());
        self.positions.insert(s.shard.clone(), s.position.clone());
        for r in &retired {
            self.positions.remove(r);
        }
        let id: Arc<str> = Arc::from(s.shard.as_str());
        self.running.insert(id.clone(), false);
        let news = News::Opened {
            shard: id.clone(),
            position: s.position,
            skip: s.skip,
            retired: retired.iter().map(|r| Arc::from(r.as_str())).collect(),
        };
        if self.out.send(news).await.is_err() {
            return false;
        }
        tracing::info!(shard = %id, start = ?s.at, "Reading shard.");
        let reader = Reader {
            client: self.setup.client.clone(),
            stream: self.stream.clone(),
            shard: id,
            settings: self.setup.settings.clone(),
            stop: self.setup.stop.clone(),
            tx: self.tx.clone(),
        };
        match &self.consumer_arn {
            None => drop(tokio::spawn(poll::read(reader, s.at))),
            Some(arn) => drop(tokio::spawn(efo::read(reader, arn.clone(), s.at))),
        }
        true
    }

    /// A shard was read to its end: record it, and learn its children.
    async fn ended(&mut self, shard: Arc<str>, children: Vec<(String, Vec<String>)>) -> bool {
        tracing::info!(shard = %shard, "Shard closed and read to its end.");
        self.running.remove(&shard);
        self.known.ended.insert(shard.to_string());
        self.positions.insert(
            shard.to_string(),
            PartitionPosition::Shard {
                sequence: "SHARD_END".into(),
                sub_sequence: None,
                ended: true,
                at_ms: None,
            },
        );
        let named: BTreeMap<String, Vec<String>> = children.into_iter().collect();
        lineage::add_children(&mut self.listed, &shard, &named);
        self.out.send(News::Ended { shard }).await.is_ok()
    }

    /// List the shards again, keeping children a response named that the listing does
    /// not show yet.
    async fn relist(&mut self) -> Result<(), KinesisError> {
        match list_shards(&self.setup.client, &self.stream, &self.setup.stop).await {
            Ok(mut listed) => {
                let extra: Vec<ShardInfo> = self
                    .listed
                    .iter()
                    .filter(|s| !listed.iter().any(|n| n.id == s.id))
                    .cloned()
                    .collect();
                listed.extend(extra);
                self.listed = listed;
                Ok(())
            }
            Err(e) if e.retryable() => {
                tracing::warn!(error = %e, "Listing the shards failed; keeping the last listing.");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Every shard of the stream, following `NextToken` (KDS-20: the token alone, no stream).
pub(crate) async fn list_shards(
    client: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    stop: &AtomicBool,
) -> Result<Vec<ShardInfo>, KinesisError> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    let mut backoff =
        Backoff::with(Duration::from_millis(200), Duration::from_secs(10)).until(Duration::from_secs(120));
    loop {
        let call = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client
                .list_shards()
                .set_stream_name(stream.name.clone())
                .set_stream_arn(stream.arn.clone()),
        };
        let out = match call.send().await {
            Ok(out) => out,
            Err(e) => {
                let e = KinesisError::api("ListShards", stream.label(), &e);
                if e.code() == Some("ExpiredNextTokenException") {
                    // The token lives 300 s (KDS-20): list again from the start.
                    shards.clear();
                    token = None;
                    continue;
                }
                match backoff.next_delay() {
                    Some(delay) if e.retryable() && !stop.load(Ordering::Relaxed) => {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
        };
        for s in out.shards.unwrap_or_default() {
            let parents = [s.parent_shard_id.clone(), s.adjacent_parent_shard_id.clone()]
                .into_iter()
                .flatten()
                .collect();
            let closed = s
                .sequence_number_range
                .as_ref()
                .is_some_and(|r| r.ending_sequence_number.is_some());
            let hash_range = s.hash_key_range.as_ref().and_then(|r| {
                Some((
                    r.starting_hash_key.parse::<u128>().ok()?,
                    r.ending_hash_key.parse::<u128>().ok()?,
                ))
            });
            shards.push(ShardInfo {
                id: s.shard_id,
                parents,
                closed,
                hash_range,
            });
        }
        match out.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(shards),
        }
    }
}
