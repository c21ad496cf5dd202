//! Resolving the config against the input schema, with no data: every check `describe`
//! makes (each error at the key path it is about), producing the output schema and the
//! per-column steps `process` runs.
//!
//! Output column order: the mappings in order, then (with `keep_unmapped`) the input
//! columns no mapping reads and `drop` does not name, in input order, then the fields of
//! each `json` entry (entries in order, fields in order), then `add` in order.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_sdk::ConfigError;
use sluice_sdk::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::cast::{Cast, CastError};
use crate::config::{Config, Constant, FieldType, JsonSource};
use crate::expr::{Expr, available};
use crate::json::{Json, JsonField};

/// The checked config: what `process` computes for each output column.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `main` output schema.
    pub main: SchemaRef,
    /// The steps making the `main` columns, in the same order: one column per step, but
    /// one per field for a `Json` step.
    pub steps: Vec<Step>,
}

/// How one output column is produced.
#[derive(Debug, Clone)]
pub enum Step {
    /// An input column (by index), cast or not.
    Column { input: usize, cast: Cast },
    /// The same value in every row.
    Constant(Constant),
    /// Arithmetic over input columns.
    Derived { name: String, expr: Expr },
    /// Fields read out of a string column of JSON documents: one column per field.
    Json(Json),
}

/// What first produced an output name, for duplicate errors.
enum Producer {
    /// A config entry: where it is, and how to name it in a message.
    Entry { path: Vec<String>, label: String },
    /// An unmapped input column passed through by `keep_unmapped`.
    Unmapped,
}

impl Plan {
    /// Check `cfg` against `input` and plan the output.
    pub fn build(cfg: &Config, input: &Schema) -> Result<Plan, ConfigError> {
        let mut fields = Vec::new();
        let mut steps = Vec::new();
        let mut names: HashMap<String, Producer> = HashMap::new();
        let mut mapped = vec![false; input.fields().len()];

        for (i, mapping) in cfg.mappings.iter().enumerate() {
            let at = |key: &str| ["mappings".to_owned(), i.to_string(), key.to_owned()];
            let Ok(index) = input.index_of(&mapping.from) else {
                return Err(ConfigError::at(
                    at("from"),
                    format!(
                        "unknown column {:?}; available columns: {}",
                        mapping.from,
                        available(input)
                    ),
                ));
            };
            mapped[index] = true;
            let to = match &mapping.type_name {
                None => None,
                Some(name) => Some(field_type(name, at("type"))?),
            };
            let field = input.field(index);
            let cast = Cast::plan(field.data_type(), to, mapping.format.as_deref()).map_err(|e| {
                let (key, message) = match e {
                    CastError::Type(m) => ("type", m),
                    CastError::Format(m) => ("format", m),
                };
                ConfigError::at(at(key), format!("column {:?}: {message}", mapping.from))
            })?;
            let (name, name_key) = match &mapping.to {
                Some(to) => (to, "to"),
                None => (&mapping.from, "from"),
            };
            claim(&mut names, name, at(name_key).to_vec(), format!("mappings[{i}]"))?;
            let output_type = cast.output_type(field.data_type());
            fields.push(match cast {
                // Unchanged values keep their field metadata.
                Cast::Keep => field.clone().with_name(name),
                _ => Field::new(name, output_type, field.is_nullable()),
            });
            steps.push(Step::Column { input: index, cast });
        }

        let dropped = check_drop(cfg, input, &mapped)?;
        if cfg.keep_unmapped {
            for (index, field) in input.fields().iter().enumerate() {
                if mapped[index] || dropped[index] {
                    continue;
                }
                if let Some(Producer::Entry { path, .. }) = names.get(field.name()) {
                    return Err(ConfigError::at(path.clone(), unmapped_clash(field.name())));
                }
                names.insert(field.name().clone(), Producer::Unmapped);
                fields.push(field.as_ref().clone());
                steps.push(Step::Column {
                    input: index,
                    cast: Cast::Keep,
                });
            }
        }

        for (i, source) in cfg.json.iter().enumerate() {
            let (json, json_fields) = plan_json(source, i, input, &mut names)?;
            fields.extend(json_fields);
            steps.push(Step::Json(json));
        }

        for (i, add) in cfg.add.iter().enumerate() {
            let at = |key: &str| ["add".to_owned(), i.to_string(), key.to_owned()];
            let (field, step) = match (&add.value, &add.expr) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::at(
                        ["add".to_owned(), i.to_string()],
                        "give either `value` or `expr`, not both",
                    ));
                }
                (None, None) => {
                    return Err(ConfigError::at(
                        ["add".to_owned(), i.to_string()],
                        "give `value` (a constant) or `expr` (arithmetic over input columns)",
                    ));
                }
                (Some(value), None) => (
                    Field::new(&add.name, value.data_type(), false),
                    Step::Constant(value.clone()),
                ),
                (None, Some(source)) => {
                    let expr = Expr::parse(source, input).map_err(|e| {
                        ConfigError::at(
                            at("expr"),
                            format!("in expression {source:?} at position {}: {}", e.position, e.message),
                        )
                    })?;
                    (
                        Field::new(&add.name, expr.data_type(), expr.nullable(input)),
                        Step::Derived {
                            name: add.name.clone(),
                            expr,
                        },
                    )
                }
            };
            claim(&mut names, &add.name, at("name").to_vec(), format!("add[{i}]"))?;
            fields.push(field);
            steps.push(step);
        }

        if fields.is_empty() {
            return Err(ConfigError::whole(
                "the output has no columns: give `mappings`, `json` or `add`, or set keep_unmapped = true",
            ));
        }
        Ok(Plan {
            main: Arc::new(Schema::new(fields)),
            steps,
        })
    }
}

