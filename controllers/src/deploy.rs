//! The auto-deploy directory (`k1s server --deploy-path`, like k3s's auto-deploying manifests): every manifest
//! file in it is applied with server-side apply under the field manager `k1s-deploy` at start and whenever the
//! file changes, and what a file created goes when the file goes (also while the server was down).
//!
//! The API is the record of what came from where: every applied object carries the label
//! `k1s.io/deploy: "true"` and the annotation `k1s.io/deploy-file: <file name>`. After a pass that changed
//! something, a sweep lists the labelled objects of every kind and deletes (Background propagation, uid
//! precondition) those whose file is gone or no longer declares them ([`plan_sweep`], pure). A file that
//! cannot be read or parsed keeps its objects as they are: a typo never deletes a running workload.
//!
//! Changes are noticed by inotify on the directory (read on a dedicated thread, so no unsafe fd registration
//! here) plus a rescan every [`RESCAN`] as the safety net; only files whose content hash changed are applied
//! again, and files whose apply failed are retried on each rescan. Errors are logged as `file:line: error` and
//! published as Warning events (`FailedDeploy`) on this node's Node object, once per distinct error and content.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::GroupVersionKind;
use kube::discovery::{verbs, ApiCapabilities, ApiResource, Discovery, Scope};
use kube::Client;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// The field manager of every apply from the deploy directory.
pub const FIELD_MANAGER: &str = "k1s-deploy";
/// Label on every object applied from the deploy directory (what the sweep lists).
pub const LABEL: &str = "k1s.io/deploy";
/// Annotation naming the file an object came from.
pub const FILE_ANNOTATION: &str = "k1s.io/deploy-file";
/// The safety-net rescan: catches what inotify cannot see (a symlink's target edited, a watch lost).
pub const RESCAN: Duration = Duration::from_secs(10);
/// Events of one burst (an editor's write + rename, `cp` of several files) are taken together.
const SETTLE: Duration = Duration::from_millis(100);

/// Why an object of a deploy file was not applied.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The file is not valid YAML/JSON (the line goes in front of the message, so it is not repeated).
    #[error("{}", .0.message)]
    Parse(#[from] k1s_api::yaml::YamlError),
    /// A document that is not a mapping.
    #[error("a manifest must be an object with apiVersion, kind and metadata")]
    NotObject,
    /// apiVersion or kind missing or not strings.
    #[error("apiVersion and kind are required")]
    MissingType,
    /// Server-side apply needs a name; a file must name what it owns.
    #[error("metadata.name is required (generateName cannot be applied)")]
    MissingName,
    /// Discovery does not know the kind.
    #[error("no kind {kind:?} is served in {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    /// The kind cannot be applied (no patch verb).
    #[error("{kind} cannot be applied (the server does not patch it)")]
    NotPatchable { kind: String },
    /// Discovery itself failed.
    #[error("discovering the served kinds: {0}")]
    Discovery(#[source] kube::Error),
    /// The API server refused the apply.
    #[error("applying {kind} {name}: {}", api_message(.source))]
    Apply { kind: String, name: String, source: kube::Error },
}

impl DeployError {
    /// Whether trying again with the same file may succeed: the API refused or failed now (a namespace not
    /// there yet, a conflict, the server busy). The rest needs an edit of the file.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DeployError::Apply { .. } | DeployError::Discovery(_))
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

/// Identity of an applied object: group (not version: one object is served under several), kind, namespace
/// (None when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// A labelled object found in the API by the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    pub key: ObjectKey,
    /// The file its annotation names.
    pub file: String,
    pub uid: Option<String>,
}

/// What a deploy file declares, as the sweep needs it: `Some(keys)` for a file that parsed (its objects,
/// applied or not), `None` for one that could not be read or parsed (keep everything it made).
pub type Declared = Option<BTreeSet<ObjectKey>>;

/// What the sweep does.
#[derive(Debug, Default, PartialEq)]
pub struct SweepPlan<'a> {
    /// Objects no file declares any more.
    pub delete: Vec<&'a Tracked>,
    /// Files to apply again: they declare an object whose annotation names another file that dropped it (two
    /// files declared one object, the last applied named it), so the annotation names a file that has it.
    pub reapply: BTreeSet<String>,
}

