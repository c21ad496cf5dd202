//! Parquet files per partition folder, rolled over at a target size or age.
//!
//! One file is open per partition folder at a time (at most [`MAX_OPEN_FILES`]; the least
//! recently written is closed beyond that, bounding memory). Row groups are flushed as they
//! fill, so memory per open file is about one row group. Files are written under hidden
//! temporary names (`.part-….parquet.inprogress`) and renamed into place when complete.
//!
//! With checkpoints (not `immediate`) files outlive checkpoints: at each
//! checkpoint every open file's buffered rows are flushed as a row group and synced, and the
//! metadata of the row groups flushed since the last checkpoint is appended to the file's
//! journal (`.part-….parquet.inprogress.meta`). The checkpoint records both lengths. A file
//! that is complete (size or age reached) waits, sealed, for the next checkpoint and is
//! renamed into place only after that checkpoint is stored. Recovery seals an open file
//! by cutting it back to the recorded lengths and writing a footer from the journal
//! ([`footer_from_journal`]).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::file::metadata::FileMetaData;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

mod journal;
mod writer;

pub use journal::footer_from_journal;
use writer::FileWriter;

use super::completed::Completed;
use super::partition::Partitioner;
use super::storage::{StagedFile, Storage};
use super::{FileStart, Sealing, Sink, SinkError, SinkInput, SinkReport, TwoPhase, WriteAt, WrittenFile};
use crate::checkpoint::{FileState, OutputFile};
use crate::config::Compression;

/// Open files beyond this are closed, least recently written first.
pub const MAX_OPEN_FILES: usize = 64;

/// Settings of a Parquet sink.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetSettings {
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

struct OpenFile {
    writer: FileWriter<Box<dyn StagedFile>>,
    rel: String,
    rows: u64,
    last_used: u64,
    opened: Instant,
    journal: Option<Box<dyn StagedFile>>,
    journal_len: u64,
    journaled_row_groups: usize,
}

/// Writes batches into Parquet files under partition folders.
pub struct ParquetSink {
    name: String,
    storage: Box<dyn Storage>,
    settings: ParquetSettings,
    partitioner: Partitioner,
    props: WriterProperties,
    template: FileMetaData,
    open: HashMap<String, OpenFile>,
    tick: u64,
    completed: Completed,
    rows: u64,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("name", &self.name)
            .field("open", &self.open.len())
            .finish()
    }
}

/// The dictionary of a column chunk may grow to this many bytes before the column falls back
/// to plain encoding for the rest of the chunk. arrow-rs's default, 1 MiB, is the whole row
/// group (131,072 rows) for a float64 column: a column of distinct values (a score, a
/// measurement with many digits) was interned value by value through the whole row group
/// and then written as a dictionary as large as the data, plus the indices. At 256 KiB such
/// a column gives up after a quarter of the row group. Measured on the sensor bench: the
/// same size for the map + filter output (26.3 MB; its low-cardinality columns keep their
/// dictionaries), 7% smaller with the anomaly stage's score column, and about 9% less CPU.
///
/// That is 32,768 values of an 8-byte column; a 4-byte column (float32, int32, date32) gets
/// the same number of values, half the bytes, rather than twice the values to intern before
/// it gives up.
const DICTIONARY_PAGE_LIMIT: usize = 256 * 1024;

