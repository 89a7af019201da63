//! The node subresources of pods, `pods/{name}/log` and `pods/{name}/exec`: the HTTP edge in front of a
//! [`NodeConnector`].
//!
//! What upstream splits between kube-apiserver (`pkg/registry/core/pod/rest/log.go`, `subresources.go`,
//! `pkg/registry/core/pod/strategy.go` `LogLocation`/`streamLocation`) and the kubelet's streaming server
//! (`pkg/kubelet/cri/streaming/remotecommand`) happens here: the options are parsed and validated, the pod is
//! looked up, the container chosen, and then the log is streamed as the response body, or the exec session
//! is carried over a WebSocket with the `v5.channel.k8s.io` / `v4.channel.k8s.io` channel protocol
//! (kubectl-wire.md §3.10, §3.11).
//!
//! These subresources are not rows of the resource table (it lives in the `api` crate and describes stored
//! subresources); [`Subresource::of`] is the one place that says pods have them, and routing and discovery
//! both ask it.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use k1s_api::resources::ResourceInfo;
use k1s_api::validation::FieldError;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::node::{AttachRequest, ByteStream, ExecRequest, ExecSession, ExitStatus, LogRequest, NodeConnector, NodeError};
use crate::ApiServer;

/// A subresource served by the node rather than the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Log,
    Exec,
    Attach,
    PortForward,
}

/// The node subresources of core/v1 pods, in discovery order.
const POD_SUBRESOURCES: &[&str] = &["attach", "exec", "log", "portforward"];

impl Subresource {
    /// The node subresource `sub` of `info`, if it has one by that name.
    pub fn of(info: &ResourceInfo, sub: &str) -> Option<Subresource> {
        if !is_core_pods(info) {
            return None;
        }
        match sub {
            "log" => Some(Subresource::Log),
            "exec" => Some(Subresource::Exec),
            "attach" => Some(Subresource::Attach),
            "portforward" => Some(Subresource::PortForward),
            _ => None,
        }
    }

    /// What discovery says about it: (response kind, verbs), as upstream's discovery documents.
    pub fn discovery(sub: &str) -> Option<(&'static str, &'static [&'static str])> {
        match sub {
            "log" => Some(("Pod", &["get"])),
            "exec" => Some(("PodExecOptions", &["create", "get"])),
            "attach" => Some(("PodAttachOptions", &["create", "get"])),
            "portforward" => Some(("PodPortForwardOptions", &["create", "get"])),
            _ => None,
        }
    }
}

fn is_core_pods(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.version == "v1" && info.plural == "pods"
}

/// The node subresources `info` has (for discovery).
pub fn node_subresources(info: &ResourceInfo) -> &'static [&'static str] {
    if is_core_pods(info) {
        POD_SUBRESOURCES
    } else {
        &[]
    }
}

/// The WebSocket subprotocols of the exec channel protocol, most preferred first.
pub const V5_CHANNEL: &str = "v5.channel.k8s.io";
pub const V4_CHANNEL: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5 only: `[255, channel]` — the client closed that stream.
const CLOSE: u8 = 255;

/// After the command exits, how long its output may still take to reach EOF before the status is sent
/// anyway. Output normally ends with the process; a background child that keeps the pipes open would
/// otherwise hold the session until it exits (the known "exec hangs after `cmd &`" behaviour upstream).
pub(crate) const EXIT_DRAIN: Duration = Duration::from_secs(2);

/// Serve `GET pods/{name}/log`, `pods/{name}/exec` or `pods/{name}/attach` for the pod `ns/name`.
pub(crate) async fn serve(api: &ApiServer, info: &'static ResourceInfo, ns: &str, name: &str, sub: Subresource, parts: Parts) -> ApiResult<Response> {
    let params = Params::parse(&parts.uri)?;
    match sub {
        Subresource::Log => log(api, info, ns, name, &parts.method, &params).await,
        Subresource::Exec => exec(api, info, ns, name, parts, &params, false).await,
        Subresource::Attach => exec(api, info, ns, name, parts, &params, true).await,
        Subresource::PortForward => {
            let pod = get_pod(api, info, ns, name)?;
            if node_name(&pod).is_empty() {
                return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
            }
            crate::portforward::serve(connector(api)?, pod, name, parts).await
        }
    }
}

