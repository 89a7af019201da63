//! Unpacking one layer tar (plain or gzip) into `layers/<diff id>/`, in the form overlayfs reads as a lowerdir.
//!
//! OCI whiteouts become overlayfs ones (image-spec layer.md "Whiteouts", kernel overlayfs.rst): `.wh.<name>`
//! is a 0/0 character device `<name>`, `.wh..wh..opq` is `trusted.overlay.opaque=y` on its directory.
//! Every write happens inside the layer directory: entry paths with `..` are refused, and parent directories
//! are resolved with symlinks interpreted relative to the layer root (docker's FollowSymlinkInScope), so a
//! symlink in the layer can never send a later entry outside it. The final component of an entry is never
//! followed: whatever is there is replaced.
//!
//! The layer is unpacked into a temporary directory, synced (one syncfs) and renamed to its digest, so the
//! name `layers/<hex>` only ever denotes a complete layer, and concurrent importers of one layer both succeed.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{self, Cursor, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use flate2::read::MultiGzDecoder;

use crate::error::{ImageError, IoContext};
use crate::fsutil::{self, HashReader};

const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Symlink expansions allowed while resolving one path, as the kernel's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;

/// What unpacking a layer stream produced.
#[derive(Debug, Clone)]
pub(crate) struct Unpacked {
    /// `sha256:` of the uncompressed tar: the layer's diff id and its directory name.
    pub diff_id: String,
    /// Size of the uncompressed tar.
    pub size: u64,
    /// `sha256:` of the bytes as read (compressed, if they were): the blob digest a manifest names.
    pub blob_digest: String,
}

/// How a blob is encoded, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Gzip,
    Zstd,
    Tar,
    Json,
    Other,
}

