//! Server-side apply (`application/apply-patch+yaml`): field ownership in `metadata.managedFields`, conflict
//! detection, and the merge that turns an applied configuration into the new object — the pure core of
//! sigs.k8s.io/structured-merge-diff/v4 (`merge.Updater`, `typed`, `fieldpath`) and of the field manager of
//! k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager (now k8s.io/apimachinery/pkg/util/managedfields).
//!
//! Two entry points: [`apply`] for an apply request, [`record_update`] for every other write (create,
//! update, patch), so that the fields those writes change are owned too and later applies see conflicts.
//!
//! Field sets (upstream `fieldpath.Set`) are sets of paths. A path is a list of path elements, written as in
//! `fieldsV1`: `f:<field>` for a field of a map, `k:{"<key>":<value>}` for an element of a list merged by
//! key, `v:<json>` for an element of a list of primitives merged as a set. Members are the leaves (scalars,
//! `null`, empty maps and lists, atomic lists as a whole) and the list elements themselves (`.` in
//! fieldsV1); maps that have fields are not members, their fields are (upstream `ToFieldSet`).
//!
//! As upstream, an apply conflicts with every entry but the applier's own `Apply` entry — including an
//! `Update` entry under the same manager name, since entries are keyed by manager and operation.
//!
//! The list strategies and merge keys are those of [`crate::smp::PatchMeta`] (the strategic-merge-patch
//! tags of k8s.io/api, which is where upstream's `x-kubernetes-list-type`/`-list-map-keys` come from too).
//!
//! Simplifications versus upstream, all deliberate:
//! - Lists merged by key use the one merge key of the strategic-merge-patch table; upstream's SSA schema
//!   sometimes has several (`containerPort`+`protocol` for ports). A merge-key list whose elements repeat a
//!   key (DNS on 53/TCP and 53/UDP) is therefore treated as atomic — owned, merged and replaced as a whole —
//!   instead of being rejected. All maps are granular (upstream has a few `x-kubernetes-map-type: atomic`
//!   structs, e.g. `LabelSelector`); unknown kinds have only atomic lists (every list `Replace`).
//! - There is no version conversion: managedFields entries are kept in the version they were written in,
//!   and the object's apiVersion is taken from the applied configuration.
//! - Entries are identified by (manager, operation, subresource); upstream also keys `Update` entries by
//!   apiVersion. [`record_update`] never writes a `subresource`, so status writes made through `/status`
//!   are owned by a plain `Update` entry; entries read back with a `subresource` are kept apart.
//!   There is no cap on the number of `Update` entries (upstream folds the oldest into "ancient-changes").
//! - Merged lists keep the live object's order; elements new to the list are appended in the applied
//!   order (upstream interleaves them by the applied order).
//! - `status` in an applied configuration is ignored (neither merged nor owned): [`apply`] is the apply
//!   to the main resource, where upstream's reset-fields strategy drops status. Apply to `/status` is not
//!   supported.
//! - Fields the server sets (`metadata.uid`, `resourceVersion`, `generation`, `creationTimestamp`,
//!   `deletionTimestamp`, `deletionGracePeriodSeconds`, `selfLink`, `managedFields`) are never owned and
//!   are taken from the live object, never from the applied configuration. `metadata.name` and
//!   `namespace` must agree with the live object and are not owned (upstream `stripmeta.go`).
//! - A `null` in the applied configuration removes the field and makes the applier its owner, as upstream
//!   (where the merged null disappears when the object is converted to its Go type). A map or list left
//!   empty by a removal and owned by nobody is removed too (Go's `omitempty` drops it upstream).
//! - The conflict message cannot say "using v1 at <time>" for `Update` managers, since
//!   [`SsaError::Conflicts`] carries only (manager, path); otherwise it is upstream's.
//! - An `Apply` entry's time changes when the object or the entry's field set changes (upstream: when the
//!   object changes); an `Update` entry's when the write changed fields (as upstream).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde_json::{Map, Value};

use crate::smp::{ListStrategy, PatchMeta};

/// Errors of [`apply`]. The message is shown to the user in a Status (409 for conflicts, 400/422 else).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsaError {
    /// Another manager owns fields this apply changes. Each conflict: (manager, field path in the upstream
    /// message form, e.g. `.spec.containers[name="c"].image`), sorted by manager then path.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<(String, String)>),
    /// The applied configuration is not usable (names the path and what is wrong).
    #[error("{0}")]
    Invalid(String),
}

/// Upstream `getConflictMessage` (managedfields/internal/conflict.go): one conflict on one line, several
/// grouped by manager (managers sorted), one `- <path>` line each.
fn conflict_message(conflicts: &[(String, String)]) -> String {
    if let [(manager, path)] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {manager:?}: {path}");
    }
    let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (manager, path) in conflicts {
        by_manager.entry(manager).or_default().push(path);
    }
    let mut lines = Vec::new();
    for (manager, paths) in by_manager {
        lines.push(format!("conflicts with {manager:?}:"));
        lines.extend(paths.into_iter().map(|p| format!("- {p}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

/// Fields of `metadata` the server sets or that identify the object: never owned (upstream `stripmeta.go`
/// ignores these, plus apiVersion and kind; deletionTimestamp and deletionGracePeriodSeconds are set by
/// the server on delete, so k1s does not own them either).
const SERVER_SET: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
];

/// Server-set fields an applied configuration may carry but that are never taken from it (the name and
/// namespace are checked against the live object instead).
const FROM_LIVE: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
];

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Apply `applied` (the user's configuration: a partial object with apiVersion, kind, metadata.name) as `manager`
/// to `live` (None when the object does not exist yet). Returns the new object with `metadata.managedFields`
/// updated. `force` takes ownership instead of reporting conflicts. `now` is the timestamp to record.
///
/// Upstream `merge.Updater.Apply`: merge, prune what this manager stopped applying, compare with the live
/// object, then `update` (conflicts, forced takeover, removed fields dropped from every manager).
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    meta: &dyn PatchMeta,
    now: &str,
) -> Result<Value, SsaError> {
    let config = check_applied(live, applied, manager)?;

    // (1) The applied set, and the paths the configuration sets to null (removed once merged).
    let config_nodes = collect(&config, meta, true)?;
    let applied_set = members(&config_nodes);
    let null_paths: Vec<Path> =
        config_nodes.iter().filter(|(_, n)| n.leaf && n.value.is_null()).map(|(p, _)| p.clone()).collect();

    let base = match live {
        Some(l) => without_managed_fields(l),
        None => Value::Object(Map::new()),
    };
    let mut entries = live.map(entries_of).unwrap_or_default();
    let mine = entries.iter().position(|e| e.is(manager, APPLY));

    // (3) The merge, then upstream `Updater.prune`: what this manager applied last time and no longer
    // does goes, unless another manager (or this apply) owns it or something under it.
    let mut merged = base.clone();
    merge_value(&mut merged, &config, &[], meta);
    let mut owned: FieldSet = applied_set.clone();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) != mine {
            owned.extend(e.set.iter().cloned());
        }
    }
    if let Some(i) = mine {
        for path in entries[i].set.difference(&owned) {
            if has_descendant(&owned, path) || is_key_of_element(path) {
                continue;
            }
            remove_tidy(&mut merged, path, &owned);
        }
    }

    // (2) Upstream `Updater.update`: compare the live object with the result (nulls still in place, so
    // that nulling another manager's field is a change of it, not a removal); a field another entry owns
    // that this apply adds or changes is a conflict.
    let diff = {
        let before = collect(&base, meta, false)?;
        let after = collect(&merged, meta, false)?;
        diff(&before, &after)
    };
    let mut conflicts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) != mine {
            for path in e.set.intersection(&diff.changed) {
                conflicts.push((e.manager.clone(), render(path)));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort();
        conflicts.dedup();
        return Err(SsaError::Conflicts(conflicts));
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) != mine {
            // With force the conflicting fields change hands; without, the intersection is empty.
            e.set.retain(|p| !diff.changed.contains(p) && !diff.removed.contains(p));
        }
    }

    for path in &null_paths {
        remove_tidy(&mut merged, path, &FieldSet::new());
    }

    // (4) This manager's Apply entry is exactly the applied set.
    let object_changed = merged != base;
    let api_version = config.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    match mine {
        Some(i) => {
            let e = &mut entries[i];
            if object_changed || e.set != applied_set || e.api_version != api_version {
                e.time = Some(now.to_string());
            }
            e.set = applied_set;
            e.api_version = api_version;
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: APPLY.to_string(),
            subresource: String::new(),
            api_version,
            time: Some(now.to_string()),
            set: applied_set,
        }),
    }
    set_managed_fields(&mut merged, entries);
    Ok(merged)
}

