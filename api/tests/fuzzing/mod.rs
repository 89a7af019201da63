//! Strategies the fuzz tests of k1s-api and k1s-apiserver share (the API server's includes this file by path):
//! the manifest corpus, byte-level mutations of it, and arbitrary JSON shaped like Kubernetes objects and patches.
#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::Value;

/// The real manifests every mutation starts from (the API server's fuzz tests read them too).
pub const CORPUS: &[&str] = &[
    include_str!("../corpus/pod.yaml"),
    include_str!("../corpus/deployment.yaml"),
    include_str!("../corpus/job.yaml"),
    include_str!("../corpus/list.json"),
];

pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// One edit of a byte string: overwrite, insert or delete at a position (taken modulo the length).
#[derive(Debug, Clone)]
pub enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    /// Repeat a slice in place (duplicated keys, longer lists).
    Duplicate(usize, usize),
    Truncate(usize),
}

/// Bytes YAML and JSON give meaning to, so mutations hit the grammar more often than random bytes do.
const SPECIAL: &[u8] = b"{}[]:,-\"'#&*!|>%@`\n \t0123456789.eE+-~?";

pub fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![prop::sample::select(SPECIAL), any::<u8>()];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(p, b)| Edit::Set(p, b)),
        (any::<usize>(), byte).prop_map(|(p, b)| Edit::Insert(p, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Edit::Duplicate(p, n)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

pub fn apply_edits(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = b.len().max(1);
        match *e {
            Edit::Set(p, x) if !b.is_empty() => b[p % n] = x,
            Edit::Insert(p, x) => b.insert(p % (b.len() + 1), x),
            Edit::Delete(p) if !b.is_empty() => {
                b.remove(p % n);
            }
            Edit::Duplicate(p, len) if !b.is_empty() => {
                let start = p % n;
                let end = (start + len).min(b.len());
                let chunk = b[start..end].to_vec();
                b.splice(start..start, chunk);
            }
            Edit::Truncate(p) => b.truncate(p % (b.len() + 1)),
            _ => {}
        }
    }
    b
}

/// A corpus manifest with a few edits.
pub fn mutated_manifest() -> impl Strategy<Value = Vec<u8>> {
    (prop::sample::select(CORPUS), prop::collection::vec(edit(), 0..8))
        .prop_map(|(m, edits)| apply_edits(m.as_bytes().to_vec(), &edits))
}

/// Keys that mean something to patches, selectors and the registry, and some that mean nothing.
const KEYS: &[&str] = &[
    "apiVersion", "kind", "metadata", "name", "namespace", "labels", "annotations", "spec", "status", "containers",
    "initContainers", "env", "ports", "containerPort", "protocol", "volumes", "volumeMounts", "mountPath", "image",
    "args", "command", "resources", "requests", "limits", "cpu", "memory", "template", "selector", "matchLabels",
    "matchExpressions", "key", "operator", "values", "conditions", "type", "finalizers", "ownerReferences",
    "managedFields", "$patch", "$retainKeys", "$setElementOrder/containers", "$setElementOrder/env",
    "$deleteFromPrimitiveList/finalizers", "$deleteFromPrimitiveList/args", "tolerations", "data", "x", "",
];

/// Arbitrary JSON, biased toward Kubernetes-shaped keys and patch directives.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop::sample::select(&["replace", "merge", "delete", "deleteFromPrimitiveList", "a", "", "In", "Exists"][..]).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// The kinds the protobuf decoder knows (and one it does not).
pub const PROTOBUF_KINDS: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Namespace"),
    ("v1", "Event"),
    ("v1", "Node"),
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("coordination.k8s.io/v1", "Lease"),
    ("v1", "Service"),
];

pub fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn field_bytes(buf: &mut Vec<u8>, num: u32, data: &[u8]) {
    varint(buf, (u64::from(num) << 3) | 2);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// A `runtime.Unknown` envelope: typeMeta (apiVersion, kind), raw, contentEncoding, contentType.
pub fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut tm = Vec::new();
    field_bytes(&mut tm, 1, api_version.as_bytes());
    field_bytes(&mut tm, 2, kind.as_bytes());
    let mut out = b"k8s\0".to_vec();
    field_bytes(&mut out, 1, &tm);
    field_bytes(&mut out, 2, raw);
    out
}

/// One protobuf field: any number, any wire type; length-delimited ones hold text or a nested message.
#[derive(Debug, Clone)]
enum Field {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Fixed32(u32, u32),
    Bytes(u32, Vec<u8>),
    Message(u32, Vec<Field>),
    /// A wire type that does not exist, or a truncated length: malformed on purpose.
    Raw(Vec<u8>),
}

fn encode(fields: &[Field], buf: &mut Vec<u8>) {
    for f in fields {
        match f {
            Field::Varint(n, v) => {
                varint(buf, u64::from(*n) << 3);
                varint(buf, *v);
            }
            Field::Fixed64(n, v) => {
                varint(buf, (u64::from(*n) << 3) | 1);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Field::Fixed32(n, v) => {
                varint(buf, (u64::from(*n) << 3) | 5);
                buf.extend_from_slice(&v.to_le_bytes());
            }
            Field::Bytes(n, b) => field_bytes(buf, *n, b),
            Field::Message(n, inner) => {
                let mut b = Vec::new();
                encode(inner, &mut b);
                field_bytes(buf, *n, &b);
            }
            Field::Raw(b) => buf.extend_from_slice(b),
        }
    }
}

/// Small field numbers (the ones Kubernetes messages use) most of the time.
fn field_number() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 1u32..20, 1 => 0u32..=u32::MAX >> 3]
}

pub fn proto_message() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        (field_number(), any::<u64>()).prop_map(|(n, v)| Field::Varint(n, v)),
        (field_number(), any::<u64>()).prop_map(|(n, v)| Field::Fixed64(n, v)),
        (field_number(), any::<u32>()).prop_map(|(n, v)| Field::Fixed32(n, v)),
        (field_number(), prop_oneof![".{0,16}".prop_map(String::into_bytes), prop::collection::vec(any::<u8>(), 0..16)])
            .prop_map(|(n, b)| Field::Bytes(n, b)),
        prop::collection::vec(any::<u8>(), 1..6).prop_map(Field::Raw),
    ];
    let field = leaf.prop_recursive(8, 96, 6, |inner| {
        (field_number(), prop::collection::vec(inner, 0..6)).prop_map(|(n, fs)| Field::Message(n, fs))
    });
    prop::collection::vec(field, 0..8).prop_map(|fs| {
        let mut b = Vec::new();
        encode(&fs, &mut b);
        b
    })
}
