//! Istio's `corsPolicy` as Envoy's CORS filter applies it: which origins
//! are allowed, a preflight's answer and a response's added headers. Pure:
//! the proxy answers or decorates with these headers.

use http::header::{self, HeaderValue};

use super::Cors;
use crate::header_list::HeaderList;

impl Cors {
    /// `origin` matches `allowOrigins`.
    pub fn allows(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|m| m.matches(origin))
    }

    /// A preflight from `origin`: the headers of the 200 the proxy answers
    /// with itself (none for an origin not allowed), or `None` to forward
    /// it upstream (an origin not allowed, with `unmatchedPreflights:
    /// FORWARD`).
    pub fn preflight_headers(&self, origin: &str) -> Option<HeaderList> {
        let mut h = HeaderList::new();
        if !self.allows(origin) {
            return (!self.forward_unmatched_preflights).then_some(h);
        }
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        if let Some(v) = &self.allow_methods {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
        }
        if let Some(v) = &self.allow_headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if let Some(v) = &self.max_age {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        if self.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        Some(h)
    }

    /// Add the CORS headers of a response to `origin` (none unless the
    /// origin is allowed).
    pub fn decorate(&self, origin: &str, h: &mut HeaderList) {
        if !self.allows(origin) {
            return;
        }
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        if let Some(v) = &self.expose_headers {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
        if self.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::matcher::StrMatch;

    fn cors(forward_unmatched_preflights: bool) -> Cors {
        Cors {
            allow_origins: vec![StrMatch::Exact("https://a.example".into())],
            allow_methods: Some(HeaderValue::from_static("GET, POST")),
            allow_headers: None,
            expose_headers: Some(HeaderValue::from_static("x-id")),
            max_age: None,
            allow_credentials: true,
            forward_unmatched_preflights,
        }
    }

    /// Envoy's CORS filter: an allowed origin's preflight is answered with
    /// the policy's headers; another origin's is forwarded
    /// (`unmatchedPreflights: FORWARD`, Istio's default) or answered bare.
    #[test]
    fn preflight_answers_allowed_origins_and_forwards_or_ignores_others() {
        let h = cors(true).preflight_headers("https://a.example").unwrap();
        assert_eq!(
            h.get_str(header::ACCESS_CONTROL_ALLOW_ORIGIN.as_str())
                .unwrap(),
            "https://a.example"
        );
        assert_eq!(
            h.get_str(header::ACCESS_CONTROL_ALLOW_METHODS.as_str())
                .unwrap(),
            "GET, POST"
        );
        assert_eq!(
            h.get_str(header::ACCESS_CONTROL_ALLOW_CREDENTIALS.as_str())
                .unwrap(),
            "true"
        );
        assert!(cors(true).preflight_headers("https://b.example").is_none());
        let bare = cors(false).preflight_headers("https://b.example").unwrap();
        assert!(bare.is_empty());
    }

    #[test]
    fn only_allowed_origins_get_response_headers() {
        let mut h = HeaderList::new();
        cors(true).decorate("https://b.example", &mut h);
        assert!(h.is_empty());
        cors(true).decorate("https://a.example", &mut h);
        assert_eq!(
            h.get_str(header::ACCESS_CONTROL_EXPOSE_HEADERS.as_str())
                .unwrap(),
            "x-id"
        );
        assert_eq!(
            h.get_str(header::ACCESS_CONTROL_ALLOW_ORIGIN.as_str())
                .unwrap(),
            "https://a.example"
        );
    }
}
