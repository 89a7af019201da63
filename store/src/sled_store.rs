//! The durable store: the shared engine with sled (0.34.7) as its log, and a group-commit flusher thread.
//!
//! Layout in sled's default tree: `k<key>` → `[create_revision u64 BE][mod_revision u64 BE][value]`, and
//! `m/rev` → the revision counter (u64 BE), written in the same atomic batch as every change, so a delete
//! cannot move the counter backwards after a restart. Deleted keys are removed, not tombstoned: the on-disk
//! size follows the live data, and sled reclaims its log segments itself; the history of changes is only
//! the bounded in-memory watch window.
//!
//! Durability: sled's `flush()` makes every write before it durable, against power loss too (our vendored sled
//! uses fdatasync where upstream used sync_file_range). One thread runs flushes back to back
//! while writes are pending; each flush covers every write applied before it started, so N concurrent writers
//! pay for one or two flushes, not N (group commit).
//!
//! A full disk: a write that would leave less than [`SledOptions::reserve_bytes`] free is refused with
//! [`StoreError::NoSpace`] before sled sees it (see there).
//!
//! Failure: once a sled write or flush fails (ENOSPC, an I/O error), that `Db` is done: sled keeps the first
//! error of its background I/O as a "global error" and answers it to every later operation until the database
//! is opened again (sled 0.34 `Config::global_error`, reset only in `PageCache::start`). So the flusher drops
//! the failed `Db` and reopens it from disk, every [`REOPEN_EVERY`] until a probe write and flush succeed; the
//! key space becomes what the disk holds ([`Engine::reset`]). Meanwhile writes fail with the cause
//! ([`StoreError::NoSpace`] for a full disk) and reads go on from memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::{forward_store, Engine, Entry, Op, Persist, DEFAULT_HISTORY};
use crate::{Result, Revision, StoreError};

const REV_KEY: &[u8] = b"m/rev";
const KEY_PREFIX: u8 = b'k';

/// How often a failed database is reopened (each try is an open, a load and a probe write).
const REOPEN_EVERY: Duration = Duration::from_millis(500);

/// Tuning for [`SledStore`].
#[derive(Debug, Clone)]
pub struct SledOptions {
    /// sled's page cache. Its 1 GiB default is wrong for an edge box; reads are served from the engine's
    /// in-memory map anyway, so a small cache only slows down opening a large database.
    pub cache_bytes: u64,
    /// How many change events the watch history keeps.
    pub history: usize,
    /// Free space (for unprivileged users, statvfs `f_bavail`) a write leaves on the database's file system, or it
    /// is refused with [`StoreError::NoSpace`] before sled sees it. An ENOSPC inside sled fails that `Db` for
    /// good (its sticky global error) and costs a reopen; upstream sled 0.34 even leaked the log reservation of
    /// a failed blob write so that every later flush hung (patched in vendor/sled). 0 turns the check off.
    pub reserve_bytes: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions { cache_bytes: 8 * 1024 * 1024, history: DEFAULT_HISTORY, reserve_bytes: 4 * 1024 * 1024 }
    }
}

/// The open database, shared by the writers and the flusher; empty while a failed one is being reopened.
struct Slot {
    db: RwLock<Option<sled::Db>>,
    /// Why the database failed (answered to writes while it is being reopened); None when healthy.
    failed: Mutex<Option<StoreError>>,
    path: PathBuf,
    cache_bytes: u64,
    reserve_bytes: u64,
}

impl Slot {
    /// Run `f` on the open database. The handle is lent, never cloned out, so the slot's is the last one and a
    /// reopen can count on sled's file lock being gone once it dropped it.
    fn with<T>(&self, f: impl FnOnce(&sled::Db) -> T) -> Option<T> {
        self.db.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(f)
    }

    fn failure(&self) -> Option<StoreError> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Record the first failure (the cause; later errors of the same broken `Db` only echo it).
    fn fail(&self, e: StoreError) -> StoreError {
        let mut f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        f.get_or_insert(e).clone()
    }