/// Record an ordinary write (create/update/patch, not apply) by `manager` in managedFields: the fields that changed
/// between `old` (None on create) and `new` become owned by `manager` with operation "Update" (and are removed
/// from other managers' sets, as upstream does), returning `new` with managedFields set.
///
/// Upstream `merge.Updater.Update` (an `update` with force) behind `managedFieldsUpdater.Update`. As
/// upstream (`decodeLiveOrNew`), the managedFields of `new` are used when it carries a non-empty list (a
/// client may rewrite them), `[{}]` resets them, and otherwise those of `old` are kept.
pub fn record_update(old: Option<&Value>, new: &Value, manager: &str, meta: &dyn PatchMeta, now: &str) -> Value {
    let mut out = new.clone();
    if !out.is_object() {
        return out;
    }
    let mut entries = match new.pointer("/metadata/managedFields") {
        Some(Value::Array(list)) if list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty) => Vec::new(),
        Some(Value::Array(list)) if !list.is_empty() => entries_of(new),
        _ => old.map(entries_of).unwrap_or_default(),
    };

    let before_obj = match old {
        Some(o) => without_managed_fields(o),
        None => Value::Object(Map::new()),
    };
    let after_obj = without_managed_fields(new);
    // Live objects are never rejected: a list that does not fit its strategy is owned as a whole.
    let (Ok(before), Ok(after)) = (collect(&before_obj, meta, false), collect(&after_obj, meta, false)) else {
        return out;
    };
    let diff = diff(&before, &after);
    let changed: FieldSet = members(&after).intersection(&diff.changed).cloned().collect();

    let mine = entries.iter().position(|e| e.is(manager, UPDATE));
    for (i, e) in entries.iter_mut().enumerate() {
        e.set.retain(|p| !diff.removed.contains(p) && (Some(i) == mine || !changed.contains(p)));
    }
    if !changed.is_empty() {
        let api_version = new.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        match mine {
            Some(i) => {
                let e = &mut entries[i];
                e.set.extend(changed);
                e.time = Some(now.to_string());
                e.api_version = api_version;
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: UPDATE.to_string(),
                subresource: String::new(),
                api_version,
                time: Some(now.to_string()),
                set: changed,
            }),
        }
    }
    set_managed_fields(&mut out, entries);
    out
}

/// Check the applied configuration against upstream's requirements and return it ready to merge:
/// `status` and the server-set metadata dropped.
fn check_applied(live: Option<&Value>, applied: &Value, manager: &str) -> Result<Value, SsaError> {
    fn non_empty(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    let invalid = |msg: String| Err(SsaError::Invalid(msg));
    if manager.is_empty() {
        return invalid("fieldManager is required for apply requests".to_string());
    }
    let Some(obj) = applied.as_object() else {
        return invalid("the applied configuration must be a JSON object".to_string());
    };
    if non_empty(obj.get("apiVersion")).is_none() {
        return invalid("the applied configuration must set apiVersion".to_string());
    }
    let Some(kind) = non_empty(obj.get("kind")) else {
        return invalid("the applied configuration must set kind".to_string());
    };
    let Some(metadata) = obj.get("metadata").and_then(Value::as_object) else {
        return invalid("the applied configuration must set metadata.name".to_string());
    };
    let Some(name) = non_empty(metadata.get("name")) else {
        return invalid("the applied configuration must set metadata.name".to_string());
    };
    // Upstream `FieldManager.Apply`: "managed fields must be nil".
    if metadata.get("managedFields").is_some_and(|m| !m.is_null()) {
        return invalid("metadata.managedFields must not be set in an applied configuration".to_string());
    }
    if let Some(live) = live {
        if !live.is_object() {
            return invalid("the existing object is not a JSON object".to_string());
        }
        let live_kind = live.get("kind").and_then(Value::as_str).unwrap_or_default();
        if !live_kind.is_empty() && live_kind != kind {
            return invalid(format!("kind {kind:?} does not match the existing object's kind {live_kind:?}"));
        }
        let live_name = crate::meta::name(live);
        if live_name != name {
            return invalid(format!("metadata.name {name:?} does not match the existing object's name {live_name:?}"));
        }
        let (ns, live_ns) = (crate::meta::namespace(applied), crate::meta::namespace(live));
        if !ns.is_empty() && ns != live_ns {
            return invalid(format!(
                "metadata.namespace {ns:?} does not match the existing object's namespace {live_ns:?}"
            ));
        }
    }

    let mut config = applied.clone();
    let root = config.as_object_mut().expect("checked above");
    root.remove("status");
    if let Some(Value::Object(m)) = root.get_mut("metadata") {
        m.retain(|k, _| !FROM_LIVE.contains(&k.as_str()));
    }
    Ok(config)
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(Value::Object(m)) = o.get_mut("metadata") {
        m.remove("managedFields");
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Field sets
// ---------------------------------------------------------------------------------------------

/// Path elements as written in fieldsV1 (`f:name`, `k:{"name":"c"}`, `v:"x"`).
type Path = Vec<String>;
/// Upstream `fieldpath.Set`; the ordering puts a path's descendants right after it.
type FieldSet = BTreeSet<Path>;

/// A node of an object seen through its schema (upstream's typed walk).
#[derive(Debug, Clone, Copy)]
struct Node<'a> {
    /// In the object's field set (a leaf, or a list element).
    member: bool,
    /// Compared as a whole: a scalar, null, an empty map or list, an atomic list.
    leaf: bool,
    value: &'a Value,
}

type Nodes<'a> = BTreeMap<Path, Node<'a>>;

/// How a list is walked, merged and owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Atomic,
    Set,
    Keyed(&'static str),
}

fn members(nodes: &Nodes) -> FieldSet {
    nodes.iter().filter(|(_, n)| n.member).map(|(p, _)| p.clone()).collect()
}

/// Every node of `obj` but apiVersion, kind and the server-set metadata (upstream `ToFieldSet` and the
/// walk of `Compare`, both after `stripmeta`). `strict` (the applied configuration) rejects lists that do
/// not fit their strategy; otherwise (objects already stored) such a list is owned as a whole.
fn collect<'a>(obj: &'a Value, meta: &dyn PatchMeta, strict: bool) -> Result<Nodes<'a>, SsaError> {
    let mut c = Collector { meta, strict, nodes: Nodes::new() };
    if let Some(root) = obj.as_object() {
        for (k, v) in root {
            match (k.as_str(), v) {
                ("apiVersion" | "kind", _) => {}
                // `metadata` itself is ignored upstream; its fields are not.
                ("metadata", Value::Object(m)) => {
                    let path = vec!["f:metadata".to_string()];
                    c.nodes.insert(path.clone(), Node { member: false, leaf: false, value: v });
                    for (mk, mv) in m {
                        if !SERVER_SET.contains(&mk.as_str()) {
                            c.field(child(&path, format!("f:{mk}")), &["metadata", mk.as_str()], mv)?;
                        }
                    }
                }
                _ => c.field(vec![format!("f:{k}")], &[k.as_str()], v)?,
            }
        }
    }
    Ok(c.nodes)
}

