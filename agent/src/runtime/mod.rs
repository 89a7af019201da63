//! The container runtime (CRI-shaped: run/stop/remove a sandbox, start/stop a container): Pod sandboxes
//! (namespaces, network, cgroup, /etc files), containers started by shims, exit notification by pidfd, and
//! recovery of both from the state directory after an agent restart.
//!
//! Layout of `<data-dir>/pods/<uid>/` (disk): `sandbox.json`, `volumes/<name>/`,
//! `containers/<name>/<attempt>/` (spec.json, state.json, exit.json, upper/work/rootfs),
//! `logs/<name>/<attempt>.log`. `<data-dir>/run/<uid>/` (tmpfs): `ns/{net,ipc,uts}` (pinned namespaces) and
//! `etc/` (hosts, hostname, resolv.conf), which die with the machine as the containers do.

pub mod bpf_devices;
pub mod caps;
pub mod cgroup;
pub mod init;
pub mod pause;
pub mod pty;
pub mod seccomp;
pub mod shim;
pub mod spec;

use std::net::Ipv4Addr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;

use crate::network::{Network, NetworkError};
pub use spec::{ContainerSpec, Exit, State};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("pod {pod}: {source}")]
    Network { pod: String, source: Box<NetworkError> },
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("starting the shim for {container}: {message}")]
    Shim { container: String, message: String },
    /// The container's process could not be started (bad command, missing working dir, ...).
    #[error("{0}")]
    StartError(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RuntimeError + 'a {
    move |source| RuntimeError::Io { what, path: path.to_path_buf(), source }
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `<data-dir>/pods`: on disk (rootfs upper layers, logs, volumes, state files).
    pub pods_dir: PathBuf,
    /// `<data-dir>/run`: a tmpfs for what only lives while the machine is up (the Pods' pinned namespaces and
    /// /etc files). Like containerd's /run state: nothing there outlives a reboot, and creating files on it
    /// costs no disk inode allocation on the hot path.
    pub run_dir: PathBuf,
    pub cgroup_parent: String,
    /// The binary to re-execute as shim (`/proc/self/exe`: the running binary, even if replaced on disk).
    pub exe: PathBuf,
    pub log_max_bytes: u64,
}

/// What a restarted agent needs to know about a sandbox; `sandbox.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub host_network: bool,
    pub ip: Option<Ipv4Addr>,
    pub netns: Option<PathBuf>,
    pub ipcns: Option<PathBuf>,
    pub utsns: Option<PathBuf>,
    pub created_at: String,
    /// `shareProcessNamespace`: the host PID of the pause process whose pid namespace every container joins.
    #[serde(default)]
    pub pause_pid: Option<i32>,
}

/// Input to [`Runtime::run_sandbox`].
pub struct SandboxRequest<'a> {
    pub uid: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub hostname: &'a str,
    pub host_network: bool,
    /// Extra `/etc/hosts` lines (hostAliases).
    pub host_aliases: Vec<(String, Vec<String>)>,
    /// The Pod cgroup's memory limit (pod-level resources, or the containers' limits summed).
    pub memory_limit: Option<i64>,
    /// `shareProcessNamespace`: one pid namespace for the Pod, held by a pause process.
    pub share_pid: bool,
}

#[derive(Clone)]
pub struct Runtime {
    pub cfg: RuntimeConfig,
    pub net: Network,
}

