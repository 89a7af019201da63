//! The scheduler end to end on the real binary, as root: Pods that do not fit stay Pending with upstream's
//! `PodScheduled=False/Unschedulable` condition and `FailedScheduling` event, and run once something changes
//! (a Pod goes away, the node is labelled, untainted, uncordoned); Pods for another scheduler are left alone.
//!
//! Network rule: traffic goes only to loopback (the API server).

use std::time::Duration;

use k1s_tests::{start_root as start, Server};
use serde_json::Value;


fn pod_json(s: &Server, name: &str) -> Option<Value> {
    s.try_get_json(&["pod", name])
}

fn wait_running(s: &Server, name: &str) -> Value {
    s.wait_for(&format!("pod {name} Running"), Duration::from_secs(30), || pod_json(s, name).filter(|p| p["status"]["phase"] == "Running"))
}

fn scheduled_condition(p: &Value) -> Option<&Value> {
    p["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "PodScheduled")
}

/// Wait until the Pod is marked unschedulable with a message containing `want`; returns the message.
fn wait_unschedulable(s: &Server, name: &str, want: &str) -> String {
    let p = s.wait_for(&format!("pod {name} Unschedulable with {want:?}"), Duration::from_secs(15), || {
        pod_json(s, name).filter(|p| scheduled_condition(p).is_some_and(|c| c["message"].as_str().is_some_and(|m| m.contains(want))))
    });
    let c = scheduled_condition(&p).expect("condition");
    assert_eq!(c["status"], "False", "{c}");
    assert_eq!(c["reason"], "Unschedulable", "{c}");
    assert!(p["spec"]["nodeName"].is_null(), "an unschedulable Pod stays unbound: {p}");
    assert_eq!(p["status"]["phase"], "Pending");
    c["message"].as_str().unwrap().to_string()
}

/// core/v1 Events about one Pod with this reason (the view `kubectl describe` reads).
fn events(s: &Server, pod: &str, reason: &str) -> Vec<Value> {
    let sel = format!("involvedObject.name={pod},reason={reason}");
    let list: Value = serde_json::from_str(&s.kubectl_ok(&["get", "events", "--field-selector", &sel, "-o", "json"])).expect("events json");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn sleeper(name: &str, extra_spec: &str, resources: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{extra_spec}  containers:
  - name: main
    image: busybox
    command: [sleep, \"3600\"]
{resources}"
    )
}

/// Bytes of a quantity the agent writes for memory (`<n>Ki`).
fn ki(q: &str) -> u64 {
    q.strip_suffix("Ki").and_then(|n| n.parse::<u64>().ok()).map(|n| n * 1024).unwrap_or_else(|| panic!("memory quantity {q:?}"))
}

#[test]
fn unschedulable_pod_reports_why_and_runs_once_memory_frees() {
    let s = start();
    let node = s.id.node_name.clone();
    let n = s.get_json(&["node", &node]);
    let alloc = ki(n["status"]["allocatable"]["memory"].as_str().expect("allocatable memory"));
    // Slightly over half of what the node offers: one such Pod fits, two do not.
    let half = format!("{}Mi", alloc / 2 / (1024 * 1024) + 16);
    let req = format!("    resources:\n      requests:\n        memory: {half}\n");

    // A Pod for another scheduler is never touched, whatever happens around it.
    s.apply(&sleeper("elsewhere", "  schedulerName: other\n", ""));

    s.apply(&sleeper("first", "", &req));
    let first = wait_running(&s, "first");
    assert_eq!(first["spec"]["nodeName"], node.as_str());
    let c = scheduled_condition(&first).expect("PodScheduled");
    assert_eq!(c["status"], "True");
    let scheduled = s.wait_for("a Scheduled event for first", Duration::from_secs(10), || Some(events(&s, "first", "Scheduled")).filter(|v| !v.is_empty()));
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert_eq!(scheduled[0]["message"], format!("Successfully assigned default/first to {node}"));
    assert_eq!(scheduled[0]["type"], "Normal");

    s.apply(&sleeper("second", "", &req));
    let msg = wait_unschedulable(&s, "second", "Insufficient memory");
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
    );
    let failed = s.wait_for("a FailedScheduling event", Duration::from_secs(10), || Some(events(&s, "second", "FailedScheduling")).filter(|v| !v.is_empty()));
    assert_eq!(failed[0]["type"], "Warning");
    assert_eq!(failed[0]["message"], msg.as_str());
    let describe = s.kubectl_ok(&["describe", "pod", "second"]);
    assert!(describe.contains("FailedScheduling"), "{describe}");
    assert!(describe.contains("0/1 nodes are available: 1 Insufficient memory."), "{describe}");
    let all = s.kubectl_ok(&["get", "events"]);
    assert!(all.contains("FailedScheduling") && all.contains("pod/second"), "{all}");

    // Nothing changes, so nothing is written again: the node's heartbeats and the first Pod's status
    // updates are not reasons to retry, and a retry with the same answer writes nothing.
    let rv = pod_json(&s, "second").unwrap()["metadata"]["resourceVersion"].clone();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pod_json(&s, "second").unwrap()["metadata"]["resourceVersion"], rv, "the unschedulable Pod was rewritten");
    assert_eq!(events(&s, "second", "FailedScheduling").len(), 1);

    // The first Pod goes: the second is bound and runs.
    s.kubectl_ok(&["delete", "pod", "first", "--grace-period=1"]);
    let second = wait_running(&s, "second");
    assert_eq!(second["spec"]["nodeName"], node.as_str());
    assert_eq!(scheduled_condition(&second).expect("PodScheduled")["status"], "True");
    let scheduled = s.wait_for("a Scheduled event for second", Duration::from_secs(10), || Some(events(&s, "second", "Scheduled")).filter(|v| !v.is_empty()));
    assert_eq!(scheduled[0]["message"], format!("Successfully assigned default/second to {node}"));

    // A Pod that finishes frees its requests too: a run-to-completion Pod takes the room, then a waiting one
    // gets it once the first has Succeeded.
    s.kubectl_ok(&["delete", "pod", "second", "--grace-period=1"]);
    s.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: short
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'sleep 2']
{req}"
    ));
    s.apply(&sleeper("after", "", &req));
    wait_unschedulable(&s, "after", "Insufficient memory");
    s.wait_for("short Succeeded", Duration::from_secs(30), || pod_json(&s, "short").filter(|p| p["status"]["phase"] == "Succeeded"));
    wait_running(&s, "after");

    // Still left alone: no node, no condition, no events.
    let other = pod_json(&s, "elsewhere").expect("elsewhere");
    assert!(other["spec"]["nodeName"].is_null(), "{other}");
    assert!(scheduled_condition(&other).is_none(), "{other}");
    assert!(events(&s, "elsewhere", "FailedScheduling").is_empty());
    assert!(events(&s, "elsewhere", "Scheduled").is_empty());
}

