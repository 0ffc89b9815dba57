//! Istio and Kubernetes name validation, with Istio's error texts.
//!
//! Sources: `pkg/config/labels/instance.go` (`IsDNS1123Label`,
//! `IsWildcardDNS1123Label`, `Instance.Validate`, `validateTagKey`) and
//! `pkg/config/validation/agent/validation.go` (`ValidateWildcardDomain`,
//! `ValidateFQDN`, `validateDNS1123Labels`, `ValidatePort`,
//! `ValidateIPSubnet`, `ValidateHTTPHeaderNameOrJwtClaimRoute`).
//! All checks are byte loops: Istio's patterns are ASCII-only.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `labels.DNS1123LabelMaxLength`.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Prefix limit of a Kubernetes label key (`dnsNamePrefixMaxLength`).
pub const DNS_PREFIX_MAX_LENGTH: usize = 253;

/// Go's `%q` for the strings we print: `"..."` with Go escapes, so error
/// texts read exactly as Istio's (`domain name "a b" invalid ...`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            // Approximation of Go's unicode.IsPrint for non-ASCII.
            c if c.is_control() => {
                let v = c as u32;
                if v <= 0xffff {
                    out.push_str(&format!("\\u{v:04x}"));
                } else {
                    out.push_str(&format!("\\U{v:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Istio's `labels.IsDNS1123Label`: `^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`
/// and at most 63 bytes. Unlike Kubernetes, **uppercase is allowed**.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= DNS1123_LABEL_MAX_LENGTH
        && is_alnum(b[0])
        && is_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum(c) || c == b'-')
}

/// Istio's `labels.IsWildcardDNS1123Label`: `*`, or a DNS-1123 label
/// optionally prefixed by `*` or `*-` (`*foo`, `*-foo`), at most 63 bytes.
pub fn is_wildcard_dns1123_label(s: &str) -> bool {
    if s.len() > DNS1123_LABEL_MAX_LENGTH {
        return false;
    }
    if s == "*" {
        return true;
    }
    let rest = s
        .strip_prefix("*-")
        .or_else(|| s.strip_prefix('*'))
        .unwrap_or(s);
    // `rest` may be up to 63 bytes; the length cap applies to `s` as a whole.
    let b = rest.as_bytes();
    !b.is_empty()
        && is_alnum(b[0])
        && is_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum(c) || c == b'-')
}

/// `checkDNS1123Preconditions`: at most 255 bytes and non-empty.
fn check_dns1123_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {} too long (max 255)", go_quote(name)));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    Ok(())
}

/// Go `strconv.Atoi` success: optional sign, decimal digits, fits in i64.
fn go_atoi_ok(s: &str) -> bool {
    s.parse::<i64>().is_ok()
}

/// `validateDNS1123Labels`: the last label must not parse as an integer
/// (Go `strconv.Atoi`, so `-1` and `+1` count as numeric and a 20-digit TLD,
/// which overflows, does not), every label must be a DNS-1123 label, and the
/// last label may be empty (trailing dot, `istio.io.`).
fn validate_dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts[parts.len() - 1];
    if go_atoi_ok(tld) {
        return Err(format!(
            "domain name {} invalid (top level domain {} cannot be all-numeric)",
            go_quote(domain),
            go_quote(tld)
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {} invalid (label {} invalid)",
                go_quote(domain),
                go_quote(label)
            ));
        }
    }
    Ok(())
}

/// Istio `ValidateWildcardDomain`: like an FQDN, but the first label may be a
/// wildcard label. Only the part after the first label gets the numeric-TLD
/// check, so a single label such as `123` or `*` is accepted, and the error
/// for a later label names that remainder, not the whole host.
pub fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {} invalid (label {} invalid)",
            go_quote(domain),
            go_quote(first)
        ));
    }
    match rest {
        Some(r) => validate_dns1123_labels(r),
        None => Ok(()),
    }
}

/// Istio `ValidateFQDN` (used e.g. for legacy gateway names). Current Istio
/// returns the preconditions error alone when it fails.
pub fn validate_fqdn(fqdn: &str) -> Result<(), String> {
    check_dns1123_preconditions(fqdn)?;
    validate_dns1123_labels(fqdn)
}

/// `[A-Za-z0-9]` at both ends, `[-A-Za-z0-9_.]` inside (`qualifiedNameFmt`).
fn is_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_alnum(b[0])
        && is_alnum(b[b.len() - 1])
        && b.iter()
            .all(|&c| is_alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

/// Label-free DNS-1123 label format of `dns1123LabelFmt` (no length cap).
fn is_label_fmt(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_alnum(b[0])
        && is_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum(c) || c == b'-')
}

/// Istio `validateTagKey`: optional `prefix/` where the prefix is dot-separated
/// DNS-1123 labels (any case) of at most 253 bytes, then a qualified name of
/// at most 63 bytes. Error texts are Istio's.
pub fn validate_label_key(k: &str) -> Result<(), String> {
    let invalid = || format!("invalid tag key: {}", go_quote(k));
    // Go's regexp: `^(prefix/)?(name)$`; the name cannot contain '/', so the
    // split is at the only '/' if any.
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && !p.split('.').all(is_label_fmt)
    {
        return Err(invalid());
    }
    if !is_qualified_name(name) {
        return Err(invalid());
    }
    if prefix.is_some_and(|p| p.len() > DNS_PREFIX_MAX_LENGTH) {
        return Err(format!(
            "invalid tag key: {} (DNS prefix is too long)",
            go_quote(k)
        ));
    }
    if name.len() > DNS1123_LABEL_MAX_LENGTH {
        return Err(format!(
            "invalid tag key: {} (name is too long)",
            go_quote(k)
        ));
    }
    Ok(())
}

