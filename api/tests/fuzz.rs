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

mod fuzzing;
use fuzzing::{apply_edits, config, edit, envelope, field_bytes, json_value, mutated_manifest, proto_message, CORPUS, PROTOBUF_KINDS};

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
