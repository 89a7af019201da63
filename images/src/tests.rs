//! Store-level tests: the busybox recipe, `docker save` and OCI archives synthesised here, import_dir's
//! cache, removal with garbage collection. They need root (whiteouts are device nodes, opaque dirs are
//! trusted.* xattrs), as the node agent does.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::*;
use crate::fsutil::{digest_hex, lgetxattr, sha256_digest as sha};

struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> Self {
        TarBuilder(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn dir(mut self, path: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.0.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    fn file(mut self, path: &str, data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn hex(digest: &str) -> &str {
    digest_hex(digest).unwrap()
}

fn config_json(diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": spec::host_architecture(),
        "os": "linux",
        "config": { "Cmd": cmd, "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/data", "User": "1000:1000" },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap()
}

fn open_store(dir: &Path) -> ImageStore {
    ImageStore::open(&dir.join("images")).unwrap()
}

/// Bottom layer: a file later whited out, a directory later made opaque, a file that stays.
fn layer1() -> Vec<u8> {
    TarBuilder::new().dir("etc/").file("etc/a", b"a").dir("data/").file("data/x", b"x").file("keep", b"k").finish()
}

/// Top layer: `.wh.a` deletes etc/a, `.wh..wh..opq` hides the lower data/.
fn layer2() -> Vec<u8> {
    TarBuilder::new().dir("etc/").file("etc/.wh.a", b"").dir("data/").file("data/.wh..wh..opq", b"").file("data/new", b"n").finish()
}

/// A `docker save` archive (pre-25 layout: `<id>/layer.tar`), gzipped: `example.com/test/app:1` with both
/// layers, and `other:2` whose only layer is layer1 through a symlink, as docker writes repeated layers.
fn docker_save_archive(dir: &Path) -> PathBuf {
    let (l1, l2) = (layer1(), layer2());
    let (d1, d2) = (sha(&l1), sha(&l2));
    let cfg = config_json(&[d1.clone(), d2.clone()], &["sh", "-c", "ls"]);
    let cfg2 = config_json(std::slice::from_ref(&d1), &["echo", "other"]);
    let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
    let manifest = json!([
        { "Config": format!("{}.json", hex(&sha(&cfg))), "RepoTags": ["example.com/test/app:1"], "Layers": [format!("{a}/layer.tar"), format!("{b}/layer.tar")] },
        { "Config": format!("{}.json", hex(&sha(&cfg2))), "RepoTags": ["other:2"], "Layers": [format!("{c}/layer.tar")] },
    ]);
    let tar = TarBuilder::new()
        .dir(&format!("{a}/"))
        .file(&format!("{a}/VERSION"), b"1.0")
        .file(&format!("{a}/json"), b"{}")
        .file(&format!("{a}/layer.tar"), &l1)
        .dir(&format!("{b}/"))
        .file(&format!("{b}/layer.tar"), &l2)
        .dir(&format!("{c}/"))
        .symlink(&format!("{c}/layer.tar"), &format!("../{a}/layer.tar"))
        .file(&format!("{}.json", hex(&sha(&cfg))), &cfg)
        .file(&format!("{}.json", hex(&sha(&cfg2))), &cfg2)
        .file("manifest.json", &serde_json::to_vec(&manifest).unwrap())
        .file("repositories", br#"{"example.com/test/app":{"1":"bbbb"}}"#)
        .finish();
    let path = dir.join("app.tar.gz");
    std::fs::write(&path, gzip(&tar)).unwrap();
    path
}

struct Oci {
    path: PathBuf,
    manifest_digest: String,
    config_digest: String,
}

/// An OCI image layout (plain tar): index.json -> a multi-platform index (foreign platform without blobs,
/// an attestation, this machine's manifest) -> manifest -> config + one gzipped layer.
/// `name` annotations go on the top-level descriptor; `docker_tags` adds a docker 25+ manifest.json.
fn oci_archive(dir: &Path, file: &str, annotations: serde_json::Value, docker_tags: Option<&[&str]>) -> Oci {
    let layer = TarBuilder::new().file("hello.txt", b"hi\n").symlink("link", "/hello.txt").finish();
    let blob = gzip(&layer);
    let cfg = config_json(&[sha(&layer)], &["cat", "/hello.txt"]);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": spec::OCI_MANIFEST,
        "config": { "mediaType": spec::OCI_CONFIG, "digest": sha(&cfg), "size": cfg.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(&blob), "size": blob.len() }],
    }))
    .unwrap();
    let foreign_arch = if spec::host_architecture() == "amd64" { "arm64" } else { "amd64" };
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": spec::OCI_INDEX,
        "manifests": [
            { "mediaType": spec::OCI_MANIFEST, "digest": format!("sha256:{}", "f".repeat(64)), "size": 1, "platform": { "architecture": foreign_arch, "os": "linux" } },
            { "mediaType": spec::OCI_MANIFEST, "digest": sha(&manifest), "size": manifest.len(), "platform": { "architecture": "unknown", "os": "unknown" },
              "annotations": { "vnd.docker.reference.type": "attestation-manifest" } },
            { "mediaType": spec::OCI_MANIFEST, "digest": sha(&manifest), "size": manifest.len(), "platform": { "architecture": spec::host_architecture(), "os": "linux" } },
        ],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": spec::OCI_INDEX, "digest": sha(&nested), "size": nested.len(), "annotations": annotations }],
    }))
    .unwrap();
    let mut t = TarBuilder::new()
        .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .dir("blobs/")
        .dir("blobs/sha256/")
        .file(&format!("blobs/sha256/{}", hex(&sha(&blob))), &blob)
        .file(&format!("blobs/sha256/{}", hex(&sha(&cfg))), &cfg)
        .file(&format!("blobs/sha256/{}", hex(&sha(&manifest))), &manifest)
        .file(&format!("blobs/sha256/{}", hex(&sha(&nested))), &nested)
        .file("index.json", &index);
    if let Some(tags) = docker_tags {
        let m = json!([{ "Config": format!("blobs/sha256/{}", hex(&sha(&cfg))), "RepoTags": tags, "Layers": [format!("blobs/sha256/{}", hex(&sha(&blob)))] }]);
        t = t.file("manifest.json", &serde_json::to_vec(&m).unwrap());
    }
    let path = dir.join(file);
    std::fs::write(&path, t.finish()).unwrap();
    Oci { path, manifest_digest: sha(&manifest), config_digest: sha(&cfg) }
}

