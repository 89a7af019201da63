//! Reliability under churn and restarts (issue 9, items 2 and 3), on the real binary as root.
//!
//! - `restart_with_work_in_flight_loses_nothing`: 50 running Pods, a running Job and a container that exits
//!   while the server is down survive `kill -9` + restart: no container restarted, same IPs, the Job finishes
//!   with exact counts, the exit is reported with its real code and time.
//! - `pods_churned_in_waves_leak_nothing`: Pods with volumes are created and deleted in waves of 100 in a /24
//!   (so IPs must be reused), then every trace is checked: netns, veths, cgroups (every v1 hierarchy and v2),
//!   mounts, Pod dirs (overlay upper/work, logs, volumes), shims, IPAM claims, store keys, and the server's open
//!   file descriptors and RSS against a baseline taken after a warm-up wave.
//!
//! The store's watch history (the last 10 000 changes, values included) is a bounded cache, not a leak: it is
//! filled to capacity before the RSS baseline is taken (see `fill_watch_history`). Events stay: they live for
//! the Event TTL (1 h, upstream's `--event-ttl`), and every other key is checked for the churned Pods' names.
//! glibc's allocator is not holding freed memory back here: `malloc_trim(0)` called into the server (gdb) after
//! the churn gave back nothing, so the server needs no periodic trim.
//!
//! This test supersedes agent.rs's former 300-Pods-in-a-/24 test (same IP reuse, more traces checked).
//!
//! The normal form churns 300 Pods (a warm-up wave and two measured waves). The long form churns more:
//! `K1S_CHURN_PODS=1000 cargo test -p k1s-tests --test tests -- churn::` (rounded up to whole waves of 100).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k1s_tests::{bench::rss_kb, require_root, start_root, Identity, Server};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// Pods (names) of a label selector, once `ok` holds for the whole list of `n`.
fn wait_pods(s: &Server, what: &str, sel: &str, n: usize, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Vec<Value> {
    s.wait_for(what, timeout, || {
        let l = s.get_json(&["pods", "-l", sel]);
        let items = l["items"].as_array()?.clone();
        (items.len() == n && items.iter().all(&ok)).then_some(items)
    })
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn name(p: &Value) -> String {
    p["metadata"]["name"].as_str().expect("name").to_string()
}

fn time(v: &Value) -> Timestamp {
    v.as_str().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("a time: {v}"))
}

#[test]
fn restart_with_work_in_flight_loses_nothing() {
    let mut s = start_root();
    let sleepers: String = (0..50)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sleeper-{i}\n  labels: {{app: sleeper}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, \"3600\"]\n---\n"
            )
        })
        .collect();
    s.apply(&sleepers);
    // The container waits for a file the test creates in its emptyDir while the server is down, so it exits
    // then and only then (no timing guess).
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: exits-while-down
spec:
  restartPolicy: Never
  volumes:
  - {name: signal, emptyDir: {}}
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'until [ -e /signal/exit ]; do sleep 0.1; done; exit 42']
    volumeMounts: [{name: signal, mountPath: /signal}]