/// The query, keeping repeated keys (`command=sh&command=-c&…`).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(uri: &http::Uri) -> ApiResult<Params> {
        Query::<Vec<(String, String)>>::try_from_uri(uri).map(|Query(v)| Params(v)).map_err(|e| ApiError::bad_request(e.body_text()))
    }

    /// The first value of `key` (upstream's query-parameter conversion takes the first).
    fn first(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    /// A boolean as upstream converts query parameters (`Convert_Slice_string_To_bool`): absent is false,
    /// `false` and `0` (any case) are false, any other value — the empty one included — is true.
    fn flag(&self, key: &str) -> bool {
        self.first(key).is_some_and(|v| !v.eq_ignore_ascii_case("false") && v != "0")
    }

    fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.first(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("{key}: invalid value {v:?}: must be an integer"))),
        }
    }
}

/// The pod as stored, typed.
fn get_pod(api: &ApiServer, info: &ResourceInfo, ns: &str, name: &str) -> ApiResult<Pod> {
    let obj = api.registry().get(info, Some(ns), name)?;
    serde_json::from_value(obj).map_err(|e| ApiError::internal(format!("pod {name} does not decode: {e}")))
}

/// The container a request is for: the one named, else the pod's only container, else the one the
/// `kubectl.kubernetes.io/default-container` annotation names. Messages as upstream's `streamLocation`.
fn choose_container(pod: &Pod, name: &str, requested: Option<&str>) -> ApiResult<String> {
    let spec = pod.spec.as_ref();
    let containers: Vec<&str> = spec.map(|s| s.containers.iter().map(|c| c.name.as_str()).collect()).unwrap_or_default();
    let init: Vec<&str> = spec.and_then(|s| s.init_containers.as_ref()).map(|cs| cs.iter().map(|c| c.name.as_str()).collect()).unwrap_or_default();
    let ephemeral: Vec<&str> =
        spec.and_then(|s| s.ephemeral_containers.as_ref()).map(|cs| cs.iter().map(|c| c.name.as_str()).collect()).unwrap_or_default();
    let exists = |c: &str| containers.contains(&c) || init.contains(&c) || ephemeral.contains(&c);
    if let Some(c) = requested.filter(|c| !c.is_empty()) {
        if !exists(c) {
            return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")));
        }
        return Ok(c.to_string());
    }
    if let [only] = containers.as_slice() {
        return Ok(only.to_string());
    }
    let annotated = pod.metadata.annotations.as_ref().and_then(|a| a.get("kubectl.kubernetes.io/default-container"));
    if let Some(c) = annotated.filter(|c| containers.contains(&c.as_str())) {
        return Ok(c.clone());
    }
    if containers.is_empty() {
        return Err(ApiError::bad_request(format!("a container name must be specified for pod {name}")));
    }
    let mut message = format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
    if !init.is_empty() {
        message.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
    }
    Err(ApiError::bad_request(message))
}

fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

fn connector(api: &ApiServer) -> ApiResult<Arc<dyn NodeConnector>> {
    api.node_connector().ok_or_else(|| ApiError::unavailable("no node agent is running"))
}

// ---------------------------------------------------------------------------------------------
// pods/log
// ---------------------------------------------------------------------------------------------

/// `PodLogOptions` from the query, validated as upstream's `ValidatePodLogOptions` (422 Invalid).
#[derive(Debug, PartialEq)]
struct LogOptions {
    container: Option<String>,
    follow: bool,
    previous: bool,
    tail_lines: Option<i64>,
    since_seconds: Option<i64>,
    since_time: Option<String>,
    timestamps: bool,
    limit_bytes: Option<i64>,
}

