use super::*;

#[test]
fn istio_request_metrics_have_istio_names_and_labels() {
    let m = Metrics::new(Source::new("default", &Default::default()));
    let d = Destination::new(
        "reviews.default.svc.cluster.local",
        "reviews",
        "default",
        "v1",
    );
    for _ in 0..3 {
        m.record(&Record {
            destination: &d,
            grpc: false,
            response_code: 200,
            grpc_status: None,
            flags: Flags::NONE,
            duration_ms: 3.0,
            request_bytes: 10,
            response_bytes: 20,
        });
    }
    m.upstream_rq_retry
        .get_or_create(&Metrics::cluster(&Arc::from(
            "outbound|9080|v1|reviews.default.svc.cluster.local",
        )))
        .inc();
    let text = m.encode();
    let line = text
        .lines()
        .find(|l| l.starts_with("istio_requests_total{"))
        .expect("istio_requests_total");
    assert!(line.ends_with(" 3"), "{line}");
    for label in [
        "reporter=\"source\"",
        "destination_service=\"reviews.default.svc.cluster.local\"",
        "destination_service_name=\"reviews\"",
        "destination_service_namespace=\"default\"",
        "destination_version=\"v1\"",
        "request_protocol=\"http\"",
        "response_code=\"200\"",
        "grpc_response_status=\"\"",
        "response_flags=\"-\"",
        "connection_security_policy=\"unknown\"",
    ] {
        assert!(line.contains(label), "{label} in {line}");
    }
    assert!(text.contains("istio_request_duration_milliseconds_bucket{"));
    assert!(text.contains("le=\"0.5\""));
    assert!(text.contains("envoy_cluster_upstream_rq_retry_total{cluster_name=\"outbound|9080|v1|reviews.default.svc.cluster.local\"} 1"));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn series_and_buckets_read_back_for_the_page() {
    let m = Metrics::new(Source::new("default", &Default::default()));
    let d = Destination::new("r.default.svc.cluster.local", "r", "default", "v1");
    for (code, ms) in [(200, 0.3), (200, 7.0), (503, 7.0)] {
        m.record(&Record {
            destination: &d,
            grpc: false,
            response_code: code,
            grpc_status: None,
            flags: if code == 503 {
                Flags::NO_HEALTHY_UPSTREAM
            } else {
                Flags::NONE
            },
            duration_ms: ms,
            request_bytes: 0,
            response_bytes: 0,
        });
    }
    let mut reads = m.series_of(&d);
    reads.sort_by_key(|r| r.response_code);
    assert_eq!(reads.len(), 2);
    assert_eq!((reads[0].response_code, reads[0].requests), (200, 2));
    assert_eq!(reads[1].flags, Flags::NO_HEALTHY_UPSTREAM);
    let b = reads[0].duration.cumulative();
    assert_eq!(b.len(), BUCKETS.len() + 1);
    // 0.3 ms in le=0.5; 7 ms in le=10 (index 3) and above.
    assert_eq!(&b[..5], &[1, 1, 1, 2, 2]);
    assert_eq!(b[BUCKETS.len()], 2);
    let other = Metrics::new(Source::new("default", &Default::default()));
    assert!(other.series_of(&d).is_empty(), "the cache belongs to m");
}

#[test]
fn a_destination_with_more_series_than_cache_slots_counts_every_request() {
    let m = Metrics::new(Source::new("default", &Default::default()));
    let d = Destination::new("r.default.svc.cluster.local", "r", "default", "v1");
    let codes: Vec<u16> = (0..SERIES_SLOTS as u16 + 4).map(|i| 200 + i).collect();
    for _ in 0..2 {
        for &code in &codes {
            m.record(&Record {
                destination: &d,
                grpc: false,
                response_code: code,
                grpc_status: None,
                flags: Flags::NONE,
                duration_ms: 1.0,
                request_bytes: 0,
                response_bytes: 0,
            });
        }
    }
    let text = m.encode();
    for code in codes {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("istio_requests_total{")
                    && l.contains(&format!("response_code=\"{code}\""))
            })
            .unwrap_or_else(|| panic!("no series for {code}"));
        assert!(line.ends_with(" 2"), "{line}");
    }
}

