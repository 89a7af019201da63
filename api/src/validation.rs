//! Validation of objects, with upstream's field paths and messages (`k8s.io/apimachinery/pkg/util/validation/field`,
//! `pkg/apis/core/validation`, `pkg/apis/batch/validation`), so that a 422 teaches what to fix.
//!
//! This is the foundation's depth: object metadata, the typed shape of every kind (via k8s-openapi), and the
//! rules a user trips over first. The kubectl-compatibility issue deepens it.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::resources::ResourceInfo;
use crate::selectors::LabelSelector;

/// The kind of a field error (upstream `field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    Forbidden,
    NotSupported,
    Duplicate,
    TooLong,
    NotFound,
}

/// One validation error: becomes one `details.causes[]` entry of a 422 Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: ErrorType,
    pub field: String,
    /// The offending value, as upstream prints it (already quoted for strings).
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { kind: ErrorType::Required, field: field.into(), value: None, detail: detail.into() }
    }
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl Into<String>) -> Self {
        FieldError { kind: ErrorType::Invalid, field: field.into(), value: Some(value.to_string()), detail: detail.into() }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { kind: ErrorType::Forbidden, field: field.into(), value: None, detail: detail.into() }
    }
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list = supported.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        FieldError {
            kind: ErrorType::NotSupported,
            field: field.into(),
            value: Some(value.to_string()),
            detail: format!("supported values: {list}"),
        }
    }
    pub fn not_found(field: impl Into<String>, value: &Value, detail: impl Into<String>) -> Self {
        FieldError { kind: ErrorType::NotFound, field: field.into(), value: Some(value.to_string()), detail: detail.into() }
    }
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        FieldError { kind: ErrorType::Duplicate, field: field.into(), value: Some(value.to_string()), detail: String::new() }
    }

    /// The `reason` of the Status cause.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::NotFound => "FieldValueNotFound",
        }
    }

    /// Upstream `field.Error.ErrorBody()`: what the cause's `message` holds.
    pub fn body(&self) -> String {
        let head = match self.kind {
            ErrorType::Required => "Required value".to_string(),
            ErrorType::Invalid => format!("Invalid value: {}", self.value.as_deref().unwrap_or("null")),
            ErrorType::Forbidden => "Forbidden".to_string(),
            ErrorType::NotSupported => format!("Unsupported value: {}", self.value.as_deref().unwrap_or("null")),
            ErrorType::Duplicate => format!("Duplicate value: {}", self.value.as_deref().unwrap_or("null")),
            ErrorType::TooLong => "Too long".to_string(),
            ErrorType::NotFound => format!("Not found: {}", self.value.as_deref().unwrap_or("null")),
        };
        if self.detail.is_empty() {
            head
        } else {
            format!("{head}: {}", self.detail)
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Problems with `s` as an RFC 1123 label (namespace names, container names).
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_label(s) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// Problems with `s` as an RFC 1123 subdomain (most object names).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty() || !s.split('.').all(is_label) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// How a kind's names are checked (upstream `ValidateNameFunc`s).
fn name_rule(info: &ResourceInfo) -> fn(&str) -> Vec<String> {
    match info.storage {
        "core/namespaces" => dns1123_label,
        // Events, Leases, ConfigMaps, Secrets, Pods, Nodes, Jobs: DNS subdomains.
        _ => dns1123_subdomain,
    }
}

/// Metadata checks for any object (upstream `ValidateObjectMeta`).
fn validate_meta(info: &ResourceInfo, obj: &Value, errs: &mut Vec<FieldError>) {
    let name = crate::meta::name(obj);
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        for msg in name_rule(info)(name) {
            errs.push(FieldError::invalid("metadata.name", &Value::String(name.into()), msg));
        }
        // Job names become a label value on their Pods (`batch.kubernetes.io/job-name`): at most 63.
        if info.storage == "batch/jobs" && name.len() > 63 {
            errs.push(FieldError::invalid("metadata.name", &Value::String(name.into()), "must be no more than 63 characters"));
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let sel = format!("{k}={}", v.as_str().unwrap_or(""));
            if let Err(e) = LabelSelector::parse(&sel) {
                errs.push(FieldError::invalid(format!("metadata.labels[{k}]"), v, e.0.trim_start_matches("unable to parse requirement: ").to_string()));
            }
        }
    }
    let total: usize = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|a| a.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum())
        .unwrap_or(0);
    if total > 256 * 1024 {
        errs.push(FieldError {
            kind: ErrorType::TooLong,
            field: "metadata.annotations".into(),
            value: None,
            detail: "may not be more than 262144 bytes".into(),
        });
    }
}

/// Check that an object in its storage form decodes as its kind; the message is upstream's decode error wording.
pub fn decode_check(info: &ResourceInfo, obj: &Value) -> Result<(), String> {
    use k8s_openapi::api;
    fn check<'de, T: Deserialize<'de>>(v: &'de Value) -> Result<(), String> {
        T::deserialize(v).map(|_| ()).map_err(|e| e.to_string())
    }
    let res = match (info.group, info.kind) {
        ("", "Pod") => check::<api::core::v1::Pod>(obj),
        ("", "Namespace") => check::<api::core::v1::Namespace>(obj),
        ("", "Node") => check::<api::core::v1::Node>(obj),
        ("", "Event") => check::<api::core::v1::Event>(obj),
        ("", "ConfigMap") => check::<api::core::v1::ConfigMap>(obj),
        ("", "Secret") => check::<api::core::v1::Secret>(obj),
        ("batch", "Job") => check::<api::batch::v1::Job>(obj),
        ("apps", "Deployment") => check::<api::apps::v1::Deployment>(obj),
        ("apps", "ReplicaSet") => check::<api::apps::v1::ReplicaSet>(obj),
        ("coordination.k8s.io", "Lease") => check::<api::coordination::v1::Lease>(obj),
        // Stored as core/v1 Events (see `events`).
        ("events.k8s.io", "Event") => check::<api::core::v1::Event>(obj),
        _ => Ok(()),
    };
    res.map_err(|e| format!("{} in version {:?} cannot be handled as a {}: {e}", info.kind, info.version, info.kind))
}

