//! The ReplicaSet controller (apps/v1): watches ReplicaSets and Pods, plans each ReplicaSet's sync purely
//! ([`plan::plan`]) and applies the plan through the API.
//!
//! Same shape as the Job loop: one task owns the caches and a delay queue of keys, watch events are drained in
//! batches, and upstream's expectations (creations and deletions not yet seen on the watch) keep a sync from
//! acting twice on the same shortfall. A cached object is never replaced by an older watch event.

pub mod plan;

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::informer::{forward, key_of, rv, DelayQueue, Expectations, Key, RETRY};




enum Input {
    Rs(Box<watcher::Event<ReplicaSet>>),
    Pod(Box<watcher::Event<Pod>>),
}


/// Run the ReplicaSet controller forever.
pub async fn run(client: Client) {
    let (tx, rx) = mpsc::unbounded_channel();
    let rss: Api<ReplicaSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    tokio::spawn(forward(watcher(rss, watcher::Config::default()), tx.clone(), |e| Input::Rs(Box::new(e)), "replicaset controller"));
    let pod_events = futures::TryStreamExt::map_ok(watcher(pods, watcher::Config::default()), |e| e.modify(crate::informer::slim_pod));
    tokio::spawn(forward(pod_events, tx, |e| Input::Pod(Box::new(e)), "replicaset controller"));
    let recorder = Recorder::new(client.clone(), Reporter { controller: "replicaset-controller".into(), instance: None });
    Controller { client: Some(client), recorder: Some(recorder), ..Default::default() }.run(rx).await;
}


