//! The pure route behaviour that changes where a request goes: the path
//! rewrite of a forwarded request and the `Location` of a redirect. The
//! proxy and `explain` both call these, so what `explain` shows is what the
//! proxy does.

use super::{Redirect, Route, RouteMatch, StrMatch, split_authority};

/// The prefix an Envoy `prefix_rewrite` replaces: the route's `uri` prefix
/// match; a route without a `uri` match has Istio's `prefix: "/"`
/// (`TranslateRouteMatch` starts every match as `RouteMatch_Prefix{"/"}`).
/// `None` for exact and regex matches: the whole path is replaced.
fn matched_prefix(m: &RouteMatch) -> Option<&str> {
    match &m.uri {
        Some(StrMatch::Prefix(p)) => Some(p),
        None => Some("/"),
        _ => None,
    }
}

/// `path` with the route's matched prefix replaced by `new`: Envoy's
/// `currentUrlPathAfterRewriteWithMatchedPath`, shared by `RouteAction`'s
/// and `RedirectAction`'s `prefix_rewrite` (Istio sets the first from
/// `HTTPRewrite.uri` in `translateRoute`, the second from
/// `HTTPRedirect.prefixRewrite` in `ApplyRedirect`;
/// pilot/pkg/networking/core/route/route.go). The replaced length is the
/// match's, so a case-insensitive match replaces the request's own spelling.
/// A rule without a `uri` match rewrites after `/`: `/api` turns `/x` into
/// `/apix` (a well-known surprise).
pub fn replace_matched_prefix(m: &RouteMatch, new: &str, path: &str) -> String {
    let rest = matched_prefix(m).and_then(|prefix| path.get(prefix.len()..));
    let out = match rest {
        // Envoy keeps a single slash when the prefix ends the path.
        Some("") if new.is_empty() => "/".to_string(),
        Some(rest) => format!("{new}{rest}"),
        None => new.to_string(),
    };
    if out.is_empty() { "/".into() } else { out }
}

/// The path (and query) after the route's rewrite: `uri` replaces the
/// matched prefix (or the whole path for exact/regex matches);
/// `uriRegexRewrite` substitutes every match in the path. `None`: the
/// request's own path and query are sent.
pub fn rewritten_path(route: &Route, path: &str, query: Option<&str>) -> Option<String> {
    let rw = route.rewrite.as_ref()?;
    if rw.uri.is_none() && rw.uri_regex.is_none() {
        return None;
    }
    let mut p = match &rw.uri {
        Some(new) => replace_matched_prefix(&route.matcher, new, path),
        None => path.to_string(),
    };
    if let Some((re, sub)) = &rw.uri_regex {
        p = re.replace_all(&p, sub.as_str()).into_owned();
    }
    Some(match query {
        Some(q) => format!("{p}?{q}"),
        None => p,
    })
}

