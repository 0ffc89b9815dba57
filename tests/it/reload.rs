//! Hot reload under load: config rewritten many times (routes flipped, an
//! invalid file written then fixed) while clients keep sending; no request
//! fails, every valid change is observed, the invalid one never applies.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::*;

fn vs(subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\nspec:\n  hosts: [r]\n  http:\n  - name: to-{subset}\n    route: [{{destination: {{host: r, subset: {subset}}}}}]\n"
    )
}

/// Replace a file the way editors do: write a temporary file, rename it over.
fn replace(path: &Path, body: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Poll until the proxy answers with `want`, at most `bound`.
async fn until_answer(proxy: SocketAddr, want: &str, bound: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    while tokio::time::Instant::now() < deadline {
        if get(proxy, "r", "/").await.text() == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_drops_nothing_and_rejects_invalid_config() {
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("service.yaml"),
        service_entry("r.default.svc.cluster.local", 80, "HTTP", &[(v1.addr, &[("version", "v1")]), (v2.addr, &[("version", "v2")])])
            + "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n",
    )
    .unwrap();
    let vs_path = dir.path().join("vs.yaml");
    std::fs::write(&vs_path, vs("v1")).unwrap();

    let paths = vec![dir.path().to_path_buf()];
    let (config, _) = strait::pipeline::load_valid(&paths, "default").expect("valid");
    let snapshot = strait::pipeline::compile_for(&config, "default", &Default::default());
    let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = strait::proxy::start(
        snapshot,
        lo,
        lo,
        strait::proxy::access_log::AccessLog::off(),
    )
    .await
    .unwrap();
    running.shared.record_config(
        Arc::new(config),
        String::new(),
        paths.iter().map(|p| p.display().to_string()).collect(),
    );
    let reloader = Arc::new(strait::reload::Reloader::new(
        strait::source::file::FileSource::new(paths.clone()),
        "default",
        Default::default(),
        running.shared.clone(),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    reloader.clone().spawn(stop_rx);
    let proxy = running.listen;
    assert!(until_answer(proxy, "v1", Duration::from_secs(5)).await);

    // Clients: every response must be a 200 from v1 or v2.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let client = h1_client();
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let got = send(&client, proxy, "GET", "r", "/", &[], "").await;
                if got.status == 200 && (got.text() == "v1" || got.text() == "v2") {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // Flip the route back and forth; each change is observed.
    for i in 0..6 {
        let want = if i % 2 == 0 { "v2" } else { "v1" };
        replace(&vs_path, &vs(want));
        assert!(
            until_answer(proxy, want, Duration::from_secs(5)).await,
            "change {i} to {want} observed"
        );
    }
    // Now on v1. An invalid change is rejected whole and v1 keeps serving.
    let version_before = running.shared.status.lock().unwrap().version;
    replace(
        &vs_path,
        &vs("v2").replace("route: [", "timeout: 0s\n    route: ["),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while running
        .shared
        .status
        .lock()
        .unwrap()
        .last_rejected
        .is_none()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = running.shared.status.lock().unwrap().clone();
    let rejected = st.last_rejected.expect("the invalid change is recorded");
    assert!(
        rejected.errors.iter().any(|e| e.contains("IST0106")),
        "{:?}",
        rejected.errors
    );
    assert_eq!(
        st.version, version_before,
        "the invalid configuration never applies"
    );
    assert_eq!(get(proxy, "r", "/").await.text(), "v1");
    // Fixed: applied.
    replace(&vs_path, &vs("v2"));
    assert!(until_answer(proxy, "v2", Duration::from_secs(5)).await);

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let _ = stop_tx.send(true);
    assert!(ok.load(Ordering::Relaxed) > 0);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed because of a reload"
    );
    running.shutdown();
}

#[tokio::test]
async fn reload_now_reports_errors_and_keeps_the_last_good_config() {
    let v1 = Upstream::named("v1").await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("all.yaml");
    std::fs::write(
        &p,
        service_entry(
            "r.default.svc.cluster.local",
            80,
            "HTTP",
            &[(v1.addr, &[("version", "v1")])],
        ),
    )
    .unwrap();
    let paths = vec![p.clone()];
    let (config, _) = strait::pipeline::load_valid(&paths, "default").expect("valid");
    let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = strait::proxy::start(
        strait::pipeline::compile_for(&config, "default", &Default::default()),
        lo,
        lo,
        strait::proxy::access_log::AccessLog::off(),
    )
    .await
    .unwrap();
    let reloader = strait::reload::Reloader::new(
        strait::source::file::FileSource::new(paths),
        "default",
        Default::default(),
        running.shared.clone(),
    );
    std::fs::write(&p, "kind: [broken").unwrap();
    let errors = reloader.reload().unwrap_err();
    assert!(errors.iter().any(|e| e.contains("all.yaml")), "{errors:?}");
    assert_eq!(get(running.listen, "r", "/").await.text(), "v1");
    running.shutdown();
}

/// Kubernetes ConfigMap volumes update by swapping a `..data` symlink; the
/// visible file is itself a symlink through it.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_style_symlink_swap_is_picked_up() {
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let dir = tempfile::tempdir().unwrap();
    let write_version = |name: &str, up: SocketAddr| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("config.yaml"),
            service_entry("r.default.svc.cluster.local", 80, "HTTP", &[(up, &[])]),
        )
        .unwrap();
    };
    write_version("..2026_01", v1.addr);
    std::os::unix::fs::symlink("..2026_01", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.yaml", dir.path().join("config.yaml")).unwrap();

    let paths = vec![dir.path().to_path_buf()];
    let (config, _) = strait::pipeline::load_valid(&paths, "default").expect("valid");
    let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = strait::proxy::start(
        strait::pipeline::compile_for(&config, "default", &Default::default()),
        lo,
        lo,
        strait::proxy::access_log::AccessLog::off(),
    )
    .await
    .unwrap();
    let reloader = Arc::new(strait::reload::Reloader::new(
        strait::source::file::FileSource::new(paths),
        "default",
        Default::default(),
        running.shared.clone(),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    reloader.spawn(stop_rx);
    assert_eq!(get(running.listen, "r", "/").await.text(), "v1");

    // The kubelet's update: a new timestamped directory, then an atomic
    // rename of a fresh symlink over `..data`.
    write_version("..2026_02", v2.addr);
    std::os::unix::fs::symlink("..2026_02", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    assert!(until_answer(running.listen, "v2", Duration::from_secs(5)).await);
    let _ = stop_tx.send(true);
    running.shutdown();
}
