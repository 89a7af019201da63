//! `ImageError`: every failure of the image store, carrying the path, name or digest it concerns, with a
//! message that says what to do about it.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation on the store or an input file failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// A JSON document (refs.json, a manifest, a config) does not parse.
    #[error("{what}: invalid JSON: {source}")]
    Json { what: String, source: serde_json::Error },

    /// `remove` of a name or id the store does not hold.
    #[error("image {name:?} not found in the local store; `k1s image ls` lists what is there")]
    NotFound { name: String },

    /// An id prefix that matches more than one image.
    #[error("image id prefix {prefix:?} matches more than one image; give more digits")]
    Ambiguous { prefix: String },

    /// The input is neither a `docker save` archive nor an OCI image layout, or is missing a part.
    #[error("{}: not an importable image archive: {reason} (expected `docker save` output or an OCI image layout, .tar or .tar.gz)", path.display())]
    InvalidArchive { path: PathBuf, reason: String },

    /// Content does not match the digest that names it: the archive or the store is damaged.
    #[error("{what}: content does not match its digest (expected {expected}, got {actual}); the archive or store is corrupt, re-export or re-import it")]
    DigestMismatch { what: String, expected: String, actual: String },

    /// The store references something it no longer has (a deleted blob or layer dir).
    #[error("image {name}: {what} is missing from the store; remove the image and import it again")]
    Missing { name: String, what: String },

    /// A layer entry would be written outside its layer directory (`..`, or through a symlink that leaves it).
    #[error("layer {layer}: entry {entry:?} is unsafe ({reason}); refusing to unpack this layer")]
    UnsafeEntry { layer: String, entry: String, reason: String },

    /// A layer tar could not be unpacked.
    #[error("layer {layer}: entry {entry:?}: {source}")]
    Unpack { layer: String, entry: String, source: std::io::Error },

    /// Something valid but not supported here (zstd layers, foreign media types).
    #[error("{what}: {reason}")]
    Unsupported { what: String, reason: String },

    /// No static busybox on the host to build the built-in busybox image from.
    #[error("cannot build the built-in busybox image: {reason}; install a static busybox with `apt-get install busybox-static`")]
    NoBusybox { reason: String },
}

/// Attach a path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T, ImageError> {
        self.map_err(|source| ImageError::Io { path: path.to_path_buf(), source })
    }
}

pub(crate) fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Json { what, source }
}
