use super::*;
use crate::analyze::MeshConfig;
use crate::load::{LoadOptions, load_str};

fn run(a: &dyn Analyzer, yaml: &str) -> Vec<String> {
    let config = load_str(
        yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    let mesh = MeshConfig::default();
    let ctx = Context::new(&config, &mesh);
    let mut out = Vec::new();
    a.analyze(&ctx, &mut out);
    out.iter().map(|m| m.to_string()).collect()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: gw, namespace: istio-system}\nspec:\n  selector: {istio: ingressgateway}\n  ports: [{port: 80, targetPort: 8080, protocol: TCP}]\n---\n";

fn gateway(name: &str, port: u32, host: &str, tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {port}, name: p, protocol: HTTPS}}\n    hosts: ['{host}']\n{tls}---\n"
    )
}

#[test]
fn gateway_without_workload_is_reported() {
    let out = run(
        &IngressGatewayPortAnalyzer,
        &gateway("g", 80, "*", "").replace("ingressgateway", "nothing"),
    );
    assert_eq!(
            out,
            vec!["Error [IST0101] (Gateway default/g t.yaml:5) Referenced selector not found: \"istio=nothing\"".to_string()]
        );
}

#[test]
fn gateway_port_must_be_service_or_target_port() {
    let yaml = format!(
        "{POD}{}{}{}",
        gateway("a", 80, "*", ""),
        gateway("b", 8080, "*", ""),
        gateway("c", 9000, "*", "")
    );
    let out = run(&IngressGatewayPortAnalyzer, &yaml);
    assert_eq!(
            out,
            vec!["Warning [IST0162] (Gateway default/c t.yaml:34) The gateway is listening on a target port (port 9000) that is not defined in the Service associated with its workload instances (Pod selector istio=ingressgateway). If you need to access the gateway port through the gateway Service, it will not be available.".to_string()]
        );
}

#[test]
fn same_host_and_port_conflicts() {
    let yaml = format!(
        "{POD}{}{}{}",
        gateway("a", 443, "x.example.com", ""),
        gateway("b", 443, "x.example.com", ""),
        gateway("c", 443, "y.example.com", "")
    );
    let out = run(&ConflictingGatewayAnalyzer, &yaml);
    assert_eq!(
            out,
            vec![
                "Error [IST0145] (Gateway default/a t.yaml:18) Conflict with gateways default/b (workload selector istio=ingressgateway, port 443, hosts x.example.com).".to_string(),
                "Error [IST0145] (Gateway default/b t.yaml:27) Conflict with gateways default/a (workload selector istio=ingressgateway, port 443, hosts x.example.com).".to_string(),
            ]
        );
}

#[test]
fn shared_credential_is_a_duplicate_certificate() {
    let tls = "    tls: {mode: SIMPLE, credentialName: cred}\n";
    let yaml = format!(
        "{}{}",
        gateway("a", 443, "a.example.com", tls),
        gateway("b", 443, "b.example.com", tls)
    );
    let out = run(&CertificateAnalyzer, &yaml);
    assert_eq!(
            out,
            vec![
                "Warning [IST0138] (Gateway default/a t.yaml:3) Duplicate certificate in multiple gateways [default/a default/b] may cause 404s if clients re-use HTTP2 connections.".to_string(),
                "Warning [IST0138] (Gateway default/b t.yaml:13) Duplicate certificate in multiple gateways [default/b default/a] may cause 404s if clients re-use HTTP2 connections.".to_string(),
            ]
        );
}

#[test]
fn missing_and_invalid_credentials() {
    let yaml = format!(
        "{POD}apiVersion: v1\nkind: Secret\nmetadata: {{name: bad, namespace: istio-system}}\ntype: kubernetes.io/tls\ndata: {{tls.crt: aHVzaAo=, tls.key: aHVzaAo=}}\n---\n{}{}",
        gateway(
            "a",
            443,
            "a",
            "    tls: {mode: SIMPLE, credentialName: missing}\n"
        ),
        gateway(
            "b",
            443,
            "b",
            "    tls: {mode: SIMPLE, credentialName: bad}\n"
        )
    );
    let out = run(&SecretAnalyzer, &yaml);
    assert_eq!(
            out,
            vec![
                "Error [IST0101] (Gateway default/a t.yaml:26) Referenced credentialName not found: \"missing\"".to_string(),
                "Error [IST0161] (Gateway default/b t.yaml:36) The credential referenced by the Gateway b in namespace istio-system is invalid, which can cause the traffic not to work as expected.".to_string(),
            ]
        );
}

