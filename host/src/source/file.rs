//! NDJSON from files, folders, globs or stdin, cut into chunks of `batch_rows` lines.
//!
//! Each file is a source partition. Up to `max_open_files` are read side by side, a chunk
//! from each in turn, so a backlog of files that each span the whole event-time range (one
//! per device, per shard, per producer) reaches event-time windows together, as a batch
//! engine would see it, rather than one file after another (which would make all but the
//! first late). Files are opened in a stable order (sorted paths) and read in a fixed turn,
//! so chunk numbers, and with them output file names, are the same on every run over the
//! same input. Positions are per file: a later run reads what was appended to any file,
//! and any new file.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

mod follow;
mod plan;

pub use follow::FollowSource;
pub use plan::{expand, plan};

use super::position::PartitionPosition;
use super::{Source, SourceError, SourceSpec};
use crate::checkpoint::SourcePosition;
use crate::record::{Chunk, PartitionEvent, SourceSpan};

/// What a file source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    /// Standard input.
    Stdin,
    /// These files, in opening order.
    Files(Vec<PathBuf>),
}

/// A planned file source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// What it reads.
    pub inputs: Inputs,
    /// Lines per chunk.
    pub batch_rows: usize,
    /// Files read side by side at most.
    pub max_open: usize,
    /// `file:<absolute path as configured>` or `file:-`.
    pub id: String,
    /// `follow = true`: the path to watch, and how.
    pub follow: Option<(PathBuf, crate::config::FollowConfig)>,
}

impl SourceSpec for FileSpec {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn kind(&self) -> &'static str {
        "file"
    }

    fn id(&self) -> String {
        self.id.clone()
    }

    fn resumable(&self) -> bool {
        self.inputs != Inputs::Stdin
    }

    fn open(&self, stop: &Arc<AtomicBool>) -> Result<Box<dyn Source>, SourceError> {
        if let Some((pattern, settings)) = &self.follow {
            return Ok(Box::new(FollowSource::new(
                pattern.clone(),
                self.batch_rows,
                *settings,
                stop.clone(),
            )));
        }
        Ok(Box::new(FileSource::new(
            self.inputs.clone(),
            self.batch_rows,
            self.max_open,
        )))
    }
}

/// One input: its name as found, its absolute path (the partition's key in checkpoints),
/// and the path to open (`None` for stdin).
#[derive(Debug, Clone)]
struct Input {
    name: Arc<str>,
    key: Arc<str>,
    path: Option<PathBuf>,
    /// Its size when the source was built (`None`: stdin, or it could not be read).
    size: Option<u64>,
}

/// Reads chunks from the inputs, up to `max_open` files side by side, a chunk from each in
/// turn: every file is a source partition of its own, so event time is tracked per file.
pub struct FileSource {
    pending: VecDeque<Input>,
    open: Vec<Current>,
    turn: usize,
    batch_rows: usize,
    max_open: usize,
    next_seq: u64,
    /// Positions a checkpoint recorded, by absolute path.
    resume_at: BTreeMap<String, (u64, u64)>,
    /// Format-1 checkpoints: files sorting before this one were read to their end.
    files_before: Option<String>,
    /// Partition events not yet handed over with a chunk.
    events: Vec<PartitionEvent>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource").field("next_seq", &self.next_seq).finish()
    }
}

struct Current {
    input: Input,
    reader: Box<dyn Read + Send>,
    /// Bytes read from the input past the last chunk's last line.
    carry: Vec<u8>,
    /// The input said it has no more bytes.
    eof: bool,
    /// The input is a regular file (not stdin, a pipe or a device).
    regular: bool,
    line: u64,
    offset: u64,
}

impl Current {
    /// Read the next block of the input onto the end of `data`; false at its end.
    fn read_block(&mut self, data: &mut Vec<u8>) -> Result<bool, SourceError> {
        if self.eof {
            return Ok(false);
        }
        let len = data.len();
        if self.regular {
            // A regular file fills a whole block until its end: read into the buffer's spare
            // room, not zeroed first (`resize` wrote every block's bytes twice).
            data.reserve(READ_BLOCK);
            let n = (&mut self.reader)
                .take(READ_BLOCK as u64)
                .read_to_end(data)
                .map_err(|error| {
                    data.truncate(len);
                    SourceError::Io {
                        path: self.input.name.to_string(),
                        error,
                    }
                })?;
            self.eof = n == 0;
            return Ok(n > 0);
        }
        // Anything else (stdin, a pipe) returns what it has: one read, whatever it gives.
        data.resize(len + READ_BLOCK, 0);
        let n = loop {
            match self.reader.read(&mut data[len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    data.truncate(len);
                    return Err(SourceError::Io {
                        path: self.input.name.to_string(),
                        error,
                    });
                }
            }
        };
        data.truncate(len + n);
        self.eof = n == 0;
        Ok(n > 0)
    }
}