#[derive(Default)]
struct Controller {
    client: Option<Client>,
    recorder: Option<Recorder>,
    rss: HashMap<Key, ReplicaSet>,
    rs_keys: HashMap<String, Key>,
    /// Boxed: a `Pod` inline is ~2 KB, and a HashMap keeps spare slots of that size.
    pods: HashMap<String, Box<Pod>>,
    rs_relist: Option<Vec<ReplicaSet>>,
    pod_relist: Option<Vec<Pod>>,
    rss_synced: bool,
    pods_synced: bool,
    queue: DelayQueue,
    expect: HashMap<String, Expectations>,
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
            if !(self.rss_synced && self.pods_synced) {
                continue;
            }
            for k in self.queue.take_due() {
                self.sync(&k).await;
            }
        }
    }


    fn enqueue_all(&mut self) {
        let keys: Vec<Key> = self.rss.keys().cloned().collect();
        for k in keys {
            self.queue.add(k, Duration::ZERO);
        }
    }

    /// A Pod changed: wake its controller, or, for an orphan, every ReplicaSet of its namespace (one may adopt it).
    fn wake_for(&mut self, p: &Pod) {
        match plan::controller_uid(&p.metadata).and_then(|u| self.rs_keys.get(u)).cloned() {
            Some(k) => self.queue.add(k, Duration::ZERO),
            None if plan::controller_uid(&p.metadata).is_none() => {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let keys: Vec<Key> = self.rss.keys().filter(|k| k.0 == ns).cloned().collect();
                for k in keys {
                    self.queue.add(k, Duration::ZERO);
                }
            }
            None => {}
        }
    }

    fn handle(&mut self, ev: Input) {
        match ev {
            Input::Rs(ev) => match *ev {
                watcher::Event::Init => self.rs_relist = Some(Vec::new()),
                watcher::Event::InitApply(r) => self.rs_relist.get_or_insert_with(Vec::new).push(r),
                watcher::Event::InitDone => {
                    self.rss.clear();
                    self.rs_keys.clear();
                    for r in self.rs_relist.take().unwrap_or_default() {
                        self.put_rs(r);
                    }
                    self.rss_synced = true;
                    self.enqueue_all();
                }
                watcher::Event::Apply(r) => self.put_rs(r),
                watcher::Event::Delete(r) => {
                    let key = key_of(&r.metadata);
                    if self.rss.get(&key).is_some_and(|c| c.metadata.uid == r.metadata.uid) {
                        self.rss.remove(&key);
                    }
                    let uid = r.metadata.uid.clone().unwrap_or_default();
                    self.rs_keys.remove(&uid);
                    self.expect.remove(&uid);
                }
            },
            Input::Pod(ev) => match *ev {
                watcher::Event::Init => self.pod_relist = Some(Vec::new()),
                watcher::Event::InitApply(p) => self.pod_relist.get_or_insert_with(Vec::new).push(p),
                watcher::Event::InitDone => {
                    self.pods.clear();
                    for p in self.pod_relist.take().unwrap_or_default() {
                        self.pods.insert(p.metadata.uid.clone().unwrap_or_default(), Box::new(p));
                    }
                    self.pods_synced = true;
                    self.enqueue_all();
                }
                watcher::Event::Apply(p) => self.put_pod(p),
                watcher::Event::Delete(p) => {
                    let uid = p.metadata.uid.clone().unwrap_or_default();
                    self.pods.remove(&uid);
                    if let Some(o) = plan::controller_uid(&p.metadata) {
                        if let Some(e) = self.expect.get_mut(o) {
                            e.deletes.remove(&uid);
                        }
                    }
                    self.wake_for(&p);
                }
            },
        }
    }

    fn put_rs(&mut self, r: ReplicaSet) {
        let key = key_of(&r.metadata);
        if let Some(old) = self.rss.get(&key) {
            // Our own status writes update the cache before the watch shows them; never go back.
            if old.metadata.uid == r.metadata.uid && rv(&old.metadata) > rv(&r.metadata) {
                return;
            }
        }
        self.rs_keys.insert(r.metadata.uid.clone().unwrap_or_default(), key.clone());
        self.rss.insert(key.clone(), r);
        self.queue.add(key, Duration::ZERO);
    }

    fn put_pod(&mut self, p: Pod) {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let old = self.pods.get(&uid).cloned();
        if old.as_ref().is_some_and(|o| rv(&o.metadata) > rv(&p.metadata)) {
            return;
        }
        if let Some(o) = plan::controller_uid(&p.metadata).map(str::to_string) {
            if let Some(e) = self.expect.get_mut(&o) {
                if old.is_none() {
                    e.creates -= 1;
                }
                if p.metadata.deletion_timestamp.is_some() {
                    e.deletes.remove(&uid);
                }
            }
        }
        // A changed controller or labels may concern the previous owner too.
        if let Some(o) = &old {
            if plan::controller_uid(&o.metadata) != plan::controller_uid(&p.metadata) || o.metadata.labels != p.metadata.labels {
                self.wake_for(o);
            }
        }
        self.wake_for(&p);
        self.pods.insert(uid, Box::new(p));
    }

    async fn sync(&mut self, key: &Key) {
        let Some(rs) = self.rss.get(key).cloned() else { return };
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<&Pod> = self
            .pods
            .values()
            .filter(|p| p.metadata.namespace.as_deref() == Some(key.0.as_str()))
            .filter(|p| plan::controller_uid(&p.metadata).is_none_or(|o| o == uid))
            .map(|p| &**p)
            .collect();
        let expectations_met = self.expect.get(&uid).is_none_or(Expectations::met);
        let p = plan::plan(&plan::Input { rs: &rs, pods, expectations_met, now: k8s_openapi::jiff::Timestamp::now() });
        if let Err(delay) = self.apply(key, &rs, p).await {
            self.queue.add(key.clone(), delay);
        }
    }

    async fn apply(&mut self, key: &Key, rs: &ReplicaSet, p: plan::Plan) -> Result<(), Duration> {
        let client = self.client();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &key.0);
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let mut failed = false;

        // Adopt and release with the resourceVersion read: a Pod changed meanwhile is looked at again.
        for (refs, adopt) in [(&p.adopt, true), (&p.release, false)] {
            for r in refs {
                let Some(pod) = self.pods.get(&r.uid) else { continue };
                let mut owners: Vec<_> = pod.metadata.owner_references.clone().unwrap_or_default();
                if adopt {
                    owners.push(plan::controller_ref(rs));
                } else {
                    owners.retain(|o| o.uid != uid);
                }
                let patch = json!({"metadata": {"ownerReferences": owners, "resourceVersion": r.resource_version, "uid": r.uid}});
                if let Err(e) = pods.patch(&r.name, &PatchParams::default(), &Patch::Merge(patch)).await {
                    if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                        tracing::debug!(rs = ?key, pod = %r.name, error = %e, adopt, "adopting/releasing a pod");
                        failed = true;
                    }
                }
            }
        }

        if p.create > 0 || !p.delete.is_empty() {
            self.expect.entry(uid.clone()).or_default().since = Some(Instant::now());
        }
        // Deletions, least valuable first, all at once.
        let deletes = p.delete.iter().map(|r| {
            let pods = pods.clone();
            async move {
                let dp = DeleteParams { preconditions: Some(Preconditions { uid: Some(r.uid.clone()), resource_version: None }), ..Default::default() };
                match pods.delete(&r.name, &dp).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        });
        for (r, res) in p.delete.iter().zip(futures::future::join_all(deletes).await) {
            match res {
                Ok(true) => {
                    self.expect.entry(uid.clone()).or_default().deletes.insert(r.uid.clone());
                    self.event(rs, EventType::Normal, "SuccessfulDelete", format!("Deleted pod: {}", r.name));
                }
                Ok(false) => {}
                Err(e) => {
                    failed = true;
                    self.event(rs, EventType::Warning, "FailedDelete", format!("Error deleting: {e}"));
                }
            }
        }

        // Creations in upstream's slow-start batches (1, 2, 4, ...): a rejected template costs one request.
        let mut left = p.create;
        let mut batch = 1;
        if left > 0 {
            self.expect.entry(uid.clone()).or_default().creates += left as i64;
        }
        let mut create_error = None;
        while left > 0 {
            let n = batch.min(left);
            left -= n;
            let creates = (0..n).map(|_| {
                let pods = pods.clone();
                let pod = plan::new_pod(rs);
                async move { pods.create(&PostParams::default(), &pod).await }
            });
            let mut errors = 0;
            for r in futures::future::join_all(creates).await {
                match r {
                    Ok(pod) => self.event(rs, EventType::Normal, "SuccessfulCreate", format!("Created pod: {}", pod.metadata.name.unwrap_or_default())),
                    Err(e) => {
                        errors += 1;
                        tracing::warn!(rs = ?key, error = %e, "creating a replicaset's pod");
                        self.event(rs, EventType::Warning, "FailedCreate", format!("Error creating: {e}"));
                        create_error = Some(e.to_string());
                    }
                }
            }
            if errors > 0 {
                self.expect.entry(uid.clone()).or_default().creates -= (errors + left) as i64;
                failed = true;
                break;
            }
            batch *= 2;
        }

        // Status, with upstream's ReplicaFailure condition while creations fail.
        let mut status = p.status.clone();
        let mut conditions = status.conditions.take().unwrap_or_default();
        match &create_error {
            Some(msg) => {
                conditions.retain(|c| c.type_ != "ReplicaFailure");
                conditions.push(k8s_openapi::api::apps::v1::ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some("FailedCreate".into()),
                    message: Some(msg.clone()),
                    last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())),
                });
            }
            None if !failed => conditions.retain(|c| c.type_ != "ReplicaFailure"),
            None => {}
        }
        status.conditions = (!conditions.is_empty()).then_some(conditions);
        if rs.status.as_ref() != Some(&status) {
            let mut next = rs.clone();
            next.status = Some(status);
            let rss: Api<ReplicaSet> = Api::namespaced(client, &key.0);
            match rss.replace_status(&key.1, &PostParams::default(), &next).await {
                Ok(r) => {
                    self.rss.insert(key.clone(), r);
                }
                Err(e) => {
                    tracing::debug!(rs = ?key, error = %e, "writing replicaset status");
                    return Err(if matches!(&e, kube::Error::Api(s) if s.code == 409) { Duration::ZERO } else { RETRY });
                }
            }
        }
        if let Some(d) = p.requeue_after {
            self.queue.add(key.clone(), d);
        }
        if failed {
            return Err(RETRY);
        }
        Ok(())
    }

    /// Publish an event about the ReplicaSet in the background: a sync never waits for its events.
    fn event(&self, rs: &ReplicaSet, ty: EventType, reason: &str, message: String) {
        let Some(recorder) = self.recorder.clone() else { return };
        let reference = rs.object_ref(&());
        let ev = KubeEvent { type_: ty, reason: reason.into(), note: Some(message), action: reason.into(), secondary: None };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&ev, &reference).await {
                tracing::debug!(error = %e, "recording a replicaset event");
            }
        });
    }
}
