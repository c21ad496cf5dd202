//! A file of an S3 sink while it is written: a multipart upload fed from a buffer, and a
//! Parquet file's journal (see the module doc of `storage::s3`).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::calls::Objects;
use super::{IN_FLIGHT, MIN_PART_BYTES};
use crate::aws::s3::Failure;
use crate::checkpoint::{Part, Upload};
use crate::sink::storage::StagedFile;

/// A file being written as a multipart upload (see the module doc).
pub(super) struct S3File {
    objects: Arc<Objects>,
    key: String,
    temp: String,
    part_bytes: usize,
    /// The upload, once the first part is cut.
    id: Option<String>,
    /// Parts uploaded and confirmed.
    parts: Vec<Part>,
    /// Parts on their way.
    pending: VecDeque<tokio::task::JoinHandle<Result<Part, Failure>>>,
    /// Bytes after the parts (cut or pending).
    buf: Vec<u8>,
    /// Offset of `buf`'s first byte.
    parts_end: u64,
    /// Bytes made durable by the last `sync`.
    synced: u64,
}

fn io_failure(what: &str, f: Failure) -> std::io::Error {
    std::io::Error::other(format!("{what}: {}", f.message))
}

impl S3File {
    /// A new file of final key `key`; its tail objects are named after `temp`.
    pub(super) fn new(objects: Arc<Objects>, key: String, temp: String, part_bytes: usize) -> Self {
        S3File {
            objects,
            key,
            temp,
            part_bytes,
            id: None,
            parts: Vec::new(),
            pending: VecDeque::new(),
            buf: Vec::new(),
            parts_end: 0,
            synced: 0,
        }
    }

    fn url(&self) -> String {
        self.objects.location.url(&self.key)
    }

    /// Cut the buffer as the next part and start uploading it.
    fn cut(&mut self) -> std::io::Result<()> {
        let id = match &self.id {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .objects
                    .conn
                    .runtime
                    .block_on(self.objects.create_upload(&self.key))
                    .map_err(|f| io_failure(&format!("starting an upload of {}", self.url()), f))?;
                self.id.insert(id).clone()
            }
        };
        let number = (self.parts.len() + self.pending.len() + 1) as i32;
        let body = Bytes::from(std::mem::take(&mut self.buf));
        self.parts_end += body.len() as u64;
        let objects = self.objects.clone();
        let key = self.key.clone();
        let task = self
            .objects
            .conn
            .runtime
            .spawn(async move { objects.upload_part(&key, &id, number, body).await });
        self.pending.push_back(task);
        while self.pending.len() > IN_FLIGHT {
            self.wait_one()?;
        }
        Ok(())
    }

    /// Wait for the oldest part in flight.
    fn wait_one(&mut self) -> std::io::Result<()> {
        let Some(task) = self.pending.pop_front() else {
            return Ok(());
        };
        let part = self
            .objects
            .conn
            .runtime
            .block_on(task)
            .map_err(|e| std::io::Error::other(format!("uploading a part of {}: {e}", self.url())))?
            .map_err(|f| io_failure(&format!("uploading a part of {}", self.url()), f))?;
        self.parts.push(part);
        Ok(())
    }

    fn wait_all(&mut self) -> std::io::Result<()> {
        while !self.pending.is_empty() {
            self.wait_one()?;
        }
        Ok(())
    }
}

impl std::io::Write for S3File {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.part_bytes {
            self.cut()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl StagedFile for S3File {
    fn sync(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= MIN_PART_BYTES {
            self.cut()?;
        }
        self.wait_all()?;
        let end = self.parts_end + self.buf.len() as u64;
        let from = self.synced.max(self.parts_end);
        if end > from {
            let tail = format!("{}.tail-{:020}-{from:020}", self.temp, self.parts_end);
            let body = Bytes::copy_from_slice(&self.buf[(from - self.parts_end) as usize..]);
            // Durable once the storage settles (the sink settles before the checkpoint).
            self.objects.put_soon(tail, body);
        }
        self.synced = end;
        Ok(())
    }

    fn seal(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() || self.parts.len() + self.pending.len() == 0 {
            self.cut()?;
        }
        self.wait_all()?;
        crate::fault::point("upload-sealed");
        self.synced = self.parts_end;
        Ok(())
    }

    fn upload(&self) -> Option<Upload> {
        Some(Upload {
            id: self.id.clone(),
            parts: self.parts.clone(),
        })
    }
}

impl Drop for S3File {
    fn drop(&mut self) {
        for task in &self.pending {
            task.abort();
        }
    }
}

/// A Parquet file's journal: kept whole in memory, rewritten whole at each `sync`.
pub(super) struct S3Journal {
    objects: Arc<Objects>,
    key: String,
    bytes: Vec<u8>,
    stored: usize,
}

impl S3Journal {
    /// The journal object `key`.
    pub(super) fn new(objects: Arc<Objects>, key: String) -> Self {
        S3Journal {
            objects,
            key,
            bytes: Vec::new(),
            stored: 0,
        }
    }
}

impl std::io::Write for S3Journal {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl StagedFile for S3Journal {
    fn sync(&mut self) -> std::io::Result<()> {
        if self.bytes.len() == self.stored {
            return Ok(());
        }
        self.objects
            .put_soon(self.key.clone(), Bytes::copy_from_slice(&self.bytes));
        self.stored = self.bytes.len();
        Ok(())
    }
}
