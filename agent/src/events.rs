//! Events the agent records about Pods (Pulled, Created, Started, Killing, Failed, BackOff), aggregated like
//! client-go's `EventCorrelator` (tools/record/events_cache.go) and written by one background task, so a Pod's
//! start never waits for them (recording is a `try_send` on a bounded queue, as client-go's broadcaster drops
//! events when its queue of 1000 is full).
//!
//! - Duplicates (same source, involved object incl. fieldPath and uid, type, reason and message) seen again within
//!   [`DEDUP_WINDOW`] of the last one are not created again: the existing Event's `count` and `lastTimestamp` are
//!   PATCHed. If that Event is gone (expired), it is created again with the count so far.
//! - Similar events (the same but for the message): from the 10th distinct message within 10 minutes on, they are
//!   folded into one Event whose message says "(combined from similar events): ..." and which is counted up.
//!
//! The writer handles one Event at a time, in order: a repeat can never overtake the create of its first Event.
//! The caches are LRUs of 4096 entries, as upstream's.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::pods::Shared;

/// A repeat counts onto the existing Event if that one was last seen this recently: the API server's default
/// event TTL, after which the Event has expired anyway.
pub const DEDUP_WINDOW_SECS: i64 = 3600;
/// client-go's `defaultAggregateMaxEvents` and `defaultAggregateIntervalInSeconds`.
const AGGREGATE_MAX_EVENTS: usize = 10;
const AGGREGATE_INTERVAL_SECS: i64 = 600;
/// client-go's `maxLruCacheEntries`.
const CACHE_ENTRIES: usize = 4096;
/// client-go's `maxQueuedEvents`.
const QUEUE: usize = 1000;

/// Record an event about `pod` (and one of its containers) through the agent's recorder.
pub fn record(shared: &Shared, pod: &Pod, container: Option<&str>, ty: &str, reason: &str, message: &str) {
    shared.events.record(pod, container, ty, reason, message);
}

/// The agent's event recorder: a handle on the queue of the writer task.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Value>,
    node_name: String,
}

impl Recorder {
    /// Start the writer task.
    pub fn start(client: kube::Client, node_name: String) -> Recorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(client, rx));
        Recorder { tx, node_name }
    }

    pub fn record(&self, pod: &Pod, container: Option<&str>, ty: &str, reason: &str, message: &str) {
        let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = k1s_api::meta::now();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let mut involved = json!({"kind": "Pod", "namespace": ns, "name": name, "uid": pod.metadata.uid, "apiVersion": "v1", "resourceVersion": pod.metadata.resource_version});
        if let Some(c) = container {
            let init = pod.spec.as_ref().and_then(|s| s.init_containers.as_ref()).is_some_and(|ics| ics.iter().any(|i| i.name == c));
            involved["fieldPath"] = json!(format!("spec.{}{{{c}}}", if init { "initContainers" } else { "containers" }));
        }
        let ev = json!({
            "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": ns},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": ty,
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": self.node_name,
        });
        if self.tx.try_send(ev).is_err() {
            tracing::debug!(pod = %name, reason, "event queue full or closed; event dropped");
        }
    }
}

impl Recorder {
    /// An event about the Node itself (e.g. a static Pod file that cannot be used), in the `default`
    /// namespace as the kubelet records node events.
    pub fn record_node(&self, ty: &str, reason: &str, message: &str) {
        let now = k1s_api::meta::now();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let ev = json!({
            "metadata": {"name": format!("{}.{nanos:x}", self.node_name), "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": self.node_name, "uid": self.node_name, "apiVersion": "v1"},
            "reason": reason, "message": message, "type": ty,
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": self.node_name,
        });
        if self.tx.try_send(ev).is_err() {
            tracing::debug!(reason, "event queue full or closed; event dropped");
        }
    }
}

async fn writer(client: kube::Client, mut rx: mpsc::Receiver<Value>) {
    let mut correlator = Correlator::default();
    while let Some(ev) = rx.recv().await {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let ns = s(&ev, "/metadata/namespace").to_string();
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        if let Err(e) = write(&api, correlator.observe(ev, now)).await {
            tracing::debug!(error = %e, "recording an event");
        }
    }
}

async fn write(api: &Api<Event>, w: Write) -> Result<(), kube::Error> {
    let create = |ev: Value| async move {
        let mut ev = serde_json::from_value::<Event>(ev).map_err(kube::Error::SerdeError)?;
        ev.metadata.resource_version = None;
        api.create(&PostParams::default(), &ev).await.map(|_| ())
    };
    match w {
        Write::Create(ev) => create(ev).await,
        Write::Patch { name, patch, event } => match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            // The Event expired (or was deleted) since: start it again, with the count so far.
            Err(kube::Error::Api(e)) if e.code == 404 => create(event).await,
            Err(e) => Err(e),
        },
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// What to write for one recorded event.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Create(Value),
    /// Count a repeat on the existing Event `name`; `event` is the whole Event (with that count), created if the
    /// existing one is gone.
    Patch { name: String, patch: Value, event: Value },
}

