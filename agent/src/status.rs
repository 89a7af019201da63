//! Pod status from what the runtime observed: phase, conditions, container statuses, IPs, QoS class. Pure;
//! the pod worker is the one writer and writes only when the result changes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use crate::plan::{self, Desired};
use crate::runtime::{Exit, State};

/// One container as the worker knows it.
#[derive(Debug, Clone, Default)]
pub struct ContainerView {
    pub restart_count: u32,
    pub id: String,
    pub image: String,
    pub image_id: String,
    pub running: Option<State>,
    pub exited: Option<Exit>,
    pub started_at: Option<String>,
    /// The previous attempt's termination (`lastState`).
    pub last: Option<(Exit, String, Option<String>)>,
    /// Why it is not running yet (reason, message).
    pub waiting: Option<(String, String)>,
    /// The readiness probe's result for the running attempt; `None` when it has no readiness probe.
    pub probe_ready: Option<bool>,
    /// Whether the startup probe has succeeded; `None` when it has no startup probe.
    pub probe_started: Option<bool>,
    /// The restart count at which the back-off was last reset (after a long clean run).
    pub backoff_base: u32,
}

impl ContainerView {
    /// `started`: running, and its startup probe (if any) has succeeded.
    pub fn is_started(&self) -> bool {
        self.running.is_some() && self.waiting.is_none() && self.probe_started.unwrap_or(true)
    }

    /// `ready`: started, and its readiness probe (if any) passes; without one, ready once started (upstream).
    pub fn is_ready(&self) -> bool {
        self.is_started() && self.probe_ready.unwrap_or(true)
    }
}

pub struct PodView<'a> {
    pub pod: &'a Pod,
    pub desired: &'a Desired,
    pub observed: &'a plan::Observed,
    pub containers: &'a BTreeMap<String, Box<ContainerView>>,
    pub sandbox_ready: bool,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub now: String,
}

fn terminated(e: &Exit, id: &str, started: Option<&str>) -> Value {
    let mut t = json!({
        "exitCode": e.exit_code, "reason": e.reason(), "finishedAt": e.finished_at, "containerID": format!("k1s://{id}"),
        "startedAt": started.unwrap_or(&e.finished_at),
    });
    if let Some(s) = e.signal {
        t["signal"] = json!(s);
    }
    if let Some(m) = e.start_error.as_ref().or(e.message.as_ref()).filter(|m| !m.is_empty()) {
        t["message"] = json!(m);
    }
    json!({ "terminated": t })
}

fn container_status(c: &Container, v: Option<&ContainerView>, init: bool) -> Value {
    let sidecar = init && is_sidecar(c);
    let image = c.image.clone().unwrap_or_default();
    let Some(v) = v else {
        let reason = if init { "PodInitializing" } else { "ContainerCreating" };
        return json!({
            "name": c.name, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
            "state": {"waiting": {"reason": reason}}, "lastState": {},
        });
    };
    let state = if let Some((reason, msg)) = &v.waiting {
        let mut w = json!({"reason": reason});
        if !msg.is_empty() {
            w["message"] = json!(msg);
        }
        json!({"waiting": w})
    } else if let Some(r) = &v.running {
        json!({"running": {"startedAt": r.started_at}})
    } else if let Some(e) = &v.exited {
        terminated(e, &v.id, v.started_at.as_deref())
    } else {
        json!({"waiting": {"reason": if init { "PodInitializing" } else { "ContainerCreating" }}})
    };
    let last = v.last.as_ref().map(|(e, id, started)| terminated(e, id, started.as_deref())).unwrap_or_else(|| json!({}));
    let mut s = json!({
        "name": c.name, "image": image, "imageID": v.image_id, "ready": v.is_ready() && !init, "restartCount": v.restart_count,
        "started": v.is_started(), "state": state, "lastState": last,
    });
    if !v.id.is_empty() {
        s["containerID"] = json!(format!("k1s://{}", v.id));
    }
    if sidecar {
        s["ready"] = json!(v.is_ready());
    } else if init {
        // An init container that finished successfully counts as ready, as upstream reports it.
        s["ready"] = json!(v.exited.as_ref().is_some_and(|e| e.exit_code == 0));
    }
    s
}

/// An ephemeral container as the container it describes (upstream converts the same way: the common fields
/// are a Container's, and `targetContainerName` is the only addition).
pub fn ephemeral_as_container(e: &k8s_openapi::api::core::v1::EphemeralContainer) -> Container {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("targetContainerName");
    }
    serde_json::from_value(v).unwrap_or_default()
}

