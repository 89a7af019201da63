//! API errors and their rendering as `metav1.Status` — the only place errors become HTTP.
//!
//! Messages follow `k8s.io/apimachinery/pkg/api/errors/errors.go`, since kubectl prints them verbatim and
//! decides by `reason` (and `details`) what happened.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use k1s_api::validation::FieldError;
use k1s_api::ResourceInfo;
use k1s_store::StoreError;

use crate::node::NodeError;
use serde_json::{json, Value};

/// An error answered to a client as a `Status`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

fn details(info: &ResourceInfo, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": info.plural});
    if !info.group.is_empty() {
        d["group"] = info.group.into();
    }
    d
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: json!({}) }
    }

    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        ApiError { details: details(info, name), ..Self::new(404, "NotFound", format!("{} {name:?} not found", info.group_resource())) }
    }

    /// An unknown path: upstream's generic 404.
    pub fn no_route() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: details(info, name),
            ..Self::new(409, "AlreadyExists", format!("{} {name:?} already exists", info.group_resource()))
        }
    }

    pub fn conflict(info: &ResourceInfo, name: &str, why: &str) -> Self {
        ApiError {
            details: details(info, name),
            ..Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} {name:?}: {why}", info.group_resource()))
        }
    }

    /// The stale-resourceVersion conflict.
    pub fn modified(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict(info, name, "the object has been modified; please apply your changes to the latest version and try again")
    }

    pub fn invalid(info: &ResourceInfo, name: &str, errs: &[FieldError]) -> Self {
        Self::invalid_kind(info.kind, info.group, name, errs)
    }

    /// 422 Invalid for a kind that is not a served resource too, e.g. the options of a subresource
    /// (`PodLogOptions`).
    pub fn invalid_kind(kind: &str, group: &str, name: &str, errs: &[FieldError]) -> Self {
        let list = errs.iter().map(ToString::to_string).collect::<Vec<_>>();
        let joined = if list.len() == 1 { list[0].clone() } else { format!("[{}]", list.join(", ")) };
        let causes: Vec<Value> = errs.iter().map(|e| json!({"reason": e.reason(), "message": e.body(), "field": e.field})).collect();
        let mut d = json!({"name": name, "kind": kind, "causes": causes});
        if !group.is_empty() {
            d["group"] = group.into();
        }
        // Upstream names the kind with its group (`Job.batch`); core kinds stay bare.
        let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        ApiError { details: d, ..Self::new(422, "Invalid", format!("{qualified} {name:?} is invalid: {joined}")) }
    }

    /// `fieldValidation=Strict` found fields the kind does not have (upstream `transformDecodeError` wording),
    /// with where a field of that name does exist when there is one.
    pub fn strict_decoding(info: &ResourceInfo, unknown: &[String]) -> Self {
        Self::strict_decoding_with(info, unknown, &[])
    }

    /// The same, with duplicate fields (listed first, as upstream's decoder meets them first).
    pub fn strict_decoding_with(info: &ResourceInfo, unknown: &[String], duplicates: &[String]) -> Self {
        let dups = duplicates.iter().map(|p| format!("duplicate field {p:?}"));
        let list = unknown
            .iter()
            .map(|path| {
                let leaf = path.rsplit('.').next().unwrap_or(path);
                let leaf = leaf.split('[').next().unwrap_or(leaf);
                let elsewhere: Vec<String> = crate::openapi::field_locations(info, leaf).into_iter().filter(|l| l != path).collect();
                if elsewhere.is_empty() {
                    format!("unknown field {path:?}")
                } else {
                    format!("unknown field {path:?} ({leaf:?} belongs at {}: move it there)", elsewhere.join(" or "))
                }
            });
        let list = dups.chain(list).collect::<Vec<_>>().join(", ");
        Self::bad_request(format!("{} in version {:?} cannot be handled as a {}: strict decoding error: {list}", info.kind, info.version, info.kind))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn method_not_allowed(method: &http::Method, what: &str) -> Self {
        Self::new(405, "MethodNotAllowed", format!("the server does not allow this method on the requested resource: {method} on {what}"))
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {limit}"))
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    /// 507: the disk under the data dir is full. Upstream has no reason for it (etcd's "database space exceeded"
    /// reaches clients as a 500); 507 is HTTP's own code for it and still a 5xx, so clients retry it as a 500;
    /// the message says what to do.
    pub fn insufficient_storage(detail: impl Into<String>) -> Self {
        Self::new(
            507,
            "InsufficientStorage",
            format!("insufficient storage: the disk holding the k1s data dir is full ({}); writes fail until space is freed", detail.into()),
        )
    }

    /// Store errors that reach the edge without a more specific mapping.
    pub fn from_store(info: &ResourceInfo, name: &str, e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => Self::not_found(info, name),
            StoreError::AlreadyExists(_) => Self::already_exists(info, name),
            StoreError::Conflict { .. } => Self::modified(info, name),
            StoreError::Compacted { requested, oldest } => Self::expired(format!("too old resource version: {requested} ({oldest})")),
            StoreError::Backend(m) => Self::internal(m),
            StoreError::NoSpace(m) => Self::insufficient_storage(m),
            StoreError::Closed => Self::unavailable("the server is shutting down"),
        }
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        crate::json_response(code, &self.status())
    }
}

/// The node agent's errors (`pods/log`, `pods/exec`), with the codes the kubelet's answers have.
impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::NotFound(m) => Self::new(404, "NotFound", m),
            NodeError::BadRequest(m) => Self::bad_request(m),
            NodeError::Unavailable(m) => Self::unavailable(m),
            NodeError::Internal(m) => Self::internal(m),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
