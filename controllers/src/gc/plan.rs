//! What the garbage collector does about one object, given the graph: pure, table-tested. The rules are
//! upstream's `attemptToDeleteItem`, `processDeletingDependentsItem` and `attemptToOrphanWorker`
//! (pkg/controller/garbagecollector/garbagecollector.go).
//!
//! An owner the graph does not hold (or holds under another identity) is not taken as absent: the plan asks for a
//! live look-up first ([`Action::Verify`]) and is made again with the answers in `verified`, because the graph
//! follows watches that may lag (an owner created a moment ago, a kind whose watch has not caught up).

use std::collections::HashMap;

use k1s_api::{resources, ResourceInfo};

use super::graph::{Graph, Node, OwnerRef, FOREGROUND, ORPHAN};

/// What an owner reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists (with that uid) and is not waiting for its dependents.
    Solid,
    /// Gone, never existed, or replaced by an object with another uid.
    Dangling,
    /// Being deleted in the foreground: waits for its dependents to go.
    Waiting,
}

/// The propagation policy of a delete the garbage collector sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Background,
    Foreground,
    Orphan,
}

/// One step. `target` is a uid in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Look these owners up live, then plan again.
    Verify(Vec<OwnerRef>),
    /// The reference cannot be resolved (a kind k1s does not serve, or a cluster-scoped object naming a namespaced
    /// owner): the object is left alone, as upstream does.
    Unresolvable(OwnerRef),
    /// Remove the ownerReferences with these uids from `target`.
    RemoveOwnerRefs { target: String, owners: Vec<String> },
    /// Set `blockOwnerDeletion: false` on every ownerReference of `target` (breaks a foreground cycle).
    Unblock { target: String },
    /// Delete `target` (with its uid as precondition).
    Delete { target: String, policy: Policy },
    /// Remove one of the garbage collector's finalizers from `target`.
    RemoveFinalizer { target: String, finalizer: &'static str },
    /// Look at these dependents too (those of an owner being deleted in the foreground).
    Enqueue(Vec<String>),
}

/// The resource an owner reference names (by group and kind: the uid is what identifies the object).
pub fn owner_resource(r: &OwnerRef) -> Option<&'static ResourceInfo> {
    let group = r.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    resources::RESOURCES.iter().find(|i| i.group == group && i.kind == r.kind)
}

/// The plan for the object with `uid` (nothing when the graph does not hold it).
pub fn plan(graph: &Graph, uid: &str, verified: &HashMap<String, OwnerState>) -> Vec<Action> {
    let Some(x) = graph.get(uid) else { return Vec::new() };
    if x.deleting {
        return plan_deleting(graph, x);
    }
    if x.owners.is_empty() {
        return Vec::new();
    }
    let (mut solid, mut dangling, mut waiting, mut unverified) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in &x.owners {
        let Some(res) = owner_resource(r) else { return vec![Action::Unresolvable(r.clone())] };
        if res.namespaced && x.namespace.is_none() {
            return vec![Action::Unresolvable(r.clone())];
        }
        // The graph's node counts only if it is the object the reference names (a namespaced owner lives in the
        // dependent's namespace: upstream treats a reference across namespaces as absent).
        let held = graph.get(&r.uid).filter(|o| {
            o.resource.group == res.group && o.resource.kind == res.kind && o.name == r.name && (!res.namespaced || o.namespace == x.namespace)
        });
        let state = match held {
            Some(o) if o.deleting_dependents() => OwnerState::Waiting,
            Some(_) => OwnerState::Solid,
            None => match verified.get(&r.uid) {
                Some(s) => *s,
                None => {
                    unverified.push(r.clone());
                    continue;
                }
            },
        };
        match state {
            OwnerState::Solid => solid.push(r.uid.clone()),
            OwnerState::Dangling => dangling.push(r.uid.clone()),
            OwnerState::Waiting => waiting.push(r.uid.clone()),
        }
    }
    if !unverified.is_empty() {
        return vec![Action::Verify(unverified)];
    }
    if !solid.is_empty() {
        // It stays for its living owner; references to the others go (a waiting owner would wait forever).
        if dangling.is_empty() && waiting.is_empty() {
            return Vec::new();
        }
        dangling.extend(waiting);
        return vec![Action::RemoveOwnerRefs { target: x.uid.clone(), owners: dangling }];
    }
    if !waiting.is_empty() && graph.has_dependents(&x.uid) {
        // Its owner waits in the foreground and it has dependents of its own: it goes in the foreground too. If one
        // of its dependents already waits for it, its own references stop blocking first (upstream's cycle guard).
        let mut acts = Vec::new();
        if graph.dependents(&x.uid).any(Node::deleting_dependents) {
            acts.push(Action::Unblock { target: x.uid.clone() });
        }
        acts.push(Action::Delete { target: x.uid.clone(), policy: Policy::Foreground });
        return acts;
    }
    // No owner left alive: collect it, honouring a GC finalizer it already carries.
    let policy = if x.has_finalizer(ORPHAN) {
        Policy::Orphan
    } else if x.has_finalizer(FOREGROUND) {
        Policy::Foreground
    } else {
        Policy::Background
    };
    vec![Action::Delete { target: x.uid.clone(), policy }]
}

