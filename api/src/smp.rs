//! Strategic merge patch (`application/strategic-merge-patch+json`): applying a patch to an object
//! held as JSON, with the list strategies, merge keys and `$`-directives of
//! k8s.io/apimachinery/pkg/util/strategicpatch/patch.go (`StrategicMergeMapPatch` → `mergeMap`), and
//! the patch metadata (the `patchStrategy` / `patchMergeKey` struct tags of k8s.io/api) of the built-in
//! kinds k1s serves.
//!
//! The merge follows upstream, including its list ordering (see "Ordering" below). Decisions that
//! differ from upstream, all deliberate:
//! - A value the patch puts where the object has nothing (a new field, a new merge-list element, a
//!   value of another JSON type) has its directives resolved and its `null`s dropped. Upstream copies
//!   such values verbatim, so `$patch`, `$retainKeys` or `null` could end up stored; k1s stores the
//!   JSON it is given and cannot rely on a typed round trip to drop them. Duplicates in such new lists
//!   are kept, as upstream (`ports` 53/TCP and 53/UDP share the merge key `containerPort`).
//! - `$patch: delete` in a map removes the field (upstream leaves `{}`, which Go's `omitempty` then
//!   drops for maps but not for struct pointers). At the root it yields `{}`, like upstream.
//! - `$deleteFromPrimitiveList/<f>` is applied after every other change to `<f>` (upstream applies them
//!   in Go map order), to any list of `<f>` (as upstream's tests expect, merge strategy or not), and
//!   does nothing when the object has no list `<f>`.
//! - `$setElementOrder/<f>` on a list without a merge strategy is ignored: kubectl never sends one, and
//!   upstream reorders a list of primitives but panics on a list of objects there.
//! - Unknown `$` keys are errors, except `$ref` and `$schema`, which are real fields (CRD schemas).
//! - Inputs that make upstream panic or depend on Go map iteration order give an error or a fixed
//!   result instead.
//!
//! Ordering (upstream `mergeSlice` / `normalizeElementOrder` / `mergeSortedSlice`): after a merge-key or
//! primitive list is merged, its items are split into "patch items" (named in the patch list, or in
//! `$setElementOrder` when present) and "server-only items". Patch items are sorted by their order in
//! the patch (resp. `$setElementOrder`), server-only items by their order in the object, and the two
//! are interleaved: the next server-only item goes first only if both it and the next patch item are
//! in the object's list and it comes earlier there; otherwise the next patch item goes first. So an
//! item new to the list is placed as soon as it is reached: without `$setElementOrder`, adding `c`
//! to `[a, b]` gives `[c, a, b]` (kustomize called this "prepending"), and `[a, b]` + `[b', c]` gives
//! `[a, b', c]`. kubectl apply and edit always send `$setElementOrder`, which names every item they
//! want in the order they want it.

use serde_json::{Map, Value};

/// Errors: the message is shown to the user in a 400/422 Status, so name the path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SmpError(pub String);

/// How a list at a path merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: a list of objects, matched by `key`.
    Merge { key: &'static str },
    /// `patchStrategy:"merge"` on a list of primitives: a set union that keeps order.
    MergePrimitives,
    /// No strategy: the patch's list replaces the object's.
    Replace,
}

/// Patch metadata for one kind: returns the list strategy for a JSON path of *field names* from the
/// object root, with list elements transparent, e.g. `["spec","containers"]`,
/// `["spec","containers","env"]` or `["metadata","finalizers"]`.
/// Also whether the elements of a list at a path have the `retainKeys` strategy (`["spec","volumes"]`).
pub trait PatchMeta {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy;

    /// Upstream's server side honours a `$retainKeys` directive wherever the patch has one
    /// (`applyRetainKeysDirective` does not consult the tags), and so does [`apply`]; this says where
    /// the API declares it, for callers that build patches.
    fn retain_keys(&self, _path: &[&str]) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Patch metadata of the built-in kinds
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    Pod,
    Job,
    Namespace,
    Node,
    /// Kinds whose only merge lists are in `metadata`: ConfigMap, Secret, Event, Lease.
    MetadataOnly,
    /// Not a kind k1s knows: every list is replaced.
    Unknown,
}

#[derive(Debug)]
struct BuiltinMeta(Builtin);

static POD: BuiltinMeta = BuiltinMeta(Builtin::Pod);
static JOB: BuiltinMeta = BuiltinMeta(Builtin::Job);
static NAMESPACE: BuiltinMeta = BuiltinMeta(Builtin::Namespace);
static NODE: BuiltinMeta = BuiltinMeta(Builtin::Node);
static METADATA_ONLY: BuiltinMeta = BuiltinMeta(Builtin::MetadataOnly);
static UNKNOWN: BuiltinMeta = BuiltinMeta(Builtin::Unknown);

/// The patch metadata of a built-in kind by its group ("" for core) and kind: Pod, Job (its pod
/// template under `spec.template`), Namespace, Node, ConfigMap, Secret, Event (core and
/// events.k8s.io), Lease. Unknown kinds: every list Replace.
pub fn meta_for(group: &str, kind: &str) -> &'static (dyn PatchMeta + Sync) {
    match (group, kind) {
        ("", "Pod") => &POD,
        // Deployments and ReplicaSets have the same merge lists: a pod template under `spec.template`, status
        // conditions by type.
        ("batch", "Job") | ("apps", "Deployment" | "ReplicaSet") => &JOB,
        ("", "Namespace") => &NAMESPACE,
        ("", "Node") => &NODE,
        ("", "ConfigMap" | "Secret" | "Event") | ("events.k8s.io", "Event") | ("coordination.k8s.io", "Lease") => {
            &METADATA_ONLY
        }
        _ => &UNKNOWN,
    }
}

const fn by(key: &'static str) -> ListStrategy {
    ListStrategy::Merge { key }
}

impl PatchMeta for BuiltinMeta {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        use Builtin::*;
        match (self.0, path) {
            (Unknown, _) => ListStrategy::Replace,
            (_, ["metadata", rest @ ..]) => object_meta(rest),
            (Pod, ["spec", rest @ ..]) => pod_spec(rest),
            (Pod, ["status", rest @ ..]) => pod_status(rest),
            (Job, ["spec", "template", "metadata", rest @ ..]) => object_meta(rest),
            (Job, ["spec", "template", "spec", rest @ ..]) => pod_spec(rest),
            // batch/v1 JobStatus.Conditions, core/v1 NamespaceStatus.Conditions.
            (Job | Namespace, ["status", "conditions"]) => by("type"),
            // core/v1 NodeSpec: podCIDRs `patchStrategy:"merge"`; taints has no strategy.
            (Node, ["spec", "podCIDRs"]) => ListStrategy::MergePrimitives,
            // core/v1 NodeStatus: conditions and addresses by type; images etc. have no strategy.
            (Node, ["status", "conditions" | "addresses"]) => by("type"),
            _ => ListStrategy::Replace,
        }
    }

    fn retain_keys(&self, path: &[&str]) -> bool {
        match (self.0, path) {
            // PodSpec.Volumes and PodSpec.ResourceClaims: `patchStrategy:"merge,retainKeys"`.
            (Builtin::Pod, ["spec", rest @ ..]) | (Builtin::Job, ["spec", "template", "spec", rest @ ..]) => {
                matches!(rest, ["volumes" | "resourceClaims"])
            }
            // PodStatus.ResourceClaimStatuses: `patchStrategy:"merge,retainKeys"`.
            (Builtin::Pod, ["status", "resourceClaimStatuses"]) => true,
            _ => false,
        }
    }
}

/// meta/v1 ObjectMeta.
fn object_meta(path: &[&str]) -> ListStrategy {
    match path {
        ["finalizers"] => ListStrategy::MergePrimitives,
        ["ownerReferences"] => by("uid"),
        // managedFields and everything else: no strategy.
        _ => ListStrategy::Replace,
    }
}

