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

/// Bytes written between two requests that the kernel start writing a file to disk.
const WRITEBACK_STEP: u64 = 2 << 20;

/// A file being written, handed to the disk as it grows. A checkpoint's `fsync` otherwise
/// finds a second's output still in memory and waits for all of it (35–40 ms for the
/// benchmark's 16 MB a second, with the whole pipeline stalled behind the writer); asking
/// for writeback every [`WRITEBACK_STEP`] bytes lets the disk work while the pipeline does,
/// so the `fsync` waits only for the last few. The request does not wait and promises
/// nothing: durability is still the `fsync`'s.
struct Written {
    file: File,
    /// Bytes written.
    len: u64,
    /// Bytes already handed to writeback.
    handed: u64,
}

impl Written {
    fn new(file: File) -> Self {
        Written {
            file,
            len: 0,
            handed: 0,
        }
    }
}

impl Write for Written {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.len += n as u64;
        if self.len - self.handed >= WRITEBACK_STEP {
            start_writeback(&self.file, self.handed, self.len - self.handed);
            self.handed = self.len;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl StagedFile for Written {
    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

/// Ask the kernel to start writing `len` bytes of `file` from `offset` to disk, without
/// waiting. Advisory: a failure only leaves the work to the next `fsync`.
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: the descriptor is open for as long as `file` is borrowed; the call reads
        // nothing from this process's memory.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
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
        let file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        Ok(Box::new(Written::new(file)))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte lands in order, and writeback is asked for every step of them, never for
    /// bytes not yet written.
    #[test]
    fn a_written_file_holds_every_byte_and_hands_them_to_writeback_by_steps() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let mut file = Written::new(File::create(&path).expect("create"));
        let block: Vec<u8> = (0..=255u8).cycle().take(64 * 1024 + 7).collect();
        let mut expected = Vec::new();
        while expected.len() < 5 * (1 << 20) {
            file.write_all(&block).expect("write");
            expected.extend_from_slice(&block);
            assert!(file.handed <= file.len && file.len - file.handed < WRITEBACK_STEP);
        }
        assert!(file.handed >= 2 * WRITEBACK_STEP, "handed {}", file.handed);
        file.sync().expect("sync");
        assert_eq!(std::fs::read(&path).expect("read"), expected);
    }
}
