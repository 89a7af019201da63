//! The durable store: the shared engine with sled (0.34.7) as its log, and a group-commit flusher thread.
//!
//! Layout in sled's default tree: `k<key>` → `[create_revision u64 BE][mod_revision u64 BE][value]`, and
//! `m/rev` → the revision counter (u64 BE), written in the same atomic batch as every change, so a delete
//! cannot move the counter backwards after a restart. Deleted keys are removed, not tombstoned: the on-disk
//! size follows the live data, and sled reclaims its log segments itself; the history of changes is only
//! the bounded in-memory watch window.
//!
//! Durability: sled's `flush()` makes every write before it durable. One thread runs flushes back to back
//! while writes are pending; each flush covers every write applied before it started, so N concurrent writers
//! pay for one or two flushes, not N (group commit).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::engine::{forward_store, Engine, Entry, Op, Persist, DEFAULT_HISTORY};
use crate::{Result, Revision, StoreError};

const REV_KEY: &[u8] = b"m/rev";
const KEY_PREFIX: u8 = b'k';

/// Tuning for [`SledStore`].
#[derive(Debug, Clone)]
pub struct SledOptions {
    /// sled's page cache. Its 1 GiB default is wrong for an edge box; reads are served from the engine's
    /// in-memory map anyway, so a small cache only slows down opening a large database.
    pub cache_bytes: u64,
    /// How many change events the watch history keeps.
    pub history: usize,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions { cache_bytes: 8 * 1024 * 1024, history: DEFAULT_HISTORY }
    }
}

struct SledPersist {
    tree: sled::Db,
}

fn encode(entry: &Entry) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + entry.value.len());
    v.extend_from_slice(&entry.create.to_be_bytes());
    v.extend_from_slice(&entry.modr.to_be_bytes());
    v.extend_from_slice(&entry.value);
    v
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl Persist for SledPersist {
    fn write(&self, op: Op<'_>, revision: Revision) -> Result<()> {
        let mut batch = sled::Batch::default();
        match op {
            Op::Put { key, entry } => batch.insert(prefixed(key), encode(entry)),
            Op::Delete { key } => batch.remove(prefixed(key)),
        }
        batch.insert(REV_KEY, &revision.to_be_bytes());
        self.tree.apply_batch(batch).map_err(backend)
    }
}

fn prefixed(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(KEY_PREFIX);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Wakes the flusher; `stop` ends it after a last flush.
#[derive(Default)]
struct FlushSignal {
    state: Mutex<(bool, bool)>, // (pending, stop)
    cv: Condvar,
}

impl FlushSignal {
    fn wake(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !s.0 {
            s.0 = true;
            self.cv.notify_one();
        }
    }
}

/// The durable [`Store`](crate::Store). Cheap to clone.
#[derive(Clone)]
pub struct SledStore {
    engine: Arc<Engine>,
    shared: Arc<Shared>,
}

struct Shared {
    db: sled::Db,
    signal: Arc<FlushSignal>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl SledStore {
    /// Open (or create) the database in `dir` and load it.
    pub fn open(dir: &Path, opts: SledOptions) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            .open()
            .map_err(backend)?;
        let mut map = BTreeMap::new();
        let mut rev: Revision = 0;
        for item in db.iter() {
            let (k, v) = item.map_err(backend)?;
            if k.as_ref() == REV_KEY {
                rev = rev.max(u64_at(&v, 0)?);
            } else if k.first() == Some(&KEY_PREFIX) {
                if v.len() < 16 {
                    return Err(StoreError::Backend(format!("corrupt record for key {:?}", String::from_utf8_lossy(&k))));
                }
                let key = String::from_utf8(k[1..].to_vec())
                    .map_err(|_| StoreError::Backend("non-UTF-8 key in database".into()))?;
                let entry = Entry { create: u64_at(&v, 0)?, modr: u64_at(&v, 8)?, value: Arc::from(&v[16..]) };
                rev = rev.max(entry.modr);
                map.insert(key, entry);
            }
        }
        let signal = Arc::new(FlushSignal::default());
        let wake = signal.clone();
        let engine = Arc::new(Engine::new(
            map,
            rev,
            Some(Box::new(SledPersist { tree: db.clone() })),
            Some(Box::new(move || wake.wake())),
            opts.history,
        ));
        let flusher = {
            let (db, engine, signal) = (db.clone(), engine.clone(), signal.clone());
            std::thread::Builder::new()
                .name("k1s-store-flush".into())
                .spawn(move || flush_loop(db, engine, signal))
                .map_err(|e| StoreError::Backend(format!("spawn flusher: {e}")))?
        };
        Ok(SledStore {
            engine,
            shared: Arc::new(Shared { db, signal, flusher: Mutex::new(Some(flusher)), path: dir.to_path_buf() }),
        })
    }

    /// Flush what is pending and stop the flusher. Writes after this fail to become durable.
    pub fn close(&self) {
        stop_flusher(&self.shared.signal, &self.shared.flusher);
    }

    /// Size of the database on disk, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        self.shared.db.size_on_disk().unwrap_or(0)
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }
}

impl Drop for Shared {
    /// The last handle flushes and stops the flusher, so the database's file lock is released on return.
    fn drop(&mut self) {
        stop_flusher(&self.signal, &self.flusher);
    }
}

fn stop_flusher(signal: &FlushSignal, flusher: &Mutex<Option<JoinHandle<()>>>) {
    {
        let mut s = signal.state.lock().unwrap_or_else(|e| e.into_inner());
        s.1 = true;
        signal.cv.notify_one();
    }
    if let Some(h) = flusher.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = h.join();
    }
}

fn u64_at(v: &[u8], at: usize) -> Result<u64> {
    v.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Backend("corrupt revision in database".into()))
}

fn flush_loop(db: sled::Db, engine: Arc<Engine>, signal: Arc<FlushSignal>) {
    loop {
        let stop = {
            let mut s = signal.state.lock().unwrap_or_else(|e| e.into_inner());
            while !s.0 && !s.1 {
                s = signal.cv.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            s.0 = false;
            s.1
        };
        // Everything applied before this read is in sled's log, so this flush makes it durable.
        let target = engine.applied_revision();
        match db.flush() {
            Ok(_) => engine.mark_durable(target),
            Err(e) => {
                tracing::error!(error = %e, "store flush failed; writes are not acknowledged until it succeeds");
                engine.mark_failed(e.to_string());
                std::thread::sleep(std::time::Duration::from_millis(100));
                signal.wake();
            }
        }
        if stop {
            return;
        }
    }
}

forward_store!(SledStore, engine);
