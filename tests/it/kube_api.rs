//! The fake Kubernetes API server (`support/kube_api.rs`) against the
//! contract in the Kubernetes API concepts documentation, and against the
//! reference client, kubectl, where it is installed.

#[path = "../support/kube_api.rs"]
pub(crate) mod fake_api;

use std::io::BufReader;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use fake_api::FakeApi;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

fn pod(name: &str, ns: &str, version: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "labels": {"app": "reviews", "version": version}},
           "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}})
}

fn service(name: &str, ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "http", "port": 80}]}})
}

fn virtual_service(name: &str) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"hosts": [name], "http": [{"route": [{"destination": {"host": name}}]}]}})
}

async fn get(api: &FakeApi, path_and_query: &str, accept: &str) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = http::Request::get(format!("{}{path_and_query}", api.url()))
        .header("accept", accept)
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.expect("fake answers");
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&body).expect("JSON"))
}

/// A watch's lines until it ends or `n` arrived (bounded by a timeout).
async fn watch_lines(api: &FakeApi, path_and_query: &str, n: usize) -> (Vec<Value>, bool) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = http::Request::get(format!("{}{path_and_query}", api.url()))
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.expect("fake answers");
    assert_eq!(resp.status(), 200, "watch errors come in the stream");
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut failed = false;
    let read = async {
        while out.len() < n {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Some(d) = f.data_ref() {
                        buf.extend_from_slice(d);
                    }
                    while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        out.push(serde_json::from_slice(&line).expect("one JSON event per line"));
                    }
                }
                Some(Err(_)) => {
                    failed = true;
                    break;
                }
                None => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("watch lines within 10 s");
    (out, failed || !buf.is_empty())
}

#[tokio::test]
async fn list_pages_with_limit_and_continue_at_one_version() {
    let api = FakeApi::start().await;
    for i in 0..5 {
        api.apply(pod(&format!("p{i}"), "default", "v1"));
    }
    api.apply(pod("q", "other", "v1"));
    let (code, first) = get(&api, "/api/v1/pods?limit=2", "application/json").await;
    assert_eq!(code, 200);
    assert_eq!(first["kind"], "PodList");
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut names = Vec::new();
    let mut page = first;
    loop {
        for i in page["items"].as_array().unwrap() {
            names.push(i["metadata"]["name"].as_str().unwrap().to_string());
        }
        let Some(c) = page["metadata"]["continue"].as_str() else {
            break;
        };
        let (_, next) = get(&api, &format!("/api/v1/pods?limit=2&continue={c}"), "").await;
        assert_eq!(next["metadata"]["resourceVersion"], rv.as_str());
        page = next;
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "q"]);
    let (_, ns) = get(
        &api,
        "/api/v1/namespaces/other/pods?resourceVersion=0&resourceVersionMatch=NotOlderThan",
        "",
    )
    .await;
    assert_eq!(ns["items"].as_array().unwrap().len(), 1);
    let (_, sel) = get(&api, "/api/v1/pods?labelSelector=version%3Dv2", "").await;
    assert!(sel["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn metadata_only_lists_and_watches() {
    let api = FakeApi::start().await;
    api.apply(pod("p", "default", "v1"));
    let accept =
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    let (_, list) = get(&api, "/api/v1/pods", accept).await;
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(list["items"][0]["metadata"]["labels"]["version"], "v1");
    assert!(list["items"][0].get("spec").is_none());
    let log = api.requests();
    assert_eq!(log.last().unwrap().accept, accept);
}

#[tokio::test]
async fn watch_replays_from_a_version_with_bookmarks_and_times_out() {
    let api = FakeApi::start().await;
    let rv0 = api.apply(pod("a", "default", "v1"));
    api.apply(pod("a", "default", "v2"));
    api.apply(pod("b", "default", "v1"));
    api.apply(service("s", "default"));
    assert!(api.delete("pods", "default", "b"));
    let (events, _) = watch_lines(
        &api,
        &format!(
            "/api/v1/pods?watch=1&resourceVersion={rv0}&allowWatchBookmarks=true&timeoutSeconds=1"
        ),
        10,
    )
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // timeoutSeconds ended the stream cleanly after the replay.
    assert_eq!(kinds, ["MODIFIED", "ADDED", "DELETED"]);
    let rvs: Vec<u64> = events
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");

    // Live events and an on-demand bookmark.
    let api = std::sync::Arc::new(api);
    let rv = api.resource_version();
    let a2 = api.clone();
    let feeder = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        a2.apply(pod("c", "default", "v1"));
        a2.bookmark();
    });
    let (events, _) = watch_lines(
        &api,
        &format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&allowWatchBookmarks=true"),
        2,
    )
    .await;
    feeder.await.unwrap();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["resourceVersion"],
        api.resource_version().to_string()
    );
}

