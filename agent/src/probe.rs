//! Probes (liveness, readiness, startup) and lifecycle hook handlers (postStart, preStop): what a handler is,
//! resolved from the Pod spec, and how one runs once. Exec handlers start `k1s nsexec` in the container (our
//! binary re-executed, never a fork or setns on a tokio thread); httpGet, tcpSocket and grpc connect from the
//! host to the Pod's IP over the bridge (see ARCHITECTURE.md for why not from inside the netns). The
//! decisions made from the results (thresholds, restarts) are pure and live in plan.rs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The three probe kinds (upstream's names are used in events: "Liveness probe failed: ...").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// One action: what a probe checks or a hook does.
#[derive(Debug, Clone, PartialEq)]
pub enum Handler {
    Exec(Vec<String>),
    /// `https`: scheme HTTPS, the server's certificate not verified (upstream's prober does the same).
    Http { host: Option<String>, port: u16, path: String, headers: Vec<(String, String)>, https: bool },
    Tcp { host: Option<String>, port: u16 },
    Grpc { port: u16, service: String },
    Sleep(Duration),
    /// The spec names something that cannot be resolved (a port name the container does not declare): every
    /// run fails with this message, as upstream's prober reports it.
    Invalid(String),
}

/// A probe with upstream's defaults filled in (core/v1 defaults.go: period 10 s, timeout 1 s, thresholds 1/3).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub handler: Handler,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// A handler could not be resolved from the spec (e.g. a named port the container does not declare).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

fn port(p: &IntOrString, c: &Container) -> Result<u16, HandlerError> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok().filter(|n| *n > 0).ok_or_else(|| HandlerError(format!("invalid port number: {n}"))),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| HandlerError(format!("couldn't find port: {name} in container {}", c.name)))
        }
    }
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

fn probe_handler(p: &Probe, c: &Container) -> Result<Handler, HandlerError> {
    Ok(if let Some(e) = &p.exec {
        Handler::Exec(e.command.clone().unwrap_or_default())
    } else if let Some(h) = &p.http_get {
        http_handler(h, c)?
    } else if let Some(t) = &p.tcp_socket {
        Handler::Tcp { host: t.host.clone().filter(|h| !h.is_empty()), port: port(&t.port, c)? }
    } else if let Some(g) = &p.grpc {
        Handler::Grpc { port: u16::try_from(g.port).map_err(|_| HandlerError(format!("invalid port number: {}", g.port)))?, service: g.service.clone().unwrap_or_default() }
    } else {
        return Err(HandlerError("probe has no handler".into()));
    })
}

/// The probe's handler and timing, upstream's defaults applied.
pub fn probe_config(p: &Probe, c: &Container) -> ProbeConfig {
    ProbeConfig {
        handler: probe_handler(p, c).unwrap_or_else(|e| Handler::Invalid(e.0)),
        initial_delay: secs(p.initial_delay_seconds, 0),
        period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
    }
}

fn http_handler(h: &k8s_openapi::api::core::v1::HTTPGetAction, c: &Container) -> Result<Handler, HandlerError> {
    let https = match h.scheme.as_deref().unwrap_or("HTTP") {
        s if s.eq_ignore_ascii_case("HTTP") => false,
        s if s.eq_ignore_ascii_case("HTTPS") => true,
        s => return Err(HandlerError(format!("unsupported scheme {s:?}: use HTTP or HTTPS"))),
    };
    let mut path = h.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Ok(Handler::Http {
        host: h.host.clone().filter(|h| !h.is_empty()),
        port: port(&h.port, c)?,
        path,
        headers: h.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect(),
        https,
    })
}

/// A lifecycle hook's handler (exec, httpGet, sleep; tcpSocket is deprecated upstream and never run).
pub fn hook_handler(h: &LifecycleHandler, c: &Container) -> Result<Handler, HandlerError> {
    if let Some(e) = &h.exec {
        Ok(Handler::Exec(e.command.clone().unwrap_or_default()))
    } else if let Some(g) = &h.http_get {
        http_handler(g, c)
    } else if let Some(s) = &h.sleep {
        Ok(Handler::Sleep(Duration::from_secs(s.seconds.max(0) as u64)))
    } else {
        Err(HandlerError("lifecycle hook has no handler".into()))
    }
}

/// Where a handler runs: the container's attempt directory (for `k1s nsexec`) and the Pod's IP.
#[derive(Debug, Clone)]
pub struct Target {
    /// Our own binary, re-executed as `k1s nsexec DIR -- CMD`.
    pub exe: PathBuf,
    pub dir: PathBuf,
    /// The Pod IP on the bridge; `None` for hostNetwork Pods, which are reached on loopback.
    pub pod_ip: Option<Ipv4Addr>,
}

