//! Garbage collection and Events. In-process (API server over a MemStore, the garbage collector and the API
//! server's loops spawned beside it, kube's client over the router): propagation policies, dangling dependents,
//! re-deletes, namespaces with GC finalizers inside, kube `Recorder` events through events.k8s.io/v1, the core
//! view of them, `kubectl get events` ordering and expiry. End to end (root, the real binary, stock kubectl):
//! the same policies with `kubectl delete --cascade`, a Pod owned by a ConfigMap going through the agent's
//! graceful deletion, and the agent's aggregated events.
//!
//! Network rule: traffic goes only to loopback and to Pod IPs this server assigned.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{header, Request};
use http_body_util::BodyExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k1s_apiserver::ApiServer;
use k1s_store::MemStore;
use k1s_tests::{start_root as start, Server};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as RecorderEvent, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use serde_json::{json, Value};
use tower::ServiceExt;

const HOLD: &str = "k1s.test/hold";

// ---------------------------------------------------------------------------------------------
// In-process harness
// ---------------------------------------------------------------------------------------------

/// An API server over a fresh in-memory store with its namespace lifecycle, and a client over its router.
async fn api_server() -> (ApiServer, Client) {
    let api = ApiServer::new(Arc::new(MemStore::new()), "127.0.0.1:6443".into());
    api.bootstrap().await.expect("bootstrap");
    tokio::spawn(k1s_apiserver::namespaces::run(api.registry().clone()));
    let client = Client::new(api.router(), "default");
    (api, client)
}

/// The same with the garbage collector running.
async fn with_gc() -> (ApiServer, Client) {
    let (api, client) = api_server().await;
    tokio::spawn(k1s_controllers::gc::run(client.clone()));
    (api, client)
}

/// Poll `f` until it answers Some (every 20 ms, at most 10 s).
async fn eventually<T, Fut: Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> Fut) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn owner_ref<K: Resource<DynamicType = ()>>(o: &K, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into(),
        kind: K::kind(&()).into(),
        name: o.meta().name.clone().unwrap(),
        uid: o.meta().uid.clone().unwrap(),
        block_owner_deletion: block.then_some(true),
        controller: None,
    }
}

fn ghost_ref(name: &str, uid: &str) -> OwnerReference {
    OwnerReference { api_version: "v1".into(), kind: "ConfigMap".into(), name: name.into(), uid: uid.into(), ..Default::default() }
}

async fn create_cm(cms: &Api<ConfigMap>, name: &str, owners: Vec<OwnerReference>, finalizers: &[&str]) -> ConfigMap {
    let mut cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap();
    if !owners.is_empty() {
        cm.metadata.owner_references = Some(owners);
    }
    if !finalizers.is_empty() {
        cm.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
    }
    cms.create(&PostParams::default(), &cm).await.unwrap_or_else(|e| panic!("create {name}: {e}"))
}

async fn gone<K>(api: &Api<K>, name: &str) -> Option<()>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.unwrap().is_none().then_some(())
}

fn policy(p: &str) -> DeleteParams {
    match p {
        "Foreground" => DeleteParams::foreground(),
        "Orphan" => DeleteParams::orphan(),
        _ => DeleteParams::background(),
    }
}

async fn release(cms: &Api<ConfigMap>, name: &str) {
    cms.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.expect("remove the hold finalizer");
}

