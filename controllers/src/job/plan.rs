//! The Job controller's pure core: given a Job, the Pods it controls and the time, decide which Pods to
//! create and delete, which finished Pods to count and free of the tracking finalizer, and what the status
//! becomes — upstream's `syncJob`, `manageJob` and `trackJobStatusAndRemoveFinalizers` without any IO.
//!
//! Counting follows upstream's finalizer protocol so that no finished Pod is lost or counted twice, also across
//! restarts: a finished Pod still carrying `batch.kubernetes.io/job-tracking` is first recorded by UID in
//! `status.uncountedTerminatedPods` (written), then freed of the finalizer, and only then moved into the
//! `succeeded`/`failed` counters ([`count_freed`]). A Pod without the finalizer has been counted already.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, PodFailurePolicy, SuccessPolicy, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use super::indexes::Indexes;

pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
pub const INDEX_LABEL: &str = "batch.kubernetes.io/job-completion-index";
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// Upstream's Pod re-creation back-off after failures: 10 s doubling, at most 6 min.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);
/// At most this many Pods are created or deleted in one sync (upstream `MaxPodCreateDeletePerSync`).
pub const MAX_CREATE_DELETE: usize = 500;
/// At most this many UIDs wait in `uncountedTerminatedPods` (upstream `MaxUncountedPods`).
const MAX_UNCOUNTED: usize = 500;
/// Generated names leave room for the API server's 5-character suffix.
const MAX_GENERATED_NAME: usize = 58;

/// What the planner sees.
pub struct Input<'a> {
    pub job: &'a Job,
    /// The Pods whose controller owner reference is this Job.
    pub pods: Vec<&'a Pod>,
    /// Pods whose finalizer removal was sent but is not yet seen in the Pod cache.
    pub removed_finalizers: &'a HashSet<String>,
    /// Earlier creations and deletions have all been seen; otherwise no new ones are planned (upstream's
    /// expectations: the cache may lag behind our own writes).
    pub expectations_met: bool,
    pub now: Timestamp,
}

/// A Pod by name and UID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub uid: String,
}

/// A Pod to create: its completion index (Indexed Jobs) and the per-index failure counts it carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewPod {
    pub index: Option<i32>,
    pub failures: i32,
    pub ignored_failures: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    pub ty: EventType,
    pub reason: String,
    pub message: String,
}

/// What to do, in order: create/delete Pods, write `status` (if it differs), remove finalizers, then
/// [`count_freed`] and write again.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<NewPod>,
    /// Active Pods to delete, and whether to free them of the tracking finalizer first (suspension and excess
    /// Pods are not counted; a failing Job's Pods keep it so they are counted as failed).
    pub delete: Vec<(PodRef, bool)>,
    pub status: JobStatus,
    pub remove_finalizers: Vec<PodRef>,
    /// The terminal condition (Complete or Failed) to add once every finished Pod is counted and none is
    /// terminating.
    pub finish: Option<JobCondition>,
    /// Whether `finish` may be enacted in this sync (false when the uncounted list was capped).
    pub may_finish: bool,
    pub requeue_after: Option<Duration>,
    pub events: Vec<JobEvent>,
}

impl Plan {
    fn requeue(&mut self, d: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(d, |x| x.min(d)));
    }
    fn event(&mut self, ty: EventType, reason: &str, message: impl Into<String>) {
        self.events.push(JobEvent { ty, reason: reason.into(), message: message.into() });
    }
}

// ---- Pod predicates ----------------------------------------------------------------------------------------

