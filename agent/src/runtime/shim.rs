//! The shim: `k1s shim <container-dir>`, our binary re-executed once per container. It lives in its own
//! session (so it outlives a server restart), forks the container init into new pid and mount namespaces,
//! reports the container's PID to the agent, copies stdout/stderr into a CRI-format log file, and when the
//! container ends records its exit code, signal, OOM kill and finish time in `exit.json`.
//!
//! Synchronous and single-threaded on purpose: fork and setns are only sound without other threads.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::sys::socket::{accept4, bind, getsockopt, listen, recv, send, setsockopt, socket, socketpair, sockopt, AddressFamily, Backlog, MsgFlags, SockFlag, SockType, UnixAddr};
use nix::unistd::{fork, pipe2, ForkResult};

use super::init::{self, InitFds};
use super::pty;
use super::spec::{self, ContainerSpec, Exit, State};

/// Now as RFC 3339 with nanoseconds in UTC (`2026-11-24T01:02:03.123456789Z`, the CRI log format's
/// RFC3339Nano without trailing-zero trimming, which parsers accept). Hand-rolled so the shim's copy loop
/// touches little code (its resident size is a budget).
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339_nanos(d.as_secs() as i64, d.subsec_nanos())
}

fn rfc3339_nanos(secs: i64, nanos: u32) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil (http://howardhinnant.github.io/date_algorithms.html).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = String::with_capacity(30);
    for (sep, v, width) in [
        (None, year, 4),
        (Some('-'), month, 2),
        (Some('-'), day, 2),
        (Some('T'), rem / 3600, 2),
        (Some(':'), rem % 3600 / 60, 2),
        (Some(':'), rem % 60, 2),
        (Some('.'), i64::from(nanos), 9),
    ] {
        if let Some(c) = sep {
            out.push(c);
        }
        let digits = v.to_string();
        for _ in digits.len()..width {
            out.push('0');
        }
        out.push_str(&digits);
    }
    out.push('Z');
    out
}

/// Entry point of `k1s shim DIR`. Returns the process exit code.
pub fn main(dir: &Path) -> i32 {
    // First process (A): its own session, so a server restart (or the server's process group being killed)
    // does not take the containers with it. The agent waits for A, so it leaves at once; the real shim (B) is
    // its child, which init adopts. A kill of the server's group that lands before this line stops A before it
    // started anything: the agent's recovery finds the attempt never started and starts it again.
    let _ = nix::unistd::setsid();
    // SAFETY: single-threaded at this point (the binary's main dispatches here before starting any runtime).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
        Err(e) => {
            report(&format!("{{\"error\":\"fork: {e}\"}}"));
            return 1;
        }
    }
    match run(dir) {
        Ok(()) => 0,
        Err(e) => {
            report(&serde_json::json!({ "error": e }).to_string());
            1
        }
    }
}

