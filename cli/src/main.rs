//! `k1s`: Kubernetes for one node in one binary. This is the composition root: it parses the command line,
//! picks concrete implementations (sled store, TLS) and wires the components together.

mod connector;
mod image;
mod kubeconfig;
mod kubectl;
mod reset;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Default data directory of a server (and of `reset`).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/k1s";

#[derive(Parser)]
#[command(name = "k1s", version, about = "Kubernetes for one node, in one binary", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server, controllers and node agent; writes <data-dir>/kubeconfig.yaml for kubectl.
    Server(ServerArgs),
    /// Remove everything a server of this data dir created (stop the server first).
    Reset(ResetArgs),
    /// Manage the local image store: import archives, list, remove.
    Image(image::ImageArgs),
    /// Internal: the per-container shim (the agent re-executes k1s).
    #[command(hide = true)]
    Shim { dir: PathBuf },
    /// Internal: hold a Pod's shared pid namespace (shareProcessNamespace).
    #[command(hide = true)]
    Pause { dir: PathBuf, cgroup_procs: Vec<PathBuf> },
    /// Internal: enter a running container and run a command (kubectl exec).
    #[command(hide = true)]
    Nsexec {
        dir: PathBuf,
        /// stdin is a terminal: the command gets it as its controlling terminal (`kubectl exec -t`).
        #[arg(long)]
        tty: bool,
        #[arg(last = true)]
        command: Vec<String>,
    },
}

#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// Where the database, certificates and kubeconfig live.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address of the HTTPS API (port 0 picks a free port; the kubeconfig names the real one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// The Node this server runs as (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Linux bridge the Pods' veths attach to.
    #[arg(long, default_value = "k1s0")]
    pub bridge: String,
    /// Pod IP range; the bridge takes its first address.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub pod_cidr: String,
    /// cgroup under which every Pod's cgroup is created.
    #[arg(long, default_value = "k1s")]
    pub cgroup_parent: String,
    /// Pods this node takes at most (the kubelet's --max-pods; the scheduler counts against it).
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Static Pod manifests the agent runs directly, shown in the API as mirror Pods (the kubelet's
    /// --pod-manifest-path; default <data-dir>/manifests).
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// Manifests of any served kind applied by server-side apply at start and on every change; removing a
    /// file deletes what it created (like k3s's auto-deploying manifests; default <data-dir>/deploy).
    #[arg(long)]
    pub deploy_path: Option<PathBuf>,
    /// sled page cache in MiB (reads are served from memory; this only speeds up opening a large database).
    #[arg(long, default_value_t = 8)]
    pub store_cache_mb: u64,
}

#[derive(Args, Clone, Debug)]
pub struct ResetArgs {
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "k1s0")]
    pub bridge: String,
    #[arg(long, default_value = "k1s")]
    pub cgroup_parent: String,
}

fn main() -> anyhow::Result<()> {
    // A Pod's pause process (runtime::pause) is this binary exec'd as `/pause`.
    if std::env::args_os().next().is_some_and(|a| a == "/pause") {
        k1s_agent::runtime::pause::pid1();
    }
    // kubectl mode: argv[0] `kubectl`, `k1s kubectl …`, or `k1s <verb> …` for a kubectl verb.
    if let Some(code) = kubectl::dispatch() {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    // The re-exec entry points run before anything else (no runtime, no threads): they fork and setns.
    match &cli.command {
        Command::Shim { dir } => std::process::exit(k1s_agent::runtime::shim::main(dir)),
        Command::Pause { dir, cgroup_procs } => std::process::exit(k1s_agent::runtime::pause::main(dir, cgroup_procs)),
        Command::Nsexec { dir, tty, command } => std::process::exit(k1s_agent::exec::nsexec_main(dir, command, *tty)),
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // A failed log write (the log's disk is full) must not be reported with eprintln!, which panics on the
        // same full disk and takes down whichever thread logged (the store's flusher, an agent loop).
        .log_internal_errors(false)
        // Colour only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Server(args) => {
            // Two workers: the machine kind has 2 cores; more threads only add memory.
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().thread_name("k1s").build()?;
            rt.block_on(server::run(args))
        }
        Command::Reset(args) => reset::run(&args),
        Command::Image(args) => image::run(&args),
        Command::Shim { .. } | Command::Pause { .. } | Command::Nsexec { .. } => unreachable!("dispatched above"),
    }
}
