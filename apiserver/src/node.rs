//! The API server's seam to the node agent: the kubelet half of `pods/{name}/log`, `exec`, `attach` and
//! `portforward`.
//!
//! Upstream, kube-apiserver proxies these subresources to the kubelet's HTTP server
//! (`pkg/registry/core/pod/rest/log.go`, `subresources.go`). k1s runs the agent in the same process, so the
//! API server owns this narrow trait instead and the composition root installs the agent behind it with
//! [`crate::ApiServer::set_node_connector`] (the agent is built after the API server, because it talks to
//! the API through an in-process client made from [`crate::ApiServer::router`]).
//!
//! The API server has already looked the pod up, chosen and checked the container, validated the options
//! and checked that the pod is bound to a node when a connector is called; the connector streams bytes and
//! runs commands. Its errors become a `metav1.Status` at the HTTP edge (`error.rs`).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::Stream;
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncRead, AsyncWrite};

/// A container's log: chunks of bytes as the node produces them. With `follow` it ends when the container's
/// log ends for good (the container exited and its output is drained) or when the API server drops it (the
/// client went away).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// `GET pods/{name}/log`, checked: the container exists in the pod, and the options are valid
/// (`sinceSeconds`/`sinceTime` exclusive, `tailLines` ≥ 0, `limitBytes` ≥ 1, `sinceSeconds` ≥ 1).
#[derive(Debug, Clone)]
pub struct LogRequest {
    /// The pod as stored, bound to a node.
    pub pod: Pod,
    /// A container, init container or ephemeral container of `pod`.
    pub container: String,
    pub follow: bool,
    /// The log of the previous instance of the container (after a restart).
    pub previous: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    /// RFC 3339, as the client sent it.
    pub since_time: Option<String>,
    /// Prefix each line with an RFC 3339 timestamp (nanoseconds) and a space.
    pub timestamps: bool,
    /// Stop after this many bytes (the API server also cuts the stream there).
    pub limit_bytes: Option<i64>,
}

/// `pods/{name}/exec`, checked: a non-empty command, at least one stream, an existing container.
/// With `tty`, `stderr` is false (upstream merges it into the terminal, kubelet `remotecommand.NewOptions`).
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub pod: Pod,
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// `pods/attach`, checked: at least one stream, an existing container. Whether the session is on a terminal
/// is the container's `tty` (the connector says so in [`ExecSession::tty`]), not the request's.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    pub pod: Pod,
    pub container: String,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A running command. The streams that were asked for are `Some`.
///
/// The API server reads `stdout` and `stderr` to EOF before it awaits `exit`, so every byte reaches the
/// client before the exit status. Dropping the session before `exit` resolves means the client went away:
/// the connector should then end the command (as the kubelet does when the stream connection closes).
pub struct ExecSession {
    /// Dropped or shut down = EOF for the command.
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    pub stdout: Option<Pin<Box<dyn AsyncRead + Send>>>,
    pub stderr: Option<Pin<Box<dyn AsyncRead + Send>>>,
    /// Terminal size changes, `(width, height)`, when `tty` was asked for.
    pub resize: Option<tokio::sync::mpsc::Sender<(u16, u16)>>,
    /// Resolves when the command ends.
    pub exit: Pin<Box<dyn Future<Output = Result<ExitStatus, NodeError>> + Send>>,
    /// The session is on a terminal: one output stream, nothing may be sent on stderr's channel.
    pub tty: bool,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("resize", &self.resize.is_some())
            .finish_non_exhaustive()
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it. Reported to clients as exit code 128 + signal, as container runtimes do.
    Signal(i32),
}

impl ExitStatus {
    /// The exit code a client sees.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

/// Why the node could not serve a request. Each variant carries the message the client sees.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// The container (or its previous instance, or its log) does not exist on the node: 404.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be served in the container's state, e.g. `container "main" in pod "nginx" is
    /// waiting to start: ContainerCreating` (kubelet wording): 400.
    #[error("{0}")]
    BadRequest(String),
    /// The node agent cannot be reached or is not ready: 503.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: 500.
    #[error("{0}")]
    Internal(String),
}

/// A connection to a port inside a Pod's network namespace (`pods/{name}/portforward`): bytes both ways,
/// `shutdown` half-closes it.
pub type PodConnection = Pin<Box<dyn PodStream>>;

/// What [`PodConnection`] boxes: any async byte stream (a `tokio::net::TcpStream` from the agent).
pub trait PodStream: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> PodStream for T {}

/// The node agent, as the API server sees it. Implemented by the agent; installed with
/// [`crate::ApiServer::set_node_connector`].
pub trait NodeConnector: Send + Sync + 'static {
    /// A container's log. Errors before the first byte become the HTTP answer.
    fn logs(&self, req: LogRequest) -> BoxFuture<'static, Result<ByteStream, NodeError>>;
    /// Start a command in a container. Errors here become the HTTP answer (no WebSocket upgrade); errors
    /// from [`ExecSession::exit`] reach the client as a Failure `Status` on the error channel.
    fn exec(&self, req: ExecRequest) -> BoxFuture<'static, Result<ExecSession, NodeError>>;
    /// Attach to a running container's own stdio. The session's `exit` resolves (with code 0) when the
    /// container's output ends.
    fn attach(&self, req: AttachRequest) -> BoxFuture<'static, Result<ExecSession, NodeError>>;
    /// Connect to `port` on the Pod's loopback, inside its network namespace (the host's for a hostNetwork
    /// Pod), as the kubelet's port-forward does. Called once per forwarded connection.
    fn port_forward(&self, pod: Pod, port: u16) -> BoxFuture<'static, Result<PodConnection, NodeError>>;
}
