//! The expression parser: characters to tokens to a [`Node`] tree, checking column names
//! and types against the input schema. Errors carry the 1-based character position.

use std::fmt;

use sluice_sdk::arrow::datatypes::Schema;

use super::{ExprError, Node, Op, err};

/// Deepest nesting of parentheses and unary minus accepted, so a hostile config cannot
/// exhaust the guest's stack.
const MAX_DEPTH: usize = 64;

/// Most operators in one expression: a long chain (`1+1+…+1`) builds a tree as deep as it is
/// long, which the passes over it walk recursively (found by fuzzing: a 12 KB chain exhausted
/// a test thread's stack).
const MAX_OPERATORS: usize = 256;

/// Parse a whole expression over the columns of `input`.
pub(super) fn parse(source: &str, input: &Schema) -> Result<Node, ExprError> {
    let mut parser = Parser {
        tokens: lex(source)?,
        next: 0,
        input,
        depth: 0,
        operators: 0,
    };
    let root = parser.expr()?;
    let end = parser.peek();
    if end.tok != Tok::End {
        return Err(err(end.pos, format!("unexpected {}", end.tok)));
    }
    Ok(root)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Float(f64),
    Name(String),
    Plus,
    Minus,
    Star,
    Slash,
    Open,
    Close,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Int(v) => write!(f, "number {v}"),
            Tok::Float(v) => write!(f, "number {v}"),
            Tok::Name(n) => write!(f, "column {n:?}"),
            Tok::Plus => f.write_str("`+`"),
            Tok::Minus => f.write_str("`-`"),
            Tok::Star => f.write_str("`*`"),
            Tok::Slash => f.write_str("`/`"),
            Tok::Open => f.write_str("`(`"),
            Tok::Close => f.write_str("`)`"),
            Tok::End => f.write_str("end of expression"),
        }
    }
}

struct Token {
    tok: Tok,
    /// 0-based character position.
    pos: usize,
}

fn lex(source: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '(' => Tok::Open,
            ')' => Tok::Close,
            '`' => {
                let len = chars[i + 1..].iter().position(|&c| c == '`');
                let Some(len) = len else {
                    return Err(err(start, "unclosed `` ` `` around a column name"));
                };
                i += len + 2;
                tokens.push(Token {
                    tok: Tok::Name(chars[start + 1..start + 1 + len].iter().collect()),
                    pos: start,
                });
                continue;
            }
            c if c.is_ascii_digit() || c == '.' => {
                let (tok, end) = number(&chars, start)?;
                i = end;
                tokens.push(Token { tok, pos: start });
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token {
                    tok: Tok::Name(chars[start..i].iter().collect()),
                    pos: start,
                });
                continue;
            }
            other => return Err(err(start, format!("unexpected character {other:?}"))),
        };
        tokens.push(Token { tok, pos: start });
        i += 1;
    }
    tokens.push(Token {
        tok: Tok::End,
        pos: chars.len(),
    });
    Ok(tokens)
}

/// A numeric literal starting at `start`: digits, optional fraction, optional exponent.
fn number(chars: &[char], start: usize) -> Result<(Tok, usize), ExprError> {
    let digits = |mut i: usize| {
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits(start);
    let mut float = false;
    if chars.get(i) == Some(&'.') {
        float = true;
        i = digits(i + 1);
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        let end = digits(j);
        if end == j {
            return Err(err(i, "expected digits after the exponent"));
        }
        float = true;
        i = end;
    }
    let text: String = chars[start..i].iter().collect();
    let bad = || err(start, format!("invalid number {text:?}"));
    let tok = if float {
        Tok::Float(text.parse().map_err(|_| bad())?)
    } else {
        Tok::Int(
            text.parse()
                .map_err(|_| err(start, format!("integer {text} is beyond int64 range")))?,
        )
    };
    Ok((tok, i))
}

struct Parser<'a> {
    tokens: Vec<Token>,
    next: usize,
    input: &'a Schema,
    depth: usize,
    /// Operators read so far.
    operators: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // Invariant: `lex` ends every token list with `End`, which is never consumed.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> (Tok, usize) {
        let t = self.peek();
        let out = (t.tok.clone(), t.pos);
        if out.0 != Tok::End {
            self.next += 1;
        }
        out
    }

    /// expr := term (('+' | '-') term)*
    fn expr(&mut self) -> Result<Node, ExprError> {
        let mut lhs = self.term()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => Op::Add,
                Tok::Minus => Op::Sub,
                _ => return Ok(lhs),
            };
            let (_, pos) = self.bump();
            self.count(pos)?;
            let rhs = self.term()?;
            lhs = binary(op, pos, lhs, rhs);
        }
    }

    /// term := unary (('*' | '/') unary)*
    fn term(&mut self) -> Result<Node, ExprError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => Op::Mul,
                Tok::Slash => Op::Div,
                _ => return Ok(lhs),
            };
            let (_, pos) = self.bump();
            self.count(pos)?;
            let rhs = self.unary()?;
            lhs = binary(op, pos, lhs, rhs);
        }
    }

    /// unary := '-' unary | primary
    fn unary(&mut self) -> Result<Node, ExprError> {
        if self.peek().tok != Tok::Minus {
            return self.primary();
        }
        let (_, pos) = self.bump();
        self.count(pos)?;
        self.descend(pos)?;
        let arg = self.unary()?;
        self.depth -= 1;
        Ok(Node::Neg {
            pos,
            arg: Box::new(arg),
        })
    }

    /// primary := number | column | '(' expr ')'
    fn primary(&mut self) -> Result<Node, ExprError> {
        let (tok, pos) = self.bump();
        match tok {
            Tok::Int(v) => Ok(Node::Int(v)),
            Tok::Float(v) => Ok(Node::Float(v)),
            Tok::Name(name) => self.column(&name, pos),
            Tok::Open => {
                self.descend(pos)?;
                let inner = self.expr()?;
                self.depth -= 1;
                let (close, close_pos) = self.bump();
                if close != Tok::Close {
                    return Err(err(
                        close_pos,
                        format!("expected `)` to close the `(` at position {}, found {close}", pos + 1),
                    ));
                }
                Ok(inner)
            }
            other => Err(err(pos, format!("expected a number, a column or `(`, found {other}"))),
        }
    }

    fn count(&mut self, pos: usize) -> Result<(), ExprError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(err(
                pos,
                format!("more than {MAX_OPERATORS} operators in one expression"),
            ));
        }
        Ok(())
    }

    fn descend(&mut self, pos: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(pos, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn column(&self, name: &str, pos: usize) -> Result<Node, ExprError> {
        let Ok(index) = self.input.index_of(name) else {
            return Err(err(
                pos,
                format!(
                    "unknown column {name:?}; available columns: {}",
                    super::available(self.input)
                ),
            ));
        };
        let data_type = self.input.field(index).data_type();
        if !data_type.is_numeric() {
            return Err(err(
                pos,
                format!("column {name:?} is of type {data_type}, not a number"),
            ));
        }
        Ok(Node::Column(index))
    }
}

fn binary(op: Op, pos: usize, lhs: Node, rhs: Node) -> Node {
    Node::Binary {
        op,
        pos,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}
