//! The scheduler's pure core: what a Pod asks of a node ([`PodFacts`]), what a node offers ([`NodeFacts`]) and
//! what its bound Pods already take ([`NodeUsage`]); the filters of upstream's default plugins in upstream's
//! order (NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit), a small score, and
//! the `FitError` message with upstream's wording. No IO: everything here is table-tested below.
//!
//! Sources: kubernetes pkg/scheduler/framework/plugins/* and schedule_one.go (v1.33),
//! k8s.io/component-helpers/resource (`PodRequests`), pkg/apis/core/v1/helper (`ToleratesTaint`).

use std::collections::BTreeMap;
use std::fmt;

use k1s_api::quantity::scaled;
use k8s_openapi::api::core::v1::{Container, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PreferredSchedulingTerm, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Upstream's `framework.MaxNodeScore`.
const MAX_NODE_SCORE: i64 = 100;
/// What a container without a cpu / memory request counts for when scoring (never when filtering):
/// upstream `DefaultMilliCPURequest` and `DefaultMemoryRequest`.
const DEFAULT_MILLI_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
/// `ErrNoNodesAvailable`: the whole message when the cluster has no Node at all.
pub const NO_NODES: &str = "no nodes available to schedule pods";
const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// Where upstream would evict lower-priority Pods, k1s says that it does not.
const NO_PREEMPTION: &str = "k1s does not preempt lower-priority Pods";

/// The taint the node lifecycle controller puts on a cordoned node; tolerating it lets a Pod onto one.
const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Amounts of the resources a node has and Pods request: cpu in millicores, the rest in units (bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended resources (`example.com/foo`) and hugepages: checked like upstream's `ScalarResources`.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// A resource list (requests, overhead, allocatable) as exact integers; unknown names and unparsable
    /// quantities are skipped (validation rejected them already).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            r.set(name, &q.0);
        }
        r
    }

    fn set(&mut self, name: &str, q: &str) {
        let v = if name == "cpu" { scaled(q, 3) } else { scaled(q, 0) };
        let Some(v) = v else { return };
        match name {
            "cpu" => self.milli_cpu = v,
            "memory" => self.memory = v,
            "ephemeral-storage" => self.ephemeral_storage = v,
            n if is_scalar(n) => {
                self.scalar.insert(n.to_string(), v);
            }
            _ => {}
        }
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            if let Some(e) = self.scalar.get_mut(k) {
                *e = e.saturating_sub(*v);
                if *e == 0 {
                    self.scalar.remove(k);
                }
            }
        }
    }

    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }

    fn is_zero(&self) -> bool {
        self.milli_cpu == 0 && self.memory == 0 && self.ephemeral_storage == 0 && self.scalar.values().all(|v| *v == 0)
    }
}

/// Upstream `IsScalarResourceName`: extended resources (a domain outside kubernetes.io), hugepages, and
/// attachable volumes.
fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/") && !name.starts_with("requests."))
}

/// One host port a Pod binds: upstream sanitizes an empty IP to 0.0.0.0 and an empty protocol to TCP.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Upstream `HostPortInfo.CheckConflict`: same protocol and port, and the same IP or either one 0.0.0.0.
    fn conflicts(&self, o: &HostPort) -> bool {
        self.port == o.port && self.protocol == o.protocol && (self.ip == o.ip || self.ip == "0.0.0.0" || o.ip == "0.0.0.0")
    }
}

/// What a bound Pod takes from its node (and what a Pod to schedule would take).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub requested: Resources,
    /// cpu / memory with upstream's non-zero defaults for containers that request none: scoring only.
    pub nonzero_milli_cpu: i64,
    pub nonzero_memory: i64,
    pub pods: i64,
    pub ports: Vec<HostPort>,
}

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        self.requested.add(&o.requested);
        self.nonzero_milli_cpu = self.nonzero_milli_cpu.saturating_add(o.nonzero_milli_cpu);
        self.nonzero_memory = self.nonzero_memory.saturating_add(o.nonzero_memory);
        self.pods += o.pods;
        self.ports.extend(o.ports.iter().cloned());
    }

    pub fn sub(&mut self, o: &Usage) {
        self.requested.sub(&o.requested);
        self.nonzero_milli_cpu = self.nonzero_milli_cpu.saturating_sub(o.nonzero_milli_cpu);
        self.nonzero_memory = self.nonzero_memory.saturating_sub(o.nonzero_memory);
        self.pods -= o.pods;
        for p in &o.ports {
            if let Some(i) = self.ports.iter().position(|q| q == p) {
                self.ports.swap_remove(i);
            }
        }
    }
}

/// What the Pods bound to one node take, in total and per priority (preemption's dry run removes the Pods of
/// lower priority without a list of Pods).
#[derive(Clone, Debug, Default)]
pub struct NodeUsage {
    pub total: Usage,
    by_priority: BTreeMap<i32, Usage>,
}

impl NodeUsage {
    pub fn add(&mut self, priority: i32, u: &Usage) {
        self.total.add(u);
        self.by_priority.entry(priority).or_default().add(u);
    }