pub(crate) fn sniff(prefix: &[u8]) -> Sniffed {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        Sniffed::Gzip
    } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Sniffed::Zstd
    } else if prefix.len() >= 262 && &prefix[257..262] == b"ustar" {
        Sniffed::Tar
    } else if prefix.len() >= 512 && prefix[..512].iter().all(|b| *b == 0) {
        // An empty tar: only the end-of-archive blocks.
        Sniffed::Tar
    } else if matches!(prefix.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{') | Some(b'[')) {
        Sniffed::Json
    } else {
        Sniffed::Other
    }
}

/// Read up to `n` bytes (fewer only at end of stream): enough to sniff.
pub(crate) fn read_prefix(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Unpack a layer blob (gzip or plain tar) read from `reader` into `layers_dir/<diff id hex>`.
/// `label` names the layer in errors (its blob digest or archive path). When `expected_diff_id` is given
/// (from the image config's rootfs.diff_ids), the unpacked content must hash to it.
pub(crate) fn unpack_layer(
    reader: impl Read,
    layers_dir: &Path,
    label: &str,
    expected_diff_id: Option<&str>,
) -> Result<Unpacked, ImageError> {
    let tmp = fsutil::temp_path(layers_dir);
    fs::create_dir(&tmp).at(&tmp)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).at(&tmp)?;
    match unpack_into(reader, &tmp, label, expected_diff_id) {
        Ok(u) => {
            let hex = fsutil::digest_hex(&u.diff_id).expect("we format diff ids ourselves").to_string();
            let target = layers_dir.join(&hex);
            if target.exists() {
                // Another importer (or an earlier run) got there first; the content is the same by its digest.
                let _ = fs::remove_dir_all(&tmp);
                return Ok(u);
            }
            // Durable before it gets its name: a crash must never leave a valid-looking half layer.
            fsutil::syncfs(&tmp).at(&tmp)?;
            match fs::rename(&tmp, &target) {
                Ok(()) => fsutil::fsync_dir(layers_dir)?,
                // Lost a race with a concurrent importer of the same layer.
                Err(_) if target.is_dir() => {
                    let _ = fs::remove_dir_all(&tmp);
                }
                Err(e) => {
                    let _ = fs::remove_dir_all(&tmp);
                    return Err(ImageError::Io { path: target, source: e });
                }
            }
            Ok(u)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn unpack_into(reader: impl Read, dir: &Path, label: &str, expected_diff_id: Option<&str>) -> Result<Unpacked, ImageError> {
    let io_err = |source: io::Error| ImageError::Unpack { layer: label.to_string(), entry: String::new(), source };
    let mut raw = HashReader::new(reader);
    let prefix = read_prefix(&mut raw, 512).map_err(io_err)?;
    let kind = sniff(&prefix);
    let (diff_id, size) = {
        let stream = Cursor::new(prefix).chain(&mut raw);
        let decompressed: Box<dyn Read + '_> = match kind {
            Sniffed::Gzip => Box::new(MultiGzDecoder::new(stream)),
            Sniffed::Tar => Box::new(stream),
            Sniffed::Zstd => {
                return Err(ImageError::Unsupported {
                    what: format!("layer {label}"),
                    reason: "zstd-compressed layers are not supported; export the image with gzip or uncompressed layers".into(),
                });
            }
            Sniffed::Json | Sniffed::Other => {
                return Err(ImageError::Unsupported { what: format!("layer {label}"), reason: "not a tar or tar.gz layer".into() });
            }
        };
        let mut diff = HashReader::new(decompressed);
        unpack_tar(&mut diff, dir, label)?;
        diff.drain().map_err(io_err)?;
        diff.finish()
    };
    raw.drain().map_err(io_err)?;
    let (blob_digest, _) = raw.finish();
    if let Some(expected) = expected_diff_id.filter(|e| *e != diff_id) {
        return Err(ImageError::DigestMismatch { what: format!("layer {label}"), expected: expected.to_string(), actual: diff_id });
    }
    Ok(Unpacked { diff_id, size, blob_digest })
}

/// Why one entry could not be applied.
enum EntryError {
    Unsafe(String),
    Io(io::Error),
}

impl From<io::Error> for EntryError {
    fn from(e: io::Error) -> Self {
        EntryError::Io(e)
    }
}

/// Apply every entry of an uncompressed layer tar to `root`.
fn unpack_tar(reader: impl Read, root: &Path, label: &str) -> Result<(), ImageError> {
    let mut archive = tar::Archive::new(reader);
    let unpack_err = |entry: &str, source: io::Error| ImageError::Unpack { layer: label.to_string(), entry: entry.to_string(), source };
    // Directory modes and mtimes are applied last: adding children changes a directory's mtime, and a
    // read-only directory would refuse them (for a non-root caller).
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    for entry in archive.entries().map_err(|e| unpack_err("", e))? {
        let mut entry = entry.map_err(|e| unpack_err("", e))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match apply_entry(root, &mut entry, &mut dirs) {
            Ok(()) => {}
            Err(EntryError::Unsafe(reason)) => return Err(ImageError::UnsafeEntry { layer: label.to_string(), entry: name, reason }),
            Err(EntryError::Io(e)) => return Err(unpack_err(&name, e)),
        }
    }
    // Children before parents (a child's mtime update would touch its parent); a directory listed twice
    // gets its last entry's attributes.
    let mut done = std::collections::HashSet::new();
    for (path, mode, mtime) in dirs.into_iter().rev() {
        let still_dir = fs::symlink_metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
        if !still_dir || !done.insert(path.clone()) {
            continue;
        }
        let entry = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| unpack_err(&entry, e))?;
        let f = fs::File::open(&path).map_err(|e| unpack_err(&entry, e))?;
        f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime)).map_err(|e| unpack_err(&entry, e))?;
    }
    Ok(())
}

