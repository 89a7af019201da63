//! OpenAPI v2 (Swagger 2.0) at `GET /openapi/v2`: one document for every group-version, derived from the
//! OpenAPI v3 documents of [`crate::openapi`], served as JSON or as the gnostic `openapi.v2.Document` protobuf.
//!
//! Why v2 at all: kubectl 1.27 fetches the v2 schema for `apply`/`create` validation (its factory's
//! `Validator()`) and for `explain` before anything else, and fails when it cannot (explain then renders from
//! v3 by default, from v2 with `--output=plaintext-openapiv2`). client-go's `discovery.OpenAPISchema()` asks for
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and `proto.Unmarshal`s the body
//! unconditionally, so the protobuf form is the one that matters.
//!
//! What kubectl reads from it (k8s.io/cli-runtime `query_param_verifier.go`, k8s.io/kube-openapi
//! `pkg/util/proto/document.go`):
//! - the PATCH operation whose `x-kubernetes-group-version-kind` vendor extension (an object) names the kind,
//!   and its `fieldValidation` query parameter: then kubectl validates nothing itself and sends
//!   `fieldValidation=Strict`, which the server enforces;
//! - `definitions`, every one of which must parse as kube-openapi's `proto.NewOpenAPIData` requires (a `$ref`
//!   names a definition and has no `type` or `properties` beside it, an array has exactly one `items` schema,
//!   a schema has at most one type), with `x-kubernetes-group-version-kind` (a list) on each kind's definition.
//!
//! Like the v3 PATCH operations (see [`crate::openapi`]), the v2 ones name no `consumes`: kubectl's apply
//! (`Patcher.getPatchTypeFromOpenAPI` in k8s.io/kubectl `pkg/cmd/apply/patcher.go`) computes its patch from the
//! v2 schema only when the PATCH operation consumes `application/strategic-merge-patch+json`, and the schemas
//! carry no `x-kubernetes-patch-merge-key`/`-strategy`, so without it kubectl keeps using its compiled-in types
//! (checked with kubectl 1.27 and the newest on this machine: removing a finalizer by apply still sends `$deleteFromPrimitiveList`).
//! A v3 request body becomes `consumes` here, so whoever gives the v3 PATCH operations one must add that
//! patch metadata too (k1s_api::smp has the table).
//!
//! The protobuf message and field numbers are those of gnostic's `openapiv2/OpenAPIv2.proto`
//! (github.com/google/gnostic, package `openapi.v2`, the file kube-openapi and client-go vendor as
//! `github.com/google/gnostic-models/openapiv2`). The encoder below is written for exactly those messages.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// The media type client-go's `OpenAPISchema()` asks for (client-go `discovery/discovery_client.go`,
/// `openAPIV2mimePb`); kube-openapi's handler (`pkg/handler/handler.go`) calls it `subTypeProtobufDeprecated`.
const PROTOBUF_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The Content-Type the protobuf is served with, for either Accept spelling — as kube-apiserver does
/// (kube-openapi `subTypeProtobuf`). Not the `@` spelling: `@` is not a MIME token character, and client-go's
/// REST client runs the response Content-Type through Go's `mime.ParseMediaType`, so kubectl 1.27 fails on it
/// with "mime: unexpected content after media subtype" (seen against this server).
pub const PROTOBUF_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

struct Built {
    json: Vec<u8>,
    protobuf: Vec<u8>,
    hash: String,
}

static BUILT: OnceLock<Built> = OnceLock::new();

fn built() -> &'static Built {
    BUILT.get_or_init(|| {
        let doc = swagger();
        let json = serde_json::to_vec(&doc).expect("JSON values serialise");
        let protobuf = pb::document(&doc);
        // The protobuf is a pure function of the JSON, so the JSON's hash names both.
        Built { hash: crate::openapi::hash_hex(&json), json, protobuf }
    })
}

/// The document as the gnostic `openapi.v2.Document` protobuf.
pub fn document_protobuf() -> &'static [u8] {
    &built().protobuf
}

/// The document as Swagger 2.0 JSON.
pub fn document_json() -> &'static [u8] {
    &built().json
}

/// A content hash of the document, for the ETag.
pub fn hash() -> &'static str {
    &built().hash
}

