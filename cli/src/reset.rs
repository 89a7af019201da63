//! `k1s reset`: remove what a server of a data dir created: every container (shims included), the Pods'
//! namespaces and volume mounts, the bridge (the veths go with their netns), the cgroups and the data dir.

use std::path::Path;

use anyhow::{bail, Context};

use crate::ResetArgs;

pub fn run(args: &ResetArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    let db = dir.join("db");
    if db.exists() {
        // sled holds an exclusive lock on its database: if we can open it, no server is using this dir.
        match k1s_store::SledStore::open(&db, k1s_store::SledOptions::default()) {
            Ok(s) => s.close(),
            Err(e) => bail!("cannot reset {}: the database is in use or unreadable ({e}); stop the k1s server first", dir.display()),
        }
    }
    let pods = dir.join("pods");
    stop_containers(&pods);
    unmount_volumes(&pods);
    // The pinned namespaces live on the run tmpfs (and, from older layouts, under pods/): unmount them all.
    if let Err(e) = k1s_agent::network::reset(&args.bridge, dir) {
        eprintln!("network reset: {e}");
    }
    let run = dir.join("run");
    if k1s_agent::runtime::is_mount_point(&run) {
        match nix::mount::umount2(&run, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => eprintln!("unmounted {}", run.display()),
            Err(e) => eprintln!("could not unmount {}: {e}", run.display()),
        }
    }
    remove_cgroup_parent(&args.cgroup_parent);
    remove_bridge(&args.bridge);
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        eprintln!("removed {}", dir.display());
    }
    Ok(())
}

/// Remove `<parent>` under every cgroup hierarchy (v1 controllers and the v2 tree), children first.
fn remove_cgroup_parent(parent: &str) {
    if parent.is_empty() || parent.contains("..") {
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(parent)];
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            candidates.push(e.path().join(parent));
        }
    }
    for c in candidates.into_iter().filter(|c| c.is_dir()) {
        rmdir_tree(&c);
    }
}

/// cgroup directories are removed with rmdir (their files are virtual), deepest first. Whatever still runs
/// in one (a container whose state file is gone, a Pod's pause process) is killed first: rmdir fails on a
/// cgroup with tasks.
fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    // Killed tasks take a moment to leave the cgroup.
    for _ in 0..50 {
        if std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => eprintln!("removed cgroup {}", dir.display()),
        Err(e) => eprintln!("could not remove cgroup {}: {e}", dir.display()),
    }
}

fn remove_bridge(name: &str) {
    if name.is_empty() || !Path::new("/sys/class/net").join(name).exists() {
        return;
    }
    match std::process::Command::new("ip").args(["link", "delete", name]).status() {
        Ok(s) if s.success() => eprintln!("removed bridge {name}"),
        _ => eprintln!("could not remove bridge {name}; remove it with: ip link delete {name}"),
    }
}

/// SIGKILL every container and shim recorded under `pods/*/containers/*/*/state.json`, then wait for them.
fn stop_containers(pods: &Path) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let mut pids = Vec::new();
    for dir in k1s_agent::runtime::all_attempt_dirs(pods) {
        let Ok(state) = k1s_agent::runtime::spec::read_json::<k1s_agent::runtime::State>(&dir.join("state.json")) else { continue };
        // Only a live shim of this very container: PIDs may have been reused since.
        if k1s_agent::runtime::shim_alive(state.shim_pid, &dir) {
            let _ = kill(Pid::from_raw(state.pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(state.shim_pid), Signal::SIGKILL);
            eprintln!("stopped container {}", dir.display());
            pids.push((state.shim_pid, dir));
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pids.iter().any(|(p, d)| k1s_agent::runtime::shim_alive(*p, d)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// emptyDir `medium: Memory` volumes are tmpfs mounts in the host's namespace.
fn unmount_volumes(pods: &Path) {
    for pod in std::fs::read_dir(pods).into_iter().flatten().flatten() {
        k1s_agent::volumes::unmount_all(&pod.path());
    }
}