impl LogOptions {
    fn parse(params: &Params, name: &str) -> ApiResult<LogOptions> {
        let since_time = params.first("sinceTime").filter(|t| !t.is_empty()).map(str::to_string);
        if let Some(t) = &since_time {
            if k1s_api::meta::parse_time(t).is_none() {
                return Err(ApiError::bad_request(format!("sinceTime: invalid value {t:?}: must be an RFC 3339 time")));
            }
        }
        // insecureSkipTLSVerifyBackend is accepted and has nothing to do: the agent is in-process.
        let opts = LogOptions {
            container: params.first("container").filter(|c| !c.is_empty()).map(str::to_string),
            follow: params.flag("follow"),
            previous: params.flag("previous"),
            tail_lines: params.int("tailLines")?,
            since_seconds: params.int("sinceSeconds")?,
            since_time,
            timestamps: params.flag("timestamps"),
            limit_bytes: params.int("limitBytes")?,
        };
        let mut errs = Vec::new();
        if let Some(n) = opts.tail_lines.filter(|n| *n < 0) {
            errs.push(FieldError::invalid("tailLines", &json!(n), "must be greater than or equal to 0"));
        }
        if let Some(n) = opts.limit_bytes.filter(|n| *n < 1) {
            errs.push(FieldError::invalid("limitBytes", &json!(n), "must be greater than 0"));
        }
        match (opts.since_seconds, &opts.since_time) {
            (Some(_), Some(_)) => errs.push(FieldError::forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified")),
            (Some(n), None) if n < 1 => errs.push(FieldError::invalid("sinceSeconds", &json!(n), "must be greater than 0")),
            _ => {}
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid_kind("PodLogOptions", "", name, &errs));
        }
        Ok(opts)
    }
}

async fn log(api: &ApiServer, info: &ResourceInfo, ns: &str, name: &str, method: &Method, params: &Params) -> ApiResult<Response> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(method, "pods/log"));
    }
    let opts = LogOptions::parse(params, name)?;
    let pod = get_pod(api, info, ns, name)?;
    let container = choose_container(&pod, name, opts.container.as_deref())?;
    if node_name(&pod).is_empty() {
        // Upstream answers an empty log for a pod not yet scheduled (`LogLocation` has no location, and
        // `LocationStreamer` streams nothing), so `kubectl logs` right after `run` prints nothing, not an error.
        return Ok(text_response(Body::empty()));
    }
    let node = connector(api)?;
    let limit = opts.limit_bytes;
    let stream = node
        .logs(LogRequest {
            pod,
            container,
            follow: opts.follow,
            previous: opts.previous,
            tail_lines: opts.tail_lines,
            since_seconds: opts.since_seconds,
            since_time: opts.since_time,
            timestamps: opts.timestamps,
            limit_bytes: opts.limit_bytes,
        })
        .await?;
    // A follow stream ends with the server too, as watches do, so graceful shutdown is not held up.
    let mut shutdown = api.shutdown_signal();
    let stopped = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    Ok(text_response(Body::from_stream(limit_bytes(stream, limit).take_until(stopped))))
}

/// 200 `text/plain`; hyper sends each chunk of a streamed body as it comes (chunked, flushed).
fn text_response(body: Body) -> Response {
    Response::builder().status(StatusCode::OK).header(header::CONTENT_TYPE, "text/plain").body(body).expect("valid response")
}

