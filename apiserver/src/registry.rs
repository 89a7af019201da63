//! The generic registry: one implementation of get/list/create/update/patch/delete for every kind
//! (upstream `registry/generic/registry/store.go`). Per-kind behaviour comes from [`crate::strategy`].
//!
//! Objects are kept in the store in their storage form as JSON without `resourceVersion`; the store's
//! revision is put back into `metadata.resourceVersion` on every read, so the two can never disagree.
//! Every read-modify-write goes through [`Registry::guaranteed_update`]: compare-and-swap on the revision,
//! retried when nobody asked for a precondition.

use std::sync::Arc;

use base64::Engine as _;
use http::StatusCode;
use k1s_api::selectors::{FieldSelector, LabelSelector};
use k1s_api::{meta, resources, validation, ResourceInfo};
use k1s_store::{KeyValue, Revision, Store, StoreError};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::strategy::{self, DeleteMode, GcPolicy};

/// How often a write retries its compare-and-swap before giving up with a conflict.
const MAX_RETRIES: usize = 64;

/// Options of a list (and of the initial state of a watch).
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// Options of a write (create, update, patch), from the query.
#[derive(Debug, Default, Clone)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// Who writes (`fieldManager`, else derived from the User-Agent), for `managedFields`.
    pub field_manager: String,
    /// `fieldValidation=Strict` (patches: refuse fields the kind does not have).
    pub strict: bool,
    /// `force=true` on server-side apply: take ownership instead of reporting conflicts.
    pub force: bool,
}

/// Options of a delete (`metav1.DeleteOptions`, from the body or the query).
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub propagation_policy: Option<String>,
    /// The deprecated `orphanDependents`; `false` is the one case where upstream answers 202.
    pub orphan_dependents: Option<bool>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Parse a DeleteOptions body, merging query parameters (query wins when both are given).
    pub fn parse(body: &[u8], query: &std::collections::HashMap<String, String>) -> ApiResult<Self> {
        let mut o = DeleteOptions::default();
        if !body.iter().all(u8::is_ascii_whitespace) {
            // Typed clients (kubectl's `debug --replace`, `drain`) send it as Kubernetes protobuf.
            let v: Value = if k1s_api::protobuf::is_k8s_protobuf(body) {
                k1s_api::protobuf::decode(body).map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions body: {}", e.0)))?
            } else {
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions body: {e}")))?
            };
            o.grace_period_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
            o.precondition_uid = v.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
            o.precondition_resource_version = v.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
            o.propagation_policy = v.get("propagationPolicy").and_then(Value::as_str).map(str::to_string);
            o.orphan_dependents = v.get("orphanDependents").and_then(Value::as_bool);
            o.dry_run = v.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == "All"));
        }
        if let Some(g) = query.get("gracePeriodSeconds") {
            o.grace_period_seconds = Some(g.parse().map_err(|_| ApiError::bad_request(format!("gracePeriodSeconds: invalid value {g:?}: must be an integer")))?);
        }
        if let Some(p) = query.get("propagationPolicy") {
            o.propagation_policy = Some(p.clone());
        }
        if let Some(v) = query.get("orphanDependents") {
            o.orphan_dependents = Some(v.parse().map_err(|_| ApiError::bad_request(format!("orphanDependents: invalid value {v:?}: must be true or false")))?);
        }
        // The deprecated orphanDependents is the policy Orphan (true) or Background (false); naming both is an error.
        if let Some(orphan) = o.orphan_dependents {
            if let Some(p) = &o.propagation_policy {
                return Err(ApiError {
                    code: 422,
                    reason: "Invalid",
                    message: format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: {p:?}: orphanDependents and deletionPropagation cannot be both set"),
                    details: json!({"kind": "DeleteOptions", "group": "meta.k8s.io", "causes": [{"reason": "FieldValueInvalid", "message": format!("Invalid value: {p:?}: orphanDependents and deletionPropagation cannot be both set"), "field": "propagationPolicy"}]}),
                });
            }
            o.propagation_policy = Some(if orphan { "Orphan" } else { "Background" }.into());
        }
        if query.get("dryRun").is_some_and(|d| d == "All") {
            o.dry_run = true;
        }
        if let Some(p) = &o.propagation_policy {
            if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        }
        Ok(o)
    }
}

/// The garbage collector's finalizer for `propagationPolicy: Orphan` (metav1.FinalizerOrphanDependents).
pub const ORPHAN_FINALIZER: &str = "orphan";
/// The garbage collector's finalizer for `propagationPolicy: Foreground` (metav1.FinalizerDeleteDependents).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// The finalizers an object has after a delete (upstream `deletionFinalizersForGarbageCollection`): the request's
/// policy decides; without one, an `orphan` or `foregroundDeletion` finalizer already there does; else the kind's
/// default. Other finalizers are kept as they are.
pub fn deletion_finalizers(current: &[String], policy: Option<&str>, default: GcPolicy) -> Vec<String> {
    let has = |f: &str| current.iter().any(|c| c == f);
    let (orphan, foreground) = match policy {
        Some("Orphan") => (true, false),
        Some("Foreground") => (false, true),
        Some(_) => (false, false),
        None if has(ORPHAN_FINALIZER) => (true, false),
        None if has(FOREGROUND_FINALIZER) => (false, true),
        None => (default == GcPolicy::OrphanDependents, false),
    };
    let mut out: Vec<String> = current.iter().filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER).cloned().collect();
    if orphan {
        out.push(ORPHAN_FINALIZER.into());
    }
    if foreground {
        out.push(FOREGROUND_FINALIZER.into());
    }
    out
}

/// The storage key of an object.
pub fn key(info: &ResourceInfo, ns: Option<&str>, name: &str) -> String {
    match ns.filter(|_| info.namespaced) {
        Some(ns) => format!("/{}/{}/{}", info.storage, ns, name),
        None => format!("/{}/{}", info.storage, name),
    }
}

