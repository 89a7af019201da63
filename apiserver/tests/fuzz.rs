//! Fuzzing the API server's router in-process (issue 9, item 4): fuzzed bodies (JSON, YAML, protobuf, bytes),
//! the four patch types, query strings and object names. Every answer must be a success or a well-formed
//! `Status` with a 4xx code — never a 5xx, never a panic — and the server must keep serving afterwards.
//! Also deep nesting, huge numbers of keys and oversized bodies.
//!
//! Bounded by default; `PROPTEST_CASES=20000 cargo test -p k1s-apiserver --test fuzz` is the long form.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use k1s_apiserver::ApiServer;
use k1s_store::MemStore;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

#[path = "../../api/tests/fuzzing/mod.rs"]
mod fuzzing;
use fuzzing::{config, envelope, json_value, mutated_manifest, proto_message, PROTOBUF_KINDS};

/// Collections the fuzzer writes to, and an object of each that exists.
const TARGETS: &[(&str, &str)] = &[
    ("/api/v1/namespaces/default/pods", "web"),
    ("/api/v1/namespaces/default/configmaps", "settings"),
    ("/api/v1/namespaces/default/secrets", "creds"),
    ("/apis/apps/v1/namespaces/default/deployments", "api"),
    ("/apis/batch/v1/namespaces/default/jobs", "pi"),
    ("/api/v1/namespaces", "team-a"),
    ("/apis/coordination.k8s.io/v1/namespaces/default/leases", "leader"),
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/vnd.kubernetes.protobuf",
    "application/yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "",
    "text/plain; charset=utf-8",
];

/// A server over a fresh in-memory store holding the corpus objects, on a runtime of its own.
fn server() -> (tokio::runtime::Runtime, Router) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let router = rt.block_on(async {
        let api = ApiServer::new(Arc::new(MemStore::new()), "127.0.0.1:6443".into());
        api.bootstrap().await.expect("bootstrap");
        let router = api.router();
        for m in fuzzing::CORPUS {
            for doc in k1s_api::yaml::documents(m).expect("the corpus parses") {
                let obj = doc.object;
                let plural = format!("{}s", obj["kind"].as_str().unwrap_or("").to_lowercase());
                // Only the kinds the fuzzer targets (a Service cannot be created: there is no service proxy).
                let Some((path, _)) = TARGETS.iter().find(|(p, _)| p.ends_with(&format!("/{plural}"))).copied() else { continue };
                let req = Request::post(path).header(header::CONTENT_TYPE, "application/json").body(Body::from(obj.to_string())).unwrap();
                let resp = router.clone().oneshot(req).await.unwrap();
                assert!(resp.status().is_success(), "seeding {path}: {}", resp.status());
            }
        }
        router
    });
    (rt, router)
}

/// Send a request and check the answer: a success, or a `Status` whose code is the response's 4xx code.
/// Streaming successes (watches) are not read to their end.
async fn check(router: &Router, req: Request<Body>) -> StatusCode {
    let what = format!("{} {}", req.method(), req.uri());
    let resp = router.clone().oneshot(req).await.expect("the router is infallible");
    let status = resp.status();
    assert!(status.as_u16() < 500, "{what} answered {status}");
    if status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS {
        let _ = tokio::time::timeout(Duration::from_millis(100), resp.into_body().collect()).await;
        return status;
    }
    assert!(status.is_client_error(), "{what} answered {status}");
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{what} answered {status} with a body that is not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes)));
    assert_eq!(v["kind"], "Status", "{what}: {v}");
    assert_eq!(v["apiVersion"], "v1", "{what}: {v}");
    assert_eq!(v["status"], "Failure", "{what}: {v}");
    assert_eq!(v["code"], status.as_u16(), "{what}: {v}");
    assert!(v["reason"].is_string(), "{what}: {v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
    status
}

/// The server still answers an ordinary read.
async fn still_serving(router: &Router) {
    let resp = router.clone().oneshot(Request::get("/api/v1/namespaces/default").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the server stopped serving");
}

/// A request body: a mutated manifest (as its JSON when it still parses), arbitrary JSON, raw bytes, or a
/// protobuf envelope.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        mutated_manifest().prop_map(|b| {
            match k1s_api::yaml::documents(&String::from_utf8_lossy(&b)) {
                Ok(docs) if !docs.is_empty() => serde_json::to_vec(&docs[0].object).unwrap(),
                _ => b,
            }
        }),
        mutated_manifest(),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 0..256),
        (prop::sample::select(PROTOBUF_KINDS), proto_message()).prop_map(|((av, k), raw)| envelope(av, k, &raw)),
    ]
}

/// Names, well-formed or not (percent-encoded into the path).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(TARGETS).prop_map(|(_, n)| n.to_string()),
        1 => "[a-z0-9.-]{0,70}",
        1 => ".{0,20}",
    ]
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