/// Cut `stream` after `limit` bytes, whatever the connector does with `limit_bytes`.
fn limit_bytes(stream: ByteStream, limit: Option<i64>) -> ByteStream {
    let Some(limit) = limit else { return stream };
    let left = u64::try_from(limit).unwrap_or(0);
    Box::pin(futures::stream::unfold((stream, left), |(mut stream, left)| async move {
        if left == 0 {
            return None;
        }
        match stream.next().await? {
            Ok(mut chunk) => {
                if chunk.len() as u64 > left {
                    chunk.truncate(left as usize);
                }
                let left = left - chunk.len() as u64;
                Some((Ok(chunk), (stream, left)))
            }
            Err(e) => Some((Err(e), (stream, 0))),
        }
    }))
}

// ---------------------------------------------------------------------------------------------
// pods/exec
// ---------------------------------------------------------------------------------------------

/// `PodExecOptions` from the query.
#[derive(Debug, PartialEq)]
struct ExecOptions {
    container: Option<String>,
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl ExecOptions {
    /// `PodAttachOptions`: the same streams, no command.
    fn parse_attach(params: &Params) -> ApiResult<ExecOptions> {
        let tty = params.flag("tty");
        let opts = ExecOptions {
            container: params.first("container").filter(|c| !c.is_empty()).map(str::to_string),
            command: Vec::new(),
            stdin: params.flag("stdin"),
            stdout: params.flag("stdout"),
            stderr: params.flag("stderr") && !tty,
            tty,
        };
        if !opts.stdin && !opts.stdout && !opts.stderr {
            return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
        }
        Ok(opts)
    }

    fn parse(params: &Params) -> ApiResult<ExecOptions> {
        let tty = params.flag("tty");
        let opts = ExecOptions {
            container: params.first("container").filter(|c| !c.is_empty()).map(str::to_string),
            command: params.all("command"),
            stdin: params.flag("stdin"),
            stdout: params.flag("stdout"),
            // A terminal has one output stream; upstream drops stderr (kubelet `remotecommand.NewOptions`).
            stderr: params.flag("stderr") && !tty,
            tty,
        };
        if opts.command.is_empty() {
            return Err(ApiError::bad_request("you must specify at least one command for the container"));
        }
        if !opts.stdin && !opts.stdout && !opts.stderr {
            return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
        }
        Ok(opts)
    }
}

/// How the client asked to talk.
#[derive(Debug, PartialEq)]
enum Transport {
    WebSocket,
    Spdy,
    Plain,
}

fn transport(headers: &HeaderMap) -> Transport {
    let connection_upgrade = headers.get_all(header::CONNECTION).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    if !connection_upgrade || upgrade.is_empty() {
        Transport::Plain
    } else if upgrade.eq_ignore_ascii_case("websocket") {
        Transport::WebSocket
    } else if upgrade.to_ascii_lowercase().starts_with("spdy/") {
        Transport::Spdy
    } else {
        Transport::Plain
    }
}

/// The subprotocol to answer with: v5 when offered, else v4.
fn choose_protocol(headers: &HeaderMap) -> ApiResult<&'static str> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    [V5_CHANNEL, V4_CHANNEL].into_iter().find(|p| offered.contains(p)).ok_or_else(|| {
        ApiError::bad_request(format!(
            "pods/exec over WebSocket needs the subprotocol {V5_CHANNEL} or {V4_CHANNEL}; the client offered {}",
            if offered.is_empty() { "none".to_string() } else { offered.join(", ") }
        ))
    })
}