fn layer_dirs(store: &ImageStore) -> BTreeSet<String> {
    std::fs::read_dir(store.layers_dir()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn busybox_image_from_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let built = store.ensure_busybox().unwrap_or_else(|e| {
        panic!("{e}\n\nThis test needs the host's static busybox. Install it: apt-get update && apt-get install -y busybox-static")
    });
    assert_eq!(built.as_deref(), Some(BUSYBOX_IMAGE));
    // Present now: nothing to do.
    assert_eq!(store.ensure_busybox().unwrap(), None);

    let img = store.resolve("busybox").unwrap().expect("busybox resolves by its short name");
    assert_eq!(img.name, BUSYBOX_IMAGE);
    assert_eq!(img.layers.len(), 1);
    assert_eq!(img.config.cmd, vec!["sh"]);
    assert_eq!(img.config.env, vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
    let root = &img.layers[0];
    assert_eq!(std::fs::read_link(root.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
    let bb = std::fs::symlink_metadata(root.join("bin/busybox")).unwrap();
    assert!(bb.is_file() && bb.mode() & 0o111 != 0);
    assert!(std::fs::read_link(root.join("usr/bin/env")).is_ok(), "applets outside bin/ are linked too");
    assert!(std::fs::read_to_string(root.join("etc/passwd")).unwrap().starts_with("root:x:0:0:root:/root:/bin/sh\n"));
    assert!(std::fs::read_to_string(root.join("etc/group")).unwrap().contains("nogroup:x:65534:"));
    for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        assert_eq!(std::fs::metadata(root.join(f)).unwrap().len(), 0, "{f}");
    }
    assert_eq!(std::fs::metadata(root.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
    for d in ["proc", "sys", "dev", "var", "home", "root"] {
        assert!(root.join(d).is_dir(), "{d}");
    }
    // The shell really runs from the layer (static binary, no loader needed).
    let out = Command::new(root.join("bin/busybox")).args(["sh", "-c", "echo ok"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");

    // Deterministic: another store builds the same id.
    let tmp2 = tempfile::tempdir().unwrap();
    let store2 = open_store(tmp2.path());
    store2.ensure_busybox().unwrap();
    assert_eq!(store2.resolve("busybox").unwrap().unwrap().id, img.id);
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].names, vec![BUSYBOX_IMAGE]);
    assert!(list[0].size > 1_000_000, "size {}", list[0].size);
}

#[test]
fn docker_save_archive_with_whiteouts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let archive = docker_save_archive(tmp.path());
    let mut events = Vec::new();
    let names = store.import_archive(&archive, &mut |p| events.push(p)).unwrap();
    assert_eq!(names, vec!["example.com/test/app:1", "docker.io/library/other:2"]);
    let layers: Vec<_> = events.iter().filter(|e| matches!(e, Progress::Layer { .. })).collect();
    assert_eq!(layers.len(), 2, "{events:?}");
    assert!(layers.iter().all(|e| matches!(e, Progress::Layer { total: 2, reused: false, .. })), "{events:?}");
    assert_eq!(events.iter().filter(|e| matches!(e, Progress::Image { .. })).count(), 2);

    let img = store.resolve("example.com/test/app:1").unwrap().unwrap();
    assert_eq!(img.layers.len(), 2);
    assert_eq!(img.layers[0], store.layers_dir().join(hex(&sha(&layer1()))), "bottom layer first");
    assert_eq!(img.config.cmd, vec!["sh", "-c", "ls"]);
    assert_eq!(img.config.working_dir, "/data");
    assert_eq!(img.config.user, "1000:1000");
    assert_eq!(img.config.env, vec!["PATH=/bin", "A=1"]);
    let (bottom, top) = (&img.layers[0], &img.layers[1]);
    assert_eq!(std::fs::read(bottom.join("etc/a")).unwrap(), b"a");
    // `.wh.a` became a 0/0 character device named `a`.
    let wh = std::fs::symlink_metadata(top.join("etc/a")).unwrap();
    assert!(wh.file_type().is_char_device(), "{wh:?}");
    assert_eq!(wh.rdev(), 0);
    assert!(!top.join("etc/.wh.a").exists());
    // `.wh..wh..opq` became trusted.overlay.opaque=y.
    assert_eq!(lgetxattr(&top.join("data"), "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
    assert!(!top.join("data/.wh..wh..opq").exists());
    assert_eq!(lgetxattr(&bottom.join("data"), "trusted.overlay.opaque").unwrap(), None);

    // The kernel agrees: mounted as overlay lowerdirs (top first), the whiteouts hide what they should.
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let opts = format!("lowerdir={}:{}", top.display(), bottom.display());
    let st = Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&mnt).status().unwrap();
    assert!(st.success(), "mount -t overlay failed");
    let seen = (mnt.join("etc/a").exists(), mnt.join("data/x").exists(), mnt.join("data/new").exists(), mnt.join("keep").exists());
    Command::new("umount").arg(&mnt).status().unwrap();
    assert_eq!(seen, (false, false, true, true), "(etc/a, data/x, data/new, keep) through overlayfs");

    // The second image shares the bottom layer (reached through the archive's symlink).
    let other = store.resolve("other:2").unwrap().unwrap();
    assert_eq!(other.layers, vec![bottom.clone()]);
    assert_eq!(layer_dirs(&store).len(), 2);

    // Importing again unpacks nothing.
    let mut again = Vec::new();
    store.import_archive(&archive, &mut |p| again.push(p)).unwrap();
    assert!(again.iter().all(|e| !matches!(e, Progress::Layer { reused: false, .. })), "{again:?}");
}

#[test]
fn oci_layout_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let oci = oci_archive(
        tmp.path(),
        "oci.tar",
        json!({ "io.containerd.image.name": "docker.io/library/ocitest:1", "org.opencontainers.image.ref.name": "1" }),
        None,
    );
    let names = store.import_archive(&oci.path, &mut |_| {}).unwrap();
    assert_eq!(names, vec!["docker.io/library/ocitest:1"]);
    let img = store.resolve("ocitest:1").unwrap().unwrap();
    assert_eq!(img.id, oci.config_digest);
    assert_eq!(img.config.cmd, vec!["cat", "/hello.txt"]);
    assert_eq!(std::fs::read(img.layers[0].join("hello.txt")).unwrap(), b"hi\n");
    assert_eq!(std::fs::read_link(img.layers[0].join("link")).unwrap(), Path::new("/hello.txt"));
    // The manifest is kept verbatim, so its registry digest still finds the image.
    let by_digest = store.resolve(&format!("ocitest@{}", oci.manifest_digest)).unwrap().unwrap();
    assert_eq!(by_digest.id, img.id);
    assert!(store.resolve(&format!("other@{}", oci.manifest_digest)).unwrap().is_none(), "digest of another repository");
    // By id and by id prefix.
    assert_eq!(store.resolve(&oci.config_digest).unwrap().unwrap().name, "docker.io/library/ocitest:1");
    assert_eq!(store.resolve(&hex(&oci.config_digest)[..12]).unwrap().unwrap().id, img.id);
    assert!(store.resolve("ocitest:2").unwrap().is_none());
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].size > 0);
}

#[test]
fn oci_names_from_docker_manifest_or_by_id() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    // docker 25+: the index only says "latest"; manifest.json has the repository.
    let d25 = oci_archive(tmp.path(), "d25.tar", json!({ "org.opencontainers.image.ref.name": "latest" }), Some(&["ocitest:9"]));
    assert_eq!(store.import_archive(&d25.path, &mut |_| {}).unwrap(), vec!["docker.io/library/ocitest:9"]);

    // Only a tag and nothing else: kept unnamed, by id.
    let tmp2 = tempfile::tempdir().unwrap();
    let store2 = open_store(tmp2.path());
    let bare = oci_archive(tmp2.path(), "bare.tar", json!({ "org.opencontainers.image.ref.name": "latest" }), None);
    assert_eq!(store2.import_archive(&bare.path, &mut |_| {}).unwrap(), vec![bare.config_digest.clone()]);
    let list = store2.list().unwrap();
    assert_eq!(list, vec![ImageSummary { names: vec![], id: bare.config_digest.clone(), size: list[0].size }]);
    assert_eq!(store2.resolve(&bare.config_digest).unwrap().unwrap().name, bare.config_digest);
    // Naming it later replaces the id-only ref.
    let named = oci_archive(tmp2.path(), "named.tar", json!({ "io.containerd.image.name": "ocitest:3" }), None);
    store2.import_archive(&named.path, &mut |_| {}).unwrap();
    assert_eq!(store2.list().unwrap()[0].names, vec!["docker.io/library/ocitest:3"]);
    store2.remove("ocitest:3").unwrap();
    assert!(store2.list().unwrap().is_empty());
}

#[test]
fn import_dir_uses_its_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let dir = tmp.path().join("import");
    std::fs::create_dir(&dir).unwrap();
    docker_save_archive(&dir);
    oci_archive(&dir, "oci.tgz", json!({ "io.containerd.image.name": "ocitest:1" }), None);
    std::fs::write(dir.join("broken.tar"), b"not a tar at all").unwrap();
    std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();

    let first = store.import_dir(&dir).unwrap();
    assert_eq!(first, vec!["example.com/test/app:1", "docker.io/library/other:2", "docker.io/library/ocitest:1"]);
    // Second run: every file unchanged, nothing loaded.
    assert_eq!(store.import_dir(&dir).unwrap(), Vec::<String>::new());
    // Touched (new mtime) but same content: hashed, still not loaded.
    let f = std::fs::File::options().write(true).open(dir.join("oci.tgz")).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    drop(f);
    assert_eq!(store.import_dir(&dir).unwrap(), Vec::<String>::new());
    // A copy under another name: known content.
    std::fs::copy(dir.join("app.tar.gz"), dir.join("copy.tgz")).unwrap();
    assert_eq!(store.import_dir(&dir).unwrap(), Vec::<String>::new());
    // An image removed from the store comes back from its file.
    store.remove("ocitest:1").unwrap();
    assert_eq!(store.import_dir(&dir).unwrap(), vec!["docker.io/library/ocitest:1"]);
    // A missing directory is empty.
    assert_eq!(store.import_dir(&tmp.path().join("nope")).unwrap(), Vec::<String>::new());
}

