//! The built-in `docker.io/library/busybox:latest`, built from the host's static busybox (Debian's
//! busybox-static) so a fresh node can run Pods without a registry: one layer with `bin/busybox`, a symlink
//! per applet exactly where `busybox --install -s` puts them, minimal /etc files and the usual top-level dirs.
//! Every tar header is fixed (mtime 0, root-owned, sorted), so one host busybox always gives one image id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::ImageError;
use crate::layer;
use crate::spec;
use crate::{ImageStore, NewImage, BUSYBOX_IMAGE};

/// Where Debian's busybox-static installs it (/bin is /usr/bin on merged-usr systems; both are checked).
const CANDIDATES: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// ELF program header type of the dynamic loader path: present exactly in dynamically linked executables.
const PT_INTERP: u32 = 3;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
bin:x:2:2:bin:/bin:/bin/false\n\
sys:x:3:3:sys:/dev:/bin/false\n\
www-data:x:33:33:www-data:/var/www:/bin/false\n\
nobody:x:65534:65534:nobody:/home:/bin/false\n";

const GROUP: &str = "root:x:0:\n\
daemon:x:1:\n\
bin:x:2:\n\
sys:x:3:\n\
tty:x:5:\n\
www-data:x:33:\n\
users:x:100:\n\
nogroup:x:65534:\n";

enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(String),
}

/// Is this ELF image statically linked (no PT_INTERP)? `Err` says why it is not a usable ELF file.
pub(crate) fn is_static_elf(bytes: &[u8]) -> Result<bool, String> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF executable".into());
    }
    let le = match bytes[5] {
        1 => true,
        2 => false,
        _ => return Err("unknown ELF byte order".into()),
    };
    let u16_at = |o: usize| -> Option<u64> {
        let b: [u8; 2] = bytes.get(o..o + 2)?.try_into().ok()?;
        Some(if le { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) } as u64)
    };
    let u32_at = |o: usize| -> Option<u64> {
        let b: [u8; 4] = bytes.get(o..o + 4)?.try_into().ok()?;
        Some(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) } as u64)
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = bytes.get(o..o + 8)?.try_into().ok()?;
        Some(if le { u64::from_le_bytes(b) } else { u64::from_be_bytes(b) })
    };
    let (phoff, phentsize, phnum) = match bytes[4] {
        1 => (u32_at(0x1c), u16_at(0x2a), u16_at(0x2c)),
        2 => (u64_at(0x20), u16_at(0x36), u16_at(0x38)),
        _ => return Err("unknown ELF class".into()),
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return Err("truncated ELF header".into());
    };
    for i in 0..phnum {
        let off = phoff.checked_add(i * phentsize).ok_or("bad program header offset")?;
        let p_type = u32_at(off as usize).ok_or("truncated program headers")?;
        if p_type == PT_INTERP as u64 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The first static busybox among the usual places, with its bytes.
fn find_static_busybox() -> Result<(PathBuf, Vec<u8>), ImageError> {
    let mut reasons = Vec::new();
    for c in CANDIDATES {
        let path = Path::new(c);
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                reasons.push(format!("{c}: {e}"));
                continue;
            }
        };
        match is_static_elf(&bytes) {
            Ok(true) => return Ok((path.to_path_buf(), bytes)),
            // A dynamic busybox needs the host's libc, which a scratch rootfs does not have.
            Ok(false) => reasons.push(format!("{c} is dynamically linked")),
            Err(e) => reasons.push(format!("{c}: {e}")),
        }
    }
    if reasons.is_empty() {
        reasons.push(format!("none of {} exists", CANDIDATES.join(", ")));
    }
    Err(ImageError::NoBusybox { reason: reasons.join("; ") })
}

/// The applet paths (`bin/sh`, `usr/bin/[`, …), as `busybox --list-full` prints them.
fn applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| ImageError::NoBusybox { reason: format!("running {} --list-full: {e}", busybox.display()) })?;
    if !out.status.success() {
        return Err(ImageError::NoBusybox { reason: format!("{} --list-full failed ({})", busybox.display(), out.status) });
    }
    let list = String::from_utf8_lossy(&out.stdout);
    Ok(list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('/') && !l.split('/').any(|c| c == ".." || c == "." || c.is_empty()))
        .map(str::to_string)
        .collect())
}

