//! Property tests: random operation sequences against a simple model of the store's semantics.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use crate::*;

#[derive(Debug, Clone)]
enum Op {
    Create(u8, u8),
    /// Update with the key's current revision (`true`) or a stale one (`false`).
    Update(u8, u8, bool),
    Delete(u8, Option<bool>),
    Get(u8),
    List(u8),
}

fn key(k: u8) -> String {
    // Two "directories" so prefix lists have something to select.
    format!("/{}/{}", if k % 2 == 0 { "a" } else { "b" }, k)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..8, any::<u8>()).prop_map(|(k, v)| Op::Create(k, v)),
        (0u8..8, any::<u8>(), any::<bool>()).prop_map(|(k, v, f)| Op::Update(k, v, f)),
        (0u8..8, proptest::option::of(any::<bool>())).prop_map(|(k, f)| Op::Delete(k, f)),
        (0u8..8).prop_map(Op::Get),
        (0u8..3).prop_map(Op::List),
    ]
}

/// The model: key → (value, create revision, mod revision), plus the log of expected events.
#[derive(Default)]
struct Model {
    map: BTreeMap<String, (Vec<u8>, Revision, Revision)>,
    rev: Revision,
    log: Vec<(EventKind, String, Revision, Option<Vec<u8>>, Option<Vec<u8>>)>,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Apply `ops` to both the store and the model, checking each answer.
fn run(store: &dyn Store, model: &mut Model, ops: &[Op]) {
    let rt = rt();
    for op in ops {
        match op {
            Op::Create(k, v) => {
                let k = key(*k);
                let res = store.create(&k, vec![*v]);
                if model.map.contains_key(&k) {
                    assert_eq!(res.unwrap_err(), StoreError::AlreadyExists(k.clone()));
                } else {
                    let c = res.unwrap();
                    assert_eq!(c.revision, model.rev + 1, "revisions increase by one per write");
                    assert!(c.prev.is_none());
                    rt.block_on(c.durable()).unwrap();
                    model.rev += 1;
                    model.map.insert(k.clone(), (vec![*v], model.rev, model.rev));
                    model.log.push((EventKind::Put, k, model.rev, Some(vec![*v]), None));
                }
            }
            Op::Update(k, v, fresh) => {
                let k = key(*k);
                match model.map.get(&k).cloned() {
                    None => assert_eq!(store.update(&k, vec![*v], 1).unwrap_err(), StoreError::NotFound(k.clone())),
                    Some((old, create, modr)) => {
                        let expected = if *fresh { modr } else { modr.saturating_sub(1) };
                        let res = store.update(&k, vec![*v], expected);
                        if *fresh {
                            let c = res.unwrap();
                            assert_eq!(c.revision, model.rev + 1);
                            assert_eq!(c.prev.as_ref().unwrap().value.as_ref(), old.as_slice());
                            rt.block_on(c.durable()).unwrap();
                            model.rev += 1;
                            model.map.insert(k.clone(), (vec![*v], create, model.rev));
                            model.log.push((EventKind::Put, k, model.rev, Some(vec![*v]), Some(old)));
                        } else {
                            assert_eq!(
                                res.unwrap_err(),
                                StoreError::Conflict { key: k.clone(), expected, actual: modr },
                                "CAS with a stale revision fails"
                            );
                        }
                    }
                }
            }
            Op::Delete(k, precondition) => {
                let k = key(*k);
                match model.map.get(&k).cloned() {
                    None => assert_eq!(store.delete(&k, None).unwrap_err(), StoreError::NotFound(k.clone())),
                    Some((old, _, modr)) => {
                        let expected = precondition.map(|fresh| if fresh { modr } else { modr - 1 });
                        let res = store.delete(&k, expected);
                        if precondition == &Some(false) {
                            assert!(matches!(res.unwrap_err(), StoreError::Conflict { .. }));
                        } else {
                            let c = res.unwrap();
                            assert_eq!(c.revision, model.rev + 1);
                            rt.block_on(c.durable()).unwrap();
                            model.rev += 1;
                            model.map.remove(&k);
                            model.log.push((EventKind::Delete, k, model.rev, None, Some(old)));
                        }
                    }
                }
            }
            Op::Get(k) => {
                let k = key(*k);
                let got = store.get(&k).unwrap().map(|kv| (kv.value.to_vec(), kv.create_revision, kv.mod_revision));
                assert_eq!(got, model.map.get(&k).cloned());
            }
            Op::List(p) => {
                let prefix = ["/", "/a/", "/b/"][*p as usize];
                let l = store.list(prefix, None, None).unwrap();
                assert_eq!(l.revision, model.rev);
                let want: Vec<_> = model.map.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.0.clone())).collect();
                let got: Vec<_> = l.items.iter().map(|kv| (kv.key.clone(), kv.value.to_vec())).collect();
                assert_eq!(got, want);
            }
        }
        assert_eq!(store.revision(), model.rev);
    }
}

