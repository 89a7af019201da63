//! The Kubernetes-compatible API server: routing, the generic registry, watch, discovery, auth and TLS.
//!
//! One fallback handler parses every resource path (`/api/v1/...`, `/apis/<g>/<v>/...`) against the resource
//! table and hands it to the one generic [`registry::Registry`]; there is no handler per kind.
//! [`ApiServer::router`] is the in-process service (controllers and the agent reach it through kube's client
//! with no socket); [`tls::serve`] puts it behind HTTPS and bearer-token auth.
//!
//! `pods/{name}/log` and `pods/{name}/exec` are served by the node agent, which the API server reaches only
//! through the [`node::NodeConnector`] it is given with [`ApiServer::set_node_connector`] ([`streaming`]).

pub mod auth;
pub mod discovery;
pub mod error;
pub mod events;
pub mod namespaces;
pub mod node;
pub mod openapi;
pub mod openapi_v2;
pub mod portforward;
pub mod registry;
pub mod remotecommand_spdy;
pub mod spdy;
pub mod strategy;
pub mod streaming;
pub mod table;
pub mod tls;
pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, Method, StatusCode, Uri};
use http_body_util::BodyExt;
use k1s_api::resources::{self, ResourceInfo};
use k1s_api::selectors::{FieldSelector, LabelSelector};
use k1s_store::Store;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry::{DeleteOptions, ListOptions, Registry, WriteOptions};

/// The Kubernetes version whose API k1s implements: the one k8s-openapi's version feature selects.
/// kubectl's dispatcher on this machine kind picks its client build by this minor (kubectl-wire.md §0).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

/// Request bodies above this size are refused with 413 (upstream's limit is 3 MiB too).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The API server's shared state. Cheap to clone.
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    shutdown_rx: tokio::sync::watch::Receiver<bool>,
    server_address: String,
    /// The node agent, once the composition root has built it (it needs the router first).
    node: RwLock<Option<Arc<dyn node::NodeConnector>>>,
}

impl ApiServer {
    /// `server_address` is what legacy discovery reports as the address clients reach (host:port).
    pub fn new(store: Arc<dyn Store>, server_address: String) -> Self {
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        ApiServer {
            inner: Arc::new(Inner { registry: Registry::new(store), shutdown_tx, shutdown_rx, server_address, node: RwLock::new(None) }),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Install the node agent that serves `pods/log` and `pods/exec` (replacing one installed before).
    /// Until then those answer 503 "no node agent is running".
    pub fn set_node_connector(&self, connector: Arc<dyn node::NodeConnector>) {
        *self.inner.node.write().unwrap_or_else(|e| e.into_inner()) = Some(connector);
    }

    /// The installed node agent, if any.
    pub fn node_connector(&self) -> Option<Arc<dyn node::NodeConnector>> {
        self.inner.node.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Create the namespaces every cluster has at boot.
    pub async fn bootstrap(&self) -> ApiResult<()> {
        let ns = resources::find("", "v1", "namespaces").expect("namespaces are served");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.registry().ensure(ns, None, json!({"metadata": {"name": name}})).await?;
        }
        Ok(())
    }

    /// Ask every open watch to end (graceful shutdown).
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown_tx.send(true);
    }

    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.shutdown_rx.clone()
    }

    /// The unauthenticated router, for in-process clients and tests. [`tls::serve`] adds authentication.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/version", get(version))
            .route("/healthz", get(health))
            .route("/livez", get(health))
            .route("/readyz", get(health))
            .route("/openapi/v2", get(openapi_v2_document))
            .route("/openapi/v3", get(openapi_index))
            .route("/openapi/v3/{*gv}", get(openapi_document))
            .fallback(dispatch)
            .with_state(self.clone())
    }
}

/// A 200 with a JSON body that is already serialised.
fn raw_json(body: Vec<u8>) -> Response {
    Response::builder().status(StatusCode::OK).header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).expect("valid response")
}

pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).expect("JSON values serialise");
    Response::builder().status(code).header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).expect("valid response")
}

/// `/version`: names k1s in gitVersion; major/minor are the implemented Kubernetes API.
pub fn version_info() -> Value {
    let k1s = env!("CARGO_PKG_VERSION");
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+k1s-{k1s}"),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "k1s (Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else if std::env::consts::ARCH == "aarch64" { "arm64" } else { std::env::consts::ARCH }),
    })
}

async fn version() -> Response {
    json_response(StatusCode::OK, &version_info())
}