impl Target {
    /// The address a network handler connects to. A `host` other than the Pod's own IP is refused: k1s only
    /// sends traffic to the Pod IPs it assigned (and loopback for hostNetwork Pods).
    fn addr(&self, host: Option<&str>, port: u16) -> Result<SocketAddr, String> {
        let ip = IpAddr::V4(self.pod_ip.unwrap_or(Ipv4Addr::LOCALHOST));
        if let Some(h) = host {
            if h.parse::<IpAddr>().ok() != Some(ip) {
                return Err(format!("host {h:?} is not the Pod's IP {ip}: k1s probes only the Pod itself"));
            }
        }
        Ok(SocketAddr::new(ip, port))
    }
}

/// Run a handler once, bounded by `timeout`. `Ok` carries the output (exec) or nothing; `Err` is the failure
/// message upstream would show after "Liveness probe failed: ".
pub async fn run(h: &Handler, t: &Target, timeout: Duration) -> Result<String, String> {
    match h {
        Handler::Exec(cmd) => exec(cmd, t, timeout).await,
        Handler::Http { host, port, path, headers, https } => {
            let addr = t.addr(host.as_deref(), *port)?;
            let url = format!("{}://{addr}{path}", if *https { "https" } else { "http" });
            match tokio::time::timeout(timeout, http_follow(addr, path, headers, *https)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(String::new()),
                Ok(Ok(code)) => Err(format!("HTTP probe failed with statuscode: {code}")),
                Ok(Err(e)) => Err(format!("Get \"{url}\": {e}")),
                Err(_) => Err(format!("Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")),
            }
        }
        Handler::Tcp { host, port } => {
            let addr = t.addr(host.as_deref(), *port)?;
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Ok(String::new()),
                Ok(Err(e)) => Err(format!("dial tcp {addr}: connect: {}", io_text(&e))),
                Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
            }
        }
        Handler::Grpc { port, service } => {
            let addr = t.addr(None, *port)?;
            match tokio::time::timeout(timeout, grpc_check(addr, service)).await {
                Ok(r) => r,
                Err(_) => Err(format!("timeout: health rpc did not complete within {}s", timeout.as_secs())),
            }
        }
        Handler::Sleep(d) => {
            tokio::time::sleep((*d).min(timeout)).await;
            Ok(String::new())
        }
        Handler::Invalid(msg) => Err(msg.clone()),
    }
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

async fn exec(cmd: &[String], t: &Target, timeout: Duration) -> Result<String, String> {
    if cmd.is_empty() {
        return Err("exec: no command".into());
    }
    let mut c = tokio::process::Command::new(&t.exe);
    c.arg("nsexec").arg(&t.dir).arg("--").args(cmd);
    c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let child = c.spawn().map_err(|e| format!("starting the exec helper: {e}"))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            // Upstream caps what it keeps of a probe's output at 10 KiB.
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let mut cut = text.len().min(10 * 1024);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            if out.status.success() {
                Ok(text)
            } else if text.trim().is_empty() {
                Err(format!("command {cmd:?} exited with {}", out.status.code().unwrap_or(-1)))
            } else {
                Err(text)
            }
        }
        Ok(Err(e)) => Err(format!("waiting for the exec helper: {e}")),
        // Dropping the future kills the helper (kill_on_drop); upstream's message for an exec probe timeout.
        Err(_) => Err(format!("command timed out: {:?} timed out after {}s", cmd.join(" "), timeout.as_secs())),
    }
}

/// GET, following redirects as upstream's prober does: up to 10 to the same host (a relative Location or
/// the same host:port); a redirect elsewhere is not followed and counts by its own 3xx status (a success, as
/// upstream's `followNonLocalRedirects=false`). The final status.
async fn http_follow(addr: SocketAddr, path: &str, headers: &[(String, String)], https: bool) -> std::io::Result<u16> {
    let mut path = path.to_string();
    for _ in 0..=10 {
        let (code, location) = if https {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(insecure_tls()));
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            http_get(connector.connect(name, tcp).await?, addr, &path, headers).await?
        } else {
            http_get(tokio::net::TcpStream::connect(addr).await?, addr, &path, headers).await?
        };
        match location.filter(|_| (300..400).contains(&code)).and_then(|l| same_host_path(&l, addr)) {
            Some(next) => path = next,
            None => return Ok(code),
        }
    }
    Err(std::io::Error::other("stopped after 10 redirects"))
}

