//! Deployments and ReplicaSets end to end, as root on the real binary with stock kubectl: a Deployment becomes
//! Available, scales up and down, replaces a deleted replica, rolls a template change over within
//! maxUnavailable without touching old Pods, rolls back with `kubectl rollout undo`, is collected with its
//! ReplicaSets and Pods, and finishes a rollout across a server restart. The harness's Drop guard
//! (`k1s reset`) removes all kernel state afterwards, pass or fail.
//!
//! The `api` section at the end checks the apps/v1 surface in process (router, no socket): discovery, defaults,
//! validation messages, the scale subresource, status and Table output.
//!
//! Network rule: these tests send no traffic except kubectl's to the server on loopback.

use std::collections::HashMap;
use std::time::Duration;

use k1s_tests::{start_root as start, Server};
use serde_json::Value;


/// A Deployment of busybox Pods that exit at once on SIGTERM (so scale-downs and rollouts are quick).
fn deployment(name: &str, replicas: u32, surge: &str, unavailable: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {surge}
      maxUnavailable: {unavailable}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
"#
    )
}

fn items(v: Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The Deployment's Pods that are not being deleted.
fn live_pods(s: &Server, app: &str) -> Vec<Value> {
    items(s.get_json(&["pods", "-l", &format!("app={app}")])).into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect()
}

fn is_ready(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn uid(v: &Value) -> String {
    v["metadata"]["uid"].as_str().unwrap_or("").to_string()
}

fn env_of(p: &Value) -> Value {
    p["spec"]["containers"][0]["env"].clone()
}

fn rollout_status(s: &Server, name: &str) {
    let out = s.kubectl_ok(&["rollout", "status", &format!("deployment/{name}"), "--timeout=90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
}

/// Wait until exactly `n` live Pods are Ready and the Deployment reports them all available.
fn wait_replicas(s: &Server, name: &str, n: usize) {
    s.wait_for(&format!("{n} ready replicas of {name}"), Duration::from_secs(60), || {
        let d = s.get_json(&["deployment", name]);
        let pods = live_pods(s, name);
        (pods.len() == n && pods.iter().all(is_ready) && d["status"]["availableReplicas"] == n && d["status"]["replicas"] == n).then_some(())
    });
}

fn replicasets(s: &Server, app: &str) -> Vec<Value> {
    items(s.get_json(&["rs", "-l", &format!("app={app}")]))
}

fn revision(v: &Value) -> &str {
    v["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str().unwrap_or("")
}

#[test]
fn deployment_scales_rolls_over_undoes_and_is_collected() {
    let s = start();
    s.apply(&deployment("web", 3, "1", "1"));
    rollout_status(&s, "web");
    let d = s.get_json(&["deployment", "web"]);
    let available = d["status"]["conditions"].as_array().expect("conditions").iter().find(|c| c["type"] == "Available").cloned().expect("Available");
    assert_eq!((available["status"].as_str(), available["reason"].as_str()), (Some("True"), Some("MinimumReplicasAvailable")));
    assert_eq!(revision(&d), "1");
    let rss = replicasets(&s, "web");
    assert_eq!(rss.len(), 1);
    let first = rss[0].clone();
    let hash = first["metadata"]["labels"]["pod-template-hash"].as_str().expect("hash label").to_string();
    assert_eq!(first["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(first["spec"]["selector"]["matchLabels"]["pod-template-hash"], hash.as_str());
    for p in live_pods(&s, "web") {
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash.as_str());
        assert!(p["metadata"]["name"].as_str().unwrap().starts_with(&format!("web-{hash}-")));
        let o = &p["metadata"]["ownerReferences"][0];
        assert_eq!((o["kind"].as_str(), o["controller"].as_bool(), o["blockOwnerDeletion"].as_bool()), (Some("ReplicaSet"), Some(true), Some(true)));
    }
    // Upstream columns.
    let table = s.kubectl_ok(&["get", "deploy", "web"]);
    assert!(table.starts_with("NAME") && table.contains("READY") && table.contains("UP-TO-DATE") && table.contains("AVAILABLE") && table.contains("3/3"), "{table}");
    let wide = s.kubectl_ok(&["get", "rs", "-o", "wide"]);
    assert!(wide.contains("DESIRED") && wide.contains("CURRENT") && wide.contains("SELECTOR") && wide.contains(&format!("app=web,pod-template-hash={hash}")), "{wide}");

    // Scale up and back down through the scale subresource.
    s.kubectl_ok(&["scale", "deployment/web", "--replicas=5"]);
    wait_replicas(&s, "web", 5);
    s.kubectl_ok(&["scale", "deployment/web", "--replicas=3"]);
    wait_replicas(&s, "web", 3);
    let scale: Value = serde_json::from_str(&s.kubectl_ok(&["get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/scale"])).expect("Scale");
    assert_eq!((scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()), (Some("Scale"), Some(3)));

    // A deleted replica is replaced.
    let victim = live_pods(&s, "web")[0].clone();
    s.kubectl_ok(&["delete", "pod", victim["metadata"]["name"].as_str().unwrap(), "--wait=false"]);
    s.wait_for("a replacement pod", Duration::from_secs(60), || {
        let pods = live_pods(&s, "web");
        (pods.len() == 3 && pods.iter().all(is_ready) && pods.iter().all(|p| uid(p) != uid(&victim))).then_some(())
    });

    // A template change rolls over: never fewer than replicas - maxUnavailable ready, old Pods never modified.
    let old: HashMap<String, Value> = live_pods(&s, "web").into_iter().map(|p| (uid(&p), p)).collect();
    s.kubectl_ok(&["set", "env", "deployment/web", "FOO=bar"]);
    let mut min_ready = usize::MAX;
    s.wait_for("the rollout to finish", Duration::from_secs(90), || {
        let pods = items(s.get_json(&["pods", "-l", "app=web"]));
        min_ready = min_ready.min(pods.iter().filter(|p| is_ready(p)).count());
        for p in &pods {
            if let Some(before) = old.get(&uid(p)) {
                assert_eq!(env_of(p), env_of(before), "an old Pod was modified in place");
                assert_eq!(p["spec"], before["spec"], "an old Pod's spec changed");
            }
        }
        let d = s.get_json(&["deployment", "web"]);
        let st = &d["status"];
        let live: Vec<&Value> = pods.iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect();
        (st["observedGeneration"] == d["metadata"]["generation"]
            && st["updatedReplicas"] == 3
            && st["availableReplicas"] == 3
            && st["replicas"] == 3
            && live.len() == 3
            && live.iter().all(|p| env_of(p)[0]["value"] == "bar" && !old.contains_key(&uid(p))))
        .then_some(())
    });
    assert!(min_ready >= 2, "ready Pods dropped to {min_ready} during the rollout (replicas 3, maxUnavailable 1)");
    rollout_status(&s, "web");
    let d = s.get_json(&["deployment", "web"]);
    assert_eq!(revision(&d), "2");
    assert_eq!(replicasets(&s, "web").len(), 2);
    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Undo goes back to the first ReplicaSet, which becomes revision 3.
    s.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    rollout_status(&s, "web");
    s.wait_for("the first ReplicaSet back at 3", Duration::from_secs(60), || {
        let rss = replicasets(&s, "web");
        let back = rss.iter().find(|r| r["metadata"]["name"] == first["metadata"]["name"])?;
        let pods = live_pods(&s, "web");
        (back["spec"]["replicas"] == 3
            && revision(back) == "3"
            && rss.iter().filter(|r| r["metadata"]["name"] != first["metadata"]["name"]).all(|r| r["spec"]["replicas"] == 0)
            && pods.len() == 3
            && pods.iter().all(|p| env_of(p).is_null() && p["metadata"]["labels"]["pod-template-hash"] == hash.as_str()))
        .then_some(())
    });
    assert_eq!(revision(&s.get_json(&["deployment", "web"])), "3");
    let events = s.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.kind=Deployment,reason=ScalingReplicaSet"]);
    assert!(events.contains(&format!("Scaled up replica set web-{hash} from 0 to 3")), "{events}");

    // Deleting the Deployment collects its ReplicaSets and Pods.
    s.kubectl_ok(&["delete", "deployment", "web"]);
    s.wait_for("ReplicaSets and Pods collected", Duration::from_secs(60), || {
        (replicasets(&s, "web").is_empty() && items(s.get_json(&["pods", "-l", "app=web"])).is_empty()).then_some(())
    });
}

#[test]
fn rollout_finishes_across_a_server_restart() {
    let mut s = start();
    // minReadySeconds holds each step for 3 s after a new Pod is ready, so the rollout is reliably still under
    // way when the server is killed (whatever the agent was doing then: Pods may be half set up).
    s.apply(&deployment("api", 4, "25%", "25%").replace("  replicas: 4\n", "  replicas: 4\n  minReadySeconds: 3\n"));
    rollout_status(&s, "api");
    s.kubectl_ok(&["set", "env", "deployment/api", "GEN=2"]);
    s.wait_for("the rollout to be under way", Duration::from_secs(60), || {
        let rss = replicasets(&s, "api");
        let pods = items(s.get_json(&["pods", "-l", "app=api"]));
        let new = pods.iter().filter(|p| env_of(p)[0]["value"] == "2").count();
        (rss.len() == 2 && (1..4).contains(&new)).then_some(())
    });
    s.restart().expect("restart");
    rollout_status(&s, "api");
    s.wait_for("only new Pods", Duration::from_secs(60), || {
        let pods = live_pods(&s, "api");
        let rss = replicasets(&s, "api");
        let old_scaled_down = rss.iter().filter(|r| r["spec"]["template"]["spec"]["containers"][0]["env"].is_null()).all(|r| r["spec"]["replicas"] == 0);
        (pods.len() == 4 && pods.iter().all(|p| is_ready(p) && env_of(p)[0]["value"] == "2") && old_scaled_down && rss.len() == 2).then_some(())
    });
}

#[test]
fn kubectl_verbs_recreate_pause_restart_and_bare_replicasets() {
    let s = start();
    // `kubectl create deployment` (a typed client: protobuf body), with a command after `--`.
    let out = s.kubectl_ok(&["create", "deployment", "mk", "--image=busybox", "--replicas=2", "--", "sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]);
    assert!(out.contains("deployment.apps/mk created"), "{out}");
    rollout_status(&s, "mk");
    let describe = s.kubectl_ok(&["describe", "deployment", "mk"]);
    for want in ["Replicas:", "2 desired | 2 updated | 2 total | 2 available | 0 unavailable", "RollingUpdateStrategy:  25% max unavailable, 25% max surge", "NewReplicaSet:", "ScalingReplicaSet"] {
        assert!(describe.contains(want), "describe lacks {want:?}:\n{describe}");
    }

    // Paused: a template change starts no rollout until resumed.
    s.kubectl_ok(&["rollout", "pause", "deployment/mk"]);
    s.kubectl_ok(&["set", "env", "deployment/mk", "A=1"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(items(s.get_json(&["rs", "-l", "app=mk"])).len(), 1, "a paused Deployment made a new ReplicaSet");
    let d = s.get_json(&["deployment", "mk"]);
    assert!(d["status"]["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Progressing" && c["reason"] == "DeploymentPaused"), "{d}");
    s.kubectl_ok(&["rollout", "resume", "deployment/mk"]);
    rollout_status(&s, "mk");
    assert_eq!(items(s.get_json(&["rs", "-l", "app=mk"])).len(), 2);
    // restart: a template annotation, so a third ReplicaSet.
    s.kubectl_ok(&["rollout", "restart", "deployment/mk"]);
    rollout_status(&s, "mk");
    assert_eq!(items(s.get_json(&["rs", "-l", "app=mk"])).len(), 3);
    // set image: another name for the one local image is another template.
    s.kubectl_ok(&["set", "image", "deployment/mk", "busybox=busybox:latest"]);
    rollout_status(&s, "mk");
    assert_eq!(items(s.get_json(&["rs", "-l", "app=mk"])).len(), 4);
    assert!(live_pods(&s, "mk").iter().all(|p| p["spec"]["containers"][0]["image"] == "busybox:latest"));
    // Scaling in the middle of a rollout is spread over the ReplicaSets and ends at the new count.
    s.kubectl_ok(&["set", "env", "deployment/mk", "C=3"]);
    s.kubectl_ok(&["scale", "deployment/mk", "--replicas=4"]);
    rollout_status(&s, "mk");
    s.wait_for("4 replicas of the latest template", Duration::from_secs(60), || {
        let pods = live_pods(&s, "mk");
        (pods.len() == 4 && pods.iter().all(|p| is_ready(p) && p["spec"]["containers"][0]["env"].as_array().is_some_and(|e| e.iter().any(|v| v["name"] == "C")))).then_some(())
    });

    // Recreate: every old Pod is gone before a new one exists.
    s.apply(&deployment("rec", 2, "1", "1").replace("    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 1\n", "    type: Recreate\n"));
    rollout_status(&s, "rec");
    let old: Vec<String> = live_pods(&s, "rec").iter().map(uid).collect();
    s.kubectl_ok(&["set", "env", "deployment/rec", "B=2"]);
    s.wait_for("the Recreate rollout", Duration::from_secs(60), || {
        let pods = items(s.get_json(&["pods", "-l", "app=rec"]));
        let old_left = pods.iter().any(|p| old.contains(&uid(p)));
        let new = pods.iter().filter(|p| !old.contains(&uid(p))).count();
        assert!(!(old_left && new > 0), "old and new Pods at once under Recreate");
        (!old_left && new == 2 && pods.iter().all(is_ready)).then_some(())
    });

    // A bare ReplicaSet adopts a matching orphan and makes up the rest.
    s.apply(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: stray
  labels:
    app: bare
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
"#,
    );
    s.apply(&deployment("bare", 3, "1", "1").replace("kind: Deployment", "kind: ReplicaSet").replace("  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 1\n", ""));
    s.wait_for("the ReplicaSet to adopt and fill up", Duration::from_secs(60), || {
        let rs = s.get_json(&["rs", "bare"]);
        let stray = s.get_json(&["pod", "stray"]);
        let owned = stray["metadata"]["ownerReferences"][0]["name"] == "bare";
        (owned && live_pods(&s, "bare").len() == 3 && rs["status"]["readyReplicas"] == 3 && rs["status"]["fullyLabeledReplicas"] == 3).then_some(())
    });
    let table = s.kubectl_ok(&["get", "rs", "bare"]);
    assert!(table.lines().nth(1).is_some_and(|l| l.split_whitespace().take(4).collect::<Vec<_>>() == ["bare", "3", "3", "3"]), "{table}");
    // Relabelled: released, and replaced.
    s.kubectl_ok(&["label", "pod", "stray", "app=gone", "--overwrite"]);
    s.wait_for("release and replacement", Duration::from_secs(60), || {
        let stray = s.get_json(&["pod", "stray"]);
        (stray["metadata"]["ownerReferences"].as_array().is_none_or(|o| o.is_empty()) && live_pods(&s, "bare").len() == 3).then_some(())
    });
}

#[test]
fn progress_deadline_and_replicaset_adoption() {
    let s = start();
    // A rollout whose Pods can never start (no such image) stops progressing: the deadline says so and
    // `kubectl rollout status` fails with upstream's message.
    s.apply(&deployment("slow", 2, "1", "0").replace("  replicas: 2\n", "  replicas: 2\n  progressDeadlineSeconds: 3\n"));
    rollout_status(&s, "slow");
    s.kubectl_ok(&["set", "image", "deployment/slow", "main=k1s.invalid/none:1"]);
    s.wait_for("ProgressDeadlineExceeded", Duration::from_secs(30), || {
        let d = s.get_json(&["deployment", "slow"]);
        d["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Progressing" && c["status"] == "False" && c["reason"] == "ProgressDeadlineExceeded").cloned()
    });
    let out = s.kubectl(&["rollout", "status", "deployment/slow", "--timeout=20s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("exceeded its progress deadline"), "{err}");
    // maxUnavailable 0: both old Pods kept serving.
    assert_eq!(live_pods(&s, "slow").iter().filter(|p| is_ready(p)).count(), 2);

    // An orphaned ReplicaSet (its Deployment deleted with --cascade=orphan) is adopted by a new Deployment with
    // the same selector and template, and its Pods are kept.
    s.apply(&deployment("keep", 2, "1", "1"));
    rollout_status(&s, "keep");
    let pods: Vec<String> = live_pods(&s, "keep").iter().map(uid).collect();
    s.kubectl_ok(&["delete", "deployment", "keep", "--cascade=orphan"]);
    s.wait_for("the ReplicaSet orphaned", Duration::from_secs(30), || {
        let rss = replicasets(&s, "keep");
        (rss.len() == 1 && rss[0]["metadata"]["ownerReferences"].as_array().is_none_or(|o| o.is_empty())).then_some(())
    });
    s.apply(&deployment("keep", 2, "1", "1"));
    rollout_status(&s, "keep");
    let d = s.get_json(&["deployment", "keep"]);
    s.wait_for("adoption", Duration::from_secs(30), || {
        let rss = replicasets(&s, "keep");
        (rss.len() == 1 && rss[0]["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]).then_some(())
    });
    let now: Vec<String> = live_pods(&s, "keep").iter().map(uid).collect();
    assert_eq!(now, pods, "the adopted ReplicaSet's Pods were kept");

    // Foreground: the Deployment is gone only after its ReplicaSet, which waits for its Pods (both references
    // block the owner's deletion).
    s.kubectl_ok(&["delete", "deployment", "keep", "--cascade=foreground", "--timeout=60s"]);
    assert!(replicasets(&s, "keep").is_empty());
    assert!(items(s.get_json(&["pods", "-l", "app=keep"])).is_empty(), "Pods left after a foreground delete returned");
}

/// The apps/v1 API surface through the in-process router.
mod api {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::Router;
    use http::{header, Method, Request, StatusCode};
    use http_body_util::BodyExt;
    use k1s_apiserver::ApiServer;
    use k1s_store::MemStore;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

    async fn router() -> Router {
        let api = ApiServer::new(Arc::new(MemStore::new()), "127.0.0.1:6443".into());
        api.bootstrap().await.expect("bootstrap");
        api.router()
    }

    async fn call(r: &Router, method: Method, uri: &str, body: Option<Value>, content_type: &str, accept: &str) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri).header(header::ACCEPT, accept);
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                Body::from(serde_json::to_vec(&v).unwrap())
            }
            None => Body::empty(),
        };
        let resp = r.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn get(r: &Router, uri: &str) -> (StatusCode, Value) {
        call(r, Method::GET, uri, None, "", "application/json").await
    }

    fn web() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    }

    #[tokio::test]
    async fn discovery_lists_apps_with_short_names_and_scale() {
        let r = router().await;
        let (s, list) = get(&r, "/apis/apps/v1").await;
        assert_eq!(s, StatusCode::OK);
        let find = |name: &str| list["resources"].as_array().unwrap().iter().find(|x| x["name"] == name).cloned().unwrap_or(Value::Null);
        assert_eq!(find("deployments")["shortNames"], json!(["deploy"]));
        assert_eq!(find("replicasets")["shortNames"], json!(["rs"]));
        assert_eq!(find("deployments")["categories"], json!(["all"]));
        let scale = find("deployments/scale");
        assert_eq!((scale["group"].as_str(), scale["version"].as_str(), scale["kind"].as_str()), (Some("autoscaling"), Some("v1"), Some("Scale")));
        let (_, agg) = call(&r, Method::GET, "/apis", None, "", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList").await;
        let apps = agg["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apps").expect("apps group");
        let deploys = apps["versions"][0]["resources"].as_array().unwrap().iter().find(|x| x["resource"] == "deployments").unwrap();
        let sub = deploys["subresources"].as_array().unwrap().iter().find(|x| x["subresource"] == "scale").unwrap();
        assert_eq!(sub["responseKind"], json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
        let (s, doc) = get(&r, "/openapi/v3/apis/apps/v1").await;
        assert_eq!(s, StatusCode::OK);
        assert!(doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"].is_object());
    }

    #[tokio::test]
    async fn defaults_validation_scale_status_and_table() {
        let r = router().await;
        let (s, d) = call(&r, Method::POST, DEPLOYS, Some(web()), "application/json", "application/json").await;
        assert_eq!(s, StatusCode::CREATED, "{d}");
        assert_eq!(d["metadata"]["generation"], 1);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"], json!({"maxSurge": "25%", "maxUnavailable": "25%"}));
        assert_eq!((d["spec"]["revisionHistoryLimit"].as_i64(), d["spec"]["progressDeadlineSeconds"].as_i64()), (Some(10), Some(600)));
        assert!(d.get("status").is_none_or(Value::is_null));

        // A selector that does not match the template: 422 naming the field.
        let mut bad = web();
        bad["metadata"]["name"] = json!("bad");
        bad["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        let (s, st) = call(&r, Method::POST, DEPLOYS, Some(bad), "application/json", "application/json").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(st["message"].as_str().unwrap().contains("spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"), "{st}");

        // The scale subresource: GET, merge PATCH (kubectl scale), JSON patch, PUT with a stale resourceVersion.
        let (s, sc) = get(&r, &format!("{DEPLOYS}/web/scale")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(sc["apiVersion"], "autoscaling/v1");
        assert_eq!((sc["spec"]["replicas"].as_i64(), sc["status"]["selector"].as_str()), (Some(1), Some("app=web")));
        let (s, sc) = call(&r, Method::PATCH, &format!("{DEPLOYS}/web/scale"), Some(json!({"spec": {"replicas": 5}})), "application/merge-patch+json", "application/json").await;
        assert_eq!((s, sc["spec"]["replicas"].as_i64()), (StatusCode::OK, Some(5)));
        let (_, d) = get(&r, &format!("{DEPLOYS}/web")).await;
        assert_eq!((d["spec"]["replicas"].as_i64(), d["metadata"]["generation"].as_i64()), (Some(5), Some(2)));
        let (s, sc) = call(&r, Method::PATCH, &format!("{DEPLOYS}/web/scale"), Some(json!([{"op": "replace", "path": "/spec/replicas", "value": 2}])), "application/json-patch+json", "application/json").await;
        assert_eq!((s, sc["spec"]["replicas"].as_i64()), (StatusCode::OK, Some(2)));
        let stale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"}, "spec": {"replicas": 3}});
        let (s, _) = call(&r, Method::PUT, &format!("{DEPLOYS}/web/scale"), Some(stale), "application/json", "application/json").await;
        assert_eq!(s, StatusCode::CONFLICT);
        let negative = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": -1}});
        let (s, st) = call(&r, Method::PUT, &format!("{DEPLOYS}/web/scale"), Some(negative), "application/json", "application/json").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(st["message"].as_str().unwrap().contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"), "{st}");

        // The selector is immutable.
        let (_, mut d) = get(&r, &format!("{DEPLOYS}/web")).await;
        d["spec"]["selector"] = json!({"matchLabels": {"app": "web", "x": "y"}});
        d["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        let (s, st) = call(&r, Method::PUT, &format!("{DEPLOYS}/web"), Some(d), "application/json", "application/json").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(st["message"].as_str().unwrap().contains("spec.selector") && st["message"].as_str().unwrap().contains("field is immutable"), "{st}");

        // Status only through /status, and a status write leaves spec alone.
        let (_, mut d) = get(&r, &format!("{DEPLOYS}/web")).await;
        d["status"] = json!({"replicas": 2, "readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1});
        d["spec"]["replicas"] = json!(9);
        let (s, after) = call(&r, Method::PUT, &format!("{DEPLOYS}/web/status"), Some(d), "application/json", "application/json").await;
        assert_eq!(s, StatusCode::OK, "{after}");
        assert_eq!((after["spec"]["replicas"].as_i64(), after["status"]["readyReplicas"].as_i64()), (Some(2), Some(1)));

        // Table: upstream's columns and cells.
        let (s, t) = call(&r, Method::GET, DEPLOYS, None, "", "application/json;as=Table;v=v1;g=meta.k8s.io").await;
        assert_eq!(s, StatusCode::OK);
        let names: Vec<&str> = t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]);
        let cells = &t["rows"][0]["cells"];
        assert_eq!((&cells[0], &cells[1], &cells[2], &cells[3]), (&json!("web"), &json!("1/2"), &json!(2), &json!(1)));
    }
}
