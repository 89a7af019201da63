//! The local OCI image store, archive import and the built-in busybox recipe.
//!
//! Layout under the store root (`<data-dir>/images`):
//! ```text
//! blobs/sha256/<hex>   manifests and configs, content-addressed (temp file + rename)
//! layers/<hex>/        one unpacked layer per diff id (sha256 of the uncompressed tar), shared by images,
//!                      a ready overlayfs lowerdir (whiteouts converted)
//! refs.json            image name -> manifest digest (tmp + fsync + rename)
//! import-cache.json    import_dir's cache: file (path, size, mtime, inode) -> content sha256 and names
//! gc.lock, refs.lock   flock files
//! ```
//! Layer blobs themselves are not kept: the unpacked directory is the layer, and nothing here exports or
//! pushes images. An image is its manifest; its layers are found through the config's `rootfs.diff_ids`,
//! so a manifest that names compressed blobs (an OCI archive's, kept verbatim so `name@sha256:` references
//! still match) and one we synthesise (docker save, busybox) are read the same way.
//!
//! Concurrency: readers take no lock and see only whole files (every write is a rename). Importers hold
//! `gc.lock` shared while they add blobs and layers that no ref names yet; garbage collection takes it
//! exclusively and without waiting (it skips a round rather than block an import), so it never deletes
//! what an import is about to reference. `refs.lock` serialises read-modify-write of refs.json.

mod archive;
mod busybox;
mod cache;
mod error;
mod fsutil;
mod layer;
mod reference;
mod spec;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::ImageError;
pub use reference::{has_tag_or_digest, normalize};

use error::{json_err, IoContext};
use fsutil::{FileLock, LockMode};

/// The name `ensure_busybox` builds.
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:latest";

/// A handle on the store directory. Cheap to clone; every method reads the disk state afresh, so handles in
/// several threads or processes see each other's writes.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// An image ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The normalised name it was found under (or, when looked up by id, its first name or its id).
    pub name: String,
    /// `sha256:<hex>` of the config: the image id, as docker and the CRI report it.
    pub id: String,
    /// Unpacked layer directories, bottom first (overlayfs wants them top first in `lowerdir`).
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

/// What the runtime needs from the image config (OCI image-spec config.md `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// Empty when unset (the runtime then uses `/`).
    pub working_dir: String,
    /// `user`, `uid`, `user:group` or `uid:gid`; empty when unset (root).
    pub user: String,
}

/// One image of `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Normalised names pointing at it, sorted; empty for an image imported without a name.
    pub names: Vec<String>,
    /// `sha256:<hex>` of the config.
    pub id: String,
    /// Sum of the layer sizes the manifest records (compressed where the source was), as the CRI reports.
    pub size: u64,
}

/// What an import is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A layer is in the store: unpacked now, or already there from an earlier import (`reused`).
    /// `index` counts from 1 up to `total`, the distinct layers of the archive's images.
    Layer { index: usize, total: usize, digest: String, bytes: u64, reused: bool },
    /// A name now points at an imported image.
    Image { name: String, id: String },
}

/// refs.json.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Refs {
    /// Normalised name (or `sha256:<config hex>` for an image imported without one) -> manifest digest.
    refs: BTreeMap<String, String>,
}