/// core/v1 PodSpec, for a Pod's `spec` and a pod template's `spec`.
fn pod_spec(path: &[&str]) -> ListStrategy {
    match path {
        ["containers" | "initContainers" | "ephemeralContainers"] => by("name"),
        ["containers" | "initContainers" | "ephemeralContainers", rest @ ..] => container(rest),
        ["volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims"] => by("name"),
        ["hostAliases"] => by("ip"),
        ["topologySpreadConstraints"] => by("topologyKey"),
        // tolerations, readinessGates, dnsConfig.*, affinity terms, ...: no strategy.
        _ => ListStrategy::Replace,
    }
}

/// core/v1 Container (and EphemeralContainerCommon, which carries the same tags).
fn container(path: &[&str]) -> ListStrategy {
    match path {
        ["ports"] => by("containerPort"),
        ["env"] => by("name"),
        ["volumeMounts"] => by("mountPath"),
        ["volumeDevices"] => by("devicePath"),
        // command, args, envFrom, resizePolicy, resources.claims, ...: no strategy.
        _ => ListStrategy::Replace,
    }
}

/// core/v1 PodStatus.
fn pod_status(path: &[&str]) -> ListStrategy {
    match path {
        ["conditions"] => by("type"),
        ["podIPs" | "hostIPs"] => by("ip"),
        ["resourceClaimStatuses"] => by("name"),
        // containerStatuses, initContainerStatuses, ...: no strategy.
        _ => ListStrategy::Replace,
    }
}

// ---------------------------------------------------------------------------------------------
// Applying a patch
// ---------------------------------------------------------------------------------------------

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Apply a strategic merge patch (a JSON object) to `original` (a JSON object), returning the
/// patched object.
pub fn apply(original: &Value, patch: &Value, meta: &dyn PatchMeta) -> Result<Value, SmpError> {
    let patch = patch
        .as_object()
        .ok_or_else(|| SmpError("a strategic merge patch must be a JSON object".to_string()))?;
    let mut out = original
        .as_object()
        .cloned()
        .ok_or_else(|| SmpError("the object to patch is not a JSON object".to_string()))?;
    match merge_map(&mut out, patch, &[], "", meta)? {
        Outcome::Keep => Ok(Value::Object(out)),
        Outcome::Delete => Ok(Value::Object(Map::new())),
    }
}

/// What a map patch did to its map.
enum Outcome {
    Keep,
    /// `$patch: delete`: the field goes.
    Delete,
}

/// A list merged, with the order upstream's `$setElementOrder` handling then sorts server-only
/// items by (see [`merge_by_key`]).
struct ListMerge {
    items: Vec<Value>,
    /// Identities (merge-key values, or the values of a primitive list).
    order: Vec<Value>,
}

fn err_at(at: &str, msg: impl std::fmt::Display) -> SmpError {
    if at.is_empty() {
        SmpError(msg.to_string())
    } else {
        SmpError(format!("{at}: {msg}"))
    }
}

fn missing_key(at: &str, key: &str) -> SmpError {
    err_at(at, format!("list element does not contain the merge key {key:?}"))
}

fn child_at(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn child_fields<'p>(fields: &[&'p str], key: &'p str) -> Vec<&'p str> {
    let mut f = Vec::with_capacity(fields.len() + 1);
    f.extend_from_slice(fields);
    f.push(key);
    f
}

/// JSON equality with numbers compared by value, as Go compares the float64s JSON numbers decode into
/// (upstream compares merge keys and primitives with `==`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn position(order: &[Value], id: &Value) -> Option<usize> {
    order.iter().position(|o| same(o, id))
}

/// A key of a patch map.
enum Key<'p> {
    Field,
    /// `$patch`, handled by [`merge_map`].
    Patch,
    RetainKeys,
    SetElementOrder(&'p str),
    DeleteFromPrimitiveList(&'p str),
}

fn classify<'p>(key: &'p str, at: &str) -> Result<Key<'p>, SmpError> {
    // `$ref` and `$schema` are fields of apiextensions JSONSchemaProps, not directives.
    if !key.starts_with('$') || key == "$ref" || key == "$schema" {
        return Ok(Key::Field);
    }
    if key == PATCH {
        return Ok(Key::Patch);
    }
    if key == RETAIN_KEYS {
        return Ok(Key::RetainKeys);
    }
    // Upstream `extractKey`: the prefix, a slash, the field.
    for (prefix, make) in [
        (SET_ELEMENT_ORDER, Key::SetElementOrder as fn(&'p str) -> Key<'p>),
        (DELETE_FROM_PRIMITIVE_LIST, Key::DeleteFromPrimitiveList),
    ] {
        if let Some(rest) = key.strip_prefix(prefix) {
            return match rest.strip_prefix('/') {
                Some(field) if !field.is_empty() => Ok(make(field)),
                _ => Err(err_at(at, format!("invalid directive {key:?}: expected \"{prefix}/<field>\""))),
            };
        }
    }
    Err(err_at(at, format!("unknown patch directive {key:?}")))
}

/// Upstream `mergeMap`: `$patch`, then `$retainKeys`, then `$setElementOrder` lists, then the fields.
fn merge_map<'p>(
    original: &mut Map<String, Value>,
    patch: &'p Map<String, Value>,
    fields: &[&'p str],
    at: &str,
    meta: &dyn PatchMeta,
) -> Result<Outcome, SmpError> {
    // Upstream `handleDirectiveInMergeMap`.
    if let Some(directive) = patch.get(PATCH) {
        match directive.as_str() {
            Some("replace") => original.clear(),
            Some("delete") => return Ok(Outcome::Delete),
            _ => {
                return Err(err_at(
                    at,
                    format!("unknown $patch value {directive} in a map (expected \"replace\" or \"delete\")"),
                ))
            }
        }
    }

    let mut retain = None;
    let mut orders = Vec::new();
    let mut deletions = Vec::new();
    let mut regular = Vec::new();
    for (k, v) in patch {
        match classify(k, at)? {
            Key::Field => regular.push((k.as_str(), v)),
            Key::Patch => {}
            Key::RetainKeys => retain = Some(v),
            Key::SetElementOrder(field) => orders.push((field, v)),
            Key::DeleteFromPrimitiveList(field) => deletions.push((field, v)),
        }
    }

    if let Some(list) = retain {
        retain_keys(original, list, &regular, at)?;
    }

    // Upstream `mergePatchIntoOriginal`: each ordered list is merged and ordered here, and its
    // patch field is then skipped.
    let mut done = Vec::new();
    for (field, order) in orders {
        if set_element_order(original, patch, field, order, fields, at, meta)? {
            done.push(field);
        }
    }

    for (k, v) in regular {
        if !done.contains(&k) {
            merge_field(original, k, v, &child_fields(fields, k), &child_at(at, k), meta)?;
        }
    }

    for (field, values) in deletions {
        delete_from_primitive_list(original, field, values, at)?;
    }
    Ok(Outcome::Keep)
}

/// A map patch applied where the object has no map: the patch with its directives resolved.
fn fresh_map<'p>(
    patch: &'p Map<String, Value>,
    fields: &[&'p str],
    at: &str,
    meta: &dyn PatchMeta,
) -> Result<Option<Map<String, Value>>, SmpError> {
    let mut m = Map::new();
    Ok(match merge_map(&mut m, patch, fields, at, meta)? {
        Outcome::Keep => Some(m),
        Outcome::Delete => None,
    })
}

