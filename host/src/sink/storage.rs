//! Where a sink's files live, and the few operations the commit protocol needs of it.
//!
//! A file is written under a temporary name (hidden from readers), made durable at each
//! checkpoint, and published under its final name only after the checkpoint that lists it.
//! Recovery cuts a temporary file back to the length a checkpoint recorded. The local
//! implementation is a folder: temporary names are `.name.inprogress` beside the final
//! name, durability is `fsync` (of the file, and of the folder after a rename), publishing
//! is a rename. An object store implements the same with multipart uploads.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use super::{SinkError, io_err, sync_dir};
use crate::checkpoint::protocol::{Probe, is_temporary, journal_path, temp_path};

/// A file being written under its temporary name.
pub trait StagedFile: Write + Send {
    /// Make every byte written so far durable.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl StagedFile for File {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// The storage operations a sink's commit protocol relies on; paths are relative to the
/// sink's root and name the final file.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Where it is, for messages.
    fn location(&self) -> String;
    /// Start a file under its temporary name (replacing a leftover of the same name).
    fn create(&self, rel: &str) -> Result<Box<dyn StagedFile>, SinkError>;
    /// Open a file's journal for appending (Parquet row-group metadata).
    fn journal(&self, rel: &str) -> Result<Box<dyn StagedFile>, SinkError>;
    /// Publish complete files under their final names, durably.
    fn publish(&self, rels: &[String]) -> Result<(), SinkError>;
    /// What exists of a file the checkpoint lists.
    fn probe(&self, rel: &str) -> Probe;
    /// Cut a temporary file back to `len` bytes, durably.
    fn cut_back(&self, rel: &str, len: u64) -> Result<(), SinkError>;
    /// Read the first `len` bytes of a file's journal.
    fn read_journal(&self, rel: &str, len: u64) -> Result<Vec<u8>, SinkError>;
    /// Append bytes to a temporary file (a recovered file's footer), durably.
    fn append(&self, rel: &str, bytes: &[u8]) -> Result<(), SinkError>;
    /// Remove a published file's journal, if any is left.
    fn forget_journal(&self, rel: &str);
    /// Every temporary file (and journal) under the root, as temporary relative paths.
    fn temporaries(&self) -> Result<Vec<String>, SinkError>;
    /// Delete a temporary file given by its temporary relative path.
    fn remove_temporary(&self, temp_rel: &str) -> bool;
}

/// A sink's folder on a local file system.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
    /// Folders under the root that hold other things (other sinks, checkpoints): never
    /// scanned for this sink's temporaries.
    skip: Vec<PathBuf>,
}

impl LocalDir {
    /// A folder (created on the first file); `skip` lists folders inside it that belong to
    /// others.
    pub fn new(root: PathBuf, skip: Vec<PathBuf>) -> Self {
        LocalDir { root, skip }
    }

    fn temp(&self, rel: &str) -> PathBuf {
        self.root.join(temp_path(rel))
    }
}

impl Storage for LocalDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self, rel: &str) -> Result<Box<dyn StagedFile>, SinkError> {
        let tmp = self.temp(rel);
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir).map_err(io_err("creating folder", dir))?;
        }
        Ok(Box::new(File::create(&tmp).map_err(io_err("creating", &tmp))?))
    }

    fn journal(&self, rel: &str) -> Result<Box<dyn StagedFile>, SinkError> {
        let path = self.root.join(journal_path(rel));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("creating", &path))?;
        Ok(Box::new(file))
    }

    fn publish(&self, rels: &[String]) -> Result<(), SinkError> {
        let mut dirs = std::collections::BTreeSet::new();
        for rel in rels {
            let path = self.root.join(rel);
            std::fs::rename(self.temp(rel), &path).map_err(io_err("renaming into place", &path))?;
            crate::fault::point("output-renamed");
            let _ = std::fs::remove_file(self.root.join(journal_path(rel)));
            if let Some(dir) = path.parent() {
                dirs.insert(dir.to_owned());
            }
        }
        for dir in dirs {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    fn probe(&self, rel: &str) -> Probe {
        let len = |p: PathBuf| std::fs::metadata(p).ok().map(|m| m.len());
        Probe {
            temp_len: len(self.temp(rel)),
            journal_len: len(self.root.join(journal_path(rel))),
            in_place: self.root.join(rel).exists(),
        }
    }

    fn cut_back(&self, rel: &str, len: u64) -> Result<(), SinkError> {
        let tmp = self.temp(rel);
        let file = OpenOptions::new()
            .write(true)
            .open(&tmp)
            .map_err(io_err("opening", &tmp))?;
        file.set_len(len)
            .and_then(|_| file.sync_all())
            .map_err(io_err("truncating", &tmp))
    }

    fn read_journal(&self, rel: &str, len: u64) -> Result<Vec<u8>, SinkError> {
        use std::io::Read;
        let path = self.root.join(journal_path(rel));
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|f| f.take(len).read_to_end(&mut bytes))
            .map_err(io_err("reading", &path))?;
        Ok(bytes)
    }

    fn append(&self, rel: &str, bytes: &[u8]) -> Result<(), SinkError> {
        let tmp = self.temp(rel);
        let mut file = OpenOptions::new()
            .append(true)
            .open(&tmp)
            .map_err(io_err("opening", &tmp))?;
        file.write_all(bytes)
            .and_then(|_| file.sync_all())
            .map_err(io_err("writing", &tmp))
    }

    fn forget_journal(&self, rel: &str) {
        let _ = std::fs::remove_file(self.root.join(journal_path(rel)));
    }

    fn temporaries(&self) -> Result<Vec<String>, SinkError> {
        let mut found = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("listing", &dir)(e)),
            };
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    if !self.skip.contains(&path) {
                        stack.push(path);
                    }
                } else if is_temporary(&entry.file_name().to_string_lossy())
                    && let Ok(rel) = path.strip_prefix(&self.root)
                {
                    found.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        found.sort();
        Ok(found)
    }

    fn remove_temporary(&self, temp_rel: &str) -> bool {
        std::fs::remove_file(self.root.join(temp_rel)).is_ok()
    }
}
