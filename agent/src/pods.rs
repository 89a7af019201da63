//! The sync loop: one watch on the Pods bound to this node, one worker per Pod UID (the latest update wins),
//! each worker planning with `compute_pod_actions` and applying the plan through the runtime, then writing
//! the Pod's status when it changed. Containers' exits arrive as events (pidfd), not by relisting.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;
use tokio::sync::mpsc;

use crate::container::{self, ConfigError, EnvSources};
use crate::plan::{self, Action, ContainerObserved, ContainerState, Desired, Observed, ProbeCounter, ProbeKind, RestartPolicy};
use crate::probe::{self, Handler, ProbeConfig, Target};
use crate::runtime::{self, cgroup, spec, ContainerSpec, Exit, Runtime, RuntimeError, SandboxInfo, SandboxRequest, State};
use crate::status::{self, ContainerView, PodView};
use crate::{events, static_pods, volumes};

/// Shared by every worker.
pub struct Shared {
    pub client: kube::Client,
    pub runtime: Runtime,
    pub images: Arc<k1s_images::ImageStore>,
    pub node_name: String,
    pub host_ip: String,
    /// Sandboxes found on disk at start, handed to their worker when its Pod shows up.
    pub recovered: Mutex<HashMap<String, PodRuntime>>,
    /// Pod events, aggregated and written in the background.
    pub events: events::Recorder,
}

/// What a worker knows about its Pod's sandbox and containers.
#[derive(Default)]
pub struct PodRuntime {
    pub sandbox: Option<SandboxInfo>,
    /// The sandbox's network and cgroups were released because the Pod finished.
    pub sandbox_stopped: bool,
    pub containers: BTreeMap<String, Box<ContainerView>>,
    pub dirs: BTreeMap<String, PathBuf>,
    pub volumes: Option<BTreeMap<String, PathBuf>>,
    /// Image pull / config failures per container, for back-off.
    pub failures: BTreeMap<String, (u32, std::time::Instant)>,
}

enum Event {
    Pod(Option<Box<Pod>>),
    /// Boxed: the channel's blocks hold 32 events each, sized by the largest variant.
    Exited { name: String, attempt: u32, exit: Box<Exit> },
    /// A back-off or retry timer ran out.
    Tick,
    /// One run of a probe of a container's attempt: `Ok` passed, `Err` carries upstream's failure message.
    Probe { name: String, attempt: u32, kind: ProbeKind, result: Result<String, String> },
}

/// The probes of one container's running attempt: their configs, results so far and timer tasks.
struct Probing {
    attempt: u32,
    configs: BTreeMap<ProbeKind, ProbeConfig>,
    counters: BTreeMap<ProbeKind, ProbeCounter>,
    tasks: BTreeMap<ProbeKind, tokio::task::AbortHandle>,
    /// A failed liveness or startup probe is being acted on: the container is stopping.
    killing: bool,
}

impl Drop for Probing {
    fn drop(&mut self) {
        self.tasks.values().for_each(|t| t.abort());
    }
}

/// How long the Pod has been active on the node: since its `status.startTime`.
fn active_for(pod: &Pod) -> Duration {
    let Some(start) = pod.status.as_ref().and_then(|s| s.start_time.as_ref()) else { return Duration::ZERO };
    let d = k8s_openapi::jiff::Timestamp::now().duration_since(start.0);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// The Pod's `terminationGracePeriodSeconds` (upstream's default: 30 s).
fn grace_period(pod: &Pod) -> Duration {
    Duration::from_secs(pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30).max(0) as u64)
}

/// A container of the Pod by name, init containers included.
fn find_container(pod: &Pod, name: &str) -> Option<Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers.iter().chain(spec.init_containers.iter().flatten()).find(|c| c.name == name).cloned().or_else(|| {
        spec.ephemeral_containers.iter().flatten().find(|c| c.name == name).map(status::ephemeral_as_container)
    })
}

/// Stop one container as the kubelet does: its preStop hook first, bounded by the grace period, then SIGTERM
/// and SIGKILL after what is left of it (at least 2 s, upstream's minimum after a hook).
async fn stop_with_hook(shared: Arc<Shared>, pod: Option<Box<Pod>>, name: String, target: Target, state: State, grace: Duration) {
    let t0 = std::time::Instant::now();
    let hook = pod.as_ref().and_then(|p| find_container(p, &name)).and_then(|c| {
        let h = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
        Some(probe::hook_handler(h, &c).unwrap_or_else(|e| Handler::Invalid(e.0)))
    });
    let mut grace = grace;
    if let (Some(h), false) = (hook, grace.is_zero()) {
        if let Err(msg) = probe::run(&h, &target, grace).await {
            if let Some(pod) = &pod {
                events::record(&shared, pod, Some(&name), "Warning", "FailedPreStopHook", &format!("PreStopHook failed: {msg}"));
            }
        }
        grace = grace.saturating_sub(t0.elapsed()).max(Duration::from_secs(2));
    }
    runtime::stop_container(&state, &target.dir, grace).await;
}

/// `terminated.message`: the file at terminationMessagePath (≤ 4 KiB), or under FallbackToLogsOnError the
/// log's last 80 lines (≤ 2 KiB) when the file is empty and the container failed (upstream's limits).
fn termination_message(c: Option<&Container>, attempt_dir: &std::path::Path, log: &std::path::Path, exit: &Exit) -> Option<String> {
    let mut msg = std::fs::read(attempt_dir.join(TERMINATION_LOG)).ok().map(|mut b| {
        b.truncate(4096);
        String::from_utf8_lossy(&b).into_owned()
    });
    let fallback = c.and_then(|c| c.termination_message_policy.as_deref()) == Some("FallbackToLogsOnError");
    if fallback && exit.exit_code != 0 && msg.as_deref().is_none_or(|m| m.is_empty()) {
        msg = Some(crate::logs::tail_text(log, 80, 2048));
    }
    msg.filter(|m| !m.is_empty())
}

/// The host file bind-mounted at the container's terminationMessagePath, in its attempt directory.
const TERMINATION_LOG: &str = "termination-log";

fn since(ts: &str) -> Duration {
    let now = k8s_openapi::jiff::Timestamp::now();
    k1s_api::meta::parse_time(ts).map(|t| now.duration_since(t).unsigned_abs()).map(|d| Duration::from_nanos(d.as_nanos() as u64)).unwrap_or(Duration::MAX)
}

