//! `cp`: files and directories to and from a container as kubectl does it, a tar stream over exec (`tar cf -`
//! in the container to copy out, `tar -xmf - -C DIR` to copy in); the container needs `tar`.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Ctx, Fail, Out};

#[derive(clap::Args, Debug, Clone)]
pub struct CpArgs {
    /// SRC: a local path or [NAMESPACE/]POD:PATH.
    pub src: String,
    /// DEST: a local path or [NAMESPACE/]POD:PATH.
    pub dest: String,
    /// Container name (default: the first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// The copied file/directory's ownership and permissions will not be preserved in the container.
    #[arg(long)]
    pub no_preserve: bool,
}

/// `[ns/]pod:path` → (namespace, pod, path); a local path → None.
fn remote(spec: &str) -> Option<(Option<String>, String, String)> {
    let (pod, path) = spec.split_once(':')?;
    if pod.is_empty() || pod.contains(std::path::MAIN_SEPARATOR) && !pod.contains('/') {
        return None;
    }
    match pod.split_once('/') {
        Some((ns, p)) => Some((Some(ns.to_string()), p.to_string(), path.to_string())),
        None => Some((None, pod.to_string(), path.to_string())),
    }
}

/// Where the remote command's stderr goes: kubectl's tar pipe for copying out sends it to standard output.
#[derive(Clone, Copy)]
enum ErrTo {
    Stdout,
    Stderr,
}

/// Run `cmd` in the container with `input` on stdin; stdout returned, stderr passed through; whether it exited 0.
async fn exec(
    ctx: &Ctx,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    cmd: Vec<String>,
    input: Option<Vec<u8>>,
    err_to: ErrTo,
) -> anyhow::Result<(Vec<u8>, bool)> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut params = AttachParams::default().stdin(input.is_some()).stdout(true).stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let mut proc = pods.exec(pod, cmd, &params).await.map_err(|e| match e {
        kube::Error::Api(s) => super::api::ApiError { code: s.code, reason: s.reason.clone(), message: s.message.clone(), status: serde_json::Value::Null }.into(),
        e => anyhow::Error::from(e),
    })?;
    let status = proc.take_status();
    if let (Some(mut w), Some(data)) = (proc.stdin(), input) {
        tokio::spawn(async move {
            let _ = w.write_all(&data).await;
            let _ = w.shutdown().await;
        });
    }
    let err = proc.stderr().map(|mut r| {
        tokio::spawn(async move {
            match err_to {
                ErrTo::Stdout => tokio::io::copy(&mut r, &mut tokio::io::stdout()).await,
                ErrTo::Stderr => tokio::io::copy(&mut r, &mut tokio::io::stderr()).await,
            }
        })
    });
    let mut out = Vec::new();
    if let Some(mut r) = proc.stdout() {
        r.read_to_end(&mut out).await?;
    }
    if let Some(t) = err {
        let _ = t.await;
    }
    let ok = match status {
        Some(s) => s.await.is_none_or(|s| s.status.as_deref() == Some("Success")),
        None => true,
    };
    let _ = proc.join().await;
    Ok((out, ok))
}

/// The container to copy with: `-c`, else kubectl's default, announced on stdout (copying out: kubectl's tar
/// pipe sends its exec's messages there) or stderr (copying in).
async fn container(ctx: &Ctx, ns: &str, pod: &str, a: &CpArgs, to: ErrTo, out: &mut Out) -> anyhow::Result<String> {
    if let Some(c) = &a.container {
        return Ok(c.clone());
    }
    let obj = super::api::call(&ctx.client, http::Method::GET, &format!("/api/v1/namespaces/{ns}/pods/{pod}"), "application/json", None).await?;
    let (chosen, notice) = super::exec::default_container_notice(&obj);
    if let Some(n) = notice {
        match to {
            ErrTo::Stdout => out.stdout(&format!("{n}\n")),
            ErrTo::Stderr => eprintln!("{n}"),
        }
    }
    Ok(chosen)
}

pub async fn run(ctx: &Ctx, a: &CpArgs, out: &mut Out) -> anyhow::Result<()> {
    match (remote(&a.src), remote(&a.dest)) {
        (Some((ns, pod, path)), None) => {
            let ns = ns.unwrap_or_else(|| ctx.namespace.clone());
            let c = container(ctx, &ns, &pod, a, ErrTo::Stdout, out).await?;
            let (tar, _) = exec(ctx, &ns, &pod, Some(&c), vec!["tar".into(), "cf".into(), "-".into(), path.clone()], None, ErrTo::Stdout).await?;
            // The archive names the path without its leading '/': strip that prefix, as kubectl's untarAll.
            let prefix = path.trim_start_matches('/').trim_end_matches('/').to_string();
            let dest = Path::new(&a.dest);
            let mut archive = tar::Archive::new(&tar[..]);
            for entry in archive.entries()? {
                let mut entry = entry?;
                let name = entry.path()?.to_string_lossy().trim_end_matches('/').to_string();
                let rest = name.strip_prefix(&prefix).ok_or_else(|| Fail::msg("error: tar contents corrupted"))?;
                let target = if rest.is_empty() { dest.to_path_buf() } else { dest.join(rest.trim_start_matches('/')) };
                if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                entry.unpack(&target)?;
            }
            Ok(())
        }
        (None, Some((ns, pod, path))) => {
            let ns = ns.unwrap_or_else(|| ctx.namespace.clone());
            let src = Path::new(&a.src);
            if !src.exists() {
                return Err(Fail::msg(format!("error: {} doesn't exist in local filesystem", a.src)));
            }
            let c = container(ctx, &ns, &pod, a, ErrTo::Stderr, out).await?;
            // Into an existing directory, the file keeps its name (kubectl asks the container with `test -d`).
            let (_, is_dir) = exec(ctx, &ns, &pod, Some(&c), vec!["test".into(), "-d".into(), path.clone()], None, ErrTo::Stderr).await?;
            let base = src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let dest = if is_dir { format!("{}/{base}", path.trim_end_matches('/')) } else { path.clone() };
            let (dir, name) = match dest.rsplit_once('/') {
                Some(("", n)) => ("/".to_string(), n.to_string()),
                Some((d, n)) => (d.to_string(), n.to_string()),
                None => (String::new(), dest.clone()),
            };
            let mut builder = tar::Builder::new(Vec::new());
            if src.is_dir() {
                builder.append_dir_all(&name, src)?;
            } else {
                builder.append_path_with_name(src, &name)?;
            }
            let data = builder.into_inner()?;
            let mut cmd: Vec<String> = vec!["tar".into(), "-xmf".into(), "-".into()];
            if a.no_preserve {
                cmd.extend(["--no-same-permissions".into(), "--no-same-owner".into()]);
            }
            if !dir.is_empty() {
                cmd.extend(["-C".into(), dir]);
            }
            let (_, ok) = exec(ctx, &ns, &pod, Some(&c), cmd, Some(data), ErrTo::Stderr).await?;
            if !ok {
                return Err(Fail::msg("error: command terminated with non-zero exit code"));
            }
            Ok(())
        }
        _ => Err(Fail::msg("error: one of src or dest must be a local file specification")),
    }
}
