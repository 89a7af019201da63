//! The gratuitous ARP a new Pod sends from eth0, as the CNI bridge plugin does: Pod IPs are reused, and
//! the bridge's forwarding table (and any neighbour entry that does not carry the MAC [`pod_mac`] gives)
//! may still point at the previous owner. A gratuitous ARP overrides existing neighbour entries even with
//! `arp_accept=0` (`arp_process`: `is_garp` forces the override), and the bridge learns the new port from
//! the frame.
//!
//! The packet socket is opened inside the Pod netns by the namespace thread (it belongs to the netns it was
//! created in, like the netlink socket) with protocol 0, so it never receives anything.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The MAC of a Pod's eth0: `0a:58` + the IPv4 address (the ovn-kubernetes scheme). Locally administered,
/// unicast, and the same for every Pod that gets this IP, so a neighbour entry that outlived a previous
/// owner of the address is already right.
pub(crate) fn pod_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

/// A send-only AF_PACKET socket in the calling thread's netns.
pub(crate) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments touches no memory of ours; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The 28-byte ARP payload of an announcement: a request whose sender and target IP are both `ip`.
fn announcement(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    p[4] = 6; // hardware address length
    p[5] = 4; // protocol address length
    p[6..8].copy_from_slice(&1u16.to_be_bytes()); // operation: request
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&ip.octets());
    // Target hardware address stays zero (RFC 5227 announcement).
    p[24..28].copy_from_slice(&ip.octets());
    p
}

/// Broadcast one gratuitous ARP for `ip`/`mac` out of `ifindex` through `sock` (a [`packet_socket`]).
pub(crate) fn announce(sock: &OwnedFd, ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    let payload = announcement(mac, ip);
    // SAFETY: sockaddr_ll is plain old data for which all-zero bytes are a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: the buffer and the address are live locals whose lengths are passed alongside them; the
    // kernel only reads them for the duration of the call.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            0,
            (&to as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_layout() {
        let ip = Ipv4Addr::new(10, 42, 0, 7);
        let mac = pod_mac(ip);
        assert_eq!(mac, [0x0a, 0x58, 10, 42, 0, 7]);
        assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
        let p = announcement(mac, ip);
        assert_eq!(&p[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&p[8..14], &mac);
        assert_eq!(&p[14..18], &[10, 42, 0, 7]);
        assert_eq!(&p[18..24], &[0; 6]);
        assert_eq!(&p[24..28], &[10, 42, 0, 7]);
    }
}
