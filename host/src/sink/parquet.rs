//! Parquet files per partition folder, rolled over at a target size or age.
//!
//! One file is open per partition folder at a time (at most [`MAX_OPEN_FILES`]; the least
//! recently written is closed beyond that, bounding memory). Row groups are flushed as they
//! fill, so memory per open file is about one row group. Files are written under hidden
//! temporary names (`.part-….parquet.inprogress`) and renamed into place when complete.
//!
//! With checkpoints ([`CommitMode::AtCheckpoint`]) files outlive checkpoints: at each
//! checkpoint every open file's buffered rows are flushed as a row group and synced, and the
//! metadata of the row groups flushed since the last checkpoint is appended to the file's
//! journal (`.part-….parquet.inprogress.meta`). The checkpoint records both lengths. A file
//! that is complete (size or age reached) waits, sealed, for the next checkpoint and is
//! renamed into place only after that checkpoint is stored. Recovery [`seal`]s an open file
//! by cutting it back to the recorded lengths and writing a footer from the journal.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::file::metadata::{FileMetaData, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter};
use parquet::file::properties::WriterProperties;

use super::{FileStart, SinkError, io_err, sync_dir};
use crate::checkpoint::{FileState, OutputFile, OutputRoot, journal_path, temp_path};
use crate::config::Compression;

/// Open files beyond this are closed, least recently written first.
pub const MAX_OPEN_FILES: usize = 64;

/// Settings of a Parquet sink.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetSettings {
    /// Root folder.
    pub dir: PathBuf,
    /// Schema of the rows written (after partition columns are removed).
    pub schema: SchemaRef,
    /// Codec.
    pub compression: Compression,
    /// Rows per row group.
    pub row_group_rows: usize,
    /// Roll over to a new file past this size.
    pub target_file_bytes: u64,
    /// Roll over to a new file past this age.
    pub max_file_age: Duration,
}

/// When complete files are renamed into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// As soon as they are complete (no checkpoints).
    Immediate,
    /// After the next checkpoint ([`ParquetSink::checkpoint`] then [`ParquetSink::commit_sealed`]).
    AtCheckpoint,
}

/// A file the sink has committed (renamed into place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Final path.
    pub path: PathBuf,
    /// Partition folder, relative to the sink root.
    pub partition: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

struct OpenFile {
    writer: ArrowWriter<File>,
    rel: String,
    rows: u64,
    last_used: u64,
    opened: Instant,
    journal: Option<File>,
    journal_len: u64,
    journaled_row_groups: usize,
}

/// Writes batches into Parquet files under partition folders.
pub struct ParquetSink {
    settings: ParquetSettings,
    props: WriterProperties,
    mode: CommitMode,
    template: FileMetaData,
    open: HashMap<String, OpenFile>,
    tick: u64,
    sealed: Vec<WrittenFile>,
    written: Vec<WrittenFile>,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("dir", &self.settings.dir)
            .field("open", &self.open.len())
            .finish()
    }
}