",
    );
    let before = wait_pods(&s, "50 sleepers Ready", "app=sleeper", 50, Duration::from_secs(120), ready);
    let exiting = s.wait_for("exits-while-down Running", Duration::from_secs(60), || {
        s.try_get_json(&["pod", "exits-while-down"]).filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
    });
    s.apply(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: work
spec:
  completions: 20
  parallelism: 4
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: [sleep, '2']
",
    );
    // Kill it mid-Job: some Pods counted, some running.
    s.wait_for("the Job under way", Duration::from_secs(120), || {
        let j = s.get_json(&["job", "work"]);
        (j["status"]["succeeded"].as_u64().unwrap_or(0) >= 2 && j["status"]["active"].as_u64().unwrap_or(0) >= 1).then_some(())
    });
    s.kill9();

    let uid = exiting["metadata"]["uid"].as_str().expect("uid");
    let pod_dir = s.dir.join("pods").join(uid);
    std::fs::write(pod_dir.join("volumes/signal/exit"), b"").expect("signal the container through its emptyDir");
    // Its shim records the exit while no server runs.
    let exit_json = pod_dir.join("containers/c/0/exit.json");
    let recorded: Value = s.wait_for("the exit recorded by the shim", Duration::from_secs(30), || {
        std::fs::read(&exit_json).ok().and_then(|b| serde_json::from_slice(&b).ok())
    });
    let restarted_at = Timestamp::now();
    s.restart().expect("restart");

    let p = s.wait_for("exits-while-down reported Failed", Duration::from_secs(60), || {
        s.try_get_json(&["pod", "exits-while-down"]).filter(|p| p["status"]["phase"] == "Failed")
    });
    let cs = &p["status"]["containerStatuses"][0];
    let term = &cs["state"]["terminated"];
    assert_eq!(term["exitCode"], 42, "{p}");
    assert_eq!(term["reason"], "Error", "{p}");
    assert_eq!(cs["restartCount"], 0);
    assert_eq!(cs["containerID"], exiting["status"]["containerStatuses"][0]["containerID"]);
    let finished = time(&term["finishedAt"]);
    assert!(finished <= restarted_at, "finishedAt {finished} is the real exit time, before the restart at {restarted_at}");
    assert_eq!(finished.as_second(), time(&recorded["finished_at"]).as_second(), "finishedAt is the shim's record: {recorded}");

    // The Job finishes with exactly its completions: nothing lost, nothing run twice.
    let job = s.wait_for("the Job Complete", Duration::from_secs(180), || {
        let j = s.get_json(&["job", "work"]);
        let done = j["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Complete" && c["status"] == "True");
        done.then_some(j)
    });
    assert_eq!(job["status"]["succeeded"], 20, "{job}");
    if job["status"]["failed"].as_u64().unwrap_or(0) != 0 {
        // Which Pod failed, and how: its container states and the agent's events.
        let pods = s.get_json(&["pods", "-l", "job-name=work"]);
        let failed: Vec<_> = pods["items"].as_array().into_iter().flatten().filter(|p| p["status"]["phase"] == "Failed").map(|p| p["status"].clone()).collect();
        panic!("a Job Pod failed: {failed:?}\nevents: {}\n{job}", s.kubectl_ok(&["get", "events"]));
    }
    let job_pods = s.get_json(&["pods", "-l", "job-name=work"]);
    let job_pods = job_pods["items"].as_array().expect("items");
    assert_eq!(job_pods.len(), 20, "one Pod per completion, no extra: {:?}", job_pods.iter().map(name).collect::<Vec<_>>());
    for jp in job_pods {
        assert_eq!(jp["status"]["phase"], "Succeeded", "{}", name(jp));
    }

    // The 50 sleepers run on untouched: same containers, same start, same IPs.
    let after = wait_pods(&s, "50 sleepers Ready after the restart", "app=sleeper", 50, Duration::from_secs(60), ready);
    let key = |p: &Value| {
        let c = &p["status"]["containerStatuses"][0];
        (c["containerID"].clone(), c["state"]["running"]["startedAt"].clone(), c["restartCount"].clone(), p["status"]["podIP"].clone())
    };
    for p in &before {
        assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0, "{} restarted before the kill: {}", name(p), p["status"]);
    }
    let before: BTreeMap<String, _> = before.iter().map(|p| (name(p), key(p))).collect();
    let after: BTreeMap<String, _> = after.iter().map(|p| (name(p), key(p))).collect();
    for (n, b) in &before {
        assert_eq!(b.2, 0, "{n}");
        assert!(b.0.is_string() && b.1.is_string() && b.3.is_string(), "{n}: {b:?}");
        assert_eq!(after.get(n), Some(b), "{n}: (containerID, startedAt, restartCount, podIP) before and after the restart");
    }
}

/// Pods churned by the normal form; `K1S_CHURN_PODS` asks for more (the long form).
fn churn_pods() -> usize {
    std::env::var("K1S_CHURN_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(300).max(200)
}

const WAVE: usize = 100;

fn wave_manifest(wave: usize) -> String {
    (0..WAVE)
        .map(|i| {
            // Every kind of thing a Pod leaves behind: a disk emptyDir, a tmpfs emptyDir, a log, an overlay
            // with an upper layer written to.
            format!(
                "apiVersion: v1
kind: Pod
metadata:
  name: churn-{wave}-{i}
  labels: {{wave: \"{wave}\"}}
spec:
  terminationGracePeriodSeconds: 2
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: mem, emptyDir: {{medium: Memory}}}}
  containers:
  - name: c
    image: busybox
    command: [sh, -c, \"echo churn > /scratch/f; echo churn > /mem/f; echo churn > /upper; echo started; trap 'exit 0' TERM; sleep 3600 & wait\"]
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: mem, mountPath: /mem}}
---
"
            )
        })
        .collect()
}