impl FileSource {
    /// A source over `inputs`, `batch_rows` lines per chunk, `max_open` files at a time.
    pub fn new(inputs: Inputs, batch_rows: usize, max_open: usize) -> Self {
        let list: Vec<Input> = match inputs {
            Inputs::Stdin => vec![Input {
                name: Arc::from("-"),
                key: Arc::from("-"),
                path: None,
                size: None,
            }],
            Inputs::Files(files) => files
                .into_iter()
                .map(|p| Input {
                    name: Arc::from(p.to_string_lossy().as_ref()),
                    key: Arc::from(absolute(&p).as_str()),
                    size: std::fs::metadata(&p).ok().map(|m| m.len()),
                    path: Some(p),
                })
                .collect(),
        };
        FileSource {
            pending: list.into(),
            open: Vec::new(),
            turn: 0,
            batch_rows,
            max_open: max_open.max(1),
            next_seq: 0,
            resume_at: BTreeMap::new(),
            files_before: None,
            events: Vec::new(),
        }
    }

    /// Open pending inputs until `max_open` are open. A file a checkpoint says was read to
    /// its end (and that has not grown) is not opened, so it never holds event time back.
    fn fill(&mut self) -> Result<(), SourceError> {
        while self.open.len() < self.max_open {
            let Some(input) = self.pending.pop_front() else {
                return Ok(());
            };
            let at = self.resume_at.get(input.key.as_ref()).copied();
            if at.is_none()
                && self
                    .files_before
                    .as_deref()
                    .is_some_and(|before| input.key.as_ref() < before)
            {
                continue;
            }
            let (offset, line) = at.unwrap_or((0, 0));
            if let Some(current) = self.open_input(input, offset, line)? {
                self.events.push(PartitionEvent::Opened(current.input.name.clone()));
                self.open.push(current);
            }
        }
        Ok(())
    }

    /// Open an input at a byte offset (with the lines before it counted); `None` when a
    /// file has nothing past the offset.
    fn open_input(&self, input: Input, offset: u64, line: u64) -> Result<Option<Current>, SourceError> {
        let io = |error| SourceError::Io {
            path: input.name.to_string(),
            error,
        };
        let mut regular = false;
        let reader: Box<dyn Read + Send> = match &input.path {
            None => Box::new(std::io::stdin()),
            Some(p) => {
                let mut file = File::open(p).map_err(io)?;
                let metadata = file.metadata().map_err(io)?;
                regular = metadata.is_file();
                let len = metadata.len();
                if len < offset {
                    return Err(SourceError::Shrunk {
                        path: input.name.to_string(),
                        offset,
                        len,
                    });
                }
                if len == offset && offset > 0 {
                    return Ok(None);
                }
                file.seek(SeekFrom::Start(offset)).map_err(io)?;
                Box::new(file)
            }
        };
        Ok(Some(Current {
            input,
            reader,
            carry: Vec::new(),
            eof: false,
            regular,
            line,
            offset,
        }))
    }

