//! The engine both stores share: the in-memory key space, the revision counter, the watch history and fan-out.
//!
//! Writes are serialised by one lock (they take microseconds: a map update plus, for sled, an in-memory log
//! append); durability is awaited *outside* the lock, so concurrent writers share one flush (group commit).
//! Events become visible to watchers only once durable, in revision order: a controller never acts on a
//! change that a crash could still take back.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::{broadcast, watch};

use crate::{Commit, Event, EventKind, KeyValue, ListResult, Result, Revision, Store, StoreError};

/// How many events the watch history keeps by default. A watcher that falls further behind gets
/// "too old" and relists, exactly as with kube-apiserver's watch cache.
pub const DEFAULT_HISTORY: usize = 10_000;

/// Capacity of the live fan-out channel; a watcher lagging past it is resynchronised from the history.
const FANOUT_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub value: Arc<[u8]>,
    pub create: Revision,
    pub modr: Revision,
}

/// The write a backend must persist, before it is applied in memory.
pub(crate) enum Op<'a> {
    Put { key: &'a str, entry: &'a Entry },
    Delete { key: &'a str },
}

/// A durable log behind the engine. `write` appends (no flush); durability comes from the flusher.
pub(crate) trait Persist: Send + Sync {
    fn write(&self, op: Op<'_>, revision: Revision) -> Result<()>;
}

/// Durability progress: the highest revision known durable, the last flush error while the backend is failing,
/// and the revisions lost when a failed backend was reopened (applied in memory, never on disk).
#[derive(Debug, Clone, Default)]
pub(crate) struct Durable {
    pub revision: Revision,
    pub error: Option<StoreError>,
    /// Inclusive ranges, with the failure that lost them. A writer may look only after a later write became
    /// durable: without this it would take `revision >= its own` as success.
    pub lost: Vec<(Revision, Revision, StoreError)>,
}

impl Durable {
    fn lost(&self, revision: Revision) -> Option<&StoreError> {
        self.lost.iter().find(|(from, to, _)| (*from..=*to).contains(&revision)).map(|(_, _, e)| e)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct DurableHandle(watch::Receiver<Durable>);

impl DurableHandle {
    pub(crate) async fn wait(&self, revision: Revision) -> Result<()> {
        let mut rx = self.0.clone();
        let state = rx
            .wait_for(|d| d.revision >= revision || d.error.is_some() || d.lost(revision).is_some())
            .await
            .map_err(|_| StoreError::Closed)?;
        if let Some(why) = state.lost(revision) {
            return Err(why.clone());
        }
        if state.revision >= revision {
            Ok(())
        } else {
            Err(state.error.clone().unwrap_or_else(|| StoreError::Backend("flush failed".into())))
        }
    }
}

pub(crate) struct Inner {
    map: BTreeMap<String, Entry>,
    rev: Revision,
    /// Events applied but not yet durable (sled only), in revision order.
    pending: VecDeque<Arc<Event>>,
    /// Published events, in revision order, bounded by `history_limit`.
    history: VecDeque<Arc<Event>>,
    /// Every event with a revision greater than this is in `history` (once published).
    floor: Revision,
    /// The revision of the last published event (or the open revision).
    published: Revision,
}

pub(crate) struct Engine {
    inner: RwLock<Inner>,
    fanout: broadcast::Sender<Arc<Event>>,
    durable_tx: watch::Sender<Durable>,
    durable_rx: watch::Receiver<Durable>,
    persist: Option<Box<dyn Persist>>,
    history_limit: usize,
    /// Called after each write when events wait for a flush (wakes the flusher).
    on_pending: Option<Box<dyn Fn() + Send + Sync>>,
}

impl Engine {
    pub(crate) fn new(
        map: BTreeMap<String, Entry>,
        rev: Revision,
        persist: Option<Box<dyn Persist>>,
        on_pending: Option<Box<dyn Fn() + Send + Sync>>,
        history_limit: usize,
    ) -> Self {
        let (fanout, _) = broadcast::channel(FANOUT_CAPACITY);
        let (durable_tx, durable_rx) = watch::channel(Durable { revision: rev, ..Default::default() });
        Engine {
            inner: RwLock::new(Inner {
                map,
                rev,
                pending: VecDeque::new(),
                history: VecDeque::new(),
                floor: rev,
                published: rev,
            }),
            fanout,
            durable_tx,
            durable_rx,
            persist,
            history_limit: history_limit.max(1),
            on_pending,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent (every mutation is a single insert or
        // remove after the fallible persist step), so poisoning is not a reason to stop serving.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn applied_revision(&self) -> Revision {
        self.read().rev
    }

    /// Publish every pending event up to `upto` and mark it durable (called by the flusher after a flush).
    pub(crate) fn mark_durable(&self, upto: Revision) {
        {
            let mut inner = self.write_lock();
            while inner.pending.front().is_some_and(|e| e.revision <= upto) {
                let ev = inner.pending.pop_front().expect("checked front");
                self.publish(&mut inner, ev);
            }
        }
        self.durable_tx.send_modify(|d| {
            d.revision = d.revision.max(upto);
            d.error = None;
        });
    }

    /// Record a flush failure: writers waiting beyond the durable revision get `error`.
    pub(crate) fn mark_failed(&self, error: StoreError) {
        self.durable_tx.send_modify(|d| d.error = Some(error));
    }

    /// The backend was reopened after a failure and `map` (at `disk_rev`) is what it holds: that becomes the
    /// key space. Pending events up to `disk_rev` reached the disk after all and are published; later ones
    /// did not: they are dropped and their writers told so. The revision counter does not go back, so a
    /// revision a reader may have seen (reads see a write before it is durable) is never handed out again.
    pub(crate) fn reset(&self, map: BTreeMap<String, Entry>, disk_rev: Revision) {
        let lost = {
            let mut inner = self.write_lock();
            while inner.pending.front().is_some_and(|e| e.revision <= disk_rev) {
                let ev = inner.pending.pop_front().expect("checked front");
                self.publish(&mut inner, ev);
            }
            inner.pending.clear();
            inner.map = map;
            let lost = (disk_rev < inner.rev).then_some((disk_rev + 1, inner.rev));
            inner.rev = inner.rev.max(disk_rev);
            lost
        };
        self.durable_tx.send_modify(|d| {
            d.revision = d.revision.max(disk_rev);
            let why = d.error.take().unwrap_or_else(|| StoreError::Backend("the write did not reach the disk".into()));
            d.lost.extend(lost.map(|(from, to)| (from, to, why)));
        });
    }

    fn publish(&self, inner: &mut Inner, ev: Arc<Event>) {
        inner.published = ev.revision;
        inner.history.push_back(ev.clone());
        while inner.history.len() > self.history_limit {
            if let Some(old) = inner.history.pop_front() {
                inner.floor = old.revision;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.fanout.send(ev);
    }

    fn commit(&self, mut inner: RwLockWriteGuard<'_, Inner>, key: &str, new: Option<Entry>) -> Result<Commit> {
        let revision = inner.rev + 1;
        let new = new.map(|mut e| {
            e.modr = revision;
            if e.create == 0 {
                e.create = revision;
            }
            e
        });
        if let Some(p) = &self.persist {
            let op = match &new {
                Some(entry) => Op::Put { key, entry },
                None => Op::Delete { key },
            };
            if let Err(e) = p.write(op, revision) {
                // The backend may have logged part of it before failing: this revision is never reused.
                inner.rev = revision;
                return Err(e);
            }
        }
        let prev = match &new {
            Some(e) => inner.map.insert(key.to_string(), e.clone()),
            None => inner.map.remove(key),
        };
        inner.rev = revision;
        let ev = Arc::new(Event {
            kind: if new.is_some() { EventKind::Put } else { EventKind::Delete },
            key: key.to_string(),
            revision,
            value: new.as_ref().map(|e| e.value.clone()),
            prev: prev.as_ref().map(|e| e.value.clone()),
            prev_revisions: prev.as_ref().map(|e| (e.create, e.modr)),
        });
        if self.persist.is_some() {
            inner.pending.push_back(ev);
            drop(inner);
            if let Some(wake) = &self.on_pending {
                wake();
            }
        } else {
            self.publish(&mut inner, ev);
            drop(inner);
            self.durable_tx.send_modify(|d| d.revision = revision);
        }
        Ok(Commit {
            revision,
            prev: prev.map(|e| kv(key, &e)),
            durable: DurableHandle(self.durable_rx.clone()),
        })
    }
}

fn kv(key: &str, e: &Entry) -> KeyValue {
    KeyValue { key: key.to_string(), value: e.value.clone(), create_revision: e.create, mod_revision: e.modr }
}

/// The [`Store`] operations, implemented once over the engine.
impl Store for Arc<Engine> {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.read().map.get(key).map(|e| kv(key, e)))
    }

    fn list(&self, prefix: &str, start_after: Option<&str>, limit: Option<usize>) -> Result<ListResult> {
        let inner = self.read();
        let lower = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(s.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let limit = limit.filter(|&l| l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut more = false;
        for (k, e) in inner.map.range((lower, Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(kv(k, e));
        }
        Ok(ListResult { items, revision: inner.rev, more })
    }

    fn list_at(&self, prefix: &str, start_after: Option<&str>, limit: Option<usize>, revision: Revision) -> Result<ListResult> {
        let inner = self.read();
        if revision >= inner.rev {
            drop(inner);
            return self.list(prefix, start_after, limit);
        }
        if revision < inner.floor {
            return Err(StoreError::Compacted { requested: revision, oldest: inner.floor });
        }
        let in_range = |k: &str| k.starts_with(prefix) && start_after.is_none_or(|s| k > s);
        // Undo, newest first, every change after `revision` (published history, then writes awaiting flush).
        let mut undo: BTreeMap<String, Option<Entry>> = BTreeMap::new();
        let later = inner.history.iter().filter(|e| e.revision > revision).chain(inner.pending.iter());
        for ev in later.collect::<Vec<_>>().into_iter().rev() {
            if in_range(&ev.key) {
                let before = ev.prev.as_ref().zip(ev.prev_revisions).map(|(v, (c, m))| Entry { value: v.clone(), create: c, modr: m });
                undo.insert(ev.key.clone(), before);
            }
        }
        let lower = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(s.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut state: BTreeMap<&str, Entry> = inner
            .map
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.as_str(), e.clone()))
            .collect();
        for (k, before) in &undo {
            match before {
                Some(e) => state.insert(k.as_str(), e.clone()),
                None => state.remove(k.as_str()),
            };
        }
        let limit = limit.filter(|&l| l > 0).unwrap_or(usize::MAX);
        let more = state.len() > limit;
        let items = state.iter().take(limit).map(|(k, e)| kv(k, e)).collect();
        Ok(ListResult { items, revision, more })
    }

    fn create(&self, key: &str, value: Vec<u8>) -> Result<Commit> {
        let inner = self.write_lock();
        if inner.map.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        self.commit(inner, key, Some(Entry { value: value.into(), create: 0, modr: 0 }))
    }

    fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Commit> {
        let inner = self.write_lock();
        let create = match inner.map.get(key) {
            None => return Err(StoreError::NotFound(key.to_string())),
            Some(e) if e.modr != expected => {
                return Err(StoreError::Conflict { key: key.to_string(), expected, actual: e.modr })
            }
            Some(e) => e.create,
        };
        self.commit(inner, key, Some(Entry { value: value.into(), create, modr: 0 }))
    }

    fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Commit> {
        let inner = self.write_lock();
        match (inner.map.get(key), expected) {
            (None, _) => return Err(StoreError::NotFound(key.to_string())),
            (Some(e), Some(x)) if e.modr != x => {
                return Err(StoreError::Conflict { key: key.to_string(), expected: x, actual: e.modr })
            }
            _ => {}
        }
        self.commit(inner, key, None)
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let (backlog, rx, last) = subscribe(self, prefix, after)?;
        Ok(WatchStream { engine: self.clone(), prefix: prefix.to_string(), backlog, rx, last })
    }

    fn revision(&self) -> Revision {
        self.read().rev
    }

    fn oldest_watchable(&self) -> Revision {
        self.read().floor
    }
}

type Subscription = (VecDeque<Arc<Event>>, broadcast::Receiver<Arc<Event>>, Revision);

/// Take the retained history after `after` and a live receiver, atomically (publishing needs the write lock).
fn subscribe(engine: &Engine, prefix: &str, after: Revision) -> Result<Subscription> {
    let inner = engine.read();
    if after < inner.floor {
        return Err(StoreError::Compacted { requested: after, oldest: inner.floor });
    }
    let start = inner.history.partition_point(|e| e.revision <= after);
    let backlog = inner.history.range(start..).filter(|e| e.key.starts_with(prefix)).cloned().collect();
    let rx = engine.fanout.subscribe();
    Ok((backlog, rx, after.max(inner.published)))
}

/// A stream of changes under a prefix. Never skips an event: a watcher that lags behind the live channel is
/// resynchronised from the history, or told [`StoreError::Compacted`] when that is too short.
pub struct WatchStream {
    engine: Arc<Engine>,
    prefix: String,
    backlog: VecDeque<Arc<Event>>,
    rx: broadcast::Receiver<Arc<Event>>,
    /// Every event up to this revision has been delivered or was not for this prefix.
    last: Revision,
}

impl WatchStream {
    /// The next change; `None` when the store closed.
    pub async fn next(&mut self) -> Option<Result<Arc<Event>>> {
        loop {
            if let Some(ev) = self.backlog.pop_front() {
                return Some(Ok(ev));
            }
            match self.rx.recv().await {
                Ok(ev) => {
                    if ev.revision <= self.last {
                        continue;
                    }
                    self.last = ev.revision;
                    if ev.key.starts_with(&self.prefix) {
                        return Some(Ok(ev));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    match subscribe(&self.engine, &self.prefix, self.last) {
                        Ok((backlog, rx, last)) => {
                            self.backlog = backlog;
                            self.rx = rx;
                            self.last = last;
                        }
                        Err(e) => return Some(Err(e)),
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The revision this watcher has seen everything up to (a safe BOOKMARK revision).
    pub fn progress(&self) -> Revision {
        self.backlog.front().map(|e| e.revision - 1).unwrap_or(self.last)
    }
}

/// An in-memory store: the same engine, no persistence. For tests and fakes.
#[derive(Clone)]
pub struct MemStore(Arc<Engine>);

impl MemStore {
    pub fn new() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }

    /// A store whose watch history keeps `history` events (small values exercise "too old").
    pub fn with_history(history: usize) -> Self {
        MemStore(Arc::new(Engine::new(BTreeMap::new(), 0, None, None, history)))
    }
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Forward the trait to the shared engine.
macro_rules! forward_store {
    ($ty:ty, $field:tt) => {
        impl $crate::Store for $ty {
            fn get(&self, key: &str) -> $crate::Result<Option<$crate::KeyValue>> {
                self.$field.get(key)
            }
            fn list(&self, prefix: &str, start_after: Option<&str>, limit: Option<usize>) -> $crate::Result<$crate::ListResult> {
                self.$field.list(prefix, start_after, limit)
            }
            fn list_at(&self, prefix: &str, start_after: Option<&str>, limit: Option<usize>, revision: $crate::Revision) -> $crate::Result<$crate::ListResult> {
                self.$field.list_at(prefix, start_after, limit, revision)
            }
            fn create(&self, key: &str, value: Vec<u8>) -> $crate::Result<$crate::Commit> {
                self.$field.create(key, value)
            }
            fn update(&self, key: &str, value: Vec<u8>, expected: $crate::Revision) -> $crate::Result<$crate::Commit> {
                self.$field.update(key, value, expected)
            }
            fn delete(&self, key: &str, expected: Option<$crate::Revision>) -> $crate::Result<$crate::Commit> {
                self.$field.delete(key, expected)
            }
            fn watch(&self, prefix: &str, after: $crate::Revision) -> $crate::Result<$crate::WatchStream> {
                self.$field.watch(prefix, after)
            }
            fn revision(&self) -> $crate::Revision {
                $crate::Store::revision(&self.$field)
            }
            fn oldest_watchable(&self) -> $crate::Revision {
                self.$field.oldest_watchable()
            }
        }
    };
}
pub(crate) use forward_store;

forward_store!(MemStore, 0);