/// Rebuild what the runtime knows from the state directory and the live shims (after an agent restart).
pub fn recover(rt: &Runtime) -> HashMap<String, PodRuntime> {
    let mut out = HashMap::new();
    for sb in rt.list_sandboxes() {
        // A finished Pod's sandbox was released on purpose (namespaces unmounted, the "stopped" marker): it is
        // not a reboot's victim, and its exit records must stay so the Pod stays finished and is not run again.
        let stopped = std::fs::metadata(rt.pod_dir(&sb.uid).join("stopped")).is_ok();
        if !stopped && !runtime::sandbox_alive(&sb) {
            // The machine rebooted: the namespaces and every container are gone. Start the Pod afresh.
            tracing::info!(pod = %sb.uid, "sandbox did not survive a reboot; it will be recreated");
            let _ = rt.release_sandbox(&sb.uid);
            let _ = std::fs::remove_dir_all(rt.pod_dir(&sb.uid));
            continue;
        }
        let mut pr = PodRuntime { sandbox: Some(sb.clone()), ..Default::default() };
        let cdir = rt.pod_dir(&sb.uid).join("containers");
        for e in std::fs::read_dir(&cdir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let mut attempts: Vec<u32> = std::fs::read_dir(e.path()).into_iter().flatten().flatten().filter_map(|a| a.file_name().to_str()?.parse().ok()).collect();
            attempts.sort_unstable();
            // An attempt that was never started (its spec written, then k1s stopped before the shim began or
            // finished starting it: no state, no exit record) is not a container that ran: drop it, so the worker
            // starts it as the kubelet creates a container its runtime does not have. A shim still starting it is
            // waited for (its state comes within milliseconds), so nothing runs twice.
            while let Some(&a) = attempts.last() {
                let dir = e.path().join(a.to_string());
                let settled = |d: &std::path::Path| d.join(spec::STATE).exists() || runtime::read_exit(d).is_some();
                let started = settled(&dir) || {
                    let t0 = std::time::Instant::now();
                    while !settled(&dir) && runtime::any_shim_for(&dir) && t0.elapsed() < Duration::from_secs(10) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    settled(&dir)
                };
                if started {
                    break;
                }
                tracing::info!(pod = %sb.uid, container = %e.file_name().to_string_lossy(), attempt = a, "a container start was cut short while k1s was down; it will be started again");
                let _ = std::fs::remove_dir_all(&dir);
                attempts.pop();
            }
            let Some(&latest) = attempts.last() else { continue };
            let view = |attempt: u32| -> Option<(ContainerView, PathBuf)> {
                let dir = e.path().join(attempt.to_string());
                let s: ContainerSpec = spec::read_json(&dir.join(spec::SPEC)).ok()?;
                let state: Option<State> = spec::read_json(&dir.join(spec::STATE)).ok();
                let mut exit = runtime::read_exit(&dir);
                if exit.is_none() && !state.as_ref().is_some_and(|st| runtime::shim_alive(st.shim_pid, &dir)) {
                    exit = Some(Exit { exit_code: 255, signal: None, oom_killed: false, finished_at: runtime::shim::now_rfc3339(), start_error: Some("the container was lost while k1s was down (its shim is gone)".into()), message: None });
                }
                let started_at = state.as_ref().map(|s| s.started_at.clone());
                Some((
                    ContainerView {
                        restart_count: attempt,
                        id: s.id,
                        image: s.image,
                        image_id: s.image_id,
                        running: if exit.is_none() { state } else { None },
                        exited: exit,
                        started_at,
                        last: None,
                        waiting: None,
                        probe_ready: None,
                        probe_started: None,
                        backoff_base: 0,
                    },
                    dir,
                ))
            };
            if let Some((mut v, dir)) = view(latest) {
                if latest > 0 {
                    if let Some((prev, _)) = view(latest - 1) {
                        if let Some(e) = prev.exited {
                            v.last = Some((e, prev.id, prev.started_at));
                        }
                    }
                }
                pr.containers.insert(name.clone(), Box::new(v));
                pr.dirs.insert(name, dir);
            }
        }
        pr.sandbox_stopped = stopped;
        out.insert(sb.uid.clone(), pr);
    }
    out
}

/// Watch the Pods bound to this node, and the static Pod files in `manifests`, and keep one worker per Pod
/// UID. Mirror Pods are not run (their static Pod is); a change to one makes the mirrors be checked.
pub async fn run(shared: Arc<Shared>, manifests: PathBuf) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.node_name));
    let mut stream = watcher(api, cfg).boxed();
    let mut workers: HashMap<String, mpsc::UnboundedSender<Event>> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut first_sync = true;

    // Static Pods start before the API watch's first sync, so their recovered sandboxes are not taken for
    // orphans, and whether the API answers or not.
    let _ = std::fs::create_dir_all(&manifests);
    let mut statics: BTreeMap<String, static_pods::StaticPod> = BTreeMap::new();
    let mut reported: HashSet<String> = HashSet::new();
    let (mirrors_tx, mirrors_rx) = tokio::sync::watch::channel(Arc::new(BTreeMap::new()));
    tokio::spawn(static_pods::mirror_loop(shared.client.clone(), shared.node_name.clone(), mirrors_rx));
    let mut changes = static_pods::watch_dir(manifests.clone());
    rescan_static(&shared, &manifests, &mut statics, &mut workers, &mut reported);
    mirrors_tx.send_replace(Arc::new(statics.clone()));
    // The mirror's status, per static UID, for the worker (its status writes go there).
    let mut mirror_status: HashMap<String, Option<k8s_openapi::api::core::v1::PodStatus>> = HashMap::new();

    loop {
        let ev = tokio::select! {
            ev = stream.next() => match ev {
                Some(ev) => ev,
                None => return,
            },
            Some(()) = changes.recv() => {
                if rescan_static(&shared, &manifests, &mut statics, &mut workers, &mut reported) {
                    mirror_status.retain(|uid, _| statics.contains_key(uid));
                    mirrors_tx.send_replace(Arc::new(statics.clone()));
                }
                continue;
            }
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match ev {
            watcher::Event::Init => seen.clear(),
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) if static_pods::is_mirror(&pod) => {
                let uid = static_pods::mirror_of(&pod).unwrap_or_default().to_string();
                match statics.get(&uid) {
                    Some(sp) if pod.metadata.deletion_timestamp.is_none() => {
                        // The worker reads its status from the mirror, and writes it back there.
                        if mirror_status.get(&uid) != Some(&pod.status) {
                            mirror_status.insert(uid.clone(), pod.status.clone());
                            let mut p = sp.pod.clone();
                            p.status = pod.status.clone();
                            if let Some(tx) = workers.get(&uid) {
                                let _ = tx.send(Event::Pod(Some(Box::new(p))));
                            }
                        }
                    }
                    // Deleted through the API, or a static Pod that is gone: the mirror loop puts it right.
                    _ => mirrors_tx.send_modify(|_| {}),
                }
            }
            watcher::Event::Delete(pod) if static_pods::is_mirror(&pod) => {
                mirror_status.remove(static_pods::mirror_of(&pod).unwrap_or_default());
                mirrors_tx.send_modify(|_| {});
            }
            watcher::Event::InitApply(mut pod) | watcher::Event::Apply(mut pod) => {
                // The worker keeps its Pod for the Pod's life and never reads managedFields (a few KB each).
                pod.metadata.managed_fields = None;
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                seen.insert(uid.clone());
                let tx = workers.entry(uid.clone()).or_insert_with(|| spawn_worker(shared.clone(), uid.clone()));
                if tx.send(Event::Pod(Some(Box::new(pod)))).is_err() {
                    workers.remove(&uid);
                }
            }
            watcher::Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(tx) = workers.remove(&uid) {
                    let _ = tx.send(Event::Pod(None));
                }
            }
            watcher::Event::InitDone => {
                workers.retain(|uid, tx| {
                    if seen.contains(uid) || statics.contains_key(uid) {
                        return !tx.is_closed();
                    }
                    let _ = tx.send(Event::Pod(None));
                    false
                });
                mirrors_tx.send_modify(|_| {});
                if first_sync {
                    first_sync = false;
                    // Sandboxes on disk whose Pod no longer exists: remove them.
                    let orphans: Vec<String> = shared.recovered.lock().expect("lock").keys().filter(|u| !seen.contains(*u) && !statics.contains_key(*u)).cloned().collect();
                    for uid in orphans {
                        shared.recovered.lock().expect("lock").remove(&uid);
                        let rt = shared.runtime.clone();
                        tokio::spawn(async move {
                            tracing::info!(pod = %uid, "removing the sandbox of a Pod that is gone");
                            kill_all_on_disk(&rt, &uid).await;
                            if let Err(e) = rt.remove_sandbox(&uid).await {
                                tracing::warn!(pod = %uid, error = %e, "removing an orphaned sandbox");
                            }
                        });
                    }
                    let live: HashSet<String> = seen.iter().chain(statics.keys()).cloned().collect();
                    if let Err(e) = shared.runtime.net.retain(&live) {
                        tracing::warn!(error = %e, "releasing the IPs of Pods that are gone");
                    }
                }
            }
        }
    }
}