const QUERY_KEYS: &[&str] = &[
    "labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "resourceVersionMatch", "timeoutSeconds",
    "watch", "allowWatchBookmarks", "sendInitialEvents", "fieldValidation", "dryRun", "propagationPolicy",
    "gracePeriodSeconds", "orphanDependents", "includeObject", "fieldManager", "force", "pretty", "x",
];

fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("true".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999".to_string()),
        "[a-z=!,()<> .]{0,24}",
        ".{0,24}",
    ];
    prop::collection::vec((prop::sample::select(QUERY_KEYS), value), 0..5)
        .prop_map(|kv| kv.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&"))
}

/// JSON patches: operations from the RFC and some that are not, at paths that exist, do not, or are not
/// pointers.
fn json_patch() -> impl Strategy<Value = Value> {
    let path = prop_oneof![
        prop::sample::select(&[
            "/metadata/labels/a", "/metadata/labels/a~1b", "/spec/containers/0/image", "/spec/containers/-",
            "/spec/containers/99", "/spec/replicas", "/data/k", "/", "", "metadata", "/spec/template/spec/containers/0/env/-",
            "/metadata/name", "/metadata/resourceVersion", "/status/phase", "/spec/containers/0/resources/limits/cpu",
        ][..])
        .prop_map(str::to_string),
        "(/[a-z0-9~-]{0,8}){0,6}",
    ];
    let op = (prop::sample::select(&["add", "remove", "replace", "move", "copy", "test", "nope"][..]), path.clone(), path, json_value())
        .prop_map(|(op, p, from, v)| json!({"op": op, "path": p, "from": from, "value": v}));
    prop_oneof![
        prop::collection::vec(op, 0..6).prop_map(Value::Array),
        json_value(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzzed_bodies_get_a_status(target in prop::sample::select(TARGETS), put in any::<bool>(), ct in prop::sample::select(CONTENT_TYPES), body in body(), q in query()) {
        let (rt, router) = server_once();
        rt.block_on(async {
            let (path, name) = target;
            let (method, uri) = if put { (Method::PUT, format!("{path}/{name}?{q}")) } else { (Method::POST, format!("{path}?{q}")) };
            let req = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, ct).body(Body::from(body)).unwrap();
            check(router, req).await;
            still_serving(router).await;
        });
    }

    #[test]
    fn fuzzed_patches_get_a_status(target in prop::sample::select(TARGETS), name in name(), kind in 0usize..4, sub in prop::sample::select(&["", "/status", "/scale"][..]),
                                   patch in json_patch(), raw in prop::option::of(body()), manager in prop::option::of("[a-z]{0,6}"), force in any::<bool>()) {
        let (rt, router) = server_once();
        rt.block_on(async {
            let ct = ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"][kind];
            let mut q = vec![];
            if let Some(m) = manager {
                q.push(format!("fieldManager={m}"));
            }
            if force {
                q.push("force=true".to_string());
            }
            let uri = format!("{}/{}{sub}?{}", target.0, encode(&name), q.join("&"));
            let body = raw.unwrap_or_else(|| serde_json::to_vec(&patch).unwrap());
            let req = Request::patch(uri).header(header::CONTENT_TYPE, ct).body(Body::from(body)).unwrap();
            check(router, req).await;
            still_serving(router).await;
        });
    }

    #[test]
    fn fuzzed_queries_and_names_get_a_status(target in prop::sample::select(TARGETS), name in prop::option::of(name()), q in query(), table in any::<bool>()) {
        let (rt, router) = server_once();
        rt.block_on(async {
            let uri = match name {
                Some(n) => format!("{}/{}?{q}", target.0, encode(&n)),
                None => format!("{}?{q}", target.0),
            };
            let mut req = Request::get(uri);
            if table {
                req = req.header(header::ACCEPT, "application/json;as=Table;v=v1;g=meta.k8s.io,application/json");
            }
            check(router, req.body(Body::empty()).unwrap()).await;
            still_serving(router).await;
        });
    }

    #[test]
    fn fuzzed_deletes_get_a_status(q in query(), body in prop::option::of(prop_oneof![json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()), body()])) {
        let (rt, router) = server_once();
        rt.block_on(async {
            // A fresh object each time, so that the fuzzer's deletes do not empty the store for the others.
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "doomed", "namespace": "fuzz-deletes"}});
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fuzz-deletes"}});
            let _ = router.clone().oneshot(Request::post("/api/v1/namespaces").header(header::CONTENT_TYPE, "application/json").body(Body::from(ns.to_string())).unwrap()).await;
            let _ = router.clone().oneshot(Request::post("/api/v1/namespaces/fuzz-deletes/configmaps").header(header::CONTENT_TYPE, "application/json").body(Body::from(cm.to_string())).unwrap()).await;
            let one = Request::delete(format!("/api/v1/namespaces/fuzz-deletes/configmaps/doomed?{q}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone().map(Body::from).unwrap_or_else(Body::empty))
                .unwrap();
            check(router, one).await;
            let all = Request::delete(format!("/api/v1/namespaces/fuzz-deletes/configmaps?{q}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.map(Body::from).unwrap_or_else(Body::empty))
                .unwrap();
            check(router, all).await;
            still_serving(router).await;
        });
    }
}

/// One server per test thread, shared by that test's cases (a server per case would dominate the time).
fn server_once() -> (&'static tokio::runtime::Runtime, &'static Router) {
    thread_local! {
        static SERVER: &'static (tokio::runtime::Runtime, Router) = Box::leak(Box::new(server()));
    }
    SERVER.with(|s| (&s.0, &s.1))
}

// ---------------------------------------------------------------------------------------------
// Deep nesting, many keys, oversized bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn deep_nesting_is_a_400_status_not_a_stack_overflow() {
    let (rt, router) = server_once();
    rt.block_on(async {
        let deep_array = "[".repeat(100_000);
        let deep_object = format!("{{\"metadata\":{{\"name\":\"deep\"}},\"data\":{}", "{\"a\":".repeat(100_000));
        // Closed, so only the depth is wrong.
        let closed = format!("{{\"metadata\":{{\"name\":\"deep\"}},\"x\":{}{}}}", "[".repeat(50_000), "]".repeat(50_000));
        for body in [&deep_array, &deep_object, &closed] {
            for (method, uri, ct) in [
                (Method::POST, "/api/v1/namespaces/default/configmaps", "application/json"),
                (Method::PUT, "/api/v1/namespaces/default/configmaps/settings", "application/json"),
                (Method::PATCH, "/api/v1/namespaces/default/configmaps/settings", "application/merge-patch+json"),
                (Method::PATCH, "/api/v1/namespaces/default/configmaps/settings", "application/json-patch+json"),
                (Method::PATCH, "/api/v1/namespaces/default/pods/web", "application/strategic-merge-patch+json"),
                (Method::PATCH, "/api/v1/namespaces/default/pods/web?fieldManager=deep", "application/apply-patch+yaml"),
                (Method::DELETE, "/api/v1/namespaces/default/configmaps/nothing", "application/json"),
            ] {
                let req = Request::builder().method(method.clone()).uri(uri).header(header::CONTENT_TYPE, ct).body(Body::from(body.clone())).unwrap();
                let status = check(router, req).await;
                assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::UNSUPPORTED_MEDIA_TYPE || status == StatusCode::UNPROCESSABLE_ENTITY,
                    "{method} {uri} with {} bytes of nesting: {status}", body.len());
            }
        }
        // The deepest JSON the decoder accepts (its limit is 128) goes through the patch code without trouble.
        let mut v = json!("leaf");
        for _ in 0..120 {
            v = json!({"a": v});
        }
        for ct in ["application/merge-patch+json", "application/strategic-merge-patch+json"] {
            let req = Request::patch("/api/v1/namespaces/default/pods/web").header(header::CONTENT_TYPE, ct).body(Body::from(json!({"spec": v}).to_string())).unwrap();
            check(router, req).await;
        }
        let applied = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": v});
        check(router, Request::patch("/api/v1/namespaces/default/pods/web?fieldManager=deep").header(header::CONTENT_TYPE, "application/apply-patch+yaml").body(Body::from(applied.to_string())).unwrap()).await;
        still_serving(router).await;
    });
}

