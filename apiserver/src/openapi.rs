//! OpenAPI v3 documents generated from the k8s-openapi types (their `schemars` schemas carry upstream's field
//! descriptions), one per group-version, served with content hashes so kubectl caches them.
//!
//! What kubectl needs (kubectl-wire.md §1.3, §3.8): a PATCH operation per kind whose
//! `x-kubernetes-group-version-kind` (an object) matches and that has a `fieldValidation` query parameter —
//! then kubectl validates nothing itself and sends `fieldValidation=Strict`, which the server enforces — and
//! `components.schemas` with `x-kubernetes-group-version-kind` (a list) on each kind for `kubectl explain`.
//! The PATCH operations deliberately list no request body: a document that names the strategic-merge content
//! type must also carry every merge key, otherwise kubectl computes replace-style list patches; without it
//! kubectl uses its compiled-in types, which are right for every built-in kind.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use k1s_api::resources::{self, ResourceInfo};
use k8s_openapi::api;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

/// One group-version's document and its content hash.
pub struct GroupVersionDoc {
    pub body: Vec<u8>,
    pub hash: String,
}

/// `"api/v1"` or `"apis/batch/v1"` → document.
type Docs = BTreeMap<String, GroupVersionDoc>;

static DOCS: OnceLock<Docs> = OnceLock::new();

fn schema_of<T: JsonSchema>(gen: &mut schemars::SchemaGenerator) -> String {
    gen.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// The schema name of a resource's kind, registering its definitions.
fn kind_schema(info: &ResourceInfo, gen: &mut schemars::SchemaGenerator) -> Option<String> {
    Some(match (info.group, info.kind) {
        ("", "Pod") => schema_of::<api::core::v1::Pod>(gen),
        ("", "Namespace") => schema_of::<api::core::v1::Namespace>(gen),
        ("", "Node") => schema_of::<api::core::v1::Node>(gen),
        ("", "Event") => schema_of::<api::core::v1::Event>(gen),
        ("", "ConfigMap") => schema_of::<api::core::v1::ConfigMap>(gen),
        ("", "Secret") => schema_of::<api::core::v1::Secret>(gen),
        ("", "Service") => schema_of::<api::core::v1::Service>(gen),
        ("batch", "Job") => schema_of::<api::batch::v1::Job>(gen),
        ("apps", "Deployment") => schema_of::<api::apps::v1::Deployment>(gen),
        ("apps", "ReplicaSet") => schema_of::<api::apps::v1::ReplicaSet>(gen),
        ("coordination.k8s.io", "Lease") => schema_of::<api::coordination::v1::Lease>(gen),
        ("events.k8s.io", "Event") => schema_of::<api::events::v1::Event>(gen),
        _ => return None,
    })
}

fn gvk(info: &ResourceInfo) -> Value {
    json!({"group": info.group, "version": info.version, "kind": info.kind})
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        query_param("dryRun", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed"),
        query_param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
        ),
    ]
}

fn ok_response(schema: &str) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

/// Paths of one resource: the collection (list, create) and the item (get, replace, patch, delete).
fn paths_for(info: &ResourceInfo, schema: &str, paths: &mut Map<String, Value>) {
    let base = if info.group.is_empty() { format!("/api/{}", info.version) } else { format!("/apis/{}/{}", info.group, info.version) };
    let (collection, mut params) = if info.namespaced {
        (format!("{base}/namespaces/{{namespace}}/{}", info.plural), vec![json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}})])
    } else {
        (format!("{base}/{}", info.plural), vec![])
    };
    let op = |verb: &str, action: &str, extra: Vec<Value>| {
        json!({
            "operationId": format!("{verb}{}", info.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk(info),
            "parameters": extra,
            "responses": {"200": ok_response(schema)},
        })
    };
    paths.insert(
        collection.clone(),
        json!({"parameters": params.clone(), "get": op("list", "list", vec![]), "post": op("create", "post", write_params())}),
    );
    params.push(json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}));
    let mut patch_params = write_params();
    patch_params.push(query_param("force", "Force is going to \"force\" Apply requests."));
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "parameters": params,
            "get": op("read", "get", vec![]),
            "put": op("replace", "put", write_params()),
            "patch": op("patch", "patch", patch_params),
            "delete": op("delete", "delete", vec![query_param("dryRun", "When present, indicates that modifications should not be persisted.")]),
        }),
    );
}

/// A content hash for cacheable documents (v3 and v2).
pub(crate) fn hash_hex(bytes: &[u8]) -> String {
    // Two independent 64-bit hashes: a cache key, not a security boundary.
    let mut out = String::new();
    for seed in [0x9e37_79b9_7f4a_7c15u64, 0xc2b2_ae3d_27d4_eb4f] {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        bytes.hash(&mut h);
        out.push_str(&format!("{:016X}", h.finish()));
    }
    out
}

