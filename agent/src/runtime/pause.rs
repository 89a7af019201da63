//! `k1s pause DIR CGROUP_PROCS...`: the process that holds a Pod's shared pid namespace
//! (`shareProcessNamespace: true`), as upstream's pause container does — PID 1 of the namespace every
//! container of the Pod joins, reaping orphans; the namespace lives as long as it does.
//!
//! Our binary re-executed, synchronous and single-threaded (fork and unshare need that). The first process
//! leaves at once (the agent waits for it), after writing PID 1's host PID to `DIR/pause.pid`.

use std::io::Write;
use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{fork, ForkResult, Pid};

/// The file the pause process's host PID is written to.
pub const PID_FILE: &str = "pause.pid";

pub fn main(dir: &Path, cgroup_procs: &[std::path::PathBuf]) -> i32 {
    let _ = nix::unistd::setsid();
    // Into the Pod's cgroup first: removing the Pod's cgroups then kills it with everything else.
    for p in cgroup_procs {
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(p).and_then(|mut f| f.write_all(b"0")) {
            eprintln!("k1s pause: joining {}: {e}", p.display());
            return 1;
        }
    }
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        eprintln!("k1s pause: unshare(CLONE_NEWPID): {e}");
        return 1;
    }
    // SAFETY: single-threaded (dispatched before any runtime starts).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => match std::fs::write(dir.join(PID_FILE), child.as_raw().to_string()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("k1s pause: writing {}: {e}", dir.join(PID_FILE).display());
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                1
            }
        },
        Ok(ForkResult::Child) => {
            // Exec'd afresh as `/pause`, as upstream's is seen in `ps`: no host paths in its command line, and
            // none of the parent's memory.
            let exe = c"/proc/self/exe";
            let argv = [c"/pause"];
            let e = nix::unistd::execv(exe, &argv).unwrap_err();
            eprintln!("k1s pause: exec: {e}");
            // SAFETY: leave without unwinding into the parent's state.
            unsafe { libc::_exit(127) }
        }
        Err(e) => {
            eprintln!("k1s pause: fork: {e}");
            1
        }
    }
}

/// PID 1 of the Pod's pid namespace (the binary run as `/pause`): no stdio, reaping whatever is orphaned
/// to it.
pub fn pid1() -> ! {
    if let Ok(null) = std::fs::File::options().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: replacing our own standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    // SAFETY: prctl with a valid NUL-terminated name (`comm` would otherwise be the binary's name).
    unsafe { libc::prctl(libc::PR_SET_NAME, c"pause".as_ptr(), 0, 0, 0) };
    // SIGCHLD is ignored by default, so nothing would wake us: block it and wait for it explicitly.
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGCHLD);
    let _ = set.thread_block();
    loop {
        while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            if status == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
        let _ = set.wait();
    }
}
