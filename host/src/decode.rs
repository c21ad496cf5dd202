//! Raw records → Arrow record batches, natively, once. Pure and synchronous: bytes in,
//! a batch and the records that could not be decoded out. No I/O, no WASM.

pub mod json;
pub mod metadata;
