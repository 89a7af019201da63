//! End-to-end: the real `k1s` binary on a random port with its own data dir, driven by the kube crate as a
//! real client over HTTPS (and by kubectl when it is on PATH).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::json;

use k1s_tests::Server;

fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}
    }))
    .unwrap()
}

fn api_err(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn namespaces_pods_and_jobs_through_the_kube_client() {
    let server = Server::start().unwrap();
    let client = server.client().await.unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|n| n.metadata.name).collect();
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.iter().any(|n| n == want), "{want} exists at boot: {names:?}");
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "e2e"}})).unwrap();
    let created = namespaces.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "e2e");
    let p = pods.create(&PostParams::default(), &pod("web", &[("app", "web")])).await.unwrap();
    assert!(p.metadata.uid.is_some() && p.metadata.creation_timestamp.is_some());
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    pods.create(&PostParams::default(), &pod("db", &[("app", "db")])).await.unwrap();

    // Create of an existing name: 409 AlreadyExists.
    assert_eq!(api_err(pods.create(&PostParams::default(), &pod("web", &[])).await.unwrap_err()), (409, "AlreadyExists".into()));

    // Label selectors.
    let web = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert_eq!(web.items.len(), 1);
    let not_web = pods.list(&ListParams::default().labels("app notin (web)")).await.unwrap();
    assert_eq!(not_web.items[0].metadata.name.as_deref(), Some("db"));
    // Field selectors; cluster-wide list.
    let by_name = Api::<Pod>::all(client.clone()).list(&ListParams::default().fields("metadata.name=db")).await.unwrap();
    assert_eq!(by_name.items.len(), 1);
    assert_eq!(by_name.items[0].metadata.namespace.as_deref(), Some("e2e"));

    // Merge patch, then an update with the now stale resourceVersion: 409 Conflict.
    let stale = pods.get("web").await.unwrap();
    let patched = pods.patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}}))).await.unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["tier"], "front");
    assert_ne!(patched.metadata.resource_version, stale.metadata.resource_version);
    let mut replaced = stale.clone();
    replaced.spec.as_mut().unwrap().containers[0].image = Some("busybox:1.36".into());
    assert_eq!(api_err(pods.replace("web", &PostParams::default(), &replaced).await.unwrap_err()), (409, "Conflict".into()));

    // Jobs get upstream defaults and a generated selector.
    let jobs: Api<Job> = Api::namespaced(client.clone(), "e2e");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "hello"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "hello", "image": "busybox", "command": ["echo", "Hello world from a Kubernetes Job"]}]}}}
    }))
    .unwrap();
    let j = jobs.create(&PostParams::default(), &job).await.unwrap();
    let spec = j.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(6));
    assert_eq!(spec.completions, Some(1));
    let uid = j.metadata.uid.unwrap();
    assert_eq!(spec.selector.unwrap().match_labels.unwrap()["batch.kubernetes.io/controller-uid"], uid);
    assert_eq!(j.metadata.generation, Some(1));

    // An invalid Job: 422 naming the field.
    let mut bad = job.clone();
    bad.metadata.name = Some("bad".into());
    bad.spec.as_mut().unwrap().template.spec.as_mut().unwrap().restart_policy = Some("Always".into());
    match jobs.create(&PostParams::default(), &bad).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("spec.template.spec.restartPolicy"), "{}", s.message);
        }
        e => panic!("{e:?}"),
    }

    // Delete with grace 0: the pod goes at once (its node stops the container after).
    pods.delete("db", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    assert_eq!(api_err(pods.get("db").await.unwrap_err()).0, 404);

    // Delete the namespace: Terminating, contents removed, then gone.
    namespaces.delete("e2e", &DeleteParams::default()).await.unwrap();
    let t = namespaces.get("e2e").await;
    if let Ok(t) = t {
        assert!(t.metadata.deletion_timestamp.is_some());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match namespaces.get("e2e").await {
            Err(kube::Error::Api(s)) if s.code == 404 => break,
            _ if std::time::Instant::now() > deadline => panic!("namespace e2e not removed:\n{}", server.log()),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(api_err(jobs.get("hello").await.unwrap_err()).0, 404, "the namespace's objects were deleted");
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version() {
    let server = Server::start().unwrap();
    let client = server.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = |name: &str| -> ConfigMap { serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap() };
    cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let rv = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();

    cms.create(&PostParams::default(), &cm("b")).await.unwrap();
    cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "v2"}}))).await.unwrap();
    cms.delete("b", &DeleteParams::default()).await.unwrap();

    let stream = cms.watch(&WatchParams::default().timeout(5), &rv).await.unwrap();
    let events: Vec<_> = stream.take(3).try_collect().await.unwrap();
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(o) => ("ADDED".into(), o.metadata.name.clone().unwrap()),
            WatchEvent::Modified(o) => ("MODIFIED".into(), o.metadata.name.clone().unwrap()),
            WatchEvent::Deleted(o) => ("DELETED".into(), o.metadata.name.clone().unwrap()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        seen,
        [("ADDED".into(), "b".into()), ("MODIFIED".into(), "a".into()), ("DELETED".into(), "b".into())],
        "every change after the list's resourceVersion, in order"
    );

    // A watcher (informer style) sees the initial state and then live changes.
    let watcher = kube::runtime::watcher(cms.clone(), kube::runtime::watcher::Config::default());
    let mut objects = Box::pin(kube::runtime::WatchStreamExt::applied_objects(watcher));
    let first = tokio::time::timeout(Duration::from_secs(5), objects.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("a"));
    cms.create(&PostParams::default(), &cm("c")).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), objects.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(next.metadata.name.as_deref(), Some("c"));
}

