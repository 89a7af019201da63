//! exec and attach over SPDY/3.1: the stream protocols `v4.channel.k8s.io` … `channel.k8s.io` as the
//! kubelet serves them (`pkg/kubelet/cri/streaming/remotecommand/httpstream.go`). kubectl before 1.30
//! speaks only this; later ones fall back to it when the WebSocket handshake is refused.
//!
//! The client negotiates the protocol with one `X-Stream-Protocol-Version` header per version it speaks,
//! then opens one SPDY stream per channel, named by its `streamtype` header: `error`, and `stdin`, `stdout`,
//! `stderr`, `resize` as asked for. The server waits for all of them, then runs the session: stdin's FIN is
//! EOF for the command, `resize` carries JSON `{"Width":..,"Height":..}` values, and the end is the exit
//! status on the error stream — a JSON `metav1.Status` from v4 on, before that the failure message as text
//! (nothing on success).

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::node::{ExecSession, ExitStatus, NodeError};
use crate::portforward::{offered, X_STREAM_PROTOCOL_VERSION};
use crate::spdy::{Session, Stream, StreamReader, StreamWriter};

/// The remote-command stream protocols over SPDY, most preferred first. v5 exists only for WebSockets
/// upstream (its close signal is SPDY's FIN), so a client offering v5 and v4 gets v4.
pub const PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];

/// How long the client may take to open all its streams (the kubelet's `streamCreationTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// After the command exits, how long its output may still take to reach EOF (as the WebSocket path).
use crate::streaming::EXIT_DRAIN;

/// The streams the client was asked to open (the request's options, after `tty` dropped stderr).
#[derive(Debug, Clone, Copy)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The protocol to answer with, as apimachinery's `httpstream.Handshake`: the client's first offer we
/// speak; no offer at all is the legacy `channel.k8s.io`; offers we do not speak are a 400.
pub fn negotiate(headers: &HeaderMap) -> ApiResult<&'static str> {
    let offers = offered(headers, X_STREAM_PROTOCOL_VERSION);
    if offers.is_empty() {
        return Ok("channel.k8s.io");
    }
    offers.iter().find_map(|o| PROTOCOLS.iter().find(|p| **p == o.as_str()).copied()).ok_or_else(|| {
        ApiError::bad_request(format!("unable to upgrade: unable to negotiate protocol: client supports {offers:?}, server supports {PROTOCOLS:?}"))
    })
}

/// Run one exec/attach session on an upgraded SPDY connection `io`, for the negotiated `protocol`.
pub async fn serve<IO>(io: IO, session: ExecSession, streams: Streams, command: Vec<String>, protocol: &'static str)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut conn = Session::start(io);
    let resizing = streams.tty && matches!(protocol, "v4.channel.k8s.io" | "v3.channel.k8s.io");
    let expected = 1 + usize::from(streams.stdin) + usize::from(streams.stdout) + usize::from(streams.stderr) + usize::from(resizing);
    let mut got = Got::default();
    let waited = tokio::time::timeout(STREAM_CREATION_TIMEOUT, async {
        let mut n = 0;
        while n < expected {
            let Some(s) = conn.accept().await else { return false };
            let slot = match s.header("streamtype") {
                Some("error") => &mut got.error,
                Some("stdin") => &mut got.stdin,
                Some("stdout") => &mut got.stdout,
                Some("stderr") => &mut got.stderr,
                Some("resize") => &mut got.resize,
                other => {
                    tracing::debug!(streamtype = ?other, "exec over SPDY: unexpected stream type");
                    continue;
                }
            };
            *slot = Some(s);
            n += 1;
        }
        true
    })
    .await;
    if waited != Ok(true) {
        tracing::debug!(?command, "exec over SPDY: the client did not open its streams; closing");
        conn.writer().shutdown().await;
        return;
    }
    let writer = conn.writer();
    let result = run(session, got, &writer).await;
    let Some((result, error)) = result else {
        // The client went away: dropping the session ends the command.
        return;
    };
    if let Some(error) = error {
        let status = crate::streaming::exit_status(&command, &result);
        let body = if matches!(protocol, "v4.channel.k8s.io") {
            Some(serde_json::to_vec(&status).expect("JSON serialises"))
        } else if status["status"] == "Success" {
            None
        } else {
            // v1–v3: the `StatusError`'s text (`Error()` is the message).
            status["message"].as_str().map(|m| m.as_bytes().to_vec())
        };
        if let Some(b) = body {
            let _ = error.write(Bytes::from(b)).await;
        }
        let _ = error.finish().await;
    }
    // The kubelet closes the connection after the status; the client then sees every stream end.
    writer.shutdown().await;
    writer.closed().await;
}