struct Collector<'a, 'm> {
    meta: &'m dyn PatchMeta,
    strict: bool,
    nodes: Nodes<'a>,
}

impl<'a> Collector<'a, '_> {
    /// A value at `path`; `names` is the path of field names [`PatchMeta`] expects.
    fn field(&mut self, path: Path, names: &[&'a str], v: &'a Value) -> Result<(), SsaError> {
        match v {
            Value::Object(m) if !m.is_empty() => {
                self.nodes.insert(path.clone(), Node { member: false, leaf: false, value: v });
                self.map_fields(&path, names, m)
            }
            Value::Array(items) if !items.is_empty() => {
                let kind = list_kind(items, self.meta.list_strategy(names), self.strict.then_some(&path))?;
                if kind == ListKind::Atomic {
                    self.nodes.insert(path, Node { member: true, leaf: true, value: v });
                    return Ok(());
                }
                self.nodes.insert(path.clone(), Node { member: false, leaf: false, value: v });
                for e in items {
                    match kind {
                        ListKind::Keyed(key) => {
                            let p = child(&path, key_element(key, &e[key]));
                            self.nodes.insert(p.clone(), Node { member: true, leaf: false, value: e });
                            self.map_fields(&p, names, e.as_object().expect("checked by list_kind"))?;
                        }
                        _ => {
                            self.nodes
                                .insert(child(&path, value_element(e)), Node { member: true, leaf: true, value: e });
                        }
                    }
                }
                Ok(())
            }
            // Scalars, null, `{}` and `[]` are leaves (upstream makes empty maps and nulls members).
            _ => {
                self.nodes.insert(path, Node { member: true, leaf: true, value: v });
                Ok(())
            }
        }
    }

    fn map_fields(&mut self, path: &Path, names: &[&'a str], m: &'a Map<String, Value>) -> Result<(), SsaError> {
        for (k, v) in m {
            let mut n = names.to_vec();
            n.push(k);
            self.field(child(path, format!("f:{k}")), &n, v)?;
        }
        Ok(())
    }
}

fn child(path: &[String], pe: String) -> Path {
    let mut p = path.to_vec();
    p.push(pe);
    p
}

fn key_element(key: &str, value: &Value) -> String {
    let mut m = Map::new();
    m.insert(key.to_string(), value.clone());
    format!("k:{}", Value::Object(m))
}

fn value_element(v: &Value) -> String {
    format!("v:{v}")
}

/// How a non-empty list with this strategy is handled. With `strict_at`, a list that does not fit its
/// strategy is an error naming that path (upstream rejects such an applied configuration); otherwise it
/// is atomic. Repeated merge keys make the list atomic either way (see the module doc).
fn list_kind(items: &[Value], strategy: ListStrategy, strict_at: Option<&Path>) -> Result<ListKind, SsaError> {
    let bad = |i: usize, what: String| match strict_at {
        Some(at) => Err(SsaError::Invalid(format!("{}: element {i}: {what}", render(at)))),
        None => Ok(ListKind::Atomic),
    };
    match strategy {
        ListStrategy::Replace => Ok(ListKind::Atomic),
        ListStrategy::MergePrimitives => {
            for (i, e) in items.iter().enumerate() {
                if e.is_object() || e.is_array() {
                    return bad(i, "expected a primitive value: the list is a set of values".to_string());
                }
            }
            Ok(ListKind::Set)
        }
        ListStrategy::Merge { key } => {
            let mut seen: Vec<&Value> = Vec::with_capacity(items.len());
            for (i, e) in items.iter().enumerate() {
                let Some(m) = e.as_object() else {
                    return bad(i, format!("expected an object: the list is merged by the key {key:?}"));
                };
                match m.get(key) {
                    Some(k) if !(k.is_object() || k.is_array() || k.is_null()) => {
                        if seen.iter().any(|s| same(s, k)) {
                            return Ok(ListKind::Atomic);
                        }
                        seen.push(k);
                    }
                    _ => {
                        return bad(
                            i,
                            format!("associative list with keys has an element that omits key field {key:?}"),
                        )
                    }
                }
            }
            Ok(ListKind::Keyed(key))
        }
    }
}

/// Upstream `typed.Comparison`, reduced to what `update` uses.
struct Diff {
    /// Added or modified (`Added ∪ Modified`).
    changed: FieldSet,
    removed: FieldSet,
}

fn diff(before: &Nodes, after: &Nodes) -> Diff {
    let mut changed = FieldSet::new();
    for (p, a) in after {
        match before.get(p) {
            None => {
                changed.insert(p.clone());
            }
            Some(b) if modified(b, a) => {
                changed.insert(p.clone());
            }
            Some(_) => {}
        }
    }
    let removed = before.keys().filter(|p| !after.contains_key(*p)).cloned().collect();
    Diff { changed, removed }
}

/// A node present on both sides changed. Granular maps and lists change through their children only; an
/// empty map or list becoming a filled one of the same type is not a change of the node.
fn modified(b: &Node, a: &Node) -> bool {
    match (b.leaf, a.leaf) {
        (true, true) => !same(b.value, a.value),
        (false, false) => false,
        (true, false) => !is_empty_like(b.value, a.value),
        (false, true) => !is_empty_like(a.value, b.value),
    }
}

fn is_empty_like(empty: &Value, filled: &Value) -> bool {
    match (empty, filled) {
        (Value::Object(e), Value::Object(_)) => e.is_empty(),
        (Value::Array(e), Value::Array(_)) => e.is_empty(),
        _ => false,
    }
}

/// JSON equality with numbers compared by value (Go decodes both sides to the same types).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn has_descendant(set: &FieldSet, path: &[String]) -> bool {
    set.range::<[String], _>((Bound::Excluded(path), Bound::Unbounded)).next().is_some_and(|q| q.starts_with(path))
}

/// `…/k:{"name":"c"}/f:name`: the key of an element stays as long as the element does (upstream's
/// `ExtractItems` keeps keys); the element's own path decides whether it goes.
fn is_key_of_element(path: &[String]) -> bool {
    let [.., parent, last] = path else {
        return false;
    };
    match (parent.strip_prefix("k:"), last.strip_prefix("f:")) {
        (Some(key), Some(field)) => {
            serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(field))
        }
        _ => false,
    }
}

