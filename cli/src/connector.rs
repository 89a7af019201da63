//! The API server's node subresources (pods/log, pods/exec) wired to the in-process agent.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::StreamExt;
use k1s_agent::logs::{LogError, LogOptions};
use k1s_agent::Agent;
use k1s_apiserver::node::{ByteStream, ExecRequest, ExecSession, ExitStatus, LogRequest, NodeConnector, NodeError};

pub struct AgentConnector(pub Agent);

impl NodeConnector for AgentConnector {
    fn logs(&self, req: LogRequest) -> BoxFuture<'static, Result<ByteStream, NodeError>> {
        let agent = self.0.clone();
        Box::pin(async move {
            let uid = req.pod.metadata.uid.clone().unwrap_or_default();
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
            if req.tty {
                // TTY needs a pty owned by the helper: the streaming issue.
                return Err(NodeError::BadRequest("exec with a TTY (-t) is not supported by k1s yet; run without -t".into()));
            }
            let uid = req.pod.metadata.uid.clone().unwrap_or_default();
            let mut child = agent.exec(&uid, &req.container, &req.command, req.stdin).map_err(|e| match e {
                k1s_agent::exec::ExecError::NotRunning(m) => NodeError::BadRequest(m),
                e => NodeError::Internal(e.to_string()),
            })?;
            let stdin = child.stdin.take().map(|s| Box::pin(s) as _);
            let stdout = child.stdout.take().filter(|_| req.stdout).map(|s| Box::pin(s) as _);
            let stderr = child.stderr.take().filter(|_| req.stderr).map(|s| Box::pin(s) as _);
            let exit = Box::pin(async move {
                let st = child.wait().await.map_err(|e| NodeError::Internal(e.to_string()))?;
                use std::os::unix::process::ExitStatusExt;
                Ok(match (st.code(), st.signal()) {
                    (Some(c), _) => ExitStatus::Code(c),
                    (None, Some(s)) => ExitStatus::Signal(s),
                    _ => ExitStatus::Code(255),
                })
            });
            Ok(ExecSession { stdin, stdout, stderr, resize: None, exit })
        })
    }
}

pub fn install(api: &k1s_apiserver::ApiServer, agent: Agent) {
    api.set_node_connector(Arc::new(AgentConnector(agent)));
}