    /// Refuse a write of `len` bytes that would leave less than the reserve free (see [`SledOptions::reserve_bytes`]).
    /// sled may write a value twice (log and blob), hence the factor.
    fn check_space(&self, len: usize) -> Result<()> {
        if self.reserve_bytes == 0 {
            return Ok(());
        }
        let Ok(st) = nix::sys::statvfs::statvfs(&self.path) else { return Ok(()) };
        // fsblkcnt_t and c_ulong are u64 here, not on every target.
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        let free = u64::from(st.blocks_available()).saturating_mul(st.fragment_size() as u64);
        let need = self.reserve_bytes.saturating_add(2 * len as u64);
        if free < need {
            return Err(StoreError::NoSpace(format!("{free} bytes free under {}, a write needs {need}", self.path.display())));
        }
        Ok(())
    }

    fn open(&self) -> Result<sled::Db> {
        sled::Config::new().path(&self.path).cache_capacity(self.cache_bytes).open().map_err(backend)
    }
}

struct SledPersist {
    slot: Arc<Slot>,
    signal: Arc<FlushSignal>,
}

fn encode(entry: &Entry) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + entry.value.len());
    v.extend_from_slice(&entry.create.to_be_bytes());
    v.extend_from_slice(&entry.modr.to_be_bytes());
    v.extend_from_slice(&entry.value);
    v
}

