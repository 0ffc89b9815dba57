//! Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded in either
//! direction.

use crate::header_list::HeaderList;

/// Hop-by-hop lines (RFC 9110 §7.6.1) out of a request's or a response's header list: the
/// standard names (`TE` kept when it is `trailers`; `Connection` and
/// `Upgrade` kept for an upgrade) and the names `Connection` lists. One
/// pass finds none on most requests.
pub fn strip_hop_by_hop_list(h: &mut HeaderList, keep_upgrade: bool) {
    // One pass: which standard names are there, and where the first is.
    let mut found = 0u8;
    let mut lines = 0usize;
    let mut first = 0usize;
    for (i, (n, _)) in h.iter().enumerate() {
        if let Some(k) = index_of(n) {
            found |= 1 << k;
            if lines == 0 {
                first = i;
            }
            lines += 1;
        }
    }
    if found == 0 {
        return;
    }
    let mut listed: Vec<Vec<u8>> = Vec::new();
    for v in h.get_all("connection") {
        for name in v.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if name.is_empty()
                || name.eq_ignore_ascii_case(b"keep-alive")
                || (keep_upgrade && name.eq_ignore_ascii_case(b"upgrade"))
            {
                continue;
            }
            listed.push(name.to_ascii_lowercase());
        }
    }
    // The usual case, a response's one `Connection: keep-alive`: that
    // line goes, nothing else to look for.
    if lines == 1 && found == 1 << CONNECTION_AT && listed.is_empty() && !keep_upgrade {
        h.remove_at(first);
        return;
    }
    let te_trailers = h
        .get("te")
        .is_some_and(|te| te.eq_ignore_ascii_case(b"trailers"));
    h.retain(|n, _| {
        let standard_keep = match index_of(n) {
            None => true,
            Some(CONNECTION_AT | UPGRADE_AT) => keep_upgrade,
            Some(TE_AT) => te_trailers,
            Some(_) => false,
        };
        standard_keep && !listed.iter().any(|l| l.as_slice() == n)
    });
}

/// A lowercase hop-by-hop name's index: one match on the name (a length
/// switch, then one comparison) per line.
fn index_of(name: &[u8]) -> Option<usize> {
    Some(match name {
        b"connection" => 0,
        b"keep-alive" => 1,
        b"proxy-connection" => 2,
        b"proxy-authenticate" => 3,
        b"proxy-authorization" => 4,
        b"transfer-encoding" => 5,
        b"upgrade" => 6,
        b"te" => 7,
        _ => return None,
    })
}

const CONNECTION_AT: usize = 0;
const UPGRADE_AT: usize = 6;
const TE_AT: usize = 7;

#[cfg(test)]
mod tests;
