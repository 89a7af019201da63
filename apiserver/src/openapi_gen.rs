//! Generates the OpenAPI v3 documents from the k8s-openapi types' `schemars` schemas (which carry upstream's
//! field descriptions). Compiled into the build script, not the binary: the schema code of every served kind
//! is ~1 MB of machine code that would run once per server start, so the build runs it and the binary
//! embeds the compressed documents (see `crate::openapi`). Shared with the build script by `#[path]`.

use k1s_api::resources::{self, ResourceInfo};
use k8s_openapi::api;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

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

pub fn gvk(info: &ResourceInfo) -> Value {
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
    let base = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let (collection, mut params) = if info.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", info.plural),
            vec![
                json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}),
            ],
        )
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
    params.push(
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
    );
    let mut patch_params = write_params();
    patch_params.push(query_param(
        "force",
        "Force is going to \"force\" Apply requests.",
    ));
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

/// Every group-version's document: (`"api/v1"` or `"apis/batch/v1"`, JSON), for Kubernetes `v{kube_version}.0`.
pub fn generate(kube_version: &str) -> Vec<(String, Vec<u8>)> {
    let mut gvs: Vec<(&str, &str)> = Vec::new();
    for r in resources::RESOURCES {
        if !gvs.contains(&(r.group, r.version)) {
            gvs.push((r.group, r.version));
        }
    }
    let mut docs = Vec::new();
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
            "info": {"title": "Kubernetes", "version": format!("v{kube_version}.0")},
            "paths": paths,
            "components": {"schemas": schemas},
        });
        let body = serde_json::to_vec(&doc).expect("serialises");
        let key = if group.is_empty() {
            format!("api/{version}")
        } else {
            format!("apis/{group}/{version}")
        };
        docs.push((key, body));
    }
    docs
}
