//! Which cluster the kubectl verbs talk to: the kubeconfig in kubectl's order (`--kubeconfig`, `$KUBECONFIG`,
//! `~/.kube/config`), then the local server's `<default data dir>/kubeconfig.yaml`, so that `k1s get pods` works
//! on the server's own box with no setup.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The global flags every verb takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Global {
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// If present, the namespace scope for this CLI request.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Accepted for kubectl compatibility: k1s keeps no discovery cache on disk.
    #[arg(long = "cache-dir", global = true, hide = true)]
    pub cache_dir: Option<PathBuf>,
    /// Accepted for kubectl compatibility (log verbosity); k1s logs nothing extra.
    #[arg(short = 'v', long = "v", global = true, hide = true)]
    pub verbosity: Option<u32>,
}

/// The kubeconfig files in kubectl's precedence order; `$KUBECONFIG` may list several (merged, first wins).
pub fn kubeconfig_paths(global: &Global, data_dir: &Path) -> Vec<PathBuf> {
    if let Some(p) = &global.kubeconfig {
        return vec![p.clone()];
    }
    if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let paths: Vec<PathBuf> = std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()).collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".kube/config");
        if p.exists() {
            return vec![p];
        }
    }
    vec![data_dir.join("kubeconfig.yaml")]
}

/// A connected client plus what the verbs need from the kubeconfig.
pub struct Cluster {
    pub client: kube::Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// The server URL as the kubeconfig names it (`cluster-info` prints it).
    pub server_url: String,
}

pub async fn connect(global: &Global) -> anyhow::Result<Cluster> {
    let paths = kubeconfig_paths(global, Path::new(crate::DEFAULT_DATA_DIR));
    let mut merged: Option<Kubeconfig> = None;
    for p in &paths {
        // `$KUBECONFIG` entries that do not exist are skipped, as kubectl does; an explicit file must exist.
        if global.kubeconfig.is_none() && !p.exists() && paths.len() > 1 {
            continue;
        }
        // kubectl's wording: a missing file is a failed stat, an unreadable one a failed load.
        if !p.exists() {
            return Err(super::Fail::msg(format!("error: stat {}: no such file or directory", p.display())));
        }
        let kc = Kubeconfig::read_from(p)
            .map_err(|e| super::Fail::msg(format!("error: error loading config file \"{}\": {}", p.display(), std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string()))))?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m.merge(kc)?,
        });
    }
    let kc = merged.context("no kubeconfig found")?;
    if let Some(ctx) = &global.context {
        if !kc.contexts.iter().any(|c| &c.name == ctx) {
            return Err(super::Fail::msg(format!("Error in configuration: context was not found for specified context: {ctx}")));
        }
    }
    let opts = KubeConfigOptions { context: global.context.clone(), cluster: None, user: None };
    let mut config = kube::Config::from_custom_kubeconfig(kc, &opts).await?;
    // kubectl's own client timeout is none; kube's default read timeout would cut `logs -f` and `get -w`.
    config.read_timeout = None;
    let server_url = config.cluster_url.to_string().trim_end_matches('/').to_string();
    let namespace = global.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)?;
    Ok(Cluster { client, namespace, server_url })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_then_the_data_dir_is_the_last_resort() {
        let g = Global { kubeconfig: Some("/x/k".into()), ..Default::default() };
        assert_eq!(kubeconfig_paths(&g, Path::new("/d")), vec![PathBuf::from("/x/k")]);
    }
}
