//! Defaults that upstream applies on create (`pkg/apis/*/v1/defaults.go` and the Job strategy), so that
//! objects read back look like a real cluster's.

use serde_json::{json, Value};

use crate::meta::default_path;

/// Upstream `SetDefaults_PodSpec` and `SetDefaults_Container`, on a pod spec.
pub fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_path(spec, &["restartPolicy"], json!("Always"));
    default_path(spec, &["dnsPolicy"], json!("ClusterFirst"));
    default_path(spec, &["schedulerName"], json!("default-scheduler"));
    default_path(spec, &["terminationGracePeriodSeconds"], json!(30));
    default_path(spec, &["securityContext"], json!({}));
    default_path(spec, &["enableServiceLinks"], json!(true));
    default_path(spec, &["priority"], json!(0));
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                container(c);
            }
        }
    }
}

fn container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    default_path(c, &["terminationMessagePath"], json!("/dev/termination-log"));
    default_path(c, &["terminationMessagePolicy"], json!("File"));
    default_path(c, &["resources"], json!({}));
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    // `:latest` or no tag (and no digest) pulls Always, anything else IfNotPresent.
    let last = image.rsplit('/').next().unwrap_or("");
    let policy = if image.contains('@') || (last.contains(':') && !last.ends_with(":latest")) { "IfNotPresent" } else { "Always" };
    default_path(c, &["imagePullPolicy"], json!(policy));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default_path(p, &["protocol"], json!("TCP"));
        }
    }
}

/// Upstream `SetDefaults_Pod`: a limit without a request requests the limit (Pods only, not templates), so the
/// scheduler, the QoS class and `kubectl describe` all see the same requests.
fn requests_from_limits(spec: &mut Value) {
    for list in ["initContainers", "containers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(limits) = c.pointer("/resources/limits").and_then(Value::as_object).cloned() else { continue };
            for (k, v) in limits {
                default_path(c, &["resources", "requests", k.as_str()], v);
            }
        }
    }
}

/// Pod defaults on create, including what upstream's `DefaultTolerationSeconds` admission adds: tolerate
/// `not-ready` and `unreachable` nodes for 300 s before eviction, unless the pod already says otherwise.
pub fn pod(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
        pod_spec(spec);
        requests_from_limits(spec);
        let tolerations = spec.as_object_mut().expect("object").entry("tolerations").or_insert_with(|| json!([]));
        if let Some(list) = tolerations.as_array_mut() {
            for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
                let covered = list.iter().any(|t| {
                    let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
                    let k = t.get("key").and_then(Value::as_str).unwrap_or("");
                    (effect.is_empty() || effect == "NoExecute") && (k == key || (k.is_empty() && t.get("operator") == Some(&json!("Exists"))))
                });
                if !covered {
                    list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                }
            }
        }
    }
}

/// Upstream `SetDefaults_Job` (no selector generation: that is the create strategy's).
fn job_spec(spec: &mut Value) {
    let completions_unset = spec.get("completions").is_none_or(Value::is_null);
    let parallelism_unset = spec.get("parallelism").is_none_or(Value::is_null);
    if completions_unset && parallelism_unset {
        default_path(spec, &["completions"], json!(1));
    }
    default_path(spec, &["parallelism"], json!(1));
    // With a per-index limit the global one is off unless set (upstream `SetDefaults_Job`).
    let per_index = spec.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null());
    default_path(spec, &["backoffLimit"], json!(if per_index { i32::MAX } else { 6 }));
    default_path(spec, &["completionMode"], json!("NonIndexed"));
    default_path(spec, &["suspend"], json!(false));
    // A pod failure policy needs to see each Pod fail, so replacements wait for it (upstream default).
    let policy = spec.get("podFailurePolicy").is_some_and(|v| !v.is_null());
    default_path(spec, &["podReplacementPolicy"], json!(if policy { "Failed" } else { "TerminatingOrFailed" }));
    if let Some(ps) = spec.pointer_mut("/template/spec") {
        pod_spec(ps);
    }
}

/// Job defaults on create (upstream `SetDefaults_Job` + the strategy's generated selector), given the Job's uid.
pub fn job(obj: &mut Value, uid: &str) {
    let name = crate::meta::name(obj).to_string();
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
    job_spec(spec);
    if spec.get("manualSelector") != Some(&Value::Bool(true)) {
        // The generated selector and labels (upstream job strategy `generateSelector`).
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let labels = [
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("controller-uid", uid),
            ("job-name", name.as_str()),
        ];
        for (k, v) in labels {
            default_path(spec, &["template", "metadata", "labels", k], json!(v));
        }
    }
}