/// An image about to be committed by an import: its blobs are written, then its names point at it.
pub(crate) struct NewImage {
    /// Normalised names; empty: keep it under its id.
    pub names: Vec<String>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl ImageStore {
    /// Open (creating its layout if needed) the store at `root`, normally `<data-dir>/images`.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        let store = ImageStore { root: root.to_path_buf() };
        for dir in [store.root.join("blobs/sha256"), store.layers_dir()] {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        // Leftovers of crashed writers and of removals that found the store busy.
        store.gc()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    pub(crate) fn cache_path(&self) -> PathBuf {
        self.root.join("import-cache.json")
    }

    /// Held (shared) by importers for as long as they create unreferenced blobs and layers.
    pub(crate) fn import_lock(&self) -> Result<FileLock, ImageError> {
        FileLock::acquire(&self.root.join("gc.lock"), LockMode::Shared)
    }

    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = fsutil::digest_hex(digest).ok_or_else(|| ImageError::Unsupported {
            what: format!("digest {digest:?}"),
            reason: "only sha256 digests are supported".into(),
        })?;
        Ok(self.blobs_dir().join(hex))
    }

    /// The directory of a layer by its diff id (`sha256:<hex>`).
    pub(crate) fn layer_path(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        let hex = fsutil::digest_hex(diff_id).ok_or_else(|| ImageError::Unsupported {
            what: format!("layer diff id {diff_id:?}"),
            reason: "only sha256 digests are supported".into(),
        })?;
        Ok(self.layers_dir().join(hex))
    }

    /// Store `bytes` under their digest (once), returning the digest.
    pub(crate) fn write_blob(&self, bytes: &[u8]) -> Result<String, ImageError> {
        let digest = fsutil::sha256_digest(bytes);
        let path = self.blob_path(&digest)?;
        if !path.exists() {
            fsutil::atomic_write(&path, bytes)?;
        }
        Ok(digest)
    }

    fn read_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, ImageError> {
        let path = self.blob_path(digest)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::Io { path, source: e }),
        }
    }

    fn read_refs(&self) -> Result<Refs, ImageError> {
        let path = self.refs_path();
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(json_err(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Refs::default()),
            Err(e) => Err(ImageError::Io { path, source: e }),
        }
    }

    /// Read-modify-write refs.json under `refs.lock`; written only if `f` changed it.
    fn update_refs<T>(&self, f: impl FnOnce(&mut BTreeMap<String, String>) -> T) -> Result<T, ImageError> {
        let _lock = FileLock::acquire(&self.root.join("refs.lock"), LockMode::Exclusive)?;
        let mut refs = self.read_refs()?;
        let before = refs.refs.clone();
        let out = f(&mut refs.refs);
        if refs.refs != before {
            let bytes = serde_json::to_vec_pretty(&refs).expect("refs serialise");
            fsutil::atomic_write(&self.refs_path(), &bytes)?;
        }
        Ok(out)
    }

    /// The manifest and config of the image a ref points at.
    fn load(&self, name: &str, manifest_digest: &str) -> Result<(spec::Manifest, String, spec::ConfigFile), ImageError> {
        let missing = |what: String| ImageError::Missing { name: name.to_string(), what };
        let bytes = self.read_blob(manifest_digest)?.ok_or_else(|| missing(format!("manifest {manifest_digest}")))?;
        let manifest: spec::Manifest = serde_json::from_slice(&bytes).map_err(json_err(format!("manifest {manifest_digest}")))?;
        let config_digest = manifest.config.digest.clone();
        let bytes = self.read_blob(&config_digest)?.ok_or_else(|| missing(format!("config {config_digest}")))?;
        let config: spec::ConfigFile = serde_json::from_slice(&bytes).map_err(json_err(format!("config {config_digest}")))?;
        Ok((manifest, config_digest, config))
    }

    fn image(&self, name: &str, manifest_digest: &str) -> Result<Image, ImageError> {
        let (_, id, config) = self.load(name, manifest_digest)?;
        let mut layers = Vec::with_capacity(config.rootfs.diff_ids.len());
        for diff_id in &config.rootfs.diff_ids {
            let dir = self.layer_path(diff_id)?;
            if !dir.is_dir() {
                return Err(ImageError::Missing { name: name.to_string(), what: format!("layer {diff_id}") });
            }
            layers.push(dir);
        }
        let c = config.config.unwrap_or_default();
        Ok(Image {
            name: name.to_string(),
            id,
            layers,
            config: ImageConfig {
                entrypoint: c.entrypoint.unwrap_or_default(),
                cmd: c.cmd.unwrap_or_default(),
                env: c.env.unwrap_or_default(),
                working_dir: c.working_dir.unwrap_or_default(),
                user: c.user.unwrap_or_default(),
            },
        })
    }

    /// Find an image by name (normalised: `busybox` finds `docker.io/library/busybox:latest`), by
    /// `name@sha256:<manifest digest>`, or by id (`sha256:<hex>`, or a prefix of the hex of at least 3
    /// digits). A name that is not there is `Ok(None)`.
    pub fn resolve(&self, name: &str) -> Result<Option<Image>, ImageError> {
        let refs = self.read_refs()?;
        match self.find(&refs.refs, name)? {
            Some(Found::Ref(key, manifest)) => self.image(&key, &manifest).map(Some),
            Some(Found::Id(id)) => {
                let mut names = self.names_by_id(&refs.refs)?.remove(&id).unwrap_or_default();
                // A named ref first: that is the name the image is known by.
                names.sort_by_key(|(key, _)| key.starts_with("sha256:"));
                match names.into_iter().next() {
                    Some((key, manifest)) => {
                        let shown = if key.starts_with("sha256:") { id.clone() } else { key };
                        self.image(&shown, &manifest).map(Some)
                    }
                    None => Ok(None),
                }
            }
            None => Ok(None),
        }
    }

    fn find(&self, refs: &BTreeMap<String, String>, name: &str) -> Result<Option<Found>, ImageError> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(None);
        }
        if let Some(m) = refs.get(name) {
            return Ok(Some(Found::Ref(name.to_string(), m.clone())));
        }
        let normalized = normalize(name);
        if let Some(m) = refs.get(&normalized) {
            return Ok(Some(Found::Ref(normalized, m.clone())));
        }
        let parsed = reference::Reference::parse(name);
        if let Some(digest) = &parsed.digest {
            // `repo@sha256:…`: any name of that repository whose manifest has that digest.
            let repo = parsed.repository();
            if let Some((_, m)) =
                refs.iter().find(|(k, m)| *m == digest && !k.starts_with("sha256:") && reference::Reference::parse(k).repository() == repo)
            {
                return Ok(Some(Found::Ref(normalized, m.clone())));
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let looks_like_id = hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && (hex.len() >= 3 || (name.starts_with("sha256:") && !hex.is_empty()))
            && hex.len() <= 64;
        if !looks_like_id {
            return Ok(None);
        }
        let ids: BTreeSet<String> =
            self.names_by_id(refs)?.into_keys().filter(|id| id.strip_prefix("sha256:").is_some_and(|h| h.starts_with(hex))).collect();
        match ids.len() {
            0 => Ok(None),
            1 => Ok(ids.into_iter().next().map(Found::Id)),
            _ => Err(ImageError::Ambiguous { prefix: name.to_string() }),
        }
    }

    /// image id -> [(ref key, manifest digest)]. Refs whose manifest is gone are left out (resolve reports
    /// them by name).
    fn names_by_id(&self, refs: &BTreeMap<String, String>) -> Result<HashMap<String, Vec<(String, String)>>, ImageError> {
        let mut config_of: HashMap<&str, Option<String>> = HashMap::new();
        let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (key, manifest) in refs {
            if !config_of.contains_key(manifest.as_str()) {
                let id = match self.load(key, manifest) {
                    Ok((_, id, _)) => Some(id),
                    Err(ImageError::Missing { .. }) => None,
                    Err(e) => return Err(e),
                };
                config_of.insert(manifest, id);
            }
            if let Some(Some(id)) = config_of.get(manifest.as_str()) {
                out.entry(id.clone()).or_default().push((key.clone(), manifest.clone()));
            }
        }
        Ok(out)
    }

    /// Every image, with its names, id and size, sorted by first name (unnamed ones last, by id).
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let refs = self.read_refs()?;
        let mut out = Vec::new();
        for (id, keys) in self.names_by_id(&refs.refs)? {
            let mut names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).filter(|k| !k.starts_with("sha256:")).collect();
            names.sort();
            let (manifest, _, _) = self.load(&keys[0].0, &keys[0].1)?;
            let size = manifest.layers.iter().map(|l| l.size).sum();
            out.push(ImageSummary { names, id, size });
        }
        out.sort_by(|a, b| (a.names.is_empty(), a.names.first(), &a.id).cmp(&(b.names.is_empty(), b.names.first(), &b.id)));
        Ok(out)
    }

    /// Remove a name (normalised), or, given an id or id prefix, every name of that image. Blobs and layers
    /// no image references any more are deleted (unless an import is running; the next removal or `open`
    /// collects them then).
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        let removed = self.update_refs(|refs| -> Result<bool, ImageError> {
            let gone: Vec<String> = match self.find(refs, name)? {
                Some(Found::Ref(key, _)) => vec![key],
                Some(Found::Id(id)) => self.names_by_id(refs)?.remove(&id).unwrap_or_default().into_iter().map(|(k, _)| k).collect(),
                None => return Ok(false),
            };
            let mut manifests = BTreeSet::new();
            for key in &gone {
                if let Some(m) = refs.remove(key) {
                    manifests.insert(m);
                }
            }
            // Removing the last name removes the image: drop an id-only ref left over from an unnamed import.
            for m in manifests {
                let named = refs.iter().any(|(k, v)| *v == m && !k.starts_with("sha256:"));
                if !named {
                    refs.retain(|k, v| !(*v == m && k.starts_with("sha256:")));
                }
            }
            Ok(true)
        })??;
        if !removed {
            return Err(ImageError::NotFound { name: name.to_string() });
        }
        self.gc()
    }

    /// Import a `docker save` archive or an OCI image layout (tar, optionally gzipped). Returns the names
    /// loaded (normalised), or `sha256:<id>` for an image the archive does not name.
    pub fn import_archive(&self, path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Vec<String>, ImageError> {
        let (names, repointed) = archive::import(self, path, progress)?;
        if repointed {
            // A name moved to a new image: the old one may be garbage now.
            self.gc()?;
        }
        Ok(names)
    }

    /// Load every `*.tar`, `*.tar.gz` and `*.tgz` in `dir` (a missing dir is empty). A file whose path, size,
    /// mtime and inode are unchanged since it was loaded costs one stat; a changed file whose content hash was
    /// loaded before is not imported again. Returns the names loaded by this call (empty when everything was
    /// cached). A file that fails is logged and skipped.
    pub fn import_dir(&self, dir: &Path) -> Result<Vec<String>, ImageError> {
        cache::import_dir(self, dir)
    }

    /// Build `docker.io/library/busybox:latest` from the host's static busybox if the store lacks it.
    /// Returns the name when it was built, `None` when it was already there.
    pub fn ensure_busybox(&self) -> Result<Option<String>, ImageError> {
        if self.resolve(BUSYBOX_IMAGE)?.is_some() {
            return Ok(None);
        }
        busybox::build(self).map(Some)
    }

    /// Write the blobs of `images` and point their names at them. Returns the names (or id keys) and
    /// whether an existing name moved to a different manifest.
    pub(crate) fn commit(&self, images: Vec<NewImage>, progress: &mut dyn FnMut(Progress)) -> Result<(Vec<String>, bool), ImageError> {
        let mut planned = Vec::new();
        for img in images {
            let config_digest = self.write_blob(&img.config)?;
            let manifest_digest = self.write_blob(&img.manifest)?;
            planned.push((img.names, config_digest, manifest_digest));
        }
        let mut loaded = Vec::new();
        let repointed = self.update_refs(|refs| {
            let mut repointed = false;
            for (names, id, manifest) in &planned {
                if names.is_empty() {
                    // Unnamed: keep it reachable by id, unless a name already reaches it.
                    if !refs.values().any(|m| m == manifest) {
                        refs.insert(id.clone(), manifest.clone());
                    }
                    loaded.push((id.clone(), id.clone()));
                    continue;
                }
                refs.retain(|k, v| !(v == manifest && k.starts_with("sha256:")));
                for name in names {
                    if let Some(old) = refs.insert(name.clone(), manifest.clone()) {
                        repointed |= old != *manifest;
                    }
                    loaded.push((name.clone(), id.clone()));
                }
            }
            repointed
        })?;
        for (name, id) in &loaded {
            progress(Progress::Image { name: name.clone(), id: id.clone() });
        }
        Ok((loaded.into_iter().map(|(n, _)| n).collect(), repointed))
    }

    /// Delete blobs and layers no ref reaches, and temporaries of crashed writers. Skipped (not waited
    /// for) while an import holds the store.
    fn gc(&self) -> Result<(), ImageError> {
        let Some(_lock) = FileLock::try_acquire(&self.root.join("gc.lock"), LockMode::Exclusive)? else {
            tracing::debug!(root = %self.root.display(), "image store busy importing; garbage collection deferred");
            return Ok(());
        };
        let refs = self.read_refs()?;
        let mut keep_blobs = BTreeSet::new();
        let mut keep_layers = BTreeSet::new();
        for (name, manifest_digest) in &refs.refs {
            keep_blobs.insert(manifest_digest.clone());
            match self.load(name, manifest_digest) {
                Ok((_, config_digest, config)) => {
                    keep_blobs.insert(config_digest);
                    keep_layers.extend(config.rootfs.diff_ids);
                }
                Err(e @ ImageError::Missing { .. }) => tracing::warn!(error = %e, "image store: damaged image"),
                Err(e) => return Err(e),
            }
        }
        let keep_blobs: BTreeSet<&str> = keep_blobs.iter().filter_map(|d| fsutil::digest_hex(d)).collect();
        let keep_layers: BTreeSet<&str> = keep_layers.iter().filter_map(|d| fsutil::digest_hex(d)).collect();
        // A layer mounted somewhere (a running container's lowerdir) stays even without a ref: deleting files
        // under a live overlay mount is undefined behaviour (overlayfs.rst, "Changes to underlying filesystems").
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();

        let blobs = self.blobs_dir();
        for entry in fs::read_dir(&blobs).at(&blobs)? {
            let entry = entry.at(&blobs)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(fsutil::TMP_PREFIX) || !keep_blobs.contains(name.as_str()) {
                tracing::debug!(blob = %name, "image store: removing unreferenced blob");
                fs::remove_file(entry.path()).at(&entry.path())?;
            }
        }
        let layers = self.layers_dir();
        for entry in fs::read_dir(&layers).at(&layers)? {
            let entry = entry.at(&layers)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(fsutil::TMP_PREFIX) {
                fs::remove_dir_all(&path).at(&path)?;
                continue;
            }
            if keep_layers.contains(name.as_str()) || mounts.contains(&path.to_string_lossy().into_owned()) {
                continue;
            }
            tracing::debug!(layer = %name, "image store: removing unreferenced layer");
            // Rename first so the digest name never denotes a half-deleted layer.
            let doomed = fsutil::temp_path(&layers);
            fs::rename(&path, &doomed).at(&path)?;
            fs::remove_dir_all(&doomed).at(&doomed)?;
        }
        Ok(())
    }
}

enum Found {
    /// A ref key and its manifest digest.
    Ref(String, String),
    /// An image id.
    Id(String),
}
