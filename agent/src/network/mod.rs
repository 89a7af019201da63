//! Pod networking: the bridge, one veth per Pod whose peer is born inside the Pod's netns, persisted IPAM,
//! and the Pod's own net/ipc/uts namespaces pinned as bind-mounted files.
//!
//! A sandbox is built in the order that keeps the hot path cheap (limits.md): claim an IP (one O_EXCL
//! file), create the namespaces on a throwaway thread (never on a tokio thread), one RTM_NEWLINK for the
//! veth with its peer born in the netns, then lo/eth0 up, address and route through a netlink socket opened
//! inside the netns, one RTM_GETLINK that makes the kernel finish bringing the host end up (so the first
//! packets to the Pod are not dropped), and a gratuitous ARP. eth0's MAC is derived from its IP, so
//! neighbour caches stay right when an IP is reused. Nothing is ever moved between namespaces and nothing
//! is deleted synchronously: teardown unmounts the namespace files and the kernel reaps the veth with the
//! netns. Only the host's gateway address on the bridge connects the Pods to the host; `ip_forward` and
//! sysctls are left alone.
//!
//! Code map: `ipam` (CIDR and claim files), `ns` (the namespace thread, mounts, mountinfo),
//! `netlink` (bridge, veth, the Pod side's address and route), `arp` (the new Pod's gratuitous ARP).

mod arp;
mod ipam;
mod netlink;
mod ns;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use ipam::{Cidr, Ipam};

/// How the node's Pod network looks; built once by the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The bridge's name (default `k1s0`), at most 15 bytes.
    pub bridge: String,
    /// The Pod CIDR, e.g. `10.42.0.0/16`; its first address is the gateway, on the bridge.
    pub pod_cidr: String,
    /// `<data-dir>/network`: the IPAM claims live in `ipam/` below it.
    pub state_dir: PathBuf,
}

