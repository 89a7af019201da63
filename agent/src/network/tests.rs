//! Root tests against the real kernel: a bridge, namespaces, veths and pings. Each test has its own bridge
//! name and 10.250.N.0 CIDR (nothing on the host uses 10.250/16) and a tempdir, and a Drop guard that
//! unmounts every namespace file and deletes the bridge, pass or fail. Traffic goes only to our Pod IPs.

use std::collections::HashSet;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::*;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the network tests create bridges, namespaces and mounts: run them as root"
    );
}

/// Unique per test in this process, ≤ 15 bytes: "k1sn" + pid hex (≤ 6) + counter hex.
fn bridge_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("k1sn{:x}{:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Owns a test's bridge and tempdir; cleans both up on drop.
struct Fixture {
    bridge: String,
    cidr: String,
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new(octet: u8, prefix: u8) -> Fixture {
        require_root();
        let tmp = tempfile::Builder::new().prefix("k1s-net-test").tempdir().expect("tempdir");
        Fixture { bridge: bridge_name(), cidr: format!("10.250.{octet}.0/{prefix}"), tmp }
    }

    fn config(&self) -> NetworkConfig {
        NetworkConfig {
            bridge: self.bridge.clone(),
            pod_cidr: self.cidr.clone(),
            state_dir: self.tmp.path().join("state"),
        }
    }

    async fn network(&self) -> Network {
        Network::new(self.config()).await.expect("Network::new")
    }

    fn pods_dir(&self) -> PathBuf {
        self.tmp.path().join("pods")
    }

    fn pod_dir(&self, key: &str) -> PathBuf {
        self.pods_dir().join(key)
    }

    /// Lines of /proc/self/mountinfo that mention our tempdir.
    fn our_mounts(&self) -> Vec<String> {
        let needle = self.tmp.path().to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    fn claims(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.tmp.path().join("state/ipam"))
            .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Host veths still enslaved to our bridge.
    fn bridge_ports(&self) -> Vec<String> {
        let out = Command::new("ip").args(["-o", "link", "show", "master", &self.bridge]).output().expect("ip link");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Err(e) = reset(&self.bridge, self.tmp.path()) {
            eprintln!("cleanup of {}: {e}", self.bridge);
        }
        let left = self.our_mounts();
        if !left.is_empty() && !std::thread::panicking() {
            panic!("mounts left after reset: {left:?}");
        }
    }
}

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// One ICMP echo to `ip` (always one of our Pod IPs), from the host or from inside `netns`.
fn ping(netns: Option<&Path>, ip: Ipv4Addr) -> (bool, String) {
    let ip = ip.to_string();
    // Debian's iputils ping is not installed here; busybox's is.
    let ping: &[&str] = if Path::new("/bin/busybox").exists() { &["busybox", "ping"] } else { &["ping"] };
    let mut args: Vec<String> = Vec::new();
    if let Some(ns) = netns {
        args.push(format!("--net={}", ns.display()));
    }
    args.extend(ping.iter().map(|s| s.to_string()));
    args.extend(["-c1", "-W1", &ip].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if netns.is_some() {
        run("nsenter", &args)
    } else {
        run(args[0], &args[1..])
    }
}

fn assert_torn_down(fx: &Fixture, net: &Network, key: &str) {
    let dir = fx.pod_dir(key);
    assert_eq!(net.ip_of(key), None, "{key}: IP still allocated");
    for name in ["net", "ipc", "uts"] {
        assert!(!dir.join(name).exists(), "{key}: {name} file left");
    }
    let needle = dir.to_string_lossy().into_owned();
    let left: Vec<String> = fx.our_mounts().into_iter().filter(|l| l.contains(&needle)).collect();
    assert!(left.is_empty(), "{key}: mounts left: {left:?}");
}

#[test]
fn network_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Network>();
}

#[tokio::test]
async fn two_pods_distinct_ips_reachable_and_torn_down() {
    let fx = Fixture::new(1, 24);
    let net = fx.network().await;
    assert_eq!(net.gateway(), Ipv4Addr::new(10, 250, 1, 1));
    assert_eq!(net.prefix_len(), 24);
    // Idempotent on an existing bridge.
    let again = fx.network().await;
    drop(again);

    let a = net.setup_pod("uid-a", &fx.pod_dir("uid-a"), "pod-a").await.expect("setup a");
    let b = net.setup_pod("uid-b", &fx.pod_dir("uid-b"), "pod-b").await.expect("setup b");
    let (ip_a, ip_b) = (a.ip.unwrap(), b.ip.unwrap());
    assert_ne!(ip_a, ip_b);
    assert_eq!(net.ip_of("uid-a"), Some(ip_a));
    assert_eq!(a.gateway, Some(net.gateway()));
    assert_eq!(a.prefix_len, 24);
    assert_eq!(a.netns.as_deref(), Some(fx.pod_dir("uid-a").join("net").as_path()));
    assert_eq!(a.ipcns, fx.pod_dir("uid-a").join("ipc"));
    let veth = a.host_veth.clone().unwrap();
    assert!(veth.len() <= 15 && veth.starts_with("vk"), "{veth}");
    assert_ne!(a.host_veth, b.host_veth);
    assert_eq!(fx.bridge_ports().len(), 2, "{:?}", fx.bridge_ports());

    let netns_a = a.netns.clone().unwrap();
    let netns_b = b.netns.clone().unwrap();
    let (ok, out) = run("nsenter", &[&format!("--net={}", netns_a.display()), "ip", "-4", "addr", "show", "eth0"]);
    assert!(ok && out.contains(&format!("inet {ip_a}/24")), "eth0 in pod a: {out}");
    let (ok, out) = run("nsenter", &[&format!("--net={}", netns_a.display()), "ip", "route"]);
    assert!(ok && out.contains("default via 10.250.1.1 dev eth0"), "routes in pod a: {out}");
    let (ok, out) = run("nsenter", &[&format!("--net={}", netns_a.display()), "ip", "link", "show", "lo"]);
    assert!(ok && out.contains("UP"), "lo in pod a: {out}");
    let (ok, out) = run("nsenter", &[&format!("--uts={}", a.utsns.as_ref().unwrap().display()), "hostname"]);
    assert!(ok && out.trim() == "pod-a", "hostname in pod a: {out}");
    let (ok, out) = run("nsenter", &[&format!("--ipc={}", a.ipcns.display()), "true"]);
    assert!(ok, "ipc ns of pod a: {out}");

    let (ok, out) = ping(None, ip_a);
    assert!(ok, "host -> pod a: {out}");
    let (ok, out) = ping(None, ip_b);
    assert!(ok, "host -> pod b: {out}");
    let (ok, out) = ping(Some(&netns_a), ip_b);
    assert!(ok, "pod a -> pod b: {out}");
    let (ok, out) = ping(Some(&netns_b), ip_a);
    assert!(ok, "pod b -> pod a: {out}");

    net.teardown_pod("uid-a", &fx.pod_dir("uid-a")).expect("teardown a");
    assert_torn_down(&fx, &net, "uid-a");
    net.teardown_pod("uid-a", &fx.pod_dir("uid-a")).expect("second teardown is a no-op");
    assert_eq!(fx.claims(), vec![ip_b.to_string()]);
    let (ok, out) = ping(Some(&netns_b), net.gateway());
    assert!(ok, "pod b -> gateway after a went: {out}");

    net.teardown_pod("uid-b", &fx.pod_dir("uid-b")).expect("teardown b");
    assert_torn_down(&fx, &net, "uid-b");
    assert!(fx.claims().is_empty());
}

#[tokio::test]
async fn host_network_pod_gets_only_an_ipc_namespace() {
    let fx = Fixture::new(2, 24);
    let net = fx.network().await;
    let dir = fx.pod_dir("uid-h");
    let p = net.setup_host_network_pod("uid-h", &dir).await.expect("setup");
    assert_eq!((p.ip, p.netns.clone(), p.utsns.clone(), p.host_veth.clone()), (None, None, None, None));
    assert_eq!(p.ipcns, dir.join("ipc"));
    assert!(!dir.join("net").exists() && !dir.join("uts").exists());
    let host_ipc = fs::read_link("/proc/self/ns/ipc").unwrap();
    let (ok, out) = run("nsenter", &[&format!("--ipc={}", p.ipcns.display()), "readlink", "/proc/self/ns/ipc"]);
    assert!(ok && Path::new(out.trim()) != host_ipc, "pod ipc ns {out} vs host {host_ipc:?}");
    assert_eq!(net.ip_of("uid-h"), None);
    assert!(fx.claims().is_empty());
    net.teardown_pod("uid-h", &dir).expect("teardown");
    assert_torn_down(&fx, &net, "uid-h");
}

#[tokio::test]
async fn ipam_survives_a_new_network_and_retain_releases_dropped_keys() {
    let fx = Fixture::new(3, 24);
    let net = fx.network().await;
    let a = net.setup_pod("uid-a", &fx.pod_dir("uid-a"), "a").await.expect("setup a").ip.unwrap();
    let b = net.setup_pod("uid-b", &fx.pod_dir("uid-b"), "b").await.expect("setup b").ip.unwrap();
    drop(net);

    // An agent restart: a new Network on the same state dir, and only uid-a still exists.
    let net = fx.network().await;
    assert_eq!(net.ip_of("uid-a"), Some(a));
    assert_eq!(net.ip_of("uid-b"), Some(b));
    let live: HashSet<String> = ["uid-a".to_string()].into();
    let kept = net.retain(&live).expect("retain");
    assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![("uid-a".to_string(), a)]);
    assert_eq!(net.ip_of("uid-b"), None);
    assert_eq!(fx.claims(), vec![a.to_string()]);
    // A new Pod gets neither a's address nor, right away, b's.
    let c = net.setup_pod("uid-c", &fx.pod_dir("uid-c"), "c").await.expect("setup c").ip.unwrap();
    assert!(c != a && c != b, "c got {c}, a {a}, b {b}");
    // The surviving Pod is still reachable.
    let (ok, out) = ping(None, a);
    assert!(ok, "host -> pod a after restart: {out}");

    for key in ["uid-a", "uid-b", "uid-c"] {
        net.teardown_pod(key, &fx.pod_dir(key)).expect("teardown");
        assert_torn_down(&fx, &net, key);
    }
    assert!(fx.claims().is_empty());
}

#[tokio::test]
async fn small_cidr_exhausts_with_a_clear_error() {
    let fx = Fixture::new(4, 29);
    let net = fx.network().await;
    let mut ips = HashSet::new();
    for i in 0..5 {
        let key = format!("uid-{i}");
        let p = net.setup_pod(&key, &fx.pod_dir(&key), &key).await.expect("setup within capacity");
        assert!(ips.insert(p.ip.unwrap()));
    }
    let full = fx.pod_dir("uid-full");
    let e = net.setup_pod("uid-full", &full, "full").await.expect_err("a /29 holds 5 pods");
    assert!(matches!(e, NetworkError::Exhausted { capacity: 5, .. }), "{e:?}");
    assert!(e.to_string().contains("10.250.4.0/29"), "{e}");
    assert!(!full.exists(), "an exhausted setup creates nothing");
    net.teardown_pod("uid-2", &fx.pod_dir("uid-2")).expect("teardown");
    let p = net.setup_pod("uid-full", &full, "full").await.expect("room again");
    assert!(ips.contains(&p.ip.unwrap()));
}

#[tokio::test]
async fn setup_teardown_cycles_reuse_ips_without_leaks() {
    let fx = Fixture::new(5, 29);
    let net = fx.network().await;
    let mut seen = HashSet::new();
    for i in 0..20 {
        let key = format!("uid-{i}");
        let dir = fx.pod_dir(&key);
        let p = net.setup_pod(&key, &dir, "cycle").await.unwrap_or_else(|e| panic!("cycle {i}: {e}"));
        seen.insert(p.ip.unwrap());
        let (ok, out) = ping(None, p.ip.unwrap());
        assert!(ok, "cycle {i}: host -> pod: {out}");
        net.teardown_pod(&key, &dir).expect("teardown");
        assert_torn_down(&fx, &net, &key);
    }
    assert_eq!(seen.len(), 5, "20 cycles through a /29 reuse all 5 addresses: {seen:?}");
    assert!(fx.claims().is_empty());
    assert!(fx.our_mounts().is_empty(), "{:?}", fx.our_mounts());
    // The kernel reaps each veth with its netns, shortly after the unmount.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fx.bridge_ports().is_empty() {
        assert!(Instant::now() < deadline, "veths not reaped: {:?}", fx.bridge_ports());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn failed_or_cancelled_setup_leaves_nothing() {
    let fx = Fixture::new(6, 24);
    let net = fx.network().await;

    // A hostname the kernel refuses (> 64 bytes) fails inside the namespace thread.
    let dir = fx.pod_dir("uid-bad");
    let e = net.setup_pod("uid-bad", &dir, &"h".repeat(70)).await.expect_err("hostname too long");
    assert!(matches!(e, NetworkError::Hostname { .. }), "{e:?}");
    assert!(e.to_string().contains("uid-bad"), "{e}");
    assert_torn_down(&fx, &net, "uid-bad");

    // A second setup on a live sandbox is refused and leaves the live one alone.
    let dir = fx.pod_dir("uid-a");
    let a = net.setup_pod("uid-a", &dir, "a").await.expect("setup a");
    let e = net.setup_pod("uid-a", &dir, "a").await.expect_err("already set up");
    assert!(matches!(e, NetworkError::SandboxExists { .. }), "{e:?}");
    assert_eq!(net.ip_of("uid-a"), a.ip);
    let (ok, out) = ping(None, a.ip.unwrap());
    assert!(ok, "the first sandbox still works: {out}");

    // Dropping the future while the namespace thread works: the thread cleans up after itself.
    let dir = fx.pod_dir("uid-cancel");
    let r = tokio::time::timeout(Duration::from_micros(1), net.setup_pod("uid-cancel", &dir, "c")).await;
    assert!(r.is_err(), "expected the setup to be cancelled");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let needle = dir.to_string_lossy().into_owned();
        let left: Vec<String> = fx.our_mounts().into_iter().filter(|l| l.contains(&needle)).collect();
        if left.is_empty() && !dir.join("net").exists() {
            break;
        }
        assert!(Instant::now() < deadline, "cancelled setup left {left:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(net.ip_of("uid-cancel"), None);

    net.teardown_pod("uid-a", &fx.pod_dir("uid-a")).expect("teardown");
    assert!(fx.claims().is_empty());
}

#[tokio::test]
async fn reset_unmounts_everything_and_deletes_the_bridge() {
    let fx = Fixture::new(7, 24);
    let net = fx.network().await;
    net.setup_pod("uid-a", &fx.pod_dir("uid-a"), "a").await.expect("setup a");
    net.setup_host_network_pod("uid-h", &fx.pod_dir("nested/uid-h")).await.expect("setup h");
    assert_eq!(ns::nsfs_mounts_under(&fx.pods_dir()).unwrap().len(), 4);
    reset(&fx.bridge, &fx.pods_dir()).expect("reset");
    assert!(fx.our_mounts().is_empty(), "{:?}", fx.our_mounts());
    let (ok, _) = run("ip", &["link", "show", &fx.bridge]);
    assert!(!ok, "bridge {} still exists", fx.bridge);
    reset(&fx.bridge, &fx.pods_dir()).expect("reset is idempotent");
}

/// Not an assertion on time: prints p50/p99 of 50 setup_pod calls in a row, then of their 50 teardowns
/// (run with --nocapture to see them), and checks that everything was reaped.
#[tokio::test]
async fn setup_pod_timings() {
    let fx = Fixture::new(8, 24);
    let net = fx.network().await;
    let mut setup = Vec::new();
    let mut teardown = Vec::new();
    for i in 0..50 {
        let key = format!("uid-{i}");
        let t = Instant::now();
        net.setup_pod(&key, &fx.pod_dir(&key), "timing").await.expect("setup");
        setup.push(t.elapsed());
    }
    assert_eq!(fx.bridge_ports().len(), 50);
    for i in 0..50 {
        let key = format!("uid-{i}");
        let t = Instant::now();
        net.teardown_pod(&key, &fx.pod_dir(&key)).expect("teardown");
        teardown.push(t.elapsed());
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize].as_micros()
    };
    println!(
        "setup_pod x{}: p50 {} µs, p99 {} µs; teardown_pod x{}: p50 {} µs, p99 {} µs",
        setup.len(),
        pct(&mut setup, 0.5),
        pct(&mut setup, 0.99),
        teardown.len(),
        pct(&mut teardown, 0.5),
        pct(&mut teardown, 0.99)
    );
    assert!(fx.claims().is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fx.bridge_ports().is_empty() {
        assert!(Instant::now() < deadline, "veths not reaped: {}", fx.bridge_ports().len());
        std::thread::sleep(Duration::from_millis(20));
    }
}