    pub fn remove(&mut self, priority: i32, u: &Usage) {
        self.total.sub(u);
        if let Some(level) = self.by_priority.get_mut(&priority) {
            level.sub(u);
            if level.pods <= 0 {
                self.by_priority.remove(&priority);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total.pods <= 0
    }

    /// The usage left when every Pod of priority below `priority` is gone; `None` when there is none.
    fn without_lower_than(&self, priority: i32) -> Option<Usage> {
        let mut left = self.total.clone();
        let mut any = false;
        for (_, u) in self.by_priority.range(..priority) {
            left.sub(u);
            any = true;
        }
        any.then_some(left)
    }
}

/// What a Pod asks of a node, computed once per Pod version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodFacts {
    pub usage: Usage,
    pub priority: i32,
    /// `preemptionPolicy: Never`.
    pub never_preempts: bool,
    pub node_selector: BTreeMap<String, String>,
    pub required: Option<NodeSelector>,
    pub preferred: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
}

/// A container's requests; a resource with a limit but no request requests its limit (upstream's API
/// defaulting, `SetDefaults_Pod`, applied here too so stored Pods without it are counted the same).
fn container_requests(c: &Container) -> (Resources, i64, i64) {
    let mut r = Resources::default();
    let res = c.resources.as_ref();
    let mut have_cpu = false;
    let mut have_mem = false;
    if let Some(limits) = res.and_then(|r| r.limits.as_ref()) {
        for (name, q) in limits {
            r.set(name, &q.0);
            have_cpu |= name == "cpu";
            have_mem |= name == "memory";
        }
    }
    if let Some(requests) = res.and_then(|r| r.requests.as_ref()) {
        for (name, q) in requests {
            r.set(name, &q.0);
            have_cpu |= name == "cpu";
            have_mem |= name == "memory";
        }
    }
    let nz_cpu = if have_cpu { r.milli_cpu } else { DEFAULT_MILLI_CPU };
    let nz_mem = if have_mem { r.memory } else { DEFAULT_MEMORY };
    (r, nz_cpu, nz_mem)
}

impl PodFacts {
    pub fn of(pod: &Pod) -> PodFacts {
        let Some(spec) = pod.spec.as_ref() else { return PodFacts::default() };
        // Upstream resource.PodRequests (component-helpers): containers add up; an init container runs
        // alone except for the sidecars (restartPolicy Always) started before it, which keep running and so
        // also add to the sum; the Pod needs the larger of the two; overhead comes on top.
        let mut reqs = Resources::default();
        let (mut nz_cpu, mut nz_mem) = (0i64, 0i64);
        for c in &spec.containers {
            let (r, c_cpu, c_mem) = container_requests(c);
            reqs.add(&r);
            nz_cpu += c_cpu;
            nz_mem += c_mem;
        }
        let mut sidecars = Resources::default();
        let (mut sc_cpu, mut sc_mem) = (0i64, 0i64);
        let mut init_max = Resources::default();
        let (mut init_cpu, mut init_mem) = (0i64, 0i64);
        for c in spec.init_containers.iter().flatten() {
            let (r, c_cpu, c_mem) = container_requests(c);
            if c.restart_policy.as_deref() == Some("Always") {
                reqs.add(&r);
                nz_cpu += c_cpu;
                nz_mem += c_mem;
                sidecars.add(&r);
                sc_cpu += c_cpu;
                sc_mem += c_mem;
                init_max.max_with(&sidecars);
                init_cpu = init_cpu.max(sc_cpu);
                init_mem = init_mem.max(sc_mem);
            } else {
                let mut during = r;
                during.add(&sidecars);
                init_max.max_with(&during);
                init_cpu = init_cpu.max(c_cpu + sc_cpu);
                init_mem = init_mem.max(c_mem + sc_mem);
            }
        }
        reqs.max_with(&init_max);
        nz_cpu = nz_cpu.max(init_cpu);
        nz_mem = nz_mem.max(init_mem);
        if let Some(o) = spec.overhead.as_ref() {
            let o = Resources::from_list(o);
            nz_cpu += o.milli_cpu;
            nz_mem += o.memory;
            reqs.add(&o);
        }

        // Host ports of the app containers (upstream NodePorts); a hostNetwork Pod's container ports are host
        // ports (upstream API defaulting sets hostPort = containerPort for it).
        let host_network = spec.host_network == Some(true);
        let mut ports = Vec::new();
        for c in &spec.containers {
            for p in c.ports.iter().flatten() {
                let port = match p.host_port {
                    Some(hp) if hp > 0 => hp,
                    _ if host_network => p.container_port,
                    _ => continue,
                };
                if port <= 0 {
                    continue;
                }
                ports.push(HostPort {
                    ip: p.host_ip.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "0.0.0.0".into()),
                    protocol: p.protocol.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "TCP".into()),
                    port,
                });
            }
        }

        let na = spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
        PodFacts {
            usage: Usage { requested: reqs, nonzero_milli_cpu: nz_cpu, nonzero_memory: nz_mem, pods: 1, ports },
            priority: spec.priority.unwrap_or(0),
            never_preempts: spec.preemption_policy.as_deref() == Some("Never"),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required: na.and_then(|a| a.required_during_scheduling_ignored_during_execution.clone()),
            preferred: na.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.clone()).unwrap_or_default(),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
        }
    }
}

/// What a node offers, as far as scheduling is concerned; compared to tell a relevant Node change (labels,
/// taints, allocatable, conditions) from a heartbeat.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.taints`, then the taints upstream's node lifecycle controller derives from conditions.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
}

/// How old a Ready heartbeat may be: the agent re-reports every 60 s, upstream's grace period is 40 s.
const NODE_STALE_SECONDS: i64 = 100;

fn taint(key: &str) -> Taint {
    Taint { key: key.into(), effect: "NoSchedule".into(), value: None, time_added: None }
}

