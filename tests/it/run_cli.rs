//! `strait run` as an operator runs it: startup line, readiness, refusing an
//! invalid config, and SIGTERM draining in-flight requests before exiting 0.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;

/// Start `strait run` on ephemeral ports; returns the child and its listen
/// and admin addresses (read from its startup line).
fn start(config: &std::path::Path) -> (Child, SocketAddr, SocketAddr) {
    start_with(config, &[])
}

/// [`start`] with more `strait run` arguments.
fn start_with(config: &std::path::Path, extra: &[&str]) -> (Child, SocketAddr, SocketAddr) {
    let (child, listen, admin, _) = start_logged(config, extra);
    (child, listen, admin)
}

/// [`start_with`], also returning what strait wrote before its startup line.
fn start_logged(
    config: &std::path::Path,
    extra: &[&str],
) -> (Child, SocketAddr, SocketAddr, Vec<String>) {
    let (child, listen, admin, before, _) = start_streaming(config, extra);
    (child, listen, admin, before)
}

/// [`start_logged`], also returning the lines strait writes after its
/// startup line, as they come. Issue #14: no line carries a colour code
/// (stderr is a pipe, not a terminal).
fn start_streaming(
    config: &std::path::Path,
    extra: &[&str],
) -> (
    Child,
    SocketAddr,
    SocketAddr,
    Vec<String>,
    std::sync::mpsc::Receiver<String>,
) {
    let mut before = Vec::new();
    // `extra` may name its own --listen.
    let listen = if extra.contains(&"--listen") {
        &[][..]
    } else {
        &["--listen", "127.0.0.1:0"][..]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_strait"))
        .arg("run")
        .args(listen)
        .args(["--admin", "127.0.0.1:0", "-c"])
        .arg(config)
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("strait starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    for _ in 0..50 {
        let Some(Ok(line)) = lines.next() else { break };
        assert!(!line.contains('\x1b'), "a colour code in a pipe: {line:?}");
        if let Some(rest) = line.strip_prefix("strait: listening on ") {
            let (listen, rest) = rest.split_once(" (admin ").unwrap();
            let admin = rest.split_once(')').unwrap().0;
            // Keep draining stderr so the child never blocks on a full pipe
            // (lines nobody waits for are dropped).
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            return (
                child,
                listen.parse().unwrap(),
                admin.parse().unwrap(),
                before,
                rx,
            );
        }
        before.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no startup line from strait run: {before:?}");
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let release = Arc::new(tokio::sync::Notify::new());
    let arrived = Arc::new(tokio::sync::Notify::new());
    let (r, a) = (release.clone(), arrived.clone());
    let slow = Upstream::start(
        "slow",
        Arc::new(move |_| {
            let (r, a) = (r.clone(), a.clone());
            Box::pin(async move {
                a.notify_one();
                r.notified().await;
                Response::new(Full::new(Bytes::from("done")))
            })
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("svc.yaml"),
        service_entry(
            "slow.default.svc.cluster.local",
            80,
            "HTTP",
            &[(slow.addr, &[])],
        ),
    )
    .unwrap();
    let (mut child, listen, admin) = start(dir.path());
    assert_eq!(get(admin, "admin", "/ready").await.status, 200);

    let in_flight = tokio::spawn(async move { get(listen, "slow", "/").await });
    arrived.notified().await;
    signal(&child, "-TERM");
    // New connections are refused once the listener has stopped.
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(listen).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    release.notify_one();
    let got = in_flight.await.unwrap();
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "done"),
        "the in-flight request finished"
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Issue #14: the later of two `VirtualService default/reviews` replaces the
/// earlier, as `kubectl apply` and Istio's file store
/// (pilot/pkg/config/file/store.go) do; `run` says so at start, routes by
/// the later one, and `/config_dump` shows both with their files and which
/// one is active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_resource_with_the_same_name_replaces_the_earlier_loudly() {
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0-services.yaml"),
        service_entry(
            "reviews.default.svc.cluster.local",
            9080,
            "HTTP",
            &[
                (v1.addr, &[("version", "v1")]),
                (v2.addr, &[("version", "v2")]),
            ],
        ) + "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
",
    )
    .unwrap();
    let vs = |subset: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews, subset: {subset}}}}}]\n"
        )
    };
    let first = dir.path().join("1-all-v1.yaml");
    let second = dir.path().join("2-all-v2.yaml");
    std::fs::write(&first, vs("v1")).unwrap();
    std::fs::write(&second, vs("v2")).unwrap();
    let (mut child, listen, admin, logged) = start_logged(dir.path(), &[]);
    let warning = logged
        .iter()
        .find(|l| l.contains("VirtualService default/reviews is defined twice"))
        .unwrap_or_else(|| panic!("a warning at start: {logged:?}"));
    // A tracing line, the kind that was coloured in a pipe (checked by
    // `start_streaming`).
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(
        warning.contains(&format!(
            "the one in {}:1 replaces the one in {}:1",
            second.display(),
            first.display()
        )),
        "{warning}"
    );
    for _ in 0..3 {
        assert_eq!(get(listen, "reviews:9080", "/").await.text(), "v2");
    }
    let dump: serde_json::Value =
        serde_json::from_str(&get(admin, "admin", "/config_dump").await.text()).unwrap();
    let vss: Vec<&serde_json::Value> = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "VirtualService")
        .collect();
    assert_eq!(vss.len(), 2, "{dump}");
    assert_eq!(vss[0]["active"], true);
    assert_eq!(vss[0]["source"], format!("{}:1", second.display()));
    assert_eq!(vss[1]["active"], false);
    assert_eq!(vss[1]["source"], format!("{}:1", first.display()));
    assert_eq!(vss[1]["replacedBy"], format!("{}:1", second.display()));
    signal(&child, "-TERM");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Issue #14: a reload behaves as the start does, loudly: a second