/// client-go's `getEventKey`: what makes two events the same one.
fn event_key(ev: &Value) -> String {
    [
        "/source/component",
        "/source/host",
        "/involvedObject/kind",
        "/involvedObject/namespace",
        "/involvedObject/name",
        "/involvedObject/fieldPath",
        "/involvedObject/uid",
        "/involvedObject/apiVersion",
        "/type",
        "/reason",
        "/message",
    ]
    .iter()
    .map(|p| s(ev, p))
    .collect::<Vec<_>>()
    .join("\u{0}")
}

/// client-go's `EventAggregatorByReasonFunc`: the same but for the message (and fieldPath).
fn aggregate_key(ev: &Value) -> String {
    [
        "/source/component",
        "/source/host",
        "/involvedObject/kind",
        "/involvedObject/namespace",
        "/involvedObject/name",
        "/involvedObject/uid",
        "/involvedObject/apiVersion",
        "/type",
        "/reason",
        "/reportingComponent",
        "/reportingInstance",
    ]
    .iter()
    .map(|p| s(ev, p))
    .collect::<Vec<_>>()
    .join("\u{0}")
}

/// A map that forgets its least recently used entry beyond `cap`.
#[derive(Debug)]
struct Lru<V> {
    map: HashMap<String, (V, u64)>,
    order: BTreeMap<u64, String>,
    tick: u64,
    cap: usize,
}

impl<V> Lru<V> {
    fn new(cap: usize) -> Self {
        Lru { map: HashMap::new(), order: BTreeMap::new(), tick: 0, cap }
    }

    /// The entry for `key` (marked as used), inserted with `init` when absent.
    fn entry(&mut self, key: &str, init: impl FnOnce() -> V) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, t)) = self.map.get_mut(key) {
            self.order.remove(t);
            *t = tick;
        } else {
            self.map.insert(key.to_string(), (init(), tick));
            while self.map.len() > self.cap {
                let Some((_, oldest)) = self.order.pop_first() else { break };
                self.map.remove(&oldest);
            }
        }
        self.order.insert(tick, key.to_string());
        &mut self.map.get_mut(key).expect("just inserted").0
    }
}

#[derive(Debug, Default)]
struct Observed {
    name: String,
    count: i64,
    first_timestamp: String,
    /// Unix seconds of the last observation (0: never).
    last_seen: i64,
}

#[derive(Debug, Default)]
struct Similar {
    messages: HashSet<String>,
    last_seen: i64,
}

/// The pure part: decides, from what was recorded before, whether an event is new or a repeat.
#[derive(Debug)]
pub struct Correlator {
    observed: Lru<Observed>,
    similar: Lru<Similar>,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator { observed: Lru::new(CACHE_ENTRIES), similar: Lru::new(CACHE_ENTRIES) }
    }
}