/// Whether an `Accept` header asks for the protobuf form: the first media range (q > 0) that names either
/// form decides; `*/*`, JSON or nothing at all get JSON.
pub fn wants_protobuf(accept: &str) -> bool {
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        if parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))) {
            continue; // "not acceptable"
        }
        match media.as_str() {
            PROTOBUF_ACCEPT | PROTOBUF_CONTENT_TYPE => return true,
            "application/json" | "application/*" | "*/*" => return false,
            _ => {}
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------
// v3 → v2 (JSON)
// ---------------------------------------------------------------------------------------------

const V3_REF: &str = "#/components/schemas/";
const V2_REF: &str = "#/definitions/";

/// The Swagger 2.0 document: the union of the v3 documents' paths and schemas.
fn swagger() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    let mut info = json!({"title": "Kubernetes", "version": format!("v{}.{}.0", crate::KUBE_MAJOR, crate::KUBE_MINOR)});
    let index = crate::openapi::index();
    for gv in index["paths"].as_object().into_iter().flat_map(|m| m.keys()) {
        let Some(doc) = crate::openapi::document(gv) else { continue };
        let doc: Value = serde_json::from_slice(&doc.body).expect("the v3 documents are JSON");
        if doc["info"].is_object() {
            info = doc["info"].clone();
        }
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            paths.insert(path.clone(), path_item(item));
        }
        for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
            let schema = schema_v2(schema);
            match definitions.get_mut(name) {
                // The same type in two group-versions' documents is the same schema; only the kinds' GVK lists
                // (each document marks its own kinds) can differ, so join them.
                Some(Value::Object(have)) => {
                    if let Some(Value::Array(more)) = schema.get(GVK) {
                        let list = have.entry(GVK).or_insert_with(|| json!([]));
                        if let Value::Array(list) = list {
                            for g in more {
                                if !list.contains(g) {
                                    list.push(g.clone());
                                }
                            }
                        }
                    }
                }
                _ => {
                    definitions.insert(name.clone(), schema);
                }
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": info,
        "paths": paths,
        "definitions": definitions,
    })
}

const GVK: &str = "x-kubernetes-group-version-kind";
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

fn rewrite_ref(r: &str) -> String {
    match r.strip_prefix(V3_REF) {
        Some(name) => format!("{V2_REF}{name}"),
        None => r.replace("#/components/parameters/", "#/parameters/").replace("#/components/responses/", "#/responses/"),
    }
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in item.as_object().into_iter().flatten() {
        match k.as_str() {
            "parameters" => {
                out.insert(k.clone(), Value::Array(v.as_array().into_iter().flatten().filter_map(parameter).collect()));
            }
            "$ref" => {
                out.insert(k.clone(), v.clone());
            }
            m if METHODS.contains(&m) => {
                out.insert(k.clone(), operation(v));
            }
            x if x.starts_with("x-") => {
                out.insert(k.clone(), v.clone());
            }
            // summary, description, servers, trace: not in a v2 Path Item.
            _ => {}
        }
    }
    Value::Object(out)
}

/// A v3 operation as a v2 one: parameters flattened, the request body as an `in: body` parameter, each
/// response's JSON schema as its `schema`, the media types as `consumes`/`produces`.
fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let mut produces: Vec<String> = Vec::new();
    for (k, v) in op.as_object().into_iter().flatten() {
        match k.as_str() {
            "tags" | "summary" | "description" | "operationId" | "deprecated" | "externalDocs" => {
                out.insert(k.clone(), v.clone());
            }
            "parameters" => {
                let mut params: Vec<Value> = v.as_array().into_iter().flatten().filter_map(parameter).collect();
                if let Some(Value::Array(body)) = out.remove("parameters") {
                    params.extend(body);
                }
                out.insert(k.clone(), Value::Array(params));
            }
            "requestBody" => {
                let content = v["content"].as_object();
                let consumes: Vec<&String> = content.into_iter().flat_map(|c| c.keys()).collect();
                let schema = content.and_then(|c| c.values().find_map(|m| m.get("schema"))).map(schema_v2).unwrap_or_else(|| json!({}));
                let mut body = json!({"name": "body", "in": "body", "required": v["required"].as_bool().unwrap_or(false), "schema": schema});
                if let Some(d) = v.get("description") {
                    body["description"] = d.clone();
                }
                if let Some(Value::Array(params)) = out.get_mut("parameters") {
                    params.push(body);
                } else {
                    out.insert("parameters".into(), json!([body]));
                }
                out.insert("consumes".into(), json!(consumes));
            }
            "responses" => {
                let mut responses = Map::new();
                for (code, r) in v.as_object().into_iter().flatten() {
                    if let Some(r) = r.get("$ref").and_then(Value::as_str) {
                        responses.insert(code.clone(), json!({"$ref": rewrite_ref(r)}));
                        continue;
                    }
                    let mut resp = json!({"description": r["description"].as_str().unwrap_or("")});
                    if let Some(content) = r["content"].as_object() {
                        for media in content.keys() {
                            if !produces.contains(media) {
                                produces.push(media.clone());
                            }
                        }
                        if let Some(s) = content.values().find_map(|m| m.get("schema")) {
                            resp["schema"] = schema_v2(s);
                        }
                    }
                    responses.insert(code.clone(), resp);
                }
                out.insert(k.clone(), Value::Object(responses));
            }
            x if x.starts_with("x-") => {
                out.insert(k.clone(), v.clone());
            }
            // callbacks, servers, security: not served.
            _ => {}
        }
    }
    if !produces.is_empty() {
        out.insert("produces".into(), json!(produces));
    }
    Value::Object(out)
}