    /// Read up to `batch_rows` lines of open input `i` into a chunk. The input is read in
    /// blocks straight into the chunk's buffer; what follows its last line waits for the
    /// next chunk. A last line with no line break ends at the end of the input.
    fn read(&mut self, i: usize) -> Result<Chunk, SourceError> {
        let batch_rows = self.batch_rows;
        let cur = &mut self.open[i];
        let mut data = std::mem::take(&mut cur.carry);
        data.reserve(batch_rows.saturating_mul(256).min(64 << 20));
        let mut ends = Vec::with_capacity(batch_rows);
        let start_offset = cur.offset;
        let first_line = cur.line + 1;
        let mut scanned = 0;
        let cut = loop {
            if let Some(at) = line_ends(&data, scanned, &mut ends, batch_rows) {
                break Some(at);
            }
            scanned = data.len();
            if !cur.read_block(&mut data)? {
                break None;
            }
        };
        let consumed = match cut {
            Some(at) => {
                cur.carry = data.split_off(at);
                at
            }
            None => {
                let all = data.len();
                if ends.last().copied().unwrap_or(0) < all {
                    data.push(b'\n');
                    ends.push(data.len());
                }
                all
            }
        };
        cur.offset += consumed as u64;
        cur.line += ends.len() as u64;
        let chunk = Chunk {
            data,
            ends,
            span: SourceSpan {
                file: cur.input.name.clone(),
                first_line,
                last_line: cur.line,
                start_offset,
                end_offset: cur.offset,
            },
            position: Some((
                cur.input.key.clone(),
                PartitionPosition::File {
                    offset: cur.offset,
                    line: cur.line,
                }
                .to_value(),
            )),
            ..Chunk::default()
        };
        Ok(chunk)
    }

    /// Whether open input `i` is at its end (never asked of stdin, which would block).
    fn at_end(&mut self, i: usize) -> Result<bool, SourceError> {
        let cur = &mut self.open[i];
        if cur.input.path.is_none() || !cur.carry.is_empty() {
            return Ok(false);
        }
        let mut carry = std::mem::take(&mut cur.carry);
        let more = cur.read_block(&mut carry)?;
        cur.carry = carry;
        Ok(!more)
    }

    fn next(&mut self) -> Result<Option<Chunk>, SourceError> {
        loop {
            self.fill()?;
            if self.open.is_empty() {
                if self.events.is_empty() {
                    return Ok(None);
                }
                // The last partitions ended with no record left: say so in an empty chunk.
                return Ok(Some(Chunk::default()));
            }
            let i = self.turn % self.open.len();
            let chunk = self.read(i)?;
            let ended = chunk.ends.is_empty() || self.at_end(i)?;
            if ended {
                let done = self.open.remove(i);
                self.events.push(PartitionEvent::Ended(done.input.name));
                self.turn = i;
            } else {
                self.turn = i + 1;
            }
            if !chunk.ends.is_empty() {
                return Ok(Some(chunk));
            }
        }
    }
}

/// Push the end (just past its `\n`) of each line of `data` found after `from` onto `ends`,
/// until it holds `batch_rows`; returns where the last of them ends when it got there.
fn line_ends(data: &[u8], from: usize, ends: &mut Vec<usize>, batch_rows: usize) -> Option<usize> {
    for at in memchr::memchr_iter(b'\n', &data[from..]) {
        ends.push(from + at + 1);
        if ends.len() == batch_rows {
            return Some(from + at + 1);
        }
    }
    None
}

/// Bytes asked of the input at a time. A chunk's buffer grows by blocks until it holds
/// `batch_rows` lines; at most one block's worth is carried over to the next chunk.
const READ_BLOCK: usize = 256 * 1024;

/// A path made absolute, so a checkpoint does not depend on the working folder.
fn absolute(p: &Path) -> String {
    std::path::absolute(p).map_or_else(
        |_| p.to_string_lossy().into_owned(),
        |a| a.to_string_lossy().into_owned(),
    )
}