/// One JSON line to the agent on stdout, then stdout goes to /dev/null (the agent stops reading).
fn report(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        // SAFETY: replacing our own stdout descriptor.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

fn run(dir: &Path) -> Result<(), String> {
    let spec: ContainerSpec = spec::read_json(&dir.join(spec::SPEC)).map_err(|e| e.to_string())?;
    let mut log = LogWriter::open(&spec.log_path, spec.log_max_bytes).map_err(|e| format!("opening log {}: {e}", spec.log_path.display()))?;

    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let (sync_r, sync_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    // stdin: a pipe whose write end the shim keeps (and hands to attach sessions); with a terminal, the
    // terminal's master instead, which the container's init sends back over `console`.
    let (stdin_r, stdin_w) = if spec.stdin && !spec.tty { pipe2(OFlag::O_CLOEXEC).map(|(r, w)| (Some(r), Some(w))).map_err(|e| e.to_string())? } else { (None, None) };
    let (console_shim, console_init) = if spec.tty {
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map(|(a, b)| (Some(a), Some(b))).map_err(|e| format!("socketpair: {e}"))?
    } else {
        (None, None)
    };
    let attach = attach_listener(&spec.id).map_err(|e| format!("attach socket: {e}"))?;
    let open = |p: &Option<PathBuf>| -> Result<Option<File>, String> {
        p.as_ref().map(|p| File::open(p).map_err(|e| format!("opening namespace {}: {e}", p.display()))).transpose()
    };
    let fds = InitFds {
        stdout: out_w,
        stderr: err_w,
        stdin: stdin_r,
        console: console_init,
        netns: open(&spec.netns)?,
        ipcns: open(&spec.ipcns)?,
        utsns: open(&spec.utsns)?,
        cgroup_procs: spec
            .cgroup_procs
            .iter()
            .map(|p| OpenOptions::new().write(true).open(p).map_err(|e| format!("opening {}: {e}", p.display())))
            .collect::<Result<_, _>>()?,
    };

    // The next child is PID 1 of a new pid namespace (unshare(NEWPID) only affects children), unless the Pod
    // asked for the host's (hostPID).
    if let Some(ns) = &spec.pid_ns {
        // An ephemeral container joins its target's pid namespace (setns(NEWPID) too only affects children).
        let f = File::open(ns).map_err(|e| format!("opening the target's pid namespace {}: {e}", ns.display()))?;
        nix::sched::setns(&f, CloneFlags::CLONE_NEWPID).map_err(|e| format!("joining the target's pid namespace: {e}"))?;
    } else if !spec.host_pid {
        unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare(CLONE_NEWPID): {e}"))?;
    }
    // SAFETY: this process is single-threaded.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop((out_r, err_r, sync_r, stdin_w, console_shim, attach));
            let msg = init::run(&spec, dir, fds);
            let mut w = File::from(sync_w);
            let _ = w.write_all(msg.as_bytes());
            // SAFETY: leave without running the parent's atexit handlers or destructors.
            unsafe { libc::_exit(127) };
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return Err(format!("fork: {e}")),
    };
    drop(fds);
    drop(sync_w);

    // The sync pipe is close-on-exec: EOF with no message means exec succeeded.
    let mut msg = String::new();
    let _ = std::io::Read::read_to_string(&mut File::from(sync_r), &mut msg);
    if !msg.is_empty() {
        let _ = waitpid(child, None);
        let exit = Exit { exit_code: 128, signal: None, oom_killed: false, finished_at: now_rfc3339(), start_error: Some(msg.clone()), message: None };
        let _ = log.write(Stream::Stderr, format!("k1s: {msg}\n").as_bytes());
        let _ = log.flush_partial(Stream::Stderr);
        spec::write_json(&dir.join(spec::EXIT), &exit).map_err(|e| e.to_string())?;
        report(&serde_json::json!({ "error": msg, "start_error": true }).to_string());
        return Ok(());
    }
    // The terminal's master was sent before exec, so it is waiting in the socket now.
    let terminal = match &console_shim {
        Some(sock) => match pty::recv_fds(sock.as_fd(), &mut [0u8; 4]) {
            Ok(Some((_, mut fds))) if !fds.is_empty() => Some(fds.remove(0)),
            _ => return Err("the container's init sent no terminal".into()),
        },
        None => None,
    };
    drop(console_shim);
    let state = State { shim_pid: std::process::id() as i32, pid: child.as_raw(), started_at: now_rfc3339() };
    spec::write_json(&dir.join(spec::STATE), &state).map_err(|e| e.to_string())?;
    report(&serde_json::to_string(&state).unwrap_or_default());
    trim_code_pages();
    // The same for the heap: start-up's JSON and strings are freed, but glibc keeps the pages.
    // SAFETY: malloc_trim only returns free heap memory to the kernel; no pointer is invalidated.
    unsafe { libc::malloc_trim(0) };

    let stdin_keep = match &terminal {
        Some(t) if spec.stdin => t.try_clone().ok(),
        _ => stdin_w,
    };
    let mut io = Io { outputs: [Some(out_r), Some(err_r), terminal], attach, clients: Vec::new(), stdin: stdin_keep, stdin_once: spec.stdin_once, tty: spec.tty };
    io.pump(&mut log);
    drop(io);
    let status = waitpid(child, None);
    let (exit_code, signal) = match status {
        Ok(WaitStatus::Exited(_, code)) => (code, None),
        Ok(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    let oom_killed = signal == Some(libc::SIGKILL) && spec.oom_file.as_deref().is_some_and(oom_kills_recorded);
    let exit = Exit { exit_code, signal, oom_killed, finished_at: now_rfc3339(), start_error: None, message: None };
    spec::write_json(&dir.join(spec::EXIT), &exit).map_err(|e| e.to_string())
}

/// The shim is the whole k1s binary, but after start-up it only copies pipes to a file and waits: give back
/// the file pages start-up touched (argument parsing, JSON, ...). Only clean, read-only, file-backed mappings
/// are dropped (text and read-only data; relocated data is dirty and stays): the kernel refaults the few
/// pages the copy loop needs from the file. This takes a shim from ~3.6 MB RSS to well under 2 MB.
fn trim_code_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut candidates: Vec<(usize, usize, bool, bool)> = Vec::new(); // (start, end, droppable, is text)
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-').filter(|(a, _)| a.chars().all(|c| c.is_ascii_hexdigit()) && !a.is_empty()) {
            let perms = f.next().unwrap_or("");
            let file_backed = line.contains(" /");
            if file_backed && (perms == "r-xp" || perms == "r--p") {
                if let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                    candidates.push((start, end, true, perms == "r-xp"));
                    continue;
                }
            }
            candidates.push((0, 0, false, false));
            continue;
        }
        // Only Private_Dirty means pages we modified (copy-on-write); Shared_Dirty is the page cache not yet
        // written back (a freshly built binary), which the file still holds.
        if first == "Private_Dirty:" && f.next() != Some("0") {
            // Read-only data with dirty pages is relocated data: it must stay. Text is never written by the
            // program (a dirty text page can only be a debugger's breakpoint), so it is always dropped.
            if let Some(last) = candidates.last_mut().filter(|c| !c.3) {
                last.2 = false;
            }
        }
    }
    for (start, end, clean, _) in candidates {
        if clean && end > start {
            // SAFETY: a clean, read-only, private file mapping of our own: MADV_DONTNEED only drops the
            // page-table entries, and the same bytes are read back from the file on the next access.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
            // SAFETY: an access-pattern hint on the same mapping; no memory is changed.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_RANDOM) };
        }
    }
}

