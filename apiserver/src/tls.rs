//! HTTPS: a CA and serving certificate generated on first start and reused after, the admin token, and the
//! accept loop (rustls with the ring provider; hyper serving axum with upgrades and graceful shutdown).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use std::future::Future;
use std::pin::Pin;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::auth::{self, Tokens};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generating certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("loading certificates from {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_path_buf(), source }
}

/// The server's credentials, as files under `<data-dir>/pki`.
#[derive(Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The admin bearer token (also in the kubeconfig).
    pub token: String,
}

/// Write a file readable by root only (keys and tokens), atomically.
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

impl Pki {
    /// Load the CA, serving certificate and token from `dir`, creating what is missing. The serving
    /// certificate is re-issued (by the same CA) when the SANs it needs changed, e.g. a new listen address.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Pki, TlsError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let _ = fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
        if !ca_crt.exists() || !ca_key.exists() {
            let key = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(rcgen::DnType::CommonName, "k1s-ca");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign, rcgen::KeyUsagePurpose::DigitalSignature];
            params.not_after = rcgen::date_time_ymd(expiry_year(10), 1, 1);
            let cert = params.self_signed(&key)?;
            write_private(&ca_key, key.serialize_pem().as_bytes())?;
            fs::write(&ca_crt, cert.pem()).map_err(io(&ca_crt))?;
        }
        let ca_pem = fs::read_to_string(&ca_crt).map_err(io(&ca_crt))?;
        let ca_key_pem = fs::read_to_string(&ca_key).map_err(io(&ca_key))?;

        let (crt, key, sans_file) = (dir.join("server.crt"), dir.join("server.key"), dir.join("server.sans"));
        let want = sans.join("\n");
        let have = fs::read_to_string(&sans_file).unwrap_or_default();
        if !crt.exists() || !key.exists() || have != want {
            let ca_key = rcgen::KeyPair::from_pem(&ca_key_pem)?;
            let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
            let server_key = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::new(sans.to_vec())?;
            params.distinguished_name.push(rcgen::DnType::CommonName, "k1s-apiserver");
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            params.not_after = rcgen::date_time_ymd(expiry_year(10), 1, 1);
            let cert = params.signed_by(&server_key, &issuer)?;
            write_private(&key, server_key.serialize_pem().as_bytes())?;
            fs::write(&crt, cert.pem()).map_err(io(&crt))?;
            fs::write(&sans_file, &want).map_err(io(&sans_file))?;
        }
        let token_path = dir.join("admin.token");
        if !token_path.exists() {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).map_err(|e| TlsError::Load { path: token_path.clone(), message: e.to_string() })?;
            let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
            write_private(&token_path, token.as_bytes())?;
        }
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca_pem,
            cert_pem: fs::read_to_string(&crt).map_err(io(&crt))?,
            key_pem: fs::read_to_string(&key).map_err(io(&key))?,
            token: fs::read_to_string(&token_path).map_err(io(&token_path))?.trim().to_string(),
        })
    }

    /// The rustls server configuration (HTTP/2 and HTTP/1.1 by ALPN).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let load = |message: String| TlsError::Load { path: self.dir.clone(), message };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| load(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| load(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Certificates expire `years` from now (rounded to a year start; an edge box may go years without a visit).
fn expiry_year(years: i32) -> i32 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    1970 + (secs / 31_556_952) as i32 + years
}

