use super::*;
use serde_json::json;

fn spec(v: serde_json::Value) -> ServiceSpec {
    serde_json::from_value(v).unwrap()
}

/// Istio `pkg/config/kube/conversion_test.go` `TestConvertProtocol`.
#[test]
fn protocols_as_istio_convert_protocol() {
    let cases: &[(u32, &str, &str, Option<&str>, Protocol)] = &[
        (80, "", "TCP", None, Protocol::Unsupported),
        (8888, "http", "TCP", None, Protocol::Http),
        (8888, "http-test", "TCP", None, Protocol::Http),
        (8888, "http", "UDP", None, Protocol::Udp),
        (8888, "httptest", "TCP", None, Protocol::Unsupported),
        (25, "httptest", "TCP", None, Protocol::Tcp),
        (53, "", "TCP", None, Protocol::Tcp),
        (3306, "", "TCP", None, Protocol::Tcp),
        (27017, "", "TCP", None, Protocol::Tcp),
        (8888, "grpc-web", "TCP", None, Protocol::GrpcWeb),
        (8888, "grpc-web-x", "TCP", None, Protocol::GrpcWeb),
        (8888, "GRPC-WEB-x", "TCP", None, Protocol::GrpcWeb),
        (8888, "grpc-x", "TCP", None, Protocol::Grpc),
        (8888, "http2-x", "TCP", None, Protocol::Http2),
        (8888, "https-x", "TCP", None, Protocol::Https),
        (8888, "tls-x", "TCP", None, Protocol::Tls),
        (8888, "tcp-x", "TCP", None, Protocol::Tcp),
        (8888, "mongo-x", "TCP", None, Protocol::Mongo),
        (8888, "redis-x", "TCP", None, Protocol::Redis),
        (8888, "mysql-x", "TCP", None, Protocol::Mysql),
        (8888, "HTTP", "TCP", None, Protocol::Http),
        // appProtocol beats the name.
        (8888, "http", "TCP", Some("tcp"), Protocol::Tcp),
        (8888, "tcp", "TCP", Some("grpc"), Protocol::Grpc),
        (
            8888,
            "tcp",
            "TCP",
            Some("kubernetes.io/h2c"),
            Protocol::Http2,
        ),
        (8888, "tcp", "TCP", Some("kubernetes.io/ws"), Protocol::Http),
        (
            8888,
            "tcp",
            "TCP",
            Some("kubernetes.io/wss"),
            Protocol::Https,
        ),
        (
            8888,
            "http",
            "TCP",
            Some("example.com/custom"),
            Protocol::Unsupported,
        ),
        // UDP wins over everything.
        (8888, "http", "UDP", Some("http"), Protocol::Udp),
    ];
    for (port, name, l4, app, want) in cases {
        assert_eq!(
            convert_protocol(*port, name, l4, *app),
            *want,
            "{port} {name} {l4} {app:?}"
        );
    }
}

/// `conversion.go` `ConvertService`: VIPs, headless is Passthrough,
/// ExternalName is Alias, exportTo from the annotation.
#[test]
fn service_resolution_and_vips() {
    let s = service(
        &spec(json!({"clusterIP": "10.0.0.1", "ports": [
                {"name": "http-web", "port": 80, "targetPort": 8080},
                {"port": 0}, {"name": "dns", "port": 53, "protocol": "UDP"}]})),
        &BTreeMap::new(),
    );
    assert_eq!(s.resolution, Resolution::ClientSideLb);
    assert_eq!(s.vips, ["10.0.0.1"]);
    assert_eq!(s.ports.len(), 2, "port 0 dropped");
    assert_eq!(s.ports[0].protocol, Protocol::Http);
    assert_eq!(s.ports[1].protocol, Protocol::Udp);

    let dual = service(
        &spec(json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "fd00::1"]})),
        &BTreeMap::new(),
    );
    assert_eq!(dual.vips, ["10.0.0.1", "fd00::1"]);

    let headless = service(&spec(json!({"clusterIP": "None"})), &BTreeMap::new());
    assert_eq!(headless.resolution, Resolution::Passthrough);
    assert!(headless.vips.is_empty());

    let ext = service(
        &spec(json!({"type": "ExternalName", "externalName": "Backend.Example.com."})),
        &BTreeMap::from([(EXPORT_TO_ANNOTATION.into(), ". , other".into())]),
    );
    assert_eq!(
        ext.resolution,
        Resolution::Alias("backend.example.com".into())
    );
    assert_eq!(ext.export_to, [".", "other"]);
    // ExternalName without a name stays a plain Service, as in Istio.
    let bare = service(&spec(json!({"type": "ExternalName"})), &BTreeMap::new());
    assert_eq!(bare.resolution, Resolution::ClientSideLb);
}

