//! `kubectl port-forward`, the node's half: a TCP connection to a port on the Pod's loopback, made inside
//! the Pod's network namespace (the kubelet's CRI `PortForward` does the same: containerd dials
//! `localhost:port` in the sandbox's netns).
//!
//! Entering a netns changes the calling thread for good, so it never happens on a tokio thread (the house
//! rule, `network/ns.rs`): a throwaway `std::thread` enters the Pod's pinned netns file, connects, and hands
//! the socket back; a socket stays in the netns it was created in, so the connection keeps working from any
//! thread. A hostNetwork Pod shares the host's netns, so its ports are dialled directly.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sched::{setns, CloneFlags};
use tokio::net::TcpStream;

use crate::runtime::{self, Runtime, SandboxInfo};

/// How long a connection to the Pod's port may take (loopback: refused or accepted at once, unless the
/// listener's backlog is full).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PortForwardError {
    /// The Pod has no sandbox on this node (not started yet, or already gone).
    #[error("pod {0} has no running sandbox on this node")]
    NotRunning(String),
    /// Nothing accepted the connection. Worded as containerd's `PortForward` (which the kubelet passes on),
    /// with Go's dial errors: `IPv4: dial tcp4 127.0.0.1:81: connect: connection refused IPv6 …`.
    #[error("failed to connect to localhost:{port} inside namespace of pod {uid}: {detail}")]
    Connect { uid: String, port: u16, detail: String },
    #[error("entering the network namespace {path}: {source}")]
    Netns { path: PathBuf, source: io::Error },
}

/// Connect to `127.0.0.1:port` (then `[::1]:port`) as seen from inside the Pod `uid`.
pub async fn connect(rt: &Runtime, uid: &str, port: u16) -> Result<TcpStream, PortForwardError> {
    let info: SandboxInfo = runtime::spec::read_json(&rt.pod_dir(uid).join("sandbox.json")).map_err(|_| PortForwardError::NotRunning(uid.to_string()))?;
    let netns = match (&info.netns, info.host_network) {
        (_, true) => None,
        (Some(p), false) if runtime::is_mount_point(p) => Some(p.clone()),
        _ => return Err(PortForwardError::NotRunning(uid.to_string())),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let uid_owned = uid.to_string();
    std::thread::Builder::new()
        .name("k1s-portforward".to_string())
        .spawn(move || {
            let _ = tx.send(dial_in(netns.as_deref(), &uid_owned, port));
        })
        .map_err(|source| PortForwardError::Netns { path: info.netns.clone().unwrap_or_default(), source })?;
    let connect_error = |detail: String| PortForwardError::Connect { uid: uid.to_string(), port, detail };
    let stream = rx.await.map_err(|_| connect_error("the dialing thread died".into()))??;
    stream.set_nonblocking(true).and_then(|()| TcpStream::from_std(stream)).map_err(|e| connect_error(e.to_string()))
}

/// On a throwaway thread: enter `netns` (if any) and connect. The thread ends right after, so its changed
/// namespace dies with it.
fn dial_in(netns: Option<&Path>, uid: &str, port: u16) -> Result<StdTcpStream, PortForwardError> {
    if let Some(path) = netns {
        let f = File::open(path).map_err(|source| PortForwardError::Netns { path: path.to_path_buf(), source })?;
        setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| PortForwardError::Netns { path: path.to_path_buf(), source: e.into() })?;
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let s = match StdTcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => s,
        // Upstream tries both loopbacks too (a server may listen on `::1` only).
        Err(e4) => StdTcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|e6| PortForwardError::Connect {
            uid: uid.to_string(),
            port,
            detail: format!("IPv4: dial tcp4 {v4}: connect: {} IPv6 dial tcp6 {v6}: connect: {}", go_error(&e4), go_error(&e6)),
        })?,
    };
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// An OS error as Go prints it (`connection refused`, not `Connection refused (os error 111)`).
fn go_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_ascii_lowercase(),
        None => e.to_string(),
    }
}
