//! The Deployment controller (apps/v1): watches Deployments, their ReplicaSets and Pods, plans each
//! Deployment's next rollout step purely ([`plan::plan`]) and applies it through the API.
//!
//! The ReplicaSet controller does the Pods; this loop only creates, scales and deletes ReplicaSets and writes
//! the Deployment's status and revision annotation. Same loop shape as the Job and ReplicaSet controllers: one
//! task owns the caches and a delay queue, watch events are drained in batches, and a cached object is never
//! replaced by an older watch event. Every ReplicaSet write is conditional on the resourceVersion the plan was
//! made from, so a plan from a stale cache costs a 409 and a fresh plan, never a wrong scale.

pub mod plan;

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::informer::{forward, key_of, rv, DelayQueue, Key, RETRY};
use crate::replicaset::plan::controller_uid;

use plan::Action;



/// The lists being received by each watch's initial (re)list, until its InitDone.
#[derive(Default)]
struct Relists {
    deploys: Option<Vec<Deployment>>,
    rss: Option<Vec<ReplicaSet>>,
    pods: Option<Vec<Pod>>,
}

enum Input {
    Deploy(Box<watcher::Event<Deployment>>),
    Rs(Box<watcher::Event<ReplicaSet>>),
    Pod(Box<watcher::Event<Pod>>),
}

/// Run the Deployment controller forever.
pub async fn run(client: Client) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(forward(watcher(Api::<Deployment>::all(client.clone()), watcher::Config::default()), tx.clone(), |e| Input::Deploy(Box::new(e)), "deployment controller"));
    tokio::spawn(forward(watcher(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default()), tx.clone(), |e| Input::Rs(Box::new(e)), "deployment controller"));
    tokio::spawn(forward(watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()), tx, |e| Input::Pod(Box::new(e)), "deployment controller"));
    let recorder = Recorder::new(client.clone(), Reporter { controller: "deployment-controller".into(), instance: None });
    Controller { client: Some(client), recorder: Some(recorder), ..Default::default() }.run(rx).await;
}


#[derive(Default)]
struct Controller {
    client: Option<Client>,
    recorder: Option<Recorder>,
    deploys: HashMap<Key, Deployment>,
    deploy_keys: HashMap<String, Key>,
    rss: HashMap<String, ReplicaSet>,
    /// Pod uid → the uid of the ReplicaSet controlling it (Recreate waits for old Pods to be gone).
    pods: HashMap<String, String>,
    relist: Relists,
    synced: [bool; 3],
    queue: DelayQueue,
}