fn owner_uids(cm: &ConfigMap) -> Vec<String> {
    cm.metadata.owner_references.iter().flatten().map(|r| r.uid.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// In-process: garbage collection
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn gc_background_collects_dependents_cascading_and_dangling_ones() {
    let (_api, client) = with_gc().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = create_cm(&cms, "owner", vec![], &[]).await;
    let live = create_cm(&cms, "live", vec![], &[]).await;
    let d1 = create_cm(&cms, "d1", vec![owner_ref(&owner, true)], &[]).await;
    create_cm(&cms, "d2", vec![owner_ref(&owner, false)], &[]).await;
    // A dependent of a dependent goes with it.
    create_cm(&cms, "d1-child", vec![owner_ref(&d1, false)], &[]).await;
    // Both owners must be gone: one alive keeps it.
    create_cm(&cms, "shared", vec![owner_ref(&owner, false), owner_ref(&live, false)], &[]).await;
    // Created with references to owners that never existed: a uid nobody has, and a live name with the wrong uid.
    create_cm(&cms, "ghost-dep", vec![ghost_ref("nobody", "00000000-0000-4000-8000-000000000000")], &[]).await;
    create_cm(&cms, "wrong-uid-dep", vec![ghost_ref("live", "11111111-1111-4111-8111-111111111111")], &[]).await;
    create_cm(&cms, "live-dep", vec![owner_ref(&live, false)], &[]).await;

    for name in ["ghost-dep", "wrong-uid-dep"] {
        eventually(&format!("{name} collected"), || gone(&cms, name)).await;
    }

    cms.delete("owner", &DeleteParams::background()).await.unwrap();
    assert!(cms.get_opt("owner").await.unwrap().is_none(), "a background delete removes the owner at once");
    for name in ["d1", "d2", "d1-child"] {
        eventually(&format!("{name} collected"), || gone(&cms, name)).await;
    }
    // The one with a living owner stays, its dangling reference removed.
    let shared = eventually("shared loses its dangling reference", || async {
        let s = cms.get("shared").await.unwrap();
        (owner_uids(&s).len() == 1).then_some(s)
    })
    .await;
    assert_eq!(owner_uids(&shared), [live.metadata.uid.clone().unwrap()]);
    assert!(cms.get_opt("live-dep").await.unwrap().is_some(), "a dependent of a living owner stays");
    assert!(cms.get_opt("live").await.unwrap().is_some());
}

#[tokio::test]
async fn gc_foreground_owner_waits_for_blocking_dependents() {
    let (_api, client) = with_gc().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = create_cm(&cms, "owner", vec![], &[]).await;
    // The blocking dependent is held by someone else's finalizer, so its deletion takes a while.
    create_cm(&cms, "blocker", vec![owner_ref(&owner, true)], &[HOLD]).await;
    create_cm(&cms, "plain", vec![owner_ref(&owner, false)], &[]).await;

    let resp = cms.delete("owner", &DeleteParams::foreground()).await.unwrap();
    let held = resp.left().expect("the owner is answered as it now is, still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(held.metadata.finalizers.iter().flatten().any(|f| f == "foregroundDeletion"), "{:?}", held.metadata.finalizers);

    eventually("the dependents are deleted", || async {
        let b = cms.get("blocker").await.unwrap();
        (b.metadata.deletion_timestamp.is_some() && cms.get_opt("plain").await.unwrap().is_none()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let o = cms.get("owner").await.expect("the owner waits for its blocking dependent");
    assert_eq!(o.metadata.finalizers.as_deref(), Some(&["foregroundDeletion".to_string()][..]));

    release(&cms, "blocker").await;
    eventually("the owner goes once its blocking dependent is gone", || gone(&cms, "owner")).await;
}

#[tokio::test]
async fn gc_foreground_cascades_through_dependents_with_dependents() {
    let (_api, client) = with_gc().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let top = create_cm(&cms, "top", vec![], &[]).await;
    let mid = create_cm(&cms, "mid", vec![owner_ref(&top, true)], &[]).await;
    create_cm(&cms, "leaf", vec![owner_ref(&mid, true)], &[HOLD]).await;
    cms.delete("top", &DeleteParams::foreground()).await.unwrap();
    // mid has a dependent of its own: it is deleted in the foreground too, and waits with top.
    let m = eventually("mid deleted in the foreground", || async {
        let m = cms.get("mid").await.unwrap();
        m.metadata.deletion_timestamp.is_some().then_some(m)
    })
    .await;
    assert!(m.metadata.finalizers.iter().flatten().any(|f| f == "foregroundDeletion"));
    eventually("leaf being deleted", || async { cms.get("leaf").await.unwrap().metadata.deletion_timestamp.is_some().then_some(()) }).await;
    assert!(cms.get_opt("top").await.unwrap().is_some());
    release(&cms, "leaf").await;
    for name in ["leaf", "mid", "top"] {
        eventually(&format!("{name} gone"), || gone(&cms, name)).await;
    }
}

#[tokio::test]
async fn gc_orphan_removes_the_references_and_keeps_the_dependents() {
    let (_api, client) = with_gc().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = create_cm(&cms, "owner", vec![], &[]).await;
    let other = create_cm(&cms, "other", vec![], &[]).await;
    create_cm(&cms, "a", vec![owner_ref(&owner, true), owner_ref(&other, false)], &[]).await;
    create_cm(&cms, "b", vec![owner_ref(&owner, false)], &[]).await;

    let resp = cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    let held = resp.left().expect("the owner waits for the orphaning");
    assert!(held.metadata.finalizers.iter().flatten().any(|f| f == "orphan"));
    eventually("the owner goes after orphaning", || gone(&cms, "owner")).await;
    let a = cms.get("a").await.unwrap();
    assert_eq!(owner_uids(&a), [other.metadata.uid.clone().unwrap()], "only the reference to the deleted owner goes");
    let b = cms.get("b").await.unwrap();
    assert!(b.metadata.owner_references.is_none(), "{:?}", b.metadata.owner_references);
    // They are not collected later either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cms.get_opt("a").await.unwrap().is_some() && cms.get_opt("b").await.unwrap().is_some());
}

fn job_body(name: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}
    }))
    .unwrap()
}

fn pod_owned_by(name: &str, owner: OwnerReference) -> Pod {
    let mut p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    p.metadata.owner_references = Some(vec![owner]);
    p
}

#[tokio::test]
async fn gc_jobs_orphan_their_pods_by_default_and_not_with_background() {
    let (_api, client) = with_gc().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    for name in ["kept", "cascaded"] {
        let j = jobs.create(&PostParams::default(), &job_body(name)).await.unwrap();
        let mut r = owner_ref(&j, true);
        r.controller = Some(true);
        pods.create(&PostParams::default(), &pod_owned_by(&format!("{name}-pod"), r)).await.unwrap();
    }
    // kube's DeleteParams::default() names no policy: batch/v1 Jobs orphan (upstream's legacy default).
    let resp = jobs.delete("kept", &DeleteParams::default()).await.unwrap();
    assert!(resp.left().expect("held for orphaning").metadata.finalizers.iter().flatten().any(|f| f == "orphan"));
    eventually("the Job goes", || gone(&jobs, "kept")).await;
    let p = pods.get("kept-pod").await.unwrap();
    assert!(p.metadata.owner_references.is_none(), "the Pod is orphaned: {:?}", p.metadata.owner_references);

    jobs.delete("cascaded", &DeleteParams::background()).await.unwrap();
    eventually("the background-deleted Job's Pod goes", || gone(&pods, "cascaded-pod")).await;
    assert!(pods.get_opt("kept-pod").await.unwrap().is_some());
}

/// Without the garbage collector: what the API server does with the policy of a second delete.
#[tokio::test]
async fn delete_again_with_another_policy_follows_upstream() {
    let (_api, client) = api_server().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    create_cm(&cms, "o", vec![], &[HOLD]).await;
    let fins = |cm: ConfigMap| cm.metadata.finalizers.unwrap_or_default();
    let step = |p: Option<&'static str>| {
        let cms = cms.clone();
        async move {
            let params = p.map(policy).unwrap_or_default();
            fins(cms.delete("o", &params).await.unwrap().left().expect("held by its finalizers"))
        }
    };
    assert_eq!(step(Some("Orphan")).await, [HOLD, "orphan"]);
    assert_eq!(step(Some("Foreground")).await, [HOLD, "foregroundDeletion"], "a later Foreground swaps the finalizer");
    assert_eq!(step(None).await, [HOLD, "foregroundDeletion"], "no policy: the existing one stands");
    assert_eq!(step(Some("Background")).await, [HOLD], "a later Background drops both");
    release(&cms, "o").await;
    assert!(cms.get_opt("o").await.unwrap().is_none(), "the last finalizer gone, the object goes");

    // Background on an object held only by a GC finalizer removes it at once.
    create_cm(&cms, "p", vec![], &[]).await;
    cms.delete("p", &DeleteParams::foreground()).await.unwrap();
    assert!(cms.get_opt("p").await.unwrap().is_some(), "held (no garbage collector runs here)");
    cms.delete("p", &DeleteParams::background()).await.unwrap();
    assert!(cms.get_opt("p").await.unwrap().is_none());
}

#[tokio::test]
async fn namespace_deletion_waits_for_gc_finalizers_inside_it() {
    let (_api, client) = with_gc().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap()).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "doomed");
    let pods: Api<Pod> = Api::namespaced(client, "doomed");
    let owner = create_cm(&cms, "owner", vec![], &[]).await;
    create_cm(&cms, "blocker", vec![owner_ref(&owner, true)], &[HOLD]).await;
    let j = jobs.create(&PostParams::default(), &job_body("j")).await.unwrap();
    pods.create(&PostParams::default(), &pod_owned_by("j-pod", owner_ref(&j, true))).await.unwrap();
    cms.delete("owner", &DeleteParams::foreground()).await.unwrap();

    nss.delete("doomed", &DeleteParams::background()).await.unwrap();
    eventually("everything not held is gone", || async {
        (jobs.get_opt("j").await.unwrap().is_none() && pods.get_opt("j-pod").await.unwrap().is_none()).then_some(())
    })
    .await;
    let ns = nss.get("doomed").await.expect("the namespace waits for the held objects");
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    assert!(cms.get_opt("owner").await.unwrap().is_some(), "the foreground owner waits for its blocker");
    release(&cms, "blocker").await;
    eventually("the namespace goes once its contents are gone", || gone(&nss, "doomed")).await;
}