#[test]
fn a_destination_shared_by_two_proxies_counts_in_each() {
    let a = Metrics::new(Source::new("default", &Default::default()));
    let b = Metrics::new(Source::new("default", &Default::default()));
    let d = Destination::new("r.default.svc.cluster.local", "r", "default", "v1");
    let rec = |m: &Metrics, code| {
        m.record(&Record {
            destination: &d,
            grpc: false,
            response_code: code,
            grpc_status: None,
            flags: Flags::NONE,
            duration_ms: 1.0,
            request_bytes: 0,
            response_bytes: 0,
        })
    };
    rec(&a, 200);
    rec(&a, 200);
    rec(&b, 200);
    rec(&a, 503);
    let count = |m: &Metrics, code: &str| {
        m.encode()
            .lines()
            .find(|l| {
                l.starts_with("istio_requests_total{")
                    && l.contains(&format!("response_code=\"{code}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
    };
    assert_eq!(count(&a, "200").as_deref(), Some("2"));
    assert_eq!(count(&a, "503").as_deref(), Some("1"));
    assert_eq!(count(&b, "200").as_deref(), Some("1"));
    assert_eq!(count(&b, "503"), None);
    let hot = a.cluster_hot(&d, &Arc::from("c"));
    hot.upstream_rq_total.inc();
    b.cluster_hot(&d, &Arc::from("c")).upstream_rq_total.inc();
    assert!(
        a.encode()
            .contains("envoy_cluster_upstream_rq_total{cluster_name=\"c\"} 1")
    );
    assert!(
        b.encode()
            .contains("envoy_cluster_upstream_rq_total{cluster_name=\"c\"} 1")
    );
}

#[test]
fn istio_tcp_metrics_have_istio_names_and_labels() {
    let m = Metrics::new(Source::new("istio-system", &Default::default()));
    let d = Destination::new("db.example.com", "db.example.com", "unknown", "unknown");
    m.tcp_opened(&d);
    m.tcp_closed(&d, Flags::NONE, 7, 5);
    let text = m.encode();
    for (name, value) in [
        ("istio_tcp_connections_opened_total{", " 1"),
        ("istio_tcp_connections_closed_total{", " 1"),
        ("istio_tcp_sent_bytes_total{", " 7"),
        ("istio_tcp_received_bytes_total{", " 5"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {text}"));
        assert!(line.ends_with(value), "{line}");
        assert!(line.contains("request_protocol=\"tcp\""), "{line}");
        assert!(
            line.contains("destination_service=\"db.example.com\""),
            "{line}"
        );
        assert!(!line.contains("response_code"), "{line}");
    }
}

/// Found by the http1 fuzz target: 20,000 requests with distinct `Host`
/// headers and no route made 20,000 label sets (RSS 20 → 104 MB, a
/// 1.1 GB scrape). Requests without a cluster share one.
#[test]
fn requests_without_a_cluster_share_the_unknown_destination() {
    let m = Metrics::new(Source::new("default", &Default::default()));
    for _ in 0..3 {
        m.record(&Record {
            destination: &Destination::unknown(),
            grpc: false,
            response_code: 404,
            grpc_status: None,
            flags: Flags::NO_ROUTE_FOUND,
            duration_ms: 1.0,
            request_bytes: 0,
            response_bytes: 0,
        });
    }
    let text = m.encode();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].ends_with(" 3"), "{}", lines[0]);
    assert!(
        lines[0].contains("destination_service=\"unknown\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("destination_service_name=\"unknown\""),
        "{}",
        lines[0]
    );
}

/// Issue #14: Istio's circuit-breaking task greps Envoy's `stats`.
#[test]
fn envoy_stats_are_plain_name_value_lines() {
    let text = "# TYPE envoy_cluster_upstream_rq counter\nenvoy_cluster_upstream_rq_total{cluster_name=\"outbound|80||a.default.svc.cluster.local\"} 3\nenvoy_cluster_upstream_rq_pending_overflow_total{cluster_name=\"outbound|80||a.default.svc.cluster.local\"} 2\nenvoy_cluster_upstream_rq_active{cluster_name=\"outbound|80||a.default.svc.cluster.local\"} 0\nistio_requests_total{reporter=\"source\"} 5\n# EOF\n";
    assert_eq!(
        envoy_stats(text),
        "cluster.outbound|80||a.default.svc.cluster.local.upstream_rq_active: 0\ncluster.outbound|80||a.default.svc.cluster.local.upstream_rq_pending_overflow: 2\ncluster.outbound|80||a.default.svc.cluster.local.upstream_rq_total: 3\n"
    );
}