/// The storage prefix of a collection (one namespace, or all).
pub fn prefix(info: &ResourceInfo, ns: Option<&str>) -> String {
    match ns.filter(|_| info.namespaced) {
        Some(ns) => format!("/{}/{}/", info.storage, ns),
        None => format!("/{}/", info.storage),
    }
}

/// Decode a stored object and put its revision back as `metadata.resourceVersion`.
pub fn decode(bytes: &[u8], revision: Revision) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::internal(format!("corrupt object in store: {e}")))?;
    meta::metadata_mut(&mut v).insert("resourceVersion".into(), Value::String(revision.to_string()));
    Ok(v)
}

fn decode_kv(kv: &KeyValue) -> ApiResult<Value> {
    decode(&kv.value, kv.mod_revision)
}

/// Insert `"resourceVersion":"<rev>"` into the top-level `metadata` object of stored JSON, without parsing it:
/// the read path for GET and LIST, where parsing and re-serialising every object would cost more than serving
/// it. Returns None if the bytes have no top-level `metadata` object (the caller then decodes).
pub fn splice_resource_version(bytes: &[u8], rev: Revision) -> Option<Vec<u8>> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else {
            match b {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.checked_sub(1)?,
                b'"' if depth == 1 && bytes[i..].starts_with(b"\"metadata\"") => {
                    // The key, optional whitespace, ':', optional whitespace, '{'.
                    let mut j = i + b"\"metadata\"".len();
                    while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
                        j += 1;
                    }
                    if bytes.get(j) != Some(&b':') {
                        in_str = true;
                        i += 1;
                        continue;
                    }
                    j += 1;
                    while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
                        j += 1;
                    }
                    if bytes.get(j) != Some(&b'{') {
                        return None;
                    }
                    let mut k = j + 1;
                    while bytes.get(k).is_some_and(u8::is_ascii_whitespace) {
                        k += 1;
                    }
                    let empty = bytes.get(k) == Some(&b'}');
                    let field = format!("\"resourceVersion\":\"{rev}\"{}", if empty { "" } else { "," });
                    let mut out = Vec::with_capacity(bytes.len() + field.len());
                    out.extend_from_slice(&bytes[..=j]);
                    out.extend_from_slice(field.as_bytes());
                    out.extend_from_slice(&bytes[j + 1..]);
                    return Some(out);
                }
                b'"' => in_str = true,
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Serialise for storage, without `resourceVersion` (removed from `obj` in place rather than from a copy:
/// every caller sets the new revision on it after the write).
fn encode(obj: &mut Value) -> Vec<u8> {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    serde_json::to_vec(obj).expect("JSON values serialise")
}

/// Storage form → the version the client asked for.
pub fn externalize(info: &ResourceInfo, obj: &mut Value) {
    if info.group == "events.k8s.io" {
        k1s_api::events::to_events_v1(obj);
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(info.api_version()));
        m.insert("kind".into(), Value::String(info.kind.to_string()));
    }
}

/// Whether stored bytes can be served as they are: the stored form is the served form (no conversion).
fn raw_servable(info: &ResourceInfo) -> bool {
    info.group != "events.k8s.io"
}

/// The client's version → storage form.
fn internalize(info: &ResourceInfo, obj: &mut Value) {
    if info.group == "events.k8s.io" {
        k1s_api::events::to_core_v1(obj);
    }
}

/// A body's kind and apiVersion must be the resource's (or absent).
fn check_type(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let Some(m) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(format!("the body of the request must be a JSON object holding a {}", info.kind)));
    };
    let kind = m.get("kind").and_then(Value::as_str).unwrap_or("");
    let av = m.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if (!kind.is_empty() && kind != info.kind) || (!av.is_empty() && av != info.api_version()) {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized or does not match the URL: it says {av}/{kind}, but this URL serves {} {}; send it to that kind's URL, or fix apiVersion/kind",
            info.api_version(),
            info.kind
        )));
    }
    m.insert("kind".into(), Value::String(info.kind.into()));
    m.insert("apiVersion".into(), Value::String(info.api_version()));
    Ok(())
}

/// 16 random bytes.
fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source works");
    b
}