/// Read the static Pod directory again: start workers for new static Pods, stop those whose file changed
/// or went, and report unusable files as Node events (once per distinct error). Returns whether the set of
/// static Pods changed.
fn rescan_static(
    shared: &Arc<Shared>,
    dir: &std::path::Path,
    statics: &mut BTreeMap<String, static_pods::StaticPod>,
    workers: &mut HashMap<String, mpsc::UnboundedSender<Event>>,
    reported: &mut HashSet<String>,
) -> bool {
    let (now, errors) = static_pods::load_dir(dir, &shared.node_name);
    let mut current_errors = HashSet::new();
    for e in errors {
        let text = e.to_string();
        if !reported.contains(&text) {
            tracing::warn!(error = %text, "static Pod file not used");
            shared.events.record_node("Warning", "FailedStaticPod", &format!("static Pod file {text}"));
        }
        current_errors.insert(text);
    }
    *reported = current_errors;
    if now.keys().eq(statics.keys()) {
        return false;
    }
    for uid in statics.keys().filter(|u| !now.contains_key(*u)) {
        tracing::info!(pod = %uid, "static Pod removed or changed: stopping it");
        if let Some(tx) = workers.remove(uid) {
            let _ = tx.send(Event::Pod(None));
        }
    }
    for (uid, sp) in now.iter().filter(|(u, _)| !statics.contains_key(*u)) {
        tracing::info!(pod = %uid, name = sp.pod.metadata.name.as_deref().unwrap_or(""), file = %sp.file.display(), "running a static Pod");
        let tx = workers.entry(uid.clone()).or_insert_with(|| spawn_worker(shared.clone(), uid.clone()));
        let _ = tx.send(Event::Pod(Some(Box::new(sp.pod.clone()))));
    }
    *statics = now;
    true
}

async fn kill_all_on_disk(rt: &Runtime, uid: &str) {
    for dir in rt.attempt_dirs(uid) {
        if let Ok(st) = spec::read_json::<State>(&dir.join(spec::STATE)) {
            runtime::stop_container(&st, &dir, Duration::ZERO).await;
        }
    }
}

fn spawn_worker(shared: Arc<Shared>, uid: String) -> mpsc::UnboundedSender<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    let recovered = shared.recovered.lock().expect("lock").remove(&uid).unwrap_or_default();
    let w = Worker { shared, uid, tx: tx.clone(), rt: recovered, last_status: None, pod: None, probes: BTreeMap::new() };
    tokio::spawn(w.run(rx));
    tx
}

struct Worker {
    shared: Arc<Shared>,
    uid: String,
    tx: mpsc::UnboundedSender<Event>,
    rt: PodRuntime,
    /// A 64-bit hash of the last status written (or found already in place), as compact JSON: "write only on
    /// change" compares against it. The `serde_json::Value` tree it replaces cost ~8 KB per Pod for the Pod's
    /// whole life; a collision (2^-64) would skip one status write until the next change.
    last_status: Option<u64>,
    pod: Option<Box<Pod>>,
    /// Per container name: the probes of its running attempt.
    /// Boxed values (also in `PodRuntime::containers`): a BTreeMap allocates room for 11 entries in its first
    /// node, ~4 KB per Pod with these structs inline.
    probes: BTreeMap<String, Box<Probing>>,
}

