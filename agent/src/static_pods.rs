//! Static Pods: Pods the agent runs straight from manifest files (`--pod-manifest-path`), whatever the
//! API says, each shown in the API as a read-only mirror Pod — the kubelet's file source and mirror client.
//!
//! A static Pod's identity is the hash of what its file says (plus the node): the UID of its sandbox, the
//! `kubernetes.io/config.hash` and `config.mirror` annotations. An edited file is a new Pod (the old one is
//! stopped, the new one started); the same file after a restart is the same Pod, so its running containers
//! are adopted like any other's. The mirror gets its own UID from the API server; the worker writes status
//! to it by name.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::Api;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

pub const MIRROR: &str = "kubernetes.io/config.mirror";
pub const HASH: &str = "kubernetes.io/config.hash";
pub const SOURCE: &str = "kubernetes.io/config.source";
/// Which file a static Pod comes from (k1s's own annotation): what an error about its mirror points at.
pub const FILE: &str = "k1s.io/static-pod-file";

/// How often the directory is read again even without an inotify event (a safety net: inotify can miss
/// changes on some filesystems, and a mirror deleted while nothing else happened is put back by then too).
pub const RESCAN: Duration = Duration::from_secs(10);

/// One Pod from a file, as the agent runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticPod {
    /// The content hash: the sandbox's UID and the mirror's `config.mirror`.
    pub uid: String,
    pub pod: Pod,
    pub file: PathBuf,
}

/// A file that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct FileError {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Whether an API Pod is a mirror (the agent never runs those itself).
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR))
}

/// The static Pod UID a mirror stands for.
pub fn mirror_of(pod: &Pod) -> Option<&str> {
    pod.metadata.annotations.as_ref()?.get(MIRROR).map(String::as_str)
}

/// The UID the agent runs a Pod under: a mirror's is its static Pod's (the hash), not the API's.
pub fn runtime_uid(pod: &Pod) -> String {
    mirror_of(pod).map(str::to_string).or_else(|| pod.metadata.uid.clone()).unwrap_or_default()
}

fn is_manifest(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && !name.ends_with('~') && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

/// Read every manifest in `dir`: the Pods, and the files (or documents) that could not be used.
pub fn load_dir(dir: &Path, node: &str) -> (BTreeMap<String, StaticPod>, Vec<FileError>) {
    let mut pods = BTreeMap::new();
    let mut errors = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| is_manifest(p) && p.is_file()).collect();
    files.sort();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(FileError { file, line: None, message: e.to_string() });
                continue;
            }
        };
        match k1s_api::yaml::documents(&text) {
            Err(e) => errors.push(FileError { file: file.clone(), line: e.line, message: e.message }),
            Ok(docs) => {
                for d in docs {
                    match to_static(d.object, &file, node) {
                        Ok(sp) if pods.values().any(|p: &StaticPod| p.pod.metadata.name == sp.pod.metadata.name && p.pod.metadata.namespace == sp.pod.metadata.namespace) => {
                            errors.push(FileError { file: file.clone(), line: Some(d.line), message: format!("a static Pod named {:?} is already defined by another document", sp.pod.metadata.name.unwrap_or_default()) })
                        }
                        Ok(sp) => {
                            pods.insert(sp.uid.clone(), sp);
                        }
                        Err(message) => errors.push(FileError { file: file.clone(), line: Some(d.line), message }),
                    }
                }
            }
        }
    }
    (pods, errors)
}

