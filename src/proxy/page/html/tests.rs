use super::super::view::{Breaker, EndpointView, RouteView};
use super::*;
use crate::proxy::flags::Flags;

const EVIL: &str = "<script>alert(1)</script>";

#[test]
fn esc_escapes_markup_and_quotes() {
    assert_eq!(
        esc("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

fn evil_view() -> View {
    let stats = Stats {
        requests: 10,
        seconds: 60,
        errors: 1,
        by_flags: vec![(Flags::NO_CLUSTER_FOUND, 1)],
        series: vec![1; 30],
        error_series: vec![0; 30],
        ..Stats::default()
    };
    View {
        version: 3,
        applied_at: EVIL.into(),
        paths: vec![EVIL.into()],
        rejected: Some((EVIL.into(), vec![EVIL.into()])),
        seconds: 60,
        routes: vec![VhostView {
            id: "m0".into(),
            name: EVIL.into(),
            virtual_service: Some(EVIL.into()),
            routes: vec![RouteView {
                name: EVIL.into(),
                index: Some(0),
                matches: EVIL.into(),
                action: None,
                destinations: vec![DestView {
                    id: "m0-0-0".into(),
                    cluster: EVIL.into(),
                    weight: 100.0,
                    picks: 10,
                    share: Some(100.0),
                    missing: true,
                    stats: stats.clone(),
                }],
            }],
        }],
        gateways: vec![GatewayView {
            port: 80,
            protocol: "HTTP".into(),
            servers: vec![EVIL.into()],
            routes: Vec::new(),
            tcp: vec![EVIL.into()],
        }],
        clusters: vec![ClusterView {
            id: "c0".into(),
            name: EVIL.into(),
            destination_rule: Some(EVIL.into()),
            policy: EVIL.into(),
            breakers: vec![Breaker {
                name: "requests",
                used: 1,
                limit: 1,
            }],
            endpoints: vec![EndpointView {
                address: EVIL.into(),
                labels: EVIL.into(),
                weight: 1,
                ejected: true,
                active: 0,
                ejections: 1,
                ejection: Some(EVIL.into()),
            }],
            stats,
        }],
    }
}

/// Every configuration- or request-derived string (VirtualService,
/// host, route, match, cluster, DestinationRule, policy, endpoint,
/// labels, sources, rejection messages, gateway servers, the explain
/// form's URL, method, headers and answer) is escaped.
#[test]
fn no_name_can_inject_markup() {
    let form = ExplainForm {
        url: EVIL.into(),
        method: EVIL.into(),
        headers: format!("x-evil: {EVIL}"),
        result: Some(Ok(EVIL.into())),
    };
    let html = render(&evil_view(), &form);
    // The page's own script is the only one.
    assert_eq!(html.matches("<script>").count(), 1, "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    let escaped = html
        .matches("&lt;script&gt;alert(1)&lt;/script&gt;")
        .count();
    assert!(escaped >= 17, "{escaped} escaped copies in {html}");
    let err = render(
        &evil_view(),
        &ExplainForm {
            result: Some(Err(EVIL.into())),
            ..ExplainForm::default()
        },
    );
    assert!(!err.contains("<script>alert"));
}

#[test]
fn figures_carry_ids_and_text_not_markup() {
    let v = evil_view();
    let j = figures_json(&v);
    assert_eq!(j["version"], 3);
    assert_eq!(j["text"]["m0-0-0.share"], "100.0%");
    assert_eq!(j["text"]["m0-0-0.flags"], "NC 1");
    assert_eq!(j["text"]["m0-0-0.err"], "10.0%");
    assert_eq!(j["class"]["m0-0-0.err"], "n bad");
    assert_eq!(j["text"]["c0.e0.health"], "ejected");
    assert_eq!(j["text"]["c0.b0"], "1 / 1");
    assert_eq!(j["class"]["c0.b0"], "bad");
    // Text figures go to textContent; the page escapes the same text.
    assert_eq!(j["text"]["c0.e0.ejection"], EVIL);
    let html = render(&v, &ExplainForm::default());
    assert!(html.contains("id=\"m0-0-0.share\" class=\"n share\">100.0%<"));
}
