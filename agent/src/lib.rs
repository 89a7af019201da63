//! The node agent (our kubelet): runs the Pods bound to this node as Linux containers.
//!
//! Code map: [`network`] (bridge, veth, IPAM, the Pod's namespaces), [`runtime`] (the shim, container init,
//! cgroups, state files), [`plan`] (the pure `compute_pod_actions`), [`pods`] (the sync loop and pod
//! workers), [`status`] (pod status; one writer, on change), [`container`] and [`volumes`] (from a Pod's spec
//! to what the runtime runs), [`node`] (Node registration and Lease), [`logs`], [`exec`], [`events`].
//!
//! The agent talks to the API only through kube's client (in-process, over the API server's router).

pub mod container;
pub mod events;
pub mod exec;
pub mod logs;
pub mod network;
pub mod node;
pub mod plan;
pub mod probe;
pub mod pods;
pub mod portforward;
pub mod runtime;
pub mod static_pods;
pub mod status;
pub mod stdio;
pub mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use node::NodeConfig;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    pub version: String,
    pub data_dir: PathBuf,
    pub bridge: String,
    pub pod_cidr: String,
    pub cgroup_parent: String,
    /// Container log files are rotated past this size.
    pub log_max_bytes: u64,
    /// The Node's `pods` capacity (the kubelet's --max-pods).
    pub max_pods: u32,
    /// Static Pod manifests (the kubelet's --pod-manifest-path).
    pub pod_manifest_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("network: {0}")]
    Network(#[from] network::NetworkError),
    #[error("runtime: {0}")]
    Runtime(#[from] runtime::RuntimeError),
    #[error("images: {0}")]
    Images(#[from] k1s_images::ImageError),
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
}

/// A started agent: cheap to clone; `logs` and `exec` serve the API server's node subresources.
#[derive(Clone)]
pub struct Agent {
    shared: Arc<pods::Shared>,
    node: NodeConfig,
    manifests: PathBuf,
}

impl Agent {
    /// Prepare everything a Pod needs (bridge, cgroup parent, images incl. busybox), recover the state of a
    /// previous run and register the Node (Ready once this returns).
    pub async fn start(client: kube::Client, cfg: AgentConfig) -> Result<Agent, AgentError> {
        let t0 = std::time::Instant::now();
        let net = network::Network::new(network::NetworkConfig {
            bridge: cfg.bridge.clone(),
            pod_cidr: cfg.pod_cidr.clone(),
            state_dir: cfg.data_dir.join("network"),
        })
        .await?;
        let rt = runtime::Runtime::new(
            runtime::RuntimeConfig {
                pods_dir: cfg.data_dir.join("pods"),
                run_dir: cfg.data_dir.join("run"),
                cgroup_parent: cfg.cgroup_parent.clone(),
                exe: PathBuf::from("/proc/self/exe"),
                log_max_bytes: cfg.log_max_bytes,
            },
            net,
        )?;
        let node = NodeConfig {
            name: cfg.node_name.clone(),
            version: cfg.version.clone(),
            data_dir: cfg.data_dir.clone(),
            host_ip: node::host_ip(),
            pod_cidr: cfg.pod_cidr.clone(),
            max_pods: cfg.max_pods,
        };
        node::register(&client, &node).await.map_err(|source| AgentError::Register { node: cfg.node_name.clone(), source })?;

        let images_dir = cfg.data_dir.join("images");
        let images = Arc::new(k1s_images::ImageStore::open(&images_dir)?);
        {
            // Image preparation is blocking file work: off the async threads.
            let images = images.clone();
            let import = images_dir.join("import");
            tokio::task::spawn_blocking(move || {
                match images.ensure_busybox() {
                    Ok(Some(name)) => tracing::info!(image = %name, "built the busybox image from the host's static busybox"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "no built-in busybox image"),
                }
                let _ = std::fs::create_dir_all(&import);
                match images.import_dir(&import) {
                    Ok(names) if !names.is_empty() => tracing::info!(images = ?names, "imported archives from {}", import.display()),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "importing {}", import.display()),
                }
            })
            .await
            .expect("image task");
        }
        let recovered: HashMap<String, pods::PodRuntime> = pods::recover(&rt);
        if !recovered.is_empty() {
            tracing::info!(pods = recovered.len(), "recovered sandboxes from the state directory");
        }
        let events = events::Recorder::start(client.clone(), cfg.node_name.clone());
        let shared = Arc::new(pods::Shared {
            client,
            runtime: rt,
            images,
            node_name: cfg.node_name.clone(),
            host_ip: node.host_ip.to_string(),
            recovered: Mutex::new(recovered),
            events,
        });
        tracing::info!(node = %cfg.node_name, elapsed_ms = t0.elapsed().as_millis() as u64, "node agent ready");
        Ok(Agent { shared, node, manifests: cfg.pod_manifest_path.clone() })
    }

    /// Run the heartbeat and the pod sync loop (forever).
    pub async fn run(self) {
        tokio::spawn(node::heartbeat(self.shared.client.clone(), self.node.clone()));
        pods::run(self.shared.clone(), self.manifests.clone()).await;
    }

    pub fn runtime(&self) -> &runtime::Runtime {
        &self.shared.runtime
    }

    pub fn logs(&self, uid: &str, pod_name: &str, container: &str, opts: logs::LogOptions) -> Result<impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static, logs::LogError> {
        logs::open(&self.shared.runtime, uid, pod_name, container, opts)
    }

    /// `kubectl exec`: a command in a running container, piped or on a terminal.
    pub fn exec(&self, uid: &str, container: &str, command: &[String], streams: stdio::Streams) -> Result<stdio::Session, exec::ExecError> {
        stdio::exec(&self.shared.runtime, uid, container, command, streams)
    }

    /// `kubectl port-forward`: a connection to `port` on the Pod's loopback, from inside its netns.
    pub async fn port_forward(&self, uid: &str, port: u16) -> Result<tokio::net::TcpStream, portforward::PortForwardError> {
        portforward::connect(&self.shared.runtime, uid, port).await
    }

    /// `kubectl attach`: the running container's own stdio.
    pub async fn attach(&self, uid: &str, container: &str, streams: stdio::Streams) -> Result<stdio::Session, exec::ExecError> {
        stdio::attach(&self.shared.runtime, uid, container, streams).await
    }
}