impl ParquetSink {
    /// A sink called `name` writing into `storage`, rows spread over folders by
    /// `partitioner`; `immediate` publishes complete files at once (no checkpoints).
    pub fn new(
        name: String,
        storage: Box<dyn Storage>,
        settings: ParquetSettings,
        partitioner: Partitioner,
        immediate: bool,
    ) -> Result<Self, SinkError> {
        let codec = match settings.compression {
            Compression::Snappy => Codec::SNAPPY,
            Compression::Zstd => Codec::ZSTD(ZstdLevel::default()),
            Compression::None => Codec::UNCOMPRESSED,
        };
        let mut props = WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(settings.row_group_rows))
            .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT);
        for field in settings.schema.fields() {
            if field.data_type().primitive_width() == Some(4) {
                let column = ColumnPath::from(field.name().as_str());
                props = props.set_column_dictionary_page_size_limit(column, DICTIONARY_PAGE_LIMIT / 2);
            }
        }
        let props = props.build();
        // The file-level metadata every file of this sink gets (schema, Arrow schema, orders).
        let parquet_err = |error| SinkError::Parquet {
            path: storage.location().into(),
            error,
        };
        let template = ArrowWriter::try_new(Vec::new(), settings.schema.clone(), Some(props.clone()))
            .and_then(|w| w.close())
            .map_err(parquet_err)?
            .file_metadata()
            .clone();
        Ok(ParquetSink {
            name,
            storage,
            settings,
            partitioner,
            props,
            template,
            open: HashMap::new(),
            tick: 0,
            completed: Completed::new(immediate),
            rows: 0,
        })
    }

    /// A file's path for messages and reports.
    fn abs(&self, rel: &str) -> PathBuf {
        PathBuf::from(self.storage.published_path(rel))
    }

    /// Write rows into `partition` (a relative folder). `start` names a new file if one is
    /// opened for these rows.
    fn write_folder(&mut self, partition: &str, batch: &RecordBatch, start: FileStart) -> Result<(), SinkError> {
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
        let tmp = self.abs(&self.open[partition].rel);
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
        let file = self.storage.create(&rel)?;
        let writer = FileWriter::try_new(file, self.settings.schema.clone(), self.props.clone()).map_err(|error| {
            SinkError::Parquet {
                path: self.abs(&rel),
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
        let path = self.abs(&file.rel);
        file.writer.finish().map_err(|error| SinkError::Parquet {
            path: path.clone(),
            error,
        })?;
        file.writer
            .inner_mut()
            .flush()
            .and_then(|_| file.writer.inner_mut().seal())
            .map_err(|error| SinkError::Io {
                action: "syncing",
                path: path.clone(),
                error,
            })?;
        let done = WrittenFile {
            path: file.rel.clone().into(),
            partition: partition.to_owned(),
            rows: file.rows,
            bytes: file.writer.bytes_written() as u64,
        };
        let upload = file.writer.inner().upload();
        self.completed.add(self.storage.as_ref(), done, upload)?;
        Ok(())
    }

    /// Make every row written so far durable and say which files hold them: open files are
    /// flushed, synced and journaled; files past their age are closed first.
    fn checkpoint(&mut self) -> Result<Vec<OutputFile>, SinkError> {
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
        let mut outputs = Vec::with_capacity(self.open.len() + self.completed.waiting());
        let mut partitions: Vec<&String> = self.open.keys().collect();
        partitions.sort();
        let partitions: Vec<String> = partitions.into_iter().cloned().collect();
        for partition in partitions {
            let Some(file) = self.open.get_mut(&partition) else {
                continue;
            };
            let tmp = std::path::Path::new(&self.storage.location()).join(&file.rel);
            let parquet_err = |error| SinkError::Parquet {
                path: tmp.clone(),
                error,
            };
            let io = |action| {
                let tmp = tmp.clone();
                move |error| SinkError::Io {
                    action,
                    path: tmp,
                    error,
                }
            };
            file.writer.flush().map_err(parquet_err)?;
            file.writer.sync().map_err(io("writing"))?;
            crate::fault::point("row-group-flushed");
            file.writer.inner_mut().sync().map_err(io("syncing"))?;
            let new = &file.writer.flushed_row_groups()[file.journaled_row_groups..];
            if !new.is_empty() {
                let frame = journal::frame(&self.template, new).map_err(parquet_err)?;
                let handle = match &mut file.journal {
                    Some(h) => h,
                    None => file.journal.insert(self.storage.journal(&file.rel)?),
                };
                handle
                    .write_all(&frame)
                    .and_then(|_| handle.flush())
                    .and_then(|_| handle.sync())
                    .map_err(io("writing the journal of"))?;
                file.journal_len += frame.len() as u64;
                file.journaled_row_groups += new.len();
            }
            outputs.push(OutputFile {
                root: self.name.clone(),
                path: file.rel.clone(),
                state: FileState::Open {
                    len: file.writer.bytes_written() as u64,
                    journal_len: file.journal_len,
                },
                upload: file.writer.inner().upload(),
            });
        }
        self.storage.settle()?;
        outputs.extend(self.completed.listed(&self.name));
        Ok(outputs)
    }
}

impl TwoPhase for ParquetSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn sealing(&self) -> Sealing {
        Sealing::Footer
    }

    fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    fn pre_commit(&mut self) -> Result<Vec<OutputFile>, SinkError> {
        self.checkpoint()
    }

    /// After a checkpoint is stored: publish the files it listed as sealed.
    fn commit(&mut self) -> Result<(), SinkError> {
        self.completed.publish(self.storage.as_ref())
    }

    /// Close every open file (published now, or sealed for the next checkpoint).
    fn close_all(&mut self) -> Result<(), SinkError> {
        let mut partitions: Vec<String> = self.open.keys().cloned().collect();
        partitions.sort();
        for p in partitions {
            self.close(&p)?;
        }
        Ok(())
    }

    fn report(&self) -> SinkReport {
        SinkReport {
            name: self.name.clone(),
            location: self.storage.location(),
            rows: self.rows,
            files: self.completed.published().to_vec(),
        }
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, input: SinkInput<'_>, at: WriteAt) -> Result<(), SinkError> {
        let SinkInput::Rows(batch) = input else {
            unreachable!("the plan gives a Parquet sink rows only");
        };
        for (folder, rows) in self.partitioner.split(batch, at.ingest_micros)? {
            self.rows += rows.num_rows() as u64;
            self.write_folder(&folder, &rows, at.start)?;
        }
        Ok(())
    }

    fn misfits(&self, batch: &RecordBatch) -> Result<Vec<(u32, String)>, SinkError> {
        Ok(self.partitioner.misfits(batch)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use std::fs::File;
    use std::path::Path;

    use super::*;
    use crate::checkpoint::protocol::{journal_path, temp_path};
    use crate::sink::storage::LocalDir;

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

    fn sink(dir: &Path, target: u64, immediate: bool) -> ParquetSink {
        let settings = ParquetSettings {
            schema: batch(0).schema(),
            compression: Compression::Snappy,
            row_group_rows: 1024,
            target_file_bytes: target,
            max_file_age: Duration::from_secs(3600),
        };
        let storage = Box::new(LocalDir::new(dir.to_owned(), Vec::new()));
        ParquetSink::new("sink".into(), storage, settings, Partitioner::None, immediate).expect("sink")
    }

    /// A dictionary holds as many values of a 4-byte column as of an 8-byte one.
    #[test]
    fn dictionaries_are_bounded_in_values_whatever_the_width() {
        let dir = tempfile::tempdir().expect("temp dir");
        let schema = Arc::new(Schema::new(vec![
            Field::new("f32", DataType::Float32, true),
            Field::new("i32", DataType::Int32, true),
            Field::new("f64", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let settings = ParquetSettings {
            schema,
            compression: Compression::Snappy,
            row_group_rows: 1024,
            target_file_bytes: u64::MAX,
            max_file_age: Duration::from_secs(3600),
        };
        let storage = Box::new(LocalDir::new(dir.path().to_owned(), Vec::new()));
        let sink = ParquetSink::new("sink".into(), storage, settings, Partitioner::None, false).expect("sink");
        let limit = |c: &str| sink.props.column_dictionary_page_size_limit(&ColumnPath::from(c));
        assert_eq!(limit("f32"), 128 * 1024);
        assert_eq!(limit("i32"), 128 * 1024);
        assert_eq!(limit("f64"), 256 * 1024);
        assert_eq!(limit("s"), 256 * 1024);
    }

    fn finish(mut sink: ParquetSink) -> Vec<WrittenFile> {
        sink.close_all().expect("close");
        sink.report().files
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
        let mut sink = sink(tmp.path(), 1 << 30, true);
        sink.write_folder("a=1", &batch(100), FileStart { seq: 7, part: 0 })
            .expect("write");
        sink.write_folder("a=1", &batch(50), FileStart { seq: 8, part: 0 })
            .expect("write");
        let visible: Vec<_> = std::fs::read_dir(tmp.path().join("a=1"))
            .expect("dir")
            .map(|e| e.expect("e").file_name())
            .collect();
        assert_eq!(
            visible,
            vec![std::ffi::OsString::from(".part-000000000007-0000.parquet.inprogress")]
        );
        let files = finish(sink);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, tmp.path().join("a=1/part-000000000007-0000.parquet"));
        assert_eq!(read_rows(&files[0].path), 150);
        assert_eq!(files[0].rows, 150);
    }

    #[test]
    fn a_file_rolls_over_at_the_target_size_and_names_follow_input_positions() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut sink = sink(tmp.path(), 16 * 1024, true);
        for seq in 0..20 {
            sink.write_folder("", &batch(2000), FileStart { seq, part: 0 })
                .expect("write");
        }
        let files = finish(sink);
        assert!(files.len() > 1, "{files:?}");
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 40_000);
        assert_eq!(files.iter().map(|f| read_rows(&f.path) as u64).sum::<u64>(), 40_000);
        assert!(files[0].path.ends_with("part-000000000000-0000.parquet"));
    }

    #[test]
    fn an_open_file_cut_back_to_a_checkpoint_is_a_valid_file_with_exactly_its_rows() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut sink = sink(tmp.path(), 1 << 30, false);
        sink.write_folder("a=1", &batch(100), FileStart { seq: 0, part: 0 })
            .expect("write");
        sink.pre_commit().expect("first checkpoint");
        sink.write_folder("a=1", &batch(30), FileStart { seq: 1, part: 0 })
            .expect("write");
        let outputs = sink.pre_commit().expect("second checkpoint");
        let FileState::Open { len, journal_len } = outputs[0].state else {
            panic!("open file expected: {outputs:?}");
        };
        // Rows after the checkpoint, some flushed as row groups, then a crash (no footer).
        sink.write_folder("a=1", &batch(5000), FileStart { seq: 2, part: 0 })
            .expect("write");
        for f in sink.open.values_mut() {
            f.writer.flush().expect("flush");
            f.writer.sync().expect("sync");
        }
        std::mem::forget(sink);
        let rel = &outputs[0].path;
        let final_path = tmp.path().join(rel);
        assert!(tmp.path().join(temp_path(rel)).exists() && tmp.path().join(journal_path(rel)).exists());
        let storage = LocalDir::new(tmp.path().to_owned(), Vec::new());
        let footer = footer_from_journal(&storage.read_journal(rel, journal_len).expect("journal")).expect("footer");
        storage.seal(&outputs[0], len, &footer).expect("seal");
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
        let mut sink = sink(tmp.path(), 16 * 1024, false);
        for seq in 0..10 {
            sink.write_folder("", &batch(2000), FileStart { seq, part: 0 })
                .expect("write");
        }
        let visible = |dir: &Path| {
            std::fs::read_dir(dir)
                .expect("dir")
                .filter(|e| !e.as_ref().expect("e").file_name().to_string_lossy().starts_with('.'))
                .count()
        };
        assert_eq!(visible(tmp.path()), 0);
        let outputs = sink.pre_commit().expect("checkpoint");
        assert!(
            outputs.iter().filter(|o| o.state == FileState::Sealed).count() > 1,
            "{outputs:?}"
        );
        sink.commit().expect("commit");
        assert!(visible(tmp.path()) > 1);
    }
}
