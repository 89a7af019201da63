//! Namespace lifecycle (upstream's namespace controller, kept in the API server because it is part of what
//! "delete namespace" means): a Terminating namespace has its objects deleted, then is removed.
//!
//! Event-driven: woken by namespace changes; while a namespace still holds objects (pods in their grace
//! period, objects waiting for the garbage collector), it retries every second. Objects are deleted with
//! `propagationPolicy: Background` as upstream's namespace deleter does: everything in the namespace goes anyway,
//! so a kind's orphaning default (Jobs) would only make the garbage collector strip references first. The
//! namespace itself goes once it is empty and has no finalizers left in `metadata.finalizers` (a namespace deleted
//! in the foreground or orphaning waits for the garbage collector like any object).

use std::time::Duration;

use k1s_api::{meta, resources};
use serde_json::Value;

use crate::registry::{DeleteOptions, Registry};

/// Run until the store closes.
pub async fn run(registry: Registry) {
    let ns_info = resources::find("", "v1", "namespaces").expect("namespaces are served");
    let prefix = crate::registry::prefix(ns_info, None);
    loop {
        let mut ws = match registry.store().watch(&prefix, registry.store().revision()) {
            Ok(ws) => ws,
            Err(_) => return,
        };
        loop {
            let pending = sweep(&registry).await;
            let wait = if pending { Duration::from_secs(1) } else { Duration::from_secs(3600) };
            tokio::select! {
                ev = ws.next() => match ev {
                    None => return,
                    Some(Err(_)) => break, // fell behind: re-watch
                    Some(Ok(_)) => {}
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Process every Terminating namespace once; true if some still wait for their objects to go.
pub async fn sweep(registry: &Registry) -> bool {
    let ns_info = resources::find("", "v1", "namespaces").expect("namespaces are served");
    let Ok(all) = registry.raw_list(ns_info, None) else { return true };
    let mut pending = false;
    for ns in all.iter().filter(|n| meta::is_deleting(n)) {
        let name = meta::name(ns);
        let mut remaining = 0usize;
        for info in resources::storage_resources().into_iter().filter(|r| r.namespaced) {
            let Ok(objs) = registry.raw_list(info, Some(name)) else {
                remaining += 1;
                continue;
            };
            for o in &objs {
                remaining += 1;
                if !meta::is_deleting(o) {
                    let background = DeleteOptions { propagation_policy: Some("Background".into()), ..DeleteOptions::default() };
                    if let Err(e) = registry.delete(info, Some(name), meta::name(o), &background).await {
                        if e.code != 404 {
                            tracing::warn!(namespace = name, object = meta::name(o), error = %e, "namespace cleanup: delete failed");
                        }
                    }
                }
            }
        }
        if remaining == 0 && meta::finalizers(ns).is_empty() {
            let rv = ns.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|s| s.parse().ok());
            match registry.remove(ns_info, None, name, rv).await {
                Ok(()) => tracing::info!(namespace = name, "namespace deleted"),
                Err(e) if e.code == 404 => {}
                Err(_) => pending = true,
            }
        } else {
            pending = true;
        }
    }
    pending
}
