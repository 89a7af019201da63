//! `exec`: the command's stdout and stderr copied out, `-i` copies our stdin in, `-it` puts our terminal in raw
//! mode and forwards its size (and every SIGWINCH), over the WebSocket exec subresource through kube's `ws`
//! client; a non-zero exit becomes kubectl's `command terminated with exit code N` and that exit code.

use http::Method;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde_json::Value;

use super::{api, Ctx, Fail};

/// The stream flags `exec` and `attach` share.
#[derive(clap::Args, Debug, Clone)]
pub struct StreamFlags {
    /// Container name (default: the kubectl.kubernetes.io/default-container annotation, else the first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY: the container gets a terminal, ours is put in raw mode (needs -i, as kubectl).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Only print output from the remote session.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExecArgs {
    /// POD or TYPE/NAME.
    pub target: String,
    #[command(flatten)]
    pub io: StreamFlags,
    /// The command and its arguments, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// A non-zero exit of the remote command: the process exits with its code.
#[derive(Debug)]
pub struct ExitCode(pub i32);

impl std::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "command terminated with exit code {}", self.0)
    }
}

impl std::error::Error for ExitCode {}

/// Copy our stdin into `proc` (closing its stdin at our EOF) and its stdout and stderr out, until both end.
pub async fn pipe(proc: &mut kube::api::AttachedProcess) {
    let stdin_task = proc.stdin().map(|mut w| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut w).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut w).await;
        })
    });
    let o = proc.stdout().map(|mut r| tokio::spawn(async move { tokio::io::copy(&mut r, &mut tokio::io::stdout()).await }));
    let e = proc.stderr().map(|mut r| tokio::spawn(async move { tokio::io::copy(&mut r, &mut tokio::io::stderr()).await }));
    for t in [o, e].into_iter().flatten() {
        let _ = t.await;
    }
    if let Some(t) = stdin_task {
        t.abort();
    }
}

/// Our terminal in raw mode (keys go through as typed, the remote terminal echoes), restored on drop.
pub struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    pub fn enter() -> anyhow::Result<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw)?;
        Ok(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &self.0);
    }
}

/// Our window size as `stty size` reports it for stdin (rows, columns). Asking stty keeps this crate free of
/// `unsafe` (TIOCGWINSZ has no safe wrapper in nix).
fn window_size() -> Option<kube::api::TerminalSize> {
    let out = std::process::Command::new("stty").arg("size").stdin(std::process::Stdio::inherit()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|n| n.parse::<u16>().ok());
    let (rows, cols) = (it.next()??, it.next()??);
    Some(kube::api::TerminalSize { width: cols, height: rows })
}

/// The size now, then again on every SIGWINCH, as kubectl's resize queue does.
pub async fn forward_window_size(sizes: futures::channel::mpsc::Sender<kube::api::TerminalSize>) {
    use futures::SinkExt as _;
    let mut sizes = sizes;
    let Ok(mut winch) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) else { return };
    loop {
        if let Some(s) = tokio::task::spawn_blocking(window_size).await.ok().flatten() {
            if sizes.send(s).await.is_err() {
                return;
            }
        }
        if winch.recv().await.is_none() {
            return;
        }
    }
}

/// The container kubectl picks when none is named (the `kubectl.kubernetes.io/default-container` annotation,
/// else the first), and its `Defaulted container` notice naming every container, ephemeral and init ones marked
/// (podcmd's `AllContainerNames`), whenever there is more than one to choose from.
pub fn default_container(pod: &Value, quiet: bool) -> String {
    let (chosen, notice) = default_container_notice(pod);
    if let Some(n) = notice.filter(|_| !quiet) {
        eprintln!("{n}");
    }
    chosen
}

/// [`default_container`]'s choice and the notice, for callers that print it elsewhere (`cp` prints it where
/// kubectl's exec streams go).
pub fn default_container_notice(pod: &Value) -> (String, Option<String>) {
    let names = |field: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{field}")).and_then(Value::as_array).into_iter().flatten().filter_map(|c| c["name"].as_str().map(String::from)).collect()
    };
    let (main, ephemeral, init) = (names("containers"), names("ephemeralContainers"), names("initContainers"));
    let annotated = pod.pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container").and_then(Value::as_str);
    let chosen = annotated.map(String::from).or(main.first().cloned()).unwrap_or_default();
    let mut notice = None;
    if annotated.is_none() && (main.len() > 1 || !ephemeral.is_empty() || !init.is_empty()) {
        let all: Vec<String> = main
            .iter()
            .cloned()
            .chain(ephemeral.iter().map(|n| format!("{n} (ephem)")))
            .chain(init.iter().map(|n| format!("{n} (init)")))
            .collect();
        notice = Some(format!("Defaulted container \"{chosen}\" out of: {}", all.join(", ")));
    }
    (chosen, notice)
}