fn apply_entry<R: Read>(root: &Path, entry: &mut tar::Entry<'_, R>, dirs: &mut Vec<(PathBuf, u32, u64)>) -> Result<(), EntryError> {
    let comps = clean_components(&entry.path()?)?;
    let header = entry.header();
    let kind = header.entry_type();
    let mode = header.mode()? & 0o7777;
    let (uid, gid, mtime) = (header.uid()? as u32, header.gid()? as u32, header.mtime()?);
    let device = if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
        (header.device_major()?.unwrap_or(0), header.device_minor()?.unwrap_or(0))
    } else {
        (0, 0)
    };

    let Some((name, parent_comps)) = comps.split_last() else {
        // The layer root itself ("./"): only its attributes matter.
        if kind.is_dir() {
            chown(root, uid, gid)?;
            dirs.push((root.to_path_buf(), mode, mtime));
        }
        return Ok(());
    };

    let name_bytes = name.as_bytes();
    if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        let parent = resolve_dir(root, parent_comps, true)?;
        if name_bytes == WHITEOUT_OPAQUE.as_bytes() {
            // Opaque directory: the lower layers' contents of this directory are hidden.
            fsutil::lsetxattr(&parent, OVERLAY_OPAQUE_XATTR, b"y")?;
        } else if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // Other `.wh..wh.` names are aufs bookkeeping (hardlink dirs), meaningless to overlayfs.
            tracing::debug!(entry = %String::from_utf8_lossy(name_bytes), "skipping aufs metadata entry");
        } else {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(EntryError::Unsafe("whiteout of an invalid name".into()));
            }
            let target = parent.join(OsStr::from_bytes(hidden));
            remove_existing(&target)?;
            fsutil::mknod(&target, libc::S_IFCHR, 0, 0)?;
        }
        return Ok(());
    }

    let parent = resolve_dir(root, parent_comps, true)?;
    let target = parent.join(name);
    let xattrs = pax_xattrs(entry)?;
    match kind {
        tar::EntryType::Directory => {
            match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_existing(&target)?;
                    fs::create_dir(&target)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&target)?,
                Err(e) => return Err(e.into()),
            }
            chown(&target, uid, gid)?;
            set_xattrs(&target, &xattrs);
            dirs.push((target, mode, mtime));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            remove_existing(&target)?;
            // O_NOFOLLOW + create_new: the file is new and ours, whatever raced with us.
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&target)?;
            io::copy(entry, &mut f)?;
            fchown(&f, uid, gid)?;
            // After chown: chown clears setuid/setgid bits and file capabilities.
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            set_xattrs(&target, &xattrs);
            f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))?;
        }
        tar::EntryType::Symlink => {
            let link = entry.link_name()?.ok_or_else(|| EntryError::Unsafe("symlink without a target".into()))?;
            remove_existing(&target)?;
            // The target is stored verbatim, absolute or not: it is only ever followed inside the container
            // (or by resolve_dir, which keeps it inside the layer).
            std::os::unix::fs::symlink(&link, &target)?;
            chown(&target, uid, gid)?;
        }
        tar::EntryType::Link => {
            let link = entry.link_name()?.ok_or_else(|| EntryError::Unsafe("hardlink without a target".into()))?;
            let link_comps = clean_components(&link)?;
            let Some((link_name, link_parent)) = link_comps.split_last() else {
                return Err(EntryError::Unsafe("hardlink to the layer root".into()));
            };
            let source = resolve_dir(root, link_parent, false)?.join(link_name);
            if source == target {
                return Ok(());
            }
            let meta = fs::symlink_metadata(&source)
                .map_err(|e| io::Error::new(e.kind(), format!("hardlink target {} not in this layer: {e}", link.display())))?;
            if meta.is_dir() {
                return Err(EntryError::Unsafe("hardlink to a directory".into()));
            }
            remove_existing(&target)?;
            // linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink, as tar means.
            fs::hard_link(&source, &target)?;
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let file_type = match kind {
                tar::EntryType::Char => libc::S_IFCHR,
                tar::EntryType::Block => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            remove_existing(&target)?;
            fsutil::mknod(&target, file_type | mode, device.0, device.1)?;
            chown(&target, uid, gid)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
        }
        other => {
            tracing::debug!(entry = %target.display(), kind = ?other, "skipping layer entry of an unsupported type");
        }
    }
    Ok(())
}

/// The normal components of an entry path; a leading `/` or `./` is dropped (tar members are relative to
/// the layer root whatever they say), `..` is refused.
fn clean_components(path: &Path) -> Result<Vec<OsString>, EntryError> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(EntryError::Unsafe("path contains `..`".into())),
        }
    }
    Ok(out)
}

/// Resolve the directory `comps` under `root` as the container will see it: symlinks are followed, absolute
/// targets and `..` are taken relative to the layer root and cannot climb above it. Missing directories are
/// created (0755, as tar does for implicit parents) when `create`, else reported as not found.
fn resolve_dir(root: &Path, comps: &[OsString], create: bool) -> Result<PathBuf, EntryError> {
    let mut queue: VecDeque<OsString> = comps.iter().cloned().collect();
    let mut resolved = root.to_path_buf();
    let mut depth = 0usize;
    let mut links = 0usize;
    while let Some(c) = queue.pop_front() {
        if c == ".." {
            if depth > 0 {
                resolved.pop();
                depth -= 1;
            }
            continue;
        }
        if c.is_empty() || c == "." {
            continue;
        }
        let next = resolved.join(&c);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.is_dir() => {
                resolved = next;
                depth += 1;
            }
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(EntryError::Io(io::Error::other("too many levels of symbolic links")));
                }
                let target = fs::read_link(&next)?;
                if target.is_absolute() {
                    resolved = root.to_path_buf();
                    depth = 0;
                }
                for part in target.components().rev() {
                    match part {
                        Component::Normal(n) => queue.push_front(n.to_os_string()),
                        Component::ParentDir => queue.push_front(OsString::from("..")),
                        _ => {}
                    }
                }
            }
            Ok(_) => {
                return Err(EntryError::Io(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a directory", next.display()))))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&next)?;
                resolved = next;
                depth += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(resolved)
}

fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// lchown; EPERM is ignored so a non-root caller (tests, tools) still gets a usable tree owned by itself.
fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    ignore_eperm(std::os::unix::fs::lchown(path, Some(uid), Some(gid)))
}

fn fchown(f: &fs::File, uid: u32, gid: u32) -> io::Result<()> {
    ignore_eperm(std::os::unix::fs::fchown(f, Some(uid), Some(gid)))
}

fn ignore_eperm(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        other => other,
    }
}

