//! The scheduler's state and its pure decisions: the cache (what the Pods bound to each node take, with the
//! Pods this scheduler has assumed while their binding is in flight) and the scheduling queue (active in
//! priority then arrival order, unschedulable until something changes, back-off after API errors).
//! [`State::handle`] folds one [`Event`] in; [`State::next_actions`] decides the Pods at the head of the
//! queue and returns the API calls to make. Time is a parameter, so tests drive it.
//!
//! Retries follow upstream's scheduling queue: an unschedulable Pod waits until a bound Pod goes away or
//! finishes, or a Node appears or changes in a way that matters (labels, taints, allocatable, conditions,
//! cordon); a safety flush retries Pods unschedulable for 5 minutes (upstream
//! `podMaxInUnschedulablePodsDuration`). Each Pod has at most one API call in flight, so its binding can never
//! race its own status write.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::Resource;

use super::fit::{self, NodeFacts, NodeUsage, PodFacts, Usage};

/// `namespace/name`.
pub type PodKey = String;

pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Upstream's condition message for a Pod with scheduling gates (pkg/scheduler/framework/plugins/schedulinggates).
pub const GATED_MESSAGE: &str = "Scheduling is blocked due to non-empty scheduling gates";
const FLUSH_INTERVAL: Duration = Duration::from_secs(30);
const UNSCHEDULABLE_MAX: Duration = Duration::from_secs(5 * 60);
/// Upstream's `podInitialBackoffDuration` and `podMaxBackoffDuration`.
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Everything the scheduler loop reacts to.
#[derive(Debug)]
pub enum Event {
    /// A Pod was added or changed.
    Pod(Box<Pod>),
    /// A Pod was deleted.
    PodGone(Box<Pod>),
    /// The complete Pod list after a (re)list: Pods not in it are gone.
    PodsListed(Vec<Pod>),
    Node(Box<Node>),
    NodeGone(String),
    /// The complete Node list after a (re)list.
    NodesListed(Vec<Node>),
    /// An API call from [`Action`] finished.
    Done { key: PodKey, uid: String, outcome: Outcome },
    /// Time passed: back-offs may have expired, the periodic flush may be due.
    Tick,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The binding was created.
    Bound,
    /// The binding was refused for good (409: already bound or being deleted; 404: gone): the watch will show
    /// why.
    BindRejected,
    /// The binding failed otherwise: retry after a back-off.
    BindFailed,
    /// The PodScheduled condition was written.
    Written,
    /// Writing it failed: retry after a back-off.
    WriteFailed,
}

/// An API call to make.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// POST pods/{name}/binding, then a `Scheduled` event.
    Bind { key: PodKey, pod: ObjectReference, node: String },
    /// PodScheduled=False with `reason` and `message` through pods/status; a `FailedScheduling` Warning when
    /// `event`. `since` is the condition's lastTransitionTime to keep (it was False already).
    Unschedulable { key: PodKey, pod: ObjectReference, reason: &'static str, message: String, since: Option<String>, event: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// In the active queue.
    Active,
    /// No node fits; waits for a change.
    Unschedulable { since: Instant },
    /// An API call failed; waits until then.
    Backoff(Instant),
    /// The condition write is in flight; `dirty` when something changed meanwhile, so decide again after.
    Writing { dirty: bool },
    /// The binding is in flight.
    Binding,
    /// Bound; the watch will move it to the cache.
    Bound,
}

#[derive(Debug)]
struct Pending {
    uid: String,
    pod: Pod,
    facts: PodFacts,
    phase: Phase,
    /// Position in the active queue: arrival order, refreshed on each activation.
    seq: u64,
    /// What the PodScheduled=False condition says (as seen, or as last written), to write only changes.
    message: Option<String>,
    attempts: u32,
}

#[derive(Debug)]
struct Bound {
    uid: String,
    node: String,
    priority: i32,
    usage: Usage,
    /// Bound by this scheduler, binding not yet seen on the watch.
    assumed: bool,
}

