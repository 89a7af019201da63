//! Interactive sessions with a container, as the API server's streaming edge consumes them: `kubectl exec`
//! (piped or on a terminal) and `kubectl attach` (to the container's own stdio, through its shim's attach
//! socket — see `runtime::shim` for the protocol).

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use nix::sys::socket::{connect, recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use crate::exec::{self, ExecError};
use crate::runtime::{pty, shim, spec, ContainerSpec, Runtime};

/// A running session. The streams that were asked for (and exist) are `Some`.
pub struct Session {
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    pub stdout: Option<Pin<Box<dyn AsyncRead + Send>>>,
    pub stderr: Option<Pin<Box<dyn AsyncRead + Send>>>,
    /// Window sizes `(width, height)` for the terminal, when there is one.
    pub resize: Option<mpsc::Sender<(u16, u16)>>,
    /// Whether the session is on a terminal (then there is no separate stderr).
    pub tty: bool,
    /// Resolves when the command ends (attach: when the container's output ends). Dropping it before then
    /// ends the session: the exec'd command is killed, the attach connection closed.
    pub exit: Pin<Box<dyn Future<Output = io::Result<std::process::ExitStatus>> + Send>>,
}

/// What a session should carry.
#[derive(Debug, Clone, Copy)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// A non-blocking descriptor (pipe end, terminal master, socket) as tokio I/O.
pub struct FdIo(AsyncFd<OwnedFd>);

impl FdIo {
    pub fn new(fd: OwnedFd) -> io::Result<FdIo> {
        pty::set_nonblocking(&fd)?;
        // SAFETY: the OwnedFd stays open, and the same descriptor, for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(FdIo(fd))
    }
}

impl AsyncRead for FdIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(io::Error::from)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // A terminal master reads EIO once the last slave descriptor is gone: that is its EOF.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for FdIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Apply window sizes to a terminal until the sender goes away.
fn resizer(term: OwnedFd) -> mpsc::Sender<(u16, u16)> {
    let (tx, mut rx) = mpsc::channel::<(u16, u16)>(4);
    tokio::spawn(async move {
        while let Some((w, h)) = rx.recv().await {
            if let Err(e) = pty::set_size(term.as_fd(), w, h) {
                tracing::debug!(error = %e, "setting a terminal's size");
            }
        }
    });
    tx
}

/// `kubectl exec`: run `command` in the running `container`.
pub fn exec(rt: &Runtime, uid: &str, container: &str, command: &[String], s: Streams) -> Result<Session, ExecError> {
    if !s.tty {
        let mut child = exec::spawn(rt, uid, container, command, s.stdin)?;
        let stdin = child.stdin.take().map(|w| Box::pin(w) as Pin<Box<dyn AsyncWrite + Send>>);
        let stdout = child.stdout.take().filter(|_| s.stdout).map(|r| Box::pin(r) as Pin<Box<dyn AsyncRead + Send>>);
        let stderr = child.stderr.take().filter(|_| s.stderr).map(|r| Box::pin(r) as Pin<Box<dyn AsyncRead + Send>>);
        // kill_on_drop: dropping the future (the client left) kills the helper and with it the command.
        let exit = Box::pin(async move { child.wait().await });
        return Ok(Session { stdin, stdout, stderr, resize: None, tty: false, exit });
    }
    let (mut child, master) = exec::spawn_tty(rt, uid, container, command)?;
    let spawn = |e: io::Error| ExecError::Spawn(e);
    let reader = FdIo::new(master.try_clone().map_err(spawn)?).map_err(spawn)?;
    let stdin = if s.stdin { Some(Box::pin(FdIo::new(master.try_clone().map_err(spawn)?).map_err(spawn)?) as Pin<Box<dyn AsyncWrite + Send>>) } else { None };
    let stdout = s.stdout.then(|| Box::pin(reader) as Pin<Box<dyn AsyncRead + Send>>);
    let resize = Some(resizer(master));
    let exit = Box::pin(async move { child.wait().await });
    Ok(Session { stdin, stdout, stderr: None, resize, tty: true, exit })
}

/// `kubectl attach`: the running container's own stdio. The terminal setting is the container's (upstream:
/// it cannot change once the process runs); stdin is given only when the container has `stdin: true`.
pub async fn attach(rt: &Runtime, uid: &str, container: &str, s: Streams) -> Result<Session, ExecError> {
    let dir = exec::running_dir(rt, uid, container).ok_or_else(|| ExecError::NotRunning(format!("container {container} is not running")))?;
    let cspec: ContainerSpec = spec::read_json(&dir.join(spec::SPEC)).map_err(ExecError::Spawn)?;
    let name = shim::attach_name(&cspec.id);
    // Connecting and the shim's hello are quick, but blocking calls: off the async threads (no namespace is
    // entered, so the blocking pool is fine).
    let (sock, flags, fds) = tokio::task::spawn_blocking(move || -> io::Result<(OwnedFd, u8, Vec<OwnedFd>)> {
        let sock = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)?;
        connect(sock.as_raw_fd(), &UnixAddr::new_abstract(name.as_bytes())?)?;
        let tv = nix::sys::time::TimeVal::new(5, 0);
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)?;
        let mut b = [0u8; 4];
        let (n, fds) = pty::recv_fds(sock.as_fd(), &mut b)?.ok_or_else(|| io::Error::other("the shim closed the attach connection"))?;
        Ok((sock, if n > 0 { b[0] } else { 0 }, fds))
    })
    .await
    .map_err(|e| ExecError::Spawn(io::Error::other(e)))?
    .map_err(|e| ExecError::Spawn(io::Error::other(format!("attaching to the container's shim: {e}"))))?;
    let tty = flags & shim::ATTACH_TTY != 0;
    let term_or_stdin = fds.into_iter().next();
    let sock = Arc::new(FdIo::new(sock).map_err(ExecError::Spawn)?);

    let stdin = match (&term_or_stdin, s.stdin && flags & shim::ATTACH_STDIN != 0) {
        (Some(fd), true) => {
            let _ = send(sock.0.as_raw_fd(), b"s", MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL);
            let w = FdIo::new(fd.try_clone().map_err(ExecError::Spawn)?).map_err(ExecError::Spawn)?;
            Some(Box::pin(AttachStdin { w: Some(w), sock: sock.clone() }) as Pin<Box<dyn AsyncWrite + Send>>)
        }
        _ => None,
    };
    let resize = match (tty, term_or_stdin) {
        (true, Some(fd)) => Some(resizer(fd)),
        _ => None,
    };
    let (out_r, out_w) = tokio::io::simplex(64 * 1024);
    let (err_r, err_w) = tokio::io::simplex(64 * 1024);
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let (want_out, want_err) = (s.stdout, s.stderr && !tty);
    tokio::spawn(async move {
        tokio::select! {
            () = copy_records(&sock, want_out.then_some(out_w), want_err.then_some(err_w)) => {}
            _ = cancel_rx => {}
        }
        let _ = done_tx.send(());
    });
    // The guard lives in the exit future: dropping the session cancels the copy, which closes the connection.
    let exit = Box::pin(async move {
        let _cancel = cancel_tx;
        let _ = done_rx.await;
        Ok(std::process::ExitStatus::from_raw(0))
    });
    let stdout = s.stdout.then(|| Box::pin(out_r) as Pin<Box<dyn AsyncRead + Send>>);
    let stderr = want_err.then(|| Box::pin(err_r) as Pin<Box<dyn AsyncRead + Send>>);
    Ok(Session { stdin, stdout, stderr, resize, tty, exit })
}

