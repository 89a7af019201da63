//! Events: conversion between core/v1 Event (the storage form) and events.k8s.io/v1 Event, the deprecated
//! core fields of new-style Events, and when an Event was last seen (expiry, ordering).
//!
//! Upstream stores one Event and serves both versions; the new version renames fields
//! (`k8s.io/kubernetes pkg/apis/events/v1/conversion.go`). The renames are one-to-one, so the
//! conversion is a key rename both ways.

use serde_json::{json, Map, Value};

use crate::meta::parse_time;

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

/// When an Event (either version's form) was last seen: the newest of `lastTimestamp`, `series.lastObservedTime`
/// and `eventTime`; `metadata.creationTimestamp` when it carries none of them. `kubectl get events` ordering goes by
/// it; expiry by it or the creation, whichever is later (see the API server's event sweep).
pub fn last_seen(obj: &Value) -> Option<k8s_openapi::jiff::Timestamp> {
    let time = |p: &str| obj.pointer(p).and_then(Value::as_str).and_then(parse_time);
    ["/lastTimestamp", "/deprecatedLastTimestamp", "/series/lastObservedTime", "/eventTime"]
        .iter()
        .filter_map(|p| time(p))
        .max()
        .or_else(|| time("/metadata/creationTimestamp"))
}

fn whole_seconds(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Fill the deprecated core/v1 fields of a new-style Event (one with `eventTime`, as events.k8s.io/v1 writers such as
/// kube's `Recorder` send) from the fields that replaced them, so the core/v1 view answers like an old-style one:
/// `firstTimestamp` = `eventTime`, `lastTimestamp` = `series.lastObservedTime` (else `eventTime`), `count` =
/// `series.count` (else 1), `source.component` = `reportingComponent`. A field the writer set is kept; on an update
/// (`old` given) whose `series` moved on, `lastTimestamp` and `count` follow it unless the writer changed them too.
/// Old-style Events (no `eventTime`: the agent's, client-go's legacy recorder) are the writer's business and untouched.
pub fn fill_deprecated(ev: &mut Value, old: Option<&Value>) {
    let Some(event_time) = ev.get("eventTime").and_then(Value::as_str).and_then(parse_time) else { return };
    let series = ev.get("series").filter(|s| s.is_object());
    let last = series.and_then(|s| s.get("lastObservedTime")).and_then(Value::as_str).and_then(parse_time).unwrap_or(event_time);
    let count = series.and_then(|s| s.get("count")).and_then(Value::as_i64).filter(|c| *c > 0).unwrap_or(1);
    let series_moved = old.is_some_and(|o| o.get("series") != ev.get("series"));
    let follow = |ev: &Value, field: &str| {
        let absent = ev.get(field).is_none_or(|v| v.is_null() || v == &json!(0));
        absent || (series_moved && old.is_some_and(|o| o.get(field) == ev.get(field)))
    };
    let first_absent = ev.get("firstTimestamp").is_none_or(Value::is_null);
    let (set_last, set_count) = (follow(ev, "lastTimestamp"), follow(ev, "count"));
    let Some(m) = ev.as_object_mut() else { return };
    if first_absent {
        m.insert("firstTimestamp".into(), Value::String(whole_seconds(event_time)));
    }
    if set_last {
        m.insert("lastTimestamp".into(), Value::String(whole_seconds(last)));
    }
    if set_count {
        m.insert("count".into(), json!(count));
    }
    let controller = m.get("reportingComponent").and_then(Value::as_str).unwrap_or("").to_string();
    if !controller.is_empty() {
        let source = m.entry("source").or_insert_with(|| json!({}));
        if !source.is_object() {
            *source = json!({});
        }
        if source.get("component").and_then(Value::as_str).unwrap_or("").is_empty() {
            source["component"] = Value::String(controller);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_seen_is_the_newest_time_in_either_form_else_the_creation() {
        let t = |s: &str| parse_time(s).unwrap();
        let cases: &[(Value, Option<&str>)] = &[
            (json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}}), Some("2026-01-01T00:00:00Z")),
            (json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "lastTimestamp": "2026-01-01T00:05:00Z"}), Some("2026-01-01T00:05:00Z")),
            // Written later than it happened (a relayed or replayed Event): it is ordered by when it happened.
            (json!({"metadata": {"creationTimestamp": "2026-01-01T01:00:00Z"}, "lastTimestamp": "2026-01-01T00:05:00Z"}), Some("2026-01-01T00:05:00Z")),
            (json!({"eventTime": "2026-01-01T00:01:00.123456Z", "series": {"count": 3, "lastObservedTime": "2026-01-01T00:09:00.000001Z"}}), Some("2026-01-01T00:09:00.000001Z")),
            (json!({"deprecatedLastTimestamp": "2026-01-01T00:02:00Z", "eventTime": "2026-01-01T00:01:00Z"}), Some("2026-01-01T00:02:00Z")),
            (json!({"lastTimestamp": null}), None),
        ];
        for (ev, want) in cases {
            assert_eq!(last_seen(ev), want.map(t), "{ev}");
        }
    }

    #[test]
    fn deprecated_fields_of_new_style_events() {
        // A Recorder's first POST (events.k8s.io/v1, stored as core/v1).
        let mut ev = json!({"eventTime": "2026-01-01T00:00:01.500000Z", "reportingComponent": "job-controller", "reason": "Completed"});
        fill_deprecated(&mut ev, None);
        assert_eq!(ev["firstTimestamp"], "2026-01-01T00:00:01Z");
        assert_eq!(ev["lastTimestamp"], "2026-01-01T00:00:01Z");
        assert_eq!(ev["count"], 1);
        assert_eq!(ev["source"], json!({"component": "job-controller"}));

        // Its merge PATCH on a repeat moves the series on: lastTimestamp and count follow.
        let old = ev.clone();
        ev["series"] = json!({"count": 2, "lastObservedTime": "2026-01-01T00:03:00.000000Z"});
        fill_deprecated(&mut ev, Some(&old));
        assert_eq!((ev["lastTimestamp"].as_str(), ev["count"].as_i64()), (Some("2026-01-01T00:03:00Z"), Some(2)));
        assert_eq!(ev["firstTimestamp"], "2026-01-01T00:00:01Z");

        // A writer that sets the deprecated fields itself keeps them.
        let old = ev.clone();
        ev["series"] = json!({"count": 3, "lastObservedTime": "2026-01-01T00:04:00Z"});
        ev["count"] = json!(7);
        fill_deprecated(&mut ev, Some(&old));
        assert_eq!((ev["lastTimestamp"].as_str(), ev["count"].as_i64()), (Some("2026-01-01T00:04:00Z"), Some(7)));

        // Old-style Events are the writer's business.
        let mut legacy = json!({"reason": "Started", "count": 1, "lastTimestamp": null});
        let before = legacy.clone();
        fill_deprecated(&mut legacy, None);
        assert_eq!(legacy, before);

        // A source the writer set is kept.
        let mut ev = json!({"eventTime": "2026-01-01T00:00:00Z", "reportingComponent": "x", "source": {"component": "kubelet", "host": "n"}});
        fill_deprecated(&mut ev, None);
        assert_eq!(ev["source"], json!({"component": "kubelet", "host": "n"}));
    }

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
