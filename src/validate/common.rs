//! Validation rules shared by several kinds (`pkg/config/validation/validation.go`).

use std::collections::{BTreeMap, BTreeSet};

use super::Finding;
use crate::model::{Duration, Percent, StringMatch, names, re2};

/// `validateExportTo`: `.`, `*`, `~` (ServiceEntry only) or namespace names;
/// no duplicates; `*` and `~` alone; a DR with a workloadSelector stays in
/// its own namespace.
pub fn export_to(
    path: &str,
    export_to: &[String],
    namespace: &str,
    is_service_entry: bool,
    dr_with_selector: bool,
    out: &mut Vec<Finding>,
) {
    if export_to.is_empty() {
        return;
    }
    let mut set = BTreeSet::new();
    for (i, e) in export_to.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let key = if e == "." { namespace } else { e.as_str() };
        if set.contains(key) {
            if key != e {
                out.push(Finding::error(
                    p,
                    format!("duplicate entries in exportTo: . and current namespace {namespace}"),
                ));
            } else {
                out.push(Finding::error(
                    p,
                    format!("duplicate entries in exportTo for entry {e}"),
                ));
            }
            continue;
        }
        let valid = key == "*"
            || key == "."
            || (is_service_entry && key == "~")
            || names::is_dns1123_label(key);
        if valid {
            set.insert(key.to_string());
        } else {
            out.push(Finding::error(
                p,
                format!(
                    "only .,*, or a valid DNS 1123 label is allowed as exportTo entry, got {e:?}{}",
                    if e == "~" {
                        " (~, exported to no one, is allowed only for a ServiceEntry)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    if dr_with_selector && !set.is_empty() {
        if set.contains(namespace) {
            if set.len() > 1 {
                out.push(Finding::error(
                    path,
                    "destination rule with workload selector cannot have multiple entries in exportTo",
                ));
            }
        } else {
            out.push(Finding::error(
                path,
                "destination rule with workload selector cannot have exportTo beyond current namespace",
            ));
        }
    }
    if set.contains("*") && export_to.len() > 1 {
        out.push(Finding::error(
            path,
            "cannot have both public (*) and non-public exportTo values for a resource",
        ));
    }
    if set.contains("~") && export_to.len() > 1 {
        out.push(Finding::error(
            path,
            "cannot export service entry to no one (~) and someone",
        ));
    }
}

/// `ValidateDuration`: at least 1ms, whole milliseconds.
pub fn duration(path: &str, d: Option<&Duration>, out: &mut Vec<Finding>) {
    if let Some(d) = d
        && let Err(e) = d.validate_ms()
    {
        out.push(Finding::error(path, format!("{e} (got {})", d.text)));
    }
}

/// A `Percent`: 0–100.
pub fn percent_range(path: &str, p: Option<&Percent>, out: &mut Vec<Finding>) {
    if let Some(v) = p.and_then(|p| p.value)
        && (!(0.0..=100.0).contains(&v) || v.is_nan())
    {
        out.push(Finding::error(
            path,
            format!("percentage {v} is not in range 0..100"),
        ));
    }
}

/// A workload selector's labels: keys not empty, no `*`, valid label syntax.
/// No labels at all is a warning (it selects every workload).
pub fn workload_selector(
    path: &str,
    labels: &BTreeMap<String, String>,
    what: &str,
    out: &mut Vec<Finding>,
) {
    if labels.is_empty() {
        out.push(Finding::warning(
            path,
            format!("workload selector has no labels: the {what} applies to every workload in the namespace"),
        ));
        return;
    }
    for (k, v) in labels {
        let p = format!("{path}.{k}");
        if k.is_empty() {
            out.push(Finding::error(&p, "empty key is not supported in selector"));
        } else if k.contains('*') || v.contains('*') {
            out.push(Finding::error(
                &p,
                format!("wildcard is not supported in selector: {k}={v}; list exact label values"),
            ));
        }
    }
    for e in names::label_errors(labels) {
        out.push(Finding::error(path, e));
    }
}

/// A `StringMatch` in a match block: one of exact/prefix/regex; prefix not
/// empty (except `uri`); regex not empty and valid RE2.
pub fn string_match(
    path: &str,
    what: &str,
    m: &StringMatch,
    allow_empty_prefix: bool,
    out: &mut Vec<Finding>,
) {
    let set = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        out.push(Finding::error(
            path,
            format!("{what:?}: only one of exact, prefix or regex may be set"),
        ));
    }
    if let Some(p) = &m.prefix
        && p.is_empty()
        && !allow_empty_prefix
    {
        out.push(Finding::error(
            path,
            format!("{what:?}: prefix string match should not be empty"),
        ));
    }
    if let Some(r) = &m.regex {
        regex(path, what, r, out);
    }
}

/// A regex field: not empty, at most 1024 characters, valid RE2.
pub fn regex(path: &str, what: &str, r: &str, out: &mut Vec<Finding>) {
    if r.is_empty() {
        out.push(Finding::error(
            path,
            format!("{what:?}: regex string match should not be empty"),
        ));
    } else if let Err(e) = re2::validate(r) {
        out.push(Finding::error(path, format!("{what:?}: {e}")));
    }
}

/// A port number: 1..65535.
pub fn port(path: &str, p: Option<u32>, out: &mut Vec<Finding>) {
    if let Some(p) = p
        && let Err(e) = names::validate_port(p)
    {
        out.push(Finding::error(path, e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(v: &[&str], se: bool, sel: bool) -> Vec<String> {
        let mut out = Vec::new();
        let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        export_to("spec.exportTo", &v, "default", se, sel, &mut out);
        out.into_iter().map(|f| f.message).collect()
    }

    #[test]
    fn export_to_follows_istio() {
        assert!(ex(&["."], false, false).is_empty());
        assert!(ex(&["*"], false, false).is_empty());
        assert!(ex(&["ns1", "ns2"], false, false).is_empty());
        assert!(
            ex(&["~"], true, false).is_empty(),
            "~ is fine for a ServiceEntry"
        );
        assert_eq!(
            ex(&["~"], false, false).len(),
            1,
            "~ is rejected for VS and DR"
        );
        assert!(ex(&["default", "."], false, false)[0].contains(". and current namespace"));
        assert!(ex(&[".", "default"], false, false)[0].contains("for entry default"));
        assert!(ex(&["*", "ns1"], false, false)[0].contains("both public"));
        assert!(ex(&["~", "ns1"], true, false)[0].contains("no one (~) and someone"));
        assert!(ex(&["other"], false, true)[0].contains("beyond current namespace"));
        assert!(ex(&["."], false, true).is_empty());
    }

    #[test]
    fn zero_duration_is_rejected() {
        let mut out = Vec::new();
        duration(
            "spec.http[0].timeout",
            Some(&Duration::parse("0s").unwrap()),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(out[0].message.contains("greater than 1ms"));
    }
}