/// Upstream `Path.String()` (fieldpath/path.go, element.go): `.spec.containers[name="c"].image`,
/// `.metadata.finalizers[="x"]`.
fn render(path: &[String]) -> String {
    let mut s = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            match serde_json::from_str::<Map<String, Value>>(k) {
                Ok(keys) => {
                    let parts: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={}", render_value(v))).collect();
                    s.push_str(&format!("[{}]", parts.join(",")));
                }
                Err(_) => s.push_str(&format!("[{k}]")),
            }
        } else if let Some(v) = pe.strip_prefix("v:") {
            match serde_json::from_str::<Value>(v) {
                Ok(v) => s.push_str(&format!("[={}]", render_value(&v))),
                Err(_) => s.push_str(&format!("[={v}]")),
            }
        } else if let Some(i) = pe.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        } else {
            s.push_str(pe);
        }
    }
    s
}

/// Upstream `value.ToString`: strings quoted, everything else as JSON.
fn render_value(v: &Value) -> String {
    v.to_string()
}

// ---------------------------------------------------------------------------------------------
// The merge and removals
// ---------------------------------------------------------------------------------------------

/// Upstream `TypedValue.Merge` with the applied configuration on the right: maps merge field by field,
/// lists merged by key merge element by element, sets take the union, everything else is replaced.
fn merge_value<'a>(live: &mut Value, applied: &'a Value, names: &[&'a str], meta: &dyn PatchMeta) {
    match (live, applied) {
        (Value::Object(lm), Value::Object(am)) => {
            for (k, av) in am {
                let mut n = names.to_vec();
                n.push(k);
                match lm.get_mut(k) {
                    Some(lv) => merge_value(lv, av, &n, meta),
                    None => {
                        lm.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(ll), Value::Array(al)) => {
            let strategy = meta.list_strategy(names);
            let kinds = |l: &[Value]| if l.is_empty() { None } else { list_kind(l, strategy, None).ok() };
            match (strategy, kinds(ll.as_slice()), kinds(al.as_slice())) {
                (ListStrategy::Replace, _, _) => *ll = al.clone(),
                // `[]` applied to a merged list changes nothing (and owns the list field).
                (_, _, None) => {}
                (_, None, _) => *ll = al.clone(),
                (_, Some(ListKind::Set), Some(ListKind::Set)) => {
                    for av in al {
                        if !ll.iter().any(|lv| same(lv, av)) {
                            ll.push(av.clone());
                        }
                    }
                }
                (_, Some(ListKind::Keyed(key)), Some(ListKind::Keyed(_))) => {
                    for av in al {
                        match ll.iter_mut().find(|lv| same(&lv[key], &av[key])) {
                            Some(lv) => merge_value(lv, av, names, meta),
                            None => ll.push(av.clone()),
                        }
                    }
                }
                // One side does not fit the strategy: the list is atomic.
                _ => *ll = al.clone(),
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// Where a fieldsV1 path element points inside a value: a map field or a list position.
enum Loc<'p> {
    Field(&'p str),
    Index(usize),
}

fn locate<'p>(v: &Value, pe: &'p str) -> Option<Loc<'p>> {
    if let Some(f) = pe.strip_prefix("f:") {
        return Some(Loc::Field(f));
    }
    let list = v.as_array()?;
    if let Some(k) = pe.strip_prefix("k:") {
        let keys: Map<String, Value> = serde_json::from_str(k).ok()?;
        return list.iter().position(|e| matches_keys(e, &keys)).map(Loc::Index);
    }
    if let Some(x) = pe.strip_prefix("v:") {
        let x: Value = serde_json::from_str(x).ok()?;
        return list.iter().position(|e| same(e, &x)).map(Loc::Index);
    }
    pe.strip_prefix("i:")?.parse::<usize>().ok().filter(|i| *i < list.len()).map(Loc::Index)
}

/// A path element of a fieldsV1 path, resolved against a value.
fn step<'v>(v: &'v Value, pe: &str) -> Option<&'v Value> {
    match locate(v, pe)? {
        Loc::Field(f) => v.as_object()?.get(f),
        Loc::Index(i) => v.as_array()?.get(i),
    }
}

fn step_mut<'v>(v: &'v mut Value, pe: &str) -> Option<&'v mut Value> {
    match locate(v, pe)? {
        Loc::Field(f) => v.as_object_mut()?.get_mut(f),
        Loc::Index(i) => v.as_array_mut()?.get_mut(i),
    }
}

fn matches_keys(e: &Value, keys: &Map<String, Value>) -> bool {
    keys.iter().all(|(k, v)| e.get(k).is_some_and(|ev| same(ev, v)))
}

fn get_at<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, pe| step(v, pe))
}

/// Remove what `path` names; whether something was there.
fn remove_at(v: &mut Value, path: &[String]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let Some(container) = parent.iter().try_fold(v, |v, pe| step_mut(v, pe)) else {
        return false;
    };
    if let Some(f) = last.strip_prefix("f:") {
        return container.as_object_mut().is_some_and(|m| m.remove(f).is_some());
    }
    let Some(list) = container.as_array_mut() else {
        return false;
    };
    let before = list.len();
    if let Some(k) = last.strip_prefix("k:") {
        let Ok(keys) = serde_json::from_str::<Map<String, Value>>(k) else {
            return false;
        };
        list.retain(|e| !matches_keys(e, &keys));
    } else if let Some(x) = last.strip_prefix("v:") {
        let Ok(x) = serde_json::from_str::<Value>(x) else {
            return false;
        };
        list.retain(|e| !same(e, &x));
    } else {
        return false;
    }
    list.len() != before
}

/// Remove `path`, then the maps and lists above it that this left empty and nobody owns (never
/// `metadata`, never a list element).
fn remove_tidy(obj: &mut Value, path: &[String], owned: &FieldSet) {
    if !remove_at(obj, path) {
        return;
    }
    for depth in (1..path.len()).rev() {
        let ancestor = &path[..depth];
        if !ancestor[depth - 1].starts_with("f:") || ancestor == ["f:metadata"] || owned.contains(ancestor) {
            return;
        }
        match get_at(obj, ancestor) {
            Some(Value::Object(m)) if m.is_empty() => {}
            Some(Value::Array(l)) if l.is_empty() => {}
            _ => return,
        }
        remove_at(obj, ancestor);
    }
}

// ---------------------------------------------------------------------------------------------
// managedFields
// ---------------------------------------------------------------------------------------------

/// One `metav1.ManagedFieldsEntry`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: Option<String>,
    set: FieldSet,
}

impl Entry {
    /// Upstream `BuildManagerIdentifier` keys entries by manager, operation and subresource (and, for
    /// Update, apiVersion; see the module doc).
    fn is(&self, manager: &str, operation: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.is_empty()
    }
}

/// The entries of an object's `metadata.managedFields`; entries that cannot be read own nothing and are
/// dropped on write, as are entries of another `fieldsType`.
fn entries_of(obj: &Value) -> Vec<Entry> {
    let Some(Value::Array(list)) = obj.pointer("/metadata/managedFields") else {
        return Vec::new();
    };
    let s = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    list.iter()
        .filter(|e| e.get("fieldsType").and_then(Value::as_str).is_none_or(|t| t == "FieldsV1"))
        .map(|e| {
            let mut set = FieldSet::new();
            if let Some(Value::Object(f)) = e.get("fieldsV1") {
                read_fields_v1(f, &mut Vec::new(), &mut set);
            }
            Entry {
                manager: s(e, "manager"),
                operation: s(e, "operation"),
                subresource: s(e, "subresource"),
                api_version: s(e, "apiVersion"),
                time: e.get("time").and_then(Value::as_str).map(str::to_string),
                set,
            }
        })
        .collect()
}

