//! `kubectl logs`: read a container's CRI-format log files (`<ts> <stream> <F|P> <text>`), with the options
//! of pods/log (previous, tailLines, sinceSeconds/sinceTime, timestamps, limitBytes, follow).
//!
//! One task per request streams the files in chunks of at most [`CHUNK`] bytes through a channel of
//! [`QUEUE`] chunks, so a reader holds a bounded amount whatever the log's size or the client's speed.
//! Following is event-driven: inotify on the log directory (writes, and the shim's rotation of `<n>.log` to
//! `<n>.log.1`) and on the container directory (`exit.json` appearing), with a slow re-check as a safety net.
//! It ends when the container has exited and the log is drained, or as soon as the client leaves.

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use k8s_openapi::jiff::Timestamp;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::runtime::{spec, Runtime};

/// The most of a log file read (and held) at once, and the most a partial line may grow before it is sent
/// as it is.
const CHUNK: usize = 64 * 1024;
/// Chunks waiting for a slow client; the reader waits while the queue is full. With [`CHUNK`], the bound
/// on what one follower holds (about 5 × 64 KB).
const QUEUE: usize = 4;
/// The safety net under inotify (a lost event, a watch that could not be added): at worst a line is this
/// late.
const RECHECK: Duration = Duration::from_secs(1);
/// When no inotify instance can be had (`fs.inotify.max_user_instances` used up), follow by polling.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<i64>,
    pub since: Option<Timestamp>,
    pub timestamps: bool,
    pub limit_bytes: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
}

/// One log record: a whole line (P pieces joined), or a piece of an over-long line sent before its end.
#[derive(Debug)]
struct Record {
    ts: String,
    text: Vec<u8>,
    /// The line continues a piece already sent: no timestamp in front.
    cont: bool,
    /// The line is complete: a newline after it.
    end: bool,
}