/// sled's error as ours; a full disk is told apart (the API answers it 507). sled's clone of a stored I/O error
/// keeps only its kind, so the kind decides, with the errno when it is still there.
fn backend(e: sled::Error) -> StoreError {
    if let sled::Error::Io(io) = &e {
        let full = matches!(io.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
            || matches!(io.raw_os_error(), Some(e) if e == nix::errno::Errno::ENOSPC as i32 || e == nix::errno::Errno::EDQUOT as i32);
        if full {
            return StoreError::NoSpace(io.to_string());
        }
    }
    StoreError::Backend(e.to_string())
}

impl Persist for SledPersist {
    fn write(&self, op: Op<'_>, revision: Revision) -> Result<()> {
        if let Some(e) = self.slot.failure() {
            return Err(e);
        }
        let len = match &op {
            Op::Put { key, entry } => key.len() + entry.value.len(),
            Op::Delete { key } => key.len(),
        };
        // A refusal here leaves sled untouched: nothing to reopen.
        self.slot.check_space(len)?;
        let mut batch = sled::Batch::default();
        match op {
            Op::Put { key, entry } => batch.insert(prefixed(key), encode(entry)),
            Op::Delete { key } => batch.remove(prefixed(key)),
        }
        batch.insert(REV_KEY, &revision.to_be_bytes());
        let applied = self.slot.with(|db| db.apply_batch(batch));
        let applied = applied.unwrap_or_else(|| Err(sled::Error::Unsupported("the database is being reopened".into())));
        applied.map_err(|e| {
            let e = self.slot.fail(backend(e));
            tracing::error!(error = %e, "store write failed; reopening the database");
            self.signal.wake();
            e
        })
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

/// Load the key space and the revision counter from an open database.
fn load(db: &sled::Db) -> Result<(BTreeMap<String, Entry>, Revision)> {
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
            let key = String::from_utf8(k[1..].to_vec()).map_err(|_| StoreError::Backend("non-UTF-8 key in database".into()))?;
            let entry = Entry { create: u64_at(&v, 0)?, modr: u64_at(&v, 8)?, value: Arc::from(&v[16..]) };
            rev = rev.max(entry.modr);
            map.insert(key, entry);
        }
    }
    Ok((map, rev))
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
    slot: Arc<Slot>,
    signal: Arc<FlushSignal>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl SledStore {
    /// Open (or create) the database in `dir` and load it.
    pub fn open(dir: &Path, opts: SledOptions) -> Result<Self> {
        let slot = Arc::new(Slot {
            db: RwLock::new(None),
            failed: Mutex::new(None),
            path: dir.to_path_buf(),
            cache_bytes: opts.cache_bytes,
            reserve_bytes: opts.reserve_bytes,
        });
        // A server that was just killed may not be gone yet (a restart right after `kill -9`, or a child still
        // between fork and exec holding the file): wait a little for sled's exclusive lock before giving up.
        let mut tries = 0;
        let db = loop {
            match slot.open() {
                Err(StoreError::Backend(m)) if m.contains("could not acquire lock") && tries < 30 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => break other?,
            }
        };
        let (map, rev) = load(&db)?;
        *slot.db.write().unwrap_or_else(|e| e.into_inner()) = Some(db);
        let signal = Arc::new(FlushSignal::default());
        let wake = signal.clone();
        let engine = Arc::new(Engine::new(
            map,
            rev,
            Some(Box::new(SledPersist { slot: slot.clone(), signal: signal.clone() })),
            Some(Box::new(move || wake.wake())),
            opts.history,
        ));
        let flusher = {
            let (slot, engine, signal) = (slot.clone(), engine.clone(), signal.clone());
            std::thread::Builder::new()
                .name("k1s-store-flush".into())
                .spawn(move || {
                    // A panic in the loop (a bug, a logging sink that panics) must not leave every writer waiting
                    // for a flush that never comes: the loop starts over (its state lives in the slot and engine).
                    while std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| flush_loop(&slot, &engine, &signal))).is_err() {
                        std::thread::sleep(REOPEN_EVERY);
                        signal.wake();
                    }
                })
                .map_err(|e| StoreError::Backend(format!("spawn flusher: {e}")))?
        };
        Ok(SledStore {
            engine,
            shared: Arc::new(Shared { slot, signal, flusher: Mutex::new(Some(flusher)), path: dir.to_path_buf() }),
        })
    }

    /// Flush what is pending and stop the flusher. Writes after this fail to become durable.
    pub fn close(&self) {
        stop_flusher(&self.shared.signal, &self.shared.flusher);
    }

    /// Size of the database on disk, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        self.shared.slot.with(|db| db.size_on_disk().ok()).flatten().unwrap_or(0)
    }

    /// Why writes fail, while the database is failed and being reopened (None when healthy).
    pub fn failure(&self) -> Option<StoreError> {
        self.shared.slot.failure()
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

fn flush_loop(slot: &Slot, engine: &Engine, signal: &FlushSignal) {
    loop {
        let failure = slot.failure();
        let failed = failure.is_some();
        if let Some(e) = failure {
            // Writes logged before the failure will not be flushed by this `Db`: their writers hear it now
            // rather than after a reopen that may be far off.
            engine.mark_failed(e);
        }
        let stop = {
            let mut s = signal.state.lock().unwrap_or_else(|e| e.into_inner());
            if failed {
                // A failed database is retried on a timer (stop still ends the wait at once).
                if !s.1 {
                    s = signal.cv.wait_timeout(s, REOPEN_EVERY).unwrap_or_else(|e| e.into_inner()).0;
                }
            } else {
                while !s.0 && !s.1 {
                    s = signal.cv.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            }
            s.0 = false;
            s.1
        };
        if failed {
            if stop {
                return;
            }
            match reopen(slot, engine) {
                Ok(()) => tracing::info!("store reopened after a write failure; writes are accepted again"),
                Err(e) => tracing::warn!(error = %e, "store still failing; retrying"),
            }
            continue;
        }
        // Everything applied before this read is in sled's log, so this flush makes it durable.
        let target = engine.applied_revision();
        let flushed = slot.with(|db| db.flush().map_err(backend));
        let flushed = flushed.unwrap_or_else(|| Err(StoreError::Backend("the database is being reopened".into())));
        match flushed {
            Ok(_) => engine.mark_durable(target),
            Err(e) => {
                let e = slot.fail(e);
                tracing::error!(error = %e, "store flush failed; writes are not acknowledged, reopening the database");
                engine.mark_failed(e);
            }
        }
        if stop {
            return;
        }
    }
}

/// Drop the failed database, open it again from disk, and prove it takes a write (a full disk may still be
/// full); then the engine's key space becomes what the disk holds. Writers fail fast meanwhile (the slot is
/// empty), so nothing is written between the load and the engine's reset.
fn reopen(slot: &Slot, engine: &Engine) -> Result<()> {
    // The last handle must go before the open: sled holds an exclusive lock on its file.
    drop(slot.db.write().unwrap_or_else(|e| e.into_inner()).take());
    let db = slot.open()?;
    let (map, disk_rev) = load(&db)?;
    // Carry the counter past every revision handed out in memory (readers may have seen them).
    let floor = disk_rev.max(engine.applied_revision());
    db.insert(REV_KEY, &floor.to_be_bytes()).map_err(backend)?;
    db.flush().map_err(backend)?;
    // Writers still see the failure until the engine holds the disk's state; the slot's lock is not held
    // across the reset (writers take the engine's lock, then the slot's).
    *slot.db.write().unwrap_or_else(|e| e.into_inner()) = Some(db);
    engine.reset(map, disk_rev);
    *slot.failed.lock().unwrap_or_else(|e| e.into_inner()) = None;
    Ok(())
}

forward_store!(SledStore, engine);