/// Check the `json` entry `source` (at `json[i]`), claim its output names and plan it.
fn plan_json(
    source: &JsonSource,
    i: usize,
    input: &Schema,
    names: &mut HashMap<String, Producer>,
) -> Result<(Json, Vec<Field>), ConfigError> {
    let at = |key: &str| ["json".to_owned(), i.to_string(), key.to_owned()];
    let Ok(index) = input.index_of(&source.from) else {
        return Err(ConfigError::at(
            at("from"),
            format!(
                "unknown column {:?}; available columns: {}",
                source.from,
                available(input)
            ),
        ));
    };
    let data_type = input.field(index).data_type();
    if !matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        return Err(ConfigError::at(
            at("from"),
            format!(
                "`json` parses strings, but column {:?} is of type {data_type}",
                source.from
            ),
        ));
    }
    if source.fields.is_empty() {
        return Err(ConfigError::at(
            at("fields"),
            "list at least one field to read, like { name = \"device\", type = \"string\" }",
        ));
    }
    let mut fields = Vec::with_capacity(source.fields.len());
    let mut reads = Vec::with_capacity(source.fields.len());
    for (j, field) in source.fields.iter().enumerate() {
        let at = |key: &str| {
            [
                "json".to_owned(),
                i.to_string(),
                "fields".to_owned(),
                j.to_string(),
                key.to_owned(),
            ]
        };
        claim(
            names,
            &field.name,
            at("name").to_vec(),
            format!("json[{i}].fields[{j}]"),
        )?;
        let (path, path_key) = match &field.path {
            Some(path) => (path, "path"),
            None => (&field.name, "name"),
        };
        if path.split('.').any(str::is_empty) {
            return Err(ConfigError::at(
                at(path_key),
                format!(
                    "path {path:?} has an empty key; give object keys separated by single dots, like \"meta.time\""
                ),
            ));
        }
        let to = field_type(&field.type_name, at("type"))?;
        let strings = Cast::plan(&DataType::Utf8, Some(to), field.format.as_deref()).map_err(|e| {
            let (key, message) = match e {
                CastError::Type(m) => ("type", m),
                CastError::Format(m) => ("format", m),
            };
            ConfigError::at(at(key), format!("field {:?}: {message}", field.name))
        })?;
        fields.push(Field::new(&field.name, to.data_type(), true));
        reads.push(JsonField::new(
            path,
            &field.type_name,
            to,
            field.format.as_deref(),
            strings,
        ));
    }
    Ok((Json::new(index, &source.from, reads), fields))
}

/// The type named `name`, or an error at `path` listing the names.
fn field_type<const N: usize>(name: &str, path: [String; N]) -> Result<FieldType, ConfigError> {
    FieldType::parse(name).ok_or_else(|| {
        ConfigError::at(
            path,
            format!(
                "unknown type {name:?}; expected one of: {}",
                FieldType::NAMES.join(", ")
            ),
        )
    })
}

/// Record that the config entry at `path` (named `label` in messages) makes output column
/// `name`, refusing empty and repeated names.
fn claim(
    names: &mut HashMap<String, Producer>,
    name: &str,
    path: Vec<String>,
    label: String,
) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::at(path, "an output column name cannot be empty"));
    }
    match names.get(name) {
        Some(Producer::Entry { label: first, .. }) => Err(ConfigError::at(
            path,
            format!("duplicate output column {name:?}: {first} already produces it"),
        )),
        Some(Producer::Unmapped) => Err(ConfigError::at(path, unmapped_clash(name))),
        None => {
            names.insert(name.to_owned(), Producer::Entry { path, label });
            Ok(())
        }
    }
}

/// Why an output column may not share its name with a passed-through input column.
fn unmapped_clash(name: &str) -> String {
    format!(
        "output column {name:?} clashes with the unmapped input column of that name, which keep_unmapped \
         passes through; rename one of them or list the input column in `drop`"
    )
}

/// Check `drop` and mark the columns it names.
fn check_drop(cfg: &Config, input: &Schema, mapped: &[bool]) -> Result<Vec<bool>, ConfigError> {
    let mut dropped = vec![false; mapped.len()];
    if cfg.drop.is_empty() {
        return Ok(dropped);
    }
    if !cfg.keep_unmapped {
        return Err(ConfigError::at(
            ["drop"],
            "`drop` only applies with keep_unmapped = true; without it every unmapped column is \
             dropped already",
        ));
    }
    for (j, name) in cfg.drop.iter().enumerate() {
        let at = ["drop".to_owned(), j.to_string()];
        let Ok(index) = input.index_of(name) else {
            return Err(ConfigError::at(
                at,
                format!("unknown column {name:?}; available columns: {}", available(input)),
            ));
        };
        if mapped[index] {
            return Err(ConfigError::at(
                at,
                format!("column {name:?} is mapped; `drop` removes unmapped columns only"),
            ));
        }
        dropped[index] = true;
    }
    Ok(dropped)
}
