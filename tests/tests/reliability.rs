//! Reliability under crashes, a full disk and hostile clients (issue 9, items 1, 6 and 7), on the real binary as root.
//!
//! - `acknowledged_writes_survive_repeated_kill_9`: 8 writers, each on its own connection, create, patch and
//!   delete ConfigMaps while the server is killed with SIGKILL after a random delay and restarted on the same
//!   data dir, cycle after cycle. After every restart each object is checked against what was acknowledged:
//!   an acked write is there with exactly its content and resourceVersion, the one write in flight per writer
//!   is wholly applied or not at all, and resourceVersions keep increasing across restarts. The normal form
//!   runs 10 cycles; the long form: `K1S_RELIABILITY_CYCLES=100 cargo test -p k1s-tests --test tests --
//!   reliability::acknowledged_writes_survive_repeated_kill_9` (a failing run prints its seed; `K1S_RELIABILITY_SEED`
//!   makes the same random choices again; the timing of a real kill still differs).
//! - `a_full_disk_fails_writes_with_507_and_recovers`: the data dir on a small tmpfs filled up: writes answer a
//!   507 `Status` while reads go on, writes succeed again once space is freed (no restart), and a restart finds
//!   every acknowledged write. `the_store_reopens_sled_after_enospc` turns the store's free-space check off so
//!   sled itself fails, and checks the in-process reopen that follows.
//! - `no_resource_path_answers_without_credentials`, `plain_http_gets_no_answer`,
//!   `credentials_on_disk_are_private`: every path discovery lists (list, get, watch, subresources) is 401
//!   anonymously and with a wrong token; only the health checks and /version are public, as upstream's
//!   system:public-info-viewer; the port speaks TLS only; keys, tokens and kubeconfig are 0600 in 0700 dirs.
//! - `unprivileged_containers_cannot_reach_the_host`: no host devices, no module loading, no host files
//!   outside the rootfs except through a hostPath volume, its own network namespace. (Adding links and
//!   mounting are covered by agent.rs's privileged test.)
//!
//! Network rule: traffic goes only to loopback.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use k1s_tests::{require_root, Server};

/// A small deterministic generator (xorshift64*): the test prints its seed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("K1S_RELIABILITY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
        (t ^ (u64::from(std::process::id()) << 32)) | 1
    })
}

fn rv(cm: &ConfigMap) -> u64 {
    cm.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).expect("a numeric resourceVersion")
}

fn value(cm: &ConfigMap) -> Option<String> {
    cm.data.as_ref().and_then(|d| d.get("v").cloned())
}

/// What a client knows of one object: present with the content and resourceVersion of its last acked write,
/// or absent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    Absent,
    Present { rv: u64, v: String },
}

/// A write that got no answer because the server died under it: the object is in `before` or in the after
/// state (absent for a delete; content `v` with a newer resourceVersion otherwise).
#[derive(Debug, Clone)]
struct InFlight {
    before: Known,
    after: Option<String>,
}

/// One writer's view of its own keys (no two writers share a key, so every key's writes are sequential).
#[derive(Debug, Default)]
struct Ledger {
    known: BTreeMap<(String, String), Known>,
    in_flight: Option<((String, String), InFlight)>,
    /// Every resourceVersion an acknowledgement carried.
    acked: Vec<u64>,
    ops: usize,
}

const NAMESPACES: [&str; 3] = ["default", "rel-a", "rel-b"];
const WRITERS: usize = 8;
const KEYS_PER_WRITER: usize = 6;

/// Write until the server goes away (or `stop`): a random key of this writer, created when absent, else
/// patched or deleted. The first failed request is the one in flight at the kill; the writer stops there.
async fn writer(client: Client, w: usize, mut ledger: Ledger, stop: Arc<AtomicBool>, mut rng: Rng, cycle: usize) -> Ledger {
    let mut seq = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let k = rng.below(KEYS_PER_WRITER as u64) as usize;
        let ns = NAMESPACES[k % NAMESPACES.len()].to_string();
        let name = format!("w{w}-k{k}");
        let key = (ns.clone(), name.clone());
        let before = ledger.known.get(&key).cloned().unwrap_or(Known::Absent);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        seq += 1;
        let v = format!("w{w}-c{cycle}-s{seq}");
        // Some values are large (the store's log and sled's blobs both get exercised).
        let pad = if rng.below(8) == 0 { "x".repeat(20_000) } else { String::new() };
        let result = match &before {
            Known::Absent => {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"k1s-reliability": "crash"}},
                    "data": {"v": v, "pad": pad}
                }))
                .expect("configmap");
                api.create(&PostParams::default(), &cm).await.map(Some).map_err(|e| (Some(v.clone()), e))
            }
            Known::Present { .. } if rng.below(4) == 0 => {
                api.delete(&name, &DeleteParams::default()).await.map(|_| None).map_err(|e| (None, e))
            }
            Known::Present { .. } => api
                .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"data": {"v": v, "pad": pad}})))
                .await
                .map(Some)
                .map_err(|e| (Some(v.clone()), e)),
        };
        match result {
            Ok(Some(cm)) => {
                let got = value(&cm).expect("data.v in the answer");
                assert_eq!(got, v, "the answer carries the content written");
                let r = rv(&cm);
                if let Known::Present { rv: old, .. } = before {
                    assert!(r > old, "{key:?}: a patch acked with resourceVersion {r}, not above the previous {old}");
                }
                ledger.acked.push(r);
                ledger.known.insert(key, Known::Present { rv: r, v });
            }
            Ok(None) => {
                ledger.known.insert(key, Known::Absent);
            }
            Err((after, e)) => {
                // Conflicts or 404s cannot happen (each key has one writer): only the kill ends a request.
                if let kube::Error::Api(s) = &e {
                    panic!("{key:?}: writer {w} got an API error, not a dropped connection: {s:?}");
                }
                ledger.in_flight = Some((key, InFlight { before, after }));
                break;
            }
        }
        ledger.ops += 1;
    }
    ledger
}

