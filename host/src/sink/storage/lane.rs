//! One lane's files in a storage shared with other lanes: when several instances share a
//! stream through leases, each shard's output is written by whoever holds its lease, into
//! the same folders as every other shard's. A lane's files carry its name first
//! (`shardId-000000000003-part-000000000012-0000.parquet`), so names stay deterministic per
//! shard, and recovery of one shard sees, settles and deletes only that shard's temporary
//! files and unfinished uploads — never a file another instance is writing.
//!
//! Paths given to and returned by a [`Lane`] are the sink's own (without the lane's name);
//! the wrapped storage sees the real ones.

use super::{StagedFile, Storage};
use crate::checkpoint::OutputFile;
use crate::checkpoint::protocol::Probe;
use crate::sink::SinkError;

/// A storage seen through one lane.
#[derive(Debug)]
pub struct Lane {
    inner: Box<dyn Storage>,
    name: String,
}

impl Lane {
    /// The files of lane `name` in `inner`.
    pub fn new(inner: Box<dyn Storage>, name: impl Into<String>) -> Self {
        Lane {
            inner,
            name: name.into(),
        }
    }

    /// The real relative path of one of the lane's files: its name, prefixed.
    fn real(&self, rel: &str) -> String {
        match rel.rsplit_once('/') {
            Some((dir, file)) => format!("{dir}/{}-{file}", self.name),
            None => format!("{}-{rel}", self.name),
        }
    }

    /// A temporary path (`dir/.name…`) with the lane's name put in after the dot.
    fn real_temp(&self, temp_rel: &str) -> String {
        let (dir, file) = split(temp_rel);
        let file = file.strip_prefix('.').map_or_else(
            || format!("{}-{file}", self.name),
            |rest| format!(".{}-{rest}", self.name),
        );
        join(dir, &file)
    }

    /// The sink's own temporary path for a real one, if it is this lane's.
    fn own_temp(&self, real: &str) -> Option<String> {
        let (dir, file) = split(real);
        let rest = file
            .strip_prefix('.')?
            .strip_prefix(self.name.as_str())?
            .strip_prefix('-')?;
        Some(join(dir, &format!(".{rest}")))
    }

    fn real_file(&self, file: &OutputFile) -> OutputFile {
        OutputFile {
            path: self.real(&file.path),
            ..file.clone()
        }
    }
}

fn split(rel: &str) -> (Option<&str>, &str) {
    match rel.rsplit_once('/') {
        Some((dir, file)) => (Some(dir), file),
        None => (None, rel),
    }
}

fn join(dir: Option<&str>, file: &str) -> String {
    match dir {
        Some(d) => format!("{d}/{file}"),
        None => file.to_owned(),
    }
}

impl Storage for Lane {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self, rel: &str) -> Result<Box<dyn StagedFile>, SinkError> {
        self.inner.create(&self.real(rel))
    }

    fn journal(&self, rel: &str) -> Result<Box<dyn StagedFile>, SinkError> {
        self.inner.journal(&self.real(rel))
    }

    fn publish(&self, files: &[OutputFile]) -> Result<(), SinkError> {
        let real: Vec<OutputFile> = files.iter().map(|f| self.real_file(f)).collect();
        self.inner.publish(&real)
    }

    fn probe(&self, file: &OutputFile) -> Result<Probe, SinkError> {
        self.inner.probe(&self.real_file(file))
    }

    fn seal(&self, file: &OutputFile, len: u64, trailer: &[u8]) -> Result<(), SinkError> {
        self.inner.seal(&self.real_file(file), len, trailer)
    }

    fn read_journal(&self, rel: &str, len: u64) -> Result<Vec<u8>, SinkError> {
        self.inner.read_journal(&self.real(rel), len)
    }

    fn forget(&self, rel: &str) -> Result<(), SinkError> {
        self.inner.forget(&self.real(rel))
    }

    fn temporaries(&self) -> Result<Vec<String>, SinkError> {
        Ok(self
            .inner
            .temporaries()?
            .iter()
            .filter_map(|t| self.own_temp(t))
            .collect())
    }

    fn remove_temporary(&self, temp_rel: &str) -> Result<bool, SinkError> {
        self.inner.remove_temporary(&self.real_temp(temp_rel))
    }

    fn settle(&self) -> Result<(), SinkError> {
        self.inner.settle()
    }

    fn end_recovery(&self, lane: Option<&str>) -> Result<usize, SinkError> {
        self.inner.end_recovery(Some(lane.unwrap_or(&self.name)))
    }

    fn published_path(&self, rel: &str) -> String {
        self.inner.published_path(&self.real(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::FileState;
    use crate::checkpoint::protocol::temp_path;
    use crate::sink::storage::LocalDir;

    #[test]
    fn a_lane_sees_only_its_own_temporaries_and_names_files_after_itself() {
        let tmp = tempfile::tempdir().expect("tmp");
        let lane = |n: &str| Lane::new(Box::new(LocalDir::new(tmp.path().to_path_buf(), Vec::new())), n);
        let (a, b) = (lane("shardId-1"), lane("shardId-10"));
        let rel = "d=1/part-000000000001-0000.parquet";
        let mut f = a.create(rel).expect("create");
        f.write_all(b"a").expect("write");
        f.sync().expect("sync");
        b.create(rel).expect("create").sync().expect("sync");
        assert!(
            tmp.path()
                .join("d=1/.shardId-1-part-000000000001-0000.parquet.inprogress")
                .exists()
        );
        assert_eq!(a.temporaries().expect("list"), vec![temp_path(rel)]);
        assert_eq!(b.temporaries().expect("list"), vec![temp_path(rel)]);
        // Removing b's leftover leaves a's file alone.
        assert!(b.remove_temporary(&temp_path(rel)).expect("remove"));
        assert_eq!(a.temporaries().expect("list"), vec![temp_path(rel)]);
        assert!(b.temporaries().expect("list").is_empty());
        let file = OutputFile {
            root: "out".into(),
            path: rel.into(),
            state: FileState::Sealed,
            upload: None,
        };
        a.publish(&[file]).expect("publish");
        assert_eq!(
            std::fs::read(tmp.path().join("d=1/shardId-1-part-000000000001-0000.parquet")).expect("read"),
            b"a"
        );
    }
}