impl Runtime {
    pub fn new(cfg: RuntimeConfig, net: Network) -> Result<Runtime, RuntimeError> {
        std::fs::create_dir_all(&cfg.pods_dir).map_err(io("creating", &cfg.pods_dir))?;
        ensure_tmpfs(&cfg.run_dir)?;
        cgroup::ensure_parent(&cfg.cgroup_parent)?;
        Ok(Runtime { cfg, net })
    }

    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.cfg.pods_dir.join(uid)
    }

    /// The Pod's pinned namespaces (`net`, `ipc`, `uts`), on the run tmpfs.
    pub fn ns_dir(&self, uid: &str) -> PathBuf {
        self.cfg.run_dir.join(uid).join("ns")
    }

    /// The Pod's /etc/hosts, hostname and resolv.conf, on the run tmpfs.
    pub fn etc_dir(&self, uid: &str) -> PathBuf {
        self.cfg.run_dir.join(uid).join("etc")
    }

    pub fn container_dir(&self, uid: &str, name: &str, attempt: u32) -> PathBuf {
        self.pod_dir(uid).join("containers").join(name).join(attempt.to_string())
    }

    pub fn log_path(&self, uid: &str, name: &str, attempt: u32) -> PathBuf {
        self.pod_dir(uid).join("logs").join(name).join(format!("{attempt}.log"))
    }

    /// Create the Pod's sandbox: namespaces + veth + IP, the Pod cgroup, the /etc files. Idempotent for a
    /// sandbox that already exists (returns it).
    pub async fn run_sandbox(&self, req: &SandboxRequest<'_>) -> Result<SandboxInfo, RuntimeError> {
        let dir = self.pod_dir(req.uid);
        let info_path = dir.join("sandbox.json");
        if let Ok(info) = spec::read_json::<SandboxInfo>(&info_path) {
            return Ok(info);
        }
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        // No sandbox.json but namespaces on the run tmpfs: the server died between setting this sandbox up and
        // recording it. Release what it made (mounts, veth, IP claim, cgroup) and start it afresh.
        if self.ns_dir(req.uid).exists() {
            let (rt, uid) = (self.clone(), req.uid.to_string());
            tokio::task::spawn_blocking(move || rt.release_sandbox(&uid)).await.expect("sandbox release task")?;
        }
        let parent = self.cfg.cgroup_parent.clone();
        let (uid, memory_limit) = (req.uid.to_string(), req.memory_limit);
        tokio::task::spawn_blocking(move || cgroup::create_pod(&parent, &uid, memory_limit)).await.expect("cgroup task")?;
        let ns_dir = self.ns_dir(req.uid);
        let pn = if req.host_network {
            self.net.setup_host_network_pod(req.uid, &ns_dir).await
        } else {
            self.net.setup_pod(req.uid, &ns_dir, req.hostname).await
        }
        .map_err(|source| RuntimeError::Network { pod: format!("{}/{}", req.namespace, req.name), source: Box::new(source) })?;
        let hostname = if req.host_network { read_host_hostname() } else { req.hostname.to_string() };
        write_etc(&self.etc_dir(req.uid), &hostname, pn.ip, &req.host_aliases)?;
        let pause_pid = if req.share_pid { Some(self.start_pause(req.uid).await?) } else { None };
        let info = SandboxInfo {
            uid: req.uid.into(),
            namespace: req.namespace.into(),
            name: req.name.into(),
            host_network: req.host_network,
            ip: pn.ip,
            netns: pn.netns,
            ipcns: Some(pn.ipcns),
            utsns: pn.utsns,
            created_at: shim::now_rfc3339(),
            pause_pid,
        };
        spec::write_json(&info_path, &info).map_err(io("writing", &info_path))?;
        Ok(info)
    }

    /// Start the pause process of a Pod with a shared pid namespace (in its own cgroup under the Pod's, so
    /// the Pod's teardown kills it); its host PID.
    async fn start_pause(&self, uid: &str) -> Result<i32, RuntimeError> {
        let (parent, u) = (self.cfg.cgroup_parent.clone(), uid.to_string());
        let cg = tokio::task::spawn_blocking(move || cgroup::create_container(&parent, &u, "pause", &cgroup::Limits::default())).await.expect("cgroup task")?;
        let dir = self.cfg.run_dir.join(uid);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let out = tokio::process::Command::new(&self.cfg.exe)
            .arg("pause")
            .arg(&dir)
            .args(&cg.procs)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| RuntimeError::Shim { container: "pause".into(), message: e.to_string() })?;
        let pid_file = dir.join(pause::PID_FILE);
        match std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok()) {
            Some(pid) if out.status.success() => Ok(pid),
            _ => Err(RuntimeError::Shim { container: "pause".into(), message: String::from_utf8_lossy(&out.stderr).trim().to_string() }),
        }
    }

    /// Start one container through a shim; returns once it has exec'd (or failed to).
    pub async fn start_container(&self, spec: &ContainerSpec, dir: &Path, limits: &cgroup::Limits) -> Result<State, RuntimeError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let (parent, uid, id, l) = (self.cfg.cgroup_parent.clone(), spec.pod_uid.clone(), spec.id.clone(), limits.clone());
        let cg = tokio::task::spawn_blocking(move || cgroup::create_container(&parent, &uid, &id, &l)).await.expect("cgroup task")?;
        let mut spec = spec.clone();
        spec.cgroup_procs = cg.procs;
        spec.oom_file = cg.oom_file;
        let spec_path = dir.join(spec::SPEC);
        spec::write_json(&spec_path, &spec).map_err(io("writing", &spec_path))?;

        let mut cmd = tokio::process::Command::new(&self.cfg.exe);
        cmd.arg("shim").arg(dir).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
        // No pre_exec: without one, std spawns with posix_spawn (vfork-like) instead of forking the whole
        // server. The shim calls setsid itself, first thing. (Spawning it in a process group of its own, with
        // posix_spawn's SETPGROUP, was tried to close the window before that setsid: under the parallel test
        // suite shims then died right after starting their container, cause not found, so it was reverted; a
        // start cut short in that window is recovered instead, see `pods::recover`.)
        let mut child = cmd.spawn().map_err(|e| RuntimeError::Shim { container: spec.container_name.clone(), message: e.to_string() })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = child.wait().await;
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(stdout);
        reader.read_line(&mut line).await.map_err(|e| RuntimeError::Shim { container: spec.container_name.clone(), message: e.to_string() })?;
        let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|_| RuntimeError::Shim {
            container: spec.container_name.clone(),
            message: format!("no report from the shim (got {line:?})"),
        })?;
        if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
            if v.get("start_error").is_some() {
                return Err(RuntimeError::StartError(err.to_string()));
            }
            return Err(RuntimeError::Shim { container: spec.container_name.clone(), message: err.to_string() });
        }
        serde_json::from_value(v).map_err(|e| RuntimeError::Shim { container: spec.container_name.clone(), message: e.to_string() })
    }

    /// Give back what a sandbox holds in the kernel: its processes and cgroups, its namespaces (the kernel
    /// reaps the veth once the netns is unmounted), its IP and its run-tmpfs files. Files on disk (logs, exit
    /// records) stay. Blocking (cgroup removal waits for killed tasks): async callers use spawn_blocking.
    pub fn release_sandbox(&self, uid: &str) -> Result<(), RuntimeError> {
        cgroup::remove_pod(&self.cfg.cgroup_parent, uid);
        self.net.teardown_pod(uid, &self.ns_dir(uid)).map_err(|source| RuntimeError::Network { pod: uid.into(), source: Box::new(source) })?;
        let _ = std::fs::remove_dir_all(self.cfg.run_dir.join(uid));
        Ok(())
    }

    /// Remove everything of a sandbox: what [`Runtime::release_sandbox`] releases, the Pod's volume mounts and
    /// its files.
    pub async fn remove_sandbox(&self, uid: &str) -> Result<(), RuntimeError> {
        let (rt, uid) = (self.clone(), uid.to_string());
        tokio::task::spawn_blocking(move || {
            rt.release_sandbox(&uid)?;
            let dir = rt.pod_dir(&uid);
            crate::volumes::unmount_all(&dir);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::Io { what: "removing", path: dir, source: e }),
                _ => Ok(()),
            }
        })
        .await
        .expect("sandbox removal task")
    }

    /// Every container attempt directory (`<pod>/containers/<name>/<attempt>`) of one Pod.
    pub fn attempt_dirs(&self, uid: &str) -> Vec<PathBuf> {
        attempt_dirs(&self.pod_dir(uid))
    }

    /// Sandboxes on disk (for recovery).
    pub fn list_sandboxes(&self) -> Vec<SandboxInfo> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.cfg.pods_dir) {
            for e in entries.flatten() {
                if let Ok(info) = spec::read_json::<SandboxInfo>(&e.path().join("sandbox.json")) {
                    out.push(info);
                }
            }
        }
        out
    }
}

