//! `import_dir`: load every archive of a directory at server start, remembering what was loaded so that a
//! restart with the same files costs one stat each (import-cache.json).
//!
//! A file is known by (path, size, mtime, inode) -> (content sha256, names it gave). Unchanged key: skipped
//! without reading. Changed key (touched, copied, replaced) but a content hash loaded before: skipped after
//! hashing. Either way only while the names it gave are still in the store; a removed image comes back
//! from the import dir on the next start, as the files there say it should exist.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ImageError, IoContext};
use crate::fsutil::{self, HashReader};
use crate::{ImageStore, Progress};

#[derive(Debug, Default, Serialize, Deserialize)]
struct ImportCache {
    /// Absolute (as given) file path -> what we know about it.
    files: BTreeMap<String, CachedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedFile {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    /// `sha256:<hex>` of the file's bytes.
    sha256: String,
    /// What importing it loaded.
    names: Vec<String>,
}

fn is_archive_name(name: &str) -> bool {
    name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

fn read_cache(path: &Path) -> ImportCache {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "image import cache unreadable; starting afresh");
            ImportCache::default()
        }),
        Err(_) => ImportCache::default(),
    }
}

fn hash_file(path: &Path) -> Result<String, ImageError> {
    let f = File::open(path).at(path)?;
    let mut r = HashReader::new(f);
    r.drain().at(path)?;
    Ok(r.finish().0)
}

pub(crate) fn import_dir(store: &ImageStore, dir: &Path) -> Result<Vec<String>, ImageError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ImageError::Io { path: dir.to_path_buf(), source: e }),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_archive_name))
        .collect();
    files.sort();

    let cache_path = store.cache_path();
    let mut cache = read_cache(&cache_path);
    let before = cache.files.clone();
    let present: HashSet<String> = store.read_refs()?.refs.into_keys().collect();
    let still_loaded = |c: &CachedFile| c.names.iter().all(|n| present.contains(n));

    let mut loaded = Vec::new();
    let mut listed = HashSet::new();
    for file in files {
        let key = file.to_string_lossy().into_owned();
        listed.insert(key.clone());
        let meta = match fs::metadata(&file) {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot stat image archive; skipped");
                continue;
            }
        };
        let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
        let (size, ino) = (meta.len(), meta.ino());
        let unchanged = cache.files.get(&key).is_some_and(|c| c.size == size && c.mtime_ns == mtime_ns && c.ino == ino && still_loaded(c));
        if unchanged {
            continue;
        }
        let sha256 = match hash_file(&file) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read image archive; skipped");
                continue;
            }
        };
        if let Some(known) = cache.files.values().find(|c| c.sha256 == sha256 && still_loaded(c)).cloned() {
            tracing::debug!(file = %file.display(), "image archive content already loaded");
            cache.files.insert(key, CachedFile { size, mtime_ns, ino, sha256, names: known.names });
            continue;
        }
        let mut on_progress = |p: Progress| tracing::debug!(file = %file.display(), progress = ?p, "importing");
        match store.import_archive(&file, &mut on_progress) {
            Ok(names) => {
                tracing::info!(file = %file.display(), images = ?names, "imported image archive");
                loaded.extend(names.iter().cloned());
                cache.files.insert(key, CachedFile { size, mtime_ns, ino, sha256, names });
            }
            Err(e) => tracing::warn!(file = %file.display(), error = %e, "image archive not imported"),
        }
    }
    // Forget files that left this directory (entries of other directories stay).
    cache.files.retain(|k, _| Path::new(k).parent() != Some(dir) || listed.contains(k));
    if cache.files != before {
        let bytes = serde_json::to_vec_pretty(&cache).expect("cache serialises");
        fsutil::atomic_write(&cache_path, &bytes)?;
    }
    Ok(loaded)
}