/// The object after a round trip through its typed k8s-openapi struct (the external form: events.k8s.io
/// Events as such), or None if it does not decode.
fn round_trip(info: &ResourceInfo, obj: &Value) -> Option<Value> {
    use k8s_openapi::api;
    fn rt<'de, T: Deserialize<'de> + serde::Serialize>(v: &'de Value) -> Option<Value> {
        T::deserialize(v).ok().and_then(|t| serde_json::to_value(&t).ok())
    }
    match (info.group, info.kind) {
        ("", "Pod") => rt::<api::core::v1::Pod>(obj),
        ("", "Namespace") => rt::<api::core::v1::Namespace>(obj),
        ("", "Node") => rt::<api::core::v1::Node>(obj),
        ("", "Event") => rt::<api::core::v1::Event>(obj),
        ("", "ConfigMap") => rt::<api::core::v1::ConfigMap>(obj),
        ("", "Secret") => rt::<api::core::v1::Secret>(obj),
        ("batch", "Job") => rt::<api::batch::v1::Job>(obj),
        ("apps", "Deployment") => rt::<api::apps::v1::Deployment>(obj),
        ("apps", "ReplicaSet") => rt::<api::apps::v1::ReplicaSet>(obj),
        ("coordination.k8s.io", "Lease") => rt::<api::coordination::v1::Lease>(obj),
        ("events.k8s.io", "Event") => rt::<api::events::v1::Event>(obj),
        _ => None,
    }
}

