//! Raw requests to the API server and discovery: the verbs work on JSON values (any kind, any group) and keep
//! the server's `Status` whole, because kubectl's error lines are made of its `reason` and `message`.

use http::{Method, Request};
use http_body_util::BodyExt as _;
use serde_json::Value;

/// A non-2xx answer, as kubectl shows it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub status: Value,
}

impl std::fmt::Display for ApiError {
    /// kubectl's `StandardErrorMessage` for an API status.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason == "Invalid" {
            if let Some(causes) = self.status.pointer("/details/causes").and_then(Value::as_array) {
                // `The Job "x" is invalid: ` then one `* field: message` line per cause (kubectl 1.32 rendering).
                let kind = self.status.pointer("/details/kind").and_then(Value::as_str).unwrap_or("");
                let name = self.status.pointer("/details/name").and_then(Value::as_str).unwrap_or("");
                write!(f, "The {kind} {name:?} is invalid: ")?;
                for c in causes {
                    let field = c.get("field").and_then(Value::as_str).unwrap_or("");
                    let msg = c.get("message").and_then(Value::as_str).unwrap_or("");
                    write!(f, "\n* {field}: {msg}")?;
                }
                return Ok(());
            }
        }
        if self.reason.is_empty() {
            write!(f, "Error from server: {}", self.message)
        } else {
            write!(f, "Error from server ({}): {}", self.reason, self.message)
        }
    }
}

impl std::error::Error for ApiError {}

static REQUEST_TIMEOUT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

/// `--request-timeout` (non-zero): from here on each request of this process is bounded by it, as Go's
/// `http.Client.Timeout` bounds kubectl's: connecting, the answer's head and its whole body.
pub fn set_request_timeout(t: std::time::Duration) {
    let _ = REQUEST_TIMEOUT.set(t);
}

pub fn request_timeout() -> Option<std::time::Duration> {
    REQUEST_TIMEOUT.get().copied()
}

/// When a request started now must be done (streams: `get -w`, `logs -f`).
pub fn deadline() -> Option<tokio::time::Instant> {
    request_timeout().map(|t| tokio::time::Instant::now() + t)
}

/// kubectl's line when a request's time ran out before the server's answer was whole.
pub fn deadline_exceeded() -> anyhow::Error {
    super::Fail::msg("Unable to connect to the server: context deadline exceeded")
}

/// client-go's `timeout=` query parameter (Go's duration spelling) when a request timeout is set.
pub fn with_timeout_param(path: &str) -> String {
    let Some(t) = request_timeout() else { return path.to_string() };
    // A request with a timeout of its own (`version`'s discovery) takes the flag's instead.
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut q: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("timeout=")).collect();
    let timeout = format!("timeout={}", super::enc(&super::config::go_duration(t)));
    q.push(&timeout);
    format!("{base}?{}", q.join("&"))
}

pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// One request with a JSON (or other) body; a non-2xx answer becomes an [`ApiError`].
pub async fn call(
    client: &kube::Client,
    method: Method,
    path: &str,
    accept: &str,
    body: Option<(&str, Vec<u8>)>,
) -> anyhow::Result<Value> {
    let text = call_text(client, method, path, accept, body).await?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&text)?)
}

pub async fn call_text(
    client: &kube::Client,
    method: Method,
    path: &str,
    accept: &str,
    body: Option<(&str, Vec<u8>)>,
) -> anyhow::Result<String> {
    let path = with_timeout_param(path);
    let mut req = Request::builder().method(method).uri(path).header("Accept", accept);
    let bytes = match body {
        Some((ct, b)) => {
            req = req.header("Content-Type", ct);
            b
        }
        None => Vec::new(),
    };
    let exchange = async {
        let res = client.send(req.body(bytes)?.map(kube::client::Body::from)).await?;
        let code = res.status().as_u16();
        anyhow::Ok((code, res.into_body().collect().await?.to_bytes()))
    };
    let (code, bytes) = match request_timeout() {
        // The connector's own timeout (the same length) may be first: the same line.
        Some(t) => tokio::time::timeout(t, exchange)
            .await
            .map_err(|_| deadline_exceeded())?
            .map_err(|e| if format!("{e:#}").contains("deadline has elapsed") { deadline_exceeded() } else { e })?,
        None => exchange.await?,
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if code >= 400 {
        return Err(api_error(code, &text).into());
    }
    Ok(text)
}

fn api_error(code: u16, text: &str) -> ApiError {
    match serde_json::from_str::<Value>(text) {
        Ok(status) if status.get("kind").and_then(Value::as_str) == Some("Status") => ApiError {
            code,
            reason: status.get("reason").and_then(Value::as_str).unwrap_or("").to_string(),
            message: status.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
            status,
        },
        // kubectl's fallback for a body that is no Status: the reason from the HTTP code.
        _ => ApiError {
            code,
            reason: match code {
                404 => "NotFound",
                403 => "Forbidden",
                401 => "Unauthorized",
                409 => "Conflict",
                _ => "",
            }
            .into(),
            message: format!("the server could not find the requested resource ({code})"),
            status: Value::Null,
        },
    }
}

/// A served resource, as discovery describes it.
#[derive(Debug, Clone)]
pub struct Resource {
    pub group: String,
    pub version: String,
    /// The plural name, the URL segment.
    pub name: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub verbs: Vec<String>,
    pub categories: Vec<String>,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// kubectl's `kind.group` spelling, lowercased as in `pod/x` and `job.batch/x`.
    pub fn kind_group(&self) -> String {
        let k = self.kind.to_lowercase();
        if self.group.is_empty() {
            k
        } else {
            format!("{k}.{}", self.group)
        }
    }

    /// `pods "x"`'s first word with the group: `jobs.batch`.
    pub fn resource_group(&self) -> String {
        if self.group.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.name, self.group)
        }
    }

    /// The collection URL in `ns` (ignored for cluster-scoped resources; `None` = all namespaces).
    pub fn collection(&self, ns: Option<&str>) -> String {
        let base =
            if self.group.is_empty() { format!("/api/{}", self.version) } else { format!("/apis/{}/{}", self.group, self.version) };
        match ns {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.name),
            _ => format!("{base}/{}", self.name),
        }
    }

    pub fn item(&self, ns: Option<&str>, name: &str) -> String {
        format!("{}/{}", self.collection(ns), name)
    }
}

