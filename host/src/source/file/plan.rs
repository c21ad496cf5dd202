//! Planning a file source: which files a path names, and the schema (declared, or
//! inferred from the first file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FileSpec, Inputs};
use crate::config::{Diagnostic, FileSourceConfig};
use crate::decode::json::infer_schema;
use crate::source::SourceError;
use crate::source::{PlannedSource, arrow_schema};

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

/// Plan a file source: expand its path and declare or infer its schema.
pub fn plan(src: &FileSourceConfig, diags: &mut Vec<Diagnostic>) -> Option<PlannedSource> {
    let diag = |span: std::ops::Range<usize>, key: &str, message: String| Diagnostic {
        span,
        key: key.to_owned(),
        message,
    };
    let inputs = match expand(src.resolved.as_deref()) {
        Ok(i) => Some(i),
        // Followed files may come later, into a folder that is there.
        Err(SourceError::NoFiles(_)) if src.follow.is_some() => match src.resolved.as_deref().map(watched_folder) {
            Some(Ok(_)) => Some(Inputs::Files(Vec::new())),
            Some(Err(message)) => {
                diags.push(diag(src.path.span.clone(), &src.path.key, message));
                None
            }
            None => None,
        },
        Err(e) => {
            diags.push(diag(src.path.span.clone(), &src.path.key, e.to_string()));
            None
        }
    };
    let input_schema = match (&src.schema, &inputs) {
        (Some(fields), _) => Some(arrow_schema(fields)),
        (None, Some(Inputs::Files(files))) if files.is_empty() => {
            diags.push(diag(
                src.path.span.clone(),
                &src.path.key,
                "no file to infer a schema from yet; declare one in [source.schema] to follow files that are still to come".into(),
            ));
            None
        }
        (None, Some(Inputs::Files(files))) => {
            match std::fs::File::open(&files[0])
                .map_err(|e| e.to_string())
                .and_then(|f| infer_schema(f, src.infer_rows).map_err(|e| e.to_string()))
            {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    diags.push(diag(
                        src.path.span.clone(),
                        &src.path.key,
                        format!(
                            "cannot infer a schema from {}: {e}; declare one in [source.schema]",
                            files[0].display()
                        ),
                    ));
                    None
                }
            }
        }
        (None, Some(Inputs::Stdin)) => {
            diags.push(diag(
                src.path.span.clone(),
                &src.path.key,
                "stdin input needs a declared schema ([source.schema])".into(),
            ));
            None
        }
        (None, None) => None,
    };
    let spec = FileSpec {
        inputs: inputs?,
        batch_rows: src.batch_rows,
        max_open: src.max_open_files,
        id: source_id(src.resolved.as_deref()),
        follow: src.follow.and_then(|f| Some((src.resolved.clone()?, f))),
    };
    Some(PlannedSource {
        spec: Arc::new(spec),
        schema: input_schema?,
    })
}

/// The folder a followed path watches (the path itself, or the part before its first
/// wildcard, or a file's folder), which must exist.
fn watched_folder(path: &Path) -> Result<PathBuf, String> {
    let text = path.to_string_lossy();
    let folder = match text.find(['*', '?', '[']) {
        // The folder holding the first component with a wildcard.
        Some(at) => match text[..at].rfind('/') {
            Some(0) => PathBuf::from("/"),
            Some(slash) => PathBuf::from(&text[..slash]),
            None => PathBuf::from("."),
        },
        None if path.is_dir() => path.to_owned(),
        None => path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_owned),
    };
    if folder.is_dir() {
        Ok(folder)
    } else {
        Err(format!(
            "no folder {} to follow files in: nothing matches {text} and nothing can appear there",
            folder.display()
        ))
    }
}

/// `file:` and the absolute path (or `-`) a file source was configured with.
fn source_id(path: Option<&std::path::Path>) -> String {
    match path {
        Some(p) => format!(
            "file:{}",
            std::path::absolute(p).unwrap_or_else(|_| p.to_owned()).display()
        ),
        None => "file:-".to_owned(),
    }
}