/// Upstream apps/v1 `SetDefaults_Deployment`: one replica, RollingUpdate 25%/25%, ten old ReplicaSets kept,
/// a 600 s progress deadline, and the pod template's defaults.
pub fn deployment(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
    default_path(spec, &["replicas"], json!(1));
    default_path(spec, &["strategy", "type"], json!("RollingUpdate"));
    if spec.pointer("/strategy/type") == Some(&json!("RollingUpdate")) {
        default_path(spec, &["strategy", "rollingUpdate", "maxUnavailable"], json!("25%"));
        default_path(spec, &["strategy", "rollingUpdate", "maxSurge"], json!("25%"));
    }
    default_path(spec, &["revisionHistoryLimit"], json!(10));
    default_path(spec, &["progressDeadlineSeconds"], json!(600));
    if let Some(ps) = spec.pointer_mut("/template/spec") {
        pod_spec(ps);
    }
}

/// Upstream apps/v1 `SetDefaults_ReplicaSet`: one replica, and the pod template's defaults.
pub fn replicaset(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
    default_path(spec, &["replicas"], json!(1));
    if let Some(ps) = spec.pointer_mut("/template/spec") {
        pod_spec(ps);
    }
}

/// Defaults applied to every write of a kind, not only on create (upstream defaults every decoded request),
/// so that a `kubectl replace` of a manifest without the defaulted fields compares equal where it should.
pub fn on_update(storage: &str, obj: &mut Value) {
    match storage {
        "core/pods" => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                pod_spec(spec);
                requests_from_limits(spec);
            }
        }
        "batch/jobs" => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                job_spec(spec);
            }
        }
        "apps/deployments" => deployment(obj),
        "apps/replicasets" => replicaset(obj),
        "core/namespaces" => default_path(obj, &["spec", "finalizers"], json!(["kubernetes"])),
        "core/secrets" => secret(obj),
        _ => {}
    }
}

/// Namespace defaults: the `kubernetes` finalizer and phase Active.
pub fn namespace(obj: &mut Value) {
    default_path(obj, &["spec", "finalizers"], json!(["kubernetes"]));
    crate::meta::set_path(obj, &["status", "phase"], json!("Active"));
}

pub fn secret(obj: &mut Value) {
    default_path(obj, &["type"], json!("Opaque"));
}

/// Upstream `GetPodQOS`: BestEffort with no requests or limits, Guaranteed when every container's cpu and
/// memory limits are set and equal to its requests, Burstable otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        let has = |m: Option<&serde_json::Map<String, Value>>, k: &str| m.is_some_and(|m| m.contains_key(k));
        if has(req, "cpu") || has(req, "memory") || has(lim, "cpu") || has(lim, "memory") {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(r));
            // A request defaults to the limit when unset.
            let q = req.and_then(|m| m.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_requests_where_none_are_set() {
        let mut p = json!({"spec": {"containers": [{"name": "a", "image": "busybox",
            "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "100m"}}}]}});
        pod(&mut p);
        assert_eq!(p["spec"]["containers"][0]["resources"]["requests"], json!({"cpu": "100m", "memory": "64Mi"}));
        // Templates are not Pods: a Job's template keeps what it says.
        let mut t = json!({"containers": [{"name": "a", "image": "busybox", "resources": {"limits": {"memory": "64Mi"}}}]});
        pod_spec(&mut t);
        assert!(t["containers"][0]["resources"].get("requests").is_none());
    }

    #[test]
    fn pod_defaults_like_upstream() {
        let mut p = json!({"spec": {"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "reg:5000/x:1.0", "ports": [{"containerPort": 80}]}]}});
        pod(&mut p);
        assert_eq!(p["spec"]["restartPolicy"], "Always");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(p["spec"]["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(p["spec"]["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(p["spec"]["tolerations"][0]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(p["spec"]["tolerations"][1]["tolerationSeconds"], 300);
        let mut own = json!({"spec": {"containers": [], "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}});
        pod(&mut own);
        assert_eq!(own["spec"]["tolerations"].as_array().unwrap().len(), 2, "the pod's own unreachable toleration is kept, not doubled");
        assert_eq!(own["spec"]["tolerations"][0]["tolerationSeconds"], 5);
    }

    #[test]
    fn deployment_and_replicaset_defaults_like_upstream() {
        let mut d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        deployment(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let mut r = json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0}});
        deployment(&mut r);
        assert_eq!(r["spec"]["replicas"], 0, "an explicit 0 is kept");
        assert!(r["spec"]["strategy"].get("rollingUpdate").is_none(), "Recreate gets no rollingUpdate");
        let mut rs = json!({"spec": {"template": {"spec": {"containers": []}}}});
        replicaset(&mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    }

    #[test]
    fn job_defaults_and_generated_selector() {
        let mut j = json!({"metadata": {"name": "hello"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}});
        job(&mut j, "u1");
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert_eq!(j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], "u1");
        assert_eq!(j["spec"]["template"]["metadata"]["labels"]["job-name"], "hello");
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"parallelism": 3, "template": {"spec": {}}}});
        job(&mut p, "u2");
        assert!(p["spec"].get("completions").is_none(), "parallelism alone leaves completions unset (work queue)");
    }
}