#[tokio::test]
async fn requests_without_credentials_get_401() {
    let server = Server::start().unwrap();
    let anon = server.anonymous_client().await.unwrap();
    let err = Api::<Namespace>::all(anon.clone()).list(&ListParams::default()).await.unwrap_err();
    assert_eq!(api_err(err), (401, "Unauthorized".into()));
    // Health and version answer anonymously.
    let ready = anon.request_text(http::Request::get("/readyz").body(Vec::new()).unwrap()).await.unwrap();
    assert_eq!(ready, "ok");
    let v = anon.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "33"));
    assert!(v.git_version.contains("k1s"));

    // A wrong token is refused too.
    let mut kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    for a in kc.auth_infos.iter_mut() {
        a.auth_info.as_mut().unwrap().token = Some("not-the-token".to_string().into());
    }
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    let wrong = Client::try_from(cfg).unwrap();
    assert_eq!(api_err(Api::<Pod>::all(wrong).list(&ListParams::default()).await.unwrap_err()).0, 401);

    // Credentials are private to root.
    for f in ["kubeconfig.yaml", "pki/ca.key", "pki/server.key", "pki/admin.token"] {
        let mode = std::fs::metadata(server.dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} is mode {mode:o}");
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let mut server = Server::start().unwrap();
    let client = server.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    // Concurrent writers (they share flushes), every write acknowledged before the kill.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let cms = cms.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..25 {
                let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("d-{t}-{i}")}, "data": {"i": i.to_string()}})).unwrap();
                let c = cms.create(&PostParams::default(), &cm).await.unwrap();
                out.push((c.metadata.name.unwrap(), c.metadata.resource_version.unwrap()));
            }
            out
        }));
    }
    let mut acked = BTreeMap::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), 200);
    server.restart().unwrap();

    let cms: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "default");
    let after: BTreeMap<String, String> =
        cms.list(&ListParams::default()).await.unwrap().items.into_iter().map(|c| (c.metadata.name.unwrap(), c.metadata.resource_version.unwrap())).collect();
    assert_eq!(after, acked, "every acknowledged create is present with its resourceVersion after kill -9");
    // The revision counter continues: a new write gets a higher resourceVersion.
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "after"}})).unwrap();
    let c = cms.create(&PostParams::default(), &cm).await.unwrap();
    let max = acked.values().map(|v| v.parse::<u64>().unwrap()).max().unwrap();
    assert!(c.metadata.resource_version.unwrap().parse::<u64>().unwrap() > max);
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_data_remains() {
    let mut server = Server::start().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "kept"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    // An open watch must not hold the shutdown up.
    let _watch = cms.watch(&WatchParams::default(), "0").await.unwrap();
    let status = server.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "exit status {status}\n{}", server.log());
    assert!(server.log().contains("stopped"));
    server.restart().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client().await.unwrap(), "default");
    assert!(cms.get("kept").await.is_ok());
    // The same CA is reused across restarts, so existing kubeconfigs keep working.
    let ca_before = std::fs::read_to_string(server.dir.join("pki/ca.crt")).unwrap();
    assert_eq!(ca_before, server.ca_pem);
}

/// Run kubectl (when on PATH) against the written kubeconfig, with a fresh cache dir.
fn kubectl(server: &Server, args: &[&str]) -> Option<std::process::Output> {
    let which = std::process::Command::new("sh").args(["-c", "command -v kubectl"]).output().ok()?;
    if !which.status.success() {
        eprintln!("kubectl is not on PATH: skipping the kubectl smoke test");
        return None;
    }
    let cache = server.dir.join("kubectl-cache");
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args(args)
        .output()
        .expect("kubectl runs");
    Some(out)
}

#[tokio::test]
async fn kubectl_get_namespaces_through_the_written_kubeconfig() {
    let server = Server::start().unwrap();
    let Some(out) = kubectl(&server, &["get", "namespaces"]) else { return };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "kubectl failed: {}", String::from_utf8_lossy(&out.stderr));
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(stdout.contains(ns), "{ns} in:\n{stdout}");
    }
    let out = kubectl(&server, &["get", "pods", "-A"]).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_server_keeps_serving() {
    let server = Server::start().unwrap();
    let client = server.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let big: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "big"}, "data": {"x": "a".repeat(4 << 20)}})).unwrap();
    assert_eq!(api_err(cms.create(&PostParams::default(), &big).await.unwrap_err()).0, 413);
    let small: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "small"}})).unwrap();
    cms.create(&PostParams::default(), &small).await.unwrap();
}
