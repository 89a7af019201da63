//! What the keyed controller loops (Job, ReplicaSet, Deployment) share: a watch forwarded into the loop's one
//! channel, cache keys and revisions, a delay queue of keys, and upstream's expectations.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A namespaced object's (namespace, name).
pub type Key = (String, String);

/// A failed API call is retried after this long.
pub const RETRY: Duration = Duration::from_secs(1);
/// Expectations older than this are dropped (a watch event was missed; upstream waits 5 minutes).
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);

pub fn key_of(meta: &ObjectMeta) -> Key {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// The object's resourceVersion as a number (k1s's are store revisions), to never let an older watch event
/// replace a newer cached object (our own writes update the cache before the watch shows them).
pub fn rv(meta: &ObjectMeta) -> u64 {
    meta.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Feed a watch into a loop's channel, wrapping each event in the loop's input type; errors are retried.
/// A cached Pod with only what the Job and ReplicaSet controllers read: metadata (without managedFields and
/// kubectl's last-applied copy), `spec.nodeName`, and the status. The ReplicaSet controller must keep every
/// Pod (a bare one may be adopted), so its cache grows with every Pod of the node: the containers, volumes
/// and the rest of the spec are most of a Pod's size, and no controller decision depends on them (the
/// template comes from the owner).
pub fn slim_pod(p: &mut k8s_openapi::api::core::v1::Pod) {
    p.metadata.managed_fields = None;
    if let Some(a) = p.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    if let Some(spec) = p.spec.take() {
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec { node_name: spec.node_name, ..Default::default() });
    }
}

pub async fn forward<K, S, I>(stream: S, tx: mpsc::UnboundedSender<I>, wrap: fn(watcher::Event<K>) -> I, who: &'static str)
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(ev) => {
                if tx.send(wrap(ev)).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "{who} watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Upstream's expectations: Pods a controller created or deleted that its watch has not shown yet. While any
/// are outstanding it plans no new creations or deletions (the cache lags behind its own writes).
#[derive(Default)]
pub struct Expectations {
    pub creates: i64,
    pub deletes: HashSet<String>,
    pub since: Option<Instant>,
}

impl Expectations {
    pub fn met(&self) -> bool {
        (self.creates <= 0 && self.deletes.is_empty()) || self.since.is_some_and(|t| t.elapsed() > EXPECTATION_TIMEOUT)
    }
}

/// Keys to sync, each at its earliest requested time.
#[derive(Default)]
pub struct DelayQueue(HashMap<Key, Instant>);

impl DelayQueue {
    /// Sync `key` after `after` (or earlier, if it is already due sooner).
    pub fn add(&mut self, key: Key, after: Duration) {
        let at = Instant::now() + after;
        let e = self.0.entry(key).or_insert(at);
        *e = (*e).min(at);
    }

    /// When the next key is due.
    pub fn next(&self) -> Option<Instant> {
        self.0.values().min().copied()
    }

    /// Remove and return the keys that are due.
    pub fn take_due(&mut self) -> Vec<Key> {
        let now = Instant::now();
        let due: Vec<Key> = self.0.iter().filter(|(_, t)| **t <= now).map(|(k, _)| k.clone()).collect();
        for k in &due {
            self.0.remove(k);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delay_queue_keeps_the_earliest_time() {
        let mut q = DelayQueue::default();
        let (a, b) = (("ns".to_string(), "a".to_string()), ("ns".to_string(), "b".to_string()));
        q.add(a.clone(), Duration::from_secs(60));
        q.add(b.clone(), Duration::from_secs(60));
        // Asking again for sooner wins; asking for later does not postpone it.
        q.add(a.clone(), Duration::ZERO);
        q.add(a.clone(), Duration::from_secs(120));
        assert_eq!(q.take_due(), vec![a]);
        assert!(q.take_due().is_empty());
        assert!(q.next().is_some_and(|t| t > Instant::now()));
    }
}