/// Extended attributes recorded in PAX headers (`SCHILY.xattr.<name>`, as GNU tar and docker write them):
/// file capabilities (`security.capability`) are the ones images rely on.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

fn set_xattrs(path: &Path, xattrs: &[(String, Vec<u8>)]) {
    for (name, value) in xattrs {
        // Best effort, as containerd: a namespace this filesystem refuses (selinux labels on ext4 without
        // selinux) must not fail the import.
        if let Err(e) = fsutil::lsetxattr(path, name, value) {
            tracing::debug!(path = %path.display(), xattr = %name, error = %e, "cannot set xattr from layer");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn header(kind: tar::EntryType, path: &str, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(path).unwrap();
        h.set_size(size);
        h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    }

    #[test]
    fn refuses_parent_components() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses "..", so write the name bytes directly, as a hostile archive would.
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../escape.txt");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        let t = tar_with(|b| b.append(&h, &b"x"[..]).unwrap());
        let err = unpack_layer(&t[..], dir.path(), "evil", None).unwrap_err();
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
        assert!(!dir.path().parent().unwrap().join("escape.txt").exists());
        // The temporary directory is gone too.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn symlinks_cannot_escape() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let t = tar_with(|b| {
            let mut h = header(tar::EntryType::Symlink, "evil", 0);
            h.set_link_name(outside.path()).unwrap();
            h.set_cksum();
            b.append(&h, io::empty()).unwrap();
            let mut h = header(tar::EntryType::Symlink, "up", 0);
            h.set_link_name("../../../../..").unwrap();
            h.set_cksum();
            b.append(&h, io::empty()).unwrap();
            b.append(&header(tar::EntryType::Regular, "evil/pwned", 1), &b"x"[..]).unwrap();
            b.append(&header(tar::EntryType::Regular, "up/tmp/pwned2", 1), &b"y"[..]).unwrap();
        });
        let u = unpack_layer(&t[..], dir.path(), "links", None).unwrap();
        let layer = dir.path().join(fsutil::digest_hex(&u.diff_id).unwrap());
        assert!(!outside.path().join("pwned").exists());
        // The absolute symlink was followed inside the layer: <layer>/<outside path>/pwned.
        let inside = layer.join(outside.path().strip_prefix("/").unwrap()).join("pwned");
        assert_eq!(fs::read(&inside).unwrap(), b"x");
        assert_eq!(fs::read(layer.join("tmp/pwned2")).unwrap(), b"y");
        assert_eq!(fs::read_link(layer.join("evil")).unwrap(), outside.path());
    }

    #[test]
    fn hardlinks_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar_with(|b| {
            b.append(&header(tar::EntryType::Directory, "ro/", 0), io::empty()).unwrap();
            let mut h = header(tar::EntryType::Regular, "ro/suid", 2);
            h.set_mode(0o4755);
            h.set_cksum();
            b.append(&h, &b"hi"[..]).unwrap();
            let mut h = header(tar::EntryType::Link, "ro/again", 0);
            h.set_link_name("ro/suid").unwrap();
            h.set_cksum();
            b.append(&h, io::empty()).unwrap();
            let mut h = header(tar::EntryType::Directory, "ro/", 0);
            h.set_mode(0o555);
            h.set_cksum();
            b.append(&h, io::empty()).unwrap();
        });
        let u = unpack_layer(&t[..], dir.path(), "modes", None).unwrap();
        let layer = dir.path().join(fsutil::digest_hex(&u.diff_id).unwrap());
        use std::os::unix::fs::MetadataExt;
        let a = fs::metadata(layer.join("ro/suid")).unwrap();
        let b = fs::metadata(layer.join("ro/again")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.mode() & 0o7777, 0o4755);
        assert_eq!(fs::metadata(layer.join("ro")).unwrap().mode() & 0o7777, 0o555);
        assert_eq!(u.size, t.len() as u64);
        assert_eq!(u.diff_id, fsutil::sha256_digest(&t));
    }
}
