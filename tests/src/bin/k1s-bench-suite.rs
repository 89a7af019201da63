//! `k1s-bench-suite`: the whole benchmark suite in one run (`bash scripts/bench.sh` builds and calls it as
//! root). It runs the other benchmark binaries as subprocesses and reads their markdown tables, measures what
//! none of them does (cold start to node Ready, idle CPU and RSS with 0 and 10 idle Pods), runs k1s and podman
//! (`podman kube play`) side by side on the same Pod manifest, and writes one table with p50/p99, the goal,
//! pass or **missed**, and the machine it ran on (stdout and `BENCH_OUT`, default target/bench/results.md).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use k1s_tests::bench::{cpu_ms, ms, pct, rss_kb, shim_pids};
use k1s_tests::{require_root, Identity, Server};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

/// The Pods of the side-by-side comparison carry this label (k1s) and name prefix (both).
const CMP: &str = "cmp";
/// Single-Pod runs per tool (after one warm-up each), interleaved so both see the same machine load.
const SINGLE_RUNS: usize = 10;
/// 20-Pod burst runs per tool (after one warm-up each).
const BURST_RUNS: usize = 3;
const BURST: usize = 20;
/// Idle CPU is measured over this window; at 100 clock ticks/s the resolution is 10 ms / 15 s = 0.07 %.
const IDLE_WINDOW: Duration = Duration::from_secs(15);

/// One row of the final table.
struct Line {
    what: String,
    p50: String,
    p99: String,
    rate: String,
    goal: String,
    result: String,
}

impl Line {
    fn new(what: impl Into<String>, p50: impl Into<String>, p99: impl Into<String>, rate: impl Into<String>) -> Line {
        Line { what: what.into(), p50: p50.into(), p99: p99.into(), rate: rate.into(), goal: "–".into(), result: "–".into() }
    }

    /// Attach a goal and whether it held (`None`: the figure could not be read).
    fn goal(mut self, goal: &str, ok: Option<bool>) -> Line {
        self.goal = goal.into();
        self.result = match ok {
            Some(true) => "pass".into(),
            Some(false) => "**missed**".into(),
            None => "**no figure**".into(),
        };
        self
    }
}

fn failed(what: &str, err: &anyhow::Error) -> Line {
    let mut l = Line::new(what, "–", "–", format!("{err:#}").replace('|', "/").replace('\n', " "));
    l.result = "**failed**".into();
    l
}

/// The first number in a table cell ("0.22 ms", "max 1544 KB", "30345 GET/s"), or None.
fn num(cell: &str) -> Option<f64> {
    let start = cell.find(|c: char| c.is_ascii_digit())?;
    let rest = &cell[start..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The rows of every markdown table in a benchmark's output, as cells.
fn table_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .map(|l| l.trim().trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect()
}

/// The row whose first cell starts with `prefix`.
fn row<'a>(rows: &'a [Vec<String>], prefix: &str) -> anyhow::Result<&'a [String]> {
    rows.iter().find(|r| r.first().is_some_and(|c| c.starts_with(prefix))).map(|r| r.as_slice()).with_context(|| format!("no row '{prefix}'"))
}

fn cell(r: &[String], i: usize) -> String {
    r.get(i).cloned().unwrap_or_default()
}

/// Run a sibling benchmark binary, keep its output beside the results, and return its table rows.
fn run_bench(out_dir: &Path, name: &str, env: &[(&str, &str)]) -> anyhow::Result<Vec<Vec<String>>> {
    let exe = std::env::current_exe()?.with_file_name(name);
    eprintln!("== {name}");
    let t = Instant::now();
    let out = Command::new(&exe)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(out_dir.join(format!("{name}.txt")), &stdout)?;
    eprintln!("{stdout}({name}: {:.0} s)", t.elapsed().as_secs_f64());
    if !out.status.success() {
        bail!("{name} exited with {}", out.status);
    }
    Ok(table_rows(&stdout))
}

