//! Which input record each row of a batch comes from, so that a dead letter from any stage
//! (or a sink's misfit) names its own record (file and line, topic, shard and sequence)
//! rather than its batch's range. Decoded rows know their records; a stage's output rows
//! know theirs when the component gives the contract's row-lineage column
//! (`Emitted::lineage`); a slice of a batch (bisection) keeps its rows' lineage. Anything else
//! (aggregates, flushes, components without the column) is unknown, and its dead letters name
//! the batch's range. Lineage is record indices (four bytes a row) until a dead letter needs
//! an origin.

use arrow::array::{Array, RecordBatch, UInt32Array};

use crate::record::{RecordIndex, RecordOrigin};

/// A row whose record is not known.
const UNKNOWN: u32 = u32::MAX;

/// Where the rows of one batch come from.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Lineage {
    /// Not known.
    #[default]
    Unknown,
    /// For each row, the index of its record in the chunk being processed.
    Records(Vec<u32>),
}

/// A batch and where its rows come from.
#[derive(Debug, Clone)]
pub(crate) struct Traced {
    pub batch: RecordBatch,
    pub lineage: Lineage,
}

impl Traced {
    /// Rows `offset..offset + len`, with theirs.
    pub(crate) fn slice(&self, offset: usize, len: usize) -> Traced {
        Traced {
            batch: self.batch.slice(offset, len),
            lineage: self.lineage.slice(offset, len),
        }
    }
}

impl Lineage {
    /// Rows decoded from chunk records `records` (one per row, in row order).
    pub(crate) fn of_records(records: &[usize]) -> Lineage {
        Lineage::Records(records.iter().map(|&r| u32::try_from(r).unwrap_or(UNKNOWN)).collect())
    }

    /// The lineage of rows `offset..offset + len`.
    pub(crate) fn slice(&self, offset: usize, len: usize) -> Lineage {
        match self {
            Lineage::Unknown => Lineage::Unknown,
            Lineage::Records(r) => r
                .get(offset..offset + len)
                .map_or(Lineage::Unknown, |s| Lineage::Records(s.to_vec())),
        }
    }

    /// The lineage of output rows, given for each the row of these it comes from (`rows`,
    /// null: none); unknown without them.
    pub(crate) fn through(&self, rows: Option<&UInt32Array>) -> Lineage {
        let (Lineage::Records(records), Some(rows)) = (self, rows) else {
            return Lineage::Unknown;
        };
        let of = |i: u32| records.get(i as usize).copied().unwrap_or(UNKNOWN);
        if rows.null_count() == 0 {
            return Lineage::Records(rows.values().iter().map(|&i| of(i)).collect());
        }
        Lineage::Records(
            (0..rows.len())
                .map(|j| {
                    rows.is_valid(j)
                        .then(|| records.get(rows.value(j) as usize).copied())
                        .flatten()
                        .unwrap_or(UNKNOWN)
                })
                .collect(),
        )
    }

    /// Each row's record origin (none when not known; empty when no row's is), from the
    /// chunk's `index`.
    pub(crate) fn origins(&self, index: &RecordIndex) -> Vec<Option<RecordOrigin>> {
        match self {
            Lineage::Unknown => Vec::new(),
            Lineage::Records(records) => records
                .iter()
                .map(|&r| (r != UNKNOWN && (r as usize) < index.records()).then(|| index.origin(r as usize)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Chunk;
    use std::sync::Arc;

    #[test]
    fn lineage_follows_slices_and_stage_outputs_down_to_origins() {
        let decoded = Lineage::of_records(&[0, 2, 3, 5]);
        assert_eq!(decoded.slice(1, 2), Lineage::Records(vec![2, 3]));
        // A stage emits input rows 3 and 1, then a row of no single input.
        let out = decoded.through(Some(&UInt32Array::from(vec![Some(3), Some(1), None])));
        assert_eq!(out, Lineage::Records(vec![5, 2, UNKNOWN]));
        assert_eq!(decoded.through(None), Lineage::Unknown);

        let mut chunk = Chunk {
            span: crate::record::SourceSpan {
                file: Arc::from("a.ndjson"),
                first_line: 1,
                ..Default::default()
            },
            ..Chunk::default()
        };
        for line in ["{}", "x", "{}", "{}", "y", "{}"] {
            chunk.push_record(line.as_bytes());
        }
        let origins = out.origins(&chunk.take_index());
        let line = |o: &Option<RecordOrigin>| match o {
            Some(RecordOrigin::Line { line, .. }) => Some(*line),
            _ => None,
        };
        assert_eq!(origins.iter().map(line).collect::<Vec<_>>(), [Some(6), Some(3), None]);
        assert!(Lineage::Unknown.origins(&RecordIndex::default()).is_empty());
    }
}