async fn openapi_index() -> Response {
    json_response(StatusCode::OK, &openapi::index())
}

/// A group-version document; immutable (cacheable forever) when fetched by its current hash.
async fn openapi_document(axum::extract::Path(gv): axum::extract::Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(doc) = openapi::document(gv.trim_end_matches('/')) else {
        return ApiError::no_route().into_response();
    };
    let cache = if q.get("hash") == Some(&doc.hash) { "public, immutable" } else { "no-cache, private" };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ETAG, format!("\"{}\"", doc.hash))
        .header(header::CACHE_CONTROL, cache)
        .body(Body::from(doc.body.clone()))
        .expect("valid response")
}

/// `/openapi/v2`: one Swagger 2.0 document, as gnostic protobuf when asked for (client-go's
/// `OpenAPISchema()`, which kubectl 1.27 validates and explains with), else JSON.
/// The ETag is the document's hash, suffixed per representation so a cache cannot revalidate one as the other.
async fn openapi_v2_document(headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (content_type, body, etag) = if openapi_v2::wants_protobuf(accept) {
        (openapi_v2::PROTOBUF_CONTENT_TYPE, openapi_v2::document_protobuf(), format!("\"{}-pb\"", openapi_v2::hash()))
    } else {
        ("application/json", openapi_v2::document_json(), format!("\"{}\"", openapi_v2::hash()))
    };
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        return Response::builder().status(StatusCode::NOT_MODIFIED).header(header::ETAG, etag).body(Body::empty()).expect("valid response");
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ETAG, etag)
        .header(header::VARY, "Accept")
        .body(Body::from(body))
        .expect("valid response")
}

async fn health() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
}

/// What a request path names.
#[derive(Debug, PartialEq)]
enum Target<'a> {
    CoreVersions,
    Groups,
    Group(&'a str),
    ResourceList(&'a str, &'a str),
    Resource { info: &'static ResourceInfo, ns: Option<&'a str>, name: Option<&'a str>, sub: Option<&'a str>, watch: bool },
}

fn parse_path(path: &str) -> ApiResult<Target<'_>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api"] => return Ok(Target::CoreVersions),
        ["apis"] => return Ok(Target::Groups),
        ["apis", g] => return Ok(Target::Group(g)),
        ["api", v] => return Ok(Target::ResourceList("", v)),
        ["apis", g, v] => return Ok(Target::ResourceList(g, v)),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let find = |plural: &str| resources::find(group, version, plural);
    let (info, ns, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|r| r.namespaced) => (find(plural).expect("checked"), Some(*ns), tail),
        [plural, tail @ ..] => (find(plural).ok_or_else(ApiError::no_route)?, None, tail),
        [] => return Err(ApiError::no_route()),
    };
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some(*name), None),
        [name, sub] if info.has_subresource(sub) || streaming::Subresource::of(info, sub).is_some() => (Some(*name), Some(*sub)),
        _ => return Err(ApiError::no_route()),
    };
    if info.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::no_route());
    }
    if name.is_some_and(str::is_empty) || ns.is_some_and(str::is_empty) {
        return Err(ApiError::no_route());
    }
    Ok(Target::Resource { info, ns, name, sub, watch })
}

async fn dispatch(State(api): State<ApiServer>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query = match Query::<HashMap<String, String>>::try_from_uri(&parts.uri) {
        Ok(Query(q)) => q,
        Err(rejection) => return rejection.into_response(),
    };
    // The node subresources need the whole request (a WebSocket upgrade takes the connection from it).
    let result = match node_target(parts.uri.path()) {
        Some((info, ns, name, sub)) => streaming::serve(&api, info, &ns, &name, sub, parts).await,
        None => serve(api, parts.method, parts.uri, query, parts.headers, body).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `pods/{name}/log`, `exec`, `attach` and `portforward` paths: (resource, namespace, name, subresource).
fn node_target(path: &str) -> Option<(&'static ResourceInfo, String, String, streaming::Subresource)> {
    if !matches!(path.rsplit('/').next(), Some("log" | "exec" | "attach" | "portforward")) {
        return None;
    }
    match parse_path(path) {
        Ok(Target::Resource { info, ns: Some(ns), name: Some(name), sub: Some(sub), watch: false }) => {
            streaming::Subresource::of(info, sub).map(|s| (info, ns.to_string(), name.to_string(), s))
        }
        _ => None,
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Read the body, refusing more than [`MAX_BODY`]. An oversized body is still drained (up to
/// [`DRAIN_LIMIT`]) before the 413 goes out, so an HTTP/1.1 client can reuse its connection: answering
/// mid-upload leaves unread bytes on it, and the client's next request on that connection fails.
async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(buf.freeze())
}

/// How much of an oversized body is read and dropped before answering 413.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Decode a request body: JSON, or the Kubernetes protobuf envelope that typed clients send
/// (`kubectl create job|namespace|configmap|secret`).
fn json_body(info: &ResourceInfo, headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = header_str(headers, header::CONTENT_TYPE).split(';').next().unwrap_or("").trim();
    let v: Value = match ct {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("{} in version {:?} cannot be handled as a {}: {e}", info.kind, info.version, info.kind))
        })?,
        "application/vnd.kubernetes.protobuf" => k1s_api::protobuf::decode(body).map_err(|e| ApiError::bad_request(e.0))?,
        _ => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf (got {ct:?})"
            )))
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(format!("the body must be a JSON object holding a {}", info.kind)));
    }
    Ok(v)
}