/// Compare the store after a restart with the ledgers; resolve the in-flight writes to what was found.
/// Returns the highest resourceVersion found.
async fn check_after_restart(client: &Client, ledgers: &mut [Ledger], cycle: usize) -> u64 {
    let mut found: BTreeMap<(String, String), ConfigMap> = BTreeMap::new();
    for ns in NAMESPACES {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        for cm in api.list(&ListParams::default().labels("k1s-reliability=crash")).await.expect("list after restart").items {
            found.insert((ns.to_string(), cm.metadata.name.clone().expect("name")), cm);
        }
    }
    let mut max = 0;
    for (w, ledger) in ledgers.iter_mut().enumerate() {
        if let Some((key, flight)) = ledger.in_flight.take() {
            let now = found.get(&key);
            let ok = match (&flight.before, &flight.after, now) {
                // Not applied.
                (Known::Absent, _, None) => true,
                (Known::Present { rv: r, v }, _, Some(cm)) if rv(cm) == *r && value(cm).as_ref() == Some(v) => true,
                // Applied: a delete, or a write of `after` with a newer resourceVersion.
                (Known::Present { .. }, None, None) => true,
                (before, Some(after), Some(cm)) => {
                    let newer = match before {
                        Known::Present { rv: r, .. } => rv(cm) > *r,
                        Known::Absent => true,
                    };
                    newer && value(cm).as_ref() == Some(after)
                }
                _ => false,
            };
            assert!(
                ok,
                "cycle {cycle}: writer {w}'s unacknowledged write to {key:?} is half-applied: before {:?}, writing {:?}, found {:?}",
                flight.before,
                flight.after,
                now.map(|c| (rv(c), value(c)))
            );
            let resolved = match now {
                Some(cm) => Known::Present { rv: rv(cm), v: value(cm).expect("data.v") },
                None => Known::Absent,
            };
            ledger.known.insert(key, resolved);
        }
        for (key, known) in &ledger.known {
            let now = found.get(key).map(|c| Known::Present { rv: rv(c), v: value(c).expect("data.v") }).unwrap_or(Known::Absent);
            assert_eq!(&now, known, "cycle {cycle}: {key:?} after the restart differs from its last acknowledged write");
        }
    }
    for ((ns, name), cm) in &found {
        let w: usize = name.trim_start_matches('w').split('-').next().and_then(|n| n.parse().ok()).expect("writer in name");
        assert!(ledgers[w].known.contains_key(&(ns.clone(), name.clone())), "cycle {cycle}: {ns}/{name} was never written");
        max = max.max(rv(cm));
    }
    max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_repeated_kill_9() {
    require_root();
    let cycles: usize = std::env::var("K1S_RELIABILITY_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(10);
    let seed = seed();
    eprintln!("reliability: {cycles} kill -9 cycles, K1S_RELIABILITY_SEED={seed}");
    let mut rng = Rng(seed);
    let mut s = Server::start().expect("server starts");
    let client = s.client().await.expect("client");
    for ns in &NAMESPACES[1..] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &n).await.expect("namespace created");
    }
    let mut ledgers: Vec<Ledger> = (0..WRITERS).map(|_| Ledger::default()).collect();
    // Every resourceVersion any client has seen so far: whatever is written after a restart must be newer.
    let mut seen_max = 0u64;
    let mut total_ops = 0usize;
    let mut in_flight_total = 0usize;
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (w, ledger) in std::mem::take(&mut ledgers).into_iter().enumerate() {
            // A client per writer: kube's client keeps one connection for sequential requests.
            let c = s.client().await.expect("client");
            tasks.push(tokio::spawn(writer(c, w, ledger, stop.clone(), Rng(rng.next() | 1), cycle)));
        }
        // Kill at a random moment: mostly after a few tens to a few hundred writes; one cycle in four within
        // 100 ms of the server starting to serve, while its own start-up writes (Node, Lease) are in flight.
        let delay = Duration::from_millis(if rng.below(4) == 0 { rng.below(100) } else { 100 + rng.below(900) });
        tokio::time::sleep(delay).await;
        tokio::task::block_in_place(|| s.kill9());
        // The writers stop at their first failed request; none may reach the next server.
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            ledgers.push(t.await.expect("writer task"));
        }
        let acked_this_cycle: Vec<u64> = ledgers.iter().flat_map(|l| l.acked.iter().copied()).collect();
        for l in ledgers.iter_mut() {
            total_ops += std::mem::take(&mut l.ops);
            in_flight_total += usize::from(l.in_flight.is_some());
            l.acked.clear();
        }
        for r in &acked_this_cycle {
            assert!(*r > seen_max, "cycle {cycle}: a write acked with resourceVersion {r}, not above {seen_max} seen before the restart");
        }
        seen_max = seen_max.max(acked_this_cycle.iter().copied().max().unwrap_or(0));

        tokio::task::block_in_place(|| s.restart()).unwrap_or_else(|e| panic!("cycle {cycle}: the store did not open again: {e}"));
        let client = s.client().await.expect("client");
        let found_max = check_after_restart(&client, &mut ledgers, cycle).await;
        seen_max = seen_max.max(found_max);
        // The counter went on from where it was: a new write is newer than everything seen before the kill.
        let probe: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let pm = Patch::Apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}, "data": {"cycle": cycle.to_string()}}),
        );
        let p = probe.patch("probe", &PatchParams::apply("reliability").force(), &pm).await.expect("probe write");
        assert!(rv(&p) > seen_max, "cycle {cycle}: a write after the restart got resourceVersion {}, not above {seen_max}", rv(&p));
        seen_max = rv(&p);
    }
    eprintln!("reliability: {cycles} cycles, {total_ops} acknowledged writes, {in_flight_total} writes cut by the kill");
    assert!(total_ops >= cycles * WRITERS, "the writers did work in every cycle ({total_ops} acknowledged writes)");
}