/// `VirtualService default/reviews` added to the directory replaces the
/// first (routing follows it) and is said, and an Error-level analyzer
/// message (IST0101, a route to an undeclared subset) is said on the
/// reload though it does not block it, as in istiod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_says_what_a_start_says() {
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0-services.yaml"),
        service_entry(
            "reviews.default.svc.cluster.local",
            9080,
            "HTTP",
            &[
                (v1.addr, &[("version", "v1")]),
                (v2.addr, &[("version", "v2")]),
            ],
        ) + "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
",
    )
    .unwrap();
    let first = dir.path().join("1-all-v1.yaml");
    std::fs::write(
        &first,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v1}}]\n",
    )
    .unwrap();
    let (mut child, listen, _admin, logged, rx) = start_streaming(dir.path(), &[]);
    assert!(
        !logged
            .iter()
            .any(|l| l.contains("defined twice") || l.contains("IST0101")),
        "{logged:?}"
    );
    assert_eq!(get(listen, "reviews:9080", "/").await.text(), "v1");
    let second = dir.path().join("2-jason.yaml");
    std::fs::write(
        &second,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - match: [{headers: {end-user: {exact: jason}}}]\n    route: [{destination: {host: reviews, subset: v9}}]\n  - route: [{destination: {host: reviews, subset: v2}}]\n",
    )
    .unwrap();
    signal(&child, "-HUP");
    let mut reloaded = false;
    for _ in 0..500 {
        if get(listen, "reviews:9080", "/").await.text() == "v2" {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(reloaded, "the later VirtualService serves after the reload");
    let replaced = format!(
        "VirtualService default/reviews is defined twice: the one in {}:1 replaces the one in {}:1",
        second.display(),
        first.display()
    );
    let (mut said_replaced, mut said_ist0101) = (false, false);
    let mut seen = Vec::new();
    while !(said_replaced && said_ist0101) {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) else {
            break;
        };
        assert!(!line.contains('\x1b'), "a colour code in a pipe: {line:?}");
        said_replaced |= line.contains(&replaced);
        said_ist0101 |= line.contains("Error [IST0101] (VirtualService default/reviews");
        seen.push(line);
    }
    assert!(said_replaced, "{replaced:?} in {seen:#?}");
    assert!(said_ist0101, "IST0101 in {seen:#?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Issue #14: `run` says what it loaded and what it ignored, and why; a
/// file of Kubernetes Services and Deployments (Istio's
/// platform/kube/bookinfo.yaml) is not a silent empty proxy; an
/// Error-level analyzer message (IST0101, a route to an undeclared
/// subset) is said at start though it does not block, as in istiod.
#[test]
fn run_says_what_it_loaded_ignored_and_what_will_fail() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bookinfo.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: details}\nspec:\n  ports: [{port: 9080, name: http}]\n  selector: {app: details}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: bookinfo-details}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: details-v1}\nspec:\n  template:\n    metadata: {labels: {app: details, version: v1}}\n    spec: {containers: [{name: details, image: x}]}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: details}\nspec:\n  hosts: [details]\n  http:\n  - route: [{destination: {host: details, subset: v9}}]\n",
    )
    .unwrap();
    let (mut child, _listen, _admin, logged) = start_logged(dir.path(), &[]);
    let all = logged.join("\n");
    assert!(
        all.contains("strait: loaded 1 VirtualService, 1 Service, 1 Pod/Deployment from 1 file; ignored 1 v1 ServiceAccount (kinds strait does not use)"),
        "{all}"
    );
    assert!(
        all.contains(
            "strait: warning: no service has an endpoint, so every routed request gets 503 UH"
        ),
        "{all}"
    );
    assert!(
        all.contains("Error [IST0101] (VirtualService default/details"),
        "{all}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn invalid_config_is_refused_at_startup_with_check_messages() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vs.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - timeout: 0s\n    route: [{destination: {host: r}}]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "-c",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(79));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error [IST0106] (VirtualService default/r"),
        "{err}"
    );
    assert!(err.contains("spec.http[0].timeout"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_now() {
    let up = Upstream::named("up").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("svc.yaml"),
        service_entry(
            "up.default.svc.cluster.local",
            80,
            "HTTP",
            &[(up.addr, &[])],
        ),
    )
    .unwrap();
    let (mut child, _listen, admin) = start(dir.path());
    let version = |body: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["version_info"].as_str().unwrap().to_string()
    };
    assert_eq!(
        version(&get(admin, "admin", "/config_dump").await.text()),
        "1"
    );
    signal(&child, "-HUP");
    let mut reloaded = false;
    for _ in 0..300 {
        if version(&get(admin, "admin", "/config_dump").await.text()) == "2" {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(reloaded, "SIGHUP reloads (and does not kill the proxy)");
    signal(&child, "-TERM");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn demo_shows_the_split_and_the_jason_route() {
    let _demo = crate::DEMO_PORTS.blocking_lock();
    // Issue #14: outside the checkout too (the example is built in).
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .current_dir(elsewhere.path())
        .args(["demo", "--requests", "400"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let share = |prefix: &str, version: &str| -> f64 {
        let line = text
            .lines()
            .skip_while(|l| !l.starts_with(prefix))
            .take(3)
            .find(|l| l.split_whitespace().any(|w| w == version))
            .unwrap_or_else(|| panic!("{prefix} {version} in {text}"));
        line.trim_end_matches('%')
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    let v1 = share("400 anonymous", "v1");
    assert!((80.0..=97.0).contains(&v1), "about 90% v1: {v1}\n{text}");
    assert_eq!(share("40 end-user: jason", "v2"), 100.0, "{text}");
}

/// `--locality` is the proxy's locality for `localityLbSetting`: with
/// outlier detection configured, traffic stays in the proxy's locality;
/// without the flag, both localities get traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locality_flag_keeps_traffic_in_the_proxy_locality() {
    let east = Upstream::named("east").await;
    let west = Upstream::named("west").await;
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.test]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: p, protocol: HTTP}]\n  endpoints:\n".to_string();
    for (addr, locality) in [(west.addr, "us-west/b"), (east.addr, "us-east/a")] {
        yaml.push_str(&format!(
            "  - {{address: {}, ports: {{p: {}}}, locality: {locality}}}\n",
            addr.ip(),
            addr.port()
        ));
    }
    yaml.push_str("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec:\n  host: a.test\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}, outlierDetection: {consecutive5xxErrors: 5}}\n");
    std::fs::write(dir.path().join("a.yaml"), yaml).unwrap();
    for (args, want_west) in [(&["--locality", "us-east/a"][..], 0), (&[][..], 10)] {
        let (mut child, listen, admin) = start_with(dir.path(), args);
        assert_eq!(get(admin, "admin", "/ready").await.status, 200);
        let mut west_hits = 0;
        for _ in 0..20 {
            let got = get(listen, "a.test", "/").await;
            assert_eq!(got.status, 200);
            west_hits += usize::from(got.text() == "west");
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(west_hits, want_west, "{args:?}");
    }
}

#[test]
fn out_of_range_limit_flags_are_a_usage_error_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--max-request-headers-kb",
            "4",
            "-c",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-request-headers-kb 4"), "{err}");
}

/// Issue #14: an admin port in use is a clear error naming it (it was a
/// panic, exit 101), with one worker and with several.
#[test]
fn an_admin_port_in_use_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.yaml"), "").unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = held.local_addr().unwrap().to_string();
    for workers in ["1", "2"] {
        let out = Command::new(env!("CARGO_BIN_EXE_strait"))
            .args(["run", "--listen", "127.0.0.1:0", "--admin", &admin])
            .args(["--workers", workers, "-c"])
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{workers} workers: {err}");
        assert!(
            err.contains(&format!("Error: cannot listen: --admin {admin}: ")),
            "{err}"
        );
        assert!(err.contains("another process is listening on it"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Issue #14: a second proxy on an occupied `--listen` address used to
/// share it silently (SO_REUSEPORT) and split the traffic; it is refused
/// unless --reuse-port asks for sharing.
#[test]
fn an_occupied_listen_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.yaml"), "").unwrap();
    // Another process's listener, shareable as a second strait's would be.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(16).unwrap();
    let listen = socket
        .local_addr()
        .unwrap()
        .as_socket()
        .unwrap()
        .to_string();
    for workers in ["1", "2"] {
        let out = Command::new(env!("CARGO_BIN_EXE_strait"))
            .args(["run", "--listen", &listen, "--admin", "127.0.0.1:0"])
            .args(["--workers", workers, "-c"])
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{workers} workers: {err}");
        assert!(
            err.contains(&format!(
                "--listen {listen}: another process is listening on it"
            )),
            "{err}"
        );
        assert!(err.contains("--reuse-port"), "{err}");
    }
    // Asked for explicitly, it shares.
    let (mut child, got, _admin) = start_with(dir.path(), &["--reuse-port", "--listen", &listen]);
    assert_eq!(got.to_string(), listen);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Every usage error exits 64 (`EX_USAGE`, as istioctl), `--workers 0` too.
#[test]
fn zero_workers_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--workers",
            "0",
            "-c",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--workers 0"), "{err}");
}

/// Issue #14: `run --help` said `--request-headers-timeout` closes idle
/// keep-alive connections; it times request heads only (Envoy's
/// `request_headers_timeout`; the behaviour is pinned in
/// tests/hardening_downstream.rs), and says so.
#[test]
fn request_headers_timeout_help_says_what_it_does() {
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    // The option's line and its description, up to the next option.
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--request-headers-timeout"));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("--request-headers-timeout in {help}"));
    let rest = lines.take_while(|l| !l.trim_start().starts_with('-'));
    let flag = std::iter::once(first)
        .chain(rest)
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        flag.contains(
            "a keep-alive connection waiting for its next request is timed by --idle-timeout only"
        ),
        "{flag}"
    );
}
