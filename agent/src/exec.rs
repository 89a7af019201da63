//! `kubectl exec`: run a command inside a running container. The agent starts `k1s nsexec DIR -- CMD...`
//! (our binary re-executed, so setns never happens on a tokio thread); it joins the container's cgroup and
//! its ipc, uts, net, pid and mount namespaces, becomes the container's user with its capabilities and
//! environment, and execs the command. Its exit code is the command's.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use crate::runtime::{caps, spec, ContainerSpec, Runtime, State};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    NotRunning(String),
    #[error("starting the exec helper: {0}")]
    Spawn(std::io::Error),
}

/// The directory of the container's running attempt.
pub fn running_dir(rt: &Runtime, uid: &str, container: &str) -> Option<PathBuf> {
    let base = rt.pod_dir(uid).join("containers").join(container);
    let latest = std::fs::read_dir(&base).ok()?.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).max()?;
    let dir = base.join(latest.to_string());
    let state: State = spec::read_json(&dir.join(spec::STATE)).ok()?;
    (crate::runtime::read_exit(&dir).is_none() && crate::runtime::shim_alive(state.shim_pid, &dir)).then_some(dir)
}

/// Start the exec helper with piped stdio.
pub fn spawn(rt: &Runtime, uid: &str, container: &str, command: &[String], stdin: bool) -> Result<tokio::process::Child, ExecError> {
    let dir = running_dir(rt, uid, container).ok_or_else(|| ExecError::NotRunning(format!("container {container} is not running")))?;
    let mut cmd = tokio::process::Command::new(&rt.cfg.exe);
    cmd.arg("nsexec").arg(&dir).arg("--").args(command);
    cmd.stdin(if stdin { std::process::Stdio::piped() } else { std::process::Stdio::null() });
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    cmd.spawn().map_err(ExecError::Spawn)
}

/// Start the exec helper on a new terminal from the container's own devpts (`kubectl exec -t`): the command
/// gets the slave side as stdin, stdout, stderr and controlling terminal; the caller gets the master.
pub fn spawn_tty(rt: &Runtime, uid: &str, container: &str, command: &[String]) -> Result<(tokio::process::Child, std::os::fd::OwnedFd), ExecError> {
    let dir = running_dir(rt, uid, container).ok_or_else(|| ExecError::NotRunning(format!("container {container} is not running")))?;
    let state: State = spec::read_json(&dir.join(spec::STATE)).map_err(ExecError::Spawn)?;
    // Through the container's root, so the terminal is one of the container's (`tty` names a /dev/pts/N
    // that exists there).
    let (master, slave) = crate::runtime::pty::open(Path::new(&format!("/proc/{}/root/dev/ptmx", state.pid))).map_err(ExecError::Spawn)?;
    let mut cmd = tokio::process::Command::new(&rt.cfg.exe);
    cmd.arg("nsexec").arg(&dir).arg("--tty").arg("--").args(command);
    let dup = |f: &std::os::fd::OwnedFd| f.try_clone().map(std::process::Stdio::from).map_err(ExecError::Spawn);
    cmd.stdin(dup(&slave)?).stdout(dup(&slave)?).stderr(std::process::Stdio::from(slave)).kill_on_drop(true);
    let child = cmd.spawn().map_err(ExecError::Spawn)?;
    Ok((child, master))
}

/// Entry point of `k1s nsexec DIR [--tty] -- CMD...` (single-threaded: setns into a mount namespace requires it).
pub fn nsexec_main(dir: &Path, command: &[String], tty: bool) -> i32 {
    match enter_and_run(dir, command, tty) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "k1s exec: {e}");
            // 126/127 as a shell would: cannot execute / not found.
            if e.contains("not found") { 127 } else { 126 }
        }
    }
}