fn attempts(dir: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// The tag of a CRI line (`F` full, `P` partial), None for a line that is not one.
fn tag(line: &[u8]) -> Option<&[u8]> {
    line.splitn(4, |b| *b == b' ').nth(2)
}

/// Parse CRI lines into records; a trailing `P` piece without its `F` stays in `partial`, unless it has
/// grown past [`CHUNK`]: then what there is goes out as a piece (the follower's buffer stays bounded).
fn parse(data: &[u8], partial: &mut Option<Record>, out: &mut Vec<Record>) {
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(4, |b| *b == b' ');
        let (Some(ts), Some(_stream), Some(tag)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let text = parts.next().unwrap_or_default();
        let rec = partial.get_or_insert_with(|| Record { ts: String::from_utf8_lossy(ts).into_owned(), text: Vec::new(), cont: false, end: false });
        rec.text.extend_from_slice(text);
        if tag != b"P" {
            let mut rec = partial.take().expect("set above");
            rec.end = true;
            out.push(rec);
        } else if rec.text.len() >= CHUNK {
            let rec = partial.take().expect("set above");
            *partial = Some(Record { ts: rec.ts.clone(), text: Vec::new(), cont: true, end: false });
            out.push(rec);
        }
    }
}

/// The last `max_lines` lines of a CRI log file, at most `max_bytes` (the newest kept): the kubelet's
/// FallbackToLogsOnError message.
pub fn tail_text(path: &Path, max_lines: usize, max_bytes: usize) -> String {
    let Ok(data) = std::fs::read(path) else { return String::new() };
    let (mut partial, mut recs) = (None, Vec::new());
    parse(&data, &mut partial, &mut recs);
    recs.extend(partial);
    let mut out: Vec<u8> = Vec::new();
    for r in recs.iter().rev().take(max_lines) {
        if out.len() + r.text.len() + 1 > max_bytes {
            let room = max_bytes.saturating_sub(out.len() + 1);
            let mut line = r.text[r.text.len() - room.min(r.text.len())..].to_vec();
            line.push(b'\n');
            line.extend(out);
            out = line;
            break;
        }
        let mut line = r.text.clone();
        line.push(b'\n');
        line.extend(out);
        out = line;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn render_into(out: &mut Vec<u8>, r: &Record, timestamps: bool) {
    if timestamps && !r.cont {
        out.extend_from_slice(r.ts.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&r.text);
    if r.end {
        out.push(b'\n');
    }
}

#[cfg(test)]
fn render(r: &Record, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    render_into(&mut out, r, timestamps);
    out
}

/// The identity of a file, to notice that the path now names another (rotation).
fn inode(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// Where a reader is: in the rotated file (read first), or in the current one.
struct Reader {
    path: PathBuf,
    file: File,
    in_rotated: bool,
    offset: u64,
    partial: Option<Record>,
    /// Records older than this are skipped; None once one was kept (the times only grow).
    since: Option<Timestamp>,
    timestamps: bool,
    /// Bytes still to send (limitBytes).
    budget: u64,
    buf: Vec<u8>,
}

impl Reader {
    /// The next rendered output, up to [`CHUNK`] bytes of file read; None at the end of what is written.
    fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            // Stat before reading: if the path names another file already, the shim has stopped writing
            // ours, so once a read finds nothing more, ours is complete.
            let moved = !self.in_rotated && std::fs::metadata(&self.path).is_ok_and(|m| self.file.metadata().is_ok_and(|f| inode(&f) != inode(&m)));
            self.buf.resize(CHUNK, 0);
            let n = read_full_at(&self.file, &mut self.buf, self.offset)?;
            // Only whole lines: a line still being written is read again next time. A chunk with no newline
            // at all is no line the shim writes (it cuts at 16 KiB): taken whole so the reader moves on.
            let whole = match self.buf[..n].iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if n == CHUNK => n,
                None => 0,
            };
            if whole > 0 {
                self.offset += whole as u64;
                let mut recs = Vec::new();
                parse(&self.buf[..whole], &mut self.partial, &mut recs);
                return Ok(Some(self.render(&recs)));
            }
            if self.in_rotated || moved {
                // On to the current file (after the rotated one, or the new one the shim opened).
                match File::open(&self.path) {
                    Ok(f) => self.file = f,
                    // Between the shim's rename and its reopening: the next wake finds it.
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                }
                self.in_rotated = false;
                self.offset = 0;
                continue;
            }
            return Ok(None);
        }
    }

    fn render(&mut self, recs: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in recs {
            if let Some(s) = self.since {
                match k1s_api::meta::parse_time(&r.ts) {
                    Some(t) if t < s => continue,
                    Some(_) => self.since = None,
                    // A stamp that does not parse is kept, and the next records are still checked.
                    None => {}
                }
            }
            let start = out.len();
            render_into(&mut out, r, self.timestamps);
            let len = (out.len() - start) as u64;
            if len >= self.budget {
                out.truncate(start + self.budget as usize);
                self.budget = 0;
                break;
            }
            self.budget -= len;
        }
        out
    }
}

/// `pread` until `buf` is full or the end of the file.
fn read_full_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Call `f(end_offset, line)` for each whole line of `file` (without its newline), reading [`CHUNK`]
/// bytes at a time. A line longer than a chunk is cut (the shim never writes one).
fn for_each_line(file: &File, mut f: impl FnMut(u64, &[u8])) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = read_full_at(file, &mut buf, offset)?;
        let whole = match buf[..n].iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if n == CHUNK => n,
            None => return Ok(()),
        };
        let mut start = 0;
        for line in buf[..whole].split_inclusive(|b| *b == b'\n') {
            start += line.len();
            f(offset + start as u64, line.strip_suffix(b"\n").unwrap_or(line));
        }
        offset += whole as u64;
    }
}