fn uid(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or("")
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn pod_ref(p: &Pod) -> PodRef {
    PodRef { name: p.metadata.name.clone().unwrap_or_default(), uid: uid(p).to_string() }
}

pub fn has_tracking_finalizer(p: &Pod) -> bool {
    p.metadata.finalizers.iter().flatten().any(|f| f == TRACKING_FINALIZER)
}

fn is_terminal(p: &Pod) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

/// Active: neither finished nor being deleted (upstream `FilterActivePods`).
fn is_active(p: &Pod) -> bool {
    !is_terminal(p) && p.metadata.deletion_timestamp.is_none()
}

fn is_terminating(p: &Pod) -> bool {
    !is_terminal(p) && p.metadata.deletion_timestamp.is_some()
}

fn is_ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The completion index of a Pod of an Indexed Job (from its annotation, as upstream).
pub fn pod_index(p: &Pod) -> Option<i32> {
    p.metadata.annotations.as_ref()?.get(INDEX_ANNOTATION)?.parse().ok().filter(|i: &i32| *i >= 0)
}

fn annotation_count(p: &Pod, key: &str) -> i32 {
    p.metadata.annotations.as_ref().and_then(|a| a.get(key)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// When a Pod finished: its containers' latest finish time, else when it was marked for deletion, else created.
fn finish_time(p: &Pod) -> Option<Timestamp> {
    let st = p.status.as_ref();
    let finished = st
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten()))
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0))
        .max();
    finished.or(p.metadata.deletion_timestamp.as_ref().map(|t| t.0)).or(p.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn only_replace_failed(spec: &JobSpec) -> bool {
    spec.pod_replacement_policy.as_deref() == Some("Failed") || spec.pod_failure_policy.is_some()
}

/// Whether a Pod counts as failed (upstream `isPodFailed`): its phase says so, or — unless only failed Pods
/// are replaced — it is being deleted before it succeeded (an orphan that will never reach a phase).
pub fn is_pod_failed(p: &Pod, spec: &JobSpec) -> bool {
    if spec.pod_failure_policy.is_some() {
        return phase(p) == "Failed";
    }
    if phase(p) == "Failed" {
        return true;
    }
    if only_replace_failed(spec) {
        return false;
    }
    p.metadata.deletion_timestamp.is_some() && phase(p) != "Succeeded"
}

// ---- Pod failure policy ------------------------------------------------------------------------------------

/// The outcome of matching a failed Pod against the Job's pod failure policy.
#[derive(Debug, PartialEq, Eq)]
pub struct PolicyMatch {
    /// Set when a FailJob rule matched: the Job's failure message.
    pub fail_job: Option<String>,
    /// Whether the failure counts towards backoffLimit (false for Ignore).
    pub counts: bool,
    pub action: Option<String>,
}

/// Upstream `matchPodFailurePolicy`: the first matching rule decides.
pub fn match_policy(policy: Option<&PodFailurePolicy>, p: &Pod) -> PolicyMatch {
    let no_match = PolicyMatch { fail_job: None, counts: true, action: None };
    let Some(policy) = policy else { return no_match };
    let ns = p.metadata.namespace.as_deref().unwrap_or("");
    let name = p.metadata.name.as_deref().unwrap_or("");
    let st = p.status.clone().unwrap_or_default();
    for (index, rule) in policy.rules.iter().enumerate() {
        let what = if let Some(req) = &rule.on_exit_codes {
            let statuses = st.init_container_statuses.iter().flatten().chain(st.container_statuses.iter().flatten());
            statuses
                .filter(|c| req.container_name.as_ref().is_none_or(|n| *n == c.name))
                .find_map(|c| {
                    let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                    let listed = req.values.contains(&code);
                    // A container that exited 0 did not cause the failure.
                    let hit = code != 0 && if req.operator == "In" { listed } else { !listed };
                    hit.then(|| format!("Container {} for pod {ns}/{name} failed with exit code {code}", c.name))
                })
        } else if !rule.on_pod_conditions.as_ref().is_none_or(Vec::is_empty) {
            let conds = st.conditions.iter().flatten();
            let pats = rule.on_pod_conditions.iter().flatten();
            let hit = conds.clone().find(|c| pats.clone().any(|pat| pat.type_ == c.type_ && pat.status == c.status));
            hit.map(|c| format!("Pod {ns}/{name} has condition {}", c.type_))
        } else {
            None
        };
        let Some(what) = what else { continue };
        let action = rule.action.clone();
        return match action.as_str() {
            "Ignore" => PolicyMatch { fail_job: None, counts: false, action: Some(action) },
            "FailJob" => PolicyMatch { fail_job: Some(format!("{what} matching FailJob rule at index {index}")), counts: true, action: Some(action) },
            _ => PolicyMatch { fail_job: None, counts: true, action: Some(action) },
        };
    }
    no_match
}

// ---- conditions -----------------------------------------------------------------------------------------------

fn condition(ty: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: ty.into(),
        status: "True".into(),
        reason: (!reason.is_empty()).then(|| reason.into()),
        message: (!message.is_empty()).then(|| message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn find_true<'a>(st: &'a JobStatus, ty: &str) -> Option<&'a JobCondition> {
    st.conditions.iter().flatten().find(|c| c.type_ == ty && c.status == "True")
}

/// Upstream `ensureJobConditionStatus`: set a condition's status/reason/message, adding it unless it would be
/// a new False one. Returns whether anything changed.
pub fn ensure_condition(st: &mut JobStatus, ty: &str, status: &str, reason: &str, message: &str, now: Timestamp) -> bool {
    let list = st.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = list.iter_mut().find(|c| c.type_ == ty) {
        if c.status != status || c.reason.as_deref().unwrap_or("") != reason || c.message.as_deref().unwrap_or("") != message {
            *c = JobCondition { status: status.into(), ..condition(ty, reason, message, now) };
            return true;
        }
        return false;
    }
    if status != "False" {
        list.push(JobCondition { status: status.into(), ..condition(ty, reason, message, now) });
        return true;
    }
    false
}

/// Whether the Job has finished (a Complete or Failed condition that is True).
pub fn is_finished(job: &Job) -> bool {
    job.status.as_ref().is_some_and(|s| find_true(s, "Complete").is_some() || find_true(s, "Failed").is_some())
}

/// When the Job finished, for `ttlSecondsAfterFinished`.
pub fn finished_at(job: &Job) -> Option<Timestamp> {
    let st = job.status.as_ref()?;
    find_true(st, "Complete").or_else(|| find_true(st, "Failed")).and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

// ---- back-off -------------------------------------------------------------------------------------------------

fn backoff_delay(failures: usize) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(16) as u32;
    BACKOFF_BASE.saturating_mul(1 << shift).min(BACKOFF_MAX)
}

fn since(now: Timestamp, t: Timestamp) -> Duration {
    Duration::from_millis((now.as_millisecond() - t.as_millisecond()).max(0) as u64)
}

/// Time left before failed Pods may be replaced: the consecutive failures since the last success, counted from
/// the Pods themselves (upstream keeps this in memory; the Pods survive a restart, so this does too).
fn remaining_backoff<'a>(pods: impl Iterator<Item = &'a Pod> + Clone, spec: &JobSpec, now: Timestamp) -> Duration {
    let last_success = pods.clone().filter(|p| phase(p) == "Succeeded").filter_map(finish_time).max();
    let failures: Vec<Timestamp> =
        pods.filter(|p| is_pod_failed(p, spec)).filter_map(finish_time).filter(|t| last_success.is_none_or(|s| *t > s)).collect();
    let Some(last) = failures.iter().max() else { return Duration::ZERO };
    backoff_delay(failures.len()).saturating_sub(since(now, *last))
}