fn merge_field<'p>(
    original: &mut Map<String, Value>,
    k: &str,
    pv: &'p Value,
    fields: &[&'p str],
    at: &str,
    meta: &dyn PatchMeta,
) -> Result<(), SmpError> {
    match pv {
        // Upstream `IgnoreUnmatchedNulls`: null deletes, and a null for an absent field is dropped.
        Value::Null => {
            original.remove(k);
        }
        Value::Object(pm) => {
            let outcome = match original.get_mut(k) {
                Some(Value::Object(om)) => merge_map(om, pm, fields, at, meta)?,
                // Absent, or another type (upstream takes the patch value).
                _ => match fresh_map(pm, fields, at, meta)? {
                    Some(m) => {
                        original.insert(k.to_string(), Value::Object(m));
                        Outcome::Keep
                    }
                    None => Outcome::Delete,
                },
            };
            if let Outcome::Delete = outcome {
                original.remove(k);
            }
        }
        Value::Array(pl) => {
            let merged = match original.get(k) {
                Some(Value::Array(ol)) => merge_list(ol, pl, fields, at, meta)?.items,
                _ => fresh_list(pl, fields, at, meta)?,
            };
            original.insert(k.to_string(), Value::Array(merged));
        }
        scalar => {
            original.insert(k.to_string(), scalar.clone());
        }
    }
    Ok(())
}

