//! Server-side printing for `kubectl get`: the columns and cells of a `meta.k8s.io/v1` Table, as upstream's
//! `pkg/printers/internalversion/printers.go` computes them (always the wide set; kubectl hides priority > 0
//! columns unless `-o wide`). Pure: "now" is a parameter, so snapshot tests are exact.

use serde_json::{json, Value};

use crate::meta::parse_time;
use crate::resources::ResourceInfo;

/// `duration.HumanDuration` (`k8s.io/apimachinery/pkg/util/duration`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: age of a timestamp field, `<unknown>` when absent.
fn since(t: Option<&Value>, now: i64) -> String {
    match t.and_then(Value::as_str).and_then(parse_time) {
        Some(ts) => human_duration(now - ts.as_second()),
        None => "<unknown>".into(),
    }
}

fn col(name: &str, ty: &str, priority: u8, description: &str) -> Value {
    let mut c = json!({"name": name, "type": ty, "format": "", "description": description, "priority": priority});
    if name == "Name" {
        c["format"] = "name".into();
    }
    c
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

/// The column definitions of a resource's Table.
pub fn columns(info: &ResourceInfo) -> Value {
    let c = match info.storage {
        "core/pods" => vec![
            col("Name", "string", 0, NAME_DOC),
            col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", 0, "The aggregate status of the containers in this pod."),
            col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            col("Age", "string", 0, AGE_DOC),
            col("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            col("Node", "string", 1, "NodeName indicates in which node this pod is scheduled."),
            col("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
            col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        "batch/jobs" => vec![
            col("Name", "string", 0, NAME_DOC),
            col("Status", "string", 0, "Status of the job."),
            col("Completions", "string", 0, "The completion status of the job"),
            col("Duration", "string", 0, "Time required to complete the job."),
            col("Age", "string", 0, AGE_DOC),
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "A label query over pods that should match the pod count."),
        ],
        "apps/deployments" => vec![
            col("Name", "string", 0, NAME_DOC),
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col("Up-to-date", "integer", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "integer", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            col("Age", "string", 0, AGE_DOC),
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
        ],
        "apps/replicasets" => vec![
            col("Name", "string", 0, NAME_DOC),
            col("Desired", "integer", 0, "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"),
            col("Current", "integer", 0, "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"),
            col("Ready", "integer", 0, "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition."),
            col("Age", "string", 0, AGE_DOC),
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
        ],
        "core/nodes" => vec![
            col("Name", "string", 0, NAME_DOC),
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            col("Age", "string", 0, AGE_DOC),
            col("Version", "string", 0, "Kubelet Version reported by the node."),
            col("Internal-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            col("External-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        "core/namespaces" => vec![
            col("Name", "string", 0, NAME_DOC),
            col("Status", "string", 0, "The status of the namespace"),
            col("Age", "string", 0, AGE_DOC),
        ],
        "core/events" => vec![
            col("Last Seen", "string", 0, "The last time this event occurred."),
            col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
            col("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            col("Object", "string", 0, "The object that this event is about."),
            col("Subobject", "string", 1, "If the reference is to an object component, the path to it."),
            col("Source", "string", 1, "The component reporting this event. Should be a short machine understandable string."),
            col("Message", "string", 0, "A human-readable description of the status of this operation."),
            col("First Seen", "string", 1, "The time at which the event was first recorded."),
            col("Count", "string", 1, "The number of times this event has occurred."),
            col("Name", "string", 1, NAME_DOC),
        ],
        _ => vec![col("Name", "string", 0, NAME_DOC), json!({"name": "Created At", "type": "date", "format": "", "description": AGE_DOC, "priority": 0})],
    };
    Value::Array(c)
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// One row's cells, plus upstream's row conditions (`Completed` for finished pods).
pub fn cells(info: &ResourceInfo, obj: &Value, now: i64) -> (Vec<Value>, Option<Value>) {
    let name = Value::String(s(obj, "/metadata/name").to_string());
    let age = Value::String(since(obj.pointer("/metadata/creationTimestamp"), now));
    match info.storage {
        "core/pods" => pod_row(obj, now),
        "batch/jobs" => {
            let succeeded = i(obj, "/status/succeeded");
            let completions = match obj.pointer("/spec/completions").and_then(Value::as_i64) {
                Some(c) => format!("{succeeded}/{c}"),
                None => match i(obj, "/spec/parallelism") {
                    p if p > 1 => format!("{succeeded}/1 of {p}"),
                    _ => format!("{succeeded}/1"),
                },
            };
            let start = obj.pointer("/status/startTime").and_then(Value::as_str).and_then(parse_time);
            let end = obj.pointer("/status/completionTime").and_then(Value::as_str).and_then(parse_time);
            let duration = match (start, end) {
                (None, _) => String::new(),
                (Some(st), None) => human_duration(now - st.as_second()),
                (Some(st), Some(e)) => human_duration(e.as_second() - st.as_second()),
            };
            let has = |t: &str| arr(obj, "/status/conditions").iter().any(|c| s(c, "/type") == t && s(c, "/status") == "True");
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if obj.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else if has("Suspended") {
                "Suspended"
            } else if has("FailureTarget") {
                "FailureTarget"
            } else if has("SuccessCriteriaMet") {
                "SuccessCriteriaMet"
            } else {
                "Running"
            };
            let containers = arr(obj, "/spec/template/spec/containers");
            let names = containers.iter().map(|c| s(c, "/name")).collect::<Vec<_>>().join(",");
            let images = containers.iter().map(|c| s(c, "/image")).collect::<Vec<_>>().join(",");
            let selector = format_label_selector(obj.pointer("/spec/selector"));
            (vec![name, status.into(), completions.into(), duration.into(), age, names.into(), images.into(), selector.into()], None)
        }
        // upstream `printDeployment` / `printReplicaSet`.
        "apps/deployments" | "apps/replicasets" => {
            let desired = i(obj, "/spec/replicas");
            let ready = i(obj, "/status/readyReplicas");
            let containers = arr(obj, "/spec/template/spec/containers");
            let names = containers.iter().map(|c| s(c, "/name")).collect::<Vec<_>>().join(",");
            let images = containers.iter().map(|c| s(c, "/image")).collect::<Vec<_>>().join(",");
            let selector = format_label_selector(obj.pointer("/spec/selector"));
            let counts: Vec<Value> = if info.storage == "apps/deployments" {
                vec![format!("{ready}/{desired}").into(), i(obj, "/status/updatedReplicas").into(), i(obj, "/status/availableReplicas").into()]
            } else {
                vec![desired.into(), i(obj, "/status/replicas").into(), ready.into()]
            };
            let mut row = vec![name];
            row.extend(counts);
            row.extend([age, names.into(), images.into(), selector.into()]);
            (row, None)
        }
        "core/nodes" => {
            let mut status: Vec<String> = arr(obj, "/status/conditions")
                .iter()
                .filter(|c| s(c, "/type") == "Ready")
                .map(|c| if s(c, "/status") == "True" { "Ready".to_string() } else { "NotReady".to_string() })
                .take(1)
                .collect();
            if status.is_empty() {
                status.push("Unknown".into());
            }
            if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push("SchedulingDisabled".into());
            }
            let mut roles: Vec<String> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| {
                            if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                                Some(r.to_string())
                            } else if k == "kubernetes.io/role" {
                                v.as_str().map(str::to_string)
                            } else {
                                None
                            }
                        })
                        .filter(|r| !r.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            roles.sort();
            roles.dedup();
            let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };
            let addr = |t: &str| {
                arr(obj, "/status/addresses").iter().find(|a| s(a, "/type") == t).map(|a| s(a, "/address").to_string()).unwrap_or_else(|| "<none>".into())
            };
            let or_unknown = |p: &str| match s(obj, p) {
                "" => "<unknown>".to_string(),
                v => v.to_string(),
            };
            (
                vec![
                    name,
                    status.join(",").into(),
                    roles.into(),
                    age,
                    s(obj, "/status/nodeInfo/kubeletVersion").into(),
                    addr("InternalIP").into(),
                    addr("ExternalIP").into(),
                    or_unknown("/status/nodeInfo/osImage").into(),
                    or_unknown("/status/nodeInfo/kernelVersion").into(),
                    or_unknown("/status/nodeInfo/containerRuntimeVersion").into(),
                ],
                None,
            )
        }
        "core/namespaces" => (vec![name, s(obj, "/status/phase").into(), age], None),
        "core/events" => {
            let first = if obj.pointer("/firstTimestamp").is_some_and(|v| !v.is_null()) {
                since(obj.pointer("/firstTimestamp"), now)
            } else {
                since(obj.pointer("/eventTime"), now)
            };
            let mut last = if obj.pointer("/lastTimestamp").is_some_and(|v| !v.is_null()) { since(obj.pointer("/lastTimestamp"), now) } else { first.clone() };
            let mut count = i(obj, "/count");
            if obj.pointer("/series").is_some_and(|v| v.is_object()) {
                last = since(obj.pointer("/series/lastObservedTime"), now);
                count = i(obj, "/series/count");
            } else if count == 0 {
                count = 1;
            }
            let kind = s(obj, "/involvedObject/kind").to_lowercase();
            let target = match s(obj, "/involvedObject/name") {
                "" => kind,
                n => format!("{kind}/{n}"),
            };
            let first_non_empty = |a: &str, b: &str| if a.is_empty() { b.to_string() } else { a.to_string() };
            let component = first_non_empty(s(obj, "/source/component"), s(obj, "/reportingComponent"));
            let instance = first_non_empty(s(obj, "/source/host"), s(obj, "/reportingInstance"));
            let source = if instance.is_empty() { component } else { format!("{component}, {instance}") };
            (
                vec![
                    last.into(),
                    s(obj, "/type").into(),
                    s(obj, "/reason").into(),
                    target.into(),
                    s(obj, "/involvedObject/fieldPath").into(),
                    source.into(),
                    s(obj, "/message").trim().into(),
                    first.into(),
                    count.into(),
                    name,
                ],
                None,
            )
        }
        _ => (vec![name, obj.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null)], None),
    }
}

/// `metav1.FormatLabelSelector`.
pub fn format_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|v| v.is_object()) else { return "<none>".into() };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        let mut kv: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
        kv.sort();
        parts.extend(kv);
    }
    for e in sel.get("matchExpressions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        let key = s(e, "/key");
        let mut values: Vec<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        values.sort();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// upstream `printPod`.
fn pod_row(pod: &Value, now: i64) -> (Vec<Value>, Option<Value>) {
    let phase = s(pod, "/status/phase");
    let mut reason = match s(pod, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let conditions = arr(pod, "/status/conditions");
    if conditions.iter().any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated") {
        reason = "SchedulingGated".into();
    }
    let row_conditions = match phase {
        "Succeeded" => Some(json!([{"type": "Completed", "status": "True", "reason": "", "message": ""}])),
        "Failed" => Some(json!([{"type": "Completed", "status": "False", "reason": "", "message": ""}])),
        _ => None,
    };
    let init_specs = arr(pod, "/spec/initContainers");
    let restartable = |name: &str| init_specs.iter().any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always");
    // Sidecars (restartable init containers) count as containers.
    let total = arr(pod, "/spec/containers").len() + init_specs.iter().filter(|c| s(c, "/restartPolicy") == "Always").count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: i64 = i64::MIN;
    let mut last_sidecar_restart: i64 = i64::MIN;
    let finished_at = |c: &Value| c.pointer("/lastState/terminated/finishedAt").and_then(Value::as_str).and_then(parse_time).map(|t| t.as_second());
    let mut initializing = false;
    for (idx, c) in arr(pod, "/status/initContainerStatuses").iter().enumerate() {
        let rc = i(c, "/restartCount");
        restarts += rc;
        if let Some(t) = finished_at(c) {
            last_restart = last_restart.max(t);
        }
        let cname = s(c, "/name");
        if restartable(cname) {
            sidecar_restarts += rc;
            if let Some(t) = finished_at(c) {
                last_sidecar_restart = last_sidecar_restart.max(t);
            }
        }
        let terminated = c.pointer("/state/terminated").filter(|v| v.is_object());
        let waiting_reason = s(c, "/state/waiting/reason");
        if terminated.is_some_and(|t| i(t, "/exitCode") == 0) {
            continue;
        }
        if restartable(cname) && c.get("started") == Some(&Value::Bool(true)) {
            if c.get("ready") == Some(&Value::Bool(true)) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = match s(t, "/reason") {
                "" if i(t, "/signal") != 0 => format!("Init:Signal:{}", i(t, "/signal")),
                "" => format!("Init:ExitCode:{}", i(t, "/exitCode")),
                r => format!("Init:{r}"),
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    let initialized = conditions.iter().any(|c| s(c, "/type") == "Initialized" && s(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(c, "/restartCount");
            if let Some(t) = finished_at(c) {
                last_restart = last_restart.max(t);
            }
            let waiting = s(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated").filter(|v| v.is_object());
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = match s(t, "/reason") {
                    "" if i(t, "/signal") != 0 => format!("Signal:{}", i(t, "/signal")),
                    "" => format!("ExitCode:{}", i(t, "/exitCode")),
                    r => r.to_string(),
                };
            } else if c.get("ready") == Some(&Value::Bool(true)) && c.pointer("/state/running").is_some_and(Value::is_object) {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions.iter().any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if pod_ready { "Running".into() } else { "NotReady".into() };
        }
    }
    let deleting = pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
    if deleting && s(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    let restarts_cell = if restarts != 0 && last_restart != i64::MIN {
        format!("{restarts} ({} ago)", human_duration(now - last_restart))
    } else {
        restarts.to_string()
    };
    let ip = arr(pod, "/status/podIPs").first().map(|p| s(p, "/ip")).filter(|s| !s.is_empty()).unwrap_or("<none>");
    let node = match s(pod, "/spec/nodeName") {
        "" => "<none>",
        n => n,
    };
    let nominated = match s(pod, "/status/nominatedNodeName") {
        "" => "<none>",
        n => n,
    };
    let gates = arr(pod, "/spec/readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let t = gates
            .iter()
            .filter(|g| conditions.iter().find(|c| s(c, "/type") == s(g, "/conditionType")).is_some_and(|c| s(c, "/status") == "True"))
            .count();
        format!("{t}/{}", gates.len())
    };
    (
        vec![
            s(pod, "/metadata/name").into(),
            format!("{ready}/{total}").into(),
            reason.into(),
            restarts_cell.into(),
            since(pod.pointer("/metadata/creationTimestamp"), now).into(),
            ip.into(),
            node.into(),
            nominated.into(),
            gates_cell.into(),
        ],
        row_conditions,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    /// 2026-01-01T00:10:00Z
    const NOW: i64 = 1_767_226_200;

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"}, "status": status})
    }

    fn row(info: &str, obj: &Value) -> Vec<Value> {
        let (g, p) = info.split_once('/').unwrap();
        cells(find(g, "v1", p).unwrap(), obj, NOW).0
    }

    #[test]
    fn human_durations() {
        let cases = [(-5, "<invalid>"), (0, "0s"), (95, "95s"), (185, "3m5s"), (600, "10m"), (47 * 60, "47m"), (5 * 3600 + 180, "5h3m"), (20 * 3600, "20h"), (76 * 3600, "3d4h"), (45 * 86400, "45d"), (2 * 365 * 86400 + 3 * 86400, "2y3d"), (9 * 365 * 86400, "9y")];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn pod_status_column_like_kubectl() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"phase": "Pending"}), "0/2", "Pending"),
            (json!({"phase": "Pending", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}), "0/2", "ContainerCreating"),
            (json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}]}), "2/2", "Running"),
            (json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:08:00Z"}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}]}), "1/2", "CrashLoopBackOff"),
            (json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}), "0/2", "Completed"),
            (json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 2, "reason": "Error"}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 137}}}]}), "0/2", "Error"),
        ];
        for (status, ready, want) in cases {
            let r = row("/pods", &pod(status.clone()));
            assert_eq!((r[1].as_str().unwrap(), r[2].as_str().unwrap()), (ready, want), "{status}");
        }
        let crash = row("/pods", &pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:08:00Z"}}}]})));
        assert_eq!(crash[3], "4 (2m ago)");
        assert_eq!(crash[4], "10m");
        assert_eq!(crash[5], "<none>");
        assert_eq!(crash[6], "n1");
    }

    #[test]
    fn init_containers_and_terminating() {
        let mut p = pod(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        p["spec"]["initContainers"] = json!([{"name": "i1"}]);
        assert_eq!(row("/pods", &p)[2], "Init:0/1");
        p["status"]["initContainerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert_eq!(row("/pods", &p)[2], "Init:Error");
        p["status"]["initContainerStatuses"][0]["state"] = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert_eq!(row("/pods", &p)[2], "Init:CrashLoopBackOff");
        let mut t = pod(json!({"phase": "Running"}));
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:10:30Z");
        assert_eq!(row("/pods", &t)[2], "Terminating");
    }

    #[test]
    fn job_node_namespace_event_rows() {
        let job = json!({"metadata": {"name": "hello", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"completions": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                     "template": {"spec": {"containers": [{"name": "hello", "image": "busybox"}]}}},
            "status": {"succeeded": 1, "startTime": "2026-01-01T00:00:01Z", "completionTime": "2026-01-01T00:00:05Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(row("batch/jobs", &job), json!(["hello", "Complete", "1/1", "4s", "10m", "hello", "busybox", "batch.kubernetes.io/controller-uid=u"]).as_array().unwrap().clone());
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0+k1s", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0", "containerRuntimeVersion": "k1s://0.1.0"}}});
        assert_eq!(row("/nodes", &node), json!(["n1", "Ready,SchedulingDisabled", "control-plane", "10m", "v1.33.0+k1s", "10.0.0.5", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0", "k1s://0.1.0"]).as_array().unwrap().clone());
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2026-01-01T00:09:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(row("/namespaces", &ns), json!(["default", "Active", "60s"]).as_array().unwrap().clone());
        let ev = json!({"metadata": {"name": "p.1"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started", "type": "Normal",
            "message": "Started container a ", "source": {"component": "kubelet", "host": "n1"}, "firstTimestamp": "2026-01-01T00:05:00Z", "lastTimestamp": "2026-01-01T00:09:00Z", "count": 2});
        assert_eq!(row("/events", &ev), json!(["60s", "Normal", "Started", "pod/p", "", "kubelet, n1", "Started container a", "5m", 2, "p.1"]).as_array().unwrap().clone());
    }

    #[test]
    fn deployment_and_replicaset_rows() {
        let tpl = json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": tpl},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(row("apps/deployments", &d), json!(["web", "2/3", 3, 2, "10m", "c", "busybox", "app=web"]).as_array().unwrap().clone());
        let r = json!({"metadata": {"name": "web-5d4f8", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": tpl},
            "status": {"replicas": 3, "readyReplicas": 1}});
        assert_eq!(row("apps/replicasets", &r), json!(["web-5d4f8", 3, 3, 1, "10m", "c", "busybox", "app=web"]).as_array().unwrap().clone());
        let cols = columns(find("apps", "v1", "deployments").unwrap());
        assert_eq!(cols.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect::<Vec<_>>(), ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]);
    }

    #[test]
    fn default_columns_are_name_and_created_at() {
        let cm = json!({"metadata": {"name": "c", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(row("/configmaps", &cm), vec![json!("c"), json!("2026-01-01T00:00:00Z")]);
        let cols = columns(find("", "v1", "configmaps").unwrap());
        assert_eq!(cols[1]["name"], "Created At");
        assert_eq!(cols[1]["type"], "date");
    }
}