/// Drain exactly `n` events from a watch (they are all published once their writes are durable).
fn drain(ws: &mut WatchStream, n: usize) -> Vec<(EventKind, String, Revision, Option<Vec<u8>>, Option<Vec<u8>>)> {
    rt().block_on(async {
        let mut out = Vec::new();
        for _ in 0..n {
            let ev = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("event delivered").unwrap().unwrap();
            out.push((ev.kind, ev.key.clone(), ev.revision, ev.value.as_ref().map(|v| v.to_vec()), ev.prev.as_ref().map(|v| v.to_vec())));
        }
        // Nothing more than the model's events.
        assert!(tokio::time::timeout(Duration::from_millis(20), ws.next()).await.is_err(), "no extra events");
        out
    })
}

fn check_watches(store: &dyn Store, model: &Model, from: &[Revision], prefix: &str) {
    for &after in from {
        let after = after.min(model.rev);
        let want: Vec<_> = model.log.iter().filter(|e| e.2 > after && e.1.starts_with(prefix)).cloned().collect();
        let mut ws = store.watch(prefix, after).unwrap();
        assert_eq!(drain(&mut ws, want.len()), want, "watch from {after} under {prefix:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn memstore_matches_model(ops in proptest::collection::vec(op(), 1..80), from in proptest::collection::vec(0u64..80, 1..4)) {
        let store = MemStore::new();
        let mut live = store.watch("/", 0).unwrap();
        let mut model = Model::default();
        // Snapshots after each op, to check list_at against the past.
        let mut snapshots = vec![(0, BTreeMap::new())];
        for op in &ops {
            run(&store, &mut model, std::slice::from_ref(op));
            snapshots.push((model.rev, model.map.clone()));
        }
        for (rev, map) in &snapshots {
            for prefix in ["/", "/a/"] {
                let got = store.list_at(prefix, None, None, *rev).unwrap();
                let got: BTreeMap<_, _> = got.items.iter().map(|kv| (kv.key.clone(), (kv.value.to_vec(), kv.create_revision, kv.mod_revision))).collect();
                let want: BTreeMap<_, _> = map.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(got, want, "list_at({}, {})", prefix, rev);
            }
            // A page after the first key of that snapshot.
            if let Some(first) = map.keys().next() {
                let page = store.list_at("/", Some(first), Some(2), *rev).unwrap();
                let want: Vec<_> = map.keys().filter(|k| *k > first).take(2).cloned().collect();
                prop_assert_eq!(page.items.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(), want);
            }
        }
        // A watch opened before the writes sees every change, in order.
        let all: Vec<_> = model.log.clone();
        prop_assert_eq!(drain(&mut live, all.len()), all);
        check_watches(&store, &model, &from, "/");
        check_watches(&store, &model, &from, "/a/");
    }

    #[test]
    fn sledstore_matches_model_and_survives_reopen(ops in proptest::collection::vec(op(), 1..60), from in proptest::collection::vec(0u64..60, 1..3)) {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::default();
        {
            let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
            let mut live = store.watch("/b/", 0).unwrap();
            run(&store, &mut model, &ops);
            let want: Vec<_> = model.log.iter().filter(|e| e.1.starts_with("/b/")).cloned().collect();
            prop_assert_eq!(drain(&mut live, want.len()), want);
            check_watches(&store, &model, &from, "/");
            store.close();
        }
        let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        prop_assert_eq!(store.revision(), model.rev, "the revision counter survives, deletes included");
        let l = store.list("/", None, None).unwrap();
        let got: BTreeMap<_, _> = l.items.iter().map(|kv| (kv.key.clone(), (kv.value.to_vec(), kv.create_revision, kv.mod_revision))).collect();
        prop_assert_eq!(got, model.map.clone());
        // History is not persisted: a watch from before the reopen is "too old", from now on it works.
        if model.rev > 0 {
            let too_old = matches!(store.watch("/", model.rev - 1), Err(StoreError::Compacted { .. }));
            prop_assert!(too_old);
        }
        store.watch("/", model.rev).unwrap();
    }
}

#[test]
fn watch_past_the_history_is_too_old() {
    let store = MemStore::with_history(5);
    for i in 0..10 {
        store.create(&format!("/k/{i}"), vec![i]).unwrap();
    }
    assert_eq!(store.oldest_watchable(), 5);
    assert_eq!(store.watch("/", 4).err(), Some(StoreError::Compacted { requested: 4, oldest: 5 }));
    let mut ws = store.watch("/", 5).unwrap();
    assert_eq!(drain(&mut ws, 5).iter().map(|e| e.2).collect::<Vec<_>>(), vec![6, 7, 8, 9, 10]);
}

#[test]
fn list_at_before_the_history_is_too_old() {
    let store = MemStore::with_history(3);
    for i in 0..6 {
        store.create(&format!("/k/{i}"), vec![i]).unwrap();
    }
    assert!(matches!(store.list_at("/", None, None, 2), Err(StoreError::Compacted { .. })));
    assert_eq!(store.list_at("/", None, None, 4).unwrap().items.len(), 4);
}

#[test]
fn list_pages_with_limit_and_start_after() {
    let store = MemStore::new();
    for i in 0..5 {
        store.create(&format!("/p/{i}"), vec![i]).unwrap();
    }
    store.create("/q/0", vec![0]).unwrap();
    let first = store.list("/p/", None, Some(2)).unwrap();
    assert_eq!(first.items.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["/p/0", "/p/1"]);
    assert!(first.more);
    let rest = store.list("/p/", Some("/p/1"), Some(10)).unwrap();
    assert_eq!(rest.items.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["/p/2", "/p/3", "/p/4"]);
    assert!(!rest.more);
}

#[test]
fn concurrent_writers_share_flushes_and_are_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    let c = s.create(&format!("/c/{t}/{i}"), vec![1]).unwrap();
                    c.durable().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(store.revision(), 400);
    drop(store);
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    assert_eq!(store.list("/c/", None, None).unwrap().items.len(), 400);
}