/// Upstream `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure` container restarts count as failures.
fn past_backoff_on_failure(spec: &JobSpec, pods: &[&Pod], limit: i32) -> bool {
    if spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()))
        .map(|c| c.restart_count)
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

// ---- Indexed Jobs -------------------------------------------------------------------------------------------

/// Per-index failure bookkeeping for `backoffLimitPerIndex`.
#[derive(Default)]
struct IndexFailures {
    failures: i32,
    ignored: i32,
    last_failure: Option<Timestamp>,
    fail_index: bool,
}

fn index_failures(pods: &[&Pod], spec: &JobSpec, completions: i32) -> HashMap<i32, IndexFailures> {
    let mut out: HashMap<i32, IndexFailures> = HashMap::new();
    for p in pods {
        let Some(ix) = pod_index(p).filter(|i| *i < completions) else { continue };
        let e = out.entry(ix).or_default();
        let (mut f, mut ig) = (annotation_count(p, INDEX_FAILURE_COUNT), annotation_count(p, INDEX_IGNORED_FAILURE_COUNT));
        if is_pod_failed(p, spec) {
            let m = match_policy(spec.pod_failure_policy.as_ref(), p);
            if m.counts {
                f += 1;
            } else {
                ig += 1;
            }
            e.fail_index |= m.action.as_deref() == Some("FailIndex");
            e.last_failure = e.last_failure.max(finish_time(p));
        }
        e.failures = e.failures.max(f);
        e.ignored = e.ignored.max(ig);
    }
    out
}