impl ParquetSink {
    /// A sink writing under `settings.dir` (created on first write).
    pub fn new(settings: ParquetSettings, mode: CommitMode) -> Result<Self, SinkError> {
        let codec = match settings.compression {
            Compression::Snappy => Codec::SNAPPY,
            Compression::Zstd => Codec::ZSTD(ZstdLevel::default()),
            Compression::None => Codec::UNCOMPRESSED,
        };
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(settings.row_group_rows))
            .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
            .build();
        // The file-level metadata every file of this sink gets (schema, Arrow schema, orders).
        let parquet_err = |error| SinkError::Parquet {
            path: settings.dir.clone(),
            error,
        };
        let template = ArrowWriter::try_new(Vec::new(), settings.schema.clone(), Some(props.clone()))
            .and_then(|w| w.close())
            .map_err(parquet_err)?
            .file_metadata()
            .clone();
        Ok(ParquetSink {
            settings,
            props,
            mode,
            template,
            open: HashMap::new(),
            tick: 0,
            sealed: Vec::new(),
            written: Vec::new(),
        })
    }

    fn abs(&self, rel: &str) -> PathBuf {
        self.settings.dir.join(rel)
    }

    /// Write rows into `partition` (a relative folder). `start` names a new file if one is
    /// opened for these rows.
    pub fn write(&mut self, partition: &str, batch: &RecordBatch, start: FileStart) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.tick += 1;
        if !self.open.contains_key(partition) {
            if self.open.len() >= MAX_OPEN_FILES {
                self.close_least_recent()?;
            }
            let file = self.create(partition, start)?;
            self.open.insert(partition.to_owned(), file);
        }
        let target = self.settings.target_file_bytes;
        let max_age = self.settings.max_file_age;
        let tmp = self.abs(&temp_path(&self.open[partition].rel));
        let Some(file) = self.open.get_mut(partition) else {
            unreachable!("inserted above");
        };
        file.writer
            .write(batch)
            .map_err(|error| SinkError::Parquet { path: tmp, error })?;
        file.rows += batch.num_rows() as u64;
        file.last_used = self.tick;
        let size = (file.writer.bytes_written() + file.writer.in_progress_size()) as u64;
        if size >= target || file.opened.elapsed() >= max_age {
            self.close(partition)?;
        }
        Ok(())
    }

    fn create(&self, partition: &str, start: FileStart) -> Result<OpenFile, SinkError> {
        let rel = if partition.is_empty() {
            format!("{}.parquet", start.stem())
        } else {
            format!("{partition}/{}.parquet", start.stem())
        };
        let tmp = self.abs(&temp_path(&rel));
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir).map_err(io_err("creating folder", dir))?;
        }
        let file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        let writer =
            ArrowWriter::try_new(file, self.settings.schema.clone(), Some(self.props.clone())).map_err(|error| {
                SinkError::Parquet {
                    path: tmp.clone(),
                    error,
                }
            })?;
        Ok(OpenFile {
            writer,
            rel,
            rows: 0,
            last_used: self.tick,
            opened: Instant::now(),
            journal: None,
            journal_len: 0,
            journaled_row_groups: 0,
        })
    }

    fn close_least_recent(&mut self) -> Result<(), SinkError> {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, f)| f.last_used)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(partition) => self.close(&partition),
            None => Ok(()),
        }
    }

    /// Finish a file; it is renamed into place now or after the next checkpoint.
    fn close(&mut self, partition: &str) -> Result<(), SinkError> {
        let Some(mut file) = self.open.remove(partition) else {
            return Ok(());
        };
        let tmp = self.abs(&temp_path(&file.rel));
        file.writer.finish().map_err(|error| SinkError::Parquet {
            path: tmp.clone(),
            error,
        })?;
        file.writer.inner_mut().sync_all().map_err(io_err("syncing", &tmp))?;
        let done = WrittenFile {
            path: self.abs(&file.rel),
            partition: partition.to_owned(),
            rows: file.rows,
            bytes: file.writer.bytes_written() as u64,
        };
        match self.mode {
            CommitMode::Immediate => {
                commit(&tmp, &done.path)?;
                self.written.push(done);
            }
            CommitMode::AtCheckpoint => self.sealed.push(done),
        }
        Ok(())
    }

    /// Make every row written so far durable and say which files hold them: open files are
    /// flushed, synced and journaled; files past their age are closed first.
    pub fn checkpoint(&mut self) -> Result<Vec<OutputFile>, SinkError> {
        let max_age = self.settings.max_file_age;
        let aged: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= max_age)
            .map(|(p, _)| p.clone())
            .collect();
        for partition in aged {
            self.close(&partition)?;
        }
        let mut outputs = Vec::with_capacity(self.open.len() + self.sealed.len());
        let mut partitions: Vec<&String> = self.open.keys().collect();
        partitions.sort();
        let partitions: Vec<String> = partitions.into_iter().cloned().collect();
        for partition in partitions {
            let Some(file) = self.open.get_mut(&partition) else {
                continue;
            };
            let tmp = self.settings.dir.join(temp_path(&file.rel));
            let parquet_err = |error| SinkError::Parquet {
                path: tmp.clone(),
                error,
            };
            file.writer.flush().map_err(parquet_err)?;
            file.writer.sync().map_err(io_err("writing", &tmp))?;
            crate::fault::point("row-group-flushed");
            file.writer.inner_mut().sync_data().map_err(io_err("syncing", &tmp))?;
            let journal = self.settings.dir.join(journal_path(&file.rel));
            let new = &file.writer.flushed_row_groups()[file.journaled_row_groups..];
            if !new.is_empty() {
                let rows = new.iter().map(|rg| rg.num_rows()).sum();
                let meta = ParquetMetaData::new(with_rows(&self.template, rows), new.to_vec());
                let mut frame = Vec::new();
                ParquetMetaDataWriter::new(&mut frame, &meta)
                    .finish()
                    .map_err(|error| SinkError::Parquet {
                        path: journal.clone(),
                        error,
                    })?;
                // Drop the footer's length and magic; the frame carries its own length.
                frame.truncate(frame.len() - 8);
                let handle = match &mut file.journal {
                    Some(h) => h,
                    None => file.journal.insert(
                        OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&journal)
                            .map_err(io_err("creating", &journal))?,
                    ),
                };
                handle
                    .write_all(&(frame.len() as u32).to_le_bytes())
                    .and_then(|_| handle.write_all(&frame))
                    .and_then(|_| handle.sync_data())
                    .map_err(io_err("writing", &journal))?;
                file.journal_len += 4 + frame.len() as u64;
                file.journaled_row_groups += new.len();
            }
            outputs.push(OutputFile {
                root: OutputRoot::Sink,
                path: file.rel.clone(),
                state: FileState::Open {
                    len: file.writer.bytes_written() as u64,
                    journal_len: file.journal_len,
                },
            });
        }
        for done in &self.sealed {
            outputs.push(OutputFile {
                root: OutputRoot::Sink,
                path: self.rel(&done.path),
                state: FileState::Sealed,
            });
        }
        Ok(outputs)
    }

    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.settings.dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// After a checkpoint is stored: rename the files it listed as sealed into place.
    pub fn commit_sealed(&mut self) -> Result<(), SinkError> {
        let mut dirs = BTreeSet::new();
        for done in std::mem::take(&mut self.sealed) {
            let rel = self.rel(&done.path);
            let tmp = self.abs(&temp_path(&rel));
            std::fs::rename(&tmp, &done.path).map_err(io_err("renaming into place", &done.path))?;
            crate::fault::point("output-renamed");
            let _ = std::fs::remove_file(self.abs(&journal_path(&rel)));
            if let Some(dir) = done.path.parent() {
                dirs.insert(dir.to_owned());
            }
            self.written.push(done);
        }
        for dir in dirs {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Close every open file (renamed now, or sealed for the next checkpoint).
    pub fn close_all(&mut self) -> Result<(), SinkError> {
        let mut partitions: Vec<String> = self.open.keys().cloned().collect();
        partitions.sort();
        for p in partitions {
            self.close(&p)?;
        }
        Ok(())
    }

    /// Close every open file and return all files this sink committed. With
    /// [`CommitMode::AtCheckpoint`], checkpoint and [`Self::commit_sealed`] first.
    pub fn finish(mut self) -> Result<Vec<WrittenFile>, SinkError> {
        self.close_all()?;
        Ok(self.written)
    }
}

fn with_rows(template: &FileMetaData, rows: i64) -> FileMetaData {
    FileMetaData::new(
        template.version(),
        rows,
        template.created_by().map(str::to_owned),
        template.key_value_metadata().cloned(),
        template.schema_descr_ptr(),
        template.column_orders().cloned(),
    )
}

/// Recovery: cut a temporary Parquet file back to `len` bytes, write a footer for the row
/// groups its journal's first `journal_len` bytes describe, sync it and rename it to `path`.
pub fn seal(tmp: &Path, journal: &Path, len: u64, journal_len: u64, path: &Path) -> Result<u64, SinkError> {
    let parquet_err = |error| SinkError::Parquet {
        path: tmp.to_owned(),
        error,
    };
    let mut frames = Vec::new();
    File::open(journal)
        .and_then(|f| f.take(journal_len).read_to_end(&mut frames))
        .map_err(io_err("reading", journal))?;
    let mut row_groups = Vec::new();
    let mut template = None;
    let mut rest = frames.as_slice();
    while rest.len() >= 4 {
        let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(frame) = rest.get(4..4 + n) else { break };
        let meta = ParquetMetaDataReader::decode_metadata(frame).map_err(parquet_err)?;
        template.get_or_insert_with(|| meta.file_metadata().clone());
        row_groups.extend(meta.row_groups().iter().cloned());
        rest = &rest[4 + n..];
    }
    let Some(template) = template else {
        return Err(SinkError::Io {
            action: "sealing",
            path: tmp.to_owned(),
            error: std::io::Error::other("its journal holds no row group"),
        });
    };
    let rows = row_groups.iter().map(|rg| rg.num_rows()).sum();
    let meta = ParquetMetaData::new(with_rows(&template, rows), row_groups);
    let mut file = OpenOptions::new()
        .write(true)
        .open(tmp)
        .map_err(io_err("opening", tmp))?;
    file.set_len(len)
        .and_then(|_| file.seek(SeekFrom::End(0)))
        .map_err(io_err("truncating", tmp))?;
    let mut footer = Vec::new();
    ParquetMetaDataWriter::new(&mut footer, &meta)
        .finish()
        .map_err(parquet_err)?;
    file.write_all(&footer)
        .and_then(|_| file.sync_all())
        .map_err(io_err("writing", tmp))?;
    commit(tmp, path)?;
    let _ = std::fs::remove_file(journal);
    Ok(rows as u64)
}

/// Rename a finished temporary file into place and make the rename durable.
fn commit(tmp: &Path, path: &Path) -> Result<(), SinkError> {
    std::fs::rename(tmp, path).map_err(io_err("renaming into place", path))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn batch(n: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("device", DataType::Utf8, false),
            Field::new("t", DataType::Float64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("dev-{i}")))),
                Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
            ],
        )
        .expect("batch")
    }

    fn settings(dir: &Path, target: u64) -> ParquetSettings {
        ParquetSettings {
            dir: dir.to_owned(),
            schema: batch(0).schema(),
            compression: Compression::Snappy,
            row_group_rows: 1024,
            target_file_bytes: target,
            max_file_age: Duration::from_secs(3600),
        }
    }

    fn read_rows(path: &Path) -> usize {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader");
        reader.map(|b| b.expect("batch").num_rows()).sum()
    }

    #[test]
    fn files_appear_only_when_complete_and_hold_every_row() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut sink = ParquetSink::new(settings(tmp.path(), 1 << 30), CommitMode::Immediate).expect("sink");
        sink.write("a=1", &batch(100), FileStart { seq: 7, part: 0 })
            .expect("write");
        sink.write("a=1", &batch(50), FileStart { seq: 8, part: 0 })
            .expect("write");
        let visible: Vec<_> = std::fs::read_dir(tmp.path().join("a=1"))
            .expect("dir")
            .map(|e| e.expect("e").file_name())
            .collect();
        assert_eq!(
            visible,
            vec![std::ffi::OsString::from(".part-000000000007-0000.parquet.inprogress")]
        );
        let files = sink.finish().expect("finish");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, tmp.path().join("a=1/part-000000000007-0000.parquet"));
        assert_eq!(read_rows(&files[0].path), 150);
        assert_eq!(files[0].rows, 150);
    }

    #[test]
    fn a_file_rolls_over_at_the_target_size_and_names_follow_input_positions() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut sink = ParquetSink::new(settings(tmp.path(), 16 * 1024), CommitMode::Immediate).expect("sink");
        for seq in 0..20 {
            sink.write("", &batch(2000), FileStart { seq, part: 0 }).expect("write");
        }
        let files = sink.finish().expect("finish");
        assert!(files.len() > 1, "{files:?}");
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 40_000);
        assert_eq!(files.iter().map(|f| read_rows(&f.path) as u64).sum::<u64>(), 40_000);
        assert!(files[0].path.ends_with("part-000000000000-0000.parquet"));
    }

    #[test]
    fn an_open_file_cut_back_to_a_checkpoint_is_a_valid_file_with_exactly_its_rows() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut sink = ParquetSink::new(settings(tmp.path(), 1 << 30), CommitMode::AtCheckpoint).expect("sink");
        sink.write("a=1", &batch(100), FileStart { seq: 0, part: 0 })
            .expect("write");
        sink.checkpoint().expect("first checkpoint");
        sink.write("a=1", &batch(30), FileStart { seq: 1, part: 0 })
            .expect("write");
        let outputs = sink.checkpoint().expect("second checkpoint");
        let FileState::Open { len, journal_len } = outputs[0].state else {
            panic!("open file expected: {outputs:?}");
        };
        // Rows after the checkpoint, some flushed as row groups, then a crash (no footer).
        sink.write("a=1", &batch(5000), FileStart { seq: 2, part: 0 })
            .expect("write");
        for f in sink.open.values_mut() {
            f.writer.flush().expect("flush");
            f.writer.sync().expect("sync");
        }
        std::mem::forget(sink);
        let rel = &outputs[0].path;
        let final_path = tmp.path().join(rel);
        let rows = seal(
            &tmp.path().join(temp_path(rel)),
            &tmp.path().join(journal_path(rel)),
            len,
            journal_len,
            &final_path,
        )
        .expect("seal");
        assert_eq!(rows, 130);
        assert_eq!(read_rows(&final_path), 130);
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("a=1"))
            .expect("dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["part-000000000000-0000.parquet".to_owned()]);
    }

    #[test]
    fn complete_files_wait_for_the_checkpoint_before_they_appear() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut sink = ParquetSink::new(settings(tmp.path(), 16 * 1024), CommitMode::AtCheckpoint).expect("sink");
        for seq in 0..10 {
            sink.write("", &batch(2000), FileStart { seq, part: 0 }).expect("write");
        }
        let visible = |dir: &Path| {
            std::fs::read_dir(dir)
                .expect("dir")
                .filter(|e| !e.as_ref().expect("e").file_name().to_string_lossy().starts_with('.'))
                .count()
        };
        assert_eq!(visible(tmp.path()), 0);
        let outputs = sink.checkpoint().expect("checkpoint");
        assert!(
            outputs.iter().filter(|o| o.state == FileState::Sealed).count() > 1,
            "{outputs:?}"
        );
        sink.commit_sealed().expect("commit");
        assert!(visible(tmp.path()) > 1);
    }
}
