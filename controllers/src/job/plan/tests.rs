//! Table-driven tests of the Job planner: each case is a Job, its Pods and what a user would then see happen.

use super::*;
use serde_json::{json, Value};

const NOW: &str = "2026-11-24T12:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn job(spec: Value, status: Value) -> Job {
    let mut s = json!({
        "completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": false,
        "podReplacementPolicy": "TerminatingOrFailed",
        "template": {"metadata": {"labels": {"job-name": "j"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
    });
    for (k, v) in spec.as_object().expect("spec object") {
        s[k] = v.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "j", "namespace": "default", "uid": "job-uid", "resourceVersion": "5"},
        "spec": s, "status": status,
    }))
    .expect("job")
}

/// A Pod of the Job: `state` is "pending", "running", "ready", "succeeded", "failed:<code>", "deleting".
fn pod(name: &str, state: &str, extra: Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "finalizers": [TRACKING_FINALIZER],
            "creationTimestamp": "2026-11-24T11:00:00Z",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "job-uid", "controller": true}]},
        "spec": {"nodeName": "n", "containers": [{"name": "c"}]},
        "status": {"phase": "Pending"},
    });
    let finished = "2026-11-24T11:59:58Z";
    match state.split_once(':').unwrap_or((state, "")) {
        ("pending", _) => {}
        ("running", _) => p["status"]["phase"] = json!("Running"),
        ("ready", _) => {
            p["status"]["phase"] = json!("Running");
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        }
        ("succeeded", _) => {
            p["status"] = json!({"phase": "Succeeded", "containerStatuses": [{"name": "c", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "finishedAt": finished}}}]});
        }
        ("failed", code) => {
            let code: i32 = code.parse().unwrap_or(1);
            p["status"] = json!({"phase": "Failed", "containerStatuses": [{"name": "c", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "finishedAt": finished}}}]});
        }
        ("deleting", _) => {
            p["status"]["phase"] = json!("Running");
            p["metadata"]["deletionTimestamp"] = json!("2026-11-24T11:59:59Z");
        }
        (other, _) => panic!("unknown pod state {other}"),
    }
    merge(&mut p, &extra);
    serde_json::from_value(p).expect("pod")
}

fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn indexed(p: Pod, ix: i32) -> Pod {
    let mut v = serde_json::to_value(p).expect("pod");
    v["metadata"]["annotations"] = json!({INDEX_ANNOTATION: ix.to_string()});
    serde_json::from_value(v).expect("pod")
}

fn no_finalizer(p: Pod) -> Pod {
    let mut p = p;
    p.metadata.finalizers = None;
    p
}

fn run(j: &Job, pods: &[Pod]) -> Plan {
    let removed = HashSet::new();
    plan(&Input { job: j, pods: pods.iter().collect(), removed_finalizers: &removed, expectations_met: true, now: ts(NOW) })
}

fn cond<'a>(p: &'a Plan, ty: &str) -> Option<&'a JobCondition> {
    p.status.conditions.iter().flatten().find(|c| c.type_ == ty && c.status == "True")
}

fn uncounted(p: &Plan) -> (usize, usize) {
    let u = p.status.uncounted_terminated_pods.clone().unwrap_or_default();
    (u.succeeded.map_or(0, |v| v.len()), u.failed.map_or(0, |v| v.len()))
}

/// What one sync does, in the terms a user sees.
#[derive(Debug, PartialEq)]
struct Seen {
    create: usize,
    delete: usize,
    active: i32,
    uncounted: (usize, usize),
    free: usize,
    /// The interim condition written now ("FailureTarget:<reason>" / "SuccessCriteriaMet:<reason>").
    interim: Option<String>,
    /// The terminal condition to add once the counting is done.
    finish: Option<String>,
}

