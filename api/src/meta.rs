//! Small helpers over objects held as JSON: metadata access and Kubernetes timestamps.

use serde_json::{Map, Value};

/// Now, as a Kubernetes `metav1.Time` (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    now_plus(0)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `now() + secs`, for deletionTimestamp = now + grace period.
pub fn now_plus(secs: i64) -> String {
    // jiff's `Timestamp::now` needs its `std` feature, which k8s-openapi does not enable.
    let t = k8s_openapi::jiff::Timestamp::from_second(unix_now() + secs).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    format_time(t)
}

fn format_time(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parse a `metav1.Time`.
pub fn parse_time(s: &str) -> Option<k8s_openapi::jiff::Timestamp> {
    s.parse().ok()
}

/// `obj.metadata`, created if absent (a non-object `metadata` is replaced: validation reports it first).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let m = obj.as_object_mut().expect("object").entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut().expect("object")
}

/// A string field of `metadata`, "" when absent.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or("")
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

/// Set `obj[path...] = value`, creating objects along the way.
pub fn set_path(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for (i, seg) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let map = cur.as_object_mut().expect("object");
        if i + 1 == path.len() {
            map.insert(seg.to_string(), value);
            return;
        }
        cur = map.entry(seg.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Set `obj[path...] = value` only when absent or null (defaulting).
pub fn default_path(obj: &mut Value, path: &[&str], value: Value) {
    let ptr: String = path.iter().map(|s| format!("/{s}")).collect();
    if obj.pointer(&ptr).is_none_or(Value::is_null) {
        set_path(obj, path, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_is_whole_seconds_utc() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
        assert!(parse_time(&t).is_some());
        assert!(parse_time(&now_plus(30)).unwrap() > parse_time(&t).unwrap());
    }

    #[test]
    fn paths() {
        let mut v = serde_json::json!({});
        set_path(&mut v, &["spec", "a", "b"], 1.into());
        default_path(&mut v, &["spec", "a", "b"], 2.into());
        default_path(&mut v, &["spec", "c"], 3.into());
        assert_eq!(v, serde_json::json!({"spec": {"a": {"b": 1}, "c": 3}}));
    }
}