/// A tmpfs of `size` mounted on a fresh temporary directory, unmounted (lazily, so a straggler cannot keep it)
/// when dropped, pass or fail.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new().prefix("k1s-diskfull-").tempdir().expect("temp dir");
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700").as_str()),
        )
        .expect("mount a tmpfs");
        Tmpfs { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Write zeros to `path` until the file system refuses (ENOSPC); returns the bytes written.
fn fill(path: &std::path::Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler file");
    let chunk = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = f.sync_all();
    n
}

fn big_configmap(name: &str, v: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"k1s-reliability": "diskfull"}},
        "data": {"v": v, "pad": "p".repeat(100_000)}
    }))
    .expect("configmap")
}

fn api_error(e: &kube::Error) -> Option<(u16, String, String)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.reason.clone(), s.message.clone())),
        _ => None,
    }
}

/// Every acked object is there with its content and resourceVersion; each write that failed is wholly there or
/// not at all.
async fn check_diskfull_objects(
    cms: &Api<ConfigMap>,
    acked: &BTreeMap<String, (u64, String)>,
    failed: &BTreeMap<String, Vec<String>>,
    when: &str,
) {
    let list = cms.list(&ListParams::default().labels("k1s-reliability=diskfull")).await.unwrap_or_else(|e| panic!("{when}: list: {e}"));
    let found: BTreeMap<String, (u64, String)> =
        list.items.iter().map(|c| (c.metadata.name.clone().expect("name"), (rv(c), value(c).expect("data.v")))).collect();
    for (name, want) in acked {
        assert_eq!(found.get(name), Some(want), "{when}: acknowledged {name} is not as written");
    }
    for (name, allowed) in failed {
        if let Some((_, got)) = found.get(name) {
            assert!(allowed.contains(got), "{when}: {name}, whose write failed, is {got:?}: half-applied (allowed: {allowed:?})");
        }
    }
    for c in &list.items {
        assert_eq!(c.data.as_ref().and_then(|d| d.get("pad")).map(String::len), Some(100_000), "{when}: a ConfigMap's content is cut");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_with_507_and_recovers() {
    require_root();
    // Declared first, so it is dropped last: the server (and its `k1s reset`) is gone before the unmount.
    let disk = Tmpfs::mount("24m");
    let dir = disk.path().join("data");
    let mut s = Server::start_in(&dir, k1s_tests::Identity::unique(), "127.0.0.1:0").expect("server starts on the tmpfs");
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await.expect("client"), "default");
    // The agent has set up (its image store is on this disk too) once its Node is Ready.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cms.clone().into_client());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nodes
            .get_opt(&s.id.node_name)
            .await
            .expect("get node")
            .and_then(|n| n.status?.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the node did not become Ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut acked: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut failed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..5 {
        let (name, v) = (format!("before-{i}"), format!("before-{i}-v"));
        let c = cms.create(&PostParams::default(), &big_configmap(&name, &v)).await.expect("write before the disk fills");
        acked.insert(name, (rv(&c), v));
    }

    // Fill the disk beside the data, then write until the store hits the wall (sled may still have room in a
    // segment it already allocated).
    let filler = disk.path().join("filler");
    let filled = fill(&filler);
    assert!(filled > 0, "the filler took the free space");
    let mut full = None;
    for i in 0..300 {
        let (name, v) = (format!("during-{i}"), format!("during-{i}-v"));
        match cms.create(&PostParams::default(), &big_configmap(&name, &v)).await {
            Ok(c) => {
                acked.insert(name, (rv(&c), v));
            }
            Err(e) => {
                failed.insert(name, vec![v]);
                full = Some(api_error(&e).unwrap_or_else(|| panic!("a write on a full disk gets a Status, not {e}")));
                break;
            }
        }
    }
    let (code, reason, message) = full.expect("writes fail once the disk is full");
    assert_eq!((code, reason.as_str()), (507, "InsufficientStorage"), "{message}");
    assert!(message.contains("full"), "the message says the disk is full: {message}");

    // While full: reads go on; a patch fails the same way (it needs room for its 100 KB; a tiny write may still
    // fit in a page the log already has); the server survives its own failing writes (the node lease is renewed
    // every 10 s: this spans one renewal).
    let still_full = std::time::Instant::now();
    let patch = cms.patch("before-0", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "patched-on-full-disk"}}))).await;
    let e = patch.expect_err("a patch on a full disk fails");
    assert_eq!(api_error(&e).map(|(c, r, _)| (c, r)), Some((507, "InsufficientStorage".to_string())), "{e}");
    // Unacknowledged, so it may still reach the disk: before-0 is either version from here on.
    let (_, old) = acked.remove("before-0").expect("before-0");
    failed.insert("before-0".into(), vec![old, "patched-on-full-disk".into()]);
    let mut reads = 0;
    while still_full.elapsed() < Duration::from_secs(11) || reads < 10 {
        for (name, (r, v)) in acked.iter().take(3) {
            let c = cms.get(name).await.unwrap_or_else(|e| panic!("GET {name} on a full disk: {e}"));
            assert_eq!((rv(&c), value(&c).as_deref()), (*r, Some(v.as_str())));
        }
        check_diskfull_objects(&cms, &acked, &failed, "while the disk is full").await;
        reads += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(s.pid().is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists()), "the server is still running");

    // Space comes back: writes succeed again, without a restart.
    let seen = acked.values().map(|(r, _)| *r).max().expect("acked");
    std::fs::remove_file(&filler).expect("remove the filler");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    let first = loop {
        let (name, v) = (format!("after-{n}"), format!("after-{n}-v"));
        n += 1;
        match cms.create(&PostParams::default(), &big_configmap(&name, &v)).await {
            Ok(c) => {
                acked.insert(name, (rv(&c), v));
                break rv(&c);
            }
            Err(e) => {
                let (code, _, m) = api_error(&e).unwrap_or_else(|| panic!("a Status while the store recovers, not {e}"));
                assert!(code == 507 || code == 500, "{code} {m}");
                failed.insert(name, vec![v]);
                assert!(std::time::Instant::now() < deadline, "writes still fail 60 s after space was freed: {m}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(first > seen, "the first write after recovery is the newest ({first} <= {seen})");
    let c = cms
        .patch("before-1", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "before-1-patched"}})))
        .await
        .expect("a patch after space came back");
    acked.insert("before-1".into(), (rv(&c), "before-1-patched".into()));
    check_diskfull_objects(&cms, &acked, &failed, "after space came back").await;

    // A kill -9 and a restart find everything acknowledged, and the store opens.
    tokio::task::block_in_place(|| s.restart()).expect("the store opens after the disk was full");
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await.expect("client"), "default");
    check_diskfull_objects(&cms, &acked, &failed, "after the restart").await;
    let c = cms.create(&PostParams::default(), &big_configmap("after-restart", "x")).await.expect("a write after the restart");
    assert!(rv(&c) > acked.values().map(|(r, _)| *r).max().expect("acked"), "resourceVersions went on rising");
}