fn desired(pod: &Pod) -> Desired {
    let spec = pod.spec.clone().unwrap_or_default();
    Desired {
        deleting: pod.metadata.deletion_timestamp.is_some(),
        restart_policy: RestartPolicy::parse(spec.restart_policy.as_deref()),
        init_containers: spec.init_containers.iter().flatten().map(|c| c.name.clone()).collect(),
        sidecars: spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always")).map(|c| c.name.clone()).collect(),
        containers: spec.containers.iter().map(|c| c.name.clone()).collect(),
        ephemeral: spec.ephemeral_containers.iter().flatten().map(|c| c.name.clone()).collect(),
        active_deadline: spec.active_deadline_seconds.map(|s| Duration::from_secs(s.max(0) as u64)),
    }
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""))
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        // Watch the exits of containers recovered as running.
        for (name, v) in &self.rt.containers {
            if let (Some(st), Some(dir)) = (&v.running, self.rt.dirs.get(name)) {
                self.watch_exit(name.clone(), v.restart_count, st.shim_pid, dir.clone());
            }
        }
        let mut wake: Option<Duration> = None;
        loop {
            let ev = match wake {
                Some(d) => match tokio::time::timeout(d, rx.recv()).await {
                    Ok(ev) => ev,
                    Err(_) => Some(Event::Tick),
                },
                None => rx.recv().await,
            };
            let Some(ev) = ev else {
                if self.pod.is_none() {
                    return;
                }
                continue;
            };
            let mut gone = false;
            self.apply_event(ev, &mut gone);
            // Coalesce: only the latest Pod matters.
            while let Ok(ev) = rx.try_recv() {
                self.apply_event(ev, &mut gone);
            }
            // The sync and teardown futures are boxed: inline they would make this task's state machine (kept for
            // the Pod's whole life, mostly waiting in `recv`) the size of their deepest await, ~18 KB per Pod.
            if gone {
                Box::pin(self.terminate(Duration::from_secs(1))).await;
                if let Err(e) = Box::pin(self.shared.runtime.remove_sandbox(&self.uid)).await {
                    tracing::warn!(pod = %self.uid, error = %e, "removing the sandbox");
                }
                return;
            }
            let Some(pod) = self.pod.clone() else { continue };
            match Box::pin(self.sync(&pod)).await {
                SyncResult::Done => return,
                SyncResult::Again(d) => wake = d,
            }
        }
    }

    fn apply_event(&mut self, ev: Event, gone: &mut bool) {
        match ev {
            Event::Pod(p) => match p {
                Some(p) => {
                    // A status the worker did not write (a static Pod's new mirror): compare against it again.
                    if self.pod.as_ref().is_some_and(|old| old.status != p.status) {
                        self.last_status = None;
                    }
                    self.pod = Some(p);
                }
                None => *gone = true,
            },
            Event::Tick => {}
            Event::Exited { name, attempt, exit } => {
                let exit = self.with_message(&name, attempt, *exit);
                if let Some(v) = self.rt.containers.get_mut(&name) {
                    if v.restart_count == attempt {
                        v.running = None;
                        v.exited = Some(exit);
                        self.probes.remove(&name);
                    }
                }
            }
            Event::Probe { name, attempt, kind, result } => self.probe_result(&name, attempt, kind, result),
        }
    }

    /// Fill in `terminated.message` from the attempt's termination log (or its logs).
    fn with_message(&self, name: &str, attempt: u32, mut exit: Exit) -> Exit {
        if exit.message.is_none() && exit.start_error.is_none() {
            let c = self.pod.as_ref().and_then(|p| find_container(p, name));
            let dir = self.shared.runtime.container_dir(&self.uid, name, attempt);
            exit.message = termination_message(c.as_ref(), &dir, &self.shared.runtime.log_path(&self.uid, name, attempt), &exit);
        }
        exit
    }

    /// Count one probe result (upstream's thresholds, plan::ProbeCounter) and carry it into the view.
    fn probe_result(&mut self, name: &str, attempt: u32, kind: ProbeKind, result: Result<String, String>) {
        let Some(p) = self.probes.get_mut(name).filter(|p| p.attempt == attempt && !p.killing) else { return };
        let Some(v) = self.rt.containers.get_mut(name).filter(|v| v.restart_count == attempt && v.running.is_some()) else { return };
        if let (Err(msg), Some(pod)) = (&result, &self.pod) {
            events::record(&self.shared, pod, Some(name), "Warning", "Unhealthy", &format!("{} probe failed: {msg}", kind.title()));
        }
        let (Some(cfg), Some(counter)) = (p.configs.get(&kind), p.counters.get_mut(&kind)) else { return };
        if !counter.observe(result.is_ok(), cfg.success_threshold, cfg.failure_threshold) {
            return;
        }
        match kind {
            ProbeKind::Readiness => v.probe_ready = counter.result,
            // A startup probe stops once it has succeeded; liveness and readiness start then (ensure_probes).
            ProbeKind::Startup if counter.result == Some(true) => {
                v.probe_started = Some(true);
                if let Some(t) = p.tasks.remove(&kind) {
                    t.abort();
                }
            }
            // Failed liveness and startup probes reach the plan through `observed` (unhealthy).
            ProbeKind::Startup | ProbeKind::Liveness => {}
        }
    }

    /// Start the probe timers of running attempts that have none yet; startup gates liveness and readiness.
    fn ensure_probes(&mut self, pod: &Pod) {
        let Some(spec) = pod.spec.as_ref() else { return };
        let pod_ip = self.rt.sandbox.as_ref().and_then(|s| s.ip);
        // Sidecars are probed like main containers (regular init containers have no probes).
        let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
        for c in spec.containers.iter().chain(sidecars) {
            let Some(v) = self.rt.containers.get_mut(&c.name) else { continue };
            let (Some(_), Some(dir)) = (v.running.as_ref(), self.rt.dirs.get(&c.name)) else {
                self.probes.remove(&c.name);
                continue;
            };
            if self.probes.get(&c.name).is_none_or(|p| p.attempt != v.restart_count) {
                let configs: BTreeMap<ProbeKind, ProbeConfig> = [(ProbeKind::Startup, &c.startup_probe), (ProbeKind::Liveness, &c.liveness_probe), (ProbeKind::Readiness, &c.readiness_probe)]
                    .into_iter()
                    .filter_map(|(k, p)| Some((k, probe::probe_config(p.as_ref()?, c))))
                    .collect();
                v.probe_ready = configs.contains_key(&ProbeKind::Readiness).then_some(false);
                v.probe_started = configs.contains_key(&ProbeKind::Startup).then_some(false);
                let counters = configs.keys().map(|k| (*k, ProbeCounter::new(*k))).collect();
                self.probes.insert(c.name.clone(), Box::new(Probing { attempt: v.restart_count, configs, counters, tasks: BTreeMap::new(), killing: false }));
            }
            let p = self.probes.get_mut(&c.name).expect("inserted above");
            if p.killing {
                continue;
            }
            let started = p.counters.get(&ProbeKind::Startup).is_none_or(|s| s.result == Some(true));
            // initialDelaySeconds counts from the container's start, as upstream.
            let running_for = v.started_at.as_deref().map(since).unwrap_or(Duration::ZERO);
            for (kind, cfg) in &p.configs {
                let wanted = if *kind == ProbeKind::Startup { !started } else { started };
                if !wanted || p.tasks.contains_key(kind) {
                    continue;
                }
                let (tx, cfg, name, attempt, kind) = (self.tx.clone(), cfg.clone(), c.name.clone(), p.attempt, *kind);
                let target = probe::target(&self.shared.runtime.cfg.exe, dir, pod_ip);
                let task = tokio::spawn(async move {
                    tokio::time::sleep(cfg.initial_delay.saturating_sub(running_for)).await;
                    loop {
                        let result = probe::run(&cfg.handler, &target, cfg.timeout).await;
                        if tx.send(Event::Probe { name: name.clone(), attempt, kind, result }).is_err() {
                            return;
                        }
                        tokio::time::sleep(cfg.period).await;
                    }
                });
                p.tasks.insert(kind, task.abort_handle());
            }
        }
    }

    fn watch_exit(&self, name: String, attempt: u32, shim_pid: i32, dir: PathBuf) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let exit = runtime::wait_exit(shim_pid, dir).await;
            let _ = tx.send(Event::Exited { name, attempt, exit: Box::new(exit) });
        });
    }

    fn observed(&self, pod: &Pod) -> Observed {
        let containers = self
            .rt
            .containers
            .iter()
            .filter_map(|(name, v)| {
                let state = if v.running.is_some() {
                    ContainerState::Running
                } else if let Some(e) = &v.exited {
                    let ran_for = v.started_at.as_deref().map(|st| since(st).saturating_sub(since(&e.finished_at))).unwrap_or(Duration::ZERO);
                    ContainerState::Exited { exit_code: e.exit_code, finished_ago: since(&e.finished_at), ran_for }
                } else {
                    return None;
                };
                let unhealthy = self.probes.get(name).filter(|p| p.attempt == v.restart_count && !p.killing && v.running.is_some()).and_then(|p| {
                    let failed = |k: ProbeKind| p.counters.get(&k).is_some_and(|c| c.result == Some(false));
                    [ProbeKind::Startup, ProbeKind::Liveness].into_iter().find(|k| failed(*k))
                });
                Some((name.clone(), ContainerObserved { restart_count: v.restart_count, backoff_restarts: v.restart_count.saturating_sub(v.backoff_base), state, unhealthy, started: v.is_started() }))
            })
            .collect();
        Observed { sandbox: self.rt.sandbox.is_some() && !self.rt.sandbox_stopped, containers, active_for: active_for(pod) }
    }

    async fn sync(&mut self, pod: &Pod) -> SyncResult {
        let d = desired(pod);
        let mut o = self.observed(pod);
        if self.rt.sandbox_stopped {
            o.sandbox = true; // finished Pods keep their (stopped) sandbox until deleted
        }
        let actions = plan::compute_pod_actions(&d, &o);
        let mut wake: Option<Duration> = None;
        let min_wake = |d: Duration, w: &mut Option<Duration>| *w = Some(w.map_or(d, |x| x.min(d)));
        for action in actions {
            match action {
                Action::CreateSandbox => {
                    if let Err(e) = self.create_sandbox(pod).await {
                        tracing::warn!(pod = %pod_key(pod), error = %e, "creating the sandbox");
                        events::record(&self.shared, pod, None, "Warning", "FailedCreatePodSandBox", &format!("Failed to create pod sandbox: {e}"));
                        min_wake(Duration::from_secs(5), &mut wake);
                        break;
                    }
                }
                Action::StartContainer { name, init, attempt } => {
                    if let Some(d) = self.start(pod, &name, init, attempt).await {
                        min_wake(d, &mut wake);
                    }
                }
                Action::BackOff { name, wait } => {
                    if let Some(v) = self.rt.containers.get_mut(&name) {
                        let msg = format!("back-off {}s restarting failed container={name} pod={}_{}({})", plan::backoff(v.restart_count.saturating_sub(v.backoff_base)).as_secs(),
                            pod.metadata.name.as_deref().unwrap_or(""), pod.metadata.namespace.as_deref().unwrap_or(""), self.uid);
                        if v.waiting.as_ref().map(|w| w.0.as_str()) != Some("CrashLoopBackOff") {
                            events::record(&self.shared, pod, Some(&name), "Warning", "BackOff", "Back-off restarting failed container");
                        }
                        v.waiting = Some(("CrashLoopBackOff".into(), msg));
                    }
                    min_wake(wait, &mut wake);
                }
                Action::KillPod => {
                    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30).max(0) as u64;
                    self.terminate(Duration::from_secs(grace)).await;
                    // Like the kubelet, report the terminal phase (Failed unless every container exited 0) before
                    // the object goes: a finalizer may keep it, and controllers (Jobs) count what it says.
                    self.write_status(pod, &d).await;
                    if let Err(e) = self.shared.runtime.remove_sandbox(&self.uid).await {
                        tracing::warn!(pod = %self.uid, error = %e, "removing the sandbox");
                    }
                    self.finalize(pod).await;
                    return SyncResult::Done;
                }
                Action::StopSandbox => {
                    self.stop_sandbox().await;
                }
                Action::KillContainer { name, probe } => self.kill_unhealthy(pod, &name, probe),
                Action::StopSidecars => {
                    self.terminate(grace_period(pod)).await;
                    min_wake(Duration::ZERO, &mut wake);
                }
                Action::DeadlineExceeded => {
                    events::record(&self.shared, pod, None, "Normal", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline");
                    self.terminate(grace_period(pod)).await;
                    // Plan again at once: with nothing running the sandbox is released.
                    min_wake(Duration::ZERO, &mut wake);
                }
            }
        }
        if let Some(max) = d.active_deadline {
            if !plan::deadline_exceeded(&d, &o) {
                min_wake(max - o.active_for, &mut wake);
            }
        }
        self.ensure_probes(pod);
        self.write_status(pod, &d).await;
        SyncResult::Again(wake)
    }

    /// A failed liveness or startup probe: stop the container (preStop, grace period) in the background; its
    /// exit arrives like any other and the restart policy and back-off decide what follows.
    fn kill_unhealthy(&mut self, pod: &Pod, name: &str, kind: ProbeKind) {
        let Some(p) = self.probes.get_mut(name) else { return };
        p.killing = true;
        p.tasks.values().for_each(|t| t.abort());
        p.tasks.clear();
        let (Some(st), Some(dir)) = (self.rt.containers.get(name).and_then(|v| v.running.clone()), self.rt.dirs.get(name).cloned()) else { return };
        events::record(&self.shared, pod, Some(name), "Normal", "Killing", &format!("Container {name} failed {} probe, will be restarted", kind.title().to_lowercase()));
        // A probe's own terminationGracePeriodSeconds overrides the Pod's (upstream, 1.25+).
        let probe_grace = find_container(pod, name)
            .and_then(|c| match kind {
                ProbeKind::Liveness => c.liveness_probe,
                _ => c.startup_probe,
            })
            .and_then(|p| p.termination_grace_period_seconds);
        let grace = probe_grace.map(|s| Duration::from_secs(s.max(0) as u64)).unwrap_or_else(|| grace_period(pod));
        let target = probe::target(&self.shared.runtime.cfg.exe, &dir, self.rt.sandbox.as_ref().and_then(|s| s.ip));
        tokio::spawn(stop_with_hook(self.shared.clone(), Some(Box::new(pod.clone())), name.to_string(), target, st, grace));
    }

    async fn create_sandbox(&mut self, pod: &Pod) -> Result<(), RuntimeError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let hostname = spec.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| name.clone());
        let aliases = spec.host_aliases.iter().flatten().map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default())).collect();
        let req = SandboxRequest {
            uid: &self.uid,
            namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
            name: &name,
            hostname: &hostname,
            host_network: spec.host_network.unwrap_or(false),
            host_aliases: aliases,
            memory_limit: container::pod_memory_limit(&spec),
            share_pid: spec.share_process_namespace == Some(true) && spec.host_pid != Some(true),
        };
        let sb = self.shared.runtime.run_sandbox(&req).await?;
        self.rt.sandbox = Some(sb);
        self.rt.sandbox_stopped = false;
        Ok(())
    }

    /// Start one container; returns when to retry if it could not start yet.
    async fn start(&mut self, pod: &Pod, name: &str, init: bool, attempt: u32) -> Option<Duration> {
        let spec = pod.spec.clone().unwrap_or_default();
        let ephemeral = spec.ephemeral_containers.iter().flatten().find(|c| c.name == name);
        let c: Container = if init {
            spec.init_containers.iter().flatten().find(|c| c.name == name).cloned()
        } else {
            spec.containers.iter().find(|c| c.name == name).cloned().or_else(|| ephemeral.map(status::ephemeral_as_container))
        }?;
        // `kubectl debug --target`: the ephemeral container joins the target's pid namespace (if it runs).
        let pid_ns = ephemeral
            .and_then(|e| e.target_container_name.as_deref())
            .and_then(|t| self.rt.containers.get(t)?.running.as_ref())
            .map(|st| PathBuf::from(format!("/proc/{}/ns/pid", st.pid)));
        let sb = self.rt.sandbox.clone()?;
        let image_name = c.image.clone().unwrap_or_default();

        // Image: only the local store exists (no registry yet), so every pull policy resolves locally.
        let image = match self.shared.images.resolve(&image_name) {
            Ok(Some(img)) => img,
            other => {
                let (count, _) = self.rt.failures.get(name).cloned().unwrap_or((0, std::time::Instant::now()));
                let never = c.image_pull_policy.as_deref() == Some("Never");
                let (reason, msg) = match other {
                    Err(e) => ("ErrImagePull", format!("reading the local image store: {e}")),
                    _ if never => ("ErrImageNeverPull", format!("Container image \"{image_name}\" is not present with pull policy of Never")),
                    _ if count == 0 => ("ErrImagePull", missing_image_message(&image_name)),
                    _ => ("ImagePullBackOff", format!("Back-off pulling image \"{image_name}\": {}", missing_image_message(&image_name))),
                };
                if count == 0 {
                    events::record(&self.shared, pod, Some(name), "Warning", "Failed", &format!("Failed to pull image \"{image_name}\": {msg}"));
                }
                self.set_waiting(name, &c, reason, &msg);
                self.rt.failures.insert(name.into(), (count + 1, std::time::Instant::now()));
                return Some(plan::backoff(count + 1).min(Duration::from_secs(60)));
            }
        };
        if self.rt.failures.remove(name).is_some() || attempt == 0 {
            events::record(&self.shared, pod, Some(name), "Normal", "Pulled", &format!("Container image \"{image_name}\" already present on machine"));
        }

        let built = self.build_spec(pod, &c, &image, &sb, init, attempt).await;
        let (cspec, limits) = match built {
            Ok(x) => x,
            Err(e) => {
                events::record(&self.shared, pod, Some(name), "Warning", "Failed", &format!("Error: {}", e.0));
                self.set_waiting(name, &c, "CreateContainerConfigError", &e.0);
                return Some(Duration::from_secs(10));
            }
        };
        let dir = self.shared.runtime.container_dir(&self.uid, name, attempt);
        let _ = std::fs::remove_dir_all(&dir);
        let mut cspec = cspec;
        // The target's pid namespace for an ephemeral container, else the Pod's shared one (its pause process).
        cspec.pid_ns = pid_ns.or_else(|| sb.pause_pid.map(|p| PathBuf::from(format!("/proc/{p}/ns/pid"))));
        if let Some(path) = c.termination_message_path.as_deref().filter(|p| !p.is_empty()) {
            // Like the kubelet: a host file bind-mounted at terminationMessagePath, read after the exit (the
            // container's own mounts die with it). World-writable so any user in the container can write it.
            let file = dir.join(TERMINATION_LOG);
            let made = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, b"")).and_then(|_| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))
            });
            match made {
                Ok(()) => cspec.mounts.push(runtime::spec::Mount { destination: path.into(), kind: runtime::spec::MountKind::Bind(file), readonly: false }),
                Err(e) => tracing::warn!(pod = %pod_key(pod), container = name, error = %e, "creating the termination message file"),
            }
        }
        let prev = self.rt.containers.remove(name);
        // Keep only the previous attempt (for `logs --previous` and lastState), as the kubelet keeps one dead
        // container: older attempts' rootfs, logs and the previous attempt's cgroup go now.
        if let Some(p) = prev.as_ref().filter(|p| !p.id.is_empty()) {
            let (rt, uid, name, pid, attempt) = (self.shared.runtime.clone(), self.uid.clone(), name.to_string(), p.id.clone(), attempt);
            tokio::task::spawn_blocking(move || {
                cgroup::remove_container(&rt.cfg.cgroup_parent, &uid, &pid);
                if attempt >= 2 {
                    for old in 0..attempt - 1 {
                        let _ = std::fs::remove_dir_all(rt.container_dir(&uid, &name, old));
                        let _ = std::fs::remove_file(rt.log_path(&uid, &name, old));
                    }
                }
            });
        }
        let last = prev.as_ref().and_then(|p| p.exited.clone().map(|e| (e, p.id.clone(), p.started_at.clone()))).or_else(|| prev.as_ref().and_then(|p| p.last.clone()));
        // The back-off starts over after a long clean run: count restarts from the previous attempt then.
        let backoff_base = prev.as_ref().map_or(0, |p| {
            let ran_for = match (&p.started_at, &p.exited) {
                (Some(st), Some(e)) => since(st).saturating_sub(since(&e.finished_at)),
                _ => Duration::ZERO,
            };
            if plan::backoff_resets(ran_for) { p.restart_count } else { p.backoff_base }
        });
        let mut view = ContainerView { restart_count: attempt, id: cspec.id.clone(), image: image_name.clone(), image_id: image.id.clone(), last, backoff_base, ..Default::default() };
        let result = self.shared.runtime.start_container(&cspec, &dir, &limits).await;
        events::record(&self.shared, pod, Some(name), "Normal", "Created", &format!("Created container: {name}"));
        self.rt.dirs.insert(name.into(), dir.clone());
        match result {
            Ok(state) => {
                events::record(&self.shared, pod, Some(name), "Normal", "Started", &format!("Started container {name}"));
                self.watch_exit(name.into(), attempt, state.shim_pid, dir.clone());
                view.started_at = Some(state.started_at.clone());
                view.running = Some(state.clone());
                if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
                    // Upstream runs postStart synchronously: the worker (and so the status) waits for it, so the
                    // container is not reported Running before it completes. Upstream never times it out; a
                    // worker blocked forever could not even delete the Pod, so k1s bounds it by the grace period.
                    let target = probe::target(&self.shared.runtime.cfg.exe, &dir, sb.ip);
                    let handler = probe::hook_handler(h, &c).unwrap_or_else(|e| Handler::Invalid(e.0));
                    if let Err(msg) = probe::run(&handler, &target, grace_period(pod).max(Duration::from_secs(1))).await {
                        events::record(&self.shared, pod, Some(name), "Warning", "FailedPostStartHook", &format!("PostStartHook failed: {msg}"));
                        events::record(&self.shared, pod, Some(name), "Normal", "Killing", "FailedPostStartHook");
                        runtime::stop_container(&state, &dir, grace_period(pod)).await;
                        if let Some(exit) = runtime::read_exit(&dir) {
                            view.running = None;
                            // Until it runs again the container waits with upstream's reason (a back-off then
                            // shows CrashLoopBackOff instead); a container that will not run again is terminated.
                            if RestartPolicy::parse(pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref())).restarts(exit.exit_code) && !init {
                                view.waiting = Some(("PostStartHookError".into(), msg.clone()));
                            }
                            view.exited = Some(self.with_message(name, attempt, exit));
                        }
                    }
                }
            }
            Err(RuntimeError::StartError(msg)) => {
                events::record(&self.shared, pod, Some(name), "Warning", "Failed", &format!("Error: {msg}"));
                view.exited = runtime::read_exit(&dir).or(Some(Exit { exit_code: 128, signal: None, oom_killed: false, finished_at: runtime::shim::now_rfc3339(), start_error: Some(msg), message: None }));
            }
            Err(e) => {
                tracing::warn!(pod = %pod_key(pod), container = name, error = %e, "starting a container");
                events::record(&self.shared, pod, Some(name), "Warning", "Failed", &format!("Error: {e}"));
                view.exited = Some(Exit { exit_code: 128, signal: None, oom_killed: false, finished_at: runtime::shim::now_rfc3339(), start_error: Some(e.to_string()), message: None });
            }
        }
        self.rt.containers.insert(name.into(), Box::new(view));
        None
    }

    fn set_waiting(&mut self, name: &str, c: &Container, reason: &str, msg: &str) {
        let v = self.rt.containers.entry(name.into()).or_insert_with(|| Box::new(ContainerView { image: c.image.clone().unwrap_or_default(), ..Default::default() }));
        v.waiting = Some((reason.into(), msg.into()));
    }

    async fn build_spec(&mut self, pod: &Pod, c: &Container, image: &k1s_images::Image, sb: &SandboxInfo, init: bool, attempt: u32) -> Result<(ContainerSpec, cgroup::Limits), ConfigError> {
        let mut src: EnvSources = volumes::fetch_sources(&self.shared.client, pod).await;
        src.pod_ip = sb.ip.map(|i| i.to_string());
        src.host_ip = self.shared.host_ip.clone();
        src.node_name = self.shared.node_name.clone();
        let pod_dir = self.shared.runtime.pod_dir(&self.uid);
        if self.rt.volumes.is_none() {
            self.rt.volumes = Some(volumes::prepare(pod, &pod_dir, &src)?);
        }
        let vols = self.rt.volumes.clone().unwrap_or_default();
        let hostname = if sb.host_network {
            std::fs::read_to_string(self.shared.runtime.etc_dir(&self.uid).join("hostname")).unwrap_or_default().trim().to_string()
        } else {
            pod.spec.as_ref().and_then(|s| s.hostname.clone()).filter(|h| !h.is_empty()).unwrap_or_else(|| sb.name.clone())
        };
        let env = container::environment(pod, c, &image.config, &src, &hostname)?;
        let args = container::command_line(c, &image.config, &env);
        let who = container::identity(pod, c, &image.config, &image.layers)?;
        let mounts = container::mounts(c, &vols, &self.shared.runtime.etc_dir(&self.uid))?;
        let cwd = c.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| image.config.working_dir.clone());
        let q = |kind: &str, name: &str| -> Option<f64> {
            let r = c.resources.as_ref()?;
            let m = if kind == "limits" { r.limits.as_ref() } else { r.requests.as_ref() }?;
            k1s_api::validation::parse_quantity(&m.get(name)?.0)
        };
        let limits = cgroup::Limits {
            memory_bytes: q("limits", "memory").map(|b| b as i64),
            cpu_request_milli: q("requests", "cpu").map(|c| (c * 1000.0).round() as i64),
            cpu_limit_milli: q("limits", "cpu").map(|c| (c * 1000.0).round() as i64),
            privileged: who.privileged,
        };
        let spec = ContainerSpec {
            id: runtime::new_container_id(),
            pod_uid: self.uid.clone(),
            namespace: sb.namespace.clone(),
            pod_name: sb.name.clone(),
            container_name: c.name.clone(),
            init,
            image: c.image.clone().unwrap_or_default(),
            image_id: image.id.clone(),
            layers: image.layers.clone(),
            args,
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd,
            uid: who.uid,
            gid: who.gid,
            supplementary_gids: who.groups,
            netns: sb.netns.clone(),
            // hostIPC: no setns, so the container stays in the host's IPC namespace (the shim's).
            ipcns: if pod.spec.as_ref().and_then(|s| s.host_ipc) == Some(true) { None } else { sb.ipcns.clone() },
            host_pid: pod.spec.as_ref().and_then(|s| s.host_pid) == Some(true),
            oom_score_adj: pod.status.as_ref().and_then(|s| s.qos_class.as_deref()).map(|qos| container::oom_score_adj(qos, q("requests", "memory").unwrap_or(0.0) as u64, crate::node::memory_bytes())),
            utsns: sb.utsns.clone(),
            cgroup_procs: vec![],
            oom_file: None,
            mounts,
            privileged: who.privileged,
            capabilities: who.capabilities,
            no_new_privs: who.no_new_privs,
            readonly_rootfs: who.readonly_rootfs,
            seccomp_default: who.seccomp_default,
            stdin: c.stdin == Some(true),
            stdin_once: c.stdin_once == Some(true),
            tty: c.tty == Some(true),
            pid_ns: None,
            log_path: self.shared.runtime.log_path(&self.uid, &c.name, attempt),
            log_max_bytes: self.shared.runtime.cfg.log_max_bytes,
        };
        Ok((spec, limits))
    }

    /// Stop every running container (SIGTERM, grace, SIGKILL) and record how each exited.
    async fn terminate(&mut self, grace: Duration) {
        if let Some(pod) = &self.pod {
            for (name, v) in &self.rt.containers {
                if v.running.is_some() {
                    events::record(&self.shared, pod, Some(name), "Normal", "Killing", &format!("Stopping container {name}"));
                }
            }
        }
        // Probes stop with the containers: a probe failing during shutdown must not restart anything.
        self.probes.clear();
        // Main containers first, then sidecars in reverse order of start, within one grace period (upstream:
        // sidecars outlive what they serve).
        let sidecars: Vec<String> = self.pod.as_ref().and_then(|p| p.spec.as_ref()).map(|s| s.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always")).map(|c| c.name.clone()).rev().collect()).unwrap_or_default();
        let t0 = std::time::Instant::now();
        let pod_ip = self.rt.sandbox.as_ref().and_then(|s| s.ip);
        let mains: Vec<String> = self.rt.containers.keys().filter(|n| !sidecars.contains(n)).cloned().collect();
        let mut rounds: Vec<Vec<String>> = vec![mains];
        rounds.extend(sidecars.iter().map(|s| vec![s.clone()]));
        for round in rounds {
            let left = if grace.is_zero() { grace } else { grace.saturating_sub(t0.elapsed()).max(Duration::from_secs(2)) };
            let mut stops = Vec::new();
            for name in round {
                let Some(v) = self.rt.containers.get(&name) else { continue };
                if let (Some(st), Some(dir)) = (v.running.clone(), self.rt.dirs.get(&name).cloned()) {
                    let target = probe::target(&self.shared.runtime.cfg.exe, &dir, pod_ip);
                    stops.push(stop_with_hook(self.shared.clone(), self.pod.clone(), name.clone(), target, st, left));
                }
            }
            futures::future::join_all(stops).await;
        }
        // Record the exits now (the pidfd watchers may not have reported yet): the terminal status needs them.
        let names: Vec<(String, u32)> = self.rt.containers.iter().filter(|(_, v)| v.running.is_some()).map(|(n, v)| (n.clone(), v.restart_count)).collect();
        for (name, attempt) in names {
            if let Some(exit) = self.rt.dirs.get(&name).and_then(|d| runtime::read_exit(d)) {
                let exit = self.with_message(&name, attempt, exit);
                if let Some(v) = self.rt.containers.get_mut(&name) {
                    v.running = None;
                    v.exited = Some(exit);
                }
            }
        }
    }

    /// A finished Pod gives back its IP and cgroups; its files (logs, exit records) stay until it is deleted.
    async fn stop_sandbox(&mut self) {
        let (rt, uid) = (self.shared.runtime.clone(), self.uid.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || rt.release_sandbox(&uid)).await.expect("release task") {
            tracing::warn!(pod = %self.uid, error = %e, "releasing the sandbox of a finished Pod");
        }
        let _ = std::fs::write(self.shared.runtime.pod_dir(&self.uid).join("stopped"), b"");
        self.rt.sandbox_stopped = true;
    }

    /// The containers are gone: remove the API object (grace 0, only this UID), as the kubelet does.
    async fn finalize(&self, pod: &Pod) {
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
        let dp = DeleteParams { grace_period_seconds: Some(0), preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }), ..Default::default() };
        match api.delete(pod.metadata.name.as_deref().unwrap_or(""), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(pod = %pod_key(pod), error = %e, "removing the Pod object"),
        }
    }

    async fn write_status(&mut self, pod: &Pod, d: &Desired) {
        let o = self.observed(pod);
        let sandbox_ready = self.rt.sandbox.is_some() && !self.rt.sandbox_stopped;
        let pod_ip = self.rt.sandbox.as_ref().and_then(|s| s.ip.map(|i| i.to_string()).or_else(|| s.host_network.then(|| self.shared.host_ip.clone())));
        let view = PodView {
            pod,
            desired: d,
            observed: &o,
            containers: &self.rt.containers,
            sandbox_ready,
            pod_ip,
            host_ip: self.shared.host_ip.clone(),
            now: k1s_api::meta::now(),
        };
        let st = status::pod_status(&view);
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            serde_json::to_vec(&st).unwrap_or_default().hash(&mut h);
            h.finish()
        };
        if self.last_status == Some(digest) || status::same(pod.status.as_ref(), &st) {
            self.last_status = Some(digest);
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
        match api.patch_status(pod.metadata.name.as_deref().unwrap_or(""), &PatchParams::default(), &Patch::Merge(json!({"status": st}))).await {
            Ok(_) => self.last_status = Some(digest),
            // A static Pod whose mirror is not (yet, or no longer) in the API: written once it is back.
            Err(kube::Error::Api(e)) if e.code == 404 && static_pods::is_mirror(pod) => {}
            Err(e) => tracing::warn!(pod = %pod_key(pod), error = %e, "writing pod status"),
        }
    }
}

enum SyncResult {
    Done,
    Again(Option<Duration>),
}

pub fn missing_image_message(image: &str) -> String {
    format!(
        "image \"{}\" is not in k1s's local image store, and k1s does not pull from registries yet: import it with `k1s image import FILE` (a `docker save` or OCI archive), or put the archive in <data-dir>/images/import/ and restart the server",
        k1s_images::normalize(image)
    )
}