/// `pods/exec`, or with `attach` `pods/attach`: the same streams over the same transports; attach joins the
/// container's own stdio instead of starting a command.
async fn exec(api: &ApiServer, info: &ResourceInfo, ns: &str, name: &str, mut parts: Parts, params: &Params, attach: bool) -> ApiResult<Response> {
    let what = if attach { "pods/attach" } else { "pods/exec" };
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(ApiError::method_not_allowed(&parts.method, what));
    }
    let opts = if attach { ExecOptions::parse_attach(params)? } else { ExecOptions::parse(params)? };
    let pod = get_pod(api, info, ns, name)?;
    let container = choose_container(&pod, name, opts.container.as_deref())?;
    if node_name(&pod).is_empty() {
        return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
    }
    match transport(&parts.headers) {
        Transport::WebSocket => {}
        // SPDY: issue 7. kubectl before 1.30, and 1.30+ with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false, or
        // after a refused WebSocket handshake, come here.
        Transport::Spdy => {
            let protocol = crate::remotecommand_spdy::negotiate(&parts.headers)?;
            let on_upgrade = parts
                .extensions
                .remove::<hyper::upgrade::OnUpgrade>()
                .ok_or_else(|| ApiError::bad_request(format!("{what}: this connection cannot be upgraded to SPDY/3.1 (it needs HTTP/1.1)")))?;
            let node = connector(api)?;
            let command = opts.command.clone();
            let streams = crate::remotecommand_spdy::Streams { stdin: opts.stdin, stdout: opts.stdout, stderr: opts.stderr, tty: opts.tty };
            let session = if attach {
                node.attach(AttachRequest { pod, container, stdin: opts.stdin, stdout: opts.stdout, stderr: opts.stderr }).await?
            } else {
                node.exec(ExecRequest { pod, container, command: opts.command, stdin: opts.stdin, stdout: opts.stdout, stderr: opts.stderr, tty: opts.tty }).await?
            };
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(io) => crate::remotecommand_spdy::serve(hyper_util::rt::TokioIo::new(io), session, streams, command, protocol).await,
                    Err(e) => tracing::debug!(error = %e, "exec: the SPDY upgrade failed"),
                }
            });
            return Ok(crate::portforward::spdy_switching(protocol));
        }
        Transport::Plain => {
            return Err(ApiError::bad_request(
                "Upgrade request required: pods/exec needs a WebSocket connection (Connection: Upgrade, Upgrade: websocket, \
                 Sec-WebSocket-Protocol: v5.channel.k8s.io)",
            ))
        }
    }
    let protocol = choose_protocol(&parts.headers)?;
    // axum's handshake accepts only GET on HTTP/1.1; some clients POST (as they do for SPDY), and the
    // handshake is otherwise the same.
    parts.method = Method::GET;
    let mut ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("pods/exec: the WebSocket handshake failed: {}", e.body_text())))?;
    ws.set_selected_protocol(HeaderValue::from_static(protocol));

    let node = connector(api)?;
    let command = opts.command.clone();
    let session = if attach {
        node.attach(AttachRequest { pod, container, stdin: opts.stdin, stdout: opts.stdout, stderr: opts.stderr }).await?
    } else {
        node.exec(ExecRequest { pod, container, command: opts.command, stdin: opts.stdin, stdout: opts.stdout, stderr: opts.stderr, tty: opts.tty }).await?
    };
    let v5 = protocol == V5_CHANNEL;
    let tty = session.tty;
    Ok(ws.on_upgrade(move |socket| run_session(socket, session, v5, tty, command)))
}