/// The scheduler cache and queue.
#[derive(Debug)]
pub struct State {
    nodes: BTreeMap<String, NodeFacts>,
    usage: HashMap<String, NodeUsage>,
    bound: HashMap<PodKey, Bound>,
    pending: HashMap<PodKey, Pending>,
    active: BTreeSet<(Reverse<i32>, u64, PodKey)>,
    backoff: BTreeSet<(Instant, PodKey)>,
    seq: u64,
    pods_synced: bool,
    nodes_synced: bool,
    last_flush: Instant,
}

fn key_of(pod: &Pod) -> PodKey {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or(""))
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Pods this scheduler is responsible for: `schedulerName` unset (defaulted) or `default-scheduler`.
fn is_ours(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()).is_none_or(|s| s.is_empty() || s == SCHEDULER_NAME)
}

fn is_gated(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref()).is_some_and(|g| !g.is_empty())
}

/// The Pod's PodScheduled condition when it is False: (message, lastTransitionTime).
fn unscheduled_condition(pod: &Pod) -> Option<(String, Option<String>)> {
    let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    let since = c.last_transition_time.as_ref().and_then(|t| serde_json::to_value(t).ok()).and_then(|v| v.as_str().map(str::to_string));
    Some((c.message.clone().unwrap_or_default(), since))
}

fn backoff_for(attempts: u32) -> Duration {
    let d = BACKOFF_INITIAL.saturating_mul(1u32 << attempts.saturating_sub(1).min(8));
    d.min(BACKOFF_MAX)
}

impl State {
    pub fn new(now: Instant) -> State {
        State {
            nodes: BTreeMap::new(),
            usage: HashMap::new(),
            bound: HashMap::new(),
            pending: HashMap::new(),
            active: BTreeSet::new(),
            backoff: BTreeSet::new(),
            seq: 0,
            pods_synced: false,
            nodes_synced: false,
            last_flush: now,
        }
    }

    /// Fold one event into the state.
    pub fn handle(&mut self, ev: Event, now: Instant) {
        match ev {
            Event::Pod(p) => self.pod(*p, now),
            Event::PodGone(p) => self.pod_gone(&key_of(&p), &uid_of(&p), now),
            Event::PodsListed(list) => {
                let live: HashMap<PodKey, String> = list.iter().map(|p| (key_of(p), uid_of(p))).collect();
                let mut gone: Vec<(PodKey, String)> = Vec::new();
                gone.extend(self.bound.iter().filter(|(k, b)| !b.assumed && live.get(*k) != Some(&b.uid)).map(|(k, b)| (k.clone(), b.uid.clone())));
                gone.extend(self.pending.iter().filter(|(k, p)| live.get(*k) != Some(&p.uid)).map(|(k, p)| (k.clone(), p.uid.clone())));
                for (k, uid) in gone {
                    self.pod_gone(&k, &uid, now);
                }
                for p in list {
                    self.pod(p, now);
                }
                self.pods_synced = true;
            }
            Event::Node(n) => self.node(&n, now),
            Event::NodeGone(name) => {
                // Fewer nodes never make a Pod schedulable: nothing to retry.
                self.nodes.remove(&name);
            }
            Event::NodesListed(list) => {
                let live: HashSet<String> = list.iter().filter_map(|n| n.metadata.name.clone()).collect();
                self.nodes.retain(|name, _| live.contains(name));
                for n in &list {
                    self.node(n, now);
                }
                self.nodes_synced = true;
            }
            Event::Done { key, uid, outcome } => self.done(&key, &uid, outcome, now),
            Event::Tick => {}
        }
    }

    fn node(&mut self, n: &Node, now: Instant) {
        let facts = NodeFacts::of(n);
        if self.nodes.get(&facts.name) != Some(&facts) {
            self.nodes.insert(facts.name.clone(), facts);
            self.retry_all(now);
        }
    }

