//! Container init: what the shim's forked child does between fork and exec — join the cgroups and the Pod's
//! namespaces, build the root filesystem (overlay, /proc, /dev, /sys, volumes), pivot_root into it, become
//! the container's user with its capabilities, and exec the workload as PID 1 of its pid namespace.
//!
//! Runs in a single-threaded process (the shim), so ordinary Rust (allocation included) is safe here.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::caps;
use super::spec::{ContainerSpec, MountKind};

/// File descriptors the shim opened for its child before forking.
pub struct InitFds {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The read end of the stdin pipe (`stdin: true` without a terminal); `None` = /dev/null.
    pub stdin: Option<OwnedFd>,
    /// `tty: true`: the socket the terminal's master goes back to the shim over (runc's console socket).
    pub console: Option<OwnedFd>,
    pub netns: Option<File>,
    pub ipcns: Option<File>,
    pub utsns: Option<File>,
    pub cgroup_procs: Vec<File>,
}

type R<T> = Result<T, String>;

fn ctx<T, E: std::fmt::Display>(r: Result<T, E>, what: impl FnOnce() -> String) -> R<T> {
    r.map_err(|e| format!("{}: {e}", what()))
}

/// Set up and exec; only returns with the reason it could not.
pub fn run(spec: &ContainerSpec, dir: &Path, fds: InitFds) -> String {
    match setup_and_exec(spec, dir, fds) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn setup_and_exec(spec: &ContainerSpec, dir: &Path, fds: InitFds) -> R<std::convert::Infallible> {
    // stdio: stdin from the shim's pipe or /dev/null, stdout/stderr into the shim's pipes. With a terminal,
    // all three are replaced by the terminal once the container's /dev/pts exists (below).
    let stdin: OwnedFd = match fds.stdin {
        Some(f) => f,
        None => ctx(File::open("/dev/null"), || "opening /dev/null".into())?.into(),
    };
    // SAFETY: dup2 on descriptors we own; the targets 0-2 are ours to replace in this fresh child.
    unsafe {
        libc::dup2(stdin.as_raw_fd(), 0);
        libc::dup2(fds.stdout.as_raw_fd(), 1);
        libc::dup2(fds.stderr.as_raw_fd(), 2);
    }
    drop((stdin, fds.stdout, fds.stderr));
    ctx(nix::unistd::setsid(), || "setsid".into())?;

    // cgroups before anything allocates much: on v1, memory is charged to the cgroup a task was in when it
    // allocated (limits.md).
    for mut f in fds.cgroup_procs {
        ctx(f.write_all(b"0"), || "joining the container's cgroup".into())?;
    }
    if let Some(f) = &fds.netns {
        ctx(setns(f, CloneFlags::CLONE_NEWNET), || "joining the Pod's network namespace".into())?;
    }
    if let Some(f) = &fds.ipcns {
        ctx(setns(f, CloneFlags::CLONE_NEWIPC), || "joining the Pod's IPC namespace".into())?;
    }
    if let Some(f) = &fds.utsns {
        ctx(setns(f, CloneFlags::CLONE_NEWUTS), || "joining the Pod's UTS namespace".into())?;
    }

    ctx(unshare(CloneFlags::CLONE_NEWNS), || "unshare(CLONE_NEWNS)".into())?;
    // The host's / may be a shared mount (e.g. /run/netns): make ours private so nothing propagates either way.
    ctx(mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>), || "making / private".into())?;

    let rootfs = dir.join("rootfs");
    mount_rootfs(spec, dir, &rootfs)?;
    mount_proc_dev_sys(spec, &rootfs)?;
    for m in &spec.mounts {
        mount_volume(&rootfs, m)?;
    }
    if let Some(console) = &fds.console {
        attach_terminal(&rootfs, console)?;
    }
    if !spec.privileged {
        mask_proc(&rootfs);
    }

    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the container's tree.
    ctx(std::env::set_current_dir(&rootfs), || format!("chdir {}", rootfs.display()))?;
    ctx(nix::unistd::pivot_root(".", "."), || "pivot_root".into())?;
    ctx(umount2(".", MntFlags::MNT_DETACH), || "detaching the old root".into())?;
    ctx(std::env::set_current_dir("/"), || "chdir /".into())?;
    if spec.readonly_rootfs {
        ctx(
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>),
            || "remounting the root filesystem read-only (readOnlyRootFilesystem)".into(),
        )?;
    }

    if !spec.cwd.is_empty() && spec.cwd != "/" {
        let _ = std::fs::create_dir_all(&spec.cwd);
        if spec.uid != 0 {
            let _ = nix::unistd::chown(spec.cwd.as_str(), Some(nix::unistd::Uid::from_raw(spec.uid)), None);
        }
    }
    let program = resolve_program(spec)?;

    // Before capabilities go: lowering oom_score_adj (Guaranteed's -997) needs CAP_SYS_RESOURCE. Best effort,
    // as runc in nested setups: a host that refuses to lower it (some sandboxes do, even to root) keeps the
    // inherited score rather than failing the container.
    if let Some(adj) = spec.oom_score_adj {
        let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
    }
    // Installed while still root with every capability (so no no_new_privs is needed, as runc does without
    // it); what init calls after this (capset, setuid, execve) is allowed by the filter.
    if spec.seccomp_default && !spec.privileged {
        ctx(super::seccomp::install(&super::seccomp::runtime_default(&spec.capabilities)), || "installing the seccomp filter".into())?;
    }
    let last = caps::last_cap();
    if !spec.privileged {
        ctx(caps::drop_bounding(&spec.capabilities, last), || "dropping capabilities".into())?;
    }
    let groups: Vec<nix::unistd::Gid> = spec.supplementary_gids.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    ctx(nix::unistd::setgroups(&groups), || "setgroups".into())?;
    ctx(nix::unistd::setgid(nix::unistd::Gid::from_raw(spec.gid)), || format!("setgid {}", spec.gid))?;
    ctx(nix::unistd::setuid(nix::unistd::Uid::from_raw(spec.uid)), || format!("setuid {}", spec.uid))?;
    if !spec.privileged && spec.uid == 0 {
        ctx(caps::set_process_caps(&spec.capabilities), || "capset".into())?;
    }
    if spec.no_new_privs {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(format!("prctl(NO_NEW_PRIVS): {}", std::io::Error::last_os_error()));
        }
    }
    let workdir = if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() };
    ctx(std::env::set_current_dir(workdir), || format!("chdir to workingDir {workdir}"))?;

    let argv: Vec<CString> = spec.args.iter().map(|a| CString::new(a.as_str()).unwrap_or_default()).collect();
    let envp: Vec<CString> = spec.env.iter().filter_map(|e| CString::new(e.as_str()).ok()).collect();
    let prog = CString::new(program.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    let err = nix::unistd::execve(&prog, &argv, &envp).unwrap_err();
    Err(format!("exec {:?}: {err}", spec.args[0]))
}

