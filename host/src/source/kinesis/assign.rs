//! Which shards this instance reads. One instance owns every shard; when several instances
//! share a stream (KCL-style leases), the lease table answers instead, and this is the seam
//! it plugs into.

use super::lineage::ShardInfo;

/// Decides which of the stream's shards are this instance's to read.
pub trait Assign: Send + Sync {
    /// The shards of `listed` to read (the lineage rules still decide when).
    fn owned(&self, listed: &[ShardInfo]) -> Vec<String>;
}

/// Every shard: a single instance reads the whole stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllShards;

impl Assign for AllShards {
    fn owned(&self, listed: &[ShardInfo]) -> Vec<String> {
        listed.iter().map(|s| s.id.clone()).collect()
    }
}

/// One shard: the one a lease gave this pipeline.
#[derive(Debug, Clone)]
pub struct OneShard(pub String);

impl Assign for OneShard {
    fn owned(&self, _listed: &[ShardInfo]) -> Vec<String> {
        vec![self.0.clone()]
    }
}
