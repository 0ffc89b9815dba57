//! The TLS ClientHello as Envoy's `tls_inspector` listener filter reads it,
//! without terminating TLS: the records are buffered (and replayed to the
//! upstream by the caller), the handshake message reassembled across
//! records, and the SNI (`server_name` extension, `host_name`) taken out.
//! Sans-IO and bounded: [`inspect`] looks at the bytes read so far and says
//! whether more are needed.
//!
//! Envoy's outcomes (`tls_inspector.cc`): a ClientHello parsed is
//! `tls_found` with or without SNI; bytes that are not a ClientHello, or a
//! ClientHello BoringSSL refuses to parse (a malformed `server_name`, say),
//! are `tls_not_found` and the connection goes on *without* SNI (plain text
//! for the filter chain match). So does a ClientHello over the inspector's
//! maximum: since Envoy 1.35 (envoyproxy/envoy#39903, the Envoy of Istio
//! 1.27 and later) that is BoringSSL's `SSL3_RT_MAX_PLAIN_LENGTH`, 16 KiB
//! of bytes read, and a ClientHello still incomplete there, or whose
//! handshake header announces more than BoringSSL takes, is "interpreted as
//! plain text" (envoyproxy/envoy#40911, runtime guard
//! `tls_inspector_no_length_check_on_error`, on by default; the
//! `max_client_hello_size` added by envoyproxy/envoy#42278 defaults to the
//! same 16 KiB and Istio does not set it). Envoy before 1.35 read up to
//! 64 KiB and closed the connection above (`client_hello_too_large`).

/// The largest ClientHello handshake message BoringSSL accepts from a
/// client (`SSL3_RT_MAX_PLAIN_LENGTH`).
pub const MAX_HELLO: usize = 16 * 1024;

/// Bytes the inspector reads before it gives up and says
/// [`Inspect::NotTls`] (Envoy's `TLS_MAX_CLIENT_HELLO`, counted in bytes
/// read, record headers included).
pub const MAX_BUFFERED: usize = 16 * 1024;

/// RFC 8446 §5.1: a record's fragment is at most 2^14 bytes.
const MAX_FRAGMENT: usize = 1 << 14;

/// RFC 6066 §3 / BoringSSL's `TLSEXT_MAXLEN_host_name`.
const MAX_HOST_NAME: usize = 255;

/// The first byte of a TLS handshake record (content type 22): what a
/// listener sniffing for TLS looks at.
pub const HANDSHAKE_RECORD: u8 = 22;
const CONTENT_HANDSHAKE: u8 = HANDSHAKE_RECORD;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST_NAME: u8 = 0;

/// What the bytes read so far are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspect {
    /// A ClientHello may still come: read more.
    NeedMore,
    /// A complete ClientHello and its SNI, if it sent one.
    Tls { sni: Option<String> },
    /// Not a (parsable) ClientHello, or one over the maximum: served as a
    /// connection without SNI.
    NotTls,
}

/// Inspect the first bytes of a connection.
pub fn inspect(buf: &[u8]) -> Inspect {
    let mut handshake: Vec<u8> = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        if rest.len() < 5 {
            // What there is of the record header must look like a
            // handshake record, or this is not TLS at all (an HTTP method,
            // say): no need to wait for more.
            if rest.first().is_some_and(|b| *b != CONTENT_HANDSHAKE)
                || rest.get(1).is_some_and(|b| *b != 3)
            {
                return Inspect::NotTls;
            }
            return need_more(buf.len());
        }
        let length = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if rest[0] != CONTENT_HANDSHAKE || rest[1] != 3 || length == 0 || length > MAX_FRAGMENT {
            return Inspect::NotTls;
        }
        let Some(fragment) = rest.get(5..5 + length) else {
            return need_more(buf.len());
        };
        handshake.extend_from_slice(fragment);
        pos += 5 + length;
        if handshake.len() < 4 {
            continue;
        }
        if handshake[0] != HANDSHAKE_CLIENT_HELLO {
            return Inspect::NotTls;
        }
        let length = (usize::from(handshake[1]) << 16)
            | (usize::from(handshake[2]) << 8)
            | usize::from(handshake[3]);
        if length > MAX_HELLO {
            // BoringSSL: `SSL_R_EXCESSIVE_MESSAGE_SIZE` from the header.
            return Inspect::NotTls;
        }
        if let Some(body) = handshake.get(4..4 + length) {
            return match client_hello_sni(body) {
                Ok(sni) => Inspect::Tls { sni },
                Err(Malformed) => Inspect::NotTls,
            };
        }
    }
}

fn need_more(buffered: usize) -> Inspect {
    if buffered >= MAX_BUFFERED {
        Inspect::NotTls
    } else {
        Inspect::NeedMore
    }
}

/// A ClientHello BoringSSL would refuse.
#[derive(Debug)]
struct Malformed;

/// A cursor over a byte string (BoringSSL's `CBS`).
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u8_prefixed(&mut self) -> Result<Bytes<'a>, Malformed> {
        let n = usize::from(self.u8()?);
        Ok(Bytes(self.take(n)?))
    }

    fn u16_prefixed(&mut self) -> Result<Bytes<'a>, Malformed> {
        let n = usize::from(self.u16()?);
        Ok(Bytes(self.take(n)?))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The `host_name` of a ClientHello body (RFC 8446 §4.1.2, RFC 6066 §3),
/// checked as BoringSSL's `ssl_client_hello_init` and `ext_sni_parse_clienthello`
/// check it: fields within their lengths, extensions filling the rest
/// exactly, no extension twice, one `host_name` of 1 to 255 bytes without
/// NUL.
fn client_hello_sni(body: &[u8]) -> Result<Option<String>, Malformed> {
    let mut b = Bytes(body);
    b.take(2 + 32)?; // legacy_version, random
    let session_id = b.u8_prefixed()?;
    if session_id.0.len() > 32 {
        return Err(Malformed);
    }
    let suites = b.u16_prefixed()?;
    if suites.0.len() < 2 || suites.0.len() % 2 != 0 {
        return Err(Malformed);
    }
    if b.u8_prefixed()?.is_empty() {
        return Err(Malformed);
    }
    if b.is_empty() {
        // No extensions at all (SSL 3.0-style hello).
        return Ok(None);
    }
    let mut extensions = b.u16_prefixed()?;
    if !b.is_empty() {
        return Err(Malformed);
    }
    // One bit per extension type, for the duplicate check.
    let mut seen = [0u64; 1024];
    let mut sni = None;
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.u16_prefixed()?;
        let (word, bit) = (usize::from(kind >> 6), 1u64 << (kind & 63));
        if seen[word] & bit != 0 {
            return Err(Malformed);
        }
        seen[word] |= bit;
        if kind != EXT_SERVER_NAME {
            continue;
        }
        let mut list = data.u16_prefixed()?;
        if !data.is_empty() {
            return Err(Malformed);
        }
        let name_type = list.u8()?;
        let name = list.u16_prefixed()?.0;
        if !list.is_empty()
            || name_type != NAME_TYPE_HOST_NAME
            || name.is_empty()
            || name.len() > MAX_HOST_NAME
            || name.contains(&0)
        {
            return Err(Malformed);
        }
        sni = Some(String::from_utf8(name.to_vec()).map_err(|_| Malformed)?);
    }
    Ok(sni)
}

#[cfg(test)]
mod tests;
