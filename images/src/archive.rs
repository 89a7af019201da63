//! Importing image archives: `docker save` output (manifest.json with Config/RepoTags/Layers) and OCI image
//! layouts (oci-layout, index.json, blobs/sha256), either one plain or gzipped.
//!
//! Two streaming passes over the file, so no layer is ever held in memory and none is unpacked in vain:
//! the first reads only the small JSON documents (and skips layer bodies, by seeking when the archive is not
//! compressed); from them comes the plan (which images, which names, which layers with which diff ids);
//! the second unpacks just the layers the store does not have yet, checking each against its digests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{json_err, ImageError, IoContext};
use crate::fsutil::{self, digest_hex};
use crate::layer::{self, Sniffed};
use crate::reference::normalize;
use crate::spec::{self, ConfigFile, Descriptor, DockerSaveEntry, Index, Manifest};
use crate::{ImageStore, NewImage, Progress};

/// JSON documents larger than this are not image metadata.
const MAX_JSON: u64 = 64 << 20;
/// How many index levels we follow (an index of indexes is legal, a cycle is not possible by digest, but a
/// hostile archive can nest deeply).
const MAX_INDEX_DEPTH: usize = 8;

/// The archive file, gunzipped when it is compressed.
enum Outer {
    Plain(BufReader<File>),
    /// `pos`: bytes of decompressed stream read so far, which `seek` must report (tar tracks it).
    Gzip {
        r: MultiGzDecoder<BufReader<File>>,
        pos: u64,
    },
}

impl Outer {
    fn open(path: &Path) -> Result<Outer, ImageError> {
        let mut f = File::open(path).at(path)?;
        let mut magic = [0u8; 2];
        let n = f.read(&mut magic).at(path)?;
        f.seek(SeekFrom::Start(0)).at(path)?;
        let r = BufReader::with_capacity(256 << 10, f);
        Ok(if n == 2 && magic == [0x1f, 0x8b] { Outer::Gzip { r: MultiGzDecoder::new(r), pos: 0 } } else { Outer::Plain(r) })
    }
}

impl Read for Outer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Outer::Plain(r) => r.read(buf),
            Outer::Gzip { r, pos } => {
                let n = r.read(buf)?;
                *pos += n as u64;
                Ok(n)
            }
        }
    }
}

/// tar skips entry bodies with `SeekFrom::Current(n)` only, and takes the returned position as its own: a
/// real seek for a plain file, reading and discarding through the decompressor for a gzipped one.
impl Seek for Outer {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match (self, pos) {
            (Outer::Plain(r), pos) => r.seek(pos),
            (Outer::Gzip { r, pos }, SeekFrom::Current(n)) if n >= 0 => {
                let skipped = io::copy(&mut r.by_ref().take(n as u64), &mut io::sink())?;
                *pos += skipped;
                if skipped < n as u64 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "archive ends inside an entry"));
                }
                Ok(*pos)
            }
            (Outer::Gzip { .. }, _) => Err(io::Error::new(io::ErrorKind::Unsupported, "a gzipped archive can only be read forwards")),
        }
    }
}

/// What the first pass learnt.
#[derive(Default)]
struct Scan {
    /// Archive path -> document, for every regular file that starts like JSON.
    json: HashMap<String, Vec<u8>>,
    /// Archive path -> (size, encoding) for every regular file that is a tar, tar.gz or zstd stream.
    blobs: HashMap<String, (u64, Sniffed)>,
    /// Symlinks and hardlinks of the archive (docker save links repeated layers): path -> target path.
    aliases: HashMap<String, String>,
}

impl Scan {
    fn real(&self, path: &str) -> String {
        let mut p = clean(path);
        for _ in 0..16 {
            match self.aliases.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        p
    }

    fn json(&self, path: &str) -> Option<&Vec<u8>> {
        self.json.get(&self.real(path))
    }
}

/// `a/./b/../c` -> `a/c`, without leading `/` or `./`.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn blob_path(digest: &str) -> Option<String> {
    digest_hex(digest).map(|hex| format!("blobs/sha256/{hex}"))
}

