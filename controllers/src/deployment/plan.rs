//! The Deployment controller's pure core (upstream `pkg/controller/deployment`: `rolloutRolling`,
//! `rolloutRecreate`, `sync` for paused Deployments, `syncRolloutStatus`, `cleanupDeployment`, and
//! `deployment/util`): from a Deployment and its ReplicaSets, decide the next step of the rollout and the status.
//!
//! Like upstream, one sync takes one step (create the new ReplicaSet, scale it up, or scale old ones down) and
//! the ReplicaSets' own status changes bring the next sync.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations of the Deployment that are not copied to its ReplicaSets (upstream `skipCopyAnnotation`).
const SKIP_COPY: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// One API write of a sync.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the new ReplicaSet.
    Create(Box<ReplicaSet>),
    /// Set a ReplicaSet's replicas and annotations (and minReadySeconds), conditional on its resourceVersion.
    Update { name: String, resource_version: String, replicas: i32, annotations: BTreeMap<String, String>, min_ready_seconds: i32 },
    /// Delete an old ReplicaSet beyond `revisionHistoryLimit`.
    Delete { name: String, uid: String },
}

/// A Normal event about the Deployment (upstream `ScalingReplicaSet`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub events: Vec<Event>,
    /// The status to write (None: leave it until the actions' effects are seen).
    pub status: Option<DeploymentStatus>,
    /// The Deployment's `deployment.kubernetes.io/revision` annotation, when it must change.
    pub revision: Option<String>,
}

pub struct Input<'a> {
    pub deployment: &'a Deployment,
    /// ReplicaSets controlled by the Deployment.
    pub rss: Vec<&'a ReplicaSet>,
    /// Pods of old ReplicaSets still exist (Recreate waits for them to be gone).
    pub old_pods_running: bool,
    pub now: Timestamp,
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn st(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (s.replicas, s.ready_replicas.unwrap_or(0), s.available_replicas.unwrap_or(0))
}

pub fn revision(meta: &ObjectMeta) -> i64 {
    meta.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// Upstream `intstr.GetScaledValueFromIntOrPercent`.
pub fn scaled(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let x = p * i64::from(total);
            (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
        }
    }
}

/// Upstream `ResolveFenceposts`: (maxSurge rounded up, maxUnavailable rounded down), never both 0.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let ru = spec.and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), desired, true);
    let unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// The template hash (upstream `controller.ComputeHash`): FNV-32a of the template, then the collision count as
/// 8 little-endian bytes, rendered as the decimal of the sum in the safe-encoding alphabet. Upstream hashes Go's
/// spew dump of the struct; that text cannot be reproduced outside Go, so the template's canonical JSON (sorted
/// keys) is hashed instead: the names differ from upstream's, the properties (stable, changes with the template,
/// collision count moves it) do not.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(serde_json::to_string(template).unwrap_or_default().as_bytes());
    if let Some(c) = collision_count {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(c as u32).to_le_bytes());
        feed(&b);
    }
    safe_encode(&h.to_string())
}

/// Upstream `rand.SafeEncodeString`: no vowels (no words) and no look-alike characters.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char).collect()
}

/// Upstream `EqualIgnoreHash`: the templates are equal apart from the `pod-template-hash` label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn strip(t: &PodTemplateSpec) -> Value {
        let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
        if let Some(l) = v.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
            l.remove(HASH_LABEL);
            if l.is_empty() {
                v["metadata"].as_object_mut().map(|m| m.remove("labels"));
            }
        }
        if v.pointer("/metadata").and_then(Value::as_object).is_some_and(|m| m.is_empty()) {
            v.as_object_mut().map(|m| m.remove("metadata"));
        }
        v
    }
    strip(a) == strip(b)
}

fn template_of(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default()
}

/// The annotations a ReplicaSet of this Deployment carries (upstream `setNewReplicaSetAnnotations` and
/// `SetReplicasAnnotations`): the Deployment's own, its revision, desired and maximum replicas.
fn rs_annotations(d: &Deployment, current: Option<&BTreeMap<String, String>>, rev: i64, desired: i32, max: i32) -> BTreeMap<String, String> {
    let mut a = current.cloned().unwrap_or_default();
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if !SKIP_COPY.contains(&k.as_str()) {
            a.insert(k.clone(), v.clone());
        }
    }
    a.insert(REVISION.into(), rev.to_string());
    a.insert(DESIRED_REPLICAS.into(), desired.to_string());
    a.insert(MAX_REPLICAS.into(), max.to_string());
    a
}