/// Upstream `matchSuccessPolicy`.
pub fn match_success_policy(policy: Option<&SuccessPolicy>, completions: i32, succeeded: &Indexes) -> Option<String> {
    for (i, rule) in policy?.rules.iter().enumerate() {
        let met = match (&rule.succeeded_indexes, rule.succeeded_count) {
            (Some(set), None) => {
                let want = Indexes::parse(set, completions);
                let all = want.iter().all(|ix| succeeded.contains(ix));
                all
            }
            (None, Some(n)) => succeeded.len() as i32 >= n,
            (Some(set), Some(n)) => Indexes::parse(set, completions).iter().filter(|ix| succeeded.contains(*ix)).count() as i32 >= n,
            (None, None) => false,
        };
        if met {
            return Some(format!("Matched rules at index {i}"));
        }
    }
    None
}

// ---- the plan -----------------------------------------------------------------------------------------------

/// Plan one sync of a Job that has not finished.
pub fn plan(input: &Input<'_>) -> Plan {
    let job = input.job;
    let now = input.now;
    let spec = job.spec.clone().unwrap_or_default();
    let mut status = job.status.clone().unwrap_or_default();
    let mut plan = Plan { may_finish: true, ..Default::default() };
    let pods = &input.pods;
    let with_fin = |p: &Pod| has_tracking_finalizer(p) && !input.removed_finalizers.contains(uid(p));

    if is_finished(job) {
        // Nothing left but freeing Pods that finished after the Job did.
        plan.remove_finalizers = pods.iter().filter(|p| with_fin(p)).map(|p| pod_ref(p)).collect();
        plan.status = status;
        plan.may_finish = false;
        return plan;
    }

    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let suspended = spec.suspend == Some(true);
    let policy = spec.pod_failure_policy.as_ref();
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let unc_succeeded: HashSet<String> = uncounted.succeeded.iter().flatten().cloned().collect();
    let unc_failed: HashSet<String> = uncounted.failed.iter().flatten().cloned().collect();

    let active: Vec<&Pod> = pods.iter().copied().filter(|p| is_active(p)).collect();
    let mut terminating = pods.iter().filter(|p| is_terminating(p)).count() as i32;
    let mut ready = active.iter().filter(|p| is_ready(p)).count() as i32;
    let new_succeeded = pods.iter().filter(|p| with_fin(p) && phase(p) == "Succeeded" && !unc_succeeded.contains(uid(p))).count() as i32;
    let new_failed: Vec<&&Pod> = pods.iter().filter(|p| with_fin(p) && is_pod_failed(p, &spec) && !unc_failed.contains(uid(p))).collect();
    let new_failed_counted = new_failed.iter().filter(|p| match_policy(policy, p).counts).count() as i32;
    let mut succeeded = status.succeeded.unwrap_or(0) + new_succeeded + unc_succeeded.len() as i32;
    let failed = status.failed.unwrap_or(0) + new_failed_counted + unc_failed.len() as i32;

    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }
    let backoff_limit = spec.backoff_limit.unwrap_or(6);

    // The terminal decision, in upstream's order.
    let mut finished: Option<JobCondition> = find_true(&status, "SuccessCriteriaMet").cloned();
    if finished.is_none() {
        if let Some(ft) = find_true(&status, "FailureTarget") {
            finished = Some(JobCondition { type_: "Failed".into(), last_probe_time: Some(Time(now)), last_transition_time: Some(Time(now)), ..ft.clone() });
        } else if let Some(msg) = pods.iter().filter(|p| is_pod_failed(p, &spec)).find_map(|p| match_policy(policy, p).fail_job) {
            finished = Some(condition("FailureTarget", "PodFailurePolicy", &msg, now));
        }
    }
    if finished.is_none() {
        let start = status.start_time.as_ref().map(|t| t.0).unwrap_or(now);
        if failed > backoff_limit || past_backoff_on_failure(&spec, &active, backoff_limit) {
            finished = Some(condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit", now));
        } else if let Some(deadline) = spec.active_deadline_seconds.filter(|_| !suspended) {
            let allowed = Duration::from_secs(deadline.max(0) as u64);
            let ran = since(now, start);
            if ran >= allowed {
                finished = Some(condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline", now));
            } else {
                plan.requeue(allowed - ran);
            }
        }
    }

    // Indexed Jobs count completions by index.
    let c = completions.unwrap_or(0);
    let mut succeeded_idx = Indexes::default();
    let mut failed_idx: Option<Indexes> = None;
    let mut per_index = HashMap::new();
    if indexed {
        succeeded_idx = Indexes::parse(status.completed_indexes.as_deref().unwrap_or(""), c);
        for p in pods.iter().filter(|p| phase(p) == "Succeeded") {
            if let Some(ix) = pod_index(p).filter(|i| *i < c) {
                succeeded_idx.insert(ix);
            }
        }
        succeeded = succeeded_idx.len() as i32;
        if let Some(limit) = spec.backoff_limit_per_index {
            per_index = index_failures(pods, &spec, c);
            let mut fi = Indexes::parse(status.failed_indexes.as_deref().unwrap_or(""), c);
            for (ix, f) in &per_index {
                if !succeeded_idx.contains(*ix) && (f.fail_index || f.failures > limit) {
                    fi.insert(*ix);
                }
            }
            if finished.is_none() {
                if spec.max_failed_indexes.is_some_and(|m| fi.len() as i32 > m) {
                    finished = Some(condition("FailureTarget", "MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes", now));
                } else if !fi.is_empty() && (fi.len() + succeeded_idx.len()) as i32 >= c {
                    finished = Some(condition("FailureTarget", "FailedIndexes", "Job has failed indexes", now));
                }
            }
            failed_idx = Some(fi);
        }
        if finished.is_none() {
            if let Some(msg) = match_success_policy(spec.success_policy.as_ref(), c, &succeeded_idx) {
                finished = Some(condition("SuccessCriteriaMet", "SuccessPolicy", &msg, now));
            }
        }
    }

    let mut active_n = active.len() as i32;
    if finished.is_some() {
        // A finishing Job stops its Pods; they keep the finalizer so the failures are counted.
        for p in &active {
            plan.delete.push((pod_ref(p), false));
        }
        terminating += active_n;
        ready = 0;
        active_n = 0;
    } else {
        let mut managed = false;
        if input.expectations_met && job.metadata.deletion_timestamp.is_none() {
            let ctx = Manage { spec: &spec, active: &active, pods, succeeded, terminating, succeeded_idx: &succeeded_idx, failed_idx: failed_idx.as_ref(), per_index: &per_index, now };
            let (n, removed_ready, removed) = manage(&ctx, &mut plan);
            active_n = n;
            ready -= removed_ready;
            terminating += removed;
            managed = true;
        }
        let complete = match completions {
            None => succeeded > 0 && active_n == 0,
            Some(c) => succeeded >= c && active_n == 0,
        };
        if complete {
            finished = Some(condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods", now));
        } else if managed {
            if suspended {
                if ensure_condition(&mut status, "Suspended", "True", "JobSuspended", "Job suspended", now) {
                    plan.event(EventType::Normal, "Suspended", "Job suspended");
                }
            } else if ensure_condition(&mut status, "Suspended", "False", "JobResumed", "Job resumed", now) {
                plan.event(EventType::Normal, "Resumed", "Job resumed");
                // activeDeadlineSeconds counts continuous activity: a resumed Job starts its clock again.
                status.start_time = Some(Time(now));
            }
        }
    }
    status.active = Some(active_n);
    status.ready = Some(ready);
    status.terminating = Some(terminating);

    // Tracking: record finished Pods by UID, then free them of the finalizer.
    let mut unc_s: Vec<String> = uncounted.succeeded.clone().unwrap_or_default();
    let mut unc_f: Vec<String> = uncounted.failed.clone().unwrap_or_default();
    let finishing_failed = finished.as_ref().is_some_and(|f| f.type_ != "SuccessCriteriaMet");
    let mut capped = false;
    for p in pods.iter().filter(|p| with_fin(p)) {
        let considered_failed = is_pod_failed(p, &spec);
        let removable = job.metadata.deletion_timestamp.is_some() || finished.is_some() || phase(p) == "Succeeded" || considered_failed;
        if !removable {
            continue;
        }
        plan.remove_finalizers.push(pod_ref(p));
        let id = uid(p).to_string();
        if phase(p) == "Succeeded" && !unc_failed.contains(&id) {
            if !indexed && !unc_succeeded.contains(&id) {
                unc_s.push(id);
            }
        } else if (considered_failed || finishing_failed) && !unc_failed.contains(&id) {
            let valid = !indexed || pod_index(p).is_some_and(|i| i < c);
            if valid && match_policy(policy, p).counts {
                unc_f.push(id);
            }
        }
        if unc_s.len() + unc_f.len() >= MAX_UNCOUNTED {
            // Keep the status small; the next sync continues.
            capped = true;
            plan.requeue(Duration::ZERO);
            break;
        }
    }
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: (!unc_s.is_empty()).then_some(unc_s),
        failed: (!unc_f.is_empty()).then_some(unc_f),
    });
    if indexed {
        status.succeeded = Some(succeeded_idx.len() as i32);
        status.completed_indexes = Some(succeeded_idx.format());
        status.failed_indexes = failed_idx.map(|f| f.format());
    }
    plan.finish = match finished {
        Some(f) if f.type_ == "FailureTarget" => {
            if find_true(&status, "FailureTarget").is_none() {
                status.conditions.get_or_insert_with(Vec::new).push(f.clone());
            }
            Some(JobCondition { type_: "Failed".into(), ..f })
        }
        Some(f) if f.type_ == "SuccessCriteriaMet" => {
            if find_true(&status, "SuccessCriteriaMet").is_none() {
                status.conditions.get_or_insert_with(Vec::new).push(f.clone());
            }
            Some(JobCondition { type_: "Complete".into(), ..f })
        }
        other => other,
    };
    plan.may_finish = !capped;
    plan.status = status;
    plan
}

