//! Dead letters: records that could not be decoded, were rejected by a transform, or were in
//! a batch a transform failed on. Each is one JSON line saying why, where it failed and
//! where it came from, with the record itself, so nothing is ever dropped silently.
//!
//! ```json
//! {"reason":"…","stage":"decode","source":{"file":"data/a.ndjson","line":12,"offset":1534},"raw":"{\"client_id\":…"}
//! {"reason":"…","stage":"mapping","source":{"file":"data/a.ndjson","line":40,"offset":5210},"record":{…}}
//! ```
//!
//! A transform's row names its own record when the transform gives row lineage (every stock
//! transform does, see `ROW_COLUMN` in the contract); otherwise, and for rows a stage emitted
//! from no single input row, it names its batch's range:
//!
//! ```json
//! {"reason":"…","stage":"legacy","source":{"file":"data/a.ndjson","first_line":1,"last_line":8192},"record":{…}}
//! ```

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow_json::LineDelimitedWriter;
use base64::Engine as _;

use super::storage::{StagedFile, Storage};
use super::{FileStart, Sealing, SinkError, SinkReport, TwoPhase, WrittenFile};
use crate::checkpoint::{FileState, OutputFile, Upload};
use crate::record::{BadRecord, RecordOrigin, SourceSpan};

/// The name dead letters go by in checkpoints (no sink of the pipeline file may take it).
pub const DEAD_LETTER: &str = crate::config::RESERVED_SINK_NAME;

/// A dead-letter file is closed past this size.
const TARGET_FILE_BYTES: u64 = 64 * 1024 * 1024;

mod reasons;

pub use reasons::{ReasonCount, Reasons, kind_of};

/// Writes dead letters as JSON lines under one folder.
pub struct DeadLetterSink {
    storage: Box<dyn Storage>,
    immediate: bool,
    /// The open file and its name relative to the folder.
    open: Option<(BufWriter<Box<dyn StagedFile>>, String)>,
    /// The input position the last file was named after, and how many files were named
    /// after it: one chunk's dead letters can fill several files.
    last_start: Option<(FileStart, u32)>,
    /// Complete files waiting for the next checkpoint (on an object store, with their upload).
    sealed: Vec<(String, Option<Upload>)>,
    bytes: u64,
    count: u64,
    reasons: std::collections::BTreeMap<String, u64>,
    kinds: Reasons,
    files: Vec<PathBuf>,
    published: Vec<WrittenFile>,
}

impl std::fmt::Debug for DeadLetterSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterSink")
            .field("location", &self.storage.location())
            .field("count", &self.count)
            .finish()
    }
}

/// What a dead-letter sink wrote.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterSummary {
    /// Records written.
    pub count: u64,
    /// Records per stage (`decode` or a transform name).
    pub by_stage: std::collections::BTreeMap<String, u64>,
    /// The most frequent kinds of reason.
    pub top: Vec<ReasonCount>,
    /// Files committed.
    pub files: Vec<PathBuf>,
}

impl DeadLetterSink {
    /// A sink writing into `storage` (created on the first dead letter); `immediate`
    /// publishes complete files at once (runs without checkpoints).
    pub fn new(storage: Box<dyn Storage>, immediate: bool) -> Self {
        DeadLetterSink {
            storage,
            immediate,
            open: None,
            last_start: None,
            sealed: Vec::new(),
            bytes: 0,
            count: 0,
            reasons: Default::default(),
            kinds: Reasons::default(),
            files: Vec::new(),
            published: Vec::new(),
        }
    }

    fn writer(&mut self, start: FileStart) -> Result<&mut BufWriter<Box<dyn StagedFile>>, SinkError> {
        if self.open.is_none() {
            // A second file for the same input position gets the next number, never the
            // name of the file it follows.
            let rollover = match self.last_start {
                Some((last, n)) if last == start => n + 1,
                _ => 0,
            };
            self.last_start = Some((start, rollover));
            let stem = start.stem();
            let stem = stem.trim_start_matches("part-");
            let name = match rollover {
                0 => format!("dlq-{stem}.jsonl"),
                n => format!("dlq-{stem}-{n:04}.jsonl"),
            };
            let file = self.storage.create(&name)?;
            self.open = Some((BufWriter::new(file), name));
            self.bytes = 0;
        }
        match self.open.as_mut() {
            Some((w, _)) => Ok(w),
            None => unreachable!("opened above"),
        }
    }

    fn line(&mut self, start: FileStart, stage: &str, reason: &str, line: String) -> Result<(), SinkError> {
        let len = line.len() as u64 + 1;
        let w = self.writer(start)?;
        w.write_all(line.as_bytes())
            .and_then(|_| w.write_all(b"\n"))
            .map_err(|error| SinkError::Io {
                action: "writing dead letters to",
                path: self.storage.location().into(),
                error,
            })?;
        self.bytes += len;
        self.count += 1;
        *self.reasons.entry(stage.to_owned()).or_default() += 1;
        self.kinds.add(stage, reason);
        if self.bytes >= TARGET_FILE_BYTES {
            self.close()?;
        }
        Ok(())
    }

    /// A raw input record that could not be decoded (stage `decode`).
    pub fn bad_record(&mut self, start: FileStart, bad: &BadRecord) -> Result<(), SinkError> {
        let text = String::from_utf8_lossy(&bad.raw);
        let source = bad.origin.to_json().to_string();
        // Bytes that are not UTF-8 are kept exactly, in base64, beside the readable text.
        let exact = match std::str::from_utf8(&bad.raw) {
            Ok(_) => String::new(),
            Err(_) => format!(
                ",\"raw_base64\":\"{}\"",
                base64::engine::general_purpose::STANDARD.encode(&bad.raw)
            ),
        };
        let json = format!(
            "{{\"reason\":{},\"stage\":\"decode\",\"source\":{source},\"raw\":{}{exact}}}",
            quote(&bad.reason),
            quote(&text)
        );
        self.line(start, "decode", &bad.reason, json)
    }

