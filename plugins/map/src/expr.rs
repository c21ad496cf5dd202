//! Derived-column expressions (`add = [{ name, expr }]`): parsing and type-checking against
//! the input schema (in `describe`), and evaluating over a whole batch with Arrow's
//! arithmetic kernels.
//!
//! Grammar: `+ - * /`, unary minus, parentheses, numeric literals (`32`, `1.8`, `2e3`) and
//! input column names (`temperature`, or `` `wind speed` `` for any other name). Columns
//! must be numeric. The result is int64 when every operand is an integer and there is no
//! `/`, float64 otherwise. Subexpressions of literals only are folded while parsing, so an
//! int64 overflow among literals is a config error; an overflow involving column values
//! makes that row's result null, which the caller treats as a failed row.

use std::sync::Arc;

use sluice_sdk::arrow::array::{Array, ArrayRef, AsArray, Datum, Float64Array, Int64Array, RecordBatch, Scalar};
use sluice_sdk::arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use sluice_sdk::arrow::compute::kernels::numeric;
use sluice_sdk::arrow::compute::{and, is_not_null, is_null};
use sluice_sdk::arrow::datatypes::{DataType, Int64Type, Schema};
use sluice_sdk::arrow::error::ArrowError;

use crate::cast::Computed;

mod parse;

/// A parsed, type-checked expression over the columns of one input schema.
#[derive(Debug, Clone)]
pub struct Expr {
    source: String,
    root: Node,
    kind: Kind,
    /// Input column indices the expression reads, ascending, without repeats.
    columns: Vec<usize>,
}

/// The arithmetic an expression is evaluated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
}

