//! Certificate, key and CA files referenced by Gateway servers
//! (`serverCertificate`, `privateKey`, `caCertificates`, `caCrl`): read
//! when a configuration is compiled, never on the request path. A relative
//! path is read from strait's working directory, as Envoy (and the
//! istio-agent's file SDS) read a `filename` from theirs.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::ConfigSet;

/// Largest certificate, key or CRL file read (a bundle of many CAs fits).
pub const MAX_CERT_FILE_BYTES: u64 = 1024 * 1024;

/// A referenced file's bytes. Refuses what is not a regular file (a FIFO or
/// device would block or never end) and files over the limit.
pub fn read(path: &str) -> Result<Vec<u8>, String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    let p = Path::new(path);
    let meta = std::fs::metadata(p).map_err(|e| format!("cannot read {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    if meta.len() > MAX_CERT_FILE_BYTES {
        return Err(format!(
            "{path} is larger than the {} KiB limit for certificate files",
            MAX_CERT_FILE_BYTES / 1024
        ));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(p)
        .and_then(|f| f.take(MAX_CERT_FILE_BYTES).read_to_end(&mut out))
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(out)
}

/// Every file the Gateways of `config` reference for TLS, for the watcher.
pub fn referenced(config: &ConfigSet) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for gw in &config.gateways {
        for s in &gw.spec.servers {
            let Some(t) = &s.tls else { continue };
            let certs = t
                .tls_certificates
                .iter()
                .flat_map(|c| [&c.server_certificate, &c.private_key, &c.ca_certificates]);
            for p in [
                &t.server_certificate,
                &t.private_key,
                &t.ca_certificates,
                &t.ca_crl,
            ]
            .into_iter()
            .chain(certs)
            .flatten()
            {
                let p = PathBuf::from(p);
                if !p.as_os_str().is_empty() && !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file_or_too_big() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(&dir.path().display().to_string()).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_CERT_FILE_BYTES as usize + 1]).unwrap();
        let e = read(&big.display().to_string()).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        let e = read(&dir.path().join("none.pem").display().to_string()).unwrap_err();
        assert!(e.contains("cannot read") && e.contains("none.pem"), "{e}");
        let ok = dir.path().join("ok.pem");
        std::fs::write(&ok, "x").unwrap();
        assert_eq!(read(&ok.display().to_string()).unwrap(), b"x");
    }
}