/// A tmpfs mounted over a directory for one test, unmounted (lazily, so a stuck writer cannot keep it) on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        assert!(nix::unistd::geteuid().is_root(), "this test mounts a tmpfs: run the tests as root");
        nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), nix::mount::MsFlags::empty(), Some(format!("size={size}").as_str()))
            .expect("mount tmpfs");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Write zeros to `path` until the file system is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(nix::errno::Errno::ENOSPC as i32), "filling: {e}");
            break;
        }
    }
    // Whatever is left is less than a chunk; take it too.
    let byte = [0u8; 1];
    while f.write(&byte).is_ok_and(|n| n == 1) {}
}

/// The case the free-space check cannot cover: another process takes the space between the check and sled's
/// write of a large value's blob file (simulated with the check off). Unpatched sled 0.34 leaked the log
/// reservation there and every later flush hung, so writes stayed failed until a restart (vendor/README.md).
/// Now the write fails, the store reopens once space returns, and what was acknowledged is all there.
#[test]
fn a_blob_write_meeting_a_full_disk_fails_and_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let _tmpfs = Tmpfs::mount(dir.path(), "16m");
    let db = dir.path().join("db");
    let opts = SledOptions { reserve_bytes: 0, ..SledOptions::default() };
    let store = SledStore::open(&db, opts.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { store.create("/a/before", vec![1; 100]).unwrap().durable().await }).unwrap();

    let filler = dir.path().join("filler");
    fill(&filler);
    // 1 MiB is far over sled's blob threshold (a quarter of its 512 KiB segment): it goes to its own file.
    let (tx, rx) = std::sync::mpsc::channel();
    let s = store.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let r = match s.create("/a/big", vec![7; 1 << 20]) {
            Ok(c) => rt.block_on(c.durable()),
            Err(e) => Err(e),
        };
        let _ = tx.send(r);
    });
    let outcome = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(r) => r,
        Err(_) => {
            // The flusher is stuck in sled: dropping the store would join it forever.
            std::mem::forget(store);
            panic!("a write on a full disk neither succeeded nor failed within 20 s (sled's flush hangs)");
        }
    };
    let err = outcome.expect_err("a 1 MiB write on a full disk cannot be durable");
    assert!(matches!(err, StoreError::NoSpace(_)), "a full disk is told apart: {err:?}");

    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = rt.block_on(async {
            match store.create("/a/after", vec![2; 1 << 20]) {
                Ok(c) => c.durable().await,
                Err(e) => Err(e),
            }
        });
        match r {
            Ok(()) => break,
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                std::mem::forget(store);
                panic!("writes still fail 20 s after space returned: {e}");
            }
        }
    }
    assert!(store.get("/a/big").unwrap().is_none(), "the failed write is not in the key space");
    drop(store);
    let store = SledStore::open(&db, opts).unwrap();
    assert_eq!(store.get("/a/before").unwrap().unwrap().value.len(), 100);
    assert_eq!(store.get("/a/after").unwrap().unwrap().value.len(), 1 << 20);
    assert!(store.get("/a/big").unwrap().is_none());
}