/// Every container attempt directory of the Pod directory `pod_dir` (`containers/<name>/<attempt>`).
pub fn attempt_dirs(pod_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for c in std::fs::read_dir(pod_dir.join("containers")).into_iter().flatten().flatten() {
        out.extend(std::fs::read_dir(c.path()).into_iter().flatten().flatten().map(|a| a.path()));
    }
    out
}

/// Every container attempt directory under a data dir's `pods/` (for `k1s reset` and `k1s image rm`).
pub fn all_attempt_dirs(pods_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(pods_dir).into_iter().flatten().flatten().flat_map(|p| attempt_dirs(&p.path())).collect()
}

/// Whether `path` is a mount point (its device differs from its parent's).
pub fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), path.parent().map(std::fs::metadata)) {
        (Ok(m), Some(Ok(p))) => m.dev() != p.dev(),
        _ => false,
    }
}

/// Mount a small tmpfs at `dir` unless one is there already (after a server restart it is).
fn ensure_tmpfs(dir: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    if is_mount_point(dir) {
        return Ok(());
    }
    nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV, Some("mode=0700,size=16m"))
        .map_err(|e| RuntimeError::Io { what: "mounting a tmpfs on", path: dir.to_path_buf(), source: e.into() })
}

/// Whether a recovered sandbox's namespaces still exist (they do not after a reboot: the run tmpfs is new).
pub fn sandbox_alive(info: &SandboxInfo) -> bool {
    info.ipcns.as_deref().is_some_and(is_mount_point) && info.netns.as_deref().is_none_or(is_mount_point)
}

