//! The raw archive: records exactly as the source framed them, newline-delimited and
//! gzip-compressed, in ingest-time folders (Firehose's `YYYY/MM/DD/HH/` by default), files
//! rolled over by size or age like Parquet files.
//!
//! Durability without closing files: at each checkpoint the open file's gzip member is
//! finished and synced, and the next records start a new member. Concatenated members are
//! one valid gzip stream (RFC 1952; `gunzip`, `zcat`, DuckDB and Athena read them), so
//! cutting a file back to a checkpoint's length leaves a valid file holding exactly that
//! checkpoint's records.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::completed::Completed;
use super::partition::Partitioner;
use super::storage::{StagedFile, Storage};
use super::{FileStart, Sealing, Sink, SinkError, SinkInput, SinkReport, TwoPhase, WriteAt, WrittenFile};
use crate::checkpoint::{FileState, OutputFile};

/// Settings of a raw sink.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSettings {
    /// Roll over to a new file past this many compressed bytes.
    pub target_file_bytes: u64,
    /// Roll over to a new file past this age.
    pub max_file_age: Duration,
}

struct OpenFile {
    rel: String,
    folder: String,
    /// The current gzip member; `None` right after a checkpoint finished the last one.
    member: Option<GzEncoder<Vec<u8>>>,
    file: Box<dyn StagedFile>,
    /// Compressed bytes written to the file (all finished members).
    len: u64,
    records: u64,
    opened: Instant,
}

/// Writes raw records into gzip files under ingest-time folders.
pub struct RawSink {
    name: String,
    storage: Box<dyn Storage>,
    settings: RawSettings,
    partitioner: Partitioner,
    open: HashMap<String, OpenFile>,
    completed: Completed,
    records: u64,
}

impl std::fmt::Debug for RawSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSink").field("name", &self.name).finish()
    }
}

/// Uncompressed bytes buffered in a member before they are compressed into the file.
const MEMBER_FLUSH: usize = 4 << 20;

impl RawSink {
    /// A raw sink called `name` over `storage`; `immediate` publishes files as soon as they
    /// are complete (runs without checkpoints).
    pub fn new(
        name: String,
        storage: Box<dyn Storage>,
        settings: RawSettings,
        partitioner: Partitioner,
        immediate: bool,
    ) -> Self {
        RawSink {
            name,
            storage,
            settings,
            partitioner,
            open: HashMap::new(),
            completed: Completed::new(immediate),
            records: 0,
        }
    }

    fn file(&mut self, folder: String, start: FileStart) -> Result<&mut OpenFile, SinkError> {
        if !self.open.contains_key(&folder) {
            let rel = if folder.is_empty() {
                format!("{}.gz", start.stem())
            } else {
                format!("{folder}/{}.gz", start.stem())
            };
            let file = self.storage.create(&rel)?;
            self.open.insert(
                folder.clone(),
                OpenFile {
                    rel,
                    folder: folder.clone(),
                    member: None,
                    file,
                    len: 0,
                    records: 0,
                    opened: Instant::now(),
                },
            );
        }
        Ok(self.open.get_mut(&folder).expect("inserted above"))
    }

    /// Finish the file's gzip member (if any) and write it out; returns the file's length.
    fn end_member(&self, f: &mut OpenFile) -> Result<(), SinkError> {
        if let Some(member) = f.member.take() {
            let bytes = member.finish().map_err(|e| self.io("compressing", e))?;
            f.file.write_all(&bytes).map_err(|e| self.io("writing", e))?;
            f.len += bytes.len() as u64;
        }
        Ok(())
    }

    fn io(&self, action: &'static str, error: std::io::Error) -> SinkError {
        SinkError::Io {
            action,
            path: self.storage.location().into(),
            error,
        }
    }

    /// Finish a file; it is published now or after the next checkpoint.
    fn close(&mut self, folder: &str) -> Result<(), SinkError> {
        let Some(mut f) = self.open.remove(folder) else {
            return Ok(());
        };
        self.end_member(&mut f)?;
        f.file
            .flush()
            .and_then(|_| f.file.seal())
            .map_err(|e| self.io("syncing", e))?;
        let upload = f.file.upload();
        let done = WrittenFile {
            path: f.rel.clone().into(),
            partition: f.folder,
            rows: f.records,
            bytes: f.len,
        };
        self.completed.add(self.storage.as_ref(), done, upload)?;
        Ok(())
    }
}

