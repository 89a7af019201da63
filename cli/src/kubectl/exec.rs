//! `exec` (without a terminal): the command's stdout and stderr copied out, `-i` copies our stdin in, over the
//! WebSocket exec subresource through kube's `ws` client; a non-zero exit becomes kubectl's
//! `command terminated with exit code N` and that exit code.

use http::Method;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde_json::Value;

use super::{api, Ctx, Fail};

#[derive(clap::Args, Debug, Clone)]
pub struct ExecArgs {
    /// POD or TYPE/NAME.
    pub target: String,
    /// Container name (default: the kubectl.kubernetes.io/default-container annotation, else the first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY (TODO: a terminal, raw mode and resize are not done yet).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Only print output from the remote session.
    #[arg(short = 'q', long)]
    pub quiet: bool,
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

/// The container kubectl picks when none is named, and its `Defaulted container` notice.
pub fn default_container(pod: &Value, quiet: bool) -> String {
    let names: Vec<&str> =
        pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
    let annotated = pod.pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container").and_then(Value::as_str);
    let chosen = annotated.or(names.first().copied()).unwrap_or("").to_string();
    if names.len() > 1 && annotated.is_none() && !quiet {
        eprintln!("Defaulted container \"{chosen}\" out of: {}", names.join(", "));
    }
    chosen
}

pub async fn run(ctx: &Ctx, a: &ExecArgs) -> anyhow::Result<()> {
    if a.command.is_empty() {
        return Err(Fail::msg("error: you must specify at least one command for the container"));
    }
    if a.tty {
        return Err(Fail::msg("error: k1s exec -t (a terminal) is not implemented yet; use exec without -t"));
    }
    let pod_name = a.target.strip_prefix("pod/").or_else(|| a.target.strip_prefix("pods/")).unwrap_or(&a.target);
    let ns = &ctx.namespace;
    let pod = api::call(&ctx.client, Method::GET, &format!("/api/v1/namespaces/{ns}/pods/{pod_name}"), "application/json", None).await?;
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return Err(Fail::msg(format!("error: cannot exec into a container in a completed pod; current phase is {phase}")));
    }
    let container = a.container.clone().unwrap_or_else(|| default_container(&pod, a.quiet));
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let params = AttachParams::default().container(container).stdin(a.stdin).stdout(true).stderr(true).tty(false);
    let mut proc = pods.exec(pod_name, a.command.clone(), &params).await.map_err(|e| match e {
        kube::Error::Api(s) => api::ApiError { code: s.code, reason: s.reason.clone(), message: s.message.clone(), status: Value::Null }.into(),
        e => anyhow::Error::from(e),
    })?;
    let status = proc.take_status();
    let stdin_task = proc.stdin().map(|mut w| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut w).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut w).await;
        })
    });
    let out = proc.stdout().map(|mut r| tokio::spawn(async move { tokio::io::copy(&mut r, &mut tokio::io::stdout()).await }));
    let err = proc.stderr().map(|mut r| tokio::spawn(async move { tokio::io::copy(&mut r, &mut tokio::io::stderr()).await }));
    if let Some(t) = out {
        let _ = t.await;
    }
    if let Some(t) = err {
        let _ = t.await;
    }
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    if let Some(t) = stdin_task {
        t.abort();
    }
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
