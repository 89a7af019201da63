//! Node registration and heartbeats: the Node object (capacity, allocatable, nodeInfo, addresses, conditions)
//! and its Lease in `kube-node-lease`, renewed every 10 s (the kubelet's defaults).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

pub const LEASE_SECONDS: i32 = 40;
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often the Node's conditions are re-reported when nothing changes (heartbeat).
pub const STATUS_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub version: String,
    pub data_dir: std::path::PathBuf,
    pub host_ip: Ipv4Addr,
    pub pod_cidr: String,
    pub max_pods: u32,
}

/// Total memory in bytes (/proc/meminfo MemTotal).
pub fn memory_bytes() -> u64 {
    meminfo("MemTotal:").unwrap_or(0)
}

fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).map(|kb| kb * 1024)
}

fn disk(path: &std::path::Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => (s.blocks() * s.fragment_size(), s.blocks_available() * s.fragment_size()),
        Err(_) => (0, 0),
    }
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".into())
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The first IPv4 address of an interface that is up, not loopback and not one of ours (bridges, veths).
pub fn host_ip() -> Ipv4Addr {
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let name = a.interface_name.as_str();
            if name == "lo" || name.starts_with("k1s") || name.starts_with("vk") || name.starts_with("veth") || name.starts_with("docker") {
                continue;
            }
            if !a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP) {
                continue;
            }
            if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
                return sin.ip();
            }
        }
    }
    Ipv4Addr::LOCALHOST
}

fn conditions(now: &str, transition: &BTreeMap<String, (String, String)>, pressure: (bool, bool, bool)) -> serde_json::Value {
    let cond = |ty: &str, status: bool, reason_true: &str, reason_false: &str, msg_true: &str, msg_false: &str| {
        let st = if status { "True" } else { "False" };
        let since = transition.get(ty).filter(|(s, _)| s == st).map(|(_, t)| t.clone()).unwrap_or_else(|| now.to_string());
        json!({
            "type": ty, "status": st, "lastHeartbeatTime": now, "lastTransitionTime": since,
            "reason": if status { reason_true } else { reason_false }, "message": if status { msg_true } else { msg_false },
        })
    };
    let (mem, disk, pid) = pressure;
    json!([
        cond("MemoryPressure", mem, "KubeletHasInsufficientMemory", "KubeletHasSufficientMemory", "kubelet has insufficient memory available", "kubelet has sufficient memory available"),
        cond("DiskPressure", disk, "KubeletHasDiskPressure", "KubeletHasNoDiskPressure", "kubelet has disk pressure", "kubelet has no disk pressure"),
        cond("PIDPressure", pid, "KubeletHasInsufficientPID", "KubeletHasSufficientPID", "kubelet has insufficient PID available", "kubelet has sufficient PID available"),
        cond("Ready", true, "KubeletReady", "KubeletNotReady", "kubelet is posting ready status", "kubelet is not ready"),
    ])
}

/// Upstream's default hard eviction thresholds: memory.available < 100Mi, nodefs.available < 10%.
fn pressure(data_dir: &std::path::Path) -> (bool, bool, bool) {
    let mem = meminfo("MemAvailable:").is_some_and(|a| a < 100 * 1024 * 1024);
    let (total, avail) = disk(data_dir);
    let disk = total > 0 && avail * 10 < total;
    let pid_max: u64 = read_trim("/proc/sys/kernel/pid_max").parse().unwrap_or(u64::MAX);
    let procs = std::fs::read_dir("/proc").map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok()).count() as u64).unwrap_or(0);
    (mem, disk, procs * 10 > pid_max * 9)
}

