//! `pods/{name}/portforward`: kubectl port-forward, served over SPDY/3.1 (kubectl-wire.md §3.12).
//!
//! Two transports carry the same SPDY connection: a WebSocket with the subprotocol
//! `SPDY/3.1+portforward.k8s.io`, whose binary messages form one byte stream (kubectl 1.30+ by default,
//! client-go `tools/portforward/tunneling_connection.go`), and a raw HTTP/1.1 upgrade to `SPDY/3.1` with
//! `X-Stream-Protocol-Version: portforward.k8s.io` (older clients, and the fallback).
//!
//! On the connection, as the kubelet's `pkg/kubelet/cri/streaming/portforward/httpstream.go`: each local
//! connection on the client becomes a pair of streams with the same `requestid` and `port` headers, an
//! `error` stream and a `data` stream. For each complete pair the node connects to the port inside the Pod
//! and the bytes are copied both ways; when the Pod side ends, the data stream gets a FIN and so does the
//! error stream (the client waits for it). A failure is written as text on the error stream, then FIN.
//!
//! A third transport has no SPDY at all: the WebSocket channel protocol (`v4.channel.k8s.io`, the kube
//! crate's and browsers'), one channel pair per port in the `ports` query parameter ([`serve_channels`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{ApiError, ApiResult};
use crate::node::NodeConnector;
use crate::spdy::{Session, Stream, StreamReader, StreamWriter, RST_PROTOCOL_ERROR};

/// The WebSocket subprotocol of port-forward tunnelled over a WebSocket.
pub const WEBSOCKET_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The `X-Stream-Protocol-Version` of port-forward over a raw SPDY upgrade.
pub const STREAM_PROTOCOL: &str = "portforward.k8s.io";
pub const X_STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";

/// How long the first stream of a pair may wait for its partner (the kubelet's `streamCreationTimeout`).
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve `pods/{name}/portforward` for `pod`, already looked up and bound to a node.
pub(crate) async fn serve(node: Arc<dyn NodeConnector>, pod: Pod, name: &str, mut parts: Parts) -> ApiResult<Response> {
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(ApiError::method_not_allowed(&parts.method, "pods/portforward"));
    }
    // kubectl refuses client-side unless the Pod runs; the kubelet answers the same for other clients.
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if phase != "Running" {
        return Err(ApiError::bad_request(format!("pod {name} is not running (phase {phase}): cannot forward ports to it")));
    }
    let upgrade = parts.headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_ascii_lowercase();
    if upgrade == "websocket" {
        let protocols = offered(&parts.headers, header::SEC_WEBSOCKET_PROTOCOL.as_str());
        if !protocols.iter().any(|p| p == WEBSOCKET_PROTOCOL) && protocols.iter().any(|p| p == CHANNEL_PROTOCOL) {
            return serve_channels(node, pod, parts).await;
        }
        if !protocols.iter().any(|p| p == WEBSOCKET_PROTOCOL) {
            return Err(ApiError::bad_request(format!("pods/portforward over WebSocket needs the subprotocol {WEBSOCKET_PROTOCOL}")));
        }
        parts.method = Method::GET;
        let mut ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| ApiError::bad_request(format!("pods/portforward: the WebSocket handshake failed: {}", axum::response::IntoResponse::into_response(e).status())))?;
        ws.set_selected_protocol(HeaderValue::from_static(WEBSOCKET_PROTOCOL));
        return Ok(ws.on_upgrade(move |socket| async move {
            let io = websocket_stream(socket);
            run(Session::start(io), node, pod).await;
        }));
    }
    if upgrade.starts_with("spdy/") {
        let versions = offered(&parts.headers, X_STREAM_PROTOCOL_VERSION);
        if !versions.is_empty() && !versions.iter().any(|p| p == STREAM_PROTOCOL) {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade: unable to negotiate protocol: client supports {versions:?}, server supports [\"{STREAM_PROTOCOL}\"]"
            )));
        }
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| ApiError::bad_request("pods/portforward: this connection cannot be upgraded (HTTP/1.1 is needed for SPDY)"))?;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => run(Session::start(hyper_util::rt::TokioIo::new(upgraded)), node, pod).await,
                Err(e) => tracing::debug!(error = %e, "portforward: the SPDY upgrade failed"),
            }
        });
        return Ok(spdy_switching(STREAM_PROTOCOL));
    }
    Err(ApiError::bad_request(
        "Upgrade request required: pods/portforward needs a WebSocket (Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io) \
         or a SPDY/3.1 upgrade (X-Stream-Protocol-Version: portforward.k8s.io)",
    ))
}

/// `101 Switching Protocols` to SPDY/3.1 with the negotiated stream protocol (apimachinery
/// `httpstream/spdy/upgrade.go`).
pub(crate) fn spdy_switching(protocol: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header(X_STREAM_PROTOCOL_VERSION, protocol)
        .body(axum::body::Body::empty())
        .expect("valid response")
}