/// The new ReplicaSet of a Deployment: `<name>-<hash>`, the hash label on its selector, template and labels.
pub fn new_replicaset(d: &Deployment, replicas: i32, rev: i64) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collision);
    let mut template = spec.template.clone();
    let tm = template.metadata.get_or_insert_with(Default::default);
    tm.labels.get_or_insert_with(Default::default).insert(HASH_LABEL.into(), hash.clone());
    let mut selector: LabelSelector = spec.selector.clone();
    selector.match_labels.get_or_insert_with(Default::default).insert(HASH_LABEL.into(), hash.clone());
    let desired = spec.replicas.unwrap_or(1);
    let (surge, _) = fenceposts(d);
    let name = d.metadata.name.clone().unwrap_or_default();
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: d.metadata.namespace.clone(),
            labels: tm.labels.clone(),
            annotations: Some(rs_annotations(d, None, rev, desired, desired + surge)),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name,
                uid: d.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec { replicas: Some(replicas), min_ready_seconds: spec.min_ready_seconds, selector, template: Some(template) }),
        status: None,
    }
}

struct Ctx<'a> {
    d: &'a Deployment,
    desired: i32,
    new: Option<&'a ReplicaSet>,
    /// Old ReplicaSets, oldest first.
    old: Vec<&'a ReplicaSet>,
    max_old_revision: i64,
    plan: Plan,
    /// Replicas after this sync's scaling, by ReplicaSet name.
    scaled: BTreeMap<String, i32>,
}

impl Ctx<'_> {
    fn replicas_now(&self, rs: &ReplicaSet) -> i32 {
        self.scaled.get(rs.metadata.name.as_deref().unwrap_or("")).copied().unwrap_or_else(|| replicas(rs))
    }

    /// Scale a ReplicaSet (upstream `scaleReplicaSet`), keeping its annotations in step.
    fn scale(&mut self, rs: &ReplicaSet, to: i32) {
        let from = replicas(rs);
        let name = rs.metadata.name.clone().unwrap_or_default();
        let (surge, _) = fenceposts(self.d);
        let is_new = self.new.is_some_and(|n| n.metadata.uid == rs.metadata.uid);
        let rev = if is_new { self.new_revision() } else { revision(&rs.metadata) };
        let annotations = if is_new {
            rs_annotations(self.d, rs.metadata.annotations.as_ref(), rev, self.desired, self.desired + surge)
        } else {
            let mut a = rs.metadata.annotations.clone().unwrap_or_default();
            a.insert(DESIRED_REPLICAS.into(), self.desired.to_string());
            a.insert(MAX_REPLICAS.into(), (self.desired + surge).to_string());
            a
        };
        let min_ready = if is_new {
            self.d.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
        } else {
            rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
        };
        if from == to && rs.metadata.annotations.as_ref() == Some(&annotations) && rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0) == min_ready {
            return;
        }
        self.plan.actions.push(Action::Update {
            name: name.clone(),
            resource_version: rs.metadata.resource_version.clone().unwrap_or_default(),
            replicas: to,
            annotations,
            min_ready_seconds: min_ready,
        });
        if from != to {
            let dir = if to > from { "up" } else { "down" };
            self.plan.events.push(Event { reason: "ScalingReplicaSet", message: format!("Scaled {dir} replica set {name} from {from} to {to}") });
        }
        self.scaled.insert(name, to);
    }

    /// The new ReplicaSet's revision: one above every old one (upstream `MaxRevision + 1`; a rollback to an old
    /// template moves that ReplicaSet to the top).
    fn new_revision(&self) -> i64 {
        let own = self.new.map(|n| revision(&n.metadata)).unwrap_or(0);
        if own > self.max_old_revision {
            own
        } else {
            self.max_old_revision + 1
        }
    }
}

