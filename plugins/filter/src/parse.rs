//! The predicate language: grammar and recursive-descent parser (over `lex` tokens)
//! producing an AST whose leaves remember their character positions, so later errors can
//! point into the predicate text.
//!
//! Grammar (keywords are case-insensitive):
//!
//! ```text
//! predicate  := or EOF
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" or ")" | condition
//! condition  := column cmp_op (column | literal)
//!             | literal cmp_op column
//!             | column "is" ["not"] "null"
//!             | column ["not"] "in" "(" literal ("," literal)* ")"
//!             | column ["not"] ("contains" | "starts_with" | "ends_with") string
//! cmp_op     := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//! literal    := number | string | "true" | "false"
//! number     := ["-"] (digits ["." digits*] | "." digits) [("e"|"E") ["+"|"-"] digits]
//! string     := "'" ... "'" | '"' ... '"'     (the quote doubled inside stands for itself)
//! column     := [A-Za-z_][A-Za-z0-9_]*  (not a keyword)  |  "`" ... "`"  (`` for a backquote)
//! ```
//!
//! Positions are 0-based character offsets into the predicate.

pub use crate::lex::{CmpOp, ParseError};
use crate::lex::{Kind, Token, is_keyword, lex};

/// Substring tests on string columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

impl StrOp {
    pub fn keyword(self) -> &'static str {
        match self {
            StrOp::Contains => "contains",
            StrOp::StartsWith => "starts_with",
            StrOp::EndsWith => "ends_with",
        }
    }
}

/// A column reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub position: usize,
}

/// A literal value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub value: LitValue,
    pub position: usize,
    /// The literal as written, for error messages.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LitValue {
    Int(i128),
    Float(f64),
    Str(String),
    Bool(bool),
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Column(Column),
    Literal(Literal),
}

/// The parsed predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// At least one side is a column (the parser refuses literal-vs-literal).
    Compare {
        left: Operand,
        op: CmpOp,
        right: Operand,
    },
    IsNull {
        column: Column,
        negated: bool,
    },
    InList {
        column: Column,
        list: Vec<Literal>,
        negated: bool,
    },
    StrMatch {
        column: Column,
        op: StrOp,
        pattern: Literal,
        negated: bool,
    },
}

impl Expr {
    /// The names of the columns the predicate refers to, each once, in order of appearance.
    pub fn columns(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.collect_columns(&mut names);
        names
    }

    fn collect_columns(&self, names: &mut Vec<String>) {
        let mut add = |c: &Column| {
            if !names.contains(&c.name) {
                names.push(c.name.clone());
            }
        };
        match self {
            Expr::Or(a, b) | Expr::And(a, b) => {
                a.collect_columns(names);
                b.collect_columns(names);
            }
            Expr::Not(e) => e.collect_columns(names),
            Expr::Compare { left, right, .. } => {
                for side in [left, right] {
                    if let Operand::Column(c) = side {
                        add(c);
                    }
                }
            }
            Expr::IsNull { column, .. } | Expr::InList { column, .. } | Expr::StrMatch { column, .. } => add(column),
        }
    }
}

/// Deepest nesting of parentheses and `not` accepted, so a hostile or mistyped predicate
/// cannot exhaust the stack (found by fuzzing: 50 000 `(` crashed a native build).
const MAX_DEPTH: usize = 64;

/// Most `and`s and `or`s in one predicate: a long chain builds a tree as deep as it is long,
/// which the checker and the evaluator walk recursively.
const MAX_CONNECTIVES: usize = 1024;

/// Parse a whole predicate.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let tokens = lex(src)?;
    let mut parser = Parser {
        tokens,
        next: 0,
        depth: 0,
        connectives: 0,
    };
    let expr = parser.or()?;
    let tok = parser.peek();
    if tok.kind != Kind::Eof {
        return Err(parser.expected("\"and\", \"or\" or the end of the predicate", tok));
    }
    Ok(expr)
}