/// Whether the cgroup's OOM-kill counter is non-zero (`oom_kill N` in memory.oom_control (v1) or memory.events (v2)).
fn oom_kills_recorded(file: &Path) -> bool {
    std::fs::read_to_string(file)
        .map(|s| s.lines().any(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse::<u64>().ok()).is_some_and(|n| n > 0)))
        .unwrap_or(false)
}

/// The abstract unix socket name of a container's attach endpoint (no path to clean up, no length limit;
/// only root may connect, checked on accept).
pub fn attach_name(container_id: &str) -> String {
    format!("k1s-attach/{container_id}")
}

/// Attach protocol (SOCK_SEQPACKET, one message per record, so a record is never split):
/// - shim → client, first: one byte of flags (1 = stdin open, 2 = terminal) with the stdin writer (the
///   pipe's write end, or the terminal's master) attached by SCM_RIGHTS when there is one;
/// - shim → client, then: `[1|2, bytes…]` output on stdout/stderr as the container writes it (a terminal's
///   output is stdout); the shim closes the socket when the container's output ends;
/// - client → shim: `s` = this session uses stdin, `c` = its stdin reached EOF. Under `stdinOnce`, a stdin
///   session's EOF or departure closes the shim's copy of stdin, so the container sees EOF.
pub const ATTACH_STDIN: u8 = 1;
pub const ATTACH_TTY: u8 = 2;

fn attach_listener(container_id: &str) -> nix::Result<OwnedFd> {
    let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?;
    bind(fd.as_raw_fd(), &UnixAddr::new_abstract(attach_name(container_id).as_bytes())?)?;
    listen(&fd, Backlog::new(16)?)?;
    Ok(fd)
}