/// Rows from `k1s-bench` (API).
fn api_rows(rows: &[Vec<String>], lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let plain = |r: &[String]| Line::new(cell(r, 0), cell(r, 1), cell(r, 2), cell(r, 3));
    let r = row(rows, "start to /readyz, first boot")?;
    lines.push(plain(r).goal("≤ 200 ms", num(&r[1]).map(|v| v <= 200.0)));
    let r = row(rows, "start to /readyz, restart")?;
    lines.push(plain(r).goal("≤ 200 ms", num(&r[2]).map(|v| v <= 200.0)));
    let r = row(rows, "GET pod")?;
    lines.push(plain(r).goal("p99 ≤ 2 ms, ≥ 5000/s", num(&r[2]).zip(num(&r[3])).map(|(p99, rate)| p99 <= 2.0 && rate >= 5000.0)));
    let r = row(rows, "LIST 1000 pods")?;
    lines.push(plain(r).goal("p99 ≤ 50 ms", num(&r[2]).map(|v| v <= 50.0)));
    for prefix in ["durable create configmap (4", "durable create configmap (16", "durable merge patch configmap (4"] {
        let r = row(rows, prefix)?;
        lines.push(plain(r).goal("p99 ≤ 5 ms, ≥ 2000/s", num(&r[2]).zip(num(&r[3])).map(|(p99, rate)| p99 <= 5.0 && rate >= 2000.0)));
    }
    lines.push(plain(row(rows, "durable create configmap (1 client")?));
    let r = row(rows, "watch fan-out")?;
    // The benchmark fails outright unless every event reached all 100 watchers: a row means served.
    lines.push(plain(r).goal("100 watchers served", Some(true)));
    let r = row(rows, "scheduling: create ack → binding on a watch, sequential")?;
    lines.push(plain(r).goal("p99 ≤ 5 ms", num(&r[2]).map(|v| v <= 5.0)));
    let r = row(rows, "idle RSS of k1s server (fresh boot)")?;
    lines.push(plain(r).goal("≤ 30 MB", num(&r[1]).map(|v| v <= 30.0)));
    let r = row(rows, "k1s binary size")?;
    lines.push(Line::new("release binary size (`target/release/k1s`)", cell(r, 1), "–", "–").goal("≤ 20 MB", num(&r[1]).map(|v| v <= 20.0)));
    Ok(())
}

/// Rows from `k1s-bench-pods`.
fn pod_rows(rows: &[Vec<String>], lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let plain = |r: &[String]| Line::new(cell(r, 0), cell(r, 1), cell(r, 2), cell(r, 3));
    let r = row(rows, "Pod create → running, sequential")?;
    lines.push(plain(r).goal("p50 ≤ 30 ms, p99 ≤ 150 ms", num(&r[1]).zip(num(&r[2])).map(|(a, b)| a <= 30.0 && b <= 150.0)));
    let r = row(rows, "burst: 100 Pods")?;
    lines.push(plain(r).goal("≥ 100 Pods/s", num(&r[3]).map(|v| v >= 100.0)));
    let r = row(rows, "Pod network setup, sequential")?;
    lines.push(plain(r).goal("p99 ≤ 5 ms", num(&r[2]).map(|v| v <= 5.0)));
    lines.push(plain(row(rows, "CPU during the burst")?));
    let r = row(rows, "server RSS growth per running Pod")?;
    lines.push(plain(r).goal("≤ 100 KB", num(&r[1]).map(|v| v <= 100.0)));
    let r = row(rows, "shim RSS")?;
    lines.push(Line::new(format!("RSS per shim: {}", cell(r, 0)), cell(r, 1), cell(r, 2), "–").goal("≤ 2 MB", num(&r[2]).map(|v| v <= 2048.0)));
    lines.push(plain(row(rows, "delete 141 Pods")?));
    Ok(())
}

fn job_rows(rows: &[Vec<String>], lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let r = row(rows, "create → Complete")?;
    let what = "Job: 200 completions × parallelism 20 (`true`), create → Complete on a watch (median of 3; p99 column: worst)";
    lines.push(Line::new(what, cell(r, 1), cell(r, 3), "–").goal("≤ 5 s", num(&r[1]).map(|v| v <= 5000.0)));
    Ok(())
}

