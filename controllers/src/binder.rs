//! A minimal scheduler: every Pod without `spec.nodeName` (and with the default scheduler) is bound to this
//! node through `pods/binding`, as kube-scheduler does. No fit checks yet (the scheduler issue).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;

fn wants_binding(p: &Pod) -> bool {
    let spec = p.spec.as_ref();
    p.metadata.deletion_timestamp.is_none()
        && spec.and_then(|s| s.node_name.as_deref()).unwrap_or("").is_empty()
        && spec.and_then(|s| s.scheduler_name.as_deref()).is_none_or(|s| s == "default-scheduler")
}

async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let body = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    match api.create_subresource::<_, serde_json::Value>("binding", name, &PostParams::default(), &body).await {
        Ok(_) => Ok(()),
        // Already bound, or gone: nothing to do.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Bind unbound Pods to `node`, forever.
pub async fn run(client: kube::Client, node: String) {
    let api: Api<Pod> = Api::all(client.clone());
    let mut stream = watcher(api, watcher::Config::default().fields("spec.nodeName=")).boxed();
    while let Some(ev) = stream.next().await {
        let pods = match ev {
            Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => vec![p],
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "binder watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for p in pods.into_iter().filter(wants_binding) {
            if let Err(e) = bind(&client, &p, &node).await {
                tracing::warn!(pod = ?p.metadata.name, error = %e, "binding");
            }
        }
    }
}
