//! What the agent hands a shim (`spec.json`) and what the shim leaves behind (`state.json`, `exit.json`): the
//! files in a container's directory, which are how a restarted agent finds its containers again.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything the shim needs to create one container. Written by the agent before it starts the shim and
/// kept for `exec`, which enters the same namespaces with the same user and environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerSpec {
    /// Container ID (hex); also the name of the container's cgroup.
    pub id: String,
    pub pod_uid: String,
    pub namespace: String,
    pub pod_name: String,
    pub container_name: String,
    /// Init container (for recovery: which status list it belongs to).
    pub init: bool,
    /// The image as the Pod names it, and its ID (`sha256:<config digest>`).
    pub image: String,
    pub image_id: String,
    /// Unpacked image layers, bottom first.
    pub layers: Vec<PathBuf>,
    /// The command line: image Entrypoint/Cmd combined with command/args.
    pub args: Vec<String>,
    /// `NAME=value` pairs.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub supplementary_gids: Vec<u32>,
    /// Pinned namespaces of the Pod; `None` = stay in the host's (hostNetwork).
    pub netns: Option<PathBuf>,
    pub ipcns: Option<PathBuf>,
    pub utsns: Option<PathBuf>,
    /// `cgroup.procs` files to join (one per v1 hierarchy, or one on v2), before exec.
    pub cgroup_procs: Vec<PathBuf>,
    /// Where the OOM-kill counter lives (`memory.oom_control` on v1, `memory.events` on v2).
    pub oom_file: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    pub privileged: bool,
    /// Capability numbers kept (bounding, permitted, effective, inheritable) when not privileged.
    pub capabilities: Vec<u32>,
    pub no_new_privs: bool,
    pub readonly_rootfs: bool,
    /// The container's `oom_score_adj` from its QoS class (the kubelet's policy); `None` leaves the inherited one.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// `hostPID`: the container stays in the host's pid namespace (no new one; /proc shows the host's).
    #[serde(default)]
    pub host_pid: bool,
    /// `seccompProfile: RuntimeDefault` (unset and `Unconfined`: no filter, as upstream's default).
    #[serde(default)]
    pub seccomp_default: bool,
    /// `stdin: true`: the container's stdin is a pipe (or its terminal) that the shim keeps open for
    /// `kubectl attach -i`; otherwise /dev/null.
    #[serde(default)]
    pub stdin: bool,
    /// `stdinOnce: true`: the first attach session that closes stdin closes it for the container (EOF).
    #[serde(default)]
    pub stdin_once: bool,
    /// `tty: true`: stdin, stdout and stderr are one pseudo-terminal from the container's own devpts; the shim
    /// holds its master side (and logs what it reads as stdout, as containerd does).
    #[serde(default)]
    pub tty: bool,
    /// Join this pid namespace instead of getting a new one: an ephemeral container with a
    /// `targetContainerName` shares its target's processes (`kubectl debug --target`).
    #[serde(default)]
    pub pid_ns: Option<PathBuf>,
    /// CRI-format log file the shim writes stdout/stderr into.
    pub log_path: PathBuf,
    /// Rotate the log once it grows past this many bytes (one rotated file is kept, as `<log>.1`).
    pub log_max_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mount {
    pub destination: String,
    pub kind: MountKind,
    pub readonly: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum MountKind {
    /// Bind a host path (file or directory).
    Bind(PathBuf),
    /// A fresh tmpfs (emptyDir `medium: Memory` binds a pod-level tmpfs instead; this is for /dev/shm-like mounts).
    Tmpfs,
}

/// Written by the shim once the container's process has exec'd.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub shim_pid: i32,
    /// The container's process (PID 1 of its pid namespace) as the host sees it.
    pub pid: i32,
    /// RFC 3339.
    pub started_at: String,
}

/// Written by the shim when the container ended (or could not start).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Exit {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub finished_at: String,
    /// Set when the container never ran: why (e.g. the executable was not found).
    pub start_error: Option<String>,
    /// `terminated.message`: the container's terminationMessagePath (or its log tail under
    /// FallbackToLogsOnError), filled in by the agent when it learns of the exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Exit {
    /// The Kubernetes `reason` of a terminated state.
    pub fn reason(&self) -> &'static str {
        if self.start_error.is_some() {
            "StartError"
        } else if self.oom_killed {
            "OOMKilled"
        } else if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

pub const SPEC: &str = "spec.json";
pub const STATE: &str = "state.json";
pub const EXIT: &str = "exit.json";

/// Write a file so that a reader (or a killed writer) never sees it half-written: temp file, then rename.
/// No fsync, on purpose: these files describe running processes, which a power loss ends anyway (the same
/// reasoning as containerd's state in /run); what must survive a crash of the server, the page cache keeps.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
    }
    std::fs::rename(&tmp, path)
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    write_atomic(path, &serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?)
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<T> {
    let data = std::fs::read(path)?;
    serde_json::from_slice(&data).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}
