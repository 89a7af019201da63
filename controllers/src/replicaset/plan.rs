//! The ReplicaSet controller's pure core (upstream `pkg/controller/replicaset`: `manageReplicas`,
//! `calculateStatus`, `getPodsToDelete`, the controller ref manager's adopt/release): from a ReplicaSet, the Pods
//! of its namespace that it owns or could adopt, and whether earlier writes have been observed, decide what to
//! adopt, release, create and delete, and what the status is.

use std::cmp::Ordering;
use std::time::Duration;

use k1s_api::selectors::LabelSelector;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

/// Upstream's `BurstReplicas`: at most this many creations or deletions per sync.
pub const BURST_REPLICAS: usize = 500;

/// A Pod named for an API call (uid for preconditions, resourceVersion for conditional patches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub uid: String,
    pub resource_version: String,
}

impl PodRef {
    pub fn of(p: &Pod) -> Self {
        PodRef {
            name: p.metadata.name.clone().unwrap_or_default(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            resource_version: p.metadata.resource_version.clone().unwrap_or_default(),
        }
    }
}

/// What one sync does.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Orphans matching the selector: take a controller reference.
    pub adopt: Vec<PodRef>,
    /// Owned Pods that no longer match the selector: drop our reference.
    pub release: Vec<PodRef>,
    /// How many Pods to create from the template.
    pub create: usize,
    /// Pods to delete, least valuable first.
    pub delete: Vec<PodRef>,
    pub status: ReplicaSetStatus,
    /// Sync again after this long (a Pod becomes available once `minReadySeconds` have passed).
    pub requeue_after: Option<Duration>,
}

pub struct Input<'a> {
    pub rs: &'a ReplicaSet,
    /// The Pods of the ReplicaSet's namespace it controls (by uid) or that have no controller.
    pub pods: Vec<&'a Pod>,
    pub expectations_met: bool,
    pub now: Timestamp,
}

/// The ReplicaSet's controller reference on a Pod.
pub fn controller_ref(rs: &ReplicaSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: rs.metadata.name.clone().unwrap_or_default(),
        uid: rs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The uid of a Pod's controller, if it has one.
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| o.uid.as_str())
}

/// A Pod that counts toward the replicas: not being deleted and not finished (upstream `FilterActivePods`).
pub fn is_active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    p.metadata.deletion_timestamp.is_none() && phase != "Succeeded" && phase != "Failed"
}

fn ready_since(p: &Pod) -> Option<Option<Timestamp>> {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(p: &Pod) -> bool {
    ready_since(p).is_some()
}

/// Ready for at least `min_ready` seconds (upstream `IsPodAvailable`).
pub fn is_available(p: &Pod, min_ready: i32, now: Timestamp) -> bool {
    match ready_since(p) {
        None => false,
        Some(_) if min_ready <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => t.as_second() + i64::from(min_ready) <= now.as_second(),
    }
}

fn labels_match(selector: &LabelSelector, meta: &ObjectMeta) -> bool {
    selector.matches(&meta.labels.clone().unwrap_or_default())
}

fn phase_rank(p: &Pod) -> u8 {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1,
    }
}

fn restarts(p: &Pod) -> i32 {
    p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0)).unwrap_or(0)
}

