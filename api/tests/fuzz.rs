//! Property-based fuzzing of everything that parses untrusted input in k1s-api (issue 9, item 4): manifests
//! (JSON and YAML), Kubernetes protobuf, strategic merge patch and server-side apply, label and field selectors,
//! quantities. The property is the same everywhere: any input gives a value or an error, never a panic or a
//! stack overflow. Seeds are the real manifests in `tests/corpus`, mutated byte by byte.
//!
//! Bounded by default so `cargo test` stays fast; `PROPTEST_CASES=100000 cargo test -p k1s-api --test fuzz`
//! is the long form.

use proptest::prelude::*;
use serde_json::{json, Value};

use k1s_api::{protobuf, quantity, selectors, smp, ssa, validation, yaml};

/// The real manifests every mutation starts from (the API server's fuzz tests read them too).
pub const CORPUS: &[&str] = &[
    include_str!("corpus/pod.yaml"),
    include_str!("corpus/deployment.yaml"),
    include_str!("corpus/job.yaml"),
    include_str!("corpus/list.json"),
];

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// One edit of a byte string: overwrite, insert or delete at a position (taken modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    /// Repeat a slice in place (duplicated keys, longer lists).
    Duplicate(usize, usize),
    Truncate(usize),
}

/// Bytes YAML and JSON give meaning to, so mutations hit the grammar more often than random bytes do.
const SPECIAL: &[u8] = b"{}[]:,-\"'#&*!|>%@`\n \t0123456789.eE+-~?";

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![prop::sample::select(SPECIAL), any::<u8>()];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(p, b)| Edit::Set(p, b)),
        (any::<usize>(), byte).prop_map(|(p, b)| Edit::Insert(p, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Edit::Duplicate(p, n)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply_edits(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
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
fn mutated_manifest() -> impl Strategy<Value = Vec<u8>> {
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
fn json_value() -> impl Strategy<Value = Value> {
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

/// The corpus manifests as JSON objects (the originals patches apply to).
fn originals() -> Vec<Value> {
    CORPUS.iter().flat_map(|m| yaml::documents(m).expect("the corpus parses")).map(|d| d.object).collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn manifests_never_panic(bytes in mutated_manifest()) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = yaml::documents(&text);
        let _ = serde_json::from_slice::<Value>(&bytes);
    }

    #[test]
    fn arbitrary_text_as_manifest(text in ".{0,256}") {
        let _ = yaml::documents(&text);
    }

    #[test]
    fn strategic_merge_patch_never_panics(orig in 0usize..64, patch in json_value()) {
        let all = originals();
        let original = &all[orig % all.len()];
        let (group, kind) = group_kind(original);
        let _ = smp::apply(original, &patch, smp::meta_for(&group, &kind));
        // And the patch dropped into the spec, where the merge keys are.
        let _ = smp::apply(original, &json!({"spec": patch}), smp::meta_for(&group, &kind));
    }

    #[test]
    fn server_side_apply_never_panics(orig in 0usize..64, spec in json_value(), force in any::<bool>()) {
        let all = originals();
        let live = &all[orig % all.len()];
        let (group, kind) = group_kind(live);
        let meta = smp::meta_for(&group, &kind);
        let applied = json!({"apiVersion": live["apiVersion"], "kind": live["kind"], "metadata": {"name": live["metadata"]["name"]}, "spec": spec});
        let _ = ssa::apply(None, &applied, "fuzz", force, meta, "2026-01-01T00:00:00Z");
        if let Ok(first) = ssa::apply(Some(live), &applied, "fuzz", force, meta, "2026-01-01T00:00:00Z") {
            let _ = ssa::apply(Some(&first), &applied, "other", force, meta, "2026-01-01T00:00:01Z");
        }
        // The applied configuration itself arbitrary.
        let _ = ssa::apply(Some(live), &spec, "fuzz", force, meta, "2026-01-01T00:00:00Z");
    }

    #[test]
    fn label_selectors_never_panic(s in "[a-z0-9A-Z./_ -]{0,8}([=!<>,() ]{0,3}[a-z0-9./_ -]{0,8}){0,6}|.{0,64}") {
        if let Ok(sel) = selectors::LabelSelector::parse(&s) {
            let labels = [("app".to_string(), "web".to_string()), ("tier".to_string(), "a".to_string())].into_iter().collect();
            let _ = sel.matches(&labels);
        }
        if let Ok(sel) = selectors::FieldSelector::parse(&s) {
            let _ = sel.matches(|f| f.to_string());
            let _ = sel.check_supported(&["metadata.name", "metadata.namespace"]);
        }
    }

    #[test]
    fn label_selector_objects_never_panic(v in json_value()) {
        let _ = selectors::LabelSelector::from_label_selector_json(&v);
        let _ = selectors::LabelSelector::from_label_selector_json(&json!({"matchExpressions": [v]}));
    }

    #[test]
    fn quantities_never_panic(s in "[-+]?[0-9]{0,40}(\\.[0-9]{0,40})?([numkMGTPE]i?|[eE][-+]?[0-9]{1,12})?|.{0,24}", exp in -64i32..64) {
        let _ = quantity::scaled(&s, exp);
        let _ = validation::parse_quantity(&s);
    }

    #[test]
    fn whole_numbers_scale_exactly(n in 0i64..(1 << 50)) {
        prop_assert_eq!(quantity::scaled(&n.to_string(), 0), Some(n));
        prop_assert_eq!(quantity::scaled(&format!("{n}m"), 3), Some(n));
    }

    #[test]
    fn protobuf_never_panics(kind in prop::sample::select(PROTOBUF_KINDS), raw in proto_message(), tail in prop::collection::vec(edit(), 0..4)) {
        let (api_version, kind) = kind;
        let envelope = apply_edits(envelope(api_version, kind, &raw), &tail);
        let _ = protobuf::decode(&envelope);
        let _ = protobuf::decode(&raw);
    }

    #[test]
    fn protobuf_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut b = b"k8s\0".to_vec();
        b.extend_from_slice(&bytes);
        let _ = protobuf::decode(&b);
    }
}

fn group_kind(obj: &Value) -> (String, String) {
    let av = obj["apiVersion"].as_str().unwrap_or("v1");
    let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    (group.to_string(), obj["kind"].as_str().unwrap_or("").to_string())
}

/// The kinds the protobuf decoder knows (and one it does not).
const PROTOBUF_KINDS: &[(&str, &str)] = &[
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

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn field_bytes(buf: &mut Vec<u8>, num: u32, data: &[u8]) {
    varint(buf, (u64::from(num) << 3) | 2);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// A `runtime.Unknown` envelope: typeMeta (apiVersion, kind), raw, contentEncoding, contentType.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
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

fn proto_message() -> impl Strategy<Value = Vec<u8>> {
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

// ---------------------------------------------------------------------------------------------
// Deep nesting and size: errors, not stack overflows
// ---------------------------------------------------------------------------------------------

#[test]
fn deeply_nested_yaml_and_json_are_errors_not_stack_overflows() {
    let depth = 100_000;
    // Unclosed, so each must be an error; what matters is that finding out does not recurse 100 000 deep.
    let unclosed = ["[".repeat(depth), "{\"a\":".repeat(depth), format!("a: {}", "[".repeat(depth)), format!("a: {}", "{b: ".repeat(depth))];
    for text in &unclosed {
        assert!(yaml::documents(text).is_err(), "{} bytes of unclosed nesting parsed", text.len());
    }
    // Well-formed but deep: a YAML block sequence nested 100 000 times ("- - - … x"), and nested mappings.
    let deep_seq = format!("{}x\n", "- ".repeat(depth));
    let deep_map: String = (0..2_000).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    for text in [&deep_seq, &deep_map] {
        if let Ok(docs) = yaml::documents(text) {
            // Accepted: then it was within the parser's depth budget and is an ordinary value.
            assert_eq!(docs.len(), 1);
        }
    }
}

#[test]
fn deeply_nested_protobuf_is_an_error_not_a_stack_overflow() {
    // A message nested in field 1 a hundred thousand times.
    let mut raw = Vec::new();
    for _ in 0..100_000 {
        let mut outer = Vec::new();
        field_bytes(&mut outer, 1, &raw);
        raw = outer;
    }
    for (api_version, kind) in PROTOBUF_KINDS {
        let _ = protobuf::decode(&envelope(api_version, kind, &raw));
    }
}

#[test]
fn yaml_alias_bombs_are_refused() {
    // "Billion laughs": each level doubles the size; expanding it must be refused, not attempted.
    let mut text = String::from("a0: &a0 [\"lol\", \"lol\"]\n");
    for i in 1..40 {
        text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}]\n", p = i - 1));
    }
    assert!(yaml::documents(&text).is_err(), "an alias bomb expanded");
}

#[test]
fn huge_numbers_of_keys_parse() {
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: many\ndata:\n");
    for i in 0..100_000 {
        text.push_str(&format!("  k{i}: v\n"));
    }
    let docs = yaml::documents(&text).expect("a large but flat manifest parses");
    assert_eq!(docs[0].object["data"].as_object().unwrap().len(), 100_000);
    let sel = (0..10_000).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
    assert!(selectors::LabelSelector::parse(&sel).is_ok());
}