impl NodeFacts {
    pub fn of(node: &Node) -> NodeFacts {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let mut taints: Vec<Taint> = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        // Upstream's scheduler filters on taints only; the node lifecycle controller (TaintNodesByCondition)
        // turns conditions into NoSchedule taints. k1s has no such controller, so the scheduler derives the
        // same taints here: a NotReady node repels Pods exactly as upstream, with upstream's message, and a
        // Pod that tolerates the taint (as DaemonSet Pods do) still lands.
        let conds = status.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
        let cond = |t: &str| conds.iter().find(|c| c.type_ == t).map(|c| c.status.as_str());
        let mut derived = Vec::new();
        // A Ready condition nobody has renewed for longer than the agent's report period plus upstream's
        // node-monitor grace period is what the node lifecycle controller would mark Unknown: a Node object
        // left behind (another --node-name before a restart, or one created by hand) must not attract Pods
        // that no agent will ever run. k1s's own agent lives in the server, so its Node is never stale while
        // the scheduler runs; the check matters when Nodes are (re)listed.
        let stale = conds
            .iter()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .is_some_and(|t| k8s_openapi::jiff::Timestamp::now().as_second() - t.0.as_second() > NODE_STALE_SECONDS);
        match cond("Ready") {
            Some("True") if stale => derived.push(taint("node.kubernetes.io/unreachable")),
            Some("True") => {}
            Some("False") => derived.push(taint("node.kubernetes.io/not-ready")),
            // Unknown, or never reported: the node lifecycle controller calls that unreachable.
            _ => derived.push(taint("node.kubernetes.io/unreachable")),
        }
        for (c, key) in [
            ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
            ("DiskPressure", "node.kubernetes.io/disk-pressure"),
            ("PIDPressure", "node.kubernetes.io/pid-pressure"),
            ("NetworkUnavailable", "node.kubernetes.io/network-unavailable"),
        ] {
            if cond(c) == Some("True") {
                derived.push(taint(key));
            }
        }
        let unschedulable = spec.and_then(|s| s.unschedulable) == Some(true);
        if unschedulable {
            derived.push(taint(TAINT_UNSCHEDULABLE));
        }
        for t in derived {
            if !taints.iter().any(|x| x.key == t.key && x.effect == t.effect) {
                taints.push(t);
            }
        }
        let alloc = status.and_then(|s| s.allocatable.clone()).unwrap_or_default();
        let allowed_pods = alloc.get("pods").and_then(|q| scaled(&q.0, 0)).unwrap_or(0);
        NodeFacts {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            unschedulable,
            allocatable: Resources::from_list(&alloc),
            allowed_pods,
        }
    }
}

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if k != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// One `NodeSelectorRequirement` against a node's labels (upstream `nodeSelectorRequirementsAsSelector`
/// semantics: NotIn and DoesNotExist match a missing label; Gt/Lt compare integers). `None` when the
/// requirement is invalid, which makes its whole term match nothing.
fn label_requirement(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> Option<bool> {
    let values = r.values.as_deref().unwrap_or_default();
    let have = labels.get(&r.key);
    Some(match r.operator.as_str() {
        "In" if !values.is_empty() => have.is_some_and(|v| values.contains(v)),
        "NotIn" if !values.is_empty() => have.is_none_or(|v| !values.contains(v)),
        "Exists" if values.is_empty() => have.is_some(),
        "DoesNotExist" if values.is_empty() => have.is_none(),
        op @ ("Gt" | "Lt") if values.len() == 1 => {
            let want: i64 = values[0].parse().ok()?;
            match have.and_then(|v| v.parse::<i64>().ok()) {
                Some(v) if op == "Gt" => v > want,
                Some(v) => v < want,
                None => false,
            }
        }
        _ => return None,
    })
}

/// `matchFields`: only `metadata.name`, with In / NotIn and exactly one value (upstream
/// `nodeSelectorRequirementsAsFieldSelector`).
fn field_requirement(r: &NodeSelectorRequirement, name: &str) -> Option<bool> {
    let values = r.values.as_deref().unwrap_or_default();
    if r.key != "metadata.name" || values.len() != 1 {
        return None;
    }
    match r.operator.as_str() {
        "In" => Some(values[0] == name),
        "NotIn" => Some(values[0] != name),
        _ => None,
    }
}

/// A term matches when all its requirements do; an empty term matches nothing (upstream).
fn term_matches(t: &NodeSelectorTerm, node: &NodeFacts) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| label_requirement(r, &node.labels) == Some(true)) && fields.iter().all(|r| field_requirement(r, &node.name) == Some(true))
}

/// `nodeSelector` (every label equal) and the required node affinity (any term).
fn affinity_matches(pod: &PodFacts, node: &NodeFacts) -> bool {
    if !pod.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v)) {
        return false;
    }
    match &pod.required {
        Some(sel) => sel.node_selector_terms.iter().any(|t| term_matches(t, node)),
        None => true,
    }
}

/// Why one node was filtered out: the reasons of the first filter that failed (upstream stops at the first
/// failing plugin), and whether removing Pods could help (`Unschedulable`) or not
/// (`UnschedulableAndUnresolvable`), which is what preemption looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFailure {
    pub reasons: Vec<String>,
    pub resolvable: bool,
}

impl NodeFailure {
    fn unresolvable(reason: impl Into<String>) -> NodeFailure {
        NodeFailure { reasons: vec![reason.into()], resolvable: false }
    }
}

/// The filters, in upstream's default plugin order, of one node with `used` already taken.
pub fn filter(pod: &PodFacts, node: &NodeFacts, used: &Usage) -> Result<(), NodeFailure> {
    // NodeUnschedulable.
    if node.unschedulable && !tolerated(&pod.tolerations, &taint(TAINT_UNSCHEDULABLE)) {
        return Err(NodeFailure::unresolvable(REASON_UNSCHEDULABLE));
    }
    // TaintToleration: the first NoSchedule / NoExecute taint not tolerated; PreferNoSchedule only scores.
    if let Some(t) = node.taints.iter().find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(&pod.tolerations, t)) {
        return Err(NodeFailure::unresolvable(format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value.as_deref().unwrap_or(""))));
    }
    // NodeAffinity (with nodeSelector).
    if !affinity_matches(pod, node) {
        return Err(NodeFailure::unresolvable(REASON_AFFINITY));
    }
    // NodePorts.
    if pod.usage.ports.iter().any(|p| used.ports.iter().any(|q| p.conflicts(q))) {
        return Err(NodeFailure { reasons: vec![REASON_PORTS.into()], resolvable: true });
    }
    // NodeResourcesFit: every insufficient resource is a reason.
    let reasons = insufficient(&pod.usage.requested, node, used);
    if !reasons.is_empty() {
        return Err(NodeFailure { reasons, resolvable: true });
    }
    Ok(())
}