impl Source for FileSource {
    /// Continue from a checkpoint's positions: each file it lists from its offset, others
    /// from their start (a format-1 checkpoint's files sorting before its file are done).
    fn resume(&mut self, position: &SourcePosition) -> Result<(), SourceError> {
        self.next_seq = position.next_seq;
        for (key, value) in &position.partitions {
            match PartitionPosition::from_value(key, "file", value)? {
                PartitionPosition::File { offset, line } => {
                    self.resume_at.insert(key.clone(), (offset, line));
                }
                // Written while following: the file as last seen.
                PartitionPosition::Followed { path, offset, line, .. } => {
                    self.resume_at.insert(path, (offset, line));
                }
                other => {
                    return Err(SourceError::Position {
                        partition: key.clone(),
                        kind: "file",
                        message: format!("found {other:?}"),
                    });
                }
            }
        }
        self.files_before = position
            .state
            .as_ref()
            .and_then(|s| s.get("files_before"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        Ok(())
    }

    /// The next chunk, or `None` at the end of the last input. A chunk never spans files.
    fn next_chunk(&mut self) -> Result<Option<Chunk>, SourceError> {
        let Some(mut chunk) = self.next()? else {
            return Ok(None);
        };
        chunk.seq = self.next_seq;
        chunk.ingest_micros = chrono::Utc::now().timestamp_micros();
        chunk.events = std::mem::take(&mut self.events);
        self.next_seq += 1;
        Ok(Some(chunk))
    }

    fn bounded(&self) -> bool {
        true
    }

    /// Bytes of the files not yet read: the rest of each open file and every file still to
    /// open (past its checkpointed offset), by their sizes when the source was built.
    fn backlog(&self) -> Option<u64> {
        let open = self.open.iter().map(|c| Some(c.input.size?.saturating_sub(c.offset)));
        let pending = self.pending.iter().map(|i| {
            let done = self.resume_at.get(i.key.as_ref()).map_or(0, |(offset, _)| *offset);
            Some(i.size?.saturating_sub(done))
        });
        open.chain(pending).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_line_with_positions_and_never_span_files() {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::write(tmp.path().join("b.ndjson"), "{\"a\":3}\n").expect("write");
        std::fs::write(tmp.path().join("a.ndjson"), "{\"a\":1}\n\n{\"a\":2}").expect("write");
        std::fs::write(tmp.path().join(".hidden"), "x\n").expect("write");
        let inputs = expand(Some(tmp.path())).expect("expand");
        let chunks = read_all(FileSource::new(inputs.clone(), 2, 16));
        let summary: Vec<(u64, String, u64, u64, u64, u64, String)> = chunks
            .iter()
            .map(|c| {
                let file = Path::new(c.span.file.as_ref())
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                (
                    c.seq,
                    file,
                    c.span.first_line,
                    c.span.last_line,
                    c.span.start_offset,
                    c.span.end_offset,
                    String::from_utf8_lossy(&c.data).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, "a.ndjson".into(), 1, 2, 0, 9, "{\"a\":1}\n\n".into()),
                (1, "b.ndjson".into(), 1, 1, 0, 8, "{\"a\":3}\n".into()),
                (2, "a.ndjson".into(), 3, 3, 9, 16, "{\"a\":2}\n".into()),
            ],
            "files are read side by side, a chunk from each in turn"
        );
        let names = |chunks: &[Chunk]| -> Vec<String> { chunks.iter().map(|c| c.span.file.to_string()).collect() };
        let one_at_a_time = read_all(FileSource::new(inputs, 2, 1));
        let files = names(&one_at_a_time);
        assert!(files[0].ends_with("a.ndjson") && files[1].ends_with("a.ndjson") && files[2].ends_with("b.ndjson"));
        // Partitions are announced before their records and ended with their last chunk.
        let events: Vec<String> = chunks
            .iter()
            .flat_map(|c| c.events.iter())
            .map(|e| match e {
                PartitionEvent::Opened(p) => format!("open {}", p.rsplit('/').next().unwrap_or("")),
                PartitionEvent::Ended(p) => format!("end {}", p.rsplit('/').next().unwrap_or("")),
            })
            .collect();
        assert_eq!(
            events,
            ["open a.ndjson", "open b.ndjson", "end b.ndjson", "end a.ndjson"]
        );
    }

    #[test]
    fn the_backlog_is_what_is_left_of_the_files_and_reaches_zero() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (a, b) = (tmp.path().join("a.ndjson"), tmp.path().join("b.ndjson"));
        std::fs::write(&a, "{\"n\":1}\n".repeat(100)).expect("a");
        std::fs::write(&b, "{\"n\":22}\n".repeat(50)).expect("b");
        let total = 8 * 100 + 9 * 50;
        let mut source = FileSource::new(Inputs::Files(vec![a, b]), 30, 1);
        assert_eq!(source.backlog(), Some(total));
        let mut read = 0;
        while let Some(chunk) = source.next_chunk().expect("chunk") {
            read += chunk.data.len() as u64;
            assert_eq!(source.backlog(), Some(total - read), "after {read} bytes");
        }
        assert_eq!(source.backlog(), Some(0));
        assert_eq!(
            FileSource::new(Inputs::Stdin, 30, 1).backlog(),
            None,
            "stdin cannot tell"
        );
    }

    #[test]
    fn lines_across_read_blocks_come_whole_with_their_offsets() {
        // Lines of every length, some longer than a read block, the last with no line break.
        let mut text = String::new();
        let mut lines = Vec::new();
        for i in 0..3000usize {
            let len = match i % 97 {
                0 => READ_BLOCK + 17,
                1 => 0,
                _ => (i * 7919) % 900,
            };
            let line = format!("{i}:{}", "x".repeat(len));
            text.push_str(&line);
            if i < 2999 {
                text.push('\n');
            }
            lines.push(line);
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("big.ndjson");
        std::fs::write(&path, &text).expect("write");
        for batch in [1, 7, 1000, 5000] {
            let chunks = read_all(FileSource::new(Inputs::Files(vec![path.clone()]), batch, 16));
            let mut got = Vec::new();
            let mut offset = 0;
            let mut line = 0;
            for c in &chunks {
                assert_eq!(c.span.start_offset, offset, "batch {batch}: chunks follow each other");
                assert_eq!(c.span.first_line, line + 1);
                assert!(c.ends.len() <= batch);
                let mut from = 0;
                for &end in &c.ends {
                    assert_eq!(c.data[end - 1], b'\n');
                    got.push(String::from_utf8(c.data[from..end - 1].to_vec()).expect("utf8"));
                    from = end;
                }
                assert_eq!(from, c.data.len());
                offset = c.span.end_offset;
                line = c.span.last_line;
            }
            assert_eq!(got, lines, "batch {batch}: every line once, whole, in order");
            assert_eq!(offset, text.len() as u64);
            assert_eq!(line, 3000);
        }
    }

    fn read_all(mut source: FileSource) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        while let Some(c) = source.next_chunk().expect("chunk") {
            chunks.push(c);
        }
        chunks
    }

    #[test]
    fn resuming_reads_each_file_from_its_own_position_and_new_files_from_the_start() {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::write(tmp.path().join("a.ndjson"), "1\n2\n3\n").expect("write");
        std::fs::write(tmp.path().join("b.ndjson"), "4\n5\n").expect("write");
        let inputs = expand(Some(tmp.path())).expect("expand");
        let mut first = FileSource::new(inputs, 2, 16);
        let mut position = SourcePosition::default();
        // Read two chunks (a: lines 1-2, b: lines 4-5), then "crash".
        for _ in 0..2 {
            let c = first.next_chunk().expect("read").expect("chunk");
            let (key, value) = c.position.expect("position");
            position.partitions.insert(key.to_string(), value);
            position.next_seq = c.seq + 1;
        }
        std::fs::write(tmp.path().join("0-new.ndjson"), "0\n").expect("write");
        std::fs::write(tmp.path().join("b.ndjson"), "4\n5\n6\n").expect("append");
        let mut again = FileSource::new(expand(Some(tmp.path())).expect("expand"), 2, 16);
        again.resume(&position).expect("resume");
        let chunks = read_all(again);
        let text: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.data).into_owned())
            .collect();
        assert_eq!(text, "0\n3\n6\n");
        assert_eq!(chunks[0].seq, 2);
        let b = chunks.iter().find(|c| c.span.file.ends_with("b.ndjson")).expect("b");
        assert_eq!((b.span.first_line, b.span.start_offset), (3, 4));
    }

    #[test]
    fn a_file_shorter_than_its_checkpoint_is_an_error() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("a.ndjson");
        std::fs::write(&path, "1\n").expect("write");
        let mut position = SourcePosition::default();
        position.partitions.insert(
            absolute(&path),
            PartitionPosition::File { offset: 100, line: 9 }.to_value(),
        );
        let mut source = FileSource::new(Inputs::Files(vec![path]), 2, 16);
        source.resume(&position).expect("resume");
        assert!(matches!(
            source.next_chunk(),
            Err(SourceError::Shrunk { offset: 100, .. })
        ));
    }

    #[test]
    fn globs_sort_and_missing_inputs_are_errors() {
        let tmp = tempfile::tempdir().expect("tmp");
        for n in ["2.json", "1.json", "x.txt"] {
            std::fs::write(tmp.path().join(n), "{}\n").expect("write");
        }
        let Inputs::Files(files) = expand(Some(&tmp.path().join("*.json"))).expect("expand") else {
            panic!("files expected");
        };
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().expect("n").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1.json", "2.json"]);
        assert!(matches!(
            expand(Some(&tmp.path().join("*.csv"))),
            Err(SourceError::NoFiles(_))
        ));
    }
}
