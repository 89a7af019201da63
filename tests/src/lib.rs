//! Shared harness for the end-to-end tests and the benchmark: start the real `k1s` binary in its own process
//! group with its own data dir, port, bridge, pod CIDR and cgroup parent, and remove all of it afterwards
//! (a Drop guard that kills the group and runs `k1s reset`), pass or fail.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// The `k1s` binary under test: `$K1S_BIN`, else `target/<profile>/k1s` beside this crate's workspace.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("K1S_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let bin = target.join(profile).join("k1s");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p k1s`, or run the README's test command, which does)",
        bin.display()
    );
    bin
}

/// The end-to-end tier runs real containers: it needs root, and says so instead of skipping.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end tests create namespaces, cgroups, links and mounts: run them as root (the README's test command does)"
    );
}

/// Run a shell command line under a pseudo-terminal (`script` from bsdutils), typing `input` into it line by
/// line, slowly, as a user does (each line once the previous one had time to arrive).
pub fn on_terminal(line: &str, input: &str) -> std::process::Output {
    let mut child = Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (bsdutils) runs");
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_string();
    // The thread keeps stdin open after the last line: EOF would end the session before the command does.
    let typer = std::thread::spawn(move || {
        for l in input.split_inclusive('\n') {
            std::thread::sleep(Duration::from_millis(700));
            if std::io::Write::write_all(&mut stdin, l.as_bytes()).is_err() {
                return;
            }
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let out = child.wait_with_output().expect("script runs");
    drop(typer);
    out
}

/// A server for a root end-to-end test (fails loudly when not root).
pub fn start_root() -> Server {
    require_root();
    Server::start().expect("server starts")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Names that keep parallel test servers apart.
#[derive(Debug, Clone)]
pub struct Identity {
    pub bridge: String,
    pub cgroup_parent: String,
    pub pod_cidr: String,
    pub node_name: String,
}

impl Identity {
    pub fn unique() -> Self {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Linux interface names are at most 15 bytes.
        let tag = format!("{:x}{:x}", pid & 0xfffff, n);
        let b = ((pid as usize * 7 + n as usize) % 200) + 20;
        Identity {
            bridge: format!("k1st{tag}"),
            cgroup_parent: format!("k1s-test-{tag}"),
            pod_cidr: format!("10.{b}.0.0/16"),
            node_name: format!("k1s-test-{tag}"),
        }
    }
}

/// A running `k1s server`.
pub struct Server {
    child: Option<Child>,
    pub dir: PathBuf,
    /// Owns the temporary data dir when the harness created it.
    _tmp: Option<tempfile::TempDir>,
    pub id: Identity,
    pub kubeconfig: PathBuf,
    pub url: String,
    pub token: String,
    pub ca_pem: String,
    pub listen: String,
    /// Extra `k1s server` flags.
    pub extra: Vec<String>,
}

impl Server {
    /// Start a server on a fresh data dir and a free loopback port; returns once the API serves.
    pub fn start() -> anyhow::Result<Server> {
        let tmp = tempfile::Builder::new().prefix("k1s-test-").tempdir()?;
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir, Identity::unique(), "127.0.0.1:0")?;
        s._tmp = Some(tmp);
        Ok(s)
    }

    /// Start a server on an existing data dir (a restart), with `listen` (port 0 = any).
    pub fn start_in(dir: &Path, id: Identity, listen: &str) -> anyhow::Result<Server> {
        Server::start_with(dir, id, listen, &[])
    }

    /// [`Server::start_in`] with more `k1s server` flags (kept for restarts).
    pub fn start_with(dir: &Path, id: Identity, listen: &str, extra: &[&str]) -> anyhow::Result<Server> {
        let kubeconfig = dir.join("kubeconfig.yaml");
        // The server rewrites it once the API serves; its appearance is the readiness signal.
        let _ = std::fs::remove_file(&kubeconfig);
        std::fs::create_dir_all(dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log"))?;
        let mut cmd = Command::new(binary());
        cmd.args(["server", "--data-dir"])
            .arg(dir)
            .args(["--listen", listen, "--node-name", &id.node_name, "--bridge", &id.bridge])
            .args(["--pod-cidr", &id.pod_cidr, "--cgroup-parent", &id.cgroup_parent])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().context("spawning k1s server")?;
        let mut s = Server {
            child: Some(child),
            dir: dir.to_path_buf(),
            _tmp: None,
            id,
            kubeconfig: kubeconfig.clone(),
            url: String::new(),
            token: String::new(),
            ca_pem: String::new(),
            listen: listen.to_string(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        s.wait_ready(Duration::from_secs(30))?;
        Ok(s)
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.kubeconfig) {
                if text.contains("current-context") {
                    self.url = field(&text, "server:").context("server in kubeconfig")?;
                    self.token = field(&text, "token:").context("token in kubeconfig")?;
                    self.ca_pem = std::fs::read_to_string(self.dir.join("pki/ca.crt"))?;
                    return Ok(());
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("k1s server exited with {status} before serving:\n{}", self.log());
            }
            if start.elapsed() > timeout {
                bail!("k1s server did not serve within {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Run stock kubectl against this server (the newest on the machine, through its version dispatcher).
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join("kubectl-cache"))
            .args(args)
            .output()
            .expect("kubectl runs (this machine kind ships kubectl; install it to run the suite)")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of a manifest.
    pub fn apply(&self, manifest: &str) -> String {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join("kubectl-cache"))
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), manifest.as_bytes()).expect("write manifest");
        let out = child.wait_with_output().expect("kubectl apply");
        assert!(out.status.success(), "kubectl apply failed: {}\n{manifest}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An object as JSON, or None when kubectl cannot get it (absent).
    pub fn try_get_json(&self, what: &[&str]) -> Option<serde_json::Value> {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&args);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("kubectl -o json"))
    }

    /// An object as JSON (`kubectl get -o json`).
    pub fn get_json(&self, what: &[&str]) -> serde_json::Value {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&args)).expect("kubectl -o json")
    }

    /// Poll `f` until it returns Some, or fail with `what` and the server log.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > timeout {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("server.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// A kube client through the written kubeconfig, exactly as a user's program would connect.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(cfg)?)
    }

    /// A kube client that trusts the CA but presents no credentials.
    pub async fn anonymous_client(&self) -> anyhow::Result<kube::Client> {
        let mut kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        for a in kc.auth_infos.iter_mut() {
            a.auth_info = Some(Default::default());
        }
        let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(cfg)?)
    }

    /// `kill -9` the server (the whole process group) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let mut c = self.child.take().context("server not running")?;
        kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM)?;
        let start = Instant::now();
        loop {
            if let Some(st) = c.try_wait()? {
                return Ok(st);
            }
            if start.elapsed() > timeout {
                let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
                let _ = c.wait();
                bail!("k1s server did not exit within {timeout:?} of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Start again on the same data dir (and the same port when it was fixed).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        let port = self.url.rsplit(':').next().unwrap_or("0").to_string();
        let listen = format!("127.0.0.1:{port}");
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let mut next = Server::start_with(&self.dir, self.id.clone(), &listen, &extra)?;
        self.child = next.child.take();
        self.url = next.url.clone();
        self.token = next.token.clone();
        self.ca_pem = next.ca_pem.clone();
        Ok(())
    }
}

fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- k1s server log ({}) ---\n{}", self.dir.display(), self.log());
        }
        // Remove whatever the server created in the kernel and on disk.
        let _ = Command::new(binary())
            .args(["reset", "--data-dir"])
            .arg(&self.dir)
            .args(["--bridge", &self.id.bridge, "--cgroup-parent", &self.id.cgroup_parent])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Helpers the benchmark binaries share: percentiles, formatting, resident memory.
pub mod bench {
    use std::time::Duration;

    /// The `p` quantile (0..=1) of `v` (sorted in place), nearest rank.
    pub fn pct(v: &mut [Duration], p: f64) -> Duration {
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }

    pub fn ms(d: Duration) -> String {
        format!("{:.2} ms", d.as_secs_f64() * 1000.0)
    }

    /// utime + stime of a process in ms (0 when it is gone).
    pub fn cpu_ms(pid: u32) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state field; clock ticks are 100/s.
        let f: Vec<u64> = stat.rsplit(')').next().unwrap_or("").split_whitespace().filter_map(|x| x.parse().ok()).collect();
        (f.get(10).unwrap_or(&0) + f.get(11).unwrap_or(&0)) * 10
    }

    /// Pids of the shims of the server whose data dir is `dir` (`k1s shim <dir>/...`).
    pub fn shim_pids(dir: &std::path::Path) -> Vec<u32> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            if args.len() >= 3 && args[1] == b"shim" && args[2].starts_with(dir.as_os_str().as_encoded_bytes()) {
                out.push(pid);
            }
        }
        out
    }

    /// VmRSS of a process in KB (0 when it is gone).
    pub fn rss_kb(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
            .unwrap_or(0)
    }
}