/// Self-signed P-256 certificate for ok.example.com, valid for 100 years.
const VALID_CERT_B64: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJpVENDQVMrZ0F3SUJBZ0lVRldZMGs4LzUyQ3JlRmVhcU5ua2Q5K3VhVHlrd0NnWUlLb1pJemowRUF3SXcKR1RFWE1CVUdBMVVFQXd3T2Iyc3VaWGhoYlhCc1pTNWpiMjB3SUJjTk1qWXhNVEkzTVRNMU1ESXhXaGdQTWpFeQpOakV4TURNeE16VXdNakZhTUJreEZ6QVZCZ05WQkFNTURtOXJMbVY0WVcxd2JHVXVZMjl0TUZrd0V3WUhLb1pJCnpqMENBUVlJS29aSXpqMERBUWNEUWdBRWN1MVBoRHl2RWUvby9UMStxVTgyT0FGSGwwQWZsbVl1cnZxT3oveDQKN0VGQkc4ZDA1Vkw0MU4wdk1Kbm9jYUhNaXZjYnJxM2IxMXByU1lZMnZJYWt6S05UTUZFd0hRWURWUjBPQkJZRQpGT3IwbE9yNlh3eEhnKy9GQmF5cS85VTBHd0EwTUI4R0ExVWRJd1FZTUJhQUZPcjBsT3I2WHd4SGcrL0ZCYXlxCi85VTBHd0EwTUE4R0ExVWRFd0VCL3dRRk1BTUJBZjh3Q2dZSUtvWkl6ajBFQXdJRFNBQXdSUUloQU1jYjM0aWkKeGFPYTljdFQyNTV5a2UyanhHMzNpMHBjdTJiY2JqSkxYR0lMQWlCS1c0OWw0MUhBOGh6WXJoS1lHdDRpWWVSbApRTW9sTnVta3FnTi9ONGxJeUE9PQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==";
const VALID_KEY_B64: &str = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEJHMHdhd0lCQVFRZ3NhK0FCL3Y2V1ZkRDh3Z2QKRXVrbXFNNThQZHZheUF1UTdIbTd5OGdvTTZ5aFJBTkNBQVJ5N1UrRVBLOFI3K2o5UFg2cFR6WTRBVWVYUUIrVwpaaTZ1K283UC9IanNRVUVieDNUbFV2alUzUzh3bWVoeG9jeUs5eHV1cmR2WFdtdEpoamE4aHFUTQotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==";

#[test]
fn valid_certificate_in_either_key_layout_is_accepted() {
    let mut s = SecretSpec::default();
    s.data.insert("tls.crt".into(), VALID_CERT_B64.into());
    s.data.insert("tls.key".into(), VALID_KEY_B64.into());
    assert!(is_valid_secret(&s));
    let mut generic = SecretSpec::default();
    generic.data.insert("cert".into(), VALID_CERT_B64.into());
    generic.data.insert("key".into(), VALID_KEY_B64.into());
    assert!(is_valid_secret(&generic));
    // A certificate without its key is not a usable credential.
    let mut no_key = SecretSpec::default();
    no_key.data.insert("tls.crt".into(), VALID_CERT_B64.into());
    assert!(!is_valid_secret(&no_key));
}

#[test]
fn certificate_validation_rejects_garbage_without_panicking() {
    assert!(!validate_certificate(b""));
    assert!(!validate_certificate(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    ));
    assert!(!validate_certificate(b"-----BEGIN CERTIFICATE-----\n!!!\n"));
    assert!(!is_valid_secret(&SecretSpec::default()));
}
