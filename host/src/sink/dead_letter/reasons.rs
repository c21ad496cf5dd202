//! Dead-letter reasons counted by kind, for the run summary and the error budget: the values
//! are taken out of a reason, so `field count: 2.7 is not an integer` and `field count: 9.5
//! is not an integer` are one kind, shown with its first example.

use std::collections::HashMap;

/// Distinct kinds kept; the rest are counted together (a reason that embeds something
/// unbounded must not grow memory without end).
const MAX_KINDS: usize = 256;

/// One kind of reason, how often it was seen, and its first example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonCount {
    /// `decode`, a transform's name, or `sink NAME`.
    pub stage: String,
    /// The reason with its values replaced by `…`.
    pub kind: String,
    /// Dead letters of this kind.
    pub count: u64,
    /// The first reason of this kind, whole.
    pub example: String,
}

/// Counts by (stage, kind).
#[derive(Debug, Default)]
pub struct Reasons {
    kinds: HashMap<(String, String), (u64, String, usize)>,
    others: u64,
}

impl Reasons {
    /// Count one dead letter of `stage` for `reason`.
    pub fn add(&mut self, stage: &str, reason: &str) {
        let key = (stage.to_owned(), kind_of(reason));
        let order = self.kinds.len();
        match self.kinds.get_mut(&key) {
            Some(entry) => entry.0 += 1,
            None if order < MAX_KINDS => {
                self.kinds.insert(key, (1, reason.to_owned(), order));
            }
            None => self.others += 1,
        }
    }

    /// The `n` most frequent kinds (the first seen first among equals), and then, if any
    /// were beyond the kinds kept, one entry for all of those.
    pub fn top(&self, n: usize) -> Vec<ReasonCount> {
        let mut all: Vec<_> = self.kinds.iter().collect();
        all.sort_by_key(|(_, (count, _, order))| (std::cmp::Reverse(*count), *order));
        let mut top: Vec<ReasonCount> = all
            .into_iter()
            .take(n)
            .map(|((stage, kind), (count, example, _))| ReasonCount {
                stage: stage.clone(),
                kind: kind.clone(),
                count: *count,
                example: example.clone(),
            })
            .collect();
        if self.others > 0 {
            top.push(ReasonCount {
                stage: "*".into(),
                kind: format!("{MAX_KINDS}+ other kinds of reason"),
                count: self.others,
                example: String::new(),
            });
        }
        top
    }
}

/// A reason without its values: quoted strings and numbers standing alone become `…`.
pub fn kind_of(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut chars = reason.char_indices().peekable();
    let mut previous: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        let starts_token = previous.is_none_or(|p| p == ' ' || p == '(' || p == ':' || p == '=');
        if c == '"' {
            // Skip to the closing quote (escapes included) and an ellipsis after it.
            let mut escaped = false;
            for (_, q) in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if q == '\\' {
                    escaped = true;
                } else if q == '"' {
                    break;
                }
            }
            if chars.peek().is_some_and(|(_, n)| *n == '…') {
                chars.next();
            }
            out.push('…');
            previous = Some('"');
            continue;
        }
        if starts_token
            && (c.is_ascii_digit() || (c == '-' && reason[i + 1..].starts_with(|d: char| d.is_ascii_digit())))
        {
            let rest = &reason[i..];
            let len = rest
                .find(|x: char| !(x.is_ascii_digit() || "+-.eE".contains(x)))
                .unwrap_or(rest.len());
            let after = rest[len..].chars().next();
            if after.is_none_or(|a| " ,;)".contains(a)) {
                out.push('…');
                for _ in 1..rest[..len].chars().count() {
                    chars.next();
                }
                previous = Some('0');
                continue;
            }
        }
        out.push(c);
        previous = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_taken_out_of_reasons() {
        assert_eq!(
            kind_of("field count: 2.7 is not an integer"),
            "field count: … is not an integer"
        );
        assert_eq!(
            kind_of("field count: -3 is out of range for int32"),
            "field count: … is out of range for int32"
        );
        assert_eq!(
            kind_of("field t: \"a \\\"b\\\" c\"… is a string, not float64"),
            "field t: … is a string, not float64"
        );
        assert_eq!(
            kind_of("field sensor2: 1e39 is out of range for float32"),
            "field sensor2: … is out of range for float32"
        );
        assert_eq!(
            kind_of("missing required field client_id"),
            "missing required field client_id"
        );
        assert_eq!(
            kind_of("not valid JSON: expected value at line 1 column 2"),
            "not valid JSON: expected value at line … column …"
        );
    }

    #[test]
    fn kinds_are_counted_most_frequent_first_and_bounded() {
        let mut r = Reasons::default();
        r.add("decode", "field a: 1.5 is not an integer");
        r.add("decode", "missing required field b");
        r.add("decode", "missing required field b");
        r.add("decode", "field a: 2.5 is not an integer");
        r.add("decode", "field a: 3.5 is not an integer");
        let top = r.top(1);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].kind, "field a: … is not an integer");
        assert_eq!(top[0].count, 3);
        assert_eq!(top[0].example, "field a: 1.5 is not an integer");
        for i in 0..MAX_KINDS + 10 {
            r.add("decode", &format!("field f{i} is null"));
        }
        let top = r.top(2);
        assert_eq!(top.last().map(|t| t.count), Some(12));
    }
}