/// The sweep's plan: an object goes when its file is no longer in the directory, or its file parsed and no
/// longer declares it, and no other file that parsed declares it either. Objects of a file that did not parse
/// are kept.
pub fn plan_sweep<'a>(files: &BTreeMap<String, Declared>, existing: &'a [Tracked]) -> SweepPlan<'a> {
    let mut plan = SweepPlan::default();
    for t in existing {
        let dropped = match files.get(&t.file) {
            None => true,
            Some(None) => false,
            Some(Some(keys)) => !keys.contains(&t.key),
        };
        if !dropped {
            continue;
        }
        match files.iter().find(|(_, d)| d.as_ref().is_some_and(|keys| keys.contains(&t.key))) {
            Some((other, _)) => {
                plan.reapply.insert(other.clone());
            }
            None => plan.delete.push(t),
        }
    }
    plan
}

/// Whether a directory entry is a manifest: `*.yaml`, `*.yml`, `*.json`, not hidden (dotfiles, editors' `.#x`
/// locks and `.x.swp` files); editors' other temporaries (`x~`, `#x#`) have no manifest extension.
pub fn is_manifest(name: &str) -> bool {
    !name.starts_with('.') && [".yaml", ".yml", ".json"].iter().any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// The group of an `apiVersion` (`""` for the core group's `v1`).
fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// A document checked and marked for apply: label and annotation naming `file`, the fields only a server
/// sets (what `kubectl get -o yaml` writes) removed so an exported object applies as a fresh intent.
/// Returns the object, its apiVersion and kind.
pub fn prepare(doc: &Value, file: &str) -> Result<(Value, String, String), DeployError> {
    let mut obj = doc.as_object().cloned().ok_or(DeployError::NotObject)?;
    let api_version = obj.get("apiVersion").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(DeployError::MissingType)?.to_string();
    let kind = obj.get("kind").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(DeployError::MissingType)?.to_string();
    let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let meta = meta.as_object_mut().ok_or(DeployError::NotObject)?;
    if meta.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(DeployError::MissingName);
    }
    for server_set in ["resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink"] {
        meta.remove(server_set);
    }
    set_entry(meta, "labels", LABEL, "true");
    set_entry(meta, "annotations", FILE_ANNOTATION, file);
    Ok((Value::Object(obj), api_version, kind))
}

fn set_entry(meta: &mut Map<String, Value>, field: &str, key: &str, value: &str) {
    let m = meta.entry(field).or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    if let Some(m) = m.as_object_mut() {
        m.insert(key.into(), Value::String(value.into()));
    }
}

/// Put a prepared object in its namespace: namespaced kinds default to `default`, cluster-scoped kinds have
/// none. Returns its key.
pub fn place(obj: &mut Value, group: &str, kind: &str, namespaced: bool) -> ObjectKey {
    let meta = obj["metadata"].as_object_mut().expect("prepared objects have metadata");
    let namespace = if namespaced {
        let ns = meta.get("namespace").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("default").to_string();
        meta.insert("namespace".into(), Value::String(ns.clone()));
        Some(ns)
    } else {
        meta.remove("namespace");
        None
    };
    let name = meta["name"].as_str().unwrap_or_default().to_string();
    ObjectKey { group: group.into(), kind: kind.into(), namespace, name }
}

/// One error of one file, with the line of the document it concerns.
#[derive(Debug)]
struct FileError {
    line: Option<u64>,
    error: DeployError,
}

/// What the loop remembers of a file.
struct FileState {
    hash: [u8; 32],
    declared: Declared,
    /// Some object failed with a retryable error: the file is applied again on every rescan until it applies.
    failed: bool,
    /// Errors already reported for this content, so a retry failing the same way stays quiet.
    reported: BTreeSet<String>,
}