/// An init container with `restartPolicy: Always`.
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn condition(old: &Value, ty: &str, status: bool, reason: Option<&str>, now: &str) -> Value {
    let st = if status { "True" } else { "False" };
    let prev = old.get("conditions").and_then(Value::as_array).and_then(|cs| cs.iter().find(|c| c["type"] == ty));
    let since = prev.filter(|c| c["status"] == st).and_then(|c| c["lastTransitionTime"].as_str()).unwrap_or(now);
    let mut c = json!({"type": ty, "status": st, "lastProbeTime": null, "lastTransitionTime": since});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

pub fn pod_status(v: &PodView<'_>) -> Value {
    let old = v.pod.status.as_ref().map(|s| serde_json::to_value(s).unwrap_or_default()).unwrap_or_else(|| json!({}));
    let spec = v.pod.spec.clone().unwrap_or_default();
    // A Pod being deleted whose containers have all stopped is terminal too, as the kubelet reports it.
    let terminal = plan::is_terminal(v.desired, v.observed) || v.desired.deleting && v.containers.values().all(|c| c.running.is_none());
    let sidecar = |n: &String| v.desired.sidecars.contains(n);
    // Initialized: regular init containers succeeded and sidecars started; it stays so once the main containers
    // exist (a restarting sidecar does not un-initialize the Pod).
    let main_exists = spec.containers.iter().any(|c| v.containers.get(&c.name).is_some_and(|x| x.running.is_some() || x.exited.is_some()));
    let inits_done = main_exists
        || v.desired.init_containers.iter().all(|n| {
            let c = v.containers.get(n);
            if sidecar(n) { c.is_some_and(|c| c.is_started()) } else { c.and_then(|c| c.exited.as_ref()).is_some_and(|e| e.exit_code == 0) }
        });
    // Sidecars' readiness counts for the Pod's, as upstream (1.29+).
    let all_ready = spec.containers.iter().all(|c| v.containers.get(&c.name).is_some_and(|c| c.is_ready()))
        && v.desired.sidecars.iter().all(|n| v.containers.get(n).is_some_and(|c| c.is_ready()));
    let deadline = plan::deadline_exceeded(v.desired, v.observed);
    let any_started = spec.containers.iter().any(|c| v.containers.get(&c.name).is_some_and(|x| x.running.is_some() || x.exited.is_some()));
    let failed_init = v.desired.init_containers.iter().filter(|n| !sidecar(n)).any(|n| v.containers.get(n).and_then(|c| c.exited.as_ref()).is_some_and(|e| e.exit_code != 0));
    let phase = if terminal {
        let all_ok = !failed_init && spec.containers.iter().all(|c| v.containers.get(&c.name).and_then(|x| x.exited.as_ref()).is_some_and(|e| e.exit_code == 0));
        if all_ok && !deadline { "Succeeded" } else { "Failed" }
    } else if inits_done && any_started && v.sandbox_ready {
        "Running"
    } else {
        "Pending"
    };
    let now = v.now.as_str();
    let ready_reason = if terminal { Some("PodCompleted") } else if !all_ready { Some("ContainersNotReady") } else { None };
    let init_reason = if inits_done { None } else { Some("ContainersNotInitialized") };
    let conditions = json!([
        condition(&old, "PodReadyToStartContainers", v.sandbox_ready && !terminal, None, now),
        condition(&old, "Initialized", inits_done || terminal && !failed_init, if terminal && !failed_init { None } else { init_reason }, now),
        condition(&old, "Ready", all_ready && !terminal, ready_reason, now),
        condition(&old, "ContainersReady", all_ready && !terminal, ready_reason, now),
        condition(&old, "PodScheduled", true, None, now),
    ]);
    let containers: Vec<Value> = spec.containers.iter().map(|c| container_status(c, v.containers.get(&c.name).map(|b| &**b), false)).collect();
    let mut st = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": v.host_ip,
        "hostIPs": [{"ip": v.host_ip}],
        "startTime": old.get("startTime").cloned().unwrap_or_else(|| json!(now)),
        "containerStatuses": containers,
    });
    if let Some(inits) = &spec.init_containers {
        st["initContainerStatuses"] = json!(inits.iter().map(|c| container_status(c, v.containers.get(&c.name).map(|b| &**b), true)).collect::<Vec<_>>());
    }
    if let Some(ecs) = spec.ephemeral_containers.as_ref().filter(|e| !e.is_empty()) {
        // Never ready (upstream: they take no part in the Pod's readiness).
        let statuses: Vec<Value> = ecs
            .iter()
            .map(|e| {
                let mut s = container_status(&ephemeral_as_container(e), v.containers.get(&e.name).map(|b| &**b), false);
                s["ready"] = json!(false);
                s
            })
            .collect();
        st["ephemeralContainerStatuses"] = json!(statuses);
    }
    // The API server sets qosClass at creation and it never changes (upstream); the status carries it on.
    if let Some(q) = v.pod.status.as_ref().and_then(|s| s.qos_class.as_ref()) {
        st["qosClass"] = json!(q);
    }
    if deadline {
        // The kubelet's words for activeDeadlineSeconds (pkg/kubelet/active_deadline.go).
        st["reason"] = json!("DeadlineExceeded");
        st["message"] = json!("Pod was active on the node longer than the specified deadline");
    }
    if let Some(ip) = &v.pod_ip {
        st["podIP"] = json!(ip);
        st["podIPs"] = json!([{"ip": ip}]);
    }
    st
}

/// Status equality for "write only on change": ignores nothing, but normalises the old status through JSON.
pub fn same(old: Option<&k8s_openapi::api::core::v1::PodStatus>, new: &Value) -> bool {
    let Some(old) = old else { return false };
    let Ok(new_typed) = serde_json::from_value::<k8s_openapi::api::core::v1::PodStatus>(new.clone()) else { return false };
    old == &new_typed
}