struct Client {
    fd: OwnedFd,
    uses_stdin: bool,
}

/// The shim's file descriptors while the container runs.
struct Io {
    /// stdout pipe, stderr pipe, terminal master (logged as stdout).
    outputs: [Option<OwnedFd>; 3],
    attach: OwnedFd,
    clients: Vec<Client>,
    /// The shim's copy of the container's stdin writer, kept so later attach sessions get one too.
    stdin: Option<OwnedFd>,
    stdin_once: bool,
    tty: bool,
}

impl Io {
    /// Copy the outputs into the log (and to attached clients) until all reach EOF (PID 1 of a pid namespace
    /// dying kills the rest of it, so EOF comes once the container is gone); serve attach sessions meanwhile.
    fn pump(&mut self, log: &mut LogWriter) {
        let mut buf = vec![0u8; 64 * 1024 + 1];
        loop {
            if self.outputs.iter().all(Option::is_none) {
                break;
            }
            // (kind, index): 0 = output i, 1 = listener, 2 = client i.
            let mut which: Vec<(u8, usize)> = Vec::new();
            let mut fds = Vec::new();
            for (i, f) in self.outputs.iter().enumerate() {
                if let Some(f) = f {
                    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                    which.push((0, i));
                }
            }
            fds.push(PollFd::new(self.attach.as_fd(), PollFlags::POLLIN));
            which.push((1, 0));
            for (i, c) in self.clients.iter().enumerate() {
                fds.push(PollFd::new(c.fd.as_fd(), PollFlags::POLLIN));
                which.push((2, i));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
            let ready: Vec<(u8, usize)> = fds.iter().zip(&which).filter(|(p, _)| p.revents().is_some_and(|r| !r.is_empty())).map(|(_, w)| *w).collect();
            drop(fds);
            let mut gone: Vec<usize> = Vec::new();
            for (kind, i) in ready {
                match kind {
                    0 => {
                        let stream = if i == 1 { Stream::Stderr } else { Stream::Stdout };
                        let n = match nix::unistd::read(self.outputs[i].as_ref().expect("open"), &mut buf[1..]) {
                            Ok(n) => n,
                            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
                            // EIO: a terminal whose last slave descriptor closed.
                            Err(_) => 0,
                        };
                        if n == 0 {
                            let _ = log.flush_partial(stream);
                            self.outputs[i] = None;
                            continue;
                        }
                        let _ = log.write(stream, &buf[1..=n]);
                        buf[0] = if i == 1 { 2 } else { 1 };
                        for (ci, c) in self.clients.iter().enumerate() {
                            // Never block the container on a slow client: one that cannot take a record now
                            // is cut off (its kubectl sees the session end), the log still has everything.
                            if send(c.fd.as_raw_fd(), &buf[..=n], MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL).is_err() && !gone.contains(&ci) {
                                gone.push(ci);
                            }
                        }
                    }
                    1 => self.accept(),
                    _ => {
                        let mut b = [0u8; 8];
                        match recv(self.clients[i].fd.as_raw_fd(), &mut b, MsgFlags::MSG_DONTWAIT) {
                            Ok(0) | Err(_) if !gone.contains(&i) => gone.push(i),
                            Ok(n) => {
                                for m in &b[..n] {
                                    match m {
                                        b's' => self.clients[i].uses_stdin = true,
                                        b'c' => self.stdin_closed(),
                                        _ => {}
                                    }
                                }
                            }
                            Err(_) => {}
                        }
                    }
                }
            }
            gone.sort_unstable();
            for i in gone.into_iter().rev() {
                let c = self.clients.remove(i);
                if c.uses_stdin {
                    self.stdin_closed();
                }
            }
        }
    }

    fn stdin_closed(&mut self) {
        if self.stdin_once {
            self.stdin = None;
        }
    }

    fn accept(&mut self) {
        loop {
            let Ok(raw) = accept4(self.attach.as_raw_fd(), SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK) else { return };
            // SAFETY: accept4 returned a new descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // Abstract sockets have no file permissions: only root (the agent) may attach.
            if getsockopt(&fd, sockopt::PeerCredentials).map(|c| c.uid()) != Ok(0) {
                continue;
            }
            let _ = setsockopt(&fd, sockopt::SndBuf, &(1 << 20));
            let flags = if self.stdin.is_some() { ATTACH_STDIN } else { 0 } | if self.tty { ATTACH_TTY } else { 0 };
            // The terminal's master goes along even without stdin: it is how the client sets the window size.
            let extra = if self.tty { self.outputs[2].as_ref() } else { None };
            let fds: Vec<i32> = self.stdin.as_ref().or(extra).map(|f| f.as_raw_fd()).into_iter().collect();
            if pty::send_fds(fd.as_fd(), &[flags], &fds).is_ok() {
                self.clients.push(Client { fd, uses_stdin: false });
            }
        }
    }
}

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The CRI log format (`<RFC3339Nano> <stream> <F|P> <line>`): one line per output line, `P` for the pieces of
/// a line longer than the buffer. Rotated past a size cap, keeping one older file as `<path>.1`.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    pending: [Vec<u8>; 2],
}