#[derive(Default)]
struct Got {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

/// Pump the session; None if the connection went away first, else the exit and the error stream's writer.
async fn run(session: ExecSession, got: Got, conn: &crate::spdy::Writer) -> Option<(Result<ExitStatus, NodeError>, Option<StreamWriter>)> {
    let ExecSession { stdin, stdout, stderr, resize, mut exit, tty } = session;
    let mut tasks = tokio::task::JoinSet::new();
    let mut outputs = 0;
    let (done_tx, mut done_rx) = mpsc::channel::<()>(4);
    if let Some(r) = stdout {
        outputs += 1;
        tasks.spawn(pump(r, got.stdout.map(|s| s.writer()), done_tx.clone()));
    }
    if let Some(r) = stderr {
        outputs += 1;
        // With a terminal there is no stderr stream: what comes is read and dropped.
        let w = if tty { None } else { got.stderr.map(|s| s.writer()) };
        tasks.spawn(pump(r, w, done_tx.clone()));
    }
    drop(done_tx);
    match (stdin, got.stdin) {
        (Some(w), Some(s)) => {
            let (r, _) = s.split();
            tasks.spawn(feed(r, w));
        }
        // No stdin stream (or the command has none): EOF at once.
        (Some(mut w), None) => {
            tasks.spawn(async move {
                let _ = w.shutdown().await;
            });
        }
        _ => {}
    }
    if let (Some(s), Some(tx)) = (got.resize, resize) {
        let (r, _) = s.split();
        tasks.spawn(resizes(r, tx));
    }

    let drain = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(drain);
    let mut exited: Option<Result<ExitStatus, NodeError>> = None;
    loop {
        if outputs == 0 {
            if let Some(r) = exited.take() {
                return Some((r, got.error.map(|s| s.writer())));
            }
        }
        tokio::select! {
            Some(()) = done_rx.recv(), if outputs > 0 => outputs -= 1,
            r = &mut exit, if exited.is_none() => {
                exited = Some(r);
                drain.as_mut().reset(tokio::time::Instant::now() + EXIT_DRAIN);
            }
            () = &mut drain, if exited.is_some() && outputs > 0 => {
                tracing::debug!("exec over SPDY: output still open after the command exited; sending the status");
                outputs = 0;
            }
            () = conn.closed() => return None,
        }
    }
}

/// Copy a command's output to its stream until EOF, then FIN it (`out` None: read and drop).
async fn pump(mut r: Pin<Box<dyn AsyncRead + Send>>, out: Option<StreamWriter>, done: mpsc::Sender<()>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if let Some(w) = &out {
                    if w.write(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "exec over SPDY: reading the command's output");
                break;
            }
        }
    }
    if let Some(w) = &out {
        let _ = w.finish().await;
    }
    let _ = done.send(()).await;
}

/// The client's stdin to the command; its FIN is EOF.
async fn feed(mut r: StreamReader, mut w: Pin<Box<dyn AsyncWrite + Send>>) {
    while let Some(data) = r.recv().await {
        if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// The resize stream: JSON values one after another (Go's `json.Encoder`), split anywhere.
async fn resizes(mut r: StreamReader, tx: mpsc::Sender<(u16, u16)>) {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(data) = r.recv().await {
        buf.extend_from_slice(&data);
        for size in crate::streaming::take_sizes(&mut buf) {
            // Only the latest size matters; a full queue drops this one.
            let _ = tx.try_send(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn negotiation() {
        let h = |vs: &[&str]| {
            let mut m = HeaderMap::new();
            for v in vs {
                m.append("x-stream-protocol-version", HeaderValue::from_str(v).unwrap());
            }
            m
        };
        // kubectl 1.27: v4 first; newer ones fall back with v5 first.
        assert_eq!(negotiate(&h(&["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"])).unwrap(), "v4.channel.k8s.io");
        assert_eq!(negotiate(&h(&["v5.channel.k8s.io", "v4.channel.k8s.io"])).unwrap(), "v4.channel.k8s.io");
        assert_eq!(negotiate(&h(&["v2.channel.k8s.io"])).unwrap(), "v2.channel.k8s.io");
        assert_eq!(negotiate(&h(&[])).unwrap(), "channel.k8s.io");
        assert_eq!(negotiate(&h(&["v9.channel.k8s.io"])).unwrap_err().code, 400);
    }
}