fn enter_and_run(dir: &Path, command: &[String], tty: bool) -> Result<i32, String> {
    let spec: ContainerSpec = spec::read_json(&dir.join(spec::SPEC)).map_err(|e| e.to_string())?;
    let state: State = spec::read_json(&dir.join(spec::STATE)).map_err(|e| e.to_string())?;
    if command.is_empty() {
        return Err("no command".into());
    }
    let ns = |n: &str| File::open(format!("/proc/{}/ns/{n}", state.pid)).map_err(|e| format!("container is not running ({n} namespace: {e})"));
    // Open everything first: once in the container's mount namespace the host's paths are gone.
    let (ipc, uts, net, pid, mnt) = (ns("ipc")?, ns("uts")?, ns("net")?, ns("pid")?, ns("mnt")?);
    for p in &spec.cgroup_procs {
        let mut f = OpenOptions::new().write(true).open(p).map_err(|e| format!("joining cgroup {}: {e}", p.display()))?;
        f.write_all(b"0").map_err(|e| format!("joining cgroup {}: {e}", p.display()))?;
    }
    for (f, flag, what) in [
        (&ipc, CloneFlags::CLONE_NEWIPC, "ipc"),
        (&uts, CloneFlags::CLONE_NEWUTS, "uts"),
        (&net, CloneFlags::CLONE_NEWNET, "net"),
        (&pid, CloneFlags::CLONE_NEWPID, "pid"),
        (&mnt, CloneFlags::CLONE_NEWNS, "mnt"),
    ] {
        setns(f, flag).map_err(|e| format!("entering the container's {what} namespace: {e}"))?;
    }
    // SAFETY: single-threaded process; the child only sets its identity and execs.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            // A terminal session of its own, with stdin as its controlling terminal: job control and ^C reach
            // the command as on any login.
            if tty {
                let _ = nix::unistd::setsid();
                let _ = crate::runtime::pty::make_controlling(0);
            }
            let err = become_and_exec(&spec, command);
            let _ = writeln!(std::io::stderr(), "{err}");
            // SAFETY: leave without unwinding into the parent's state.
            unsafe { libc::_exit(if err.contains("not found") { 127 } else { 126 }) };
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("waiting for the command: {e}")),
            }
        },
    }
}

fn become_and_exec(spec: &ContainerSpec, command: &[String]) -> String {
    let cwd = if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() };
    let _ = std::env::set_current_dir(cwd);
    // The container's seccomp filter holds for what is exec'd into it too (kubectl exec, exec probes).
    if spec.seccomp_default && !spec.privileged {
        if let Err(e) = crate::runtime::seccomp::install(&crate::runtime::seccomp::runtime_default(&spec.capabilities)) {
            return format!("installing the seccomp filter: {e}");
        }
    }
    if !spec.privileged {
        if let Err(e) = caps::drop_bounding(&spec.capabilities, caps::last_cap()) {
            return format!("dropping capabilities: {e}");
        }
    }
    let groups: Vec<nix::unistd::Gid> = spec.supplementary_gids.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    if let Err(e) = nix::unistd::setgroups(&groups).and_then(|_| nix::unistd::setgid(nix::unistd::Gid::from_raw(spec.gid))).and_then(|_| nix::unistd::setuid(nix::unistd::Uid::from_raw(spec.uid))) {
        return format!("becoming the container's user: {e}");
    }
    if !spec.privileged && spec.uid == 0 {
        if let Err(e) = caps::set_process_caps(&spec.capabilities) {
            return format!("capset: {e}");
        }
    }
    if spec.no_new_privs {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    }
    // The command dies with the helper: a timed-out exec probe, or a kubectl exec whose client left, kills
    // the helper, and must not leave the command running in the container. Set after the user change, which
    // clears it.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let path = spec.env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let program = if command[0].contains('/') {
        Some(PathBuf::from(&command[0]))
    } else {
        path.split(':').map(|d| Path::new(d).join(&command[0])).find(|p| p.is_file())
    };
    let Some(program) = program else {
        return format!("exec: \"{}\": executable file not found in $PATH", command[0]);
    };
    let argv: Vec<CString> = command.iter().map(|a| CString::new(a.as_str()).unwrap_or_default()).collect();
    let envp: Vec<CString> = spec.env.iter().filter_map(|e| CString::new(e.as_str()).ok()).collect();
    let prog = match CString::new(program.as_os_str().as_encoded_bytes()) {
        Ok(p) => p,
        Err(e) => return e.to_string(),
    };
    let e = nix::unistd::execve(&prog, &argv, &envp).unwrap_err();
    if e == nix::errno::Errno::ENOENT {
        format!("exec: \"{}\": not found", command[0])
    } else {
        format!("exec \"{}\": {e}", command[0])
    }
}
