//! The owner graph (upstream `garbagecollector/graph.go` and the graph builder's bookkeeping): every object the
//! garbage collector watches, by uid, with its owner references, plus the reverse index owner uid → dependents.
//!
//! Owners are indexed by the uid a reference names, whether or not such an object exists (upstream's "virtual"
//! nodes): that is how a dependent whose owner is gone, or never existed, is found. Updates answer which uids need
//! another look; the planner ([`super::plan`]) decides what to do with each.

use std::collections::{BTreeSet, HashMap, HashSet};

use k1s_api::ResourceInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The garbage collector's own finalizers (metav1.FinalizerOrphanDependents, FinalizerDeleteDependents).
pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

/// One `metadata.ownerReferences` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    /// `blockOwnerDeletion`: a foreground deletion of the owner waits for this dependent to be gone.
    pub block: bool,
}

/// What the garbage collector keeps of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub resource: &'static ResourceInfo,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerRef>,
    pub finalizers: Vec<String>,
    /// `deletionTimestamp` is set.
    pub deleting: bool,
}

impl Node {
    /// The node of a watched object, from its metadata (None without a uid, which the API server always sets).
    pub fn from_metadata(resource: &'static ResourceInfo, m: &ObjectMeta) -> Option<Node> {
        let uid = m.uid.clone().filter(|u| !u.is_empty())?;
        Some(Node {
            resource,
            namespace: if resource.namespaced { m.namespace.clone() } else { None },
            name: m.name.clone().unwrap_or_default(),
            uid,
            owners: m
                .owner_references
                .iter()
                .flatten()
                .map(|r| OwnerRef {
                    api_version: r.api_version.clone(),
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                    uid: r.uid.clone(),
                    block: r.block_owner_deletion.unwrap_or(false),
                })
                .collect(),
            finalizers: m.finalizers.clone().unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
        })
    }

    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted in the foreground: its dependents go first.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }

    /// Being deleted with its dependents orphaned.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.has_finalizer(ORPHAN)
    }

    /// Waiting for the garbage collector (either of its finalizers while being deleted).
    fn waits_for_gc(&self) -> bool {
        self.deleting_dependents() || self.orphaning()
    }

    /// `kind namespace/name` for logs.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.resource.kind, self.name),
            None => format!("{} {}", self.resource.kind, self.name),
        }
    }
}

/// The graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// owner uid → uids of the nodes referring to it (the owner may be absent).
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes that refer to `owner` (present ones only).
    pub fn dependents(&self, owner: &str) -> impl Iterator<Item = &Node> {
        self.dependents.get(owner).into_iter().flatten().filter_map(|u| self.nodes.get(u))
    }

    pub fn has_dependents(&self, owner: &str) -> bool {
        self.dependents(owner).next().is_some()
    }

    /// The uids of the nodes of one resource (for a relist).
    pub fn uids_of(&self, resource: &'static ResourceInfo) -> Vec<String> {
        self.nodes.values().filter(|n| n.resource.storage == resource.storage).map(|n| n.uid.clone()).collect()
    }

    /// Add or replace a node; answers the uids to look at again.
    pub fn upsert(&mut self, node: Node) -> Vec<String> {
        let uid = node.uid.clone();
        let old = self.nodes.remove(&uid);
        if let Some(o) = &old {
            self.unlink(o);
        }
        for r in &node.owners {
            self.dependents.entry(r.uid.clone()).or_default().insert(uid.clone());
        }
        let mut out = Vec::new();
        let changed = old.as_ref().is_none_or(|o| o.owners != node.owners || o.deleting != node.deleting || o.finalizers != node.finalizers);
        if changed {
            // The node itself: a new or changed owner list may be dangling; a new GC finalizer has work.
            if !node.owners.is_empty() || node.waits_for_gc() {
                out.push(uid.clone());
            }
            // Owners waiting for their dependents (foreground) or orphaning them: this one may now unblock them, or
            // be a dependent they have not handled yet.
            let refs = old.iter().flat_map(|o| o.owners.iter()).chain(node.owners.iter());
            let owners: HashSet<&str> = refs.map(|r| r.uid.as_str()).collect();
            for o in owners {
                if self.nodes.get(o).is_some_and(Node::waits_for_gc) {
                    out.push(o.to_string());
                }
            }
        }
        self.nodes.insert(uid, node);
        out
    }

    /// Remove a node; answers the uids to look at again: its dependents (their owner is gone) and its owners that
    /// wait for it.
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(node) = self.nodes.remove(uid) else { return Vec::new() };
        self.unlink(&node);
        let mut out: Vec<String> = self.dependents.get(uid).into_iter().flatten().cloned().collect();
        for r in &node.owners {
            if self.nodes.get(&r.uid).is_some_and(Node::waits_for_gc) {
                out.push(r.uid.clone());
            }
        }
        out
    }

    fn unlink(&mut self, node: &Node) {
        for r in &node.owners {
            if let Some(set) = self.dependents.get_mut(&r.uid) {
                set.remove(&node.uid);
                if set.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn cm(uid: &str, owners: &[(&str, bool)]) -> Node {
        Node {
            resource: k1s_api::resources::find("", "v1", "configmaps").unwrap(),
            namespace: Some("default".into()),
            name: format!("cm-{uid}"),
            uid: uid.into(),
            owners: owners
                .iter()
                .map(|(o, block)| OwnerRef { api_version: "v1".into(), kind: "ConfigMap".into(), name: format!("cm-{o}"), uid: o.to_string(), block: *block })
                .collect(),
            finalizers: vec![],
            deleting: false,
        }
    }

    pub fn deleting(mut n: Node, finalizers: &[&str]) -> Node {
        n.deleting = true;
        n.finalizers = finalizers.iter().map(|f| f.to_string()).collect();
        n
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn upserts_and_removals_say_who_to_look_at() {
        let mut g = Graph::default();
        // An owner without owners needs nothing.
        assert!(g.upsert(cm("o", &[])).is_empty());
        // A new dependent is looked at (its owner might not exist).
        assert_eq!(g.upsert(cm("d", &[("o", true)])), ["d"]);
        // An unchanged dependent is not looked at again.
        assert!(g.upsert(cm("d", &[("o", true)])).is_empty());
        assert_eq!(g.dependents("o").map(|n| n.uid.as_str()).collect::<Vec<_>>(), ["d"]);
        // The owner enters foreground deletion: it has work.
        assert_eq!(g.upsert(deleting(cm("o", &[]), &[FOREGROUND])), ["o"]);
        // The dependent starts being deleted: itself (it has owners) and its waiting owner.
        assert_eq!(sorted(g.upsert(deleting(cm("d", &[("o", true)]), &[]))), ["d", "o"]);
        // The dependent goes: the waiting owner is looked at.
        assert_eq!(g.remove("d"), ["o"]);
        assert!(!g.has_dependents("o"));
        // The owner goes: its remaining dependents are looked at.
        g.upsert(cm("e", &[("o", false)]));
        assert_eq!(g.remove("o"), ["e"]);
        // A reference to an owner that never existed is still indexed, so the dependent is found by it.
        g.upsert(cm("x", &[("ghost", false)]));
        assert_eq!(g.remove("ghost"), Vec::<String>::new(), "no such node");
        assert_eq!(g.dependents.get("ghost").map(|s| s.len()), Some(1));
        // Dropping an owner reference unlinks it.
        g.upsert(cm("x", &[]));
        assert!(!g.dependents.contains_key("ghost"));
        assert_eq!(g.node_count(), 2);
    }
}