/// Every resource of the preferred version of every group, core first then groups in the server's order
/// (the order kubectl's RESTMapper prefers when a short name is ambiguous).
pub async fn discover(client: &kube::Client) -> anyhow::Result<Vec<Resource>> {
    let mut out = Vec::new();
    let core = call(client, Method::GET, "/api", "application/json", None).await?;
    for v in core.get("versions").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        let list = call(client, Method::GET, &format!("/api/{v}"), "application/json", None).await?;
        push_resources(&mut out, "", v, &list);
    }
    let groups = call(client, Method::GET, "/apis", "application/json", None).await?;
    for g in groups.get("groups").and_then(Value::as_array).into_iter().flatten() {
        let name = g.get("name").and_then(Value::as_str).unwrap_or_default();
        let Some(gv) = g.pointer("/preferredVersion/groupVersion").and_then(Value::as_str) else { continue };
        let version = gv.rsplit('/').next().unwrap_or_default();
        let list = call(client, Method::GET, &format!("/apis/{gv}"), "application/json", None).await?;
        push_resources(&mut out, name, version, &list);
    }
    Ok(out)
}

fn push_resources(out: &mut Vec<Resource>, group: &str, version: &str, list: &Value) {
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(String::from).collect()
    };
    for r in list.get("resources").and_then(Value::as_array).into_iter().flatten() {
        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.contains('/') {
            continue; // subresources are not kinds of their own
        }
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let singular = r
            .get("singularName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .unwrap_or_else(|| kind.to_lowercase());
        out.push(Resource {
            group: group.into(),
            version: version.into(),
            name: name.into(),
            singular,
            kind,
            namespaced: r.get("namespaced").and_then(Value::as_bool).unwrap_or(false),
            short_names: strs(r.get("shortNames")),
            verbs: strs(r.get("verbs")),
            categories: strs(r.get("categories")),
        });
    }
}

/// What the user typed (`po`, `pods`, `Pod`, `jobs.batch`, `jobs.v1.batch`) to a resource, as kubectl's
/// RESTMapper with its short-name expander resolves it.
pub fn resolve<'a>(resources: &'a [Resource], arg: &str) -> Option<&'a Resource> {
    let arg_l = arg.to_lowercase();
    let matches = |r: &Resource, n: &str| r.name == n || r.singular == n || r.kind.to_lowercase() == n || r.short_names.iter().any(|s| s == n);
    if let Some(r) = resources.iter().find(|r| matches(r, &arg_l)) {
        // The shortcut expander's warning when a short name also names another group's resource (`ev`).
        if !(r.name == arg_l || r.singular == arg_l || r.kind.to_lowercase() == arg_l) {
            let mut warned: Vec<(&str, &str)> = Vec::new();
            for o in resources.iter().filter(|o| o.short_names.contains(&arg_l) && (o.group != r.group || o.name != r.name)) {
                if !warned.contains(&(o.group.as_str(), o.name.as_str())) {
                    warned.push((&o.group, &o.name));
                    eprintln!("Warning: short name {arg_l:?} could also match lower priority resource {}", o.resource_group());
                }
            }
        }
        return Some(r);
    }
    // `name.group` or `name.version.group`.
    let (n, rest) = arg_l.split_once('.')?;
    resources.iter().find(|r| {
        matches(r, n) && (r.group == rest || format!("{}.{}", r.version, r.group) == rest)
    })
}
