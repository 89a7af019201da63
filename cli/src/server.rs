//! `k1s server`: open the store, start the API server (HTTPS + auth) and its background loops, write the
//! kubeconfig once the API serves, and shut down gracefully on SIGTERM/SIGINT.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use anyhow::{bail, Context};
use k1s_apiserver::{auth::Tokens, tls::Pki, ApiServer};
use k1s_store::{SledOptions, SledStore};
use tokio::signal::unix::{signal, SignalKind};

use crate::ServerArgs;

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

fn check_cidr(cidr: &str) -> anyhow::Result<()> {
    let (ip, bits) = cidr.split_once('/').with_context(|| format!("--pod-cidr {cidr:?}: expected an IPv4 CIDR such as 10.42.0.0/16"))?;
    let _: Ipv4Addr = ip.parse().with_context(|| format!("--pod-cidr {cidr:?}: {ip:?} is not an IPv4 address"))?;
    let bits: u8 = bits.parse().with_context(|| format!("--pod-cidr {cidr:?}: {bits:?} is not a prefix length"))?;
    if !(8..=30).contains(&bits) {
        bail!("--pod-cidr {cidr:?}: the prefix length must be between 8 and 30");
    }
    Ok(())
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM during start-up must still stop the server cleanly.
    let mut term = signal(SignalKind::terminate())?;
    // Every client connection is a descriptor: raise the soft RLIMIT_NOFILE (often 1024) to the hard one, up to
    // 65536 (ample for tls::MAX_CONNECTIONS; children such as shims inherit it, and some tools walk every fd).
    use nix::sys::resource::{getrlimit, setrlimit, Resource::RLIMIT_NOFILE};
    let _ = getrlimit(RLIMIT_NOFILE).map(|(soft, hard)| setrlimit(RLIMIT_NOFILE, soft.max(hard.min(65536)), hard));
    let mut int = signal(SignalKind::interrupt())?;
    check_cidr(&args.pod_cidr)?;
    let node_name = args.node_name.clone().unwrap_or_else(hostname);
    let dir = &args.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).ok();

    let store = SledStore::open(&dir.join("db"), SledOptions { cache_bytes: args.store_cache_mb * 1024 * 1024, ..Default::default() })
        .with_context(|| format!("opening the database in {} (is another k1s server using this data dir?)", dir.display()))?;

    // The listener first, so the real port (for --listen ...:0) goes into the certificate and kubeconfig.
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    let client_host: IpAddr = if local.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { local.ip() };
    let server_url = match client_host {
        IpAddr::V6(ip) => format!("https://[{ip}]:{}", local.port()),
        IpAddr::V4(ip) => format!("https://{ip}:{}", local.port()),
    };

    let api = ApiServer::new(Arc::new(store.clone()), format!("{client_host}:{}", local.port()));
    api.bootstrap().await.map_err(|e| anyhow::anyhow!("creating the built-in namespaces: {e}"))?;
    tokio::spawn(k1s_apiserver::namespaces::run(api.registry().clone()));
    tokio::spawn(k1s_apiserver::events::run(api.registry().clone(), k1s_apiserver::events::DEFAULT_TTL));

    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string(), hostname()];
    for extra in [client_host.to_string(), node_name.clone()] {
        if !sans.contains(&extra) {
            sans.push(extra);
        }
    }
    let pki = Pki::load_or_create(&dir.join("pki"), &sans)?;
    let tls = pki.server_config()?;
    let tokens = Tokens::new(vec![pki.token.clone()]);

    let serving = tokio::spawn(k1s_apiserver::tls::serve(listener, api.router(), tls, tokens, api.shutdown_signal()));
    let kubeconfig = dir.join("kubeconfig.yaml");
    crate::kubeconfig::write(&kubeconfig, &crate::kubeconfig::render(&server_url, &pki.ca_pem, &pki.token))?;
    tracing::info!(
        url = %server_url, kubeconfig = %kubeconfig.display(), node = %node_name, bridge = %args.bridge,
        pod_cidr = %args.pod_cidr, cgroup_parent = %args.cgroup_parent,
        "k1s API serving; use: kubectl --kubeconfig {}", kubeconfig.display()
    );

    // Controllers and the agent reach the API in-process: kube's client over the router, no socket.
    let client = kube::Client::new(api.router(), "default");
    tokio::spawn(k1s_controllers::scheduler::run(client.clone()));
    tokio::spawn(k1s_controllers::job::run(client.clone()));
    tokio::spawn(k1s_controllers::gc::run(client.clone()));
    tokio::spawn(k1s_controllers::replicaset::run(client.clone()));
    tokio::spawn(k1s_controllers::deployment::run(client.clone()));
    let deploy_path = args.deploy_path.clone().unwrap_or_else(|| dir.join("deploy"));
    std::fs::create_dir_all(&deploy_path).with_context(|| format!("creating the deploy directory {}", deploy_path.display()))?;
    tokio::spawn(k1s_controllers::deploy::run(client.clone(), deploy_path, node_name.clone()));
    let agent = k1s_agent::Agent::start(
        client,
        k1s_agent::AgentConfig {
            node_name: node_name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            data_dir: dir.clone(),
            bridge: args.bridge.clone(),
            pod_cidr: args.pod_cidr.clone(),
            cgroup_parent: args.cgroup_parent.clone(),
            log_max_bytes: 10 * 1024 * 1024,
            max_pods: args.max_pods,
            pod_manifest_path: args.pod_manifest_path.clone().unwrap_or_else(|| args.data_dir.join("manifests")),
        },
    )
    .await
    .context("starting the node agent")?;
    crate::connector::install(&api, agent.clone());
    tokio::spawn(agent.run());

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    api.shutdown();
    let _ = serving.await;
    // Every acknowledged write is already durable; this flushes anything in flight and releases the lock.
    store.close();
    tracing::info!("stopped");
    Ok(())
}
