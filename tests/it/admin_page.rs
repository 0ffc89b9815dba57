//! The admin listener's live page in a real browser (headless Chromium):
//! a 90/10 split, a failing subset whose host outlier detection ejects,
//! and what a person sees once the page's script has refreshed it. Also
//! the page without a browser: the explain form and `/page.json`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

fn config(v1: SocketAddr, v2: SocketAddr) -> String {
    service_entry(
        "reviews.default.svc.cluster.local",
        9080,
        "HTTP",
        &[(v1, &[("version", "v1")]), (v2, &[("version", "v2")])],
    ) + "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 10m, maxEjectionPercent: 100}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: split
    route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
"
}

async fn admin_get(admin: SocketAddr, path: &str) -> Got {
    send(&h1_client(), admin, "GET", "admin", path, &[], "").await
}

/// The text of the element with `id` in a DOM dump (ids are generated,
/// so they need no escaping).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let open = format!("id=\"{id}\"");
    let Some(at) = dom.find(&open) else {
        panic!("no element {id} in the page");
    };
    let rest = &dom[at..];
    let start = rest.find('>').map_or(0, |i| i + 1);
    let end = rest[start..].find('<').map_or(rest.len(), |i| start + i);
    &rest[start..end]
}

/// The page's `<article>` of the cluster named `name`.
fn cluster_article<'a>(dom: &'a str, name: &str) -> &'a str {
    let h = format!("<h3>{name}</h3>");
    let at = dom.find(&h).unwrap_or_else(|| panic!("no cluster {name}"));
    let rest = &dom[at..];
    &rest[..rest.find("</article>").unwrap_or(rest.len())]
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRAIT_CHROMIUM") {
        return Some(p.into());
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Run headless Chromium on `url` with `extra` flags; its stdout.
async fn browse(chromium: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url)
    .kill_on_drop(true)
    .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finishes within 90 s")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Send `n` requests through the split route.
async fn traffic(proxy: SocketAddr, n: usize) {
    let client = h1_client();
    for _ in 0..n {
        send(&client, proxy, "GET", "reviews:9080", "/r", &[], "").await;
    }
}

/// Wait (bounded) until the sampler has seen `n` requests on the split.
async fn sampled(admin: SocketAddr, n: u64) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let j: serde_json::Value =
            serde_json::from_str(&admin_get(admin, "/page.json").await.text()).unwrap();
        let picks = |id: &str| {
            j["text"][id]
                .as_str()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if picks("m0-1-0.picks") + picks("m0-1-1.picks") >= n {
            return j;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sampler did not see {n} requests: {j}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a person sees: the split near 90/10, v2 failing with its flags,
/// v2's host ejected by outlier detection, the script refreshing the
/// figures. Saves `target/page.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_shows_the_split_the_failing_subset_and_the_ejected_host() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED: no headless Chromium (/usr/bin/chromium; set STRAIT_CHROMIUM to another path). \
             Debian: apt-get install chromium — .ci/run installs it, so CI runs this test."
        );
        return;
    };
    let v1 = Upstream::named("v1").await;
    let v2 = dead_addr().await;
    let proxy = Proxy::start(&config(v1.addr, v2)).await;
    let admin = proxy.running.admin;
    traffic(proxy.addr(), 400).await;
    sampled(admin, 400).await;

    let url = format!("http://{admin}/");
    let dom = browse(
        &chromium,
        &url,
        &["--virtual-time-budget=4000", "--dump-dom"],
    )
    .await;
    assert!(
        dom.contains("data-live=\"1\""),
        "the page's script refreshed the figures"
    );
    assert!(dom.contains("VirtualService default/reviews"));
    let pct = |id: &str| -> f64 {
        text_of(&dom, id)
            .trim_end_matches('%')
            .parse()
            .unwrap_or_else(|_| panic!("{id}: {:?}", text_of(&dom, id)))
    };
    // 400 requests at 10 %: one standard deviation is 1.5 points.
    let (v1_share, v2_share) = (pct("m0-1-0.share"), pct("m0-1-1.share"));
    assert!((84.0..=96.0).contains(&v1_share), "v1 observed {v1_share}%");
    assert!((v1_share + v2_share - 100.0).abs() < 0.2);
    // v2 fails every request: connect failures (UF, retried to URX), then
    // UH once outlier detection has ejected its only host.
    assert_eq!(text_of(&dom, "m0-1-1.err"), "100.0%");
    let flags = text_of(&dom, "m0-1-1.flags");
    assert!(flags.contains("UH"), "v2 flags: {flags}");
    assert!(flags.contains("UF"), "v2 flags: {flags}");
    assert_eq!(text_of(&dom, "m0-1-0.err"), "0.0%");
    let v2_cluster = cluster_article(&dom, "outbound|9080|v2|reviews.default.svc.cluster.local");
    assert!(v2_cluster.contains(">ejected<"), "{v2_cluster}");
    assert!(v2_cluster.contains("CONSECUTIVE_5XX"), "{v2_cluster}");
    assert!(v2_cluster.contains(&v2.to_string()), "{v2_cluster}");
    let v1_cluster = cluster_article(&dom, "outbound|9080|v1|reviews.default.svc.cluster.local");
    assert!(v1_cluster.contains(">healthy<") && !v1_cluster.contains(">ejected<"));

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/page.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &chromium,
        &url,
        &[
            "--virtual-time-budget=2000",
            "--window-size=1280,1100",
            &format!("--screenshot={}", shot.display()),
        ],
    )
    .await;
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "a screenshot at {}",
        shot.display()
    );
}