/// The keywords a v2 non-body parameter takes from its v3 `schema` (Swagger 2.0 "Parameter Object").
const PRIMITIVE_KEYS: [&str; 16] = [
    "type", "format", "items", "default", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength",
    "pattern", "maxItems", "minItems", "uniqueItems", "enum", "multipleOf",
];

/// A v3 parameter as a v2 one: `schema`'s keywords lifted beside `name`/`in`; `cookie` parameters dropped.
fn parameter(p: &Value) -> Option<Value> {
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        return Some(json!({"$ref": rewrite_ref(r)}));
    }
    let within = p["in"].as_str()?;
    if !matches!(within, "query" | "path" | "header") {
        return None;
    }
    let mut out = Map::new();
    for k in ["name", "in", "description", "required", "allowEmptyValue"] {
        if let Some(v) = p.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if within == "path" {
        out.insert("required".into(), json!(true)); // v2 requires it of path parameters
    }
    let schema = schema_v2(p.get("schema").unwrap_or(&json!({"type": "string"})));
    for k in PRIMITIVE_KEYS {
        if let Some(v) = schema.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    out.entry("type").or_insert_with(|| json!("string")); // v2 requires a type of non-body parameters
    Some(Value::Object(out))
}

/// The keywords of a Swagger 2.0 "Schema Object"; everything else (v3's `nullable`, `oneOf`, `anyOf`, `not`,
/// `writeOnly`, `deprecated`, …) is dropped. Vendor extensions (`x-…`) are kept.
const SCHEMA_KEYS: [&str; 30] = [
    "$ref", "format", "title", "description", "default", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxProperties", "minProperties", "required", "enum",
    "additionalProperties", "type", "items", "allOf", "properties", "discriminator", "readOnly", "xml", "externalDocs", "example",
];

/// A v3 schema as a v2 one: refs pointed at `#/definitions/`, v3-only keywords dropped, boolean schemas as
/// `{}`, and `allOf: [{$ref}]` wrappers (schemars' way of giving a referenced property its own description)
/// turned into a `$ref` with siblings, the form upstream's v2 documents use: kube-openapi's proto parser reads
/// a schema with neither `$ref`, `type` nor `properties` as "arbitrary", so a wrapped `spec` would hide the
/// PodSpec's fields from `kubectl explain`.
fn schema_v2(s: &Value) -> Value {
    let Some(obj) = s.as_object() else {
        return json!({}); // `true` (anything) — and `false`, which v2 cannot say
    };
    let mut out = Map::new();
    for (k, v) in obj {
        let v = match k.as_str() {
            "$ref" => Value::String(rewrite_ref(v.as_str().unwrap_or_default())),
            "type" => match v {
                // `["string", "null"]` (JSON Schema's nullable): v2 has one type per schema.
                Value::Array(types) => {
                    let types: Vec<&Value> = types.iter().filter(|t| t.as_str() != Some("null")).collect();
                    match types.as_slice() {
                        [one] => (*one).clone(),
                        _ => continue,
                    }
                }
                _ => v.clone(),
            },
            "exclusiveMaximum" | "exclusiveMinimum" if !v.is_boolean() => continue, // JSON Schema 2020's number form
            "items" => match v {
                Value::Array(items) => Value::Array(items.iter().map(schema_v2).collect()),
                _ => schema_v2(v),
            },
            "additionalProperties" => match v {
                Value::Bool(_) => v.clone(),
                _ => schema_v2(v),
            },
            "allOf" => Value::Array(v.as_array().into_iter().flatten().map(schema_v2).collect()),
            "properties" => Value::Object(v.as_object().into_iter().flatten().map(|(n, p)| (n.clone(), schema_v2(p))).collect()),
            k if SCHEMA_KEYS.contains(&k) || k.starts_with("x-") => v.clone(),
            _ => continue,
        };
        out.insert(k.clone(), v);
    }
    let single_ref = match out.get("allOf") {
        Some(Value::Array(all)) if all.len() == 1 && all[0].as_object().is_some_and(|o| o.len() == 1 && o.contains_key("$ref")) => {
            all[0]["$ref"].as_str().map(str::to_owned)
        }
        _ => None,
    };
    if let Some(r) = single_ref {
        if !["type", "properties", "items", "additionalProperties", "$ref"].iter().any(|k| out.contains_key(*k)) {
            out.remove("allOf");
            out.insert("$ref".into(), Value::String(r));
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// v2 JSON → gnostic protobuf
// ---------------------------------------------------------------------------------------------

/// A minimal protobuf encoder for the messages of gnostic's `openapiv2/OpenAPIv2.proto` (proto3): varints
/// (wire type 0), 64-bit doubles (1) and length-delimited strings and messages (2). Scalars at their default
/// value are omitted, as proto3 does; a present message (even empty) and a set `oneof` member are always written,
/// because "present but empty" means something to the reader (`properties: {}` makes a kind, not a map).
/// Field numbers are quoted from the .proto beside each message.
mod pb {
    use serde_json::{Map, Value};

    #[derive(Default)]
    pub(super) struct Msg(pub(super) Vec<u8>);

    fn varint(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }

    impl Msg {
        fn key(&mut self, field: u32, wire: u8) {
            varint(&mut self.0, (u64::from(field) << 3) | u64::from(wire));
        }
        fn bytes(&mut self, field: u32, b: &[u8]) {
            self.key(field, 2);
            varint(&mut self.0, b.len() as u64);
            self.0.extend_from_slice(b);
        }
        fn string(&mut self, field: u32, s: &str) {
            if !s.is_empty() {
                self.bytes(field, s.as_bytes());
            }
        }
        fn msg(&mut self, field: u32, m: Msg) {
            self.bytes(field, &m.0);
        }
        fn bool_always(&mut self, field: u32, b: bool) {
            self.key(field, 0);
            varint(&mut self.0, u64::from(b));
        }
        fn bool(&mut self, field: u32, b: bool) {
            if b {
                self.bool_always(field, b);
            }
        }
        fn int64(&mut self, field: u32, v: i64) {
            if v != 0 {
                self.key(field, 0);
                varint(&mut self.0, v as u64); // negative int64s are ten-byte two's complement varints
            }
        }
        fn double(&mut self, field: u32, v: f64) {
            if v != 0.0 {
                self.key(field, 1);
                self.0.extend_from_slice(&v.to_le_bytes());
            }
        }

        // JSON-reading helpers: write `obj[key]` if it is there and of the right JSON type.
        fn s(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
            if let Some(v) = obj.get(key).and_then(Value::as_str) {
                self.string(field, v);
            }
        }
        fn b(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
            if let Some(v) = obj.get(key).and_then(Value::as_bool) {
                self.bool(field, v);
            }
        }
        fn i(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
            if let Some(v) = obj.get(key).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))) {
                self.int64(field, v);
            }
        }
        fn d(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
            if let Some(v) = obj.get(key).and_then(Value::as_f64) {
                self.double(field, v);
            }
        }
        fn strings(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
            for v in obj.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                self.bytes(field, v.as_bytes()); // repeated: empty strings are elements too
            }
        }
        fn any(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
            if let Some(v) = obj.get(key) {
                self.msg(field, any(v));
            }
        }
        fn anys(&mut self, field: u32, obj: &Map<String, Value>, key: &str) {
            for v in obj.get(key).and_then(Value::as_array).into_iter().flatten() {
                self.msg(field, any(v));
            }
        }
        /// `repeated NamedAny vendor_extension`: every `x-…` key.
        fn extensions(&mut self, field: u32, obj: &Map<String, Value>) {
            for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
                let mut named = Msg::default(); // message NamedAny { string name = 1; Any value = 2; }
                named.string(1, k);
                named.msg(2, any(v));
                self.msg(field, named);
            }
        }
    }

    /// `message Any { google.protobuf.Any value = 1; string yaml = 2; }`. gnostic fills `yaml` with the value
    /// marshalled as YAML, and readers (kube-openapi's `VendorExtensionToMap`, cli-runtime's GVK check)
    /// `yaml.Unmarshal` it; JSON text is YAML, so the value's JSON goes there.
    fn any(v: &Value) -> Msg {
        let mut m = Msg::default();
        m.string(2, &serde_json::to_string(v).expect("JSON values serialise"));
        m
    }

    fn obj(v: &Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    /// `message Document`: swagger = 1, info = 2, host = 3, base_path = 4, schemes = 5, consumes = 6,
    /// produces = 7, paths = 8, definitions = 9, …, vendor_extension = 16.
    pub(super) fn document(doc: &Value) -> Vec<u8> {
        let d = obj(doc);
        let mut m = Msg::default();
        m.s(1, &d, "swagger");
        if let Some(info) = d.get("info").and_then(Value::as_object) {
            // message Info: title = 1, version = 2, description = 3, …, vendor_extension = 7.
            let mut i = Msg::default();
            i.s(1, info, "title");
            i.s(2, info, "version");
            i.s(3, info, "description");
            i.extensions(7, info);
            m.msg(2, i);
        }
        m.s(3, &d, "host");
        m.s(4, &d, "basePath");
        m.strings(5, &d, "schemes");
        m.strings(6, &d, "consumes");
        m.strings(7, &d, "produces");
        if let Some(paths) = d.get("paths").and_then(Value::as_object) {
            // message Paths: vendor_extension = 1, path = 2 (NamedPathItem: name = 1, value = 2).
            let mut p = Msg::default();
            p.extensions(1, paths);
            for (name, item) in paths.iter().filter(|(k, _)| !k.starts_with("x-")) {
                let mut named = Msg::default();
                named.string(1, name);
                named.msg(2, path_item(item));
                p.msg(2, named);
            }
            m.msg(8, p);
        }
        if let Some(defs) = d.get("definitions").and_then(Value::as_object) {
            // message Definitions: additional_properties = 1 (NamedSchema: name = 1, value = 2).
            m.msg(9, named_schemas(defs));
        }
        m.extensions(16, &d);
        m.0
    }

    /// `message PathItem`: _ref = 1, get = 2, put = 3, post = 4, delete = 5, options = 6, head = 7, patch = 8,
    /// parameters = 9, vendor_extension = 10.
    fn path_item(v: &Value) -> Msg {
        let p = obj(v);
        let mut m = Msg::default();
        m.s(1, &p, "$ref");
        for (field, method) in [(2, "get"), (3, "put"), (4, "post"), (5, "delete"), (6, "options"), (7, "head"), (8, "patch")] {
            if let Some(op) = p.get(method) {
                m.msg(field, operation(op));
            }
        }
        for param in p.get("parameters").and_then(Value::as_array).into_iter().flatten() {
            m.msg(9, parameters_item(param));
        }
        m.extensions(10, &p);
        m
    }

    /// `message Operation`: tags = 1, summary = 2, description = 3, external_docs = 4, operation_id = 5,
    /// produces = 6, consumes = 7, parameters = 8, responses = 9, schemes = 10, deprecated = 11,
    /// security = 12, vendor_extension = 13.
    fn operation(v: &Value) -> Msg {
        let o = obj(v);
        let mut m = Msg::default();
        m.strings(1, &o, "tags");
        m.s(2, &o, "summary");
        m.s(3, &o, "description");
        if let Some(e) = o.get("externalDocs") {
            m.msg(4, external_docs(e));
        }
        m.s(5, &o, "operationId");
        m.strings(6, &o, "produces");
        m.strings(7, &o, "consumes");
        for param in o.get("parameters").and_then(Value::as_array).into_iter().flatten() {
            m.msg(8, parameters_item(param));
        }
        if let Some(responses) = o.get("responses").and_then(Value::as_object) {
            // message Responses: response_code = 1 (NamedResponseValue: name = 1, value = 2), vendor_extension = 2.
            let mut r = Msg::default();
            for (code, resp) in responses.iter().filter(|(k, _)| !k.starts_with("x-")) {
                let mut named = Msg::default();
                named.string(1, code);
                named.msg(2, response_value(resp));
                r.msg(1, named);
            }
            r.extensions(2, responses);
            m.msg(9, r);
        }
        m.strings(10, &o, "schemes");
        m.b(11, &o, "deprecated");
        m.extensions(13, &o);
        m
    }

    /// `message JsonReference { string _ref = 1; string description = 2; }`
    fn json_reference(o: &Map<String, Value>) -> Msg {
        let mut m = Msg::default();
        m.s(1, o, "$ref");
        m.s(2, o, "description");
        m
    }

    /// `message ExternalDocs { string description = 1; string url = 2; repeated NamedAny vendor_extension = 3; }`
    fn external_docs(v: &Value) -> Msg {
        let e = obj(v);
        let mut m = Msg::default();
        m.s(1, &e, "description");
        m.s(2, &e, "url");
        m.extensions(3, &e);
        m
    }

    /// `message ResponseValue { oneof { Response response = 1; JsonReference json_reference = 2; } }`;
    /// `message Response`: description = 1, schema = 2 (SchemaItem: oneof schema = 1, file_schema = 2),
    /// headers = 3, examples = 4, vendor_extension = 5.
    fn response_value(v: &Value) -> Msg {
        let r = obj(v);
        let mut m = Msg::default();
        if r.contains_key("$ref") {
            m.msg(2, json_reference(&r));
            return m;
        }
        let mut resp = Msg::default();
        resp.s(1, &r, "description");
        if let Some(s) = r.get("schema") {
            let mut item = Msg::default();
            item.msg(1, schema(s));
            resp.msg(2, item);
        }
        resp.extensions(5, &r);
        m.msg(1, resp);
        m
    }

    /// `message ParametersItem { oneof { Parameter parameter = 1; JsonReference json_reference = 2; } }`;
    /// `message Parameter { oneof { BodyParameter body_parameter = 1; NonBodyParameter non_body_parameter = 2; } }`;
    /// `message NonBodyParameter { oneof { HeaderParameterSubSchema = 1; FormDataParameterSubSchema = 2;
    /// QueryParameterSubSchema = 3; PathParameterSubSchema = 4; } }`.
    fn parameters_item(v: &Value) -> Msg {
        let p = obj(v);
        let mut item = Msg::default();
        if p.contains_key("$ref") {
            item.msg(2, json_reference(&p));
            return item;
        }
        let mut param = Msg::default();
        let within = p.get("in").and_then(Value::as_str).unwrap_or("");
        if within == "body" {
            // message BodyParameter: description = 1, name = 2, in = 3, required = 4, schema = 5, vendor_extension = 6.
            let mut b = Msg::default();
            b.s(1, &p, "description");
            b.s(2, &p, "name");
            b.s(3, &p, "in");
            b.b(4, &p, "required");
            if let Some(s) = p.get("schema") {
                b.msg(5, schema(s));
            }
            b.extensions(6, &p);
            param.msg(1, b);
        } else {
            // The four sub-schemas share required = 1, in = 2, description = 3, name = 4; query and formData
            // then have allow_empty_value = 5 and the primitive keywords from 6, header and path from 5.
            let (choice, first) = match within {
                "header" => (1, 5),
                "formData" => (2, 6),
                "query" => (3, 6),
                _ => (4, 5), // path
            };
            let mut sub = Msg::default();
            sub.b(1, &p, "required");
            sub.s(2, &p, "in");
            sub.s(3, &p, "description");
            sub.s(4, &p, "name");
            if first == 6 {
                sub.b(5, &p, "allowEmptyValue");
            }
            primitive_fields(&mut sub, &p, first);
            let mut non_body = Msg::default();
            non_body.msg(choice, sub);
            param.msg(2, non_body);
        }
        item.msg(1, param);
        item
    }

    /// The run of fields `PrimitivesItems` starts at 1 and the parameter sub-schemas at 5 or 6, in this
    /// order: type, format, items, collection_format, default, maximum, exclusive_maximum, minimum,
    /// exclusive_minimum, max_length, min_length, pattern, max_items, min_items, unique_items, enum,
    /// multiple_of, vendor_extension.
    fn primitive_fields(m: &mut Msg, o: &Map<String, Value>, first: u32) {
        let f = |i: u32| first + i;
        m.s(f(0), o, "type");
        m.s(f(1), o, "format");
        if let Some(items) = o.get("items").and_then(Value::as_object) {
            let mut p = Msg::default();
            primitive_fields(&mut p, items, 1);
            m.msg(f(2), p);
        }
        m.s(f(3), o, "collectionFormat");
        m.any(f(4), o, "default");
        m.d(f(5), o, "maximum");
        m.b(f(6), o, "exclusiveMaximum");
        m.d(f(7), o, "minimum");
        m.b(f(8), o, "exclusiveMinimum");
        m.i(f(9), o, "maxLength");
        m.i(f(10), o, "minLength");
        m.s(f(11), o, "pattern");
        m.i(f(12), o, "maxItems");
        m.i(f(13), o, "minItems");
        m.b(f(14), o, "uniqueItems");
        m.anys(f(15), o, "enum");
        m.d(f(16), o, "multipleOf");
        m.extensions(f(17), o);
    }

    /// `message Definitions` / `message Properties`: additional_properties = 1, each a NamedSchema
    /// (name = 1, value = 2).
    fn named_schemas(map: &Map<String, Value>) -> Msg {
        let mut m = Msg::default();
        for (name, s) in map {
            let mut named = Msg::default();
            named.string(1, name);
            named.msg(2, schema(s));
            m.msg(1, named);
        }
        m
    }

    /// `message Schema`: _ref = 1, format = 2, title = 3, description = 4, default = 5, multiple_of = 6,
    /// maximum = 7, exclusive_maximum = 8, minimum = 9, exclusive_minimum = 10, max_length = 11,
    /// min_length = 12, pattern = 13, max_items = 14, min_items = 15, unique_items = 16, max_properties = 17,
    /// min_properties = 18, required = 19, enum = 20, additional_properties = 21, type = 22, items = 23,
    /// all_of = 24, properties = 25, discriminator = 26, read_only = 27, xml = 28, external_docs = 29,
    /// example = 30, vendor_extension = 31.
    pub(super) fn schema(v: &Value) -> Msg {
        let s = obj(v);
        let mut m = Msg::default();
        m.s(1, &s, "$ref");
        m.s(2, &s, "format");
        m.s(3, &s, "title");
        m.s(4, &s, "description");
        m.any(5, &s, "default");
        m.d(6, &s, "multipleOf");
        m.d(7, &s, "maximum");
        m.b(8, &s, "exclusiveMaximum");
        m.d(9, &s, "minimum");
        m.b(10, &s, "exclusiveMinimum");
        m.i(11, &s, "maxLength");
        m.i(12, &s, "minLength");
        m.s(13, &s, "pattern");
        m.i(14, &s, "maxItems");
        m.i(15, &s, "minItems");
        m.b(16, &s, "uniqueItems");
        m.i(17, &s, "maxProperties");
        m.i(18, &s, "minProperties");
        m.strings(19, &s, "required");
        m.anys(20, &s, "enum");
        match s.get("additionalProperties") {
            // message AdditionalPropertiesItem { oneof { Schema schema = 1; bool boolean = 2; } }
            Some(Value::Bool(b)) => {
                let mut a = Msg::default();
                a.bool_always(2, *b);
                m.msg(21, a);
            }
            Some(sub @ Value::Object(_)) => {
                let mut a = Msg::default();
                a.msg(1, schema(sub));
                m.msg(21, a);
            }
            _ => {}
        }
        // message TypeItem { repeated string value = 1; }
        match s.get("type") {
            Some(Value::String(t)) => {
                let mut t_item = Msg::default();
                t_item.bytes(1, t.as_bytes());
                m.msg(22, t_item);
            }
            Some(Value::Array(_)) => {
                let mut t_item = Msg::default();
                t_item.strings(1, &s, "type");
                m.msg(22, t_item);
            }
            _ => {}
        }
        // message ItemsItem { repeated Schema schema = 1; }
        match s.get("items") {
            Some(Value::Array(items)) => {
                let mut i = Msg::default();
                for item in items {
                    i.msg(1, schema(item));
                }
                m.msg(23, i);
            }
            Some(item @ Value::Object(_)) => {
                let mut i = Msg::default();
                i.msg(1, schema(item));
                m.msg(23, i);
            }
            _ => {}
        }
        for sub in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            m.msg(24, schema(sub));
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            m.msg(25, named_schemas(props));
        }
        m.s(26, &s, "discriminator");
        m.b(27, &s, "readOnly");
        if let Some(e) = s.get("externalDocs") {
            m.msg(29, external_docs(e));
        }
        m.any(30, &s, "example");
        m.extensions(31, &s);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::from_slice(document_json()).unwrap()
    }

    #[test]
    fn json_is_swagger_2_with_definitions_and_patch_operations() {
        let d = doc();
        assert_eq!(d["swagger"], "2.0");
        let text = String::from_utf8_lossy(document_json());
        assert!(!text.contains("#/components/"), "every $ref points at #/definitions/");
        assert!(!text.contains("\"nullable\""));

        let pod = &d["definitions"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod[GVK], json!([{"group": "", "version": "v1", "kind": "Pod"}]));
        assert_eq!(pod["properties"]["spec"]["$ref"], "#/definitions/io.k8s.api.core.v1.PodSpec", "allOf wrapper became a $ref");
        assert!(pod["properties"]["spec"]["description"].as_str().unwrap().contains("desired behavior"));
        let containers = &d["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["items"]["$ref"], "#/definitions/io.k8s.api.core.v1.Container");
        assert_eq!(containers["type"], "array");
        assert_eq!(d["definitions"]["io.k8s.api.batch.v1.Job"][GVK], json!([{"group": "batch", "version": "v1", "kind": "Job"}]));

        let patch = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch[GVK], json!({"group": "", "version": "v1", "kind": "Pod"}));
        let fv = patch["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "fieldValidation").expect("fieldValidation");
        assert_eq!(fv["in"], "query");
        assert_eq!(fv["type"], "string");
        assert!(fv.get("schema").is_none());
        assert!(patch.get("consumes").is_none(), "no strategic-merge consumes: kubectl keeps its compiled-in patch metadata");
        assert_eq!(patch["responses"]["200"]["schema"]["$ref"], "#/definitions/io.k8s.api.core.v1.Pod");
        let item_params = d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["parameters"].as_array().unwrap().clone();
        assert!(item_params.contains(&json!({"name": "name", "in": "path", "required": true, "type": "string"})), "{item_params:?}");
        assert!(d["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs/{name}"]["patch"].is_object());
    }

    /// The constraints of kube-openapi's `proto.NewOpenAPIData` (pkg/util/proto/document.go), which kubectl
    /// applies to the whole document: one failing definition fails validation and explain for every kind.
    #[test]
    fn definitions_parse_as_kube_openapi_requires() {
        let d = doc();
        let defs = d["definitions"].as_object().unwrap();
        fn check(s: &Value, defs: &Map<String, Value>, at: &str) {
            let s = s.as_object().unwrap_or_else(|| panic!("{at}: a schema is an object"));
            if let Some(r) = s.get("$ref") {
                let name = r.as_str().unwrap().strip_prefix(V2_REF).unwrap_or_else(|| panic!("{at}: {r}"));
                assert!(defs.contains_key(name), "{at}: unknown model in reference {name}");
                assert!(!s.contains_key("type") && !s.contains_key("properties"), "{at}: $ref with type or properties");
                return;
            }
            match s.get("type") {
                None => {}
                Some(Value::String(t)) => assert!(["object", "array", "string", "number", "integer", "boolean"].contains(&t.as_str()), "{at}: {t}"),
                Some(t) => panic!("{at}: one type per schema: {t}"),
            }
            if s.get("type") == Some(&json!("array")) {
                assert!(s.get("items").is_some_and(Value::is_object), "{at}: an array has exactly one items schema");
                check(&s["items"], defs, &format!("{at}[]"));
            }
            for (k, p) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
                check(p, defs, &format!("{at}.{k}"));
            }
            if let Some(a @ Value::Object(_)) = s.get("additionalProperties") {
                check(a, defs, &format!("{at}{{}}"));
            }
            assert!(!s.contains_key("allOf"), "{at}: kube-openapi reads allOf as arbitrary");
        }
        for (name, s) in defs {
            check(s, defs, name);
        }
    }

    // A tiny protobuf reader, to check the encoding from the reader's side.
    #[derive(Debug)]
    enum F<'a> {
        Scalar,
        Bytes(&'a [u8]),
    }

    fn read_varint(b: &[u8], i: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[*i];
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    fn fields(b: &[u8]) -> Vec<(u64, F<'_>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let key = read_varint(b, &mut i);
            let f = match key & 7 {
                0 => {
                    read_varint(b, &mut i);
                    F::Scalar
                }
                1 => {
                    i += 8;
                    F::Scalar
                }
                2 => {
                    let n = read_varint(b, &mut i) as usize;
                    i += n;
                    F::Bytes(&b[i - n..i])
                }
                w => panic!("unexpected wire type {w}"),
            };
            out.push((key >> 3, f));
        }
        assert_eq!(i, b.len(), "fields end at the message's end");
        out
    }

    fn all(b: &[u8], n: u64) -> Vec<&[u8]> {
        fields(b).into_iter().filter(|(k, _)| *k == n).filter_map(|(_, f)| if let F::Bytes(b) = f { Some(b) } else { None }).collect()
    }

    fn one(b: &[u8], n: u64) -> &[u8] {
        let v = all(b, n);
        assert_eq!(v.len(), 1, "field {n} once");
        v[0]
    }

    fn text(b: &[u8], n: u64) -> String {
        all(b, n).first().map(|b| String::from_utf8(b.to_vec()).unwrap()).unwrap_or_default()
    }

    /// NamedAny/NamedPathItem/NamedSchema: name = 1, value = 2.
    fn named<'a>(list: Vec<&'a [u8]>, name: &str) -> Option<&'a [u8]> {
        list.into_iter().find(|m| text(m, 1) == name).map(|m| one(m, 2))
    }

    #[test]
    fn protobuf_decodes_to_the_document() {
        let b = document_protobuf();
        assert_eq!(text(b, 1), "2.0", "Document.swagger");
        assert_eq!(text(one(b, 2), 1), "Kubernetes", "Info.title");

        let paths = one(b, 8);
        let item = named(all(paths, 2), "/api/v1/namespaces/{namespace}/pods/{name}").expect("the Pod item path");
        let patch = one(item, 8); // PathItem.patch
        let gvk = named(all(patch, 13), GVK).expect("Operation.vendor_extension GVK");
        let yaml: Value = serde_json::from_str(&text(gvk, 2)).unwrap(); // Any.yaml
        assert_eq!(yaml, json!({"group": "", "version": "v1", "kind": "Pod"}));
        let query_names: Vec<String> = all(patch, 8) // Operation.parameters
            .into_iter()
            .map(|pi| one(one(pi, 1), 2)) // ParametersItem.parameter → Parameter.non_body_parameter
            .flat_map(|nb| all(nb, 3)) // NonBodyParameter.query_parameter_sub_schema
            .map(|q| text(q, 4)) // QueryParameterSubSchema.name
            .collect();
        assert!(query_names.contains(&"fieldValidation".to_string()), "{query_names:?}");
        // Path parameters sit on the path item: PathItem.parameters → … → path_parameter_sub_schema (4).
        let path_names: Vec<String> = all(item, 9).into_iter().flat_map(|pi| all(one(one(pi, 1), 2), 4)).map(|p| text(p, 4)).collect();
        assert_eq!(path_names, ["namespace", "name"]);

        let defs = one(b, 9);
        let pod_spec = named(all(defs, 1), "io.k8s.api.core.v1.PodSpec").expect("PodSpec definition");
        let containers = named(all(one(pod_spec, 25), 1), "containers").expect("PodSpec.properties.containers");
        assert!(text(containers, 4).starts_with("List of containers belonging to the pod"));
        assert_eq!(text(one(containers, 22), 1), "array", "Schema.type → TypeItem.value");
        assert_eq!(text(one(one(containers, 23), 1), 1), "#/definitions/io.k8s.api.core.v1.Container", "ItemsItem.schema._ref");
        let pod = named(all(defs, 1), "io.k8s.api.core.v1.Pod").unwrap();
        let kinds: Value = serde_json::from_str(&text(named(all(pod, 31), GVK).unwrap(), 2)).unwrap();
        assert_eq!(kinds, json!([{"group": "", "version": "v1", "kind": "Pod"}]));
    }

    #[test]
    fn accept_negotiation() {
        assert!(wants_protobuf(PROTOBUF_ACCEPT));
        assert!(wants_protobuf(PROTOBUF_CONTENT_TYPE));
        assert!(wants_protobuf("application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json"));
        assert!(!wants_protobuf("application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"));
        assert!(!wants_protobuf("application/com.github.proto-openapi.spec.v2@v1.0+protobuf;q=0, application/json"));
        assert!(!wants_protobuf(""));
        assert!(!wants_protobuf("*/*"));
    }
}