fn status(cfg: &NodeConfig, transitions: &BTreeMap<String, (String, String)>) -> serde_json::Value {
    let now = k1s_api::meta::now();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = memory_bytes();
    let (disk_total, _) = disk(&cfg.data_dir);
    let capacity = json!({
        "cpu": cpus.to_string(), "memory": format!("{}Ki", mem / 1024), "pods": cfg.max_pods.to_string(),
        "ephemeral-storage": format!("{}Ki", disk_total / 1024),
    });
    // The kubelet reserves its eviction threshold (100Mi) from allocatable memory; nothing else is reserved.
    let allocatable = json!({
        "cpu": cpus.to_string(), "memory": format!("{}Ki", mem.saturating_sub(100 * 1024 * 1024) / 1024), "pods": cfg.max_pods.to_string(),
        "ephemeral-storage": format!("{}", disk_total * 9 / 10),
    });
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname.as_ref().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": conditions(&now, transitions, pressure(&cfg.data_dir)),
        "addresses": [{"type": "InternalIP", "address": cfg.host_ip.to_string()}, {"type": "Hostname", "address": cfg.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": read_trim("/etc/machine-id"),
            "systemUUID": read_trim("/sys/class/dmi/id/product_uuid"),
            "bootID": read_trim("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": kernel,
            "osImage": os_image(),
            "containerRuntimeVersion": format!("k1s://{}", cfg.version),
            "kubeletVersion": format!("v1.33.0+k1s-{}", cfg.version),
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch,
        },
    })
}

/// Register the Node (create it or take it over) and report its status once. Fast: the Node is Ready as soon
/// as this returns.
pub async fn register(client: &kube::Client, cfg: &NodeConfig) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(&cfg.name).await?.is_none() {
        let labels = json!({
            "kubernetes.io/hostname": cfg.name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
            "node-role.kubernetes.io/control-plane": "",
        });
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": cfg.name, "labels": labels},
            "spec": {"podCIDR": cfg.pod_cidr, "podCIDRs": [cfg.pod_cidr]},
        }))
        .expect("node object");
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    report_status(client, cfg, &BTreeMap::new()).await?;
    renew_lease(client, cfg).await
}

async fn report_status(client: &kube::Client, cfg: &NodeConfig, transitions: &BTreeMap<String, (String, String)>) -> Result<BTreeMap<String, (String, String)>, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let st = status(cfg, transitions);
    let mut next = BTreeMap::new();
    for c in st["conditions"].as_array().into_iter().flatten() {
        next.insert(
            c["type"].as_str().unwrap_or_default().to_string(),
            (c["status"].as_str().unwrap_or_default().to_string(), c["lastTransitionTime"].as_str().unwrap_or_default().to_string()),
        );
    }
    nodes.patch_status(&cfg.name, &PatchParams::default(), &Patch::Merge(json!({"status": st}))).await?;
    Ok(next)
}

async fn renew_lease(client: &kube::Client, cfg: &NodeConfig) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = k8s_openapi::jiff::Timestamp::now();
    let now_micro = json!(now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    match leases.get_opt(&cfg.name).await? {
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": cfg.name, "namespace": "kube-node-lease",
                    "ownerReferences": []},
                "spec": {"holderIdentity": cfg.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now_micro},
            }))
            .expect("lease object");
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Some(_) => leases
            .patch(&cfg.name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"renewTime": now_micro, "holderIdentity": cfg.name}})))
            .await
            .map(drop),
    }
}

/// Keep the Lease and the Node's status fresh, forever. Errors are logged and retried on the next tick.
pub async fn heartbeat(client: kube::Client, cfg: NodeConfig) {
    let mut transitions = BTreeMap::new();
    let mut lease_tick = tokio::time::interval(RENEW_EVERY);
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    status_tick.tick().await;
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if let Err(e) = renew_lease(&client, &cfg).await {
                    tracing::warn!(error = %e, "renewing the node lease");
                }
            }
            _ = status_tick.tick() => {
                match report_status(&client, &cfg, &transitions).await {
                    Ok(t) => transitions = t,
                    Err(e) => tracing::warn!(error = %e, "reporting node status"),
                }
            }
        }
    }
}