/// One manifest document as a static Pod: checked like a created Pod, defaulted, named `<name>-<node>`,
/// bound to the node and stamped with its hash.
pub fn to_static(mut obj: Value, file: &Path, node: &str) -> Result<StaticPod, String> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind != "Pod" || api_version != "v1" {
        return Err(format!("only Pods (apiVersion: v1, kind: Pod) can be static Pods, not {api_version:?} {kind:?}; put other kinds in the deploy directory"));
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    if name.is_empty() {
        return Err("metadata.name: Required value: a static Pod needs a name".into());
    }
    let full = format!("{name}-{node}");
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).filter(|n| !n.is_empty()).unwrap_or("default").to_string();
    k1s_api::meta::set_path(&mut obj, &["metadata", "name"], json!(full));
    k1s_api::meta::set_path(&mut obj, &["metadata", "namespace"], json!(ns));
    k1s_api::meta::set_path(&mut obj, &["spec", "nodeName"], json!(node));
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in ["uid", "resourceVersion", "creationTimestamp", "generateName", "ownerReferences", "deletionTimestamp"] {
            m.remove(f);
        }
    }
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    let info = k1s_api::resources::find("", "v1", "pods").expect("pods are served");
    k1s_api::validation::decode_check(info, &obj)?;
    k1s_api::defaults::pod(&mut obj);
    let errs = k1s_api::validation::validate(info, &obj);
    if !errs.is_empty() {
        return Err(errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "));
    }
    // The hash covers what the file says (after defaults) and the node: the same file is the same Pod.
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(serde_json::to_vec(&obj).unwrap_or_default());
    let digest = h.finalize();
    let uid: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let annotations = obj.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut).map(std::mem::take).unwrap_or_default();
    let mut annotations = annotations;
    annotations.insert(HASH.into(), json!(uid));
    annotations.insert(MIRROR.into(), json!(uid));
    annotations.insert(SOURCE.into(), json!("file"));
    annotations.insert(FILE.into(), json!(file.display().to_string()));
    k1s_api::meta::set_path(&mut obj, &["metadata", "annotations"], Value::Object(annotations));
    k1s_api::meta::set_path(&mut obj, &["metadata", "uid"], json!(uid));
    let qos = k1s_api::defaults::qos_class(obj.get("spec").unwrap_or(&Value::Null));
    obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    let pod: Pod = serde_json::from_value(obj).map_err(|e| format!("not a valid Pod: {e}"))?;
    Ok(StaticPod { uid, pod, file: file.to_path_buf() })
}

/// Changes to the manifest directory, coalesced: one message per burst of inotify events, and one every
/// [`RESCAN`] regardless.
pub fn watch_dir(dir: PathBuf) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    // The watch exists when this returns, before the caller's first read of the directory: a file written
    // in between is seen by one or the other (added in the task, it could be missed until the rescan).
    let ino = inotify(&dir);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RESCAN);
        tick.tick().await;
        loop {
            let event = async {
                match &ino {
                    Some(fd) => {
                        let Ok(mut guard) = fd.readable().await else { return std::future::pending().await };
                        let mut buf = [0u8; 4096];
                        // Drain what is there; the content does not matter, only that something changed.
                        let _ = guard.try_io(|f| nix::unistd::read(f.get_ref(), &mut buf).map_err(std::io::Error::from));
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = event => {
                    // Editors write in several steps (truncate, write, rename): let the burst settle.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ = tick.tick() => {}
            }
            match tx.try_send(()) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(())) => {}
                Err(mpsc::error::TrySendError::Closed(())) => return,
            }
        }
    });
    rx
}

fn inotify(dir: &Path) -> Option<AsyncFd<OwnedFd>> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
    let flags = AddWatchFlags::IN_CREATE | AddWatchFlags::IN_DELETE | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_MOVED_FROM | AddWatchFlags::IN_MODIFY;
    if let Err(e) = ino.add_watch(dir, flags) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the static Pod directory; it is re-read every {}s", RESCAN.as_secs());
        return None;
    }
    let fd: OwnedFd = ino.into();
    debug_assert!(fd.as_fd().as_raw_fd() >= 0);
    // SAFETY: the OwnedFd stays open, and the same descriptor, for as long as the AsyncFd owns it.
    unsafe { AsyncFd::register(fd) }.ok()
}

/// Keep one mirror per static Pod in the API, and none for static Pods that are gone. Runs whenever the
/// static set changes or a mirror changes in the API (the sender is poked), and every [`RESCAN`].
pub async fn mirror_loop(client: kube::Client, node: String, mut statics: watch::Receiver<Arc<BTreeMap<String, StaticPod>>>) {
    let mut held: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
    loop {
        let current = statics.borrow_and_update().clone();
        let failed = match sync_mirrors(&client, &node, &current, &mut held).await {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(error = %e, "mirror Pods: retrying");
                true
            }
        };
        let now = tokio::time::Instant::now();
        held.retain(|_, until| *until > now);
        // With no static Pods there is nothing to keep up: no periodic listing on an idle node (a change, a
        // mirror event or a failed sync still brings one).
        let periodic = !current.is_empty() || failed;
        let wake = held.values().min().copied().unwrap_or(now + RESCAN).min(now + RESCAN);
        tokio::select! {
            r = statics.changed() => if r.is_err() { return },
            () = tokio::time::sleep_until(wake), if periodic => {}
        }
    }
}

/// How long a mirror deleted through the API stays away before it is created again. The kubelet puts one
/// back on its next sync, seconds later; at once would race `kubectl delete`, which waits for the deletion
/// with a fresh list and watch by name: a new mirror of the same name already there hides the old one's
/// DELETED event, and kubectl waits until its timeout.
const RECREATE_AFTER: Duration = Duration::from_secs(2);

