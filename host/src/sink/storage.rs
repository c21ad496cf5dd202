//! Where a sink's files live, and the few operations the commit protocol needs of it.
//!
//! A file is written under a temporary name (hidden from readers), made durable at each
//! checkpoint, and published under its final name only after the checkpoint that lists it.
//! Recovery finishes a file that was open at a checkpoint as the first bytes the checkpoint
//! recorded plus a trailer (a Parquet footer).
//!
//! - [`local::LocalDir`], a folder: temporary names are `.name.inprogress` beside the final
//!   name, durability is `fsync` (of the file, and of the folder after a rename), publishing
//!   is a rename.
//! - [`s3::S3Dir`], a bucket and prefix: a file is a multipart upload of its final key, its
//!   durable bytes are the uploaded parts plus tail objects, publishing is
//!   `CompleteMultipartUpload`.

pub mod lane;
pub mod local;
pub mod s3;

use std::fs::File;
use std::io::Write;

use super::SinkError;
use crate::checkpoint::protocol::Probe;
use crate::checkpoint::{OutputFile, Upload};

pub use lane::Lane;
pub use local::LocalDir;
pub use s3::S3Dir;

/// A file being written under its temporary name.
pub trait StagedFile: Write + Send {
    /// Make every byte written so far durable, or (on an object store) start making it so:
    /// it is durable once [`Storage::settle`] returns.
    fn sync(&mut self) -> std::io::Result<()>;
    /// The file is complete: make every byte durable as the published file will hold it.
    fn seal(&mut self) -> std::io::Result<()> {
        self.sync()
    }
    /// On an object store, the upload holding the bytes made durable by the last `sync` or
    /// `seal` (for the checkpoint).
    fn upload(&self) -> Option<Upload> {
        None
    }
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
    /// Publish complete (sealed) files under their final names, durably.
    fn publish(&self, files: &[OutputFile]) -> Result<(), SinkError>;
    /// What exists of a file the checkpoint lists.
    fn probe(&self, file: &OutputFile) -> Result<Probe, SinkError>;
    /// Finish a file that was open at the checkpoint as its first `len` durable bytes followed
    /// by `trailer`, and publish it.
    fn seal(&self, file: &OutputFile, len: u64, trailer: &[u8]) -> Result<(), SinkError>;
    /// Read the first `len` bytes of a file's journal.
    fn read_journal(&self, rel: &str, len: u64) -> Result<Vec<u8>, SinkError>;
    /// Remove whatever temporary is left of a published file (its journal, tail objects).
    fn forget(&self, rel: &str) -> Result<(), SinkError>;
    /// Every temporary file (and journal) under the root, as temporary relative paths.
    fn temporaries(&self) -> Result<Vec<String>, SinkError>;
    /// Delete a temporary file (and what belongs to it) given by its temporary relative path.
    fn remove_temporary(&self, temp_rel: &str) -> Result<bool, SinkError>;
    /// Wait until every `sync` of its files is durable (an object store starts them all at
    /// once); a sink calls it before it lists its files for a checkpoint.
    fn settle(&self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Recovery is done: drop whatever unfinished writes are left (multipart uploads) —
    /// only those of files named after `lane` when one is given; how many.
    fn end_recovery(&self, lane: Option<&str>) -> Result<usize, SinkError> {
        let _ = lane;
        Ok(0)
    }
    /// Where a published file is, for messages and reports.
    fn published_path(&self, rel: &str) -> String {
        std::path::Path::new(&self.location()).join(rel).display().to_string()
    }
}