/// Limits on connections, decided after kube-apiserver's `secure_serving.go` (Go's `http.Server` and `http2.Server`
/// options there) so that slow, idle or dead clients cannot pin the server's memory or file descriptors:
///
/// - the TLS handshake must finish within [`HANDSHAKE_TIMEOUT`] (a TCP connection that sends nothing, or a
///   handshake sent a byte at a time, is closed);
/// - an HTTP/1.1 request head must arrive within [`HEADER_READ_TIMEOUT`] of the server waiting for it (upstream
///   `ReadHeaderTimeout: 32s`); hyper starts that timer also while a keep-alive connection waits for its next
///   request, so it is the HTTP/1.1 idle timeout too;
/// - a request body must arrive within [`BODY_READ_TIMEOUT`] of its head (upstream's `--request-timeout`
///   default, 1 minute, which bounds every request that is not a watch or a stream);
/// - a connection with no request in flight for [`IDLE_TIMEOUT`] is closed (upstream `IdleTimeout: 90s` for
///   HTTP/1.1 and HTTP/2), which bounds idle HTTP/2 connections, whose streams hyper never times out;
/// - a socket write that makes no progress for [`WRITE_STALL_TIMEOUT`] ends the connection: the peer stopped
///   reading (a dead watcher whose TCP window is full). Its watch would otherwise hold its place until the watch
///   timeout; the client relists, as it does when upstream closes a watcher whose buffer overflowed;
/// - at most [`MAX_CONNECTIONS`] connections at once (fewer when descriptors are scarce: [`connection_cap`]);
///   beyond that a new one is accepted and closed at once (instead of queueing in the kernel backlog), so a
///   flood costs bounded memory and descriptors, and every slot comes free within the timeouts above. Upstream
///   has no cap (it limits requests in flight instead); an edge box has less memory than a control-plane node.
/// - HTTP/2 allows [`MAX_STREAMS`] concurrent streams per connection (upstream's
///   `--http2-max-streams-per-connection` default), so one client can hold that many watches on one connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_CONNECTIONS: usize = 8192;
pub const MAX_STREAMS: u32 = 1000;
/// HTTP/2 PING interval: a peer that vanished without a FIN (power loss, cable) is found within
/// interval + timeout even while its watches are quiet.
const H2_KEEPALIVE: Duration = Duration::from_secs(30);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a connection checks whether it has been idle for [`IDLE_TIMEOUT`].
const IDLE_CHECK: Duration = Duration::from_secs(10);
/// How long a connection asked to finish (idle, or server shutdown) may take before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Serve `app` over HTTPS with bearer-token auth until `shutdown` turns true, then give open connections
/// (watches end on the same signal) a moment to finish.
pub async fn serve(listener: TcpListener, app: Router, config: Arc<rustls::ServerConfig>, tokens: Tokens, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let app = app.layer(axum::middleware::from_fn_with_state(tokens, auth::require));
    let acceptor = TlsAcceptor::from(config);
    let cap = connection_cap(std::fs::read_to_string("/proc/self/limits").ok().as_deref());
    let slots = Arc::new(Semaphore::new(cap));
    // Every connection task holds a clone; the receiver sees the channel close once all have ended.
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "connection refused: {cap} connections open");
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, app, shutdown, open) = (acceptor.clone(), app.clone(), shutdown.clone(), open_tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let _open = open;
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(t)) => t,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    serve_connection(tls, app, shutdown, peer).await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    drop(open_tx);
    tokio::select! {
        _ = open_rx.recv() => {}
        _ = tokio::time::sleep(CLOSE_GRACE) => tracing::info!("closing connections still open after {CLOSE_GRACE:?}"),
    }
}

/// How many connections may be open at once: [`MAX_CONNECTIONS`], or half the soft descriptor limit (from
/// `/proc/self/limits`) when that is lower, so that a flood of connections cannot take the descriptors the
/// store, the agent and its logs need.
fn connection_cap(limits: Option<&str>) -> usize {
    let soft = limits
        .and_then(|l| l.lines().find(|l| l.starts_with("Max open files")))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    soft.map_or(MAX_CONNECTIONS, |s| (s / 2).clamp(64, MAX_CONNECTIONS))
}

/// One connection: HTTP/2 or HTTP/1.1 (with upgrades for exec and port-forward), until the peer leaves, the
/// idle timeout, or shutdown.
async fn serve_connection<T>(io: T, app: Router, mut shutdown: tokio::sync::watch::Receiver<bool>, peer: std::net::SocketAddr)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let svc = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            // The guard lives as long as the response body: a watch keeps its connection busy.
            let busy = Busy::new(&activity);
            let call = tower::ServiceExt::oneshot(app.clone(), with_body_deadline(req));
            let activity = activity.clone();
            async move {
                let resp = call.await?;
                if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    // exec, attach and port-forward: their streams pause as long as the user's program does.
                    activity.upgraded.store(true, std::sync::atomic::Ordering::Release);
                }
                Ok::<_, std::convert::Infallible>(resp.map(|body| {
                    axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
                        let _ = &busy;
                        frame
                    }))
                }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .keep_alive_interval(H2_KEEPALIVE)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(StallTimeout::new(io, WRITE_STALL_TIMEOUT, activity.clone())), svc);
    let mut conn = std::pin::pin!(conn);
    // When set, the connection was asked to finish and is dropped if it has not by then.
    let mut closing: Option<tokio::time::Instant> = None;
    loop {
        // Idle checks are coarse (a wake-up every IDLE_CHECK per connection, not per second).
        let wake = closing.unwrap_or_else(|| tokio::time::Instant::now() + IDLE_CHECK);
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(tokio::time::Instant::now() + CLOSE_GRACE);
            }
            _ = tokio::time::sleep_until(wake) => {
                if closing.is_some() {
                    tracing::debug!(%peer, "connection dropped: it did not finish when asked");
                    return;
                }
                if activity.idle_for() >= IDLE_TIMEOUT {
                    tracing::debug!(%peer, "closing a connection idle for {IDLE_TIMEOUT:?}");
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                }
            }
        }
    }
}