/// The end-of-session `Status` on the error channel, as the kubelet writes it (`ServeExec`): Success, or
/// Failure with reason `NonZeroExitCode` and the code as the one cause (kubectl exits with that code), or
/// the node's error.
pub fn exit_status(command: &[String], exit: &Result<ExitStatus, NodeError>) -> Value {
    match exit {
        Ok(status) if status.code() == 0 => json!({"metadata": {}, "status": "Success"}),
        Ok(status) => {
            let code = status.code();
            json!({
                "metadata": {},
                "status": "Failure",
                // Go's %v of the command slice and the CRI's wording of the exit error.
                "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
        }
        Err(NodeError::Internal(m)) => ApiError::internal(format!("error executing command in container: {m}")).status(),
        Err(e) => ApiError::from(e.clone()).status(),
    }
}

/// One exec session over the WebSocket: client stdin/resize/close frames in, the command's output out,
/// then the exit status on channel 3 and a normal close.
async fn run_session(socket: WebSocket, session: ExecSession, v5: bool, tty: bool, command: Vec<String>) {
    let ExecSession { stdin, stdout, stderr, resize, mut exit, .. } = session;
    let (mut sink, mut source) = socket.split();
    // The pumps and the stdin feeder; dropping the set (the client went away) stops them.
    let mut tasks = tokio::task::JoinSet::new();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(8);
    if let Some(r) = stdout {
        tasks.spawn(pump(r, Some(STDOUT), out_tx.clone()));
    }
    if let Some(r) = stderr {
        // With a terminal nothing may be sent on channel 2 (client-go fails with "Unknown stream id 2").
        tasks.spawn(pump(r, (!tty).then_some(STDERR), out_tx.clone()));
    }
    drop(out_tx);
    let mut stdin_tx = stdin.map(|w| {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        tasks.spawn(feed(w, rx));
        tx
    });

    let mut frames = ClientFrames { v5, resize, resize_buf: Vec::new() };
    // Stdin data waiting for room in the feeder's queue; client frames are not read meanwhile (backpressure).
    let mut pending: Option<Bytes> = None;
    let mut outputs_open = true;
    let mut exited: Option<Result<ExitStatus, NodeError>> = None;
    let drain = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(drain);

    let result = loop {
        if !outputs_open {
            if let Some(r) = exited.take() {
                break r;
            }
        }
        tokio::select! {
            out = out_rx.recv(), if outputs_open => match out {
                Some(m) => {
                    if sink.send(m).await.is_err() {
                        return;
                    }
                }
                None => outputs_open = false,
            },
            r = &mut exit, if exited.is_none() => {
                exited = Some(r);
                drain.as_mut().reset(tokio::time::Instant::now() + EXIT_DRAIN);
            }
            () = &mut drain, if exited.is_some() && outputs_open => {
                tracing::debug!(?command, "exec: output still open after the command exited; sending the status");
                outputs_open = false;
            }
            sent = async {
                match (&stdin_tx, &pending) {
                    (Some(tx), Some(data)) => tx.send(data.clone()).await.is_ok(),
                    _ => std::future::pending().await,
                }
            }, if pending.is_some() => {
                pending = None;
                if !sent {
                    stdin_tx = None;
                }
            }
            msg = source.next(), if pending.is_none() => match msg {
                Some(Ok(Message::Binary(data))) => frames.handle(data, &mut stdin_tx, &mut pending),
                // Pings are answered by tungstenite while we read; text frames are not part of the protocol.
                Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
                // The client closed or went away: drop the session, which ends the command.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            },
        }
    };
    drop(stdin_tx);

    let mut frame = vec![ERROR];
    frame.extend(serde_json::to_vec(&exit_status(&command, &result)).expect("JSON serialises"));
    if sink.send(Message::Binary(frame.into())).await.is_err() {
        return;
    }
    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    // Let the client answer the close, so the connection ends with a complete closing handshake.
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = source.next().await {} }).await;
}

/// What the client sends: stdin data, terminal sizes, stream closes.
struct ClientFrames {
    v5: bool,
    resize: Option<mpsc::Sender<(u16, u16)>>,
    /// Channel 4 is a byte stream of JSON values; a message may hold part of one.
    resize_buf: Vec<u8>,
}

#[derive(serde::Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

impl ClientFrames {
    fn handle(&mut self, data: Bytes, stdin: &mut Option<mpsc::Sender<Bytes>>, pending: &mut Option<Bytes>) {
        let Some(&channel) = data.first() else { return };
        match channel {
            STDIN if data.len() > 1 => {
                if let Some(tx) = stdin {
                    match tx.try_send(data.slice(1..)) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(d)) => *pending = Some(d),
                        // The command closed its stdin (or ended); what the client sends is dropped.
                        Err(mpsc::error::TrySendError::Closed(_)) => *stdin = None,
                    }
                }
            }
            RESIZE => {
                self.resize_buf.extend_from_slice(&data[1..]);
                for (w, h) in take_sizes(&mut self.resize_buf) {
                    if let Some(tx) = &self.resize {
                        // Only the latest size matters; a full queue drops this one.
                        let _ = tx.try_send((w, h));
                    }
                }
            }
            // `[255, 0]`: the client's stdin reached EOF; so does the command's, once queued data is written.
            CLOSE if self.v5 && data.get(1) == Some(&STDIN) => *stdin = None,
            _ => {}
        }
    }
}