/// Every value of a (possibly repeated, possibly comma-separated) header.
pub(crate) fn offered(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

/// A WebSocket whose binary messages form one byte stream in each direction, as a duplex pipe: our side is
/// returned; a task copies between the other side and the socket. Pings are answered by the WebSocket as
/// it reads; the client's Close (or its going away) is EOF; our EOF sends a normal Close.
pub(crate) fn websocket_stream(socket: WebSocket) -> tokio::io::DuplexStream {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut from_pipe, mut to_pipe) = tokio::io::split(theirs);
    let (mut sink, mut source) = socket.split();
    tokio::spawn(async move {
        let inbound = async {
            while let Some(msg) = source.next().await {
                match msg {
                    Ok(Message::Binary(data)) => {
                        if to_pipe.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                    Ok(Message::Text(t)) => {
                        if to_pipe.write_all(t.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                    Ok(Message::Ping(_) | Message::Pong(_)) => {}
                    Ok(Message::Close(_)) | Err(_) => break,
                }
            }
            let _ = to_pipe.shutdown().await;
        };
        let outbound = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from_pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
        };
        // Inbound ends with the client; outbound ends when the session shuts down. Both are needed for a
        // clean close, but a client that never closes must not keep the task: inbound ending stops both.
        tokio::pin!(inbound, outbound);
        tokio::select! {
            () = &mut inbound => {}
            () = &mut outbound => {
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut inbound).await;
            }
        }
    });
    ours
}

/// The WebSocket channel protocol of port-forward (the kube crate's, and upstream's for browsers): no SPDY.
pub const CHANNEL_PROTOCOL: &str = "v4.channel.k8s.io";

/// What a port's pump tells the channel session.
enum FromPod {
    /// A message to send as is (channel byte first).
    Frame(Vec<u8>),
    /// That port's Pod side reached its end.
    Eof,
}

/// Port-forward over the WebSocket channel protocol (upstream `portforward/websocket.go`): the ports are
/// the `ports` query parameter; port `i` has data channel `2i` and error channel `2i+1`; each channel opens
/// with the port number (2 bytes, little-endian); data flows on the data channel, a failure is text on the
/// error channel. One connection per port per WebSocket; the WebSocket closes once every Pod side has ended.
async fn serve_channels(node: Arc<dyn NodeConnector>, pod: Pod, mut parts: Parts) -> ApiResult<Response> {
    let query: Vec<(String, String)> = axum::extract::Query::try_from_uri(&parts.uri).map(|axum::extract::Query(v)| v).unwrap_or_default();
    let mut ports: Vec<u16> = Vec::new();
    for (_, v) in query.iter().filter(|(k, _)| k == "ports") {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(ApiError::bad_request(format!("invalid port {p:?} in the ports query parameter: ports are numbers from 1 to 65535"))),
            }
        }
    }
    if ports.is_empty() || ports.len() > 127 {
        return Err(ApiError::bad_request("pods/portforward over the WebSocket channel protocol needs the ports to forward: ?ports=80,8080"));
    }
    parts.method = Method::GET;
    let mut ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("pods/portforward: the WebSocket handshake failed: {}", axum::response::IntoResponse::into_response(e).status())))?;
    ws.set_selected_protocol(HeaderValue::from_static(CHANNEL_PROTOCOL));
    Ok(ws.on_upgrade(move |socket| run_channels(socket, node, pod, ports)))
}

