//! The files a sink has completed: sealed (waiting for the checkpoint that lists them) or
//! published. Shared by every file-writing sink, so the order "sealed, listed, then
//! published" is written once.

use super::storage::Storage;
use super::{SinkError, WrittenFile};
use crate::checkpoint::{FileState, OutputFile, Upload};

/// Complete files of one sink, by path relative to its storage.
#[derive(Debug, Default)]
pub(crate) struct Completed {
    /// Publish at once (runs without checkpoints) rather than after the next checkpoint.
    immediate: bool,
    sealed: Vec<(WrittenFile, Option<Upload>)>,
    published: Vec<WrittenFile>,
}

impl Completed {
    pub(crate) fn new(immediate: bool) -> Self {
        Completed {
            immediate,
            ..Completed::default()
        }
    }

    /// A file is complete and synced under its temporary name (`done.path` relative); on an
    /// object store `upload` holds it.
    pub(crate) fn add(
        &mut self,
        storage: &dyn Storage,
        done: WrittenFile,
        upload: Option<Upload>,
    ) -> Result<(), SinkError> {
        self.sealed.push((done, upload));
        if self.immediate {
            self.publish(storage)?;
        }
        Ok(())
    }

    /// The sealed files, as the next checkpoint lists them.
    pub(crate) fn listed(&self, sink: &str) -> impl Iterator<Item = OutputFile> + '_ {
        let sink = sink.to_owned();
        self.sealed.iter().map(move |(done, upload)| OutputFile {
            root: sink.clone(),
            path: done.path.to_string_lossy().into_owned(),
            state: FileState::Sealed,
            upload: upload.clone(),
        })
    }

    /// Publish the sealed files (after the checkpoint listing them is stored).
    pub(crate) fn publish(&mut self, storage: &dyn Storage) -> Result<(), SinkError> {
        let listed: Vec<OutputFile> = self.listed("").collect();
        storage.publish(&listed)?;
        let sealed = std::mem::take(&mut self.sealed);
        self.published.extend(sealed.into_iter().map(|(mut done, _)| {
            done.path = storage.published_path(&done.path.to_string_lossy()).into();
            done
        }));
        Ok(())
    }

    /// The files published, with their paths under the storage's location.
    pub(crate) fn published(&self) -> &[WrittenFile] {
        &self.published
    }

    /// How many files wait for a checkpoint.
    pub(crate) fn waiting(&self) -> usize {
        self.sealed.len()
    }
}