    fn pod(&mut self, pod: Pod, now: Instant) {
        let key = key_of(&pod);
        let uid = uid_of(&pod);
        if let Some(node) = node_name(&pod) {
            self.pending.remove(&key);
            if is_terminal(&pod) {
                // Upstream's scheduler never sees finished Pods (its informer filters them out): they free
                // their node's resources and ports.
                if self.release(&key, &uid) {
                    self.retry_all(now);
                }
                return;
            }
            match self.bound.get_mut(&key) {
                // Requests are immutable: a status update of a known Pod changes nothing here.
                Some(b) if b.uid == uid && b.node == node => b.assumed = false,
                _ => {
                    let node = node.to_string();
                    // Another Pod of that name, or ours assumed elsewhere than it ended up: start over.
                    self.release_any(&key);
                    let facts = PodFacts::of(&pod);
                    self.add_bound(key, uid, node, facts.priority, facts.usage, false);
                }
            }
            return;
        }
        // Not bound. The same name with another uid means the bound Pod we knew is gone.
        if self.bound.get(&key).is_some_and(|b| b.uid != uid) {
            self.release_any(&key);
            self.retry_all(now);
        }
        if pod.metadata.deletion_timestamp.is_some() || !is_ours(&pod) || is_terminal(&pod) {
            self.pending.remove(&key);
            return;
        }
        match self.pending.get_mut(&key) {
            Some(p) if p.uid == uid => {
                // Our own condition writes and other status updates do not make a Pod schedulable; a spec
                // change (tolerations added, gates removed, a resize) might.
                let changed = p.pod.spec != pod.spec;
                if changed {
                    p.facts = PodFacts::of(&pod);
                }
                p.pod = pod;
                let wake = changed && matches!(p.phase, Phase::Unschedulable { .. } | Phase::Backoff(_));
                if changed && matches!(p.phase, Phase::Writing { .. }) {
                    p.phase = Phase::Writing { dirty: true };
                }
                if wake {
                    self.activate(&key);
                }
            }
            _ => {
                let message = unscheduled_condition(&pod).map(|(m, _)| m);
                let facts = PodFacts::of(&pod);
                self.pending.insert(key.clone(), Pending { uid, pod, facts, phase: Phase::Unschedulable { since: now }, seq: 0, message, attempts: 0 });
                self.activate(&key);
            }
        }
    }

    fn pod_gone(&mut self, key: &str, uid: &str, now: Instant) {
        if self.pending.get(key).is_some_and(|p| p.uid == uid) {
            self.pending.remove(key);
        }
        if self.release(key, uid) {
            self.retry_all(now);
        }
    }

    fn done(&mut self, key: &str, uid: &str, outcome: Outcome, now: Instant) {
        let failed_bind = matches!(outcome, Outcome::BindRejected | Outcome::BindFailed);
        if failed_bind && self.bound.get(key).is_some_and(|b| b.assumed && b.uid == uid) {
            self.release(key, uid);
        }
        let Some(p) = self.pending.get_mut(key).filter(|p| p.uid == uid) else { return };
        match outcome {
            Outcome::Bound => p.phase = Phase::Bound,
            // The watch will show the Pod bound, deleted or gone; until then it waits like an unschedulable Pod.
            Outcome::BindRejected => p.phase = Phase::Unschedulable { since: now },
            Outcome::Written => match p.phase {
                Phase::Writing { dirty: true } => self.activate(key),
                _ => p.phase = Phase::Unschedulable { since: now },
            },
            Outcome::BindFailed | Outcome::WriteFailed => {
                if outcome == Outcome::WriteFailed {
                    // What is stored is unknown now: write again next time.
                    p.message = None;
                }
                p.attempts += 1;
                let at = now + backoff_for(p.attempts);
                p.phase = Phase::Backoff(at);
                self.backoff.insert((at, key.to_string()));
            }
        }
    }

    fn activate(&mut self, key: &str) {
        let Some(p) = self.pending.get_mut(key) else { return };
        if p.phase == Phase::Active {
            return;
        }
        self.seq += 1;
        p.seq = self.seq;
        p.phase = Phase::Active;
        self.active.insert((Reverse(p.facts.priority), p.seq, key.to_string()));
    }

