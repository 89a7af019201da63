//! Conversion between core/v1 Event (the storage form) and events.k8s.io/v1 Event.
//!
//! Upstream stores one Event and serves both versions; the new version renames fields
//! (`k8s.io/kubernetes pkg/apis/events/v1/conversion.go`). The renames are one-to-one, so the
//! conversion is a key rename both ways.

use serde_json::{Map, Value};

/// (core/v1 field, events.k8s.io/v1 field)
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(obj: &mut Value, from_idx: usize, api_version: &str) {
    if let Some(map) = obj.as_object_mut() {
        let mut out = Map::with_capacity(map.len());
        for (k, v) in std::mem::take(map) {
            let key = RENAMES
                .iter()
                .find(|r| (if from_idx == 0 { r.0 } else { r.1 }) == k)
                .map(|r| if from_idx == 0 { r.1 } else { r.0 })
                .unwrap_or(&k)
                .to_string();
            out.insert(key, v);
        }
        out.insert("apiVersion".into(), Value::String(api_version.into()));
        *map = out;
    }
}

/// core/v1 → events.k8s.io/v1.
pub fn to_events_v1(obj: &mut Value) {
    rename(obj, 0, "events.k8s.io/v1");
}

/// events.k8s.io/v1 → core/v1.
pub fn to_core_v1(obj: &mut Value) {
    rename(obj, 1, "v1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let core = serde_json::json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "count": 2, "reason": "Started"});
        let mut v = core.clone();
        to_events_v1(&mut v);
        assert_eq!(v["regarding"]["name"], "p");
        assert_eq!(v["note"], "hi");
        assert_eq!(v["deprecatedCount"], 2);
        assert_eq!(v["apiVersion"], "events.k8s.io/v1");
        to_core_v1(&mut v);
        assert_eq!(v, core);
    }
}