/// After finalizers were removed: move the UIDs of Pods that no longer carry the finalizer from
/// `uncountedTerminatedPods` into the counters (upstream `cleanUncountedPodsWithoutFinalizers`), then add the
/// terminal condition if nothing is left uncounted or terminating (`enactJobFinished`). Returns whether the Job
/// finished now.
pub fn count_freed(status: &mut JobStatus, still_with_finalizer: &HashSet<String>, finish: Option<&JobCondition>, may_finish: bool, now: Timestamp) -> bool {
    let unc = status.uncounted_terminated_pods.get_or_insert_with(Default::default);
    let keep = |list: &mut Option<Vec<String>>| -> i32 {
        let before = list.as_ref().map_or(0, Vec::len);
        if let Some(l) = list.as_mut() {
            l.retain(|u| still_with_finalizer.contains(u));
        }
        let after = list.as_ref().map_or(0, Vec::len);
        if after == 0 {
            *list = None;
        }
        (before - after) as i32
    };
    let s = keep(&mut unc.succeeded);
    let f = keep(&mut unc.failed);
    if s > 0 {
        status.succeeded = Some(status.succeeded.unwrap_or(0) + s);
    }
    if f > 0 {
        status.failed = Some(status.failed.unwrap_or(0) + f);
    }
    let Some(fin) = finish.filter(|_| may_finish) else { return false };
    let pending = unc.succeeded.is_some() || unc.failed.is_some();
    if pending || status.terminating.unwrap_or(0) > 0 {
        return false;
    }
    ensure_condition(status, &fin.type_, "True", fin.reason.as_deref().unwrap_or(""), fin.message.as_deref().unwrap_or(""), now);
    if fin.type_ == "Complete" {
        status.completion_time = Some(Time(now));
    }
    true
}