/// Upstream `ActivePods` ordering (`controller.ActivePods.Less`), the least valuable first: unscheduled before
/// scheduled, Pending before Unknown before Running, not ready before ready, ready for less time first, more
/// restarts first, newer first. (The rank by Pods per node is the same for every Pod on one node.)
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let node = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    node(a)
        .cmp(&node(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| match (ready_since(a).flatten(), ready_since(b).flatten()) {
            // Ready for less time (a later transition) is less valuable.
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
}

/// Plan one sync of a ReplicaSet.
pub fn plan(input: &Input) -> Plan {
    let rs = input.rs;
    let uid = rs.metadata.uid.as_deref().unwrap_or("");
    let spec = rs.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let selector = spec
        .and_then(|s| serde_json::to_value(&s.selector).ok())
        .and_then(|v| LabelSelector::from_label_selector_json(&v).ok())
        .filter(|s| !s.is_empty());
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut out = Plan::default();
    let mut owned: Vec<&Pod> = Vec::new();
    for p in &input.pods {
        let matches = selector.as_ref().is_some_and(|s| labels_match(s, &p.metadata));
        match controller_uid(&p.metadata) {
            Some(u) if u == uid => {
                // A Pod that stopped matching is released (unless we are going away: the GC handles it then).
                if !matches && !deleting && p.metadata.deletion_timestamp.is_none() {
                    out.release.push(PodRef::of(p));
                } else {
                    owned.push(p);
                }
            }
            Some(_) => {}
            None => {
                // Upstream adopts only while the owner is alive and the orphan is not being deleted.
                if matches && !deleting && p.metadata.deletion_timestamp.is_none() {
                    out.adopt.push(PodRef::of(p));
                    owned.push(p);
                }
            }
        }
    }
    let mut active: Vec<&Pod> = owned.iter().copied().filter(|p| is_active(p)).collect();
    if input.expectations_met && !deleting {
        if active.len() < replicas {
            out.create = (replicas - active.len()).min(BURST_REPLICAS);
        } else if active.len() > replicas {
            let n = (active.len() - replicas).min(BURST_REPLICAS);
            active.sort_by(|a, b| deletion_order(a, b));
            out.delete = active.iter().take(n).map(|p| PodRef::of(p)).collect();
        }
    }
    // Status from what is observed now (upstream `calculateStatus`: the Pods before this sync's changes).
    let template_labels = spec.and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    let all_active: Vec<&Pod> = owned.iter().copied().filter(|p| is_active(p)).collect();
    let fully_labeled = all_active
        .iter()
        .filter(|p| {
            let l = p.metadata.labels.clone().unwrap_or_default();
            template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .count();
    let ready = all_active.iter().filter(|p| is_ready(p)).count();
    let available = all_active.iter().filter(|p| is_available(p, min_ready, input.now)).count();
    if min_ready > 0 && available < ready {
        // Come back when the next ready Pod has been ready long enough.
        let soonest = all_active
            .iter()
            .filter(|p| is_ready(p) && !is_available(p, min_ready, input.now))
            .filter_map(|p| ready_since(p).flatten())
            .map(|t| t.as_second() + i64::from(min_ready) - input.now.as_second())
            .min()
            .unwrap_or(1)
            .max(1);
        out.requeue_after = Some(Duration::from_secs(soonest as u64));
    }
    let old = rs.status.clone().unwrap_or_default();
    out.status = ReplicaSetStatus {
        replicas: all_active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled as i32),
        ready_replicas: Some(ready as i32),
        available_replicas: Some(available as i32),
        observed_generation: rs.metadata.generation,
        conditions: old.conditions,
        ..Default::default()
    };
    out
}

/// The Pod to create from a ReplicaSet's template (upstream `GetPodFromTemplate`): the template's labels,
/// annotations and spec, `generateName` `<rs>-`, and the controller reference that blocks the owner's
/// foreground deletion.
pub fn new_pod(rs: &ReplicaSet) -> Pod {
    let template: PodTemplateSpec = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name.as_deref().unwrap_or(""))),
            namespace: rs.metadata.namespace.clone(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_767_226_200;

    fn now() -> Timestamp {
        Timestamp::from_second(NOW).unwrap()
    }

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "d", "uid": "rs1", "generation": 2},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "f"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
        }))
        .unwrap()
    }

    /// A Pod: `owner` ("rs1", another uid, or none), labels, phase, ready since (seconds before NOW), created (seconds before NOW).
    fn pod(name: &str, owner: Option<&str>, labels: serde_json::Value, phase: &str, ready_for: Option<i64>, age: i64) -> Pod {
        let mut p = json!({
            "metadata": {"name": name, "uid": format!("u-{name}"), "resourceVersion": "7", "labels": labels,
                         "creationTimestamp": Timestamp::from_second(NOW - age).unwrap().to_string()},
            "spec": {"nodeName": if phase == "Pending" { "" } else { "n1" }, "containers": []},
            "status": {"phase": phase},
        });
        if let Some(o) = owner {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": o, "controller": true}]);
        }
        if let Some(r) = ready_for {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": Timestamp::from_second(NOW - r).unwrap().to_string()}]);
        }
        serde_json::from_value(p).unwrap()
    }

    fn names(v: &[PodRef]) -> Vec<&str> {
        v.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn table() {
        let web = json!({"app": "web", "tier": "f"});
        struct Case {
            name: &'static str,
            rs: ReplicaSet,
            pods: Vec<Pod>,
            met: bool,
            create: usize,
            delete: Vec<&'static str>,
            adopt: Vec<&'static str>,
            release: Vec<&'static str>,
            status: (i32, i32, i32, i32),
        }
        let cases = vec![
            Case { name: "creates all from nothing", rs: rs(3, 0), pods: vec![], met: true, create: 3, delete: vec![], adopt: vec![], release: vec![], status: (0, 0, 0, 0) },
            Case {
                name: "waits for expectations",
                rs: rs(3, 0),
                pods: vec![pod("a", Some("rs1"), web.clone(), "Running", Some(5), 5)],
                met: false,
                create: 0,
                delete: vec![],
                adopt: vec![],
                release: vec![],
                status: (1, 1, 1, 1),
            },
            Case {
                name: "replaces failed and terminating pods",
                rs: rs(2, 0),
                pods: vec![pod("a", Some("rs1"), web.clone(), "Running", Some(5), 5), pod("b", Some("rs1"), web.clone(), "Failed", None, 5)],
                met: true,
                create: 1,
                delete: vec![],
                adopt: vec![],
                release: vec![],
                status: (1, 1, 1, 1),
            },
            Case {
                name: "scale down deletes the least valuable first",
                rs: rs(1, 0),
                pods: vec![
                    pod("old-ready", Some("rs1"), web.clone(), "Running", Some(100), 100),
                    pod("pending", Some("rs1"), web.clone(), "Pending", None, 200),
                    pod("new-ready", Some("rs1"), web.clone(), "Running", Some(10), 10),
                    pod("running-not-ready", Some("rs1"), web.clone(), "Running", None, 300),
                ],
                met: true,
                create: 0,
                delete: vec!["pending", "running-not-ready", "new-ready"],
                adopt: vec![],
                release: vec![],
                status: (4, 4, 2, 2),
            },
            Case {
                name: "adopts matching orphans, ignores others' pods, releases non-matching",
                rs: rs(2, 0),
                pods: vec![
                    pod("orphan", None, json!({"app": "web"}), "Running", Some(5), 5),
                    pod("other", Some("rs2"), web.clone(), "Running", Some(5), 5),
                    pod("relabelled", Some("rs1"), json!({"app": "debug"}), "Running", Some(5), 5),
                    pod("mismatch", None, json!({"app": "db"}), "Running", Some(5), 5),
                ],
                met: true,
                create: 1,
                delete: vec![],
                adopt: vec!["orphan"],
                release: vec!["relabelled"],
                status: (1, 0, 1, 1),
            },
            Case {
                name: "minReadySeconds holds availability back",
                rs: rs(2, 30),
                pods: vec![pod("a", Some("rs1"), web.clone(), "Running", Some(40), 40), pod("b", Some("rs1"), web.clone(), "Running", Some(10), 10)],
                met: true,
                create: 0,
                delete: vec![],
                adopt: vec![],
                release: vec![],
                status: (2, 2, 2, 1),
            },
        ];
        for c in cases {
            let pods: Vec<&Pod> = c.pods.iter().collect();
            let p = plan(&Input { rs: &c.rs, pods, expectations_met: c.met, now: now() });
            assert_eq!(p.create, c.create, "{}: create", c.name);
            assert_eq!(names(&p.delete), c.delete, "{}: delete", c.name);
            assert_eq!(names(&p.adopt), c.adopt, "{}: adopt", c.name);
            assert_eq!(names(&p.release), c.release, "{}: release", c.name);
            let s = &p.status;
            assert_eq!(
                (s.replicas, s.fully_labeled_replicas.unwrap(), s.ready_replicas.unwrap(), s.available_replicas.unwrap()),
                c.status,
                "{}: status (replicas, fullyLabeled, ready, available)",
                c.name
            );
            assert_eq!(s.observed_generation, Some(2));
        }
    }

    #[test]
    fn min_ready_requeues_when_the_next_pod_becomes_available() {
        let r = rs(1, 30);
        let a = pod("a", Some("rs1"), json!({"app": "web", "tier": "f"}), "Running", Some(10), 10);
        let p = plan(&Input { rs: &r, pods: vec![&a], expectations_met: true, now: now() });
        assert_eq!(p.requeue_after, Some(Duration::from_secs(20)));
    }

    #[test]
    fn new_pods_come_from_the_template_with_a_blocking_controller_ref() {
        let p = new_pod(&rs(1, 0));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-1-"));
        assert_eq!(p.metadata.labels.as_ref().unwrap()["tier"], "f");
        let o = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((o.kind.as_str(), o.uid.as_str(), o.controller, o.block_owner_deletion), ("ReplicaSet", "rs1", Some(true), Some(true)));
    }
}
