//! The scheduler (kube-scheduler's default profile, for the nodes this API knows): watches all Pods and
//! Nodes, keeps what bound Pods take per node in memory, and binds each unbound Pod of `default-scheduler`
//! to a node that passes upstream's filters, through `pods/{name}/binding`; or marks it
//! `PodScheduled=False/Unschedulable` with upstream's message and a `FailedScheduling` event, and retries
//! when something changes.
//!
//! One loop, one event enum ([`state::Event`]): watch events, finished API calls and timer ticks are folded
//! into [`state::State`] (pure), whose decisions come back as [`state::Action`]s; this module only makes the
//! API calls, each in its own task so a slow write never holds up the next decision.

pub mod fit;
pub mod state;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use state::{Action, Event, Outcome, State, SCHEDULER_NAME};

/// Run the scheduler forever.
pub async fn run(client: kube::Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    // `default_backoff` spaces out re-watches after errors (the watcher itself relists when needed).
    let mut pod_events = watcher(pods, watcher::Config::default()).default_backoff().boxed();
    let mut node_events = watcher(nodes, watcher::Config::default()).default_backoff().boxed();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Event>();
    let mut state = State::new(Instant::now().into_std());
    let mut pod_list: Vec<Pod> = Vec::new();
    let mut node_list: Vec<Node> = Vec::new();
    loop {
        let wake = Instant::from_std(state.next_wakeup());
        let ev = tokio::select! {
            Some(r) = pod_events.next() => match r {
                Ok(watcher::Event::Apply(p)) => Some(Event::Pod(Box::new(p))),
                Ok(watcher::Event::Delete(p)) => Some(Event::PodGone(Box::new(p))),
                Ok(watcher::Event::Init) => { pod_list.clear(); None }
                Ok(watcher::Event::InitApply(p)) => { pod_list.push(p); None }
                Ok(watcher::Event::InitDone) => Some(Event::PodsListed(std::mem::take(&mut pod_list))),
                Err(e) => { tracing::warn!(error = %e, "scheduler: watching pods failed; retrying"); None }
            },
            Some(r) = node_events.next() => match r {
                Ok(watcher::Event::Apply(n)) => Some(Event::Node(Box::new(n))),
                Ok(watcher::Event::Delete(n)) => Some(Event::NodeGone(n.metadata.name.unwrap_or_default())),
                Ok(watcher::Event::Init) => { node_list.clear(); None }
                Ok(watcher::Event::InitApply(n)) => { node_list.push(n); None }
                Ok(watcher::Event::InitDone) => Some(Event::NodesListed(std::mem::take(&mut node_list))),
                Err(e) => { tracing::warn!(error = %e, "scheduler: watching nodes failed; retrying"); None }
            },
            Some(done) = done_rx.recv() => Some(done),
            _ = tokio::time::sleep_until(wake) => Some(Event::Tick),
        };
        let now = Instant::now().into_std();
        if let Some(ev) = ev {
            state.handle(ev, now);
        }
        for action in state.next_actions(now) {
            tokio::spawn(apply(client.clone(), action, done_tx.clone()));
        }
    }
}

/// Make one decision's API calls; report how it went back to the loop, then publish the event.
async fn apply(client: kube::Client, action: Action, done: mpsc::UnboundedSender<Event>) {
    match action {
        Action::Bind { key, pod, node } => {
            let (ns, name, uid) = names(&pod);
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            // The uid makes the binding a precondition on this very Pod (upstream DefaultBinder).
            let body = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns, "uid": uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let outcome = match api.create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &body).await {
                Ok(_) => Outcome::Bound,
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Outcome::BindRejected,
                Err(e) => {
                    tracing::warn!(pod = %key, node = %node, error = %e, "scheduler: binding failed; will retry");
                    Outcome::BindFailed
                }
            };
            let _ = done.send(Event::Done { key, uid, outcome });
            if outcome == Outcome::Bound {
                publish(client, &pod, EventType::Normal, "Scheduled", "Binding", format!("Successfully assigned {ns}/{name} to {node}")).await;
            }
        }
        Action::Unschedulable { key, pod, reason, message, since, event } => {
            let (ns, name, uid) = names(&pod);
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let cond = json!({
                "type": "PodScheduled", "status": "False", "reason": reason, "message": message,
                "lastProbeTime": null, "lastTransitionTime": since.unwrap_or_else(k1s_api::meta::now),
            });
            // A strategic merge patch of the one condition (merge key `type`), as upstream's PatchPodStatus.
            let patch = json!({"status": {"conditions": [cond]}});
            let outcome = match api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch)).await {
                Ok(_) => Outcome::Written,
                // Gone: the watch says so too; nothing to retry.
                Err(kube::Error::Api(e)) if e.code == 404 => Outcome::Written,
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "scheduler: writing PodScheduled failed; will retry");
                    Outcome::WriteFailed
                }
            };
            let _ = done.send(Event::Done { key, uid, outcome });
            if outcome == Outcome::Written && event {
                publish(client, &pod, EventType::Warning, "FailedScheduling", "Scheduling", message).await;
            }
        }
    }
}

fn names(pod: &ObjectReference) -> (String, String, String) {
    (pod.namespace.clone().unwrap_or_else(|| "default".into()), pod.name.clone().unwrap_or_default(), pod.uid.clone().unwrap_or_default())
}

/// One event about a Pod. A recorder per event: kube's recorder aggregates by reason and would keep the first
/// note for a later, different message; the loop already publishes only changes.
async fn publish(client: kube::Client, pod: &ObjectReference, type_: EventType, reason: &str, action: &str, note: String) {
    let recorder = Recorder::new(client, Reporter { controller: SCHEDULER_NAME.into(), instance: None });
    let ev = KubeEvent { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    if let Err(e) = recorder.publish(&ev, pod).await {
        tracing::debug!(pod = ?pod.name, reason, error = %e, "scheduler: publishing an event failed");
    }
}