pub async fn run(ctx: &Ctx, a: &ExecArgs) -> anyhow::Result<()> {
    if a.command.is_empty() {
        return Err(Fail::msg("error: you must specify at least one command for the container"));
    }
    let pod_name = a.target.strip_prefix("pod/").or_else(|| a.target.strip_prefix("pods/")).unwrap_or(&a.target);
    let ns = &ctx.namespace;
    let pod = api::call(&ctx.client, Method::GET, &format!("/api/v1/namespaces/{ns}/pods/{pod_name}"), "application/json", None).await?;
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return Err(Fail::msg(format!("error: cannot exec into a container in a completed pod; current phase is {phase}")));
    }
    let container = a.io.container.clone().unwrap_or_else(|| default_container(&pod, a.io.quiet));
    // kubectl's SetupTTY: -t without -i is silently no terminal; -it without a terminal on stdin says so.
    let mut tty = a.io.tty && a.io.stdin;
    if tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        tty = false;
        if !a.io.quiet {
            eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        }
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let params = AttachParams::default().container(container).stdin(a.io.stdin).stdout(true).stderr(!tty).tty(tty);
    let mut proc = pods.exec(pod_name, a.command.clone(), &params).await.map_err(|e| match e {
        kube::Error::Api(s) => api::ApiError { code: s.code, reason: s.reason.clone(), message: s.message.clone(), status: Value::Null }.into(),
        e => anyhow::Error::from(e),
    })?;
    let _raw = if tty { Some(RawMode::enter()?) } else { None };
    if tty {
        if let Some(sizes) = proc.terminal_size() {
            tokio::spawn(forward_window_size(sizes));
        }
    }
    let status = proc.take_status();
    pipe(&mut proc).await;
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    let _ = proc.join().await;
    let Some(status) = status else { return Ok(()) };
    if status.status.as_deref() == Some("Success") {
        return Ok(());
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.parse::<i32>().ok())
            .unwrap_or(1);
        return Err(ExitCode(code).into());
    }
    Err(Fail::msg(format!("error: {}", status.message.unwrap_or_default())))
}

/// kubectl's `AttachOptions.Run` once the Pod and container are chosen: the prompt hint, `SetupTTY` (a terminal
/// only with `-i` and when our stdin is one), then the container's stdio over the attach subresource, our
/// terminal raw for the session. Returns whether it was (kubectl's closing lines depend on it).
pub async fn attach_stdio(ctx: &Ctx, pod: &str, container: &str, stdin: bool, tty: bool, quiet: bool) -> anyhow::Result<bool> {
    if !quiet {
        eprintln!("If you don't see a command prompt, try pressing enter.");
    }
    let mut tty = tty && stdin;
    if tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        tty = false;
        if !quiet {
            eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        }
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    // The container's terminal carries its stderr too.
    let params = AttachParams::default().container(container).stdin(stdin).stdout(true).stderr(!tty).tty(tty);
    let mut proc = pods.attach(pod, &params).await?;
    let raw = if tty { Some(RawMode::enter()?) } else { None };
    if tty {
        if let Some(sizes) = proc.terminal_size() {
            tokio::spawn(forward_window_size(sizes));
        }
    }
    pipe(&mut proc).await;
    let _ = proc.join().await;
    drop(raw);
    Ok(tty)
}

#[derive(clap::Args, Debug, Clone)]
pub struct AttachArgs {
    /// POD or TYPE/NAME.
    pub target: Option<String>,
    #[command(flatten)]
    pub io: StreamFlags,
    /// Accepted for kubectl compatibility: how long to wait for a Pod to run (the Pod is read once).
    #[arg(long)]
    pub pod_running_timeout: Option<String>,
}

/// `attach POD|TYPE/NAME`: the container's running process's stdio (kubectl's `attach`): a completed Pod is
/// kubectl's error; `-t` to a container without a terminal is refused with its message, and a container with one
/// gets a terminal anyway; after a terminal session kubectl's resume hint.
pub async fn attach(ctx: &Ctx, a: &AttachArgs, out: &mut super::Out) -> anyhow::Result<()> {
    let Some(target) = &a.target else {
        return Err(Fail::msg("error: at least 1 argument is required for attach"));
    };
    let ns = &ctx.namespace;
    let pod = match target.split_once('/') {
        None => api::call(&ctx.client, Method::GET, &format!("/api/v1/namespaces/{ns}/pods/{target}"), "application/json", None).await?,
        Some((t, name)) => {
            let resources = ctx.resources().await?;
            let r = api::resolve(&resources, t).ok_or_else(|| Fail::msg(format!("error: the server doesn't have a resource type \"{t}\"")))?;
            let obj = api::call(&ctx.client, Method::GET, &r.item(Some(ns), name), "application/json", None).await?;
            if r.kind == "Pod" && r.group.is_empty() {
                obj
            } else {
                super::write::first_pod(ctx, &obj, false).await?
            }
        }
    };
    let name = k1s_api::meta::name(&pod).to_string();
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return Err(Fail::msg(format!("error: cannot attach a container in a completed pod; current phase is {phase}")));
    }
    let container = match &a.io.container {
        Some(c) => c.clone(),
        None => default_container(&pod, a.io.quiet),
    };
    let spec = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod["spec"].get(*k).and_then(Value::as_array).into_iter().flatten())
        .find(|c| c["name"] == container.as_str())
        .cloned()
        .ok_or_else(|| Fail::msg(format!("error: container {container} not found in pod {name}")))?;
    let has_tty = spec["tty"] == true;
    let mut tty = a.io.tty;
    if tty && !has_tty {
        tty = false;
        eprintln!("error: Unable to use a TTY - container {container} did not allocate one");
    } else if !tty && has_tty {
        // The container's output is a terminal's: read it as one.
        tty = true;
    }
    let raw = attach_stdio(ctx, &name, &container, a.io.stdin, tty, a.io.quiet).await?;
    let ephemeral = pod["spec"]["ephemeralContainers"].as_array().is_some_and(|cs| cs.iter().any(|c| c["name"] == container.as_str()));
    if !a.io.quiet && a.io.stdin && raw {
        if ephemeral {
            out.stdout(&format!("Session ended, the ephemeral container will not be restarted but may be reattached using 'kubectl attach {name} -c {container} -i -t' if it is still running\n"));
        } else if pod.pointer("/spec/restartPolicy").and_then(Value::as_str) == Some("Always") {
            out.stdout(&format!("Session ended, resume using 'kubectl attach {name} -c {container} -i -t' command when the pod is running\n"));
        }
    }
    Ok(())
}