// ---------------------------------------------------------------------------------------------
// In-process: events
// ---------------------------------------------------------------------------------------------

fn cm_reference(cm: &ConfigMap) -> ObjectReference {
    cm.object_ref(&())
}

async fn publish(recorder: &Recorder, reason: &str, regarding: &ObjectReference) {
    recorder
        .publish(&RecorderEvent { type_: EventType::Normal, reason: reason.into(), note: Some(format!("{reason} happened")), action: "Test".into(), secondary: None }, regarding)
        .await
        .expect("publish");
}

#[tokio::test]
async fn kube_recorder_events_post_and_merge_patch_through_events_k8s_io_and_read_as_core_events() {
    let (_api, client) = api_server().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = create_cm(&cms, "subject", vec![], &[]).await;
    let recorder = Recorder::new(client.clone(), Reporter { controller: "k1s-test-controller".into(), instance: Some("i-1".into()) });
    let regarding = cm_reference(&cm);
    publish(&recorder, "Tested", &regarding).await; // POST
    publish(&recorder, "Tested", &regarding).await; // merge PATCH with series
    publish(&recorder, "Tested", &regarding).await;

    let new: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    let list = new.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1, "repeats count up one Event");
    let e = &list.items[0];
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(e.reporting_controller.as_deref(), Some("k1s-test-controller"));
    assert_eq!(e.regarding.as_ref().and_then(|r| r.name.as_deref()), Some("subject"));

    // The core/v1 view as kubectl reads it: involvedObject, count, first/last timestamps, source.
    let core: Api<Event> = Api::namespaced(client, "default");
    let ev = core.list(&kube::api::ListParams::default().fields("involvedObject.kind=ConfigMap,involvedObject.name=subject")).await.unwrap();
    assert_eq!(ev.items.len(), 1);
    let ev = &ev.items[0];
    assert_eq!(ev.involved_object.uid, cm.metadata.uid);
    assert_eq!(ev.count, Some(3));
    assert_eq!(ev.message.as_deref(), Some("Tested happened"));
    assert_eq!(ev.source.as_ref().and_then(|s| s.component.as_deref()), Some("k1s-test-controller"));
    let first = ev.first_timestamp.as_ref().expect("firstTimestamp").0;
    let last = ev.last_timestamp.as_ref().expect("lastTimestamp").0;
    let series_last = ev.series.as_ref().and_then(|s| s.last_observed_time.as_ref()).unwrap().0;
    assert!(first <= last, "{first} <= {last}");
    assert_eq!(last.as_second(), series_last.as_second(), "lastTimestamp follows the series");
}