/// The Deployment's selector matches the ReplicaSet's labels (an empty or invalid selector matches nothing).
fn selects(d: &Deployment, rs: &ReplicaSet) -> bool {
    let Some(sel) = d.spec.as_ref().and_then(|s| serde_json::to_value(&s.selector).ok()) else { return false };
    match k1s_api::selectors::LabelSelector::from_label_selector_json(&sel) {
        Ok(s) if !s.is_empty() => s.matches(&rs.metadata.labels.clone().unwrap_or_default()),
        _ => false,
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Controller {
    fn client(&self) -> Client {
        self.client.clone().expect("client")
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        loop {
            let next = self.queue.next();
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { return };
                    self.handle(ev);
                    while let Ok(ev) = rx.try_recv() {
                        self.handle(ev);
                    }
                }
                _ = async { tokio::time::sleep_until(next.unwrap_or_else(Instant::now)).await }, if next.is_some() => {}
            }
            if !self.synced.iter().all(|s| *s) {
                continue;
            }
            for k in self.queue.take_due() {
                self.sync(&k).await;
            }
        }
    }


    fn enqueue_all(&mut self) {
        let keys: Vec<Key> = self.deploys.keys().cloned().collect();
        for k in keys {
            self.queue.add(k, Duration::ZERO);
        }
    }

    fn wake_owner_of_rs(&mut self, rs_uid: &str) {
        if let Some(d) = self.rss.get(rs_uid).and_then(|rs| controller_uid(&rs.metadata)).map(str::to_string) {
            if let Some(k) = self.deploy_keys.get(&d).cloned() {
                self.queue.add(k, Duration::ZERO);
            }
        }
    }

    fn handle(&mut self, ev: Input) {
        match ev {
            Input::Deploy(ev) => match *ev {
                watcher::Event::Init => self.relist.deploys = Some(Vec::new()),
                watcher::Event::InitApply(d) => self.relist.deploys.get_or_insert_with(Vec::new).push(d),
                watcher::Event::InitDone => {
                    self.deploys.clear();
                    self.deploy_keys.clear();
                    for d in self.relist.deploys.take().unwrap_or_default() {
                        self.put_deploy(d);
                    }
                    self.synced[0] = true;
                    self.enqueue_all();
                }
                watcher::Event::Apply(d) => self.put_deploy(d),
                watcher::Event::Delete(d) => {
                    let key = key_of(&d.metadata);
                    if self.deploys.get(&key).is_some_and(|c| c.metadata.uid == d.metadata.uid) {
                        self.deploys.remove(&key);
                    }
                    self.deploy_keys.remove(d.metadata.uid.as_deref().unwrap_or(""));
                }
            },
            Input::Rs(ev) => match *ev {
                watcher::Event::Init => self.relist.rss = Some(Vec::new()),
                watcher::Event::InitApply(r) => self.relist.rss.get_or_insert_with(Vec::new).push(r),
                watcher::Event::InitDone => {
                    self.rss.clear();
                    for r in self.relist.rss.take().unwrap_or_default() {
                        self.rss.insert(r.metadata.uid.clone().unwrap_or_default(), r);
                    }
                    self.synced[1] = true;
                    self.enqueue_all();
                }
                watcher::Event::Apply(r) => self.put_rs(r),
                watcher::Event::Delete(r) => {
                    let uid = r.metadata.uid.clone().unwrap_or_default();
                    self.wake_owner_of_rs(&uid);
                    self.rss.remove(&uid);
                }
            },
            Input::Pod(ev) => match *ev {
                watcher::Event::Init => self.relist.pods = Some(Vec::new()),
                watcher::Event::InitApply(p) => self.relist.pods.get_or_insert_with(Vec::new).push(p),
                watcher::Event::InitDone => {
                    self.pods.clear();
                    for p in self.relist.pods.take().unwrap_or_default() {
                        self.put_pod(&p);
                    }
                    self.synced[2] = true;
                    self.enqueue_all();
                }
                watcher::Event::Apply(p) => self.put_pod(&p),
                watcher::Event::Delete(p) => {
                    // Only a Pod's disappearance matters here (Recreate waits for it); the rest arrives through
                    // its ReplicaSet's status.
                    if let Some(rs) = self.pods.remove(p.metadata.uid.as_deref().unwrap_or("")) {
                        self.wake_owner_of_rs(&rs);
                    }
                }
            },
        }
    }

    fn put_deploy(&mut self, d: Deployment) {
        let key = key_of(&d.metadata);
        if let Some(old) = self.deploys.get(&key) {
            // Our own status writes update the cache before the watch shows them; never go back.
            if old.metadata.uid == d.metadata.uid && rv(&old.metadata) > rv(&d.metadata) {
                return;
            }
        }
        self.deploy_keys.insert(d.metadata.uid.clone().unwrap_or_default(), key.clone());
        self.deploys.insert(key.clone(), d);
        self.queue.add(key, Duration::ZERO);
    }

    fn put_rs(&mut self, r: ReplicaSet) {
        let uid = r.metadata.uid.clone().unwrap_or_default();
        if self.rss.get(&uid).is_some_and(|o| rv(&o.metadata) > rv(&r.metadata)) {
            return;
        }
        self.rss.insert(uid.clone(), r);
        self.wake_owner_of_rs(&uid);
    }

    fn put_pod(&mut self, p: &Pod) {
        if let Some(rs) = controller_uid(&p.metadata) {
            self.pods.insert(p.metadata.uid.clone().unwrap_or_default(), rs.to_string());
        }
    }

    async fn sync(&mut self, key: &Key) {
        let Some(d) = self.deploys.get(key).cloned() else { return };
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let rss: Vec<&ReplicaSet> = self
            .rss
            .values()
            .filter(|rs| rs.metadata.namespace.as_deref() == Some(key.0.as_str()) && controller_uid(&rs.metadata) == Some(uid.as_str()))
            .collect();
        // Upstream `ClaimReplicaSets`: a ReplicaSet without a controller that the selector matches is adopted
        // first (conditional on the resourceVersion read), then planned with on the next sync.
        if d.metadata.deletion_timestamp.is_none() {
            let orphans: Vec<ReplicaSet> = self
                .rss
                .values()
                .filter(|rs| rs.metadata.namespace.as_deref() == Some(key.0.as_str()) && controller_uid(&rs.metadata).is_none() && rs.metadata.deletion_timestamp.is_none())
                .filter(|rs| selects(&d, rs))
                .cloned()
                .collect();
            if !orphans.is_empty() {
                self.adopt(key, &d, orphans).await;
                return;
            }
        }
        let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let old_rs: Vec<String> = rss
            .iter()
            .filter(|rs| !plan::equal_ignore_hash(rs.spec.as_ref().and_then(|s| s.template.as_ref()).unwrap_or(&Default::default()), &template))
            .filter_map(|rs| rs.metadata.uid.clone())
            .collect();
        let old_pods_running = self.pods.values().any(|rs| old_rs.contains(rs));
        let now = k8s_openapi::jiff::Timestamp::now();
        let p = plan::plan(&plan::Input { deployment: &d, rss, old_pods_running, now });
        match self.apply(key, &d, p).await {
            Err(delay) => self.queue.add(key.clone(), delay),
            Ok(()) => {
                if let Some(after) = self.deploys.get(key).and_then(|d| plan::deadline_requeue(d, now)) {
                    self.queue.add(key.clone(), after);
                }
            }
        }
    }

    async fn adopt(&mut self, key: &Key, d: &Deployment, orphans: Vec<ReplicaSet>) {
        let api: Api<ReplicaSet> = Api::namespaced(self.client(), &key.0);
        let reference = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: key.1.clone(),
            uid: d.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let mut delay = Duration::ZERO;
        for rs in orphans {
            let mut owners = rs.metadata.owner_references.clone().unwrap_or_default();
            owners.push(reference.clone());
            let patch = json!({"metadata": {"ownerReferences": owners, "resourceVersion": rs.metadata.resource_version}});
            match api.patch(rs.metadata.name.as_deref().unwrap_or(""), &PatchParams::default(), &Patch::Merge(patch)).await {
                Ok(x) => {
                    self.rss.insert(x.metadata.uid.clone().unwrap_or_default(), x);
                }
                Err(e) => {
                    tracing::debug!(deployment = ?key, error = %e, "adopting a replicaset");
                    delay = RETRY;
                }
            }
        }
        self.queue.add(key.clone(), delay);
    }

    async fn apply(&mut self, key: &Key, d: &Deployment, p: plan::Plan) -> Result<(), Duration> {
        let client = self.client();
        let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &key.0);
        let d_api: Api<Deployment> = Api::namespaced(client, &key.0);
        let mut current = d.clone();
        for a in &p.actions {
            match a {
                Action::Create(rs) => match rs_api.create(&PostParams::default(), rs).await {
                    Ok(created) => {
                        self.rss.insert(created.metadata.uid.clone().unwrap_or_default(), created);
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        // Upstream: a ReplicaSet of that name that is not ours with this template is a hash
                        // collision; count it so the next hash differs.
                        let name = rs.metadata.name.clone().unwrap_or_default();
                        let existing = rs_api.get_opt(&name).await.ok().flatten();
                        let ours = existing.as_ref().is_some_and(|x| {
                            controller_uid(&x.metadata) == d.metadata.uid.as_deref()
                                && plan::equal_ignore_hash(x.spec.as_ref().and_then(|s| s.template.as_ref()).unwrap_or(&Default::default()), &d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default())
                        });
                        if let (Some(x), true) = (existing, ours) {
                            self.rss.insert(x.metadata.uid.clone().unwrap_or_default(), x);
                            return Err(Duration::ZERO);
                        }
                        let mut next = current.clone();
                        let st = next.status.get_or_insert_with(Default::default);
                        st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                        match d_api.replace_status(&key.1, &PostParams::default(), &next).await {
                            Ok(x) => {
                                self.deploys.insert(key.clone(), x);
                            }
                            Err(e) => tracing::debug!(deployment = ?key, error = %e, "counting a hash collision"),
                        }
                        return Err(Duration::ZERO);
                    }
                    Err(e) => {
                        tracing::warn!(deployment = ?key, error = %e, "creating a replicaset");
                        self.event(d, EventType::Warning, "FailedCreate", format!("Failed to create new replica set {:?}: {e}", rs.metadata.name.as_deref().unwrap_or("")));
                        return Err(RETRY);
                    }
                },
                Action::Update { name, resource_version, replicas, annotations, min_ready_seconds } => {
                    let patch = json!({
                        "metadata": {"resourceVersion": resource_version, "annotations": annotations},
                        "spec": {"replicas": replicas, "minReadySeconds": min_ready_seconds},
                    });
                    match rs_api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
                        Ok(rs) => {
                            self.rss.insert(rs.metadata.uid.clone().unwrap_or_default(), rs);
                        }
                        Err(e) => {
                            tracing::debug!(deployment = ?key, rs = %name, error = %e, "scaling a replicaset");
                            return Err(if is_conflict(&e) { Duration::ZERO } else { RETRY });
                        }
                    }
                }
                Action::Delete { name, uid } => {
                    let dp = DeleteParams { preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }), ..Default::default() };
                    match rs_api.delete(name, &dp).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                        Err(e) => {
                            tracing::debug!(deployment = ?key, rs = %name, error = %e, "deleting an old replicaset");
                            return Err(RETRY);
                        }
                    }
                }
            }
        }
        for ev in &p.events {
            self.event(d, EventType::Normal, ev.reason, ev.message.clone());
        }
        if let Some(rev) = &p.revision {
            let patch = json!({"metadata": {"annotations": {plan::REVISION: rev}}});
            match d_api.patch(&key.1, &PatchParams::default(), &Patch::Merge(patch)).await {
                Ok(x) => current = x,
                Err(e) => {
                    tracing::debug!(deployment = ?key, error = %e, "writing the deployment revision");
                    return Err(RETRY);
                }
            }
            self.deploys.insert(key.clone(), current.clone());
        }
        if let Some(status) = p.status {
            if current.status.as_ref() != Some(&status) {
                current.status = Some(status);
                match d_api.replace_status(&key.1, &PostParams::default(), &current).await {
                    Ok(x) => {
                        self.deploys.insert(key.clone(), x);
                    }
                    Err(e) => {
                        tracing::debug!(deployment = ?key, error = %e, "writing deployment status");
                        return Err(if is_conflict(&e) { Duration::ZERO } else { RETRY });
                    }
                }
            }
        }
        Ok(())
    }

    /// Publish an event about the Deployment in the background: a sync never waits for its events.
    fn event(&self, d: &Deployment, ty: EventType, reason: &str, message: String) {
        let Some(recorder) = self.recorder.clone() else { return };
        let reference = d.object_ref(&());
        let ev = KubeEvent { type_: ty, reason: reason.into(), note: Some(message), action: "Scaling".into(), secondary: None };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&ev, &reference).await {
                tracing::debug!(error = %e, "recording a deployment event");
            }
        });
    }
}