/// Create a wave of Pods, wait for all to run, delete them; returns their IPs and the size of a Pod's JSON.
fn churn_wave(s: &Server, wave: usize) -> (HashSet<String>, usize) {
    s.apply(&wave_manifest(wave));
    let sel = format!("wave={wave}");
    let items = wait_pods(s, &format!("wave {wave} Running"), &sel, WAVE, Duration::from_secs(180), |p| {
        p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string()
    });
    let ips: HashSet<String> = items.iter().map(|p| p["status"]["podIP"].as_str().expect("podIP").to_string()).collect();
    assert_eq!(ips.len(), WAVE, "wave {wave}: distinct IPs");
    // The inventory sees what a running wave holds, so its emptiness afterwards means something.
    let t = traces(s);
    for (what, n) in [
        ("pod dirs", t.pod_dirs.len()),
        ("run dirs", t.run_dirs.len()),
        ("IPAM claims", t.ipam_claims.len()),
        ("veths", t.veths.len()),
        ("shims", t.shims.len()),
        ("mounts", t.mounts.len()),
        ("cgroups", t.cgroups.len()),
    ] {
        assert!(n >= WAVE, "wave {wave}: only {n} {what} seen for {WAVE} running Pods: {t:#?}");
    }
    let bytes = items.iter().map(|p| serde_json::to_vec(p).expect("json").len()).sum::<usize>() / items.len();
    s.kubectl_ok(&["delete", "pods", "-l", &sel, "--wait=true", "--timeout=180s"]);
    (ips, bytes)
}

/// Everything of a server's Pods that lives in the kernel or on disk, as names, so a leak shows what leaked.
#[derive(Debug, PartialEq, Eq)]
struct Traces {
    pod_dirs: Vec<String>,
    run_dirs: Vec<String>,
    ipam_claims: Vec<String>,
    /// Mount points under the data dir other than the run tmpfs itself.
    mounts: Vec<String>,
    /// Interfaces enslaved to the bridge (the host ends of the Pods' veths).
    veths: Vec<String>,
    /// cgroups below the cgroup parent, in every mounted hierarchy (v1 controllers and v2).
    cgroups: Vec<String>,
    shims: Vec<String>,
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn traces(s: &Server) -> Traces {
    let dir = s.dir.to_str().expect("utf-8 data dir");
    let run = s.dir.join("run");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mut mounts = Vec::new();
    let mut hierarchies = Vec::new();
    for l in mountinfo.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let point = f[4];
        if point.starts_with(dir) && Path::new(point) != run {
            mounts.push(point.to_string());
        }
        let fstype = f.iter().position(|x| *x == "-").and_then(|i| f.get(i + 1)).copied().unwrap_or("");
        if fstype == "cgroup" || fstype == "cgroup2" {
            hierarchies.push(PathBuf::from(point));
        }
    }
    let mut cgroups = Vec::new();
    for h in hierarchies {
        let mut stack = vec![h.join(&s.id.cgroup_parent)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    cgroups.push(e.path().display().to_string());
                    stack.push(e.path());
                }
            }
        }
    }
    cgroups.sort();
    let needle = format!("shim\0{dir}");
    let shims = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle)))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    Traces {
        pod_dirs: entries(&s.dir.join("pods")),
        run_dirs: entries(&run),
        ipam_claims: entries(&s.dir.join("network/ipam")),
        mounts,
        veths: entries(&Path::new("/sys/class/net").join(&s.id.bridge).join("brif")),
        cgroups,
        shims,
    }
}

