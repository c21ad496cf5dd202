//! The lexer of the predicate language: turns the text into tokens that remember their
//! character position and source text. Strings and backquoted names end at the matching
//! quote, which doubled stands for itself; numbers may carry a sign, a fraction and an
//! exponent. See `parse` for the grammar.

use std::fmt;

/// A syntax error: what was expected where, and what was found instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Character offset of the offending token.
    pub position: usize,
    /// The full sentence, position included.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A bare word: a keyword or a column name.
    Word(String),
    /// A backquoted column name.
    Quoted(String),
    Int(i128),
    Float(f64),
    Str(String),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub kind: Kind,
    pub position: usize,
    /// The source text of the token.
    pub text: String,
}

impl Token {
    pub fn is_keyword(&self, kw: &str) -> bool {
        matches!(&self.kind, Kind::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Eof => "end of input".to_owned(),
            _ => format!("\"{}\"", self.text),
        }
    }
}

const KEYWORDS: [&str; 11] = [
    "and",
    "or",
    "not",
    "is",
    "null",
    "in",
    "true",
    "false",
    "contains",
    "starts_with",
    "ends_with",
];

pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

pub fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Kind::LParen
            }
            ')' => {
                i += 1;
                Kind::RParen
            }
            ',' => {
                i += 1;
                Kind::Comma
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (CmpOp::Eq, 2),
                    ('=', _) => (CmpOp::Eq, 1),
                    ('!', Some('=')) => (CmpOp::NotEq, 2),
                    ('<', Some('>')) => (CmpOp::NotEq, 2),
                    ('<', Some('=')) => (CmpOp::LtEq, 2),
                    ('<', _) => (CmpOp::Lt, 1),
                    ('>', Some('=')) => (CmpOp::GtEq, 2),
                    ('>', _) => (CmpOp::Gt, 1),
                    _ => return Err(unexpected_char(c, start, " (did you mean \"!=\"?)")),
                };
                i += len;
                Kind::Op(op)
            }
            '\'' | '"' | '`' => {
                let (value, end) = quoted(&chars, start)?;
                i = end;
                if c == '`' {
                    Kind::Quoted(value)
                } else {
                    Kind::Str(value)
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                Kind::Word(text(start, i))
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '.') && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit() || *n == '.')) =>
            {
                let (kind, end) = number(&chars, start)?;
                i = end;
                kind
            }
            c => return Err(unexpected_char(c, start, "")),
        };
        tokens.push(Token {
            kind,
            position: start,
            text: text(start, i),
        });
    }
    tokens.push(Token {
        kind: Kind::Eof,
        position: chars.len(),
        text: String::new(),
    });
    Ok(tokens)
}

fn unexpected_char(c: char, position: usize, hint: &str) -> ParseError {
    ParseError {
        position,
        message: format!(
            "unexpected character {c:?} at position {position}{hint}; expected a column, a literal, an operator, \"(\", \")\" or \",\""
        ),
    }
}

/// Read a quoted string or identifier starting at `start` (the opening quote); the quote
/// character doubled stands for itself. Returns the value and the index after the closing
/// quote.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), ParseError> {
    let quote = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                let what = if quote == '`' { "column name" } else { "string" };
                return Err(ParseError {
                    position: start,
                    message: format!(
                        "unterminated {what} starting at position {start}: expected a closing {quote} (write {quote}{quote} for a {quote} inside)"
                    ),
                });
            }
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    value.push(quote);
                    i += 2;
                } else {
                    return Ok((value, i + 1));
                }
            }
            Some(&c) => {
                value.push(c);
                i += 1;
            }
        }
    }
}

/// Read a number starting at `start`. Returns the token kind and the index after it.
fn number(chars: &[char], start: usize) -> Result<(Kind, usize), ParseError> {
    let digits = |mut i: usize| {
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = start;
    if chars[i] == '-' {
        i += 1;
    }
    let int_start = i;
    i = digits(i);
    let mut is_float = false;
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if chars.get(i) == Some(&'.') {
        is_float = true;
        let frac_start = i + 1;
        i = digits(frac_start);
        frac_digits = i - frac_start;
    }
    let bad = |position: usize, what: &str| {
        let found = chars
            .get(position)
            .map_or("end of input".to_owned(), |c| format!("{c:?}"));
        Err(ParseError {
            position,
            message: format!(
                "malformed number at position {start}: expected {what} at position {position}, found {found}"
            ),
        })
    };
    if int_digits + frac_digits == 0 {
        return bad(i, "a digit");
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        is_float = true;
        i += 1;
        if matches!(chars.get(i), Some('+' | '-')) {
            i += 1;
        }
        let exp_start = i;
        i = digits(i);
        if i == exp_start {
            return bad(i, "exponent digits");
        }
    }
    if chars
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
    {
        return bad(i, "a space, operator or parenthesis after the number");
    }
    let text: String = chars[start..i].iter().collect();
    let out_of_range = || ParseError {
        position: start,
        message: format!("number {text} at position {start} is out of range"),
    };
    let kind = if is_float {
        let v: f64 = text.parse().map_err(|_| out_of_range())?;
        if !v.is_finite() {
            return Err(out_of_range());
        }
        Kind::Float(v)
    } else {
        Kind::Int(text.parse().map_err(|_| out_of_range())?)
    };
    Ok((kind, i))
}
