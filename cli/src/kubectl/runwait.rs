//! `run` (a Pod from an image, kubectl's generator) and `wait` (`--for=condition=…|delete|jsonpath=…`), the verbs
//! of the "start something, wait until it is there" loop in the Kubernetes docs.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{json, Value};

use super::api::{self, ApiError};
use super::{Ctx, Fail, Out};

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    pub name: String,
    /// The image for the container to run.
    #[arg(long)]
    pub image: String,
    /// The restart policy for this Pod: Always, OnFailure, Never.
    #[arg(long, default_value = "Always")]
    pub restart: String,
    /// Environment variables to set in the container (K=V).
    #[arg(long)]
    pub env: Vec<String>,
    /// Comma separated labels to apply to the pod (replaces run=NAME).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// The words after `--` are the command, not the arguments.
    #[arg(long)]
    pub command: bool,
    /// The port the container exposes.
    #[arg(long)]
    pub port: Option<i32>,
    /// Keep stdin open on the container and attach to it (the Pod's `stdin`, `stdinOnce`).
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a TTY for the container (with -i: our terminal in raw mode, its size forwarded).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Delete the Pod after it exits (only with -i).
    #[arg(long)]
    pub rm: bool,
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub async fn run(ctx: &Ctx, a: &RunArgs, out: &mut Out) -> anyhow::Result<()> {
    if a.tty && !a.stdin {
        return Err(Fail::msg("error: -i/--stdin is required for containers with -t/--tty=true\nSee 'kubectl run -h' for help and examples"));
    }
    if a.rm && !a.stdin {
        return Err(Fail::msg("error: --rm should only be used for attached containers"));
    }
    if !matches!(a.restart.as_str(), "Always" | "OnFailure" | "Never") {
        return Err(Fail::msg(format!("error: invalid restart policy: {}", a.restart)));
    }
    let mut labels = serde_json::Map::new();
    match &a.labels {
        Some(l) => {
            for kv in l.split(',').filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once('=').ok_or_else(|| Fail::msg(format!("error: invalid label spec: {kv}")))?;
                labels.insert(k.into(), json!(v));
            }
        }
        None => {
            labels.insert("run".into(), json!(a.name));
        }
    }
    let mut c = json!({"name": a.name, "image": a.image, "resources": {}});
    if !a.args.is_empty() {
        c[if a.command { "command" } else { "args" }] = json!(a.args);
    }
    if !a.env.is_empty() {
        let env: Vec<Value> = a
            .env
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                json!({"name": k, "value": v})
            })
            .collect();
        c["env"] = json!(env);
    }
    if let Some(p) = a.port {
        c["ports"] = json!([{"containerPort": p}]);
    }
    if a.stdin {
        c["stdin"] = json!(true);
        c["stdinOnce"] = json!(true);
    }
    if a.tty {
        c["tty"] = json!(true);
    }
    let pod = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": a.name, "labels": labels},
        "spec": {"containers": [c], "restartPolicy": a.restart, "dnsPolicy": "ClusterFirst"}, "status": {}});
    let url = format!("/api/v1/namespaces/{}/pods?fieldManager=kubectl-run", ctx.namespace);
    api::call(&ctx.client, Method::POST, &url, "application/json", Some(("application/json", serde_json::to_vec(&pod)?))).await?;
    if !a.stdin {
        out.stdout(&format!("pod/{} created\n", a.name));
        return Ok(());
    }
    attach_and_finish(ctx, a, out).await
}