#[test]
fn huge_numbers_of_keys_get_an_answer() {
    let (rt, router) = server_once();
    rt.block_on(async {
        let data: serde_json::Map<String, Value> = (0..100_000).map(|i| (format!("k{i}"), json!("v"))).collect();
        let cm = json!({"metadata": {"name": "many-keys"}, "data": data});
        let req = Request::post("/api/v1/namespaces/default/configmaps").header(header::CONTENT_TYPE, "application/json").body(Body::from(cm.to_string())).unwrap();
        check(router, req).await;
        let labels: serde_json::Map<String, Value> = (0..50_000).map(|i| (format!("l{i}"), json!("v"))).collect();
        let cm = json!({"metadata": {"name": "many-labels", "labels": labels}});
        let req = Request::post("/api/v1/namespaces/default/configmaps").header(header::CONTENT_TYPE, "application/json").body(Body::from(cm.to_string())).unwrap();
        check(router, req).await;
        // A selector with two thousand requirements (URIs stop at 64 KiB).
        let sel = (0..2_000).map(|i| format!("l{i}=v")).collect::<Vec<_>>().join(",");
        check(router, Request::get(format!("/api/v1/namespaces/default/configmaps?labelSelector={}", encode(&sel))).body(Body::empty()).unwrap()).await;
        still_serving(router).await;
    });
}

#[test]
fn oversized_bodies_are_a_413_status() {
    let (rt, router) = server_once();
    rt.block_on(async {
        let big = json!({"metadata": {"name": "big"}, "data": {"x": "a".repeat(k1s_apiserver::MAX_BODY)}});
        let req = Request::post("/api/v1/namespaces/default/configmaps").header(header::CONTENT_TYPE, "application/json").body(Body::from(big.to_string())).unwrap();
        assert_eq!(check(router, req).await, StatusCode::PAYLOAD_TOO_LARGE);
        still_serving(router).await;
    });
}