/// Plan one sync of a Deployment.
pub fn plan(input: &Input) -> Plan {
    let d = input.deployment;
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let mut rss = input.rss.clone();
    rss.sort_by(|a, b| a.metadata.creation_timestamp.as_ref().map(|t| t.0).cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0)).then_with(|| a.metadata.name.cmp(&b.metadata.name)));
    // Upstream `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the Deployment's.
    let new = rss.iter().copied().find(|rs| equal_ignore_hash(&template_of(rs), &spec.template));
    let old: Vec<&ReplicaSet> = rss.iter().copied().filter(|rs| new.is_none_or(|n| n.metadata.uid != rs.metadata.uid)).collect();
    let max_old_revision = old.iter().map(|rs| revision(&rs.metadata)).max().unwrap_or(0);
    let mut c = Ctx { d, desired, new, old, max_old_revision, plan: Plan::default(), scaled: BTreeMap::new() };
    let paused = spec.paused == Some(true);
    if d.metadata.deletion_timestamp.is_some() {
        // Only the status; the garbage collector takes the ReplicaSets.
        c.plan.status = Some(status(&c, input));
        return c.plan;
    }
    if paused || (scaling_event(&c) && c.new.is_some()) {
        // Upstream `sync`: a paused Deployment, or a `replicas` change, is only scaled (no new ReplicaSet).
        scale(&mut c);
    } else if c.new.is_none() {
        let replicas = if is_recreate(d) {
            if c.old.iter().any(|rs| replicas(rs) > 0) || input.old_pods_running {
                // Recreate: old Pods first go, then the new ReplicaSet comes.
                let olds: Vec<&ReplicaSet> = c.old.clone();
                for rs in olds {
                    if replicas(rs) > 0 {
                        c.scale(rs, 0);
                    }
                }
                c.plan.status = Some(status(&c, input));
                return c.plan;
            }
            desired
        } else {
            new_rs_replicas(&c, 0)
        };
        let rs = new_replicaset(d, replicas, c.max_old_revision + 1);
        c.plan.revision = Some((c.max_old_revision + 1).to_string()).filter(|r| *r != revision(&d.metadata).to_string());
        let name = rs.metadata.name.clone().unwrap_or_default();
        if replicas > 0 {
            c.plan.events.push(Event { reason: "ScalingReplicaSet", message: format!("Scaled up replica set {name} from 0 to {replicas}") });
        }
        c.plan.actions.push(Action::Create(Box::new(rs)));
        // The status waits for the created ReplicaSet to be seen; the condition says it was made.
        return c.plan;
    } else if is_recreate(d) {
        let olds: Vec<&ReplicaSet> = c.old.clone();
        let scaling_down = olds.iter().any(|rs| replicas(rs) > 0);
        for rs in olds {
            if replicas(rs) > 0 {
                c.scale(rs, 0);
            }
        }
        if !scaling_down && !input.old_pods_running {
            let n = c.new.expect("checked");
            c.scale(n, desired);
        } else if let Some(n) = c.new {
            // Keep its annotations (revision) current while waiting.
            c.scale(n, replicas(n));
        }
    } else {
        rolling(&mut c);
    }
    if c.plan.actions.is_empty() && !paused {
        cleanup(&mut c, &spec);
    }
    if c.new.is_some() {
        let rev = c.new_revision();
        if rev != revision(&d.metadata) {
            c.plan.revision = Some(rev.to_string());
        }
    }
    c.plan.status = Some(status(&c, input));
    c.plan
}

fn desired_annotation(rs: &ReplicaSet) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(DESIRED_REPLICAS)?.parse().ok()
}

/// Upstream `isScalingEvent`: an active ReplicaSet was sized for another `replicas` than the Deployment's now.
fn scaling_event(c: &Ctx) -> bool {
    c.old.iter().copied().chain(c.new).filter(|rs| replicas(rs) > 0).any(|rs| desired_annotation(rs).is_some_and(|n| n != c.desired))
}

/// Upstream `scale`: one active ReplicaSet takes the whole count; a saturated new one sends the old ones to 0;
/// otherwise (RollingUpdate) a change is spread over the active ReplicaSets in proportion to their size, the
/// leftover to the largest.
fn scale(c: &mut Ctx) {
    let mut olds: Vec<&ReplicaSet> = c.old.clone();
    olds.reverse(); // newest first
    let active: Vec<&ReplicaSet> = olds.iter().copied().chain(c.new).filter(|rs| replicas(rs) > 0).collect();
    match (active.as_slice(), c.new, olds.first()) {
        ([], Some(n), _) => return c.scale(n, c.desired),
        ([], None, Some(o)) => return c.scale(o, c.desired),
        ([], None, None) => return,
        ([only], _, _) => return c.scale(only, c.desired),
        _ => {}
    }
    if let Some(n) = c.new {
        let saturated = replicas(n) == c.desired && desired_annotation(n) == Some(c.desired) && st(n).2 == c.desired;
        if saturated {
            for rs in active.iter().filter(|rs| rs.metadata.uid != n.metadata.uid) {
                c.scale(rs, 0);
            }
            return;
        }
    }
    if is_recreate(c.d) {
        return;
    }
    let (surge, _) = fenceposts(c.d);
    let all: i32 = active.iter().map(|rs| replicas(rs)).sum();
    let allowed = if c.desired > 0 { c.desired + surge } else { 0 };
    let to_add = allowed - all;
    let mut sorted = active.clone();
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    // ReplicaSetsBySizeNewer to scale up, BySizeOlder to scale down: the largest first.
    if to_add > 0 {
        sorted.sort_by(|a, b| replicas(b).cmp(&replicas(a)).then_with(|| created(b).cmp(&created(a))));
    } else {
        sorted.sort_by(|a, b| replicas(b).cmp(&replicas(a)).then_with(|| created(a).cmp(&created(b))));
    }
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::new();
    for rs in &sorted {
        let p = if to_add != 0 { proportion(c, rs, to_add, added) } else { 0 };
        sizes.push(replicas(rs) + p);
        added += p;
    }
    if to_add != 0 {
        sizes[0] = (sizes[0] + to_add - added).max(0);
    }
    for (rs, size) in sorted.iter().zip(sizes) {
        c.scale(rs, size);
    }
}

