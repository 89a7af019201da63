//! The Pod's namespaces, pinned by bind-mounting them onto files, and their removal.
//!
//! `unshare` changes the namespaces of the calling *thread* for good, so it never runs on a tokio worker or
//! blocking-pool thread (later tasks would silently run inside the Pod): each sandbox gets a throwaway
//! `std::thread` that unshares, pins the new namespaces with bind mounts of `/proc/thread-self/ns/*`,
//! opens a netlink socket inside the new netns (a socket belongs to the netns it was created in), and exits.
//! The namespaces then live as long as their mounts (and any process or fd inside them). Teardown is an
//! `umount2(MNT_DETACH)` and an unlink: the kernel destroys the netns, and the veth in it, once nothing
//! pins it, without us paying for a synchronous RTM_DELLINK (~35 ms, limits.md).

use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use netlink_packet_route::RouteNetlinkMessage;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::NetworkError;

/// File names of the pinned namespaces inside a sandbox directory.
pub(crate) const NET: &str = "net";
pub(crate) const IPC: &str = "ipc";
pub(crate) const UTS: &str = "uts";

/// Which namespaces a sandbox gets.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// net, ipc and uts, with this hostname in the uts namespace.
    Pod { hostname: String },
    /// hostNetwork: the host's net and uts, a private ipc namespace.
    HostNetwork,
}

impl Kind {
    pub(crate) fn names(&self) -> &'static [&'static str] {
        match self {
            Kind::Pod { .. } => &[NET, IPC, UTS],
            Kind::HostNetwork => &[IPC],
        }
    }

    fn flags(&self) -> CloneFlags {
        match self {
            Kind::Pod { .. } => CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS,
            Kind::HostNetwork => CloneFlags::CLONE_NEWIPC,
        }
    }
}

/// The new netns, as the setup needs it: an fd for `IFLA_NET_NS_FD`, a netlink connection and a packet
/// socket (for the gratuitous ARP) opened inside it. Dropping it closes them all, which the caller must
/// do once the setup is over: each of them pins the netns.
pub(crate) struct PodNetns {
    pub(crate) fd: OwnedFd,
    pub(crate) conn: rtnetlink::proto::Connection<RouteNetlinkMessage>,
    pub(crate) handle: rtnetlink::Handle,
    pub(crate) arp: OwnedFd,
}

/// Create the namespaces of `kind` pinned under `dir` (created if missing), on a dedicated thread.
/// On error nothing is left mounted. If the caller stops waiting (its future is dropped), the thread
/// undoes its own work when it finds nobody to hand it to.
pub(crate) async fn create(key: &str, dir: &Path, kind: Kind) -> Result<Option<PodNetns>, NetworkError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The netlink socket is registered with this runtime's reactor from the thread.
    let rt = tokio::runtime::Handle::current();
    let (k, d) = (key.to_string(), dir.to_path_buf());
    std::thread::Builder::new()
        .name("k1s-pod-ns".to_string())
        .spawn(move || {
            let result = create_here(&k, &d, &kind, &rt);
            if let Err(Ok(unclaimed)) = tx.send(result) {
                // Close the socket and fd first: they pin the netns too.
                drop(unclaimed);
                for name in kind.names() {
                    let _ = unmount_and_remove(&d.join(name));
                }
            }
        })
        .map_err(|source| ns_error(key, "spawn the namespace thread", dir, source))?;
    rx.await.map_err(|_| {
        ns_error(key, "wait for the namespace thread", dir, io::Error::other("the thread exited without a result"))
    })?
}

/// Runs on the throwaway thread: everything it does to its own namespaces dies with it.
fn create_here(
    key: &str,
    dir: &Path,
    kind: &Kind,
    rt: &tokio::runtime::Handle,
) -> Result<Option<PodNetns>, NetworkError> {
    fs::create_dir_all(dir).map_err(|e| ns_error(key, "create the sandbox directory", dir, e))?;
    let dir_dev = fs::metadata(dir).map_err(|e| ns_error(key, "stat the sandbox directory", dir, e))?.dev();
    let targets: Vec<PathBuf> = kind.names().iter().map(|n| dir.join(n)).collect();
    // Refuse before touching anything: mounting again would stack a second namespace on a live sandbox.
    for t in &targets {
        match fs::metadata(t) {
            Ok(m) if m.dev() != dir_dev => {
                return Err(NetworkError::SandboxExists { key: key.to_string(), path: t.clone() })
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ns_error(key, "stat the namespace file", t, e)),
        }
    }
    let result = pin_namespaces(key, dir, &targets, kind, rt);
    if result.is_err() {
        for t in &targets {
            let _ = unmount_and_remove(t);
        }
    }
    result
}