fn mount_rootfs(spec: &ContainerSpec, dir: &Path, rootfs: &Path) -> R<()> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    for d in [&upper, &work, &rootfs.to_path_buf()] {
        ctx(std::fs::create_dir_all(d), || format!("creating {}", d.display()))?;
    }
    if spec.layers.is_empty() {
        return Err("the image has no layers".into());
    }
    // overlayfs wants the topmost lower layer first.
    let lower: Vec<String> = spec.layers.iter().rev().map(|p| p.display().to_string()).collect();
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
    ctx(mount(Some("overlay"), rootfs, Some("overlay"), MsFlags::empty(), Some(opts.as_str())), || "mounting the overlay root filesystem".into())
}

fn mkdir(p: &Path) -> R<()> {
    ctx(std::fs::create_dir_all(p), || format!("creating {}", p.display()))
}

/// `tty: true`: open a terminal in the container's devpts, make it stdin/stdout/stderr and the controlling
/// terminal, and hand its master to the shim over `console`.
fn attach_terminal(rootfs: &Path, console: &OwnedFd) -> R<()> {
    use std::os::fd::AsFd;
    let (master, slave) = ctx(super::pty::open(&rootfs.join("dev/ptmx")), || "opening a terminal in the container's /dev/pts".into())?;
    ctx(super::pty::send_fds(console.as_fd(), b"t", &[master.as_raw_fd()]), || "handing the terminal to the shim".into())?;
    drop(master);
    // SAFETY: dup2 onto our own standard descriptors.
    unsafe {
        libc::dup2(slave.as_raw_fd(), 0);
        libc::dup2(slave.as_raw_fd(), 1);
        libc::dup2(slave.as_raw_fd(), 2);
    }
    drop(slave);
    ctx(super::pty::make_controlling(0), || "making the terminal the controlling terminal".into())
}

fn touch(p: &Path) -> R<()> {
    if let Some(parent) = p.parent() {
        mkdir(parent)?;
    }
    if !p.exists() {
        ctx(OpenOptions::new().create(true).truncate(false).write(true).open(p), || format!("creating {}", p.display()))?;
    }
    Ok(())
}

fn bind(src: &Path, dst: &Path, readonly: bool, recursive: bool) -> R<()> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    ctx(mount(Some(src), dst, None::<&str>, flags, None::<&str>), || format!("bind-mounting {} on {}", src.display(), dst.display()))?;
    if readonly {
        ctx(
            mount(None::<&str>, dst, None::<&str>, flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>),
            || format!("making {} read-only", dst.display()),
        )?;
    }
    Ok(())
}