/// The loop's triggers.
enum Trigger {
    /// inotify saw a manifest change (or the watch ended).
    Changed,
    /// The periodic rescan.
    Rescan,
}

struct Deployer {
    client: Client,
    dir: PathBuf,
    node_name: String,
    discovery: Option<Discovery>,
    files: BTreeMap<String, FileState>,
    /// A sweep is owed (something changed, or the last sweep failed).
    sweep_owed: bool,
    /// The directory could not be listed last time (said once, not every rescan).
    dir_unreadable: bool,
}

/// Apply the deploy directory `dir` and keep it applied; Warning events go to the Node `node_name`.
pub async fn run(client: Client, dir: PathBuf, node_name: String) {
    let mut d = Deployer { client, dir, node_name, discovery: None, files: BTreeMap::new(), sweep_owed: true, dir_unreadable: false };
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watching = spawn_watch(&d.dir, tx.clone());
    let mut tick = tokio::time::interval(RESCAN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The first tick fires at once: the start-up pass applies everything.
        let trigger = tokio::select! {
            _ = tick.tick() => Trigger::Rescan,
            Some(()) = rx.recv() => Trigger::Changed,
        };
        match trigger {
            Trigger::Changed => {
                tokio::time::sleep(SETTLE).await;
                while rx.try_recv().is_ok() {}
            }
            Trigger::Rescan => {
                if watching.as_ref().is_none_or(|w| w.is_finished()) {
                    // The directory was removed and made again, or did not exist at start.
                    watching = spawn_watch(&d.dir, tx.clone());
                }
            }
        }
        d.pass().await;
    }
}

/// Watch `dir` with inotify on a thread of its own (a blocking read; the loop only hears "something
/// changed"). The thread ends when the watch does (the directory removed) or the loop is gone.
fn spawn_watch(dir: &Path, tx: mpsc::Sender<()>) -> Option<std::thread::JoinHandle<()>> {
    use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify};
    let ino = Inotify::init(InitFlags::IN_CLOEXEC).map_err(|e| tracing::warn!(error = %e, "inotify for the deploy directory")).ok()?;
    // Writes are seen when the writer closes the file (not mid-write); renames cover editors that write a
    // temporary and move it in, and `mv` out of the directory.
    let mask = W::IN_CLOSE_WRITE | W::IN_MOVED_TO | W::IN_MOVED_FROM | W::IN_DELETE | W::IN_DELETE_SELF | W::IN_MOVE_SELF;
    if let Err(e) = ino.add_watch(dir, mask) {
        tracing::debug!(dir = %dir.display(), error = %e, "watching the deploy directory (the rescan still runs)");
        return None;
    }
    std::thread::Builder::new()
        .name("k1s-deploy-watch".into())
        .spawn(move || loop {
            let events = match ino.read_events() {
                Ok(ev) => ev,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            };
            let ended = events.iter().any(|e| e.mask.intersects(W::IN_IGNORED | W::IN_DELETE_SELF | W::IN_MOVE_SELF));
            let relevant = ended || events.iter().any(|e| e.name.as_ref().and_then(|n| n.to_str()).is_some_and(is_manifest));
            if relevant && matches!(tx.try_send(()), Err(mpsc::error::TrySendError::Closed(()))) {
                return;
            }
            if ended {
                return;
            }
        })
        .ok()
}