// ---- manageJob --------------------------------------------------------------------------------------------

struct Manage<'a> {
    spec: &'a JobSpec,
    active: &'a [&'a Pod],
    pods: &'a [&'a Pod],
    succeeded: i32,
    terminating: i32,
    succeeded_idx: &'a Indexes,
    failed_idx: Option<&'a Indexes>,
    per_index: &'a HashMap<i32, IndexFailures>,
    now: Timestamp,
}

/// Upstream `manageJob`: returns (active Pods afterwards, deleted ready Pods, deleted Pods).
fn manage(m: &Manage<'_>, plan: &mut Plan) -> (i32, i32, i32) {
    let spec = m.spec;
    let mut active = m.active.len() as i32;
    let parallelism = spec.parallelism.unwrap_or(1);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let c = spec.completions.unwrap_or(0);

    if spec.suspend == Some(true) {
        let ready = m.active.iter().filter(|p| is_ready(p)).count() as i32;
        for p in m.active {
            plan.delete.push((pod_ref(p), true));
        }
        return (0, ready, active);
    }

    let want = match spec.completions {
        None if m.succeeded > 0 => active,
        None => parallelism,
        Some(c) => (c - m.succeeded).min(parallelism).max(0),
    };
    let remove = pods_for_removal(m.active, (active - want).max(0) as usize, indexed.then_some(c), m.succeeded_idx);
    if !remove.is_empty() {
        let ready = remove.iter().filter(|p| is_ready(p)).count() as i32;
        let n = remove.len().min(MAX_CREATE_DELETE);
        for p in remove.iter().take(n) {
            plan.delete.push((pod_ref(p), true));
        }
        // Deleting and creating in one sync is never needed at once; deletion goes first, as upstream.
        return (active - n as i32, ready, n as i32);
    }

    let terminating = if only_replace_failed(spec) { m.terminating } else { 0 };
    let mut diff = want - terminating - active;
    if diff <= 0 {
        return (active, 0, 0);
    }
    if spec.backoff_limit_per_index.is_none() {
        let wait = remaining_backoff(m.pods.iter().copied(), spec, m.now);
        if !wait.is_zero() {
            plan.requeue(wait);
            return (active, 0, 0);
        }
    }
    diff = diff.min(MAX_CREATE_DELETE as i32);
    if indexed {
        let busy: HashSet<i32> = m.active.iter().filter_map(|p| pod_index(p)).collect();
        let mut picked = Vec::new();
        for ix in 0..c {
            if picked.len() as i32 >= diff {
                break;
            }
            if m.succeeded_idx.contains(ix) || busy.contains(&ix) || m.failed_idx.is_some_and(|f| f.contains(ix)) {
                continue;
            }
            let f = m.per_index.get(&ix);
            if spec.backoff_limit_per_index.is_some() {
                if let Some(f) = f {
                    let wait = f.last_failure.map_or(Duration::ZERO, |t| backoff_delay(f.failures.max(0) as usize).saturating_sub(since(m.now, t)));
                    if !wait.is_zero() {
                        plan.requeue(wait);
                        continue;
                    }
                }
            }
            picked.push(NewPod { index: Some(ix), failures: f.map_or(0, |f| f.failures), ignored_failures: f.map_or(0, |f| f.ignored) });
        }
        active += picked.len() as i32;
        plan.create = picked;
    } else {
        plan.create = (0..diff).map(|_| NewPod::default()).collect();
        active += diff;
    }
    (active, 0, 0)
}