/// `run -i`: wait until the Pod runs and is ready (or already ended), attach to its stdio, wait for the end,
/// then `--rm` deletes it; a failed container is kubectl's `pod NS/NAME terminated (REASON)` and its exit code.
async fn attach_and_finish(ctx: &Ctx, a: &RunArgs, out: &mut Out) -> anyhow::Result<()> {
    let ns = &ctx.namespace;
    let item = format!("/api/v1/namespaces/{ns}/pods/{}", a.name);
    let phase = |p: &Value| p.pointer("/status/phase").and_then(Value::as_str).unwrap_or("").to_string();
    let ready = |p: &Value| {
        p.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    loop {
        let p = api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
        let ph = phase(&p);
        if (ph == "Running" && ready(&p)) || ph == "Succeeded" || ph == "Failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An attach that fails (the container already gone) still reports the container's end below.
    let _ = super::exec::attach_stdio(ctx, &a.name, &a.name, true, a.tty, false).await;
    // The container's end, as kubectl reads it: phase, then the first container's terminated state.
    let pod = loop {
        let p = api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
        let ph = phase(&p);
        if ph == "Succeeded" || ph == "Failed" || a.restart == "Always" {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if a.rm {
        let body = serde_json::to_vec(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}))?;
        api::call(&ctx.client, Method::DELETE, &item, "application/json", Some(("application/json", body))).await?;
        out.stdout(&format!("pod \"{}\" deleted\n", a.name));
    }
    let term = pod.pointer("/status/containerStatuses/0/state/terminated");
    let code = term.and_then(|t| t.get("exitCode")).and_then(Value::as_i64).unwrap_or(0) as i32;
    if phase(&pod) == "Failed" || code != 0 {
        let reason = term.and_then(|t| t.get("reason")).and_then(Value::as_str).unwrap_or("Error");
        eprintln!("pod {ns}/{} terminated ({reason})", a.name);
        return Err(super::Silent(if code == 0 { 1 } else { code }).into());
    }
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct WaitArgs {
    /// TYPE/NAME… or TYPE NAME…
    pub args: Vec<String>,
    /// The condition: delete, condition=NAME[=VALUE], jsonpath={…}=VALUE.
    #[arg(long = "for")]
    pub for_: String,
    /// How long to wait (kubectl's duration: 30s, 1m, 2h; 0 checks once).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Select all resources in the namespace of the specified resource types.
    #[arg(long)]
    pub all: bool,
}

/// Go's `time.ParseDuration` for the forms kubectl users type: `30s`, `1m30s`, `500ms`, `2h`, a bare `0`.
fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let v: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += v * mult;
        rest = &rest[u..];
    }
    Some(Duration::from_secs_f64(total))
}

enum For {
    Delete,
    Condition(String, String),
    JsonPath(String, Option<String>),
}

fn parse_for(s: &str) -> anyhow::Result<For> {
    if s == "delete" {
        return Ok(For::Delete);
    }
    if let Some(c) = s.strip_prefix("condition=") {
        let (name, value) = c.split_once('=').unwrap_or((c, "true"));
        return Ok(For::Condition(name.to_string(), value.to_string()));
    }
    if let Some(j) = s.strip_prefix("jsonpath=") {
        // `{.status.phase}=Running`: the value follows the closing brace.
        return Ok(match j.rfind('}') {
            Some(i) if j[i + 1..].starts_with('=') => For::JsonPath(j[..=i].to_string(), Some(j[i + 2..].to_string())),
            _ => For::JsonPath(j.to_string(), None),
        });
    }
    Err(Fail::msg(format!("error: unrecognized condition: \"{s}\"")))
}

fn met(f: &For, obj: &Value) -> bool {
    match f {
        For::Delete => false,
        For::Condition(name, value) => obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(name))
                    && c["status"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(value))
            }),
        For::JsonPath(path, value) => {
            let got = super::printers::jsonpath(path, obj).unwrap_or_default();
            match value {
                Some(v) => &got == v,
                None => !got.is_empty(),
            }
        }
    }
}

pub async fn wait(ctx: &Ctx, a: &WaitArgs, out: &mut Out) -> anyhow::Result<()> {
    let f = parse_for(&a.for_)?;
    let timeout = parse_duration(&a.timeout).ok_or_else(|| Fail::msg(format!("error: invalid argument \"{}\" for \"--timeout\" flag", a.timeout)))?;
    let resources = ctx.resources().await?;
    let reqs = super::get::requests(&resources, &a.args)?;
    let targets = super::get::targets(ctx, &reqs, a.selector.as_deref()).await?;
    if targets.is_empty() {
        return Err(Fail::msg("error: no matching resources found"));
    }
    let deadline = Instant::now() + timeout;
    for (r, name) in targets {
        let ns = if r.namespaced { Some(ctx.namespace.as_str()) } else { None };
        let item = r.item(ns, &name);
        let mut first = true;
        loop {
            match api::call(&ctx.client, Method::GET, &item, "application/json", None).await {
                Err(e) if e.downcast_ref::<ApiError>().is_some_and(|x| x.code == 404) => {
                    if matches!(f, For::Delete) {
                        // Gone before we looked: kubectl says nothing; gone while we waited: condition met.
                        if !first {
                            out.stdout(&format!("{}/{name} condition met\n", r.kind_group()));
                        }
                        break;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
                Ok(obj) if met(&f, &obj) => {
                    out.stdout(&format!("{}/{name} condition met\n", r.kind_group()));
                    break;
                }
                Ok(_) => {}
            }
            first = false;
            if Instant::now() >= deadline {
                return Err(Fail::msg(format!("error: timed out waiting for the condition on {}/{name}", r.resource_group())));
            }
            tokio::time::sleep(Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_parses_them() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("x"), None);
    }
}
