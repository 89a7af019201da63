//! Pod and container cgroups with cgroups-rs, on cgroup v1 (this machine kind's hybrid layout) and v2.
//! `<parent>/pod<uid>` per Pod (a pids limit), `<parent>/pod<uid>/<container-id>` per container (memory and
//! cpu from the container's resources). Only the controllers used are touched (limits.md: all nine v1
//! hierarchies cost 4x and create directories nobody reads).
//!
//! On v1 a container that is not privileged also gets runc's default device allow-list in the `devices`
//! controller (deny all; read/write only null, zero, full, random, urandom, tty, console, ptmx and the pts
//! devices; mknod of any node), as containerd does. The list is written once per Pod, on the Pod's devices
//! cgroup, and its containers join that one (v1 hierarchies are independent): a devices cgroup and 12
//! writes per container cost ~0.5 ms of CPU each, ~7 % of a 100-Pod burst. A privileged container joins the
//! parent's devices cgroup instead, which allows everything. Its /dev holds only those nodes and CAP_MKNOD is dropped
//! anyway; the list is the layer below, for a Pod that adds MKNOD back or reaches a device node some other
//! way (a hostPath of /dev). cgroup v2 has no devices files: there the same list is runc's eBPF program,
//! attached to each container's cgroup that is not privileged before the shim moves the container in
//! (`bpf_devices.rs`).

use std::path::PathBuf;

use cgroups_rs::{hierarchies, Cgroup, Resources};

use super::bpf_devices::{self, DeviceFilterError, Rule};

/// The controllers k1s uses (v1 adds `devices`, see the module header).
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The default `pids.max` of a Pod: bounds a fork bomb without getting in the way of real workloads.
pub const POD_PIDS_MAX: i64 = 4096;

/// cgroup v1's CFS period (µs); quota = limit (cores) × period.
const CPU_PERIOD: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {what}: {source}")]
    Cgroups {
        path: String,
        what: &'static str,
        #[source]
        source: cgroups_rs::error::Error,
    },
    #[error(transparent)]
    DeviceFilter(#[from] DeviceFilterError),
}

/// Limits of one container, already converted from Kubernetes quantities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub memory_bytes: Option<i64>,
    pub cpu_request_milli: Option<i64>,
    pub cpu_limit_milli: Option<i64>,
    /// `securityContext.privileged`: all host devices (no device allow-list).
    pub privileged: bool,
}

/// runc's default allowed devices for a container that is not privileged (libcontainer/specconv), and
/// /dev/console: (type, major, minor, access); -1 is `*`.
pub(crate) const DEFAULT_DEVICES: [Rule; 11] = [
    ('c', -1, -1, "m"), // mknod of any character device (opening it is what the list guards)
    ('b', -1, -1, "m"), // and of any block device
    ('c', 1, 3, "rwm"), // /dev/null
    ('c', 1, 5, "rwm"), // /dev/zero
    ('c', 1, 7, "rwm"), // /dev/full
    ('c', 1, 8, "rwm"), // /dev/random
    ('c', 1, 9, "rwm"), // /dev/urandom
    ('c', 5, 0, "rwm"), // /dev/tty
    ('c', 5, 2, "rwm"), // /dev/ptmx
    ('c', 136, -1, "rwm"), // /dev/pts/*
    ('c', 5, 1, "rwm"), // /dev/console
];

/// The v1 device rules of a container that is not privileged: deny all, then the defaults.
fn device_rules() -> Vec<cgroups_rs::DeviceResource> {
    use cgroups_rs::devices::{DevicePermissions, DeviceType};
    let rule = |allow: bool, t: char, major: i64, minor: i64, access: &str| cgroups_rs::DeviceResource {
        allow,
        devtype: match t {
            'c' => DeviceType::Char,
            'b' => DeviceType::Block,
            _ => DeviceType::All,
        },
        major,
        minor,
        access: access.chars().filter_map(DevicePermissions::from_char).collect(),
    };
    let mut rules = vec![rule(false, 'a', -1, -1, "rwm")];
    rules.extend(DEFAULT_DEVICES.iter().map(|&(t, ma, mi, a)| rule(true, t, ma, mi, a)));
    rules
}

fn is_v1() -> bool {
    !hierarchies::is_cgroup2_unified_mode()
}

/// The cgroup hierarchy, v2 or v1. cgroups-rs's `hierarchies::auto()` reads and parses the whole of
/// /proc/self/mountinfo on every call for v1, and every Pod adds mounts (its pinned namespaces): creating a
/// Pod's cgroups got slower with every Pod running (a profile of a 100-Pod burst showed the kernel printing
/// mountinfo as the server's top cost). Where the v1 controllers are mounted does not change while we run,
/// so it is read once.
fn hierarchy() -> Box<dyn cgroups_rs::Hierarchy> {
    static V1: std::sync::OnceLock<Option<hierarchies::V1>> = std::sync::OnceLock::new();
    match V1.get_or_init(|| (!hierarchies::is_cgroup2_unified_mode()).then(hierarchies::V1::new)) {
        Some(v1) => Box::new(v1.clone()),
        None => Box::new(hierarchies::V2::new()),
    }
}

/// The Pod's controllers: the container's, and on v1 `devices`.
fn controllers() -> Vec<String> {
    let mut c = container_controllers();
    if is_v1() {
        c.push("devices".into());
    }
    c
}