/// Upstream `Set.FromJSON` (fieldpath/serialize.go): `{}` is a member with no children, `"."` marks a
/// member that has children.
fn read_fields_v1(m: &Map<String, Value>, prefix: &mut Path, out: &mut FieldSet) {
    for (k, v) in m {
        if k == "." {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            continue;
        }
        prefix.push(k.clone());
        match v {
            Value::Object(c) if !c.is_empty() => read_fields_v1(c, prefix, out),
            _ => {
                out.insert(prefix.clone());
            }
        }
        prefix.pop();
    }
}

/// Upstream `Set.ToJSON`: the nested form, with `"."` on members that have children.
fn write_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for pe in path {
            cur = cur
                .entry(pe.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("only maps are inserted");
        }
    }
    for path in set {
        let mut cur = &mut root;
        for pe in path {
            cur = cur.get_mut(pe).and_then(Value::as_object_mut).expect("inserted above");
        }
        if !cur.is_empty() {
            cur.insert(".".to_string(), Value::Object(Map::new()));
        }
    }
    Value::Object(root)
}

/// Write the entries, without the empty ones, in upstream's order (`sortEncodedManagedFields`: by
/// operation, so Apply first, then time, manager, apiVersion); no entries, no `managedFields`.
fn set_managed_fields(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    let seconds = |e: &Entry| e.time.as_deref().and_then(crate::meta::parse_time).map_or(0, |t| t.as_second());
    entries.sort_by(|a, b| {
        (&a.operation, seconds(a), &a.manager, &a.api_version, &a.subresource).cmp(&(
            &b.operation,
            seconds(b),
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    let metadata = crate::meta::metadata_mut(obj);
    if entries.is_empty() {
        metadata.remove("managedFields");
        return;
    }
    let list = entries
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".to_string(), Value::String(e.manager));
            m.insert("operation".to_string(), Value::String(e.operation));
            m.insert("apiVersion".to_string(), Value::String(e.api_version));
            if let Some(t) = e.time {
                m.insert("time".to_string(), Value::String(t));
            }
            m.insert("fieldsType".to_string(), Value::String("FieldsV1".to_string()));
            m.insert("fieldsV1".to_string(), write_fields_v1(&e.set));
            if !e.subresource.is_empty() {
                m.insert("subresource".to_string(), Value::String(e.subresource));
            }
            Value::Object(m)
        })
        .collect();
    metadata.insert("managedFields".to_string(), Value::Array(list));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smp::meta_for;
    use serde_json::json;

    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-01-01T00:01:00Z";
    const T2: &str = "2024-01-01T00:02:00Z";
    const T3: &str = "2024-01-01T00:03:00Z";

    fn pod_meta() -> &'static dyn PatchMeta {
        meta_for("", "Pod")
    }

    /// A Pod configuration: labels, and containers as (name, image).
    fn pod(labels: Value, containers: &[(&str, &str)]) -> Value {
        let containers: Vec<Value> = containers.iter().map(|(n, i)| json!({"name": n, "image": i})).collect();
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": labels},
            "spec": {"containers": containers},
        })
    }

    fn entry(manager: &str, operation: &str, time: &str, fields: Value) -> Value {
        json!({
            "manager": manager, "operation": operation, "apiVersion": "v1", "time": time,
            "fieldsType": "FieldsV1", "fieldsV1": fields,
        })
    }

    /// A Pod configuration with only labels.
    fn labels_only(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels}})
    }

    fn managed(obj: &Value) -> &Value {
        &obj["metadata"]["managedFields"]
    }

    fn without_mf(obj: &Value) -> Value {
        without_managed_fields(obj)
    }

    /// The fieldsV1 of the entry of (manager, operation).
    fn fields_of<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
        managed(obj)
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
            .map(|e| &e["fieldsV1"])
    }

    fn apply_ok(live: Option<&Value>, applied: &Value, manager: &str, now: &str) -> Value {
        apply(live, applied, manager, false, pod_meta(), now).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn create_via_apply() {
        let applied = pod(json!({"app": "web"}), &[("c", "nginx:1")]);
        let got = apply_ok(None, &applied, "A", T0);
        let mut want = applied.clone();
        want["metadata"]["managedFields"] = json!([entry(
            "A",
            "Apply",
            T0,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}},
            })
        )]);
        assert_eq!(got, want);
        // The serialised key is the exact upstream form.
        let text = serde_json::to_string(&got["metadata"]["managedFields"][0]["fieldsV1"]).unwrap();
        assert_eq!(
            text,
            r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}}}}"#
        );
    }

    #[test]
    fn reapply_changes_the_value_and_keeps_the_entry() {
        let live = apply_ok(None, &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T0);
        let got = apply_ok(Some(&live), &pod(json!({"app": "web"}), &[("c", "nginx:2")]), "A", T1);
        let mut want = pod(json!({"app": "web"}), &[("c", "nginx:2")]);
        want["metadata"]["managedFields"] =
            json!([entry("A", "Apply", T1, live["metadata"]["managedFields"][0]["fieldsV1"].clone())]);
        assert_eq!(got, want);
    }

    #[test]
    fn no_op_apply_keeps_the_time() {
        let applied = pod(json!({"app": "web"}), &[("c", "nginx:1")]);
        let live = apply_ok(None, &applied, "A", T0);
        let got = apply_ok(Some(&live), &applied, "A", T1);
        assert_eq!(got, live);
    }

    #[test]
    fn server_fields_and_status_come_from_the_live_object() {
        let mut live = apply_ok(None, &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T0);
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["creationTimestamp"] = json!(T0);
        live["status"] = json!({"phase": "Running"});
        let mut applied = pod(json!({"app": "web"}), &[("c", "nginx:1")]);
        applied["metadata"]["uid"] = json!("other");
        applied["metadata"]["resourceVersion"] = json!("1");
        applied["status"] = json!({"phase": "Failed"});
        let got = apply_ok(Some(&live), &applied, "A", T1);
        assert_eq!(got, live, "nothing changes and nothing new is owned");
    }

    #[test]
    fn dropping_an_applied_label_removes_it_but_not_anothers() {
        let live = apply_ok(None, &pod(json!({"app": "web", "tier": "front"}), &[("c", "nginx:1")]), "A", T0);

        // The applier drops its own label: it goes.
        let got = apply_ok(Some(&live), &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T1);
        assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));

        // Another manager added a label with an ordinary write: the applier dropping `tier` leaves it.
        let mut edited = live.clone();
        edited["metadata"]["labels"]["edited"] = json!("yes");
        let edited = record_update(Some(&live), &edited, "kubectl-edit", pod_meta(), T1);
        let got = apply_ok(Some(&edited), &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T2);
        let mut want = pod(json!({"app": "web", "edited": "yes"}), &[("c", "nginx:1")]);
        want["metadata"]["managedFields"] = json!([
            entry(
                "A",
                "Apply",
                T2,
                json!({
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}},
                })
            ),
            entry("kubectl-edit", "Update", T1, json!({"f:metadata": {"f:labels": {"f:edited": {}}}})),
        ]);
        assert_eq!(got, want);

        // Dropping every label removes the then empty map.
        let mut none = pod(json!({}), &[("c", "nginx:1")]);
        none["metadata"].as_object_mut().unwrap().remove("labels");
        let got = apply_ok(Some(&live), &none, "A", T1);
        assert_eq!(got["metadata"].get("labels"), None);
        assert_eq!(got["metadata"]["name"], "p");
    }

    #[test]
    fn a_field_also_owned_by_another_manager_stays_when_dropped() {
        // B applies the same label value: shared. A drops it: it stays, owned by B only.
        let live = apply_ok(None, &pod(json!({"app": "web", "tier": "front"}), &[("c", "nginx:1")]), "A", T0);
        let b = labels_only(json!({"tier": "front"}));
        let live = apply_ok(Some(&live), &b, "B", T1);
        let got = apply_ok(Some(&live), &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T2);
        assert_eq!(got["metadata"]["labels"], json!({"app": "web", "tier": "front"}));
        assert_eq!(fields_of(&got, "B", "Apply"), Some(&json!({"f:metadata": {"f:labels": {"f:tier": {}}}})));
        assert_eq!(fields_of(&got, "A", "Apply").unwrap()["f:metadata"], json!({"f:labels": {"f:app": {}}}));
    }

    #[test]
    fn conflict_and_force() {
        let live = apply_ok(None, &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T0);
        let b = pod(json!({"app": "web"}), &[("c", "nginx:2")]);
        let err = apply(Some(&live), &b, "B", false, pod_meta(), T1).unwrap_err();
        assert_eq!(err, SsaError::Conflicts(vec![("A".to_string(), ".spec.containers[name=\"c\"].image".to_string())]));
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"A\": .spec.containers[name=\"c\"].image"
        );

        let got = apply(Some(&live), &b, "B", true, pod_meta(), T1).unwrap();
        let mut want = b.clone();
        want["metadata"]["managedFields"] = json!([
            entry(
                "A",
                "Apply",
                T0,
                json!({
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}}}},
                })
            ),
            entry(
                "B",
                "Apply",
                T1,
                json!({
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}},
                })
            ),
        ]);
        assert_eq!(got, want);

        // A, no longer owning the image, dropping its container leaves it: B owns the element's fields.
        let a = labels_only(json!({"app": "web"}));
        let after = apply_ok(Some(&got), &a, "A", T2);
        assert_eq!(after["spec"], b["spec"]);
    }

    #[test]
    fn conflicts_with_update_managers_and_several_paths() {
        let live = apply_ok(None, &pod(json!({"app": "web", "tier": "front"}), &[("c", "nginx:1")]), "A", T0);
        let mut edited = live.clone();
        edited["metadata"]["labels"]["tier"] = json!("back");
        edited["metadata"]["finalizers"] = json!(["x"]);
        let edited = record_update(Some(&live), &edited, "kubectl-edit", pod_meta(), T1);
        let mut b = pod(json!({"app": "api", "tier": "middle"}), &[("c", "nginx:2")]);
        b["metadata"]["finalizers"] = json!(["x"]);
        let err = apply(Some(&edited), &b, "B", false, pod_meta(), T2).unwrap_err();
        assert_eq!(
            err,
            SsaError::Conflicts(vec![
                ("A".to_string(), ".metadata.labels.app".to_string()),
                ("A".to_string(), ".spec.containers[name=\"c\"].image".to_string()),
                ("kubectl-edit".to_string(), ".metadata.labels.tier".to_string()),
            ])
        );
        assert_eq!(
            err.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"A\":\n- .metadata.labels.app\n- .spec.containers[name=\"c\"].image\nconflicts with \"kubectl-edit\":\n- .metadata.labels.tier"
        );
        // The finalizer has the same value: shared, no conflict.
        let mut b2 = b.clone();
        b2["metadata"]["labels"] = json!({"app": "web", "tier": "back"});
        b2["spec"]["containers"][0]["image"] = json!("nginx:1");
        let got = apply_ok(Some(&edited), &b2, "B", T2);
        assert_eq!(fields_of(&got, "kubectl-edit", "Update"), fields_of(&edited, "kubectl-edit", "Update"));
        assert_eq!(
            fields_of(&got, "B", "Apply").unwrap()["f:metadata"],
            json!({"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:app": {}, "f:tier": {}}})
        );
    }

    #[test]
    fn same_value_is_shared_ownership() {
        let applied = pod(json!({"app": "web"}), &[("c", "nginx:1")]);
        let live = apply_ok(None, &applied, "A", T0);
        let got = apply_ok(Some(&live), &applied, "B", T1);
        let fields = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}},
        });
        let mut want = applied.clone();
        want["metadata"]["managedFields"] =
            json!([entry("A", "Apply", T0, fields.clone()), entry("B", "Apply", T1, fields)]);
        assert_eq!(got, want);

        // Either may now change it only by conflicting with the other.
        let err = apply(Some(&got), &pod(json!({"app": "web"}), &[("c", "nginx:2")]), "A", false, pod_meta(), T2)
            .unwrap_err();
        assert_eq!(err, SsaError::Conflicts(vec![("B".to_string(), ".spec.containers[name=\"c\"].image".to_string())]));
    }

    #[test]
    fn merge_key_list_elements_of_two_managers() {
        // A creates the pod with container c; B applies only container d.
        let live = apply_ok(None, &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T0);
        let mut b = pod(json!({}), &[("d", "busybox")]);
        b["metadata"].as_object_mut().unwrap().remove("labels");
        let got = apply_ok(Some(&live), &b, "B", T1);
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "c", "image": "nginx:1"}, {"name": "d", "image": "busybox"}])
        );
        assert_eq!(
            fields_of(&got, "B", "Apply"),
            Some(&json!({"f:spec": {"f:containers": {"k:{\"name\":\"d\"}": {".": {}, "f:image": {}, "f:name": {}}}}}))
        );

        // The server defaults a field of d (owned by nobody); B drops d: d goes with it, c stays.
        let mut defaulted = got.clone();
        defaulted["spec"]["containers"][1]["imagePullPolicy"] = json!("Always");
        let mut b2 = b.clone();
        b2["spec"]["containers"] = json!([]);
        let got = apply_ok(Some(&defaulted), &b2, "B", T2);
        assert_eq!(got["spec"]["containers"], json!([{"name": "c", "image": "nginx:1"}]));
        // `containers: []` owns the list field only.
        assert_eq!(fields_of(&got, "B", "Apply"), Some(&json!({"f:spec": {"f:containers": {}}})));

        // B dropping the list field too leaves A's container alone.
        let mut b3 = b.clone();
        b3.as_object_mut().unwrap().remove("spec");
        let got = apply_ok(Some(&got), &b3, "B", T3);
        assert_eq!(got["spec"]["containers"], json!([{"name": "c", "image": "nginx:1"}]));
        assert_eq!(fields_of(&got, "B", "Apply"), None);
        assert_eq!(managed(&got).as_array().unwrap().len(), 1);
    }

    #[test]
    fn dropping_an_element_keeps_fields_others_own_and_its_key() {
        let live = apply_ok(None, &pod(json!({}), &[("c", "nginx:1"), ("d", "busybox")]), "A", T0);
        // kubectl-edit sets d's command (an atomic list, owned at the field).
        let mut edited = live.clone();
        edited["spec"]["containers"][1]["command"] = json!(["sh", "-c", "sleep 1"]);
        let edited = record_update(Some(&live), &edited, "kubectl-edit", pod_meta(), T1);
        assert_eq!(
            fields_of(&edited, "kubectl-edit", "Update"),
            Some(&json!({"f:spec": {"f:containers": {"k:{\"name\":\"d\"}": {"f:command": {}}}}}))
        );
        let got = apply_ok(Some(&edited), &pod(json!({}), &[("c", "nginx:1")]), "A", T2);
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "c", "image": "nginx:1"}, {"name": "d", "command": ["sh", "-c", "sleep 1"]}])
        );
    }

    #[test]
    fn finalizers_are_a_set() {
        let mut a = pod(json!({}), &[]);
        a["metadata"] = json!({"name": "p", "finalizers": ["a.example/x"]});
        a.as_object_mut().unwrap().remove("spec");
        let live = apply_ok(None, &a, "A", T0);
        assert_eq!(
            fields_of(&live, "A", "Apply"),
            Some(&json!({"f:metadata": {"f:finalizers": {"v:\"a.example/x\"": {}}}}))
        );

        // B adds its own: the union.
        let mut b = a.clone();
        b["metadata"]["finalizers"] = json!(["b.example/y"]);
        let live = apply_ok(Some(&live), &b, "B", T1);
        assert_eq!(live["metadata"]["finalizers"], json!(["a.example/x", "b.example/y"]));

        // A drops its value (keeping another): only A's goes.
        let mut a2 = a.clone();
        a2["metadata"]["finalizers"] = json!(["a.example/z"]);
        let got = apply_ok(Some(&live), &a2, "A", T2);
        assert_eq!(got["metadata"]["finalizers"], json!(["b.example/y", "a.example/z"]));

        // A conflict on a set element reads like upstream. (A value only conflicts when it changes; a set
        // element cannot, so provoke one through a stale ownership of an absent element.)
        let mut stale = got.clone();
        stale["metadata"]["finalizers"] = json!(["b.example/y"]);
        let err = apply(Some(&stale), &a2, "B", false, pod_meta(), T3).unwrap_err();
        assert_eq!(
            err,
            SsaError::Conflicts(vec![("A".to_string(), ".metadata.finalizers[=\"a.example/z\"]".to_string())])
        );
    }

    #[test]
    fn atomic_lists_are_owned_whole() {
        let mut a = pod(json!({}), &[("c", "nginx:1")]);
        a["spec"]["containers"][0]["args"] = json!(["-v", "2"]);
        a["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
        let live = apply_ok(None, &a, "A", T0);
        assert_eq!(
            fields_of(&live, "A", "Apply").unwrap()["f:spec"],
            json!({
                "f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}},
                "f:tolerations": {},
            })
        );
        let mut b = a.clone();
        b["spec"]["containers"][0]["args"] = json!(["-v", "3"]);
        let err = apply(Some(&live), &b, "B", false, pod_meta(), T1).unwrap_err();
        assert_eq!(err, SsaError::Conflicts(vec![("A".to_string(), ".spec.containers[name=\"c\"].args".to_string())]));
        // Re-applied by A, the list is replaced, not merged.
        let got = apply_ok(Some(&live), &b, "A", T1);
        assert_eq!(got["spec"]["containers"][0]["args"], json!(["-v", "3"]));
    }

    #[test]
    fn repeated_merge_keys_make_the_list_atomic() {
        let mut a = pod(json!({}), &[("dns", "coredns")]);
        a["spec"]["containers"][0]["ports"] = json!([
            {"containerPort": 53, "protocol": "UDP"},
            {"containerPort": 53, "protocol": "TCP"},
        ]);
        let live = apply_ok(None, &a, "A", T0);
        assert_eq!(live["spec"]["containers"][0]["ports"], a["spec"]["containers"][0]["ports"]);
        assert_eq!(
            fields_of(&live, "A", "Apply").unwrap()["f:spec"]["f:containers"]["k:{\"name\":\"dns\"}"]["f:ports"],
            json!({})
        );
        // Distinct keys: owned per element, numeric keys rendered unquoted.
        let mut b = a.clone();
        b["spec"]["containers"][0]["ports"] = json!([{"containerPort": 9153, "protocol": "TCP"}]);
        let err = apply(Some(&live), &b, "B", false, pod_meta(), T1).unwrap_err();
        assert_eq!(
            err,
            SsaError::Conflicts(vec![("A".to_string(), ".spec.containers[name=\"dns\"].ports".to_string())])
        );
        let live = apply_ok(None, &b, "A", T0);
        assert_eq!(
            fields_of(&live, "A", "Apply").unwrap()["f:spec"]["f:containers"]["k:{\"name\":\"dns\"}"]["f:ports"],
            json!({"k:{\"containerPort\":9153}": {".": {}, "f:containerPort": {}, "f:protocol": {}}})
        );
        let mut c = b.clone();
        c["spec"]["containers"][0]["ports"][0]["protocol"] = json!("UDP");
        let err = apply(Some(&live), &c, "B", false, pod_meta(), T1).unwrap_err();
        assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"A\": .spec.containers[name=\"dns\"].ports[containerPort=9153].protocol");
    }

    #[test]
    fn null_removes_the_field_and_owns_it() {
        let live = apply_ok(None, &pod(json!({"app": "web", "tier": "front"}), &[("c", "nginx:1")]), "A", T0);
        let mut edited = live.clone();
        edited["metadata"]["labels"]["edited"] = json!("yes");
        let edited = record_update(Some(&live), &edited, "kubectl-edit", pod_meta(), T1);
        let b = labels_only(json!({"edited": null}));
        let err = apply(Some(&edited), &b, "B", false, pod_meta(), T2).unwrap_err();
        assert_eq!(err, SsaError::Conflicts(vec![("kubectl-edit".to_string(), ".metadata.labels.edited".to_string())]));
        let got = apply(Some(&edited), &b, "B", true, pod_meta(), T2).unwrap();
        assert_eq!(got["metadata"]["labels"], json!({"app": "web", "tier": "front"}));
        assert_eq!(fields_of(&got, "B", "Apply"), Some(&json!({"f:metadata": {"f:labels": {"f:edited": {}}}})));
        assert_eq!(fields_of(&got, "kubectl-edit", "Update"), None);
        assert_eq!(got["spec"], live["spec"]);
    }

    #[test]
    fn record_update_on_create_and_change() {
        let mut created = pod(json!({"app": "web"}), &[("c", "nginx:1")]);
        created["metadata"]["uid"] = json!("u-1");
        created["metadata"]["creationTimestamp"] = json!(T0);
        created["status"] = json!({"phase": "Pending"});
        let got = record_update(None, &created, "kubectl-create", pod_meta(), T0);
        let mut want = created.clone();
        want["metadata"]["managedFields"] = json!([entry(
            "kubectl-create",
            "Update",
            T0,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}},
                "f:status": {"f:phase": {}},
            })
        )]);
        assert_eq!(got, want);

        // A change by another manager: it takes the changed field; the removed label leaves every set.
        let mut changed = got.clone();
        changed["spec"]["containers"][0]["image"] = json!("nginx:2");
        changed["metadata"]["labels"] = json!({"team": "x"});
        changed["metadata"]["resourceVersion"] = json!("2");
        let got2 = record_update(Some(&got), &changed, "kubectl-edit", pod_meta(), T1);
        let mut want = changed.clone();
        want["metadata"]["managedFields"] = json!([
            entry(
                "kubectl-create",
                "Update",
                T0,
                json!({
                    "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}}}},
                    "f:status": {"f:phase": {}},
                })
            ),
            entry(
                "kubectl-edit",
                "Update",
                T1,
                json!({
                    "f:metadata": {"f:labels": {"f:team": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {"f:image": {}}}},
                })
            ),
        ]);
        assert_eq!(got2, want);

        // A write that changes nothing leaves managedFields alone.
        assert_eq!(record_update(Some(&got2), &got2, "kubectl-edit", pod_meta(), T2), got2);
        // The same manager again: its set grows and its time moves.
        let mut more = got2.clone();
        more["metadata"]["labels"]["more"] = json!("1");
        let got3 = record_update(Some(&got2), &more, "kubectl-edit", pod_meta(), T2);
        assert_eq!(
            fields_of(&got3, "kubectl-edit", "Update").unwrap()["f:metadata"],
            json!({"f:labels": {"f:more": {}, "f:team": {}}})
        );
        assert_eq!(managed(&got3)[1]["time"], T2);
    }

    #[test]
    fn record_update_takes_fields_from_an_applier() {
        let live = apply_ok(None, &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T0);
        let mut changed = live.clone();
        changed["spec"]["containers"][0]["image"] = json!("nginx:2");
        let got = record_update(Some(&live), &changed, "kubectl-set", pod_meta(), T1);
        assert_eq!(
            fields_of(&got, "A", "Apply"),
            Some(&json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}}}},
            }))
        );
        // Apply entries sort before Update entries.
        assert_eq!(managed(&got)[0]["operation"], "Apply");
        assert_eq!(managed(&got)[1]["manager"], "kubectl-set");
        // A's next apply of its old image now conflicts with the updater.
        let err = apply(Some(&got), &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", false, pod_meta(), T2)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-set\": .spec.containers[name=\"c\"].image"
        );
    }

    #[test]
    fn record_update_managed_fields_from_the_request() {
        let live = apply_ok(None, &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T0);
        // `[{}]` resets them.
        let mut reset = live.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        assert_eq!(record_update(Some(&live), &reset, "x", pod_meta(), T1), without_mf(&live));
        // An empty list keeps the live ones.
        let mut empty = live.clone();
        empty["metadata"]["managedFields"] = json!([]);
        assert_eq!(record_update(Some(&live), &empty, "x", pod_meta(), T1), live);
        // A list replaces them.
        let mut given = live.clone();
        given["metadata"]["managedFields"] =
            json!([entry("someone", "Update", T0, json!({"f:metadata": {"f:labels": {"f:app": {}}}}))]);
        assert_eq!(record_update(Some(&live), &given, "x", pod_meta(), T1), given);
    }

    #[test]
    fn entries_with_a_subresource_are_kept_apart() {
        let live = apply_ok(None, &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T0);
        let mut with_status = live.clone();
        with_status["status"] = json!({"phase": "Running"});
        let mut status_entry = entry("kubelet", "Update", T1, json!({"f:status": {"f:phase": {}}}));
        status_entry["subresource"] = json!("status");
        with_status["metadata"]["managedFields"].as_array_mut().unwrap().push(status_entry.clone());
        let got = apply_ok(Some(&with_status), &pod(json!({"app": "api"}), &[("c", "nginx:1")]), "A", T2);
        assert_eq!(managed(&got)[1], status_entry);
        assert_eq!(got["status"], json!({"phase": "Running"}));
    }

    #[test]
    fn invalid_configurations() {
        let live = apply_ok(None, &pod(json!({"app": "web"}), &[("c", "nginx:1")]), "A", T0);
        let invalid = |live: Option<&Value>, applied: Value, manager: &str| match apply(
            live,
            &applied,
            manager,
            false,
            pod_meta(),
            T1,
        ) {
            Err(SsaError::Invalid(msg)) => msg,
            other => panic!("expected Invalid, got {other:?}"),
        };
        let ok = pod(json!({}), &[("c", "nginx:1")]);
        assert_eq!(invalid(None, json!([1]), "A"), "the applied configuration must be a JSON object");
        assert_eq!(
            invalid(None, json!({"kind": "Pod", "metadata": {"name": "p"}}), "A"),
            "the applied configuration must set apiVersion"
        );
        assert_eq!(
            invalid(None, json!({"apiVersion": "v1", "metadata": {"name": "p"}}), "A"),
            "the applied configuration must set kind"
        );
        assert_eq!(
            invalid(None, json!({"apiVersion": "v1", "kind": "Pod"}), "A"),
            "the applied configuration must set metadata.name"
        );
        assert_eq!(
            invalid(None, json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "p-"}}), "A"),
            "the applied configuration must set metadata.name"
        );
        assert_eq!(invalid(None, ok.clone(), ""), "fieldManager is required for apply requests");
        let mut mf = ok.clone();
        mf["metadata"]["managedFields"] = json!([]);
        assert_eq!(invalid(None, mf, "A"), "metadata.managedFields must not be set in an applied configuration");
        let mut other = ok.clone();
        other["metadata"]["name"] = json!("q");
        assert_eq!(
            invalid(Some(&live), other, "A"),
            "metadata.name \"q\" does not match the existing object's name \"p\""
        );
        let mut ns = ok.clone();
        ns["metadata"]["namespace"] = json!("kube-system");
        assert_eq!(
            invalid(Some(&live), ns, "A"),
            "metadata.namespace \"kube-system\" does not match the existing object's namespace \"default\""
        );
        let mut kind = ok.clone();
        kind["kind"] = json!("Job");
        assert_eq!(invalid(Some(&live), kind, "A"), "kind \"Job\" does not match the existing object's kind \"Pod\"");
        let mut no_key = ok.clone();
        no_key["spec"]["containers"] = json!([{"name": "c"}, {"image": "x"}]);
        assert_eq!(
            invalid(None, no_key, "A"),
            ".spec.containers: element 1: associative list with keys has an element that omits key field \"name\""
        );
        let mut not_obj = ok.clone();
        not_obj["spec"]["containers"] = json!(["c"]);
        assert_eq!(
            invalid(None, not_obj, "A"),
            ".spec.containers: element 0: expected an object: the list is merged by the key \"name\""
        );
        let mut bad_set = ok.clone();
        bad_set["metadata"]["finalizers"] = json!([{"a": 1}]);
        assert_eq!(
            invalid(None, bad_set, "A"),
            ".metadata.finalizers: element 0: expected a primitive value: the list is a set of values"
        );
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}, "f:finalizers": {"v:\"x\"": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:resources": {}}}},
        });
        let mut set = FieldSet::new();
        read_fields_v1(v.as_object().unwrap(), &mut Vec::new(), &mut set);
        let paths: Vec<String> = set.iter().map(|p| render(p)).collect();
        assert_eq!(
            paths,
            vec![
                ".metadata.finalizers[=\"x\"]",
                ".metadata.labels",
                ".metadata.labels.app",
                ".spec.containers[name=\"c\"]",
                ".spec.containers[name=\"c\"].name",
                ".spec.containers[name=\"c\"].resources",
            ]
        );
        assert_eq!(write_fields_v1(&set), v);
    }

    #[test]
    fn unknown_kinds_replace_lists() {
        let meta = meta_for("example.com", "Widget");
        let a = json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"items": [{"name": "a"}], "size": {"cpu": 1}},
        });
        let live = apply(None, &a, "A", false, meta, T0).unwrap();
        assert_eq!(fields_of(&live, "A", "Apply"), Some(&json!({"f:spec": {"f:items": {}, "f:size": {"f:cpu": {}}}})));
        let b = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"items": [{"name": "b"}]}});
        let got = apply(Some(&live), &b, "B", true, meta, T1).unwrap();
        assert_eq!(got["spec"], json!({"items": [{"name": "b"}], "size": {"cpu": 1}}));
        assert_eq!(fields_of(&got, "A", "Apply"), Some(&json!({"f:spec": {"f:size": {"f:cpu": {}}}})));
        // 1 and 1.0 are the same value.
        let c = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": {"cpu": 1.0}}});
        assert!(apply(Some(&got), &c, "C", false, meta, T2).is_ok());
    }
}