/// Upstream `fitsRequest`: the pod count, then cpu, memory, ephemeral-storage and scalar resources, each
/// only when the Pod requests some of it.
fn insufficient(req: &Resources, node: &NodeFacts, used: &Usage) -> Vec<String> {
    let mut out = Vec::new();
    if used.pods + 1 > node.allowed_pods {
        out.push(REASON_TOO_MANY_PODS.to_string());
    }
    if req.is_zero() {
        return out;
    }
    let a = &node.allocatable;
    let u = &used.requested;
    if req.milli_cpu > 0 && req.milli_cpu > a.milli_cpu.saturating_sub(u.milli_cpu) {
        out.push("Insufficient cpu".into());
    }
    if req.memory > 0 && req.memory > a.memory.saturating_sub(u.memory) {
        out.push("Insufficient memory".into());
    }
    if req.ephemeral_storage > 0 && req.ephemeral_storage > a.ephemeral_storage.saturating_sub(u.ephemeral_storage) {
        out.push("Insufficient ephemeral-storage".into());
    }
    for (name, want) in &req.scalar {
        let free = a.scalar.get(name).copied().unwrap_or(0).saturating_sub(u.scalar.get(name).copied().unwrap_or(0));
        if *want > 0 && *want > free {
            out.push(format!("Insufficient {name}"));
        }
    }
    out
}

/// Why no node fits: per node, the failure; rendered as upstream's `FitError` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    pub num_nodes: usize,
    pub failures: Vec<NodeFailure>,
    /// The PostFilter (preemption) part, already prefixed with `preemption: `; empty when there is none.
    pub post_filter: String,
}

/// "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) ...": reasons counted, rendered as
/// "<count> <reason>" and sorted as strings (Go's sort.Strings), as upstream's `FitError.Error()` does.
fn histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_nodes == 0 {
            return f.write_str(NO_NODES);
        }
        let hist = histogram(self.failures.iter().flat_map(|n| n.reasons.iter().map(String::as_str)));
        write!(f, "0/{} nodes are available: {hist}.", self.num_nodes)?;
        // Upstream appends the PostFilter message with the same " %v." separator although that message
        // already ends in a full stop, hence its ".." (kept: tools match upstream's text).
        if !self.post_filter.is_empty() {
            write!(f, " {}.", self.post_filter)?;
        }
        Ok(())
    }
}

/// Upstream DefaultPreemption's message when it finds no candidate: nodes whose failure is unresolvable are
/// "not helpful"; on the others, a dry run removes the Pods of lower priority. Without any, there is "no
/// victim" (always so when no Pod sets a priority); when removing them would not help, the filter's reasons
/// stand; when it would, upstream evicts them, which k1s does not do, and the message says so.
fn preemption_message(pod: &PodFacts, nodes: &[(&NodeFacts, &NodeUsage)], failures: &[NodeFailure]) -> String {
    if pod.never_preempts {
        return "preemption: not eligible due to preemptionPolicy=Never.".into();
    }
    let mut per_node: Vec<NodeFailure> = Vec::with_capacity(failures.len());
    for ((node, usage), failure) in nodes.iter().zip(failures) {
        let f = if !failure.resolvable {
            NodeFailure::unresolvable(PREEMPTION_NOT_HELPFUL)
        } else {
            match usage.without_lower_than(pod.priority) {
                None => NodeFailure::unresolvable(NO_VICTIMS),
                Some(left) => match filter(pod, node, &left) {
                    Ok(()) => NodeFailure::unresolvable(NO_PREEMPTION),
                    Err(f) => f,
                },
            }
        };
        per_node.push(f);
    }
    let inner = FitError { num_nodes: nodes.len(), failures: per_node, post_filter: String::new() };
    format!("preemption: {inner}")
}

/// Upstream `DefaultNormalizeScore`.
fn normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        if max == 0 {
            if reverse {
                *s = MAX_NODE_SCORE;
            }
            continue;
        }
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// Scores of the feasible nodes with upstream's default weights: NodeResourcesFit LeastAllocated (1),
/// NodeResourcesBalancedAllocation (1), TaintToleration on PreferNoSchedule (3), preferred node affinity
/// (2). Topology spread, inter-Pod affinity and image locality are not implemented.
fn scores(pod: &PodFacts, feasible: &[(&NodeFacts, &NodeUsage)]) -> Vec<i64> {
    let mut taint_counts = Vec::with_capacity(feasible.len());
    let mut affinity = Vec::with_capacity(feasible.len());
    let mut base = Vec::with_capacity(feasible.len());
    // Upstream counts PreferNoSchedule taints against the tolerations for that effect (or for any effect).
    let soft_tolerations: Vec<Toleration> =
        pod.tolerations.iter().filter(|t| t.effect.as_deref().is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")).cloned().collect();
    for (node, usage) in feasible {
        let cpu = usage.total.nonzero_milli_cpu + pod.usage.nonzero_milli_cpu;
        let mem = usage.total.nonzero_memory + pod.usage.nonzero_memory;
        let (acpu, amem) = (node.allocatable.milli_cpu, node.allocatable.memory);
        let least = (least_requested(cpu, acpu) + least_requested(mem, amem)) / 2;
        // BalancedAllocation: 100 × (1 − the standard deviation of the requested fractions).
        let frac = |r: i64, a: i64| if a <= 0 { 0.0 } else { (r as f64 / a as f64).min(1.0) };
        let (fc, fm) = (
            frac(usage.total.requested.milli_cpu + pod.usage.requested.milli_cpu, acpu),
            frac(usage.total.requested.memory + pod.usage.requested.memory, amem),
        );
        let balanced = ((1.0 - (fc - fm).abs() / 2.0) * MAX_NODE_SCORE as f64) as i64;
        base.push(least + balanced);
        taint_counts.push(node.taints.iter().filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&soft_tolerations, t)).count() as i64);
        affinity.push(pod.preferred.iter().filter(|p| p.weight != 0 && term_matches(&p.preference, node)).map(|p| p.weight as i64).sum());
    }
    normalize(&mut taint_counts, true);
    normalize(&mut affinity, false);
    base.iter().zip(&taint_counts).zip(&affinity).map(|((b, t), a)| b + 3 * t + 2 * a).collect()
}