/// The complete terminal sizes at the front of `buf` (a stream of JSON values, Go's `json.Encoder`, split
/// anywhere by the transport); a partial value stays for later, garbage is dropped, and the buffer is bounded.
/// WebSocket channel 4 and the SPDY resize stream both carry this.
pub(crate) fn take_sizes(buf: &mut Vec<u8>) -> Vec<(u16, u16)> {
    let mut sizes = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(buf).into_iter::<TerminalSize>();
    let consumed = loop {
        match de.next() {
            Some(Ok(s)) => sizes.push((s.width, s.height)),
            Some(Err(e)) if e.is_eof() => break de.byte_offset(),
            Some(Err(_)) | None => break buf.len(),
        }
    };
    buf.drain(..consumed);
    if buf.len() > 4096 {
        buf.clear();
    }
    sizes
}

/// Copy a command's output to the socket writer as channel messages until EOF (`channel` None: read and drop).
async fn pump(mut r: Pin<Box<dyn AsyncRead + Send>>, channel: Option<u8>, out: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "exec: reading the command's output");
                return;
            }
        };
        let Some(ch) = channel else { continue };
        let mut m = BytesMut::with_capacity(n + 1);
        m.put_u8(ch);
        m.extend_from_slice(&buf[..n]);
        if out.send(Message::Binary(m.freeze())).await.is_err() {
            return;
        }
    }
}