fn invalid(path: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive { path: path.to_path_buf(), reason: reason.into() }
}

fn scan(path: &Path) -> Result<Scan, ImageError> {
    let mut archive = tar::Archive::new(Outer::open(path)?);
    let mut out = Scan::default();
    let read_err = |e: io::Error| invalid(path, format!("reading the tar: {e}"));
    for entry in archive.entries_with_seek().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let prefix = layer::read_prefix(&mut entry, 512).map_err(read_err)?;
                match layer::sniff(&prefix) {
                    Sniffed::Json => {
                        if entry.size() > MAX_JSON {
                            return Err(invalid(path, format!("{name} is too large ({} bytes) for image metadata", entry.size())));
                        }
                        let mut doc = prefix;
                        entry.read_to_end(&mut doc).map_err(read_err)?;
                        out.json.insert(name, doc);
                    }
                    kind @ (Sniffed::Gzip | Sniffed::Tar | Sniffed::Zstd) => {
                        out.blobs.insert(name, (entry.size(), kind));
                    }
                    Sniffed::Other => {}
                }
            }
            tar::EntryType::Symlink => {
                if let Some(target) = entry.link_name_bytes() {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    let resolved = if target.starts_with('/') { clean(&target) } else { clean(&format!("{dir}/{target}")) };
                    out.aliases.insert(name, resolved);
                }
            }
            tar::EntryType::Link => {
                if let Some(target) = entry.link_name_bytes() {
                    out.aliases.insert(name, clean(&String::from_utf8_lossy(&target)));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// One layer of a planned image.
#[derive(Debug, Clone)]
struct LayerPlan {
    /// Where the blob is in the archive; `None` when the archive lacks it (fine if the store has the layer).
    path: Option<String>,
    diff_id: String,
    /// The digest the manifest (or the blob's path) gives the blob as stored in the archive.
    blob_digest: Option<String>,
    /// The blob's size in the archive.
    size: u64,
}

#[derive(Debug)]
struct ImagePlan {
    names: Vec<String>,
    config: Vec<u8>,
    /// The source's own manifest, kept verbatim (so its digest stays valid); `None`: synthesise one.
    manifest: Option<Vec<u8>>,
    layers: Vec<LayerPlan>,
}

/// Import the archive at `path` into `store`: (names loaded, whether a name moved to another image).
pub(crate) fn import(store: &ImageStore, path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<(Vec<String>, bool), ImageError> {
    let scan = scan(path)?;
    let plans = if scan.json.contains_key("index.json") {
        plan_oci(&scan, path)?
    } else if scan.json.contains_key("manifest.json") {
        plan_docker(&scan, path)?
    } else {
        return Err(invalid(path, "it has neither index.json nor manifest.json"));
    };
    if plans.is_empty() {
        return Err(invalid(path, "it contains no image"));
    }

    // From here until the refs are written, our new layers are unreferenced: keep garbage collection out.
    let _import = store.import_lock()?;

    // The distinct layers, in image order, bottom first.
    let mut order: Vec<&LayerPlan> = Vec::new();
    let mut seen = HashSet::new();
    for l in plans.iter().flat_map(|p| &p.layers) {
        if seen.insert(l.diff_id.as_str()) {
            order.push(l);
        }
    }
    let total = order.len();
    // Archive path -> (progress index, layer): what the second pass must unpack.
    let mut wanted: HashMap<String, (usize, &LayerPlan)> = HashMap::new();
    for (i, l) in order.iter().enumerate() {
        if store.layer_path(&l.diff_id)?.is_dir() {
            progress(Progress::Layer { index: i + 1, total, digest: l.diff_id.clone(), bytes: l.size, reused: true });
            continue;
        }
        let Some(p) = &l.path else {
            return Err(invalid(path, format!("the layer with diff id {} is not in the archive", l.diff_id)));
        };
        if let Some((_, Sniffed::Zstd)) = scan.blobs.get(p) {
            return Err(ImageError::Unsupported {
                what: format!("{}: layer {p}", path.display()),
                reason: "zstd-compressed layers are not supported; export the image with gzip or uncompressed layers".into(),
            });
        }
        wanted.insert(p.clone(), (i + 1, l));
    }
    // Uncompressed tar sizes, for the manifests we synthesise.
    let mut tar_sizes: HashMap<String, u64> = HashMap::new();
    if !wanted.is_empty() {
        let mut archive = tar::Archive::new(Outer::open(path)?);
        let read_err = |e: io::Error| invalid(path, format!("reading the tar: {e}"));
        for entry in archive.entries_with_seek().map_err(read_err)? {
            let mut entry = entry.map_err(read_err)?;
            if !matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous) {
                continue;
            }
            let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
            let Some((index, l)) = wanted.remove(&name) else { continue };
            let label = l.blob_digest.clone().unwrap_or_else(|| name.clone());
            let u = layer::unpack_layer(&mut entry, &store.layers_dir(), &label, Some(&l.diff_id))?;
            if let Some(expected) = l.blob_digest.as_ref().filter(|e| **e != u.blob_digest) {
                return Err(ImageError::DigestMismatch {
                    what: format!("{}: {name}", path.display()),
                    expected: expected.clone(),
                    actual: u.blob_digest,
                });
            }
            tar_sizes.insert(u.diff_id.clone(), u.size);
            progress(Progress::Layer { index, total, digest: u.diff_id, bytes: l.size, reused: false });
            if wanted.is_empty() {
                break;
            }
        }
        if let Some(missing) = wanted.keys().next() {
            return Err(invalid(path, format!("{missing} vanished between the two passes (was the file modified during the import?)")));
        }
    }

    let mut images = Vec::new();
    for plan in plans {
        let manifest = match plan.manifest {
            Some(m) => m,
            None => synthesize_manifest(&plan.config, &plan.layers, &scan, &tar_sizes),
        };
        images.push(NewImage { names: plan.names, config: plan.config, manifest });
    }
    store.commit(images, progress)
}

/// An OCI manifest for an image that came without one (docker save): its layers are described uncompressed,
/// digest = diff id, which is exactly what the store keeps.
fn synthesize_manifest(config: &[u8], layers: &[LayerPlan], scan: &Scan, tar_sizes: &HashMap<String, u64>) -> Vec<u8> {
    let layer_size = |l: &LayerPlan| -> u64 {
        if let Some(s) = tar_sizes.get(&l.diff_id) {
            return *s;
        }
        match l.path.as_ref().and_then(|p| scan.blobs.get(p)) {
            Some((size, Sniffed::Tar)) => *size,
            _ => l.size,
        }
    };
    let m = Manifest {
        schema_version: 2,
        media_type: spec::OCI_MANIFEST.into(),
        config: Descriptor {
            media_type: spec::OCI_CONFIG.into(),
            digest: fsutil::sha256_digest(config),
            size: config.len() as u64,
            annotations: BTreeMap::new(),
            platform: None,
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: spec::OCI_LAYER_TAR.into(),
                digest: l.diff_id.clone(),
                size: layer_size(l),
                annotations: BTreeMap::new(),
                platform: None,
            })
            .collect(),
    };
    serde_json::to_vec(&m).expect("manifest serialises")
}

fn parse_config(bytes: &[u8], what: &str) -> Result<ConfigFile, ImageError> {
    serde_json::from_slice(bytes).map_err(json_err(what.to_string()))
}

/// `docker save` (manifest.json). Layers are `<id>/layer.tar` (before docker 25) or `blobs/sha256/<hex>`.
fn plan_docker(scan: &Scan, path: &Path) -> Result<Vec<ImagePlan>, ImageError> {
    let entries: Vec<DockerSaveEntry> =
        serde_json::from_slice(&scan.json["manifest.json"]).map_err(json_err(format!("{}: manifest.json", path.display())))?;
    let mut plans = Vec::new();
    for e in entries {
        let config = scan
            .json(&e.config)
            .ok_or_else(|| invalid(path, format!("manifest.json names config {} which is not in the archive", e.config)))?
            .clone();
        let cfg = parse_config(&config, &format!("{}: {}", path.display(), e.config))?;
        if cfg.rootfs.diff_ids.len() != e.layers.len() {
            return Err(invalid(
                path,
                format!("config {} lists {} layers, manifest.json {}", e.config, cfg.rootfs.diff_ids.len(), e.layers.len()),
            ));
        }
        let layers = e
            .layers
            .iter()
            .zip(&cfg.rootfs.diff_ids)
            .map(|(l, diff_id)| {
                let real = scan.real(l);
                let present = scan.blobs.get(&real);
                // `blobs/sha256/<hex>` names its own digest; `<id>/layer.tar` does not.
                let blob_digest = real.strip_prefix("blobs/sha256/").map(|hex| format!("sha256:{hex}"));
                LayerPlan {
                    size: present.map(|(s, _)| *s).unwrap_or(0),
                    path: present.map(|_| real),
                    diff_id: diff_id.clone(),
                    blob_digest,
                }
            })
            .collect();
        let names = e.repo_tags.unwrap_or_default().iter().map(|t| normalize(t)).collect();
        plans.push(ImagePlan { names, config, manifest: None, layers });
    }
    Ok(plans)
}

/// OCI image layout (index.json). Names come from the `io.containerd.image.name` annotation, or a full name
/// in `org.opencontainers.image.ref.name`; a ref name that is only a tag ("latest") does not say which
/// repository, so then docker's manifest.json (docker 25+ writes both) supplies the names, or the image
/// stays unnamed.
fn plan_oci(scan: &Scan, path: &Path) -> Result<Vec<ImagePlan>, ImageError> {
    let index: Index = serde_json::from_slice(&scan.json["index.json"]).map_err(json_err(format!("{}: index.json", path.display())))?;
    // Config digest -> RepoTags, from a docker manifest.json beside the index.
    let mut docker_names: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(Ok(entries)) = scan.json.get("manifest.json").map(|doc| serde_json::from_slice::<Vec<DockerSaveEntry>>(doc)) {
        for e in entries {
            if let Some(config) = scan.json(&e.config) {
                docker_names
                    .entry(fsutil::sha256_digest(config))
                    .or_default()
                    .extend(e.repo_tags.unwrap_or_default().iter().map(|t| normalize(t)));
            }
        }
    }
    let mut plans: Vec<(String, ImagePlan)> = Vec::new();
    for desc in &index.manifests {
        let (manifest_digest, mut plan) = walk(scan, path, desc, 0)?;
        let mut names = names_of(desc);
        if names.is_empty() {
            names = docker_names.get(&fsutil::sha256_digest(&plan.config)).cloned().unwrap_or_default();
        }
        // Several index entries can name one manifest: one image, all the names.
        if let Some((_, existing)) = plans.iter_mut().find(|(d, _)| *d == manifest_digest) {
            for n in names {
                if !existing.names.contains(&n) {
                    existing.names.push(n);
                }
            }
            continue;
        }
        plan.names = names;
        plans.push((manifest_digest, plan));
    }
    Ok(plans.into_iter().map(|(_, p)| p).collect())
}

/// Full image names a descriptor's annotations give.
fn names_of(desc: &Descriptor) -> Vec<String> {
    if let Some(n) = desc.annotations.get(spec::ANNOTATION_IMAGE_NAME) {
        return vec![normalize(n)];
    }
    match desc.annotations.get(spec::ANNOTATION_REF_NAME) {
        // A tag cannot contain '/', ':' or '@': anything that does is a full reference.
        Some(n) if n.contains(['/', ':', '@']) => vec![normalize(n)],
        _ => Vec::new(),
    }
}

/// A blob the archive must contain, checked against its digest.
fn blob<'a>(scan: &'a Scan, path: &Path, digest: &str) -> Result<&'a Vec<u8>, ImageError> {
    let p = blob_path(digest).ok_or_else(|| ImageError::Unsupported {
        what: format!("{}: digest {digest:?}", path.display()),
        reason: "only sha256 digests are supported".into(),
    })?;
    let bytes = scan.json(&p).ok_or_else(|| invalid(path, format!("blob {digest} is not in the archive")))?;
    let actual = fsutil::sha256_digest(bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch { what: format!("{}: {p}", path.display()), expected: digest.to_string(), actual });
    }
    Ok(bytes)
}