struct Parser {
    /// Always ends with an `Eof` token.
    tokens: Vec<Token>,
    next: usize,
    /// Parentheses and `not`s open around the current token.
    depth: usize,
    /// `and`s and `or`s read so far.
    connectives: usize,
}

impl Parser {
    fn peek(&self) -> Token {
        // `next` never passes the final `Eof`: `bump` does not advance beyond it.
        self.tokens[self.next.min(self.tokens.len() - 1)].clone()
    }

    fn bump(&mut self) -> Token {
        let tok = self.peek();
        if tok.kind != Kind::Eof {
            self.next += 1;
        }
        tok
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let found = self.peek().is_keyword(kw);
        if found {
            self.next += 1;
        }
        found
    }

    fn expected(&self, what: &str, found: Token) -> ParseError {
        let mut message = format!(
            "expected {what} at position {}, found {}",
            found.position,
            found.describe()
        );
        if let Kind::Word(w) = &found.kind
            && is_keyword(w)
        {
            message.push_str(&format!(" (a column named like a keyword must be backquoted: `{w}`)"));
        }
        ParseError {
            position: found.position,
            message,
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.eat_keyword("or") {
            self.connective()?;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.eat_keyword("and") {
            self.connective()?;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn connective(&mut self) -> Result<(), ParseError> {
        self.connectives += 1;
        if self.connectives > MAX_CONNECTIVES {
            let position = self.peek().position;
            return Err(ParseError {
                position,
                message: format!("the predicate has more than {MAX_CONNECTIVES} \"and\"/\"or\" at position {position}"),
            });
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let tok = self.peek();
        if tok.kind == Kind::LParen || tok.is_keyword("not") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(ParseError {
                    position: tok.position,
                    message: format!(
                        "the predicate nests parentheses and \"not\" deeper than {MAX_DEPTH} levels at position {}",
                        tok.position
                    ),
                });
            }
            let inner = self.nested();
            self.depth -= 1;
            return inner;
        }
        self.simple()
    }

    /// `not …` or `( … )`.
    fn nested(&mut self) -> Result<Expr, ParseError> {
        if self.eat_keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        let open = self.bump();
        let inner = self.or()?;
        let close = self.bump();
        if close.kind != Kind::RParen {
            let what = format!(
                "\")\" to close the \"(\" at position {}, or \"and\"/\"or\"",
                open.position
            );
            return Err(self.expected(&what, close));
        }
        Ok(inner)
    }

    /// A condition on a column, or one with a literal first.
    fn simple(&mut self) -> Result<Expr, ParseError> {
        let tok = self.peek();
        if let Some(column) = self.column() {
            return self.condition(column);
        }
        if let Some(literal) = self.literal() {
            return self.literal_first(literal);
        }
        Err(self.expected("a column, a literal, \"not\" or \"(\"", tok))
    }

    /// Consume a column reference if one comes next.
    fn column(&mut self) -> Option<Column> {
        let tok = self.peek();
        let name = match tok.kind {
            Kind::Word(w) if !is_keyword(&w) => w,
            Kind::Quoted(name) => name,
            _ => return None,
        };
        self.bump();
        Some(Column {
            name,
            position: tok.position,
        })
    }

    /// Consume a literal if one comes next.
    fn literal(&mut self) -> Option<Literal> {
        let tok = self.peek();
        let value = match tok.kind {
            Kind::Int(v) => LitValue::Int(v),
            Kind::Float(v) => LitValue::Float(v),
            Kind::Str(ref s) => LitValue::Str(s.clone()),
            _ if tok.is_keyword("true") => LitValue::Bool(true),
            _ if tok.is_keyword("false") => LitValue::Bool(false),
            _ => return None,
        };
        self.bump();
        Some(Literal {
            value,
            position: tok.position,
            text: tok.text,
        })
    }

    fn comparison_op(&mut self) -> Option<CmpOp> {
        match self.peek().kind {
            Kind::Op(op) => {
                self.bump();
                Some(op)
            }
            _ => None,
        }
    }

    /// `literal OP column`.
    fn literal_first(&mut self, literal: Literal) -> Result<Expr, ParseError> {
        let Some(op) = self.comparison_op() else {
            let what = format!("a comparison operator after {}", literal.text);
            return Err(self.expected(&what, self.peek()));
        };
        let Some(column) = self.column() else {
            let what = format!(
                "a column after \"{} {}\" (a comparison needs at least one column)",
                literal.text,
                self.tokens[self.next - 1].text
            );
            return Err(self.expected(&what, self.peek()));
        };
        Ok(Expr::Compare {
            left: Operand::Literal(literal),
            op,
            right: Operand::Column(column),
        })
    }

    /// Everything that may follow a column.
    fn condition(&mut self, column: Column) -> Result<Expr, ParseError> {
        if let Some(op) = self.comparison_op() {
            let right = if let Some(c) = self.column() {
                Operand::Column(c)
            } else if let Some(l) = self.literal() {
                Operand::Literal(l)
            } else {
                let tok = self.peek();
                let op_text = &self.tokens[self.next - 1].text;
                let mut err = self.expected(
                    &format!("a literal or a column after \"{} {op_text}\"", column.name),
                    tok.clone(),
                );
                if tok.is_keyword("null") {
                    err.message = format!(
                        "null is not a value at position {}: write \"{} is null\" or \"{} is not null\"",
                        tok.position, column.name, column.name
                    );
                }
                return Err(err);
            };
            return Ok(Expr::Compare {
                left: Operand::Column(column),
                op,
                right,
            });
        }
        if self.eat_keyword("is") {
            let negated = self.eat_keyword("not");
            if !self.eat_keyword("null") {
                let what = if negated {
                    "\"null\" after \"is not\""
                } else {
                    "\"null\" or \"not null\" after \"is\""
                };
                return Err(self.expected(what, self.peek()));
            }
            return Ok(Expr::IsNull { column, negated });
        }
        let negated = self.eat_keyword("not");
        if self.eat_keyword("in") {
            let list = self.list()?;
            return Ok(Expr::InList { column, list, negated });
        }
        for op in [StrOp::Contains, StrOp::StartsWith, StrOp::EndsWith] {
            if self.eat_keyword(op.keyword()) {
                let tok = self.peek();
                let pattern = match self.literal() {
                    Some(
                        l @ Literal {
                            value: LitValue::Str(_),
                            ..
                        },
                    ) => l,
                    _ => {
                        let what = format!("a quoted string after \"{}\"", op.keyword());
                        return Err(self.expected(&what, tok));
                    }
                };
                return Ok(Expr::StrMatch {
                    column,
                    op,
                    pattern,
                    negated,
                });
            }
        }
        let what = if negated {
            format!(
                "\"in\", \"contains\", \"starts_with\" or \"ends_with\" after \"{} not\"",
                column.name
            )
        } else {
            format!("a comparison operator after column \"{}\"", column.name)
        };
        Err(self.expected(&what, self.peek()))
    }

    /// `( literal, ... )` after `in`.
    fn list(&mut self) -> Result<Vec<Literal>, ParseError> {
        let open = self.peek();
        if open.kind != Kind::LParen {
            return Err(self.expected("\"(\" after \"in\"", open));
        }
        self.bump();
        let mut list = Vec::new();
        loop {
            let Some(literal) = self.literal() else {
                let tok = self.peek();
                let mut err = self.expected("a literal in the \"in\" list", tok.clone());
                if tok.is_keyword("null") {
                    err.message.push_str(" (null never matches: use \"is null\")");
                }
                return Err(err);
            };
            list.push(literal);
            let tok = self.bump();
            match tok.kind {
                Kind::Comma => {}
                Kind::RParen => return Ok(list),
                _ => return Err(self.expected("\",\" or \")\" in the \"in\" list", tok)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        parse(src).unwrap_err().message
    }

    fn col(name: &str, position: usize) -> Column {
        Column {
            name: name.into(),
            position,
        }
    }

    #[test]
    fn a_missing_operator_names_the_column_and_the_position() {
        assert_eq!(
            err("temperature 25"),
            "expected a comparison operator after column \"temperature\" at position 12, found \"25\""
        );
    }

    #[test]
    fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
        let e = parse("not a = 1 and b = 2 or c = 3").unwrap();
        let Expr::Or(left, _) = e else {
            panic!("top is not or: {e:?}")
        };
        let Expr::And(first, _) = *left else {
            panic!("left of or is not and")
        };
        assert!(matches!(*first, Expr::Not(_)));
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let e = parse("x IS NOT NULL AnD y Not In (1, 2)").unwrap();
        assert!(matches!(e, Expr::And(..)));
    }

    #[test]
    fn numbers_may_be_negative_fractional_and_exponential() {
        let e = parse("a in (-3, 2.5, -1.5e3, 1E-2, .5, -.25)").unwrap();
        let Expr::InList { list, .. } = e else { panic!() };
        let values: Vec<LitValue> = list.into_iter().map(|l| l.value).collect();
        assert_eq!(
            values,
            [
                LitValue::Int(-3),
                LitValue::Float(2.5),
                LitValue::Float(-1500.0),
                LitValue::Float(0.01),
                LitValue::Float(0.5),
                LitValue::Float(-0.25),
            ]
        );
    }

    #[test]
    fn a_doubled_quote_inside_a_string_stands_for_itself() {
        let e = parse(r#"name = 'it''s' or name = "say ""hi""" or name = 'a\b'"#).unwrap();
        let mut strings = Vec::new();
        fn collect(e: &Expr, out: &mut Vec<String>) {
            match e {
                Expr::Or(a, b) => {
                    collect(a, out);
                    collect(b, out);
                }
                Expr::Compare {
                    right:
                        Operand::Literal(Literal {
                            value: LitValue::Str(s),
                            ..
                        }),
                    ..
                } => out.push(s.clone()),
                _ => panic!("unexpected {e:?}"),
            }
        }
        collect(&e, &mut strings);
        assert_eq!(strings, ["it's", "say \"hi\"", "a\\b"]);
    }

    #[test]
    fn backquoted_columns_may_hold_spaces_and_keywords() {
        let e = parse("`odd name` >= 1 and `in` = 'x' and `a``b` is null").unwrap();
        let Expr::And(left, right) = e else { panic!() };
        assert_eq!(
            *right,
            Expr::IsNull {
                column: col("a`b", 35),
                negated: false
            }
        );
        let Expr::And(first, _) = *left else { panic!() };
        let Expr::Compare { left, op, .. } = *first else {
            panic!()
        };
        assert_eq!(left, Operand::Column(col("odd name", 0)));
        assert_eq!(op, CmpOp::GtEq);
    }

    #[test]
    fn every_comparison_operator_spelling_is_recognised() {
        for (src, op) in [
            ("a = 1", CmpOp::Eq),
            ("a == 1", CmpOp::Eq),
            ("a != 1", CmpOp::NotEq),
            ("a <> 1", CmpOp::NotEq),
            ("a < 1", CmpOp::Lt),
            ("a <= 1", CmpOp::LtEq),
            ("a > 1", CmpOp::Gt),
            ("a >= 1", CmpOp::GtEq),
            ("a>=-1", CmpOp::GtEq),
        ] {
            let Expr::Compare { op: got, .. } = parse(src).unwrap() else {
                panic!("{src}")
            };
            assert_eq!(got, op, "{src}");
        }
    }

    #[test]
    fn a_literal_on_the_left_needs_a_column_on_the_right() {
        assert!(matches!(
            parse("25 < temperature").unwrap(),
            Expr::Compare {
                left: Operand::Literal(_),
                op: CmpOp::Lt,
                right: Operand::Column(_)
            }
        ));
        assert_eq!(
            err("1 = 2"),
            "expected a column after \"1 =\" (a comparison needs at least one column) at position 4, found \"2\""
        );
    }

    #[test]
    fn comparing_with_null_suggests_is_null() {
        assert_eq!(
            err("humidity = null"),
            "null is not a value at position 11: write \"humidity is null\" or \"humidity is not null\""
        );
    }

    #[test]
    fn an_unclosed_parenthesis_is_reported_at_the_end() {
        assert_eq!(
            err("(a = 1 or b = 2"),
            "expected \")\" to close the \"(\" at position 0, or \"and\"/\"or\" at position 15, found end of input"
        );
    }

    #[test]
    fn an_unterminated_string_points_at_its_opening_quote() {
        let e = parse("a = 'abc").unwrap_err();
        assert_eq!(e.position, 4);
        assert!(e.message.starts_with("unterminated string starting at position 4"));
    }

    #[test]
    fn nesting_is_bounded_rather_than_exhausting_the_stack() {
        let ok = format!("{}a = 1{}", "(".repeat(MAX_DEPTH - 1), ")".repeat(MAX_DEPTH - 1));
        assert!(parse(&format!("not {ok}")).is_ok());
        let deep = format!("{}a = 1{}", "(".repeat(50_000), ")".repeat(50_000));
        assert!(err(&deep).contains("deeper than 64 levels"), "{}", err(&deep));
        assert!(err(&"not ".repeat(50_000)).contains("deeper than 64 levels"));
        let long = vec!["a = 1"; 5000].join(" or ");
        assert!(err(&long).contains("more than 1024"), "{}", err(&long));
    }

    #[test]
    fn an_empty_predicate_is_an_error() {
        assert_eq!(
            err("  "),
            "expected a column, a literal, \"not\" or \"(\" at position 2, found end of input"
        );
    }

    #[test]
    fn trailing_tokens_are_an_error() {
        assert_eq!(
            err("a = 1 b = 2"),
            "expected \"and\", \"or\" or the end of the predicate at position 6, found \"b\""
        );
    }

    #[test]
    fn a_keyword_in_column_position_suggests_backquotes() {
        assert_eq!(
            err("in = 3"),
            "expected a column, a literal, \"not\" or \"(\" at position 0, found \"in\" (a column named like a keyword must be backquoted: `in`)"
        );
    }

    #[test]
    fn string_operators_need_a_string_literal() {
        assert_eq!(
            err("name contains 3"),
            "expected a quoted string after \"contains\" at position 14, found \"3\""
        );
    }

    #[test]
    fn in_lists_must_be_non_empty_and_comma_separated() {
        assert_eq!(
            err("a in ()"),
            "expected a literal in the \"in\" list at position 6, found \")\""
        );
        assert_eq!(
            err("a in (1 2)"),
            "expected \",\" or \")\" in the \"in\" list at position 8, found \"2\""
        );
        assert_eq!(
            err("a not in 1"),
            "expected \"(\" after \"in\" at position 9, found \"1\""
        );
    }

    #[test]
    fn is_must_be_followed_by_null() {
        assert_eq!(
            err("a is 3"),
            "expected \"null\" or \"not null\" after \"is\" at position 5, found \"3\""
        );
        assert_eq!(
            err("a is not"),
            "expected \"null\" after \"is not\" at position 8, found end of input"
        );
    }

    #[test]
    fn malformed_numbers_and_stray_characters_are_reported() {
        assert_eq!(
            err("a > 1e"),
            "malformed number at position 4: expected exponent digits at position 6, found end of input"
        );
        assert_eq!(
            err("a > 12abc"),
            "malformed number at position 4: expected a space, operator or parenthesis after the number at position 6, found 'a'"
        );
        assert_eq!(
            err("a ! 1"),
            "unexpected character '!' at position 2 (did you mean \"!=\"?); expected a column, a literal, an operator, \"(\", \")\" or \",\""
        );
        assert!(err("a = 1 & b").starts_with("unexpected character '&' at position 6; expected"));
        assert_eq!(
            err("a = 99999999999999999999999999999999999999999"),
            "number 99999999999999999999999999999999999999999 at position 4 is out of range"
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(
            err("`température` 1"),
            "expected a comparison operator after column \"température\" at position 14, found \"1\""
        );
    }
}