#[test]
fn remove_then_list() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    store.import_archive(&docker_save_archive(tmp.path()), &mut |_| {}).unwrap();
    let oci = oci_archive(tmp.path(), "oci.tar", json!({ "io.containerd.image.name": "ocitest:1" }), None);
    store.import_archive(&oci.path, &mut |_| {}).unwrap();
    let names = |s: &ImageStore| s.list().unwrap().into_iter().flat_map(|i| i.names).collect::<Vec<_>>();
    assert_eq!(names(&store), vec!["docker.io/library/ocitest:1", "docker.io/library/other:2", "example.com/test/app:1"]);
    assert_eq!(layer_dirs(&store).len(), 3);

    store.remove("example.com/test/app:1").unwrap();
    assert_eq!(names(&store), vec!["docker.io/library/ocitest:1", "docker.io/library/other:2"]);
    assert!(store.resolve("example.com/test/app:1").unwrap().is_none());
    // Its top layer went; the bottom one stays for other:2.
    assert_eq!(layer_dirs(&store), BTreeSet::from([hex(&sha(&layer1())).to_string(), hex(&sha(&oci_layer())).to_string()]));

    assert!(matches!(store.remove("example.com/test/app:1"), Err(ImageError::NotFound { .. })));
    // By id prefix.
    store.remove(&hex(&oci.config_digest)[..12]).unwrap();
    store.remove("other:2").unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(layer_dirs(&store).is_empty());
    let blobs = std::fs::read_dir(store.root().join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 0);
}