/// Pick a node for `pod`: filter every node, score the feasible ones, take the best (ties: the first by
/// name; upstream picks one of them at random). `nodes` is every Node with what its Pods already use.
pub fn schedule(pod: &PodFacts, nodes: &[(&NodeFacts, &NodeUsage)]) -> Result<String, FitError> {
    let mut feasible = Vec::new();
    let mut failures = Vec::new();
    for (node, usage) in nodes {
        match filter(pod, node, &usage.total) {
            Ok(()) => feasible.push((*node, *usage)),
            Err(f) => failures.push(f),
        }
    }
    if feasible.is_empty() {
        let post_filter = if nodes.is_empty() { String::new() } else { preemption_message(pod, nodes, &failures) };
        return Err(FitError { num_nodes: nodes.len(), failures, post_filter });
    }
    if feasible.len() == 1 {
        return Ok(feasible[0].0.name.clone());
    }
    let s = scores(pod, &feasible);
    let mut best = 0;
    for (i, v) in s.iter().enumerate() {
        if *v > s[best] || (*v == s[best] && feasible[i].0.name < feasible[best].0.name) {
            best = i;
        }
    }
    Ok(feasible[best].0.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn pod(spec: Value) -> PodFacts {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c"}]);
        }
        PodFacts::of(&serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap())
    }

    fn node_json(name: &str, patch: Value) -> Node {
        let mut n = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "10Gi"},
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}],
            },
        });
        merge(&mut n, patch);
        serde_json::from_value(n).unwrap()
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn node(patch: Value) -> NodeFacts {
        NodeFacts::of(&node_json("n1", patch))
    }

    fn used(spec: Value) -> Usage {
        pod(spec).usage
    }

    #[test]
    fn pod_requests_follow_upstream_pod_requests() {
        // (spec, milli_cpu, memory, nonzero cpu, nonzero memory)
        let cases: Vec<(&str, Value, i64, i64, i64, i64)> = vec![
            ("no requests", json!({}), 0, 0, 100, 200 << 20),
            ("sum of containers", json!({"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "0.25", "memory": "512Mi"}}}]}), 350, 3 << 29, 350, 3 << 29),
            ("limits stand in for missing requests", json!({"containers": [
                {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}]}), 500, 1 << 30, 500, 1 << 30),
            ("the largest init container wins over the sum", json!({
                "initContainers": [
                    {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                    {"name": "i2", "resources": {"requests": {"cpu": "2", "memory": "3G"}}}],
                "containers": [
                    {"name": "c1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                    {"name": "c2", "resources": {"requests": {"cpu": "1", "memory": "1G"}}}]}), 3000, 3_000_000_000, 3000, 3_000_000_000),
            ("sidecars add to the sum and to later init containers", json!({
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}},
                    {"name": "init", "resources": {"requests": {"cpu": "2", "memory": "100Mi"}}}],
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}),
                2500, (1 << 30) + (100 << 20), 2500, (1 << 30) + (100 << 20)),
            ("overhead comes on top", json!({"overhead": {"cpu": "250m", "memory": "120Mi"},
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}),
                1250, (1 << 30) + (120 << 20), 1250, (1 << 30) + (120 << 20)),
        ];
        for (what, spec, cpu, mem, nz_cpu, nz_mem) in cases {
            let f = pod(spec);
            assert_eq!((f.usage.requested.milli_cpu, f.usage.requested.memory), (cpu, mem), "{what}");
            assert_eq!((f.usage.nonzero_milli_cpu, f.usage.nonzero_memory), (nz_cpu, nz_mem), "{what}: non-zero");
            assert_eq!(f.usage.pods, 1, "{what}");
        }
        let f = pod(json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "2", "ephemeral-storage": "1Gi", "hugepages-2Mi": "4Mi"}}}]}));
        assert_eq!(f.usage.requested.ephemeral_storage, 1 << 30);
        assert_eq!(f.usage.requested.scalar, BTreeMap::from([("example.com/gpu".to_string(), 2), ("hugepages-2Mi".to_string(), 4 << 20)]));
    }

    #[test]
    fn resource_fit() {
        let n = node(json!({"status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "3", "ephemeral-storage": "10Gi", "example.com/gpu": "1"}}}));
        let half = json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]});
        type Case = (&'static str, Value, Usage, Result<(), Vec<&'static str>>);
        let cases: Vec<Case> = vec![
            ("fits an empty node", half.clone(), Usage::default(), Ok(())),
            ("fits exactly", half.clone(), used(half.clone()), Ok(())),
            ("memory short by one byte", json!({"containers": [{"name": "c", "resources": {"requests": {"memory": "2147483649"}}}]}), used(half.clone()), Err(vec!["Insufficient memory"])),
            ("cpu and memory both short", json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1001m", "memory": "3Gi"}}}]}), used(half.clone()), Err(vec!["Insufficient cpu", "Insufficient memory"])),
            ("ephemeral storage", json!({"containers": [{"name": "c", "resources": {"requests": {"ephemeral-storage": "11Gi"}}}]}), Usage::default(), Err(vec!["Insufficient ephemeral-storage"])),
            ("extended resource", json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "2"}}}]}), Usage::default(), Err(vec!["Insufficient example.com/gpu"])),
            ("extended resource the node lacks", json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/fpga": "1"}}}]}), Usage::default(), Err(vec!["Insufficient example.com/fpga"])),
            ("pod count", json!({}), Usage { pods: 3, ..Default::default() }, Err(vec!["Too many pods"])),
            ("pod count and memory", json!({"containers": [{"name": "c", "resources": {"requests": {"memory": "5Gi"}}}]}), Usage { pods: 3, ..Default::default() }, Err(vec!["Too many pods", "Insufficient memory"])),
            // A Pod that requests nothing fits a full node (upstream checks only the pod count then).
            ("best effort on a full node", json!({}), used(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}]})), Ok(())),
        ];
        for (what, spec, u, want) in cases {
            let got = filter(&pod(spec), &n, &u);
            match want {
                Ok(()) => assert_eq!(got, Ok(()), "{what}"),
                Err(r) => assert_eq!(got, Err(NodeFailure { reasons: r.iter().map(|s| s.to_string()).collect(), resolvable: true }), "{what}"),
            }
        }
    }

    #[test]
    fn node_selector_and_affinity() {
        let n = node(json!({"metadata": {"labels": {"disk": "ssd", "gen": "5", "zone": "a"}}}));
        let req = |exprs: Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": exprs}]}}}});
        let cases: Vec<(&str, Value, bool)> = vec![
            ("no constraints", json!({}), true),
            ("nodeSelector matches", json!({"nodeSelector": {"disk": "ssd"}}), true),
            ("nodeSelector value differs", json!({"nodeSelector": {"disk": "hdd"}}), false),
            ("nodeSelector label missing", json!({"nodeSelector": {"gpu": "yes"}}), false),
            ("In", req(json!([{"key": "zone", "operator": "In", "values": ["b", "a"]}])), true),
            ("In misses", req(json!([{"key": "zone", "operator": "In", "values": ["b"]}])), false),
            ("NotIn", req(json!([{"key": "zone", "operator": "NotIn", "values": ["b"]}])), true),
            ("NotIn on a missing label", req(json!([{"key": "rack", "operator": "NotIn", "values": ["1"]}])), true),
            ("NotIn misses", req(json!([{"key": "zone", "operator": "NotIn", "values": ["a"]}])), false),
            ("Exists", req(json!([{"key": "disk", "operator": "Exists"}])), true),
            ("DoesNotExist", req(json!([{"key": "gpu", "operator": "DoesNotExist"}])), true),
            ("DoesNotExist misses", req(json!([{"key": "disk", "operator": "DoesNotExist"}])), false),
            ("Gt", req(json!([{"key": "gen", "operator": "Gt", "values": ["4"]}])), true),
            ("Gt equal misses", req(json!([{"key": "gen", "operator": "Gt", "values": ["5"]}])), false),
            ("Lt", req(json!([{"key": "gen", "operator": "Lt", "values": ["6"]}])), true),
            ("Lt on a non-integer label", req(json!([{"key": "zone", "operator": "Lt", "values": ["6"]}])), false),
            ("Gt with two values is invalid", req(json!([{"key": "gen", "operator": "Gt", "values": ["1", "2"]}])), false),
            ("all expressions of a term", req(json!([{"key": "zone", "operator": "In", "values": ["a"]}, {"key": "disk", "operator": "In", "values": ["hdd"]}])), false),
            ("any term", json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}), true),
            ("an empty term matches nothing", json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}}), false),
            ("matchFields metadata.name", json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}}), true),
            ("matchFields NotIn", json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]}}}}), false),
            ("matchFields on another field is invalid", json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n1"]}]}]}}}}), false),
            ("nodeSelector and affinity must both match", json!({"nodeSelector": {"disk": "hdd"}, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}), false),
        ];
        for (what, spec, ok) in cases {
            let got = filter(&pod(spec), &n, &Usage::default());
            let want = if ok { Ok(()) } else { Err(NodeFailure::unresolvable(REASON_AFFINITY)) };
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn taints_and_tolerations() {
        let tainted = |t: Value| node(json!({"spec": {"taints": [t]}}));
        let cases: Vec<(&str, NodeFacts, Value, Result<(), &str>)> = vec![
            ("NoSchedule untolerated", tainted(json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})), json!([]), Err("node(s) had untolerated taint {dedicated: gpu}")),
            ("NoExecute untolerated", tainted(json!({"key": "k", "effect": "NoExecute"})), json!([]), Err("node(s) had untolerated taint {k: }")),
            ("PreferNoSchedule is ignored by the filter", tainted(json!({"key": "k", "effect": "PreferNoSchedule"})), json!([]), Ok(())),
            ("Equal with the value", tainted(json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})), json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]), Ok(())),
            ("operator defaults to Equal", tainted(json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})), json!([{"key": "dedicated", "value": "gpu"}]), Ok(())),
            ("Equal with another value", tainted(json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})), json!([{"key": "dedicated", "value": "cpu"}]), Err("node(s) had untolerated taint {dedicated: gpu}")),
            ("Exists on the key", tainted(json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})), json!([{"key": "dedicated", "operator": "Exists"}]), Ok(())),
            ("Exists with an empty key tolerates everything", tainted(json!({"key": "anything", "value": "x", "effect": "NoExecute"})), json!([{"operator": "Exists"}]), Ok(())),
            ("another effect", tainted(json!({"key": "k", "effect": "NoSchedule"})), json!([{"key": "k", "operator": "Exists", "effect": "NoExecute"}]), Err("node(s) had untolerated taint {k: }")),
            ("a NotReady node is tainted not-ready", node(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})), json!([]), Err("node(s) had untolerated taint {node.kubernetes.io/not-ready: }")),
            ("a Ready node whose heartbeat stopped is unreachable", node(json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2020-01-01T00:00:00Z"}]}})), json!([]), Err("node(s) had untolerated taint {node.kubernetes.io/unreachable: }")),
            ("a Ready node with a fresh heartbeat fits", node(json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": k8s_openapi::jiff::Timestamp::now().to_string()}]}})), json!([]), Ok(())),
            ("an Unknown node is tainted unreachable", node(json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})), json!([]), Err("node(s) had untolerated taint {node.kubernetes.io/unreachable: }")),
            ("a node without status is unreachable", NodeFacts::of(&serde_json::from_value(json!({"metadata": {"name": "bare"}})).unwrap()), json!([]), Err("node(s) had untolerated taint {node.kubernetes.io/unreachable: }")),
            ("the not-ready taint can be tolerated", node(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})), json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]), Ok(())),
            ("disk pressure", node(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "True"}]}})), json!([]), Err("node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }")),
        ];
        for (what, n, tol, want) in cases {
            let got = filter(&pod(json!({"tolerations": tol})), &n, &Usage::default());
            assert_eq!(got, want.map_err(NodeFailure::unresolvable), "{what}");
        }
    }

    #[test]
    fn unschedulable_nodes() {
        let n = node(json!({"spec": {"unschedulable": true}}));
        assert_eq!(filter(&pod(json!({})), &n, &Usage::default()), Err(NodeFailure::unresolvable(REASON_UNSCHEDULABLE)));
        let tol = json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]});
        assert_eq!(filter(&pod(tol), &n, &Usage::default()), Ok(()));
    }

    #[test]
    fn host_ports() {
        let n = node(json!({}));
        let port = |p: Value| json!({"containers": [{"name": "c", "ports": [p]}]});
        let on_node = used(port(json!({"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"})));
        let cases: Vec<(&str, Value, bool)> = vec![
            ("same port, protocol and IP", port(json!({"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"})), false),
            ("0.0.0.0 overlaps every IP", port(json!({"containerPort": 80, "hostPort": 8080})), false),
            ("another IP", port(json!({"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"})), true),
            ("another protocol", port(json!({"containerPort": 80, "hostPort": 8080, "protocol": "UDP"})), true),
            ("another port", port(json!({"containerPort": 80, "hostPort": 8081})), true),
            ("no host port", port(json!({"containerPort": 8080})), true),
        ];
        for (what, spec, ok) in cases {
            let want = if ok { Ok(()) } else { Err(NodeFailure { reasons: vec![REASON_PORTS.into()], resolvable: true }) };
            assert_eq!(filter(&pod(spec), &n, &on_node), want, "{what}");
        }
        // hostNetwork: the container port is the host port.
        let hn = pod(json!({"hostNetwork": true, "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]}));
        assert_eq!(hn.usage.ports, vec![HostPort { ip: "0.0.0.0".into(), protocol: "TCP".into(), port: 8080 }]);
        assert!(filter(&hn, &n, &on_node).is_err());
    }

    #[test]
    fn filters_stop_at_the_first_failure_in_upstream_order() {
        // Cordoned, tainted, unmatched and full: only "unschedulable" is reported.
        let n = node(json!({"spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]}}));
        let p = pod(json!({"nodeSelector": {"x": "y"}, "containers": [{"name": "c", "resources": {"requests": {"memory": "100Gi"}}}]}));
        assert_eq!(filter(&p, &n, &Usage::default()), Err(NodeFailure::unresolvable(REASON_UNSCHEDULABLE)));
        let n = node(json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}));
        assert_eq!(filter(&p, &n, &Usage::default()), Err(NodeFailure::unresolvable("node(s) had untolerated taint {k: }")));
        assert_eq!(filter(&p, &node(json!({})), &Usage::default()), Err(NodeFailure::unresolvable(REASON_AFFINITY)));
    }

    fn run(p: &PodFacts, nodes: &[(NodeFacts, NodeUsage)]) -> Result<String, String> {
        let refs: Vec<(&NodeFacts, &NodeUsage)> = nodes.iter().map(|(n, u)| (n, u)).collect();
        schedule(p, &refs).map_err(|e| e.to_string())
    }

    fn usage_of(spec: Value, priority: i32) -> NodeUsage {
        let mut u = NodeUsage::default();
        u.add(priority, &used(spec));
        u
    }

    #[test]
    fn fit_error_messages() {
        let big = json!({"containers": [{"name": "c", "resources": {"requests": {"memory": "3Gi"}}}]});
        let n1 = node(json!({}));
        let half = usage_of(json!({"containers": [{"name": "c", "resources": {"requests": {"memory": "2Gi", "cpu": "1500m"}}}]}), 0);
        let n2 = NodeFacts::of(&node_json("n2", json!({"metadata": {"labels": {"disk": "hdd"}}})));
        let tainted = NodeFacts::of(&node_json("n3", json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}})));
        type Case = (&'static str, Value, Vec<(NodeFacts, NodeUsage)>, &'static str);
        let cases: Vec<Case> = vec![
            ("no nodes", big.clone(), vec![], "no nodes available to schedule pods"),
            ("one node without memory", big.clone(), vec![(n1.clone(), half.clone())],
                "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."),
            ("two reasons on one node", json!({"containers": [{"name": "c", "resources": {"requests": {"memory": "3Gi", "cpu": "1"}}}]}), vec![(n1.clone(), half.clone())],
                "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."),
            ("selector on one node, memory on the other", json!({"nodeSelector": {"kubernetes.io/hostname": "n1"}, "containers": [{"name": "c", "resources": {"requests": {"memory": "3Gi"}}}]}),
                vec![(n1.clone(), half.clone()), (n2.clone(), NodeUsage::default())],
                "0/2 nodes are available: 1 Insufficient memory, 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.."),
            ("nothing matches the selector", json!({"nodeSelector": {"disk": "ssd"}}), vec![(n1.clone(), NodeUsage::default()), (n2.clone(), NodeUsage::default())],
                "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."),
            ("a taint", json!({}), vec![(tainted.clone(), NodeUsage::default())],
                "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."),
            ("cordoned", json!({}), vec![(node(json!({"spec": {"unschedulable": true}})), NodeUsage::default())],
                "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."),
            ("ports", json!({"containers": [{"name": "c", "ports": [{"containerPort": 1, "hostPort": 80}]}]}),
                vec![(n1.clone(), usage_of(json!({"containers": [{"name": "c", "ports": [{"containerPort": 1, "hostPort": 80}]}]}), 0))],
                "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."),
            ("preemptionPolicy Never", json!({"preemptionPolicy": "Never", "containers": [{"name": "c", "resources": {"requests": {"memory": "3Gi"}}}]}), vec![(n1.clone(), half.clone())],
                "0/1 nodes are available: 1 Insufficient memory. preemption: not eligible due to preemptionPolicy=Never.."),
            ("lower-priority Pods that would make room", json!({"priority": 10, "containers": [{"name": "c", "resources": {"requests": {"memory": "3Gi"}}}]}), vec![(n1.clone(), half.clone())],
                "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 k1s does not preempt lower-priority Pods.."),
            ("lower-priority Pods that would not make room", json!({"priority": 10, "containers": [{"name": "c", "resources": {"requests": {"memory": "5Gi"}}}]}), vec![(n1.clone(), half.clone())],
                "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 Insufficient memory.."),
        ];
        for (what, spec, nodes, want) in cases {
            assert_eq!(run(&pod(spec), &nodes), Err(want.to_string()), "{what}");
        }
    }

    #[test]
    fn histogram_sorts_as_strings_like_go() {
        // "10 ..." sorts before "2 ..." in byte order, as upstream's sort.Strings does.
        let mut reasons = vec!["Insufficient cpu"; 10];
        reasons.extend(["Insufficient memory"; 2]);
        assert_eq!(histogram(reasons.into_iter()), "10 Insufficient cpu, 2 Insufficient memory");
        assert_eq!(histogram(["b", "a", "b"].into_iter()), "1 a, 2 b");
    }

    #[test]
    fn picks_the_best_node() {
        let p = pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}));
        let a = NodeFacts::of(&node_json("a", json!({})));
        let b = NodeFacts::of(&node_json("b", json!({})));
        let busy = usage_of(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}), 0);
        // The less loaded node wins; on a tie, the first by name.
        assert_eq!(run(&p, &[(a.clone(), busy.clone()), (b.clone(), NodeUsage::default())]), Ok("b".into()));
        assert_eq!(run(&p, &[(a.clone(), NodeUsage::default()), (b.clone(), NodeUsage::default())]), Ok("a".into()));
        // A PreferNoSchedule taint pushes Pods elsewhere unless tolerated.
        let soft = NodeFacts::of(&node_json("a", json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}})));
        assert_eq!(run(&p, &[(soft.clone(), NodeUsage::default()), (b.clone(), NodeUsage::default())]), Ok("b".into()));
        // Preferred affinity pulls.
        let pref = pod(json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["b"]}]}}]}}}));
        assert_eq!(run(&pref, &[(a.clone(), NodeUsage::default()), (b.clone(), NodeUsage::default())]), Ok("b".into()));
        // Only feasible nodes are scored.
        let sel = pod(json!({"nodeSelector": {"kubernetes.io/hostname": "a"}}));
        assert_eq!(run(&sel, &[(a, busy), (b, NodeUsage::default())]), Ok("a".into()));
    }

    #[test]
    fn node_usage_tracks_priorities() {
        let mut u = NodeUsage::default();
        let x = used(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}, "ports": [{"containerPort": 1, "hostPort": 80}]}]}));
        u.add(0, &x);
        u.add(5, &x);
        assert_eq!(u.total.pods, 2);
        assert_eq!(u.total.requested.milli_cpu, 2000);
        assert_eq!(u.without_lower_than(0), None);
        assert_eq!(u.without_lower_than(5).map(|l| (l.pods, l.requested.milli_cpu, l.ports.len())), Some((1, 1000, 1)));
        u.remove(0, &x);
        u.remove(5, &x);
        assert!(u.is_empty());
        assert_eq!(u.total, Usage::default());
        assert!(u.by_priority.is_empty());
    }

    #[test]
    fn node_facts_ignore_heartbeats() {
        let a = NodeFacts::of(&node_json("n", json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}})));
        let b = NodeFacts::of(&node_json("n", json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:10Z"}]}})));
        assert_eq!(a, b);
        let c = NodeFacts::of(&node_json("n", json!({"metadata": {"labels": {"new": "label"}}})));
        assert_ne!(a, c);
        assert_eq!(a.allowed_pods, 110);
        assert_eq!(a.allocatable.memory, 4 << 30);
        assert_eq!(a.allocatable.milli_cpu, 2000);
    }
}