fn read_host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

/// Per-Pod /etc/hosts, /etc/hostname and /etc/resolv.conf, bind-mounted into every container of the Pod.
fn write_etc(dir: &Path, hostname: &str, ip: Option<Ipv4Addr>, aliases: &[(String, Vec<String>)]) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    // The kubelet's managed hosts file (pkg/kubelet/kubelet_pods.go managedHostsFileContent).
    let mut hosts = String::from("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n");
    if let Some(ip) = ip {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    for (ip, names) in aliases {
        hosts.push_str(&format!("\n# Entries added by HostAliases.\n{ip}\t{}\n", names.join("\t")));
    }
    std::fs::write(dir.join("hosts"), hosts).map_err(io("writing", dir))?;
    std::fs::write(dir.join("hostname"), format!("{hostname}\n")).map_err(io("writing", dir))?;
    std::fs::write(dir.join("resolv.conf"), resolv_conf()).map_err(io("writing", dir))?;
    Ok(())
}

/// The host's resolv.conf without loopback nameservers (a stub resolver on 127.0.0.53 is unreachable from a
/// Pod's netns). There is no cluster DNS yet, so no cluster search domains either.
fn resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    for line in host.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            if ns.starts_with("127.") || ns == "::1" {
                continue;
            }
        }
        if t.starts_with("nameserver") || t.starts_with("search") || t.starts_with("options") {
            out.push_str(t);
            out.push('\n');
        }
    }
    out
}

/// A pidfd for `pid`, to learn of its exit without being its parent.
pub fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; on success the kernel returns a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether `pid` is alive and is the shim of the container in `dir` (guards against PID reuse after a reboot
/// or a long downtime).
pub fn shim_alive(pid: i32, dir: &Path) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => {
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.len() >= 3 && args[1] == b"shim" && args[2] == dir.as_os_str().as_encoded_bytes()
        }
        Err(_) => false,
    }
}

/// Whether any process is the shim of the container attempt in `dir` (its state not written yet: it is still
/// starting the container).
pub fn any_shim_for(dir: &Path) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| shim_alive(pid, dir))
}

/// Wait until the shim `pid` has exited (event-driven: the pidfd becomes readable), then read `exit.json`.
/// A shim that vanished without writing it (killed, machine crash) gives an `Unknown` exit.
pub async fn wait_exit(shim_pid: i32, dir: PathBuf) -> Exit {
    if let Ok(fd) = pidfd_open(shim_pid) {
        // SAFETY: the AsyncFd owns the pidfd and deregisters it before closing it on drop.
        if let Ok(afd) = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
            let _ = afd.readable().await.map(|mut g| g.retain_ready());
        }
    }
    read_exit(&dir).unwrap_or_else(|| Exit {
        exit_code: 255,
        signal: None,
        oom_killed: false,
        finished_at: shim::now_rfc3339(),
        start_error: Some("the container's shim ended without recording an exit status".into()),
        message: None,
    })
}

pub fn read_exit(dir: &Path) -> Option<Exit> {
    spec::read_json(&dir.join(spec::EXIT)).ok()
}

/// SIGTERM the container, then SIGKILL after `grace` if it still runs. PID 1 of a pid namespace ignores
/// signals it has no handler for (SIGTERM to `sleep`), exactly as in Kubernetes; SIGKILL always works.
pub async fn stop_container(state: &State, dir: &Path, grace: Duration) {
    use nix::sys::signal::{kill, Signal};
    let pid = nix::unistd::Pid::from_raw(state.pid);
    if read_exit(dir).is_some() || !shim_alive(state.shim_pid, dir) {
        return;
    }
    let _ = kill(pid, Signal::SIGTERM);
    if !grace.is_zero() {
        let _ = tokio::time::timeout(grace, wait_exit(state.shim_pid, dir.to_path_buf())).await;
    }
    if read_exit(dir).is_none() {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(10), wait_exit(state.shim_pid, dir.to_path_buf())).await;
    }
}

/// A fresh container ID (64 hex characters, like containerd's).
pub fn new_container_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