/// Everything that can go wrong, with the Pod key and the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The Pod CIDR is not an IPv4 CIDR with room for a gateway and a Pod.
    #[error("invalid pod CIDR {cidr:?}: {reason}")]
    InvalidCidr { cidr: String, reason: String },
    /// Every Pod address of the CIDR is allocated.
    #[error("no free IP address in pod CIDR {cidr}: all {capacity} pod addresses are allocated")]
    Exhausted { cidr: String, capacity: u32 },
    /// Reading or writing the IPAM claim files.
    #[error("IPAM state {path}: {error}")]
    Ipam { path: PathBuf, error: io::Error },
    /// Creating or configuring the bridge (or deleting it in `reset`).
    #[error("bridge {bridge}: {step}: {error}")]
    Bridge { bridge: String, step: &'static str, error: rtnetlink::Error },
    /// A link with the bridge's name exists but is no bridge.
    #[error("{bridge} exists and is not a bridge; choose another bridge name or delete the link")]
    NotABridge { bridge: String },
    /// A netlink socket (or the runtime behind it) could not be opened.
    #[error("opening a netlink socket ({context}): {error}")]
    Socket { context: String, error: io::Error },
    /// Creating, pinning or unmounting a Pod's namespaces.
    #[error("pod {key}: {step} {path}: {error}")]
    Namespace { key: String, step: &'static str, path: PathBuf, error: io::Error },
    /// sethostname in the Pod's uts namespace.
    #[error("pod {key}: setting hostname {hostname:?}: {error}")]
    Hostname { key: String, hostname: String, error: io::Error },
    /// `setup_*` on a directory whose namespace files are still mounted.
    #[error("pod {key}: sandbox already set up: {path} is a mounted namespace (tear it down first)")]
    SandboxExists { key: String, path: PathBuf },
    /// A netlink request for a Pod (veth, address, route).
    #[error("pod {key}: {step}: {error}")]
    Netlink { key: String, step: &'static str, error: rtnetlink::Error },
    /// `reset` could not unmount a namespace file.
    #[error("reset: unmounting {path}: {error}")]
    Reset { path: PathBuf, error: io::Error },
}

/// What a sandbox got: the runtime joins these namespaces and the status reports `ip`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNetwork {
    /// The Pod IP; None for hostNetwork Pods.
    pub ip: Option<Ipv4Addr>,
    /// The CIDR's prefix length (0 for hostNetwork Pods).
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// The host end of the veth, on the bridge.
    pub host_veth: Option<String>,
    /// The pinned netns file (`dir/net`); None for hostNetwork Pods.
    pub netns: Option<PathBuf>,
    /// The pinned ipc namespace file (`dir/ipc`).
    pub ipcns: PathBuf,
    /// The pinned uts namespace file (`dir/uts`); None for hostNetwork Pods.
    pub utsns: Option<PathBuf>,
}

/// The node's Pod network: cheap to clone, Send + Sync.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

struct Inner {
    bridge: String,
    bridge_index: u32,
    cidr: Cidr,
    /// Netlink in the host netns; its connection task runs on the runtime that called `new`.
    handle: rtnetlink::Handle,
    ipam: Ipam,
    /// Random per process, so host veth names do not repeat across agent restarts either.
    veth_names: RandomState,
    veth_counter: AtomicU64,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("bridge", &self.inner.bridge)
            .field("bridge_index", &self.inner.bridge_index)
            .field("pod_cidr", &self.inner.cidr.to_string())
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Ensure the bridge exists with the gateway address and is up, open the host netlink handle, load the
    /// IPAM claims. Must run inside a tokio runtime with IO and time enabled, which then drives the host
    /// netlink connection (and every later `setup_*` must run on it too).
    pub async fn new(cfg: NetworkConfig) -> Result<Network, NetworkError> {
        let cidr = Cidr::parse(&cfg.pod_cidr)?;
        let ipam = Ipam::load(&cfg.state_dir.join("ipam"), cidr.clone())?;
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|error| NetworkError::Socket { context: "host netns".to_string(), error })?;
        tokio::spawn(conn);
        let bridge_index = netlink::ensure_bridge(&handle, &cfg.bridge, cidr.gateway(), cidr.prefix_len()).await?;
        tracing::debug!(bridge = %cfg.bridge, bridge_index, pod_cidr = %cidr, "pod network ready");
        Ok(Network {
            inner: Arc::new(Inner {
                bridge: cfg.bridge,
                bridge_index,
                cidr,
                handle,
                ipam,
                veth_names: RandomState::new(),
                veth_counter: AtomicU64::new(0),
            }),
        })
    }

    /// The bridge's address, every Pod's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.inner.cidr.gateway()
    }

    pub fn prefix_len(&self) -> u8 {
        self.inner.cidr.prefix_len()
    }

    pub fn bridge(&self) -> &str {
        &self.inner.bridge
    }

    /// The Pod CIDR, normalised (`10.42.0.0/16`).
    pub fn pod_cidr(&self) -> String {
        self.inner.cidr.to_string()
    }

    /// Create the Pod's namespaces and network: net, ipc and uts namespaces pinned on `dir/{net,ipc,uts}`
    /// (dir is created), `hostname` in the uts namespace, an IP for `key` (the Pod UID; a key that already
    /// holds one keeps it), a veth whose peer is born in the netns as eth0, the host end on the bridge, and
    /// in the netns lo up, eth0 up with the IP, default route via the gateway. On error (or if the future is
    /// dropped) nothing this call created is left behind.
    pub async fn setup_pod(&self, key: &str, dir: &Path, hostname: &str) -> Result<PodNetwork, NetworkError> {
        let started = Instant::now();
        let (ip, fresh) = self.inner.ipam.allocate(key)?;
        let mut rollback = Rollback { net: self, key, dir, release_ip: fresh, unmount: false };
        let kind = ns::Kind::Pod { hostname: hostname.to_string() };
        let Some(ns::PodNetns { fd, conn, handle, arp }) = ns::create(key, dir, kind).await? else {
            unreachable!("a Pod sandbox always has a netns");
        };
        rollback.unmount = true;
        let namespaces_done = started.elapsed();
        let (gateway, prefix) = (self.gateway(), self.prefix_len());

        let mac = arp::pod_mac(ip);
        let work = async {
            let host_veth = self.add_veth(key, fd.as_raw_fd(), mac).await?;
            // The fd pins the netns; it has done its job.
            drop(fd);
            let veth_done = started.elapsed();
            let eth0 = netlink::configure_pod_side(&handle, ip, prefix, gateway).await.map_err(|(step, error)| {
                NetworkError::Netlink { key: key.to_string(), step, error }
            })?;
            self.wait_until_up(key, &host_veth).await?;
            // Best effort: neighbour caches are right anyway (the MAC follows the IP); the announcement
            // also moves the bridge's forwarding entry for this MAC off a previous owner's lingering port.
            if let Err(e) = arp::announce(&arp, eth0, mac, ip) {
                tracing::debug!(key, error = %e, "gratuitous ARP");
            }
            // Closing a packet socket waits for an RCU grace period (`packet_release` → `synchronize_net`,
            // 4-12 ms measured): nothing needs to wait for it, so it happens off the hot path. It pins the
            // netns only until then.
            tokio::task::spawn_blocking(move || drop(arp));
            Ok::<_, NetworkError>((host_veth, veth_done))
        };
        // The Pod-side connection is polled here rather than spawned, so its socket (which pins the netns)
        // is closed as soon as this returns.
        let result = tokio::select! {
            r = work => r,
            () = conn => Err(NetworkError::Netlink {
                key: key.to_string(),
                step: "netlink connection inside the netns ended",
                error: rtnetlink::Error::RequestFailed,
            }),
        };
        drop(handle);
        let (host_veth, veth_done) = result?;
        rollback.disarm();

        tracing::debug!(
            key,
            %ip,
            host_veth,
            total_us = started.elapsed().as_micros() as u64,
            namespaces_us = namespaces_done.as_micros() as u64,
            veth_us = (veth_done - namespaces_done).as_micros() as u64,
            "pod network set up"
        );
        Ok(PodNetwork {
            ip: Some(ip),
            prefix_len: prefix,
            gateway: Some(gateway),
            host_veth: Some(host_veth),
            netns: Some(dir.join(ns::NET)),
            ipcns: dir.join(ns::IPC),
            utsns: Some(dir.join(ns::UTS)),
        })
    }

    /// hostNetwork Pods: only a new ipc namespace at `dir/ipc`; net and uts are the host's. No IP.
    pub async fn setup_host_network_pod(&self, key: &str, dir: &Path) -> Result<PodNetwork, NetworkError> {
        ns::create(key, dir, ns::Kind::HostNetwork).await?;
        Ok(PodNetwork {
            ip: None,
            prefix_len: 0,
            gateway: None,
            host_veth: None,
            netns: None,
            ipcns: dir.join(ns::IPC),
            utsns: None,
        })
    }

    /// Tear a sandbox down without deleting links: unmount and unlink the namespace files (the kernel reaps
    /// the veth once the netns dies, ~45 ms later), then release the IP. Idempotent; a half-built sandbox
    /// is fine. The IP is kept if a namespace could not be unmounted, so a retry finishes the job.
    pub fn teardown_pod(&self, key: &str, dir: &Path) -> Result<(), NetworkError> {
        let mut first_error = None;
        for name in [ns::NET, ns::IPC, ns::UTS] {
            let path = dir.join(name);
            if let Err(error) = ns::unmount_and_remove(&path) {
                first_error.get_or_insert(NetworkError::Namespace {
                    key: key.to_string(),
                    step: "unmount",
                    path,
                    error,
                });
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.inner.ipam.release(key)?;
        Ok(())
    }

    /// After an agent restart: `live` are the Pod keys that still exist; IPs held by any other key are
    /// released. Returns the allocations kept (key → IP).
    pub fn retain(&self, live: &HashSet<String>) -> Result<HashMap<String, Ipv4Addr>, NetworkError> {
        self.inner.ipam.retain(live)
    }

    pub fn ip_of(&self, key: &str) -> Option<Ipv4Addr> {
        self.inner.ipam.get(key)
    }

    /// A fresh host-side veth name: "vk" + 13 hex digits = 15 bytes (IFNAMSIZ - 1). Unique per call, not
    /// derived from the key alone: a torn-down Pod's veth lingers ~45 ms and a recreated sandbox of the same
    /// Pod must not collide with it.
    fn host_veth_name(&self, key: &str) -> String {
        let n = self.inner.veth_counter.fetch_add(1, Ordering::Relaxed);
        let h = self.inner.veth_names.hash_one((key, n));
        format!("vk{:013x}", h >> 12)
    }

    /// Return once the host end of the Pod's veth forwards (see [`netlink::link_is_up`]): on Linux ≥ 6.8
    /// the first answer is yes; older kernels get a bounded poll while their link-watch work catches up.
    async fn wait_until_up(&self, key: &str, host_veth: &str) -> Result<(), NetworkError> {
        let deadline = Instant::now() + std::time::Duration::from_millis(250);
        loop {
            let up = netlink::link_is_up(&self.inner.handle, host_veth).await.map_err(|error| {
                NetworkError::Netlink { key: key.to_string(), step: "query the host veth", error }
            })?;
            if up {
                return Ok(());
            }
            if Instant::now() >= deadline {
                // Traffic starts as soon as the kernel catches up; not worth failing the Pod for.
                tracing::debug!(key, host_veth, "host veth not yet operationally up");
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    async fn add_veth(&self, key: &str, netns_fd: std::os::fd::RawFd, mac: [u8; 6]) -> Result<String, NetworkError> {
        let mut attempts = 0;
        loop {
            let name = self.host_veth_name(key);
            match netlink::add_veth(&self.inner.handle, &name, self.inner.bridge_index, netns_fd, mac).await {
                Ok(()) => return Ok(name),
                // A 52-bit name collided with a live or lingering link: draw again.
                Err(e) if netlink::errno(&e) == Some(libc::EEXIST) && attempts < 3 => attempts += 1,
                Err(error) => {
                    return Err(NetworkError::Netlink { key: key.to_string(), step: "create the veth", error })
                }
            }
        }
    }
}

/// Undoes a half-built sandbox when `setup_pod` fails or its future is dropped.
struct Rollback<'a> {
    net: &'a Network,
    key: &'a str,
    dir: &'a Path,
    release_ip: bool,
    unmount: bool,
}

impl Rollback<'_> {
    fn disarm(&mut self) {
        self.release_ip = false;
        self.unmount = false;
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if self.unmount {
            for name in [ns::NET, ns::IPC, ns::UTS] {
                if let Err(e) = ns::unmount_and_remove(&self.dir.join(name)) {
                    tracing::warn!(key = self.key, error = %e, "rolling back a failed sandbox: unmount");
                }
            }
        }
        if self.release_ip {
            if let Err(e) = self.net.inner.ipam.release(self.key) {
                tracing::warn!(key = self.key, error = %e, "rolling back a failed sandbox: release the IP");
            }
        }
    }
}

/// `k1s reset`: unmount every namespace file (nsfs mount) at or below `pods_dir`, then delete the bridge.
/// Synchronous; the netlink work runs on its own thread with its own small runtime, so this may be called
/// from anywhere, also from inside a tokio runtime.
pub fn reset(bridge: &str, pods_dir: &Path) -> Result<(), NetworkError> {
    let mounts = ns::nsfs_mounts_under(pods_dir)
        .map_err(|error| NetworkError::Reset { path: PathBuf::from("/proc/self/mountinfo"), error })?;
    let mut first_error = None;
    for path in mounts {
        if let Err(error) = ns::unmount_and_remove(&path) {
            first_error.get_or_insert(NetworkError::Reset { path, error });
        }
    }
    let name = bridge.to_string();
    let deleted = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|error| NetworkError::Socket { context: "reset: runtime".to_string(), error })?;
        rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection()
                .map_err(|error| NetworkError::Socket { context: "reset".to_string(), error })?;
            tokio::spawn(conn);
            netlink::delete_link(&handle, &name).await.map_err(|error| NetworkError::Bridge {
                bridge: name.clone(),
                step: "delete",
                error,
            })
        })
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    match (first_error, deleted) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(e),
        (None, Ok(existed)) => {
            tracing::debug!(bridge, existed, "pod network reset");
            Ok(())
        }
    }
}
