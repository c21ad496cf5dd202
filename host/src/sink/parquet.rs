//! Parquet files per partition folder, rolled over at a target size.
//!
//! One file is open per partition folder at a time (at most [`MAX_OPEN_FILES`]; the least
//! recently written is closed beyond that, bounding memory). Row groups are flushed as they
//! fill, so memory per open file is about one row group. A file is closed when it reaches
//! the target size or when the sink is closed, then synced and renamed into place.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{FileStart, SinkError, io_err, sync_dir};
use crate::config::Compression;

/// Open files beyond this are closed, least recently written first.
pub const MAX_OPEN_FILES: usize = 64;

/// Settings of a Parquet sink.
#[derive(Debug, Clone)]
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
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
    last_used: u64,
}

/// Writes batches into Parquet files under partition folders.
pub struct ParquetSink {
    settings: ParquetSettings,
    props: WriterProperties,
    open: HashMap<String, OpenFile>,
    tick: u64,
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
    pub fn new(settings: ParquetSettings) -> Self {
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
        ParquetSink {
            settings,
            props,
            open: HashMap::new(),
            tick: 0,
            written: Vec::new(),
        }
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
        let Some(file) = self.open.get_mut(partition) else {
            unreachable!("inserted above");
        };
        file.writer.write(batch).map_err(|error| SinkError::Parquet {
            path: file.tmp.clone(),
            error,
        })?;
        file.rows += batch.num_rows() as u64;
        file.last_used = self.tick;
        let size = (file.writer.bytes_written() + file.writer.in_progress_size()) as u64;
        if size >= target {
            self.close(partition)?;
        }
        Ok(())
    }

    fn create(&self, partition: &str, start: FileStart) -> Result<OpenFile, SinkError> {
        let dir = if partition.is_empty() {
            self.settings.dir.clone()
        } else {
            self.settings.dir.join(partition)
        };
        std::fs::create_dir_all(&dir).map_err(io_err("creating folder", &dir))?;
        let name = format!("{}.parquet", start.stem());
        let tmp = dir.join(format!(".{name}.inprogress"));
        let path = dir.join(name);
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
            tmp,
            path,
            rows: 0,
            last_used: self.tick,
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

    fn close(&mut self, partition: &str) -> Result<(), SinkError> {
        let Some(mut file) = self.open.remove(partition) else {
            return Ok(());
        };
        file.writer.finish().map_err(|error| SinkError::Parquet {
            path: file.tmp.clone(),
            error,
        })?;
        file.writer
            .inner_mut()
            .sync_all()
            .map_err(io_err("syncing", &file.tmp))?;
        let bytes = file.writer.bytes_written() as u64;
        drop(file.writer);
        commit(&file.tmp, &file.path)?;
        self.written.push(WrittenFile {
            path: file.path,
            partition: partition.to_owned(),
            rows: file.rows,
            bytes,
        });
        Ok(())
    }

    /// Close every open file and return all files this sink committed.
    pub fn finish(mut self) -> Result<Vec<WrittenFile>, SinkError> {
        let mut partitions: Vec<String> = self.open.keys().cloned().collect();
        partitions.sort();
        for p in partitions {
            self.close(&p)?;
        }
        Ok(self.written)
    }
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
        let mut sink = ParquetSink::new(settings(tmp.path(), 1 << 30));
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
        let mut sink = ParquetSink::new(settings(tmp.path(), 16 * 1024));
        for seq in 0..20 {
            sink.write("", &batch(2000), FileStart { seq, part: 0 }).expect("write");
        }
        let files = sink.finish().expect("finish");
        assert!(files.len() > 1, "{files:?}");
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 40_000);
        assert_eq!(files.iter().map(|f| read_rows(&f.path) as u64).sum::<u64>(), 40_000);
        assert!(files[0].path.ends_with("part-000000000000-0000.parquet"));
    }
}