impl TwoPhase for RawSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn sealing(&self) -> Sealing {
        Sealing::CutBack
    }

    fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    fn pre_commit(&mut self) -> Result<Vec<OutputFile>, SinkError> {
        let max_age = self.settings.max_file_age;
        let aged: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= max_age)
            .map(|(k, _)| k.clone())
            .collect();
        for folder in aged {
            self.close(&folder)?;
        }
        let mut folders: Vec<String> = self.open.keys().cloned().collect();
        folders.sort();
        let mut outputs = Vec::with_capacity(folders.len() + self.completed.waiting());
        for folder in folders {
            let mut f = self.open.remove(&folder).expect("listed above");
            self.end_member(&mut f)?;
            f.file
                .flush()
                .and_then(|_| f.file.sync())
                .map_err(|e| self.io("syncing", e))?;
            outputs.push(OutputFile {
                root: self.name.clone(),
                path: f.rel.clone(),
                state: FileState::Open {
                    len: f.len,
                    journal_len: 0,
                },
                upload: f.file.upload(),
            });
            self.open.insert(folder, f);
        }
        self.storage.settle()?;
        outputs.extend(self.completed.listed(&self.name));
        Ok(outputs)
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        self.completed.publish(self.storage.as_ref())
    }

    fn close_all(&mut self) -> Result<(), SinkError> {
        let mut folders: Vec<String> = self.open.keys().cloned().collect();
        folders.sort();
        for folder in folders {
            self.close(&folder)?;
        }
        Ok(())
    }

    fn report(&self) -> SinkReport {
        SinkReport {
            name: self.name.clone(),
            location: self.storage.location(),
            rows: self.records,
            files: self.completed.published().to_vec(),
        }
    }
}

impl Sink for RawSink {
    fn write(&mut self, input: SinkInput<'_>, at: WriteAt) -> Result<(), SinkError> {
        let SinkInput::Records { data, count } = input else {
            unreachable!("the plan gives a raw sink the source's records only");
        };
        if count == 0 {
            return Ok(());
        }
        let folder = self.partitioner.ingest_folder(at.ingest_micros);
        let (target, max_age) = (self.settings.target_file_bytes, self.settings.max_file_age);
        let f = self.file(folder.clone(), at.start)?;
        let member = f
            .member
            .get_or_insert_with(|| GzEncoder::new(Vec::with_capacity(MEMBER_FLUSH), Compression::default()));
        member.write_all(data).map_err(|error| SinkError::Io {
            action: "compressing",
            path: f.rel.clone().into(),
            error,
        })?;
        f.records += count as u64;
        // Compressed output so far moves to the file; the member stays open.
        let out = std::mem::take(member.get_mut());
        f.file.write_all(&out).map_err(|error| SinkError::Io {
            action: "writing",
            path: f.rel.clone().into(),
            error,
        })?;
        f.len += out.len() as u64;
        let full = f.len >= target || f.opened.elapsed() >= max_age;
        self.records += count as u64;
        if full {
            self.close(&folder)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::MultiGzDecoder;

    use super::*;
    use crate::checkpoint::protocol::temp_path;
    use crate::sink::storage::LocalDir;

    fn sink(dir: &std::path::Path) -> RawSink {
        let storage = Box::new(LocalDir::new(dir.to_owned(), Vec::new()));
        let settings = RawSettings {
            target_file_bytes: 1 << 30,
            max_file_age: Duration::from_secs(3600),
        };
        RawSink::new("raw".into(), storage, settings, Partitioner::None, false)
    }

    fn at(seq: u64) -> WriteAt {
        WriteAt {
            start: FileStart { seq, part: 0 },
            ingest_micros: 0,
        }
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut text = String::new();
        MultiGzDecoder::new(bytes).read_to_string(&mut text).expect("gzip");
        text
    }

    #[test]
    fn a_file_cut_back_to_a_checkpoint_is_valid_gzip_holding_exactly_its_records() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut raw = sink(tmp.path());
        raw.write(
            SinkInput::Records {
                data: b"a\nb\n",
                count: 2,
            },
            at(0),
        )
        .expect("write");
        raw.pre_commit().expect("checkpoint 1");
        raw.write(
            SinkInput::Records {
                data: b"{\"c\":\n1}\n",
                count: 1,
            },
            at(1),
        )
        .expect("write");
        let listed = raw.pre_commit().expect("checkpoint 2");
        let FileState::Open { len, .. } = listed[0].state else {
            panic!("an open file: {listed:?}");
        };
        // Records after the checkpoint reach the file, then the process dies.
        raw.write(
            SinkInput::Records {
                data: b"lost\n",
                count: 1,
            },
            at(2),
        )
        .expect("write");
        let rel = listed[0].path.clone();
        // (Made durable as a third checkpoint would, which never gets stored.)
        raw.pre_commit().expect("flushed");
        drop(raw);
        let storage = LocalDir::new(tmp.path().to_owned(), Vec::new());
        let whole = std::fs::read(tmp.path().join(temp_path(&rel))).expect("read");
        assert!(whole.len() as u64 > len, "the later records reached the file");
        storage.seal(&listed[0], len, &[]).expect("seal");
        let bytes = std::fs::read(tmp.path().join(&rel)).expect("read");
        assert_eq!(gunzip(&bytes), "a\nb\n{\"c\":\n1}\n");
    }
}
