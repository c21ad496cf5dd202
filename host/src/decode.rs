//! Raw records → Arrow record batches, natively, once. Pure and synchronous: bytes in,
//! a batch and the records that could not be decoded out. No I/O, no WASM.

pub mod json;

/// A record that could not be decoded, with where it was and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// 1-based line in the source file.
    pub line: u64,
    /// Byte offset of the line in the source file.
    pub offset: u64,
    /// The raw bytes (without the newline).
    pub raw: Vec<u8>,
    /// Why it was refused.
    pub reason: String,
    /// The MQTT topic it came from (message sources; `None` for files).
    pub topic: Option<std::sync::Arc<str>>,
}
