//! In-process tests of the API server's router (no socket, no binary): what a client sees — status codes, `Status` bodies, objects, discovery documents and watch streams — for every request path k1s serves.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use k1s_apiserver::ApiServer;
use k1s_store::MemStore;
use serde_json::{json, Value};
use tower::ServiceExt;

const JSON: &str = "application/json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";

const PODS: &str = "/api/v1/namespaces/default/pods";
const CMS: &str = "/api/v1/namespaces/default/configmaps";
const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";

/// How long a watch event may take to arrive before the test fails.
const EVENT_WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A bootstrapped API server over `store` (namespaces default, kube-system, kube-public, kube-node-lease).
async fn server_with(store: MemStore) -> ApiServer {
    let api = ApiServer::new(Arc::new(store), "127.0.0.1:6443".into());
    api.bootstrap().await.expect("bootstrap creates the built-in namespaces");
    api
}

/// A fresh server over a fresh in-memory store, and its (unauthenticated) router.
async fn server() -> (ApiServer, Router) {
    let api = server_with(MemStore::new()).await;
    let router = api.router();
    (api, router)
}

/// Send one request; answer the status, the headers and the body parsed as JSON (Null when empty, a JSON
/// string holding the text when it is not JSON).
async fn send(router: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let resp = router.clone().oneshot(req).await.expect("the router is infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("the body is readable").to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, body)
}

/// One request with an optional JSON body sent with `content_type`.
async fn call(router: &Router, method: Method, path_and_query: &str, body: Option<Value>, content_type: &str) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path_and_query);
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, content_type);
            Body::from(serde_json::to_vec(&v).expect("JSON serialises"))
        }
        None => Body::empty(),
    };
    let (status, _, v) = send(router, req.body(body).expect("valid request")).await;
    (status, v)
}

async fn get(router: &Router, uri: &str) -> (StatusCode, Value) {
    call(router, Method::GET, uri, None, JSON).await
}

async fn post(router: &Router, uri: &str, body: Value) -> (StatusCode, Value) {
    call(router, Method::POST, uri, Some(body), JSON).await
}

async fn put(router: &Router, uri: &str, body: Value) -> (StatusCode, Value) {
    call(router, Method::PUT, uri, Some(body), JSON).await
}

async fn patch(router: &Router, uri: &str, content_type: &str, body: Value) -> (StatusCode, Value) {
    call(router, Method::PATCH, uri, Some(body), content_type).await
}

async fn delete(router: &Router, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    call(router, Method::DELETE, uri, body, JSON).await
}

/// Create and insist on 201.
async fn create(router: &Router, collection: &str, body: Value) -> Value {
    let (s, v) = post(router, collection, body).await;
    assert_eq!(s, StatusCode::CREATED, "create in {collection}: {v}");
    v
}

/// Assert a failure `Status` body with `code` and `reason`.
#[track_caller]
fn assert_failure(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "not a Status: {body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "a Status carries a message: {body}");
}

/// The names of a list's items, sorted.
fn names(list: &Value) -> Vec<String> {
    let mut n: Vec<String> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i["metadata"]["name"].as_str().expect("items have names").to_string())
        .collect();
    n.sort();
    n
}

fn rv(obj: &Value) -> String {
    let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or_else(|| panic!("no metadata.resourceVersion: {obj}"));
    assert!(!rv.is_empty() && rv.parse::<u64>().is_ok(), "resourceVersion {rv:?}");
    rv.to_string()
}

/// Percent-encode a query parameter value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn job(name: &str, restart_policy: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": restart_policy}}}})
}

/// A streaming watch response, read line by line.
struct Watch {
    body: Body,
    buf: Vec<u8>,
    ended: bool,
}

#[derive(Debug)]
enum Next {
    Event(Value),
    /// Nothing arrived in time.
    Quiet,
    /// The server finished the body.
    End,
}

/// Open a watch; it must answer 200 with a JSON stream.
async fn watch(router: &Router, uri: &str) -> Watch {
    let resp = router.clone().oneshot(Request::get(uri).body(Body::empty()).expect("valid request")).await.expect("infallible");
    let status = resp.status();
    if status != StatusCode::OK {
        let b = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        panic!("watch {uri}: {status}: {}", String::from_utf8_lossy(&b));
    }
    assert_eq!(resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some(JSON), "watch {uri}");
    Watch { body: resp.into_body(), buf: Vec::new(), ended: false }
}

impl Watch {
    /// The next JSON line, or Quiet after `within`, or End when the body finished.
    async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let ev: Value = serde_json::from_slice(&line).unwrap_or_else(|e| panic!("watch line is not JSON ({e}): {}", String::from_utf8_lossy(&line)));
                assert!(ev["type"].is_string() && ev["object"].is_object(), "a watch event is {{type, object}}: {ev}");
                return Next::Event(ev);
            }
            if self.ended {
                assert!(self.buf.iter().all(u8::is_ascii_whitespace), "the stream ended inside a line: {}", String::from_utf8_lossy(&self.buf));
                return Next::End;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return Next::Quiet,
                Ok(None) => self.ended = true,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Ok(Some(Err(e))) => panic!("watch body failed: {e}"),
            }
        }
    }

    /// The next event, which must arrive within [`EVENT_WAIT`].
    async fn event(&mut self) -> Value {
        match self.next(EVENT_WAIT).await {
            Next::Event(e) => e,
            other => panic!("expected a watch event, got {other:?}"),
        }
    }

    /// The next `n` events.
    async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.event().await);
        }
        out
    }

    /// Nothing may arrive for `d` (and the stream must still be open).
    async fn expect_quiet(&mut self, d: Duration) {
        match self.next(d).await {
            Next::Quiet => {}
            other => panic!("expected no watch event, got {other:?}"),
        }
    }

    /// Every event until the body ends, which must happen within `within`.
    async fn until_end(&mut self, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Event(e) => out.push(e),
                Next::End => return out,
                Next::Quiet => panic!("the watch did not end within {within:?}; events so far: {out:?}"),
            }
        }
    }
}

/// `(type, name)` of an event.
fn summary(ev: &Value) -> (String, String) {
    (ev["type"].as_str().unwrap_or("").to_string(), ev["object"]["metadata"]["name"].as_str().unwrap_or("").to_string())
}

#[track_caller]
fn assert_event(ev: &Value, kind: &str, name: &str) {
    assert_eq!(summary(ev), (kind.to_string(), name.to_string()), "{ev}");
    rv(&ev["object"]);
}

// ---------------------------------------------------------------------------------------------
// 1, 2: discovery and version
// ---------------------------------------------------------------------------------------------

const AGGREGATED_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

async fn get_accept(router: &Router, uri: &str, accept: &str) -> (StatusCode, HeaderMap, Value) {
    send(router, Request::get(uri).header(header::ACCEPT, accept).body(Body::empty()).unwrap()).await
}

fn find_by<'a>(list: &'a Value, field: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .find(|x| x[field] == value)
        .unwrap_or_else(|| panic!("no entry with {field}={value:?} in {list}"))
}

