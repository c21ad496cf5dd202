//! A Parquet file's row-group journal: at each checkpoint, the metadata of the row groups
//! flushed since the last one, as a length-prefixed frame. Recovery builds the file's footer
//! from the journal's durable part.

use parquet::errors::ParquetError;
use parquet::file::metadata::{
    FileMetaData, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter, RowGroupMetaData,
};

/// The journal frame for `row_groups` of a file whose file-level metadata is `template`:
/// a little-endian `u32` length, then the Thrift-encoded metadata.
pub(super) fn frame(template: &FileMetaData, row_groups: &[RowGroupMetaData]) -> Result<Vec<u8>, ParquetError> {
    let rows = row_groups.iter().map(|rg| rg.num_rows()).sum();
    let meta = ParquetMetaData::new(with_rows(template, rows), row_groups.to_vec());
    let mut footer = Vec::new();
    ParquetMetaDataWriter::new(&mut footer, &meta).finish()?;
    // Drop the footer's length and magic; the frame carries its own length.
    footer.truncate(footer.len() - 8);
    let mut frame = (footer.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&footer);
    Ok(frame)
}

fn with_rows(template: &FileMetaData, rows: i64) -> FileMetaData {
    FileMetaData::new(
        template.version(),
        rows,
        template.created_by().map(str::to_owned),
        template.key_value_metadata().cloned(),
        template.schema_descr_ptr(),
        template.column_orders().cloned(),
    )
}

/// Recovery: the footer for the row groups a file's journal describes (the journal's
/// durable part, as the checkpoint recorded it). Appended to the file cut back to its
/// durable length, it makes a valid Parquet file holding exactly the checkpoint's rows.
pub fn footer_from_journal(frames: &[u8]) -> Result<Vec<u8>, ParquetError> {
    let mut row_groups = Vec::new();
    let mut template = None;
    let mut rest = frames;
    while rest.len() >= 4 {
        let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(frame) = rest.get(4..4 + n) else { break };
        let meta = ParquetMetaDataReader::decode_metadata(frame)?;
        template.get_or_insert_with(|| meta.file_metadata().clone());
        row_groups.extend(meta.row_groups().iter().cloned());
        rest = &rest[4 + n..];
    }
    let Some(template) = template else {
        return Err(ParquetError::General("its journal holds no row group".into()));
    };
    let rows = row_groups.iter().map(|rg| rg.num_rows()).sum();
    let meta = ParquetMetaData::new(with_rows(&template, rows), row_groups);
    let mut footer = Vec::new();
    ParquetMetaDataWriter::new(&mut footer, &meta).finish()?;
    Ok(footer)
}