fn seen(p: &Plan) -> Seen {
    let interim = cond(p, "FailureTarget").or_else(|| cond(p, "SuccessCriteriaMet")).map(|c| format!("{}:{}", c.type_, c.reason.clone().unwrap_or_default()));
    Seen {
        create: p.create.len(),
        delete: p.delete.len(),
        active: p.status.active.unwrap_or(0),
        uncounted: uncounted(p),
        free: p.remove_finalizers.len(),
        interim,
        finish: p.finish.as_ref().map(|c| format!("{}:{}", c.type_, c.reason.clone().unwrap_or_default())),
    }
}

#[test]
fn non_indexed_jobs() {
    let s = |create, delete, active, uncounted, free, interim: Option<&str>, finish: Option<&str>| Seen {
        create,
        delete,
        active,
        uncounted,
        free,
        interim: interim.map(String::from),
        finish: finish.map(String::from),
    };
    let cases: Vec<(&str, Job, Vec<Pod>, Seen)> = vec![
        ("a new Job creates its first Pod", job(json!({}), json!({})), vec![], s(1, 0, 1, (0, 0), 0, None, None)),
        (
            "completions 5, parallelism 2: never more than 2 active",
            job(json!({"completions": 5, "parallelism": 2}), json!({})),
            vec![],
            s(2, 0, 2, (0, 0), 0, None, None),
        ),
        (
            "one running of 2 wanted: one more",
            job(json!({"completions": 5, "parallelism": 2}), json!({})),
            vec![pod("a", "running", json!({}))],
            s(1, 0, 2, (0, 0), 0, None, None),
        ),
        (
            "a succeeded Pod is recorded as uncounted and freed",
            job(json!({"completions": 5, "parallelism": 2}), json!({})),
            vec![pod("a", "succeeded", json!({})), pod("b", "running", json!({}))],
            s(1, 0, 2, (1, 0), 1, None, None),
        ),
        (
            "remaining completions limit the active Pods",
            job(json!({"completions": 5, "parallelism": 2}), json!({"succeeded": 4})),
            vec![pod("e", "running", json!({}))],
            s(0, 0, 1, (0, 0), 0, None, None),
        ),
        (
            "the last completion: success criteria met, Complete once counted",
            job(json!({}), json!({})),
            vec![pod("a", "succeeded", json!({}))],
            s(0, 0, 0, (1, 0), 1, Some("SuccessCriteriaMet:CompletionsReached"), Some("Complete:CompletionsReached")),
        ),
        (
            "a counted Pod (no finalizer) is not counted again",
            job(json!({"completions": 2}), json!({"succeeded": 1})),
            vec![no_finalizer(pod("a", "succeeded", json!({}))), pod("b", "running", json!({}))],
            s(0, 0, 1, (0, 0), 0, None, None),
        ),
        (
            "an uncounted UID is not added twice (restart between the two status writes)",
            job(json!({"completions": 2}), json!({"uncountedTerminatedPods": {"succeeded": ["uid-a"]}})),
            vec![pod("a", "succeeded", json!({})), pod("b", "running", json!({}))],
            s(0, 0, 1, (1, 0), 1, None, None),
        ),
        (
            "a failed Pod within the backoff limit: counted, freed, replaced after the back-off",
            job(json!({"backoffLimit": 2}), json!({})),
            vec![pod("a", "failed:1", json!({}))],
            s(0, 0, 0, (0, 1), 1, None, None),
        ),
        (
            "the third failure with backoffLimit 2 fails the Job",
            job(json!({"backoffLimit": 2}), json!({"failed": 2})),
            vec![no_finalizer(pod("a", "failed:1", json!({}))), no_finalizer(pod("b", "failed:1", json!({}))), pod("c", "failed:1", json!({}))],
            s(0, 0, 0, (0, 1), 1, Some("FailureTarget:BackoffLimitExceeded"), Some("Failed:BackoffLimitExceeded")),
        ),
        (
            "a failing Job deletes its active Pods, keeping their finalizers",
            job(json!({"backoffLimit": 0, "completions": 3, "parallelism": 3}), json!({})),
            vec![pod("a", "failed:1", json!({})), pod("b", "running", json!({})), pod("c", "running", json!({}))],
            s(0, 2, 0, (0, 3), 3, Some("FailureTarget:BackoffLimitExceeded"), Some("Failed:BackoffLimitExceeded")),
        ),
        (
            "OnFailure: container restarts count against the backoff limit",
            job(json!({"backoffLimit": 2, "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}), json!({})),
            vec![pod("a", "running", json!({"status": {"containerStatuses": [{"name": "c", "image": "", "imageID": "", "ready": false, "restartCount": 2}]}}))],
            s(0, 1, 0, (0, 1), 1, Some("FailureTarget:BackoffLimitExceeded"), Some("Failed:BackoffLimitExceeded")),
        ),
        (
            "activeDeadlineSeconds passed: DeadlineExceeded",
            job(json!({"activeDeadlineSeconds": 10}), json!({"startTime": "2026-11-24T11:59:00Z"})),
            vec![pod("a", "running", json!({}))],
            s(0, 1, 0, (0, 1), 1, Some("FailureTarget:DeadlineExceeded"), Some("Failed:DeadlineExceeded")),
        ),
        (
            "suspended: active Pods are deleted, freed first, not counted",
            job(json!({"suspend": true, "completions": 2, "parallelism": 2}), json!({"startTime": "2026-11-24T11:59:00Z"})),
            vec![pod("a", "running", json!({})), pod("b", "ready", json!({}))],
            s(0, 2, 0, (0, 0), 0, None, None),
        ),
        (
            "TerminatingOrFailed: a terminating Pod is replaced at once (and counted failed)",
            job(json!({}), json!({})),
            vec![pod("a", "deleting", json!({}))],
            s(0, 0, 0, (0, 1), 1, None, None),
        ),
        (
            "podReplacementPolicy Failed: wait for the terminating Pod",
            job(json!({"podReplacementPolicy": "Failed"}), json!({})),
            vec![pod("a", "deleting", json!({}))],
            s(0, 0, 0, (0, 0), 0, None, None),
        ),
        (
            "no completions: the first success ends the Job once the others finish",
            job(json!({"completions": null, "parallelism": 2}), json!({})),
            vec![pod("a", "succeeded", json!({})), pod("b", "running", json!({}))],
            s(0, 0, 1, (1, 0), 1, None, None),
        ),
    ];
    for (name, j, pods, want) in cases {
        let got = seen(&run(&j, &pods));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn back_off_delays_replacements() {
    let j = job(json!({"backoffLimit": 6}), json!({"failed": 1}));
    // Failed 2 s ago: the first retry waits 10 s.
    let p = run(&j, &[no_finalizer(pod("a", "failed:1", json!({})))]);
    assert_eq!(p.create.len(), 0);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(8)));
    // Two failures: 20 s after the last one.
    let p = run(&j, &[no_finalizer(pod("a", "failed:1", json!({}))), no_finalizer(pod("b", "failed:1", json!({})))]);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(18)));
    // Long ago: replace now.
    let old = json!({"status": {"containerStatuses": [{"name": "c", "image": "", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-24T10:00:00Z"}}}]}});
    let p = run(&j, &[no_finalizer(pod("a", "failed:1", old))]);
    assert_eq!(p.create.len(), 1);
    // The deadline requeues the Job for when it passes.
    let j = job(json!({"activeDeadlineSeconds": 100}), json!({"startTime": "2026-11-24T11:59:00Z"}));
    let p = run(&j, &[pod("a", "running", json!({}))]);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(40)));
}

#[test]
fn pod_failure_policy() {
    let policy = json!({"podReplacementPolicy": "Failed", "backoffLimit": 0, "podFailurePolicy": {"rules": [
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [42]}},
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [3]}},
        {"action": "Count", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]}});
    let j = job(policy, json!({}));
    // Exit 42 is ignored: freed but not counted, and the Job goes on despite backoffLimit 0.
    let p = run(&j, &[pod("a", "failed:42", json!({}))]);
    assert_eq!(uncounted(&p), (0, 0));
    assert_eq!(p.remove_finalizers.len(), 1);
    assert!(p.finish.is_none());
    // Exit 3 fails the Job with the upstream message.
    let p = run(&j, &[pod("a", "failed:3", json!({}))]);
    let ft = cond(&p, "FailureTarget").expect("FailureTarget");
    assert_eq!(ft.reason.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(ft.message.as_deref(), Some("Container c for pod default/a failed with exit code 3 matching FailJob rule at index 1"));
    // Any other code counts: over backoffLimit 0.
    let p = run(&j, &[pod("a", "failed:1", json!({}))]);
    assert_eq!(cond(&p, "FailureTarget").and_then(|c| c.reason.clone()).as_deref(), Some("BackoffLimitExceeded"));
    // A condition rule.
    let dis = json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True"}]}});
    let m = match_policy(j.spec.as_ref().and_then(|s| s.pod_failure_policy.as_ref()), &pod("a", "failed:0", dis));
    assert_eq!(m, PolicyMatch { fail_job: None, counts: true, action: Some("Count".into()) });
    // With a policy, only phase Failed is a failure: a terminating Pod waits.
    let p = run(&j, &[pod("a", "deleting", json!({}))]);
    assert_eq!(p.remove_finalizers.len(), 0);
    assert_eq!(p.create.len(), 0);
}

#[test]
fn indexed_jobs() {
    let ix = json!({"completionMode": "Indexed", "completions": 4, "parallelism": 2});
    let j = job(ix.clone(), json!({}));
    let p = run(&j, &[]);
    assert_eq!(p.create.iter().map(|n| n.index).collect::<Vec<_>>(), vec![Some(0), Some(1)]);

    // Index 0 succeeded, 1 running: next is 2; completedIndexes "0".
    let p = run(&j, &[indexed(pod("a", "succeeded", json!({})), 0), indexed(pod("b", "running", json!({})), 1)]);
    assert_eq!(p.create.iter().map(|n| n.index).collect::<Vec<_>>(), vec![Some(2)]);
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0"));
    assert_eq!(p.status.succeeded, Some(1));
    // Succeeded Pods of Indexed Jobs are counted by index, not by UID.
    assert_eq!(uncounted(&p), (0, 0));

    // A duplicate index is removed.
    let p = run(&j, &[indexed(pod("a", "running", json!({})), 1), indexed(pod("b", "running", json!({})), 1)]);
    assert_eq!(p.delete.len(), 1);

    // Every index done: complete.
    let j2 = job(ix.clone(), json!({"completedIndexes": "0-2"}));
    let p = run(&j2, &[indexed(pod("d", "succeeded", json!({})), 3)]);
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0-3"));
    assert_eq!(p.finish.as_ref().map(|c| c.type_.as_str()), Some("Complete"));

    // The Pod carries the index: annotation, label, env, hostname, name.
    let pod = new_pod(&j, &NewPod { index: Some(3), ..Default::default() });
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("j-3-"));
    assert_eq!(pod.metadata.annotations.as_ref().and_then(|a| a.get(INDEX_ANNOTATION)).map(String::as_str), Some("3"));
    assert_eq!(pod.metadata.labels.as_ref().and_then(|a| a.get(INDEX_LABEL)).map(String::as_str), Some("3"));
    let spec = pod.spec.expect("spec");
    assert_eq!(spec.hostname.as_deref(), Some("j-3"));
    let env = spec.containers[0].env.as_ref().expect("env");
    assert!(env.iter().any(|e| e.name == INDEX_ENV));
    assert_eq!(pod.metadata.finalizers, Some(vec![TRACKING_FINALIZER.to_string()]));
    let owner = &pod.metadata.owner_references.expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.controller, owner.block_owner_deletion), ("Job", Some(true), Some(true)));
}

