//! Architecture invariants that the compiler does not check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers: each top-level module of `src/` and the modules it may
/// import (`crate::x` and `super::` paths, tests included). Every edge
/// points down; `cli` (the front end) is imported by nobody but `main.rs`,
/// `fuzzing` (entry points for fuzz targets and tests) by nobody. A new
/// module needs a row; a new edge pointing up fails
/// `every_import_points_down`.
const LAYERS: &[(&str, &[&str])] = &[
    // The typed Istio model and the loaded configuration.
    ("model", &[]),
    ("config", &["model"]),
    // The process's allocator (the binary installs it).
    ("allocator", &[]),
    // Small shared vocabulary.
    ("flags", &[]),
    ("logging", &[]),
    // A message's header list as the request path carries it.
    ("header_list", &[]),
    // The HTTP/1.1 codec (sans-IO; protocol only).
    ("http1", &["header_list"]),
    // The HTTP/2 codec (sans-IO; protocol only).
    ("http2", &["header_list"]),
    // Kubernetes objects → the service registry (pure).
    ("kubernetes", &["config", "model"]),
    // YAML text → typed resources (pure), and where the text comes from
    // (the Kubernetes source keeps a live `kubernetes::Index`).
    ("load", &["config", "model"]),
    ("source", &["kubernetes", "load", "config", "model"]),
    // Istio's validation and analysis.
    ("validate", &["load", "config", "model"]),
    ("analyze", &["validate", "load", "config", "model"]),
    // What the request path reads, compiled from the configuration.
    ("route", &["header_list", "model"]),
    ("metrics", &["flags"]),
    (
        "compile",
        &[
            "route",
            "header_list",
            "metrics",
            "kubernetes",
            "source",
            "load",
            "config",
            "model",
        ],
    ),
    // Runtime state beside the snapshot.
    (
        "cluster",
        &[
            "compile",
            "route",
            "header_list",
            "metrics",
            "flags",
            "load",
            "config",
            "model",
        ],
    ),
    (
        "explain",
        &[
            "compile",
            "route",
            "header_list",
            "source",
            "load",
            "config",
            "model",
        ],
    ),
    // validate ∥ compile for a proxy identity.
    (
        "pipeline",
        &[
            "analyze",
            "validate",
            "compile",
            "kubernetes",
            "source",
            "load",
            "config",
            "model",
        ],
    ),
    // The data plane.
    (
        "proxy",
        &[
            "cluster",
            "explain",
            "compile",
            "route",
            "metrics",
            "flags",
            "logging",
            "http1",
            "http2",
            "header_list",
            "load",
            "config",
            "model",
        ],
    ),
    // sources → debounce → pipeline → install.
    (
        "reload",
        &[
            "proxy",
            "pipeline",
            "analyze",
            "source",
            "compile",
            "kubernetes",
            "load",
            "config",
            "model",
        ],
    ),
    // Front ends.
    (
        "fuzzing",
        &[
            "proxy",
            "cluster",
            "explain",
            "pipeline",
            "compile",
            "analyze",
            "validate",
            "route",
            "metrics",
            "flags",
            "http1",
            "http2",
            "header_list",
            "kubernetes",
            "source",
            "load",
            "config",
            "model",
        ],
    ),
    (
        "cli",
        &[
            "reload",
            "proxy",
            "pipeline",
            "explain",
            "cluster",
            "compile",
            "analyze",
            "validate",
            "route",
            "metrics",
            "flags",
            "logging",
            "kubernetes",
            "source",
            "load",
            "config",
            "model",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable source dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules of `src/` (files and directories).
fn top_level_modules() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(src()).expect("src") {
        let p = e.expect("entry").path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if p.is_dir()
            || (p.extension().is_some_and(|x| x == "rs") && name != "main" && name != "lib")
        {
            out.insert(name);
        }
    }
    out
}

/// Source text without comments, strings and char literals (their bytes
/// blanked, lines kept), so only code is scanned.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // Raw string r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while i <= j {
                out.push(b' ');
                i += 1;
            }
            while i < b.len() && !b[i..].starts_with(&close) {
                blank(&mut out, b[i]);
                i += 1;
            }
            let n = close.len().min(b.len() - i);
            out.extend(std::iter::repeat_n(b' ', n));
            i += n;
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '{'), not a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    while i <= e {
                        out.push(b' ');
                        i += 1;
                    }
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_at(b: &[u8], i: usize) -> (&str, usize) {
    let mut j = i;
    while j < b.len() && is_ident(b[j]) {
        j += 1;
    }
    (std::str::from_utf8(&b[i..j]).unwrap_or(""), j)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The first segment of each path in a `{a, b::c, self}` group at `i`
/// (just after `{`).
fn group_heads(b: &[u8], mut i: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect = true;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' if depth == 0 => break,
            b'}' => depth -= 1,
            b',' if depth == 0 => expect = true,
            c if expect && is_ident(c) => {
                let (id, j) = ident_at(b, i);
                heads.push(id.to_string());
                expect = false;
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// Every top-level module a file refers to through `crate::` or
/// `super::`, with its line. `module` is the file's module path
/// (`["proxy", "forward"]`); inline `mod x { … }` blocks are followed.
fn imports(code: &str, module: &[String]) -> Vec<(String, usize)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    // Inline modules: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
        }
        if c == b'{' {
            depth += 1;
        } else if c == b'}' {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
        }
        if !is_ident(c) || (i > 0 && (is_ident(b[i - 1]) || b[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let (word, j) = ident_at(b, i);
        if word == "mod" {
            let k = skip_ws(b, j);
            let (name, k2) = ident_at(b, k);
            let k3 = skip_ws(b, k2);
            if !name.is_empty() && b.get(k3) == Some(&b'{') {
                inline.push((name.to_string(), depth + 1));
            }
            i = j;
            continue;
        }
        if word != "crate" && word != "super" {
            i = j;
            continue;
        }
        // A path: count the `super::`s, then the segment after them.
        let mut base: Vec<String> = module.to_vec();
        base.extend(inline.iter().map(|(n, _)| n.clone()));
        let mut k = i;
        let mut from_root = false;
        loop {
            let (w, e) = ident_at(b, k);
            if !b[e..].starts_with(b"::") {
                break;
            }
            match w {
                "crate" if k == i => from_root = true,
                "super" if !from_root => {
                    base.pop();
                }
                _ => break,
            }
            k = e + 2;
        }
        if k == i {
            i = j;
            continue;
        }
        if from_root {
            base.clear();
        }
        let heads = if b.get(k) == Some(&b'{') {
            group_heads(b, k + 1)
        } else {
            vec![ident_at(b, k).0.to_string()]
        };
        for h in heads {
            let target = match base.first() {
                Some(top) => top.clone(),
                None if h == "self" => continue,
                None => h,
            };
            out.push((target, line));
        }
        i = k;
    }
    out
}

/// The module path of a file under `src/`.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

#[test]
fn every_import_points_down() {
    let table: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let modules = top_level_modules();
    let mut offenders = Vec::new();
    for m in &modules {
        if !table.contains_key(m.as_str()) {
            offenders.push(format!(
                "src/{m}: not in tests/it/tidy.rs LAYERS (give it a row: what may it import?)"
            ));
        }
    }
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for f in files {
        let module = module_path(&f);
        let Some(top) = module.first() else { continue };
        if top == "main" || top == "lib" {
            continue;
        }
        let allowed = table.get(top.as_str()).copied().unwrap_or(&[]);
        let text = std::fs::read_to_string(&f).expect("readable");
        for (target, line) in imports(&code_only(&text), &module) {
            if &target == top || !modules.contains(&target) {
                continue;
            }
            if !allowed.contains(&target.as_str()) {
                offenders.push(format!(
                    "{}:{line}: `{top}` imports `{target}`, which is not below it in tests/it/tidy.rs LAYERS",
                    f.display()
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// The table itself has no cycle, so "below" means something.
#[test]
fn the_layer_table_has_no_cycle() {
    let table: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    fn visit<'a>(
        m: &'a str,
        table: &BTreeMap<&'a str, &'a [&'a str]>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        assert!(!path.contains(&m), "cycle: {} -> {m}", path.join(" -> "));
        path.push(m);
        for d in table.get(m).copied().unwrap_or(&[]) {
            assert!(table.contains_key(d), "{m} lists unknown module {d}");
            visit(d, table, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for (m, _) in LAYERS {
        visit(m, &table, &mut Vec::new(), &mut done);
    }
}

/// The scanner itself: groups, `super::` chains, inline modules, and
/// paths in strings and comments ignored.
#[test]
fn the_import_scanner_resolves_paths() {
    let code = code_only(
        "use crate::{a::X, b};\n\
         // crate::hidden\n\
         let s = \"crate::hidden\";\n\
         use super::sibling;\n\
         mod tests {\n    use super::super::c::Y;\n    use super::*;\n}\n\
         fn f() { crate::d::g(); let c = '{'; }\n\
         use super::super::e;\n",
    );
    let module = vec!["top".to_string(), "file".to_string()];
    let got: Vec<(String, usize)> = imports(&code, &module);
    let want: Vec<(String, usize)> = [
        ("a", 1),
        ("b", 1),
        ("top", 4),
        ("top", 6),
        ("top", 7),
        ("d", 9),
        ("e", 10),
    ]
    .iter()
    .map(|(m, l)| (m.to_string(), *l))
    .collect();
    assert_eq!(got, want);
}

/// The config layers and the runtime state beside the snapshot know
/// nothing of the async runtime or the HTTP server: they must stay usable
/// from `check` and `explain` and testable without I/O.
#[test]
fn config_layers_do_not_depend_on_the_runtime() {
    let src = src();
    let mut files = vec![
        src.join("config.rs"),
        src.join("flags.rs"),
        src.join("metrics.rs"),
        src.join("pipeline.rs"),
        src.join("explain.rs"),
    ];
    for d in [
        "model",
        "load",
        "validate",
        "analyze",
        "compile",
        "route",
        "cluster",
        "kubernetes",
    ] {
        rust_files(&src.join(d), &mut files);
    }
    let mut offenders = Vec::new();
    for f in files {
        let body = std::fs::read_to_string(&f).expect("readable");
        for banned in ["tokio", "hyper"] {
            if body.lines().any(|l| {
                let l = l.trim_start();
                !l.starts_with("//") && l.contains(banned)
            }) {
                offenders.push(format!("{} uses {banned}", f.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// clippy's `too-many-lines-threshold` (clippy.toml) is split under, not
/// allowed away: an `#[allow(clippy::too_many_lines)]` in `src/` needs a
/// comment right above it saying why (issue #11; there are none today).
#[test]
fn a_long_function_allowed_says_why() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut offenders = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.contains("clippy::too_many_lines") {
                continue;
            }
            let said = i > 0 && lines[i - 1].trim_start().starts_with("//");
            if !said {
                offenders.push(format!(
                    "{}:{}: split the function, or say why not in a comment above the allow",
                    f.display(),
                    i + 1
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// The runtime (`cluster`, `proxy`) reads the compiled `ClusterPolicy` and
/// route table, never the Istio model (issue #11): no `crate::model` path
/// outside their tests.
#[test]
fn the_runtime_never_sees_the_model() {
    let mut files = Vec::new();
    rust_files(&src().join("cluster"), &mut files);
    rust_files(&src().join("proxy"), &mut files);
    let mut offenders = Vec::new();
    for f in files {
        if f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("readable");
        let code = code_only(&text);
        let code = code.split("#[cfg(test)]").next().unwrap_or("");
        for (i, line) in code.lines().enumerate() {
            if line.contains("crate::model") {
                offenders.push(format!(
                    "{}:{}: compile the setting into the typed policy instead",
                    f.display(),
                    i + 1
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// Unit tests sit beside the code, a long module of them in a sibling
/// `tests.rs` (issue #11): no inline `#[cfg(test)] mod … { … }` in `src/`
/// over 120 lines.
#[test]
fn long_test_modules_live_in_a_sibling_file() {
    const MAX: usize = 120;
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut offenders = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        let code = code_only(&text);
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let opens_module = line.starts_with("mod ") && line.trim_end().ends_with('{');
            if !opens_module || i == 0 || !lines[i - 1].contains("#[cfg(test)]") {
                continue;
            }
            let mut depth = 0i64;
            let mut end = i;
            'scan: for (j, l) in lines.iter().enumerate().skip(i) {
                for c in l.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = j;
                                break 'scan;
                            }
                        }
                        _ => {}
                    }
                }
            }
            if end - i > MAX {
                offenders.push(format!(
                    "{}:{}: a test module of {} lines: move it to a sibling tests.rs",
                    f.display(),
                    i + 1,
                    end - i
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}