/// The path of a redirect that stays on the probed host, or None.
fn same_host_path(location: &str, addr: SocketAddr) -> Option<String> {
    if location.starts_with('/') {
        return Some(location.to_string());
    }
    let rest = location.strip_prefix("http://").or_else(|| location.strip_prefix("https://"))?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    (host == addr.to_string() || host == addr.ip().to_string()).then_some(path)
}

/// TLS without certificate verification: a probe checks that the server answers, not who it is (upstream
/// sets InsecureSkipVerify for HTTPS probes too).
fn insecure_tls() -> rustls::ClientConfig {
    #[derive(Debug)]
    struct AnyCert(rustls::crypto::CryptoProvider);
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(&self, m: &[u8], c: &rustls::pki_types::CertificateDer<'_>, d: &rustls::DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(&self, m: &[u8], c: &rustls::pki_types::CertificateDer<'_>, d: &rustls::DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = rustls::crypto::ring::default_provider();
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider.clone()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider)))
        .with_no_client_auth()
}

/// One HTTP/1.1 GET with upstream's default headers (User-Agent kube-probe, Accept */*); the answer's status
/// and Location header.
async fn http_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S, addr: SocketAddr, path: &str, headers: &[(String, String)]) -> std::io::Result<(u16, Option<String>)> {
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let code = parse_status_line(&buf).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response"))?;
    let location = String::from_utf8_lossy(&buf)
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("location")).map(|(_, v)| v.trim().to_string()));
    Ok((code, location))
}

fn parse_status_line(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// grpc.health.v1.Health/Check over HTTP/2 without TLS, as upstream's grpc probe; SERVING (1) is success.
async fn grpc_check(addr: SocketAddr, service: &str) -> Result<String, String> {
    let fail = |e: &dyn std::fmt::Display| format!("failed to connect service {addr:?} within 1s: {e}");
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| fail(&io_text(&e)))?;
    let (client, conn) = h2::client::handshake(tcp).await.map_err(|e| fail(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.map_err(|e| fail(&e))?;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "kube-probe/1.33")
        .body(())
        .map_err(|e| e.to_string())?;
    let (resp, mut send) = client.send_request(req, false).map_err(|e| format!("health rpc failed: {e}"))?;
    send.send_data(bytes::Bytes::from(grpc_request(service)), true).map_err(|e| format!("health rpc failed: {e}"))?;
    let resp = resp.await.map_err(|e| format!("health rpc failed: {e}"))?;
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("health rpc failed: {e}"))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.ok().flatten();
    if let Some(code) = trailers.as_ref().and_then(|t| t.get("grpc-status")).and_then(|v| v.to_str().ok()).filter(|c| *c != "0") {
        let msg = trailers.as_ref().and_then(|t| t.get("grpc-message")).and_then(|v| v.to_str().ok()).unwrap_or("");
        return Err(format!("rpc error: code = {} desc = {msg}", grpc_code_name(code)));
    }
    match grpc_status(&data) {
        Some(1) => Ok(String::new()),
        Some(s) => Err(format!("service unhealthy (responded with {:?})", serving_status_name(s))),
        None => Err("health rpc failed: malformed response".into()),
    }
}

/// The gRPC-framed HealthCheckRequest: field 1 (`service`, string), length-delimited.
fn grpc_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut out = vec![0u8];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend(msg);
    out
}

/// The `status` (field 1, varint) of a gRPC-framed HealthCheckResponse; absent = 0 (UNKNOWN).
fn grpc_status(framed: &[u8]) -> Option<u64> {
    if framed.len() < 5 || framed[0] != 0 {
        return None;
    }
    let len = u32::from_be_bytes(framed[1..5].try_into().ok()?) as usize;
    let msg = framed.get(5..5 + len)?;
    let mut i = 0;
    let varint = |i: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *msg.get(*i)?;
            *i += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    let mut status = 0;
    while i < msg.len() {
        let key = varint(&mut i)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(&mut i)?,
            (_, 0) => {
                varint(&mut i)?;
            }
            (_, 2) => {
                let l = varint(&mut i)? as usize;
                i += l;
            }
            (_, 5) => i += 4,
            (_, 1) => i += 8,
            _ => return None,
        }
    }
    Some(status)
}

