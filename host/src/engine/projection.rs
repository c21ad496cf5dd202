//! The contract's optional `projection` (see `wit/projection.wit`): a transform that says
//! which input columns it reads gets only those, and the host puts the columns it did not
//! send back on the rows it returns. Copying a batch into the sandbox and back costs as much
//! per column as the work many transforms do, so a filter that reads one column of thirteen,
//! or a detector that reads two and adds two, should not pay for the other eleven.
//!
//! Taking up a projection is decided once, from two declarations: the transform's outputs
//! under the whole input and under the narrower one. Each output must be *carrying* (the
//! input's columns, then added ones; under the narrower input the read columns, then the
//! same added ones; with row lineage) or *own* (the same under both). Anything else, and the
//! transform gets whole batches: a projection is a saving, never a change of result.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::{FieldRef, Schema, SchemaRef};

/// How a stage's batches are narrowed to the columns its transform reads, and its outputs
/// widened back.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// The input columns sent, ascending.
    columns: Vec<usize>,
    /// The schema the instance is opened with: those columns.
    schema: SchemaRef,
    /// The outputs that carry input rows; the others are emitted as declared.
    carried: Vec<Carried>,
}

/// An output that carries input rows.
#[derive(Debug, Clone, PartialEq)]
struct Carried {
    name: String,
    /// Its emitted batches: the read columns then the added ones (without the lineage
    /// column); the other input columns come back from the rows the lineage names.
    emitted: SchemaRef,
    /// What it declared: the input's columns then the same added ones.
    declared: SchemaRef,
}

/// One output's declaration: its name, its schema without the lineage column, and whether
/// it has lineage.
pub(crate) type Declared<'a> = (&'a str, &'a SchemaRef, bool);

