//! NDJSON from files, folders, globs or stdin, cut into chunks of `batch_rows` lines.
//!
//! Files are read in a stable order (sorted paths) so chunk numbers, and with them output
//! file names, are the same on every run over the same input.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Chunk, SourceError, SourceSpan};
use crate::checkpoint::SourcePosition;

pub use super::Inputs;

/// Expand a path setting: a file, a folder (its visible files), a glob, or `None` for stdin.
pub fn expand(path: Option<&Path>) -> Result<Inputs, SourceError> {
    let Some(path) = path else {
        return Ok(Inputs::Stdin);
    };
    let text = path.to_string_lossy();
    let mut files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map_err(|error| SourceError::Io {
                path: text.to_string(),
                error,
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect()
    } else if text.contains(['*', '?', '[']) {
        glob::glob(&text)
            .map_err(|e| SourceError::BadPattern {
                pattern: text.to_string(),
                message: e.msg.to_owned(),
            })?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect()
    } else if path.is_file() {
        vec![path.to_owned()]
    } else {
        Vec::new()
    };
    if files.is_empty() {
        return Err(SourceError::NoFiles(text.to_string()));
    }
    files.sort();
    Ok(Inputs::Files(files))
}

/// Reads chunks from the inputs, one file after another.
pub struct FileSource {
    inputs: VecDeque<(Arc<str>, Option<PathBuf>)>,
    current: Option<Current>,
    batch_rows: usize,
    next_seq: u64,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource").field("next_seq", &self.next_seq).finish()
    }
}

struct Current {
    name: Arc<str>,
    reader: BufReader<Box<dyn Read + Send>>,
    line: u64,
    offset: u64,
}

impl FileSource {
    /// A source over `inputs`, `batch_rows` lines per chunk.
    pub fn new(inputs: Inputs, batch_rows: usize) -> Self {
        let list: Vec<(Arc<str>, Option<PathBuf>)> = match inputs {
            Inputs::Stdin => vec![(Arc::from("-"), None)],
            Inputs::Mqtt(_) => Vec::new(),
            Inputs::Files(files) => files
                .into_iter()
                .map(|p| (Arc::from(p.to_string_lossy().as_ref()), Some(p)))
                .collect(),
        };
        FileSource {
            inputs: list.into(),
            current: None,
            batch_rows,
            next_seq: 0,
        }
    }

    /// Continue from a checkpoint's position (whose file is an absolute path): files sorting
    /// before its file are done, its
    /// file is read from its offset, later files from their start.
    pub fn resume(&mut self, position: &SourcePosition) -> Result<(), SourceError> {
        self.next_seq = position.next_seq;
        let Some(file) = &position.file else {
            return Ok(());
        };
        let at = PathBuf::from(file);
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        while let Some((_, Some(path))) = self.inputs.front() {
            if abs(path) >= at {
                break;
            }
            self.inputs.pop_front();
        }
        if !matches!(self.inputs.front(), Some((_, Some(path))) if abs(path) == at) {
            return Ok(());
        }
        self.open_next((position.offset, position.line))?;
        Ok(())
    }

    /// Open the next input at a byte offset (with the lines before it counted).
    fn open_next(&mut self, (offset, line): (u64, u64)) -> Result<bool, SourceError> {
        let Some((name, path)) = self.inputs.pop_front() else {
            return Ok(false);
        };
        let io = |error| SourceError::Io {
            path: name.to_string(),
            error,
        };
        let reader: Box<dyn Read + Send> = match &path {
            None => Box::new(std::io::stdin()),
            Some(p) => {
                let mut file = File::open(p).map_err(io)?;
                if offset > 0 {
                    let len = file.metadata().map_err(io)?.len();
                    if len < offset {
                        return Err(SourceError::Shrunk {
                            path: name.to_string(),
                            offset,
                            len,
                        });
                    }
                    file.seek(SeekFrom::Start(offset)).map_err(io)?;
                }
                Box::new(file)
            }
        };
        self.current = Some(Current {
            name,
            reader: BufReader::with_capacity(1 << 20, reader),
            line,
            offset,
        });
        Ok(true)
    }

    /// The next chunk, or `None` at the end of the last input. A chunk never spans files.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, SourceError> {
        loop {
            if self.current.is_none() && !self.open_next((0, 0))? {
                return Ok(None);
            }
            let Some(cur) = self.current.as_mut() else {
                continue;
            };
            let mut data = Vec::with_capacity(self.batch_rows * 256);
            let start_offset = cur.offset;
            let first_line = cur.line + 1;
            let mut lines = 0;
            while lines < self.batch_rows {
                let n = cur
                    .reader
                    .read_until(b'\n', &mut data)
                    .map_err(|error| SourceError::Io {
                        path: cur.name.to_string(),
                        error,
                    })?;
                if n == 0 {
                    break;
                }
                if data.last() != Some(&b'\n') {
                    data.push(b'\n');
                }
                lines += 1;
                cur.offset += n as u64;
            }
            cur.line += lines as u64;
            if lines == 0 {
                self.current = None;
                continue;
            }
            let chunk = Chunk {
                seq: self.next_seq,
                span: SourceSpan {
                    file: cur.name.clone(),
                    first_line,
                    last_line: cur.line,
                    start_offset,
                    end_offset: cur.offset,
                },
                data,
                ingest_micros: chrono::Utc::now().timestamp_micros(),
                barrier: false,
                generation: 0,
                topics: Vec::new(),
                rejected: Vec::new(),
            };
            self.next_seq += 1;
            return Ok(Some(chunk));
        }
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
        let mut source = FileSource::new(inputs, 2);
        let mut chunks = Vec::new();
        while let Some(c) = source.next_chunk().expect("chunk") {
            chunks.push(c);
        }
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
                (1, "a.ndjson".into(), 3, 3, 9, 16, "{\"a\":2}\n".into()),
                (2, "b.ndjson".into(), 1, 1, 0, 8, "{\"a\":3}\n".into()),
            ]
        );
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