/// A random (v4) UUID, as upstream uses for `metadata.uid`.
pub fn new_uid() -> String {
    let mut b = random16();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The 5-character suffix of `generateName` (upstream's alphabet, without vowels and confusable characters).
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random16()[..5].iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

/// `resourceVersion` as sent by a client: "" = none, otherwise a number.
fn parse_rv(s: &str) -> ApiResult<Option<Revision>> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid resource version {s:?}: resourceVersion must be a number taken from a previous read")))
}

/// Continue tokens carry the list revision and the last key returned.
fn encode_continue(rv: Revision, last_key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"rv": rv, "start": last_key}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(Revision, String)> {
    let bad = || ApiError::bad_request("continue: invalid value: the continue token is not one this server issued; restart the list without it");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((v["rv"].as_u64().ok_or_else(bad)?, v["start"].as_str().ok_or_else(bad)?.to_string()))
}

/// The generic registry, shared by all handlers.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Registry { store }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn get(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let kv = self.store.get(&key(info, ns, name)).map_err(|e| ApiError::from_store(info, name, e))?;
        let mut obj = decode_kv(&kv.ok_or_else(|| ApiError::not_found(info, name))?)?;
        externalize(info, &mut obj);
        Ok(obj)
    }

    /// GET as JSON bytes, without decoding the stored object (see [`splice_resource_version`]).
    pub fn get_json(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Vec<u8>> {
        if !raw_servable(info) {
            return Ok(serde_json::to_vec(&self.get(info, ns, name)?).expect("serialises"));
        }
        let kv = self.store.get(&key(info, ns, name)).map_err(|e| ApiError::from_store(info, name, e))?;
        let kv = kv.ok_or_else(|| ApiError::not_found(info, name))?;
        match splice_resource_version(&kv.value, kv.mod_revision) {
            Some(b) => Ok(b),
            None => Ok(serde_json::to_vec(&self.get(info, ns, name)?).expect("serialises")),
        }
    }

    /// LIST as JSON bytes. Without selectors the stored objects are sent as they are (resourceVersion spliced
    /// in); with selectors, or for converted kinds, this is [`Registry::list`] serialised.
    pub fn list_json(&self, info: &ResourceInfo, ns: Option<&str>, opts: &ListOptions) -> ApiResult<Vec<u8>> {
        let plain = raw_servable(info) && opts.labels.is_empty() && opts.fields.is_empty() && opts.continue_token.is_none();
        if !plain {
            return Ok(serde_json::to_vec(&self.list(info, ns, opts)?).expect("serialises"));
        }
        let limit = opts.limit.filter(|&l| l > 0);
        let l = self.store.list(&prefix(info, ns), None, limit).map_err(|e| ApiError::from_store(info, "", e))?;
        let mut md = json!({"resourceVersion": l.revision.to_string()});
        if l.more {
            if let Some(last) = l.items.last() {
                md["continue"] = encode_continue(l.revision, &last.key).into();
            }
        }
        let head = format!("{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{md},\"items\":[", info.list_kind(), info.api_version());
        let mut out = Vec::with_capacity(head.len() + l.items.iter().map(|kv| kv.value.len() + 32).sum::<usize>() + 2);
        out.extend_from_slice(head.as_bytes());
        for (n, kv) in l.items.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            match splice_resource_version(&kv.value, kv.mod_revision) {
                Some(b) => out.extend_from_slice(&b),
                None => out.extend_from_slice(&serde_json::to_vec(&decode_kv(kv)?).expect("serialises")),
            }
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// Whether `obj` (storage form) matches the selectors.
    pub fn matches(info: &ResourceInfo, opts: &ListOptions, obj: &Value) -> bool {
        opts.labels.matches_json(obj.pointer("/metadata/labels")) && opts.fields.matches(|label| info.field(obj, label))
    }

    /// A list (`<Kind>List`) of the collection, filtered and paged.
    pub fn list(&self, info: &ResourceInfo, ns: Option<&str>, opts: &ListOptions) -> ApiResult<Value> {
        let prefix = prefix(info, ns);
        let (rv, start) = match &opts.continue_token {
            Some(t) => {
                let (rv, start) = decode_continue(t)?;
                (Some(rv), Some(start))
            }
            None => (None, None),
        };
        let (entries, store_rev) = match opts.fields.pinned_name() {
            // `metadata.name=` (kubectl wait/delete --wait, informers on one object): one key, not a scan.
            Some(name) if start.is_none() && (ns.is_some() || !info.namespaced) => {
                let kv = self.store.get(&key(info, ns, name)).map_err(|e| ApiError::from_store(info, "", e))?;
                (kv.into_iter().collect::<Vec<_>>(), self.store.revision())
            }
            _ => {
                let l = match rv {
                    // A later page comes from the first page's snapshot.
                    Some(rv) => self.store.list_at(&prefix, start.as_deref(), None, rv).map_err(|e| match e {
                        StoreError::Compacted { .. } => ApiError::expired(
                            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                        ),
                        e => ApiError::from_store(info, "", e),
                    })?,
                    None => self.store.list(&prefix, None, None).map_err(|e| ApiError::from_store(info, "", e))?,
                };
                (l.items, l.revision)
            }
        };
        let limit = opts.limit.filter(|&l| l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut continue_token = None;
        for kv in &entries {
            let obj = decode_kv(kv)?;
            if !Self::matches(info, opts, &obj) {
                continue;
            }
            if items.len() == limit {
                let last = items.last().map(|(k, _): &(String, Value)| k.clone()).unwrap_or_default();
                continue_token = Some(encode_continue(rv.unwrap_or(store_rev), &last));
                break;
            }
            items.push((kv.key.clone(), obj));
        }
        let items: Vec<Value> = items
            .into_iter()
            .map(|(_, mut o)| {
                externalize(info, &mut o);
                o
            })
            .collect();
        let mut md = json!({"resourceVersion": rv.unwrap_or(store_rev).to_string()});
        if let Some(c) = continue_token {
            md["continue"] = c.into();
        }
        Ok(json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": md, "items": items}))
    }

    /// Check that a namespace exists and accepts new objects (upstream NamespaceLifecycle admission).
    fn check_namespace(&self, info: &ResourceInfo, ns: &str, name: &str) -> ApiResult<()> {
        let nsinfo = resources::find("", "v1", "namespaces").expect("namespaces are served");
        let kv = self.store.get(&key(nsinfo, None, ns)).map_err(|e| ApiError::from_store(nsinfo, ns, e))?;
        let Some(kv) = kv else { return Err(ApiError::not_found(nsinfo, ns)) };
        let obj = decode_kv(&kv)?;
        if meta::is_deleting(&obj) {
            return Err(ApiError::forbidden(format!(
                "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                info.group_resource()
            )));
        }
        Ok(())
    }

    /// Create an object (the body's namespace must agree with the URL's).
    pub async fn create(&self, info: &ResourceInfo, ns: Option<&str>, mut obj: Value, opts: &WriteOptions) -> ApiResult<Value> {
        let dry_run = opts.dry_run;
        check_type(info, &mut obj)?;
        internalize(info, &mut obj);
        let strategy = strategy::for_resource(info);
        let generate_name;
        {
            let m = meta::metadata_mut(&mut obj);
            if info.namespaced {
                let url_ns = ns.unwrap_or("");
                match m.get("namespace").and_then(Value::as_str) {
                    Some(b) if !b.is_empty() && b != url_ns => {
                        return Err(ApiError::bad_request(format!(
                            "the namespace of the provided object ({b}) does not match the namespace sent on the request ({url_ns})"
                        )))
                    }
                    _ => {
                        m.insert("namespace".into(), Value::String(url_ns.into()));
                    }
                }
            } else {
                m.remove("namespace");
            }
            for f in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
                m.remove(f);
            }
            generate_name = m.get("generateName").and_then(Value::as_str).unwrap_or("").to_string();
            if m.get("name").and_then(Value::as_str).unwrap_or("").is_empty() && !generate_name.is_empty() {
                m.insert("name".into(), Value::String(format!("{generate_name}{}", name_suffix())));
            }
            let uid = new_uid();
            m.insert("uid".into(), Value::String(uid));
            m.insert("creationTimestamp".into(), Value::String(meta::now()));
            if strategy.has_generation() {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        let uid = meta::meta_str(&obj, "uid").to_string();
        strategy.prepare_for_create(info, &mut obj, &uid);
        let mut name = meta::name(&obj).to_string();
        validation::decode_check(info, &obj).map_err(ApiError::bad_request)?;
        let errs = validation::validate(info, &obj);
        if !errs.is_empty() {
            return Err(ApiError::invalid(info, &name, &errs));
        }
        if info.namespaced {
            self.check_namespace(info, ns.unwrap_or(""), &name)?;
        }
        if dry_run {
            externalize(info, &mut obj);
            return Ok(obj);
        }
        let mut attempts = 0;
        let commit = loop {
            match self.store.create(&key(info, ns, &name), encode(&mut obj)) {
                Ok(c) => break c,
                // A generated name collided: draw another suffix, as upstream's retry does.
                Err(StoreError::AlreadyExists(_)) if !generate_name.is_empty() && attempts < 8 => {
                    attempts += 1;
                    name = format!("{generate_name}{}", name_suffix());
                    meta::metadata_mut(&mut obj).insert("name".into(), Value::String(name.clone()));
                }
                Err(e) => return Err(ApiError::from_store(info, &name, e)),
            }
        };
        commit.durable().await.map_err(|e| ApiError::from_store(info, &name, e))?;
        meta::metadata_mut(&mut obj).insert("resourceVersion".into(), Value::String(commit.revision.to_string()));
        externalize(info, &mut obj);
        Ok(obj)
    }

    /// Read-modify-write with compare-and-swap. `precondition` (a client's resourceVersion) makes a changed
    /// object a 409 instead of a retry. `f` gets the current object (storage form) and returns the new one.
    /// An object that is being deleted and has lost its last finalizer is removed instead of written.
    async fn guaranteed_update(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        precondition: Option<Revision>,
        dry_run: bool,
        f: impl Fn(&Value) -> ApiResult<Value>,
    ) -> ApiResult<Value> {
        let k = key(info, ns, name);
        for _ in 0..MAX_RETRIES {
            let kv = self.store.get(&k).map_err(|e| ApiError::from_store(info, name, e))?.ok_or_else(|| ApiError::not_found(info, name))?;
            if precondition.is_some_and(|p| p != kv.mod_revision) {
                return Err(ApiError::modified(info, name));
            }
            let old = decode_kv(&kv)?;
            let mut new = f(&old)?;
            // Normalise the revision so "no change" can be detected by comparison (and then not written).
            meta::metadata_mut(&mut new).insert("resourceVersion".into(), Value::String(kv.mod_revision.to_string()));
            if new == old || dry_run {
                externalize(info, &mut new);
                return Ok(new);
            }
            let finalize = info.storage != "core/namespaces"
                && meta::is_deleting(&new)
                && meta::finalizers(&new).is_empty()
                && new.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0) == 0;
            let res = if finalize { self.store.delete(&k, Some(kv.mod_revision)) } else { self.store.update(&k, encode(&mut new), kv.mod_revision) };
            match res {
                Ok(c) => {
                    c.durable().await.map_err(|e| ApiError::from_store(info, name, e))?;
                    meta::metadata_mut(&mut new).insert("resourceVersion".into(), Value::String(c.revision.to_string()));
                    externalize(info, &mut new);
                    return Ok(new);
                }
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) if precondition.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(info, name, e)),
            }
        }
        Err(ApiError::modified(info, name))
    }

    /// The rules every update follows: identity and lifecycle metadata are the server's, status goes through
    /// `/status` only, spec changes bump `generation`, then validation.
    fn prepare_update(info: &ResourceInfo, sub: Option<&str>, mut new: Value, old: &Value) -> ApiResult<Value> {
        let strategy = strategy::for_resource(info);
        if sub == Some("status") {
            // Upstream `ResetObjectMetaForStatus`: a status write cannot touch metadata.
            let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
            new["metadata"] = old_meta;
            strategy.prepare_for_status_update(&mut new, old);
        } else if sub == Some("ephemeralcontainers") {
            // Upstream `dropNonEphemeralContainerUpdates`: the old Pod with only its ephemeral containers taken
            // from the request, defaulted like any container.
            let mut pod = old.clone();
            let ecs = new.pointer("/spec/ephemeralContainers").cloned().unwrap_or(Value::Null);
            meta::set_path(&mut pod, &["spec", "ephemeralContainers"], ecs);
            k1s_api::defaults::on_update(info.storage, &mut pod);
            let errs = validation::validate_ephemeral_update(&pod, old);
            if !errs.is_empty() {
                return Err(ApiError::invalid(info, meta::name(old), &errs));
            }
            new = pod;
        } else {
            {
                let om = old.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
                let m = meta::metadata_mut(&mut new);
                for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace", "name", "generation"] {
                    match om.get(f) {
                        Some(v) => m.insert(f.to_string(), v.clone()),
                        None => m.remove(f),
                    };
                }
            }
            k1s_api::defaults::on_update(info.storage, &mut new);
            strategy.prepare_for_update(info, &mut new, old);
            if strategy.has_generation() && new.get("spec") != old.get("spec") {
                let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0) + 1;
                meta::metadata_mut(&mut new).insert("generation".into(), json!(g));
            }
        }
        // Finalizers cannot be added once deletion has started (upstream rule).
        if meta::is_deleting(old) {
            let before = meta::finalizers(old);
            if meta::finalizers(&new).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    info,
                    meta::name(old),
                    &[validation::FieldError::forbidden("metadata.finalizers", "no new finalizers can be added if the object is being deleted")],
                ));
            }
        }
        validation::decode_check(info, &new).map_err(ApiError::bad_request)?;
        let errs = validation::validate_update(info, &new, old);
        if !errs.is_empty() {
            return Err(ApiError::invalid(info, meta::name(old), &errs));
        }
        Ok(new)
    }

    /// PUT: replace an object (or its status).
    pub async fn update(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, mut body: Value, sub: Option<&str>, opts: &WriteOptions) -> ApiResult<Value> {
        check_type(info, &mut body)?;
        internalize(info, &mut body);
        let body_name = meta::name(&body);
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name}); set metadata.name to {name:?}"
            )));
        }
        if info.namespaced {
            let b = meta::namespace(&body);
            if !b.is_empty() && Some(b) != ns {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({b}) does not match the namespace sent on the request ({})",
                    ns.unwrap_or("")
                )));
            }
        }
        let precondition = parse_rv(meta::meta_str(&body, "resourceVersion"))?;
        self.guaranteed_update(info, ns, name, precondition, opts.dry_run, |old| {
            let new = Self::prepare_update(info, sub, body.clone(), old)?;
            Ok(track_update(info, old, new, opts))
        })
        .await
    }

    /// PATCH: JSON patch, merge patch, strategic merge patch, or server-side apply (which creates the object
    /// when it is absent: then the status code is 201).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, content_type: &str, body: &[u8], sub: Option<&str>, opts: &WriteOptions) -> ApiResult<(Value, StatusCode)> {
        enum P {
            Json(json_patch::Patch),
            Merge(Value),
            Strategic(Value),
            Apply(Value),
        }
        let (dry_run, strict) = (opts.dry_run, opts.strict);
        let media = content_type.split(';').next().unwrap_or("").trim();
        let patch = match media {
            "application/json-patch+json" => P::Json(serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?),
            "application/merge-patch+json" => P::Merge(serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid merge patch: {e}")))?),
            "application/strategic-merge-patch+json" => {
                let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid strategic merge patch: {e}")))?;
                if !v.is_object() {
                    return Err(ApiError::bad_request("a strategic merge patch must be a JSON object"));
                }
                P::Strategic(v)
            }
            "application/apply-patch+yaml" => {
                // kubectl and client libraries send the configuration as JSON (a subset of YAML).
                let v: Value = serde_json::from_slice(body).map_err(|e| {
                    ApiError::unsupported_media_type(format!("server-side apply bodies must be JSON (YAML documents are not supported yet): {e}"))
                })?;
                if sub.is_some() {
                    return Err(ApiError::bad_request("server-side apply to a subresource is not supported yet; apply to the object itself"));
                }
                if strict {
                    let unknown = validation::unknown_fields(info, &v);
                    if !unknown.is_empty() {
                        return Err(ApiError::strict_decoding(info, &unknown));
                    }
                }
                P::Apply(v)
            }
            other => return Err(unsupported_patch(other)),
        };
        let smp_meta = k1s_api::smp::meta_for(info.group, info.kind);
        if let P::Apply(applied) = &patch {
            if self.store.get(&key(info, ns, name)).map_err(|e| ApiError::from_store(info, name, e))?.is_none() {
                let mut obj = k1s_api::ssa::apply(None, applied, &opts.field_manager, opts.force, smp_meta, &meta::now()).map_err(|e| ssa_error(info, name, e))?;
                if meta::name(&obj) != name {
                    return Err(ApiError::bad_request(format!("the name of the object ({}) does not match the name on the URL ({name})", meta::name(&obj))));
                }
                if let (true, Some(ns)) = (info.namespaced, ns) {
                    meta::metadata_mut(&mut obj).insert("namespace".into(), Value::String(ns.into()));
                }
                match self.create(info, ns, obj, opts).await {
                    Ok(o) => return Ok((o, StatusCode::CREATED)),
                    // Created meanwhile: apply to it below.
                    Err(e) if e.reason == "AlreadyExists" => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let patched = self.guaranteed_update(info, ns, name, None, dry_run, |old| {
            let mut cur = old.clone();
            externalize(info, &mut cur);
            match &patch {
                P::Json(p) => json_patch::patch(&mut cur, p).map_err(|e| {
                    // A failed `test` operation is a conflict upstream; anything else is a bad patch.
                    ApiError::invalid(info, name, &[validation::FieldError::invalid("patch", &Value::Null, e.to_string())])
                })?,
                P::Merge(m) => json_patch::merge(&mut cur, m),
                P::Strategic(p) => {
                    cur = k1s_api::smp::apply(&cur, p, smp_meta).map_err(|e| ApiError::bad_request(format!("invalid strategic merge patch: {e}")))?;
                }
                P::Apply(applied) => {
                    cur = k1s_api::ssa::apply(Some(&cur), applied, &opts.field_manager, opts.force, smp_meta, &meta::now())
                        .map_err(|e| ssa_error(info, name, e))?;
                    internalize(info, &mut cur);
                    return Self::prepare_update(info, sub, cur, old);
                }
            }
            // A merge patch that is not an object replaces the whole document (RFC 7386), and a JSON patch can
            // replace the root: what is left must still be an object of this kind (found by fuzzing: a panic).
            if !cur.is_object() {
                return Err(ApiError::bad_request(format!("the patched {} must be a JSON object, not {}", info.kind, json_kind(&cur))));
            }
            if strict {
                let unknown = validation::unknown_fields(info, &cur);
                if !unknown.is_empty() {
                    return Err(ApiError::strict_decoding(info, &unknown));
                }
            }
            let rv = meta::meta_str(&cur, "resourceVersion");
            if !rv.is_empty() && rv != meta::meta_str(old, "resourceVersion") {
                return Err(ApiError::modified(info, name));
            }
            internalize(info, &mut cur);
            let new = Self::prepare_update(info, sub, cur, old)?;
            Ok(track_update(info, old, new, opts))
        })
        .await?;
        Ok((patched, StatusCode::OK))
    }

    /// GET `{deployments,replicasets}/{name}/scale`.
    pub fn get_scale(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        Ok(scale_of(&self.get(info, ns, name)?))
    }

    /// The object with `spec.replicas` set, through the same update preparation as any write.
    fn with_replicas(info: &ResourceInfo, old: &Value, replicas: i64, opts: &WriteOptions) -> ApiResult<Value> {
        let mut new = old.clone();
        meta::set_path(&mut new, &["spec", "replicas"], json!(replicas));
        let new = Self::prepare_update(info, None, new, old)?;
        Ok(track_update(info, old, new, opts))
    }

    /// PUT `.../scale`: only `spec.replicas` is taken from the Scale; its `resourceVersion`, if any, is a
    /// precondition on the object (upstream's scale REST `Update`).
    pub async fn update_scale(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, body: &Value, opts: &WriteOptions) -> ApiResult<Value> {
        let replicas = scale_replicas(info, name, body)?;
        let precondition = parse_rv(meta::meta_str(body, "resourceVersion"))?;
        let obj = self
            .guaranteed_update(info, ns, name, precondition, opts.dry_run, |old| {
                Self::with_replicas(info, old, replicas, opts)
            })
            .await?;
        Ok(scale_of(&obj))
    }

    /// PATCH `.../scale` (what `kubectl scale` sends): the patch applies to the current Scale, then as PUT.
    pub async fn patch_scale(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, content_type: &str, body: &[u8], opts: &WriteOptions) -> ApiResult<Value> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        let patch: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid patch: {e}")))?;
        let obj = self
            .guaranteed_update(info, ns, name, None, opts.dry_run, |old| {
                let mut cur = old.clone();
                externalize(info, &mut cur);
                let mut scale = scale_of(&cur);
                match media {
                    "application/json-patch+json" => {
                        let p: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                        json_patch::patch(&mut scale, &p)
                            .map_err(|e| ApiError::invalid(info, name, &[validation::FieldError::invalid("patch", &Value::Null, e.to_string())]))?;
                    }
                    // A Scale has no lists, so a strategic merge patch merges as a merge patch does.
                    "application/merge-patch+json" | "application/strategic-merge-patch+json" => json_patch::merge(&mut scale, &patch),
                    other => {
                        return Err(unsupported_patch(other))
                    }
                }
                let rv = meta::meta_str(&scale, "resourceVersion");
                if !rv.is_empty() && rv != meta::meta_str(old, "resourceVersion") {
                    return Err(ApiError::modified(info, name));
                }
                let replicas = scale_replicas(info, name, &scale)?;
                Self::with_replicas(info, old, replicas, opts)
            })
            .await?;
        Ok(scale_of(&obj))
    }

    /// POST pods/{name}/binding: set `spec.nodeName` once (the scheduler's write).
    pub async fn bind(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, binding: &Value) -> ApiResult<Value> {
        let target = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or("").to_string();
        if target.is_empty() {
            return Err(ApiError::invalid(info, name, &[validation::FieldError::required("target.name", "name of the node to bind to")]));
        }
        self.guaranteed_update(info, ns, name, None, false, |old| {
            let node = old.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if !node.is_empty() {
                return Err(ApiError {
                    message: format!("Operation cannot be fulfilled on pods/binding {name:?}: pod {name} is already assigned to node {node:?}"),
                    ..ApiError::conflict(info, name, "")
                });
            }
            if meta::is_deleting(old) {
                return Err(ApiError {
                    message: format!("Operation cannot be fulfilled on pods/binding {name:?}: pod {name} is being deleted, cannot be assigned to a host"),
                    ..ApiError::conflict(info, name, "")
                });
            }
            let mut new = old.clone();
            meta::set_path(&mut new, &["spec", "nodeName"], Value::String(target.clone()));
            let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": meta::now()});
            let conds = new.pointer_mut("/status/conditions").and_then(Value::as_array_mut);
            match conds {
                Some(list) => {
                    list.retain(|c| c.get("type") != Some(&json!("PodScheduled")));
                    list.push(cond);
                }
                None => meta::set_path(&mut new, &["status", "conditions"], json!([cond])),
            }
            Ok(new)
        })
        .await?;
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))
    }

    /// DELETE one object. Returns the object and 200, also while deletion waits (grace period, finalizers,
    /// namespace contents): upstream answers 202 only then *and* with `orphanDependents: false`.
    ///
    /// The propagation policy becomes finalizers the garbage collector acts on ([`deletion_finalizers`]): an object
    /// that keeps any finalizer, or whose kind deletes gracefully, stays with `deletionTimestamp` set. As upstream
    /// (`BeforeDelete`), a graceful deletion already under way is only shortened, never re-decided; one held only by
    /// finalizers takes the new request's policy (a later Foreground swaps `orphan` for `foregroundDeletion`, a
    /// later Background drops both and, with no other finalizer left, removes the object).
    pub async fn delete(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, opts: &DeleteOptions) -> ApiResult<(Value, StatusCode)> {
        let k = key(info, ns, name);
        let strategy = strategy::for_resource(info);
        let deferred = if opts.orphan_dependents == Some(false) { StatusCode::ACCEPTED } else { StatusCode::OK };
        for _ in 0..MAX_RETRIES {
            let kv = self.store.get(&k).map_err(|e| ApiError::from_store(info, name, e))?.ok_or_else(|| ApiError::not_found(info, name))?;
            let old = decode_kv(&kv)?;
            if let Some(uid) = &opts.precondition_uid {
                let have = meta::meta_str(&old, "uid");
                if uid != have {
                    return Err(ApiError::conflict(info, name, &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}")));
                }
            }
            if let Some(rv) = &opts.precondition_resource_version {
                if *rv != kv.mod_revision.to_string() {
                    return Err(ApiError::conflict(
                        info,
                        name,
                        &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in meta: {}", kv.mod_revision),
                    ));
                }
            }
            let mode = strategy.delete_mode(&old, opts.grace_period_seconds);
            let grace = match mode {
                DeleteMode::Graceful { grace } => Some(grace),
                DeleteMode::Immediate | DeleteMode::Finalize => None,
            };
            // Kinds whose deletion always waits (namespaces, for their contents).
            let hold = mode == DeleteMode::Finalize;
            let pending = old.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
            if meta::is_deleting(&old) && pending > 0 && grace.unwrap_or(0) >= pending {
                // A graceful deletion under way: only a shorter grace period changes anything.
                let mut o = old;
                externalize(info, &mut o);
                return Ok((o, deferred));
            }
            let current = meta::finalizers(&old);
            let finalizers = deletion_finalizers(&current, opts.propagation_policy.as_deref(), strategy.default_gc_policy());
            let same_finalizers = finalizers.len() == current.len() && finalizers.iter().all(|f| current.contains(f));
            if grace.is_none() && !hold && finalizers.is_empty() {
                let mut o = old;
                if opts.dry_run {
                    externalize(info, &mut o);
                    return Ok((o, StatusCode::OK));
                }
                match self.store.delete(&k, Some(kv.mod_revision)) {
                    Ok(c) => {
                        c.durable().await.map_err(|e| ApiError::from_store(info, name, e))?;
                        meta::metadata_mut(&mut o).insert("resourceVersion".into(), Value::String(c.revision.to_string()));
                        externalize(info, &mut o);
                        return Ok((o, StatusCode::OK));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(info, name, e)),
                }
            }
            if meta::is_deleting(&old) && same_finalizers && grace.is_none() && pending == 0 {
                // Already waiting for its finalizers (or namespace contents), and this request changes none of them.
                let mut o = old;
                externalize(info, &mut o);
                return Ok((o, deferred));
            }
            let mut new = old.clone();
            if !same_finalizers {
                let m = meta::metadata_mut(&mut new);
                if finalizers.is_empty() {
                    m.remove("finalizers");
                } else {
                    m.insert("finalizers".into(), json!(finalizers));
                }
            }
            if !meta::is_deleting(&old) {
                // Upstream `markAsDeleting`/`BeforeDelete`: the start of deletion is a new generation.
                if let Some(g) = old.pointer("/metadata/generation").and_then(Value::as_i64).filter(|g| *g > 0) {
                    meta::metadata_mut(&mut new).insert("generation".into(), json!(g + 1));
                }
            }
            strategy::mark_deleting(&mut new, grace.unwrap_or(0));
            if info.storage == "core/namespaces" {
                meta::set_path(&mut new, &["status", "phase"], json!("Terminating"));
            }
            if opts.dry_run {
                externalize(info, &mut new);
                return Ok((new, deferred));
            }
            match self.store.update(&k, encode(&mut new), kv.mod_revision) {
                Ok(c) => {
                    c.durable().await.map_err(|e| ApiError::from_store(info, name, e))?;
                    meta::metadata_mut(&mut new).insert("resourceVersion".into(), Value::String(c.revision.to_string()));
                    externalize(info, &mut new);
                    return Ok((new, deferred));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(info, name, e)),
            }
        }
        Err(ApiError::modified(info, name))
    }

    /// DELETE on a collection: delete every matching object; answers the list of what was deleted.
    pub async fn delete_collection(&self, info: &ResourceInfo, ns: Option<&str>, list: &ListOptions, opts: &DeleteOptions) -> ApiResult<Value> {
        let current = self.list(info, ns, &ListOptions { limit: None, continue_token: None, ..list.clone() })?;
        let mut items = Vec::new();
        for item in current["items"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let item_ns = meta::namespace(item);
            let item_ns = if info.namespaced { Some(item_ns) } else { None };
            match self.delete(info, item_ns, meta::name(item), opts).await {
                Ok((o, _)) => items.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": {"resourceVersion": self.store.revision().to_string()}, "items": items}))
    }

    /// Create an object unless it exists (used at boot for the built-in namespaces).
    pub async fn ensure(&self, info: &ResourceInfo, ns: Option<&str>, obj: Value) -> ApiResult<()> {
        match self.create(info, ns, obj, &WriteOptions::default()).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// All objects of a storage resource in a namespace (storage form), for sweeps.
    pub fn raw_list(&self, info: &ResourceInfo, ns: Option<&str>) -> ApiResult<Vec<Value>> {
        let l = self.store.list(&prefix(info, ns), None, None).map_err(|e| ApiError::from_store(info, "", e))?;
        l.items.iter().map(decode_kv).collect()
    }

    /// Remove a key outright (the namespace lifecycle's last step).
    pub async fn remove(&self, info: &ResourceInfo, ns: Option<&str>, name: &str, expected: Option<Revision>) -> ApiResult<()> {
        let c = self.store.delete(&key(info, ns, name), expected).map_err(|e| ApiError::from_store(info, name, e))?;
        c.durable().await.map_err(|e| ApiError::from_store(info, name, e))
    }

    /// Parse a resourceVersion (shared with the watch handler).
    pub fn parse_resource_version(s: &str) -> ApiResult<Option<Revision>> {
        parse_rv(s)
    }
}

/// 415 for a PATCH body type we do not take, naming the ones we do.
fn unsupported_patch(got: &str) -> ApiError {
    ApiError::unsupported_media_type(format!(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {got:?})"
    ))
}

/// Server-side apply errors at the edge: conflicts are 409 with one `FieldManagerConflict` cause each.
fn ssa_error(info: &ResourceInfo, name: &str, e: k1s_api::ssa::SsaError) -> ApiError {
    match &e {
        k1s_api::ssa::SsaError::Conflicts(list) => {
            let causes: Vec<Value> = list.iter().map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m:?}"), "field": f})).collect();
            let mut err = ApiError::conflict(info, name, "");
            err.message = e.to_string();
            err.details["causes"] = Value::Array(causes);
            err
        }
        k1s_api::ssa::SsaError::Invalid(m) => ApiError::bad_request(m.clone()),
    }
}

/// Record an ordinary write in `managedFields` — only for objects that already have them (someone applied
/// to it server-side): conflict detection needs it there, and every other object is spared the bookkeeping
/// on the hot write path (status updates).
/// The autoscaling/v1 Scale of a Deployment or ReplicaSet (upstream `scaleFromDeployment`): desired replicas in
/// spec, observed replicas and the selector as a string in status.
pub fn scale_of(obj: &Value) -> Value {
    let md = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut metadata = json!({});
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = md.get(f) {
            metadata[f] = v.clone();
        }
    }
    let selector = match k1s_api::tables::format_label_selector(obj.pointer("/spec/selector")) {
        s if s == "<none>" => String::new(),
        s => s,
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0), "selector": selector},
    })
}

