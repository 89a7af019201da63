//! Reliability under crashes, a full disk and hostile clients (issue 9, items 1, 6 and 7), on the real binary as root.
//!
//! - `acknowledged_writes_survive_repeated_kill_9`: 8 writers, each on its own connection, create, patch and
//!   delete ConfigMaps while the server is killed with SIGKILL after a random delay and restarted on the same
//!   data dir, cycle after cycle. After every restart each object is checked against what was acknowledged:
//!   an acked write is there with exactly its content and resourceVersion, the one write in flight per writer
//!   is wholly applied or not at all, and resourceVersions keep increasing across restarts. The normal form
//!   runs 10 cycles; the long form: `K1S_RELIABILITY_CYCLES=100 cargo test -p k1s-tests --test tests --
//!   reliability::acknowledged_writes_survive_repeated_kill_9` (a failing run prints its seed; `K1S_RELIABILITY_SEED`
//!   replays the same delays and operations).
//! - `a_full_disk_fails_writes_with_507_and_recovers`: the data dir on a small tmpfs filled up: writes answer a
//!   507 `Status` while reads go on, writes succeed again once space is freed (no restart), and a restart finds
//!   every acknowledged write.
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
        // Kill at a random moment: a few tens of writes to a few hundred.
        let delay = Duration::from_millis(100 + rng.below(900));
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