/// How to treat unknown fields (`fieldValidation`; upstream's default is Warn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

fn field_validation(query: &HashMap<String, String>) -> ApiResult<FieldValidation> {
    match query.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some(other) => Err(ApiError::bad_request(format!("fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Warn\", \"Strict\""))),
    }
}

/// Check a body for unknown and duplicate fields: an error under Strict, `Warning` headers under Warn.
fn check_fields(info: &ResourceInfo, obj: &Value, raw: &[u8], mode: FieldValidation) -> ApiResult<Vec<String>> {
    if mode == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let unknown = k1s_api::validation::unknown_fields(info, obj);
    // Protobuf bodies cannot repeat a field name; only JSON is scanned.
    let duplicates = if raw.first().is_some_and(|b| *b == b'{' || b.is_ascii_whitespace()) { k1s_api::validation::duplicate_fields(raw) } else { Vec::new() };
    if unknown.is_empty() && duplicates.is_empty() {
        return Ok(Vec::new());
    }
    if mode == FieldValidation::Strict {
        return Err(ApiError::strict_decoding_with(info, &unknown, &duplicates));
    }
    Ok(duplicates.iter().map(|p| format!("duplicate field {p:?}")).chain(unknown.iter().map(|p| format!("unknown field {p:?}"))).collect())
}

/// A JSON response with HTTP `Warning` headers (kubectl prints them as `Warning: …`).
fn with_warnings(code: StatusCode, v: &Value, warnings: &[String]) -> Response {
    let mut r = json_response(code, v);
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(h) = http::HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, h);
        }
    }
    r
}

fn list_options(query: &HashMap<String, String>, info: &ResourceInfo) -> ApiResult<ListOptions> {
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("labelSelector: {e}")))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("fieldSelector: {e}")))?;
    let supported = info.all_field_labels();
    fields.check_supported(&supported).map_err(|e| {
        ApiError::bad_request(format!("{e}; {} supports: {}", info.group_resource(), supported.join(", ")))
    })?;
    let limit = match query.get("limit").filter(|s| !s.is_empty()) {
        Some(l) => Some(l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("limit: invalid value {l:?}: must be a non-negative integer")))?),
        None => None,
    };
    Ok(ListOptions { labels, fields, limit, continue_token: query.get("continue").filter(|s| !s.is_empty()).cloned() })
}

fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query.get(name).is_some_and(|v| v == "true" || v == "1")
}

/// Write options from the query; the field manager defaults to the client's name from its User-Agent, as upstream.
fn write_options(query: &HashMap<String, String>, headers: &HeaderMap) -> ApiResult<WriteOptions> {
    let field_manager = match query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => m.clone(),
        None => header_str(headers, header::USER_AGENT).split('/').next().unwrap_or("").trim().to_string(),
    };
    Ok(WriteOptions {
        dry_run: dry_run(query)?,
        field_manager,
        strict: field_validation(query)? == FieldValidation::Strict,
        force: flag(query, "force"),
    })
}

fn dry_run(query: &HashMap<String, String>) -> ApiResult<bool> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("dryRun: Unsupported value: {other:?}: supported values: \"All\""))),
    }
}