#[test]
fn backoff_limit_per_index_and_success_policy() {
    let j = job(json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3, "backoffLimitPerIndex": 1, "maxFailedIndexes": 1}), json!({}));
    let old = json!({"status": {"containerStatuses": [{"name": "c", "image": "", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-24T10:00:00Z"}}}]}});
    // Index 0 failed once (limit 1): retried, the new Pod carries failure count 1.
    let pods = [indexed(pod("a", "failed:1", old.clone()), 0), indexed(pod("b", "running", json!({})), 1), indexed(pod("c", "running", json!({})), 2)];
    let p = run(&j, &pods);
    assert_eq!(p.create, vec![NewPod { index: Some(0), failures: 1, ignored_failures: 0 }]);
    assert_eq!(p.status.failed_indexes.as_deref(), Some(""));
    // The retry failed too: index 0 is failed and not retried.
    let mut again = indexed(pod("d", "failed:1", old.clone()), 0);
    again.metadata.annotations.get_or_insert_with(Default::default).insert(INDEX_FAILURE_COUNT.into(), "1".into());
    let p = run(&j, &[no_finalizer(pods[0].clone()), again.clone(), pods[1].clone(), pods[2].clone()]);
    assert!(p.create.is_empty());
    assert_eq!(p.status.failed_indexes.as_deref(), Some("0"));
    assert!(p.finish.is_none());
    // The others succeed: the Job fails with FailedIndexes.
    let done = [no_finalizer(pods[0].clone()), no_finalizer(again), indexed(pod("b", "succeeded", json!({})), 1), indexed(pod("c", "succeeded", json!({})), 2)];
    let p = run(&j, &done);
    assert_eq!(p.finish.as_ref().and_then(|c| c.reason.clone()).as_deref(), Some("FailedIndexes"));

    // Success policy: index 1 suffices; the rest is stopped and the Job completes with SuccessPolicy.
    let j = job(json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3, "successPolicy": {"rules": [{"succeededIndexes": "1"}]}}), json!({}));
    let p = run(&j, &[indexed(pod("a", "running", json!({})), 0), indexed(pod("b", "succeeded", json!({})), 1)]);
    assert_eq!(cond(&p, "SuccessCriteriaMet").and_then(|c| c.message.clone()).as_deref(), Some("Matched rules at index 0"));
    assert_eq!(p.delete.len(), 1);
    assert_eq!(p.finish.as_ref().map(|c| (c.type_.as_str(), c.reason.as_deref())), Some(("Complete", Some("SuccessPolicy"))));
}

#[test]
fn counting_after_finalizers_are_removed() {
    let now = ts(NOW);
    let mut st: JobStatus = serde_json::from_value(json!({"succeeded": 1, "terminating": 0,
        "uncountedTerminatedPods": {"succeeded": ["s1", "s2"], "failed": ["f1"]}})).expect("status");
    let fin = condition("Complete", "CompletionsReached", "", now);
    // s2 still has its finalizer (its removal failed): only s1 and f1 move, and the Job cannot finish yet.
    let still: HashSet<String> = ["s2".to_string()].into();
    assert!(!count_freed(&mut st, &still, Some(&fin), true, now));
    assert_eq!((st.succeeded, st.failed), (Some(2), Some(1)));
    // Next time it goes: the Job completes, with a completion time.
    assert!(count_freed(&mut st, &HashSet::new(), Some(&fin), true, now));
    assert_eq!(st.succeeded, Some(3));
    assert!(st.completion_time.is_some());
    assert!(st.conditions.iter().flatten().any(|c| c.type_ == "Complete" && c.status == "True"));
    // Terminating Pods hold the terminal condition back.
    let mut st: JobStatus = serde_json::from_value(json!({"terminating": 1})).expect("status");
    assert!(!count_freed(&mut st, &HashSet::new(), Some(&fin), true, now));
}

#[test]
fn finished_jobs_only_free_pods() {
    let j = job(json!({}), json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}));
    let p = run(&j, &[pod("late", "succeeded", json!({}))]);
    assert_eq!((p.create.len(), p.delete.len(), p.remove_finalizers.len()), (0, 0, 1));
    assert!(p.finish.is_none());
}