/// Upstream `applyRetainKeysDirective`: every field the patch sets must be listed, and the object's
/// fields that are not listed are cleared before merging (e.g. a volume's `emptyDir` when the patch
/// switches it to `hostPath`).
fn retain_keys(
    original: &mut Map<String, Value>,
    list: &Value,
    regular: &[(&str, &Value)],
    at: &str,
) -> Result<(), SmpError> {
    let names: Vec<&str> = list
        .as_array()
        .and_then(|l| l.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .ok_or_else(|| err_at(at, "$retainKeys must be a list of field names"))?;
    for (k, v) in regular {
        if !v.is_null() && !names.contains(k) {
            return Err(err_at(at, format!("the patch sets field {k:?}, which $retainKeys does not list")));
        }
    }
    original.retain(|k, _| names.contains(&k.as_str()));
    Ok(())
}

/// Upstream `deleteFromSlice` for `$deleteFromPrimitiveList/<field>`: remove every element equal to a
/// listed value.
fn delete_from_primitive_list(
    original: &mut Map<String, Value>,
    field: &str,
    values: &Value,
    at: &str,
) -> Result<(), SmpError> {
    let directive = format!("{DELETE_FROM_PRIMITIVE_LIST}/{field}");
    let values = values
        .as_array()
        .ok_or_else(|| err_at(at, format!("{directive} must be a list")))?;
    if values.iter().any(|v| v.is_object() || v.is_array()) {
        return Err(err_at(at, format!("{directive} may only list primitive values")));
    }
    if let Some(Value::Array(list)) = original.get_mut(field) {
        list.retain(|e| !values.iter().any(|v| same(e, v)));
    }
    Ok(())
}

/// Upstream `mergeSlice` (for a list in both the object and the patch).
fn merge_list<'p>(
    ol: &[Value],
    pl: &'p [Value],
    fields: &[&'p str],
    at: &str,
    meta: &dyn PatchMeta,
) -> Result<ListMerge, SmpError> {
    match meta.list_strategy(fields) {
        ListStrategy::Replace => Ok(ListMerge { items: pl.to_vec(), order: Vec::new() }),
        ListStrategy::MergePrimitives => merge_primitives(ol, pl, at),
        ListStrategy::Merge { key } => merge_by_key(ol, pl, key, fields, at, meta),
    }
}

/// A list patch applied where the object has no list. Upstream takes the patch list as it is; here
/// the elements of a merge-key list also have their directives resolved (`$patch: delete` elements
/// and `$patch: replace` markers dropped). Duplicates stay.
fn fresh_list<'p>(
    pl: &'p [Value],
    fields: &[&'p str],
    at: &str,
    meta: &dyn PatchMeta,
) -> Result<Vec<Value>, SmpError> {
    let ListStrategy::Merge { key } = meta.list_strategy(fields) else {
        return Ok(pl.to_vec());
    };
    let mut out = Vec::with_capacity(pl.len());
    for (i, e) in pl.iter().enumerate() {
        let eat = format!("{at}[{i}]");
        let m = element_object(e, key, &eat)?;
        let directive = element_directive(m, &eat)?;
        if !m.contains_key(key) && directive != Some(ElementDirective::Replace) {
            return Err(missing_key(&eat, key));
        }
        if directive.is_none() {
            if let Some(v) = fresh_map(m, fields, &eat, meta)? {
                out.push(Value::Object(v));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementDirective {
    Delete,
    Replace,
}

fn element_object<'v>(e: &'v Value, key: &str, at: &str) -> Result<&'v Map<String, Value>, SmpError> {
    e.as_object()
        .ok_or_else(|| err_at(at, format!("expected an object: the elements of this list are merged by {key:?}")))
}

/// The `$patch` of a merge-list element (upstream `mergeSliceWithSpecialElements`).
fn element_directive(m: &Map<String, Value>, at: &str) -> Result<Option<ElementDirective>, SmpError> {
    let Some(d) = m.get(PATCH) else {
        return Ok(None);
    };
    match d.as_str() {
        Some("delete") => Ok(Some(ElementDirective::Delete)),
        Some("replace") => Ok(Some(ElementDirective::Replace)),
        Some("merge") => Err(err_at(at, "$patch: merge is not supported in a list (merging lists cannot yet be specified in the patch)")),
        _ => Err(err_at(at, format!("unknown $patch value {d} in a list element (expected \"delete\" or \"replace\")"))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

/// Upstream `sliceElementType`: every element of both lists has the same type, and is not a list.
fn element_kind(a: &[Value], b: &[Value], at: &str) -> Result<Option<Kind>, SmpError> {
    let mut kind = None;
    for v in a.iter().chain(b) {
        let k = kind_of(v);
        if k == Kind::Array {
            return Err(err_at(at, "lists of lists are not supported"));
        }
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(err_at(at, "the elements of the list and of the patch are not all of the same type"))
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// A list of primitives with the merge strategy: the union, deduplicated, ordered as upstream.
fn merge_primitives(ol: &[Value], pl: &[Value], at: &str) -> Result<ListMerge, SmpError> {
    if ol.is_empty() && pl.is_empty() {
        return Ok(ListMerge { items: Vec::new(), order: Vec::new() });
    }
    if element_kind(ol, pl, at)? == Some(Kind::Object) {
        return Err(err_at(at, "cannot merge a list of objects: this list has no merge key"));
    }
    let mut merged: Vec<Value> = Vec::with_capacity(ol.len() + pl.len());
    for v in ol.iter().chain(pl) {
        if !merged.iter().any(|m| same(m, v)) {
            merged.push(v.clone());
        }
    }
    let (in_patch, server_only): (Vec<_>, Vec<_>) =
        merged.into_iter().map(|v| (v.clone(), v)).partition(|(id, _)| position(pl, id).is_some());
    Ok(ListMerge { items: normalize_order(in_patch, pl, server_only, ol), order: ol.to_vec() })
}

/// The merge-key value of an element already in the object's list.
fn existing_id<'v>(e: &'v Value, key: &str, at: &str) -> Result<&'v Value, SmpError> {
    e.get(key)
        .ok_or_else(|| err_at(at, format!("an element of the existing list does not contain the merge key {key:?}")))
}

/// A list of objects merged by `key` (upstream `mergeSliceWithSpecialElements`, then
/// `mergeSliceWithoutSpecialElements`, then the ordering).
fn merge_by_key<'p>(
    ol: &[Value],
    pl: &'p [Value],
    key: &'static str,
    fields: &[&'p str],
    at: &str,
    meta: &dyn PatchMeta,
) -> Result<ListMerge, SmpError> {
    if ol.is_empty() && pl.is_empty() {
        return Ok(ListMerge { items: Vec::new(), order: Vec::new() });
    }
    if element_kind(ol, pl, at)? != Some(Kind::Object) {
        return Err(err_at(at, format!("expected a list of objects: its elements are merged by {key:?}")));
    }

    let mut working: Vec<Value> = ol.to_vec();
    let mut deleted = 0;
    let mut replace = false;
    let mut plain = Vec::with_capacity(pl.len());
    for (i, e) in pl.iter().enumerate() {
        let eat = format!("{at}[{i}]");
        let m = element_object(e, key, &eat)?;
        match element_directive(m, &eat)? {
            None => plain.push((eat, m)),
            Some(ElementDirective::Delete) => {
                let id = m.get(key).ok_or_else(|| missing_key(&eat, key))?;
                let before = working.len();
                working.retain(|w| !w.get(key).is_some_and(|wk| same(wk, id)));
                deleted += before - working.len();
            }
            // The list becomes the patch's other elements.
            Some(ElementDirective::Replace) => replace = true,
        }
    }

    if replace {
        let mut items = Vec::with_capacity(plain.len());
        let mut order = Vec::with_capacity(plain.len());
        for (eat, m) in plain {
            order.push(m.get(key).ok_or_else(|| missing_key(&eat, key))?.clone());
            if let Some(v) = fresh_map(m, fields, &eat, meta)? {
                items.push(Value::Object(v));
            }
        }
        return Ok(ListMerge { items, order });
    }

    let survivors = working.iter().map(|w| existing_id(w, key, at).cloned()).collect::<Result<Vec<_>, _>>()?;
    let mut patch_ids = Vec::with_capacity(plain.len());
    let mut appended = Vec::new();
    for (eat, m) in plain {
        let id = m.get(key).ok_or_else(|| missing_key(&eat, key))?;
        patch_ids.push(id.clone());
        match working.iter().position(|w| w.get(key).is_some_and(|wk| same(wk, id))) {
            Some(j) => {
                if let Value::Object(om) = &mut working[j] {
                    merge_map(om, m, fields, &eat, meta)?;
                }
            }
            None => {
                if let Some(v) = fresh_map(m, fields, &eat, meta)? {
                    working.push(Value::Object(v));
                    appended.push(id.clone());
                }
            }
        }
    }

    let mut in_patch = Vec::new();
    let mut server_only = Vec::new();
    for w in working {
        let id = existing_id(&w, key, at)?.clone();
        if position(&patch_ids, &id).is_some() {
            in_patch.push((id, w));
        } else {
            server_only.push((id, w));
        }
    }
    let items = normalize_order(in_patch, &patch_ids, server_only, &survivors);

    // The order `$setElementOrder` then sorts server-only items by. Upstream passes the object's list
    // (`originalFieldValue` in `mergePatchIntoOriginal`), but `mergeSlice` has by then removed the
    // deleted elements in place (shifting the rest left) and appended the new ones into the same
    // backing array: what upstream reads is the survivors followed by as many new elements as were
    // deleted. Its tests depend on this ("add map and delete map from merging list": the object
    // [1, 2, 4], the patch [3, {1: delete}], order [2, 3] gives [2, 4, 3]).
    let mut order = survivors;
    order.extend(appended.into_iter().take(deleted));
    Ok(ListMerge { items, order })
}

/// Upstream `mergePatchIntoOriginal` for one `$setElementOrder/<field>`: merge the field's list and
/// put its items in the given order. Returns whether the patch's `<field>` has been dealt with.
fn set_element_order<'p>(
    original: &mut Map<String, Value>,
    patch: &'p Map<String, Value>,
    field: &'p str,
    order: &Value,
    fields: &[&'p str],
    at: &str,
    meta: &dyn PatchMeta,
) -> Result<bool, SmpError> {
    let directive = format!("{SET_ELEMENT_ORDER}/{field}");
    let f = child_fields(fields, field);
    let fat = child_at(at, field);
    let key = match meta.list_strategy(&f) {
        ListStrategy::Replace => return Ok(false),
        ListStrategy::Merge { key } => Some(key),
        ListStrategy::MergePrimitives => None,
    };
    let order = order
        .as_array()
        .ok_or_else(|| err_at(at, format!("{directive} must be a list")))?;
    let order_ids = order
        .iter()
        .enumerate()
        .map(|(i, e)| match key {
            Some(k) => {
                e.get(k).cloned().ok_or_else(|| err_at(at, format!("{directive}[{i}] does not contain the merge key {k:?}")))
            }
            None if e.is_object() || e.is_array() => {
                Err(err_at(at, format!("{directive}[{i}] must be a primitive value")))
            }
            None => Ok(e.clone()),
        })
        .collect::<Result<Vec<_>, _>>()?;

    let patch_list = match patch.get(field) {
        None => None,
        // The list is deleted: nothing to order.
        Some(Value::Null) => return Ok(false),
        Some(Value::Array(l)) => Some(l),
        Some(_) => return Err(err_at(&fat, format!("expected a list, to go with {directive}"))),
    };
    if let Some(pl) = patch_list {
        check_order(pl, &order_ids, key, &fat, &directive)?;
    }

    let merged = match (original.get(field), patch_list) {
        (Some(Value::Array(ol)), Some(pl)) => merge_list(ol, pl, &f, &fat, meta)?,
        (Some(Value::Array(ol)), None) => {
            let order = match key {
                Some(k) => ol.iter().map(|e| existing_id(e, k, &fat).cloned()).collect::<Result<_, _>>()?,
                None => ol.clone(),
            };
            ListMerge { items: ol.clone(), order }
        }
        (_, Some(pl)) => ListMerge { items: fresh_list(pl, &f, &fat, meta)?, order: Vec::new() },
        (_, None) => return Ok(true),
    };

    let mut named = Vec::new();
    let mut server_only = Vec::new();
    for item in merged.items {
        let id = match key {
            Some(k) => existing_id(&item, k, &fat)?.clone(),
            None => item.clone(),
        };
        if position(&order_ids, &id).is_some() {
            named.push((id, item));
        } else {
            server_only.push((id, item));
        }
    }
    let items = normalize_order(named, &order_ids, server_only, &merged.order);
    original.insert(field.to_string(), Value::Array(items));
    Ok(true)
}

/// Upstream `validatePatchWithSetOrderList`: the patch list's items (but deletions) must come in the
/// `$setElementOrder` list, in the same relative order.
fn check_order(
    pl: &[Value],
    order_ids: &[Value],
    key: Option<&str>,
    at: &str,
    directive: &str,
) -> Result<(), SmpError> {
    if pl.is_empty() || order_ids.is_empty() {
        return Ok(());
    }
    let items: Vec<(usize, &Value)> = pl
        .iter()
        .enumerate()
        .filter(|(_, e)| key.is_none() || e.get(PATCH).and_then(Value::as_str) != Some("delete"))
        .collect();
    let (mut pi, mut si) = (0, 0);
    while pi < items.len() && si < order_ids.len() {
        let (i, e) = items[pi];
        if e.get(PATCH).is_some() {
            pi += 1;
            continue;
        }
        let id = match key {
            Some(k) => e.get(k).ok_or_else(|| missing_key(&format!("{at}[{i}]"), k))?,
            None => e,
        };
        if same(id, &order_ids[si]) {
            pi += 1;
        }
        si += 1;
    }
    if pi < items.len() {
        return Err(err_at(
            at,
            format!("the items of the patch list are not all in {directive}, or not in the same order"),
        ));
    }
    Ok(())
}

/// Upstream `normalizeElementOrder`: sort the patch items by `patch_order` and the server-only items
/// by `server_order`, then interleave them (`mergeSortedSlice`). Items are (identity, value).
fn normalize_order(
    patch_items: Vec<(Value, Value)>,
    patch_order: &[Value],
    server_only: Vec<(Value, Value)>,
    server_order: &[Value],
) -> Vec<Value> {
    let patch_items = sort_by_order(patch_items, patch_order);
    let server_only = sort_by_order(server_only, server_order);
    merge_sorted(server_only, patch_items, server_order)
}

/// Upstream `normalizeSliceOrder`: a stable sort by position in `order`. Every caller's items are in
/// `order`; any that were not would go last (upstream's comparator is not an order then).
fn sort_by_order(mut items: Vec<(Value, Value)>, order: &[Value]) -> Vec<(Value, Value)> {
    items.sort_by_cached_key(|(id, _)| position(order, id).unwrap_or(usize::MAX));
    items
}

/// Upstream `mergeSortedSlice`: take the next left (server-only) item only when both it and the next
/// right (patch) item are in `order` and it comes first there; otherwise take the right one.
fn merge_sorted(left: Vec<(Value, Value)>, right: Vec<(Value, Value)>, order: &[Value]) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => {
                matches!((position(order, l), position(order, r)), (Some(li), Some(ri)) if li < ri)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next.map(|(_, v)| v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The test struct of upstream's patch_test.go (`MergeItem`): `mergingList` merges by name,
    /// `mergingIntList` is a merging primitive list, everything else is replaced, at any depth.
    struct MergeItem;

    impl PatchMeta for MergeItem {
        fn list_strategy(&self, path: &[&str]) -> ListStrategy {
            match path.last() {
                Some(&"mergingList") => by("name"),
                Some(&"mergingIntList") => ListStrategy::MergePrimitives,
                _ => ListStrategy::Replace,
            }
        }
    }

    fn pod() -> &'static dyn PatchMeta {
        meta_for("", "Pod")
    }

    /// Runs (name, original, patch, expected) cases against `meta`.
    fn check(meta: &dyn PatchMeta, cases: &[(&str, Value, Value, Value)]) {
        for (name, original, patch, expected) in cases {
            let got = apply(original, patch, meta).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&got, expected, "{name}");
        }
    }

    /// Runs (name, original, patch, expected error) cases against `meta`.
    fn check_err(meta: &dyn PatchMeta, cases: &[(&str, Value, Value, &str)]) {
        for (name, original, patch, expected) in cases {
            let got = apply(original, patch, meta).expect_err(name);
            assert_eq!(got.0, *expected, "{name}");
        }
    }

    fn busybox_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": "a"}, "finalizers": ["f1"]},
            "spec": {
                "containers": [{
                    "name": "busybox", "image": "busybox",
                    "command": ["sleep", "3600"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                }],
                "tolerations": [{"key": "k", "operator": "Exists"}],
            },
        })
    }

    #[test]
    fn empty_patch_returns_the_original() {
        for meta in [pod(), meta_for("", "Widget"), &MergeItem as &dyn PatchMeta] {
            assert_eq!(apply(&busybox_pod(), &json!({}), meta).unwrap(), busybox_pod());
        }
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        check(
            pod(),
            &[
                (
                    "add, change and delete keys at several depths",
                    json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "spec": {"nodeName": "n"}}),
                    json!({"metadata": {"labels": {"a": "x", "b": null, "c": "3"}}, "spec": {"nodeName": null}}),
                    json!({"metadata": {"name": "p", "labels": {"a": "x", "c": "3"}}, "spec": {}}),
                ),
                (
                    "null for an absent field is dropped",
                    json!({"metadata": {"name": "p"}}),
                    json!({"metadata": {"labels": null, "annotations": {"x": null, "y": "1"}}}),
                    json!({"metadata": {"name": "p", "annotations": {"y": "1"}}}),
                ),
                (
                    "a scalar replaces a map and a map replaces a scalar",
                    json!({"spec": {"a": {"x": 1}, "b": "s"}}),
                    json!({"spec": {"a": 5, "b": {"y": 2, "z": null}}}),
                    json!({"spec": {"a": 5, "b": {"y": 2}}}),
                ),
                (
                    "a new map has its directives resolved",
                    json!({"spec": {}}),
                    json!({"spec": {"securityContext": {"runAsUser": 1, "sysctls": [{"name": "a"}], "seccompProfile": {"$patch": "delete"}}}}),
                    json!({"spec": {"securityContext": {"runAsUser": 1, "sysctls": [{"name": "a"}]}}}),
                ),
            ],
        );
    }

    #[test]
    fn kubectl_apply_example() {
        let original = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "busybox", "image": "busybox"}]},
        });
        let patch = json!({
            "metadata": {"labels": {"tier": "x"}},
            "spec": {
                "$setElementOrder/containers": [{"name": "busybox"}],
                "containers": [{"image": "busybox:1.36", "name": "busybox"}],
            },
        });
        assert_eq!(
            apply(&original, &patch, pod()).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "labels": {"tier": "x"}},
                "spec": {"containers": [{"name": "busybox", "image": "busybox:1.36"}]},
            })
        );
    }

    #[test]
    fn containers_by_name() {
        let two = json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}});
        check(
            pod(),
            &[
                (
                    // Upstream places a new item before server-only items it cannot compare with.
                    "a new container without $setElementOrder goes first",
                    two.clone(),
                    json!({"spec": {"containers": [{"name": "c", "image": "c"}]}}),
                    json!({"spec": {"containers": [{"name": "c", "image": "c"}, {"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}}),
                ),
                (
                    "a new container after a changed one follows it",
                    two.clone(),
                    json!({"spec": {"containers": [{"name": "b", "image": "b2"}, {"name": "c", "image": "c"}]}}),
                    json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b2"}, {"name": "c", "image": "c"}]}}),
                ),
                (
                    "a new container with $setElementOrder (kubectl apply) goes where it says",
                    two.clone(),
                    json!({"spec": {
                        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                        "containers": [{"name": "c", "image": "c"}],
                    }}),
                    json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}, {"name": "c", "image": "c"}]}}),
                ),
                (
                    "$patch: delete removes a container",
                    two.clone(),
                    json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
                    json!({"spec": {"containers": [{"name": "b", "image": "b"}]}}),
                ),
                (
                    "deleting an absent container is a no-op",
                    two.clone(),
                    json!({"spec": {"containers": [{"name": "zz", "$patch": "delete"}]}}),
                    two.clone(),
                ),
                (
                    "kubectl apply removing a container",
                    two.clone(),
                    json!({"spec": {"$setElementOrder/containers": [{"name": "b"}], "containers": [{"name": "a", "$patch": "delete"}]}}),
                    json!({"spec": {"containers": [{"name": "b", "image": "b"}]}}),
                ),
                (
                    "fields of a container merge; a null deletes one",
                    json!({"spec": {"containers": [{"name": "a", "image": "a", "workingDir": "/w"}]}}),
                    json!({"spec": {"containers": [{"name": "a", "workingDir": null, "tty": true}]}}),
                    json!({"spec": {"containers": [{"name": "a", "image": "a", "tty": true}]}}),
                ),
                (
                    "the first list for a field is the patch's, directives resolved",
                    json!({"spec": {}}),
                    json!({"spec": {"initContainers": [{"name": "i", "image": "i", "env": [{"name": "X", "value": null}]}, {"name": "gone", "$patch": "delete"}]}}),
                    json!({"spec": {"initContainers": [{"name": "i", "image": "i", "env": [{"name": "X"}]}]}}),
                ),
            ],
        );
    }

    #[test]
    fn lists_nested_in_containers() {
        let original = busybox_pod();
        let mut expected = busybox_pod();
        expected["spec"]["containers"][0]["env"] =
            json!([{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "C", "value": "3"}]);
        expected["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}]);
        check(
            pod(),
            &[(
                "env by name and ports by containerPort",
                original,
                json!({"spec": {"containers": [{
                    "name": "busybox",
                    "env": [{"name": "B", "value": null, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "C", "value": "3"}],
                    "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
                }]}}),
                expected,
            )],
        );
        check(
            pod(),
            &[
                (
                    "volumeMounts by mountPath",
                    json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/x"}]}]}}),
                    json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/x", "readOnly": true}, {"name": "w", "mountPath": "/y"}]}]}}),
                    json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/x", "readOnly": true}, {"name": "w", "mountPath": "/y"}]}]}}),
                ),
                (
                    // Both share the merge key containerPort: upstream keeps a new list as sent.
                    "a new container keeps ports that share a containerPort",
                    json!({"spec": {"containers": []}}),
                    json!({"spec": {"containers": [{"name": "dns", "ports": [{"containerPort": 53, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}]}]}}),
                    json!({"spec": {"containers": [{"name": "dns", "ports": [{"containerPort": 53, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}]}]}}),
                ),
                (
                    "merge keys compare numbers by value",
                    json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}),
                    json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80.0, "name": "http"}]}]}}),
                    json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80.0, "name": "http"}]}]}}),
                ),
            ],
        );
    }

    #[test]
    fn set_element_order() {
        // Upstream patch_test.go cases, on MergeItem, and the same shapes on a pod.
        check(
            &MergeItem,
            &[
                (
                    "reorder only",
                    json!({"mergingList": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]}),
                    json!({"$setElementOrder/mergingList": [{"name": "3"}, {"name": "1"}, {"name": "2"}]}),
                    json!({"mergingList": [{"name": "3"}, {"name": "1"}, {"name": "2", "value": "b"}]}),
                ),
                (
                    "merge lists of maps (server items follow their old neighbours)",
                    json!({"mergingList": [{"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}]}),
                    json!({
                        "$setElementOrder/mergingList": [{"name": "4"}, {"name": "1"}, {"name": "2"}, {"name": "3"}],
                        "mergingList": [{"name": "4", "value": "4"}, {"name": "3", "value": "3"}],
                    }),
                    json!({"mergingList": [{"name": "4", "value": "4"}, {"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}, {"name": "3", "value": "3"}]}),
                ),
                (
                    "add map and delete map from merging list",
                    json!({"mergingList": [{"name": "1"}, {"name": "2", "other": "b"}, {"name": "4", "other": "c"}]}),
                    json!({
                        "$setElementOrder/mergingList": [{"name": "2"}, {"name": "3"}],
                        "mergingList": [{"name": "3"}, {"name": "1", "$patch": "delete"}],
                    }),
                    json!({"mergingList": [{"name": "2", "other": "b"}, {"name": "4", "other": "c"}, {"name": "3"}]}),
                ),
                (
                    "add map and delete map from merging list with conflict",
                    json!({"mergingList": [{"name": "1", "other": "a"}, {"name": "4", "other": "c"}]}),
                    json!({
                        "$setElementOrder/mergingList": [{"name": "2"}, {"name": "3"}],
                        "mergingList": [{"name": "2"}, {"name": "3"}, {"name": "1", "$patch": "delete"}],
                    }),
                    json!({"mergingList": [{"name": "4", "other": "c"}, {"name": "2"}, {"name": "3"}]}),
                ),
                (
                    "delete missing map from merging list with conflict",
                    json!({"mergingList": [{"name": "3", "other": "a"}]}),
                    json!({
                        "$setElementOrder/mergingList": [{"name": "2"}],
                        "mergingList": [{"name": "2"}, {"name": "1", "$patch": "delete"}],
                    }),
                    json!({"mergingList": [{"name": "2"}, {"name": "3", "other": "a"}]}),
                ),
                (
                    "add field to map in merging list with conflict",
                    json!({"mergingList": [{"name": "1", "other": "a"}, {"name": "3", "value": "2", "other": "b"}]}),
                    json!({
                        "$setElementOrder/mergingList": [{"name": "1"}, {"name": "2"}],
                        "mergingList": [{"name": "1", "value": "1"}, {"name": "2", "value": "2"}],
                    }),
                    json!({"mergingList": [{"name": "1", "value": "1", "other": "a"}, {"name": "2", "value": "2"}, {"name": "3", "value": "2", "other": "b"}]}),
                ),
                (
                    "$setElementOrder names an item in neither list",
                    json!({"mergingList": [{"name": "1"}, {"name": "3"}]}),
                    json!({
                        "$setElementOrder/mergingList": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                        "mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}],
                    }),
                    json!({"mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]}),
                ),
                (
                    "$setElementOrder for an int list without a patch list",
                    json!({"mergingIntList": [1, 3]}),
                    json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
                    json!({"mergingIntList": [3, 1]}),
                ),
                (
                    "$setElementOrder for a list the object lacks",
                    json!({}),
                    json!({"$setElementOrder/mergingList": [{"name": "b"}, {"name": "c"}, {"name": "a"}], "mergingList": [{"name": "b"}, {"name": "a", "$patch": "delete"}, {"name": "a", "value": null}]}),
                    json!({"mergingList": [{"name": "b"}, {"name": "a"}]}),
                ),
                (
                    "$setElementOrder for a list in neither is dropped",
                    json!({"x": 1}),
                    json!({"$setElementOrder/mergingList": [{"name": "a"}]}),
                    json!({"x": 1}),
                ),
                (
                    "nested: the order inside a merged element",
                    json!({"mergingList": [{"name": "a", "mergingList": [{"name": "x"}, {"name": "y"}]}]}),
                    json!({"mergingList": [{"name": "a", "$setElementOrder/mergingList": [{"name": "y"}, {"name": "x"}]}]}),
                    json!({"mergingList": [{"name": "a", "mergingList": [{"name": "y"}, {"name": "x"}]}]}),
                ),
                (
                    "ignored on a list without a merge strategy",
                    json!({"nonMergingList": [{"name": "a"}, {"name": "b"}]}),
                    json!({"$setElementOrder/nonMergingList": [{"name": "b"}, {"name": "a"}], "nonMergingList": [{"name": "c"}]}),
                    json!({"nonMergingList": [{"name": "c"}]}),
                ),
            ],
        );
        check(
            pod(),
            &[(
                "kubectl apply moving a container and changing another",
                json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}, {"name": "side", "image": "s"}]}}),
                json!({"spec": {
                    "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                    "containers": [{"name": "a", "image": "a2"}],
                }}),
                json!({"spec": {"containers": [{"name": "b", "image": "b"}, {"name": "a", "image": "a2"}, {"name": "side", "image": "s"}]}}),
            )],
        );
    }

    #[test]
    fn patch_order_without_set_element_order() {
        // Upstream "preserve the order from the patch in a merging list" cases.
        check(
            &MergeItem,
            &[
                (
                    "every item in the patch",
                    json!({"mergingList": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]}),
                    json!({"mergingList": [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}, {"name": "2", "other": "x"}]}),
                    json!({"mergingList": [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}, {"name": "2", "value": "b", "other": "x"}]}),
                ),
                (
                    "a server-only item keeps its place",
                    json!({"mergingList": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]}),
                    json!({"mergingList": [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}]}),
                    json!({"mergingList": [{"name": "2", "value": "b"}, {"name": "3", "value": "c"}, {"name": "1", "value": "a"}]}),
                ),
                (
                    "int list",
                    json!({"mergingIntList": [1, 2, 3]}),
                    json!({"mergingIntList": [3, 1]}),
                    json!({"mergingIntList": [2, 3, 1]}),
                ),
                (
                    "unique scalars when merging lists",
                    json!({"mergingIntList": [1, 2]}),
                    json!({"mergingIntList": [2, 3]}),
                    json!({"mergingIntList": [1, 2, 3]}),
                ),
                (
                    "delete all duplicate entries in a merging list",
                    json!({"mergingList": [{"name": "1"}, {"name": "1"}, {"name": "2", "value": "a"}, {"name": "3"}, {"name": "3"}]}),
                    json!({"mergingList": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]}),
                    json!({"mergingList": [{"name": "2", "value": "a"}]}),
                ),
            ],
        );
    }

    #[test]
    fn patch_replace_and_delete_directives() {
        check(
            pod(),
            &[
                (
                    "$patch: replace in a list replaces it with the other elements",
                    json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}}),
                    json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "c"}]}}),
                    json!({"spec": {"containers": [{"name": "c", "image": "c"}]}}),
                ),
                (
                    "$patch: replace alone empties the list",
                    json!({"spec": {"containers": [{"name": "a", "image": "a"}]}}),
                    json!({"spec": {"containers": [{"$patch": "replace"}]}}),
                    json!({"spec": {"containers": []}}),
                ),
                (
                    "$patch: replace in a map replaces it",
                    json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                    json!({"metadata": {"labels": {"$patch": "replace", "c": "3", "d": null}}}),
                    json!({"metadata": {"labels": {"c": "3"}}}),
                ),
                (
                    "$patch: replace of a nested map inside a container",
                    json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}]}}),
                    json!({"spec": {"containers": [{"name": "a", "resources": {"$patch": "replace", "limits": {"memory": "1Gi"}}}]}}),
                    json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}]}}),
                ),
                (
                    "$patch: delete in a map removes the field",
                    json!({"metadata": {"name": "p", "labels": {"a": "1"}}}),
                    json!({"metadata": {"labels": {"$patch": "delete"}}}),
                    json!({"metadata": {"name": "p"}}),
                ),
                (
                    "$patch: delete of an absent map",
                    json!({"metadata": {"name": "p"}}),
                    json!({"metadata": {"annotations": {"$patch": "delete"}}}),
                    json!({"metadata": {"name": "p"}}),
                ),
                (
                    "$patch: replace at the root",
                    json!({"metadata": {"name": "p"}, "spec": {}}),
                    json!({"$patch": "replace", "kind": "Pod"}),
                    json!({"kind": "Pod"}),
                ),
                (
                    "$patch: delete at the root",
                    json!({"metadata": {"name": "p"}}),
                    json!({"$patch": "delete"}),
                    json!({}),
                ),
            ],
        );
    }

    #[test]
    fn retain_keys_switches_a_volume_source() {
        let original = json!({"spec": {"volumes": [
            {"name": "data", "emptyDir": {"medium": "Memory"}},
            {"name": "other", "emptyDir": {}},
        ]}});
        // What kubectl apply sends when a volume changes from emptyDir to hostPath.
        let patch = json!({"spec": {
            "$setElementOrder/volumes": [{"name": "data"}, {"name": "other"}],
            "volumes": [{"$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv"}, "emptyDir": null, "name": "data"}],
        }});
        check(
            pod(),
            &[(
                "emptyDir to hostPath",
                original.clone(),
                patch,
                json!({"spec": {"volumes": [
                    {"name": "data", "hostPath": {"path": "/srv"}},
                    {"name": "other", "emptyDir": {}},
                ]}}),
            )],
        );
        // Without $retainKeys the old source stays: upstream only honours the directive.
        check(
            pod(),
            &[(
                "no directive, plain merge",
                original.clone(),
                json!({"spec": {"volumes": [{"name": "data", "hostPath": {"path": "/srv"}}]}}),
                json!({"spec": {"volumes": [
                    {"name": "data", "emptyDir": {"medium": "Memory"}, "hostPath": {"path": "/srv"}},
                    {"name": "other", "emptyDir": {}},
                ]}}),
            )],
        );
        check_err(
            pod(),
            &[
                (
                    "a patched field missing from $retainKeys",
                    original.clone(),
                    json!({"spec": {"volumes": [{"$retainKeys": ["name"], "hostPath": {"path": "/srv"}, "name": "data"}]}}),
                    "spec.volumes[0]: the patch sets field \"hostPath\", which $retainKeys does not list",
                ),
                (
                    "$retainKeys not a list of names",
                    original,
                    json!({"spec": {"volumes": [{"$retainKeys": "name", "name": "data"}]}}),
                    "spec.volumes[0]: $retainKeys must be a list of field names",
                ),
            ],
        );
    }

    #[test]
    fn primitive_lists() {
        let with = |f: Value| json!({"metadata": {"name": "p", "finalizers": f}});
        check(
            pod(),
            &[
                (
                    "union: known ones keep their place, new ones go first (upstream)",
                    with(json!(["a", "b"])),
                    json!({"metadata": {"finalizers": ["b", "c"]}}),
                    with(json!(["a", "b", "c"])),
                ),
                (
                    "a lone new finalizer goes first (upstream)",
                    with(json!(["a", "b"])),
                    json!({"metadata": {"finalizers": ["c"]}}),
                    with(json!(["c", "a", "b"])),
                ),
                (
                    "kubectl apply adding a finalizer at the end",
                    with(json!(["a", "b"])),
                    json!({"metadata": {"$setElementOrder/finalizers": ["a", "b", "c"], "finalizers": ["c"]}}),
                    with(json!(["a", "b", "c"])),
                ),
                (
                    "$deleteFromPrimitiveList",
                    with(json!(["a", "b", "c", "b"])),
                    json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}),
                    with(json!(["a", "c"])),
                ),
                (
                    "kubectl apply: add and delete with $setElementOrder, a server-only item stays",
                    with(json!(["a", "b", "x"])),
                    json!({"metadata": {
                        "$setElementOrder/finalizers": ["a", "c"],
                        "$deleteFromPrimitiveList/finalizers": ["b"],
                        "finalizers": ["c"],
                    }}),
                    with(json!(["a", "c", "x"])),
                ),
                (
                    "$deleteFromPrimitiveList on an absent list does not add it",
                    json!({"metadata": {"name": "p"}}),
                    json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
                    json!({"metadata": {"name": "p"}}),
                ),
                (
                    "$deleteFromPrimitiveList on a replace list",
                    json!({"spec": {"containers": [{"name": "a", "args": ["x", "y", "z"]}]}}),
                    json!({"spec": {"containers": [{"name": "a", "$deleteFromPrimitiveList/args": ["y"]}]}}),
                    json!({"spec": {"containers": [{"name": "a", "args": ["x", "z"]}]}}),
                ),
                (
                    "a new list is taken as sent",
                    json!({"metadata": {"name": "p"}}),
                    json!({"metadata": {"finalizers": ["a", "a"]}}),
                    json!({"metadata": {"name": "p", "finalizers": ["a", "a"]}}),
                ),
            ],
        );
        check(
            meta_for("", "Node"),
            &[(
                "node podCIDRs merge",
                json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
                json!({"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}}),
                json!({"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}}),
            )],
        );
    }

    #[test]
    fn replace_lists() {
        let original = busybox_pod();
        let mut command = busybox_pod();
        command["spec"]["containers"][0]["command"] = json!(["sh", "-c", "true"]);
        let mut no_tolerations = busybox_pod();
        no_tolerations["spec"].as_object_mut().unwrap().remove("tolerations");
        let mut tolerations = busybox_pod();
        tolerations["spec"]["tolerations"] = json!([{"key": "other", "operator": "Exists"}]);
        check(
            pod(),
            &[
                (
                    "command is replaced wholesale",
                    original.clone(),
                    json!({"spec": {"containers": [{"name": "busybox", "command": ["sh", "-c", "true"]}]}}),
                    command,
                ),
                ("tolerations: null removes them", original.clone(), json!({"spec": {"tolerations": null}}), no_tolerations),
                (
                    "tolerations are replaced, not merged",
                    original,
                    json!({"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}}),
                    tolerations,
                ),
            ],
        );
        check(
            meta_for("example.com", "Widget"),
            &[(
                "unknown kinds replace every list",
                json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "a", "image": "a"}]}}),
                json!({"metadata": {"finalizers": ["b"]}, "spec": {"containers": [{"name": "b"}]}}),
                json!({"metadata": {"finalizers": ["b"]}, "spec": {"containers": [{"name": "b"}]}}),
            )],
        );
    }

    #[test]
    fn job_template_containers_merge_by_name() {
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {"template": {
                "metadata": {"labels": {"job": "j"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "m", "env": [{"name": "A", "value": "1"}]}, {"name": "side", "image": "s"}],
                },
            }},
        });
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "m2", "env": [{"name": "B", "value": "2"}]}]}}}});
        let mut expected = job.clone();
        expected["spec"]["template"]["spec"]["containers"][0] =
            json!({"name": "main", "image": "m2", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]});
        check(meta_for("batch", "Job"), &[("template containers", job, patch, expected)]);
    }

    #[test]
    fn status_conditions_merge_by_type() {
        let original = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "Initialized", "status": "True"},
        ]}});
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let expected = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "Initialized", "status": "True"},
        ]}});
        for (group, kind) in [("", "Pod"), ("batch", "Job"), ("", "Namespace"), ("", "Node")] {
            check(meta_for(group, kind), &[(kind, original.clone(), patch.clone(), expected.clone())]);
        }
    }

    #[test]
    fn errors_name_the_path() {
        let p = json!({"spec": {"containers": [{"name": "a", "image": "a"}]}});
        check_err(
            pod(),
            &[
                (
                    "missing merge key",
                    p.clone(),
                    json!({"spec": {"containers": [{"name": "a"}, {"image": "b"}]}}),
                    "spec.containers[1]: list element does not contain the merge key \"name\"",
                ),
                (
                    "missing merge key in a new list",
                    json!({"spec": {"containers": [{"name": "a"}]}}),
                    json!({"spec": {"containers": [{"name": "a", "ports": [{"protocol": "TCP"}]}]}}),
                    "spec.containers[0].ports[0]: list element does not contain the merge key \"containerPort\"",
                ),
                (
                    "missing merge key on a delete",
                    p.clone(),
                    json!({"spec": {"containers": [{"$patch": "delete"}]}}),
                    "spec.containers[0]: list element does not contain the merge key \"name\"",
                ),
                (
                    "unknown directive",
                    p.clone(),
                    json!({"spec": {"containers": [{"name": "a", "$bogus": 1}]}}),
                    "spec.containers[0]: unknown patch directive \"$bogus\"",
                ),
                ("unknown directive at the root", p.clone(), json!({"$foo": 1}), "unknown patch directive \"$foo\""),
                (
                    "malformed $setElementOrder",
                    p.clone(),
                    json!({"spec": {"$setElementOrder": []}}),
                    "spec: invalid directive \"$setElementOrder\": expected \"$setElementOrder/<field>\"",
                ),
                (
                    "unknown $patch in a map",
                    p.clone(),
                    json!({"metadata": {"labels": {"$patch": "merge"}}}),
                    "metadata.labels: unknown $patch value \"merge\" in a map (expected \"replace\" or \"delete\")",
                ),
                (
                    "$patch: merge in a list",
                    p.clone(),
                    json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
                    "spec.containers[0]: $patch: merge is not supported in a list (merging lists cannot yet be specified in the patch)",
                ),
                (
                    "unknown $patch in a list",
                    p.clone(),
                    json!({"spec": {"containers": [{"name": "a", "$patch": "zap"}]}}),
                    "spec.containers[0]: unknown $patch value \"zap\" in a list element (expected \"delete\" or \"replace\")",
                ),
                (
                    "$setElementOrder disagreeing with the patch list",
                    json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                    json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "b"}, {"name": "a"}]}}),
                    "spec.containers: the items of the patch list are not all in $setElementOrder/containers, or not in the same order",
                ),
                (
                    "$setElementOrder item without the merge key",
                    p.clone(),
                    json!({"spec": {"$setElementOrder/containers": [{"image": "a"}]}}),
                    "spec: $setElementOrder/containers[0] does not contain the merge key \"name\"",
                ),
                (
                    "a primitive in a merge-key list",
                    p.clone(),
                    json!({"spec": {"containers": ["a"]}}),
                    "spec.containers: the elements of the list and of the patch are not all of the same type",
                ),
                (
                    "an object in a primitive merge list",
                    json!({"metadata": {"finalizers": ["a"]}}),
                    json!({"metadata": {"finalizers": [{"$patch": "replace"}]}}),
                    "metadata.finalizers: the elements of the list and of the patch are not all of the same type",
                ),
                (
                    "$deleteFromPrimitiveList not a list",
                    json!({"metadata": {"finalizers": ["a"]}}),
                    json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
                    "metadata: $deleteFromPrimitiveList/finalizers must be a list",
                ),
                ("patch not an object", p.clone(), json!([1]), "a strategic merge patch must be a JSON object"),
            ],
        );
    }

    #[test]
    fn builtin_metadata() {
        use ListStrategy::{MergePrimitives as Prims, Replace};
        let cases: &[(&str, &str, &[&str], ListStrategy)] = &[
            ("", "Pod", &["spec", "containers"], by("name")),
            ("", "Pod", &["spec", "initContainers"], by("name")),
            ("", "Pod", &["spec", "ephemeralContainers"], by("name")),
            ("", "Pod", &["spec", "containers", "env"], by("name")),
            ("", "Pod", &["spec", "containers", "ports"], by("containerPort")),
            ("", "Pod", &["spec", "initContainers", "volumeMounts"], by("mountPath")),
            ("", "Pod", &["spec", "ephemeralContainers", "volumeDevices"], by("devicePath")),
            ("", "Pod", &["spec", "containers", "command"], Replace),
            ("", "Pod", &["spec", "containers", "args"], Replace),
            ("", "Pod", &["spec", "containers", "envFrom"], Replace),
            ("", "Pod", &["spec", "containers", "resizePolicy"], Replace),
            ("", "Pod", &["spec", "volumes"], by("name")),
            ("", "Pod", &["spec", "imagePullSecrets"], by("name")),
            ("", "Pod", &["spec", "hostAliases"], by("ip")),
            ("", "Pod", &["spec", "schedulingGates"], by("name")),
            ("", "Pod", &["spec", "resourceClaims"], by("name")),
            ("", "Pod", &["spec", "topologySpreadConstraints"], by("topologyKey")),
            ("", "Pod", &["spec", "readinessGates"], Replace),
            ("", "Pod", &["spec", "tolerations"], Replace),
            ("", "Pod", &["status", "conditions"], by("type")),
            ("", "Pod", &["status", "podIPs"], by("ip")),
            ("", "Pod", &["status", "hostIPs"], by("ip")),
            ("", "Pod", &["status", "containerStatuses"], Replace),
            ("", "Pod", &["metadata", "finalizers"], Prims),
            ("", "Pod", &["metadata", "ownerReferences"], by("uid")),
            ("", "Pod", &["metadata", "managedFields"], Replace),
            ("batch", "Job", &["spec", "template", "spec", "containers"], by("name")),
            ("batch", "Job", &["spec", "template", "spec", "containers", "env"], by("name")),
            ("batch", "Job", &["spec", "template", "metadata", "finalizers"], Prims),
            ("batch", "Job", &["spec", "containers"], Replace),
            ("batch", "Job", &["status", "conditions"], by("type")),
            ("batch", "Job", &["metadata", "finalizers"], Prims),
            ("", "Namespace", &["status", "conditions"], by("type")),
            ("", "Node", &["status", "conditions"], by("type")),
            ("", "Node", &["status", "addresses"], by("type")),
            ("", "Node", &["status", "images"], Replace),
            ("", "Node", &["spec", "taints"], Replace),
            ("", "Node", &["spec", "podCIDRs"], Prims),
            ("", "ConfigMap", &["metadata", "finalizers"], Prims),
            ("", "Secret", &["metadata", "ownerReferences"], by("uid")),
            ("", "Event", &["metadata", "finalizers"], Prims),
            ("events.k8s.io", "Event", &["metadata", "finalizers"], Prims),
            ("coordination.k8s.io", "Lease", &["metadata", "finalizers"], Prims),
            ("", "Job", &["metadata", "finalizers"], Replace),
            ("apps", "Deployment", &["spec", "template", "spec", "containers"], by("name")),
            ("apps", "ReplicaSet", &["spec", "template", "spec", "containers", "env"], by("name")),
            ("apps", "Deployment", &["status", "conditions"], by("type")),
            ("apps", "StatefulSet", &["spec", "template", "spec", "containers"], Replace),
        ];
        for (group, kind, path, want) in cases {
            assert_eq!(meta_for(group, kind).list_strategy(path), *want, "{group}/{kind} {path:?}");
        }
        assert!(meta_for("", "Pod").retain_keys(&["spec", "volumes"]));
        assert!(meta_for("batch", "Job").retain_keys(&["spec", "template", "spec", "volumes"]));
        assert!(!meta_for("", "Pod").retain_keys(&["spec", "containers"]));
        assert!(!meta_for("", "Node").retain_keys(&["spec", "volumes"]));
    }
}