fn pin_namespaces(
    key: &str,
    dir: &Path,
    targets: &[PathBuf],
    kind: &Kind,
    rt: &tokio::runtime::Handle,
) -> Result<Option<PodNetns>, NetworkError> {
    for t in targets {
        File::create(t).map_err(|e| ns_error(key, "create the namespace file", t, e))?;
    }
    unshare(kind.flags()).map_err(|e| ns_error(key, "unshare the namespaces for", dir, e.into()))?;
    if let Kind::Pod { hostname } = kind {
        nix::unistd::sethostname(hostname).map_err(|e| NetworkError::Hostname {
            key: key.to_string(),
            hostname: hostname.clone(),
            error: e.into(),
        })?;
    }
    for (name, t) in kind.names().iter().zip(targets) {
        let source = format!("/proc/thread-self/ns/{name}");
        mount(Some(source.as_str()), t, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| ns_error(key, "bind-mount the namespace", t, e.into()))?;
    }
    let Kind::Pod { .. } = kind else {
        return Ok(None);
    };
    let fd: OwnedFd = File::open("/proc/thread-self/ns/net")
        .map_err(|e| ns_error(key, "open the netns", Path::new("/proc/thread-self/ns/net"), e))?
        .into();
    let arp = super::arp::packet_socket()
        .map_err(|error| NetworkError::Socket { context: format!("pod {key}: packet socket in the netns"), error })?;
    let _entered = rt.enter();
    let (conn, handle, _) = rtnetlink::new_connection()
        .map_err(|error| NetworkError::Socket { context: format!("pod {key}: netlink socket in the netns"), error })?;
    Ok(Some(PodNetns { fd, conn, handle, arp }))
}

/// Unmount `path` (every mount stacked on it) and unlink it. Missing or unmounted files are fine.
pub(crate) fn unmount_and_remove(path: &Path) -> io::Result<()> {
    // Bounded: a stack deeper than this is not ours.
    for _ in 0..8 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL) => break, // not a mount point (any more)
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The nsfs mounts (pinned namespaces) at or below `root`, deepest first, from /proc/self/mountinfo.
pub(crate) fn nsfs_mounts_under(root: &Path) -> io::Result<Vec<PathBuf>> {
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(parse_mountinfo_line)
        .filter(|(_, fstype)| fstype == "nsfs")
        .map(|(mount_point, _)| mount_point)
        .filter(|p| p.starts_with(&root))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    Ok(found)
}

/// (mount point, filesystem type) of one mountinfo line (proc(5): `id parent major:minor root mount-point
/// options [optional fields...] - fstype source super-options`).
fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, String)> {
    let mut fields = line.split(' ');
    let mount_point = fields.nth(4)?;
    let fstype = fields.skip_while(|f| *f != "-").nth(1)?;
    Some((PathBuf::from(unescape_octal(mount_point)), fstype.to_string()))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ns_error(key: &str, step: &'static str, path: &Path, source: io::Error) -> NetworkError {
    NetworkError::Namespace { key: key.to_string(), step, path: path.to_path_buf(), error: source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let l = r"612 30 0:4 net:[4026532650] /tmp/a\040b/net rw shared:1 - nsfs nsfs rw";
        assert_eq!(parse_mountinfo_line(l), Some((PathBuf::from("/tmp/a b/net"), "nsfs".to_string())));
        let l = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
        assert_eq!(parse_mountinfo_line(l), Some((PathBuf::from("/mnt2"), "ext3".to_string())));
        assert_eq!(unescape_octal(r"a\134b\011"), "a\\b\t");
        assert_eq!(unescape_octal(r"trail\04"), r"trail\04");
    }
}