async fn run_channels(socket: WebSocket, node: Arc<dyn NodeConnector>, pod: Pod, ports: Vec<u16>) {
    let (mut sink, mut source) = socket.split();
    let name = format!("{}_{}", pod.metadata.name.as_deref().unwrap_or(""), pod.metadata.namespace.as_deref().unwrap_or(""));
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    for (i, p) in ports.iter().enumerate() {
        for ch in [2 * i as u8, 2 * i as u8 + 1] {
            let [lo, hi] = p.to_le_bytes();
            if sink.send(Message::Binary(Bytes::from(vec![ch, lo, hi]))).await.is_err() {
                return;
            }
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<FromPod>(16);
    let mut writers: Vec<Option<tokio::io::WriteHalf<crate::node::PodConnection>>> = Vec::new();
    let mut pumps = tokio::task::JoinSet::new();
    let mut open = 0usize;
    for (i, &port) in ports.iter().enumerate() {
        match node.port_forward(pod.clone(), port).await {
            Ok(conn) => {
                let (mut r, w) = tokio::io::split(conn);
                writers.push(Some(w));
                open += 1;
                let (tx, ch) = (tx.clone(), 2 * i as u8);
                pumps.spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match r.read(&mut buf[1..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                buf[0] = ch;
                                if tx.send(FromPod::Frame(buf[..=n].to_vec())).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = tx.send(FromPod::Eof).await;
                });
            }
            Err(e) => {
                writers.push(None);
                let mut msg = vec![2 * i as u8 + 1];
                msg.extend_from_slice(format!("error forwarding port {port} to pod {name}, uid {uid}: {e}").as_bytes());
                if sink.send(Message::Binary(Bytes::from(msg))).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(tx);
    while open > 0 {
        tokio::select! {
            out = rx.recv() => match out {
                Some(FromPod::Frame(f)) => {
                    if sink.send(Message::Binary(Bytes::from(f))).await.is_err() {
                        return;
                    }
                }
                Some(FromPod::Eof) => open -= 1,
                None => break,
            },
            msg = source.next() => match msg {
                Some(Ok(Message::Binary(data))) if data.len() > 1 => {
                    // Data for a port's data channel; anything on an error channel or unknown is dropped.
                    let ch = data[0] as usize;
                    if ch.is_multiple_of(2) {
                        if let Some(Some(w)) = writers.get_mut(ch / 2) {
                            if w.write_all(&data[1..]).await.is_err() {
                                writers[ch / 2] = None;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    // Every Pod side ended: close, which the client takes as the end of every port's stream.
    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = source.next().await {} }).await;
}

/// Streams waiting for their partner, by `requestid`.
#[derive(Default)]
struct Pending {
    error: Option<Stream>,
    data: Option<Stream>,
    since: Option<Instant>,
}

/// Serve one port-forward connection until the client closes it.
async fn run(mut session: Session, node: Arc<dyn NodeConnector>, pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let name = format!("{}_{}", pod.metadata.name.as_deref().unwrap_or(""), pod.metadata.namespace.as_deref().unwrap_or(""));
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut pairs = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            s = session.accept() => match s { Some(s) => s, None => break },
            Some(_) = pairs.join_next(), if !pairs.is_empty() => continue,
        };
        // Pairs whose partner never came are dropped (their streams are reset by the client's own timeout).
        pending.retain(|_, p| p.since.is_none_or(|t| t.elapsed() < PAIR_TIMEOUT));
        let Some(request) = stream.header("requestid").map(str::to_string) else {
            tracing::debug!(stream = stream.id, "portforward: a stream without requestid");
            let _ = stream.writer().reset(RST_PROTOCOL_ERROR).await;
            continue;
        };
        let p = pending.entry(request.clone()).or_default();
        p.since.get_or_insert_with(Instant::now);
        match stream.header("streamtype") {
            Some("error") => p.error = Some(stream),
            Some("data") => p.data = Some(stream),
            other => {
                tracing::debug!(streamtype = ?other, "portforward: unexpected stream type");
                let _ = stream.writer().reset(RST_PROTOCOL_ERROR).await;
                continue;
            }
        }
        if p.error.is_some() && p.data.is_some() {
            let p = pending.remove(&request).expect("present");
            let (error, data) = (p.error.expect("error stream"), p.data.expect("data stream"));
            pairs.spawn(forward(node.clone(), pod.clone(), uid.clone(), name.clone(), error, data));
        }
    }
    // The client closed the connection: the pairs end with it (their streams see the end).
    pairs.shutdown().await;
}

/// One forwarded connection: connect in the Pod, then copy until the Pod side ends.
async fn forward(node: Arc<dyn NodeConnector>, pod: Pod, uid: String, name: String, error: Stream, data: Stream) {
    let error_w = error.writer();
    drop(error); // the client half-closes it at once and sends nothing on it
    let port = data.header("port").unwrap_or("").to_string();
    let failure = match port.parse::<u16>() {
        Ok(p) if p > 0 => match node.port_forward(pod, p).await {
            Ok(conn) => return copy(conn, data, error_w).await,
            Err(e) => e.to_string(),
        },
        _ => format!("invalid port {port:?}"),
    };
    // The kubelet's wording (portforward/httpstream.go); kubectl prints it after "an error occurred forwarding".
    let msg = format!("error forwarding port {port} to pod {name}, uid {uid}: {failure}");
    tracing::debug!("portforward: {msg}");
    let _ = data.writer().finish().await;
    let _ = error_w.write(Bytes::from(msg)).await;
    let _ = error_w.finish().await;
}

/// Copy between the Pod connection and the data stream until the Pod side ends (then FIN the data stream
/// and the error stream: the client waits for the latter) and the client's side has ended too, or the
/// connection is gone.
async fn copy(conn: crate::node::PodConnection, data: Stream, error_w: StreamWriter) {
    let (mut r, w) = tokio::io::split(conn);
    let (client, data_w) = data.split();
    let to_pod = to_pod(client, w);
    let from_pod = async {
        let mut buf = vec![0u8; crate::spdy::MAX_DATA];
        loop {
            match r.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    if data_w.write(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "portforward: reading from the pod");
                    break;
                }
            }
        }
        let _ = data_w.finish().await;
        let _ = error_w.finish().await;
    };
    tokio::pin!(to_pod, from_pod);
    let mut to_pod_done = false;
    loop {
        tokio::select! {
            () = &mut from_pod => {
                // Only the rest of the client's data matters now, for a short while.
                if !to_pod_done {
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut to_pod).await;
                }
                return;
            }
            () = &mut to_pod, if !to_pod_done => to_pod_done = true,
            () = data_w.closed() => return,
        }
    }
}

/// The client's data to the Pod; its FIN half-closes the Pod connection.
async fn to_pod<W: AsyncWrite>(mut client: StreamReader, w: W) {
    tokio::pin!(w);
    while let Some(chunk) = client.recv().await {
        if w.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}