impl Correlator {
    /// `ev` is a fresh core/v1 Event (its own name, count 1, first = last = now); `now` is Unix seconds.
    pub fn observe(&mut self, mut ev: Value, now: i64) -> Write {
        // Similar events first (client-go's EventAggregator): past the threshold, one combined Event stands for
        // them, keyed without the message so that it is counted up from then on.
        let agg_key = aggregate_key(&ev);
        let similar = self.similar.entry(&agg_key, Similar::default);
        if now - similar.last_seen > AGGREGATE_INTERVAL_SECS {
            *similar = Similar::default();
        }
        similar.messages.insert(s(&ev, "/message").to_string());
        similar.last_seen = now;
        let key = if similar.messages.len() >= AGGREGATE_MAX_EVENTS {
            // Do not let the set grow past the threshold.
            if let Some(any) = similar.messages.iter().next().cloned() {
                similar.messages.remove(&any);
            }
            ev["message"] = json!(format!("(combined from similar events): {}", s(&ev, "/message")));
            agg_key
        } else {
            event_key(&ev)
        };
        // Then duplicates (client-go's EventLogger).
        let seen = self.observed.entry(&key, Observed::default);
        if seen.count > 0 && now - seen.last_seen <= DEDUP_WINDOW_SECS {
            seen.count += 1;
            seen.last_seen = now;
            ev["metadata"]["name"] = json!(seen.name);
            ev["firstTimestamp"] = json!(seen.first_timestamp);
            ev["count"] = json!(seen.count);
            let patch = json!({"count": seen.count, "lastTimestamp": ev["lastTimestamp"], "message": ev["message"]});
            return Write::Patch { name: seen.name.clone(), patch, event: ev };
        }
        *seen = Observed { name: s(&ev, "/metadata/name").to_string(), count: 1, first_timestamp: s(&ev, "/firstTimestamp").to_string(), last_seen: now };
        Write::Create(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, reason: &str, message: &str, field_path: &str, at: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u1", "apiVersion": "v1", "fieldPath": field_path},
            "reason": reason, "message": message, "type": "Warning",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": at, "lastTimestamp": at, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": "n1",
        })
    }

    #[test]
    fn duplicates_count_up_on_the_first_event() {
        let mut c = Correlator::default();
        let first = c.observe(ev("p.1", "BackOff", "Back-off restarting failed container", "spec.containers{a}", "2026-01-01T00:00:00Z"), 0);
        assert_eq!(first, Write::Create(ev("p.1", "BackOff", "Back-off restarting failed container", "spec.containers{a}", "2026-01-01T00:00:00Z")));
        let Write::Patch { name, patch, event } = c.observe(ev("p.2", "BackOff", "Back-off restarting failed container", "spec.containers{a}", "2026-01-01T00:00:10Z"), 10) else {
            panic!("a repeat is a patch")
        };
        assert_eq!(name, "p.1");
        assert_eq!(patch, json!({"count": 2, "lastTimestamp": "2026-01-01T00:00:10Z", "message": "Back-off restarting failed container"}));
        assert_eq!((event["metadata"]["name"].as_str(), event["count"].as_i64()), (Some("p.1"), Some(2)));
        assert_eq!(event["firstTimestamp"], "2026-01-01T00:00:00Z", "the fallback create keeps the first time");
        let Write::Patch { patch, .. } = c.observe(ev("p.3", "BackOff", "Back-off restarting failed container", "spec.containers{a}", "2026-01-01T00:00:30Z"), 30) else { panic!() };
        assert_eq!(patch["count"], 3);
    }

    #[test]
    fn what_is_not_a_duplicate() {
        let mut c = Correlator::default();
        assert!(matches!(c.observe(ev("p.1", "Started", "Started container a", "spec.containers{a}", "t"), 0), Write::Create(_)));
        // Another container (fieldPath), another reason, another message: new Events.
        assert!(matches!(c.observe(ev("p.2", "Started", "Started container a", "spec.containers{b}", "t"), 1), Write::Create(_)));
        assert!(matches!(c.observe(ev("p.3", "Created", "Started container a", "spec.containers{a}", "t"), 2), Write::Create(_)));
        assert!(matches!(c.observe(ev("p.4", "Started", "Started container c", "spec.containers{a}", "t"), 3), Write::Create(_)));
        // Another Pod with the same name (uid).
        let mut other = ev("p.5", "Started", "Started container a", "spec.containers{a}", "t");
        other["involvedObject"]["uid"] = json!("u2");
        assert!(matches!(c.observe(other, 4), Write::Create(_)));
        // The same one after the window: a new Event.
        assert!(matches!(c.observe(ev("p.6", "Started", "Started container a", "spec.containers{a}", "t"), 5 + DEDUP_WINDOW_SECS + 1), Write::Create(_)));
    }

    #[test]
    fn similar_events_are_combined_from_the_tenth_message() {
        let mut c = Correlator::default();
        for i in 0..9 {
            let w = c.observe(ev(&format!("p.{i}"), "Failed", &format!("Error: {i}"), "spec.containers{a}", "t"), i);
            assert!(matches!(w, Write::Create(_)), "message {i} is its own event");
        }
        let Write::Create(combined) = c.observe(ev("p.9", "Failed", "Error: 9", "spec.containers{a}", "t"), 9) else { panic!("the combined event is new") };
        assert_eq!(combined["message"], "(combined from similar events): Error: 9");
        let Write::Patch { name, patch, .. } = c.observe(ev("p.10", "Failed", "Error: 10", "spec.containers{b}", "t"), 10) else { panic!("then counted up") };
        assert_eq!(name, "p.9");
        assert_eq!(patch["message"], "(combined from similar events): Error: 10");
        assert_eq!(patch["count"], 2);
        // Ten minutes of quiet start afresh.
        assert!(matches!(c.observe(ev("p.11", "Failed", "Error: 11", "spec.containers{a}", "t"), 10 + AGGREGATE_INTERVAL_SECS + 1), Write::Create(w) if w["message"] == "Error: 11"));
    }

    #[test]
    fn caches_are_bounded() {
        let mut l: Lru<u32> = Lru::new(3);
        for k in ["a", "b", "c"] {
            l.entry(k, || 1);
        }
        *l.entry("a", || 0) += 1; // a is now the most recently used
        l.entry("d", || 1); // evicts b
        assert_eq!(l.map.len(), 3);
        assert_eq!(*l.entry("a", || 0), 2);
        assert_eq!(*l.entry("b", || 7), 7, "b was evicted");
    }
}