fn mount_proc_dev_sys(spec: &ContainerSpec, rootfs: &Path) -> R<()> {
    let proc_ = rootfs.join("proc");
    mkdir(&proc_)?;
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    ctx(mount(Some("proc"), &proc_, Some("proc"), nosuid, None::<&str>), || "mounting /proc".into())?;

    let dev = rootfs.join("dev");
    mkdir(&dev)?;
    if spec.privileged {
        // Privileged containers see the host's devices.
        bind(Path::new("/dev"), &dev, false, true)?;
    } else {
        ctx(
            mount(Some("tmpfs"), &dev, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME, Some("mode=755,size=65536k")),
            || "mounting /dev".into(),
        )?;
        // mknod rather than bind mounts: a mount is copied into every later mount namespace, a node is not.
        for (name, major, minor) in [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)] {
            let target = dev.join(name);
            ctx(
                nix::sys::stat::mknod(&target, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o666), nix::sys::stat::makedev(major, minor)),
                || format!("creating /dev/{name}"),
            )?;
            // mknod honours the umask; the nodes must be world-writable.
            let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o666));
        }
        let pts = dev.join("pts");
        mkdir(&pts)?;
        ctx(
            mount(Some("devpts"), &pts, Some("devpts"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some("newinstance,ptmxmode=0666,mode=0620,gid=5")),
            || "mounting /dev/pts".into(),
        )?;
        let _ = symlink("pts/ptmx", dev.join("ptmx"));
        let shm = dev.join("shm");
        mkdir(&shm)?;
        ctx(mount(Some("shm"), &shm, Some("tmpfs"), nosuid, Some("mode=1777,size=65536k")), || "mounting /dev/shm".into())?;
        let mq = dev.join("mqueue");
        mkdir(&mq)?;
        let _ = mount(Some("mqueue"), &mq, Some("mqueue"), nosuid, None::<&str>);
        for (link, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
            let _ = symlink(target, dev.join(link));
        }
    }

    let sys = rootfs.join("sys");
    mkdir(&sys)?;
    let mut flags = nosuid;
    if !spec.privileged {
        flags |= MsFlags::MS_RDONLY;
    }
    ctx(mount(Some("sysfs"), &sys, Some("sysfs"), flags, None::<&str>), || "mounting /sys".into())?;
    Ok(())
}

fn mount_volume(rootfs: &Path, m: &super::spec::Mount) -> R<()> {
    let rel = m.destination.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Err(format!("mount path {:?} must not contain '..'", m.destination));
    }
    let target = rootfs.join(rel);
    match &m.kind {
        MountKind::Bind(src) => {
            let meta = ctx(std::fs::metadata(src), || format!("volume source {}", src.display()))?;
            if meta.is_dir() {
                mkdir(&target)?;
            } else {
                touch(&target)?;
            }
            bind(src, &target, m.readonly, true)
        }
        MountKind::Tmpfs => {
            mkdir(&target)?;
            let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            if m.readonly {
                flags |= MsFlags::MS_RDONLY;
            }
            ctx(mount(Some("tmpfs"), &target, Some("tmpfs"), flags, Some("mode=1777")), || format!("mounting tmpfs on {}", m.destination))
        }
    }
}

/// What containerd masks and makes read-only in /proc for unprivileged containers (oci/spec.go).
fn mask_proc(rootfs: &Path) {
    for p in ["proc/kcore", "proc/keys", "proc/latency_stats", "proc/timer_list", "proc/sched_debug", "proc/scsi"] {
        let t = rootfs.join(p);
        if t.is_file() {
            let _ = mount(Some("/dev/null"), &t, None::<&str>, MsFlags::MS_BIND, None::<&str>);
        } else if t.is_dir() {
            let _ = mount(Some("tmpfs"), &t, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>);
        }
    }
    for p in ["proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"] {
        let t = rootfs.join(p);
        if t.exists() {
            let _ = bind(&t, &t, true, true);
        }
    }
}

/// `execvp` semantics against the container's PATH (we are already inside its root).
fn resolve_program(spec: &ContainerSpec) -> R<PathBuf> {
    let Some(arg0) = spec.args.first() else {
        return Err("no command specified: the image has no Entrypoint or Cmd and the container no command".into());
    };
    if arg0.contains('/') {
        return Ok(PathBuf::from(arg0));
    }
    let path = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for d in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(d).join(arg0);
        if let Ok(meta) = std::fs::metadata(&cand) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(format!("exec: {arg0:?}: executable file not found in $PATH"))
}