    /// Something changed that may make unschedulable Pods fit.
    fn retry_all(&mut self, _now: Instant) {
        let mut wake = Vec::new();
        for (k, p) in self.pending.iter_mut() {
            match p.phase {
                Phase::Unschedulable { .. } => wake.push((p.seq, k.clone())),
                Phase::Writing { .. } => p.phase = Phase::Writing { dirty: true },
                _ => {}
            }
        }
        // In the order they were queued before, as upstream keeps each Pod's queue timestamp.
        wake.sort();
        for (_, k) in wake {
            self.activate(&k);
        }
    }

    fn add_bound(&mut self, key: PodKey, uid: String, node: String, priority: i32, usage: Usage, assumed: bool) {
        self.usage.entry(node.clone()).or_default().add(priority, &usage);
        self.bound.insert(key, Bound { uid, node, priority, usage, assumed });
    }

    /// Forget a bound Pod (with this uid); true when it was known.
    fn release(&mut self, key: &str, uid: &str) -> bool {
        if self.bound.get(key).is_some_and(|b| b.uid == uid) {
            self.release_any(key);
            return true;
        }
        false
    }

    fn release_any(&mut self, key: &str) {
        let Some(b) = self.bound.remove(key) else { return };
        if let Some(u) = self.usage.get_mut(&b.node) {
            u.remove(b.priority, &b.usage);
            if u.is_empty() {
                self.usage.remove(&b.node);
            }
        }
    }

    /// When `next_actions` has something to do without a new event (a back-off expiring, the flush).
    pub fn next_wakeup(&self) -> Instant {
        let flush = self.last_flush + FLUSH_INTERVAL;
        self.backoff.first().map_or(flush, |(at, _)| (*at).min(flush))
    }