async fn sync_mirrors(client: &kube::Client, node: &str, statics: &BTreeMap<String, StaticPod>, held: &mut BTreeMap<String, tokio::time::Instant>) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node_uid = nodes.get(node).await?.metadata.uid.unwrap_or_default();
    let all: Api<Pod> = Api::all(client.clone());
    let mirrors = all.list(&kube::api::ListParams::default().fields(&format!("spec.nodeName={node}"))).await?;
    let gone = |p: &Pod| DeleteParams { grace_period_seconds: Some(0), preconditions: Some(Preconditions { uid: p.metadata.uid.clone(), resource_version: None }), ..Default::default() };
    // Mirrors of static Pods that no longer exist, or outdated, or deleted through the API: removed at once
    // (a mirror has nothing of its own to stop).
    let mut current: BTreeMap<(String, String), Pod> = BTreeMap::new();
    for m in mirrors.items.into_iter().filter(is_mirror) {
        let keep = mirror_of(&m).is_some_and(|uid| statics.contains_key(uid)) && m.metadata.deletion_timestamp.is_none();
        let ns = m.metadata.namespace.clone().unwrap_or_default();
        if keep {
            current.insert((ns, m.metadata.name.clone().unwrap_or_default()), m);
        } else {
            if let Some(uid) = mirror_of(&m).filter(|u| statics.contains_key(*u) && m.metadata.deletion_timestamp.is_some()) {
                held.insert(uid.to_string(), tokio::time::Instant::now() + RECREATE_AFTER);
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            tracing::info!(pod = %format!("{ns}/{}", m.metadata.name.as_deref().unwrap_or("")), "removing a mirror Pod (deleted through the API, outdated, or its static Pod is gone)");
            ignore_gone(api.delete(m.metadata.name.as_deref().unwrap_or(""), &gone(&m)).await.map(|_| ()))?;
        }
    }
    for sp in statics.values() {
        let ns = sp.pod.metadata.namespace.clone().unwrap_or_default();
        let name = sp.pod.metadata.name.clone().unwrap_or_default();
        if current.contains_key(&(ns.clone(), name.clone())) || held.get(&sp.uid).is_some_and(|until| *until > tokio::time::Instant::now()) {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut mirror = sp.pod.clone();
        mirror.metadata.uid = None;
        mirror.status = None;
        mirror.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.to_string(),
            uid: node_uid.clone(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        match api.create(&PostParams::default(), &mirror).await {
            Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), file = %sp.file.display(), "created the mirror of a static Pod"),
            // A Pod of that name that is not our mirror (made through the API): leave it, and say so.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::warn!(pod = %format!("{ns}/{name}"), file = %sp.file.display(), "a Pod with the static Pod's name exists in the API and is not its mirror; delete it to let the mirror appear")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn ignore_gone(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n";

    #[test]
    fn a_file_becomes_a_named_bound_hashed_pod() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("web.yaml"), WEB).unwrap();
        std::fs::write(d.path().join("broken.yaml"), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: [{name: c}]\n").unwrap();
        std::fs::write(d.path().join(".hidden.yaml"), "nonsense: [").unwrap();
        let (pods, errors) = load_dir(d.path(), "n1");
        assert_eq!(pods.len(), 1);
        let sp = pods.values().next().unwrap();
        assert_eq!(sp.pod.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(sp.pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(sp.pod.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        let a = sp.pod.metadata.annotations.as_ref().unwrap();
        assert_eq!((a[MIRROR].as_str(), a[HASH].as_str(), a[SOURCE].as_str()), (sp.uid.as_str(), sp.uid.as_str(), "file"));
        assert_eq!(sp.pod.spec.as_ref().unwrap().restart_policy.as_deref(), Some("Always"), "defaulted");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("broken.yaml:1: spec.containers[0].image: Required value"), "{}", errors[0]);

        // Same content, same identity; an edit is a new one.
        let (again, _) = load_dir(d.path(), "n1");
        assert_eq!(again.keys().collect::<Vec<_>>(), pods.keys().collect::<Vec<_>>());
        std::fs::write(d.path().join("web.yaml"), WEB.replace("3600", "3601")).unwrap();
        let (edited, _) = load_dir(d.path(), "n1");
        assert_ne!(edited.keys().collect::<Vec<_>>(), pods.keys().collect::<Vec<_>>());
    }

    #[test]
    fn only_pods() {
        let e = to_static(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}), Path::new("j.yaml"), "n").unwrap_err();
        assert!(e.contains("only Pods"), "{e}");
    }
}