impl Projection {
    /// The projection for a transform that reads `reads` of `input`, whose outputs are
    /// `whole` under the whole input and `narrow` under the read columns; `None` when it reads
    /// every column. `Err` says why the declarations do not allow one.
    pub(crate) fn plan(
        input: &Schema,
        reads: &[String],
        whole: &[Declared<'_>],
        narrow: impl FnOnce(&SchemaRef) -> Result<Vec<(String, SchemaRef, bool)>, String>,
    ) -> Result<Option<Projection>, String> {
        let mut columns = Vec::with_capacity(reads.len());
        for name in reads {
            let at = input
                .index_of(name)
                .map_err(|_| format!("it reads column `{name}`, which its input does not have"))?;
            columns.push(at);
        }
        columns.sort_unstable();
        columns.dedup();
        if columns.len() == input.fields().len() {
            return Ok(None);
        }
        let schema = Arc::new(input.project(&columns).map_err(|e| e.to_string())?);
        let narrow = narrow(&schema)?;
        if narrow.len() != whole.len() || narrow.iter().zip(whole).any(|(n, w)| n.0 != w.0) {
            return Err("it declares other outputs when given only the columns it reads".into());
        }
        let mut carried = Vec::new();
        for (&(name, whole, traced), (_, narrow, narrow_traced)) in whole.iter().zip(&narrow) {
            if whole.fields() == narrow.fields() && traced == *narrow_traced {
                continue;
            }
            let carrying = traced
                && *narrow_traced
                && starts_with(whole.fields(), input.fields())
                && starts_with(narrow.fields(), schema.fields())
                && whole.fields()[input.fields().len()..] == narrow.fields()[schema.fields().len()..];
            if !carrying {
                return Err(format!(
                    "its output `{name}` neither carries its input's columns (followed by the same added columns, with row lineage) nor stays the same when given only the columns it reads"
                ));
            }
            carried.push(Carried {
                name: name.to_owned(),
                emitted: narrow.clone(),
                declared: whole.clone(),
            });
        }
        Ok(Some(Projection {
            columns,
            schema,
            carried,
        }))
    }

    /// The schema the instance is opened with and its batches have.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The columns of `batch` that are sent.
    pub(crate) fn narrow(&self, batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
        batch.project(&self.columns)
    }

    fn carried(&self, output: &str) -> Option<&Carried> {
        self.carried.iter().find(|c| c.name == output)
    }

    /// The schema emitted batches of `output` have when it carries input rows (the others
    /// are emitted as declared).
    pub(crate) fn emitted(&self, output: &str) -> Option<&SchemaRef> {
        self.carried(output).map(|c| &c.emitted)
    }

    /// Whether `output` carries input rows.
    pub(crate) fn carries(&self, output: &str) -> bool {
        self.carried(output).is_some()
    }

    /// An emitted batch of `name` as declared: for an output that carries input rows, the
    /// input's columns from the rows of `input` that `lineage` names (each within `input`,
    /// checked by the caller), then the columns the transform added; any other as it is.
    /// `Err` says how the output breaks the contract.
    pub(crate) fn widen(
        &self,
        name: &str,
        input: &RecordBatch,
        emitted: &RecordBatch,
        lineage: Option<&UInt32Array>,
    ) -> Result<RecordBatch, String> {
        let Some(output) = self.carried(name) else {
            return Ok(emitted.clone());
        };
        let lineage = lineage.filter(|l| l.null_count() == 0).ok_or_else(|| {
            format!(
                "output `{name}` carries its input's rows, so each of its rows must name the input row it comes from (it declared the columns it reads)"
            )
        })?;
        let mut columns = input_rows(input, lineage).map_err(|e| e.to_string())?;
        columns.extend(emitted.columns()[self.columns.len()..].iter().cloned());
        RecordBatch::try_new(output.declared.clone(), columns).map_err(|e| e.to_string())
    }
}

/// The input's columns at the rows `rows` names: the columns themselves when it names every
/// row in order, the rows kept when it names rows in order (a filter, which copies runs of
/// rows), else the rows gathered one by one.
fn input_rows(input: &RecordBatch, rows: &UInt32Array) -> Result<Vec<ArrayRef>, arrow::error::ArrowError> {
    let values = rows.values();
    let ascending = values.windows(2).all(|w| w[0] < w[1]);
    if ascending && values.len() == input.num_rows() {
        return Ok(input.columns().to_vec());
    }
    let gathered = if ascending {
        let mut keep = vec![false; input.num_rows()];
        for &i in values.iter() {
            keep[i as usize] = true;
        }
        filter_record_batch(input, &BooleanArray::new(BooleanBuffer::from(keep), None))?
    } else {
        take_record_batch(input, rows)?
    };
    Ok(gathered.columns().to_vec())
}

fn starts_with(fields: &[FieldRef], prefix: &[FieldRef]) -> bool {
    fields.len() >= prefix.len() && fields[..prefix.len()] == *prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    fn field(name: &str, t: DataType) -> FieldRef {
        Arc::new(Field::new(name, t, true))
    }

    fn schema(fields: &[FieldRef]) -> SchemaRef {
        Arc::new(Schema::new(fields.to_vec()))
    }

    fn input() -> SchemaRef {
        schema(&[
            field("id", DataType::Utf8),
            field("t", DataType::Float64),
            field("n", DataType::Int64),
        ])
    }

    /// A detector's declarations: the input, then a score.
    fn appends(input: &SchemaRef) -> SchemaRef {
        let mut fields = input.fields().to_vec();
        fields.push(field("score", DataType::Float64));
        schema(&fields)
    }

    fn plan_appending(reads: &[&str]) -> Result<Option<Projection>, String> {
        let input = input();
        let whole = appends(&input);
        let reads: Vec<String> = reads.iter().map(|s| s.to_string()).collect();
        Projection::plan(&input, &reads, &[("main", &whole, true)], |narrow| {
            Ok(vec![("main".into(), appends(narrow), true)])
        })
    }

    #[test]
    fn a_transform_that_appends_to_what_it_reads_gets_only_those_columns_in_input_order() {
        let p = plan_appending(&["n", "id", "n"]).unwrap().unwrap();
        assert_eq!(p.columns, [0, 2]);
        let names: Vec<_> = p.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["id", "n"]);
        assert!(p.carries("main"));
        assert_eq!(p.emitted("main").unwrap().fields().len(), 3);
    }