fn is_index(media_type: &str, doc: &serde_json::Value) -> bool {
    match media_type {
        spec::OCI_INDEX | spec::DOCKER_LIST => true,
        spec::OCI_MANIFEST | spec::DOCKER_MANIFEST => false,
        _ => {
            doc.get("manifests").is_some()
                || doc.get("mediaType").and_then(|m| m.as_str()).is_some_and(|m| m == spec::OCI_INDEX || m == spec::DOCKER_LIST)
        }
    }
}

/// Follow a descriptor down to one image manifest for this machine: (manifest digest, plan without names).
fn walk(scan: &Scan, path: &Path, desc: &Descriptor, depth: usize) -> Result<(String, ImagePlan), ImageError> {
    if depth > MAX_INDEX_DEPTH {
        return Err(invalid(path, "image indexes nested too deeply"));
    }
    let bytes = blob(scan, path, &desc.digest)?;
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(json_err(format!("{}: {}", path.display(), desc.digest)))?;
    if !is_index(&desc.media_type, &doc) {
        return plan_manifest(scan, path, &desc.digest, bytes).map(|p| (desc.digest.clone(), p));
    }
    let index: Index = serde_json::from_value(doc).map_err(json_err(format!("{}: index {}", path.display(), desc.digest)))?;
    let arch = spec::host_architecture();
    let is_attestation = |d: &Descriptor| {
        d.annotations.get("vnd.docker.reference.type").is_some_and(|t| t == "attestation-manifest")
            || d.platform.as_ref().is_some_and(|p| p.os == "unknown")
    };
    let present = |d: &Descriptor| blob_path(&d.digest).is_some_and(|p| scan.json.contains_key(&scan.real(&p)));
    // This machine's platform first, then entries without a platform; only ones the archive carries
    // (`docker save` of a multi-platform image holds one platform's blobs).
    let candidates = index.manifests.iter().filter(|d| !is_attestation(d) && present(d));
    let best = candidates
        .clone()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch))
        .or_else(|| candidates.clone().find(|d| d.platform.is_none()));
    match best {
        Some(d) => walk(scan, path, d, depth + 1),
        None => Err(invalid(path, format!("index {} has no manifest for linux/{arch} whose blobs are in the archive", desc.digest))),
    }
}