async fn table(api: &ApiServer, uri: &str) -> Value {
    let req = Request::get(uri).header(header::ACCEPT, "application/json;as=Table;v=v1;g=meta.k8s.io").body(Body::empty()).unwrap();
    let resp = api.router().oneshot(req).await.unwrap();
    serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test]
async fn events_table_is_ordered_by_last_seen() {
    let (api, client) = api_server().await;
    let core: Api<Event> = Api::namespaced(client, "default");
    // Names in one order, times in another; one new-style Event (eventTime/series only).
    for (name, body) in [
        ("a", json!({"lastTimestamp": "2026-01-01T10:00:00Z", "firstTimestamp": "2026-01-01T08:00:00Z", "count": 4})),
        ("b", json!({"lastTimestamp": "2026-01-01T09:00:00Z", "firstTimestamp": "2026-01-01T09:00:00Z", "count": 1})),
        ("c", json!({"eventTime": "2026-01-01T08:30:00.000000Z", "series": {"count": 2, "lastObservedTime": "2026-01-01T09:30:00.000000Z"},
                     "reportingComponent": "x", "reportingInstance": "x", "action": "A"})),
    ] {
        let mut ev = json!({"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "R", "message": name, "type": "Normal"});
        ev.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        core.create(&PostParams::default(), &serde_json::from_value(ev).unwrap()).await.unwrap();
    }
    let t = table(&api, "/api/v1/namespaces/default/events").await;
    let names: Vec<&str> = t["rows"].as_array().unwrap().iter().map(|r| r["cells"][9].as_str().unwrap()).collect();
    assert_eq!(names, ["b", "c", "a"], "{t}");
    // The new-style Event reads with its series count.
    assert_eq!(t["rows"][1]["cells"][8], 2);
    let t = table(&api, "/apis/events.k8s.io/v1/namespaces/default/events").await;
    let names: Vec<&str> = t["rows"].as_array().unwrap().iter().map(|r| r["cells"][9].as_str().unwrap()).collect();
    assert_eq!(names, ["b", "c", "a"], "the events.k8s.io view too");
}

#[tokio::test]
async fn events_expire_after_their_ttl() {
    let (api, client) = api_server().await;
    let ttl = Duration::from_secs(2);
    tokio::spawn(k1s_apiserver::events::run(api.registry().clone(), ttl));
    let core: Api<Event> = Api::namespaced(client.clone(), "default");
    let plain = |name: &str| -> Event {
        serde_json::from_value(json!({"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R", "message": name, "count": 1})).unwrap()
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = create_cm(&cms, "subject", vec![], &[]).await;
    let recorder = Recorder::new(client.clone(), Reporter { controller: "ttl-test".into(), instance: None });
    core.create(&PostParams::default(), &plain("early")).await.unwrap();
    publish(&recorder, "Repeated", &cm_reference(&cm)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Seen again (series.lastObservedTime moves on) and a new Event: both younger than the TTL.
    publish(&recorder, "Repeated", &cm_reference(&cm)).await;
    core.create(&PostParams::default(), &plain("late")).await.unwrap();

    eventually("the early event expires", || gone(&core, "early")).await;
    let left: Vec<String> = core.list(&Default::default()).await.unwrap().items.into_iter().map(|e| e.message.unwrap_or_default()).collect();
    assert!(left.contains(&"late".to_string()), "{left:?}");
    assert!(left.contains(&"Repeated happened".to_string()), "an Event seen again lives on: {left:?}");
    eventually("all expire", || async { core.list(&Default::default()).await.unwrap().items.is_empty().then_some(()) }).await;
}

// ---------------------------------------------------------------------------------------------
// End to end (root)
// ---------------------------------------------------------------------------------------------


fn uid_of(s: &Server, what: &[&str]) -> String {
    s.get_json(what)["metadata"]["uid"].as_str().expect("uid").to_string()
}

fn exists(s: &Server, what: &[&str]) -> Option<Value> {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json", "--ignore-not-found"]);
    let out = s.kubectl_ok(&args);
    if out.trim().is_empty() {
        None
    } else {
        Some(serde_json::from_str(&out).expect("json"))
    }
}

fn wait_gone(s: &Server, what: &[&str]) {
    s.wait_for(&format!("{what:?} gone"), Duration::from_secs(60), || exists(s, what).is_none().then_some(()));
}

fn cm_manifest(name: &str, owners: &[(&str, &str, bool)], finalizers: &[&str]) -> String {
    let refs: Vec<Value> = owners.iter().map(|(n, uid, block)| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": uid, "blockOwnerDeletion": block})).collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "ownerReferences": refs, "finalizers": finalizers}, "data": {"k": "v"}}).to_string()
}

#[test]
fn gc_e2e_kubectl_cascade_background_foreground_orphan_and_dangling() {
    let s = start();
    for o in ["o-bg", "o-fg", "o-or"] {
        s.apply(&cm_manifest(o, &[], &[]));
    }
    let (bg, fg, or) = (uid_of(&s, &["cm", "o-bg"]), uid_of(&s, &["cm", "o-fg"]), uid_of(&s, &["cm", "o-or"]));
    s.apply(&cm_manifest("bg-dep", &[("o-bg", &bg, false)], &[]));
    s.apply(&cm_manifest("fg-dep", &[("o-fg", &fg, true)], &[HOLD]));
    s.apply(&cm_manifest("or-dep", &[("o-or", &or, true)], &[]));
    s.apply(&cm_manifest("ghost-dep", &[("nobody", "00000000-0000-4000-8000-000000000000", false)], &[]));

    // A dependent created with a reference to an owner that never existed is collected.
    wait_gone(&s, &["cm", "ghost-dep"]);

    // kubectl's default cascade is background: the owner goes at once, its dependent after.
    s.kubectl_ok(&["delete", "cm", "o-bg"]);
    wait_gone(&s, &["cm", "bg-dep"]);

    // Foreground: the owner stays, marked, while its blocking dependent is being deleted.
    s.kubectl_ok(&["delete", "cm", "o-fg", "--cascade=foreground", "--wait=false"]);
    s.wait_for("fg-dep being deleted", Duration::from_secs(30), || exists(&s, &["cm", "fg-dep"])?["metadata"]["deletionTimestamp"].as_str().map(|_| ()));
    std::thread::sleep(Duration::from_millis(500));
    let owner = exists(&s, &["cm", "o-fg"]).expect("the foreground owner waits");
    assert!(owner["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(owner["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    s.kubectl_ok(&["patch", "cm", "fg-dep", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]);
    wait_gone(&s, &["cm", "fg-dep"]);
    wait_gone(&s, &["cm", "o-fg"]);

    // Orphan: the owner goes, the dependent stays without its reference.
    s.kubectl_ok(&["delete", "cm", "o-or", "--cascade=orphan"]);
    wait_gone(&s, &["cm", "o-or"]);
    let dep = exists(&s, &["cm", "or-dep"]).expect("the orphan stays");
    assert!(dep["metadata"]["ownerReferences"].is_null(), "{dep}");
}

fn pod_manifest(s: &Server, name: &str, owner: &str, owner_uid: &str, command: &[&str], restart: &str) -> String {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name,
            "ownerReferences": if owner.is_empty() { json!([]) } else { json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": owner_uid, "blockOwnerDeletion": true}]) }},
        "spec": {"nodeName": s.id.node_name, "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": "busybox", "command": command}]}})
    .to_string()
}

fn wait_running(s: &Server, name: &str) {
    s.wait_for(&format!("pod {name} Running"), Duration::from_secs(30), || (exists(s, &["pod", name])?["status"]["phase"] == "Running").then_some(()));
}

#[test]
fn gc_e2e_pods_owned_by_configmaps_go_through_the_agent() {
    let s = start();
    s.apply(&cm_manifest("fg-owner", &[], &[]));
    s.apply(&cm_manifest("bg-owner", &[], &[]));
    let (fg, bg) = (uid_of(&s, &["cm", "fg-owner"]), uid_of(&s, &["cm", "bg-owner"]));
    s.apply(&pod_manifest(&s, "fg-pod", "fg-owner", &fg, &["sleep", "3600"], "Always"));
    s.apply(&pod_manifest(&s, "bg-pod", "bg-owner", &bg, &["sleep", "3600"], "Always"));
    wait_running(&s, "fg-pod");
    wait_running(&s, "bg-pod");

    // Foreground: the Pod is deleted gracefully (sleep as PID 1 ignores SIGTERM, so it takes its grace period);
    // the owner stays with its finalizer until the agent has removed the Pod.
    s.kubectl_ok(&["delete", "cm", "fg-owner", "--cascade=foreground", "--wait=false"]);
    s.wait_for("fg-pod terminating", Duration::from_secs(30), || exists(&s, &["pod", "fg-pod"])?["metadata"]["deletionTimestamp"].as_str().map(|_| ()));
    let owner = exists(&s, &["cm", "fg-owner"]).expect("the owner waits for its Pod");
    assert_eq!(owner["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    wait_gone(&s, &["pod", "fg-pod"]);
    wait_gone(&s, &["cm", "fg-owner"]);

    // Background: the owner goes at once, the Pod after, through the same graceful path.
    s.kubectl_ok(&["delete", "cm", "bg-owner"]);
    wait_gone(&s, &["pod", "bg-pod"]);
}

#[test]
fn events_e2e_agent_duplicates_aggregate_describe_and_kube_recorder() {
    let s = start();
    s.apply(&pod_manifest(&s, "crash", "", "", &["sh", "-c", "exit 1"], "Always"));
    // Each restart repeats Created/Started, and each back-off BackOff, with the same message and container.
    let events = s.wait_for("an event of the crash-looping Pod counted twice", Duration::from_secs(90), || {
        let list = s.get_json(&["events", "--field-selector", "involvedObject.name=crash"]);
        let items = list["items"].as_array()?.clone();
        items.iter().any(|e| e["count"].as_i64().unwrap_or(0) >= 2).then_some(items)
    });
    let mut keys: Vec<(String, String, String)> = events
        .iter()
        .map(|e| (e["reason"].as_str().unwrap_or("").into(), e["message"].as_str().unwrap_or("").into(), e["involvedObject"]["fieldPath"].as_str().unwrap_or("").into()))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "one Event object per repeated event: {events:#?}");
    let counted = events.iter().find(|e| e["count"].as_i64().unwrap_or(0) >= 2).unwrap();
    assert_eq!(counted["source"]["component"], "kubelet");
    assert!(counted["lastTimestamp"].as_str() >= counted["firstTimestamp"].as_str(), "{counted}");

    // kubectl describe lists the Pod's events (field selector on involvedObject), with the repeat count.
    let describe = s.kubectl_ok(&["describe", "pod", "crash"]);
    let section = describe.split("Events:").nth(1).unwrap_or_else(|| panic!("no Events section:\n{describe}"));
    assert!(section.contains("Started") && section.contains("kubelet"), "{section}");
    assert!(section.contains("(x2 over") || section.contains("(x3 over"), "a repeat count in:\n{section}");

    // A controller's events through kube's Recorder (events.k8s.io/v1 POST, then merge PATCH with a series).
    s.apply(&cm_manifest("subject", &[], &[]));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = s.client().await.expect("client");
        let cm: ConfigMap = Api::namespaced(client.clone(), "default").get("subject").await.unwrap();
        let recorder = Recorder::new(client, Reporter { controller: "e2e-controller".into(), instance: Some("e2e".into()) });
        for _ in 0..2 {
            publish(&recorder, "Reconciled", &cm_reference(&cm)).await;
        }
    });
    let wide = s.kubectl_ok(&["get", "events", "-o", "wide", "--field-selector", "involvedObject.name=subject"]);
    let row = wide.lines().find(|l| l.contains("Reconciled")).unwrap_or_else(|| panic!("no Reconciled row:\n{wide}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert!(cells.contains(&"e2e-controller,"), "source column: {row}");
    assert_eq!(cells[cells.len() - 2], "2", "count column: {row}");
    let core = s.get_json(&["events", "--field-selector", "reason=Reconciled"]);
    assert_eq!(core["items"][0]["count"], 2);
    assert_eq!(core["items"][0]["source"]["component"], "e2e-controller");
    let plain = s.kubectl_ok(&["get", "events"]);
    assert!(plain.contains("configmap/subject"), "{plain}");
}