fn serving_status_name(s: u64) -> &'static str {
    match s {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

fn grpc_code_name(code: &str) -> &str {
    match code {
        "5" => "NotFound",
        "12" => "Unimplemented",
        "14" => "Unavailable",
        "4" => "DeadlineExceeded",
        other => other,
    }
}

/// The target of a running attempt's handlers.
pub fn target(exe: &Path, dir: &Path, pod_ip: Option<Ipv4Addr>) -> Target {
    Target { exe: exe.to_path_buf(), dir: dir.to_path_buf(), pod_ip }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, HTTPHeader};

    #[test]
    fn defaults_and_named_ports() {
        let c = Container { name: "c".into(), ports: Some(vec![ContainerPort { name: Some("web".into()), container_port: 8080, ..Default::default() }]), ..Default::default() };
        let p = Probe {
            http_get: Some(HTTPGetAction { path: Some("healthz".into()), port: IntOrString::String("web".into()), http_headers: Some(vec![HTTPHeader { name: "X".into(), value: "1".into() }]), ..Default::default() }),
            ..Default::default()
        };
        let cfg = probe_config(&p, &c);
        assert_eq!(cfg.handler, Handler::Http { host: None, port: 8080, path: "/healthz".into(), headers: vec![("X".into(), "1".into())], https: false });
        assert_eq!((cfg.period, cfg.timeout, cfg.success_threshold, cfg.failure_threshold), (Duration::from_secs(10), Duration::from_secs(1), 1, 3));
        let bad = Probe { tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction { port: IntOrString::String("nope".into()), host: None }), ..Default::default() };
        assert_eq!(probe_config(&bad, &c).handler, Handler::Invalid("couldn't find port: nope in container c".into()));
    }

    #[test]
    fn http_status_line() {
        assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.0 500 Oops\r\nX: y\r\n"), Some(500));
        assert_eq!(parse_status_line(b"garbage\r\n"), None);
    }

    #[test]
    fn grpc_messages() {
        assert_eq!(grpc_request(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(grpc_request("a"), vec![0, 0, 0, 0, 3, 0x0a, 1, b'a']);
        assert_eq!(grpc_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(grpc_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(grpc_status(&[0, 0, 0, 0, 2, 0x08]), None);
    }

    #[test]
    fn network_handlers_only_reach_the_pod() {
        let t = Target { exe: "/x".into(), dir: "/d".into(), pod_ip: Some(Ipv4Addr::new(10, 88, 0, 5)) };
        assert_eq!(t.addr(None, 80).unwrap(), "10.88.0.5:80".parse().unwrap());
        assert_eq!(t.addr(Some("10.88.0.5"), 80).unwrap(), "10.88.0.5:80".parse().unwrap());
        assert!(t.addr(Some("1.1.1.1"), 80).is_err());
        let host = Target { pod_ip: None, ..t };
        assert_eq!(host.addr(None, 80).unwrap(), "127.0.0.1:80".parse().unwrap());
    }

    /// A local server that answers each connection with the next canned response (plain or TLS).
    async fn serve(responses: Vec<&'static str>, tls: bool) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let acceptor = tls.then(|| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["probe.test".to_string()]).unwrap().self_signed(&key).unwrap();
            let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
                .unwrap();
            tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg))
        });
        tokio::spawn(async move {
            for r in responses {
                let (tcp, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                match &acceptor {
                    Some(a) => {
                        let mut s = a.accept(tcp).await.unwrap();
                        let _ = s.read(&mut buf).await;
                        let _ = s.write_all(r.as_bytes()).await;
                        let _ = s.shutdown().await;
                    }
                    None => {
                        let mut s = tcp;
                        let _ = s.read(&mut buf).await;
                        let _ = s.write_all(r.as_bytes()).await;
                    }
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn https_and_redirects() {
        // HTTPS with a self-signed certificate: not verified, as upstream.
        let addr = serve(vec!["HTTP/1.1 204 No Content\r\n\r\n"], true).await;
        assert_eq!(http_follow(addr, "/", &[], true).await.unwrap(), 204);
        // A redirect on the same host is followed; the final answer counts.
        let addr = serve(vec!["HTTP/1.1 302 Found\r\nLocation: /next\r\n\r\n", "HTTP/1.1 500 Oops\r\n\r\n"], false).await;
        assert_eq!(http_follow(addr, "/", &[], false).await.unwrap(), 500);
        // One to another host is not followed: its 3xx is the answer (a success).
        let addr = serve(vec!["HTTP/1.1 301 Moved\r\nLocation: http://example.invalid/x\r\n\r\n"], false).await;
        assert_eq!(http_follow(addr, "/", &[], false).await.unwrap(), 301);
        assert_eq!(same_host_path(&format!("http://{addr}/a/b"), addr).as_deref(), Some("/a/b"));
        assert_eq!(same_host_path("/rel", addr).as_deref(), Some("/rel"));
    }

}