/// Fields of a (client-sent, external form) object that its kind does not have, as upstream's strict decoding
/// names them (`spec.containers[0].foo`). The typed structs drop unknown keys, so a key present (and not null)
/// in the input but absent after a round trip is unknown.
pub fn unknown_fields(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    fn walk(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
        match (input, known) {
            (Value::Object(i), Value::Object(k)) => {
                for (key, v) in i {
                    if v.is_null() {
                        continue;
                    }
                    let p = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    match k.get(key) {
                        None => out.push(p),
                        Some(kv) => walk(v, kv, &p, out),
                    }
                }
            }
            (Value::Array(i), Value::Array(k)) if i.len() == k.len() => {
                for (n, (a, b)) in i.iter().zip(k).enumerate() {
                    walk(a, b, &format!("{path}[{n}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(known) = round_trip(info, obj) {
        walk(obj, &known, "", &mut out);
    }
    out
}

/// Keys that appear twice in one JSON object of a request body (`spec.containers[0].name`), which upstream's
/// strict decoding reports as `duplicate field`. serde_json keeps the last silently, so this scans the raw bytes.
/// Malformed JSON yields no duplicates (the decoder reports it).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    struct Scan<'a> {
        b: &'a [u8],
        i: usize,
        out: Vec<String>,
    }
    impl Scan<'_> {
        fn ws(&mut self) {
            while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn string(&mut self) -> Option<String> {
            let start = self.i;
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            self.i += 1;
            while self.i < self.b.len() {
                match self.b[self.i] {
                    b'\\' => self.i += 2,
                    b'"' => {
                        self.i += 1;
                        return serde_json::from_slice::<String>(&self.b[start..self.i]).ok();
                    }
                    _ => self.i += 1,
                }
            }
            None
        }
        fn value(&mut self, path: &str, depth: usize) -> Option<()> {
            if depth > 200 {
                return None;
            }
            self.ws();
            match *self.b.get(self.i)? {
                b'{' => {
                    self.i += 1;
                    // A set, not a list: a body with 100 000 keys took 20 s of CPU to scan (found by fuzzing).
                    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
                    loop {
                        self.ws();
                        if self.b.get(self.i) == Some(&b'}') {
                            self.i += 1;
                            return Some(());
                        }
                        let key = self.string()?;
                        let p = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                        if seen.contains(&key) {
                            self.out.push(p.clone());
                        } else {
                            seen.insert(key);
                        }
                        self.ws();
                        if self.b.get(self.i) != Some(&b':') {
                            return None;
                        }
                        self.i += 1;
                        self.value(&p, depth + 1)?;
                        self.ws();
                        match self.b.get(self.i)? {
                            b',' => self.i += 1,
                            b'}' => {
                                self.i += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    let mut n = 0;
                    loop {
                        self.ws();
                        if self.b.get(self.i) == Some(&b']') {
                            self.i += 1;
                            return Some(());
                        }
                        self.value(&format!("{path}[{n}]"), depth + 1)?;
                        n += 1;
                        self.ws();
                        match self.b.get(self.i)? {
                            b',' => self.i += 1,
                            b']' => {
                                self.i += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                b'"' => self.string().map(|_| ()),
                _ => {
                    while self.i < self.b.len() && !matches!(self.b[self.i], b',' | b'}' | b']') && !self.b[self.i].is_ascii_whitespace() {
                        self.i += 1;
                    }
                    Some(())
                }
            }
        }
    }
    let mut s = Scan { b: body, i: 0, out: Vec::new() };
    let _ = s.value("", 0);
    s.out
}

/// Validate an object for create. `obj` is in its storage form, defaults applied.
pub fn validate(info: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_meta(info, obj, &mut errs);
    match info.storage {
        "core/pods" => validate_pod_spec(obj.get("spec"), "spec", &mut errs),
        "batch/jobs" => validate_job(obj, &mut errs),
        "apps/deployments" => validate_deployment(obj, &mut errs),
        "apps/replicasets" => validate_replicaset(obj, &mut errs),
        "core/configmaps" => validate_config_keys(obj, &["data", "binaryData"], &mut errs),
        "core/secrets" => validate_config_keys(obj, &["data", "stringData"], &mut errs),
        "core/events" => validate_event(obj, &mut errs),
        _ => {}
    }
    errs
}

/// Validate an update: everything `validate` checks, plus immutability rules.
pub fn validate_update(info: &ResourceInfo, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate(info, new);
    match info.storage {
        "core/pods" => validate_pod_update(new, old, &mut errs),
        "batch/jobs" => {
            for (path, field) in [("/spec/selector", "spec.selector"), ("/spec/template", "spec.template"), ("/spec/completionMode", "spec.completionMode")] {
                if new.pointer(path) != old.pointer(path) {
                    errs.push(FieldError::invalid(field, new.pointer(path).unwrap_or(&Value::Null), "field is immutable"));
                }
            }
        }
        // Upstream apps/v1: the selector is immutable (changing it would orphan the running Pods).
        "apps/deployments" | "apps/replicasets" if new.pointer("/spec/selector") != old.pointer("/spec/selector") => {
            errs.push(FieldError::invalid(
                "spec.selector",
                new.pointer("/spec/selector").unwrap_or(&Value::Null),
                "field is immutable; to select other Pods, create a new object",
            ));
        }
        "core/secrets" | "core/configmaps" if old.get("immutable") == Some(&Value::Bool(true)) => {
            for f in ["data", "binaryData", "stringData"] {
                if new.get(f) != old.get(f) {
                    errs.push(FieldError::forbidden(f, "field is immutable when `immutable` is set"));
                }
            }
        }
        _ => {}
    }
    errs
}

/// An update through `pods/{name}/ephemeralcontainers` (upstream `ValidatePodEphemeralContainersUpdate`):
/// ephemeral containers may only be added; a new one may not set what only a long-lived container has
/// (ports, probes, lifecycle, resources), and its `targetContainerName` must name a container of the Pod.
pub fn validate_ephemeral_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let list = |v: &Value| v.pointer("/spec/ephemeralContainers").and_then(Value::as_array).cloned().unwrap_or_default();
    let (new_list, old_list) = (list(new), list(old));
    let name_of = |c: &Value| c.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let mut errs = Vec::new();
    for o in &old_list {
        let name = name_of(o);
        match new_list.iter().position(|n| name_of(n) == name) {
            None => errs.push(FieldError::forbidden("spec.ephemeralContainers", format!("existing ephemeral containers \"{name}\" may not be removed"))),
            Some(i) if &new_list[i] != o => {
                errs.push(FieldError::forbidden(format!("spec.ephemeralContainers[{i}]"), format!("existing ephemeral containers \"{name}\" may not be changed")))
            }
            Some(_) => {}
        }
    }
    let regular: Vec<String> = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| new.pointer(&format!("/spec/{l}")).and_then(Value::as_array).cloned().unwrap_or_default())
        .map(|c| name_of(&c))
        .collect();
    for (i, c) in new_list.iter().enumerate() {
        if old_list.iter().any(|o| name_of(o) == name_of(c)) {
            continue;
        }
        let cp = format!("spec.ephemeralContainers[{i}]");
        for f in ["ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources", "resizePolicy", "restartPolicy"] {
            let set = match c.get(f) {
                None | Some(Value::Null) => false,
                Some(Value::Object(m)) => !m.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if set {
                errs.push(FieldError::forbidden(format!("{cp}.{f}"), "cannot be set for an Ephemeral Container"));
            }
        }
        if let Some(t) = c.get("targetContainerName").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            if !regular.iter().any(|n| n == t) {
                errs.push(FieldError::not_found(format!("{cp}.targetContainerName"), &Value::String(t.into()), "the target must be one of the Pod's containers or init containers"));
            }
        }
    }
    errs
}

fn validate_config_keys(obj: &Value, fields: &[&str], errs: &mut Vec<FieldError>) {
    for f in fields {
        if let Some(m) = obj.get(*f).and_then(Value::as_object) {
            for k in m.keys() {
                let ok = !k.is_empty() && k.len() <= 253 && k.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
                if !ok {
                    errs.push(FieldError::invalid(
                        format!("{f}[{k}]"),
                        &Value::String(k.clone()),
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                    ));
                }
            }
        }
    }
}

fn validate_event(obj: &Value, errs: &mut Vec<FieldError>) {
    let ns = crate::meta::namespace(obj);
    let inv_ns = obj.pointer("/involvedObject/namespace").and_then(Value::as_str).unwrap_or("");
    if !inv_ns.is_empty() && !ns.is_empty() && inv_ns != ns && ns != "default" {
        errs.push(FieldError::invalid("involvedObject.namespace", &Value::String(inv_ns.into()), "does not match event.namespace"));
    }
}

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

const QUANTITY_MSG: &str = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Parse a resource quantity (`resource.Quantity`: `100m`, `1Gi`, `1e3`, `0.5`) to a number, as upstream accepts it.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() || num.matches('.').count() > 1 || num[1..].contains(['+', '-']) {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    Some(n * mult)
}

/// Resource requirements: valid quantities, no negative values, requests ≤ limits (upstream `ValidateResourceRequirements`).
fn validate_resources(c: &Value, cp: &str, errs: &mut Vec<FieldError>) {
    let mut parsed: [std::collections::BTreeMap<String, f64>; 2] = Default::default();
    for (i, kind) in ["limits", "requests"].iter().enumerate() {
        let Some(m) = c.pointer(&format!("/resources/{kind}")).and_then(Value::as_object) else { continue };
        for (res, q) in m {
            let field = format!("{cp}.resources.{kind}[{res}]");
            let text = match q {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            match parse_quantity(&text) {
                None => errs.push(FieldError::invalid(field, q, QUANTITY_MSG)),
                Some(v) if v < 0.0 => errs.push(FieldError::invalid(field, q, "must be greater than or equal to 0")),
                Some(v) => {
                    parsed[i].insert(res.clone(), v);
                }
            }
        }
    }
    for (res, req) in &parsed[1] {
        if let Some(lim) = parsed[0].get(res) {
            if req > lim {
                let q = c.pointer(&format!("/resources/requests/{res}")).cloned().unwrap_or(Value::Null);
                let l = c.pointer(&format!("/resources/limits/{res}")).and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| lim.to_string());
                errs.push(FieldError::invalid(format!("{cp}.resources.requests"), &q, format!("must be less than or equal to {res} limit of {l}")));
            }
        }
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Port names are IANA service names: ≤ 15 lowercase alphanumerics or '-', at least one letter, no '--'.
fn is_port_name(s: &str) -> bool {
    s.len() <= 15
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Upstream `ValidatePodSpec`, the parts a user meets first.
pub fn validate_pod_spec(spec: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        errs.push(FieldError::required(path, ""));
        return;
    };
    let mut volumes: Vec<String> = Vec::new();
    for (i, v) in spec.get("volumes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        let n = v.get("name").and_then(Value::as_str).unwrap_or("");
        if n.is_empty() {
            errs.push(FieldError::required(format!("{vp}.name"), ""));
        } else {
            for msg in dns1123_label(n) {
                errs.push(FieldError::invalid(format!("{vp}.name"), &Value::String(n.into()), msg));
            }
            if volumes.iter().any(|x| x == n) {
                errs.push(FieldError::duplicate(format!("{vp}.name"), &Value::String(n.into())));
            }
            volumes.push(n.to_string());
        }
        let sources = v.as_object().map(|m| m.keys().filter(|k| k.as_str() != "name").count()).unwrap_or(0);
        if sources == 0 {
            errs.push(FieldError::required(vp.clone(), "must specify a volume type (e.g. emptyDir, hostPath, configMap, secret)"));
        } else if sources > 1 {
            errs.push(FieldError::forbidden(vp.clone(), "may not specify more than 1 volume type"));
        }
    }
    let mut names: Vec<String> = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let items = spec.get(list).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        if list == "containers" && items.is_empty() {
            errs.push(FieldError::required(format!("{path}.containers"), ""));
        }
        for (i, c) in items.iter().enumerate() {
            let cp = format!("{path}.{list}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(format!("{cp}.name"), ""));
            } else {
                for msg in dns1123_label(name) {
                    errs.push(FieldError::invalid(format!("{cp}.name"), &Value::String(name.into()), msg));
                }
                if names.iter().any(|n| n == name) {
                    errs.push(FieldError::duplicate(format!("{cp}.name"), &Value::String(name.into())));
                }
                names.push(name.to_string());
            }
            if c.get("image").and_then(Value::as_str).unwrap_or("").trim().is_empty() {
                errs.push(FieldError::required(format!("{cp}.image"), ""));
            }
            if let Some(ports) = c.get("ports").and_then(Value::as_array) {
                for (j, p) in ports.iter().enumerate() {
                    let pp = format!("{cp}.ports[{j}]");
                    let n = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
                    if !(1..=65535).contains(&n) {
                        errs.push(FieldError::invalid(format!("{pp}.containerPort"), p.get("containerPort").unwrap_or(&Value::Null), "must be between 1 and 65535, inclusive"));
                    }
                    if let Some(h) = p.get("hostPort").and_then(Value::as_i64) {
                        if h != 0 && !(1..=65535).contains(&h) {
                            errs.push(FieldError::invalid(format!("{pp}.hostPort"), &h.into(), "must be between 1 and 65535, inclusive"));
                        }
                    }
                    if let Some(proto) = p.get("protocol").filter(|v| !v.is_null()) {
                        if !["TCP", "UDP", "SCTP"].contains(&proto.as_str().unwrap_or("")) {
                            errs.push(FieldError::not_supported(format!("{pp}.protocol"), proto, &["SCTP", "TCP", "UDP"]));
                        }
                    }
                    if let Some(name) = p.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                        if !is_port_name(name) {
                            errs.push(FieldError::invalid(format!("{pp}.name"), &Value::String(name.into()), "must be no more than 15 characters, contain only lowercase alphanumeric characters or '-', contain at least one letter, and not begin or end with '-' or contain '--'"));
                        }
                    }
                }
            }
            validate_resources(c, &cp, errs);
            for (j, e) in c.get("env").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
                let n = e.get("name").and_then(Value::as_str).unwrap_or("");
                if n.is_empty() {
                    errs.push(FieldError::required(format!("{cp}.env[{j}].name"), ""));
                } else if !is_env_name(n) {
                    errs.push(FieldError::invalid(format!("{cp}.env[{j}].name"), &Value::String(n.into()), "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"));
                }
            }
            for (j, m) in c.get("volumeMounts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
                let vm = format!("{cp}.volumeMounts[{j}]");
                let n = m.get("name").and_then(Value::as_str).unwrap_or("");
                if n.is_empty() {
                    errs.push(FieldError::required(format!("{vm}.name"), ""));
                } else if !volumes.iter().any(|v| v == n) {
                    errs.push(FieldError::not_found(format!("{vm}.name"), &Value::String(n.into()), format!("no volume named {n:?} in spec.volumes; add it there or fix the name")));
                }
                if m.get("mountPath").and_then(Value::as_str).unwrap_or("").is_empty() {
                    errs.push(FieldError::required(format!("{vm}.mountPath"), ""));
                }
            }
            // Only init containers may be sidecars (`restartPolicy: Always`).
            if let Some(rp) = c.get("restartPolicy").filter(|v| !v.is_null()) {
                if list == "initContainers" {
                    if rp.as_str() != Some("Always") {
                        errs.push(FieldError::not_supported(format!("{cp}.restartPolicy"), rp, &["Always"]));
                    }
                } else {
                    errs.push(FieldError::forbidden(format!("{cp}.restartPolicy"), "may not be set for non-init containers"));
                }
            }
            if let Some(p) = c.get("imagePullPolicy").filter(|v| !v.is_null()) {
                if !["Always", "IfNotPresent", "Never"].contains(&p.as_str().unwrap_or("")) {
                    errs.push(FieldError::not_supported(format!("{cp}.imagePullPolicy"), p, &["Always", "IfNotPresent", "Never"]));
                }
            }
        }
    }
    if let Some(p) = spec.get("restartPolicy").filter(|v| !v.is_null()) {
        if !RESTART_POLICIES.contains(&p.as_str().unwrap_or("")) {
            errs.push(FieldError::not_supported(format!("{path}.restartPolicy"), p, RESTART_POLICIES));
        }
    }
    if let Some(p) = spec.get("dnsPolicy").filter(|v| !v.is_null()) {
        if !DNS_POLICIES.contains(&p.as_str().unwrap_or("")) {
            errs.push(FieldError::not_supported(format!("{path}.dnsPolicy"), p, DNS_POLICIES));
        }
    }
    if let Some(g) = spec.get("terminationGracePeriodSeconds").and_then(Value::as_i64) {
        if g < 0 {
            errs.push(FieldError::invalid(format!("{path}.terminationGracePeriodSeconds"), &g.into(), "must be greater than or equal to 0"));
        }
    }
    if let Some(d) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if d <= 0 {
            errs.push(FieldError::invalid(format!("{path}.activeDeadlineSeconds"), &d.into(), "must be between 1 and 2147483647, inclusive"));
        }
    }
}

fn validate_job(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    for f in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
        if let Some(n) = spec.get(f).and_then(Value::as_i64) {
            if n < 0 {
                errs.push(FieldError::invalid(format!("spec.{f}"), &n.into(), "must be greater than or equal to 0"));
            }
        }
    }
    let Some(template) = spec.get("template").filter(|t| t.is_object()) else {
        errs.push(FieldError::required("spec.template", ""));
        return;
    };
    validate_pod_spec(template.get("spec"), "spec.template.spec", errs);
    let rp = template.pointer("/spec/restartPolicy").cloned().unwrap_or(Value::Null);
    match rp.as_str() {
        Some("OnFailure") | Some("Never") => {}
        None | Some("") => errs.push(FieldError::required("spec.template.spec.restartPolicy", "valid values: \"OnFailure\", \"Never\"")),
        Some(_) => errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", &rp, &["OnFailure", "Never"])),
    }
    validate_job_modes(spec, rp.as_str(), errs);
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
        match LabelSelector::from_label_selector_json(sel) {
            Err(e) => errs.push(FieldError::invalid("spec.selector", sel, e.0)),
            Ok(s) => {
                if s.is_empty() {
                    errs.push(FieldError::invalid("spec.selector", sel, "empty selector is invalid for job"));
                } else if !s.matches_json(template.pointer("/metadata/labels")) {
                    errs.push(FieldError::invalid("spec.template.metadata.labels", template.pointer("/metadata/labels").unwrap_or(&Value::Null), "`selector` does not match template `labels`"));
                }
            }
        }
    }
}

/// What a Deployment and a ReplicaSet share (upstream `ValidateReplicaSetSpec` / `ValidateDeploymentSpec`):
/// counts, a non-empty selector that matches the template's labels, a template whose Pods restart Always.
fn validate_replicated(kind: &str, spec: &Value, errs: &mut Vec<FieldError>) {
    for f in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        if let Some(n) = spec.get(f).and_then(Value::as_i64) {
            if n < 0 {
                errs.push(FieldError::invalid(format!("spec.{f}"), &n.into(), "must be greater than or equal to 0"));
            }
        }
    }
    let template = spec.get("template").filter(|t| t.is_object());
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.push(FieldError::required("spec.selector", "set spec.selector.matchLabels to the labels of spec.template.metadata.labels")),
        Some(sel) => match LabelSelector::from_label_selector_json(sel) {
            Err(e) => errs.push(FieldError::invalid("spec.selector", sel, e.0)),
            Ok(s) if s.is_empty() => errs.push(FieldError::invalid("spec.selector", sel, format!("empty selector is invalid for {kind}"))),
            Ok(s) => {
                let labels = template.and_then(|t| t.pointer("/metadata/labels"));
                if !s.matches_json(labels) {
                    errs.push(FieldError::invalid("spec.template.metadata.labels", labels.unwrap_or(&Value::Null), "`selector` does not match template `labels`"));
                }
            }
        },
    }
    let Some(template) = template else {
        errs.push(FieldError::required("spec.template", ""));
        return;
    };
    validate_pod_spec(template.get("spec"), "spec.template.spec", errs);
    let rp = template.pointer("/spec/restartPolicy").cloned().unwrap_or(Value::Null);
    if rp.as_str().is_some_and(|p| p != "Always") {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", &rp, &["Always"]));
    }
    if template.pointer("/spec/activeDeadlineSeconds").is_some_and(|v| !v.is_null()) {
        errs.push(FieldError::forbidden("spec.template.spec.activeDeadlineSeconds", format!("activeDeadlineSeconds in {kind} is not Supported")));
    }
}

fn validate_replicaset(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    validate_replicated("ReplicaSet", spec, errs);
}

/// An IntOrString of a rolling update (upstream `ValidatePositiveIntOrPercent`, `IsNotMoreThan100Percent`):
/// its value as (number, is a percentage).
fn int_or_percent(v: &Value, field: &str, errs: &mut Vec<FieldError>) -> Option<(i64, bool)> {
    let parsed = match v {
        Value::Number(n) => n.as_i64().map(|n| (n, false)),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => Some((p, true)),
            None => {
                errs.push(FieldError::invalid(field, v, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"));
                return None;
            }
        },
        _ => None,
    }?;
    if parsed.0 < 0 {
        errs.push(FieldError::invalid(field, v, "must be greater than or equal to 0"));
    }
    Some(parsed)
}

fn validate_deployment(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    validate_replicated("Deployment", spec, errs);
    let strategy = spec.get("strategy").cloned().unwrap_or(Value::Null);
    let ty = strategy.get("type").cloned().unwrap_or(Value::Null);
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match ty.as_str() {
        Some("Recreate") => {
            if rolling.is_some() {
                errs.push(FieldError::forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'; remove it or set type RollingUpdate"));
            }
        }
        Some("RollingUpdate") => {
            let get = |f: &str| rolling.and_then(|r| r.get(f)).filter(|v| !v.is_null()).cloned();
            let unavailable = get("maxUnavailable");
            let surge = get("maxSurge");
            let u = unavailable.as_ref().and_then(|v| int_or_percent(v, "spec.strategy.rollingUpdate.maxUnavailable", errs));
            let s = surge.as_ref().and_then(|v| int_or_percent(v, "spec.strategy.rollingUpdate.maxSurge", errs));
            if let (Some((n, true)), Some(v)) = (u, unavailable.as_ref()) {
                if n > 100 {
                    errs.push(FieldError::invalid("spec.strategy.rollingUpdate.maxUnavailable", v, "must not be greater than 100%"));
                }
            }
            if u.is_some_and(|(n, _)| n == 0) && s.is_some_and(|(n, _)| n == 0) {
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    unavailable.as_ref().unwrap_or(&Value::Null),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
        None => errs.push(FieldError::required("spec.strategy.type", "")),
        Some(_) => errs.push(FieldError::not_supported("spec.strategy.type", &ty, &["Recreate", "RollingUpdate"])),
    }
    if let Some(p) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        let min_ready = spec.get("minReadySeconds").and_then(Value::as_i64).unwrap_or(0);
        if p < 0 {
            errs.push(FieldError::invalid("spec.progressDeadlineSeconds", &p.into(), "must be greater than or equal to 0"));
        } else if p <= min_ready {
            errs.push(FieldError::invalid("spec.progressDeadlineSeconds", &p.into(), "must be greater than minReadySeconds"));
        }
    }
}

/// Completion modes, per-index back-off, pod failure and success policies, replacement policy: the upstream
/// rules on how these fields combine (`ValidateJobSpec`), with messages that say what to change.
fn validate_job_modes(spec: &Value, restart_policy: Option<&str>, errs: &mut Vec<FieldError>) {
    let set = |f: &str| spec.get(f).filter(|v| !v.is_null());
    let mode = set("completionMode").and_then(Value::as_str).unwrap_or("NonIndexed");
    if !matches!(mode, "NonIndexed" | "Indexed") {
        errs.push(FieldError::not_supported("spec.completionMode", &json!(mode), &["NonIndexed", "Indexed"]));
    }
    let indexed = mode == "Indexed";
    let completions = set("completions").and_then(Value::as_i64);
    if indexed && completions.is_none() {
        errs.push(FieldError::required("spec.completions", "when completion mode is Indexed"));
    }
    if let Some(v) = set("backoffLimitPerIndex") {
        if !indexed {
            errs.push(FieldError::forbidden("spec.backoffLimitPerIndex", "requires indexed completion mode (spec.completionMode: Indexed)"));
        }
        if v.as_i64().is_some_and(|n| n < 0) {
            errs.push(FieldError::invalid("spec.backoffLimitPerIndex", v, "must be greater than or equal to 0"));
        }
    }
    if let Some(v) = set("maxFailedIndexes") {
        if set("backoffLimitPerIndex").is_none() {
            errs.push(FieldError::required("spec.backoffLimitPerIndex", "when maxFailedIndexes is specified"));
        }
        if let (Some(n), Some(c)) = (v.as_i64(), completions) {
            if n < 0 || n > c {
                errs.push(FieldError::invalid("spec.maxFailedIndexes", v, "must be greater than or equal to 0 and less than or equal to completions"));
            }
        }
    }
    if let Some(v) = set("podReplacementPolicy") {
        let supported: &[&str] = if set("podFailurePolicy").is_some() { &["Failed"] } else { &["TerminatingOrFailed", "Failed"] };
        if !v.as_str().is_some_and(|p| supported.contains(&p)) {
            errs.push(FieldError::not_supported("spec.podReplacementPolicy", v, supported));
        }
    }
    if let Some(policy) = set("podFailurePolicy") {
        if restart_policy != Some("Never") {
            errs.push(FieldError::invalid(
                "spec.template.spec.restartPolicy",
                &json!(restart_policy.unwrap_or("")),
                "only \"Never\" is supported when podFailurePolicy is specified",
            ));
        }
        let rules = policy.get("rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("spec.podFailurePolicy.rules[{i}]");
            let actions: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
            let action = rule.get("action").cloned().unwrap_or(Value::Null);
            match action.as_str() {
                Some("FailIndex") if set("backoffLimitPerIndex").is_none() => {
                    errs.push(FieldError::forbidden(format!("{path}.action"), "the FailIndex action requires backoffLimitPerIndex"));
                }
                Some(a) if actions.contains(&a) => {}
                None => errs.push(FieldError::required(format!("{path}.action"), "one of \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"")),
                Some(_) => errs.push(FieldError::not_supported(format!("{path}.action"), &action, actions)),
            }
            let codes = rule.get("onExitCodes").filter(|v| !v.is_null());
            let conds = rule.get("onPodConditions").and_then(Value::as_array).filter(|a| !a.is_empty());
            match (codes, conds) {
                (Some(_), Some(_)) => errs.push(FieldError::invalid(path.clone(), rule, "specifying both OnExitCodes and OnPodConditions is not supported")),
                (None, None) => errs.push(FieldError::invalid(path.clone(), rule, "specifying one of OnExitCodes and OnPodConditions is required")),
                _ => {}
            }
            if let Some(codes) = codes {
                let op = codes.get("operator").cloned().unwrap_or(Value::Null);
                if !matches!(op.as_str(), Some("In" | "NotIn")) {
                    errs.push(FieldError::not_supported(format!("{path}.onExitCodes.operator"), &op, &["In", "NotIn"]));
                }
                let values: Vec<i64> = codes.get("values").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default();
                if values.is_empty() {
                    errs.push(FieldError::required(format!("{path}.onExitCodes.values"), "at least one exit code"));
                }
                if op.as_str() == Some("In") && values.contains(&0) {
                    errs.push(FieldError::invalid(format!("{path}.onExitCodes.values"), &json!(0), "must not be 0 for the In operator"));
                }
            }
        }
    }
    if let Some(sp) = set("successPolicy") {
        if !indexed {
            errs.push(FieldError::invalid("spec.successPolicy", sp, "requires indexed completion mode (spec.completionMode: Indexed)"));
        }
        let rules = sp.get("rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        if rules.is_empty() || rules.len() > 20 {
            errs.push(FieldError::invalid("spec.successPolicy.rules", sp.get("rules").unwrap_or(&Value::Null), "must have at least 1 and at most 20 rules"));
        }
        for (i, rule) in rules.iter().enumerate() {
            if rule.get("succeededIndexes").is_none_or(Value::is_null) && rule.get("succeededCount").is_none_or(Value::is_null) {
                errs.push(FieldError::required(format!("spec.successPolicy.rules[{i}]"), "at least one of succeededCount or succeededIndexes must be specified"));
            }
        }
    }
}

/// Upstream pod updates may change only images, activeDeadlineSeconds, added tolerations and a few more.
fn validate_pod_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    // A mirror Pod only shows a static Pod: its spec is the file's (upstream forbids changing it too).
    const MIRROR: &str = "/metadata/annotations/kubernetes.io~1config.mirror";
    if let Some(hash) = old.pointer(MIRROR) {
        let file = old.pointer("/metadata/annotations/k1s.io~1static-pod-file").and_then(Value::as_str).unwrap_or("its manifest file");
        let node = old.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
        if new.get("spec") != old.get("spec") {
            errs.push(FieldError::forbidden(
                "spec",
                format!("this Pod is the mirror of a static Pod run by node {node} from {file}; its spec cannot be changed through the API: edit that file instead"),
            ));
            return;
        }
        if new.pointer(MIRROR) != Some(hash) {
            errs.push(FieldError::forbidden("metadata.annotations[kubernetes.io/config.mirror]", "the mirror annotation of a static Pod's mirror cannot be changed or removed"));
        }
        return;
    }
    fn mutable_stripped(spec: Option<&Value>) -> Value {
        let mut s = spec.cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(m) = c.as_object_mut() {
                        m.remove("image");
                    }
                }
            }
        }
        if let Some(m) = s.as_object_mut() {
            for f in ["activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "ephemeralContainers"] {
                m.remove(f);
            }
            // Binding sets nodeName once; a later change is forbidden below.
            m.remove("nodeName");
        }
        s
    }
    if mutable_stripped(new.get("spec")) != mutable_stripped(old.get("spec")) {
        errs.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    let old_node = old.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    let new_node = new.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    if !old_node.is_empty() && old_node != new_node {
        errs.push(FieldError::invalid("spec.nodeName", &Value::String(new_node.into()), "field is immutable once set"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn msgs(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn names() {
        assert!(dns1123_label("my-ns").is_empty());
        assert!(!dns1123_label("My_ns").is_empty());
        assert!(!dns1123_label(&"a".repeat(64)).is_empty());
        assert!(dns1123_subdomain("a.b-c").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
    }

    #[test]
    fn pod_errors_name_the_field() {
        let pods = find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "a", "image": "busybox"}], "restartPolicy": "Sometimes"}});
        assert_eq!(
            msgs(&validate(pods, &pod)),
            [
                "spec.containers[0].image: Required value",
                "spec.containers[1].name: Duplicate value: \"a\"",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ]
        );
        let no_spec = json!({"metadata": {"name": "Bad_Name"}});
        let e = msgs(&validate(pods, &no_spec));
        assert!(e[0].starts_with("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{e:?}");
        assert_eq!(e[1], "spec: Required value");
    }

    #[test]
    fn pod_spec_depth() {
        let pods = find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "nothing"}],
            "initContainers": [{"name": "side", "image": "b", "restartPolicy": "OnFailure"}],
            "containers": [{"name": "c", "image": "b", "restartPolicy": "Always",
                "resources": {"limits": {"cpu": "1", "memory": "1Gb"}, "requests": {"cpu": "2"}},
                "env": [{"name": "1BAD"}],
                "ports": [{"containerPort": 80, "protocol": "HTTP", "name": "way-too-long-port-name"}],
                "volumeMounts": [{"name": "data", "mountPath": "/d"}, {"name": "cache", "mountPath": "/c"}]}],
            "ephemeralContainers": [{"name": "c", "image": "b"}]}});
        let got = msgs(&validate(pods, &pod));
        let want = [
            "spec.volumes[1]: Required value: must specify a volume type (e.g. emptyDir, hostPath, configMap, secret)",
            "spec.initContainers[0].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
            "spec.containers[0].resources.limits[memory]: Invalid value: \"1Gb\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            "spec.containers[0].volumeMounts[1].name: Not found: \"cache\": no volume named \"cache\" in spec.volumes; add it there or fix the name",
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
            "spec.ephemeralContainers[0].name: Duplicate value: \"c\"",
        ];
        for w in want {
            assert!(got.iter().any(|g| g == w), "missing {w:?} in {got:#?}");
        }
        assert!(got.iter().any(|g| g.starts_with("spec.containers[0].env[0].name: Invalid value: \"1BAD\"")), "{got:#?}");
        assert!(got.iter().any(|g| g.starts_with("spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\"")), "{got:#?}");
        assert!(got.iter().any(|g| g.starts_with("spec.containers[0].ports[0].name: Invalid value")), "{got:#?}");
    }

    #[test]
    fn quantities() {
        for (q, v) in [("100m", 0.1), ("1Gi", 1073741824.0), ("1e3", 1000.0), ("0.5", 0.5), ("2", 2.0), ("128Mi", 134217728.0)] {
            assert_eq!(parse_quantity(q), Some(v), "{q}");
        }
        for bad in ["1Gb", "", "abc", "1..2", "--1"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn job_restart_policy_and_selector() {
        let jobs = find("batch", "v1", "jobs").unwrap();
        let job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Always"}}}});
        assert_eq!(msgs(&validate(jobs, &job)), ["spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""]);
        let job = json!({"metadata": {"name": "j"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}});
        assert_eq!(msgs(&validate(jobs, &job)), ["spec.template.metadata.labels: Invalid value: {\"a\":\"c\"}: `selector` does not match template `labels`"]);
    }

    #[test]
    fn deployment_and_replicaset_rules() {
        let deploys = find("apps", "v1", "deployments").unwrap();
        let tpl = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Always"}});
        let ok = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}}, "template": tpl,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}, "progressDeadlineSeconds": 600}});
        assert!(validate(deploys, &ok).is_empty(), "{:?}", validate(deploys, &ok));
        let mut bad = ok.clone();
        bad["spec"]["replicas"] = json!(-1);
        bad["spec"]["selector"] = json!({"matchLabels": {"app": "b"}});
        bad["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": "x"});
        assert_eq!(
            msgs(&validate(deploys, &bad)),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"a\"}: `selector` does not match template `labels`",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"x\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            ]
        );
        let mut zero = ok.clone();
        zero["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": "0%"});
        assert_eq!(msgs(&validate(deploys, &zero)), ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"]);
        let mut no_sel = ok.clone();
        no_sel["spec"].as_object_mut().unwrap().remove("selector");
        assert!(msgs(&validate(deploys, &no_sel))[0].starts_with("spec.selector: Required value"));
        let mut moved = ok.clone();
        moved["spec"]["selector"] = json!({"matchLabels": {"app": "a", "x": "y"}});
        moved["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        assert!(msgs(&validate_update(deploys, &moved, &ok))[0].contains("spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"a\",\"x\":\"y\"}}: field is immutable"));
        let rs = find("apps", "v1", "replicasets").unwrap();
        let mut never = json!({"metadata": {"name": "r"}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": tpl}});
        never["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(msgs(&validate(rs, &never)), ["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]);
    }

    #[test]
    fn pod_update_rules() {
        let pods = find("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "busybox"}]}});
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = "busybox:1.36".into();
        assert!(validate_update(pods, &new, &old).is_empty());
        new["spec"]["containers"][0]["command"] = json!(["sh"]);
        assert_eq!(validate_update(pods, &new, &old)[0].field, "spec");
    }

    #[test]
    fn unknown_fields_are_named_with_their_paths() {
        let pods = find("", "v1", "pods").unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labelz": {"a": "b"}},
            "spec": {"image": "busybox", "containers": [{"name": "c", "image": "busybox", "resources": {}, "restartPolicy": null, "imagePullPolicy": "Always", "foo": 1}]}});
        // Order follows serde_json's map order, which depends on its `preserve_order` feature: compare as sets.
        let mut got = unknown_fields(pods, &pod);
        got.sort();
        assert_eq!(got, ["metadata.labelz", "spec.containers[0].foo", "spec.image"]);
        let ok = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {}}, "spec": {"containers": [{"name": "c", "image": "b", "env": [], "securityContext": {"privileged": false}}]}});
        assert!(unknown_fields(pods, &ok).is_empty());
    }

    #[test]
    fn duplicate_fields_are_found_with_paths() {
        let body = br#"{"metadata": {"name": "a", "name": "b"}, "spec": {"containers": [{"name": "c", "image": "x", "image": "y"}], "s": "a\"b"}}"#;
        assert_eq!(duplicate_fields(body), ["metadata.name", "spec.containers[0].image"]);
        assert!(duplicate_fields(br#"{"a": [1, 2, {"b": true}], "c": null}"#).is_empty());
        assert!(duplicate_fields(b"{not json").is_empty());
    }

    #[test]
    fn decode_check_names_the_kind() {
        let pods = find("", "v1", "pods").unwrap();
        let err = decode_check(pods, &json!({"spec": {"containers": "nope"}})).unwrap_err();
        assert!(err.starts_with("Pod in version \"v1\" cannot be handled as a Pod: "), "{err}");
        decode_check(pods, &json!({"metadata": {"name": "p"}, "spec": {"containers": []}})).unwrap();
    }
}
