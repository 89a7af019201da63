//! Watch over HTTP: one flushed JSON line per event, upstream semantics (kubectl-wire.md §1.4, §3.4).
//!
//! - `resourceVersion` unset or "0": synthetic ADDED for every current match, then changes.
//! - `resourceVersion=N`: changes after N, or one ERROR event with 410 Expired when N is too old.
//! - Selectors apply to events: an object that stops matching is sent as DELETED, one that starts as ADDED.
//! - BOOKMARK only with `allowWatchBookmarks=true`; the stream ends after `timeoutSeconds`.
//!
//! A watcher that stops reading costs bounded memory (issue 9; upstream closes a `cacheWatcher` whose buffer
//! overflows). There is no queue per watcher: the response body is pulled, so the next event is decoded only
//! when hyper can send it (HTTP/1.1: its write buffer has room; HTTP/2: the stream's flow-control window is
//! open). Until then the watcher holds only a receiver of the store's fan-out, a fixed-size ring shared by all
//! watchers; one that falls behind it is resynchronised from the store's bounded history, and one that falls
//! behind the history gets 410 Expired and relists, as upstream's clients do. On HTTP/1.1 the connection of a
//! peer that reads nothing for `tls::WRITE_STALL_TIMEOUT` is closed outright.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::stream;
use http::{header, StatusCode};
use k1s_api::ResourceInfo;
use k1s_store::{EventKind, Revision, StoreError, WatchStream};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{ApiError, ApiResult};
use crate::registry::{self, ListOptions, Registry};

/// Watch parameters from the query.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub list: ListOptions,
    pub resource_version: String,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Duration,
    /// Send each object as a one-row Table (kubectl get -w).
    pub table: Option<crate::table::Include>,
    /// Send each object as `PartialObjectMetadata` (metadata-only watches).
    pub metadata: bool,
}

/// How often a BOOKMARK is sent to clients that allow them (upstream: about once a minute).
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// Default lifetime of a watch without `timeoutSeconds` (upstream: the min-request-timeout of 30 min).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct State {
    info: &'static ResourceInfo,
    opts: WatchOptions,
    initial: std::vec::IntoIter<Value>,
    ws: Option<WatchStream>,
    /// A terminal event to send (410) before ending.
    error: Option<Value>,
    deadline: Instant,
    next_bookmark: Instant,
    initial_end_pending: bool,
    start_rev: Revision,
    shutdown: watch::Receiver<bool>,
    done: bool,
    /// Table watches send column definitions only in the first event (upstream).
    columns_sent: bool,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON values serialise");
    v.push(b'\n');
    Bytes::from(v)
}

fn expired(e: &StoreError) -> Value {
    ApiError::expired(e.to_string()).status()
}

/// Start a watch; the response streams until timeout, shutdown or the client leaving.
pub fn watch(registry: &Registry, info: &'static ResourceInfo, ns: Option<&str>, opts: WatchOptions, shutdown: watch::Receiver<bool>) -> ApiResult<Response> {
    let store = registry.store().clone();
    let prefix = registry::prefix(info, ns);
    let rv = Registry::parse_resource_version(&opts.resource_version)?;
    let mut initial = Vec::new();
    let start_rev = match rv.filter(|&r| r != 0) {
        Some(r) if !opts.send_initial_events => r,
        _ => {
            // Current state as ADDED events, then changes after the revision it was read at.
            let list = store.list(&prefix, None, None).map_err(|e| ApiError::from_store(info, "", e))?;
            for kv in &list.items {
                let obj = registry::decode(&kv.value, kv.mod_revision)?;
                if Registry::matches(info, &opts.list, &obj) {
                    let mut o = obj;
                    registry::externalize(info, &mut o);
                    initial.push(o);
                }
            }
            list.revision
        }
    };
    let (ws, error) = match store.watch(&prefix, start_rev) {
        Ok(ws) => (Some(ws), None),
        Err(e @ StoreError::Compacted { .. }) => (None, Some(expired(&e))),
        Err(e) => return Err(ApiError::from_store(info, "", e)),
    };
    let now = Instant::now();
    let state = State {
        info,
        initial_end_pending: opts.send_initial_events && opts.allow_bookmarks,
        deadline: now + opts.timeout,
        next_bookmark: now + BOOKMARK_EVERY,
        opts,
        initial: initial.into_iter(),
        ws,
        error,
        start_rev,
        shutdown,
        done: false,
        columns_sent: false,
    };
    let body = Body::from_stream(stream::unfold(state, |mut st| async move {
        let chunk = next_chunk(&mut st).await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), st))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// A BOOKMARK's object: the watched kind (or `PartialObjectMetadata` for a metadata-only watch) with only a
/// resourceVersion.
fn bookmark(info: &ResourceInfo, metadata_only: bool, rev: Revision, initial_end: bool) -> Value {
    let mut md = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    if metadata_only {
        return json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md});
    }
    json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": md})
}

