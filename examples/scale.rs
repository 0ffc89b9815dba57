//! Configuration scale (issue #6) outside criterion: write the N-service
//! config for `strait run` (RSS, reload), or time each phase of what
//! `strait run` does with it, for profiling under perf or callgrind.
//!
//! `cargo run --profile dist --example scale -- write 10000 /tmp/10k.yaml`
//! `cargo run --profile dist --example scale -- phases 10000 [rounds]`
//! `cargo run --profile dist --example scale -- run /tmp/10k.yaml [reloads]`: what
//! `strait run` does at start (load, validate, compile, install) and on each
//! reload (`Reloader::reload`), without listeners: for heaptrack, which
//! sees this example's allocations (the binary's mimalloc hides them).

use std::time::Instant;

use strait::analyze::{self, Context, MeshConfig};
use strait::compile::{ProxyIdentity, compile};
use strait::load::{LoadOptions, load_str};

#[path = "../benches/support/scale_config.rs"]
mod scale_config;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, d: usize| {
        args.get(i)
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(d)
    };
    match args.first().map(String::as_str) {
        Some("write") => {
            let path = args.get(2).map_or("/tmp/strait-scale.yaml", String::as_str);
            if let Err(e) = std::fs::write(path, scale_config::config(n(1, 10_000))) {
                eprintln!("cannot write {path}: {e}");
                std::process::exit(1);
            }
        }
        Some("phases") => phases(n(1, 10_000), n(2, 1)),
        Some("run") => run(
            args.get(1).map_or("/tmp/strait-scale.yaml", String::as_str),
            n(2, 1),
        ),
        _ => {
            eprintln!(
                "usage: scale write N PATH | scale phases N [ROUNDS] | scale run PATH [RELOADS]"
            );
            std::process::exit(2);
        }
    }
}

fn phases(n: usize, rounds: usize) {
    let text = scale_config::config(n);
    for _ in 0..rounds {
        let t = Instant::now();
        let cfg = load_str(
            &text,
            "scale.yaml",
            &LoadOptions {
                namespace: Some("default".into()),
                ..Default::default()
            },
        );
        let load = t.elapsed();
        assert!(cfg.problems.is_empty() && cfg.load_errors.is_empty());
        // What `strait run` analyses before serving (pipeline::validate).
        let t = Instant::now();
        let mesh = MeshConfig::default();
        let names: Vec<String> = analyze::schema::ANALYZERS
            .iter()
            .map(|a| analyze::Analyzer::name(a).to_string())
            .collect();
        let msgs = analyze::run(&Context::new(&cfg, &mesh), &names).unwrap_or_default();
        let validate = t.elapsed();
        let t = Instant::now();
        let snap = compile(&cfg, &ProxyIdentity::default());
        let compiled = t.elapsed();
        // Everything `strait check` runs.
        let t = Instant::now();
        let all = analyze::run(&Context::new(&cfg, &mesh), &[]).unwrap_or_default();
        let check = t.elapsed();
        drop(snap);
        // What a reload does before the swap (schema checks ∥ compile), and
        // at start (Istio's other analyzers on a third thread as well).
        let t = Instant::now();
        let reload_build = strait::pipeline::build(cfg.clone(), &ProxyIdentity::default()).is_ok();
        let reload_built = t.elapsed();
        let t = Instant::now();
        let start_build = strait::pipeline::build_advised(cfg, &ProxyIdentity::default()).is_ok();
        let start_built = t.elapsed();
        assert!(reload_build && start_build);
        println!(
            "load {load:?}  validate {validate:?} ({} msgs)  compile {compiled:?}  all analyzers {check:?} ({} msgs)  build: reload {reload_built:?}, start {start_built:?}",
            msgs.len(),
            all.len()
        );
    }
}

fn run(path: &str, reloads: usize) {
    let paths = vec![std::path::PathBuf::from(path)];
    let t = Instant::now();
    let loaded =
        strait::source::file::load_paths(&paths, &strait::pipeline::load_options("default"));
    let strait::pipeline::Built {
        config, snapshot, ..
    } = match strait::pipeline::build(loaded, &ProxyIdentity::default()) {
        Ok(b) => b,
        Err(rejection) => {
            eprintln!("{rejection}");
            std::process::exit(1);
        }
    };
    let shared = strait::proxy::Shared::new(snapshot, strait::proxy::access_log::AccessLog::off());
    shared.record_config(
        std::sync::Arc::new(config),
        String::new(),
        vec![path.to_string()],
    );
    println!("start {:?}", t.elapsed());
    let reloader = strait::reload::Reloader::new(
        strait::source::file::FileSource::new(paths),
        "default",
        Default::default(),
        shared,
    );
    for _ in 0..reloads {
        let t = Instant::now();
        let v = reloader.reload();
        println!("reload {:?} -> {v:?}", t.elapsed());
    }
}
