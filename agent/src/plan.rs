//! `compute_pod_actions`: the pure plan of what to do for one Pod, from its desired spec and what the runtime
//! observed (kubelet's `computePodActions`). The pod worker applies the plan; tests are table-driven.

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::probe::ProbeKind;

/// Restart back-off as the kubelet does it: immediately the first time, then 10 s doubling up to 5 minutes.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before it exited starts its back-off afresh (upstream: twice the maximum).
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// Whether an attempt that ran for `ran_for` resets the back-off.
pub fn backoff_resets(ran_for: Duration) -> bool {
    ran_for >= BACKOFF_RESET
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(s: Option<&str>) -> RestartPolicy {
        match s {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// The parts of a Pod's spec the plan depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub deleting: bool,
    pub restart_policy: RestartPolicy,
    pub init_containers: Vec<String>,
    /// Init containers with `restartPolicy: Always` (sidecars): started in order, kept running beside the
    /// main containers, restarted whenever they exit, stopped once the main containers are done.
    pub sidecars: std::collections::BTreeSet<String>,
    pub containers: Vec<String>,
    /// Ephemeral containers (`kubectl debug`): started once, never restarted, not part of the phase.
    pub ephemeral: Vec<String>,
    /// `activeDeadlineSeconds`.
    pub active_deadline: Option<Duration>,
}

/// What the runtime knows of one container name: its latest attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerObserved {
    /// How many times it has been restarted (= the latest attempt number).
    pub restart_count: u32,
    /// The restarts that count for back-off: those since the back-off was last reset.
    pub backoff_restarts: u32,
    pub state: ContainerState,
    /// A liveness or startup probe of the running attempt has failed past its threshold.
    pub unhealthy: Option<ProbeKind>,
    /// Running and its startup probe (if any) has succeeded: what lets the next init container start after
    /// a sidecar.
    pub started: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContainerState {
    Running,
    /// Ended with this exit code; `finished_ago` = time since it ended.
    Exited { exit_code: i32, finished_ago: Duration, ran_for: Duration },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The sandbox exists and its network is up.
    pub sandbox: bool,
    pub containers: BTreeMap<String, ContainerObserved>,
    /// How long the Pod has been active on the node (since its `startTime`).
    pub active_for: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateSandbox,
    /// Start the named container; `attempt` = its new restart count.
    StartContainer { name: String, init: bool, attempt: u32 },
    /// Nothing to do for the named container until the back-off ends.
    BackOff { name: String, wait: Duration },
    /// The Pod is being deleted: stop every container (grace period), remove the sandbox, finalize.
    KillPod,
    /// The Pod has finished for good: release its network and cgroups, keep its logs.
    StopSandbox,
    /// A probe failed: stop this container (preStop, grace period); the restart policy decides what follows.
    KillContainer { name: String, probe: ProbeKind },
    /// `activeDeadlineSeconds` ran out: stop every container; the Pod is Failed (DeadlineExceeded).
    DeadlineExceeded,
    /// The main containers are done for good but sidecars still run: stop them, then the sandbox goes.
    StopSidecars,
}

/// One probe's result as upstream's prober worker keeps it: the result changes only after `threshold`
/// consecutive results that agree (successThreshold for success, failureThreshold for failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeCounter {
    /// The current result; `None` until the first one counts (startup probes start unknown).
    pub result: Option<bool>,
    last: Option<bool>,
    run: u32,
}

impl ProbeCounter {
    /// Upstream's initial results: readiness starts failed, liveness succeeded, startup unknown.
    pub fn new(kind: ProbeKind) -> ProbeCounter {
        let result = match kind {
            ProbeKind::Readiness => Some(false),
            ProbeKind::Liveness => Some(true),
            ProbeKind::Startup => None,
        };
        ProbeCounter { result, last: None, run: 0 }
    }

    /// Count one probe result; returns whether the current result changed.
    pub fn observe(&mut self, ok: bool, success_threshold: u32, failure_threshold: u32) -> bool {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let needed = if ok { success_threshold } else { failure_threshold };
        if self.run < needed.max(1) || self.result == Some(ok) {
            return false;
        }
        self.result = Some(ok);
        true
    }
}

/// Whether `activeDeadlineSeconds` has run out.
pub fn deadline_exceeded(d: &Desired, o: &Observed) -> bool {
    d.active_deadline.is_some_and(|max| o.active_for >= max)
}

/// Back-off before a container's restart number `restart_count + 1`.
pub fn backoff(restart_count: u32) -> Duration {
    if restart_count == 0 {
        return Duration::ZERO;
    }
    let secs = BACKOFF_INITIAL.as_secs().saturating_mul(1u64 << (restart_count - 1).min(16));
    Duration::from_secs(secs).min(BACKOFF_MAX)
}

/// Whether the Pod has reached a terminal phase (Succeeded or Failed): nothing will ever run again.
pub fn is_terminal(d: &Desired, o: &Observed) -> bool {
    if deadline_exceeded(d, o) {
        return true;
    }
    if d.restart_policy == RestartPolicy::Always {
        return false;
    }
    // A failed init container that will not be restarted ends the Pod; sidecars never decide the phase.
    for name in d.init_containers.iter().filter(|n| !d.sidecars.contains(*n)) {
        match o.containers.get(name).map(|c| &c.state) {
            Some(ContainerState::Exited { exit_code, .. }) if *exit_code != 0 => return !d.restart_policy.restarts(*exit_code),
            Some(ContainerState::Exited { .. }) => continue,
            _ => return false,
        }
    }
    !d.containers.is_empty()
        && d.containers.iter().all(|name| match o.containers.get(name).map(|c| &c.state) {
            Some(ContainerState::Exited { exit_code, .. }) => !d.restart_policy.restarts(*exit_code),
            _ => false,
        })
}

pub fn compute_pod_actions(d: &Desired, o: &Observed) -> Vec<Action> {
    if d.deleting {
        return vec![Action::KillPod];
    }
    if deadline_exceeded(d, o) {
        // The kubelet kills everything first; the sandbox is released once nothing runs.
        if o.containers.values().any(|c| c.state == ContainerState::Running) {
            return vec![Action::DeadlineExceeded];
        }
        return if o.sandbox { vec![Action::StopSandbox] } else { vec![] };
    }
    if is_terminal(d, o) {
        if o.containers.values().any(|c| c.state == ContainerState::Running) {
            return vec![Action::StopSidecars];
        }
        return if o.sandbox { vec![Action::StopSandbox] } else { vec![] };
    }
    let mut actions = Vec::new();
    if !o.sandbox {
        actions.push(Action::CreateSandbox);
    }
    // Upstream: ephemeral containers may start even before initialization completes, and never restart.
    for name in d.ephemeral.iter().filter(|n| !o.containers.contains_key(*n)) {
        actions.push(Action::StartContainer { name: name.clone(), init: false, attempt: 0 });
    }
    // Init containers run one at a time, in order; regular containers wait for all of them. A sidecar lets
    // the next one start once it is started; once the main containers exist, a sidecar's restarts no
    // longer hold anything back.
    let main_started = d.containers.iter().any(|n| o.containers.contains_key(n));
    for name in &d.init_containers {
        let sidecar = d.sidecars.contains(name);
        match o.containers.get(name) {
            None => {
                actions.push(Action::StartContainer { name: name.clone(), init: true, attempt: 0 });
                return actions;
            }
            Some(c) => match &c.state {
                ContainerState::Running if sidecar => {
                    if let Some(probe) = c.unhealthy {
                        actions.push(Action::KillContainer { name: name.clone(), probe });
                    }
                    if !c.started && !main_started {
                        return actions;
                    }
                }
                ContainerState::Exited { .. } if sidecar => {
                    actions.push(restart(name, true, c));
                    if !main_started {
                        return actions;
                    }
                }
                ContainerState::Running => return actions,
                ContainerState::Exited { exit_code: 0, .. } => continue,
                ContainerState::Exited { exit_code, .. } => {
                    if d.restart_policy.restarts(*exit_code) {
                        actions.push(restart(name, true, c));
                    }
                    return actions;
                }
            },
        }
    }
    for name in &d.containers {
        match o.containers.get(name) {
            None => actions.push(Action::StartContainer { name: name.clone(), init: false, attempt: 0 }),
            Some(c) => match &c.state {
                ContainerState::Running => {
                    if let Some(probe) = c.unhealthy {
                        actions.push(Action::KillContainer { name: name.clone(), probe });
                    }
                }
                ContainerState::Exited { exit_code, .. } => {
                    if d.restart_policy.restarts(*exit_code) {
                        actions.push(restart(name, false, c));
                    }
                }
            },
        }
    }
    actions
}

fn restart(name: &str, init: bool, c: &ContainerObserved) -> Action {
    let ContainerState::Exited { finished_ago, ran_for, .. } = c.state else { return Action::BackOff { name: name.into(), wait: Duration::ZERO } };
    // After a long clean run the back-off starts over, as if this were the first exit.
    let wait = if backoff_resets(ran_for) { Duration::ZERO } else { backoff(c.backoff_restarts) };
    if finished_ago >= wait {
        Action::StartContainer { name: name.into(), init, attempt: c.restart_count + 1 }
    } else {
        Action::BackOff { name: name.into(), wait: wait - finished_ago }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Desired {
        Desired { deleting: false, restart_policy: RestartPolicy::Always, init_containers: vec![], sidecars: Default::default(), containers: vec!["app".into()], ephemeral: vec![], active_deadline: None }
    }
    fn running(n: u32) -> ContainerObserved {
        ContainerObserved { restart_count: n, backoff_restarts: n, state: ContainerState::Running, unhealthy: None, started: true }
    }
    fn exited(n: u32, code: i32, ago: u64) -> ContainerObserved {
        ContainerObserved {
            restart_count: n,
            backoff_restarts: n,
            state: ContainerState::Exited { exit_code: code, finished_ago: Duration::from_secs(ago), ran_for: Duration::from_secs(1) },
            unhealthy: None,
            started: false,
        }
    }
    fn obs(sandbox: bool, cs: &[(&str, ContainerObserved)]) -> Observed {
        Observed { sandbox, containers: cs.iter().map(|(n, c)| (n.to_string(), c.clone())).collect(), active_for: Duration::ZERO }
    }
    fn ran(mut c: ContainerObserved, secs: u64) -> ContainerObserved {
        if let ContainerState::Exited { ran_for, .. } = &mut c.state {
            *ran_for = Duration::from_secs(secs);
        }
        c
    }
    fn not_started() -> ContainerObserved {
        ContainerObserved { started: false, ..running(0) }
    }
    /// A sidecar `side`, then a regular init container `i2`, then `app`.
    fn sidecar(policy: RestartPolicy) -> Desired {
        Desired { init_containers: vec!["side".into(), "i2".into()], sidecars: ["side".to_string()].into(), restart_policy: policy, ..base() }
    }
    fn unhealthy(kind: ProbeKind) -> ContainerObserved {
        ContainerObserved { unhealthy: Some(kind), ..running(0) }
    }
    fn aged(mut o: Observed, secs: u64) -> Observed {
        o.active_for = Duration::from_secs(secs);
        o
    }
    fn start(n: &str, attempt: u32) -> Action {
        Action::StartContainer { name: n.into(), init: false, attempt }
    }
    fn start_init(n: &str, attempt: u32) -> Action {
        Action::StartContainer { name: n.into(), init: true, attempt }
    }

    #[test]
    fn table() {
        let with = |f: &dyn Fn(&mut Desired)| {
            let mut d = base();
            f(&mut d);
            d
        };
        let cases: Vec<(&str, Desired, Observed, Vec<Action>)> = vec![
            ("new pod: sandbox then its container", base(), obs(false, &[]), vec![Action::CreateSandbox, start("app", 0)]),
            (
                "an ephemeral container starts once, even while init containers run",
                with(&|d| {
                    d.init_containers = vec!["i".into()];
                    d.ephemeral = vec!["dbg".into()];
                }),
                obs(true, &[("i", running(0))]),
                vec![start("dbg", 0)],
            ),
            (
                "an ephemeral container that exited is not restarted, whatever the policy",
                with(&|d| d.ephemeral = vec!["dbg".into()]),
                obs(true, &[("app", running(0)), ("dbg", exited(0, 1, 100))]),
                vec![],
            ),
            ("running: nothing", base(), obs(true, &[("app", running(0))]), vec![]),
            ("deleting: kill the pod", with(&|d| d.deleting = true), obs(true, &[("app", running(0))]), vec![Action::KillPod]),
            ("Always, first exit: restart now", base(), obs(true, &[("app", exited(0, 0, 0))]), vec![start("app", 1)]),
            ("Always, second exit within back-off", base(), obs(true, &[("app", exited(1, 1, 3))]),
                vec![Action::BackOff { name: "app".into(), wait: Duration::from_secs(7) }]),
            ("Always, back-off over", base(), obs(true, &[("app", exited(1, 1, 10))]), vec![start("app", 2)]),
            ("OnFailure, success: done, sandbox stopped", with(&|d| d.restart_policy = RestartPolicy::OnFailure),
                obs(true, &[("app", exited(0, 0, 1))]), vec![Action::StopSandbox]),
            ("OnFailure, failure: restart", with(&|d| d.restart_policy = RestartPolicy::OnFailure),
                obs(true, &[("app", exited(0, 2, 0))]), vec![start("app", 1)]),
            ("Never, failure: done", with(&|d| d.restart_policy = RestartPolicy::Never),
                obs(true, &[("app", exited(0, 2, 0))]), vec![Action::StopSandbox]),
            ("terminal and sandbox gone: nothing", with(&|d| d.restart_policy = RestartPolicy::Never),
                obs(false, &[("app", exited(0, 0, 0))]), vec![]),
            ("init first, alone", with(&|d| d.init_containers = vec!["i1".into(), "i2".into()]), obs(false, &[]),
                vec![Action::CreateSandbox, start_init("i1", 0)]),
            ("init running: wait", with(&|d| d.init_containers = vec!["i1".into()]), obs(true, &[("i1", running(0))]), vec![]),
            ("second init after the first succeeded", with(&|d| d.init_containers = vec!["i1".into(), "i2".into()]),
                obs(true, &[("i1", exited(0, 0, 1))]), vec![start_init("i2", 0)]),
            ("inits done: containers", with(&|d| d.init_containers = vec!["i1".into()]), obs(true, &[("i1", exited(0, 0, 1))]),
                vec![start("app", 0)]),
            ("failed init, Never: pod failed", with(&|d| { d.init_containers = vec!["i1".into()]; d.restart_policy = RestartPolicy::Never; }),
                obs(true, &[("i1", exited(0, 1, 1))]), vec![Action::StopSandbox]),
            ("failed init, Always: restart it, not the app", with(&|d| d.init_containers = vec!["i1".into()]),
                obs(true, &[("i1", exited(0, 1, 1))]), vec![start_init("i1", 1)]),
            ("two containers, one exited under Never: pod still running", with(&|d| { d.containers.push("b".into()); d.restart_policy = RestartPolicy::Never; }),
                obs(true, &[("app", exited(0, 0, 1)), ("b", running(0))]), vec![]),
            ("liveness failed: kill the container", base(), obs(true, &[("app", unhealthy(ProbeKind::Liveness))]),
                vec![Action::KillContainer { name: "app".into(), probe: ProbeKind::Liveness }]),
            ("startup failed: kill the container", base(), obs(true, &[("app", unhealthy(ProbeKind::Startup))]),
                vec![Action::KillContainer { name: "app".into(), probe: ProbeKind::Startup }]),
            ("killed after liveness: restarted with back-off as any exit", base(), obs(true, &[("app", exited(1, 137, 2))]),
                vec![Action::BackOff { name: "app".into(), wait: Duration::from_secs(8) }]),
            ("deadline not reached: nothing", with(&|d| d.active_deadline = Some(Duration::from_secs(5))), aged(obs(true, &[("app", running(0))]), 4), vec![]),
            ("deadline exceeded: kill everything", with(&|d| d.active_deadline = Some(Duration::from_secs(5))), aged(obs(true, &[("app", running(0))]), 5),
                vec![Action::DeadlineExceeded]),
            ("deadline exceeded, all stopped: release the sandbox", with(&|d| d.active_deadline = Some(Duration::from_secs(5))),
                aged(obs(true, &[("app", exited(0, 137, 0))]), 6), vec![Action::StopSandbox]),
            ("deadline exceeded under Always: no restart", with(&|d| d.active_deadline = Some(Duration::from_secs(5))),
                aged(obs(false, &[("app", exited(0, 0, 0))]), 6), vec![]),
            ("ran 10 minutes: back-off starts over", base(), obs(true, &[("app", ran(exited(5, 1, 0), 600))]), vec![start("app", 6)]),
            ("next crash after a reset: the first step again", base(),
                obs(true, &[("app", ContainerObserved { backoff_restarts: 1, ..exited(6, 1, 3) })]),
                vec![Action::BackOff { name: "app".into(), wait: Duration::from_secs(7) }]),
            ("ran 9 minutes: back-off goes on", base(), obs(true, &[("app", ran(exited(5, 1, 0), 540))]),
                vec![Action::BackOff { name: "app".into(), wait: Duration::from_secs(160) }]),
            ("sidecar first, alone", sidecar(RestartPolicy::Always), obs(false, &[]), vec![Action::CreateSandbox, start_init("side", 0)]),
            ("sidecar running but not started: wait", sidecar(RestartPolicy::Always), obs(true, &[("side", not_started())]), vec![]),
            ("sidecar started: the next init container", sidecar(RestartPolicy::Always), obs(true, &[("side", running(0))]), vec![start_init("i2", 0)]),
            ("sidecar beside the main container", sidecar(RestartPolicy::Always),
                obs(true, &[("side", running(0)), ("i2", exited(0, 0, 1))]), vec![start("app", 0)]),
            ("sidecar exited before the main containers: restart it, nothing else", sidecar(RestartPolicy::Never),
                obs(true, &[("side", exited(0, 1, 0))]), vec![start_init("side", 1)]),
            ("sidecar exited beside the main container: restart it with back-off, even under Never", sidecar(RestartPolicy::Never),
                obs(true, &[("side", exited(1, 0, 2)), ("i2", exited(0, 0, 5)), ("app", running(0))]),
                vec![Action::BackOff { name: "side".into(), wait: Duration::from_secs(8) }]),
            ("sidecar liveness failed: kill it", sidecar(RestartPolicy::Always),
                obs(true, &[("side", ContainerObserved { unhealthy: Some(ProbeKind::Liveness), ..running(0) }), ("i2", exited(0, 0, 5)), ("app", running(0))]),
                vec![Action::KillContainer { name: "side".into(), probe: ProbeKind::Liveness }]),
            ("main done under Never: stop the sidecar, then the sandbox", sidecar(RestartPolicy::Never),
                obs(true, &[("side", running(0)), ("i2", exited(0, 0, 5)), ("app", exited(0, 0, 1))]), vec![Action::StopSidecars]),
            ("main done, sidecar stopped: release the sandbox", sidecar(RestartPolicy::Never),
                obs(true, &[("side", exited(0, 143, 0)), ("i2", exited(0, 0, 5)), ("app", exited(0, 0, 1))]), vec![Action::StopSandbox]),
        ];
        for (name, d, o, want) in cases {
            assert_eq!(compute_pod_actions(&d, &o), want, "case: {name}");
        }
    }

    #[test]
    fn probe_thresholds_as_upstream() {
        // (kind, success threshold, failure threshold, results) → the current result after each.
        type Case = (&'static str, ProbeKind, u32, u32, Vec<bool>, Vec<Option<bool>>);
        let cases: Vec<Case> = vec![
            ("readiness starts failed, one success flips it", ProbeKind::Readiness, 1, 3, vec![true], vec![Some(true)]),
            ("liveness starts healthy, needs 3 failures", ProbeKind::Liveness, 1, 3, vec![false, false, false], vec![Some(true), Some(true), Some(false)]),
            ("a success in between resets the failures", ProbeKind::Liveness, 1, 3, vec![false, false, true, false, false, false],
                vec![Some(true), Some(true), Some(true), Some(true), Some(true), Some(false)]),
            ("successThreshold 2 for readiness", ProbeKind::Readiness, 2, 1, vec![true, false, true, true], vec![Some(false), Some(false), Some(false), Some(true)]),
            ("startup unknown until it succeeds", ProbeKind::Startup, 1, 30, vec![false, true], vec![None, Some(true)]),
            ("readiness back to failed", ProbeKind::Readiness, 1, 2, vec![true, false, false], vec![Some(true), Some(true), Some(false)]),
        ];
        for (name, kind, st, ft, results, want) in cases {
            let mut c = ProbeCounter::new(kind);
            let got: Vec<Option<bool>> = results.iter().map(|ok| {
                c.observe(*ok, st, ft);
                c.result
            }).collect();
            assert_eq!(got, want, "case: {name}");
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let got: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(got, vec![0, 10, 20, 40, 80, 160, 300, 300]);
    }
}