/// An object event's line, as a one-row Table or metadata only when the client asked for that.
fn object_line(st: &mut State, kind: &str, obj: &Value) -> Bytes {
    match st.opts.table {
        Some(inc) => {
            let md = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
            let t = crate::table::table(st.info, std::slice::from_ref(obj), inc, md, !st.columns_sent);
            st.columns_sent = true;
            line(kind, &t)
        }
        None if st.opts.metadata => line(kind, &crate::table::partial(obj)),
        None => line(kind, obj),
    }
}

/// The next line of the stream, or None to end it.
async fn next_chunk(st: &mut State) -> Option<Bytes> {
    if st.done {
        return None;
    }
    if let Some(obj) = st.initial.next() {
        return Some(object_line(st, "ADDED", &obj));
    }
    if st.initial_end_pending {
        st.initial_end_pending = false;
        return Some(line("BOOKMARK", &bookmark(st.info, st.opts.metadata, st.start_rev, true)));
    }
    if let Some(err) = st.error.take() {
        st.done = true;
        return Some(line("ERROR", &err));
    }
    let info = st.info;
    loop {
        let ws = st.ws.as_mut()?;
        let bookmark_at = if st.opts.allow_bookmarks { st.next_bookmark } else { st.deadline };
        tokio::select! {
            ev = ws.next() => {
                let ev = match ev {
                    None => return None,
                    Some(Err(e)) => { st.done = true; return Some(line("ERROR", &expired(&e))); }
                    Some(Ok(ev)) => ev,
                };
                let decode = |b: &Option<std::sync::Arc<[u8]>>| b.as_ref().and_then(|v| registry::decode(v, ev.revision).ok());
                let new = if ev.kind == EventKind::Put { decode(&ev.value) } else { None };
                let old = decode(&ev.prev);
                let m = |o: &Option<Value>| o.as_ref().is_some_and(|o| Registry::matches(info, &st.opts.list, o));
                let (kind, mut obj) = match (m(&old), m(&new)) {
                    (false, true) => ("ADDED", new?),
                    (true, true) => ("MODIFIED", new?),
                    // Deleted, or changed so that it no longer matches: the last state that matched
                    // (upstream `cacheWatcher.convertToWatchEvent`), at this event's revision.
                    (true, false) => ("DELETED", old.or(new)?),
                    (false, false) => continue,
                };
                registry::externalize(info, &mut obj);
                return Some(object_line(st, kind, &obj));
            }
            _ = tokio::time::sleep_until(bookmark_at) => {
                if Instant::now() >= st.deadline {
                    return None;
                }
                st.next_bookmark = Instant::now() + BOOKMARK_EVERY;
                return Some(line("BOOKMARK", &bookmark(info, st.opts.metadata, ws.progress(), false)));
            }
            _ = tokio::time::sleep_until(st.deadline) => return None,
            _ = st.shutdown.changed() => return None,
        }
    }
}
