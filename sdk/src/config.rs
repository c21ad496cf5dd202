//! Typed plugin config and errors that point at a key.

use serde::de::DeserializeOwned;

/// A configuration problem at a key path inside the transform's `config` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Keys from the `config` table down to the offending value; array positions as numbers.
    pub path: Vec<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// An error about the value at `path`.
    pub fn at<I, S>(path: I, message: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: ToString,
    {
        ConfigError {
            path: path.into_iter().map(|s| s.to_string()).collect(),
            message: message.into(),
        }
    }

    /// An error about the config table as a whole (or the input schema).
    pub fn whole(message: impl Into<String>) -> Self {
        ConfigError {
            path: Vec::new(),
            message: message.into(),
        }
    }

    /// The same error, nested under `prefix` (for config types that delegate to a part).
    pub fn under<I, S>(mut self, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: ToString,
    {
        let mut path: Vec<String> = prefix.into_iter().map(|s| s.to_string()).collect();
        path.append(&mut self.path);
        self.path = path;
        self
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path.join("."), self.message)
        }
    }
}

/// Deserialize the config JSON the host passes, keeping the key path of any error.
pub(crate) fn parse<T: DeserializeOwned>(json: &str) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let mut path: Vec<String> = err
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        let inner = err.into_inner();
        let message = strip_position(&inner.to_string());
        // serde reports an unknown key at its parent table; point at the key itself.
        if let Some(key) = unknown_field_name(&message)
            && path.last().map(String::as_str) != Some(key)
        {
            path.push(key.to_owned());
        }
        ConfigError { path, message }
    })
}

/// serde_json appends " at line L column C" of the JSON text, which means nothing to a user
/// who wrote TOML: the host gives the TOML position instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        columns: Vec<Col>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Col {
        name: String,
    }

    #[test]
    fn an_unknown_key_is_reported_at_the_key_itself() {
        let err = parse::<Cfg>(r#"{"columns":[{"name":"a"},{"nmae":"b"}]}"#).unwrap_err();
        assert_eq!(err.path, ["columns", "1", "nmae"]);
        assert!(err.message.starts_with("unknown field `nmae`"), "{}", err.message);
    }

    #[test]
    fn a_wrong_type_names_its_path_without_json_positions() {
        let err = parse::<Cfg>(r#"{"columns":[{"name":3}]}"#).unwrap_err();
        assert_eq!(err.path, ["columns", "0", "name"]);
        assert_eq!(err.message, "invalid type: integer `3`, expected a string");
    }
}
