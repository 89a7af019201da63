//! `debug POD`: add an ephemeral container (a strategic merge patch of the `ephemeralcontainers` subresource, as
//! kubectl sends it) with kubectl's profiles, and with `-i` attach to it once it runs. `debug node/NAME`: create
//! kubectl 1.33's node debugging Pod (`node-debugger-<node>-<5 random>`, its profile's host namespaces and root
//! mount, every taint tolerated) and with `-i` attach to it.
//!
//! TODO: `--copy-to` (a copy of the Pod with the debug container).

use std::time::Duration;

use http::Method;
use serde_json::{json, Value};

use super::{api, Ctx, Fail, Out};

#[derive(clap::Args, Debug, Clone)]
pub struct DebugArgs {
    /// POD or pod/POD.
    pub target: String,
    /// Container image to use for the debug container.
    #[arg(long)]
    pub image: String,
    /// Container name for the debug container (default: debugger-XXXXX).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// The container in the Pod whose process namespace to share.
    #[arg(long)]
    pub target_container: Option<String>,
    /// Keep stdin open on the container and attach to it.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a TTY for the debug container (with -i: our terminal in raw mode, its size forwarded).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Debugging profile: legacy, general, baseline, netadmin, restricted, sysadmin.
    #[arg(long, default_value = "legacy")]
    pub profile: String,
    /// The command (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// kubectl's `--target` is the flag name; clap keeps `target` for the Pod argument.
pub fn normalise_args(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some("--target") => "--target-container".into(),
            Some(s) if s.starts_with("--target=") => format!("--target-container={}", &s["--target=".len()..]).into(),
            _ => a,
        })
        .collect()
}

/// kubectl's generated name: `prefix` and five characters of its random alphabet (no vowels, no look-alikes).
fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0) ^ u128::from(std::process::id());
    let mut x = seed as u64 | 1;
    let mut s = String::from(prefix);
    for _ in 0..5 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
    }
    s
}

