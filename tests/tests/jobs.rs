//! Jobs end to end, as root on the real binary with stock kubectl: the seed Job, parallelism, back-off limits,
//! Indexed Jobs, suspension, deadlines, pod failure policies, TTL, deletion with each propagation policy, and
//! a server restart in the middle of a Job. Each test's server has its own data dir, port, bridge, CIDR and
//! cgroup parent; the harness's Drop guard (`k1s reset`) removes all kernel state afterwards, pass or fail.
//!
//! Network rule: these tests send no traffic except kubectl's to the server on loopback.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use k1s_tests::{start_root as start, Server};
use serde_json::Value;


fn job_json(s: &Server, name: &str) -> Option<Value> {
    s.try_get_json(&["job", name])
}

/// The Job's True condition of that type, once it has one.
fn condition(job: &Value, ty: &str) -> Option<Value> {
    job["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == ty && c["status"] == "True").cloned()
}

fn wait_condition(s: &Server, name: &str, ty: &str, timeout: Duration) -> Value {
    s.wait_for(&format!("job {name} {ty}"), timeout, || job_json(s, name).filter(|j| condition(j, ty).is_some()))
}

fn job_pods(s: &Server, name: &str) -> Vec<Value> {
    let v = s.get_json(&["pods", "-l", &format!("job-name={name}")]);
    v["items"].as_array().cloned().unwrap_or_default()
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

fn count(j: &Value, field: &str) -> i64 {
    j["status"][field].as_i64().unwrap_or(0)
}

/// The seed's Job, with `restartPolicy: OnFailure` where it belongs (the Pod template's spec).
const SEED: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: hello
        image: busybox
        command: ["sh", "-c", "echo Hello world from a Kubernetes Job"]
"#;

#[test]
fn seed_job_parallelism_and_indexed_jobs() {
    let s = start();
    // The seed as first pasted, with restartPolicy at the Job's level: the error says where it belongs.
    let wrong = SEED.replace("  template:\n    spec:\n      restartPolicy: OnFailure\n", "  restartPolicy: OnFailure\n  template:\n    spec:\n");
    let bad = s.dir.join("wrong-seed.yaml");
    std::fs::write(&bad, &wrong).expect("write manifest");
    let out = s.kubectl(&["apply", "-f", bad.to_str().expect("path")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a Job with restartPolicy at spec level is refused");
    assert!(err.contains("restartPolicy") && err.contains("spec.template.spec"), "the error names the field and where it belongs: {err}");

    s.apply(SEED);
    s.apply(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: five
spec:
  completions: 5
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "sleep 0.5"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: idx
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "echo index=$JOB_COMPLETION_INDEX host=$(hostname)"]
"#,
    );
    // `kubectl wait` sees the seed Job complete, and its logs are the Pod's.
    s.kubectl_ok(&["wait", "--for=condition=complete", "job/hello", "--timeout=60s"]);
    let logs = s.kubectl_ok(&["logs", "job/hello"]);
    assert_eq!(logs.trim(), "Hello world from a Kubernetes Job");
    let j = job_json(&s, "hello").expect("job");
    assert_eq!(count(&j, "succeeded"), 1);
    assert!(j["status"]["completionTime"].is_string(), "completionTime is set: {}", j["status"]);
    let pods = job_pods(&s, "hello");
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    let name = pod["metadata"]["name"].as_str().expect("name");
    assert!(name.starts_with("hello-") && name.len() == "hello-".len() + 5, "Pods are named <job>-<5 chars>: {name}");
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!((owner["kind"].as_str(), owner["controller"].as_bool()), (Some("Job"), Some(true)));
    assert_eq!(pod["metadata"]["labels"]["batch.kubernetes.io/job-name"], "hello");
    assert!(pod["metadata"]["labels"]["controller-uid"].is_string());
    assert!(pod["metadata"]["finalizers"].as_array().is_none_or(|f| f.is_empty()), "the tracking finalizer is gone once counted");
    let describe = s.kubectl_ok(&["describe", "job", "hello"]);
    assert!(describe.contains("1 Succeeded"), "{describe}");
    assert!(describe.contains("SuccessfulCreate") && describe.contains("Completed"), "describe shows the Job's events:\n{describe}");

    // completions 5, parallelism 2: never more than 2 active, 5 succeeded Pods in the end.
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = job_pods(&s, "five");
        let active = pods.iter().filter(|p| !matches!(phase(p), "Succeeded" | "Failed")).count();
        most = most.max(active);
        let j = job_json(&s, "five").expect("job");
        assert!(count(&j, "active") <= 2, "status.active never exceeds parallelism: {}", j["status"]);
        if condition(&j, "Complete").is_some() {
            assert_eq!(count(&j, "succeeded"), 5);
            // (Listed again: the list above may predate the last Pod's success.)
            let pods = job_pods(&s, "five");
            assert_eq!(pods.iter().filter(|p| phase(p) == "Succeeded").count(), 5, "exactly 5 Pods ran");
            assert_eq!(pods.len(), 5, "no Pod beyond the 5 completions");
            break;
        }
        assert!(Instant::now() < deadline, "job five did not complete: {}", j["status"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(most <= 2, "at most 2 Pods were active at once, saw {most}");
    assert!(most >= 1);

    // Indexed: every Pod sees its index, in env, annotation, label and hostname.
    let j = wait_condition(&s, "idx", "Complete", Duration::from_secs(60));
    assert_eq!(j["status"]["completedIndexes"], "0-2");
    let mut seen = HashSet::new();
    for p in job_pods(&s, "idx") {
        let ix = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].as_str().expect("index annotation").to_string();
        assert_eq!(p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"].as_str(), Some(ix.as_str()));
        let name = p["metadata"]["name"].as_str().expect("name");
        assert!(name.starts_with(&format!("idx-{ix}-")), "{name}");
        let logs = s.kubectl_ok(&["logs", name]);
        assert_eq!(logs.trim(), format!("index={ix} host=idx-{ix}"));
        seen.insert(ix);
    }
    assert_eq!(seen, ["0", "1", "2"].iter().map(|s| s.to_string()).collect());
}

#[test]
fn failing_jobs_backoff_deadline_and_failure_policy() {
    let s = start();
    let hostdir = s.dir.join("flags");
    std::fs::create_dir_all(&hostdir).expect("flags dir");
    s.apply(&format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: fails
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "exit 3"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: slow
spec:
  activeDeadlineSeconds: 2
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: ["sleep", "600"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: flaky
spec:
  backoffLimit: 0
  podFailurePolicy:
    rules:
    - action: Ignore
      onExitCodes:
        operator: In
        values: [42]
  template:
    spec:
      restartPolicy: Never
      volumes:
      - name: flags
        hostPath:
          path: {dir}
      containers:
      - name: c
        image: busybox
        volumeMounts:
        - name: flags
          mountPath: /flags
        command: ["sh", "-c", "if [ -e /flags/tried ]; then echo second; exit 0; fi; touch /flags/tried; exit 42"]
"#,
        dir = hostdir.display()
    ));

    // activeDeadlineSeconds: the running Pod is stopped, the Job fails with DeadlineExceeded.
    let j = wait_condition(&s, "slow", "Failed", Duration::from_secs(60));
    assert_eq!(condition(&j, "Failed").expect("Failed")["reason"], "DeadlineExceeded");
    assert_eq!(count(&j, "active"), 0);
    s.wait_for("the deadline's Pod stops", Duration::from_secs(30), || {
        job_pods(&s, "slow").iter().all(|p| phase(p) == "Failed" || p["metadata"]["deletionTimestamp"].is_string()).then_some(())
    });

    // The exit code the policy ignores is retried despite backoffLimit 0, and does not count as failed.
    let j = wait_condition(&s, "flaky", "Complete", Duration::from_secs(60));
    assert_eq!((count(&j, "succeeded"), count(&j, "failed")), (1, 0), "{}", j["status"]);
    assert_eq!(job_pods(&s, "flaky").len(), 2);

    // backoffLimit 2: three failed Pods (with back-off between them), then Failed/BackoffLimitExceeded.
    s.kubectl_ok(&["wait", "--for=condition=failed", "job/fails", "--timeout=120s"]);
    let j = job_json(&s, "fails").expect("job");
    let failed = condition(&j, "Failed").expect("Failed");
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(failed["message"], "Job has reached the specified backoff limit");
    assert!(condition(&j, "FailureTarget").is_some(), "the interim FailureTarget condition is kept, as upstream");
    assert_eq!(count(&j, "failed"), 3);
    let pods = job_pods(&s, "fails");
    assert_eq!(pods.len(), 3, "exactly 3 Pods were created");
    assert!(pods.iter().all(|p| phase(p) == "Failed"));
    let events = s.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=fails"]);
    assert!(events.contains("BackoffLimitExceeded"), "{events}");
}

#[test]
fn suspend_resume_ttl_and_deletion_propagation() {
    let s = start();
    let sleeper = |name: &str, extra: &str| {
        format!(
            r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  {extra}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: ["sleep", "600"]
"#
        )
    };
    s.apply(&sleeper("paused", "suspend: true"));
    s.apply(&sleeper("bg", "parallelism: 2\n  completions: 2"));
    s.apply(&sleeper("fg", "parallelism: 2\n  completions: 2"));
    s.apply(&sleeper("orph", "parallelism: 2\n  completions: 2"));

    // Suspended: no Pods, Suspended=True; resumed: it runs.
    let j = wait_condition(&s, "paused", "Suspended", Duration::from_secs(30));
    assert_eq!(condition(&j, "Suspended").expect("cond")["reason"], "JobSuspended");
    assert!(job_pods(&s, "paused").is_empty());
    assert!(j["status"]["startTime"].is_null(), "a Job created suspended has not started");
    s.kubectl_ok(&["patch", "job", "paused", "--type=merge", "-p", r#"{"spec":{"suspend":false}}"#]);
    s.wait_for("resumed job runs a Pod", Duration::from_secs(30), || job_pods(&s, "paused").iter().any(|p| phase(p) == "Running").then_some(()));
    let j = job_json(&s, "paused").expect("job");
    let c = j["status"]["conditions"].as_array().expect("conditions").iter().find(|c| c["type"] == "Suspended").cloned().expect("Suspended");
    assert_eq!((c["status"].as_str(), c["reason"].as_str()), (Some("False"), Some("JobResumed")));
    // Suspending again stops the Pod.
    s.kubectl_ok(&["patch", "job", "paused", "--type=merge", "-p", r#"{"spec":{"suspend":true}}"#]);
    s.wait_for("suspended job has no Pods", Duration::from_secs(30), || job_pods(&s, "paused").is_empty().then_some(()));
    assert_eq!(count(&job_json(&s, "paused").expect("job"), "active"), 0);

    // ttlSecondsAfterFinished: the finished Job and its Pods go.
    s.apply(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: short
spec:
  ttlSecondsAfterFinished: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["true"]
"#,
    );
    // (It may be gone already when we look: then its Complete condition was seen by the TTL controller.)
    s.wait_for("short completes", Duration::from_secs(60), || job_json(&s, "short").is_none_or(|j| condition(&j, "Complete").is_some()).then_some(()));
    s.wait_for("ttl removes the job", Duration::from_secs(30), || job_json(&s, "short").is_none().then_some(()));
    s.wait_for("ttl removes the job's pods", Duration::from_secs(30), || job_pods(&s, "short").is_empty().then_some(()));
    let events = s.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=short"]);
    assert!(events.contains("Completed"), "the Job completed before the TTL removed it: {events}");

    for name in ["bg", "fg", "orph"] {
        s.wait_for(&format!("{name} runs 2 Pods"), Duration::from_secs(30), || {
            (job_pods(&s, name).iter().filter(|p| phase(p) == "Running").count() == 2).then_some(())
        });
    }
    // kubectl's default (background): the Job goes at once, its Pods after it.
    s.kubectl_ok(&["delete", "job", "bg", "--wait=false"]);
    assert!(job_json(&s, "bg").is_none());
    s.wait_for("background deletion removes the pods", Duration::from_secs(30), || job_pods(&s, "bg").is_empty().then_some(()));

    // Foreground: the Job stays (being deleted) until its Pods are gone.
    s.kubectl_ok(&["delete", "job", "fg", "--cascade=foreground", "--wait=false"]);
    let j = job_json(&s, "fg").expect("the job stays while its pods go");
    assert!(j["metadata"]["deletionTimestamp"].is_string());
    assert!(j["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion")));
    s.wait_for("foreground deletion removes pods, then the job", Duration::from_secs(30), || {
        (job_pods(&s, "fg").is_empty() && job_json(&s, "fg").is_none()).then_some(())
    });

    // Orphan: the Pods keep running, without an owner and free of the tracking finalizer.
    s.kubectl_ok(&["delete", "job", "orph", "--cascade=orphan"]);
    assert!(job_json(&s, "orph").is_none());
    let pods = s.wait_for("orphaned pods are released", Duration::from_secs(30), || {
        let pods = job_pods(&s, "orph");
        let released = pods.len() == 2
            && pods.iter().all(|p| {
                p["metadata"]["ownerReferences"].as_array().is_none_or(|o| o.is_empty())
                    && p["metadata"]["finalizers"].as_array().is_none_or(|f| f.is_empty())
            });
        released.then_some(pods)
    });
    assert!(pods.iter().all(|p| phase(p) == "Running"), "orphaned Pods keep running");
}

#[test]
fn server_restart_mid_job_counts_every_completion_once() {
    let mut s = start();
    s.apply(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: steady
spec:
  completions: 8
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "sleep 0.7"]
"#,
    );
    s.wait_for("some completions", Duration::from_secs(60), || {
        let j = job_json(&s, "steady")?;
        (count(&j, "succeeded") >= 2).then_some(())
    });
    s.kill9();
    // Pods keep finishing while the server is down.
    std::thread::sleep(Duration::from_millis(1500));
    s.restart().expect("server restarts");
    let j = wait_condition(&s, "steady", "Complete", Duration::from_secs(90));
    assert_eq!(count(&j, "succeeded"), 8, "{}", j["status"]);
    assert_eq!(count(&j, "failed"), 0, "{}", j["status"]);
    let pods = job_pods(&s, "steady");
    assert_eq!(pods.iter().filter(|p| phase(p) == "Succeeded").count(), 8, "exactly 8 Pods succeeded: no completion lost or run twice");
    assert_eq!(pods.len(), 8);
}
