//! S3 settings: a `type = "s3"` sink's bucket and prefix (with Firehose's `!{timestamp:…}`
//! expressions), `error_prefix`, the keys every S3 client takes (`region`, `endpoint_url`,
//! `force_path_style`) and `s3://` URLs.

use super::diagnostic::Diags;
use super::reader::{Located, Table};
use super::template::check_template;
use super::*;

/// `region`, `endpoint_url` and `force_path_style` of a table.
pub(super) struct Endpoint {
    pub(super) region: Option<Located<String>>,
    pub(super) endpoint_url: Option<Located<String>>,
    pub(super) force_path_style: Option<Located<bool>>,
}

/// Read the keys every S3 client takes.
pub(super) fn read_endpoint(t: &mut Table<'_, '_>, d: &mut Diags) -> Endpoint {
    let region = t.opt_str(d, "region");
    let endpoint_url = read_endpoint_url(t, d);
    let force_path_style = t.opt_bool(d, "force_path_style");
    Endpoint {
        region,
        endpoint_url,
        force_path_style,
    }
}

/// `endpoint_url` of any AWS client (S3, Kinesis): an http:// or https:// URL.
pub(in crate::config) fn read_endpoint_url(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<Located<String>> {
    let e = t.opt_str(d, "endpoint_url")?;
    if !(e.value.starts_with("http://") || e.value.starts_with("https://")) {
        d.push(
            e.span.clone(),
            &e.key,
            format!("expected an http:// or https:// URL, found \"{}\"", e.value),
        );
    }
    Some(e)
}

impl Endpoint {
    /// The location of `bucket` and `prefix` reached this way.
    pub(super) fn at(self, bucket: String, prefix: String) -> S3Location {
        S3Location {
            bucket,
            prefix,
            region: self.region.map(|r| r.value),
            endpoint_url: self.endpoint_url.map(|e| e.value),
            force_path_style: self.force_path_style.is_some_and(|f| f.value),
        }
    }
}

/// A `type = "s3"` sink's `bucket`, `prefix` and endpoint keys; with a partition template when
/// the prefix holds `!{timestamp:…}` expressions.
pub(super) fn read_s3_sink(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<(S3Location, Option<Located<String>>)> {
    let bucket = t.req_str(d, "bucket");
    let prefix = t.opt_str(d, "prefix");
    let endpoint = read_endpoint(t, d);
    let bucket = bucket?;
    if !bucket_ok(&bucket.value) {
        d.push(
            bucket.span.clone(),
            &bucket.key,
            format!(
                "expected a bucket name (3 to 63 lowercase letters, digits, `-` and `.`), found \"{}\"",
                bucket.value
            ),
        );
        return None;
    }
    let (prefix, template) = match &prefix {
        None => (String::new(), None),
        Some(p) => match firehose_prefix(&p.value) {
            Ok((fixed, template)) => (
                fixed,
                template.map(|value| Located {
                    value,
                    span: p.span.clone(),
                    key: p.key.clone(),
                }),
            ),
            Err(msg) => {
                d.push(p.span.clone(), &p.key, msg);
                return None;
            }
        },
    };
    Some((endpoint.at(bucket.value, prefix), template))
}

/// `error_prefix`: a fixed prefix in the sink's bucket for the pipeline's dead letters.
pub(super) fn read_error_prefix(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<Located<String>> {
    let p = t.opt_str(d, "error_prefix")?;
    if p.value.contains("!{") {
        d.push(
            p.span.clone(),
            &p.key,
            "expressions (`!{…}`) in error_prefix are not supported yet: give a fixed prefix such as \"errors/\"; dead letters say their stage and arrival time inside".to_owned(),
        );
        return None;
    }
    match normalise_prefix(&p.value) {
        Some(value) => Some(Located { value, ..p }),
        None => {
            d.push(
                p.span.clone(),
                &p.key,
                format!(
                    "expected a key prefix such as \"errors/\" (no leading `/`, no empty parts), found \"{}\"",
                    p.value
                ),
            );
            None
        }
    }
}

fn bucket_ok(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
}

/// A prefix as a folder: empty, or ending in `/`; `None` if it starts with `/` or has an
/// empty part.
fn normalise_prefix(prefix: &str) -> Option<String> {
    if prefix.starts_with('/') || prefix.contains("//") {
        return None;
    }
    Some(if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    })
}

/// `s3://bucket/prefix` → (`bucket`, `prefix/`): the prefix is a folder, so it gains a `/`
/// unless empty. `None` when it is not an S3 URL with a plausible bucket name.
pub(super) fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if !bucket_ok(bucket) {
        return None;
    }
    Some((bucket.to_owned(), normalise_prefix(prefix)?))
}

/// Split a Firehose-style prefix into its fixed folders and a partition template for the rest:
/// `sensors/!{timestamp:yyyy/MM/dd}/` → (`sensors/`, `%Y/%m/%d`). Expressions are
/// `!{timestamp:PATTERN}` with Java `DateTimeFormatter` letters `yyyy`, `MM`, `dd`, `HH` and
/// quoted text (spec FH-03); the time is the records' arrival time, as Firehose's.
pub(super) fn firehose_prefix(prefix: &str) -> Result<(String, Option<String>), String> {
    let Some(first) = prefix.find("!{") else {
        let fixed = normalise_prefix(prefix).ok_or_else(|| {
            format!("expected a key prefix such as \"sensors/\" (no leading `/`, no empty parts), found \"{prefix}\"")
        })?;
        return Ok((fixed, None));
    };
    let cut = prefix[..first].rfind('/').map_or(0, |i| i + 1);
    let fixed = normalise_prefix(&prefix[..cut]).ok_or_else(|| {
        format!("expected a key prefix such as \"sensors/\" before the first `!{{`, found \"{prefix}\"")
    })?;
    let mut template = String::new();
    let mut rest = &prefix[cut..];
    while let Some(start) = rest.find("!{") {
        template.push_str(&literal(&rest[..start])?);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("an expression in \"{prefix}\" has no closing `}}`"))?;
        let expr = &rest[start + 2..start + end];
        match expr.split_once(':') {
            Some(("timestamp", pattern)) => template.push_str(&java_pattern(pattern)?),
            Some(("partitionKeyFromQuery" | "partitionKeyFromLambda", _)) => {
                return Err(format!(
                    "`!{{{expr}}}` (dynamic partitioning) is not supported: use partition = {{ by = \"field\", column = \"…\" }}"
                ));
            }
            _ if expr.contains("error-output-type") || expr == "error-type" => {
                return Err("`!{firehose:error-output-type}` belongs in error_prefix, not prefix".to_owned());
            }
            _ => {
                return Err(format!(
                    "unsupported expression `!{{{expr}}}`: expected !{{timestamp:yyyy/MM/dd/HH}}"
                ));
            }
        }
        rest = &rest[start + end + 1..];
    }
    template.push_str(&literal(rest)?);
    let template = template.trim_end_matches('/').to_owned();
    check_template(&template)
        .map_err(|e| format!("the prefix's expressions give an unusable folder template `{template}`: {e}"))?;
    Ok((fixed, Some(template)))
}

