//! Arrow IPC stream encoding of schemas and batches, as they cross the host/guest boundary.

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::reader::{StreamDecoder, StreamReader};
use arrow::ipc::writer::StreamWriter;

/// Encode a schema as an IPC stream with no batches.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    let mut writer = StreamWriter::try_new(&mut buf, schema)?;
    writer.finish()?;
    drop(writer);
    Ok(buf)
}

/// Decode the schema of an IPC stream.
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef, ArrowError> {
    Ok(StreamReader::try_new(Cursor::new(bytes), None)?.schema())
}

/// Encode one batch as an IPC stream.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    let mut writer = StreamWriter::try_new(&mut buf, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(buf)
}

/// Decode an IPC stream holding exactly one batch. The batch's arrays point into `bytes`
/// (no copy, as IPC bodies are 8-byte aligned) and keep it alive; data is fully validated.
pub fn decode_batch(bytes: Vec<u8>) -> Result<RecordBatch, ArrowError> {
    decode_batch_with(bytes, StreamDecoder::new())
}

/// Decode an IPC stream holding exactly one batch with a decoder set up by the caller, e.g.
/// one that skips validation of data the host already validated (see the SDK).
pub fn decode_batch_with(bytes: Vec<u8>, mut decoder: StreamDecoder) -> Result<RecordBatch, ArrowError> {
    let mut buffer = Buffer::from_vec(bytes);
    let mut batch = None;
    while !buffer.is_empty() {
        if let Some(b) = decoder.decode(&mut buffer)? {
            if batch.is_some() {
                return Err(ArrowError::IpcError("stream holds more than one record batch".into()));
            }
            batch = Some(b);
        }
    }
    decoder.finish()?;
    batch.ok_or_else(|| ArrowError::IpcError("stream holds no record batch".into()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    #[test]
    fn a_batch_survives_the_round_trip_and_garbage_is_an_error() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .expect("batch");
        let bytes = encode_batch(&batch).expect("encode");
        assert_eq!(decode_batch(bytes.clone()).expect("decode"), batch);
        assert_eq!(
            decode_schema(&encode_schema(&schema).expect("schema")).expect("decode"),
            schema
        );
        assert!(decode_batch(bytes[..bytes.len() / 2].to_vec()).is_err());
        assert!(decode_batch(encode_schema(&schema).expect("schema")).is_err());
        assert!(decode_batch(b"not arrow at all".to_vec()).is_err());
    }
}
