//! Per-kind behaviour of the generic registry (upstream's `RESTCreateStrategy` / `RESTUpdateStrategy`):
//! defaults and status reset on create, status preservation on update, how deletion proceeds.
//!
//! The registry does everything kind-independent; a kind only answers these questions.

use base64::Engine as _;
use k1s_api::{defaults, meta, ResourceInfo};
use serde_json::{json, Value};

/// How a delete request proceeds for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteMode {
    /// Remove the key now.
    Immediate,
    /// Keep the object with `deletionTimestamp` = now + grace until the node agent confirms (pods).
    Graceful { grace: i64 },
    /// Keep the object with `deletionTimestamp` until its finalizers are gone.
    Finalize,
}

/// What deleting an object does to its dependents when the request names no propagation policy (upstream
/// `rest.GarbageCollectionPolicy`, a strategy's `DefaultGarbageCollectionPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcPolicy {
    /// Background: the owner goes, the garbage collector then deletes its dependents.
    DeleteDependents,
    /// The `orphan` finalizer: the garbage collector removes the dependents' references to the owner first.
    OrphanDependents,
}

pub trait Strategy: Send + Sync {
    /// Defaults and status reset on create. `uid` is the new object's uid.
    fn prepare_for_create(&self, info: &ResourceInfo, obj: &mut Value, uid: &str) {
        let _ = uid;
        if info.has_subresource("status") {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
    }

    /// A write to the main resource cannot change status (when the kind has a status subresource).
    fn prepare_for_update(&self, info: &ResourceInfo, new: &mut Value, old: &Value) {
        if info.has_subresource("status") {
            copy_field(new, old, "status");
        }
    }

    /// A write to `/status` changes only status.
    fn prepare_for_status_update(&self, new: &mut Value, old: &Value) {
        copy_field(new, old, "spec");
    }

    /// Whether `metadata.generation` tracks spec changes.
    fn has_generation(&self) -> bool {
        false
    }

    /// How a delete proceeds (finalizers are handled by the registry before this is asked).
    fn delete_mode(&self, obj: &Value, requested_grace: Option<i64>) -> DeleteMode {
        let _ = (obj, requested_grace);
        DeleteMode::Immediate
    }

    /// The propagation of a delete that names none and finds no `orphan`/`foregroundDeletion` finalizer.
    fn default_gc_policy(&self) -> GcPolicy {
        GcPolicy::DeleteDependents
    }
}

fn copy_field(new: &mut Value, old: &Value, field: &str) {
    if let Some(m) = new.as_object_mut() {
        match old.get(field) {
            Some(v) => {
                m.insert(field.to_string(), v.clone());
            }
            None => {
                m.remove(field);
            }
        }
    }
}

struct Default;
impl Strategy for Default {}

struct Pods;
impl Strategy for Pods {
    fn prepare_for_create(&self, _: &ResourceInfo, obj: &mut Value, _: &str) {
        defaults::pod(obj);
        let qos = k1s_api::defaults::qos_class(obj.get("spec").unwrap_or(&Value::Null));
        obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    }

    fn prepare_for_status_update(&self, new: &mut Value, old: &Value) {
        copy_field(new, old, "spec");
    }

    /// Ephemeral containers change only through `pods/{name}/ephemeralcontainers` (upstream keeps the old
    /// ones on a Pod update), so an update of the Pod cannot remove a debugging session.
    fn prepare_for_update(&self, _: &ResourceInfo, new: &mut Value, old: &Value) {
        copy_field(new, old, "status");
        let ecs = old.pointer("/spec/ephemeralContainers").cloned();
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            match ecs {
                Some(e) => spec.insert("ephemeralContainers".into(), e),
                None => spec.remove("ephemeralContainers"),
            };
        }
    }

    fn delete_mode(&self, obj: &Value, requested_grace: Option<i64>) -> DeleteMode {
        // Upstream: an unbound pod, or one already finished, goes at once; otherwise the kubelet must confirm.
        let node = obj.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
        let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
        if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
            return DeleteMode::Immediate;
        }
        let grace = requested_grace
            .or_else(|| obj.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64))
            .or_else(|| obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
            .unwrap_or(30)
            .max(0);
        if grace == 0 {
            DeleteMode::Immediate
        } else {
            DeleteMode::Graceful { grace }
        }
    }
}


struct Namespaces;
impl Strategy for Namespaces {
    fn prepare_for_create(&self, _: &ResourceInfo, obj: &mut Value, _: &str) {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
        defaults::namespace(obj);
    }

    fn prepare_for_status_update(&self, new: &mut Value, old: &Value) {
        copy_field(new, old, "spec");
    }

    fn delete_mode(&self, _: &Value, _: Option<i64>) -> DeleteMode {
        // The namespace lifecycle loop empties it, then removes it.
        DeleteMode::Finalize
    }
}