    /// Rows a transform rejected (their last column is the reason) or rows of a batch it
    /// failed on (`reason` given, no reason column). Each names its own record when
    /// `origins` has it (one per row), else the batch's `span`.
    pub fn rows(
        &mut self,
        start: FileStart,
        stage: &str,
        span: &SourceSpan,
        origins: &[Option<RecordOrigin>],
        rows: &RecordBatch,
        reason: Option<&str>,
    ) -> Result<(), SinkError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let (records, reasons) = match reason {
            Some(_) => (rows.clone(), None),
            None => {
                let last = rows.num_columns() - 1;
                let reasons = rows.column(last).clone();
                let mut records = rows.clone();
                records.remove_column(last);
                (records, Some(reasons))
            }
        };
        let mut buf = Vec::with_capacity(records.get_array_memory_size());
        let mut writer = LineDelimitedWriter::new(&mut buf);
        writer.write(&records)?;
        writer.finish()?;
        drop(writer);
        let range = format!(
            "{{\"file\":{},\"first_line\":{},\"last_line\":{}}}",
            quote(&span.file),
            span.first_line,
            span.last_line
        );
        let reason_strings = reasons.as_ref().map(|r| r.as_string::<i32>().clone());
        for (i, record) in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            let why = match (&reason_strings, reason) {
                (Some(r), _) if r.is_valid(i) => r.value(i).to_owned(),
                (_, Some(r)) => r.to_owned(),
                _ => "rejected".to_owned(),
            };
            let own = origins.get(i).and_then(Option::as_ref).map(|o| o.to_json().to_string());
            let source = own.as_deref().unwrap_or(&range);
            let json = format!(
                "{{\"reason\":{},\"stage\":{},\"source\":{source},\"record\":{}}}",
                quote(&why),
                quote(stage),
                String::from_utf8_lossy(record)
            );
            self.line(start, stage, &why, json)?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let Some((w, name)) = self.open.take() else {
            return Ok(());
        };
        let mut file = w.into_inner().map_err(|e| SinkError::Io {
            action: "flushing",
            path: self.storage.location().into(),
            error: e.into_error(),
        })?;
        file.seal().map_err(|error| SinkError::Io {
            action: "syncing",
            path: self.storage.location().into(),
            error,
        })?;
        self.sealed.push((name, file.upload()));
        if self.immediate {
            self.commit()?;
        }
        Ok(())
    }

    /// The complete files, as a checkpoint lists them.
    fn listed(&self) -> impl Iterator<Item = OutputFile> + '_ {
        self.sealed.iter().map(|(name, upload)| OutputFile {
            root: DEAD_LETTER.to_owned(),
            path: name.clone(),
            state: FileState::Sealed,
            upload: upload.clone(),
        })
    }

    /// Dead letters written so far, by the stage that sent them.
    pub fn by_stage(&self) -> &std::collections::BTreeMap<String, u64> {
        &self.reasons
    }

    /// Dead letters written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `n` most frequent kinds of reason so far.
    pub fn top(&self, n: usize) -> Vec<ReasonCount> {
        self.kinds.top(n)
    }

    /// Close the open file and summarise (after the final checkpoint, if any).
    pub fn finish(mut self) -> Result<DeadLetterSummary, SinkError> {
        self.close()?;
        self.commit()?;
        Ok(DeadLetterSummary {
            count: self.count,
            by_stage: std::mem::take(&mut self.reasons),
            top: self.kinds.top(5),
            files: std::mem::take(&mut self.files),
        })
    }
}

impl TwoPhase for DeadLetterSink {
    fn name(&self) -> &str {
        DEAD_LETTER
    }

    fn sealing(&self) -> Sealing {
        Sealing::CutBack
    }

    fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// Make every dead letter written so far durable and say which files hold them.
    fn pre_commit(&mut self) -> Result<Vec<OutputFile>, SinkError> {
        let mut outputs = Vec::new();
        if let Some((w, name)) = self.open.as_mut() {
            w.flush()
                .and_then(|_| w.get_mut().sync())
                .map_err(|error| SinkError::Io {
                    action: "syncing",
                    path: self.storage.location().into(),
                    error,
                })?;
            outputs.push(OutputFile {
                root: DEAD_LETTER.to_owned(),
                path: name.clone(),
                state: FileState::Open {
                    len: self.bytes,
                    journal_len: 0,
                },
                upload: w.get_ref().upload(),
            });
        }
        self.storage.settle()?;
        outputs.extend(self.listed());
        Ok(outputs)
    }

    /// After a checkpoint is stored (or at once without checkpoints): publish sealed files.
    fn commit(&mut self) -> Result<(), SinkError> {
        if self.sealed.is_empty() {
            return Ok(());
        }
        let listed: Vec<OutputFile> = self.listed().collect();
        self.storage.publish(&listed)?;
        for (name, _) in std::mem::take(&mut self.sealed) {
            let path = std::path::PathBuf::from(self.storage.published_path(&name));
            self.published.push(WrittenFile {
                path: path.clone(),
                partition: String::new(),
                rows: 0,
                bytes: 0,
            });
            self.files.push(path);
        }
        Ok(())
    }

    /// Close the open file (published now, or sealed for the next checkpoint).
    fn close_all(&mut self) -> Result<(), SinkError> {
        self.close()
    }

    fn report(&self) -> SinkReport {
        SinkReport {
            name: DEAD_LETTER.to_owned(),
            location: self.storage.location(),
            rows: self.count,
            files: self.published.clone(),
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}