/// A container's own cgroup has no devices part: it joins the Pod's (or the parent's when privileged).
fn container_controllers() -> Vec<String> {
    CONTROLLERS.iter().map(|s| s.to_string()).collect()
}

/// The `cgroup.procs` of `path` in the v1 devices hierarchy.
fn devices_procs(path: &str) -> Option<PathBuf> {
    let cg = Cgroup::load_with_specified_controllers(hierarchy(), path, vec!["devices".to_string()]);
    let sub = cg.subsystems().iter().find(|s| s.controller_name() == "devices")?;
    Some(sub.to_controller().path().join("cgroup.procs"))
}

fn open(path: &str) -> Cgroup {
    Cgroup::load_with_specified_controllers(hierarchy(), path, controllers())
}

pub fn pod_path(parent: &str, pod_uid: &str) -> String {
    format!("{parent}/pod{pod_uid}")
}

/// Create the parent (once per agent) so Pod cgroups never land in whatever cgroup the server runs in.
pub fn ensure_parent(parent: &str) -> Result<(), CgroupError> {
    Cgroup::new_with_specified_controllers(hierarchy(), parent, Some(controllers()))
        .map(drop)
        .map_err(|source| CgroupError::Cgroups { path: parent.into(), what: "create", source })
}

/// The Pod's cgroup: a pids limit, and a memory limit when the Pod has one (the kubelet's pod-level cgroup).
pub fn create_pod(parent: &str, pod_uid: &str, memory_limit: Option<i64>) -> Result<(), CgroupError> {
    let path = pod_path(parent, pod_uid);
    let cg = Cgroup::new_with_specified_controllers(hierarchy(), &path, Some(controllers()))
        .map_err(|source| CgroupError::Cgroups { path: path.clone(), what: "create", source })?;
    let mut res = Resources::default();
    res.pid.maximum_number_of_processes = Some(cgroups_rs::MaxValue::Value(POD_PIDS_MAX));
    res.memory.memory_hard_limit = memory_limit;
    if !cg.v2() {
        res.devices.devices = device_rules();
    }
    cg.apply(&res).map_err(|source| CgroupError::Cgroups { path, what: "set pids.max and the device list", source })
}

/// What a shim needs to put the container into its cgroup and read its OOM kills.
pub struct ContainerCgroup {
    pub procs: Vec<PathBuf>,
    pub oom_file: Option<PathBuf>,
}

pub fn create_container(parent: &str, pod_uid: &str, id: &str, limits: &Limits) -> Result<ContainerCgroup, CgroupError> {
    let path = format!("{}/{id}", pod_path(parent, pod_uid));
    let cg = Cgroup::new_with_specified_controllers(hierarchy(), &path, Some(container_controllers()))
        .map_err(|source| CgroupError::Cgroups { path: path.clone(), what: "create", source })?;
    let mut res = Resources::default();
    if let Some(m) = limits.memory_bytes {
        res.memory.memory_hard_limit = Some(m);
    }
    // Shares from the request (2 = the kernel minimum, what BestEffort containers get), as the kubelet does.
    let shares = limits.cpu_request_milli.or(limits.cpu_limit_milli).map(|m| (m * 1024 / 1000).max(2) as u64).unwrap_or(2);
    res.cpu.shares = Some(shares);
    if let Some(l) = limits.cpu_limit_milli {
        res.cpu.quota = Some((l * CPU_PERIOD as i64 / 1000).max(1000));
        res.cpu.period = Some(CPU_PERIOD);
    }
    cg.apply(&res).map_err(|source| CgroupError::Cgroups { path: path.clone(), what: "set limits", source })?;
    let v2 = cg.v2();
    let mut procs = Vec::new();
    let mut oom_file = None;
    if v2 {
        let dir = hierarchy().root().join(&path);
        if !limits.privileged {
            bpf_devices::attach(bpf_devices::default_program(&DEFAULT_DEVICES)?, &dir)?;
        }
        procs.push(dir.join("cgroup.procs"));
        oom_file = Some(dir.join("memory.events"));
    } else {
        for sub in cg.subsystems() {
            let dir = sub.to_controller().path().to_path_buf();
            if sub.controller_name() == "memory" {
                oom_file = Some(dir.join("memory.oom_control"));
            }
            procs.push(dir.join("cgroup.procs"));
        }
        let devices = if limits.privileged { parent.to_string() } else { pod_path(parent, pod_uid) };
        procs.extend(devices_procs(&devices));
    }
    Ok(ContainerCgroup { procs, oom_file })
}

/// Kill whatever is left in a cgroup and remove it; children first. Missing cgroups are fine.
pub fn remove(path: &str) {
    let cg = open(path);
    if !cg.exists() {
        return;
    }
    for pid in cg.procs() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid.pid as i32), nix::sys::signal::Signal::SIGKILL);
    }
    // rmdir fails while the killed tasks are still exiting; retry briefly.
    for _ in 0..50 {
        if cg.delete().is_ok() || !cg.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::warn!(cgroup = path, "could not remove cgroup");
}

pub fn remove_container(parent: &str, pod_uid: &str, id: &str) {
    remove(&format!("{}/{id}", pod_path(parent, pod_uid)));
}

/// Remove the Pod's cgroup and any container cgroups left under it.
pub fn remove_pod(parent: &str, pod_uid: &str) {
    let path = pod_path(parent, pod_uid);
    let cg = open(&path);
    for sub in cg.subsystems() {
        if let Ok(entries) = std::fs::read_dir(sub.to_controller().path()) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove(&format!("{path}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    remove(&path);
}