/// Write what the client sends to the command's stdin; when the client closes stdin (the sender is
/// dropped), shut the writer down: EOF for the command.
async fn feed(mut w: Pin<Box<dyn AsyncWrite + Send>>, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(data) = rx.recv().await {
        if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(&format!("/x?{q}").parse().unwrap()).unwrap()
    }

    fn pod(containers: &[&str], init: &[&str], annotation: Option<&str>) -> Pod {
        let mut v = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": containers.iter().map(|c| json!({"name": c})).collect::<Vec<_>>()},
        });
        if !init.is_empty() {
            v["spec"]["initContainers"] = json!(init.iter().map(|c| json!({"name": c})).collect::<Vec<_>>());
        }
        if let Some(a) = annotation {
            v["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/default-container": a});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn container_choice() {
        assert_eq!(choose_container(&pod(&["a"], &[], None), "p", None).unwrap(), "a");
        assert_eq!(choose_container(&pod(&["a", "b"], &["i"], None), "p", Some("i")).unwrap(), "i", "init containers are valid");
        assert_eq!(choose_container(&pod(&["a", "b"], &[], Some("b")), "p", None).unwrap(), "b");
        let e = choose_container(&pod(&["a", "b"], &["i", "j"], None), "p", None).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i j]"));
        let e = choose_container(&pod(&["a", "b"], &[], Some("zz")), "p", None).unwrap_err();
        assert_eq!(e.message, "a container name must be specified for pod p, choose one of: [a b]");
        let e = choose_container(&pod(&["a"], &[], None), "p", Some("y")).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "container y is not valid for pod p"));
    }

    #[test]
    fn log_options() {
        let o = LogOptions::parse(&params("container=c&follow=true&tailLines=5&timestamps=1&limitBytes=100&sinceSeconds=3600"), "p").unwrap();
        assert_eq!(
            o,
            LogOptions {
                container: Some("c".into()),
                follow: true,
                previous: false,
                tail_lines: Some(5),
                since_seconds: Some(3600),
                since_time: None,
                timestamps: true,
                limit_bytes: Some(100),
            }
        );
        assert!(!LogOptions::parse(&params("follow=false&previous=0"), "p").unwrap().follow);
        let e = LogOptions::parse(&params("tailLines=-1"), "p").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (422, "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"));
        let e = LogOptions::parse(&params("limitBytes=0"), "p").unwrap_err();
        assert_eq!(e.message, "PodLogOptions \"p\" is invalid: limitBytes: Invalid value: 0: must be greater than 0");
        let e = LogOptions::parse(&params("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z"), "p").unwrap_err();
        assert!(e.message.contains("at most one of `sinceTime` or `sinceSeconds` may be specified"), "{}", e.message);
        let e = LogOptions::parse(&params("tailLines=x"), "p").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "tailLines: invalid value \"x\": must be an integer"));
        assert_eq!(LogOptions::parse(&params("sinceTime=yesterday"), "p").unwrap_err().code, 400);
    }

    #[test]
    fn exec_options() {
        let o = ExecOptions::parse(&params("command=sh&command=-c&command=echo%20hi&stdout=true&stderr=true&tty=true")).unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo hi"]);
        assert!(o.stdout && o.tty && !o.stderr, "a terminal has no separate stderr");
        assert_eq!(ExecOptions::parse(&params("stdout=true")).unwrap_err().message, "you must specify at least one command for the container");
        assert_eq!(ExecOptions::parse(&params("command=ls")).unwrap_err().message, "you must specify at least 1 of stdin, stdout, stderr");
    }

    #[test]
    fn exit_statuses() {
        let cmd: Vec<String> = ["sh", "-c", "exit 3"].map(String::from).to_vec();
        assert_eq!(serde_json::to_string(&exit_status(&cmd, &Ok(ExitStatus::Code(0)))).unwrap(), r#"{"metadata":{},"status":"Success"}"#);
        assert_eq!(
            exit_status(&cmd, &Ok(ExitStatus::Code(3))),
            json!({"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}})
        );
        assert_eq!(exit_status(&cmd, &Ok(ExitStatus::Signal(9)))["details"]["causes"][0]["message"], "137");
        let s = exit_status(&cmd, &Err(NodeError::Internal("boom".into())));
        assert_eq!((s["reason"].as_str(), s["message"].as_str()), (Some("InternalError"), Some("Internal error occurred: error executing command in container: boom")));
    }

    #[test]
    fn resize_frames_are_a_byte_stream() {
        let mut b = br#"{"Width":100,"Height":30}"#.to_vec();
        b.extend_from_slice(b"\n{\"Width\":8");
        assert_eq!(take_sizes(&mut b), [(100, 30)]);
        b.extend_from_slice(b"0,\"Height\":24}\n");
        assert_eq!(take_sizes(&mut b), [(80, 24)]);
        assert!(b.iter().all(u8::is_ascii_whitespace));
    }

    #[test]
    fn transports_and_protocols() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
            }
            m
        };
        assert_eq!(transport(&h(&[("connection", "Upgrade"), ("upgrade", "websocket")])), Transport::WebSocket);
        assert_eq!(transport(&h(&[("connection", "keep-alive, Upgrade"), ("upgrade", "SPDY/3.1")])), Transport::Spdy);
        assert_eq!(transport(&h(&[("upgrade", "websocket")])), Transport::Plain);
        assert_eq!(choose_protocol(&h(&[("sec-websocket-protocol", "v4.channel.k8s.io, v5.channel.k8s.io")])).unwrap(), V5_CHANNEL);
        assert_eq!(choose_protocol(&h(&[("sec-websocket-protocol", "v4.channel.k8s.io")])).unwrap(), V4_CHANNEL);
        assert!(choose_protocol(&h(&[("sec-websocket-protocol", "channel.k8s.io")])).is_err());
    }
}