/// Where the last `n` whole records of `files` (oldest first) begin: (file index, offset). Two passes
/// (count, then find) so that memory stays constant whatever `n` and the log's size.
fn tail_start(files: &[&File], n: u64) -> std::io::Result<(usize, u64)> {
    let is_end = |line: &[u8]| tag(line).is_some_and(|t| t != b"P");
    let mut total = 0u64;
    for f in files {
        for_each_line(f, |_, l| total += u64::from(is_end(l)))?;
    }
    let mut skip = total.saturating_sub(n);
    if skip == 0 {
        return Ok((0, 0));
    }
    for (i, f) in files.iter().enumerate() {
        let mut found = None;
        for_each_line(f, |end, l| {
            if found.is_none() && is_end(l) {
                skip -= 1;
                if skip == 0 {
                    found = Some(end);
                }
            }
        })?;
        if let Some(end) = found {
            return Ok((i, end));
        }
    }
    // The files shrank between the passes (rotated): start at the end of the newest.
    Ok((files.len() - 1, files.last().map_or(Ok(0), |f| f.metadata().map(|m| m.len()))?))
}

/// An inotify instance as tokio wants it (`AsyncFd` needs `AsRawFd`).
struct Watch(Inotify);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Watches on the log directory (appends, rotation) and the container directory (`exit.json` is written to
/// a temporary file and renamed, so IN_MOVED_TO; the directory's removal with the Pod).
fn watch(log_dir: &Path, container_dir: &Path) -> Option<AsyncFd<Watch>> {
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
    use AddWatchFlags as W;
    ino.add_watch(log_dir, W::IN_MODIFY | W::IN_CREATE | W::IN_MOVED_TO | W::IN_CLOSE_WRITE).ok()?;
    // A container directory already gone is seen by the exit check; the re-check covers the rest.
    let _ = ino.add_watch(container_dir, W::IN_CREATE | W::IN_MOVED_TO | W::IN_CLOSE_WRITE | W::IN_DELETE_SELF);
    // SAFETY: `Watch` owns the inotify descriptor, so it stays open and the same for as long as the
    // `AsyncFd` holds it (AsyncFd::register's contract).
    unsafe { AsyncFd::register_with_interest(Watch(ino), tokio::io::Interest::READABLE) }.ok()
}

/// Open a container's log as a byte stream.
pub fn open(rt: &Runtime, uid: &str, pod_name: &str, container: &str, opts: LogOptions) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, LogError> {
    let dir = rt.pod_dir(uid).join("logs").join(container);
    let list = attempts(&dir);
    let attempt = if opts.previous {
        if list.len() < 2 {
            return Err(LogError::BadRequest(format!("previous terminated container \"{container}\" in pod \"{pod_name}\" not found")));
        }
        list[list.len() - 2]
    } else {
        match list.last() {
            Some(a) => *a,
            None => return Err(LogError::BadRequest(format!("container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"))),
        }
    };
    let path = dir.join(format!("{attempt}.log"));
    let mut rotated = path.clone().into_os_string();
    rotated.push(".1");
    let rotated = PathBuf::from(rotated);
    let container_dir = rt.container_dir(uid, container, attempt);
    let exit_file = container_dir.join(spec::EXIT);

    let current = File::open(&path).map_err(|e| LogError::NotFound(format!("log of container {container}: {e}")))?;
    let old = File::open(&rotated).ok();
    let tail = opts.tail_lines.map(|n| n.max(0) as u64);
    let (since, timestamps) = (opts.since, opts.timestamps);
    let budget = opts.limit_bytes.map(|b| b.max(0) as u64).unwrap_or(u64::MAX);
    // Set up before the first read, so nothing written after it goes unnoticed.
    let mut watch = if opts.follow { watch(&dir, &container_dir) } else { None };

    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(QUEUE);
    tokio::spawn(async move {
        // Finding where the last n records begin reads the whole log: not on a runtime thread.
        let start = match tail {
            None => Ok((0, 0, old, current)),
            Some(n) => tokio::task::spawn_blocking(move || {
                let files: Vec<&File> = old.iter().chain([&current]).collect();
                let (index, offset) = tail_start(&files, n)?;
                Ok((index, offset, old, current))
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e))),
        };
        let (index, offset, old, current) = match start {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let in_rotated = old.is_some() && index == 0;
        let file = if in_rotated { old.expect("checked") } else { current };
        let mut reader = Reader { path, file, in_rotated, offset, partial: None, since, timestamps, budget, buf: Vec::new() };
        loop {
            // Whether the container had ended before this round of reading: then what is read is all.
            let ended = !opts.follow || exit_file.exists() || !container_dir.exists();
            loop {
                // Local files, read in bounded pieces from the page cache: short enough for a runtime thread.
                match reader.next_chunk() {
                    Ok(Some(out)) => {
                        if out.is_empty() {
                            // All skipped (sinceTime): let other tasks run between chunks all the same.
                            tokio::task::yield_now().await;
                        } else if tx.send(Ok(Bytes::from(out))).await.is_err() {
                            return;
                        }
                        if reader.budget == 0 {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            if ended {
                return;
            }
            // Wait for a change, the safety net's tick, or the client leaving (also while idle).
            let wait = async {
                match watch.as_mut() {
                    Some(w) => {
                        if let Ok(Ok(mut guard)) = tokio::time::timeout(RECHECK, w.readable_mut()).await {
                            // Drain the queued events: every wake re-reads anyway, so their content is moot.
                            while guard.get_inner().0.read_events().is_ok() {}
                            guard.clear_ready();
                        }
                    }
                    None => tokio::time::sleep(POLL).await,
                }
            };
            tokio::select! {
                _ = tx.closed() => return,
                _ = wait => {}
            }
        }
    });
    Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tail_keeps_the_newest_lines_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, "2024-01-01T00:00:00Z stdout F one\n2024-01-01T00:00:01Z stderr F two\n2024-01-01T00:00:02Z stdout F three\n").unwrap();
        assert_eq!(tail_text(&p, 80, 2048), "one\ntwo\nthree\n");
        assert_eq!(tail_text(&p, 2, 2048), "two\nthree\n");
        assert_eq!(tail_text(&p, 80, 8), "o\nthree\n");
    }

    #[test]
    fn partial_lines_join() {
        let mut recs = Vec::new();
        let mut partial = None;
        parse(b"2024-01-01T00:00:00Z stdout P abc\n2024-01-01T00:00:01Z stdout F def\n2024-01-01T00:00:02Z stderr F x y\n", &mut partial, &mut recs);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].text, b"abcdef");
        assert_eq!(recs[0].ts, "2024-01-01T00:00:00Z");
        assert_eq!(render(&recs[1], true), b"2024-01-01T00:00:02Z x y\n");
    }

    #[test]
    fn an_endless_partial_line_goes_out_in_bounded_pieces() {
        let piece = "x".repeat(16 * 1024);
        let mut data = String::new();
        for _ in 0..5 {
            data.push_str(&format!("2024-01-01T00:00:00Z stdout P {piece}\n"));
        }
        data.push_str("2024-01-01T00:00:01Z stdout F end\n");
        let (mut partial, mut recs) = (None, Vec::new());
        parse(data.as_bytes(), &mut partial, &mut recs);
        assert!(recs.iter().all(|r| r.text.len() <= CHUNK));
        let text: Vec<u8> = recs.iter().flat_map(|r| render(r, true)).collect();
        assert_eq!(text, format!("2024-01-01T00:00:00Z {}end\n", piece.repeat(5)).into_bytes());
    }

    fn lines(range: std::ops::Range<u32>) -> String {
        range.map(|i| format!("2024-01-01T00:00:{:02}Z stdout F l{i}\n", i % 60)).collect()
    }

    #[test]
    fn tail_start_counts_records_across_the_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("0.log.1"), dir.path().join("0.log"));
        std::fs::write(&a, lines(0..3)).unwrap();
        // A partial piece belongs to the record its F ends.
        std::fs::write(&b, format!("{}2024-01-01T00:00:05Z stdout P l3-\n2024-01-01T00:00:05Z stdout F tail\n", lines(3..5))).unwrap();
        let (fa, fb) = (File::open(&a).unwrap(), File::open(&b).unwrap());
        let files = [&fa, &fb];
        assert_eq!(tail_start(&files, 100).unwrap(), (0, 0));
        assert_eq!(tail_start(&files, 4).unwrap().0, 0);
        let (i, off) = tail_start(&files, 1).unwrap();
        assert_eq!(i, 1);
        assert!(std::fs::read_to_string(&b).unwrap()[off as usize..].starts_with("2024-01-01T00:00:05Z stdout P l3-"));
        assert_eq!(tail_start(&files, 0).unwrap(), (1, std::fs::metadata(&b).unwrap().len()));
    }

    fn reader(path: &Path, since: Option<Timestamp>, budget: u64) -> Reader {
        Reader { path: path.to_path_buf(), file: File::open(path).unwrap(), in_rotated: false, offset: 0, partial: None, since, timestamps: true, budget, buf: Vec::new() }
    }

    #[test]
    fn reader_applies_since_and_limit_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, lines(0..4)).unwrap();
        let mut r = reader(&p, Some("2024-01-01T00:00:02Z".parse().unwrap()), u64::MAX);
        assert_eq!(r.next_chunk().unwrap().unwrap(), b"2024-01-01T00:00:02Z l2\n2024-01-01T00:00:03Z l3\n");
        assert!(r.next_chunk().unwrap().is_none());
        // limitBytes cuts inside a line, and nothing follows.
        let mut r = reader(&p, None, 25);
        assert_eq!(r.next_chunk().unwrap().unwrap(), b"2024-01-01T00:00:00Z l0\n2");
        assert_eq!(r.budget, 0);
    }

    /// A line still being written (no newline yet) waits for its end.
    #[test]
    fn reader_leaves_a_line_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, "2024-01-01T00:00:00Z stdout F one\n2024-01-01T00:00:01Z stdout F tw").unwrap();
        let mut r = reader(&p, None, u64::MAX);
        r.timestamps = false;
        assert_eq!(r.next_chunk().unwrap().unwrap(), b"one\n");
        assert!(r.next_chunk().unwrap().is_none());
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"o\n").unwrap();
        assert_eq!(r.next_chunk().unwrap().unwrap(), b"two\n");
    }

    /// A follower reads the rotated file, then the current one, and moves to the new file when the shim
    /// rotates under it.
    #[test]
    fn reader_follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let (old, cur) = (dir.path().join("0.log.1"), dir.path().join("0.log"));
        std::fs::write(&old, lines(0..2)).unwrap();
        std::fs::write(&cur, lines(2..4)).unwrap();
        let mut r = Reader {
            path: cur.clone(),
            file: File::open(&old).unwrap(),
            in_rotated: true,
            offset: 0,
            partial: None,
            since: None,
            timestamps: false,
            budget: u64::MAX,
            buf: Vec::new(),
        };
        let mut got = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            got.extend(c);
        }
        assert_eq!(String::from_utf8(got.clone()).unwrap(), "l0\nl1\nl2\nl3\n");
        // Rotation: more lines into the old file first, then the rename and a new file.
        std::fs::OpenOptions::new().append(true).open(&cur).unwrap().write_all(lines(4..5).as_bytes()).unwrap();
        std::fs::rename(&cur, &old).unwrap();
        std::fs::write(&cur, lines(5..7)).unwrap();
        got.clear();
        while let Some(c) = r.next_chunk().unwrap() {
            got.extend(c);
        }
        assert_eq!(String::from_utf8(got).unwrap(), "l4\nl5\nl6\n");
    }
}