/// "410 Gone": a watch from a compacted version gets an in-stream ERROR
/// event with code 410 on an HTTP 200 response (the API concepts doc; kube-rs
/// relists only on that, see kube-rs issue #1042).
#[tokio::test]
async fn compacted_version_is_an_in_stream_410() {
    let api = FakeApi::start().await;
    let rv = api.apply(pod("a", "default", "v1"));
    api.apply(pod("a", "default", "v2"));
    api.compact();
    let (events, _) = watch_lines(
        &api,
        &format!("/api/v1/pods?watch=1&resourceVersion={rv}"),
        5,
    )
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[tokio::test]
async fn faults_list_errors_truncated_events_missing_crds() {
    let api = FakeApi::start().await;
    api.fail_lists(429, 1);
    let (code, body) = get(&api, "/api/v1/services", "").await;
    assert_eq!((code, body["code"].as_u64()), (429, Some(429)));
    api.fail_lists(500, 1);
    assert_eq!(get(&api, "/api/v1/services", "").await.0, 500);
    assert_eq!(get(&api, "/api/v1/services", "").await.0, 200);

    api.set_installed("virtualservices", false);
    assert_eq!(
        get(&api, "/apis/networking.istio.io/v1/virtualservices", "")
            .await
            .0,
        404
    );
    let (_, res) = get(&api, "/apis/networking.istio.io/v1", "").await;
    assert!(
        !res["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "virtualservices"),
        "not in discovery either"
    );

    let rv = api.resource_version();
    api.truncate_next_event();
    api.apply(pod("a", "default", "v1"));
    let (events, broken) = watch_lines(
        &api,
        &format!("/api/v1/pods?watch=1&resourceVersion={rv}"),
        5,
    )
    .await;
    assert!(
        events.is_empty() && broken,
        "half a line, then the stream breaks"
    );
}

// ---- the reference client ----

fn kubectl() -> Option<std::path::PathBuf> {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED: kubectl is not installed (not on PATH); the fake API server's wire format is checked against it only where it is"
        );
        return None;
    }
    Some("kubectl".into())
}

