//! A sink's folder on a local file system (see the module doc of `storage`).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::{StagedFile, Storage};
use crate::checkpoint::OutputFile;
use crate::checkpoint::protocol::{Probe, is_temporary, journal_path, temp_path};
use crate::sink::{SinkError, io_err, sync_dir};

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
        // A new file, not the leftover truncated: a writer that still holds the leftover open
        // (an instance whose lease was taken over, before it noticed) writes to its own
        // unlinked copy, never into this one.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("replacing", &tmp)(e)),
        }
        Ok(Box::new(File::create(&tmp).map_err(io_err("creating", &tmp))?))
    }

    fn journal(&self, rel: &str) -> Result<Box<dyn StagedFile>, SinkError> {
        let path = self.root.join(journal_path(rel));
        // Opened once per file, when its first row group is journaled: a leftover of the same
        // name is replaced (as in `create`), never appended to.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("replacing", &path)(e)),
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("creating", &path))?;
        Ok(Box::new(file))
    }

    fn publish(&self, files: &[OutputFile]) -> Result<(), SinkError> {
        let mut dirs = std::collections::BTreeSet::new();
        for file in files {
            let rel = &file.path;
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

    fn probe(&self, file: &OutputFile) -> Result<Probe, SinkError> {
        let rel = &file.path;
        let len = |p: PathBuf| std::fs::metadata(p).ok().map(|m| m.len());
        Ok(Probe {
            temp_len: len(self.temp(rel)),
            journal_len: len(self.root.join(journal_path(rel))),
            in_place: self.root.join(rel).exists(),
        })
    }

    /// Cut the temporary file back to `len`, append `trailer`, sync, rename into place.
    fn seal(&self, file: &OutputFile, len: u64, trailer: &[u8]) -> Result<(), SinkError> {
        let tmp = self.temp(&file.path);
        let mut f = OpenOptions::new()
            .write(true)
            .open(&tmp)
            .map_err(io_err("opening", &tmp))?;
        f.set_len(len).map_err(io_err("truncating", &tmp))?;
        f.seek(SeekFrom::Start(len))
            .and_then(|_| f.write_all(trailer))
            .and_then(|_| f.sync_all())
            .map_err(io_err("writing", &tmp))?;
        self.publish(std::slice::from_ref(file))
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

    fn forget(&self, rel: &str) -> Result<(), SinkError> {
        let _ = std::fs::remove_file(self.root.join(journal_path(rel)));
        Ok(())
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

    fn remove_temporary(&self, temp_rel: &str) -> Result<bool, SinkError> {
        Ok(std::fs::remove_file(self.root.join(temp_rel)).is_ok())
    }
}