impl Deployer {
    /// One pass: read the directory, apply what changed (or failed before), forget removed files, then sweep.
    async fn pass(&mut self) {
        let names = match list_manifests(&self.dir) {
            Ok(n) => n,
            Err(e) => {
                // No listing, no sweep: a missing directory must not read as "every file removed".
                if !self.dir_unreadable {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "reading the deploy directory (nothing is applied or deleted until it can be read)");
                }
                self.dir_unreadable = true;
                return;
            }
        };
        self.dir_unreadable = false;
        let removed: Vec<String> = self.files.keys().filter(|f| !names.contains(*f)).cloned().collect();
        for f in removed {
            tracing::info!(file = %f, "deploy file removed: deleting what it created");
            self.files.remove(&f);
            self.sweep_owed = true;
        }
        // The files to apply: new, changed, or failed before with a retryable error.
        let mut changed: Vec<(String, String, [u8; 32])> = Vec::new();
        for name in &names {
            let text = match std::fs::read(self.dir.join(name)) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Gone since the listing: the next pass (inotify saw the removal) handles it.
                    continue;
                }
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "reading a deploy file (its objects are kept)");
                    // Unreadable is not removed: keep what it made (declared None) and retry on the next rescan.
                    let st = self.files.entry(name.clone()).or_insert_with(|| FileState { hash: [0; 32], declared: None, failed: true, reported: BTreeSet::new() });
                    st.failed = true;
                    continue;
                }
            };
            let hash: [u8; 32] = Sha256::digest(&text).into();
            if self.files.get(name).is_some_and(|st| st.hash == hash && !st.failed) {
                continue;
            }
            changed.push((name.clone(), String::from_utf8_lossy(&text).into_owned(), hash));
        }
        let mut results = BTreeMap::new();
        for (name, text, _) in &changed {
            results.insert(name.clone(), self.apply_file(name, text).await);
        }
        // Once more for what failed retryably: order across and within files should not matter (a Namespace in
        // `ns.yaml` applied after `app.yaml` that uses it), and a retry now beats an error event and 10 s.
        for (name, text, _) in &changed {
            if results.get(name).is_some_and(|(_, errors)| errors.iter().any(|e| e.error.is_retryable())) {
                results.insert(name.clone(), self.apply_file(name, text).await);
            }
        }
        for (name, _, hash) in changed {
            let Some((mut declared, errors)) = results.remove(&name) else { continue };
            let reported = match self.files.remove(&name) {
                Some(st) if st.hash == hash => st.reported,
                _ => BTreeSet::new(),
            };
            // Only what may heal without an edit is retried on each rescan.
            let failed = errors.iter().any(|e| e.error.is_retryable());
            if errors.iter().any(|e| matches!(e.error, DeployError::Discovery(_))) {
                // Objects whose kind could not be looked up were not declared: keep everything until a retry.
                declared = None;
            }
            if errors.is_empty() {
                tracing::info!(file = %name, "deploy file applied");
            }
            let mut st = FileState { hash, declared, failed, reported };
            self.report(&name, &mut st, errors);
            self.files.insert(name, st);
            self.sweep_owed = true;
        }
        if self.sweep_owed {
            self.sweep_owed = !self.sweep().await;
        }
    }

    /// Parse and apply one file; returns what it declares and the errors met.
    async fn apply_file(&mut self, name: &str, text: &str) -> (Declared, Vec<FileError>) {
        let docs = match k1s_api::yaml::documents(text) {
            Ok(d) => d,
            Err(e) => return (None, vec![FileError { line: e.line, error: DeployError::Parse(e) }]),
        };
        let mut declared = BTreeSet::new();
        let mut errors = Vec::new();
        for doc in docs {
            match self.apply_one(&doc.object, name, &mut declared).await {
                Ok(()) => {}
                Err(error) => errors.push(FileError { line: Some(doc.line), error }),
            }
        }
        (Some(declared), errors)
    }

    async fn apply_one(&mut self, doc: &Value, file: &str, declared: &mut BTreeSet<ObjectKey>) -> Result<(), DeployError> {
        let (mut obj, api_version, kind) = prepare(doc, file)?;
        let (ar, caps) = self.resolve(&api_version, &kind).await?;
        if !caps.supports_operation(verbs::PATCH) {
            return Err(DeployError::NotPatchable { kind });
        }
        let key = place(&mut obj, &ar.group, &ar.kind, caps.scope == Scope::Namespaced);
        // Declared before the apply: an object that fails to apply now keeps what the API has of it.
        declared.insert(key.clone());
        let api: Api<DynamicObject> = match &key.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        api.patch(&key.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
            .await
            .map_err(|source| DeployError::Apply { kind: key.kind.clone(), name: key.name.clone(), source })?;
        Ok(())
    }

    /// The resource of an apiVersion/kind; discovery is refreshed once when a kind is not in the cached one.
    async fn resolve(&mut self, api_version: &str, kind: &str) -> Result<(ApiResource, ApiCapabilities), DeployError> {
        let version = api_version.rsplit_once('/').map_or(api_version, |(_, v)| v);
        let gvk = GroupVersionKind::gvk(group_of(api_version), version, kind);
        if let Some(found) = self.discovery.as_ref().and_then(|d| d.resolve_gvk(&gvk)) {
            return Ok(found);
        }
        let discovery = Discovery::new(self.client.clone()).run_aggregated().await.map_err(DeployError::Discovery)?;
        let found = discovery.resolve_gvk(&gvk);
        self.discovery = Some(discovery);
        found.ok_or_else(|| DeployError::UnknownKind { api_version: api_version.into(), kind: kind.into() })
    }

    /// Log and publish the errors of a file not reported before for this content.
    fn report(&self, file: &str, st: &mut FileState, errors: Vec<FileError>) {
        if errors.is_empty() {
            // Healed: the same error coming back later is news again.
            st.reported.clear();
        }
        for e in errors {
            let at = e.line.map_or_else(|| file.to_string(), |l| format!("{file}:{l}"));
            let message = format!("{at}: {}", e.error);
            if !st.reported.insert(message.clone()) {
                continue;
            }
            tracing::warn!("deploy {message}");
            let events: Api<CoreEvent> = Api::namespaced(self.client.clone(), "default");
            let ev = node_event(&self.node_name, &message);
            tokio::spawn(async move {
                let created = match serde_json::from_value::<CoreEvent>(ev) {
                    Ok(ev) => events.create(&PostParams::default(), &ev).await.map(drop).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = created {
                    tracing::debug!(error = %e, "recording a deploy event");
                }
            });
        }
    }

    /// Delete what no file declares any more. Returns whether the sweep saw every kind (else it is owed again).
    async fn sweep(&mut self) -> bool {
        if self.discovery.is_none() {
            match Discovery::new(self.client.clone()).run_aggregated().await {
                Ok(d) => self.discovery = Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, "discovering the served kinds for the deploy sweep");
                    return false;
                }
            }
        }
        let Some(discovery) = self.discovery.as_ref() else { return false };
        let mut complete = true;
        let mut existing = Vec::new();
        let mut apis = BTreeMap::new();
        let lp = ListParams::default().labels(&format!("{LABEL}=true"));
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                // Events are one object served in two groups; nothing applies them from here worth tracking.
                if ar.plural == "events" || !caps.supports_operation(verbs::LIST) || !caps.supports_operation(verbs::DELETE) {
                    continue;
                }
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
                match api.list(&lp).await {
                    Ok(list) => {
                        for o in list.items {
                            let Some(file) = o.metadata.annotations.as_ref().and_then(|a| a.get(FILE_ANNOTATION)) else { continue };
                            let key = ObjectKey {
                                group: ar.group.clone(),
                                kind: ar.kind.clone(),
                                namespace: if caps.scope == Scope::Namespaced { o.metadata.namespace.clone() } else { None },
                                name: o.metadata.name.clone().unwrap_or_default(),
                            };
                            existing.push(Tracked { key, file: file.clone(), uid: o.metadata.uid.clone() });
                        }
                        apis.insert((ar.group.clone(), ar.kind.clone()), ar);
                    }
                    Err(e) => {
                        tracing::warn!(resource = %ar.plural, error = %e, "listing deployed objects");
                        complete = false;
                    }
                }
            }
        }
        let files: BTreeMap<String, Declared> = self.files.iter().map(|(f, st)| (f.clone(), st.declared.clone())).collect();
        let plan = plan_sweep(&files, &existing);
        for f in &plan.reapply {
            if let Some(st) = self.files.get_mut(f) {
                // Applied again on the next pass, which sweeps again.
                st.failed = true;
            }
        }
        for t in plan.delete {
            let Some(ar) = apis.get(&(t.key.group.clone(), t.key.kind.clone())) else { continue };
            let api: Api<DynamicObject> = match &t.key.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
                None => Api::all_with(self.client.clone(), ar),
            };
            // Background: a Job's Pods (a Deployment's ReplicaSets) go with it. The uid precondition keeps a
            // same-named object created meanwhile.
            let mut dp = DeleteParams::background();
            dp.preconditions = Some(Preconditions { uid: t.uid.clone(), resource_version: None });
            match api.delete(&t.key.name, &dp).await {
                Ok(_) => tracing::info!(file = %t.file, kind = %t.key.kind, name = %t.key.name, "deleted: no longer in the deploy directory"),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    tracing::warn!(kind = %t.key.kind, name = %t.key.name, error = %e, "deleting an object no longer deployed");
                    complete = false;
                }
            }
        }
        complete
    }
}

