//! Errors in a pipeline file: each names the file, line, column and key, and says what was
//! expected. They are collected, never thrown one at a time.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One problem at a place in the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte range in the file.
    pub span: Range<usize>,
    /// Dotted key path, e.g. `transform[1].config.predicate`.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// The text of a pipeline file, to turn byte offsets into lines.
#[derive(Debug, Clone)]
pub struct SourceMap {
    path: PathBuf,
    line_starts: Arc<[usize]>,
}

impl SourceMap {
    /// Index `text`, read from `path`.
    pub fn new(path: &Path, text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceMap {
            path: path.to_owned(),
            line_starts,
        }
    }

    /// The pipeline file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 1-based line and column of a byte offset.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&start| start <= offset).max(1);
        (line, offset - self.line_starts[line - 1] + 1)
    }
}

/// Every problem found in one pipeline file.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    source: SourceMap,
    diagnostics: Vec<Diagnostic>,
}

impl ConfigErrors {
    pub(crate) fn new(source: SourceMap, mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| d.span.start);
        diagnostics.dedup();
        ConfigErrors { source, diagnostics }
    }

    /// The problems, in file order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let (line, col) = self.source.locate(d.span.start);
            write!(f, "{}:{line}:{col}: ", self.source.path.display())?;
            if !d.key.is_empty() {
                write!(f, "`{}`: ", d.key)?;
            }
            f.write_str(&d.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects diagnostics while a file is read.
#[derive(Debug, Default)]
pub(crate) struct Diags(pub(crate) Vec<Diagnostic>);

impl Diags {
    pub(crate) fn push(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        self.0.push(Diagnostic {
            span,
            key: key.to_owned(),
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_lines_and_columns() {
        let map = SourceMap::new(Path::new("p.toml"), "a = 1\n\nbc = 2\n");
        assert_eq!(map.locate(0), (1, 1));
        assert_eq!(map.locate(4), (1, 5));
        assert_eq!(map.locate(6), (2, 1));
        assert_eq!(map.locate(9), (3, 3));
    }
}
