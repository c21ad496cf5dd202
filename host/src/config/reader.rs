//! A typed reader over a parsed TOML table that keeps spans, reports every problem and
//! refuses unknown keys, naming the keys it expected.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::Diags;

/// One TOML table being read, with the dotted key that leads to it.
pub(crate) struct Table<'a, 'i> {
    table: &'a DeTable<'i>,
    span: Range<usize>,
    key: String,
    known: Vec<&'static str>,
}

/// A value with its byte span and dotted key.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Byte range of the value in the file.
    pub span: Range<usize>,
    /// Dotted key of the value.
    pub key: String,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(crate) fn new(table: &'a DeTable<'i>, span: Range<usize>, key: impl Into<String>) -> Self {
        Table {
            table,
            span,
            key: key.into(),
            known: Vec::new(),
        }
    }

    pub(crate) fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn child_key(&self, name: &str) -> String {
        if self.key.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.key)
        }
    }

    /// The raw value of `name`, marking the key as known.
    pub(crate) fn raw(&mut self, name: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.known.push(name);
        self.table.get(name)
    }

    fn typed<T>(
        &mut self,
        d: &mut Diags,
        name: &'static str,
        expected: &str,
        get: impl Fn(&DeValue<'i>) -> Option<T>,
    ) -> Option<Located<T>> {
        let raw = self.raw(name)?;
        let key = self.child_key(name);
        match get(raw.get_ref()) {
            Some(value) => Some(Located {
                value,
                span: raw.span(),
                key,
            }),
            None => {
                d.push(
                    raw.span(),
                    &key,
                    format!("expected {expected}, found {}", describe(raw.get_ref())),
                );
                None
            }
        }
    }

    /// A string, with `${VAR}` and `${VAR:-default}` taken from the environment.
    pub(crate) fn opt_str(&mut self, d: &mut Diags, name: &'static str) -> Option<Located<String>> {
        let v = self.typed(d, name, "a string", |v| v.as_str().map(str::to_owned))?;
        match super::env::substitute(&v.value, |var| std::env::var(var).ok()) {
            Ok(value) => Some(Located { value, ..v }),
            Err(message) => {
                d.push(v.span, &v.key, message);
                None
            }
        }
    }

    pub(crate) fn req_str(&mut self, d: &mut Diags, name: &'static str) -> Option<Located<String>> {
        let present = self.table.contains_key(name);
        let value = self.opt_str(d, name);
        if !present {
            self.missing(d, name, "a string");
        }
        value
    }

    /// A non-empty array of strings (a single string is taken as a one-element list).
    pub(crate) fn req_str_list(&mut self, d: &mut Diags, name: &'static str) -> Option<Located<Vec<String>>> {
        let present = self.table.contains_key(name);
        let value = self.typed(d, name, "a non-empty array of strings", |v| match v {
            DeValue::String(s) => Some(vec![s.to_string()]),
            DeValue::Array(items) if !items.is_empty() => {
                items.iter().map(|i| i.get_ref().as_str().map(str::to_owned)).collect()
            }
            _ => None,
        });
        if !present {
            self.missing(d, name, "a non-empty array of strings");
        }
        value
    }

    pub(crate) fn opt_bool(&mut self, d: &mut Diags, name: &'static str) -> Option<Located<bool>> {
        self.typed(d, name, "true or false", DeValue::as_bool)
    }

    /// An integer within `range`.
    pub(crate) fn opt_uint(
        &mut self,
        d: &mut Diags,
        name: &'static str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<Located<u64>> {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        let v = self.typed(d, name, &expected, |v| {
            let int = v.as_integer()?;
            u64::from_str_radix(&int.as_str().replace('_', ""), int.radix()).ok()
        })?;
        if range.contains(&v.value) {
            Some(v)
        } else {
            d.push(v.span, &v.key, format!("expected {expected}, found {}", v.value));
            None
        }
    }

    /// A number from 0 to 1 (a float, or the integers 0 and 1).
    pub(crate) fn opt_fraction(&mut self, d: &mut Diags, name: &'static str) -> Option<Located<f64>> {
        let expected = "a number from 0 to 1, such as 0.1";
        let v = self.typed(d, name, expected, |v| {
            let text = match v {
                DeValue::Float(f) => f.as_str().replace('_', ""),
                DeValue::Integer(i) if i.radix() == 10 => i.as_str().replace('_', ""),
                _ => return None,
            };
            text.parse::<f64>().ok()
        })?;
        if (0.0..=1.0).contains(&v.value) {
            Some(v)
        } else {
            d.push(v.span, &v.key, format!("expected {expected}, found {}", v.value));
            None
        }
    }

    /// A duration written as a string in the contract's syntax ([`sluice_contract::Duration`]:
    /// `"250ms"`, `"5s"`, `"1h30m"`, `"2d"`), within `range`.
    pub(crate) fn opt_duration(
        &mut self,
        d: &mut Diags,
        name: &'static str,
        range: std::ops::RangeInclusive<std::time::Duration>,
    ) -> Option<Located<std::time::Duration>> {
        let v = self.opt_str(d, name)?;
        let expected = format!(
            "a duration such as \"500ms\", \"10s\" or \"1h30m\" from {} to {}",
            show_duration(*range.start()),
            show_duration(*range.end())
        );
        match sluice_contract::Duration::parse(&v.value).map(sluice_contract::Duration::to_std) {
            Ok(Some(value)) if range.contains(&value) => Some(Located {
                value,
                span: v.span,
                key: v.key,
            }),
            Err(e) => {
                let message = format!("expected {expected}, found {:?} ({})", v.value, e.kind());
                d.push(v.span, &v.key, message);
                None
            }
            Ok(_) => {
                d.push(v.span, &v.key, format!("expected {expected}, found {:?}", v.value));
                None
            }
        }
    }

    /// One of a fixed set of strings (matched case-insensitively, returned lower-case).
    pub(crate) fn opt_choice(
        &mut self,
        d: &mut Diags,
        name: &'static str,
        choices: &[&str],
    ) -> Option<Located<String>> {
        let v = self.opt_str(d, name)?;
        let lower = v.value.to_ascii_lowercase();
        if choices.contains(&lower.as_str()) {
            Some(Located { value: lower, ..v })
        } else {
            d.push(
                v.span.clone(),
                &v.key,
                format!("expected one of {}, found \"{}\"", quoted(choices), v.value),
            );
            None
        }
    }

    /// A required one-of-a-fixed-set string.
    pub(crate) fn req_choice(
        &mut self,
        d: &mut Diags,
        name: &'static str,
        choices: &[&str],
    ) -> Option<Located<String>> {
        let present = self.table.contains_key(name);
        let value = self.opt_choice(d, name, choices);
        if !present {
            self.missing(d, name, &format!("one of {}", quoted(choices)));
        }
        value
    }

    pub(crate) fn opt_table(&mut self, d: &mut Diags, name: &'static str) -> Option<Table<'a, 'i>> {
        let raw = self.raw(name)?;
        let key = self.child_key(name);
        match raw.get_ref() {
            DeValue::Table(t) => Some(Table::new(t, raw.span(), key)),
            other => {
                d.push(raw.span(), &key, format!("expected a table, found {}", describe(other)));
                None
            }
        }
    }

    pub(crate) fn req_table(&mut self, d: &mut Diags, name: &'static str) -> Option<Table<'a, 'i>> {
        let present = self.table.contains_key(name);
        let table = self.opt_table(d, name);
        if !present {
            self.missing(d, name, &format!("a [{}] table", self.child_key(name)));
        }
        table
    }

    /// One table (`[name]`) or an array of tables (`[[name]]`); `None` if absent.
    pub(crate) fn table_or_tables(&mut self, d: &mut Diags, name: &'static str) -> Option<Vec<Table<'a, 'i>>> {
        let raw = self.table.get(name)?;
        if let DeValue::Table(_) = raw.get_ref() {
            return Some(self.opt_table(d, name).into_iter().collect());
        }
        Some(self.opt_tables(d, name))
    }

    /// An array of tables (`[[name]]`), each with its key `name[i]`.
    pub(crate) fn opt_tables(&mut self, d: &mut Diags, name: &'static str) -> Vec<Table<'a, 'i>> {
        let Some(raw) = self.raw(name) else {
            return Vec::new();
        };
        let key = self.child_key(name);
        let DeValue::Array(items) = raw.get_ref() else {
            d.push(
                raw.span(),
                &key,
                format!(
                    "expected an array of tables ([[{key}]]), found {}",
                    describe(raw.get_ref())
                ),
            );
            return Vec::new();
        };
        let mut tables = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            match item.get_ref() {
                DeValue::Table(t) => tables.push(Table::new(t, item.span(), item_key)),
                other => d.push(
                    item.span(),
                    &item_key,
                    format!("expected a table, found {}", describe(other)),
                ),
            }
        }
        tables
    }

    /// Every entry, for tables whose keys are data (e.g. a declared schema).
    pub(crate) fn entries(
        &self,
    ) -> impl Iterator<Item = (&'a Spanned<std::borrow::Cow<'i, str>>, &'a Spanned<DeValue<'i>>)> {
        self.table.iter()
    }

    fn missing(&self, d: &mut Diags, name: &str, expected: &str) {
        d.push(
            self.span.clone(),
            &self.child_key(name),
            format!("missing key `{name}`: expected {expected}"),
        );
    }

    /// Report every key that no reader asked for.
    pub(crate) fn finish(self, d: &mut Diags) {
        for (k, _) in self.table.iter() {
            if !self.known.contains(&k.get_ref().as_ref()) {
                let mut known = self.known.clone();
                known.sort_unstable();
                known.dedup();
                d.push(
                    k.span(),
                    &self.child_key(k.get_ref()),
                    format!("unknown key `{}`: expected one of {}", k.get_ref(), quoted(&known)),
                );
            }
        }
    }
}

/// What kind of value the user wrote, for "found …" in messages.
pub(crate) fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("the string \"{s}\""),
        DeValue::Integer(i) => format!("the integer {}", i.as_str()),
        DeValue::Float(f) => format!("the float {}", f.as_str()),
        DeValue::Boolean(b) => format!("the boolean {b}"),
        DeValue::Datetime(_) => "a datetime".to_owned(),
        DeValue::Array(_) => "an array".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

pub(crate) fn quoted(items: &[&str]) -> String {
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

/// A duration in the contract's canonical form (`"10ms"`, `"1d"`, `"18h12m15s"`).
fn show_duration(d: std::time::Duration) -> String {
    sluice_contract::Duration::from_std(d).map_or_else(|| format!("{d:?}"), |d| d.to_string())
}
