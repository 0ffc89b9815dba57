//! JSON value → typed spec, leniently: every field that does not fit (unknown
//! name, wrong type, bad enum value or duration) is reported with its path and
//! a fix, removed, and decoding tries again, so one typo never hides the rest
//! of the resource from analysis.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::config::Kind;

/// Most problems reported for one resource before giving up on it.
const MAX_PROBLEMS: usize = 64;

/// Result of decoding one spec.
pub struct Decoded<T> {
    /// `None` when the spec could not be decoded at all (e.g. it is a string).
    pub value: Option<T>,
    /// (field path, message), paths rooted at `root`.
    pub problems: Vec<(String, String)>,
}

/// Decode `value` (found at field path `root`, e.g. `spec`) as `T`.
/// `yaml11_bools` lists paths of unquoted `yes`/`no`/`on`/`off` scalars.
pub fn decode<T: DeserializeOwned>(
    kind: Kind,
    mut value: Value,
    root: &str,
    yaml11_bools: &[String],
) -> Decoded<T> {
    // Most specs decode cleanly: try without tracking paths (which costs a
    // string per map key) and track them only to explain a failure.
    if let Ok(v) = T::deserialize(&value) {
        return Decoded {
            value: Some(v),
            problems: Vec::new(),
        };
    }
    let mut problems = Vec::new();
    loop {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(v) => {
                return Decoded {
                    value: Some(v),
                    problems,
                };
            }
            Err(e) => e,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let path = join_path(root, &segments);
        let message = explain(
            kind,
            &segments,
            &path,
            &err.inner().to_string(),
            yaml11_bools,
        );
        problems.push((path, message));
        if segments.is_empty() || problems.len() >= MAX_PROBLEMS || !remove(&mut value, &segments) {
            return Decoded {
                value: None,
                problems,
            };
        }
    }
}

fn join_path(root: &str, segments: &[Segment]) -> String {
    let mut p = root.to_string();
    for s in segments {
        match s {
            Segment::Seq { index } => p.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !p.is_empty() {
                    p.push('.');
                }
                p.push_str(key);
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    p
}

/// Remove the node at `segments` so the next attempt gets past it.
fn remove(value: &mut Value, segments: &[Segment]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut cur = value;
    for s in parents {
        let next = match s {
            Segment::Seq { index } => cur.get_mut(*index),
            Segment::Map { key } => cur.get_mut(key.as_str()),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return false,
        }
    }
    match (last, cur) {
        (Segment::Seq { index }, Value::Array(a)) if *index < a.len() => {
            a.remove(*index);
            true
        }
        (Segment::Map { key }, Value::Object(m)) => m.remove(key.as_str()).is_some(),
        _ => false,
    }
}

/// Turn serde's message into one that says what to do.
fn explain(kind: Kind, segments: &[Segment], path: &str, raw: &str, yaml11: &[String]) -> String {
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = backticked(expected);
        let mut msg = format!("{path}: unknown field {field:?}");
        if let Some(hint) = misplaced(kind, segments, field) {
            msg.push_str("; ");
            msg.push_str(&hint);
        } else if let Some(s) = closest(field, &known) {
            msg.push_str(&format!("; did you mean {s:?}?"));
            if s.eq_ignore_ascii_case(field) {
                msg.push_str(" (field names are case-sensitive)");
            }
        } else if !known.is_empty() {
            msg.push_str(&format!("; known fields here: {}", known.join(", ")));
        }
        return msg;
    }
    if let Some(rest) = raw.strip_prefix("unknown variant `") {
        let (variant, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = backticked(expected);
        let mut msg = format!("{path}: unknown value {variant:?}");
        match closest(variant, &known) {
            Some(s) => msg.push_str(&format!("; did you mean {s:?}?")),
            None if !known.is_empty() => {
                msg.push_str(&format!("; expected one of {}", known.join(", ")));
            }
            None => {}
        }
        return msg;
    }
    if raw.starts_with("invalid type: boolean") && yaml11.iter().any(|p| path.ends_with(p.as_str()))
    {
        return format!(
            "{path}: {}; an unquoted yes/no/on/off is a boolean in the YAML Istio reads: quote it",
            plain(raw)
        );
    }
    if kind == Kind::VirtualService && path == "spec.tls" && raw.contains("expected a sequence") {
        return format!(
            "{path}: {}; VirtualService `tls` is a list of SNI routes. TLS settings for \
             traffic to a destination belong in a DestinationRule (trafficPolicy.tls): a \
             VirtualService picks the destination, a DestinationRule configures it",
            plain(raw)
        );
    }
    if raw.starts_with("time: ") {
        return format!(
            "{path}: invalid duration: {raw} (use Go duration syntax such as 1.5s, 100ms, 1h30m)"
        );
    }
    format!("{path}: {}", plain(raw))
}

/// serde's wording in the words of Istio's API: no Rust type names
/// ("invalid type: string \"jason\", expected struct StringMatch" →
/// "got the string \"jason\", but Istio expects a StringMatch: …").
fn plain(raw: &str) -> String {
    if let Some(rest) = raw.strip_prefix("invalid type: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        return format!(
            "got {}, but Istio expects {}",
            plain_value(got),
            plain_expected(expected)
        );
    }
    if let Some(rest) = raw.strip_prefix("invalid value: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        return format!(
            "{} is out of range: Istio expects {}",
            plain_value(got),
            plain_expected(expected)
        );
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return format!("the required field {field:?} is missing");
    }
    if let Some(rest) = raw.strip_prefix("duplicate field `") {
        let field = rest.trim_end_matches('`');
        return format!("the field {field:?} is given twice");
    }
    if let Some(rest) = raw.strip_prefix("invalid length ")
        && let Some((n, expected)) = rest.split_once(", expected ")
    {
        return format!("{n} items, but Istio expects {}", plain_expected(expected));
    }
    raw.to_string()
}

