//! The API server's node subresources (pods/log, pods/exec, pods/attach) wired to the in-process agent.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::StreamExt;
use k1s_agent::logs::{LogError, LogOptions};
use k1s_agent::Agent;
use k1s_agent::stdio::{Session, Streams};
use k1s_apiserver::node::{AttachRequest, ByteStream, ExecRequest, ExecSession, ExitStatus, LogRequest, NodeConnector, NodeError};

pub struct AgentConnector(pub Agent);

impl NodeConnector for AgentConnector {
    fn logs(&self, req: LogRequest) -> BoxFuture<'static, Result<ByteStream, NodeError>> {
        let agent = self.0.clone();
        Box::pin(async move {
            let uid = k1s_agent::static_pods::runtime_uid(&req.pod);
            let name = req.pod.metadata.name.clone().unwrap_or_default();
            let since = match (req.since_seconds, req.since_time.as_deref()) {
                (Some(s), _) => Some(k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(s)),
                (None, Some(t)) => Some(k1s_api::meta::parse_time(t).ok_or_else(|| NodeError::BadRequest(format!("sinceTime {t:?} is not an RFC 3339 time")))?),
                _ => None,
            };
            let opts = LogOptions { follow: req.follow, previous: req.previous, tail_lines: req.tail_lines, since, timestamps: req.timestamps, limit_bytes: req.limit_bytes };
            match agent.logs(&uid, &name, &req.container, opts) {
                Ok(s) => Ok(s.boxed()),
                Err(LogError::NotFound(m)) => Err(NodeError::NotFound(m)),
                Err(LogError::BadRequest(m)) => Err(NodeError::BadRequest(m)),
            }
        })
    }

    fn exec(&self, req: ExecRequest) -> BoxFuture<'static, Result<ExecSession, NodeError>> {
        let agent = self.0.clone();
        Box::pin(async move {
            let uid = k1s_agent::static_pods::runtime_uid(&req.pod);
            let streams = Streams { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, tty: req.tty };
            let session = agent.exec(&uid, &req.container, &req.command, streams).map_err(node_error)?;
            Ok(to_exec_session(session))
        })
    }

    fn attach(&self, req: AttachRequest) -> BoxFuture<'static, Result<ExecSession, NodeError>> {
        let agent = self.0.clone();
        Box::pin(async move {
            let uid = k1s_agent::static_pods::runtime_uid(&req.pod);
            let streams = Streams { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, tty: false };
            let session = agent.attach(&uid, &req.container, streams).await.map_err(node_error)?;
            Ok(to_exec_session(session))
        })
    }

    fn port_forward(&self, pod: k8s_openapi::api::core::v1::Pod, port: u16) -> BoxFuture<'static, Result<k1s_apiserver::node::PodConnection, NodeError>> {
        let agent = self.0.clone();
        Box::pin(async move {
            use k1s_agent::portforward::PortForwardError;
            let uid = k1s_agent::static_pods::runtime_uid(&pod);
            match agent.port_forward(&uid, port).await {
                Ok(conn) => Ok(Box::pin(conn) as k1s_apiserver::node::PodConnection),
                Err(e @ PortForwardError::NotRunning(_)) => Err(NodeError::BadRequest(e.to_string())),
                Err(e @ PortForwardError::Connect { .. }) => Err(NodeError::BadRequest(e.to_string())),
                Err(e) => Err(NodeError::Internal(e.to_string())),
            }
        })
    }
}

fn node_error(e: k1s_agent::exec::ExecError) -> NodeError {
    match e {
        k1s_agent::exec::ExecError::NotRunning(m) => NodeError::BadRequest(m),
        e => NodeError::Internal(e.to_string()),
    }
}

fn to_exec_session(s: Session) -> ExecSession {
    let Session { stdin, stdout, stderr, resize, tty, exit } = s;
    let exit = Box::pin(async move {
        let st = exit.await.map_err(|e| NodeError::Internal(e.to_string()))?;
        use std::os::unix::process::ExitStatusExt;
        Ok(match (st.code(), st.signal()) {
            (Some(c), _) => ExitStatus::Code(c),
            (None, Some(s)) => ExitStatus::Signal(s),
            _ => ExitStatus::Code(255),
        })
    });
    ExecSession { stdin, stdout, stderr, resize, exit, tty }
}

pub fn install(api: &k1s_apiserver::ApiServer, agent: Agent) {
    api.set_node_connector(Arc::new(AgentConnector(agent)));
}