// -------------------------------------------------------------------------------------------------------------
// Security
// -------------------------------------------------------------------------------------------------------------

/// Upstream's system:public-info-viewer: the only paths an anonymous client may GET.
const PUBLIC: [&str; 4] = ["/healthz", "/livez", "/readyz", "/version"];

async fn send(client: &Client, method: &str, path: &str) -> (u16, String) {
    let mut req = http::Request::builder().method(method).uri(path);
    if matches!(method, "PATCH") {
        req = req.header("Content-Type", "application/merge-patch+json");
    } else if matches!(method, "POST" | "PUT") {
        req = req.header("Content-Type", "application/json");
    }
    let body = if matches!(method, "POST" | "PUT" | "PATCH") { b"{}".to_vec() } else { Vec::new() };
    let resp =
        client.send(req.body(kube::client::Body::from(body)).expect("request")).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.map(|b| b.to_bytes()).unwrap_or_default();
    (code, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get_json(client: &Client, path: &str) -> serde_json::Value {
    let (code, body) = send(client, "GET", path).await;
    assert_eq!(code, 200, "GET {path} with credentials: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Every (method, path) a client could try on the served resources, from discovery read with credentials:
/// list (namespaced and across namespaces), watch, create, delete-collection, and get/put/patch/delete by name,
/// and each subresource.
async fn resource_requests(client: &Client) -> Vec<(&'static str, String)> {
    let mut bases = vec![];
    for v in get_json(client, "/api").await["versions"].as_array().expect("versions") {
        bases.push(format!("/api/{}", v.as_str().expect("version")));
    }
    for g in get_json(client, "/apis").await["groups"].as_array().expect("groups") {
        for v in g["versions"].as_array().expect("group versions") {
            bases.push(format!("/apis/{}", v["groupVersion"].as_str().expect("groupVersion")));
        }
    }
    let mut out = vec![];
    for base in &bases {
        out.push(("GET", base.clone()));
        for r in get_json(client, base).await["resources"].as_array().expect("resources") {
            let name = r["name"].as_str().expect("resource name");
            let ns = if r["namespaced"].as_bool().unwrap_or(false) { "/namespaces/default" } else { "" };
            match name.split_once('/') {
                Some((res, sub)) => {
                    for m in ["GET", "POST", "PUT", "PATCH"] {
                        out.push((m, format!("{base}{ns}/{res}/x/{sub}")));
                    }
                }
                None => {
                    let list = format!("{base}{ns}/{name}");
                    for m in ["GET", "POST", "DELETE"] {
                        out.push((m, list.clone()));
                    }
                    out.push(("GET", format!("{list}?watch=true")));
                    out.push(("GET", format!("{base}/{name}")));
                    out.push(("GET", format!("{base}/{name}?watch=1&resourceVersion=0")));
                    for m in ["GET", "PUT", "PATCH", "DELETE"] {
                        out.push((m, format!("{list}/x")));
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_resource_path_answers_without_credentials() {
    let s = Server::start().expect("server starts");
    let admin = s.client().await.expect("client");
    let mut requests = resource_requests(&admin).await;
    let paths: Vec<&str> = requests.iter().map(|(_, p)| p.as_str()).collect();
    for must in ["/pods/x/exec", "/pods/x/log", "/pods/x/attach", "/pods/x/portforward", "/secrets/x"] {
        assert!(paths.iter().any(|p| p.ends_with(must)), "discovery lists {must}");
    }
    let nodes_proxy = paths.iter().any(|p| p.ends_with("/nodes/x/proxy"));
    // The paths around the resources: discovery, OpenAPI, and what upstream serves to admins only.
    for p in ["/api", "/apis", "/apis/apps", "/openapi/v2", "/openapi/v3", "/metrics", "/logs/", "/debug/pprof/", "/no/such/path", "/"] {
        requests.push(("GET", p.to_string()));
    }
    // Path tricks: a public prefix in front of a resource path.
    let tricks =
        ["/healthz/../api/v1/secrets", "/livez/%2e%2e/api/v1/secrets", "/version/../api/v1/namespaces/default/secrets", "//api/v1/secrets"];

    let anonymous = s.anonymous_client().await.expect("anonymous client");
    let mut kc = kube::config::Kubeconfig::read_from(&s.kubeconfig).expect("kubeconfig");
    for a in kc.auth_infos.iter_mut() {
        a.auth_info.as_mut().expect("auth info").token = Some(format!("{}x", s.token).into());
    }
    let wrong = Client::try_from(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config")).expect("client");
    for (who, client) in [("anonymous", &anonymous), ("a wrong token", &wrong)] {
        for (method, path) in &requests {
            let (code, body) = send(client, method, path).await;
            assert_eq!(code, 401, "{method} {path} by {who}: {body}");
            let st: serde_json::Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path} by {who}: not a Status ({e}): {body}"));
            assert_eq!(
                (st["kind"].as_str(), st["code"].as_u64(), st["reason"].as_str()),
                (Some("Status"), Some(401), Some("Unauthorized")),
                "{st}"
            );
        }
        for path in tricks {
            let (code, body) = send(client, "GET", path).await;
            assert!(code >= 400 && !body.contains("SecretList"), "GET {path} by {who}: {code} {body}");
        }
        // Upstream's public-info-viewer paths answer anyone.
        for path in PUBLIC {
            let (code, body) = send(client, "GET", path).await;
            assert_eq!(code, 200, "GET {path} by {who}: {body}");
        }
    }
    eprintln!("security: {} resource requests refused twice each (nodes/proxy served: {nodes_proxy})", requests.len());
}

#[test]
fn plain_http_gets_no_answer() {
    let s = Server::start().expect("server starts");
    let addr: std::net::SocketAddr = s.url.trim_start_matches("https://").parse().expect("loopback address");
    let tries: [&[u8]; 2] = [
        b"GET /api/v1/namespaces HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        // HTTP/2 with prior knowledge (h2c).
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    ];
    for bytes in tries {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        c.write_all(bytes).expect("write");
        let mut got = Vec::new();
        // The server closes the connection (after a TLS alert at most); it never answers in HTTP.
        let end = c.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got);
        assert!(end.is_ok() || !got.is_empty(), "the server neither answered nor closed within 10 s: {end:?}");
        assert!(!text.contains("HTTP/") && !text.contains("apiVersion"), "plain HTTP got an HTTP answer: {text:?}");
        assert!(got.is_empty() || got[0] == 0x15, "anything sent back is a TLS alert record: {got:?}");
    }
}

#[test]
fn credentials_on_disk_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start().expect("server starts");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777;
    // Every file under the data dir holding a secret: a private key, the admin token, or a kubeconfig.
    let mut secrets = vec![];
    let mut stack = vec![s.dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            let t = e.file_type().expect("file type");
            if t.is_dir() && !["images", "pods", "run", "db"].contains(&e.file_name().to_str().unwrap_or("")) {
                stack.push(p);
            } else if t.is_file() && e.metadata().is_ok_and(|m| m.len() < 1 << 20) {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned();
                if p.ends_with("server.log") {
                    assert!(!text.contains(&s.token), "the server's log holds the admin token");
                    continue;
                }
                if text.contains("PRIVATE KEY") || text.contains(&s.token) || text.contains("client-certificate") {
                    secrets.push(p);
                }
            }
        }
    }
    let names: Vec<String> = secrets.iter().map(|p| p.strip_prefix(&s.dir).expect("under dir").display().to_string()).collect();
    for want in ["kubeconfig.yaml", "pki/ca.key", "pki/server.key", "pki/admin.token"] {
        assert!(names.iter().any(|n| n == want), "{want} holds a secret: found {names:?}");
    }
    for p in &secrets {
        assert_eq!(mode(p), 0o600, "{} is mode {:o}", p.display(), mode(p));
        let parent = p.parent().expect("parent");
        assert_eq!(mode(parent), 0o700, "{} (holding {}) is mode {:o}", parent.display(), p.display(), mode(parent));
    }
    // The database holds Secrets: the data dir keeps everyone but root out of it.
    assert_eq!(mode(&s.dir), 0o700, "the data dir is mode {:o}", mode(&s.dir));
}

fn exec_in(s: &Server, pod: &str, script: &str) -> std::process::Output {
    s.kubectl(&["exec", pod, "--", "sh", "-c", script])
}

fn out(o: &std::process::Output) -> String {
    format!("exit {:?}\nstdout: {}\nstderr: {}", o.status.code(), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The host's first block device from /proc/partitions, as (path, 'b', major, minor): what a container must not
/// open.
fn host_disk() -> Option<(String, char, u32, u32)> {
    let parts = std::fs::read_to_string("/proc/partitions").ok()?;
    parts.lines().skip(2).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((format!("/dev/{}", f.get(3)?), 'b', f.first()?.parse().ok()?, f.get(1)?.parse().ok()?))
    })
}

#[test]
fn unprivileged_containers_cannot_reach_the_host() {
    let s = k1s_tests::start_root();
    // A host directory with a marker: visible through a hostPath volume, and nowhere else.
    let host = tempfile::Builder::new().prefix("k1s-hostpath-").tempdir().expect("temp dir");
    let marker = host.path().join("marker");
    std::fs::write(&marker, "host-secret").expect("marker");
    s.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: jail
spec:
  containers:
  - name: main
    image: busybox
    command: [sleep, '3600']
    volumeMounts:
    - {{name: host, mountPath: /host}}
  volumes:
  - name: host
    hostPath: {{path: {}}}
",
        host.path().display()
    ));
    s.wait_for("pod jail Ready", Duration::from_secs(60), || {
        let p = s.try_get_json(&["pod", "jail"])?;
        p["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True").then_some(())
    });

    // Devices: only the minimal set in /dev.
    let ls = exec_in(&s, "jail", "ls -a /dev");
    assert!(ls.status.success(), "{}", out(&ls));
    let allowed = [
        ".",
        "..",
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "pts",
        "ptmx",
        "shm",
        "mqueue",
        "fd",
        "stdin",
        "stdout",
        "stderr",
        "termination-log",
        "core",
        "console",
    ];
    let listed = String::from_utf8_lossy(&ls.stdout).into_owned();
    let extra: Vec<&str> = listed.split_whitespace().filter(|d| !allowed.contains(d)).collect();
    assert!(extra.is_empty(), "/dev holds more than the minimal set: {extra:?}");
    for dev in ["/dev/kmsg", "/dev/mem", "/dev/vda", "/dev/sda"] {
        let o = exec_in(&s, "jail", &format!("head -c 1 {dev}"));
        assert!(!o.status.success(), "{dev} is readable: {}", out(&o));
    }
    // Nor can it make a node for a host device and open it (no CAP_MKNOD, or a device cgroup that refuses):
    // checked for the devices this test process itself can open, so the check means something on this host.
    let mut candidates =
        vec![("/dev/net/tun".to_string(), 'c', 10, 200), ("/dev/fuse".into(), 'c', 10, 229), ("/dev/kmsg".into(), 'c', 1, 11)];
    candidates.extend(host_disk());
    let mut tried = 0;
    for (host_path, kind, major, minor) in candidates.iter().filter(|(p, ..)| std::fs::File::open(p).is_ok()) {
        // In the rootfs and in /dev (a tmpfs the runtime made, where nodes must work).
        for at in ["/tmp/dev", "/dev/k1s-probe"] {
            let o = exec_in(&s, "jail", &format!("mknod {at} {kind} {major} {minor} && exec 3<{at} && echo opened"));
            assert!(
                !String::from_utf8_lossy(&o.stdout).contains("opened"),
                "the container opened {host_path} ({major}:{minor}) through mknod {at}: {}",
                out(&o)
            );
            tried += 1;
        }
    }
    assert!(tried > 0, "no host device to try (this host opens none of {candidates:?})");

    // A Pod that adds CAP_MKNOD back can make the node, but the device cgroup (v1) refuses to open it; the
    // devices of the minimal /dev still work there.
    if std::path::Path::new("/sys/fs/cgroup/devices").is_dir() {
        s.apply(
            "apiVersion: v1
kind: Pod
metadata:
  name: mknod
spec:
  containers:
  - name: main
    image: busybox
    command: [sleep, '3600']
    securityContext:
      capabilities: {add: [MKNOD]}
",
        );
        s.wait_for("pod mknod Ready", Duration::from_secs(60), || {
            let p = s.try_get_json(&["pod", "mknod"])?;
            p["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True").then_some(())
        });
        let usable = exec_in(&s, "mknod", "echo x > /dev/null && head -c 4 /dev/urandom | wc -c && head -c 1 /dev/zero | wc -c");
        assert_eq!(String::from_utf8_lossy(&usable.stdout).split_whitespace().collect::<Vec<_>>(), ["4", "1"], "{}", out(&usable));
        let (host_path, kind, major, minor) =
            candidates.iter().find(|(p, ..)| std::fs::File::open(p).is_ok()).expect("a host device (checked above)");
        let o = exec_in(&s, "mknod", &format!("mknod /tmp/dev {kind} {major} {minor} && echo made && exec 3</tmp/dev && echo opened"));
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(stdout.contains("made"), "with CAP_MKNOD added the node is made: {}", out(&o));
        assert!(!stdout.contains("opened"), "the device cgroup let the container open {host_path} ({major}:{minor}): {}", out(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("not permitted"), "refused by the device cgroup (EPERM): {}", out(&o));
    } else {
        eprintln!("cgroup v2: no devices controller files; the device allow-list is v1 only (agent/src/runtime/cgroup.rs)");
    }

    // Capabilities: none beyond the CRI default set; no module loading (init_module needs CAP_SYS_MODULE).
    let st = exec_in(&s, "jail", "cat /proc/self/status");
    let status = String::from_utf8_lossy(&st.stdout).into_owned();
    for field in ["CapEff:", "CapBnd:", "CapPrm:"] {
        let hex = status.lines().find_map(|l| l.strip_prefix(field)).unwrap_or_else(|| panic!("{field} in {status}")).trim();
        let caps = u64::from_str_radix(hex, 16).expect("hex capability set");
        for (bit, name) in [
            (16, "SYS_MODULE"),
            (17, "SYS_RAWIO"),
            (21, "SYS_ADMIN"),
            (12, "NET_ADMIN"),
            (19, "SYS_PTRACE"),
            (25, "SYS_TIME"),
            (22, "SYS_BOOT"),
        ] {
            assert_eq!(caps & (1 << bit), 0, "{field} {hex} holds CAP_{name}");
        }
    }
    let o = exec_in(&s, "jail", "printf 'not a module' > /tmp/m.ko && insmod /tmp/m.ko");
    assert!(!o.status.success(), "insmod succeeded: {}", out(&o));
    // EPERM for want of CAP_SYS_MODULE, or ENOSYS from the seccomp profile, which refuses it first.
    let why = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(why.contains("not permitted") || why.contains("not support"), "init_module is refused, not tried: {}", out(&o));

    // Network: its own namespace, with none of the host's links.
    let links = exec_in(&s, "jail", "ls /sys/class/net");
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    let mut names: Vec<&str> = links.split_whitespace().collect();
    names.sort();
    assert_eq!(names, ["eth0", "lo"], "the container sees links besides its own");

    // Files: the host's are out of reach except through the hostPath volume.
    let through_volume = exec_in(&s, "jail", "cat /host/marker");
    assert_eq!(String::from_utf8_lossy(&through_volume.stdout), "host-secret", "{}", out(&through_volume));
    let m = marker.display();
    for probe in [
        format!("cat {m}"),
        format!("cat /proc/1/root{m}"),
        format!("find / -xdev -name {} 2>/dev/null | grep -v ^/host/ | grep .", "marker"),
    ] {
        let o = exec_in(&s, "jail", &probe);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("host-secret") && !o.status.success(),
            "`{probe}` reached the host: {}",
            out(&o)
        );
    }
    // Its PID 1 is its own (the Pod's pause process or itself), not the host's init.
    let procs = exec_in(&s, "jail", "ls /proc | grep -c '^[0-9]'");
    let n: usize = String::from_utf8_lossy(&procs.stdout).trim().parse().unwrap_or(usize::MAX);
    assert!(n < 10, "the container sees {n} processes: the host's PID namespace?");
}

/// The store's own recovery from a sled failure, with the free-space check off so sled itself meets ENOSPC (as
/// when another process takes the space between the check and the write): the failed `Db` is reopened once
/// space returns, acknowledged writes are all there, unacknowledged ones wholly or not at all, and revisions
/// keep rising, in-process and after a reopen from disk.
#[tokio::test]
async fn the_store_reopens_sled_after_enospc() {
    use k1s_store::{SledOptions, SledStore, Store, StoreError};
    require_root();
    let disk = Tmpfs::mount("8m");
    let dir = disk.path().join("db");
    let opts = || SledOptions { reserve_bytes: 0, ..Default::default() };
    let store = SledStore::open(&dir, opts()).expect("open");
    // Small values: sled logs them inline (a blob write failing would hang sled's flush, which the reserve
    // check exists to avoid).
    let value = |i: usize, tag: &str| format!("{tag}-{i}-{}", "v".repeat(4000)).into_bytes();
    let mut acked: BTreeMap<String, (u64, Vec<u8>)> = BTreeMap::new();
    for i in 0..20 {
        let k = format!("/before/{i}");
        let c = store.create(&k, value(i, "before")).expect("create");
        c.durable().await.expect("durable");
        acked.insert(k, (c.revision, value(i, "before")));
    }
    let filler = disk.path().join("filler");
    fill(&filler);
    let mut uncertain: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut highest = acked.values().map(|(r, _)| *r).max().expect("acked");
    let mut failure = None;
    for i in 0..2000 {
        let k = format!("/during/{i}");
        let v = value(i, "during");
        let r = match store.create(&k, v.clone()) {
            Ok(c) => {
                highest = highest.max(c.revision);
                c.durable().await.map(|_| c.revision)
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(rev) => {
                acked.insert(k, (rev, v));
            }
            Err(e) => {
                uncertain.insert(k, v);
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("sled hits the full disk");
    assert!(matches!(failure, StoreError::NoSpace(_)), "a full disk is told apart: {failure:?}");
    // Failed: writes are refused at once, reads go on.
    let e = store.create("/refused", b"x".to_vec()).map(|c| c.revision);
    if let Ok(rev) = e {
        // The failure may not have reached the writer yet; then it fails to become durable.
        highest = highest.max(rev);
        uncertain.insert("/refused".into(), b"x".to_vec());
    }
    for (k, (rev, v)) in &acked {
        let kv = store.get(k).expect("get").unwrap_or_else(|| panic!("{k} readable while failed"));
        assert_eq!((kv.mod_revision, kv.value.as_ref()), (*rev, v.as_slice()));
    }

    std::fs::remove_file(&filler).expect("free the space");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        match store.create("/after", b"after".to_vec()) {
            Ok(c) if c.durable().await.is_ok() => break c.revision,
            Ok(_) | Err(_) => {
                assert!(std::time::Instant::now() < deadline, "the store did not recover within 30 s of space returning");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(after > highest, "revision {after} after recovery is not above {highest}");
    acked.insert("/after".into(), (after, b"after".to_vec()));

    let check = |store: &SledStore, when: &str| {
        for (k, (rev, v)) in &acked {
            let kv = store.get(k).expect("get").unwrap_or_else(|| panic!("{when}: acknowledged {k} is gone"));
            assert_eq!((kv.mod_revision, kv.value.as_ref()), (*rev, v.as_slice()), "{when}: {k}");
        }
        for (k, v) in &uncertain {
            if let Some(kv) = store.get(k).expect("get") {
                assert_eq!(kv.value.as_ref(), v.as_slice(), "{when}: unacknowledged {k} is half-applied");
            }
        }
        let listed = store.list("/", None, None).expect("list").items.len();
        assert!(listed >= acked.len() && listed <= acked.len() + uncertain.len(), "{when}: {listed} keys");
    };
    check(&store, "after recovery");
    store.close();
    drop(store);
    let store = SledStore::open(&dir, opts()).expect("the database opens after the failure");
    check(&store, "after reopening from disk");
    let c = store.create("/last", b"last".to_vec()).expect("create");
    c.durable().await.expect("durable");
    assert!(c.revision > after, "revisions go on rising across the reopen");
}
