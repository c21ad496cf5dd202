//! `${VAR}` and `${VAR:-default}` in a pipeline file's string values, from the environment
//! (MQTT passwords, endpoints, buckets that differ between machines). `$${` is a literal
//! `${`. Errors name the variable, never a value.

/// `text` with every `${…}` replaced through `lookup`.
pub(crate) fn substitute(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let inner = &rest[at + 2..];
        let Some(end) = inner.find('}') else {
            return Err("a `${` with no closing `}` (write `$${` for a literal `${`)".into());
        };
        let (name, default) = match inner[..end].split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (&inner[..end], None),
        };
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "`${{{}}}` is not a variable: expected ${{NAME}} or ${{NAME:-default}}, NAME of letters, digits and _",
                &inner[..end]
            ));
        }
        match (lookup(name), default) {
            (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
                ));
            }
        }
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PASS" => Some("s3cr3t".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_with_defaults_when_unset_or_empty() {
        assert_eq!(substitute("plain $ text", env), Ok("plain $ text".into()));
        assert_eq!(substitute("${PASS}", env), Ok("s3cr3t".into()));
        assert_eq!(substitute("a-${PASS}-${PASS}-b", env), Ok("a-s3cr3t-s3cr3t-b".into()));
        assert_eq!(
            substitute("${NOPE:-mqtt://localhost:1883}", env),
            Ok("mqtt://localhost:1883".into())
        );
        assert_eq!(substitute("${EMPTY:-x}", env), Ok("x".into()));
        assert_eq!(substitute("${EMPTY}", env), Ok(String::new()));
        assert_eq!(substitute("${PASS:-x}", env), Ok("s3cr3t".into()));
        assert_eq!(substitute("$${PASS} and ${PASS}", env), Ok("${PASS} and s3cr3t".into()));
    }

    #[test]
    fn errors_name_the_variable_and_never_a_value() {
        let e = substitute("${NOPE}", env).expect_err("unset");
        assert_eq!(
            e,
            "environment variable NOPE is not set (write ${NOPE:-default} to give a default)"
        );
        assert!(substitute("${PASS", env).expect_err("open").contains("no closing"));
        assert!(
            substitute("${1X}", env)
                .expect_err("name")
                .contains("is not a variable")
        );
        assert!(!substitute("${PASS}${NOPE}", env).expect_err("unset").contains("s3cr3t"));
    }
}