/// The manifest files of the directory, by name (flat: subdirectories are not read).
/// A Warning `FailedDeploy` core/v1 Event about the Node, in `default` as the kubelet records node events
/// (with the node name as the reference's uid, as the kubelet does). Not kube's `Recorder`: it keys its
/// series on reason and object only, so a second, different error would count up the first one's message.
fn node_event(node_name: &str, message: &str) -> Value {
    let now = k1s_api::meta::now();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    json!({
        "metadata": {"name": format!("{node_name}.{nanos:x}"), "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": node_name, "uid": node_name, "apiVersion": "v1"},
        "reason": "FailedDeploy", "message": message, "type": "Warning",
        "source": {"component": FIELD_MANAGER, "host": node_name},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": FIELD_MANAGER, "reportingInstance": node_name,
    })
}

fn list_manifests(dir: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        // Follows symlinks: a link to a manifest elsewhere is a manifest.
        if is_manifest(&name) && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            out.insert(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, ns: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey { group: if kind == "Job" { "batch".into() } else { String::new() }, kind: kind.into(), namespace: ns.map(Into::into), name: name.into() }
    }

    fn tracked(file: &str, k: ObjectKey) -> Tracked {
        Tracked { key: k, file: file.into(), uid: Some(format!("uid-{file}")) }
    }

    #[test]
    fn deletions_follow_the_files() {
        let job = key("Job", Some("default"), "hello");
        let cm = key("ConfigMap", Some("default"), "cfg");
        let old = key("ConfigMap", Some("default"), "old");
        let ns = key("Namespace", None, "team");
        let existing = vec![
            tracked("app.yaml", job.clone()),
            tracked("app.yaml", cm.clone()),
            tracked("app.yaml", old.clone()),
            tracked("gone.yaml", ns.clone()),
            tracked("broken.yaml", key("ConfigMap", Some("default"), "kept")),
        ];
        let files = BTreeMap::from([
            // Edited: "old" was taken out of it.
            ("app.yaml".to_string(), Some(BTreeSet::from([job, cm]))),
            // Does not parse now: everything it made stays.
            ("broken.yaml".to_string(), None),
        ]);
        let del: Vec<(&str, &str)> = plan_sweep(&files, &existing).delete.iter().map(|t| (t.file.as_str(), t.key.name.as_str())).collect();
        assert_eq!(del, [("app.yaml", "old"), ("gone.yaml", "team")]);
    }

    #[test]
    fn the_same_name_in_another_namespace_or_kind_is_another_object() {
        let files = BTreeMap::from([("a.yaml".to_string(), Some(BTreeSet::from([key("ConfigMap", Some("default"), "x")])))]);
        let existing = vec![
            tracked("a.yaml", key("ConfigMap", Some("default"), "x")),
            tracked("a.yaml", key("ConfigMap", Some("team"), "x")),
            tracked("a.yaml", key("Secret", Some("default"), "x")),
        ];
        let del: Vec<_> = plan_sweep(&files, &existing).delete.into_iter().map(|t| t.key.clone()).collect();
        assert_eq!(del, [key("ConfigMap", Some("team"), "x"), key("Secret", Some("default"), "x")]);
    }

    #[test]
    fn nothing_to_delete_when_every_file_declares_its_objects() {
        let k = key("Job", Some("default"), "j");
        let files = BTreeMap::from([("j.yml".to_string(), Some(BTreeSet::from([k.clone()])))]);
        assert_eq!(plan_sweep(&files, &[tracked("j.yml", k)]), SweepPlan::default());
    }

    #[test]
    fn an_object_another_file_still_declares_is_kept_and_that_file_applied_again() {
        let k = key("ConfigMap", Some("default"), "shared");
        // Both files declared it; b.yaml, applied last, is named on it and was removed.
        let files = BTreeMap::from([("a.yaml".to_string(), Some(BTreeSet::from([k.clone()])))]);
        let existing = [tracked("b.yaml", k)];
        let plan = plan_sweep(&files, &existing);
        assert!(plan.delete.is_empty());
        assert_eq!(plan.reapply, BTreeSet::from(["a.yaml".to_string()]));
    }

    #[test]
    fn manifest_names() {
        for yes in ["a.yaml", "job.yml", "x.json", "with.dots.yaml"] {
            assert!(is_manifest(yes), "{yes}");
        }
        for no in [".hidden.yaml", ".#a.yaml", ".a.yaml.swp", "a.yaml~", "#a.yaml#", "a.txt", ".yaml", "README", "a.yaml.bak"] {
            assert!(!is_manifest(no), "{no}");
        }
    }

    #[test]
    fn prepare_marks_the_object_and_drops_server_fields() {
        let doc = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "labels": {"app": "a"}, "resourceVersion": "7", "uid": "u", "managedFields": []},
            "data": {"a": "b"}
        });
        let (mut obj, av, kind) = prepare(&doc, "cfg.yaml").unwrap();
        assert_eq!((av.as_str(), kind.as_str()), ("v1", "ConfigMap"));
        assert_eq!(obj["metadata"]["labels"], json!({"app": "a", LABEL: "true"}));
        assert_eq!(obj["metadata"]["annotations"], json!({FILE_ANNOTATION: "cfg.yaml"}));
        for gone in ["resourceVersion", "uid", "managedFields"] {
            assert!(obj["metadata"].get(gone).is_none(), "{gone}");
        }
        let k = place(&mut obj, group_of(&av), &kind, true);
        assert_eq!(k, key("ConfigMap", Some("default"), "cfg"));
        assert_eq!(obj["metadata"]["namespace"], "default");
    }

    #[test]
    fn place_keeps_a_namespace_and_drops_it_for_cluster_kinds() {
        let (mut obj, _, _) = prepare(&json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "team"}}), "f.yaml").unwrap();
        assert_eq!(place(&mut obj, "batch", "Job", true).namespace.as_deref(), Some("team"));
        let (mut ns, _, _) = prepare(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "namespace": "x"}}), "f.yaml").unwrap();
        assert_eq!(place(&mut ns, "", "Namespace", false).namespace, None);
        assert!(ns["metadata"].get("namespace").is_none());
    }

    #[test]
    fn prepare_refuses_what_cannot_be_applied() {
        assert!(matches!(prepare(&json!("text"), "f"), Err(DeployError::NotObject)));
        assert!(matches!(prepare(&json!({"kind": "Pod", "metadata": {"name": "p"}}), "f"), Err(DeployError::MissingType)));
        assert!(matches!(prepare(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "p-"}}), "f"), Err(DeployError::MissingName)));
    }

    #[test]
    fn groups() {
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("batch/v1"), "batch");
        assert_eq!(group_of("events.k8s.io/v1"), "events.k8s.io");
    }
}
