//! The table of resources k1s serves: names, scope, short names, subresources, field selector labels.
//!
//! Discovery, routing and storage keys are all derived from this one table, so a kind is served
//! everywhere or nowhere.

use serde_json::Value;

use crate::selectors::field_value;

/// One served resource (a group/version/plural).
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served by the registry (e.g. "status", "binding").
    pub subresources: &'static [&'static str],
    /// The storage prefix. Two versions of one resource (core/v1 and events.k8s.io/v1 events) share it.
    pub storage: &'static str,
    /// Field selector labels besides metadata.name / metadata.namespace.
    pub field_labels: &'static [&'static str],
    /// Served for reading only (get, list, watch): the kind is known to clients, but k1s does not implement
    /// it yet, so writes are refused with a message saying so instead of storing objects nothing acts on.
    pub read_only: bool,
}

pub const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
pub const READ_VERBS: &[&str] = &["get", "list", "watch"];

impl ResourceInfo {
    /// `v1` or `batch/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The name upstream uses in messages: `pods`, `jobs.batch`.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        if self.read_only {
            READ_VERBS
        } else {
            VERBS
        }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// Every field label this resource supports in a `fieldSelector`.
    pub fn all_field_labels(&self) -> Vec<&'static str> {
        let mut v = vec!["metadata.name"];
        if self.namespaced {
            v.push("metadata.namespace");
        }
        v.extend_from_slice(self.field_labels);
        v
    }

    /// The value of a field label for an object in its storage form.
    pub fn field(&self, obj: &Value, label: &str) -> String {
        match (self.storage, label) {
            ("core/pods", "spec.hostNetwork") => {
                if obj.pointer("/spec/hostNetwork").and_then(Value::as_bool).unwrap_or(false) { "true" } else { "false" }
                    .to_string()
            }
            ("core/nodes", "spec.unschedulable") => {
                if obj.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false) { "true" } else { "false" }
                    .to_string()
            }
            ("core/events", "source") => field_value(obj, "source.component"),
            ("core/events", l) if l.starts_with("regarding.") => field_value(obj, &l.replacen("regarding.", "involvedObject.", 1)),
            ("core/events", "reportingController") => field_value(obj, "reportingComponent"),
            ("apps/replicasets", "status.replicas") => obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0).to_string(),
            ("batch/jobs", "status.successful") => obj.pointer("/status/succeeded").and_then(Value::as_i64).unwrap_or(0).to_string(),
            _ => field_value(obj, label),
        }
    }
}

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

const EVENTS_K8S_IO_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingComponent",
    "reportingController",
    "source",
    "type",
];

pub static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &["status"],
        storage: "core/namespaces",
        field_labels: &["status.phase"],
        read_only: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &["status", "binding", "ephemeralcontainers"],
        storage: "core/pods",
        field_labels: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        read_only: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &["status"],
        storage: "core/nodes",
        field_labels: &["spec.unschedulable"],
        read_only: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        storage: "core/events",
        field_labels: EVENT_FIELDS,
        read_only: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        storage: "core/configmaps",
        field_labels: &[],
        read_only: false,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage: "core/secrets",
        field_labels: &["type"],
        read_only: false,
    },
    ResourceInfo {
        // Listed so that `kubectl cluster-info` (which lists kube-system services) and `get svc` work; there is
        // no service proxy yet, so creating one is refused rather than accepted and silently not routed.
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[],
        storage: "core/services",
        field_labels: &["spec.clusterIP", "spec.type"],
        read_only: true,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &["status", "scale"],
        storage: "apps/deployments",
        field_labels: &[],
        read_only: false,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &["status", "scale"],
        storage: "apps/replicasets",
        field_labels: &["status.replicas"],
        read_only: false,
    },
    ResourceInfo {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        subresources: &["status"],
        storage: "batch/jobs",
        field_labels: &["status.successful"],
        read_only: false,
    },
    ResourceInfo {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage: "coordination.k8s.io/leases",
        field_labels: &[],
        read_only: false,
    },
    ResourceInfo {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        storage: "core/events",
        field_labels: EVENTS_K8S_IO_FIELDS,
        read_only: false,
    },
];

/// Look a resource up by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind in a group/version (`"v1"`, `"Pod"`).
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Groups in discovery order, each with its versions (most preferred first).
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) if !vs.contains(&r.version) => vs.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// The resources of one group/version.
pub fn in_group_version<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    RESOURCES.iter().filter(move |r| r.group == group && r.version == version)
}

/// The resources stored under one storage prefix, for cluster-wide sweeps (namespace deletion).
pub fn storage_resources() -> Vec<&'static ResourceInfo> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for r in RESOURCES {
        if !seen.contains(&r.storage) {
            seen.push(r.storage);
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(find("", "v1", "pods").unwrap().kind, "Pod");
        assert_eq!(find("batch", "v1", "jobs").unwrap().group_resource(), "jobs.batch");
        assert_eq!(find_kind("batch/v1", "Job").unwrap().plural, "jobs");
        assert!(find("batch", "v2", "jobs").is_none());
        assert_eq!(groups().iter().map(|g| g.0).collect::<Vec<_>>(), ["apps", "batch", "coordination.k8s.io", "events.k8s.io"]);
        assert_eq!(storage_resources().iter().filter(|r| r.storage == "core/events").count(), 1);
    }

    #[test]
    fn field_labels_with_defaults() {
        let pods = find("", "v1", "pods").unwrap();
        let pod = serde_json::json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert_eq!(pods.field(&pod, "spec.hostNetwork"), "false");
        assert_eq!(pods.field(&pod, "spec.nodeName"), "n1");
        let ev = find("events.k8s.io", "v1", "events").unwrap();
        let e = serde_json::json!({"involvedObject": {"name": "p"}, "source": {"component": "kubelet"}});
        assert_eq!(ev.field(&e, "regarding.name"), "p");
        assert_eq!(ev.field(&e, "source"), "kubelet");
    }
}