/// Upstream `GetProportion` with `getReplicaSetFraction`: the ReplicaSet's share of the change, from its size
/// against the `max-replicas` it was last sized for.
fn proportion(c: &Ctx, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
    let r = replicas(rs);
    if r == 0 || to_add == added {
        return 0;
    }
    let fraction = if c.desired == 0 {
        -r
    } else {
        let (surge, _) = fenceposts(c.d);
        let annotated = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(MAX_REPLICAS))
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or_else(|| c.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
        if annotated == 0 {
            return 0;
        }
        (f64::from(r) * f64::from(c.desired + surge) / f64::from(annotated)).round() as i32 - r
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Upstream `NewRSNewReplicas` for RollingUpdate: scale the new ReplicaSet up as far as maxSurge allows.
fn new_rs_replicas(c: &Ctx, new_current: i32) -> i32 {
    let (surge, _) = fenceposts(c.d);
    let current: i32 = c.old.iter().map(|rs| c.replicas_now(rs)).sum::<i32>() + new_current;
    let max_total = c.desired + surge;
    if current >= max_total {
        return new_current;
    }
    new_current + (max_total - current).min(c.desired - new_current).max(0)
}

/// Upstream `rolloutRolling`: scale the new ReplicaSet up within maxSurge, or old ones down within maxUnavailable.
fn rolling(c: &mut Ctx) {
    let n = c.new.expect("a new ReplicaSet");
    let cur = replicas(n);
    if cur > c.desired {
        c.scale(n, c.desired);
        return;
    }
    let target = new_rs_replicas(c, cur);
    // Keep the new ReplicaSet's annotations (revision after a rollback, desired/max replicas) current.
    c.scale(n, target);
    if target != cur {
        return;
    }
    // reconcileOldReplicaSets.
    let old_pods: i32 = c.old.iter().map(|rs| replicas(rs)).sum();
    if old_pods == 0 {
        return;
    }
    let (_, max_unavailable) = fenceposts(c.d);
    let min_available = c.desired - max_unavailable;
    let all_pods = old_pods + cur;
    let new_unavailable = cur - st(n).2;
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    // cleanupUnhealthyReplicas: unavailable old Pods go first, oldest ReplicaSet first.
    let mut scaled_down = 0;
    let olds: Vec<&ReplicaSet> = c.old.clone();
    for rs in &olds {
        if scaled_down >= max_scaled_down {
            break;
        }
        let r = replicas(rs);
        let unhealthy = r - st(rs).2;
        if r == 0 || unhealthy <= 0 {
            continue;
        }
        let down = unhealthy.min(max_scaled_down - scaled_down);
        c.scale(rs, r - down);
        scaled_down += down;
    }
    // scaleDownOldReplicaSetsForRollingUpdate: then available ones, down to minAvailable.
    let available: i32 = olds.iter().map(|rs| st(rs).2.min(c.replicas_now(rs))).sum::<i32>() + st(n).2;
    if available <= min_available {
        return;
    }
    let total = (available - min_available).min(max_scaled_down - scaled_down);
    let mut done = 0;
    for rs in &olds {
        if done >= total {
            break;
        }
        let r = c.replicas_now(rs);
        if r == 0 {
            continue;
        }
        let down = r.min(total - done);
        c.scale(rs, r - down);
        done += down;
    }
}

/// Upstream `cleanupDeployment`: delete the oldest fully scaled-down ReplicaSets beyond revisionHistoryLimit.
fn cleanup(c: &mut Ctx, spec: &k8s_openapi::api::apps::v1::DeploymentSpec) {
    let Some(limit) = spec.revision_history_limit else { return };
    let mut dead: Vec<&ReplicaSet> = c
        .old
        .iter()
        .copied()
        .filter(|rs| replicas(rs) == 0 && st(rs).0 == 0 && rs.metadata.deletion_timestamp.is_none())
        .filter(|rs| rs.status.as_ref().and_then(|s| s.observed_generation) >= rs.metadata.generation)
        .collect();
    let extra = dead.len() as i64 - i64::from(limit);
    if extra <= 0 {
        return;
    }
    dead.sort_by_key(|rs| revision(&rs.metadata));
    for rs in dead.into_iter().take(extra as usize) {
        c.plan.actions.push(Action::Delete { name: rs.metadata.name.clone().unwrap_or_default(), uid: rs.metadata.uid.clone().unwrap_or_default() });
    }
}

fn cond(type_: &str, status: &str, reason: &str, message: String, now: Timestamp, old: Option<&DeploymentCondition>) -> DeploymentCondition {
    // The transition time moves only when the status does (upstream `SetDeploymentCondition`).
    let transition = match old {
        Some(o) if o.status == status => o.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: transition,
    }
}

/// Upstream `calculateStatus` + `syncRolloutStatus`: counts over every ReplicaSet, Available from the
/// minimum availability, Progressing from how the new ReplicaSet moves against the deadline.
fn status(c: &Ctx, input: &Input) -> DeploymentStatus {
    let d = c.d;
    let spec = d.spec.clone().unwrap_or_default();
    let old = d.status.clone().unwrap_or_default();
    let all: Vec<&ReplicaSet> = c.old.iter().copied().chain(c.new).collect();
    let sum = |f: fn(&ReplicaSet) -> i32| all.iter().map(|rs| f(rs)).sum::<i32>();
    let total = sum(|rs| st(rs).0);
    let ready = sum(|rs| st(rs).1);
    let available = sum(|rs| st(rs).2);
    let updated = c.new.map(|n| st(n).0).unwrap_or(0);
    let mut s = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((c.desired - available).max(0)),
        collision_count: old.collision_count,
        conditions: None,
        terminating_replicas: None,
    };
    let now = input.now;
    let mut conds: Vec<DeploymentCondition> = old.conditions.clone().unwrap_or_default();
    let find = |conds: &[DeploymentCondition], t: &str| conds.iter().find(|c| c.type_ == t).cloned();
    let set = |conds: &mut Vec<DeploymentCondition>, new: DeploymentCondition| {
        // Keep the old condition untouched when nothing but the update time would change.
        if let Some(o) = conds.iter().find(|c| c.type_ == new.type_) {
            if o.status == new.status && o.reason == new.reason && o.message == new.message {
                return;
            }
        }
        conds.retain(|c| c.type_ != new.type_);
        conds.push(new);
    };
    let (_, max_unavailable) = fenceposts(d);
    let prev_avail = find(&conds, "Available");
    if available >= c.desired - max_unavailable {
        set(&mut conds, cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into(), now, prev_avail.as_ref()));
    } else {
        set(&mut conds, cond("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into(), now, prev_avail.as_ref()));
    }
    let new_name = c.new.and_then(|n| n.metadata.name.clone()).unwrap_or_default();
    let prev = find(&conds, "Progressing");
    let deadline = spec.progress_deadline_seconds;
    if spec.paused == Some(true) {
        set(&mut conds, cond("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused".into(), now, prev.as_ref()));
    } else if deadline.is_some() {
        let complete = c.new.is_some() && updated == c.desired && total == c.desired && available == c.desired && c.plan.actions.iter().all(|a| matches!(a, Action::Delete { .. }));
        let progressed = updated > old.updated_replicas.unwrap_or(0)
            || ready > old.ready_replicas.unwrap_or(0)
            || available > old.available_replicas.unwrap_or(0)
            || total - updated < old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
        let prev_reason = prev.as_ref().and_then(|p| p.reason.clone()).unwrap_or_default();
        if complete {
            set(&mut conds, cond("Progressing", "True", "NewReplicaSetAvailable", format!("ReplicaSet {new_name:?} has successfully progressed."), now, prev.as_ref()));
        } else if prev.is_none() || prev_reason == "DeploymentPaused" || (prev_reason == "NewReplicaSetAvailable" && c.new.is_some_and(|n| prev.as_ref().and_then(|p| p.message.as_deref()) != Some(&format!("ReplicaSet {:?} has successfully progressed.", n.metadata.name.as_deref().unwrap_or(""))))) {
            // A rollout starts (or resumes): the clock starts now.
            let (reason, msg) = if prev_reason == "DeploymentPaused" {
                ("DeploymentResumed", "Deployment is resumed".to_string())
            } else if c.new.is_some_and(|n| n.status.is_none()) {
                ("NewReplicaSetCreated", format!("Created new replica set {new_name:?}"))
            } else {
                ("FoundNewReplicaSet", format!("Found new replica set {new_name:?}"))
            };
            set(&mut conds, cond("Progressing", "True", reason, msg, now, prev.as_ref()));
        } else if progressed || !c.plan.actions.is_empty() {
            let mut p = cond("Progressing", "True", "ReplicaSetUpdated", format!("ReplicaSet {new_name:?} is progressing."), now, prev.as_ref());
            p.last_update_time = Some(Time(now));
            conds.retain(|c| c.type_ != "Progressing");
            conds.push(p);
        } else if prev_reason != "ProgressDeadlineExceeded" {
            let since = prev.as_ref().and_then(|p| p.last_update_time.as_ref()).map(|t| t.0.as_second()).unwrap_or(now.as_second());
            let left = since + i64::from(deadline.unwrap_or(0)) - now.as_second();
            if left <= 0 {
                set(&mut conds, cond("Progressing", "False", "ProgressDeadlineExceeded", format!("ReplicaSet {new_name:?} has timed out progressing."), now, prev.as_ref()));
            }
        }
    }
    // ReplicaFailure mirrors the new ReplicaSet's (upstream `getReplicaFailures`).
    let failure = c.new.and_then(|n| n.status.as_ref()).and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == "ReplicaFailure" && c.status == "True"));
    match failure {
        Some(f) => {
            let prev = find(&conds, "ReplicaFailure");
            set(&mut conds, cond("ReplicaFailure", "True", f.reason.as_deref().unwrap_or("FailedCreate"), f.message.clone().unwrap_or_default(), now, prev.as_ref()))
        }
        None => conds.retain(|c| c.type_ != "ReplicaFailure"),
    }
    // Upstream order: Available, Progressing, ReplicaFailure.
    conds.sort_by_key(|c| match c.type_.as_str() {
        "Available" => 0,
        "Progressing" => 1,
        _ => 2,
    });
    s.conditions = Some(conds);
    s
}