fn plan_manifest(scan: &Scan, path: &Path, digest: &str, bytes: &[u8]) -> Result<ImagePlan, ImageError> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(json_err(format!("{}: manifest {digest}", path.display())))?;
    let config = blob(scan, path, &m.config.digest)?.clone();
    let cfg = parse_config(&config, &format!("{}: config {}", path.display(), m.config.digest))?;
    if cfg.rootfs.diff_ids.len() != m.layers.len() {
        return Err(invalid(path, format!("manifest {digest} has {} layers, its config {}", m.layers.len(), cfg.rootfs.diff_ids.len())));
    }
    let mut layers = Vec::new();
    for (l, diff_id) in m.layers.iter().zip(&cfg.rootfs.diff_ids) {
        if l.media_type.contains("zstd") {
            return Err(ImageError::Unsupported {
                what: format!("{}: layer {}", path.display(), l.digest),
                reason: "zstd-compressed layers are not supported; export the image with gzip or uncompressed layers".into(),
            });
        }
        if l.media_type.contains("foreign") || l.media_type.contains("nondistributable") {
            return Err(ImageError::Unsupported {
                what: format!("{}: layer {}", path.display(), l.digest),
                reason: format!("layer media type {} is not supported", l.media_type),
            });
        }
        let p = blob_path(&l.digest).map(|p| scan.real(&p)).filter(|p| scan.blobs.contains_key(p));
        layers.push(LayerPlan { path: p, diff_id: diff_id.clone(), blob_digest: Some(l.digest.clone()), size: l.size });
    }
    Ok(ImagePlan { names: Vec::new(), config, manifest: Some(bytes.to_vec()), layers })
}
