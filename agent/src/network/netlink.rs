//! The netlink requests: the bridge, a Pod's veth (its peer born inside the Pod netns as eth0), and the
//! Pod side's lo, address and default route.
//!
//! Each is the smallest number of RTM_* messages that does the job: the veth, its peer placed in the Pod
//! netns, the host end's bridge port and IFF_UP are one RTM_NEWLINK (moving a link between namespaces
//! afterwards costs ~35 ms, limits.md). The peer cannot be born UP: `veth_newlink` configures the peer
//! before it links the pair, so `veth_open` on it fails with ENOTCONN (seen on 6.18); eth0 goes up from
//! inside the netns, pipelined with the other Pod-side requests.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage, State};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::NetworkError;

/// The name of the Pod's interface inside its netns.
pub(crate) const POD_IFNAME: &str = "eth0";

/// The errno of a netlink NACK, positive (`libc::EEXIST`, ...).
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// The link called `name`: None when there is none.
pub(crate) async fn find_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    let mut links = std::pin::pin!(handle.link().get().match_name(name.to_string()).execute());
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_bridge(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

/// A fixed, locally administered MAC for the bridge, derived from its name. Without one the bridge takes
/// the lowest MAC among its ports, which changes as Pods come and go and leaves every Pod's ARP entry for
/// the gateway stale; fixed per name so it is stable across agent restarts.
fn bridge_mac(name: &str) -> Vec<u8> {
    // DefaultHasher::new() has fixed keys: the same name gives the same MAC in every process.
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    let b = h.finish().to_be_bytes();
    vec![0x02, b[0], b[1], b[2], b[3], b[4]]
}

/// Make sure the bridge `name` exists, carries `gateway/prefix` and is up; return its ifindex.
pub(crate) async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<u32, NetworkError> {
    let err = |step: &'static str| {
        move |error: rtnetlink::Error| NetworkError::Bridge { bridge: name.to_string(), step, error }
    };
    let link = match find_link(handle, name).await.map_err(err("look up the bridge"))? {
        Some(link) => link,
        None => {
            let created =
                handle.link().add(LinkBridge::new(name).address(bridge_mac(name)).build()).execute().await;
            match created {
                // EEXIST: another agent process won the race; fine, it is the same bridge.
                Err(e) if errno(&e) != Some(libc::EEXIST) => return Err(err("create the bridge")(e)),
                _ => {}
            }
            find_link(handle, name)
                .await
                .map_err(err("look up the new bridge"))?
                .ok_or_else(|| err("look up the new bridge")(rtnetlink::Error::RequestFailed))?
        }
    };
    if !is_bridge(&link) {
        return Err(NetworkError::NotABridge { bridge: name.to_string() });
    }
    let index = link.header.index;
    match handle.address().add(index, IpAddr::V4(gateway), prefix).execute().await {
        Err(e) if errno(&e) != Some(libc::EEXIST) => return Err(err("add the gateway address")(e)),
        _ => {}
    }
    handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(err("set up"))?;
    Ok(index)
}

/// One RTM_NEWLINK: veth `host_name` enslaved to the bridge and up, its peer born as eth0 (down, with
/// `pod_mac`) inside the netns behind `netns_fd`.
pub(crate) async fn add_veth(
    handle: &Handle,
    host_name: &str,
    bridge_index: u32,
    netns_fd: RawFd,
    pod_mac: [u8; 6],
) -> Result<(), rtnetlink::Error> {
    let peer = LinkUnspec::new_with_name(POD_IFNAME).setns_by_fd(netns_fd).address(pod_mac.to_vec()).build();
    let veth = LinkVeth::new(host_name, POD_IFNAME)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .controller(bridge_index)
        .up()
        .build();
    handle.link().add(veth).execute().await
}

/// Inside the Pod netns (through a handle opened there): lo and eth0 up, `ip/prefix` on eth0, default
/// route via the gateway; returns eth0's ifindex. The four requests are queued at once; the kernel handles
/// one socket's requests in order, and the order matters: the prefix route of an address is only added on
/// an UP device (`fib_add_ifaddr`), and the default route needs that prefix route to reach the gateway.
pub(crate) async fn configure_pod_side(
    handle: &Handle,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<u32, (&'static str, rtnetlink::Error)> {
    let eth0 = find_link(handle, POD_IFNAME)
        .await
        .map_err(|e| ("look up eth0 in the netns", e))?
        .ok_or(("look up eth0 in the netns", rtnetlink::Error::RequestFailed))?
        .header
        .index;
    // lo is ifindex 1 in every netns (LOOPBACK_IFINDEX).
    // join! polls (and so queues) in argument order.
    let lo = handle.link().set(LinkUnspec::new_with_index(1).up().build()).execute();
    let up = handle.link().set(LinkUnspec::new_with_index(eth0).up().build()).execute();
    let addr = handle.address().add(eth0, IpAddr::V4(ip), prefix).execute();
    let route = handle.route().add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).build()).execute();
    let (lo, up, addr, route) = futures::join!(lo, up, addr, route);
    lo.map_err(|e| ("set lo up", e))?;
    up.map_err(|e| ("set eth0 up", e))?;
    addr.map_err(|e| ("add the pod address to eth0", e))?;
    route.map_err(|e| ("add the default route", e))?;
    Ok(eth0)
}

/// Whether the link `name` is operationally up, asked in a way that also makes it so without waiting.
///
/// A veth end opened before its peer gets its qdisc activated, and its bridge port enabled, only when the
/// kernel's link-watch work processes the carrier-on event; that work needs rtnl and is easily delayed by
/// other netns work, and until it runs the frames sent to the Pod are dropped (and a lost ARP request is
/// only retried after a second). Since Linux 6.8 an RTM_GETLINK for one device runs that device's pending
/// link-watch work synchronously (`rtnl_getlink` → `linkwatch_sync_dev`), so one request settles it.
pub(crate) async fn link_is_up(handle: &Handle, name: &str) -> Result<bool, rtnetlink::Error> {
    let Some(link) = find_link(handle, name).await? else {
        return Ok(false);
    };
    Ok(link.attributes.iter().any(|a| matches!(a, LinkAttribute::OperState(State::Up))))
}

/// Delete the link `name` if it exists (a synchronous RTM_DELLINK: only for `k1s reset`, never per Pod).
pub(crate) async fn delete_link(handle: &Handle, name: &str) -> Result<bool, rtnetlink::Error> {
    let Some(link) = find_link(handle, name).await? else {
        return Ok(false);
    };
    match handle.link().del(link.header.index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}