/// When the Deployment must be looked at again with nothing else changing: the progress deadline.
pub fn deadline_requeue(d: &Deployment, now: Timestamp) -> Option<Duration> {
    let spec = d.spec.as_ref()?;
    let deadline = spec.progress_deadline_seconds?;
    if spec.paused == Some(true) {
        return None;
    }
    let p = d.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Progressing")?;
    if p.status != "True" || p.reason.as_deref() == Some("NewReplicaSetAvailable") {
        return None;
    }
    let since = p.last_update_time.as_ref()?.0.as_second();
    let left = since + i64::from(deadline) - now.as_second();
    Some(Duration::from_secs(left.max(0) as u64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_767_226_200;

    fn now() -> Timestamp {
        Timestamp::from_second(NOW).unwrap()
    }

    fn template(env: &str) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "V", "value": env}]}]}})
    }

    fn deploy(replicas: i32, strategy: Value, env: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "d", "uid": "d1", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "strategy": strategy, "revisionHistoryLimit": 1,
                     "progressDeadlineSeconds": 600, "template": template(env)},
        }))
        .unwrap()
    }

    fn rolling(surge: Value, unavailable: Value) -> Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    }

    /// A ReplicaSet of the Deployment for the template `env`, created `age` seconds ago.
    fn rs(d: &Deployment, env: &str, rev: i64, replicas: i32, available: i32, age: i64) -> ReplicaSet {
        let mut d2 = d.clone();
        d2.spec.as_mut().unwrap().template = serde_json::from_value(template(env)).unwrap();
        let mut r = new_replicaset(&d2, replicas, rev);
        r.metadata.uid = Some(format!("rs-{env}"));
        r.metadata.resource_version = Some("5".into());
        r.metadata.creation_timestamp = Some(Time(Timestamp::from_second(NOW - age).unwrap()));
        r.metadata.generation = Some(1);
        r.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
            replicas,
            ready_replicas: Some(available),
            available_replicas: Some(available),
            observed_generation: Some(1),
            ..Default::default()
        });
        r
    }

    /// A ReplicaSet last sized for `desired` replicas with at most `max`.
    fn with_max(mut r: ReplicaSet, desired: i32, max: i32) -> ReplicaSet {
        let a = r.metadata.annotations.get_or_insert_with(Default::default);
        a.insert(DESIRED_REPLICAS.into(), desired.to_string());
        a.insert(MAX_REPLICAS.into(), max.to_string());
        r
    }

    /// The plan's writes as (kind, ReplicaSet template env or name, replicas).
    fn writes(p: &Plan) -> Vec<(&'static str, String, i32)> {
        p.actions
            .iter()
            .map(|a| match a {
                Action::Create(r) => {
                    let env = r.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers[0].env.as_ref().unwrap()[0].value.clone().unwrap();
                    ("create", env, r.spec.as_ref().unwrap().replicas.unwrap())
                }
                Action::Update { name, replicas, .. } => ("scale", name.clone(), *replicas),
                Action::Delete { name, .. } => ("delete", name.clone(), 0),
            })
            .collect()
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        let cases = [
            (10, json!("25%"), json!("25%"), (3, 2)),
            (3, json!("25%"), json!("25%"), (1, 0)),
            (4, json!(1), json!("0%"), (1, 0)),
            (5, json!(0), json!(0), (0, 1)),
            (50, json!("25%"), json!("25%"), (13, 12)),
        ];
        for (replicas, surge, unavailable, want) in cases {
            let d = deploy(replicas, rolling(surge.clone(), unavailable.clone()), "a");
            assert_eq!(fenceposts(&d), want, "{replicas} {surge} {unavailable}");
        }
    }

    #[test]
    fn template_hash_is_stable_safe_and_moved_by_collisions() {
        let t: PodTemplateSpec = serde_json::from_value(template("a")).unwrap();
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t.clone(), None));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{h}");
        assert_ne!(h, template_hash(&t, Some(1)));
        assert_ne!(h, template_hash(&serde_json::from_value(template("b")).unwrap(), None));
        let d = deploy(1, rolling(json!(1), json!(0)), "a");
        let r = new_replicaset(&d, 1, 1);
        assert_eq!(r.metadata.name.as_deref(), Some(format!("web-{h}").as_str()));
        assert_eq!(r.spec.as_ref().unwrap().selector.match_labels.as_ref().unwrap()[HASH_LABEL], h);
        assert!(equal_ignore_hash(r.spec.as_ref().unwrap().template.as_ref().unwrap(), &t));
        assert_eq!(r.metadata.annotations.as_ref().unwrap()[MAX_REPLICAS], "2");
    }

    #[test]
    fn rollout_steps() {
        let ru = rolling(json!(1), json!(1));
        let d = deploy(3, ru.clone(), "new");
        let d_recreate = deploy(3, json!({"type": "Recreate"}), "new");
        let mut paused = d.clone();
        paused.spec.as_mut().unwrap().paused = Some(true);
        struct Case {
            name: &'static str,
            d: Deployment,
            rss: Vec<ReplicaSet>,
            old_pods: bool,
            want: Vec<(&'static str, String, i32)>,
        }
        let new_name = |d: &Deployment| rs(d, "new", 2, 0, 0, 0).metadata.name.unwrap();
        let old_name = rs(&d, "old", 1, 0, 0, 0).metadata.name.unwrap();
        let cases = vec![
            Case { name: "first rollout creates the new ReplicaSet up to maxSurge", d: d.clone(), rss: vec![], old_pods: false, want: vec![("create", "new".into(), 3)] },
            Case { name: "a template change creates the new ReplicaSet within maxSurge", d: d.clone(), rss: vec![rs(&d, "old", 1, 3, 3, 100)], old_pods: true, want: vec![("create", "new".into(), 1)] },
            Case {
                name: "old ReplicaSets go down as far as maxUnavailable allows",
                d: d.clone(),
                rss: vec![rs(&d, "old", 1, 3, 3, 100), rs(&d, "new", 2, 1, 0, 1)],
                old_pods: true,
                want: vec![("scale", old_name.clone(), 2)],
            },
            Case {
                name: "the new ReplicaSet goes up as old ones go down",
                d: d.clone(),
                rss: vec![rs(&d, "old", 1, 2, 2, 100), rs(&d, "new", 2, 1, 1, 1)],
                old_pods: true,
                want: vec![("scale", new_name(&d), 2)],
            },
            Case {
                name: "unavailable old Pods are scaled away first",
                d: d.clone(),
                rss: vec![rs(&d, "old", 1, 2, 0, 100), rs(&d, "new", 2, 2, 2, 1)],
                old_pods: true,
                want: vec![("scale", old_name.clone(), 0)],
            },
            Case {
                name: "complete: old ReplicaSets beyond revisionHistoryLimit are deleted",
                d: d.clone(),
                rss: vec![rs(&d, "older", 1, 0, 0, 200), rs(&d, "old", 2, 0, 0, 100), rs(&d, "new", 3, 3, 3, 1)],
                old_pods: false,
                want: vec![("delete", rs(&d, "older", 1, 0, 0, 0).metadata.name.unwrap(), 0)],
            },
            Case { name: "scaling up a finished rollout", d: deploy(5, ru.clone(), "new"), rss: vec![rs(&d, "new", 1, 3, 3, 1)], old_pods: false, want: vec![("scale", new_name(&d), 5)] },
            Case { name: "scaling down a finished rollout", d: deploy(1, ru.clone(), "new"), rss: vec![rs(&d, "new", 1, 3, 3, 1)], old_pods: false, want: vec![("scale", new_name(&d), 1)] },
            Case {
                name: "Recreate scales old ReplicaSets to 0 first",
                d: d_recreate.clone(),
                rss: vec![rs(&d, "old", 1, 3, 3, 100)],
                old_pods: true,
                want: vec![("scale", old_name.clone(), 0)],
            },
            Case { name: "Recreate waits for old Pods to be gone", d: d_recreate.clone(), rss: vec![rs(&d, "old", 1, 0, 0, 100)], old_pods: true, want: vec![] },
            Case { name: "Recreate then creates the new ReplicaSet at full size", d: d_recreate.clone(), rss: vec![rs(&d, "old", 1, 0, 0, 100)], old_pods: false, want: vec![("create", "new".into(), 3)] },
            Case {
                name: "a replicas change mid-rollout is spread in proportion (upstream's example: 10 → 15, 8 old + 5 new of max 13)",
                d: deploy(15, rolling(json!(3), json!(2)), "new"),
                rss: vec![with_max(rs(&d, "old", 1, 8, 8, 100), 10, 13), with_max(rs(&d, "new", 2, 5, 0, 1), 10, 13)],
                old_pods: true,
                want: vec![("scale", old_name.clone(), 11), ("scale", new_name(&d), 7)],
            },
            Case { name: "a paused Deployment starts no rollout", d: paused.clone(), rss: vec![rs(&d, "old", 1, 3, 3, 100)], old_pods: true, want: vec![] },
        ];
        for c in cases {
            let p = plan(&Input { deployment: &c.d, rss: c.rss.iter().collect(), old_pods_running: c.old_pods, now: now() });
            assert_eq!(writes(&p), c.want, "{}", c.name);
        }
    }

    #[test]
    fn status_and_conditions() {
        let d = deploy(3, rolling(json!(1), json!(1)), "new");
        let done = [rs(&d, "old", 1, 0, 0, 100), rs(&d, "new", 2, 3, 3, 1)];
        let p = plan(&Input { deployment: &d, rss: done.iter().collect(), old_pods_running: false, now: now() });
        let st = p.status.unwrap();
        assert_eq!((st.replicas, st.updated_replicas, st.available_replicas, st.unavailable_replicas, st.observed_generation), (Some(3), Some(3), Some(3), Some(0), Some(1)));
        let conds = st.conditions.unwrap();
        let reasons: Vec<(&str, &str, &str)> = conds.iter().map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_deref().unwrap())).collect();
        assert_eq!(reasons, [("Available", "True", "MinimumReplicasAvailable"), ("Progressing", "True", "NewReplicaSetAvailable")]);
        assert_eq!(p.revision.as_deref(), Some("2"));

        // Stuck past the deadline: Progressing False ProgressDeadlineExceeded.
        let mut stuck = d.clone();
        let since = Time(Timestamp::from_second(NOW - 601).unwrap());
        stuck.status = Some(DeploymentStatus {
            replicas: Some(4),
            updated_replicas: Some(2),
            available_replicas: Some(2),
            ready_replicas: Some(2),
            conditions: Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "True".into(),
                reason: Some("ReplicaSetUpdated".into()),
                message: Some("x".into()),
                last_update_time: Some(since.clone()),
                last_transition_time: Some(since),
            }]),
            ..Default::default()
        });
        // The new Pods never become available: nothing may move, and nothing has moved since.
        let rss = [rs(&d, "old", 1, 2, 2, 100), rs(&d, "new", 2, 2, 0, 1)];
        let p = plan(&Input { deployment: &stuck, rss: rss.iter().collect(), old_pods_running: true, now: now() });
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        let prog = p.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Progressing").unwrap();
        assert_eq!((prog.status.as_str(), prog.reason.as_deref()), ("False", Some("ProgressDeadlineExceeded")));
    }
}
