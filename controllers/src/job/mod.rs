//! The Job controller (batch/v1) and, in the same loop, the TTL-after-finished controller: watches Jobs and
//! Pods, plans each Job's sync purely ([`plan::plan`]) and applies the plan through the API.
//!
//! One loop owns the caches and a delay queue of Job keys; watch events are drained in batches so that many
//! Pod updates cost one sync. Our own writes are seen through the watch later than their responses, so the loop
//! keeps upstream's expectations (creations and deletions not yet observed: no new ones meanwhile) and the set
//! of Pods whose finalizer it removed, and never lets an older watch event replace a newer cached object.

pub mod indexes;
pub mod plan;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::informer::{forward, key_of, rv, DelayQueue, Expectations, Key, RETRY};

use plan::{EventType, Plan, PodRef, TRACKING_FINALIZER};



/// The loop's one input type.
enum Input {
    Job(Box<watcher::Event<Job>>),
    Pod(Box<watcher::Event<Pod>>),
}


/// Run the Job controller forever.
pub async fn run(client: Client) {
    let (tx, rx) = mpsc::unbounded_channel();
    let jobs: Api<Job> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    tokio::spawn(forward(watcher(jobs, watcher::Config::default()), tx.clone(), |e| Input::Job(Box::new(e)), "job controller"));
    let pod_events = futures::TryStreamExt::map_ok(watcher(pods, watcher::Config::default()), |e| e.modify(crate::informer::slim_pod));
    tokio::spawn(forward(pod_events, tx, |e| Input::Pod(Box::new(e)), "job controller"));
    let recorder = Recorder::new(client.clone(), Reporter { controller: "job-controller".into(), instance: None });
    Controller::new_client(client, recorder).run(rx).await;
}


#[derive(Default)]
struct Controller {
    client: Option<Client>,
    recorder: Option<Recorder>,
    jobs: HashMap<Key, Job>,
    job_keys: HashMap<String, Key>,
    /// Boxed: a `Pod` inline is ~2 KB, and a HashMap keeps spare slots of that size.
    pods: HashMap<String, Box<Pod>>,
    by_job: HashMap<String, HashSet<String>>,
    job_relist: Option<Vec<Job>>,
    pod_relist: Option<Vec<Pod>>,
    jobs_synced: bool,
    pods_synced: bool,
    queue: DelayQueue,
    expect: HashMap<String, Expectations>,
    removed_finalizers: HashSet<String>,
    orphans: HashSet<String>,
}


/// The UID of the Job that controls a Pod, if any.
fn controller_job(p: &Pod) -> Option<&str> {
    p.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true) && o.kind == "Job" && o.api_version == "batch/v1").map(|o| o.uid.as_str())
}

