//! Filesystem helpers: hashing readers, atomic writes (temp + fsync + rename), flock, and the few syscalls std
//! has no wrapper for (mknod, lsetxattr, syncfs). The only `unsafe` of the crate is here, one call per helper.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{ImageError, IoContext};

/// Prefix of every temporary file and directory in the store; garbage collection removes leftovers of
/// crashed writers (only while it holds the exclusive store lock, so never a live writer's).
pub(crate) const TMP_PREFIX: &str = ".tmp-";

/// A Read adapter that hashes (sha256) and counts what passes through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        HashReader { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// Read the rest of the stream (tar's end-of-archive padding, a gzip trailer) so the digest covers it all.
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    /// (`sha256:<hex>`, byte count) of everything read.
    pub fn finish(self) -> (String, u64) {
        (format!("sha256:{:x}", self.hasher.finalize()), self.bytes)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The hex part of a `sha256:<hex>` digest, if it is one (64 lowercase hex digits).
pub(crate) fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(hex)
}

/// A name for a temporary sibling that no other writer (thread or process) will pick.
pub(crate) fn temp_path(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    dir.join(format!("{TMP_PREFIX}{}-{n}-{nanos}", std::process::id()))
}

/// Write `bytes` to `path` so that readers see the old file or the whole new one, never a part, and a crash
/// leaves one of the two: temp file in the same directory, fsync, rename, fsync of the directory.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(dir);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
        std::fs::rename(&tmp, path).at(path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// An flock(2) held until drop (closing the descriptor releases it). flock locks belong to the open file
/// description, so two guards in one process exclude each other just as two processes do.
pub(crate) struct FileLock {
    _file: File,
}

#[derive(Clone, Copy)]
pub(crate) enum LockMode {
    Shared,
    Exclusive,
}

impl FileLock {
    /// Block until the lock is held.
    pub fn acquire(path: &Path, mode: LockMode) -> Result<FileLock, ImageError> {
        Self::lock(path, mode, false).map(|l| l.expect("blocking flock returns the lock"))
    }

    /// `None` when someone else holds a conflicting lock.
    pub fn try_acquire(path: &Path, mode: LockMode) -> Result<Option<FileLock>, ImageError> {
        Self::lock(path, mode, true)
    }

    fn lock(path: &Path, mode: LockMode, nonblocking: bool) -> Result<Option<FileLock>, ImageError> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at(path)?;
        let mut op = match mode {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        };
        if nonblocking {
            op |= libc::LOCK_NB;
        }
        loop {
            // SAFETY: flock takes a plain descriptor, which `file` owns and keeps open for this call.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(Some(FileLock { _file: file }));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock if nonblocking => return Ok(None),
                _ => return Err(ImageError::Io { path: path.to_path_buf(), source: err }),
            }
        }
    }
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// mknod(2): device nodes, fifos and overlayfs whiteouts (a 0/0 character device). Needs CAP_MKNOD.
pub(crate) fn mknod(path: &Path, mode: libc::mode_t, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call; mknod reads it and nothing else.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// lsetxattr(2) (does not follow a symlink at `path`).
pub(crate) fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    let n = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains a NUL byte"))?;
    // SAFETY: both strings are NUL-terminated and live across the call; `value` is a valid slice of the given
    // length, only read.
    let rc = unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// lgetxattr(2), for tests: `None` when the attribute is absent.
#[cfg(test)]
pub(crate) fn lgetxattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let c = cpath(path)?;
    let n = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains a NUL byte"))?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated strings live across the call; the kernel writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc >= 0 {
        buf.truncate(rc as usize);
        return Ok(Some(buf));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENODATA) {
        Ok(None)
    } else {
        Err(err)
    }
}

/// syncfs(2) on the filesystem holding `dir`: one call makes a whole unpacked layer durable before it is
/// renamed into place, instead of an fsync per file.
pub(crate) fn syncfs(dir: &Path) -> io::Result<()> {
    let f = File::open(dir)?;
    // SAFETY: syncfs takes a plain descriptor, owned by `f` and open for the call.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
