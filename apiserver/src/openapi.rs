//! OpenAPI v3 documents, one per group-version, served with content hashes so kubectl caches them. The build
//! script generates them from the k8s-openapi types (`openapi_gen`) and the binary embeds them compressed.
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

use k1s_api::resources::ResourceInfo;
use serde_json::{json, Map, Value};

/// One group-version's document and its content hash.
pub struct GroupVersionDoc {
    pub body: Vec<u8>,
    pub hash: String,
}

/// `"api/v1"` or `"apis/batch/v1"` → document.
type Docs = BTreeMap<String, GroupVersionDoc>;

static DOCS: OnceLock<Docs> = OnceLock::new();

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

/// The documents the build script generated (`openapi_gen`), gzip-compressed: `(key, bytes)`.
fn gvk(info: &ResourceInfo) -> Value {
    json!({"group": info.group, "version": info.version, "kind": info.kind})
}

static EMBEDDED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/openapi_v3.rs"));

fn build() -> Docs {
    let mut docs = Docs::new();
    for (key, gz) in EMBEDDED {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(*gz), &mut body)
            .expect("the build script wrote valid gzip");
        docs.insert(
            key.to_string(),
            GroupVersionDoc {
                hash: hash_hex(&body),
                body,
            },
        );
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
        .map(|(k, d)| {
            (
                k.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={}", d.hash)}),
            )
        })
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
        // build.rs generates with its own copy of the version.
        assert_eq!(
            d["info"]["version"],
            format!("v{}.{}.0", crate::KUBE_MAJOR, crate::KUBE_MINOR)
        );
        let patch = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        let pod = &d["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        assert!(
            d["components"]["schemas"]["io.k8s.api.core.v1.Container"]["properties"]["image"]
                ["description"]
                .as_str()
                .unwrap()
                .contains("image")
        );
        let batch: Value =
            serde_json::from_slice(&document("apis/batch/v1").unwrap().body).unwrap();
        assert!(
            batch["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs/{name}"]["patch"]
                .is_object()
        );
        assert!(index()["paths"]["apis/batch/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/apis/batch/v1?hash="));
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
    let Some(doc) = document(&gv_key(info)) else {
        return Vec::new();
    };
    let Ok(doc) = serde_json::from_slice::<Value>(&doc.body) else {
        return Vec::new();
    };
    let schemas = &doc["components"]["schemas"];
    let Some(root) = schemas.as_object().and_then(|m| {
        m.iter()
            .find(|(_, s)| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|a| a.contains(&gvk(info)))
            })
            .map(|(_, s)| s)
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
    fn walk(
        s: &Value,
        schemas: &Value,
        path: &str,
        name: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        if depth > 6 || out.len() >= 3 {
            return;
        }
        let Some(props) = s.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (key, p) in props {
            let here = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
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