/// The request with its body cut off [`BODY_READ_TIMEOUT`] after the head arrived: a body sent a byte at a time
/// would otherwise hold its connection (and the handler reading it) forever. The handler sees a body error and
/// answers 400. Bodiless requests (and upgrades, whose streams are not the body) are passed through untouched.
fn with_body_deadline(req: http::Request<hyper::body::Incoming>) -> http::Request<axum::body::Body> {
    use hyper::body::Body as _;
    if req.body().is_end_stream() {
        return req.map(axum::body::Body::new);
    }
    let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
    req.map(|body| {
        let frames = http_body_util::BodyStream::new(body);
        axum::body::Body::from_stream(futures::stream::unfold(Some(frames), move |frames| async move {
            let mut frames = frames?;
            loop {
                return match tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut frames)).await {
                    Ok(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => Some((Ok(data), Some(frames))),
                        // Trailers: nothing a handler here reads.
                        Err(_) => continue,
                    },
                    Ok(Some(Err(e))) => Some((Err(axum::Error::new(e)), None)),
                    Ok(None) => None,
                    Err(_) => {
                        let e = std::io::Error::new(std::io::ErrorKind::TimedOut, format!("the request body did not arrive within {BODY_READ_TIMEOUT:?}"));
                        Some((Err(axum::Error::new(e)), None))
                    }
                };
            }
        }))
    })
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    open: std::sync::atomic::AtomicUsize,
    /// The connection was handed to an upgraded protocol: the write stall limit no longer applies.
    upgraded: std::sync::atomic::AtomicBool,
    idle_since: std::sync::Mutex<std::time::Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity { open: 0.into(), upgraded: false.into(), idle_since: std::sync::Mutex::new(std::time::Instant::now()) }
    }
}

impl Activity {
    fn idle_for(&self) -> Duration {
        if self.open.load(std::sync::atomic::Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        self.idle_since.lock().map(|t| t.elapsed()).unwrap_or_default()
    }
}

/// A request in flight, from its head to the end (or drop) of its response body.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(a: &Arc<Activity>) -> Busy {
        a.open.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Busy(a.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // The time is set before the count drops, so an idle check never sees 0 with a stale time.
        if let Ok(mut t) = self.0.idle_since.lock() {
            *t = std::time::Instant::now();
        }
        self.0.open.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// An IO whose writes fail with `TimedOut` once one has made no progress for `limit`: the peer stopped reading.
/// Upgraded connections (exec, attach, port-forward) are exempt.
struct StallTimeout<T> {
    io: T,
    limit: Duration,
    activity: Arc<Activity>,
    /// Armed while a write is pending.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> StallTimeout<T> {
    fn new(io: T, limit: Duration, activity: Arc<Activity>) -> Self {
        StallTimeout { io, limit, activity, stalled: None }
    }

    /// After a write returned Pending: fail once the stall lasted `limit` (the timer wakes the task then).
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let limit = self.limit;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the peer read nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<R>(&mut self, r: Poll<std::io::Result<R>>, cx: &mut Context<'_>) -> Poll<std::io::Result<R>> {
        match r {
            Poll::Pending if self.activity.upgraded.load(std::sync::atomic::Ordering::Acquire) => Poll::Pending,
            Poll::Pending => match self.poll_stall(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for StallTimeout<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for StallTimeout<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(r, cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_half_the_descriptors() {
        let limits = |soft: &str| format!("Limit                     Soft Limit           Hard Limit           Units\nMax processes             63704                63704                processes\nMax open files            {soft}                 524288               files\n");
        assert_eq!(connection_cap(Some(&limits("1024"))), 512);
        assert_eq!(connection_cap(Some(&limits("65536"))), MAX_CONNECTIONS);
        assert_eq!(connection_cap(Some(&limits("20"))), 64);
        assert_eq!(connection_cap(Some(&limits("unlimited"))), MAX_CONNECTIONS);
        assert_eq!(connection_cap(None), MAX_CONNECTIONS);
    }
}