impl Controller {
    fn new_client(client: Client, recorder: Recorder) -> Self {
        Controller { client: Some(client), recorder: Some(recorder), ..Default::default() }
    }

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
            if !(self.jobs_synced && self.pods_synced) {
                continue;
            }
            for k in self.queue.take_due() {
                self.sync(&k).await;
            }
            for uid in std::mem::take(&mut self.orphans) {
                self.free_orphan(&uid).await;
            }
        }
    }


    fn handle(&mut self, ev: Input) {
        match ev {
            Input::Job(ev) => match *ev {
                watcher::Event::Init => self.job_relist = Some(Vec::new()),
                watcher::Event::InitApply(j) => self.job_relist.get_or_insert_with(Vec::new).push(j),
                watcher::Event::InitDone => {
                    let list = self.job_relist.take().unwrap_or_default();
                    self.jobs.clear();
                    self.job_keys.clear();
                    for j in list {
                        self.put_job(j);
                    }
                    self.jobs_synced = true;
                    let keys: Vec<Key> = self.jobs.keys().cloned().collect();
                    for k in keys {
                        self.queue.add(k, Duration::ZERO);
                    }
                }
                watcher::Event::Apply(j) => self.put_job(j),
                watcher::Event::Delete(j) => {
                    let key = key_of(&j.metadata);
                    let uid = j.metadata.uid.clone().unwrap_or_default();
                    if self.jobs.get(&key).is_some_and(|c| c.metadata.uid == j.metadata.uid) {
                        self.jobs.remove(&key);
                    }
                    self.job_keys.remove(&uid);
                    self.expect.remove(&uid);
                    // Its Pods still carrying the finalizer are orphans now.
                    for p in self.by_job.get(&uid).into_iter().flatten() {
                        if self.pods.get(p).is_some_and(|p| plan::has_tracking_finalizer(p)) {
                            self.orphans.insert(p.clone());
                        }
                    }
                }
            },
            Input::Pod(ev) => match *ev {
                watcher::Event::Init => self.pod_relist = Some(Vec::new()),
                watcher::Event::InitApply(p) => self.pod_relist.get_or_insert_with(Vec::new).push(p),
                watcher::Event::InitDone => {
                    let list = self.pod_relist.take().unwrap_or_default();
                    self.pods.clear();
                    self.by_job.clear();
                    for p in list {
                        self.put_pod(p);
                    }
                    self.pods_synced = true;
                    let keys: Vec<Key> = self.jobs.keys().cloned().collect();
                    for k in keys {
                        self.queue.add(k, Duration::ZERO);
                    }
                }
                watcher::Event::Apply(p) => self.put_pod(p),
                watcher::Event::Delete(p) => {
                    let uid = p.metadata.uid.clone().unwrap_or_default();
                    self.pods.remove(&uid);
                    self.removed_finalizers.remove(&uid);
                    self.orphans.remove(&uid);
                    if let Some(j) = controller_job(&p) {
                        if let Some(set) = self.by_job.get_mut(j) {
                            set.remove(&uid);
                        }
                        if let Some(e) = self.expect.get_mut(j) {
                            e.deletes.remove(&uid);
                        }
                        if let Some(k) = self.job_keys.get(j).cloned() {
                            self.queue.add(k, Duration::ZERO);
                        }
                    }
                }
            },
        }
    }

    fn put_job(&mut self, j: Job) {
        let key = key_of(&j.metadata);
        if let Some(old) = self.jobs.get(&key) {
            // Our own status writes update the cache before the watch shows them; never go back.
            if old.metadata.uid == j.metadata.uid && rv(&old.metadata) > rv(&j.metadata) {
                return;
            }
        }
        let uid = j.metadata.uid.clone().unwrap_or_default();
        self.job_keys.insert(uid, key.clone());
        self.jobs.insert(key.clone(), j);
        self.queue.add(key, Duration::ZERO);
    }

    fn put_pod(&mut self, p: Pod) {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        // Only Pods a Job controls (or that still carry its finalizer) matter here; keeping the others would
        // cost memory per Pod for nothing.
        if controller_job(&p).is_none() && !plan::has_tracking_finalizer(&p) {
            self.pods.remove(&uid);
            return;
        }
        if let Some(old) = self.pods.get(&uid) {
            if rv(&old.metadata) > rv(&p.metadata) {
                return;
            }
        }
        let fresh = !self.pods.contains_key(&uid);
        if !plan::has_tracking_finalizer(&p) {
            self.removed_finalizers.remove(&uid);
        }
        if let Some(j) = controller_job(&p).map(str::to_string) {
            self.by_job.entry(j.clone()).or_default().insert(uid.clone());
            if let Some(e) = self.expect.get_mut(&j) {
                if fresh {
                    e.creates -= 1;
                }
                if p.metadata.deletion_timestamp.is_some() {
                    e.deletes.remove(&uid);
                }
            }
            match self.job_keys.get(&j).cloned() {
                Some(k) => {
                    let finished = self.jobs.get(&k).is_some_and(plan::is_finished);
                    if finished && plan::has_tracking_finalizer(&p) {
                        self.orphans.insert(uid.clone());
                    }
                    self.queue.add(k, Duration::ZERO);
                }
                None if plan::has_tracking_finalizer(&p) && self.jobs_synced => {
                    self.orphans.insert(uid.clone());
                }
                None => {}
            }
        } else if plan::has_tracking_finalizer(&p) && self.jobs_synced {
            self.orphans.insert(uid.clone());
        }
        self.pods.insert(uid, Box::new(p));
    }

    async fn sync(&mut self, key: &Key) {
        let Some(job) = self.jobs.get(key).cloned() else { return };
        let juid = job.metadata.uid.clone().unwrap_or_default();
        let now = k8s_openapi::jiff::Timestamp::now();
        if plan::is_finished(&job) {
            self.expect.remove(&juid);
            self.ttl(key, &job, now).await;
        }
        let pod_uids: Vec<String> = self.by_job.get(&juid).into_iter().flatten().cloned().collect();
        let pods: Vec<&Pod> = pod_uids.iter().filter_map(|u| self.pods.get(u).map(|b| &**b)).collect();
        let expectations_met = self.expect.get(&juid).is_none_or(Expectations::met);
        let p = plan::plan(&plan::Input { job: &job, pods, removed_finalizers: &self.removed_finalizers, expectations_met, now });
        let with_finalizer: HashSet<String> = pod_uids
            .iter()
            .filter(|u| self.pods.get(*u).is_some_and(|p| plan::has_tracking_finalizer(p)) && !self.removed_finalizers.contains(*u))
            .cloned()
            .collect();
        if let Err(delay) = self.apply(key, &job, p, with_finalizer).await {
            self.queue.add(key.clone(), delay);
        }
    }

    /// Carry out a plan. On a failed write the Job is synced again after the returned delay.
    async fn apply(&mut self, key: &Key, job: &Job, p: Plan, mut with_finalizer: HashSet<String>) -> Result<(), Duration> {
        let client = self.client();
        let (ns, _) = key;
        let juid = job.metadata.uid.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
        let mut failed = false;

        if !p.create.is_empty() || !p.delete.is_empty() {
            let e = self.expect.entry(juid.clone()).or_default();
            e.since = Some(Instant::now());
        }
        // Deletions (active Pods of a finishing, suspended or shrinking Job).
        let deletes = p.delete.iter().map(|(pod, free)| {
            let pods = pods.clone();
            async move {
                if *free {
                    remove_finalizer(&pods, pod).await?;
                }
                let dp = DeleteParams { preconditions: Some(Preconditions { uid: Some(pod.uid.clone()), resource_version: None }), ..Default::default() };
                match pods.delete(&pod.name, &dp).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        });
        let results = futures::future::join_all(deletes).await;
        for ((pod, free), r) in p.delete.iter().zip(results) {
            match r {
                Ok(true) => {
                    if *free {
                        with_finalizer.remove(&pod.uid);
                        self.removed_finalizers.insert(pod.uid.clone());
                    }
                    self.expect.entry(juid.clone()).or_default().deletes.insert(pod.uid.clone());
                    self.event(job, EventType::Normal, "SuccessfulDelete", format!("Deleted pod: {}", pod.name));
                }
                Ok(false) => {}
                Err(e) => {
                    failed = true;
                    tracing::warn!(job = ?key, pod = %pod.name, error = %e, "deleting a Job's pod");
                    self.event(job, EventType::Warning, "FailedDelete", format!("Error deleting: {e}"));
                }
            }
        }

        // Creations, in upstream's slow-start batches (1, 2, 4, ...): a quota or validation error costs one
        // request, not hundreds.
        let mut todo: &[plan::NewPod] = &p.create;
        let mut batch = 1;
        if !todo.is_empty() {
            self.expect.entry(juid.clone()).or_default().creates += todo.len() as i64;
        }
        while !todo.is_empty() {
            let n = batch.min(todo.len());
            let (now_, rest) = todo.split_at(n);
            todo = rest;
            let creates = now_.iter().map(|np| {
                let pods = pods.clone();
                let pod = plan::new_pod(job, np);
                async move { pods.create(&PostParams::default(), &pod).await }
            });
            let mut errors = 0;
            for r in futures::future::join_all(creates).await {
                match r {
                    Ok(pod) => self.event(job, EventType::Normal, "SuccessfulCreate", format!("Created pod: {}", pod.metadata.name.unwrap_or_default())),
                    Err(e) => {
                        errors += 1;
                        tracing::warn!(job = ?key, error = %e, "creating a Job's pod");
                        self.event(job, EventType::Warning, "FailedCreate", format!("Error creating: {e}"));
                    }
                }
            }
            if errors > 0 {
                // Neither the failed nor the skipped creations will be observed.
                self.expect.entry(juid.clone()).or_default().creates -= (errors + todo.len()) as i64;
                failed = true;
                break;
            }
            batch *= 2;
        }

        // Status, step 1: new uncounted UIDs and interim conditions, before any finalizer goes.
        let mut current = job.clone();
        if job.status.as_ref() != Some(&p.status) {
            current.status = Some(p.status.clone());
            match jobs.replace_status(job.metadata.name.as_deref().unwrap_or(""), &PostParams::default(), &current).await {
                Ok(j) => current = j,
                Err(e) => {
                    tracing::debug!(job = ?key, error = %e, "writing job status");
                    return Err(if is_conflict(&e) { Duration::ZERO } else { RETRY });
                }
            }
            self.jobs.insert(key.clone(), current.clone());
        }

        // Free counted Pods of the finalizer.
        let removals = p.remove_finalizers.iter().map(|pod| {
            let pods = pods.clone();
            async move { remove_finalizer(&pods, pod).await }
        });
        let results = futures::future::join_all(removals).await;
        for (pod, r) in p.remove_finalizers.iter().zip(results) {
            match r {
                Ok(()) => {
                    with_finalizer.remove(&pod.uid);
                    self.removed_finalizers.insert(pod.uid.clone());
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(job = ?key, pod = %pod.name, error = %e, "removing the job-tracking finalizer");
                }
            }
        }

        // Status, step 2: count what was freed; finish when nothing is left uncounted or terminating.
        let mut st = current.status.clone().unwrap_or_default();
        let finished = plan::count_freed(&mut st, &with_finalizer, p.finish.as_ref(), p.may_finish && !failed, k8s_openapi::jiff::Timestamp::now());
        if current.status.as_ref() != Some(&st) {
            let mut next = current.clone();
            next.status = Some(st);
            match jobs.replace_status(job.metadata.name.as_deref().unwrap_or(""), &PostParams::default(), &next).await {
                Ok(j) => current = j,
                Err(e) => {
                    tracing::debug!(job = ?key, error = %e, "writing job status");
                    return Err(if is_conflict(&e) { Duration::ZERO } else { RETRY });
                }
            }
            self.jobs.insert(key.clone(), current.clone());
        }
        for ev in &p.events {
            self.event(job, ev.ty, &ev.reason, ev.message.clone());
        }
        if finished {
            if let Some(f) = &p.finish {
                if f.type_ == "Complete" {
                    self.event(job, EventType::Normal, "Completed", "Job completed");
                } else {
                    self.event(job, EventType::Warning, f.reason.as_deref().unwrap_or("Failed"), f.message.clone().unwrap_or_default());
                }
            }
            // Its TTL, if any, starts now.
            self.queue.add(key.clone(), Duration::ZERO);
        }
        if let Some(d) = p.requeue_after {
            self.queue.add(key.clone(), d);
        }
        if failed {
            return Err(RETRY);
        }
        Ok(())
    }

    /// `ttlSecondsAfterFinished`: delete a finished Job (and, in the foreground, its Pods) once the TTL has
    /// passed since it finished (upstream's ttl-after-finished controller, which re-reads the Job first).
    async fn ttl(&mut self, key: &Key, job: &Job, now: k8s_openapi::jiff::Timestamp) {
        let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else { return };
        if job.metadata.deletion_timestamp.is_some() {
            return;
        }
        let Some(at) = plan::finished_at(job) else { return };
        let expires = at.as_millisecond() + i64::from(ttl) * 1000;
        let left = expires - now.as_millisecond();
        if left > 0 {
            self.queue.add(key.clone(), Duration::from_millis(left as u64));
            return;
        }
        let jobs: Api<Job> = Api::namespaced(self.client(), &key.0);
        let fresh = match jobs.get(&key.1).await {
            Ok(j) => j,
            Err(_) => return,
        };
        if fresh.metadata.uid != job.metadata.uid || fresh.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) != Some(ttl) {
            self.queue.add(key.clone(), Duration::ZERO);
            return;
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions { uid: job.metadata.uid.clone(), resource_version: None }),
            ..Default::default()
        };
        match jobs.delete(&key.1, &dp).await {
            Ok(_) => tracing::info!(job = ?key, "deleted: ttlSecondsAfterFinished passed"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                tracing::warn!(job = ?key, error = %e, "deleting an expired job");
                self.queue.add(key.clone(), RETRY);
            }
        }
    }

    /// A Pod carries the tracking finalizer but its Job is gone or finished: free it (upstream `syncOrphanPod`),
    /// after a live read confirms the Job is really gone or finished (the cache may lag).
    async fn free_orphan(&mut self, uid: &str) {
        let Some(p) = self.pods.get(uid).cloned() else { return };
        if !plan::has_tracking_finalizer(&p) || self.removed_finalizers.contains(uid) {
            return;
        }
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        if let Some(owner) = p.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true) && o.kind == "Job" && o.api_version == "batch/v1") {
            let jobs: Api<Job> = Api::namespaced(self.client(), &ns);
            match jobs.get_opt(&owner.name).await {
                Ok(Some(j)) if j.metadata.uid.as_deref() == Some(owner.uid.as_str()) && !plan::is_finished(&j) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "checking an orphan pod's job");
                    self.orphans.insert(uid.to_string());
                    return;
                }
            }
        }
        let pods: Api<Pod> = Api::namespaced(self.client(), &ns);
        let r = PodRef { name: p.metadata.name.clone().unwrap_or_default(), uid: uid.to_string() };
        match remove_finalizer(&pods, &r).await {
            Ok(()) => {
                self.removed_finalizers.insert(uid.to_string());
            }
            Err(e) => tracing::warn!(pod = %r.name, error = %e, "freeing an orphan pod of its job-tracking finalizer"),
        }
    }

    /// Publish an event about the Job in the background: a sync never waits for its events.
    fn event(&self, job: &Job, ty: EventType, reason: &str, message: impl Into<String>) {
        let Some(recorder) = self.recorder.clone() else { return };
        let reference = job.object_ref(&());
        let ev = KubeEvent {
            type_: if ty == EventType::Normal { KubeEventType::Normal } else { KubeEventType::Warning },
            reason: reason.into(),
            note: Some(message.into()),
            action: reason.into(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&ev, &reference).await {
                tracing::debug!(error = %e, "recording a job event");
            }
        });
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Remove the tracking finalizer with upstream's strategic merge patch (leaves other finalizers alone).
/// A Pod that is already gone counts as freed.
async fn remove_finalizer(pods: &Api<Pod>, pod: &PodRef) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}});
    match pods.patch(&pod.name, &PatchParams::default(), &Patch::Strategic(patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
