//! `kubectl logs`: read a container's CRI-format log files (`<ts> <stream> <F|P> <text>`), with the options
//! of pods/log (previous, tailLines, sinceSeconds/sinceTime, timestamps, limitBytes, follow).

use std::io::{BufRead, Seek};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{SinkExt, Stream};
use k8s_openapi::jiff::Timestamp;

use crate::runtime::{spec, Runtime};

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

/// One log record: a whole line (P pieces joined).
struct Record {
    ts: String,
    text: Vec<u8>,
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

/// Parse CRI lines into records; a trailing `P` piece without its `F` stays in `partial`.
fn parse(data: &[u8], partial: &mut Option<Record>, out: &mut Vec<Record>) {
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(4, |b| *b == b' ');
        let (Some(ts), Some(_stream), Some(tag)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let text = parts.next().unwrap_or_default();
        let ts = String::from_utf8_lossy(ts).into_owned();
        let rec = partial.get_or_insert_with(|| Record { ts: ts.clone(), text: Vec::new() });
        rec.text.extend_from_slice(text);
        if tag != b"P" {
            out.push(partial.take().expect("set above"));
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

fn render(r: &Record, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.text.len() + 40);
    if timestamps {
        out.extend_from_slice(r.ts.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&r.text);
    out.push(b'\n');
    out
}

fn keep(r: &Record, since: Option<Timestamp>) -> bool {
    match since {
        Some(s) => k1s_api::meta::parse_time(&r.ts).is_none_or(|t| t >= s),
        None => true,
    }
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
    let exit_file = rt.container_dir(uid, container, attempt).join(spec::EXIT);

    let mut records = Vec::new();
    let mut partial = None;
    if let Ok(d) = std::fs::read(&rotated) {
        parse(&d, &mut partial, &mut records);
    }
    let mut file = std::fs::File::open(&path).map_err(|e| LogError::NotFound(format!("log of container {container}: {e}")))?;
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut data).map_err(|e| LogError::NotFound(e.to_string()))?;
    // Only whole lines are parsed; a line still being written is picked up by follow.
    let whole = data.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
    parse(&data[..whole], &mut partial, &mut records);
    let mut offset = whole as u64;

    records.retain(|r| keep(r, opts.since));
    if let Some(n) = opts.tail_lines {
        let n = n.max(0) as usize;
        if records.len() > n {
            records.drain(..records.len() - n);
        }
    }
    let mut budget = opts.limit_bytes.map(|b| b.max(0) as u64).unwrap_or(u64::MAX);
    let mut first = Vec::new();
    for r in &records {
        let bytes = render(r, opts.timestamps);
        let take = (bytes.len() as u64).min(budget) as usize;
        first.extend_from_slice(&bytes[..take]);
        budget -= take as u64;
        if budget == 0 {
            break;
        }
    }

    let (mut tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
    let follow = opts.follow && budget > 0;
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        if !follow {
            return;
        }
        let mut reader = std::io::BufReader::new(file);
        loop {
            let done = exit_file.exists() || !exit_file.parent().is_some_and(|p| p.exists());
            let _ = reader.seek(std::io::SeekFrom::Start(offset));
            let mut chunk = Vec::new();
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.last() == Some(&b'\n') => {
                        offset += line.len() as u64;
                        chunk.extend_from_slice(&line);
                    }
                    Ok(_) => break,
                }
            }
            if !chunk.is_empty() {
                let mut recs = Vec::new();
                parse(&chunk, &mut partial, &mut recs);
                let mut out = Vec::new();
                for r in recs.iter().filter(|r| keep(r, opts.since)) {
                    let bytes = render(r, opts.timestamps);
                    let take = (bytes.len() as u64).min(budget) as usize;
                    out.extend_from_slice(&bytes[..take]);
                    budget -= take as u64;
                }
                if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                    return;
                }
                if budget == 0 {
                    return;
                }
                continue;
            }
            if done {
                return;
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