    /// Decide the Pods at the head of the queue; returns the API calls to make.
    pub fn next_actions(&mut self, now: Instant) -> Vec<Action> {
        // Upstream waits for its informers' caches to sync before the first decision.
        if !(self.pods_synced && self.nodes_synced) {
            return Vec::new();
        }
        while let Some((at, key)) = self.backoff.first().cloned() {
            if at > now {
                break;
            }
            self.backoff.pop_first();
            if self.pending.get(&key).is_some_and(|p| p.phase == Phase::Backoff(at)) {
                self.activate(&key);
            }
        }
        if now >= self.last_flush + FLUSH_INTERVAL {
            self.last_flush = now;
            let stale: Vec<PodKey> = self
                .pending
                .iter()
                .filter(|(_, p)| matches!(p.phase, Phase::Unschedulable { since } if now.duration_since(since) >= UNSCHEDULABLE_MAX))
                .map(|(k, _)| k.clone())
                .collect();
            for k in stale {
                self.activate(&k);
            }
        }
        let mut actions = Vec::new();
        let empty = NodeUsage::default();
        while let Some((prio, seq, key)) = self.active.pop_first() {
            let Some(p) = self.pending.get_mut(&key) else { continue };
            if p.phase != Phase::Active || p.seq != seq || Reverse(p.facts.priority) != prio {
                continue;
            }
            let reference = p.pod.object_ref(&());
            if is_gated(&p.pod) {
                if p.message.as_deref() != Some(GATED_MESSAGE) {
                    p.message = Some(GATED_MESSAGE.to_string());
                    p.phase = Phase::Writing { dirty: false };
                    let since = unscheduled_condition(&p.pod).and_then(|(_, s)| s);
                    actions.push(Action::Unschedulable { key, pod: reference, reason: "SchedulingGated", message: GATED_MESSAGE.into(), since, event: false });
                } else {
                    p.phase = Phase::Unschedulable { since: now };
                }
                continue;
            }
            let nodes: Vec<(&NodeFacts, &NodeUsage)> = self.nodes.values().map(|n| (n, self.usage.get(&n.name).unwrap_or(&empty))).collect();
            match fit::schedule(&p.facts, &nodes) {
                Ok(node) => {
                    p.phase = Phase::Binding;
                    let (uid, priority, usage) = (p.uid.clone(), p.facts.priority, p.facts.usage.clone());
                    // Assume: the node's resources are taken now, so the next decision sees them, while the
                    // binding is in flight (upstream's assume cache).
                    self.add_bound(key.clone(), uid, node.clone(), priority, usage, true);
                    actions.push(Action::Bind { key, pod: reference, node });
                }
                Err(e) => {
                    let message = e.to_string();
                    if p.message.as_deref() != Some(message.as_str()) {
                        p.message = Some(message.clone());
                        p.phase = Phase::Writing { dirty: false };
                        let since = unscheduled_condition(&p.pod).and_then(|(_, s)| s);
                        actions.push(Action::Unschedulable { key, pod: reference, reason: "Unschedulable", message, since, event: true });
                    } else {
                        p.phase = Phase::Unschedulable { since: now };
                    }
                }
            }
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn pod(name: &str, uid: &str, spec: Value) -> Pod {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c"}]);
        }
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default", "uid": uid}, "spec": spec})).unwrap()
    }

    fn mem(name: &str, uid: &str, m: &str) -> Pod {
        pod(name, uid, json!({"containers": [{"name": "c", "resources": {"requests": {"memory": m}}}]}))
    }

    fn node(name: &str, memory: &str, extra: Value) -> Node {
        let mut n = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": "2", "memory": memory, "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]}});
        if let (Some(a), Value::Object(b)) = (n.as_object_mut(), extra) {
            for (k, v) in b {
                if k == "metadata" {
                    a["metadata"]["labels"].as_object_mut().unwrap().extend(v["labels"].as_object().cloned().unwrap_or_default());
                } else {
                    a.insert(k, v);
                }
            }
        }
        serde_json::from_value(n).unwrap()
    }

    fn bound(mut p: Pod, node: &str) -> Pod {
        p.spec.as_mut().unwrap().node_name = Some(node.into());
        p
    }

    fn with_phase(mut p: Pod, phase: &str) -> Pod {
        p.status = Some(serde_json::from_value(json!({"phase": phase})).unwrap());
        p
    }

    /// A synced state with these nodes and no Pods.
    fn synced(now: Instant, nodes: Vec<Node>) -> State {
        let mut s = State::new(now);
        s.handle(Event::NodesListed(nodes), now);
        s.handle(Event::PodsListed(vec![]), now);
        s
    }

    /// The actions as short strings: "bind default/a n1", "unschedulable default/a <message> event".
    fn short(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Bind { key, node, .. } => format!("bind {key} {node}"),
                Action::Unschedulable { key, reason, message, event, .. } => format!("{reason} {key} {message}{}", if *event { " +event" } else { "" }),
            })
            .collect()
    }

    const NO_MEMORY: &str = "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..";

    #[test]
    fn nothing_is_decided_before_both_lists() {
        let t = Instant::now();
        let mut s = State::new(t);
        s.handle(Event::PodsListed(vec![mem("a", "1", "1Gi")]), t);
        assert!(s.next_actions(t).is_empty());
        s.handle(Event::NodesListed(vec![node("n1", "4Gi", json!({}))]), t);
        assert_eq!(short(&s.next_actions(t)), ["bind default/a n1"]);
    }

    #[test]
    fn binds_assume_resources_and_the_second_pod_waits_for_the_first_to_go() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({}))]);
        s.handle(Event::Pod(Box::new(mem("a", "1", "3Gi"))), t);
        s.handle(Event::Pod(Box::new(mem("b", "2", "3Gi"))), t);
        // a is assumed on n1 before its binding is confirmed, so b does not fit.
        assert_eq!(short(&s.next_actions(t)), ["bind default/a n1".to_string(), format!("Unschedulable default/b {NO_MEMORY} +event")]);
        s.handle(Event::Done { key: "default/a".into(), uid: "1".into(), outcome: Outcome::Bound }, t);
        s.handle(Event::Done { key: "default/b".into(), uid: "2".into(), outcome: Outcome::Written }, t);
        s.handle(Event::Pod(Box::new(bound(mem("a", "1", "3Gi"), "n1"))), t);
        // Status updates of b (our own condition write) and of a change nothing.
        s.handle(Event::Pod(Box::new(with_phase(mem("b", "2", "3Gi"), "Pending"))), t);
        s.handle(Event::Pod(Box::new(with_phase(bound(mem("a", "1", "3Gi"), "n1"), "Running"))), t);
        assert!(s.next_actions(t).is_empty());
        // a is deleted: b fits now.
        s.handle(Event::PodGone(Box::new(bound(mem("a", "1", "3Gi"), "n1"))), t);
        assert_eq!(short(&s.next_actions(t)), ["bind default/b n1"]);
    }

    #[test]
    fn a_finished_pod_frees_its_node() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({}))]);
        s.handle(Event::Pod(Box::new(bound(mem("a", "1", "3Gi"), "n1"))), t);
        s.handle(Event::Pod(Box::new(mem("b", "2", "3Gi"))), t);
        assert_eq!(short(&s.next_actions(t)), [format!("Unschedulable default/b {NO_MEMORY} +event")]);
        s.handle(Event::Done { key: "default/b".into(), uid: "2".into(), outcome: Outcome::Written }, t);
        s.handle(Event::Pod(Box::new(with_phase(bound(mem("a", "1", "3Gi"), "n1"), "Running"))), t);
        assert!(s.next_actions(t).is_empty());
        s.handle(Event::Pod(Box::new(with_phase(bound(mem("a", "1", "3Gi"), "n1"), "Succeeded"))), t);
        assert_eq!(short(&s.next_actions(t)), ["bind default/b n1"]);
    }

    #[test]
    fn the_message_is_written_only_when_it_changes() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({}))]);
        s.handle(Event::Pod(Box::new(mem("big", "1", "8Gi"))), t);
        assert_eq!(short(&s.next_actions(t)), [format!("Unschedulable default/big {NO_MEMORY} +event")]);
        s.handle(Event::Done { key: "default/big".into(), uid: "1".into(), outcome: Outcome::Written }, t);
        // A heartbeat is no change; a new label is, but the answer is the same: nothing to write.
        s.handle(Event::Node(Box::new(node("n1", "4Gi", json!({})))), t);
        assert!(s.next_actions(t).is_empty());
        s.handle(Event::Node(Box::new(node("n1", "4Gi", json!({"metadata": {"labels": {"x": "y"}}})))), t);
        assert!(s.next_actions(t).is_empty());
        // A second node changes the message.
        s.handle(Event::Node(Box::new(node("n2", "4Gi", json!({"spec": {"unschedulable": true}})))), t);
        let want = "0/2 nodes are available: 1 Insufficient memory, 1 node(s) were unschedulable. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling..";
        assert_eq!(short(&s.next_actions(t)), [format!("Unschedulable default/big {want} +event")]);
        // A failed write is retried after a back-off, with the same message.
        s.handle(Event::Done { key: "default/big".into(), uid: "1".into(), outcome: Outcome::WriteFailed }, t);
        assert!(s.next_actions(t).is_empty());
        assert_eq!(s.next_wakeup(), t + BACKOFF_INITIAL);
        assert_eq!(short(&s.next_actions(t + BACKOFF_INITIAL)), [format!("Unschedulable default/big {want} +event")]);
    }

    #[test]
    fn a_restarted_scheduler_does_not_repeat_the_condition_it_finds() {
        let t = Instant::now();
        let mut s = State::new(t);
        let mut p = mem("big", "1", "8Gi");
        p.status = Some(serde_json::from_value(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": NO_MEMORY, "lastTransitionTime": "2026-01-01T00:00:00Z"}]})).unwrap());
        s.handle(Event::PodsListed(vec![p]), t);
        s.handle(Event::NodesListed(vec![node("n1", "4Gi", json!({}))]), t);
        assert!(s.next_actions(t).is_empty());
        // A new message keeps the condition's lastTransitionTime (it stays False).
        s.handle(Event::Node(Box::new(node("n2", "2Gi", json!({})))), t);
        match &s.next_actions(t)[..] {
            [Action::Unschedulable { since, .. }] => assert_eq!(since.as_deref(), Some("2026-01-01T00:00:00Z")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn label_and_taint_changes_retry() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}))]);
        s.handle(Event::Pod(Box::new(pod("sel", "1", json!({"nodeSelector": {"disk": "ssd"}})))), t);
        s.handle(Event::Pod(Box::new(pod("tol", "2", json!({"nodeSelector": {"kubernetes.io/hostname": "n1"}})))), t);
        let acts = short(&s.next_actions(t));
        assert_eq!(acts.len(), 2);
        assert!(acts[0].contains("1 node(s) had untolerated taint {k: v}"), "{acts:?}");
        for k in ["default/sel", "default/tol"] {
            s.handle(Event::Done { key: k.into(), uid: if k.ends_with("sel") { "1" } else { "2" }.into(), outcome: Outcome::Written }, t);
        }
        // Untainted: tol fits, sel now fails on the selector instead.
        s.handle(Event::Node(Box::new(node("n1", "4Gi", json!({})))), t);
        let acts = short(&s.next_actions(t));
        assert_eq!(acts[0], "Unschedulable default/sel 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.. +event");
        assert_eq!(acts[1], "bind default/tol n1");
        s.handle(Event::Done { key: "default/sel".into(), uid: "1".into(), outcome: Outcome::Written }, t);
        s.handle(Event::Node(Box::new(node("n1", "4Gi", json!({"metadata": {"labels": {"disk": "ssd"}}})))), t);
        assert_eq!(short(&s.next_actions(t)), ["bind default/sel n1"]);
    }

    #[test]
    fn a_change_during_a_write_is_decided_after_it() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({}))]);
        s.handle(Event::Pod(Box::new(bound(mem("a", "1", "3Gi"), "n1"))), t);
        s.handle(Event::Pod(Box::new(mem("b", "2", "3Gi"))), t);
        assert_eq!(s.next_actions(t).len(), 1);
        // a goes while b's condition is being written: no binding may overtake the write.
        s.handle(Event::PodGone(Box::new(bound(mem("a", "1", "3Gi"), "n1"))), t);
        assert!(s.next_actions(t).is_empty());
        s.handle(Event::Done { key: "default/b".into(), uid: "2".into(), outcome: Outcome::Written }, t);
        assert_eq!(short(&s.next_actions(t)), ["bind default/b n1"]);
    }

    #[test]
    fn failed_bindings_release_the_assumption_and_back_off() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({}))]);
        s.handle(Event::Pod(Box::new(mem("a", "1", "3Gi"))), t);
        assert_eq!(short(&s.next_actions(t)), ["bind default/a n1"]);
        s.handle(Event::Done { key: "default/a".into(), uid: "1".into(), outcome: Outcome::BindFailed }, t);
        assert!(s.usage.is_empty(), "the assumed Pod is forgotten");
        assert!(s.next_actions(t).is_empty());
        assert_eq!(short(&s.next_actions(t + BACKOFF_INITIAL)), ["bind default/a n1"]);
        s.handle(Event::Done { key: "default/a".into(), uid: "1".into(), outcome: Outcome::BindFailed }, t);
        assert_eq!(s.next_wakeup(), t + 2 * BACKOFF_INITIAL);
        assert_eq!(backoff_for(10), BACKOFF_MAX);
        // A 409 (someone else bound it): wait for the watch, which shows it bound.
        s.next_actions(t + 2 * BACKOFF_INITIAL);
        s.handle(Event::Done { key: "default/a".into(), uid: "1".into(), outcome: Outcome::BindRejected }, t);
        s.handle(Event::Pod(Box::new(bound(mem("a", "1", "3Gi"), "n2"))), t);
        assert!(s.pending.is_empty());
        assert_eq!(s.usage.get("n2").map(|u| u.total.pods), Some(1));
    }

    #[test]
    fn the_watch_may_confirm_a_binding_before_its_call_returns() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({}))]);
        s.handle(Event::Pod(Box::new(mem("a", "1", "1Gi"))), t);
        s.next_actions(t);
        s.handle(Event::Pod(Box::new(bound(mem("a", "1", "1Gi"), "n1"))), t);
        s.handle(Event::Done { key: "default/a".into(), uid: "1".into(), outcome: Outcome::Bound }, t);
        assert!(s.pending.is_empty());
        assert_eq!(s.usage["n1"].total.pods, 1);
        assert!(!s.bound["default/a"].assumed);
    }

    #[test]
    fn a_pod_bound_elsewhere_than_assumed_moves_its_usage() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({}))]);
        s.handle(Event::Pod(Box::new(mem("a", "1", "1Gi"))), t);
        assert_eq!(short(&s.next_actions(t)), ["bind default/a n1"]);
        s.handle(Event::Pod(Box::new(bound(mem("a", "1", "1Gi"), "n2"))), t);
        assert!(!s.usage.contains_key("n1"));
        assert_eq!(s.usage["n2"].total.requested.memory, 1 << 30);
    }

    #[test]
    fn other_schedulers_deleting_and_gated_pods() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({}))]);
        s.handle(Event::Pod(Box::new(pod("other", "1", json!({"schedulerName": "other"})))), t);
        let mut deleting = pod("deleting", "2", json!({}));
        deleting.metadata.deletion_timestamp = serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap();
        s.handle(Event::Pod(Box::new(deleting)), t);
        s.handle(Event::Pod(Box::new(pod("explicit", "3", json!({"schedulerName": "default-scheduler"})))), t);
        s.handle(Event::Pod(Box::new(pod("gated", "4", json!({"schedulingGates": [{"name": "example.com/wait"}]})))), t);
        assert_eq!(short(&s.next_actions(t)), ["bind default/explicit n1".to_string(), format!("SchedulingGated default/gated {GATED_MESSAGE}")]);
        s.handle(Event::Done { key: "default/gated".into(), uid: "4".into(), outcome: Outcome::Written }, t);
        // Removing the gate schedules it.
        s.handle(Event::Pod(Box::new(pod("gated", "4", json!({})))), t);
        assert_eq!(short(&s.next_actions(t)), ["bind default/gated n1"]);
    }

    #[test]
    fn priority_then_arrival_order() {
        let t = Instant::now();
        let mut s = State::new(t);
        s.handle(Event::PodsListed(vec![pod("low", "1", json!({})), pod("high", "2", json!({"priority": 100})), pod("low2", "3", json!({}))]), t);
        s.handle(Event::NodesListed(vec![node("n1", "4Gi", json!({}))]), t);
        assert_eq!(short(&s.next_actions(t)), ["bind default/high n1", "bind default/low n1", "bind default/low2 n1"]);
    }

    #[test]
    fn a_relist_forgets_what_is_gone() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({})), node("n2", "4Gi", json!({}))]);
        s.handle(Event::Pod(Box::new(bound(mem("a", "1", "3Gi"), "n1"))), t);
        s.handle(Event::Pod(Box::new(mem("b", "2", "8Gi"))), t);
        assert_eq!(s.next_actions(t).len(), 1);
        s.handle(Event::Done { key: "default/b".into(), uid: "2".into(), outcome: Outcome::Written }, t);
        s.handle(Event::NodesListed(vec![node("n1", "4Gi", json!({}))]), t);
        assert_eq!(s.nodes.len(), 1);
        // The watch broke; meanwhile a was deleted and recreated with another uid, unbound.
        s.handle(Event::PodsListed(vec![mem("a", "9", "3Gi"), mem("b", "2", "8Gi")]), t);
        assert!(!s.bound.contains_key("default/a"));
        assert!(s.usage.is_empty());
        let acts = short(&s.next_actions(t));
        assert!(acts.contains(&"bind default/a n1".to_string()), "{acts:?}");
    }

    #[test]
    fn unschedulable_pods_are_flushed_after_five_minutes() {
        let t = Instant::now();
        let mut s = synced(t, vec![node("n1", "4Gi", json!({}))]);
        s.handle(Event::Pod(Box::new(mem("big", "1", "8Gi"))), t);
        s.next_actions(t);
        s.handle(Event::Done { key: "default/big".into(), uid: "1".into(), outcome: Outcome::Written }, t);
        assert_eq!(s.next_wakeup(), t + FLUSH_INTERVAL);
        // Decided again (same message, nothing written), still unschedulable.
        let later = t + UNSCHEDULABLE_MAX;
        assert!(s.next_actions(later).is_empty());
        assert!(matches!(s.pending["default/big"].phase, Phase::Unschedulable { since } if since == later));
    }
}
