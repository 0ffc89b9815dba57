//! Files, directories (recursively: `.yaml`, `.yml`, `.json`) and `-` for
//! stdin, watched with notify. The only module that reads configuration
//! from the file system.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{RecursiveMode, Watcher};

use super::{Changes, Source, Watch};
use crate::config::ConfigSet;
use crate::load::{LoadOptions, Loader};

/// Most files read from one directory tree.
const MAX_FILES: usize = 100_000;

/// Config files and directories, as given on the command line.
#[derive(Clone, Debug)]
pub struct FileSource {
    pub paths: Vec<PathBuf>,
    /// The certificate files the last loaded Gateways reference, watched
    /// too: a rotated certificate is a configuration change.
    certs: Arc<CertWatch>,
}

impl FileSource {
    pub fn new(paths: Vec<PathBuf>) -> FileSource {
        FileSource {
            paths,
            certs: Arc::default(),
        }
    }
}

/// The certificate files to watch and the watcher that watches their
/// directories (set while a `watch` guard lives).
#[derive(Default)]
struct CertWatch {
    files: Arc<Mutex<Vec<PathBuf>>>,
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    dirs: Mutex<BTreeSet<PathBuf>>,
}

impl std::fmt::Debug for CertWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertWatch")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl CertWatch {
    /// Watch `files` from now on (their directories, as for config files:
    /// Secret and ConfigMap mounts swap files by symlink).
    fn set(&self, files: Vec<PathBuf>) {
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = watcher.as_mut() {
            let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
            for f in &files {
                let dir = parent_dir(f).to_path_buf();
                if !dirs.contains(&dir) {
                    match w.watch(&dir, RecursiveMode::NonRecursive) {
                        Ok(()) => {
                            dirs.insert(dir);
                        }
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a certificate directory; reload with SIGHUP after rotating")
                        }
                    }
                }
            }
        }
        *self.files.lock().unwrap_or_else(|p| p.into_inner()) = files;
    }
}

/// Stops the certificate watch with the config watch.
struct CertGuard(Arc<CertWatch>);

impl Drop for CertGuard {
    fn drop(&mut self) {
        *self.0.watcher.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.0
            .dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn parent_dir(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

impl Source for FileSource {
    fn load(&self, opts: &LoadOptions) -> ConfigSet {
        let set = load_paths(&self.paths, opts);
        self.certs.set(super::certs::referenced(&set));
        set
    }

    fn watch(&self, changes: Changes) -> Result<Watch, String> {
        let w = watch(&self.paths, self.certs.files.clone(), changes).map_err(|e| e.to_string())?;
        *self.certs.watcher.lock().unwrap_or_else(|p| p.into_inner()) = Some(w);
        let files = self
            .certs
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.certs.set(files);
        Ok(Watch::new(CertGuard(self.certs.clone())))
    }

    fn describe(&self) -> Vec<String> {
        self.paths.iter().map(|p| p.display().to_string()).collect()
    }
}

/// Load every path: files, directories (recursively: `.yaml`, `.yml`, `.json`)
/// and `-` for stdin. Unreadable input becomes a `LoadError`, never a panic.
pub fn load_paths(paths: &[PathBuf], opts: &LoadOptions) -> ConfigSet {
    let mut loader = Loader::new(opts);
    let limit = opts.limits.max_file_bytes;
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().take(limit + 1).read_to_string(&mut text) {
                Ok(n) if n as u64 > limit => loader.error("-", None, too_big(limit)),
                Ok(_) => loader.text(&text, "-", None),
                Err(e) => loader.error("-", None, format!("cannot read stdin: {e}")),
            }
            continue;
        }
        let mut files = Vec::new();
        if let Err(e) = collect_files(p, &mut files, 0) {
            loader.error(&p.display().to_string(), None, e);
            continue;
        }
        for f in files {
            let name = f.display().to_string();
            match read_file(&f, limit) {
                Ok(text) => loader.text(&text, &name, Some(&f)),
                Err(e) => loader.error(&name, None, e),
            }
        }
    }
    loader.finish()
}

/// A file's text, refused before reading when over `limit` bytes.
fn read_file(path: &Path, limit: u64) -> Result<String, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > limit => return Err(too_big(limit)),
        Err(e) => return Err(format!("cannot read: {e}")),
        Ok(_) => {}
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "file is not UTF-8 text".to_string())
}

fn too_big(limit: u64) -> String {
    format!(
        "file is larger than the {} MiB limit",
        limit / (1024 * 1024)
    )
}

fn collect_files(p: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), String> {
    let meta = std::fs::metadata(p).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_file() {
        out.push(p.to_path_buf());
        return Ok(());
    }
    if !meta.is_dir() {
        return Err("not a file or directory".into());
    }
    if depth > 32 {
        return Err("directories nested deeper than 32 levels (symlink loop?)".into());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(|e| format!("cannot read directory: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        if out.len() >= MAX_FILES {
            return Err(format!("more than {MAX_FILES} files"));
        }
        let hidden = e
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if e.is_dir() {
            collect_files(&e, out, depth + 1)?;
        } else if e
            .extension()
            .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        {
            out.push(e);
        }
    }
    Ok(())
}

/// Watch the paths: directories recursively, files through their directory
/// (editors and ConfigMaps replace files by rename and symlink swaps, which a
/// watch on the file misses).
fn watch(
    paths: &[PathBuf],
    certs: Arc<Mutex<Vec<PathBuf>>>,
    changes: Changes,
) -> notify::Result<notify::RecommendedWatcher> {
    let files: Vec<PathBuf> = paths.to_vec();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return;
        }
        let cert = |p: &Path| {
            certs
                .lock()
                .is_ok_and(|c| c.iter().any(|w| w == p || p.file_name() == w.file_name()))
        };
        if ev.paths.iter().any(|p| relevant(p, &files) || cert(p)) {
            let _ = changes.try_send(());
        }
    })?;
    for p in paths {
        if p.is_dir() {
            w.watch(p, RecursiveMode::Recursive)?;
        } else {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            w.watch(dir, RecursiveMode::NonRecursive)?;
        }
    }
    Ok(w)
}

/// Config files, the watched files themselves, and ConfigMap `..data` swaps.
fn relevant(p: &Path, watched: &[PathBuf]) -> bool {
    p.extension()
        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        || watched
            .iter()
            .any(|w| w == p || p.file_name() == w.file_name())
        || p.to_string_lossy().contains("..data")
}

#[cfg(test)]
mod tests;