/// The rootfs as path -> node, parents implied by the sorted order of a BTreeMap ("usr" < "usr/bin").
fn rootfs(busybox: Vec<u8>, applets: &[String]) -> BTreeMap<String, Node> {
    let mut fs = BTreeMap::new();
    for d in ["bin", "dev", "etc", "home", "proc", "sbin", "sys", "usr", "usr/bin", "usr/sbin", "var"] {
        fs.insert(d.to_string(), Node::Dir(0o755));
    }
    fs.insert("root".into(), Node::Dir(0o700));
    fs.insert("tmp".into(), Node::Dir(0o1777));
    for a in applets {
        // Every parent of an applet link must exist as a directory.
        let mut parent = String::new();
        for comp in a.split('/').take(a.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            fs.entry(parent.clone()).or_insert(Node::Dir(0o755));
        }
        if a != "bin/busybox" {
            fs.insert(a.clone(), Node::Symlink("/bin/busybox".into()));
        }
    }
    fs.insert("bin/busybox".into(), Node::File(0o755, busybox));
    fs.insert("etc/passwd".into(), Node::File(0o644, PASSWD.into()));
    fs.insert("etc/group".into(), Node::File(0o644, GROUP.into()));
    // Empty: the agent bind-mounts the Pod's own over them.
    for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        fs.insert(f.into(), Node::File(0o644, Vec::new()));
    }
    fs
}

/// A deterministic tar of the rootfs.
fn layer_tar(fs: &BTreeMap<String, Node>) -> Result<Vec<u8>, std::io::Error> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, node) in fs {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match node {
            Node::Dir(mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, format!("{path}/"), std::io::empty())?;
            }
            Node::File(mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, &data[..])?;
            }
            Node::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target)?;
            }
        }
    }
    b.into_inner()
}

/// Build the image into `store` and name it `docker.io/library/busybox:latest`.
pub(crate) fn build(store: &ImageStore) -> Result<String, ImageError> {
    let (path, bytes) = find_static_busybox()?;
    let applets = applets(&path)?;
    if !applets.iter().any(|a| a == "bin/sh") {
        return Err(ImageError::NoBusybox { reason: format!("{} has no `sh` applet", path.display()) });
    }
    let tar = layer_tar(&rootfs(bytes, &applets)).map_err(|e| ImageError::Io { path: path.clone(), source: e })?;

    let _import = store.import_lock()?;
    let unpacked = layer::unpack_layer(&tar[..], &store.layers_dir(), "busybox", None)?;
    // Typed documents, not `json!` maps: field order must not depend on serde_json's preserve_order feature,
    // which another crate of the build may switch on, or the image id would change with the build.
    let config = BusyboxConfig {
        architecture: spec::host_architecture(),
        os: "linux",
        config: spec::ContainerConfig { env: Some(vec![PATH_ENV.to_string()]), cmd: Some(vec!["sh".to_string()]), ..Default::default() },
        rootfs: spec::RootFs { kind: "layers".into(), diff_ids: vec![unpacked.diff_id.clone()] },
        history: vec![History {
            created_by: format!("k1s: static busybox from the host ({}) with --install -s applet links", path.display()),
        }],
    };
    let config = serde_json::to_vec(&config).expect("config serialises");
    let manifest = spec::Manifest {
        schema_version: 2,
        media_type: spec::OCI_MANIFEST.into(),
        config: descriptor(spec::OCI_CONFIG, crate::fsutil::sha256_digest(&config), config.len() as u64),
        layers: vec![descriptor(spec::OCI_LAYER_TAR, unpacked.diff_id.clone(), unpacked.size)],
    };
    let manifest = serde_json::to_vec(&manifest).expect("manifest serialises");
    let (names, _) = store.commit(vec![NewImage { names: vec![BUSYBOX_IMAGE.to_string()], config, manifest }], &mut |_| {})?;
    tracing::info!(busybox = %path.display(), layer = %unpacked.diff_id, "built the busybox image from the host's static busybox");
    Ok(names.into_iter().next().unwrap_or_else(|| BUSYBOX_IMAGE.to_string()))
}

#[derive(serde::Serialize)]
struct BusyboxConfig {
    architecture: &'static str,
    os: &'static str,
    config: spec::ContainerConfig,
    rootfs: spec::RootFs,
    history: Vec<History>,
}

#[derive(serde::Serialize)]
struct History {
    created_by: String,
}

fn descriptor(media_type: &str, digest: String, size: u64) -> spec::Descriptor {
    spec::Descriptor { media_type: media_type.into(), digest, size, annotations: Default::default(), platform: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_static_check() {
        // The test binary itself is dynamically linked (Rust's default on glibc).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(is_static_elf(&me), Ok(false));
        assert!(is_static_elf(b"#!/bin/sh\necho not elf\n").is_err());
    }

    #[test]
    fn layer_is_deterministic() {
        let fs1 = rootfs(b"fake".to_vec(), &["bin/sh".into(), "usr/bin/[".into()]);
        let fs2 = rootfs(b"fake".to_vec(), &["usr/bin/[".into(), "bin/sh".into()]);
        assert_eq!(layer_tar(&fs1).unwrap(), layer_tar(&fs2).unwrap());
    }
}