fn build() -> Docs {
    let mut gvs: Vec<(&str, &str)> = Vec::new();
    for r in resources::RESOURCES {
        if !gvs.contains(&(r.group, r.version)) {
            gvs.push((r.group, r.version));
        }
    }
    let mut docs = Docs::new();
    for (group, version) in gvs {
        let mut gen = schemars::generate::SchemaSettings::openapi3().into_generator();
        let mut paths = Map::new();
        let mut kinds = Vec::new();
        for info in resources::in_group_version(group, version) {
            if let Some(schema) = kind_schema(info, &mut gen) {
                paths_for(info, &schema, &mut paths);
                kinds.push((schema, gvk(info)));
            }
        }
        let mut schemas = gen.take_definitions(true);
        for (schema, gvk) in kinds {
            if let Some(Value::Object(s)) = schemas.get_mut(&schema) {
                s.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
            }
        }
        let doc = json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::KUBE_MAJOR, crate::KUBE_MINOR)},
            "paths": paths,
            "components": {"schemas": schemas},
        });
        let body = serde_json::to_vec(&doc).expect("serialises");
        let key = if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") };
        docs.insert(key, GroupVersionDoc { hash: hash_hex(&body), body });
    }
    docs
}

fn docs() -> &'static Docs {
    DOCS.get_or_init(build)
}

/// `GET /openapi/v3`: the index of group-version documents with their hashed URLs.
pub fn index() -> Value {
    let paths: Map<String, Value> = docs()
        .iter()
        .map(|(k, d)| (k.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={}", d.hash)})))
        .collect();
    json!({"paths": paths})
}

/// `GET /openapi/v3/<gv>`.
pub fn document(gv: &str) -> Option<&'static GroupVersionDoc> {
    docs().get(gv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_have_patch_with_field_validation_and_gvk_schemas() {
        let d: Value = serde_json::from_slice(&document("api/v1").unwrap().body).unwrap();
        let patch = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        let pod = &d["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"], json!([{"group": "", "version": "v1", "kind": "Pod"}]));
        assert!(d["components"]["schemas"]["io.k8s.api.core.v1.Container"]["properties"]["image"]["description"].as_str().unwrap().contains("image"));
        let batch: Value = serde_json::from_slice(&document("apis/batch/v1").unwrap().body).unwrap();
        assert!(batch["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs/{name}"]["patch"].is_object());
        assert!(index()["paths"]["apis/batch/v1"]["serverRelativeURL"].as_str().unwrap().starts_with("/openapi/v3/apis/batch/v1?hash="));
    }
}

fn gv_key(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        format!("api/{}", info.version)
    } else {
        format!("apis/{}/{}", info.group, info.version)
    }
}

/// Where a field named `name` exists in a kind (`spec.containers[*].image`), for errors that tell a user who
/// put a known field at the wrong level where it belongs.
pub fn field_locations(info: &ResourceInfo, name: &str) -> Vec<String> {
    let Some(doc) = document(&gv_key(info)) else { return Vec::new() };
    let Ok(doc) = serde_json::from_slice::<Value>(&doc.body) else { return Vec::new() };
    let schemas = &doc["components"]["schemas"];
    let Some(root) = schemas.as_object().and_then(|m| {
        m.iter().find(|(_, s)| s["x-kubernetes-group-version-kind"].as_array().is_some_and(|a| a.contains(&gvk(info)))).map(|(_, s)| s)
    }) else {
        return Vec::new();
    };
    // Follow `$ref`, `allOf: [{$ref}]` and array `items` to the object schema behind a property.
    fn resolve<'a>(s: &'a Value, schemas: &'a Value) -> (&'a Value, bool) {
        let mut cur = s;
        let mut array = false;
        for _ in 0..4 {
            if let Some(r) = cur.get("$ref").and_then(Value::as_str) {
                cur = &schemas[r.trim_start_matches("#/components/schemas/")];
            } else if let Some(first) = cur.get("allOf").and_then(|a| a.get(0)) {
                cur = first;
            } else if cur.get("type") == Some(&json!("array")) && cur.get("items").is_some() {
                array = true;
                cur = &cur["items"];
            } else {
                break;
            }
        }
        (cur, array)
    }
    fn walk(s: &Value, schemas: &Value, path: &str, name: &str, depth: usize, out: &mut Vec<String>) {
        if depth > 6 || out.len() >= 3 {
            return;
        }
        let Some(props) = s.get("properties").and_then(Value::as_object) else { return };
        for (key, p) in props {
            let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            if key == name {
                out.push(here.clone());
            }
            if key == "metadata" && depth > 0 {
                continue; // template metadata repeats the object's
            }
            let (inner, array) = resolve(p, schemas);
            let next = if array { format!("{here}[*]") } else { here };
            walk(inner, schemas, &next, name, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(root, schemas, "", name, 0, &mut out);
    out
}