impl Kind {
    fn data_type(self) -> DataType {
        match self {
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
        }
    }
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// An expression tree node; `pos` fields are 0-based character offsets.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Int(i64),
    Float(f64),
    Column(usize),
    /// Unary minus; `pos` is where the `-` is, for messages.
    Neg {
        pos: usize,
        arg: Box<Node>,
    },
    Binary {
        op: Op,
        pos: usize,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
}

/// Why an expression was refused: what, and where (1-based character position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based character position in the expression.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl Expr {
    /// Parse `source` and check it against `input`.
    pub fn parse(source: &str, input: &Schema) -> Result<Expr, ExprError> {
        let root = parse::parse(source, input)?;
        let kind = if is_float(&root, input) { Kind::Float } else { Kind::Int };
        let root = fold(root, kind)?;
        let mut columns = Vec::new();
        collect_columns(&root, &mut columns);
        columns.sort_unstable();
        columns.dedup();
        Ok(Expr {
            source: source.to_owned(),
            root,
            kind,
            columns,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// int64 or float64.
    pub fn data_type(&self) -> DataType {
        self.kind.data_type()
    }

    /// Whether the result can be null: when a column it reads can be.
    pub fn nullable(&self, input: &Schema) -> bool {
        self.columns.iter().any(|&i| input.field(i).is_nullable())
    }

    /// Evaluate over `batch` (of the schema given to [`Expr::parse`]). Rows whose operands
    /// are all non-null but whose result is null (int64 overflow) are the failures.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<Computed, ArrowError> {
        let rows = batch.num_rows();
        let array = match self.eval(&self.root, batch)? {
            Val::Array(array) => array,
            Val::Lit(lit) => expand(&lit, rows),
        };
        let mut failed = None;
        if array.null_count() > 0 {
            let mut mask = is_null(&array)?;
            for &i in &self.columns {
                mask = and(&mask, &is_not_null(batch.column(i))?)?;
            }
            failed = (mask.true_count() > 0).then_some(mask);
        }
        Ok(Computed { array, failed })
    }

    fn eval(&self, node: &Node, batch: &RecordBatch) -> Result<Val, ArrowError> {
        Ok(match node {
            Node::Int(v) => Val::Lit(match self.kind {
                Kind::Int => Arc::new(Int64Array::from(vec![*v])),
                Kind::Float => Arc::new(Float64Array::from(vec![*v as f64])),
            }),
            Node::Float(v) => Val::Lit(Arc::new(Float64Array::from(vec![*v]))),
            Node::Column(i) => {
                let safe = CastOptions::default();
                // An unsigned value beyond int64 becomes null here, and a failed row below.
                Val::Array(cast_with_options(batch.column(*i), &self.kind.data_type(), &safe)?)
            }
            Node::Neg { arg, .. } => match self.eval(arg, batch)? {
                Val::Array(a) => Val::Array(self.negate(&a)?),
                Val::Lit(a) => Val::Lit(self.negate(&a)?),
            },
            Node::Binary { op, lhs, rhs, .. } => {
                let lhs = self.eval(lhs, batch)?;
                let rhs = self.eval(rhs, batch)?;
                let result = match (&lhs, &rhs) {
                    (Val::Lit(l), Val::Lit(r)) => return Ok(Val::Lit(self.binary(*op, l, r)?)),
                    (Val::Array(l), Val::Array(r)) => self.binary(*op, l, r),
                    (Val::Lit(l), Val::Array(r)) => self.binary(*op, &Scalar::new(l.clone()), r),
                    (Val::Array(l), Val::Lit(r)) => self.binary(*op, l, &Scalar::new(r.clone())),
                };
                match result {
                    Err(ArrowError::ArithmeticOverflow(_)) if self.kind == Kind::Int => {
                        Val::Array(Arc::new(checked_int(*op, &lhs, &rhs, batch.num_rows())))
                    }
                    other => Val::Array(other?),
                }
            }
        })
    }

    fn binary(&self, op: Op, lhs: &dyn Datum, rhs: &dyn Datum) -> Result<ArrayRef, ArrowError> {
        match op {
            Op::Add => numeric::add(lhs, rhs),
            Op::Sub => numeric::sub(lhs, rhs),
            Op::Mul => numeric::mul(lhs, rhs),
            Op::Div => numeric::div(lhs, rhs),
        }
    }

    fn negate(&self, array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
        match numeric::neg(array) {
            Err(ArrowError::ArithmeticOverflow(_)) if self.kind == Kind::Int => {
                // Invariant: in Kind::Int every value is cast to Int64.
                let ints = array.as_primitive::<Int64Type>();
                Ok(Arc::new(
                    ints.iter()
                        .map(|v| v.and_then(i64::checked_neg))
                        .collect::<Int64Array>(),
                ))
            }
            other => other,
        }
    }
}

/// An evaluated subexpression: a column-long array, or a one-element literal.
enum Val {
    Array(ArrayRef),
    Lit(ArrayRef),
}

/// The slow path of an int64 operation that overflowed somewhere in the batch: row by
/// row, with the overflowing rows null. Only taken for a batch that does overflow.
fn checked_int(op: Op, lhs: &Val, rhs: &Val, rows: usize) -> Int64Array {
    let side = |v: &Val| match v {
        // Invariant: in Kind::Int every value is cast to Int64.
        Val::Array(a) => (a.as_primitive::<Int64Type>().clone(), false),
        Val::Lit(a) => (a.as_primitive::<Int64Type>().clone(), true),
    };
    let (l, l_lit) = side(lhs);
    let (r, r_lit) = side(rhs);
    (0..rows)
        .map(|row| {
            let li = if l_lit { 0 } else { row };
            let ri = if r_lit { 0 } else { row };
            if l.is_null(li) || r.is_null(ri) {
                return None;
            }
            checked(op, l.value(li), r.value(ri))
        })
        .collect()
}

fn checked(op: Op, a: i64, b: i64) -> Option<i64> {
    match op {
        Op::Add => a.checked_add(b),
        Op::Sub => a.checked_sub(b),
        Op::Mul => a.checked_mul(b),
        Op::Div => a.checked_div(b),
    }
}

/// A one-element literal repeated for every row.
fn expand(lit: &ArrayRef, rows: usize) -> ArrayRef {
    if let Some(v) = lit.as_primitive_opt::<Int64Type>() {
        Arc::new(Int64Array::from_value(v.value(0), rows))
    } else {
        // Invariant: a literal is Int64 or Float64.
        let v = lit.as_primitive::<sluice_sdk::arrow::datatypes::Float64Type>();
        Arc::new(Float64Array::from_value(v.value(0), rows))
    }
}

fn err(pos: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        position: pos + 1,
        message: message.into(),
    }
}

fn is_float(node: &Node, input: &Schema) -> bool {
    match node {
        Node::Int(_) => false,
        Node::Float(_) => true,
        Node::Column(i) => !input.field(*i).data_type().is_integer(),
        Node::Neg { arg, .. } => is_float(arg, input),
        Node::Binary { op, lhs, rhs, .. } => *op == Op::Div || is_float(lhs, input) || is_float(rhs, input),
    }
}

fn collect_columns(node: &Node, out: &mut Vec<usize>) {
    match node {
        Node::Int(_) | Node::Float(_) => {}
        Node::Column(i) => out.push(*i),
        Node::Neg { arg, .. } => collect_columns(arg, out),
        Node::Binary { lhs, rhs, .. } => {
            collect_columns(lhs, out);
            collect_columns(rhs, out);
        }
    }
}

/// Compute literal-only subexpressions now, in the expression's arithmetic.
fn fold(node: Node, kind: Kind) -> Result<Node, ExprError> {
    let literal = |n: &Node| match (n, kind) {
        (Node::Int(v), Kind::Int) => Some(Lit::Int(*v)),
        (Node::Int(v), Kind::Float) => Some(Lit::Float(*v as f64)),
        (Node::Float(v), _) => Some(Lit::Float(*v)),
        _ => None,
    };
    let overflow = |pos| err(pos, "int64 overflow among literals");
    Ok(match node {
        Node::Neg { pos, arg } => {
            let arg = fold(*arg, kind)?;
            match literal(&arg) {
                Some(Lit::Int(v)) => Node::Int(v.checked_neg().ok_or_else(|| overflow(pos))?),
                Some(Lit::Float(v)) => Node::Float(-v),
                None => Node::Neg {
                    pos,
                    arg: Box::new(arg),
                },
            }
        }
        Node::Binary { op, pos, lhs, rhs } => {
            let lhs = fold(*lhs, kind)?;
            let rhs = fold(*rhs, kind)?;
            match (literal(&lhs), literal(&rhs)) {
                (Some(Lit::Int(a)), Some(Lit::Int(b))) => Node::Int(checked(op, a, b).ok_or_else(|| overflow(pos))?),
                (Some(Lit::Float(a)), Some(Lit::Float(b))) => Node::Float(match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                }),
                _ => Node::Binary {
                    op,
                    pos,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
            }
        }
        Node::Int(v) if kind == Kind::Float => Node::Float(v as f64),
        other => other,
    })
}

enum Lit {
    Int(i64),
    Float(f64),
}

/// The input column names, quoted, for messages.
pub(crate) fn available(input: &Schema) -> String {
    let names: Vec<String> = input.fields().iter().map(|f| format!("{:?}", f.name())).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::arrow::array::{Float32Array, Int32Array, StringArray, UInt64Array};
    use sluice_sdk::arrow::datatypes::{Field, Float64Type};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("temperature", DataType::Float64, true),
            Field::new("count", DataType::Int32, true),
            Field::new("wind speed", DataType::Float32, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("big", DataType::UInt64, false),
        ])
    }

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                Arc::new(Float64Array::from(vec![Some(20.0), None, Some(-40.0)])),
                Arc::new(Int32Array::from(vec![Some(3), Some(4), None])),
                Arc::new(Float32Array::from(vec![1.5, 2.0, 0.0])),
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(UInt64Array::from(vec![1, u64::MAX, 2])),
            ],
        )
        .unwrap()
    }

    fn parse_err(source: &str) -> ExprError {
        Expr::parse(source, &schema()).unwrap_err()
    }

    fn floats(source: &str) -> Vec<Option<f64>> {
        let e = Expr::parse(source, &schema()).unwrap();
        assert_eq!(e.data_type(), DataType::Float64);
        let out = e.evaluate(&batch()).unwrap();
        out.array.as_primitive::<Float64Type>().iter().collect()
    }

    fn ints(source: &str) -> (Vec<Option<i64>>, Vec<bool>) {
        let e = Expr::parse(source, &schema()).unwrap();
        assert_eq!(e.data_type(), DataType::Int64);
        let out = e.evaluate(&batch()).unwrap();
        let failed = match out.failed {
            Some(f) => f.iter().map(|b| b.unwrap()).collect(),
            None => vec![false; 3],
        };
        (out.array.as_primitive::<Int64Type>().iter().collect(), failed)
    }

    #[test]
    fn celsius_to_fahrenheit_is_float_arithmetic_with_nulls_kept() {
        assert_eq!(floats("temperature * 1.8 + 32"), [Some(68.0), None, Some(-40.0)]);
    }

    #[test]
    fn precedence_parentheses_and_unary_minus_follow_arithmetic() {
        assert_eq!(ints("2 + count * 3"), (vec![Some(11), Some(14), None], vec![false; 3]));
        assert_eq!(
            ints("(2 + count) * 3"),
            (vec![Some(15), Some(18), None], vec![false; 3])
        );
        assert_eq!(ints("-count - -1"), (vec![Some(-2), Some(-3), None], vec![false; 3]));
    }

    #[test]
    fn division_makes_the_result_float_even_over_integers() {
        assert_eq!(floats("count / 2"), [Some(1.5), Some(2.0), None]);
    }

    #[test]
    fn backticks_quote_a_column_name_with_a_space() {
        assert_eq!(floats("`wind speed` * 2"), [Some(3.0), Some(4.0), Some(0.0)]);
    }

    #[test]
    fn a_literal_only_expression_fills_every_row() {
        assert_eq!(ints("(1 + 2) * 3").0, [Some(9); 3]);
        assert_eq!(floats("1 / 4"), [Some(0.25); 3]);
    }

    #[test]
    fn an_int64_overflow_on_a_row_nulls_that_row_and_marks_it_failed() {
        let (values, failed) = ints("big + 1");
        assert_eq!(values, [Some(2), None, Some(3)], "u64::MAX does not fit int64");
        assert_eq!(failed, [false, true, false]);
        let (values, failed) = ints("count * 4611686018427387904");
        assert_eq!(values, [None, None, None]);
        assert_eq!(failed, [true, true, false], "the null count is not a failure");
    }

    #[test]
    fn an_int64_overflow_among_literals_is_refused_while_parsing() {
        let e = parse_err("count + 9223372036854775807 * 2");
        assert_eq!(e.position, 29);
        assert!(e.message.contains("int64 overflow"), "{e:?}");
    }

    #[test]
    fn an_unknown_column_names_itself_its_position_and_the_available_ones() {
        let e = parse_err("temprature * 1.8");
        assert_eq!(e.position, 1);
        assert!(e.message.contains("unknown column \"temprature\""), "{e:?}");
        assert!(e.message.contains("\"temperature\", \"count\""), "{e:?}");
    }

    #[test]
    fn a_string_column_is_not_a_number() {
        let e = parse_err("count + name");
        assert_eq!(e.position, 9);
        assert!(
            e.message.contains("column \"name\" is of type Utf8, not a number"),
            "{e:?}"
        );
    }

    #[test]
    fn syntax_errors_point_at_the_offending_token() {
        let e = parse_err("count +");
        assert_eq!(
            (e.position, e.message.as_str()),
            (8, "expected a number, a column or `(`, found end of expression")
        );
        let e = parse_err("(count + 1");
        assert_eq!(e.position, 11);
        assert!(e.message.contains("close the `(` at position 1"), "{e:?}");
        let e = parse_err("count 2");
        assert_eq!((e.position, e.message.as_str()), (7, "unexpected number 2"));
        let e = parse_err("count % 2");
        assert_eq!((e.position, e.message.as_str()), (7, "unexpected character '%'"));
        let e = parse_err("1e");
        assert_eq!(e.position, 2);
        let e = parse_err("99999999999999999999");
        assert!(e.message.contains("beyond int64 range"), "{e:?}");
    }

    #[test]
    fn an_absurdly_long_chain_is_refused_instead_of_overflowing_the_stack() {
        assert!(
            parse_err(&format!("{}1", "1+".repeat(5000)))
                .message
                .contains("more than 256 operators")
        );
        assert!(Expr::parse(&format!("{}1", "1+".repeat(256)), &Schema::empty()).is_ok());
    }

    #[test]
    fn absurd_nesting_is_refused_instead_of_overflowing_the_stack() {
        let source = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        let e = parse_err(&source);
        assert!(e.message.contains("nested deeper"), "{e:?}");
    }

    #[test]
    fn nullability_follows_the_columns_read() {
        let s = schema();
        assert!(Expr::parse("count + 1", &s).unwrap().nullable(&s));
        assert!(!Expr::parse("`wind speed` + 1", &s).unwrap().nullable(&s));
        assert!(!Expr::parse("1", &s).unwrap().nullable(&s));
    }
}