#[tokio::test]
async fn discovery_aggregated_and_legacy() {
    let (_api, r) = server().await;

    // Aggregated /api: the exact Content-Type, or kubectl falls back to legacy parsing and finds nothing.
    let (s, h, core) = get_accept(&r, "/api", AGGREGATED_ACCEPT).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), AGGREGATED_V2);
    assert_eq!(core["kind"], "APIGroupDiscoveryList");
    assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
    let v1 = find_by(&core["items"][0]["versions"], "version", "v1");
    let pods = find_by(&v1["resources"], "resource", "pods");
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    assert_eq!(pods["responseKind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
    assert_eq!(pods["scope"], "Namespaced");
    assert_eq!(pods["singularResource"], "pod");
    let subs: Vec<&str> = pods["subresources"].as_array().unwrap().iter().map(|s| s["subresource"].as_str().unwrap()).collect();
    assert!(subs.contains(&"status") && subs.contains(&"binding"), "{subs:?}");
    assert_eq!(find_by(&v1["resources"], "resource", "namespaces")["scope"], "Cluster");

    // Aggregated /apis: jobs under batch.
    let (s, h, groups) = get_accept(&r, "/apis", AGGREGATED_ACCEPT).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), AGGREGATED_V2);
    assert_eq!(groups["kind"], "APIGroupDiscoveryList");
    let batch = groups["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "batch").expect("batch group");
    let jobs = find_by(&find_by(&batch["versions"], "version", "v1")["resources"], "resource", "jobs");
    assert_eq!(jobs["responseKind"], json!({"group": "batch", "version": "v1", "kind": "Job"}));
    assert!(groups["items"].as_array().unwrap().iter().any(|g| g["metadata"]["name"] == "coordination.k8s.io"));
    assert!(groups["items"].as_array().unwrap().iter().any(|g| g["metadata"]["name"] == "events.k8s.io"));

    // Legacy documents with a plain Accept.
    let (s, h, legacy) = get_accept(&r, "/api", "application/json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), JSON);
    assert_eq!(legacy["kind"], "APIVersions");
    assert_eq!(legacy["versions"], json!(["v1"]));
    assert_eq!(legacy["serverAddressByClientCIDRs"][0]["serverAddress"], "127.0.0.1:6443");
    let (s, _, legacy) = get_accept(&r, "/apis", "application/json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(legacy["kind"], "APIGroupList");
    let batch = find_by(&legacy["groups"], "name", "batch");
    assert_eq!(batch["preferredVersion"]["groupVersion"], "batch/v1");
    let (s, legacy) = get(&r, "/apis").await;
    assert_eq!((s, legacy["kind"].as_str()), (StatusCode::OK, Some("APIGroupList")), "no Accept at all is legacy too");

    // Resource lists.
    let (s, list) = get(&r, "/api/v1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["kind"], "APIResourceList");
    assert_eq!(list["groupVersion"], "v1");
    let pods = find_by(&list["resources"], "name", "pods");
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert!(pods["verbs"].as_array().unwrap().contains(&json!("watch")));
    assert_eq!(find_by(&list["resources"], "name", "pods/status")["kind"], "Pod");
    assert_eq!(find_by(&list["resources"], "name", "pods/binding")["kind"], "Binding");
    let (s, list) = get(&r, "/apis/batch/v1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["groupVersion"], "batch/v1");
    find_by(&list["resources"], "name", "jobs");
    let (s, group) = get(&r, "/apis/batch").await;
    assert_eq!((s, group["kind"].as_str()), (StatusCode::OK, Some("APIGroup")));
    let (s, st) = get(&r, "/apis/batch/v2").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_failure(&st, 404, "NotFound");
}

#[tokio::test]
async fn version_names_k1s() {
    let (_api, r) = server().await;
    let (s, v) = get(&r, "/version").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "33");
    assert!(v["gitVersion"].as_str().unwrap().contains("k1s"), "{v}");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.33."), "{v}");
    assert!(v["platform"].as_str().unwrap().contains('/'), "{v}");
}

// ---------------------------------------------------------------------------------------------
// 3, 4: CRUD and validation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn pod_create_get_list_delete() {
    let (_api, r) = server().await;

    let created = create(&r, PODS, pod("p")).await;
    assert_eq!(created["kind"], "Pod");
    assert_eq!(created["apiVersion"], "v1");
    assert_eq!(created["metadata"]["name"], "p");
    assert_eq!(created["metadata"]["namespace"], "default");
    let uid = created["metadata"]["uid"].as_str().expect("uid").to_string();
    assert_eq!(uid.len(), 36, "a UUID: {uid}");
    let ts = created["metadata"]["creationTimestamp"].as_str().expect("creationTimestamp");
    assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
    let rv1 = rv(&created);
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(created["status"]["qosClass"], "BestEffort");
    assert_eq!(created["spec"]["restartPolicy"], "Always");
    assert_eq!(created["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(created["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(created["spec"]["containers"][0]["imagePullPolicy"], "Always");

    let (s, got) = get(&r, &format!("{PODS}/p")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["metadata"]["uid"], uid.as_str());
    assert_eq!(rv(&got), rv1);
    assert_eq!(got["kind"], "Pod");

    let (s, list) = get(&r, PODS).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    rv(&list);
    assert!(list["metadata"].get("continue").is_none(), "{list}");
    assert_eq!(names(&list), ["p"]);

    // Missing object.
    let (s, st) = get(&r, &format!("{PODS}/x")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_failure(&st, 404, "NotFound");
    assert_eq!(st["message"], r#"pods "x" not found"#);
    assert_eq!(st["details"], json!({"name": "x", "kind": "pods"}));

    // A job's 404 names the group too.
    let (s, st) = get(&r, &format!("{JOBS}/nope")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(st["message"], r#"jobs.batch "nope" not found"#);
    assert_eq!(st["details"], json!({"name": "nope", "kind": "jobs", "group": "batch"}));

    // Duplicate.
    let (s, st) = post(&r, PODS, pod("p")).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_failure(&st, 409, "AlreadyExists");
    assert_eq!(st["message"], r#"pods "p" already exists"#);
    assert_eq!(st["details"]["name"], "p");

    // Optimistic concurrency: a PUT with the current resourceVersion wins, one with a stale one is a Conflict.
    let mut body = got.clone();
    body["metadata"]["labels"] = json!({"v": "2"});
    let (s, updated) = put(&r, &format!("{PODS}/p"), body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["metadata"]["labels"]["v"], "2");
    assert_ne!(rv(&updated), rv1);
    assert_eq!(updated["metadata"]["uid"], uid.as_str());
    body["metadata"]["labels"] = json!({"v": "3"});
    let (s, st) = put(&r, &format!("{PODS}/p"), body).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_failure(&st, 409, "Conflict");
    assert!(st["message"].as_str().unwrap().contains("the object has been modified"), "{st}");
    let (_, now) = get(&r, &format!("{PODS}/p")).await;
    assert_eq!(now["metadata"]["labels"]["v"], "2", "the stale write changed nothing");

    // An unbound pod goes at once.
    let (s, gone) = delete(&r, &format!("{PODS}/p"), None).await;
    assert_eq!(s, StatusCode::OK, "{gone}");
    assert_eq!(gone["metadata"]["name"], "p");
    let (s, _) = get(&r, &format!("{PODS}/p")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, st) = delete(&r, &format!("{PODS}/p"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_failure(&st, 404, "NotFound");

    // Unknown paths: upstream's generic 404, with empty details.
    for path in ["/api/v1/bogus", "/apis/nope/v1/things", "/api/v1/namespaces/default/pods/p/bogus", "/nothing"] {
        let (s, st) = get(&r, path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert_failure(&st, 404, "NotFound");
        assert_eq!(st["details"], json!({}), "{path}: {st}");
        assert_eq!(st["message"], "the server could not find the requested resource", "{path}");
    }
}

#[tokio::test]
async fn validation_errors() {
    let (_api, r) = server().await;

    // A container without an image: 422 naming the field.
    let bad = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
    let (s, st) = post(&r, PODS, bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_failure(&st, 422, "Invalid");
    let msg = st["message"].as_str().unwrap();
    assert!(msg.starts_with(r#"Pod "p" is invalid"#), "{msg}");
    assert_eq!(msg, r#"Pod "p" is invalid: spec.containers[0].image: Required value"#);
    assert_eq!(st["details"]["name"], "p");
    assert_eq!(st["details"]["kind"], "Pod");
    let causes = st["details"]["causes"].as_array().expect("causes");
    let cause = causes.iter().find(|c| c["field"] == "spec.containers[0].image").unwrap_or_else(|| panic!("{st}"));
    assert_eq!(cause["reason"], "FieldValueRequired");
    assert_eq!(cause["message"], "Required value");
    let (s, _) = get(&r, &format!("{PODS}/p")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "an invalid object is not stored");

    // Wrong JSON type: a decode error, 400.
    let (s, st) = post(&r, PODS, json!({"metadata": {"name": "p"}, "spec": {"containers": "x"}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_failure(&st, 400, "BadRequest");
    assert!(st["message"].as_str().unwrap().starts_with(r#"Pod in version "v1" cannot be handled as a Pod"#), "{st}");

    // Not JSON at all: 400.
    let (s, _, st) = send(&r, Request::post(PODS).header(header::CONTENT_TYPE, JSON).body(Body::from("{not json")).unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_failure(&st, 400, "BadRequest");

    // A Job must not restart Always.
    let (s, st) = post(&r, JOBS, job("j", "Always")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_failure(&st, 422, "Invalid");
    assert!(st["message"].as_str().unwrap().contains("spec.template.spec.restartPolicy"), "{st}");
    assert_eq!(st["details"]["group"], "batch");
    assert_eq!(st["details"]["kind"], "Job");
    let cause = find_by(&st["details"]["causes"], "field", "spec.template.spec.restartPolicy");
    assert_eq!(cause["reason"], "FieldValueNotSupported");
    // ... while Never is fine.
    let created = create(&r, JOBS, job("j", "Never")).await;
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["spec"]["backoffLimit"], 6);

    // A Job posted to the pods URL: kind mismatch, 400.
    let (s, st) = post(&r, PODS, job("j2", "Never")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_failure(&st, 400, "BadRequest");
    let (s, _) = get(&r, &format!("{PODS}/j2")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The body's namespace must match the URL's.
    let mut other = pod("q");
    other["metadata"]["namespace"] = "kube-system".into();
    let (s, st) = post(&r, PODS, other).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_failure(&st, 400, "BadRequest");

    // A bad name.
    let (s, st) = post(&r, CMS, configmap("Bad_Name")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(st["details"]["causes"][0]["field"], "metadata.name");
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
}

/// Upstream `errors.NewInvalid(qualifiedKind, ...)` formats the message with `GroupKind.String()`, which is
/// `Job.batch` for a Job (only core kinds are bare): `Job.batch "j" is invalid: ...`.
#[tokio::test]
async fn invalid_job_message_names_the_group_kind() {
    let (_api, r) = server().await;
    let (s, st) = post(&r, JOBS, job("j", "Always")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let msg = st["message"].as_str().unwrap();
    assert!(msg.starts_with(r#"Job.batch "j" is invalid: "#), "upstream names the qualified kind Job.batch: {msg}");
}

// ---------------------------------------------------------------------------------------------
// 5, 6: selectors and paging
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn label_and_field_selectors() {
    let (_api, r) = server().await;
    let mut a = pod("a");
    a["metadata"]["labels"] = json!({"app": "x"});
    a["spec"]["nodeName"] = "n1".into();
    create(&r, PODS, a).await;
    let mut b = pod("b");
    b["metadata"]["labels"] = json!({"app": "y"});
    create(&r, PODS, b).await;
    create(&r, PODS, pod("c")).await;
    let (s, c) = patch(&r, &format!("{PODS}/c/status"), MERGE_PATCH, json!({"status": {"phase": "Running"}})).await;
    assert_eq!((s, c["status"]["phase"].as_str()), (StatusCode::OK, Some("Running")), "{c}");
    let mut d = pod("d");
    d["metadata"]["labels"] = json!({"app": "x"});
    create(&r, "/api/v1/namespaces/kube-system/pods", d).await;

    let list = |q: String| {
        let r = r.clone();
        async move {
            let (s, l) = get(&r, &q).await;
            assert_eq!(s, StatusCode::OK, "{q}: {l}");
            assert_eq!(l["kind"], "PodList");
            names(&l)
        }
    };
    let labels = |sel: &str| list(format!("{PODS}?labelSelector={}", enc(sel)));
    assert_eq!(labels("app=x").await, ["a"]);
    assert_eq!(labels("app==x").await, ["a"]);
    assert_eq!(labels("app in (x,y)").await, ["a", "b"]);
    assert_eq!(labels("app notin (x)").await, ["b", "c"]);
    assert_eq!(labels("!app").await, ["c"]);
    assert_eq!(labels("app").await, ["a", "b"]);
    assert_eq!(labels("app!=x").await, ["b", "c"], "!= matches objects without the label");
    assert_eq!(labels("app=z").await, Vec::<String>::new());

    let fields = |sel: &str| list(format!("{PODS}?fieldSelector={}", enc(sel)));
    assert_eq!(fields("metadata.name=b").await, ["b"]);
    assert_eq!(fields("metadata.name!=b").await, ["a", "c"]);
    assert_eq!(fields("status.phase!=Running").await, ["a", "b"]);
    assert_eq!(fields("status.phase=Running").await, ["c"]);
    assert_eq!(fields("spec.nodeName=n1").await, ["a"]);
    assert_eq!(fields("spec.nodeName=").await, ["b", "c"], "unscheduled pods");
    assert_eq!(fields("metadata.namespace=default,status.phase=Pending").await, ["a", "b"]);
    assert_eq!(list(format!("{PODS}?labelSelector={}&fieldSelector={}", enc("app"), enc("spec.nodeName="))).await, ["b"]);

    // Unsupported field label and bad syntax: 400.
    let (s, st) = get(&r, &format!("{PODS}?fieldSelector={}", enc("spec.bogus=1"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_failure(&st, 400, "BadRequest");
    assert!(st["message"].as_str().unwrap().contains("field label not supported"), "{st}");
    let (s, st) = get(&r, &format!("{CMS}?fieldSelector={}", enc("status.phase=Running"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "configmaps have no status.phase field label: {st}");
    let (s, st) = get(&r, &format!("{PODS}?labelSelector={}", enc("app in (x"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_failure(&st, 400, "BadRequest");

    // All namespaces.
    assert_eq!(list("/api/v1/pods".into()).await, ["a", "b", "c", "d"]);
    assert_eq!(list(format!("/api/v1/pods?labelSelector={}", enc("app=x"))).await, ["a", "d"]);
    assert_eq!(list(format!("/api/v1/pods?fieldSelector={}", enc("metadata.namespace=kube-system"))).await, ["d"]);
    assert_eq!(list(format!("/api/v1/pods?fieldSelector={}", enc("metadata.name=d"))).await, ["d"]);
    let (_, all) = get(&r, "/api/v1/pods").await;
    let d = all["items"].as_array().unwrap().iter().find(|p| p["metadata"]["name"] == "d").unwrap();
    assert_eq!(d["metadata"]["namespace"], "kube-system");
}

#[tokio::test]
async fn limit_and_continue() {
    let (_api, r) = server().await;
    for i in 0..5 {
        create(&r, CMS, configmap(&format!("cm{i}"))).await;
    }
    let (s, first) = get(&r, &format!("{CMS}?limit=2")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let list_rv = rv(&first);
    assert!(first["metadata"]["continue"].as_str().is_some_and(|c| !c.is_empty()), "{first}");

    let mut seen = names(&first);
    let mut token = first["metadata"]["continue"].as_str().map(str::to_string);
    let mut pages = 1;
    while let Some(t) = token {
        let (s, page) = get(&r, &format!("{CMS}?limit=2&continue={}", enc(&t))).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page["items"].as_array().unwrap().len() <= 2);
        assert_eq!(rv(&page), list_rv, "every page reports the first page's resourceVersion");
        seen.extend(names(&page));
        token = page["metadata"]["continue"].as_str().filter(|c| !c.is_empty()).map(str::to_string);
        pages += 1;
        assert!(pages <= 5, "paging does not terminate");
    }
    seen.sort();
    assert_eq!(seen, ["cm0", "cm1", "cm2", "cm3", "cm4"].map(String::from).to_vec(), "each object exactly once");
    assert_eq!(pages, 3);

    let (s, st) = get(&r, &format!("{CMS}?limit=2&continue=garbage!")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_failure(&st, 400, "BadRequest");
    let (s, _) = get(&r, &format!("{CMS}?limit=abc")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// Upstream serves every page of a paged list from the snapshot at the first page's resourceVersion (etcd
/// reads at the continue token's revision; `410 Expired` once that revision is compacted). An object created
/// between pages is therefore not in later pages — and no item may be newer than the list's resourceVersion.
#[tokio::test]
async fn continue_pages_are_one_snapshot() {
    let (_api, r) = server().await;
    for i in 0..4 {
        create(&r, CMS, configmap(&format!("cm{i}"))).await;
    }
    let (_, first) = get(&r, &format!("{CMS}?limit=2")).await;
    let list_rv: u64 = rv(&first).parse().unwrap();
    let token = first["metadata"]["continue"].as_str().expect("a continue token").to_string();
    // Written after the first page, sorting after its last key.
    create(&r, CMS, configmap("cm9")).await;
    let (s, second) = get(&r, &format!("{CMS}?limit=10&continue={}", enc(&token))).await;
    assert_eq!(s, StatusCode::OK, "{second}");
    assert_eq!(rv(&second).parse::<u64>().unwrap(), list_rv);
    for item in second["items"].as_array().unwrap() {
        let item_rv: u64 = rv(item).parse().unwrap();
        assert!(item_rv <= list_rv, "page at resourceVersion {list_rv} holds {} at resourceVersion {item_rv}", item["metadata"]["name"]);
    }
    assert_eq!(names(&second), ["cm2", "cm3"]);
}

// ---------------------------------------------------------------------------------------------
// 7, 8, 9: namespaces, graceful deletion, finalizers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn namespace_lifecycle() {
    let (api, r) = server().await;

    let (s, st) = post(&r, "/api/v1/namespaces/nope/pods", pod("p")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_failure(&st, 404, "NotFound");
    assert_eq!(st["message"], r#"namespaces "nope" not found"#);

    let (_, all) = get(&r, "/api/v1/namespaces").await;
    assert_eq!(names(&all), ["default", "kube-node-lease", "kube-public", "kube-system"]);

    let ns = create(&r, "/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})).await;
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert!(ns["metadata"].get("namespace").is_none(), "cluster-scoped: {ns}");
    create(&r, "/api/v1/namespaces/doomed/configmaps", configmap("cm")).await;

    let (s, ns) = delete(&r, "/api/v1/namespaces/doomed", None).await;
    assert_eq!(s, StatusCode::OK, "{ns}");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string(), "{ns}");
    let (s, ns) = get(&r, "/api/v1/namespaces/doomed").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string(), "{ns}");

    let (s, st) = post(&r, "/api/v1/namespaces/doomed/configmaps", configmap("late")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_failure(&st, 403, "Forbidden");
    assert!(st["message"].as_str().unwrap().contains("because it is being terminated"), "{st}");

    let mut rounds = 0;
    while k1s_apiserver::namespaces::sweep(api.registry()).await {
        rounds += 1;
        assert!(rounds < 10, "the namespace sweep does not finish");
    }
    let (s, _) = get(&r, "/api/v1/namespaces/doomed/configmaps/cm").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, st) = get(&r, "/api/v1/namespaces/doomed").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(st["message"], r#"namespaces "doomed" not found"#);
    let (_, all) = get(&r, "/api/v1/namespaces").await;
    assert_eq!(names(&all), ["default", "kube-node-lease", "kube-public", "kube-system"], "the others are untouched");
}

fn binding(pod: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod}, "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
}

#[tokio::test]
async fn binding_and_graceful_pod_deletion() {
    let (_api, r) = server().await;
    create(&r, PODS, pod("p")).await;

    let (s, st) = post(&r, &format!("{PODS}/p/binding"), binding("p", "n1")).await;
    assert_eq!(s, StatusCode::CREATED, "{st}");
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["status"], "Success");
    let (_, p) = get(&r, &format!("{PODS}/p")).await;
    assert_eq!(p["spec"]["nodeName"], "n1");
    let sched = find_by(&p["status"]["conditions"], "type", "PodScheduled");
    assert_eq!(sched["status"], "True");
    assert_eq!(p["status"]["phase"], "Pending", "binding keeps the phase");

    let (s, st) = post(&r, &format!("{PODS}/p/binding"), binding("p", "n2")).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_failure(&st, 409, "Conflict");
    assert!(st["message"].as_str().unwrap().contains("already assigned"), "{st}");
    let (s, _) = post(&r, &format!("{PODS}/ghost/binding"), binding("ghost", "n1")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A bound pod waits for its node: 200 with the deletion marked (upstream answers 202 only with orphanDependents=false).
    let (s, d) = delete(&r, &format!("{PODS}/p"), None).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert!(d["metadata"]["deletionTimestamp"].is_string(), "{d}");
    assert_eq!(d["metadata"]["deletionGracePeriodSeconds"], 30);
    let (s, still) = get(&r, &format!("{PODS}/p")).await;
    assert_eq!(s, StatusCode::OK, "the pod exists during its grace period");
    assert_eq!(still["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(still["metadata"]["deletionTimestamp"], d["metadata"]["deletionTimestamp"]);

    // Deleting again with the same grace changes nothing.
    let (s, again) = delete(&r, &format!("{PODS}/p"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rv(&again), rv(&still));

    // The node agent's final delete: grace 0 removes it.
    let (s, gone) = delete(&r, &format!("{PODS}/p"), Some(json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}))).await;
    assert_eq!(s, StatusCode::OK, "{gone}");
    let (s, _) = get(&r, &format!("{PODS}/p")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The query form of the grace period works too.
    create(&r, PODS, pod("q")).await;
    let (s, _) = post(&r, &format!("{PODS}/q/binding"), binding("q", "n1")).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = delete(&r, &format!("{PODS}/q?gracePeriodSeconds=0"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = get(&r, &format!("{PODS}/q")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // An unbound pod goes at once.
    create(&r, PODS, pod("u")).await;
    let (s, _) = delete(&r, &format!("{PODS}/u"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = get(&r, &format!("{PODS}/u")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn finalizers_hold_deletion() {
    let (_api, r) = server().await;
    let mut cm = configmap("held");
    cm["metadata"]["finalizers"] = json!(["example.com/x"]);
    create(&r, CMS, cm).await;

    let (s, d) = delete(&r, &format!("{CMS}/held"), None).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert!(d["metadata"]["deletionTimestamp"].is_string(), "{d}");
    let (s, held) = get(&r, &format!("{CMS}/held")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(held["metadata"]["finalizers"], json!(["example.com/x"]));

    // No new finalizers once deletion started.
    let (s, st) = patch(&r, &format!("{CMS}/held"), MERGE_PATCH, json!({"metadata": {"finalizers": ["example.com/x", "example.com/y"]}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{st}");
    assert_failure(&st, 422, "Invalid");

    // Removing the last finalizer removes the object.
    let (s, last) = patch(&r, &format!("{CMS}/held"), MERGE_PATCH, json!({"metadata": {"finalizers": null}})).await;
    assert_eq!(s, StatusCode::OK, "{last}");
    let (s, _) = get(&r, &format!("{CMS}/held")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------
// 10, 11, 12: status subresource and patches, dry run, body limit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn status_subresource_and_patch_types() {
    let (_api, r) = server().await;
    let mut p = pod("p");
    p["metadata"]["labels"] = json!({"app": "x"});
    let created = create(&r, PODS, p).await;

    // PUT /status: status changes, spec and metadata do not.
    let mut body = created.clone();
    body["status"]["phase"] = "Running".into();
    body["status"]["podIP"] = "10.0.0.5".into();
    body["spec"]["activeDeadlineSeconds"] = 100.into();
    body["metadata"]["labels"] = json!({"app": "changed"});
    let (s, after) = put(&r, &format!("{PODS}/p/status"), body).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert_eq!(after["status"]["phase"], "Running");
    assert_eq!(after["status"]["podIP"], "10.0.0.5");
    assert!(after["spec"].get("activeDeadlineSeconds").is_none(), "{after}");
    assert_eq!(after["metadata"]["labels"], json!({"app": "x"}));
    let (_, got) = get(&r, &format!("{PODS}/p")).await;
    assert_eq!(got["status"]["phase"], "Running");
    assert!(got["spec"].get("activeDeadlineSeconds").is_none());
    assert_eq!(got["metadata"]["labels"], json!({"app": "x"}));
    let (s, via_status) = get(&r, &format!("{PODS}/p/status")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(via_status["status"]["phase"], "Running");

    // PATCH /status: likewise.
    let (s, after) = patch(
        &r,
        &format!("{PODS}/p/status"),
        MERGE_PATCH,
        json!({"metadata": {"labels": {"app": "y"}}, "spec": {"activeDeadlineSeconds": 5}, "status": {"hostIP": "192.168.1.1"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert_eq!(after["status"]["hostIP"], "192.168.1.1");
    assert_eq!(after["status"]["phase"], "Running");
    assert_eq!(after["metadata"]["labels"], json!({"app": "x"}));
    assert!(after["spec"].get("activeDeadlineSeconds").is_none());

    // A merge patch of the main resource cannot change status, but does change metadata.
    let (s, after) = patch(&r, &format!("{PODS}/p"), MERGE_PATCH, json!({"metadata": {"labels": {"tier": "web"}}, "status": {"phase": "Failed"}})).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert_eq!(after["status"]["phase"], "Running");
    assert_eq!(after["metadata"]["labels"], json!({"app": "x", "tier": "web"}));
    let (_, got) = get(&r, &format!("{PODS}/p")).await;
    assert_eq!(got["status"]["phase"], "Running");

    // A JSON patch works.
    let (s, after) = patch(&r, &format!("{PODS}/p"), JSON_PATCH, json!([{"op": "add", "path": "/metadata/labels/j", "value": "1"}, {"op": "remove", "path": "/metadata/labels/tier"}])).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert_eq!(after["metadata"]["labels"], json!({"app": "x", "j": "1"}));
    // A failed JSON-patch test makes no change.
    let (s, _) = patch(&r, &format!("{PODS}/p"), JSON_PATCH, json!([{"op": "test", "path": "/metadata/labels/app", "value": "nope"}])).await;
    assert!(s.is_client_error(), "{s}");
    let (_, got) = get(&r, &format!("{PODS}/p")).await;
    assert_eq!(got["metadata"]["labels"], json!({"app": "x", "j": "1"}));

    // Pod spec is mostly immutable.
    let (s, st) = patch(&r, &format!("{PODS}/p"), MERGE_PATCH, json!({"spec": {"restartPolicy": "Never"}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{st}");
    assert_eq!(st["details"]["causes"][0]["field"], "spec");
    // ... except the image.
    let (s, after) = patch(&r, &format!("{PODS}/p"), JSON_PATCH, json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "busybox:1.36"}])).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert_eq!(after["spec"]["containers"][0]["image"], "busybox:1.36");

    // Strategic merge patch: containers merge by name, the directive is consumed, labels merge.
    let smp = json!({"metadata": {"labels": {"s": "1"}},
        "spec": {"$setElementOrder/containers": [{"name": "c"}], "containers": [{"name": "c", "image": "busybox:1.37"}]}});
    let (s, after) = patch(&r, &format!("{PODS}/p"), STRATEGIC_PATCH, smp).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert_eq!(after["metadata"]["labels"]["s"], "1");
    assert_eq!(after["spec"]["containers"].as_array().unwrap().len(), 1);
    assert_eq!(after["spec"]["containers"][0]["image"], "busybox:1.37");
    assert!(after["spec"]["containers"][0]["command"].is_array() || after["spec"]["containers"][0].get("command").is_none());
    // Server-side apply needs a field manager (see server_side_apply_creates_merges_and_reports_conflicts).
    let (s, st) = patch(&r, &format!("{PODS}/p"), "application/apply-patch+yaml", json!({"metadata": {"labels": {"s": "1"}}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_failure(&st, 400, "BadRequest");
    assert!(st["message"].as_str().unwrap().contains("fieldManager"), "{st}");
    // So is an unknown patch type.
    let (s, _) = patch(&r, &format!("{PODS}/p"), "text/plain", json!({})).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Patching a missing object is a 404.
    let (s, st) = patch(&r, &format!("{PODS}/ghost"), MERGE_PATCH, json!({"metadata": {"labels": {"a": "b"}}})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_failure(&st, 404, "NotFound");
}

#[tokio::test]
async fn dry_run_create_stores_nothing() {
    let (_api, r) = server().await;
    let (s, obj) = post(&r, &format!("{PODS}?dryRun=All"), pod("dry")).await;
    assert_eq!(s, StatusCode::CREATED, "{obj}");
    assert_eq!(obj["metadata"]["name"], "dry");
    assert_eq!(obj["spec"]["restartPolicy"], "Always", "defaults are applied on a dry run too");
    let (s, _) = get(&r, &format!("{PODS}/dry")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = get(&r, PODS).await;
    assert_eq!(names(&list), Vec::<String>::new());

    // A dry run still validates.
    let (s, _) = post(&r, &format!("{PODS}?dryRun=All"), json!({"metadata": {"name": "dry"}, "spec": {"containers": [{"name": "c"}]}})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = post(&r, &format!("{PODS}?dryRun=Some"), pod("dry")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let (_api, r) = server().await;
    let big = "x".repeat(4 * 1024 * 1024);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": big}});
    let (s, st) = post(&r, CMS, body).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_failure(&st, 413, "RequestEntityTooLarge");
    let (s, _) = get(&r, &format!("{CMS}/big")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Just under the limit is accepted (the limit is on the body, not on a smaller extractor default).
    let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x".repeat(2_500_000)}});
    let (s, v) = post(&r, CMS, ok).await;
    assert_eq!(s, StatusCode::CREATED, "{}", v["message"]);
}

// ---------------------------------------------------------------------------------------------
// 13: watch
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn watch_initial_state_then_changes() {
    let (_api, r) = server().await;
    create(&r, CMS, configmap("a")).await;

    let mut w = watch(&r, &format!("{CMS}?watch=true")).await;
    let first = w.event().await;
    assert_event(&first, "ADDED", "a");
    assert_eq!(first["object"]["kind"], "ConfigMap");
    assert_eq!(first["object"]["apiVersion"], "v1");
    assert_eq!(first["object"]["data"]["k"], "v");
    w.expect_quiet(Duration::from_millis(200)).await;

    let b = create(&r, CMS, configmap("b")).await;
    let ev = w.event().await;
    assert_event(&ev, "ADDED", "b");
    assert_eq!(rv(&ev["object"]), rv(&b));

    let (s, pb) = patch(&r, &format!("{CMS}/b"), MERGE_PATCH, json!({"data": {"k": "w"}})).await;
    assert_eq!(s, StatusCode::OK);
    let ev = w.event().await;
    assert_event(&ev, "MODIFIED", "b");
    assert_eq!(ev["object"]["data"]["k"], "w");
    assert_eq!(rv(&ev["object"]), rv(&pb));

    let (s, _) = delete(&r, &format!("{CMS}/b"), None).await;
    assert_eq!(s, StatusCode::OK);
    let ev = w.event().await;
    assert_event(&ev, "DELETED", "b");
    assert_eq!(ev["object"]["data"]["k"], "w", "DELETED carries the last state");
    assert!(rv(&ev["object"]).parse::<u64>().unwrap() > rv(&pb).parse::<u64>().unwrap(), "DELETED carries the deletion's revision");

    // Other namespaces are not part of this watch.
    create(&r, "/api/v1/namespaces/kube-system/configmaps", configmap("elsewhere")).await;
    w.expect_quiet(Duration::from_millis(200)).await;

    // The /watch/ path form works as well.
    let mut w2 = watch(&r, "/api/v1/watch/namespaces/default/configmaps").await;
    assert_event(&w2.event().await, "ADDED", "a");
    // And an all-namespaces watch sees both.
    let mut w3 = watch(&r, "/api/v1/configmaps?watch=1").await;
    let mut seen: Vec<_> = w3.events(2).await.iter().map(summary).collect();
    seen.sort();
    assert_eq!(seen, [("ADDED".to_string(), "a".to_string()), ("ADDED".to_string(), "elsewhere".to_string())]);
}

#[tokio::test]
async fn watch_from_resource_version_sends_only_later_changes() {
    let (_api, r) = server().await;
    create(&r, CMS, configmap("a")).await;
    let (_, list) = get(&r, CMS).await;
    let list_rv = rv(&list);
    let b = create(&r, CMS, configmap("b")).await;

    let mut w = watch(&r, &format!("{CMS}?watch=true&resourceVersion={list_rv}")).await;
    let ev = w.event().await;
    assert_event(&ev, "ADDED", "b");
    assert_eq!(rv(&ev["object"]), rv(&b));
    w.expect_quiet(Duration::from_millis(200)).await;

    let (s, _) = patch(&r, &format!("{CMS}/a"), MERGE_PATCH, json!({"data": {"k": "2"}})).await;
    assert_eq!(s, StatusCode::OK);
    assert_event(&w.event().await, "MODIFIED", "a");

    // resourceVersion=0 behaves like unset: the current state first.
    let mut w0 = watch(&r, &format!("{CMS}?watch=true&resourceVersion=0")).await;
    let mut seen: Vec<_> = w0.events(2).await.iter().map(summary).collect();
    seen.sort();
    assert_eq!(seen, [("ADDED".to_string(), "a".to_string()), ("ADDED".to_string(), "b".to_string())]);

    let (s, st) = get(&r, &format!("{CMS}?watch=true&resourceVersion=abc")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_failure(&st, 400, "BadRequest");
}

#[tokio::test]
async fn watch_label_selector_sends_added_and_deleted_on_relabel() {
    let (_api, r) = server().await;
    let mut a = configmap("a");
    a["metadata"]["labels"] = json!({"app": "x"});
    create(&r, CMS, a).await;
    create(&r, CMS, configmap("other")).await;

    let mut w = watch(&r, &format!("{CMS}?watch=true&labelSelector={}", enc("app=x"))).await;
    assert_event(&w.event().await, "ADDED", "a");
    w.expect_quiet(Duration::from_millis(200)).await;

    let (s, away) = patch(&r, &format!("{CMS}/a"), MERGE_PATCH, json!({"metadata": {"labels": {"app": "y"}}})).await;
    assert_eq!(s, StatusCode::OK);
    let ev = w.event().await;
    assert_event(&ev, "DELETED", "a");
    assert_eq!(rv(&ev["object"]), rv(&away), "the event's revision is the relabelling write's");

    // Changes while it does not match are not sent.
    let (s, _) = patch(&r, &format!("{CMS}/a"), MERGE_PATCH, json!({"data": {"k": "unseen"}})).await;
    assert_eq!(s, StatusCode::OK);
    w.expect_quiet(Duration::from_millis(200)).await;

    let (s, back) = patch(&r, &format!("{CMS}/a"), MERGE_PATCH, json!({"metadata": {"labels": {"app": "x"}}})).await;
    assert_eq!(s, StatusCode::OK);
    let ev = w.event().await;
    assert_event(&ev, "ADDED", "a");
    assert_eq!(rv(&ev["object"]), rv(&back));
    assert_eq!(ev["object"]["metadata"]["labels"]["app"], "x");

    // A new object that matches is ADDED; one that does not is not sent.
    let mut c = configmap("c");
    c["metadata"]["labels"] = json!({"app": "x"});
    create(&r, CMS, c).await;
    assert_event(&w.event().await, "ADDED", "c");
    create(&r, CMS, configmap("d")).await;
    w.expect_quiet(Duration::from_millis(200)).await;
}

/// Upstream's watch cache (`cacheWatcher.convertToWatchEvent`): when an object stops matching the selector,
/// the DELETED event carries the *previous* object content (which matched) with the event's resourceVersion.
#[tokio::test]
async fn watch_deleted_on_relabel_carries_the_previous_object() {
    let (_api, r) = server().await;
    let mut a = configmap("a");
    a["metadata"]["labels"] = json!({"app": "x"});
    create(&r, CMS, a).await;
    let mut w = watch(&r, &format!("{CMS}?watch=true&labelSelector={}", enc("app=x"))).await;
    assert_event(&w.event().await, "ADDED", "a");
    let (s, away) = patch(&r, &format!("{CMS}/a"), MERGE_PATCH, json!({"metadata": {"labels": {"app": "y"}}})).await;
    assert_eq!(s, StatusCode::OK);
    let ev = w.event().await;
    assert_event(&ev, "DELETED", "a");
    assert_eq!(rv(&ev["object"]), rv(&away));
    assert_eq!(ev["object"]["metadata"]["labels"]["app"], "x", "upstream sends the last state that matched the selector: {ev}");
}

#[tokio::test]
async fn watch_field_selector_filters_other_objects() {
    let (_api, r) = server().await;
    create(&r, CMS, configmap("a")).await;
    create(&r, CMS, configmap("b")).await;

    let mut w = watch(&r, &format!("{CMS}?watch=true&fieldSelector={}", enc("metadata.name=a"))).await;
    assert_event(&w.event().await, "ADDED", "a");
    w.expect_quiet(Duration::from_millis(200)).await;

    let (s, _) = patch(&r, &format!("{CMS}/b"), MERGE_PATCH, json!({"data": {"k": "2"}})).await;
    assert_eq!(s, StatusCode::OK);
    create(&r, CMS, configmap("c")).await;
    w.expect_quiet(Duration::from_millis(200)).await;

    let (s, _) = patch(&r, &format!("{CMS}/a"), MERGE_PATCH, json!({"data": {"k": "2"}})).await;
    assert_eq!(s, StatusCode::OK);
    assert_event(&w.event().await, "MODIFIED", "a");
    let (s, _) = delete(&r, &format!("{CMS}/a"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_event(&w.event().await, "DELETED", "a");

    // The pod field labels work on watches too.
    let mut p = pod("p");
    p["spec"]["nodeName"] = "n1".into();
    let mut wp = watch(&r, &format!("{PODS}?watch=true&fieldSelector={}", enc("spec.nodeName=n1"))).await;
    create(&r, PODS, pod("unscheduled")).await;
    create(&r, PODS, p).await;
    assert_event(&wp.event().await, "ADDED", "p");
    wp.expect_quiet(Duration::from_millis(200)).await;

    let (s, st) = get(&r, &format!("{CMS}?watch=true&fieldSelector={}", enc("spec.nodeName=n1"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unsupported field labels are refused before the stream starts");
    assert!(st["message"].as_str().unwrap().contains("field label not supported"), "{st}");
}

#[tokio::test]
async fn watch_timeout_ends_the_stream() {
    let (_api, r) = server().await;
    create(&r, CMS, configmap("a")).await;
    let started = tokio::time::Instant::now();
    let mut w = watch(&r, &format!("{CMS}?watch=true&timeoutSeconds=1")).await;
    let events = w.until_end(Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert_eq!(events.iter().map(summary).collect::<Vec<_>>(), [("ADDED".to_string(), "a".to_string())]);
    assert!(took >= Duration::from_millis(900), "ended too early: {took:?}");
    assert!(took < Duration::from_secs(4), "ended too late: {took:?}");
}

#[tokio::test]
async fn watch_too_old_resource_version_is_410_expired() {
    let api = server_with(MemStore::with_history(3)).await;
    let r = api.router();
    for i in 0..10 {
        create(&r, CMS, configmap(&format!("cm{i}"))).await;
    }
    let mut w = watch(&r, &format!("{CMS}?watch=true&resourceVersion=1")).await;
    let events = w.until_end(Duration::from_secs(5)).await;
    assert_eq!(events.len(), 1, "one ERROR event, then the end: {events:?}");
    let ev = &events[0];
    assert_eq!(ev["type"], "ERROR", "{ev}");
    let st = &ev["object"];
    assert_eq!(st["kind"], "Status", "{st}");
    assert_eq!(st["apiVersion"], "v1");
    assert_eq!(st["status"], "Failure");
    assert_eq!(st["code"], 410);
    assert_eq!(st["reason"], "Expired");
    assert!(st["message"].as_str().unwrap().contains("too old resource version"), "{st}");

    // A recent revision is still fine.
    let (_, list) = get(&r, CMS).await;
    let mut w = watch(&r, &format!("{CMS}?watch=true&resourceVersion={}", rv(&list))).await;
    create(&r, CMS, configmap("fresh")).await;
    assert_event(&w.event().await, "ADDED", "fresh");
}

#[tokio::test]
async fn watch_sends_no_bookmarks_unless_allowed() {
    let (_api, r) = server().await;
    create(&r, CMS, configmap("a")).await;

    let mut w = watch(&r, &format!("{CMS}?watch=true&timeoutSeconds=2")).await;
    create(&r, CMS, configmap("b")).await;
    let (s, _) = patch(&r, &format!("{CMS}/a"), MERGE_PATCH, json!({"data": {"k": "2"}})).await;
    assert_eq!(s, StatusCode::OK);
    let events = w.until_end(Duration::from_secs(5)).await;
    let kinds: Vec<_> = events.iter().map(summary).collect();
    assert!(events.iter().all(|e| e["type"] != "BOOKMARK"), "{kinds:?}");
    assert_eq!(kinds.len(), 3, "{kinds:?}");

    // Contrast: with both, the initial events end with a BOOKMARK annotated k8s.io/initial-events-end.
    let mut w = watch(&r, &format!("{CMS}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")).await;
    let events = w.events(3).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "ADDED");
    assert_eq!(events[2]["type"], "BOOKMARK");
    assert_eq!(events[2]["object"]["kind"], "ConfigMap");
    assert_eq!(events[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    rv(&events[2]["object"]);
}

fn core_event(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": "default"},
        "message": "hello", "reason": "Started", "type": "Normal", "source": {"component": "kubelet"}, "count": 1})
}

const EVENTS_V1: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

#[tokio::test]
async fn events_k8s_io_reads_core_events() {
    let (_api, r) = server().await;
    let mut w = watch(&r, &format!("{EVENTS_V1}?watch=true")).await;
    create(&r, "/api/v1/namespaces/default/events", core_event("e1")).await;

    let (s, ev) = get(&r, &format!("{EVENTS_V1}/e1")).await;
    assert_eq!(s, StatusCode::OK, "{ev}");
    assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
    assert_eq!(ev["kind"], "Event");
    assert_eq!(ev["regarding"]["name"], "p");
    assert_eq!(ev["regarding"]["kind"], "Pod");
    assert_eq!(ev["note"], "hello");
    assert_eq!(ev["reason"], "Started");
    assert_eq!(ev["deprecatedSource"]["component"], "kubelet");
    assert_eq!(ev["deprecatedCount"], 1);
    assert!(ev.get("involvedObject").is_none() && ev.get("message").is_none(), "{ev}");

    // The core version is unchanged.
    let (_, core) = get(&r, "/api/v1/namespaces/default/events/e1").await;
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "p");
    assert_eq!(core["message"], "hello");

    // Lists and field selectors in the new vocabulary.
    let (s, list) = get(&r, &format!("{EVENTS_V1}?fieldSelector={}", enc("regarding.name=p"))).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["kind"], "EventList");
    assert_eq!(list["apiVersion"], "events.k8s.io/v1");
    assert_eq!(names(&list), ["e1"]);
    assert_eq!(list["items"][0]["note"], "hello");
    let (_, list) = get(&r, &format!("{EVENTS_V1}?fieldSelector={}", enc("regarding.name=other"))).await;
    assert_eq!(names(&list), Vec::<String>::new());

    // Watch events are converted too.
    let w_ev = w.event().await;
    assert_event(&w_ev, "ADDED", "e1");
    assert_eq!(w_ev["object"]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(w_ev["object"]["note"], "hello");
    assert_eq!(w_ev["object"]["regarding"]["name"], "p");
}

/// Writing through events.k8s.io/v1 (what client-go's and kube-rs's new event recorders do) stores a core
/// Event that reads back in both versions.
#[tokio::test]
async fn events_k8s_io_create_round_trips() {
    let (_api, r) = server().await;
    let body = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e2"},
        "eventTime": "2025-01-01T00:00:00.000000Z", "reportingController": "example.com/ctl", "reportingInstance": "ctl-1",
        "action": "Reconcile", "reason": "Synced", "type": "Normal", "note": "hi",
        "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": "default"}});
    let (s, created) = post(&r, EVENTS_V1, body).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    assert_eq!(created["note"], "hi");
    assert_eq!(created["regarding"]["name"], "p");
    let (s, core) = get(&r, "/api/v1/namespaces/default/events/e2").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(core["message"], "hi");
    assert_eq!(core["involvedObject"]["name"], "p");
    assert_eq!(core["reportingComponent"], "example.com/ctl");
}

/// A patch through events.k8s.io/v1 (a recorder bumping `series`) of an Event stored through core/v1.
#[tokio::test]
async fn events_k8s_io_patch() {
    let (_api, r) = server().await;
    create(&r, "/api/v1/namespaces/default/events", core_event("e3")).await;
    let (s, patched) = patch(&r, &format!("{EVENTS_V1}/e3"), MERGE_PATCH, json!({"note": "again"})).await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["apiVersion"], "events.k8s.io/v1");
    assert_eq!(patched["note"], "again");
    let (_, core) = get(&r, "/api/v1/namespaces/default/events/e3").await;
    assert_eq!(core["message"], "again");
}

// ---------------------------------------------------------------------------------------------
// 14, 15: auth and the kube client
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bearer_token_auth() {
    let (api, _) = server().await;
    let tokens = k1s_apiserver::auth::Tokens::new(vec!["tok".into()]);
    let r = api.router().layer(axum::middleware::from_fn_with_state(tokens, k1s_apiserver::auth::require));

    let (s, _, st) = send(&r, Request::get("/api/v1/namespaces").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_failure(&st, 401, "Unauthorized");

    let (s, _, st) = send(&r, Request::get("/api/v1/namespaces").header(header::AUTHORIZATION, "Bearer wrong").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_failure(&st, 401, "Unauthorized");
    let (s, _, _) = send(&r, Request::get("/api/v1/namespaces").header(header::AUTHORIZATION, "Basic dG9rOnRvaw==").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = send(&r, Request::get("/api").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "discovery needs the token too");

    let (s, _, list) = send(&r, Request::get("/api/v1/namespaces").header(header::AUTHORIZATION, "Bearer tok").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["kind"], "NamespaceList");

    for path in ["/readyz", "/version", "/healthz", "/livez"] {
        let (s, _, _) = send(&r, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::OK, "{path} is anonymous");
    }
}

#[tokio::test]
async fn kube_client_in_process() {
    use futures::TryStreamExt;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use kube::runtime::{watcher, WatchStreamExt};

    let (_api, router) = server().await;
    // The axum Router is a tower Service over any HTTP body, kube's included.
    let client = kube::Client::new(router, "default");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());

    let p: Pod = serde_json::from_value(pod("kp")).unwrap();
    let created = pods.create(&PostParams::default(), &p).await.expect("create through kube");
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending"));
    assert_eq!(created.spec.as_ref().and_then(|s| s.restart_policy.as_deref()), Some("Always"));

    let got = pods.get("kp").await.expect("get through kube");
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let list = pods.list(&ListParams::default()).await.expect("list through kube");
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());

    // Errors arrive as kube's typed Status.
    match pods.get("missing").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.reason, "NotFound");
        }
        other => panic!("expected a 404 Status, got {other:?}"),
    }
    assert!(pods.get_opt("missing").await.expect("get_opt").is_none());

    // A watcher: the initial list, then a live change.
    let stream = watcher(pods.clone(), watcher::Config::default()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.expect("watcher timed out").expect("watcher").expect("watcher ended");
    assert_eq!(first.metadata.name.as_deref(), Some("kp"));
    let p2: Pod = serde_json::from_value(pod("kp2")).unwrap();
    pods.create(&PostParams::default(), &p2).await.expect("create kp2");
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(p) = stream.try_next().await.expect("watcher") {
            if p.metadata.name.as_deref() == Some("kp2") {
                return p;
            }
        }
        panic!("the watcher ended")
    })
    .await
    .expect("the watcher did not see kp2");
    assert_eq!(seen.status.and_then(|s| s.phase).as_deref(), Some("Pending"));

    // Patch and delete through kube.
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cm: ConfigMap = serde_json::from_value(configmap("kc")).unwrap();
    cms.create(&PostParams::default(), &cm).await.expect("create cm");
    let patched = cms.patch("kc", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "2"}}))).await.expect("merge patch");
    assert_eq!(patched.data.unwrap()["k"], "2");
    cms.delete("kc", &DeleteParams::default()).await.expect("delete");
    assert!(cms.get_opt("kc").await.expect("get_opt").is_none());
}

// ---------------------------------------------------------------------------------------------
// Field validation: unknown and duplicate fields; read-only kinds
// ---------------------------------------------------------------------------------------------

/// POST raw bytes (duplicate keys cannot be expressed with serde_json::Value).
async fn post_raw(router: &Router, uri: &str, raw: &str) -> (StatusCode, HeaderMap, Value) {
    let req = Request::builder().method(Method::POST).uri(uri).header(header::CONTENT_TYPE, JSON).body(Body::from(raw.to_string())).unwrap();
    send(router, req).await
}

#[tokio::test]
async fn field_validation_strict_warn_ignore() {
    let (_api, r) = server().await;
    let raw = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"a"},"data":{"k":"v"},"dta":{"x":"y"}}"#;
    let (s, _, st) = post_raw(&r, "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", raw).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{st}");
    assert_failure(&st, 400, "BadRequest");
    assert_eq!(
        st["message"],
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "metadata.name", unknown field "dta""#
    );
    // Warn (the default): created, with a Warning header per problem.
    let (s, headers, _) = post_raw(&r, "/api/v1/namespaces/default/configmaps", raw).await;
    assert_eq!(s, StatusCode::CREATED);
    let warnings: Vec<&str> = headers.get_all(header::WARNING).iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(warnings, [r#"299 - "duplicate field \"metadata.name\"""#, r#"299 - "unknown field \"dta\"""#]);
    // Ignore: created, no warnings.
    let raw_b = raw.replace("\"a\"", "\"b\"");
    let (s, headers, _) = post_raw(&r, "/api/v1/namespaces/default/configmaps?fieldValidation=Ignore", &raw_b).await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(headers.get(header::WARNING).is_none());
    // A known field at the wrong level: the message says where it belongs.
    let (s, st) = post(&r, "/api/v1/namespaces/default/pods?fieldValidation=Strict",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"image": "busybox", "containers": [{"name": "c", "image": "busybox"}]}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(st["message"].as_str().unwrap().contains(r#"unknown field "spec.image" ("image" belongs at spec.containers[*].image"#), "{st}");
}

#[tokio::test]
async fn services_are_listed_but_not_writable_yet() {
    let (_api, r) = server().await;
    let (s, list) = get(&r, "/api/v1/namespaces/kube-system/services?labelSelector=kubernetes.io/cluster-service%3Dtrue").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["kind"], "ServiceList");
    let (s, st) = post(&r, "/api/v1/namespaces/default/services", json!({"metadata": {"name": "s"}})).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_failure(&st, 405, "MethodNotAllowed");
    assert!(st["message"].as_str().unwrap().contains("not supported by this k1s version yet"), "{st}");
    let (_, disc) = get(&r, "/api/v1").await;
    let svc = disc["resources"].as_array().unwrap().iter().find(|r| r["name"] == "services").unwrap();
    assert_eq!(svc["verbs"], json!(["get", "list", "watch"]));
}

#[tokio::test]
async fn pods_get_upstream_default_tolerations() {
    let (_api, r) = server().await;
    let p = create(&r, "/api/v1/namespaces/default/pods", json!({"metadata": {"name": "t"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).await;
    assert_eq!(
        p["spec"]["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ])
    );
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_reports_conflicts() {
    let (_api, r) = server().await;
    let url = "/api/v1/namespaces/default/configmaps/app";
    let cm = |mode: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"mode": mode}});
    let (s, created) = call(&r, Method::PATCH, &format!("{url}?fieldManager=a"), Some(cm("fast")), "application/apply-patch+yaml").await;
    assert_eq!(s, StatusCode::CREATED, "apply creates when absent: {created}");
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "a");
    assert_eq!(created["metadata"]["managedFields"][0]["operation"], "Apply");
    assert_eq!(created["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:data": {"f:mode": {}}}));
    let (s, _) = call(&r, Method::PATCH, &format!("{url}?fieldManager=a"), Some(cm("fast")), "application/apply-patch+yaml").await;
    assert_eq!(s, StatusCode::OK);
    let (s, st) = call(&r, Method::PATCH, &format!("{url}?fieldManager=b"), Some(cm("slow")), "application/apply-patch+yaml").await;
    assert_eq!(s, StatusCode::CONFLICT, "{st}");
    assert_failure(&st, 409, "Conflict");
    assert_eq!(st["details"]["causes"][0], json!({"reason": "FieldManagerConflict", "message": "conflict with \"a\"", "field": ".data.mode"}));
    let (s, forced) = call(&r, Method::PATCH, &format!("{url}?fieldManager=b&force=true"), Some(cm("slow")), "application/apply-patch+yaml").await;
    assert_eq!(s, StatusCode::OK, "{forced}");
    assert_eq!(forced["data"]["mode"], "slow");
    // Without a field manager, apply is refused.
    let (s, _) = call(&r, Method::PATCH, url, Some(cm("x")), "application/apply-patch+yaml").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------------------------
// 16: the node subresources pods/log and pods/exec, through a fake node agent
// ---------------------------------------------------------------------------------------------

mod node {
    use std::process::Stdio;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use futures::future::BoxFuture;
    use futures::{SinkExt, StreamExt};
    use http::{header, Method, Request, StatusCode};
    use http_body_util::BodyExt;
    use k1s_apiserver::node::{AttachRequest, ByteStream, ExecRequest, ExecSession, ExitStatus, LogRequest, NodeConnector, NodeError};
    use k1s_apiserver::ApiServer;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
    use kube::api::{Api, AttachParams};
    use serde_json::{json, Value};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    use super::{assert_failure, create, get, send, server, Body};

    /// A node agent for tests. Logs are five canned lines per container that honour `tailLines`,
    /// `timestamps` and `previous` (`limitBytes` is left to the API server, which must cut the stream
    /// itself); `follow` then ticks forever and notes when the API server drops the stream. Every
    /// `LogRequest` is recorded. Exec runs the command as a local process with pipes.
    #[derive(Default)]
    struct FakeNode {
        logs: Mutex<Vec<LogRequest>>,
        execs: Mutex<Vec<ExecRequest>>,
        /// Terminal sizes received, in order.
        resizes: Arc<Mutex<Vec<(u16, u16)>>>,
        follow_dropped: Arc<AtomicBool>,
    }

    /// Sets its flag when dropped (with the follow stream that owns it).
    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl NodeConnector for FakeNode {
        fn logs(&self, req: LogRequest) -> BoxFuture<'static, Result<ByteStream, NodeError>> {
            self.logs.lock().unwrap().push(req.clone());
            let dropped = self.follow_dropped.clone();
            Box::pin(async move {
                let pod = req.pod.metadata.name.clone().unwrap_or_default();
                match req.container.as_str() {
                    "waiting" => {
                        return Err(NodeError::BadRequest(format!("container \"waiting\" in pod \"{pod}\" is waiting to start: ContainerCreating")))
                    }
                    "gone" => return Err(NodeError::NotFound(format!("container \"gone\" in pod \"{pod}\" not found on the node"))),
                    _ => {}
                }
                let which = if req.previous { "previous" } else { "current" };
                let mut lines: Vec<String> = (1..=5).map(|i| format!("{} {which} line {i}\n", req.container)).collect();
                if let Some(n) = req.tail_lines {
                    lines = lines.split_off(lines.len().saturating_sub(n as usize));
                }
                if req.timestamps {
                    lines = lines.into_iter().map(|l| format!("2024-01-01T00:00:00.000000000Z {l}")).collect();
                }
                let chunks = futures::stream::iter(lines.into_iter().map(|l| Ok(Bytes::from(l))));
                if !req.follow {
                    return Ok(Box::pin(chunks) as ByteStream);
                }
                let flag = DropFlag(dropped);
                let ticks = futures::stream::unfold((0u64, flag), |(i, flag)| async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((Ok(Bytes::from(format!("tick {i}\n"))), (i + 1, flag)))
                });
                Ok(Box::pin(chunks.chain(ticks)) as ByteStream)
            })
        }

        fn exec(&self, req: ExecRequest) -> BoxFuture<'static, Result<ExecSession, NodeError>> {
            self.execs.lock().unwrap().push(req.clone());
            let resizes = self.resizes.clone();
            Box::pin(async move {
                if req.container == "stopped" {
                    return Err(NodeError::BadRequest("container stopped is not running".into()));
                }
                if req.command[0] == "__lost__" {
                    return Ok(ExecSession {
                        stdin: None,
                        stdout: None,
                        stderr: None,
                        resize: None,
                        exit: Box::pin(async { Err(NodeError::Internal("the runtime lost the process".into())) }),
                        tty: false,
                    });
                }
                let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
                let mut child = tokio::process::Command::new(&req.command[0])
                    .args(&req.command[1..])
                    .stdin(pipe(req.stdin))
                    .stdout(pipe(req.stdout))
                    // A connector that hands out stderr even for a terminal: the API server must not send it.
                    .stderr(pipe(req.stderr || req.tty))
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| NodeError::Internal(format!("starting {:?}: {e}", req.command)))?;
                let stdin = child.stdin.take().map(|w| Box::pin(w) as _);
                let stdout = child.stdout.take().map(|r| Box::pin(r) as _);
                let stderr = child.stderr.take().map(|r| Box::pin(r) as _);
                let resize = req.tty.then(|| {
                    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
                    tokio::spawn(async move {
                        while let Some(size) = rx.recv().await {
                            resizes.lock().unwrap().push(size);
                        }
                    });
                    tx
                });
                let exit = Box::pin(async move {
                    let status = child.wait().await.map_err(|e| NodeError::Internal(e.to_string()))?;
                    use std::os::unix::process::ExitStatusExt;
                    Ok(match status.code() {
                        Some(c) => ExitStatus::Code(c),
                        None => ExitStatus::Signal(status.signal().unwrap_or(0)),
                    })
                });
                Ok(ExecSession { stdin, stdout, stderr, resize, exit, tty: req.tty })
            })
        }

        /// The container's own stdio, played by `cat`: what is sent on stdin comes back on stdout.
        fn attach(&self, req: AttachRequest) -> BoxFuture<'static, Result<ExecSession, NodeError>> {
            Box::pin(async move {
                if req.container == "stopped" {
                    return Err(NodeError::BadRequest("container stopped is not running".into()));
                }
                let mut child = tokio::process::Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| NodeError::Internal(e.to_string()))?;
                let stdin = child.stdin.take().filter(|_| req.stdin).map(|w| Box::pin(w) as _);
                let stdout = child.stdout.take().filter(|_| req.stdout).map(|r| Box::pin(r) as _);
                let exit = Box::pin(async move {
                    child.wait().await.map_err(|e| NodeError::Internal(e.to_string()))?;
                    Ok(ExitStatus::Code(0))
                });
                Ok(ExecSession { stdin, stdout, stderr: None, resize: None, exit, tty: false })
            })
        }

        /// The Pod's port is the same port on the host's loopback (tests listen there).
        fn port_forward(&self, _pod: Pod, port: u16) -> BoxFuture<'static, Result<k1s_apiserver::node::PodConnection, NodeError>> {
            Box::pin(async move {
                let conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| NodeError::BadRequest(e.to_string()))?;
                Ok(Box::pin(conn) as k1s_apiserver::node::PodConnection)
            })
        }
    }

    const PODS: &str = "/api/v1/namespaces/default/pods";

    /// A pod bound to node n1 with these containers (and init containers).
    fn bound_pod(name: &str, containers: &[&str], init: &[&str]) -> Value {
        let c = |n: &&str| json!({"name": n, "image": "busybox"});
        let mut p = json!({"metadata": {"name": name}, "spec": {"nodeName": "n1", "containers": containers.iter().map(c).collect::<Vec<_>>()}});
        if !init.is_empty() {
            p["spec"]["initContainers"] = json!(init.iter().map(c).collect::<Vec<_>>());
        }
        p
    }

    async fn with_node() -> (ApiServer, axum::Router, Arc<FakeNode>) {
        let (api, r) = server().await;
        let node = Arc::new(FakeNode::default());
        api.set_node_connector(node.clone());
        (api, r, node)
    }

    /// GET a log: status, Content-Type and the body as text.
    async fn log(r: &axum::Router, uri: &str) -> (StatusCode, String, String) {
        let (s, h, body) = send(r, Request::get(uri).body(Body::empty()).unwrap()).await;
        let ct = h.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let text = match body {
            Value::String(t) => t,
            Value::Null => String::new(),
            other => other.to_string(),
        };
        (s, ct, text)
    }

    #[tokio::test]
    async fn log_streams_the_default_container_and_passes_the_options() {
        let (_api, r, node) = with_node().await;
        create(&r, PODS, bound_pod("web", &["main"], &[])).await;

        let (s, ct, text) = log(&r, &format!("{PODS}/web/log")).await;
        assert_eq!(s, StatusCode::OK, "{text}");
        assert_eq!(ct, "text/plain");
        assert_eq!(text, (1..=5).map(|i| format!("main current line {i}\n")).collect::<String>(), "the only container is the default");

        let (s, _, text) =
            log(&r, &format!("{PODS}/web/log?container=main&tailLines=2&timestamps=true&previous=true&sinceSeconds=3600&limitBytes=1000&insecureSkipTLSVerifyBackend=true"))
                .await;
        assert_eq!(s, StatusCode::OK, "{text}");
        assert_eq!(text, "2024-01-01T00:00:00.000000000Z main previous line 4\n2024-01-01T00:00:00.000000000Z main previous line 5\n");
        let last = node.logs.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last.pod.metadata.name.as_deref(), Some("web"));
        assert_eq!(last.container, "main");
        assert!(last.previous && last.timestamps && !last.follow);
        assert_eq!((last.tail_lines, last.since_seconds, last.since_time.as_deref(), last.limit_bytes), (Some(2), Some(3600), None, Some(1000)));

        log(&r, &format!("{PODS}/web/log?sinceTime=2024-05-01T10:00:00Z&follow=false")).await;
        let last = node.logs.lock().unwrap().last().cloned().unwrap();
        assert_eq!((last.since_time.as_deref(), last.since_seconds, last.follow), (Some("2024-05-01T10:00:00Z"), None, false));

        // limitBytes is enforced at the edge whatever the node sends.
        let (s, _, text) = log(&r, &format!("{PODS}/web/log?limitBytes=10")).await;
        assert_eq!((s, text.as_str()), (StatusCode::OK, "main curre"));
    }

    #[tokio::test]
    async fn log_container_choice_and_errors() {
        let (_api, r, node) = with_node().await;
        create(&r, PODS, bound_pod("multi", &["a", "b"], &["setup"])).await;

        let (s, _, st) = send(&r, Request::get(format!("{PODS}/multi/log")).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_failure(&st, 400, "BadRequest");
        assert_eq!(st["message"], "a container name must be specified for pod multi, choose one of: [a b] or one of the init containers: [setup]");

        let (s, st) = get(&r, &format!("{PODS}/multi/log?container=zz")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(st["message"], "container zz is not valid for pod multi");

        let (s, _, text) = log(&r, &format!("{PODS}/multi/log?container=setup&tailLines=1")).await;
        assert_eq!((s, text.as_str()), (StatusCode::OK, "setup current line 5\n"), "init containers have logs too");

        // The default-container annotation picks one of several.
        let mut annotated = bound_pod("annotated", &["a", "b"], &[]);
        annotated["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/default-container": "b"});
        create(&r, PODS, annotated).await;
        let (s, _, text) = log(&r, &format!("{PODS}/annotated/log?tailLines=1")).await;
        assert_eq!((s, text.as_str()), (StatusCode::OK, "b current line 5\n"));

        let (s, st) = get(&r, &format!("{PODS}/nope/log")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_failure(&st, 404, "NotFound");
        assert_eq!(st["message"], "pods \"nope\" not found");
        assert_eq!(st["details"], json!({"name": "nope", "kind": "pods"}));

        // Options are validated as upstream's ValidatePodLogOptions (422 PodLogOptions … is invalid).
        let (s, st) = get(&r, &format!("{PODS}/multi/log?container=a&tailLines=-1")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_failure(&st, 422, "Invalid");
        assert_eq!(st["message"], "PodLogOptions \"multi\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0");
        assert_eq!(st["details"]["causes"][0]["field"], "tailLines");
        let (_, st) = get(&r, &format!("{PODS}/multi/log?container=a&limitBytes=-5")).await;
        assert_eq!(st["message"], "PodLogOptions \"multi\" is invalid: limitBytes: Invalid value: -5: must be greater than 0");
        let (s, st) = get(&r, &format!("{PODS}/multi/log?container=a&sinceSeconds=10&sinceTime=2024-01-01T00:00:00Z")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(st["message"].as_str().unwrap().contains("at most one of `sinceTime` or `sinceSeconds` may be specified"), "{st}");
        let (s, st) = get(&r, &format!("{PODS}/multi/log?container=a&tailLines=ten")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(st["message"], "tailLines: invalid value \"ten\": must be an integer");

        // The node's errors keep their codes.
        create(&r, PODS, bound_pod("starting", &["waiting"], &[])).await;
        let (s, st) = get(&r, &format!("{PODS}/starting/log")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(st["message"], "container \"waiting\" in pod \"starting\" is waiting to start: ContainerCreating");
        create(&r, PODS, bound_pod("vanished", &["gone"], &[])).await;
        let (s, st) = get(&r, &format!("{PODS}/vanished/log")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_failure(&st, 404, "NotFound");
        assert_eq!(st["details"], json!({}), "404s always carry details");

        // Only GET.
        let (s, _) = super::post(&r, &format!("{PODS}/multi/log"), json!({})).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        let calls = node.logs.lock().unwrap().len();
        assert_eq!(calls, 4, "the node is asked only once a request is valid");
    }

    #[tokio::test]
    async fn log_of_an_unscheduled_pod_is_empty_and_no_agent_is_503() {
        let (_api, r) = server().await;
        create(&r, PODS, super::pod("pending")).await;
        let (s, _, text) = log(&r, &format!("{PODS}/pending/log")).await;
        assert_eq!((s, text.as_str()), (StatusCode::OK, ""), "upstream streams nothing before the pod has a node");

        create(&r, PODS, bound_pod("bound", &["c"], &[])).await;
        let (s, st) = get(&r, &format!("{PODS}/bound/log")).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_failure(&st, 503, "ServiceUnavailable");
        assert_eq!(st["message"], "no node agent is running");
    }

    #[tokio::test]
    async fn log_follow_streams_until_the_client_goes_away() {
        let (_api, r, node) = with_node().await;
        create(&r, PODS, bound_pod("f", &["c"], &[])).await;
        let resp = r.clone().oneshot(Request::get(format!("{PODS}/f/log?follow=true&tailLines=1")).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let mut seen = String::new();
        while !seen.contains("tick 2\n") {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("chunks keep coming").unwrap().unwrap();
            seen.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap());
        }
        assert!(seen.starts_with("c current line 5\ntick 0\n"), "{seen}");
        assert!(!node.follow_dropped.load(std::sync::atomic::Ordering::SeqCst));
        drop(body);
        assert!(node.follow_dropped.load(std::sync::atomic::Ordering::SeqCst), "the node's stream ends with the client");
    }

    #[tokio::test]
    async fn discovery_lists_pods_log_and_exec() {
        let (_api, r) = server().await;
        let (_, _, agg) = super::get_accept(&r, "/api", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList").await;
        let pods = agg["items"][0]["versions"][0]["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "pods").unwrap().clone();
        let subs = pods["subresources"].as_array().unwrap();
        let sub = |n: &str| subs.iter().find(|s| s["subresource"] == n).unwrap_or_else(|| panic!("no pods/{n}: {pods}")).clone();
        assert_eq!(sub("log"), json!({"subresource": "log", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get"]}));
        assert_eq!(sub("exec"), json!({"subresource": "exec", "responseKind": {"group": "", "version": "v1", "kind": "PodExecOptions"}, "verbs": ["create", "get"]}));
        let (_, legacy) = get(&r, "/api/v1").await;
        let find = |n: &str| legacy["resources"].as_array().unwrap().iter().find(|r| r["name"] == n).cloned();
        assert_eq!(find("pods/log").unwrap()["verbs"], json!(["get"]));
        assert_eq!(find("pods/exec").unwrap()["kind"], "PodExecOptions");
        assert_eq!(find("pods/portforward").unwrap()["kind"], "PodPortForwardOptions");
        assert!(find("configmaps/log").is_none());
        let (s, _) = get(&r, "/api/v1/namespaces/default/configmaps/x/log").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "only pods have node subresources");
    }

    #[tokio::test]
    async fn exec_without_websocket_is_refused_with_a_status() {
        let (_api, r, node) = with_node().await;
        create(&r, PODS, bound_pod("x", &["c"], &[])).await;
        let url = format!("{PODS}/x/exec?command=ls&stdout=true");

        let (s, st) = get(&r, &url).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_failure(&st, 400, "BadRequest");
        assert!(st["message"].as_str().unwrap().contains("needs a WebSocket connection"), "{st}");
        assert!(st["message"].as_str().unwrap().contains("v5.channel.k8s.io"), "{st}");

        let spdy = Request::post(&url)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "SPDY/3.1")
            .header("X-Stream-Protocol-Version", "v4.channel.k8s.io")
            .body(Body::empty())
            .unwrap();
        let (s, _, st) = send(&r, spdy).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let m = st["message"].as_str().unwrap();
        // SPDY is served (remotecommand_spdy.rs), but a request without a connection to take over (this
        // oneshot call) cannot be upgraded.
        assert!(m.contains("cannot be upgraded to SPDY/3.1"), "{m}");

        let ws = |protocol: &str| {
            Request::get(&url)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "websocket")
                .header(header::SEC_WEBSOCKET_VERSION, "13")
                .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
                .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
                .body(Body::empty())
                .unwrap()
        };
        let (s, _, st) = send(&r, ws("channel.k8s.io, base64.channel.k8s.io")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(st["message"], "pods/exec over WebSocket needs the subprotocol v5.channel.k8s.io or v4.channel.k8s.io; the client offered channel.k8s.io, base64.channel.k8s.io");

        // Option and pod checks come before the transport.
        let (s, st) = get(&r, &format!("{PODS}/x/exec?stdout=true")).await;
        assert_eq!((s, st["message"].as_str()), (StatusCode::BAD_REQUEST, Some("you must specify at least one command for the container")));
        let (s, st) = get(&r, &format!("{PODS}/x/exec?command=ls")).await;
        assert_eq!((s, st["message"].as_str()), (StatusCode::BAD_REQUEST, Some("you must specify at least 1 of stdin, stdout, stderr")));
        let (s, st) = call_method(&r, Method::DELETE, &url).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{st}");
        assert!(node.execs.lock().unwrap().is_empty(), "nothing was started");
    }

    async fn call_method(r: &axum::Router, m: Method, uri: &str) -> (StatusCode, Value) {
        super::call(r, m, uri, None, super::JSON).await
    }

    /// Serve the router over plain HTTP on a loopback port, and a kube client for it.
    async fn socket(api: &ApiServer) -> kube::Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = api.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        // kube retries 503s for minutes by default; "no node agent is running" must come back at once here.
        config.default_retry = false;
        kube::Client::try_from(config).unwrap()
    }

    /// What an exec session produced.
    struct Outcome {
        stdout: String,
        stderr: String,
        status: Status,
    }

    async fn run(pods: &Api<Pod>, name: &str, command: &[&str], ap: &AttachParams, stdin: Option<&[u8]>) -> Outcome {
        let fut = async {
            let mut p = pods.exec(name, command.to_vec(), ap).await.expect("exec upgrades to a WebSocket");
            let status = p.take_status().expect("a status future");
            let input = p.stdin();
            let writer = async move {
                if let (Some(mut w), Some(data)) = (input, stdin) {
                    w.write_all(data).await.unwrap();
                    w.shutdown().await.unwrap();
                    // Dropping the writer makes kube send [255, 0]: stdin EOF.
                }
            };
            let read = |r: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>| async move {
                let mut s = String::new();
                if let Some(mut r) = r {
                    r.read_to_string(&mut s).await.unwrap();
                }
                s
            };
            let (stdout, stderr) = (p.stdout(), p.stderr());
            let ((), stdout, stderr, status) = tokio::join!(writer, read(stdout), read(stderr), status);
            p.join().await.expect("the session ends cleanly");
            Outcome { stdout, stderr, status: status.expect("the server sends a status on channel 3") }
        };
        tokio::time::timeout(Duration::from_secs(20), fut).await.expect("exec finishes")
    }

    fn sh(script: &str) -> Vec<&str> {
        vec!["sh", "-c", script]
    }

    #[tokio::test]
    async fn exec_over_websocket_streams_output_stdin_and_exit_codes() {
        let (api, r, node) = with_node().await;
        create(&r, PODS, bound_pod("box", &["main"], &[])).await;
        let pods: Api<Pod> = Api::namespaced(socket(&api).await, "default");
        let out_err = AttachParams::default().stdout(true).stderr(true);

        let o = run(&pods, "box", &sh("echo out; echo err >&2"), &out_err, None).await;
        assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("out\n", "err\n"));
        assert_eq!((o.status.status.as_deref(), o.status.reason.as_deref(), o.status.message.as_deref()), (Some("Success"), None, None));
        let req = node.execs.lock().unwrap().last().cloned().unwrap();
        assert_eq!((req.container.as_str(), req.command.clone(), req.stdin, req.stdout, req.stderr, req.tty), ("main", vec!["sh".to_string(), "-c".into(), "echo out; echo err >&2".into()], false, true, true, false));

        let o = run(&pods, "box", &sh("echo partial; exit 3"), &out_err, None).await;
        assert_eq!(o.stdout, "partial\n");
        let mut st = serde_json::to_value(&o.status).unwrap();
        st.as_object_mut().unwrap().retain(|k, _| k != "kind" && k != "apiVersion");
        assert_eq!(
            st,
            json!({"metadata": {}, "status": "Failure",
                "message": "command terminated with non-zero exit code: error executing command [sh -c echo partial; exit 3], exit code 3",
                "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}})
        );

        // stdin round trip: kube sends the bytes on channel 0, then [255, 0] for EOF, and cat ends.
        let o = run(&pods, "box", &["cat"], &AttachParams::default().stdin(true).stdout(true).stderr(false), Some(b"hello\nworld\n")).await;
        assert_eq!(o.stdout, "hello\nworld\n");
        assert_eq!(o.status.status.as_deref(), Some("Success"));

        // Everything is sent before the status, however much there is.
        let o = run(&pods, "box", &sh("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done >&2; exit 1"), &out_err, None).await;
        assert_eq!(o.stdout.len(), 3_000_001);
        assert_eq!(o.stderr, "done\n");
        assert_eq!(o.status.reason.as_deref(), Some("NonZeroExitCode"));

        // A large stdin through cat comes back whole (stdin and stdout flow at once, no deadlock).
        let big: Vec<u8> = (0..2_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let o = run(&pods, "box", &["cat"], &AttachParams::default().stdin(true).stdout(true).stderr(false), Some(&big)).await;
        assert_eq!(o.stdout.len(), big.len());
        assert!(o.stdout.as_bytes() == big.as_slice());

        // A signal is reported as exit code 128 + signal.
        let o = run(&pods, "box", &sh("kill -9 $$"), &out_err, None).await;
        assert_eq!(o.status.details.unwrap().causes.unwrap()[0].message.as_deref(), Some("137"));

        // An error from the node after the session started arrives as a Failure Status on channel 3.
        let o = run(&pods, "box", &["__lost__"], &out_err, None).await;
        assert_eq!(o.status.reason.as_deref(), Some("InternalError"));
        assert_eq!(o.status.message.as_deref(), Some("Internal error occurred: error executing command in container: the runtime lost the process"));
    }

    #[tokio::test]
    async fn exec_errors_before_the_upgrade_are_http_statuses() {
        let (api, r, _node) = with_node().await;
        create(&r, PODS, bound_pod("two", &["a", "b"], &[])).await;
        create(&r, PODS, bound_pod("halted", &["stopped"], &[])).await;
        create(&r, PODS, super::pod("unbound")).await;
        let pods: Api<Pod> = Api::namespaced(socket(&api).await, "default");
        let ap = AttachParams::default();
        let status = |r: Result<kube::api::AttachedProcess, kube::Error>| match r {
            Err(kube::Error::Api(s)) => (s.code, s.message),
            Err(e) => panic!("expected a Status, got {e}"),
            Ok(_) => panic!("expected a Status, got a session"),
        };
        assert_eq!(status(pods.exec("missing", vec!["ls"], &ap).await), (404, "pods \"missing\" not found".to_string()));
        assert_eq!(status(pods.exec("two", vec!["ls"], &ap).await), (400, "a container name must be specified for pod two, choose one of: [a b]".to_string()));
        assert_eq!(status(pods.exec("two", vec!["ls"], &AttachParams::default().container("zz")).await), (400, "container zz is not valid for pod two".to_string()));
        assert_eq!(status(pods.exec("unbound", vec!["ls"], &ap).await), (400, "pod unbound does not have a host assigned".to_string()));
        assert_eq!(status(pods.exec("halted", vec!["ls"], &ap).await), (400, "container stopped is not running".to_string()));
        assert_eq!(status(pods.exec("two", Vec::<String>::new(), &AttachParams::default().container("a")).await).0, 400);

        let (bare, _) = server().await;
        let pods: Api<Pod> = Api::namespaced(socket(&bare).await, "default");
        create(&bare.router(), PODS, bound_pod("p", &["c"], &[])).await;
        assert_eq!(status(pods.exec("p", vec!["ls"], &ap).await), (503, "no node agent is running".to_string()));
    }

    #[tokio::test]
    async fn exec_tty_sends_no_stderr_channel_and_closes_normally() {
        let (api, r, node) = with_node().await;
        create(&r, PODS, bound_pod("t", &["c"], &[])).await;
        let client = socket(&api).await;
        // The raw protocol: kube's connect offers v5 and v4, and hands over the socket.
        let req = Request::get(format!("{PODS}/t/exec?command=sh&command=-c&command=read%20x%3B%20echo%20out%3B%20echo%20err%20%3E%262&stdin=true&stdout=true&stderr=true&tty=true"))
            .body(vec![])
            .unwrap();
        let conn = client.connect(req).await.expect("upgrade");
        assert!(conn.supports_stream_close(), "v5 was chosen");
        let mut ws = conn.into_stream();
        // A resize frame split across two messages, as a byte stream.
        ws.send(b"\x04{\"Width\":100,".to_vec().into()).await.unwrap();
        ws.send(b"\x04\"Height\":30}\n".to_vec().into()).await.unwrap();
        // The command waits for a line, so the resize is handled while it runs.
        ws.send(b"\x00go\n".to_vec().into()).await.unwrap();
        let mut frames = Vec::new();
        let mut close = None;
        while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("the session ends") {
            let msg = msg.unwrap();
            if msg.is_close() {
                close = Some(format!("{msg:?}"));
                break;
            }
            if msg.is_binary() {
                frames.push(msg.into_data());
            }
        }
        assert!(frames.iter().all(|f| f[0] != 2), "no channel 2 with a terminal");
        let stdout: Vec<u8> = frames.iter().filter(|f| f[0] == 1).flat_map(|f| f[1..].to_vec()).collect();
        assert_eq!(stdout, b"out\n");
        let last = frames.last().unwrap();
        assert_eq!(last[0], 3, "the status comes last");
        assert_eq!(&last[1..], br#"{"metadata":{},"status":"Success"}"#);
        assert!(close.unwrap().contains("Normal"), "closed with 1000");
        let req = node.execs.lock().unwrap().last().cloned().unwrap();
        assert!(req.tty && !req.stderr, "a terminal has no separate stderr");
        assert_eq!(*node.resizes.lock().unwrap(), [(100, 30)], "the size split over two messages arrives once, whole");

        // Some clients POST the handshake (as they do for SPDY); it works the same.
        let req = Request::post(format!("{PODS}/t/exec?command=echo&command=posted&stdout=true")).body(vec![]).unwrap();
        let mut ws = client.connect(req).await.expect("a POST upgrades too").into_stream();
        let mut frames = Vec::new();
        while let Some(Ok(msg)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("the session ends") {
            if msg.is_binary() {
                frames.push(msg.into_data());
            }
        }
        assert_eq!(frames.first().map(|f| f.to_vec()), Some(b"\x01posted\n".to_vec()));
        assert_eq!(frames.last().map(|f| f[0]), Some(3));
    }

    /// A client that speaks only `v4.channel.k8s.io` (the Python client, older tools) gets v4: output on
    /// channels 1 and 2, the exit Status on channel 3, and no v5 close frames needed (stdin ends with the
    /// connection's half of the session).
    #[tokio::test]
    async fn exec_over_websocket_v4() {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let (api, r, _node) = with_node().await;
        create(&r, PODS, bound_pod("v4", &["main"], &[])).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = api.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let url = format!("ws://{addr}{PODS}/v4/exec?command=sh&command=-c&command=echo%20out%3B%20echo%20err%20%3E%262%3B%20exit%202&stdout=true&stderr=true");
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("Sec-WebSocket-Protocol", "v4.channel.k8s.io".parse().unwrap());
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp).await.expect("v4 handshake");
        assert_eq!(resp.headers()["sec-websocket-protocol"], "v4.channel.k8s.io");
        let mut frames: Vec<Vec<u8>> = Vec::new();
        while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("the session ends") {
            let msg = msg.unwrap();
            if msg.is_close() {
                break;
            }
            assert!(msg.is_binary(), "binary frames only: {msg:?}");
            frames.push(msg.into_data().to_vec());
        }
        let on = |ch: u8| -> Vec<u8> { frames.iter().filter(|f| f[0] == ch).flat_map(|f| f[1..].to_vec()).collect() };
        assert_eq!((on(1), on(2)), (b"out\n".to_vec(), b"err\n".to_vec()));
        let status: Value = serde_json::from_slice(&frames.last().unwrap()[1..]).unwrap();
        assert_eq!(frames.last().unwrap()[0], 3);
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "2");
    }

    /// pods/portforward over a raw SPDY/3.1 upgrade, spoken by a minimal spdystream-like client built on our
    /// own codec: the 101 and its headers, a SYN_REPLY per stream, bytes both ways through the FakeNode's
    /// connection (a local echo server), FIN on data and error streams; a closed port is an error text.
    #[tokio::test]
    async fn port_forward_over_a_raw_spdy_upgrade() {
        use bytes::{Bytes, BytesMut};
        use k1s_apiserver::spdy::{Decoder, Encoder, Frame, FLAG_FIN};

        let (api, r, _node) = with_node().await;
        create(&r, PODS, bound_pod("web", &["main"], &[])).await;
        let (s, _) = super::patch(&r, &format!("{PODS}/web/status"), super::MERGE_PATCH, json!({"status": {"phase": "Running"}})).await;
        assert_eq!(s, StatusCode::OK);
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut c, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut rd, mut wr) = c.split();
                    let _ = tokio::io::copy(&mut rd, &mut wr).await;
                });
            }
        });
        let closed_port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = api.router();
        tokio::spawn(async move { axum::serve(listener, router).await });

        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "POST {PODS}/web/portforward HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n"
        );
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(conn.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: spdy/3.1") && head.contains("x-stream-protocol-version: portforward.k8s.io"), "{head}");

        let (mut enc, mut dec) = (Encoder::new(), Decoder::new());
        let mut out = BytesMut::new();
        let h = |kind: &str, port: u16, id: &str| vec![("streamtype".to_string(), kind.to_string()), ("port".into(), port.to_string()), ("requestid".into(), id.to_string())];
        // Pair 0 to the echo server, pair 1 to a closed port; error streams half-closed at once, as kubectl does.
        enc.encode(&Frame::SynStream { stream_id: 1, assoc_id: 0, priority: 0, flags: FLAG_FIN, headers: h("error", echo_port, "0") }, &mut out);
        enc.encode(&Frame::SynStream { stream_id: 3, assoc_id: 0, priority: 0, flags: 0, headers: h("data", echo_port, "0") }, &mut out);
        enc.encode(&Frame::Data { stream_id: 3, flags: FLAG_FIN, data: Bytes::from_static(b"ping through the pod") }, &mut out);
        enc.encode(&Frame::Ping { id: 1 }, &mut out);
        enc.encode(&Frame::SynStream { stream_id: 5, assoc_id: 0, priority: 0, flags: FLAG_FIN, headers: h("error", closed_port, "1") }, &mut out);
        enc.encode(&Frame::SynStream { stream_id: 7, assoc_id: 0, priority: 0, flags: 0, headers: h("data", closed_port, "1") }, &mut out);
        conn.write_all(&out).await.unwrap();

        let mut buf = BytesMut::new();
        let (mut replies, mut pings, mut echoed, mut fins, mut error_text) = (Vec::new(), 0, Vec::new(), Vec::new(), String::new());
        let done = |fins: &Vec<u32>| [1, 3, 5, 7].iter().all(|id| fins.contains(id));
        tokio::time::timeout(Duration::from_secs(10), async {
            while !done(&fins) {
                while let Some(f) = dec.decode(&mut buf).unwrap() {
                    match f {
                        Frame::SynReply { stream_id, .. } => replies.push(stream_id),
                        Frame::Ping { id } => {
                            assert_eq!(id, 1);
                            pings += 1
                        }
                        Frame::Data { stream_id, flags, data } => {
                            assert!(replies.contains(&stream_id), "data on {stream_id} before its SYN_REPLY");
                            match stream_id {
                                3 => echoed.extend_from_slice(&data),
                                5 => error_text.push_str(std::str::from_utf8(&data).unwrap()),
                                1 | 7 => assert!(data.is_empty(), "stream {stream_id}: {data:?}"),
                                other => panic!("data on stream {other}"),
                            }
                            if flags & FLAG_FIN != 0 {
                                fins.push(stream_id);
                            }
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                if done(&fins) {
                    break;
                }
                assert_ne!(conn.read_buf(&mut buf).await.unwrap(), 0, "the server closed the connection early");
            }
        })
        .await
        .expect("every stream ends");
        replies.sort();
        assert_eq!(replies, [1, 3, 5, 7]);
        assert_eq!(pings, 1);
        assert_eq!(echoed, b"ping through the pod");
        assert!(error_text.starts_with(&format!("error forwarding port {closed_port} to pod web_default, uid ")), "{error_text}");

        // Not running: a 400 before any upgrade.
        create(&r, PODS, bound_pod("pending", &["main"], &[])).await;
        let req = Request::post(format!("{PODS}/pending/portforward")).header(header::CONNECTION, "Upgrade").header(header::UPGRADE, "SPDY/3.1").body(Body::empty()).unwrap();
        let (s, _, st) = send(&r, req).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(st["message"].as_str().unwrap().contains("is not running"), "{st}");
    }

    #[tokio::test]
    async fn exec_through_tls_and_bearer_token_auth() {
        let (api, r, _node) = with_node().await;
        create(&r, PODS, bound_pod("secure", &["c"], &[])).await;
        let dir = tempfile::tempdir().unwrap();
        let pki = k1s_apiserver::tls::Pki::load_or_create(&dir.path().join("pki"), &["127.0.0.1".to_string()]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tokens = k1s_apiserver::auth::Tokens::new(vec![pki.token.clone()]);
        tokio::spawn(k1s_apiserver::tls::serve(listener, api.router(), pki.server_config().unwrap(), tokens, api.shutdown_signal()));

        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        let kubeconfig = |token: &str| {
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: k1s\n  cluster:\n    server: https://{addr}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: k1s\n  context:\n    cluster: k1s\n    user: admin\n    namespace: default\ncurrent-context: k1s\n",
                ca.display()
            )
        };
        let client = |token: String| async move {
            let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig(&token)).unwrap();
            let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.unwrap();
            Api::<Pod>::default_namespaced(kube::Client::try_from(cfg).unwrap())
        };

        let pods = client(pki.token.clone()).await;
        let o = run(&pods, "secure", &sh("echo over tls"), &AttachParams::default().stdout(true).stderr(false), None).await;
        assert_eq!(o.stdout, "over tls\n");
        assert_eq!(o.status.status.as_deref(), Some("Success"));

        let wrong = client("not-the-token".into()).await;
        match wrong.exec("secure", vec!["ls"], &AttachParams::default()).await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 401),
            Err(e) => panic!("expected 401, got {e}"),
            Ok(_) => panic!("expected 401, got a session"),
        }
        api.shutdown();
    }
}

/// Metadata-only reads (`as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`: client-go's metadata client,
/// kube's `Api<PartialObjectMeta<K>>`, our garbage collector): each object's metadata whole and nothing else,
/// for get, list and watch; a Table still wins when a client accepts both.
#[tokio::test]
async fn metadata_only_get_list_and_watch() {
    const META: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    const META_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    let (_api, r) = server().await;
    create(&r, CMS, json!({"metadata": {"name": "m1", "labels": {"a": "b"}}, "data": {"k": "v"}})).await;
    let req = |accept: &str, uri: &str| Request::get(uri).header(header::ACCEPT, accept).body(Body::empty()).expect("valid request");

    let (s, _, one) = send(&r, req(META, &format!("{CMS}/m1"))).await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!((one["kind"].as_str(), one["apiVersion"].as_str()), (Some("PartialObjectMetadata"), Some("meta.k8s.io/v1")), "{one}");
    assert_eq!(one["metadata"]["labels"]["a"], "b");
    assert!(one["metadata"]["uid"].is_string() && one["metadata"]["resourceVersion"].is_string(), "{one}");
    assert!(one.get("data").is_none(), "metadata only: {one}");

    let (s, _, list) = send(&r, req(&format!("{META_LIST}, {JSON}"), CMS)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!((list["kind"].as_str(), list["apiVersion"].as_str()), (Some("PartialObjectMetadataList"), Some("meta.k8s.io/v1")), "{list}");
    assert!(list["metadata"]["resourceVersion"].is_string(), "{list}");
    assert_eq!(names(&list), ["m1"]);
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert!(list["items"][0].get("data").is_none(), "{list}");

    let both = format!("application/json;as=Table;v=v1;g=meta.k8s.io, {META_LIST}, {JSON}");
    let (_, _, table) = send(&r, req(&both, CMS)).await;
    assert_eq!(table["kind"], "Table", "{table}");

    let resp = r.clone().oneshot(req(META, &format!("{CMS}?watch=1&resourceVersion={}", rv(&list)))).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut w = Watch { body: resp.into_body(), buf: Vec::new(), ended: false };
    create(&r, CMS, json!({"metadata": {"name": "m2"}, "data": {"k": "v"}})).await;
    let ev = w.event().await;
    assert_eq!(summary(&ev), ("ADDED".to_string(), "m2".to_string()));
    assert_eq!(ev["object"]["kind"], "PartialObjectMetadata", "{ev}");
    assert!(ev["object"].get("data").is_none(), "{ev}");
}