/// The `Location` of a redirect for a request to `scheme://authority`
/// `path?query` (`scheme` `None`: plain HTTP).
pub fn redirect_location(
    rd: &Redirect,
    route: &Route,
    request_scheme: Option<&str>,
    authority: &str,
    path: &str,
    query: Option<&str>,
) -> String {
    let request_scheme = request_scheme.unwrap_or("http");
    let scheme = rd.scheme.as_deref().unwrap_or(request_scheme);
    let (_, orig_port) = split_authority(authority);
    let port_at = authority.rfind(':').filter(|_| !authority.ends_with(']'));
    // FROM_REQUEST_PORT: Istio writes the port the route was built for, the
    // service port the request was sent to.
    let port = rd
        .port
        .or_else(|| rd.derive_port_from_request.then_some(orig_port));
    // Envoy's `processRequestHost`: the request's host keeps its port unless
    // a new port is set or the scheme changes away from that port's default.
    let host = match &rd.authority {
        Some(a) => a.as_str(),
        None if port_at.is_none() => authority,
        None if port.is_some()
            || (scheme != request_scheme
                && ((request_scheme == "http" && orig_port == 80)
                    || (request_scheme == "https" && orig_port == 443))) =>
        {
            &authority[..port_at.unwrap_or(authority.len())]
        }
        None => authority,
    };
    let new_path = match (&rd.uri, &rd.prefix_rewrite) {
        (Some(u), _) => u.clone(),
        (None, Some(p)) => replace_matched_prefix(&route.matcher, p, path),
        _ => path.to_string(),
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let mut location = format!("{scheme}://{host}");
    if let Some(p) = port.filter(|p| *p != default_port) {
        location.push_str(&format!(":{p}"));
    }
    location.push_str(&new_path);
    if let Some(q) = query.filter(|_| !new_path.contains('?')) {
        location.push('?');
        location.push_str(q);
    }
    location
}

#[cfg(test)]
mod tests {
    use super::super::{Action, HeaderOps, Rewrite};
    use super::*;
    use http::StatusCode;

    fn matcher(uri: Option<StrMatch>) -> RouteMatch {
        RouteMatch {
            uri,
            ..RouteMatch::default()
        }
    }

    fn route(uri: Option<StrMatch>, action: Action, rewrite: Option<Rewrite>) -> Route {
        Route {
            name: "r".into(),
            rule_index: Some(0),
            matcher: matcher(uri),
            action,
            timeout: None,
            retry: None,
            fault: None,
            mirrors: Vec::new(),
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            rewrite,
            cors: None,
        }
    }

    fn prefix_redirect(new: &str) -> Redirect {
        Redirect {
            uri: None,
            prefix_rewrite: Some(new.into()),
            authority: None,
            port: None,
            derive_port_from_request: false,
            scheme: None,
            status: StatusCode::MOVED_PERMANENTLY,
        }
    }

    #[test]
    fn prefix_rewrite_replaces_the_matched_prefix() {
        let m = matcher(Some(StrMatch::Prefix("/old".into())));
        assert_eq!(replace_matched_prefix(&m, "/new", "/old/x"), "/new/x");
        assert_eq!(replace_matched_prefix(&m, "", "/old"), "/");
        let exact = matcher(Some(StrMatch::Exact("/a".into())));
        assert_eq!(replace_matched_prefix(&exact, "/b", "/a"), "/b");
    }

    /// Istio's `TranslateRouteMatch` gives a rule without a `uri` match the
    /// Envoy match `prefix: "/"`, and Envoy's `prefix_rewrite` (route and
    /// redirect alike, `currentUrlPathAfterRewriteWithMatchedPath`)
    /// replaces that `/`: `translateRoute` (`HTTPRewrite.uri`) and
    /// `ApplyRedirect` (`HTTPRedirect.prefixRewrite`),
    /// pilot/pkg/networking/core/route/route.go. Forwarding and redirects
    /// once disagreed here (the redirect kept the path).
    #[test]
    fn no_uri_match_rewrites_after_the_slash_in_forwarding_and_redirects() {
        let rewrite = Rewrite {
            uri: Some("/api".into()),
            uri_regex: None,
            authority: None,
        };
        let fwd = route(None, Action::Forward(Vec::new()), Some(rewrite));
        assert_eq!(
            rewritten_path(&fwd, "/x", Some("q=1")).as_deref(),
            Some("/apix?q=1")
        );
        let rd = prefix_redirect("/api");
        let redir = route(None, Action::Forward(Vec::new()), None);
        assert_eq!(
            redirect_location(&rd, &redir, None, "h.example", "/x", Some("q=1")),
            "http://h.example/apix?q=1"
        );
    }

    #[test]
    fn redirect_keeps_or_drops_the_port_as_envoy() {
        let mut rd = prefix_redirect("/v2/");
        let r = route(
            Some(StrMatch::Prefix("/v1/".into())),
            Action::Forward(Vec::new()),
            None,
        );
        assert_eq!(
            redirect_location(&rd, &r, None, "h:8080", "/v1/a", None),
            "http://h:8080/v2/a"
        );
        rd.scheme = Some("https".into());
        assert_eq!(
            redirect_location(&rd, &r, None, "h:80", "/v1/a", None),
            "https://h/v2/a"
        );
    }
}
