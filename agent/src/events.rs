//! Events the agent records about Pods (Pulled, Created, Started, Killing, Failed, BackOff), written in the
//! background so a Pod's start never waits for them.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::PostParams;
use kube::Api;
use serde_json::json;

use crate::pods::Shared;

pub fn record(shared: &Shared, pod: &Pod, container: Option<&str>, ty: &str, reason: &str, message: &str) {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = k1s_api::meta::now();
    let nanos = k8s_openapi::jiff::Timestamp::now().as_nanosecond();
    let mut involved = json!({"kind": "Pod", "namespace": ns, "name": name, "uid": pod.metadata.uid, "apiVersion": "v1", "resourceVersion": pod.metadata.resource_version});
    if let Some(c) = container {
        let init = pod.spec.as_ref().and_then(|s| s.init_containers.as_ref()).is_some_and(|ics| ics.iter().any(|i| i.name == c));
        involved["fieldPath"] = json!(format!("spec.{}{{{c}}}", if init { "initContainers" } else { "containers" }));
    }
    let ev = json!({
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": ns},
        "involvedObject": involved,
        "reason": reason, "message": message, "type": ty,
        "source": {"component": "kubelet", "host": shared.node_name},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": "kubelet", "reportingInstance": shared.node_name,
    });
    let Ok(ev) = serde_json::from_value::<Event>(ev) else { return };
    let api: Api<Event> = Api::namespaced(shared.client.clone(), &ns);
    tokio::spawn(async move {
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::debug!(error = %e, "recording an event");
        }
    });
}