/// Bring the store's watch history to its capacity with writes the size of a Pod, then remove what they wrote.
///
/// The history keeps the last `SledOptions::history` (10 000) changes with their values, as etcd keeps revisions
/// until compaction and kube-apiserver its watch cache: bounded, but filling up over the first ~7 waves of 100
/// Pods (15 writes per Pod: create, bind, status updates, graceful and final delete, Events), ~30 MB in a debug
/// build. That is a cache reaching its size, not a leak, so the RSS baseline is taken with it full.
fn fill_watch_history(s: &Server, value_bytes: usize) {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
    const OBJECTS: usize = 16;
    let writes = k1s_store::SledOptions::default().history;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(s.client().await.expect("client"), "default");
        for i in 0..OBJECTS {
            let cm = serde_json::from_value(serde_json::json!({"metadata": {"name": format!("history-fill-{i}")}})).expect("configmap");
            api.create(&PostParams::default(), &cm).await.expect("create");
        }
        let filler = "x".repeat(value_bytes);
        futures::stream::iter(0..writes)
            .map(|n| {
                let (api, patch) = (api.clone(), serde_json::json!({"data": {"v": format!("{n}{filler}")}}));
                async move { api.patch(&format!("history-fill-{}", n % OBJECTS), &PatchParams::default(), &Patch::Merge(patch)).await }
            })
            .buffer_unordered(OBJECTS)
            .try_collect::<Vec<_>>()
            .await
            .expect("history fill patches");
        for i in 0..OBJECTS {
            api.delete(&format!("history-fill-{i}"), &DeleteParams::default()).await.expect("delete");
        }
    });
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn pods_churned_in_waves_leak_nothing() {
    require_root();
    let mut id = Identity::unique();
    // A /24 has 253 Pod addresses: more Pods than that run only if released IPs are reused.
    id.pod_cidr = id.pod_cidr.replace(".0.0/16", ".9.0/24");
    let tmp = tempfile::Builder::new().prefix("k1s-test-").tempdir().expect("tempdir");
    let mut s = Server::start_in(tmp.path(), id, "127.0.0.1:0").expect("server");
    let pid = s.pid().expect("server pid");
    let empty =
        Traces { pod_dirs: vec![], run_dirs: vec![], ipam_claims: vec![], mounts: vec![], veths: vec![], cgroups: vec![], shims: vec![] };
    let settle = |s: &Server, what: &str| {
        let mut last = None;
        let ok = (0..600).any(|_| {
            let t = traces(s);
            let done = t == empty;
            last = Some(t);
            done || {
                std::thread::sleep(Duration::from_millis(100));
                false
            }
        });
        assert!(ok, "{what}: left behind {:#?}", last);
    };

    // The warm-up wave: first-use allocations (caches, thread pools, the image's layers) are legitimate.
    let (mut seen, pod_bytes) = churn_wave(&s, 0);
    settle(&s, "after the warm-up wave");
    let fds0 = open_fds(pid);
    let t = std::time::Instant::now();
    fill_watch_history(&s, pod_bytes);
    eprintln!("watch history filled with {pod_bytes}-byte values in {:?}", t.elapsed());
    // The fill's client connection closes: the server reads EOF and drops it a moment later.
    s.wait_for("the fill's connection closed", Duration::from_secs(30), || (open_fds(pid) <= fds0).then_some(()));
    let rss0 = rss_kb(pid);
    eprintln!("baseline after the warm-up wave: {fds0} fds, {rss0} KB RSS");

    let waves = churn_pods().div_ceil(WAVE);
    for wave in 1..waves {
        seen.extend(churn_wave(&s, wave).0);
        eprintln!("wave {wave}: {} fds, {} KB RSS", open_fds(pid), rss_kb(pid));
    }
    // Every wave ran, so the addresses of deleted Pods were given out again.
    assert!(waves * WAVE > 253 && seen.len() <= 253, "{} Pods ran on {} distinct IPs of a /24", waves * WAVE, seen.len());
    settle(&s, &format!("after {} Pods in {waves} waves", waves * WAVE));

    // Open files: back to the baseline. The tolerance covers connections a client just closed that the
    // server has not yet read EOF on (kubectl's HTTP/2 connections), not growth: a leak per Pod would be
    // hundreds.
    let fds = s.wait_for("open fds back to the baseline", Duration::from_secs(30), || {
        let n = open_fds(pid);
        (n <= fds0 + 4).then_some(n)
    });
    eprintln!("after churn: {fds} fds (baseline {fds0})");
    let rss = s.wait_for("RSS back within 10 % of the baseline", Duration::from_secs(30), || {
        let r = rss_kb(pid);
        (r * 10 <= rss0 * 11).then_some(r)
    });
    eprintln!("after churn: {rss} KB RSS (baseline {rss0})");

    // The store: no Pod and nothing that names a churned Pod is left, except Events, which live for the
    // Event TTL (upstream's --event-ttl, 1 h) and are swept by the API server then, as upstream's etcd leases do.
    assert_eq!(s.get_json(&["pods", "-A"])["items"].as_array().map(Vec::len), Some(0));
    s.terminate(Duration::from_secs(30)).expect("clean stop");
    let store = k1s_store::SledStore::open(&s.dir.join("db"), k1s_store::SledOptions::default()).expect("store opens");
    let all = k1s_store::Store::list(&store, "/", None, None).expect("list");
    let mut events = 0;
    for kv in &all.items {
        if kv.key.starts_with("/core/events/") {
            events += 1;
            continue;
        }
        assert!(!kv.key.starts_with("/core/pods/"), "Pod key left: {}", kv.key);
        assert!(!String::from_utf8_lossy(&kv.value).contains("churn-"), "{} still names a churned Pod", kv.key);
    }
    eprintln!("store: {} keys, {events} of them Events", all.items.len());
    drop(store);
}