struct Jobs;
impl Strategy for Jobs {
    fn prepare_for_create(&self, _: &ResourceInfo, obj: &mut Value, uid: &str) {
        defaults::job(obj, uid);
        obj["status"] = json!({});
    }

    fn has_generation(&self) -> bool {
        true
    }

    /// Upstream's Job strategy answers OrphanDependents for batch/v1 ("for backwards compatibility"): a Job deleted
    /// without a policy leaves its Pods. kubectl sends Background explicitly; kube-rs's `DeleteParams::default()`
    /// sends nothing and orphans.
    fn default_gc_policy(&self) -> GcPolicy {
        GcPolicy::OrphanDependents
    }
}

/// apps/v1 Deployments and ReplicaSets: upstream defaults, status reset on create, and `generation` tracking
/// spec changes so the controllers' `observedGeneration` can say when a change has been seen. Deleting one
/// without a policy collects its dependents (Background: upstream's apps/v1 strategies answer DeleteDependents).
struct Replicated {
    defaults: fn(&mut Value),
}
impl Strategy for Replicated {
    fn prepare_for_create(&self, _: &ResourceInfo, obj: &mut Value, _: &str) {
        (self.defaults)(obj);
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }

    fn has_generation(&self) -> bool {
        true
    }
}

static DEPLOYMENTS: Replicated = Replicated { defaults: defaults::deployment };
static REPLICASETS: Replicated = Replicated { defaults: defaults::replicaset };

/// Events written through events.k8s.io/v1 carry `eventTime`/`series`; their core/v1 view gets the deprecated
/// fields filled from those (see `k1s_api::events::fill_deprecated` and ARCHITECTURE.md).
struct Events;
impl Strategy for Events {
    fn prepare_for_create(&self, _: &ResourceInfo, obj: &mut Value, _: &str) {
        k1s_api::events::fill_deprecated(obj, None);
    }

    fn prepare_for_update(&self, _: &ResourceInfo, new: &mut Value, old: &Value) {
        k1s_api::events::fill_deprecated(new, Some(old));
    }
}

/// Nodes are created by their agent with a status (upstream keeps it).
struct Nodes;
impl Strategy for Nodes {
    fn prepare_for_create(&self, _: &ResourceInfo, _: &mut Value, _: &str) {}
}

struct Secrets;
impl Strategy for Secrets {
    fn prepare_for_create(&self, _: &ResourceInfo, obj: &mut Value, _: &str) {
        defaults::secret(obj);
        fold_string_data(obj);
    }

    fn prepare_for_update(&self, _: &ResourceInfo, new: &mut Value, _: &Value) {
        fold_string_data(new);
    }
}

/// `stringData` is write-only: it is merged into `data` (base64) and never stored (upstream conversion).
fn fold_string_data(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    if let Some(Value::Object(sd)) = m.remove("stringData") {
        let data = m.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        for (k, v) in sd {
            let s = v.as_str().unwrap_or_default();
            data[k] = Value::String(base64::engine::general_purpose::STANDARD.encode(s));
        }
    }
}

/// The strategy of a resource.
pub fn for_resource(info: &ResourceInfo) -> &'static dyn Strategy {
    match info.storage {
        "core/pods" => &Pods,
        "core/namespaces" => &Namespaces,
        "core/nodes" => &Nodes,
        "core/secrets" => &Secrets,
        "batch/jobs" => &Jobs,
        "apps/deployments" => &DEPLOYMENTS,
        "apps/replicasets" => &REPLICASETS,
        "core/events" => &Events,
        _ => &Default,
    }
}

/// Mark an object as being deleted (shared by graceful and finalizer deletion).
pub fn mark_deleting(obj: &mut Value, grace: i64) {
    let m = meta::metadata_mut(obj);
    if !m.contains_key("deletionTimestamp") {
        m.insert("deletionTimestamp".into(), Value::String(meta::now_plus(grace)));
    } else if grace > 0 {
        // A shorter grace period than the pending one moves the deadline closer (upstream allows shortening only).
        m.insert("deletionTimestamp".into(), Value::String(meta::now_plus(grace)));
    }
    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos() {
        assert_eq!(k1s_api::defaults::qos_class(&json!({"containers": [{"name": "a"}]})), "BestEffort");
        assert_eq!(k1s_api::defaults::qos_class(&json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})), "Guaranteed");
        assert_eq!(k1s_api::defaults::qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})), "Burstable");
    }

    #[test]
    fn string_data_folds_into_data() {
        let mut s = json!({"stringData": {"a": "hi"}});
        fold_string_data(&mut s);
        assert_eq!(s, json!({"data": {"a": "aGk="}}));
    }
}