async fn serve(api: ApiServer, method: Method, uri: Uri, query: HashMap<String, String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let accept = header_str(&headers, header::ACCEPT);
    let as_table = table::wants_table(accept).then(|| table::include(query.get("includeObject").map(String::as_str)));
    // A Table wins when a client accepts both (kubectl lists Table first).
    let as_metadata = as_table.is_none() && table::wants_metadata(accept);
    let target = parse_path(uri.path())?;
    let reg = api.registry();
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    let aggregated = |core: bool| -> ApiResult<Response> {
        match discovery::wants_aggregated(accept) {
            Some(ct) => Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, ct)
                .header(header::VARY, "Accept")
                .body(Body::from(serde_json::to_vec(&discovery::aggregated(core, ct)).expect("serialises")))
                .expect("valid response")),
            None if core => ok(discovery::api_versions(&api.inner.server_address)),
            None => ok(discovery::api_group_list()),
        }
    };
    let (info, ns, name, sub, watch_path) = match target {
        Target::CoreVersions => return aggregated(true),
        Target::Groups => return aggregated(false),
        Target::Group(g) => return discovery::api_group(g).map_or_else(|| Err(ApiError::no_route()), ok),
        Target::ResourceList(g, v) => return discovery::resource_list(g, v).map_or_else(|| Err(ApiError::no_route()), ok),
        Target::Resource { info, ns, name, sub, watch } => (info, ns, name, sub, watch),
    };
    if info.read_only && method != Method::GET {
        return Err(ApiError {
            message: format!(
                "{} are not supported by this k1s version yet (there is no service proxy); they can be listed but not {}",
                info.group_resource(),
                match method { Method::POST => "created", Method::DELETE => "deleted", _ => "changed" }
            ),
            ..ApiError::method_not_allowed(&method, &info.group_resource())
        });
    }
    match (method.clone(), name, sub) {
        (Method::GET, None, None) => {
            let opts = list_options(&query, info)?;
            if watch_path || flag(&query, "watch") {
                let timeout = match query.get("timeoutSeconds").filter(|s| !s.is_empty()) {
                    Some(t) => Duration::from_secs(t.parse().map_err(|_| ApiError::bad_request(format!("timeoutSeconds: invalid value {t:?}")))?),
                    None => watch::DEFAULT_TIMEOUT,
                };
                if flag(&query, "sendInitialEvents") && !flag(&query, "allowWatchBookmarks") {
                    return Err(ApiError {
                        code: 422,
                        reason: "Invalid",
                        message: "ListOptions.meta.k8s.io \"\" is invalid: allowWatchBookmarks: Required value: allowWatchBookmarks must be true when sendInitialEvents is set".into(),
                        details: json!({"kind": "ListOptions", "group": "meta.k8s.io", "causes": [{"reason": "FieldValueRequired", "message": "Required value: allowWatchBookmarks must be true when sendInitialEvents is set", "field": "allowWatchBookmarks"}]}),
                    });
                }
                let wopts = watch::WatchOptions {
                    list: opts,
                    resource_version: query.get("resourceVersion").cloned().unwrap_or_default(),
                    allow_bookmarks: flag(&query, "allowWatchBookmarks"),
                    send_initial_events: flag(&query, "sendInitialEvents"),
                    timeout,
                    table: as_table,
                    metadata: as_metadata,
                };
                return watch::watch(reg, info, ns, wopts, api.shutdown_signal());
            }
            match as_table {
                Some(inc) => {
                    let list = reg.list(info, ns, &opts)?;
                    let items = list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                    ok(table::table(info, items, inc, list["metadata"].clone(), true))
                }
                None if as_metadata => ok(table::partial_list(&reg.list(info, ns, &opts)?)),
                None => Ok(raw_json(reg.list_json(info, ns, &opts)?)),
            }
        }
        (Method::GET, Some(name), None | Some("status") | Some("ephemeralcontainers")) => match as_table {
            Some(inc) => {
                let obj = reg.get(info, ns, name)?;
                let md = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
                ok(table::table(info, std::slice::from_ref(&obj), inc, md, true))
            }
            None if as_metadata => ok(table::partial(&reg.get(info, ns, name)?)),
            None => Ok(raw_json(reg.get_json(info, ns, name)?)),
        },
        (Method::GET, Some(name), Some("scale")) => ok(reg.get_scale(info, ns, name)?),
        (Method::PUT, Some(name), Some("scale")) => {
            let body = read_body(body).await?;
            let scale: Value = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("Scale cannot be decoded: {e}")))?;
            ok(reg.update_scale(info, ns, name, &scale, &write_options(&query, &headers)?).await?)
        }
        (Method::PATCH, Some(name), Some("scale")) => {
            let body = read_body(body).await?;
            let ct = header_str(&headers, header::CONTENT_TYPE);
            ok(reg.patch_scale(info, ns, name, ct, &body, &write_options(&query, &headers)?).await?)
        }
        (Method::POST, None, None) => {
            let body = read_body(body).await?;
            let obj = json_body(info, &headers, &body)?;
            let warnings = check_fields(info, &obj, &body, field_validation(&query)?)?;
            let created = reg.create(info, ns, obj, &write_options(&query, &headers)?).await?;
            Ok(with_warnings(StatusCode::CREATED, &created, &warnings))
        }
        (Method::POST, Some(name), Some("binding")) => {
            let body = read_body(body).await?;
            let binding: Value = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("Binding cannot be decoded: {e}")))?;
            let status = reg.bind(info, ns, name, &binding).await?;
            Ok(json_response(StatusCode::CREATED, &status))
        }
        (Method::PUT, Some(name), None | Some("status") | Some("ephemeralcontainers")) => {
            let body = read_body(body).await?;
            let obj = json_body(info, &headers, &body)?;
            let warnings = check_fields(info, &obj, &body, field_validation(&query)?)?;
            let updated = reg.update(info, ns, name, obj, sub, &write_options(&query, &headers)?).await?;
            Ok(with_warnings(StatusCode::OK, &updated, &warnings))
        }
        (Method::PATCH, Some(name), None | Some("status") | Some("ephemeralcontainers")) => {
            let body = read_body(body).await?;
            let ct = header_str(&headers, header::CONTENT_TYPE);
            let wopts = write_options(&query, &headers)?;
            if ct.starts_with("application/apply-patch+yaml") && query.get("fieldManager").is_none_or(|m| m.is_empty()) {
                return Err(ApiError::bad_request("PATCH with apply requires a fieldManager (query parameter fieldManager=NAME)"));
            }
            let (obj, code) = reg.patch(info, ns, name, ct, &body, sub, &wopts).await?;
            Ok(json_response(code, &obj))
        }
        (Method::DELETE, Some(name), None) => {
            let body = read_body(body).await?;
            let opts = DeleteOptions::parse(&body, &query)?;
            let (obj, code) = reg.delete(info, ns, name, &opts).await?;
            Ok(json_response(code, &obj))
        }
        (Method::DELETE, None, None) => {
            let body = read_body(body).await?;
            let opts = DeleteOptions::parse(&body, &query)?;
            ok(reg.delete_collection(info, ns, &list_options(&query, info)?, &opts).await?)
        }
        (m, _, _) => Err(ApiError::method_not_allowed(&m, &info.group_resource())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("/api").unwrap(), Target::CoreVersions);
        assert_eq!(parse_path("/apis/batch/v1").unwrap(), Target::ResourceList("batch", "v1"));
        let Target::Resource { info, ns, name, sub, watch } = parse_path("/api/v1/namespaces/default/pods/p/status").unwrap() else { panic!() };
        assert_eq!((info.plural, ns, name, sub, watch), ("pods", Some("default"), Some("p"), Some("status"), false));
        let Target::Resource { info, ns, name, sub, .. } = parse_path("/api/v1/namespaces/default/status").unwrap() else { panic!() };
        assert_eq!((info.plural, ns, name, sub), ("namespaces", None, Some("default"), Some("status")));
        let Target::Resource { info, ns, name, .. } = parse_path("/api/v1/namespaces/kube-system").unwrap() else { panic!() };
        assert_eq!((info.plural, ns, name), ("namespaces", None, Some("kube-system")));
        let Target::Resource { info, ns, watch, .. } = parse_path("/apis/batch/v1/watch/namespaces/x/jobs").unwrap() else { panic!() };
        assert_eq!((info.plural, ns, watch), ("jobs", Some("x"), true));
        assert!(parse_path("/api/v1/pods/x").is_err(), "a namespaced object needs its namespace");
        assert!(parse_path("/api/v1/namespaces/default/pods/p/bogus").is_err());
        assert!(parse_path("/apis/batch/v2/jobs").is_err());
        let (info, ns, name, sub) = node_target("/api/v1/namespaces/default/pods/p/exec").unwrap();
        assert_eq!((info.plural, ns.as_str(), name.as_str(), sub), ("pods", "default", "p", streaming::Subresource::Exec));
        assert!(node_target("/api/v1/namespaces/default/pods/p/log").is_some());
        assert!(node_target("/api/v1/namespaces/default/configmaps/c/log").is_none());
        assert!(parse_path("/api/v1/namespaces/default/configmaps/c/exec").is_err(), "only pods have node subresources");
    }
}