/// The explain form answers on the live configuration, escaped; the JSON
/// figures agree with the traffic.
#[tokio::test]
async fn the_page_explains_a_request_and_serves_its_figures() {
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let proxy = Proxy::start(&config(v1.addr, v2.addr)).await;
    let admin = proxy.running.admin;
    let page = admin_get(
        admin,
        "/?url=http%3A%2F%2Freviews%3A9080%2Fr&method=GET&headers=end-user%3A+jason%0D%0Ax-evil%3A+%3Cscript%3E",
    )
    .await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    let explained = &html[html.find("id=\"explained\"").expect("an explain answer")..];
    assert!(explained.contains("jason"), "{explained}");
    assert!(explained.contains("outbound|9080|v1|reviews.default.svc.cluster.local"));
    assert!(explained.contains("Live endpoints of"), "{explained}");
    // The header typed into the form comes back escaped, never as markup.
    assert_eq!(
        html.matches("<script>").count(),
        1,
        "only the page's own script"
    );
    assert!(html.contains("x-evil: &lt;script&gt;"));
    let bad = admin_get(admin, "/?url=http%3A%2F%2Freviews%2F%3Cscript%3E").await;
    let bad = bad.text();
    assert!(bad.contains("class=\"bad\">invalid URL"), "{bad}");
    assert_eq!(bad.matches("<script>").count(), 1);

    traffic(proxy.addr(), 20).await;
    let j = sampled(admin, 20).await;
    assert_eq!(j["text"]["m0-1-0.err"], "0.0%");
    assert!(v1.hits() + v2.hits() == 20);
    let empty = admin_get(admin, "/?url=").await;
    assert_eq!(empty.status, 200, "an empty form is just the page");
    assert!(!empty.text().contains("id=\"explained\""));
    let post = send(&h1_client(), admin, "POST", "admin", "/", &[], "").await;
    assert_eq!(post.status, 405);
}

/// `strait demo --serve`: prints the page's address, keeps traffic flowing
/// (the split's counts grow from one look to the next, v2's hang-ups show
/// as UC), and exits 0 on SIGTERM.
#[tokio::test]
async fn demo_serve_keeps_traffic_flowing_until_sigterm() {
    use std::io::BufRead;
    let _demo = crate::DEMO_PORTS.lock().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "demo",
            "--requests",
            "50",
            "--serve",
            "--admin",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("strait demo starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut admin = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if let Some(rest) = line.split_once("the live page is at http://") {
            admin = rest
                .1
                .split_once('/')
                .map(|(a, _)| a.parse::<SocketAddr>().unwrap());
            break;
        }
    }
    let Some(admin) = admin else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no page address from strait demo --serve");
    };
    let picks = |j: &serde_json::Value| -> u64 {
        ["m0-1-0.picks", "m0-1-1.picks"]
            .iter()
            .filter_map(|id| j["text"][id].as_str()?.parse::<u64>().ok())
            .sum()
    };
    let first = sampled(admin, 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let j: serde_json::Value =
            serde_json::from_str(&admin_get(admin, "/page.json").await.text()).unwrap();
        let v2_flags = j["text"]["m0-1-1.flags"].as_str().unwrap_or("").to_string();
        if picks(&j) > picks(&first) && v2_flags.contains("UC") {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no new traffic or no UC on v2 within 30 s: {j}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let html = admin_get(admin, "/").await.text();
    assert!(html.contains("VirtualService default/reviews"));
    assert!(
        html.contains("sources: examples/bookinfo"),
        "the demo records its config"
    );
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strait demo --serve did not exit on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}

/// On a gateway the page lists each Gateway listener with its servers and,
/// for an HTTP port, its bound routes with their observed shares.
#[tokio::test]
async fn the_page_lists_gateway_listeners_and_their_routes() {
    let web = Upstream::named("web").await;
    let yaml = service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])])
        + "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*.example.com']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web.example.com]
  gateways: [istio-system/ingress]
  http:
  - name: to-web
    route: [{destination: {host: web.internal}}]
";
    let gw = GatewayProxy::start(&yaml, &[("istio", "ingressgateway")]).await;
    let admin = gw.proxy.running.admin;
    for _ in 0..3 {
        assert_eq!(get(gw.port(80), "web.example.com", "/").await.status, 200);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let html = loop {
        let html = admin_get(admin, "/").await.text();
        if html.contains("id=\"g80v0-0-0.picks\" class=\"n\">3<") {
            break html;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway route's 3 requests never showed: {html}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gateways = &html[html
        .find("<h2>Gateway listeners</h2>")
        .expect("a gateway section")..];
    assert!(gateways.contains("port 80"), "{gateways}");
    assert!(gateways.contains("istio-system/ingress servers[0]: *.example.com"));
    assert!(gateways.contains("VirtualService default/web"));
    assert!(gateways.contains("to-web"));
}
