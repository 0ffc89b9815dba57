//! Route selection and config compile at scale (issue #6): selection cost must
//! not depend on the number of hosts; compiling 10,000 services must be fast.
//! Run with `cargo bench --bench route_select`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use strait::compile::{ProxyIdentity, Snapshot, compile};
use strait::header_list::HeaderList;
use strait::load::{LoadOptions, load_str};
use strait::route::RequestView;

#[path = "support/scale_config.rs"]
mod scale_config;
use scale_config::config;

fn snapshot(n: usize) -> Snapshot {
    let cfg = load_str(
        &config(n),
        "bench.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    assert!(cfg.problems.is_empty() && cfg.load_errors.is_empty());
    compile(&cfg, &ProxyIdentity::default())
}

fn select(c: &mut Criterion) {
    let headers = HeaderList::new();
    for n in [10usize, 10_000] {
        let snap = snapshot(n);
        let authority = format!("svc{}:80", n / 2);
        c.bench_function(&format!("select_split_route_{n}_hosts"), |b| {
            b.iter(|| {
                let view = RequestView {
                    method: "GET",
                    scheme: "http",
                    authority: black_box(&authority),
                    path: black_box("/reviews/1"),
                    query: None,
                    headers: &headers,
                };
                let vh = snap.routes.vhost(view.authority).expect("vhost");
                black_box(vh.select(&view).expect("route"));
            })
        });
    }
}

fn compile_10k(c: &mut Criterion) {
    let text = config(10_000);
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("load_and_compile_10000_services", |b| {
        b.iter(|| {
            let cfg = load_str(
                black_box(&text),
                "bench.yaml",
                &LoadOptions {
                    namespace: Some("default".into()),
                    ..Default::default()
                },
            );
            black_box(compile(&cfg, &ProxyIdentity::default()));
        })
    });
    g.finish();
}

criterion_group!(benches, select, compile_10k);
criterion_main!(benches);
