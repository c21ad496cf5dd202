//! One record (one JSON object) into a row of checked cells, in a single serde pass with no
//! intermediate `Value`: each key is matched to its column, each value converted by
//! [`super::value`] as it is read. Errors are sentences for a dead letter.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::value::{self, Cell};
use crate::config::{Coerce, FieldType};

/// The columns a record is read into.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) names: Vec<String>,
    /// Each name as a JSON key (`"name"`), for names that need no escaping (see `fast`).
    pub(super) keys: Vec<Option<Box<[u8]>>>,
    /// Each column's type; `None` for nested ones (lists, structs).
    pub(super) kinds: Vec<Option<FieldType>>,
    pub(super) nullable: Vec<bool>,
    pub(super) coerce: Coerce,
    /// Keys outside the schema are refused (an inferred schema) rather than ignored.
    pub(super) refuse_unknown: bool,
    /// Integers in timestamp columns are microseconds (see `DecodeOptions`).
    pub(super) numeric_times: bool,
    /// Said after a type error when the schema was inferred, not declared.
    pub(super) inferred_hint: Option<String>,
}

impl Layout {
    /// Every required column has a value in `row`, or the reason.
    pub(super) fn check_required(&self, row: &[Cell<'_>]) -> Result<(), String> {
        for (i, cell) in row.iter().enumerate() {
            if matches!(cell, Cell::Null) && !self.nullable[i] {
                return Err(format!("missing required field {}", self.names[i]));
            }
        }
        Ok(())
    }

    /// Read `record` into `row` (all `Null` on entry) with serde, which takes any JSON and
    /// says what is wrong with a record it refuses.
    pub(super) fn read_with_serde<'a>(&self, record: &'a [u8], row: &mut [Cell<'a>]) -> Result<(), String> {
        let mut de = serde_json::Deserializer::from_slice(record);
        let current = std::cell::Cell::new(None);
        let seed = RecordSeed {
            layout: self,
            row,
            current: &current,
        };
        seed.deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| self.reason(&e, current.get()))
    }

    /// A serde_json error as a sentence; `field` is the column being read when it happened.
    fn reason(&self, e: &serde_json::Error, field: Option<usize>) -> String {
        let text = e.to_string();
        let bare = text
            .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
            .unwrap_or(&text);
        match e.classify() {
            serde_json::error::Category::Data => match (field, &self.inferred_hint) {
                (Some(_), Some(hint)) if !bare.contains("not in the inferred schema") => format!("{bare}{hint}"),
                _ => bare.to_owned(),
            },
            _ if bare == "trailing characters" => "more than one JSON value in the record".into(),
            _ if bare == "number out of range" => match field {
                Some(i) => format!(
                    "field {}: number out of range for {}",
                    self.names[i],
                    self.kinds[i].map_or("a nested value", FieldType::name)
                ),
                None => format!("not valid JSON: {text}"),
            },
            serde_json::error::Category::Eof => format!("not valid JSON: the record ends early ({bare})"),
            _ => format!("not valid JSON: {text}"),
        }
    }
}

struct RecordSeed<'l, 'r, 'a> {
    layout: &'l Layout,
    row: &'r mut [Cell<'a>],
    current: &'r std::cell::Cell<Option<usize>>,
}

impl<'de, 'l, 'r> DeserializeSeed<'de> for RecordSeed<'l, 'r, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'l, 'r> Visitor<'de> for RecordSeed<'l, 'r, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let layout = self.layout;
        let mut hint = 0;
        while let Some(key) = map.next_key_seed(KeySeed { layout, hint })? {
            match key {
                Key::Column(i) => {
                    self.current.set(Some(i));
                    self.row[i] = if let Some(kind) = layout.kinds[i] {
                        map.next_value_seed(CellSeed {
                            name: &layout.names[i],
                            kind,
                            coerce: layout.coerce,
                            numeric_times: layout.numeric_times,
                        })?
                    } else {
                        match map.next_value::<Option<&'de RawValue>>()? {
                            Some(raw) if raw.get() != "null" => Cell::Raw(raw),
                            _ => Cell::Null,
                        }
                    };
                    self.current.set(None);
                    hint = i + 1;
                }
                Key::Unknown(name) => {
                    return Err(de::Error::custom(format!(
                        "field {name} is not in the inferred schema (declare the schema in [source.schema], or set on_new_field = \"ignore\")"
                    )));
                }
                Key::Ignored => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom("the record is an array, not a JSON object"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom("the record is a string, not a JSON object"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom("the record is a number, not a JSON object"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom("the record is a number, not a JSON object"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom("the record is a number, not a JSON object"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom("the record is a boolean, not a JSON object"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom("the record is null, not a JSON object"))
    }
}

/// What a key names.
enum Key {
    Column(usize),
    /// Outside the schema, and refused: its name.
    Unknown(String),
    Ignored,
}

struct KeySeed<'l> {
    layout: &'l Layout,
    /// The column after the last one seen: keys mostly come in the schema's order.
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        let names = &self.layout.names;
        if names.get(self.hint).is_some_and(|n| n == key) {
            return Ok(Key::Column(self.hint));
        }
        Ok(match names.iter().position(|n| n == key) {
            Some(i) => Key::Column(i),
            None if self.layout.refuse_unknown => Key::Unknown(crate::record::quoted(key)),
            None => Key::Ignored,
        })
    }
}

/// One value of column `name`.
struct CellSeed<'l> {
    name: &'l str,
    kind: FieldType,
    coerce: Coerce,
    numeric_times: bool,
}

impl CellSeed<'_> {
    fn fail<E: de::Error>(&self, reason: String) -> E {
        E::custom(format!("field {}: {reason}", self.name))
    }

    fn done<'a, E: de::Error>(&self, converted: Result<Cell<'a>, String>) -> Result<Cell<'a>, E> {
        converted.map_err(|reason| self.fail(reason))
    }
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = Cell<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cell<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.name())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Cell<'de>, E> {
        Ok(Cell::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell<'de>, E> {
        self.done(value::from_bool(self.kind, self.coerce, v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell<'de>, E> {
        self.done(value::of_i64(self.kind, self.coerce, self.numeric_times, v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell<'de>, E> {
        self.done(value::of_u64(self.kind, self.coerce, self.numeric_times, v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell<'de>, E> {
        self.done(value::from_f64(self.kind, self.coerce, v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cell<'de>, E> {
        self.done(value::from_str(self.kind, self.coerce, Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell<'de>, E> {
        self.done(value::from_str(self.kind, self.coerce, Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cell<'de>, E> {
        self.done(value::from_str(self.kind, self.coerce, Cow::Owned(v)))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Cell<'de>, A::Error> {
        Err(self.fail(format!("an array is not {}", self.kind.name())))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Cell<'de>, A::Error> {
        Err(self.fail(format!("an object is not {}", self.kind.name())))
    }
}
