//! Event expiry: Events live for a time-to-live after they were last seen, then go (upstream kube-apiserver
//! `--event-ttl`, default 1h, which it implements as an etcd lease on every Event write).
//!
//! k1s's store has no leases, so a background sweep in the API server does it: every `ttl / 60` (at least 50 ms,
//! at most a minute) it removes the Events whose last-seen time ([`k1s_api::events::last_seen`]), or creation if
//! that is later, is older than the TTL: like the lease, an Event lives at least the TTL after it was written, even
//! one that reports something older. The removal is conditional on the revision it read, so an Event that is being
//! counted up at that moment stays.

use std::time::Duration;

use k1s_api::{meta, resources};
use k1s_store::Revision;
use serde_json::Value;

use crate::registry::Registry;

/// Upstream's `--event-ttl` default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// How often the sweep runs for a TTL.
pub fn interval(ttl: Duration) -> Duration {
    (ttl / 60).clamp(Duration::from_millis(50), Duration::from_secs(60))
}

/// Run the sweep forever (it ends with the runtime).
pub async fn run(registry: Registry, ttl: Duration) {
    let every = interval(ttl);
    loop {
        let removed = sweep(&registry, ttl).await;
        if removed > 0 {
            tracing::debug!(removed, "expired events removed");
        }
        tokio::time::sleep(every).await;
    }
}

/// Remove every Event last seen more than `ttl` ago; answers how many went.
pub async fn sweep(registry: &Registry, ttl: Duration) -> usize {
    let info = resources::find("", "v1", "events").expect("events are served");
    let Ok(all) = registry.raw_list(info, None) else { return 0 };
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let ttl_ms = ttl.as_millis() as i64;
    let mut removed = 0;
    for ev in &all {
        let created = ev.pointer("/metadata/creationTimestamp").and_then(Value::as_str).and_then(meta::parse_time);
        // An Event without any time at all cannot be aged (the API server always sets creationTimestamp).
        let Some(seen) = k1s_api::events::last_seen(ev).max(created) else { continue };
        if seen.as_millisecond().saturating_add(ttl_ms) > now_ms {
            continue;
        }
        let rv: Option<Revision> = ev.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|s| s.parse().ok());
        match registry.remove(info, Some(meta::namespace(ev)), meta::name(ev), rv).await {
            Ok(()) => removed += 1,
            // Gone already, or written since it was read (a repeat counted it up): the next sweep looks again.
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(event = meta::name(ev), error = %e, "removing an expired event"),
        }
    }
    removed
}
