//! Pseudo-terminals for `tty: true` containers and `kubectl exec -t`, and passing descriptors between
//! processes (SCM_RIGHTS): what lets a terminal live in the container's own devpts while the shim or the
//! agent holds its master side.
//!
//! The pty is always opened from the container's devpts instance (`<rootfs>/dev/ptmx`, or
//! `/proc/<pid>/root/dev/ptmx` from outside), never the host's: `tty` inside the container then names a
//! `/dev/pts/N` that exists there, and the host's devpts stays out of the container's sight.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Open a new pty through the `ptmx` at `ptmx`: (master, slave), both close-on-exec, the slave not made the
/// caller's controlling terminal.
pub fn open(ptmx: &Path) -> io::Result<(OwnedFd, OwnedFd)> {
    let master: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(ptmx)?
        .into();
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int through the pointer, which lives across the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // TIOCGPTPEER (Linux 4.13) opens the slave from the master itself, so it is the right devpts instance's
    // even when the path the master came through is not reachable by name here (a container's /proc root).
    // SAFETY: the ioctl returns a new descriptor or -1; no memory is passed.
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor we were just given and own.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

/// Set the terminal's window size (what `stty size` and full-screen programs read; the foreground process
/// group gets SIGWINCH).
pub fn set_size(fd: BorrowedFd<'_>, width: u16, height: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize through the pointer, which lives across the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Make the terminal on `fd` the calling process's controlling terminal (after `setsid`).
pub fn make_controlling(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    if unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Send `data` with the descriptors `fds` attached over a unix socket.
pub fn send_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [io::IoSlice::new(data)];
    let cmsgs: Vec<ControlMessage> = if fds.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(fds)] };
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None).map_err(io::Error::from)?;
    Ok(())
}

/// Receive one message and the descriptors attached to it (close-on-exec). `Ok(None)`: the peer closed.
pub fn recv_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS gave us these new descriptors; nothing else owns them.
            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    let n = msg.bytes;
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((n, fds)))
}

/// Put a descriptor in non-blocking mode (for tokio's `AsyncFd`).
pub fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: fcntl on a descriptor we hold, integer arguments only.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pty_carries_bytes_and_sizes() {
        if !Path::new("/dev/ptmx").exists() {
            return;
        }
        let (master, slave) = open(Path::new("/dev/ptmx")).unwrap();
        set_size(master.as_fd(), 123, 45).unwrap();
        let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCGWINSZ writes a winsize through the pointer.
        assert_eq!(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) }, 0);
        assert_eq!((ws.ws_col, ws.ws_row), (123, 45));
        nix::unistd::write(&slave, b"hi\n").unwrap();
        let mut buf = [0u8; 16];
        let n = nix::unistd::read(&master, &mut buf).unwrap();
        // The line discipline turns \n into \r\n on output, as on any terminal.
        assert_eq!(&buf[..n], b"hi\r\n");
    }

    #[test]
    fn descriptors_pass_over_a_socket() {
        let (a, b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send_fds(a.as_fd(), b"x", &[w.as_raw_fd()]).unwrap();
        drop(w);
        let mut buf = [0u8; 8];
        let (n, fds) = recv_fds(b.as_fd(), &mut buf).unwrap().unwrap();
        assert_eq!((n, fds.len()), (1, 1));
        nix::unistd::write(&fds[0], b"ok").unwrap();
        let n = nix::unistd::read(&r, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"ok");
        drop(a);
        assert!(recv_fds(b.as_fd(), &mut buf).unwrap().is_none());
    }
}