/// Fixed text of a prefix inside the template (`%` doubled).
fn literal(text: &str) -> Result<String, String> {
    Ok(text.replace('%', "%%"))
}

/// A Java `DateTimeFormatter` pattern as the template's `%Y %m %d %H`.
fn java_pattern(pattern: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // Quoted text; '' is a quote.
            let mut text = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        text.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => text.push(c),
                    None => return Err(format!("unclosed quote in `{pattern}`")),
                }
            }
            out.push_str(&literal(&text)?);
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            continue;
        }
        let mut n = 1;
        while chars.peek() == Some(&c) {
            chars.next();
            n += 1;
        }
        out.push_str(match (c, n) {
            ('y' | 'u', 4) => "%Y",
            ('M', 2) => "%m",
            ('d', 2) => "%d",
            ('H', 2) => "%H",
            _ => {
                return Err(format!(
                    "unsupported pattern letters `{}` in !{{timestamp:{pattern}}}: expected yyyy, MM, dd, HH and 'quoted text'",
                    c.to_string().repeat(n)
                ));
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firehose_prefixes_become_a_fixed_prefix_and_a_template() {
        assert_eq!(firehose_prefix("sensors").unwrap(), ("sensors/".into(), None));
        assert_eq!(
            firehose_prefix("sensors/!{timestamp:yyyy/MM/dd}/").unwrap(),
            ("sensors/".into(), Some("%Y/%m/%d".into()))
        );
        assert_eq!(
            firehose_prefix("a/b/!{timestamp:'year='yyyy}/!{timestamp:'hour='HH}/").unwrap(),
            ("a/b/".into(), Some("year=%Y/hour=%H".into()))
        );
        assert_eq!(
            firehose_prefix("logs/day=!{timestamp:dd}/").unwrap(),
            ("logs/".into(), Some("day=%d".into()))
        );
        assert!(firehose_prefix("x/!{timestamp:YYYY}/").unwrap_err().contains("YYYY"));
        assert!(
            firehose_prefix("x/!{firehose:error-output-type}/")
                .unwrap_err()
                .contains("error_prefix")
        );
        assert!(
            firehose_prefix("x/!{partitionKeyFromQuery:id}/")
                .unwrap_err()
                .contains("by = \"field\"")
        );
        assert!(firehose_prefix("/x").is_err());
    }

    #[test]
    fn s3_urls_name_a_bucket_and_a_folder() {
        assert_eq!(parse_s3_url("s3://b-1/x/y"), Some(("b-1".into(), "x/y/".into())));
        assert_eq!(parse_s3_url("s3://bucket"), Some(("bucket".into(), String::new())));
        assert_eq!(parse_s3_url("s3://Bucket/x"), None);
        assert_eq!(parse_s3_url("s3://b/x"), None);
        assert_eq!(parse_s3_url("s3://bucket//x"), None);
    }
}