/// kubectl with no kubeconfig or cache of the user's.
fn kubectl_cmd(api: &FakeApi, home: &std::path::Path) -> Command {
    let mut c = Command::new("kubectl");
    c.env("HOME", home)
        .env("KUBECONFIG", home.join("none"))
        .arg("--server")
        .arg(api.url())
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .arg("--request-timeout=10s");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_services_and_istio_kinds() {
    if kubectl().is_none() {
        return;
    }
    let api = FakeApi::start().await;
    api.apply(service("reviews", "default"));
    api.apply(service("ratings", "bookinfo"));
    api.apply(virtual_service("reviews"));
    let home = tempfile::tempdir().unwrap();
    let out = kubectl_cmd(&api, home.path())
        .args(["get", "svc", "-A", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("kubectl printed JSON");
    let names: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap(),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["bookinfo/ratings", "default/reviews"]);
    assert_eq!(v["items"][0]["spec"]["ports"][0]["port"], 80);

    let out = kubectl_cmd(&api, home.path())
        .args(["get", "virtualservices.networking.istio.io", "-A"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAMESPACE", "NAME", "AGE"], "{text}");
    assert_eq!(lines[1][..2], ["default", "reviews"], "{text}");

    api.set_installed("virtualservices", false);
    let out = kubectl_cmd(&api, home.path())
        .args(["get", "virtualservices.networking.istio.io", "-A"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a CRD that is not installed is not served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_watches_pods_with_events() {
    if kubectl().is_none() {
        return;
    }
    let api = FakeApi::start().await;
    api.apply(pod("reviews-v1", "default", "v1"));
    let home = tempfile::tempdir().unwrap();
    let mut child = kubectl_cmd(&api, home.path())
        .args([
            "get",
            "pods",
            "-A",
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // kubectl prints one pretty JSON object per event; read them as a stream.
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let reader = std::thread::spawn(move || {
        let de = serde_json::Deserializer::from_reader(BufReader::new(stdout));
        for v in de.into_iter::<Value>() {
            let Ok(v) = v else { break };
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(20)))
            .unwrap_or_else(|_| panic!("kubectl printed no {what} event within 20 s"))
    };
    let added = next("ADDED");
    assert_eq!(added["type"], "ADDED");
    assert_eq!(added["object"]["metadata"]["name"], "reviews-v1");
    // Wait until kubectl's watch is open before changing anything.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !api.requests().iter().any(|r| r.is_watch()) {
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl never watched"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let watch = api.requests().into_iter().find(|r| r.is_watch()).unwrap();
    assert_eq!(watch.path, "/api/v1/pods");
    api.apply(pod("reviews-v1", "default", "v2"));
    let modified = next("MODIFIED");
    assert_eq!(modified["type"], "MODIFIED");
    assert_eq!(modified["object"]["metadata"]["labels"]["version"], "v2");
    api.delete("pods", "default", "reviews-v1");
    let deleted = next("DELETED");
    assert_eq!(deleted["type"], "DELETED");
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
}

/// WatchList (KEP-3157): `sendInitialEvents=true` gives ADDED for what
/// exists, then a BOOKMARK annotated `k8s.io/initial-events-end`.
#[tokio::test]
async fn send_initial_events_ends_with_an_annotated_bookmark() {
    let api = FakeApi::start().await;
    api.apply(pod("a", "default", "v1"));
    api.apply(pod("b", "default", "v1"));
    let (events, _) = watch_lines(
        &api,
        "/api/v1/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0&allowWatchBookmarks=true",
        3,
    )
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ADDED", "ADDED", "BOOKMARK"]);
    assert_eq!(
        events[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

/// A stalled stream sends nothing until resumed; a dropped one ends without
/// the terminating chunk (the client sees an error, not a clean end).
#[tokio::test]
async fn stalled_and_dropped_streams() {
    let api = std::sync::Arc::new(FakeApi::start().await);
    let rv = api.resource_version();
    api.stall_watches(true);
    let a2 = api.clone();
    let feeder = tokio::spawn(async move {
        // Wait for the watch to be open, then change something while stalled.
        while !a2.requests().iter().any(|r| r.is_watch()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        a2.apply(pod("a", "default", "v1"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(a2.events_sent(), 0, "nothing sent while stalled");
        a2.stall_watches(false);
        tokio::time::sleep(Duration::from_millis(100)).await;
        a2.drop_watches();
    });
    let (events, broken) = watch_lines(
        &api,
        &format!("/api/v1/pods?watch=1&resourceVersion={rv}"),
        5,
    )
    .await;
    feeder.await.unwrap();
    assert_eq!(events.len(), 1, "the event came once the stream resumed");
    assert_eq!(events[0]["type"], "ADDED");
    assert!(broken, "a dropped stream is an error to the client");
}
