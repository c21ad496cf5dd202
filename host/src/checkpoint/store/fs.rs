//! Checkpoints as files in a local folder: `checkpoint-<epoch>.json`, written under a hidden
//! temporary name, synced, renamed into place and the folder synced, so the rename is the
//! atomic, durable commit point. The newest [`KEEP`] epochs are kept.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{CheckpointStore, StoreError};

/// Checkpoints kept on disk (the newest is all recovery needs; the rest are for inspection).
pub const KEEP: usize = 3;

/// A folder of checkpoint files.
#[derive(Debug, Clone)]
pub struct FsStore {
    dir: PathBuf,
}

impl FsStore {
    /// A store in `dir` (created on the first `put`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FsStore { dir: dir.into() }
    }

    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
        let what = path.display().to_string();
        move |error| StoreError::Io { action, what, error }
    }

    /// Epochs on disk, ascending.
    fn epochs(&self) -> Result<Vec<u64>, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io("listing", &self.dir)(e)),
        };
        let mut epochs: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter_map(|e| parse_name(&e.file_name().to_string_lossy()))
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    fn path(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("checkpoint-{epoch:020}.json"))
    }
}

pub(super) fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("checkpoint-")?.strip_suffix(".json")?.parse().ok()
}

impl CheckpointStore for FsStore {
    fn latest(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let Some(&epoch) = self.epochs()?.last() else {
            return Ok(None);
        };
        let path = self.path(epoch);
        let bytes = fs::read(&path).map_err(Self::io("reading", &path))?;
        Ok(Some((epoch, bytes)))
    }

    fn put(&mut self, epoch: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let epochs = self.epochs()?;
        if let Some(&latest) = epochs.last()
            && epoch <= latest
        {
            return Err(StoreError::Stale { epoch, latest });
        }
        fs::create_dir_all(&self.dir).map_err(Self::io("creating", &self.dir))?;
        let path = self.path(epoch);
        let tmp = self.dir.join(format!(".checkpoint-{epoch:020}.json.tmp"));
        let mut file = File::create(&tmp).map_err(Self::io("creating", &tmp))?;
        file.write_all(bytes)
            .and_then(|_| file.sync_all())
            .map_err(Self::io("writing", &tmp))?;
        drop(file);
        crate::fault::point("checkpoint-written");
        fs::rename(&tmp, &path).map_err(Self::io("renaming", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(Self::io("syncing", &self.dir))?;
        crate::fault::point("checkpoint-committed");
        // Pruning and sweeping are best effort: a leftover is harmless and retried next time.
        let mut all = epochs;
        all.push(epoch);
        for old in &all[..all.len().saturating_sub(KEEP)] {
            let _ = fs::remove_file(self.path(*old));
        }
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".checkpoint-") && name.ends_with(".tmp") && e.path() != tmp {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::store::memory::MemoryStore;

    fn contract(store: &mut dyn CheckpointStore) {
        assert_eq!(store.latest().expect("latest"), None);
        store.put(1, b"one").expect("put");
        store.put(2, b"two").expect("put");
        assert_eq!(store.latest().expect("latest"), Some((2, b"two".to_vec())));
        assert!(matches!(
            store.put(2, b"again"),
            Err(StoreError::Stale { epoch: 2, latest: 2 })
        ));
        for e in 3..10 {
            store.put(e, format!("{e}").as_bytes()).expect("put");
        }
        assert_eq!(store.latest().expect("latest"), Some((9, b"9".to_vec())));
    }

    #[test]
    fn both_stores_keep_the_contract() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut fs_store = FsStore::new(tmp.path().join("ckpt"));
        contract(&mut fs_store);
        let kept: Vec<u64> = fs_store.epochs().expect("epochs");
        assert_eq!(kept, vec![7, 8, 9]);
        contract(&mut MemoryStore::new());
    }

    #[test]
    fn a_torn_temporary_file_is_not_a_checkpoint_and_is_swept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut store = FsStore::new(tmp.path());
        store.put(4, b"four").expect("put");
        fs::write(tmp.path().join(".checkpoint-00000000000000000005.json.tmp"), b"half").expect("write");
        assert_eq!(store.latest().expect("latest"), Some((4, b"four".to_vec())));
        store.put(5, b"five").expect("put");
        let names: Vec<String> = fs::read_dir(tmp.path())
            .expect("dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn a_failed_put_leaves_the_previous_checkpoint_latest() {
        let mut store = MemoryStore::new();
        store.put(1, b"one").expect("put");
        store.fail_next_put();
        assert!(store.put(2, b"two").is_err());
        assert_eq!(store.latest().expect("latest"), Some((1, b"one".to_vec())));
        assert_eq!(store.epochs(), vec![1]);
    }
}