/// The completed cache-flush count of the block device holding `dir` (/sys/dev/block/M:m/stat, field 16), or
/// None when no block device with a volatile write cache is behind it (nothing to flush there).
fn disk_flushes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).unwrap().dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    // A partition's queue is its disk's.
    let cache = std::fs::read_to_string(sys.join("queue/write_cache")).or_else(|_| std::fs::read_to_string(sys.join("../queue/write_cache"))).ok()?;
    if cache.trim() != "write back" {
        return None;
    }
    let stat = std::fs::read_to_string(sys.join("stat")).unwrap();
    Some(stat.split_whitespace().nth(15).expect("a stat with flush counts (Linux ≥ 5.5)").parse().unwrap())
}

/// An acknowledged write must survive a power cut, not only a crash: every durable write that returns has sent
/// the disk a cache flush (fdatasync). Upstream sled 0.34 made its log "stable" with sync_file_range, which
/// flushes no disk cache and writes no metadata (vendor/README.md): 50 sequential durable writes then caused
/// no flush of their own. Runs on the disk the build is on (CI's: virtio with a write-back cache).
#[test]
fn each_durable_write_flushes_the_disks_write_cache() {
    let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).unwrap();
    if disk_flushes(dir.path()).is_none() {
        eprintln!("no block device with a write-back cache under {}: nothing to check", dir.path().display());
        return;
    }
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { store.create("/w/first", vec![1; 100]).unwrap().durable().await }).unwrap();
    let before = disk_flushes(dir.path()).unwrap();
    for i in 0..50 {
        rt.block_on(async { store.create(&format!("/w/{i}"), vec![2; 100]).unwrap().durable().await }).unwrap();
    }
    let flushes = disk_flushes(dir.path()).unwrap() - before;
    assert!(flushes >= 50, "50 sequential durable writes sent the disk {flushes} cache flushes");
}
