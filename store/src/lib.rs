//! A revisioned key-value store with watch: the API server's only persistence. It knows no Kubernetes kinds.
//!
//! Model (etcd's, which the Kubernetes API semantics are built on): one global revision counter that every
//! write increments; each key carries the revision of its last change (`mod_revision` = resourceVersion);
//! updates and deletes are compare-and-swap on that revision; a watch replays every change after a given
//! revision from a bounded in-memory history, and answers [`StoreError::Compacted`] ("too old") past it.
//!
//! Two implementations share one engine ([`engine`]): [`MemStore`] (tests, fakes) and [`SledStore`]
//! (durable). The engine keeps the whole key space in memory as the read path (like kube-apiserver's watch
//! cache, which serves reads in front of etcd): a one-node cluster's objects fit in a few MB, and reads and
//! consistent lists never touch disk. sled is the durable log behind it, loaded once at open.

mod engine;
mod sled_store;

use std::sync::Arc;

pub use engine::{MemStore, WatchStream};
pub use sled_store::{SledOptions, SledStore};

/// A store revision. Strictly increasing across all writes; 0 means "no revision".
pub type Revision = u64;

/// One key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Arc<[u8]>,
    /// The revision that created this key (it survives updates, not delete + re-create).
    pub create_revision: Revision,
    /// The revision of the last change to this key: the object's resourceVersion.
    pub mod_revision: Revision,
}

/// A consistent list of the keys under a prefix, in key order.
#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// The store revision the list was read at.
    pub revision: Revision,
    /// True when `limit` cut the list short.
    pub more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change, as delivered to watchers.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    pub revision: Revision,
    /// The new value (for [`EventKind::Put`]).
    pub value: Option<Arc<[u8]>>,
    /// The value before this change, if the key existed (for selectors: "stopped matching" needs it).
    pub prev: Option<Arc<[u8]>>,
    /// The (create, mod) revisions of `prev`, so a past state can be rebuilt from the history.
    pub prev_revisions: Option<(Revision, Revision)>,
}

/// Errors of the store. The API server maps them to Kubernetes `Status` errors at the HTTP edge.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("key {0} not found")]
    NotFound(String),
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// A compare-and-swap precondition failed: the key changed since `expected`.
    #[error("key {key} changed: expected revision {expected}, found {actual}")]
    Conflict { key: String, expected: Revision, actual: Revision },
    /// A watch asked for history older than what is retained.
    #[error("too old resource version: {requested} ({oldest})")]
    Compacted { requested: Revision, oldest: Revision },
    /// The durable backend failed; the write may not have been persisted.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The disk holding the database is full (ENOSPC or a quota): writes fail until space is freed, reads go
    /// on. The store recovers by itself once writes fit again.
    #[error("the disk holding the database is full: {0}")]
    NoSpace(String),
    /// The store was closed (server shutting down).
    #[error("store closed")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The result of a write: its revision, the previous value, and a handle to wait for durability.
#[derive(Debug)]
pub struct Commit {
    pub revision: Revision,
    /// The key as it was before this write (None for a create).
    pub prev: Option<KeyValue>,
    durable: engine::DurableHandle,
}

impl Commit {
    /// Wait until this write is durable (flushed). Callers must do this before acknowledging the write:
    /// an acknowledged write survives `kill -9` and power loss.
    pub async fn durable(&self) -> Result<()> {
        self.durable.wait(self.revision).await
    }
}

/// The store interface the API server programs against. Narrow on purpose: everything Kubernetes-specific
/// (resourceVersion in the object, selectors, graceful deletion) lives above it.
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// Keys starting with `prefix`, in key order, strictly after `start_after` when given, at most `limit`.
    fn list(&self, prefix: &str, start_after: Option<&str>, limit: Option<usize>) -> Result<ListResult>;
    /// Like [`Store::list`], but as the key space was at `revision` (a later page of a paged list must come
    /// from the same snapshot as the first). [`StoreError::Compacted`] when the history no longer reaches back.
    fn list_at(&self, prefix: &str, start_after: Option<&str>, limit: Option<usize>, revision: Revision) -> Result<ListResult>;
    /// Create a key; fails with [`StoreError::AlreadyExists`] if present.
    fn create(&self, key: &str, value: Vec<u8>) -> Result<Commit>;
    /// Replace a key's value if its mod_revision is still `expected` ([`StoreError::Conflict`] otherwise).
    fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Commit>;
    /// Delete a key, if `expected` is given only when its mod_revision still equals it.
    fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Commit>;
    /// Every change under `prefix` with a revision greater than `after`, then live changes.
    fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;
    /// The latest revision applied.
    fn revision(&self) -> Revision;
    /// The oldest revision a watch may start after (older → [`StoreError::Compacted`]).
    fn oldest_watchable(&self) -> Revision;
}

#[cfg(test)]
mod tests;
