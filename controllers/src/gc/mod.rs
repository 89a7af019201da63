//! The garbage collector (upstream `pkg/controller/garbagecollector`): ownerReferences with the propagation
//! policies the API server turns into finalizers. Background: dependents whose owners are all gone are deleted
//! (also ones created with a reference to an owner that never existed). Foreground (`foregroundDeletion`): the
//! owner's dependents are deleted, and its finalizer is removed once those with `blockOwnerDeletion` are gone.
//! Orphan (`orphan`): the references to the owner are removed from its dependents, then the finalizer.
//!
//! It talks to the API only: one watch per deletable kind (`k1s_api::resources`, Events excluded as upstream's
//! `ignoredResources` does) feeds the [`graph`]; one loop owns the graph and a work queue of uids and, for each,
//! asks the pure [`plan`] what to do. An owner the graph lacks is looked up live before a dependent is deleted for
//! it; the object itself is read live before any write, and every write is conditional (a uid precondition on
//! deletes, the resourceVersion on patches). Work starts once every watch has listed once, so an orphaning or
//! foreground owner never sees a half-built set of dependents. Other controllers' finalizers are never touched.

mod graph;
mod plan;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use k1s_api::{resources, ResourceInfo};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use graph::{Graph, Node, OwnerRef, FOREGROUND};
use plan::{Action, OwnerState, Policy};

/// Errors of one attempt; every one is retried with back-off (the object stays queued).
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Reading an object (the one acted on, or an owner being verified) failed.
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// A delete or patch failed (a 409 here means the object changed meanwhile).
    #[error("{action} {what}: {source}")]
    Write {
        action: &'static str,
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// Back-off of a failed attempt: 50 ms doubling to 30 s (upstream's work queue starts at 5 ms; an in-process
/// API answers fast, so the first retry can wait a little longer).
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << failures.min(10))).min(Duration::from_secs(30))
}

/// The kinds the garbage collector watches: every stored, deletable kind except Events.
fn watched() -> Vec<&'static ResourceInfo> {
    resources::storage_resources().into_iter().filter(|r| !r.read_only && r.storage != "core/events").collect()
}

fn api_resource(r: &ResourceInfo) -> ApiResource {
    ApiResource { group: r.group.into(), version: r.version.into(), api_version: r.api_version(), kind: r.kind.into(), plural: r.plural.into() }
}