fn oci_layer() -> Vec<u8> {
    TarBuilder::new().file("hello.txt", b"hi\n").symlink("link", "/hello.txt").finish()
}

#[test]
fn concurrent_imports_of_one_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let archive = docker_save_archive(tmp.path());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3).map(|_| s.spawn(|| store.import_archive(&archive, &mut |_| {}))).collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap().len(), 2);
        }
    });
    assert_eq!(layer_dirs(&store).len(), 2, "no temporaries left, each layer once");
    assert!(store.resolve("example.com/test/app:1").unwrap().is_some());
}

#[test]
fn corrupt_archives_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    // A layer whose content does not match the config's diff id.
    let l1 = layer1();
    let cfg = config_json(&[format!("sha256:{}", "0".repeat(64))], &["sh"]);
    let manifest = json!([{ "Config": "c.json", "RepoTags": ["bad:1"], "Layers": ["l/layer.tar"] }]);
    let tar = TarBuilder::new()
        .file("l/layer.tar", &l1)
        .file("c.json", &cfg)
        .file("manifest.json", &serde_json::to_vec(&manifest).unwrap())
        .finish();
    let path = tmp.path().join("bad.tar");
    std::fs::write(&path, tar).unwrap();
    let err = store.import_archive(&path, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(store.list().unwrap().is_empty());
    assert!(layer_dirs(&store).is_empty(), "no half layer left behind");

    std::fs::write(&path, b"hello").unwrap();
    let err = store.import_archive(&path, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImageError::InvalidArchive { .. }), "{err}");
}