fn slice_spec(v: serde_json::Value) -> EndpointSliceSpec {
    serde_json::from_value(v).unwrap()
}

/// `controller/endpointslice.go`: owner label, MCS and FQDN slices
/// ignored, `endpointHealthStatus`.
#[test]
fn slices_as_istio_reads_them() {
    let owned = BTreeMap::from([(SERVICE_NAME_LABEL.to_string(), "reviews".to_string())]);
    let s = slice_spec(json!({
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 9080}, {"name": "nope"}],
        "endpoints": [
            {"addresses": ["10.1.0.1"], "targetRef": {"kind": "Pod", "name": "r1"}, "nodeName": "n1"},
            {"addresses": ["10.1.0.2"], "conditions": {"ready": true, "terminating": true}},
            {"addresses": ["10.1.0.3"], "conditions": {"ready": false, "terminating": false}},
            {"addresses": ["10.1.0.4"], "conditions": {"ready": false, "terminating": true}},
            {"addresses": ["10.1.0.5"], "conditions": {"ready": false}}
        ]
    }));
    let got = slice("default", &owned, &s).unwrap();
    assert_eq!(got.service, "reviews");
    assert_eq!(got.ports, [("http".to_string(), 9080)]);
    let health: Vec<Health> = got.endpoints.iter().map(|e| e.health).collect();
    assert_eq!(
        health,
        [
            Health::Ready,
            Health::Ready,
            Health::NotReady,
            Health::Terminating,
            Health::Terminating
        ]
    );
    assert_eq!(
        got.endpoints[0].pod,
        Some(("default".to_string(), "r1".to_string()))
    );
    assert_eq!(got.endpoints[0].node.as_deref(), Some("n1"));

    let mut mcs = owned.clone();
    mcs.insert(MCS_SERVICE_NAME_LABEL.into(), "reviews".into());
    assert!(slice("default", &mcs, &s).is_none());
    assert!(slice("default", &BTreeMap::new(), &s).is_none());
    let fqdn =
        slice_spec(json!({"addressType": "FQDN", "endpoints": [{"addresses": ["a.example"]}]}));
    assert!(slice("default", &owned, &fqdn).is_none());
}

/// `controller.go` `getPodLocality` and `proxy.go` `GetLocalityLabel`;
/// `label.go` `AugmentLabels`.
#[test]
fn locality_and_topology_labels() {
    let node = BTreeMap::from([
        (LABEL_REGION.to_string(), "us-east".to_string()),
        (LABEL_ZONE_BETA.to_string(), "us-east-1a".to_string()),
    ]);
    assert_eq!(node_locality(&node), "us-east/us-east-1a/");
    assert_eq!(node_locality(&BTreeMap::new()), "");
    let pod = BTreeMap::from([(LABEL_LOCALITY_OLD.to_string(), "r.z.s".to_string())]);
    assert_eq!(pod_locality(&pod).as_deref(), Some("r/z/s"));
    let pod = BTreeMap::from([
        (LABEL_LOCALITY.to_string(), "r/z".to_string()),
        (LABEL_LOCALITY_OLD.to_string(), "x.y".to_string()),
    ]);
    assert_eq!(pod_locality(&pod).as_deref(), Some("r/z"));
    let labels = augment_labels(
        &BTreeMap::from([("app".to_string(), "a".to_string())]),
        "r/z",
        Some("n1"),
    );
    assert_eq!(labels[LABEL_REGION], "r");
    assert_eq!(labels[LABEL_ZONE], "z");
    assert!(!labels.contains_key(LABEL_SUBZONE));
    assert_eq!(labels[LABEL_HOSTNAME], "n1");
    assert_eq!(labels["app"], "a");
}
