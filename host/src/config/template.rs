//! Partition folder templates (`template = "dt=%Y-%m-%d/hr=%H"`, and what a Firehose prefix's
//! `!{timestamp:…}` becomes): which fields they may use.

/// Check a path template: `%Y %m %d %H` and `%%` only, at least one time field.
pub(super) fn check_template(template: &str) -> Result<(), String> {
    let mut fields = 0;
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('Y' | 'm' | 'd' | 'H') => fields += 1,
                Some('%') => {}
                other => {
                    return Err(format!(
                        "unsupported template field `%{}`: expected `%Y`, `%m`, `%d`, `%H` or `%%`",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            }
        }
    }
    if fields == 0 {
        return Err("a partition template needs at least one of `%Y`, `%m`, `%d`, `%H`".into());
    }
    if template.starts_with('/') || template.split('/').any(|s| s == ".." || s.is_empty()) {
        return Err("a partition template is a relative folder path without empty or `..` parts".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_time_fields_and_stay_inside_the_sink() {
        assert!(check_template("year=%Y/hour=%H").is_ok());
        assert!(check_template("x=%Q").unwrap_err().contains("%Q"));
        assert!(check_template("static").is_err());
        assert!(check_template("../%Y").is_err());
    }
}
