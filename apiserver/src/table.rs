//! Table responses (`application/json;as=Table;v=v1;g=meta.k8s.io`) for `kubectl get`: assembling the
//! columns and cells from `k1s_api::tables` with row objects as kubectl needs them (kubectl-wire.md §3.3).
//! Also the other server-side transformation: metadata only (`as=PartialObjectMetadata[List]`).

use k1s_api::{tables, ResourceInfo};
use serde_json::{json, Value};

/// What each row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    /// `PartialObjectMetadata` (the default): namespace for `-A`, labels for `--show-labels`/`-L`.
    Metadata,
    /// The full object (`--sort-by`).
    Object,
}

/// The client accepts metadata only (`as=PartialObjectMetadata` or `as=PartialObjectMetadataList`,
/// `g=meta.k8s.io;v=v1`): client-go's metadata informers, kube's `metadata_watcher`, the garbage collector.
/// Either name is taken for either shape (a single object or a list is what the request decides), where
/// upstream answers the mismatched one 406; metadata-only clients send the right one anyway.
pub fn wants_metadata(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.iter().any(|p| *p == "as=PartialObjectMetadata" || *p == "as=PartialObjectMetadataList")
            && params.contains(&"g=meta.k8s.io")
            && params.contains(&"v=v1")
    })
}

/// An object as `PartialObjectMetadata` (its metadata, whole).
pub fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

/// A list as `PartialObjectMetadataList`; each item a `PartialObjectMetadata` with its kind, as upstream.
pub fn partial_list(list: &Value) -> Value {
    let items: Vec<Value> = list["items"].as_array().map(|a| a.iter().map(partial).collect()).unwrap_or_default();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list["metadata"].clone(), "items": items})
}

/// The client accepts a Table (`as=Table;g=meta.k8s.io`, v1 or v1beta1).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
    })
}

pub fn include(q: Option<&str>) -> Include {
    match q {
        Some("None") => Include::None,
        Some("Object") => Include::Object,
        _ => Include::Metadata,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// One row for an object in its external form.
fn row(info: &ResourceInfo, obj: &Value, include: Include, now: i64) -> Value {
    // Cells are computed on the storage form (events.k8s.io/v1 Events are printed like core Events, as upstream).
    let (cells, conditions) = if info.group == "events.k8s.io" {
        let mut core = obj.clone();
        k1s_api::events::to_core_v1(&mut core);
        tables::cells(info, &core, now)
    } else {
        tables::cells(info, obj, now)
    };
    let mut r = json!({"cells": cells});
    if let Some(c) = conditions {
        r["conditions"] = c;
    }
    match include {
        Include::None => {}
        Include::Metadata => {
            r["object"] = partial(obj);
        }
        Include::Object => r["object"] = obj.clone(),
    }
    r
}

/// A Table of `items` (external form). `metadata` is the list metadata (resourceVersion, continue).
/// `with_columns` is false for watch events after the first, as upstream sends them.
///
/// Events come oldest first by when they were last seen: `kubectl get events` (1.33) prints rows in the order the
/// server sends them and sorts only with `--sort-by`, and an Event's name says nothing about when it last happened.
pub fn table(info: &ResourceInfo, items: &[Value], include: Include, metadata: Value, with_columns: bool) -> Value {
    let now = now();
    let mut order: Vec<&Value> = items.iter().collect();
    if info.storage == "core/events" {
        // Stable: equal times keep the store's (name) order.
        order.sort_by_key(|o| k1s_api::events::last_seen(o));
    }
    let rows: Vec<Value> = order.into_iter().map(|o| row(info, o, include, now)).collect();
    let columns = if with_columns { tables::columns(info) } else { json!([]) };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}