/// Which active Pods to remove first (upstream `activePodsForRemoval`): for Indexed Jobs, Pods with an
/// out-of-range, already succeeded or duplicate index; then the least far along (unscheduled, pending, not
/// ready, newest).
fn pods_for_removal<'a>(active: &[&'a Pod], at_least: usize, completions: Option<i32>, succeeded: &Indexes) -> Vec<&'a Pod> {
    let mut out: Vec<&'a Pod> = Vec::new();
    let mut rest: Vec<&'a Pod> = Vec::new();
    if let Some(c) = completions {
        let mut seen = HashSet::new();
        for p in active {
            match pod_index(p) {
                Some(ix) if ix < c && !succeeded.contains(ix) && seen.insert(ix) => rest.push(p),
                _ => out.push(p),
            }
        }
    } else {
        rest = active.to_vec();
    }
    if out.len() < at_least {
        rest.sort_by_key(|p| {
            let unscheduled = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("").is_empty();
            let created = p.metadata.creation_timestamp.as_ref().map_or(0, |t| t.0.as_millisecond());
            (!unscheduled, phase(p) != "Pending", is_ready(p), std::cmp::Reverse(created))
        });
        out.extend(rest.into_iter().take(at_least - out.len()));
    }
    out
}

// ---- new Pods -------------------------------------------------------------------------------------------------