fn stream_rows(rows: &[Vec<String>], lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let r = row(rows, "exec round trip")?;
    lines.push(Line::new(cell(r, 0), cell(r, 1), cell(r, 2), "–").goal("p50 ≤ 10 ms", num(&r[1]).map(|v| v <= 10.0)));
    let r = row(rows, "`logs -f`, one follower")?;
    lines.push(Line::new("`logs -f` throughput, one follower", "–", "–", cell(r, 3)).goal("≥ 50 000 lines/s", num(&r[3]).map(|v| v >= 50_000.0)));
    Ok(())
}

/// Watches /proc from a thread for the container processes of the comparison: `sleep <marker>` with a marker
/// unique to each Pod, so the same check finds k1s's and podman's containers. Only young pids are read
/// (a container's pid is first the runtime's init, then exec's `sleep`), to keep the scan cheap.
#[derive(Clone, Default)]
struct Procs(Arc<Mutex<ProcState>>);

#[derive(Default)]
struct ProcState {
    want: HashSet<String>,
    found: HashMap<String, (u32, Instant)>,
    stop: bool,
}

impl Procs {
    fn start() -> Procs {
        let p = Procs::default();
        let state = p.0.clone();
        std::thread::spawn(move || {
            let mut first_seen: HashMap<u32, Instant> = HashMap::new();
            loop {
                let now = Instant::now();
                {
                    let st = state.lock().unwrap();
                    if st.stop {
                        return;
                    }
                }
                let mut live = HashSet::new();
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
                    live.insert(pid);
                    let seen = *first_seen.entry(pid).or_insert(now);
                    if now.duration_since(seen) > Duration::from_secs(10) {
                        continue;
                    }
                    let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
                    let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
                    if args.len() >= 2 && args[0].ends_with(b"sleep") {
                        let marker = String::from_utf8_lossy(args[1]).into_owned();
                        let mut st = state.lock().unwrap();
                        if st.want.contains(&marker) && !st.found.contains_key(&marker) {
                            st.found.insert(marker, (pid, now));
                        }
                    }
                }
                first_seen.retain(|pid, _| live.contains(pid));
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        p
    }

    fn want(&self, markers: &[String]) {
        self.0.lock().unwrap().want.extend(markers.iter().cloned());
    }

    /// When each marker's process was first seen, once all of them were.
    fn all_seen(&self, markers: &[String]) -> Option<Vec<Instant>> {
        let st = self.0.lock().unwrap();
        markers.iter().map(|m| st.found.get(m).map(|f| f.1)).collect()
    }

    /// Whether every marker's process has exited (gone from /proc, or a zombie awaiting its reaper).
    fn all_gone(&self, markers: &[String]) -> bool {
        let st = self.0.lock().unwrap();
        markers.iter().all(|m| {
            st.found.get(m).is_none_or(|(pid, _)| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()).is_none_or(|s| s == "Z" || s == "X")
            })
        })
    }
}

/// Poll (every ms) until `f` holds; fail after `timeout`.
async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> anyhow::Result<Instant> {
    let t = Instant::now();
    loop {
        if f() {
            return Ok(Instant::now());
        }
        if t.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

static MARK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The comparison's Pod manifest, the same bytes for both tools: busybox `sleep <marker>` (a unique number of
/// seconds ≥ 3600, so its process can be found), grace period 0, a local image only.
fn manifest(name: &str) -> (serde_json::Value, String) {
    let marker = (3_600_000 + MARK.fetch_add(1, std::sync::atomic::Ordering::Relaxed)).to_string();
    let m = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": CMP}},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox",
            "imagePullPolicy": "Never", "command": ["sleep", marker]}]},
    });
    (m, marker)
}

