//! Discovery documents, legacy (`APIVersions`, `APIGroupList`, `APIResourceList`) and aggregated v2
//! (`APIGroupDiscoveryList`, chosen by the Accept header and answered with its exact Content-Type, or
//! kubectl parses it as legacy and finds nothing — kubectl-wire.md §1.1).

use k1s_api::resources::{self, ResourceInfo};
use serde_json::{json, Value};

use crate::streaming;

pub const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub const AGGREGATED_V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated flavour the client accepts, if any (v2 preferred).
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    let has = |v: &str| {
        accept.split(',').any(|part| {
            let params: Vec<&str> = part.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io") && params.contains(&v) && params.contains(&"as=APIGroupDiscoveryList")
        })
    };
    if has("v=v2") {
        Some(AGGREGATED_V2)
    } else if has("v=v2beta1") {
        Some(AGGREGATED_V2BETA1)
    } else {
        None
    }
}

fn sub_kind(info: &ResourceInfo, sub: &str) -> (&'static str, &'static str, &'static str, &'static [&'static str]) {
    if let Some((kind, verbs)) = streaming::Subresource::discovery(sub) {
        return (info.group, info.version, kind, verbs);
    }
    match sub {
        "binding" => ("", "v1", "Binding", &["create"]),
        "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
        _ => (info.group, info.version, info.kind, &["get", "patch", "update"]),
    }
}

/// The stored subresources from the table, then the node's (`pods/exec`, `pods/log`: clients look for them).
fn subresources(info: &ResourceInfo) -> impl Iterator<Item = &'static str> {
    info.subresources.iter().chain(streaming::node_subresources(info)).copied()
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subs: Vec<Value> = subresources(r)
        .map(|s| {
            let (g, v, k, verbs) = sub_kind(r, s);
            json!({"subresource": s, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": verbs})
        })
        .collect();
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        v["subresources"] = json!(subs);
    }
    v
}

fn aggregated_group(name: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let res: Vec<Value> = resources::in_group_version(name, v).map(aggregated_resource).collect();
            json!({"version": v, "resources": res, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": name, "creationTimestamp": null}, "versions": versions})
}

/// `/api` (core) or `/apis` (named groups) as an aggregated list.
pub fn aggregated(core: bool, content_type: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("", &["v1"])]
    } else {
        resources::groups().iter().map(|(g, vs)| aggregated_group(g, vs)).collect()
    };
    let api_version = if content_type == AGGREGATED_V2BETA1 { "apidiscovery.k8s.io/v2beta1" } else { "apidiscovery.k8s.io/v2" };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}

/// Legacy `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_doc(name: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
}

/// Legacy `/apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = resources::groups().iter().map(|(g, vs)| group_doc(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn api_group(name: &str) -> Option<Value> {
    let groups = resources::groups();
    let (g, vs) = groups.iter().find(|(g, _)| *g == name)?;
    let mut doc = group_doc(g, vs);
    doc["kind"] = "APIGroup".into();
    doc["apiVersion"] = "v1".into();
    Some(doc)
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut out = Vec::new();
    for r in resources::in_group_version(group, version) {
        let mut v = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs()});
        if !r.short_names.is_empty() {
            v["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            v["categories"] = json!(r.categories);
        }
        out.push(v);
        for s in subresources(r) {
            let (g, v, k, verbs) = sub_kind(r, s);
            let mut sub = json!({"name": format!("{}/{s}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": k, "verbs": verbs});
            // A subresource of another group names it (upstream: `deployments/scale` is autoscaling/v1 Scale).
            if g != r.group {
                sub["group"] = g.into();
                sub["version"] = v.into();
            }
            out.push(sub);
        }
    }
    if out.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}))
}