/// An object being deleted: the garbage collector's part is its finalizers; otherwise (graceful deletion, other
/// finalizers) its deletion is someone else's business.
fn plan_deleting(graph: &Graph, x: &Node) -> Vec<Action> {
    if x.has_finalizer(ORPHAN) {
        let mut acts: Vec<Action> = graph
            .dependents(&x.uid)
            .map(|d| Action::RemoveOwnerRefs { target: d.uid.clone(), owners: vec![x.uid.clone()] })
            .collect();
        acts.push(Action::RemoveFinalizer { target: x.uid.clone(), finalizer: ORPHAN });
        return acts;
    }
    if x.has_finalizer(FOREGROUND) {
        let mut acts = Vec::new();
        let alive: Vec<String> = graph.dependents(&x.uid).filter(|d| !d.deleting).map(|d| d.uid.clone()).collect();
        if !alive.is_empty() {
            acts.push(Action::Enqueue(alive));
        }
        let blocked = graph.dependents(&x.uid).any(|d| d.owners.iter().any(|r| r.uid == x.uid && r.block));
        if !blocked {
            acts.push(Action::RemoveFinalizer { target: x.uid.clone(), finalizer: FOREGROUND });
        }
        return acts;
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::super::graph::tests::{cm, deleting};
    use super::*;

    fn graph(nodes: Vec<Node>) -> Graph {
        let mut g = Graph::default();
        for n in nodes {
            g.upsert(n);
        }
        g
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// Verify the (non-blocking) ConfigMap owners with these uids, as `cm` names them.
    fn verify(uids: &[&str]) -> Action {
        Action::Verify(uids.iter().map(|u| cm("any", &[(u, false)]).owners.remove(0)).collect())
    }

    #[test]
    fn plans() {
        use Action::*;
        let none: HashMap<String, OwnerState> = HashMap::new();
        let dangling = |u: &str| HashMap::from([(u.to_string(), OwnerState::Dangling)]);
        let solid = |u: &str| HashMap::from([(u.to_string(), OwnerState::Solid)]);
        let mut pod = cm("p", &[("o", true)]);
        pod.resource = k1s_api::resources::find("", "v1", "pods").unwrap();
        let mut cluster_dep = cm("n", &[("o", false)]);
        cluster_dep.namespace = None;
        let mut elsewhere = cm("o", &[]);
        elsewhere.namespace = Some("other".into());
        let mut foreign = cm("d", &[]);
        foreign.owners = vec![OwnerRef { api_version: "apps/v1".into(), kind: "StatefulSet".into(), name: "ss".into(), uid: "ss1".into(), block: true }];

        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Vec<Node>, &str, HashMap<String, OwnerState>, Vec<Action>)> = vec![
            ("no owners: nothing", vec![cm("a", &[])], "a", none.clone(), vec![]),
            ("not in the graph: nothing", vec![], "a", none.clone(), vec![]),
            ("owner in the graph: solid", vec![cm("o", &[]), cm("d", &[("o", false)])], "d", none.clone(), vec![]),
            ("owner absent: look it up first", vec![cm("d", &[("o", false)])], "d", none.clone(), vec![verify(&["o"])]),
            ("absent owner confirmed gone: background delete", vec![cm("d", &[("o", false)])], "d", dangling("o"),
                vec![Delete { target: "d".into(), policy: Policy::Background }]),
            ("absent owner found alive: keep", vec![cm("d", &[("o", false)])], "d", solid("o"), vec![]),
            ("one owner alive, one gone: drop the dangling reference", vec![cm("o", &[]), cm("d", &[("o", false), ("x", false)])], "d", dangling("x"),
                vec![RemoveOwnerRefs { target: "d".into(), owners: s(&["x"]) }]),
            ("owner in another namespace is not the owner", vec![elsewhere, cm("d", &[("o", false)])], "d", none.clone(), vec![verify(&["o"])]),
            ("cluster-scoped dependent naming a namespaced owner: left alone", vec![cluster_dep.clone()], "n", none.clone(),
                vec![Unresolvable(cluster_dep.owners[0].clone())]),
            ("owner of a kind k1s does not serve: left alone", vec![foreign.clone()], "d", none.clone(), vec![Unresolvable(foreign.owners[0].clone())]),
            ("an orphan finalizer on a collected dependent is honoured", vec![{ let mut d = cm("d", &[("o", false)]); d.finalizers = s(&["orphan"]); d }], "d", dangling("o"),
                vec![Delete { target: "d".into(), policy: Policy::Orphan }]),
            // Foreground.
            ("foreground owner: dependents are looked at, blocking ones hold the finalizer",
                vec![deleting(cm("o", &[]), &[FOREGROUND]), cm("b", &[("o", true)]), cm("n", &[("o", false)])], "o", none.clone(),
                vec![Enqueue(s(&["b", "n"]))]),
            ("foreground owner with only non-blocking dependents: finalizer goes, they are collected after",
                vec![deleting(cm("o", &[]), &[FOREGROUND]), cm("n", &[("o", false)])], "o", none.clone(),
                vec![Enqueue(s(&["n"])), RemoveFinalizer { target: "o".into(), finalizer: FOREGROUND }]),
            ("foreground owner whose blocking dependent is terminating: wait for it to be gone",
                vec![deleting(cm("o", &[]), &[FOREGROUND]), deleting(pod.clone(), &[])], "o", none.clone(), vec![]),
            ("foreground owner without dependents: finalizer goes", vec![deleting(cm("o", &[]), &[FOREGROUND, "x/other"])], "o", none.clone(),
                vec![RemoveFinalizer { target: "o".into(), finalizer: FOREGROUND }]),
            ("dependent of a waiting owner: background delete", vec![deleting(cm("o", &[]), &[FOREGROUND]), cm("b", &[("o", true)])], "b", none.clone(),
                vec![Delete { target: "b".into(), policy: Policy::Background }]),
            ("dependent of a waiting owner with dependents of its own: foreground delete",
                vec![deleting(cm("o", &[]), &[FOREGROUND]), cm("b", &[("o", true)]), cm("c", &[("b", true)])], "b", none.clone(),
                vec![Delete { target: "b".into(), policy: Policy::Foreground }]),
            ("cycle: a dependent already waits for it, so it unblocks first",
                vec![deleting(cm("o", &[("b", true)]), &[FOREGROUND]), cm("b", &[("o", true)])], "b", none.clone(),
                vec![Unblock { target: "b".into() }, Delete { target: "b".into(), policy: Policy::Foreground }]),
            ("dependent of a waiting owner and a living one: only the waiting reference goes",
                vec![deleting(cm("o", &[]), &[FOREGROUND]), cm("l", &[]), cm("b", &[("o", true), ("l", false)])], "b", none.clone(),
                vec![RemoveOwnerRefs { target: "b".into(), owners: s(&["o"]) }]),
            // Orphan.
            ("orphaning owner: references go from each dependent, then the finalizer",
                vec![deleting(cm("o", &[]), &[ORPHAN]), cm("a", &[("o", true)]), cm("b", &[("o", false), ("l", false)])], "o", none.clone(),
                vec![RemoveOwnerRefs { target: "a".into(), owners: s(&["o"]) }, RemoveOwnerRefs { target: "b".into(), owners: s(&["o"]) },
                     RemoveFinalizer { target: "o".into(), finalizer: ORPHAN }]),
            // Someone else's deletion.
            ("terminating dependent is left to its own deletion", vec![deleting(pod, &["batch.kubernetes.io/job-tracking"])], "p", dangling("o"), vec![]),
        ];
        for (what, nodes, uid, verified, want) in cases {
            let g = graph(nodes);
            assert_eq!(plan(&g, uid, &verified), want, "{what}");
        }
    }

    #[test]
    fn owner_resources_resolve_by_group_and_kind() {
        let r = |av: &str, kind: &str| owner_resource(&OwnerRef { api_version: av.into(), kind: kind.into(), name: "x".into(), uid: "u".into(), block: false });
        assert_eq!(r("batch/v1", "Job").map(|i| i.plural), Some("jobs"));
        assert_eq!(r("v1", "ConfigMap").map(|i| i.plural), Some("configmaps"));
        assert_eq!(r("v1", "Namespace").map(|i| i.namespaced), Some(false));
        assert!(r("apps/v1", "StatefulSet").is_none());
    }
}