/// serde's "string \"x\"", "integer `7`", "map"… as a user wrote them.
fn plain_value(got: &str) -> String {
    let literal = |s: &str| s.trim_matches('`').to_string();
    if let Some(s) = got.strip_prefix("string ") {
        return format!("the string {s}");
    }
    for p in ["integer ", "floating point "] {
        if let Some(n) = got.strip_prefix(p) {
            return format!("the number {}", literal(n));
        }
    }
    if let Some(b) = got.strip_prefix("boolean ") {
        return format!("the boolean {}", literal(b));
    }
    match got {
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        "null" | "unit value" => "an empty value".into(),
        other => other.to_string(),
    }
}

/// serde's "expected …" (Rust types) as the Istio field shape.
fn plain_expected(expected: &str) -> String {
    if let Some(name) = expected.strip_prefix("struct ") {
        return match name {
            "StringMatch" => {
                "a StringMatch: {exact: value}, {prefix: value} or {regex: value}".into()
            }
            _ => format!("a mapping ({name})"),
        };
    }
    if let Some(name) = expected.strip_prefix("enum ") {
        return format!("one of {name}'s values");
    }
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "a string" | "a borrowed string" => "a string".into(),
        "a character" => "a single character".into(),
        other => other.to_string(),
    }
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The known name closest to `word`, if close enough to be a likely typo.
fn closest(word: &str, known: &[String]) -> Option<String> {
    let lw = word.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(&lw, &k.to_ascii_lowercase()), k))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

const ROUTE_FIELDS: &[&str] = &[
    "retries",
    "timeout",
    "fault",
    "mirror",
    "mirrors",
    "mirrorPercentage",
    "match",
    "route",
    "redirect",
    "rewrite",
    "directResponse",
    "corsPolicy",
    "headers",
    "http",
    "tcp",
    "delegate",
    "gateways",
];
const DESTINATION_FIELDS: &[&str] = &[
    "outlierDetection",
    "connectionPool",
    "loadBalancer",
    "subsets",
    "trafficPolicy",
    "portLevelSettings",
    "circuitBreaker",
    "consistentHash",
];
const POLICY_BLOCKS: &[&str] = &[
    "loadBalancer",
    "connectionPool",
    "outlierDetection",
    "portLevelSettings",
    "tunnel",
    "proxyProtocol",
    "retryBudget",
];

/// A field in the wrong kind of resource: say where it belongs and why.
fn misplaced(kind: Kind, segments: &[Segment], field: &str) -> Option<String> {
    const MODEL: &str = "a VirtualService picks the destination; a DestinationRule configures it";
    let at_spec_root = segments.len() == 1;
    match kind {
        Kind::DestinationRule => {
            if field == "hosts" && at_spec_root {
                return Some("a DestinationRule configures one destination: use `host`".into());
            }
            if at_spec_root && (field == "tls" || POLICY_BLOCKS.contains(&field)) {
                return Some(format!(
                    "`{field}` goes under `trafficPolicy` (or a subset's or port's trafficPolicy)"
                ));
            }
            if ROUTE_FIELDS.contains(&field) {
                let rest = match field {
                    "http" | "tcp" | "gateways" => format!("spec.{field}"),
                    _ => format!("spec.http[].{field}"),
                };
                return Some(format!(
                    "`{field}` is a property of the route, so it belongs in a VirtualService \
                     ({rest}): {MODEL}"
                ));
            }
            None
        }
        Kind::VirtualService => {
            if field == "host" && at_spec_root {
                return Some("a VirtualService lists the hosts it routes in `hosts`".into());
            }
            if DESTINATION_FIELDS.contains(&field) {
                let rest = match field {
                    "subsets" | "trafficPolicy" => format!("spec.{field}"),
                    "circuitBreaker" => {
                        "spec.trafficPolicy.connectionPool and spec.trafficPolicy.outlierDetection"
                            .to_string()
                    }
                    "consistentHash" => "spec.trafficPolicy.loadBalancer.consistentHash".into(),
                    _ => format!("spec.trafficPolicy.{field}"),
                };
                return Some(format!(
                    "`{field}` is a property of the destination, so it belongs in a \
                     DestinationRule ({rest}): {MODEL}"
                ));
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