/// podman, as the suite runs it: the chosen OCI runtime and a containers.conf with rlimits the machine allows.
struct Podman {
    runtime: String,
    conf: PathBuf,
    dir: PathBuf,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf).args(["--runtime", &self.runtime]).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.cmd().args(args).output().context("running podman")?;
        if !out.status.success() {
            bail!("podman {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Import busybox (the host's static /bin/busybox) as localhost/busybox unless it is there, pick crun when
    /// it can run a container here, runc otherwise; returns why crun was not used, if it was not.
    fn setup(dir: &Path) -> anyhow::Result<(Podman, Option<String>)> {
        // podman's default rlimits for root (nofile and nproc 1048576) are above this machine's hard limits,
        // and raising them needs CAP_SYS_RESOURCE: the runtime's setrlimit fails with EPERM.
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n")?;
        let mut pm = Podman { runtime: "crun".into(), conf, dir: dir.to_path_buf() };
        if pm.run(&["image", "exists", "localhost/busybox"]).is_err() {
            let root = dir.join("busybox-rootfs");
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("bin"))?;
            std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
            for applet in ["sh", "sleep", "true"] {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
            }
            let tar = dir.join("busybox.tar");
            let st = Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").status()?;
            anyhow::ensure!(st.success(), "tar of the busybox rootfs");
            pm.run(&["import", "-q", "--change", "ENV PATH=/bin", "--change", "CMD [\"sh\"]", &tar.to_string_lossy(), "localhost/busybox:latest"])?;
        }
        let probe = pm.run(&["run", "--rm", "--network", "none", "localhost/busybox", "true"]);
        let why = match probe {
            Ok(_) => None,
            Err(e) => {
                pm.runtime = "runc".into();
                pm.run(&["run", "--rm", "--network", "none", "localhost/busybox", "true"]).context("podman with runc")?;
                Some(format!("{e:#}"))
            }
        };
        Ok((pm, why))
    }

    /// `podman kube play` of a file holding these manifests.
    fn play(&self, file: &str, manifests: &[serde_json::Value]) -> anyhow::Result<()> {
        let path = self.dir.join(file);
        let text: Vec<String> = manifests.iter().map(|m| m.to_string()).collect();
        std::fs::write(&path, text.join("\n---\n"))?;
        self.run(&["kube", "play", &path.to_string_lossy()]).map(|_| ())
    }

    fn rm(&self, names: &[String]) -> anyhow::Result<()> {
        let mut args = vec!["pod", "rm", "-f", "-t", "0"];
        args.extend(names.iter().map(String::as_str));
        self.run(&args).map(|_| ())
    }

    /// Remove every comparison Pod left behind (images stay).
    fn cleanup(&self) {
        if let Ok(out) = self.run(&["pod", "ps", "-q", "--filter", &format!("name=^{CMP}-")]) {
            let ids: Vec<String> = out.split_whitespace().map(String::from).collect();
            if !ids.is_empty() {
                let _ = self.rm(&ids);
            }
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// What the k1s side of the comparison watches: first time each Pod shows every container running, and
/// when its DELETED event arrives.
#[derive(Clone, Default)]
struct Seen {
    running: Arc<Mutex<HashMap<String, Instant>>>,
    deleted: Arc<Mutex<HashMap<String, Instant>>>,
}

fn running(p: &Pod) -> bool {
    let n = p.spec.as_ref().map(|s| s.containers.len()).unwrap_or(0);
    let cs = p.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    cs.is_some_and(|cs| cs.len() == n && cs.iter().all(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some()))
}

fn median_worst(v: &mut [Duration]) -> (Duration, Duration) {
    (pct(v, 0.5), pct(v, 1.0))
}

/// One side-by-side measurement: a start and a teardown time per run, for each tool.
#[derive(Default)]
struct Side {
    start: Vec<Duration>,
    stop: Vec<Duration>,
}

/// k1s: create the Pods (4 clients for a burst) → every one running on the watch and its process seen in
/// /proc; then delete (grace 0; a burst with one deletecollection) → every DELETED event and process gone.
async fn k1s_round(pods: &Api<Pod>, seen: &Seen, procs: &Procs, names: &[String]) -> anyhow::Result<(Duration, Duration)> {
    let (ms_, markers): (Vec<_>, Vec<_>) = names.iter().map(|n| manifest(n)).unzip();
    procs.want(&markers);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for chunk in ms_.chunks(names.len().div_ceil(4)) {
        let (api, chunk) = (pods.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for m in chunk {
                api.create(&PostParams::default(), &serde_json::from_value::<Pod>(m)?).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    until("k1s Pods running", Duration::from_secs(120), || {
        let r = seen.running.lock().unwrap();
        names.iter().all(|n| r.contains_key(n)) && procs.all_seen(&markers).is_some()
    })
    .await?;
    let r = seen.running.lock().unwrap().clone();
    let api_at = names.iter().map(|n| r[n]).max().unwrap_or(t0);
    let proc_at = procs.all_seen(&markers).unwrap_or_default().into_iter().max().unwrap_or(t0);
    let start = api_at.max(proc_at) - t0;

    let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    let t1 = Instant::now();
    if names.len() == 1 {
        pods.delete(&names[0], &dp).await?;
    } else {
        pods.delete_collection(&dp, &ListParams::default().labels(&format!("bench={CMP}"))).await?;
    }
    until("k1s Pods gone", Duration::from_secs(120), || {
        let d = seen.deleted.lock().unwrap();
        names.iter().all(|n| d.contains_key(n)) && procs.all_gone(&markers)
    })
    .await?;
    Ok((start, t1.elapsed()))
}

/// podman: `podman kube play` (a burst: 4 concurrent plays of 5 Pods each) → every command returned and every
/// process seen in /proc; then `podman pod rm -f -t 0` of them (one command) → returned and processes gone.
async fn podman_round(pm: &Arc<Podman>, procs: &Procs, names: &[String], round: usize) -> anyhow::Result<(Duration, Duration)> {
    let (ms_, markers): (Vec<_>, Vec<_>) = names.iter().map(|n| manifest(n)).unzip();
    procs.want(&markers);
    let t0 = Instant::now();
    let mut plays = Vec::new();
    for (i, chunk) in ms_.chunks(names.len().div_ceil(4)).enumerate() {
        let (pm, chunk) = (pm.clone(), chunk.to_vec());
        plays.push(tokio::task::spawn_blocking(move || pm.play(&format!("play-{round}-{i}.yaml"), &chunk)));
    }
    for p in plays {
        p.await??;
    }
    let played = Instant::now();
    until("podman containers running", Duration::from_secs(120), || procs.all_seen(&markers).is_some()).await?;
    let proc_at = procs.all_seen(&markers).unwrap_or_default().into_iter().max().unwrap_or(t0);
    let start = played.max(proc_at) - t0;

    let t1 = Instant::now();
    let (pm2, n2) = (pm.clone(), names.to_vec());
    tokio::task::spawn_blocking(move || pm2.rm(&n2)).await??;
    until("podman containers gone", Duration::from_secs(120), || procs.all_gone(&markers)).await?;
    Ok((start, t1.elapsed()))
}

/// The side-by-side rows: single-Pod start and teardown, 20-Pod burst start and teardown.
async fn compare(server: &Server, pm: Podman, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let pm = Arc::new(pm);
    pm.cleanup();
    let client = server.client().await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let seen = Seen::default();
    let w = {
        let (seen, api) = (seen.clone(), pods.clone());
        tokio::spawn(async move {
            let mut s = watcher(api, watcher::Config::default().labels(&format!("bench={CMP}"))).boxed();
            while let Some(ev) = s.next().await {
                match ev {
                    Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) if running(&p) => {
                        seen.running.lock().unwrap().entry(p.metadata.name.clone().unwrap_or_default()).or_insert_with(Instant::now);
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        seen.deleted.lock().unwrap().entry(p.metadata.name.clone().unwrap_or_default()).or_insert_with(Instant::now);
                    }
                    _ => {}
                }
            }
        })
    };
    let procs = Procs::start();
    let (mut k, mut p) = (Side::default(), Side::default());
    for i in 0..=SINGLE_RUNS {
        eprintln!("single-Pod round {i}");
        let (ks, kt) = k1s_round(&pods, &seen, &procs, &[format!("{CMP}-k1s-{i}")]).await?;
        let (ps, pt) = podman_round(&pm, &procs, &[format!("{CMP}-podman-{i}")], i).await?;
        // Round 0 warms both up (page cache, podman's storage and network set-up) and is not counted.
        if i > 0 {
            k.start.push(ks);
            k.stop.push(kt);
            p.start.push(ps);
            p.stop.push(pt);
        }
    }
    let (mut kb, mut pb) = (Side::default(), Side::default());
    for i in 0..=BURST_RUNS {
        eprintln!("{BURST}-Pod burst round {i}");
        let names: Vec<String> = (0..BURST).map(|j| format!("{CMP}-k1s-b{i}-{j}")).collect();
        let (ks, kt) = k1s_round(&pods, &seen, &procs, &names).await?;
        let names: Vec<String> = (0..BURST).map(|j| format!("{CMP}-podman-b{i}-{j}")).collect();
        let (ps, pt) = podman_round(&pm, &procs, &names, 100 + i).await?;
        if i > 0 {
            kb.start.push(ks);
            kb.stop.push(kt);
            pb.start.push(ps);
            pb.stop.push(pt);
        }
    }
    w.abort();
    procs.0.lock().unwrap().stop = true;

    let ratio = |k: Duration, p: Duration| p.as_secs_f64() / k.as_secs_f64().max(1e-9);
    let mut cmp_row = |what: &str, kv: &mut Vec<Duration>, pv: &mut Vec<Duration>, quantiles: &str, goal: Option<f64>| {
        let (k50, k99, p50, p99) = if quantiles == "p50/p99" {
            (pct(kv, 0.5), pct(kv, 0.99), pct(pv, 0.5), pct(pv, 0.99))
        } else {
            let (a, b) = median_worst(kv);
            let (c, d) = median_worst(pv);
            (a, b, c, d)
        };
        let r = ratio(k50, p50);
        let mut l = Line::new(what, format!("{} / {}", ms(k50), ms(k99)), format!("{} / {}", ms(p50), ms(p99)), format!("{r:.1}×"));
        if let Some(g) = goal {
            l = l.goal(&format!("≥ {g:.0}× faster"), Some(r >= g));
        }
        lines.push(l);
    };
    cmp_row(&format!("single Pod: create → running ({SINGLE_RUNS} runs each)"), &mut k.start, &mut p.start, "p50/p99", Some(10.0));
    cmp_row(&format!("single Pod: delete → gone ({SINGLE_RUNS} runs each)"), &mut k.stop, &mut p.stop, "p50/p99", None);
    cmp_row(&format!("{BURST}-Pod burst: create → all running ({BURST_RUNS} runs each; median / worst)"), &mut kb.start, &mut pb.start, "median", None);
    cmp_row(&format!("{BURST}-Pod burst: delete → all gone ({BURST_RUNS} runs each; median / worst)"), &mut kb.stop, &mut pb.stop, "median", None);
    Ok(())
}

/// Cold starts on fresh data dirs: spawn → API serving (the kubeconfig written) → this node Ready.
async fn cold_starts(runs: usize) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut api, mut node) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let tmp = tempfile::Builder::new().prefix("k1s-bench-suite-cold-").tempdir()?;
        let id = Identity::unique();
        let t = Instant::now();
        let server = tokio::task::spawn_blocking({
            let (dir, id) = (tmp.path().join("data"), id.clone());
            move || Server::start_in(&dir, id, "127.0.0.1:0")
        })
        .await??;
        api.push(t.elapsed());
        let nodes: Api<Node> = Api::all(server.client().await?);
        loop {
            let ready = nodes
                .get_opt(&id.node_name)
                .await?
                .and_then(|n| n.status?.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready {
                break;
            }
            anyhow::ensure!(t.elapsed() < Duration::from_secs(60), "node not Ready within 60 s");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        node.push(t.elapsed());
        drop(server);
    }
    Ok((api, node))
}

/// Idle CPU and RSS of `k1s server` with 0 and then 10 idle Pods (busybox `sleep`), each over IDLE_WINDOW
/// after the server settled; with the Pods, their shims' CPU too.
async fn idle(server: &Server, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let pid = server.pid().context("pid")?;
    let pods: Api<Pod> = Api::namespaced(server.client().await?, "default");
    let window = |pids: Vec<u32>| async move {
        let before: u64 = pids.iter().map(|p| cpu_ms(*p)).sum();
        tokio::time::sleep(IDLE_WINDOW).await;
        let after: u64 = pids.iter().map(|p| cpu_ms(*p)).sum();
        (after.saturating_sub(before)) as f64 / IDLE_WINDOW.as_millis() as f64 * 100.0
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss0 = rss_kb(pid);
    let cpu0 = window(vec![pid]).await;
    let names: Vec<String> = (0..10).map(|i| format!("idle-{i}")).collect();
    for n in &names {
        let mut m = manifest(n).0;
        m["metadata"]["labels"]["bench"] = json!("idle");
        pods.create(&PostParams::default(), &serde_json::from_value(m)?).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = pods.list(&ListParams::default().labels("bench=idle")).await?;
        if list.items.len() == names.len() && list.items.iter().all(running) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "10 idle Pods not running within 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss10 = rss_kb(pid);
    let shims = shim_pids(&server.dir);
    let (cpu10, shim_cpu) = tokio::join!(window(vec![pid]), window(shims.clone()));
    lines.push(
        Line::new("idle RSS of `k1s server`, node Ready, 0 Pods", format!("{:.1} MB", rss0 as f64 / 1024.0), "–", "–").goal("≤ 30 MB", Some(rss0 <= 30 * 1024)),
    );
    lines.push(Line::new("idle RSS of `k1s server`, 10 idle Pods", format!("{:.1} MB", rss10 as f64 / 1024.0), "–", "–"));
    let what = format!("idle CPU of `k1s server`, 0 Pods ({} s window)", IDLE_WINDOW.as_secs());
    lines.push(Line::new(what, format!("{cpu0:.2} % of a core"), "–", "–").goal("≤ 0.5 % of a core", Some(cpu0 <= 0.5)));
    let what = format!("idle CPU of `k1s server`, 10 idle Pods ({} s window; throughput column: their {} shims together)", IDLE_WINDOW.as_secs(), shims.len());
    lines.push(Line::new(what, format!("{cpu10:.2} % of a core"), "–", format!("{shim_cpu:.2} % of a core")).goal("≤ 0.5 % of a core", Some(cpu10 <= 0.5)));
    let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    pods.delete_collection(&dp, &ListParams::default().labels("bench=idle")).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pods.list(&ListParams::default().labels("bench=idle")).await?.items.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "idle Pods not deleted within 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn first_line_after(path: &str, key: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default().lines().find(|l| l.starts_with(key)).and_then(|l| l.split(':').nth(1)).unwrap_or("").trim().to_string()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn git(root: &Path, args: &[&str]) -> String {
    Command::new("git").arg("-C").arg(root).args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

fn render(title: &str, header: &str, lines: &[Line]) -> String {
    let mut s = format!("{title}\n\n{header}\n|---|---|---|---|---|---|\n");
    for l in lines {
        s += &format!("| {} | {} | {} | {} | {} | {} |\n", l.what, l.p50, l.p99, l.rate, l.goal, l.result);
    }
    s
}

/// `BENCH_PARTS` (comma-separated: k1s-bench, k1s-bench-pods, k1s-bench-job, k1s-bench-stream, cold, idle,
/// podman) runs only those parts, for working on the suite; the default is all of them.
fn part(name: &str) -> bool {
    std::env::var("BENCH_PARTS").map_or(true, |v| v.split(',').any(|p| p.trim() == name))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    require_root();
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?.to_path_buf();
    let out_path = std::env::var("BENCH_OUT").map(PathBuf::from).unwrap_or_else(|_| root.join("target/bench/results.md"));
    let out_dir = out_path.parent().context("BENCH_OUT has a directory")?.to_path_buf();
    std::fs::create_dir_all(&out_dir)?;
    let load_start = loadavg();
    let when =
        Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    let dirty = if git(&root, &["status", "--porcelain", "--untracked-files=no"]).is_empty() { "" } else { " (with uncommitted changes)" };
    let rev = format!("{}{dirty}", git(&root, &["rev-parse", "--short", "HEAD"]));

    let mut lines = Vec::new();
    // The API benchmark's load phases: 5 s each unless BENCH_SECONDS says otherwise.
    let secs = std::env::var("BENCH_SECONDS").unwrap_or_else(|_| "5".into());
    let benches: [(&str, &[(&str, &str)], fn(&[Vec<String>], &mut Vec<Line>) -> anyhow::Result<()>); 4] = [
        ("k1s-bench", &[("BENCH_SECONDS", &secs)], api_rows),
        ("k1s-bench-pods", &[], pod_rows),
        ("k1s-bench-job", &[], job_rows),
        ("k1s-bench-stream", &[], stream_rows),
    ];
    for (name, env, parse) in benches {
        if !part(name) {
            continue;
        }
        if let Err(e) = run_bench(&out_dir, name, env).and_then(|rows| parse(&rows, &mut lines)) {
            lines.push(failed(&format!("`{name}`"), &e));
        }
    }

    let cold = if part("cold") {
        eprintln!("== cold starts");
        Some(cold_starts(3).await)
    } else {
        None
    };
    match cold {
        None => {}
        Some(Ok((mut api, mut node))) => {
            lines.push(
                Line::new("cold start: spawn → API serving, fresh data dir (3 runs; p99 column: worst)", ms(pct(&mut api, 0.5)), ms(pct(&mut api, 1.0)), "–")
                    .goal("≤ 200 ms", Some(pct(&mut api, 0.5) <= Duration::from_millis(200))),
            );
            lines.push(Line::new(
                "cold start: spawn → node Ready, fresh data dir (3 runs; p99 column: worst)",
                ms(pct(&mut node, 0.5)),
                ms(pct(&mut node, 1.0)),
                "–",
            ));
        }
        Some(Err(e)) => lines.push(failed("cold start", &e)),
    }

    // One server for the idle figures and the side-by-side: a pod CIDR outside both the harness's
    // (10.20–219.0.0/16) and podman's default network (10.88.0.0/16).
    let mut id = Identity::unique();
    id.pod_cidr = "10.231.0.0/16".into();
    let tmp = tempfile::Builder::new().prefix("k1s-bench-suite-").tempdir()?;
    let server = tokio::task::spawn_blocking({
        let dir = tmp.path().join("data");
        move || Server::start_in(&dir, id, "127.0.0.1:0")
    })
    .await??;
    eprintln!("== idle CPU and RSS");
    if !part("idle") {
    } else if let Err(e) = idle(&server, &mut lines).await {
        lines.push(failed("idle CPU and RSS", &e));
    }

    eprintln!("== side by side with podman");
    let mut side = Vec::new();
    let mut runtime_note = String::new();
    let podman_version = Command::new("podman").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    match part("podman").then(|| Podman::setup(&out_dir)) {
        None => runtime_note = "skipped (BENCH_PARTS)".into(),
        Some(Ok((pm, why))) => {
            runtime_note = match why {
                None => format!("{podman_version}, OCI runtime {}", pm.runtime),
                Some(why) => format!(
                    "{podman_version}, OCI runtime {} (crun cannot run a container on this machine: `{}`)",
                    pm.runtime,
                    why.lines().last().and_then(|l| l.rsplit("Error: ").next()).unwrap_or("").replace('`', "'")
                ),
            };
            if let Err(e) = compare(&server, pm, &mut side).await {
                side.push(failed("side by side with podman", &e));
            }
        }
        Some(Err(e)) => side.push(failed("podman set-up", &e)),
    }
    drop(server);

    let cpu = first_line_after("/proc/cpuinfo", "model name");
    let mem = num(&first_line_after("/proc/meminfo", "MemTotal")).unwrap_or(0.0) / 1024.0 / 1024.0;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let mut md = format!(
        "# k1s benchmark suite, {when}\n\nMachine: {cores} cores ({cpu}), {mem:.1} GiB memory, kernel {kernel}; git {rev}; \
         load average (1/5/15 min) {load_start} at the start, {} at the end; the suite took {:.0} s.\n\n",
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    md += &render("## k1s", "| what | p50 | p99 | throughput | goal | result |", &lines);
    md += &format!(
        "\n## Side by side with podman (same run, same machine; {runtime_note})\n\nThe same Pod manifest (busybox `sleep`, local image, grace period 0) for both. \
         Start: from the create request (k1s, from 4 concurrent clients for a burst) or the start of `podman kube play` \
         (a burst: 4 concurrent plays of 5 Pods each) until both the tool reports the Pods running (k1s: every \
         container running on a watch; podman: `kube play` returned, which it does once the containers started) \
         and every container's `sleep` process is seen in /proc. Teardown: from the delete request (grace 0; a burst: \
         one deletecollection) or the start of `podman pod rm -f -t 0` until the tool is done (k1s: DELETED on the \
         watch; podman: the command returned) and every `sleep` process has exited. First round of each not counted.\n\n"
    );
    md += render("", "| what | k1s p50 / p99 | podman p50 / p99 | podman ÷ k1s (p50) | goal | result |", &side).trim_start();
    std::fs::write(&out_path, &md)?;
    println!("{md}");
    eprintln!("written to {}", out_path.display());
    Ok(())
}
