//! `port-forward`: listen on local ports (127.0.0.1 and ::1 by default, as kubectl) and carry each accepted
//! connection to the Pod's port over the WebSocket port-forward subresource (kube's `Portforwarder`).
//! That is the `v4.channel.k8s.io` WebSocket channel protocol, which the k1s server serves beside SPDY.

use http::Method;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::Value;
use tokio::net::TcpListener;

use super::{api, Ctx, Fail, Out};

#[derive(clap::Args, Debug, Clone)]
pub struct PortForwardArgs {
    /// POD or TYPE/NAME, then [LOCAL_PORT:]REMOTE_PORT…
    pub args: Vec<String>,
    /// Addresses to listen on (comma separated): localhost = 127.0.0.1 and ::1.
    #[arg(long, default_value = "localhost")]
    pub address: String,
}

/// `8080:80` → (8080, 80); `80` → (80, 80); `:80` → (0 = any free port, 80).
fn parse_port(spec: &str) -> anyhow::Result<(u16, u16)> {
    let bad = || Fail::msg(format!("error: Error parsing local port '{spec}': it must be a number"));
    match spec.split_once(':') {
        Some((l, r)) => Ok((if l.is_empty() { 0 } else { l.parse().map_err(|_| bad())? }, r.parse().map_err(|_| bad())?)),
        None => {
            let p = spec.parse().map_err(|_| bad())?;
            Ok((p, p))
        }
    }
}

pub async fn run(ctx: &Ctx, a: &PortForwardArgs, out: &mut Out) -> anyhow::Result<()> {
    if a.args.len() < 2 {
        return Err(Fail::msg("error: TYPE/NAME and list of ports are required for port-forward\nSee 'kubectl port-forward -h' for help and examples"));
    }
    let target = &a.args[0];
    let name = target.strip_prefix("pod/").or_else(|| target.strip_prefix("pods/")).unwrap_or(target).to_string();
    let ns = ctx.namespace.clone();
    let pod = api::call(&ctx.client, Method::GET, &format!("/api/v1/namespaces/{ns}/pods/{name}"), "application/json", None).await?;
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if phase != "Running" {
        return Err(Fail::msg(format!("error: unable to forward port because pod is not running. Current status={phase}")));
    }
    let addresses: Vec<String> = a
        .address
        .split(',')
        .flat_map(|x| if x == "localhost" { vec!["127.0.0.1".to_string(), "::1".to_string()] } else { vec![x.to_string()] })
        .collect();
    let mut tasks = Vec::new();
    for spec in &a.args[1..] {
        let (local, remote) = parse_port(spec)?;
        let mut port = local;
        for addr in &addresses {
            let listener = match TcpListener::bind((addr.as_str(), port)).await {
                Ok(l) => l,
                // kubectl carries on when one of localhost's two addresses cannot be bound (no IPv6).
                Err(_) if a.address == "localhost" && addr == "::1" => continue,
                Err(e) => return Err(Fail::msg(format!("error: unable to listen on port {port}: {e}"))),
            };
            port = listener.local_addr()?.port();
            let shown = if addr.contains(':') { format!("[{addr}]") } else { addr.clone() };
            out.stdout(&format!("Forwarding from {shown}:{port} -> {remote}\n"));
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else { return };
                    println!("Handling connection for {port}");
                    let pods = pods.clone();
                    let name = name.clone();
                    tokio::spawn(async move {
                        let mut pf = match pods.portforward(&name, &[remote]).await {
                            Ok(pf) => pf,
                            Err(e) => {
                                let why = match &e {
                                    kube::Error::Api(s) => s.message.clone(),
                                    e => e.to_string(),
                                };
                                eprintln!("error: an error occurred forwarding {port} -> {remote}: {why}");
                                return;
                            }
                        };
                        let Some(mut upstream) = pf.take_stream(remote) else { return };
                        let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                        drop(upstream);
                        let _ = pf.join().await;
                    });
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