/// The Pod the Job creates (upstream `CreatePodsWithGenerateName` from the template): generated name,
/// the tracking finalizer, a controller owner reference, and for Indexed Jobs the index annotation, label,
/// environment variable and hostname.
pub fn new_pod(job: &Job, new: &NewPod) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let PodTemplateSpec { metadata, spec: pod_spec } = spec.template;
    let mut meta = metadata.unwrap_or_default();
    let mut pod_spec = pod_spec.unwrap_or_default();
    let truncate = |prefix: &str, suffix: &str| {
        let mut p = prefix.to_string();
        let keep = MAX_GENERATED_NAME.saturating_sub(suffix.len());
        if p.len() > keep {
            p.truncate(keep);
        }
        format!("{p}{suffix}")
    };
    let mut m = ObjectMeta {
        generate_name: Some(truncate(&name, "-")),
        namespace: job.metadata.namespace.clone(),
        labels: meta.labels.take(),
        annotations: meta.annotations.take(),
        finalizers: meta.finalizers.take(),
        owner_references: Some(vec![OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: name.clone(),
            uid: job.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..Default::default()
    };
    let fins = m.finalizers.get_or_insert_with(Vec::new);
    if !fins.iter().any(|f| f == TRACKING_FINALIZER) {
        fins.push(TRACKING_FINALIZER.into());
    }
    if let Some(ix) = new.index {
        m.generate_name = Some(truncate(&name, &format!("-{ix}-")));
        let ann = m.annotations.get_or_insert_with(Default::default);
        ann.insert(INDEX_ANNOTATION.into(), ix.to_string());
        if spec.backoff_limit_per_index.is_some() {
            ann.insert(INDEX_FAILURE_COUNT.into(), new.failures.to_string());
            if new.ignored_failures > 0 {
                ann.insert(INDEX_IGNORED_FAILURE_COUNT.into(), new.ignored_failures.to_string());
            }
        }
        m.labels.get_or_insert_with(Default::default).insert(INDEX_LABEL.into(), ix.to_string());
        pod_spec.hostname = Some(format!("{name}-{ix}"));
        let env = EnvVar {
            name: INDEX_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { api_version: None, field_path: format!("metadata.annotations['{INDEX_ANNOTATION}']") }),
                ..Default::default()
            }),
        };
        let containers = pod_spec.containers.iter_mut().chain(pod_spec.init_containers.iter_mut().flatten());
        for c in containers {
            let list = c.env.get_or_insert_with(Vec::new);
            if !list.iter().any(|e| e.name == INDEX_ENV) {
                list.push(env.clone());
            }
        }
    }
    Pod { metadata: m, spec: Some(pod_spec), status: None }
}

#[cfg(test)]
mod tests;