/// `spec.replicas` of a Scale body: a non-negative integer (upstream `ValidateScale`).
fn scale_replicas(info: &ResourceInfo, name: &str, scale: &Value) -> ApiResult<i64> {
    let v = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    match v.as_i64() {
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(n),
        Some(n) if n < 0 => Err(ApiError::invalid_kind("Scale", "autoscaling", name, &[validation::FieldError::invalid("spec.replicas", &v, "must be greater than or equal to 0")])),
        _ => Err(ApiError::bad_request(format!("Scale in version \"v1\" cannot be handled as a Scale: spec.replicas of {} {name} must be an integer", info.kind))),
    }
}

fn track_update(info: &ResourceInfo, old: &Value, new: Value, opts: &WriteOptions) -> Value {
    let tracked = old.pointer("/metadata/managedFields").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if !tracked || opts.field_manager.is_empty() {
        return new;
    }
    k1s_api::ssa::record_update(Some(old), &new, &opts.field_manager, k1s_api::smp::meta_for(info.group, info.kind), &meta::now())
}

/// The JSON type of a value, for messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_puts_the_revision_into_top_level_metadata() {
        let cases: &[(&str, &str)] = &[
            (r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{}}"#, r#"{"apiVersion":"v1","kind":"Pod","metadata":{"resourceVersion":"7","name":"p"},"spec":{}}"#),
            (r#"{"metadata":{}}"#, r#"{"metadata":{"resourceVersion":"7"}}"#),
            // A nested `metadata` (a pod template) and one inside a string are not the object's.
            (r#"{"a":"\"metadata\":{","spec":{"template":{"metadata":{}}},"metadata" : {"name":"j"}}"#, r#"{"a":"\"metadata\":{","spec":{"template":{"metadata":{}}},"metadata" : {"resourceVersion":"7","name":"j"}}"#),
        ];
        for (input, want) in cases {
            let got = String::from_utf8(splice_resource_version(input.as_bytes(), 7).unwrap()).unwrap();
            assert_eq!(&got, want);
            let v: Value = serde_json::from_str(&got).unwrap();
            assert_eq!(v["metadata"]["resourceVersion"], "7");
        }
        assert!(splice_resource_version(br#"{"kind":"X"}"#, 7).is_none());
    }

    #[test]
    fn deletion_finalizers_follow_policy_then_existing_then_default() {
        use GcPolicy::{DeleteDependents as Bg, OrphanDependents as Orph};
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        type Case<'a> = (&'a [&'a str], Option<&'a str>, GcPolicy, &'a [&'a str]);
        let cases: &[Case] = &[
            (&[], None, Bg, &[]),
            (&[], None, Orph, &["orphan"]),
            (&[], Some("Background"), Orph, &[]),
            (&[], Some("Foreground"), Bg, &["foregroundDeletion"]),
            (&["x/keep"], Some("Orphan"), Bg, &["x/keep", "orphan"]),
            // A later request swaps one GC finalizer for the other, or drops both; others stay.
            (&["orphan", "x/keep"], Some("Foreground"), Bg, &["x/keep", "foregroundDeletion"]),
            (&["foregroundDeletion"], Some("Background"), Orph, &[]),
            // No policy: an existing GC finalizer wins over the kind's default.
            (&["foregroundDeletion"], None, Orph, &["foregroundDeletion"]),
            (&["orphan"], None, Bg, &["orphan"]),
        ];
        for (current, policy, default, want) in cases {
            assert_eq!(deletion_finalizers(&v(current), *policy, *default), v(want), "{current:?} {policy:?} {default:?}");
        }
    }

    #[test]
    fn delete_options_orphan_dependents_is_a_policy() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::HashMap<_, _>>();
        let o = DeleteOptions::parse(br#"{"orphanDependents": true}"#, &q(&[])).unwrap();
        assert_eq!(o.propagation_policy.as_deref(), Some("Orphan"));
        let o = DeleteOptions::parse(b"", &q(&[("orphanDependents", "false")])).unwrap();
        assert_eq!(o.propagation_policy.as_deref(), Some("Background"));
        assert_eq!(o.orphan_dependents, Some(false));
        let e = DeleteOptions::parse(br#"{"orphanDependents": true, "propagationPolicy": "Foreground"}"#, &q(&[])).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(DeleteOptions::parse(b"", &q(&[("propagationPolicy", "Sideways")])).is_err());
    }
}