/// Copy the shim's output records to the session's streams until the shim closes the connection.
async fn copy_records<W: AsyncWrite + Unpin>(sock: &FdIo, mut out: Option<W>, mut err: Option<W>) {
    let mut buf = vec![0u8; 64 * 1024 + 1];
    loop {
        let n = loop {
            let Ok(mut guard) = sock.0.readable().await else { return };
            match guard.try_io(|fd| recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT).map_err(io::Error::from)) {
                Ok(Ok(n)) => break n,
                Ok(Err(_)) => return,
                Err(_would_block) => continue,
            }
        };
        if n == 0 {
            return;
        }
        let target = match buf[0] {
            1 => out.as_mut(),
            2 => err.as_mut(),
            _ => None,
        };
        if let Some(w) = target {
            // A reader that went away only loses its own stream.
            if w.write_all(&buf[1..n]).await.is_err() {
                if buf[0] == 1 {
                    out = None;
                } else {
                    err = None;
                }
            }
        }
    }
}

/// The container's stdin in an attach session; its shutdown (the client's stdin EOF) tells the shim, which
/// closes its own copy under `stdinOnce` so the container reads EOF.
struct AttachStdin {
    w: Option<FdIo>,
    sock: Arc<FdIo>,
}

impl AsyncWrite for AttachStdin {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.w.as_mut() {
            Some(w) => Pin::new(w).poll_write(cx, data),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.w.take().is_some() {
            let _ = send(self.sock.0.as_raw_fd(), b"c", MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL);
        }
        Poll::Ready(Ok(()))
    }
}