/// Istio label value: `^((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
/// (empty allowed). Istio's `Instance.Validate` has **no** 63-byte cap on
/// values; Kubernetes (and Istio's CRD schema for selectors) does, so it is
/// enforced here too (see [`validate_label_value_istio`] for the bare regex).
pub fn validate_label_value(v: &str) -> Result<(), String> {
    validate_label_value_istio(v)?;
    if v.len() > DNS1123_LABEL_MAX_LENGTH {
        return Err(format!(
            "invalid tag value: {} (value is too long)",
            go_quote(v)
        ));
    }
    Ok(())
}

/// The label-value check exactly as `labels.Instance.Validate` does it: the
/// regex only, no length limit.
pub fn validate_label_value_istio(v: &str) -> Result<(), String> {
    if v.is_empty() || is_qualified_name(v) {
        Ok(())
    } else {
        Err(format!("invalid tag value: {}", go_quote(v)))
    }
}

/// `labels.Instance.Validate`: every key and value, errors joined in key order
/// (Go iterates a map in random order; sorted keys make ours deterministic).
/// Multiple errors are joined with `"; "`. Uses Istio's value check
/// ([`validate_label_value_istio`], no length cap).
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    let errs = label_errors(labels);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// The individual errors of [`validate_labels`], for callers that report one
/// message per error (the analyzer emits one IST0106 per multierror entry).
pub fn label_errors(labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        if let Err(e) = validate_label_key(k) {
            errs.push(e);
        }
        if let Err(e) = validate_label_value_istio(v) {
            errs.push(e);
        }
    }
    errs
}

/// Go `net.ParseIP` acceptance: IPv4 dotted quad (no leading zeros, as in
/// Go ≥ 1.17) or IPv6 (no zone).
pub fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// Istio `ValidateIPSubnet`, as a bool: a CIDR (exactly one `/`) or an IP.
pub fn is_cidr_or_ip(s: &str) -> bool {
    validate_ip_subnet(s).is_ok()
}

/// Istio `ValidateIPSubnet`: with exactly one `/`, Go `net.ParseCIDR`
/// (`X is not a valid CIDR block`); otherwise `ValidateIPAddress`
/// (`X is not a valid IP`).
pub fn validate_ip_subnet(s: &str) -> Result<(), String> {
    if s.matches('/').count() == 1 {
        let (addr, mask) = s.split_once('/').unwrap_or((s, ""));
        let bits = if addr.parse::<Ipv4Addr>().is_ok() {
            32
        } else if addr.parse::<Ipv6Addr>().is_ok() {
            128
        } else {
            return Err(format!("{s} is not a valid CIDR block"));
        };
        // Go's dtoi: decimal digits only (leading zeros allowed), no sign.
        let ok = !mask.is_empty()
            && mask.bytes().all(|b| b.is_ascii_digit())
            && mask.parse::<u32>().is_ok_and(|n| n <= bits);
        if !ok {
            return Err(format!("{s} is not a valid CIDR block"));
        }
        return Ok(());
    }
    if is_ip(s) {
        Ok(())
    } else {
        Err(format!("{s} is not a valid IP"))
    }
}

/// Istio `ValidatePort`.
pub fn validate_port(port: u32) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("port number {port} must be in the range 1..65535"))
    }
}

/// HTTP/2 pseudo-headers Istio accepts as match keys (`pseudoHeaders`).
pub const PSEUDO_HEADERS: [&str; 5] = [":method", ":scheme", ":authority", ":path", ":status"];

/// RFC 7230 `tchar` (`validHeaderNameRegex` in Istio's validation.go).
fn is_tchar(b: u8) -> bool {
    is_alnum(b) || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Header-name test for match keys: a pseudo-header from [`PSEUDO_HEADERS`]
/// (exact, case-sensitive) or a non-empty RFC 7230 token. JWT-claim keys
/// (`@request.auth.claims...`) are the caller's concern.
pub fn is_valid_header_name(s: &str) -> bool {
    PSEUDO_HEADERS.contains(&s) || (!s.is_empty() && s.bytes().all(is_tchar))
}

/// `ValidateHTTPHeaderNameOrJwtClaimRoute` minus the JWT-claim branch, with
/// Istio's texts.
pub fn validate_header_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    if is_valid_header_name(s) {
        Ok(())
    } else {
        Err(format!("header name {s} is not a valid header name"))
    }
}

/// Kubernetes namespace names: a lowercase RFC 1123 label
/// (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes), with apimachinery's
/// messages.
pub fn validate_namespace_name(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_LABEL_MAX_LENGTH {
        return Err("must be no more than 63 characters".to_string());
    }
    let b = s.as_bytes();
    let lower_alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !b.is_empty()
        && lower_alnum(b[0])
        && lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| lower_alnum(c) || c == b'-');
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
             regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            .to_string())
    }
}

#[cfg(test)]
mod tests;