fn prefix(out: &mut Vec<u8>, ts: &str, stream: &str, tag: u8) {
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.push(b' ');
    out.push(tag);
    out.push(b' ');
}

/// A line longer than this is written in `P` (partial) pieces, as containerd does.
const MAX_LINE: usize = 16 * 1024;

impl LogWriter {
    pub fn open(path: &Path, max: u64) -> std::io::Result<LogWriter> {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter { path: path.to_path_buf(), file, size, max: max.max(4096), pending: [Vec::new(), Vec::new()] })
    }

    pub fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let idx = stream as usize;
        let mut out = Vec::with_capacity(data.len() + 64);
        let mut rest = data;
        let ts = now_rfc3339();
        let name = if idx == 0 { "stdout" } else { "stderr" };
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let pending = std::mem::take(&mut self.pending[idx]);
            prefix(&mut out, &ts, name, b'F');
            out.extend_from_slice(&pending);
            out.extend_from_slice(&rest[..nl]);
            out.push(b'\n');
            rest = &rest[nl + 1..];
        }
        self.pending[idx].extend_from_slice(rest);
        while self.pending[idx].len() >= MAX_LINE {
            let piece: Vec<u8> = self.pending[idx].drain(..MAX_LINE).collect();
            prefix(&mut out, &ts, name, b'P');
            out.extend_from_slice(&piece);
            out.push(b'\n');
        }
        self.append(&out)
    }

    /// At EOF a trailing line without a newline is still a whole line.
    pub fn flush_partial(&mut self, stream: Stream) -> std::io::Result<()> {
        let idx = stream as usize;
        if self.pending[idx].is_empty() {
            return Ok(());
        }
        let name = if idx == 0 { "stdout" } else { "stderr" };
        let mut out = format!("{} {name} F ", now_rfc3339()).into_bytes();
        out.append(&mut self.pending[idx]);
        out.push(b'\n');
        self.append(&out)
    }

    fn append(&mut self, out: &[u8]) -> std::io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        if self.size > 0 && self.size + out.len() as u64 > self.max {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            std::fs::rename(&self.path, &old)?;
            self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
            self.size = 0;
        }
        self.file.write_all(out)?;
        self.size += out.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_jiff() {
        for (secs, nanos) in [(0i64, 0u32), (951_782_400, 5), (1_700_000_000, 123_456_789), (4_102_444_799, 999_999_999), (1_709_164_800, 1)] {
            let ours = rfc3339_nanos(secs, nanos);
            let theirs = k8s_openapi::jiff::Timestamp::new(secs, nanos as i32).unwrap();
            assert_eq!(ours.parse::<k8s_openapi::jiff::Timestamp>().unwrap(), theirs, "{ours}");
            assert_eq!(ours.len(), 30, "{ours}");
        }
    }
}