#[test]
fn node_labels_taints_cordon_and_host_ports() {
    let s = start();
    let node = s.id.node_name.clone();

    // nodeSelector that no node matches, until the node is labelled.
    s.apply(&sleeper("picky", "  nodeSelector:\n    disktype: ssd\n", ""));
    let msg = wait_unschedulable(&s, "picky", "didn't match");
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
    );
    s.kubectl_ok(&["label", "node", &node, "disktype=ssd"]);
    assert_eq!(wait_running(&s, "picky")["spec"]["nodeName"], node.as_str());

    // Required node affinity, with an operator a nodeSelector cannot express.
    let affinity = "  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: generation, operator: Gt, values: [\"3\"]}
";
    s.apply(&sleeper("gen", affinity, ""));
    wait_unschedulable(&s, "gen", "didn't match Pod's node affinity/selector");
    s.kubectl_ok(&["label", "node", &node, "generation=4"]);
    wait_running(&s, "gen");

    // A NoSchedule taint keeps Pods off unless they tolerate it; removing it lets them on.
    s.kubectl_ok(&["taint", "nodes", &node, "dedicated=test:NoSchedule"]);
    s.apply(&sleeper("plain", "", ""));
    let msg = wait_unschedulable(&s, "plain", "untolerated taint");
    assert!(msg.starts_with("0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: test}."), "{msg}");
    let tolerant = "  tolerations:\n  - {key: dedicated, operator: Equal, value: test, effect: NoSchedule}\n";
    s.apply(&sleeper("tolerant", tolerant, ""));
    wait_running(&s, "tolerant");
    assert_eq!(pod_json(&s, "plain").unwrap()["status"]["phase"], "Pending");
    s.kubectl_ok(&["taint", "nodes", &node, "dedicated=test:NoSchedule-"]);
    wait_running(&s, "plain");

    // A cordoned node takes no new Pods.
    s.kubectl_ok(&["cordon", &node]);
    s.apply(&sleeper("late", "", ""));
    wait_unschedulable(&s, "late", "node(s) were unschedulable");
    s.kubectl_ok(&["uncordon", &node]);
    wait_running(&s, "late");

    // Two Pods cannot have the same host port (the scheduler's view; the agent does not map host ports).
    let port = "    ports:\n    - {containerPort: 80, hostPort: 18080}\n";
    s.apply(&sleeper("port-a", "", port));
    wait_running(&s, "port-a");
    s.apply(&sleeper("port-b", "", port));
    wait_unschedulable(&s, "port-b", "node(s) didn't have free ports for the requested pod ports");
    s.kubectl_ok(&["delete", "pod", "port-a", "--grace-period=1"]);
    wait_running(&s, "port-b");
}