    #[test]
    fn reading_every_column_is_no_projection_and_an_unknown_column_is_refused() {
        assert_eq!(plan_appending(&["t", "n", "id"]).unwrap(), None);
        let e = plan_appending(&["id", "nope"]).unwrap_err();
        assert!(e.contains("`nope`"), "{e}");
    }

    #[test]
    fn declarations_that_fit_neither_kind_are_refused() {
        let input = input();
        let reads = ["t".to_string()];
        // Rows carried without lineage cannot be widened.
        let whole = appends(&input);
        let e = Projection::plan(&input, &reads, &[("main", &whole, false)], |n| {
            Ok(vec![("main".into(), appends(n), false)])
        })
        .unwrap_err();
        assert!(e.contains("`main`"), "{e}");
        // Added columns that differ with the input.
        let e = Projection::plan(&input, &reads, &[("main", &whole, true)], |n| {
            Ok(vec![("main".into(), n.clone(), true)])
        })
        .unwrap_err();
        assert!(e.contains("neither"), "{e}");
        // Other outputs.
        let e = Projection::plan(&input, &reads, &[("main", &whole, true)], |n| {
            Ok(vec![("other".into(), appends(n), true)])
        })
        .unwrap_err();
        assert!(e.contains("other outputs"), "{e}");
        // An aggregate's output, the same under both, is its own.
        let count = schema(&[field("count", DataType::Int64)]);
        let p = Projection::plan(&input, &reads, &[("main", &count, false)], |_| {
            Ok(vec![("main".into(), count.clone(), false)])
        })
        .unwrap()
        .unwrap();
        assert!(!p.carries("main"));
        assert_eq!(p.emitted("main"), None, "emitted as declared");
    }

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            input(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
                Arc::new(Int64Array::from(vec![10, 20, 30, 40])),
            ],
        )
        .unwrap()
    }

    /// What the transform would emit for input rows `rows` of `batch`: the read columns and a
    /// score per row.
    fn emitted(p: &Projection, rows: &[u32]) -> RecordBatch {
        let narrow = p.narrow(&batch()).unwrap();
        let picked = take_record_batch(&narrow, &UInt32Array::from(rows.to_vec())).unwrap();
        let mut columns = picked.columns().to_vec();
        columns.push(Arc::new(Float64Array::from(
            rows.iter().map(|&r| f64::from(r) / 10.0).collect::<Vec<_>>(),
        )));
        RecordBatch::try_new(p.emitted("main").unwrap().clone(), columns).unwrap()
    }

    #[test]
    fn widened_rows_are_the_input_rows_their_lineage_names_whatever_the_order() {
        let p = plan_appending(&["t"]).unwrap().unwrap();
        let input = batch();
        // Every row in order, some in order (a filter), and rows out of order and repeated.
        for rows in [vec![0, 1, 2, 3], vec![1, 3], vec![3, 0, 0, 2], vec![]] {
            let out = emitted(&p, &rows);
            let lineage = UInt32Array::from(rows.clone());
            let wide = p.widen("main", &input, &out, Some(&lineage)).unwrap();
            let expected = take_record_batch(&input, &lineage).unwrap();
            assert_eq!(wide.num_columns(), 4);
            for c in 0..3 {
                assert_eq!(
                    wide.column(c).as_ref(),
                    expected.column(c).as_ref(),
                    "{rows:?} column {c}"
                );
            }
            assert_eq!(wide.column(3).as_ref(), out.column(1).as_ref());
        }
    }

    #[test]
    fn carried_rows_without_lineage_are_refused() {
        let p = plan_appending(&["t"]).unwrap().unwrap();
        let out = emitted(&p, &[0, 1]);
        let e = p.widen("main", &batch(), &out, None).unwrap_err();
        assert!(e.contains("must name the input row"), "{e}");
        let unnamed = UInt32Array::from(vec![Some(0), None]);
        assert!(p.widen("main", &batch(), &out, Some(&unnamed)).is_err());
    }
}