pub async fn run(ctx: &Ctx, a: &DebugArgs, out: &mut Out) -> anyhow::Result<()> {
    let security = match a.profile.as_str() {
        "legacy" => {
            eprintln!("--profile=legacy is deprecated and will be removed in the future. It is recommended to explicitly specify a profile, for example \"--profile=general\".");
            None
        }
        "general" => Some(json!({"capabilities": {"add": ["SYS_PTRACE"]}})),
        "baseline" => None,
        "netadmin" => Some(json!({"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}})),
        "sysadmin" => Some(json!({"privileged": true})),
        "restricted" => Some(json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})),
        p => return Err(Fail::msg(format!("error: unknown profile: {p}"))),
    };
    if let Some(node) = a.target.strip_prefix("node/").or_else(|| a.target.strip_prefix("nodes/")) {
        return run_node(ctx, a, node, security, out).await;
    }
    let pod = a.target.strip_prefix("pod/").or_else(|| a.target.strip_prefix("pods/")).unwrap_or(&a.target);
    let ns = &ctx.namespace;
    let item = format!("/api/v1/namespaces/{ns}/pods/{pod}");
    api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
    let name = match &a.container {
        Some(n) => n.clone(),
        None => {
            let n = generated_name("debugger-");
            eprintln!("Defaulting debug container name to {n}.");
            n
        }
    };
    let mut c = container_spec(a, &name);
    if let Some(t) = &a.target_container {
        c["targetContainerName"] = json!(t);
    }
    if let Some(sc) = security {
        c["securityContext"] = sc;
    }
    let patch = json!({"spec": {"ephemeralContainers": [c]}});
    api::call(
        &ctx.client,
        Method::PATCH,
        &format!("{item}/ephemeralcontainers"),
        "application/json",
        Some(("application/strategic-merge-patch+json", serde_json::to_vec(&patch)?)),
    )
    .await?;
    if let Some(t) = &a.target_container {
        out.stdout(&format!(
            "Targeting container \"{t}\". If you don't see processes from this container it may be because the container runtime doesn't support this feature.\n"
        ));
    }
    if !a.stdin {
        return Ok(());
    }
    // Attach once the ephemeral container runs (or has already ended).
    loop {
        let p = api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
        let st = p
            .pointer("/status/ephemeralContainerStatuses")
            .and_then(Value::as_array)
            .and_then(|v| v.iter().find(|s| s["name"] == name.as_str()).cloned());
        if st.as_ref().is_some_and(|s| s.pointer("/state/running").is_some() || s.pointer("/state/terminated").is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    attach(ctx, pod, &name, a.tty, true, out).await
}

/// kubectl 1.33's node debugging Pod: the profile decides the host namespaces (legacy, general, netadmin,
/// sysadmin) and the node's root filesystem at `/host` (legacy, general, sysadmin); the Pod is pinned to the
/// node, never restarted and tolerates every taint. With `-i`, attach once its container runs.
/// The debug container as kubectl writes it: image, command, stdin and tty from the flags.
fn container_spec(a: &DebugArgs, name: &str) -> Value {
    let mut c = json!({"name": name, "image": a.image, "resources": {}, "terminationMessagePolicy": "File"});
    if !a.command.is_empty() {
        c["command"] = json!(a.command);
    }
    if a.stdin {
        c["stdin"] = json!(true);
    }
    if a.tty {
        c["tty"] = json!(true);
    }
    c
}

async fn run_node(ctx: &Ctx, a: &DebugArgs, node: &str, security: Option<Value>, out: &mut Out) -> anyhow::Result<()> {
    api::call(&ctx.client, Method::GET, &format!("/api/v1/nodes/{node}"), "application/json", None).await?;
    let pod = generated_name(&format!("node-debugger-{node}-"));
    let container = a.container.clone().unwrap_or_else(|| "debugger".to_string());
    let mut c = container_spec(a, &container);
    // kubectl's general profile clears the container's security context on a node (the host namespaces suffice).
    if let Some(sc) = security.filter(|_| a.profile != "general") {
        c["securityContext"] = sc;
    }
    let host_namespaces = matches!(a.profile.as_str(), "legacy" | "general" | "netadmin" | "sysadmin");
    let root_mount = matches!(a.profile.as_str(), "legacy" | "general" | "sysadmin");
    let mut spec = json!({"containers": [], "nodeName": node, "restartPolicy": "Never", "tolerations": [{"operator": "Exists"}]});
    if root_mount {
        c["volumeMounts"] = json!([{"mountPath": "/host", "name": "host-root"}]);
        spec["volumes"] = json!([{"hostPath": {"path": "/"}, "name": "host-root"}]);
    }
    if host_namespaces {
        spec["hostIPC"] = json!(true);
        spec["hostNetwork"] = json!(true);
        spec["hostPID"] = json!(true);
    }
    spec["containers"] = json!([c]);
    let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "spec": spec});
    out.stdout(&format!("Creating debugging pod {pod} with container {container} on node {node}.\n"));
    let ns = &ctx.namespace;
    api::call(&ctx.client, Method::POST, &format!("/api/v1/namespaces/{ns}/pods"), "application/json", Some(("application/json", serde_json::to_vec(&body)?)))
        .await?;
    if !a.stdin {
        return Ok(());
    }
    let item = format!("/api/v1/namespaces/{ns}/pods/{pod}");
    loop {
        let p = api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
        let st = p
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .and_then(|v| v.iter().find(|s| s["name"] == container.as_str()).cloned());
        let done = matches!(p.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
        if done || st.as_ref().is_some_and(|s| s.pointer("/state/running").is_some() || s.pointer("/state/terminated").is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    attach(ctx, &pod, &container, a.tty, false, out).await
}

/// Attach to a debug container as kubectl's `attach` does; the reattach hint only for an ephemeral container (a
/// node debugging Pod never restarts: kubectl prints nothing after it).
async fn attach(ctx: &Ctx, pod: &str, name: &str, tty: bool, ephemeral: bool, out: &mut Out) -> anyhow::Result<()> {
    let ns = &ctx.namespace;
    eprintln!("If you don't see a command prompt, try pressing enter.");
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    // kubectl's SetupTTY: a terminal only when our stdin is one; the container's terminal carries stderr too.
    let mut tty = tty;
    if tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        tty = false;
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    let params = AttachParams::default().container(name).stdin(true).stdout(true).stderr(!tty).tty(tty);
    let mut proc = pods.attach(pod, &params).await?;
    let raw = if tty { Some(super::exec::RawMode::enter()?) } else { None };
    if tty {
        if let Some(sizes) = proc.terminal_size() {
            tokio::spawn(super::exec::forward_window_size(sizes));
        }
    }
    super::exec::pipe(&mut proc).await;
    let _ = proc.join().await;
    drop(raw);
    if tty && ephemeral {
        out.stdout(&format!("Session ended, the ephemeral container will not be restarted but may be reattached using 'kubectl attach {pod} -c {name} -i -t' if it is still running\n"));
    }
    Ok(())
}