/// The loop's triggers: what the watches saw.
enum GcEvent {
    /// An object was added or changed (also during a relist).
    Applied(&'static ResourceInfo, Box<ObjectMeta>),
    Deleted(Box<ObjectMeta>),
    /// A watch (re)starts listing: objects not seen again before `Listed` are gone.
    Relisting(&'static ResourceInfo),
    Listed(&'static ResourceInfo),
}

/// Run the garbage collector forever.
pub async fn run(client: Client) {
    let kinds = watched();
    let (tx, rx) = mpsc::unbounded_channel();
    for r in &kinds {
        tokio::spawn(watch(client.clone(), r, tx.clone()));
    }
    drop(tx);
    Collector::new(client, &kinds).run(rx).await;
}

async fn watch(client: Client, r: &'static ResourceInfo, tx: mpsc::UnboundedSender<GcEvent>) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &api_resource(r));
    // Metadata only (`as=PartialObjectMetadata`), as upstream's collector: owners, finalizers and uids are all
    // it reads, and every write of every kind reaches this watch, so the objects' bodies are not worth
    // encoding and decoding again.
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(watcher::Event::Init) => GcEvent::Relisting(r),
            Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => GcEvent::Applied(r, Box::new(o.metadata)),
            Ok(watcher::Event::Delete(o)) => GcEvent::Deleted(Box::new(o.metadata)),
            Ok(watcher::Event::InitDone) => GcEvent::Listed(r),
            Err(e) => {
                tracing::warn!(kind = r.kind, error = %e, "garbage collector: watch failed; retrying");
                continue;
            }
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}

struct Collector {
    client: Client,
    graph: Graph,
    queue: VecDeque<String>,
    queued: HashSet<String>,
    retries: BTreeMap<Instant, Vec<String>>,
    failures: HashMap<String, u32>,
    /// Storage prefixes whose watch has not listed yet; no work is done before all have.
    unsynced: HashSet<&'static str>,
    /// Per storage prefix, the uids seen since a relist began.
    relisting: HashMap<&'static str, HashSet<String>>,
    /// Objects whose unresolvable reference was already logged.
    reported: HashSet<String>,
}

impl Collector {
    fn new(client: Client, kinds: &[&'static ResourceInfo]) -> Self {
        Collector {
            client,
            graph: Graph::default(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            retries: BTreeMap::new(),
            failures: HashMap::new(),
            unsynced: kinds.iter().map(|r| r.storage).collect(),
            relisting: HashMap::new(),
            reported: HashSet::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<GcEvent>) {
        loop {
            let work = self.unsynced.is_empty() && !self.queue.is_empty();
            let next_retry = self.retries.keys().next().copied();
            tokio::select! {
                // What the watches saw first: the graph should be as fresh as possible when a plan is made.
                biased;
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => return,
                },
                _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now)), if next_retry.is_some() => self.promote_due(),
                _ = std::future::ready(()), if work => {
                    let uid = self.queue.pop_front().expect("work is queued");
                    self.queued.remove(&uid);
                    self.process(uid).await;
                }
            }
        }
    }

    fn handle(&mut self, ev: GcEvent) {
        match ev {
            GcEvent::Applied(r, obj) => {
                let Some(node) = Node::from_metadata(r, &obj) else { return };
                if let Some(seen) = self.relisting.get_mut(r.storage) {
                    seen.insert(node.uid.clone());
                }
                let more = self.graph.upsert(node);
                self.enqueue(more);
            }
            GcEvent::Deleted(obj) => {
                if let Some(uid) = obj.uid.as_deref() {
                    let more = self.graph.remove(uid);
                    self.enqueue(more);
                }
            }
            GcEvent::Relisting(r) => {
                self.relisting.insert(r.storage, HashSet::new());
            }
            GcEvent::Listed(r) => {
                let seen = self.relisting.remove(r.storage).unwrap_or_default();
                for uid in self.graph.uids_of(r) {
                    if !seen.contains(&uid) {
                        // Deleted while the watch was down.
                        let more = self.graph.remove(&uid);
                        self.enqueue(more);
                    }
                }
                if self.unsynced.remove(r.storage) && self.unsynced.is_empty() {
                    tracing::info!(objects = self.graph.node_count(), queued = self.queue.len(), "garbage collector: graph built, collecting");
                }
            }
        }
    }

    fn enqueue(&mut self, uids: Vec<String>) {
        for uid in uids {
            if self.queued.insert(uid.clone()) {
                self.queue.push_back(uid);
            }
        }
    }

    fn promote_due(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.retries.first_entry() {
            if *entry.key() > now {
                break;
            }
            let uids = entry.remove();
            self.enqueue(uids);
        }
    }

    async fn process(&mut self, uid: String) {
        match self.attempt(&uid).await {
            Ok(()) => {
                self.failures.remove(&uid);
            }
            Err(e) => {
                let n = self.failures.entry(uid.clone()).or_insert(0);
                *n += 1;
                let delay = backoff(*n);
                tracing::debug!(uid, error = %e, retry_in_ms = delay.as_millis() as u64, "garbage collector: attempt failed");
                self.retries.entry(Instant::now() + delay).or_default().push(uid);
            }
        }
    }

    /// Plan, verify absent owners live, make sure the graph's copy of the object is current, act.
    async fn attempt(&mut self, uid: &str) -> Result<(), GcError> {
        let mut verified: HashMap<String, OwnerState> = HashMap::new();
        let mut refreshed = false;
        for _ in 0..8 {
            let actions = plan::plan(&self.graph, uid, &verified);
            match actions.as_slice() {
                [] => return Ok(()),
                [Action::Verify(refs)] => {
                    for r in refs {
                        let state = self.lookup_owner(uid, r).await?;
                        verified.insert(r.uid.clone(), state);
                    }
                    continue;
                }
                [Action::Unresolvable(r)] => {
                    if self.reported.insert(uid.to_string()) {
                        let what = self.graph.get(uid).map(Node::describe).unwrap_or_default();
                        tracing::info!(object = what, owner_kind = %r.kind, owner_api_version = %r.api_version, owner = %r.name,
                            "garbage collector: owner reference cannot be resolved (kind not served here, or a namespaced owner of a cluster-scoped object); leaving the object alone");
                    }
                    return Ok(());
                }
                _ => {}
            }
            if !refreshed {
                refreshed = true;
                if !self.refresh(uid).await? {
                    return Ok(());
                }
                // The live object may differ from what the watch delivered so far: plan on it.
                continue;
            }
            for a in actions {
                self.execute(uid, a).await?;
            }
            return Ok(());
        }
        Ok(())
    }

    fn api(&self, node: &Node) -> Api<DynamicObject> {
        let ar = api_resource(node.resource);
        match &node.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Read the object live and put what it says into the graph; false if it is gone (or replaced).
    async fn refresh(&mut self, uid: &str) -> Result<bool, GcError> {
        let Some(node) = self.graph.get(uid) else { return Ok(false) };
        let (api, resource, what) = (self.api(node), node.resource, node.describe());
        let live = api.get_metadata_opt(&node.name).await.map_err(|source| GcError::Read { what, source })?;
        match live.as_ref().and_then(|o| Node::from_metadata(resource, &o.metadata)).filter(|n| n.uid == uid) {
            Some(fresh) => {
                if self.graph.get(uid) != Some(&fresh) {
                    let more = self.graph.upsert(fresh);
                    self.enqueue(more.into_iter().filter(|u| u != uid).collect());
                }
                Ok(true)
            }
            None => {
                // Deleted (the watch will say so too): its dependents and waiting owners get their look now.
                let more = self.graph.remove(uid);
                self.enqueue(more);
                Ok(false)
            }
        }
    }

    /// What an owner reference the graph does not hold points at, read live.
    async fn lookup_owner(&self, dependent: &str, r: &OwnerRef) -> Result<OwnerState, GcError> {
        let Some(res) = plan::owner_resource(r) else { return Ok(OwnerState::Solid) };
        let ns = if res.namespaced { self.graph.get(dependent).and_then(|d| d.namespace.clone()) } else { None };
        let ar = api_resource(res);
        let api: Api<DynamicObject> = match &ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        let what = format!("owner {} {}", r.kind, r.name);
        let owner = api.get_opt(&r.name).await.map_err(|source| GcError::Read { what, source })?;
        Ok(match owner {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let waiting = o.metadata.deletion_timestamp.is_some() && o.metadata.finalizers.iter().flatten().any(|f| f == FOREGROUND);
                if waiting {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                }
            }
            _ => OwnerState::Dangling,
        })
    }

    async fn execute(&mut self, uid: &str, action: Action) -> Result<(), GcError> {
        match action {
            Action::Verify(_) | Action::Unresolvable(_) => Ok(()),
            Action::Enqueue(uids) => {
                self.enqueue(uids);
                Ok(())
            }
            Action::Delete { target, policy } => {
                let Some(node) = self.graph.get(&target) else { return Ok(()) };
                let (api, name, what) = (self.api(node), node.name.clone(), node.describe());
                let params = DeleteParams {
                    preconditions: Some(Preconditions { uid: Some(target.clone()), resource_version: None }),
                    propagation_policy: Some(match policy {
                        Policy::Background => PropagationPolicy::Background,
                        Policy::Foreground => PropagationPolicy::Foreground,
                        Policy::Orphan => PropagationPolicy::Orphan,
                    }),
                    ..DeleteParams::default()
                };
                tracing::info!(object = what, ?policy, "garbage collector: deleting a dependent whose owners are gone or being deleted");
                match api.delete(&name, &params).await {
                    Ok(_) => Ok(()),
                    // Gone already, or replaced by another object of that name (the uid precondition failed).
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                    Err(source) => Err(GcError::Write { action: "deleting", what, source }),
                }
            }
            Action::RemoveOwnerRefs { target, owners } => {
                self.patch_metadata(&target, "removing owner references from", |live| {
                    let refs = live.metadata.owner_references.clone().unwrap_or_default();
                    let kept: Vec<_> = refs.iter().filter(|r| !owners.contains(&r.uid)).cloned().collect();
                    (kept.len() != refs.len()).then(|| json!({"ownerReferences": if kept.is_empty() { Value::Null } else { json!(kept) }}))
                })
                .await?;
                if target != uid {
                    tracing::info!(object = self.graph.get(&target).map(Node::describe).unwrap_or_default(), owner = uid, "garbage collector: orphaned");
                }
                Ok(())
            }
            Action::Unblock { target } => {
                self.patch_metadata(&target, "unblocking the owner references of", |live| {
                    let mut refs = live.metadata.owner_references.clone().unwrap_or_default();
                    let blocking = refs.iter().any(|r| r.block_owner_deletion == Some(true));
                    for r in refs.iter_mut() {
                        r.block_owner_deletion = Some(false);
                    }
                    blocking.then(|| json!({"ownerReferences": refs}))
                })
                .await
            }
            Action::RemoveFinalizer { target, finalizer } => {
                self.patch_metadata(&target, "removing the garbage collector's finalizer from", |live| {
                    let fs = live.metadata.finalizers.clone().unwrap_or_default();
                    let kept: Vec<&String> = fs.iter().filter(|f| *f != finalizer).collect();
                    (kept.len() != fs.len()).then(|| json!({"finalizers": if kept.is_empty() { Value::Null } else { json!(kept) }}))
                })
                .await
            }
        }
    }

    /// Read `target` live and, if `change` says so, merge-patch its metadata with the resourceVersion read as a
    /// precondition (a concurrent write makes it a 409, and the attempt is retried on the new object).
    async fn patch_metadata(&self, target: &str, action: &'static str, change: impl Fn(&DynamicObject) -> Option<Value>) -> Result<(), GcError> {
        let Some(node) = self.graph.get(target) else { return Ok(()) };
        let (api, name, what) = (self.api(node), node.name.clone(), node.describe());
        let live = api.get_opt(&name).await.map_err(|source| GcError::Read { what: what.clone(), source })?;
        let Some(live) = live.filter(|o| o.metadata.uid.as_deref() == Some(target)) else { return Ok(()) };
        let Some(mut md) = change(&live) else { return Ok(()) };
        md["resourceVersion"] = json!(live.metadata.resource_version);
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": md}))).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(GcError::Write { action, what, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_kinds_are_the_deletable_stored_ones_without_events() {
        let kinds: Vec<&str> = watched().iter().map(|r| r.plural).collect();
        for k in ["pods", "configmaps", "secrets", "jobs", "namespaces", "nodes", "leases"] {
            assert!(kinds.contains(&k), "{k} in {kinds:?}");
        }
        assert!(!kinds.contains(&"events"));
        assert!(!kinds.contains(&"services"), "read-only kinds cannot be deleted");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert!(backoff(5) > backoff(4));
        assert_eq!(backoff(30), Duration::from_secs(30));
    }
}
