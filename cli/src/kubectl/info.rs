//! `version`, `cluster-info` and `api-resources`: what the server is and what it serves.

use http::Method;
use serde_json::Value;

use super::{api, config, Ctx, Out};

#[derive(clap::Args, Debug, Clone)]
pub struct VersionArgs {
    /// Client version only (no server required).
    #[arg(long)]
    pub client: bool,
    /// One of 'yaml' or 'json'.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// The client line: k1s speaks the Kubernetes version its server serves.
pub fn client_version() -> String {
    format!("v1.33.0+k1s-{}", env!("CARGO_PKG_VERSION"))
}

pub async fn version(global: &config::Global, a: &VersionArgs, out: &mut Out) -> anyhow::Result<()> {
    // kubectl makes its discovery client (which parses `--request-timeout`) before printing anything.
    if !a.client {
        config::request_timeout(global)?;
    }
    out.stdout(&format!("Client Version: {}\n", client_version()));
    if a.client {
        return Ok(());
    }
    let cluster = config::connect(global).await?;
    let v = api::call(&cluster.client, Method::GET, "/version?timeout=32s", "application/json", None).await?;
    out.stdout(&format!("Server Version: {}\n", v.get("gitVersion").and_then(Value::as_str).unwrap_or("")));
    Ok(())
}

pub async fn cluster_info(ctx: &Ctx, out: &mut Out) -> anyhow::Result<()> {
    let services = api::call(
        &ctx.client,
        Method::GET,
        "/api/v1/namespaces/kube-system/services?labelSelector=kubernetes.io%2Fcluster-service%3Dtrue",
        "application/json",
        None,
    )
    .await?;
    // kubectl colours the names (green) and URLs (yellow) only on a terminal.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (g, y, z) = if tty { ("\x1b[0;32m", "\x1b[0;33m", "\x1b[0m") } else { ("", "", "") };
    out.stdout(&format!("{g}Kubernetes control plane{z} is running at {y}{}{z}\n", ctx.server_url));
    for s in services.get("items").and_then(Value::as_array).into_iter().flatten() {
        let name = k1s_api::meta::name(s);
        let url = format!("{}/api/v1/namespaces/kube-system/services/{name}/proxy", ctx.server_url);
        out.stdout(&format!("{g}{name}{z} is running at {y}{url}{z}\n"));
    }
    out.stdout("\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n");
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct ApiResourcesArgs {
    /// Output format: wide or name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// If false, non-namespaced resources will be returned, otherwise returning namespaced resources by default.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Limit to resources in the specified API group.
    #[arg(long)]
    pub api_group: Option<String>,
    /// When using the default or custom-column output format, don't print headers.
    #[arg(long)]
    pub no_headers: bool,
}

pub async fn api_resources(ctx: &Ctx, a: &ApiResourcesArgs, out: &mut Out) -> anyhow::Result<()> {
    let mut rs = ctx.resources().await?;
    rs.retain(|r| a.namespaced.is_none_or(|n| r.namespaced == n) && a.api_group.as_ref().is_none_or(|g| &r.group == g));
    // kubectl's default order (`sortableResource`): by group, then by name.
    rs.sort_by(|x, y| (&x.group, &x.name).cmp(&(&y.group, &y.name)));
    let wide = a.output.as_deref() == Some("wide");
    if a.output.as_deref() == Some("name") {
        for r in &rs {
            out.stdout(&format!("{}\n", r.resource_group()));
        }
        return Ok(());
    }
    let mut grid = Vec::new();
    if !a.no_headers {
        let mut h: Vec<String> = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"].map(String::from).to_vec();
        if wide {
            h.extend(["VERBS", "CATEGORIES"].map(String::from));
        }
        grid.push(h);
    }
    for r in &rs {
        let mut row = vec![r.name.clone(), r.short_names.join(","), r.api_version(), r.namespaced.to_string(), r.kind.clone()];
        if wide {
            // kubectl prints the verbs as a sorted set.
            let mut verbs = r.verbs.clone();
            verbs.sort();
            verbs.dedup();
            row.push(verbs.join(","));
            row.push(r.categories.join(","));
        }
        grid.push(row);
    }
    out.stdout(&super::printers::tabwrite(&grid));
    Ok(())
}
