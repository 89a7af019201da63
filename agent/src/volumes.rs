//! The Pod's volumes on the host: emptyDir (a directory, or a tmpfs for `medium: Memory`), hostPath (with its
//! `type` checks), configMap, secret and downwardAPI (files with keys/items/defaultMode). Every container of
//! the Pod bind-mounts the same directory, so they all see the same data.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Secret, Volume};
use kube::Api;

use crate::container::{field_ref, ConfigError, EnvSources};

/// Fetch every configMap and secret the Pod refers to (volumes, env, envFrom). Missing ones are simply absent:
/// whether that is an error depends on `optional` where they are used.
pub async fn fetch_sources(client: &kube::Client, pod: &Pod) -> EnvSources {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut cms = std::collections::BTreeSet::new();
    let mut secrets = std::collections::BTreeSet::new();
    let spec = pod.spec.clone().unwrap_or_default();
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            cms.insert(c.name.clone());
        }
        if let Some(s) = &v.secret {
            secrets.insert(s.secret_name.clone().unwrap_or_default());
        }
    }
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        for ef in c.env_from.iter().flatten() {
            if let Some(r) = &ef.config_map_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &ef.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
        for e in c.env.iter().flatten() {
            if let Some(vf) = &e.value_from {
                if let Some(r) = &vf.config_map_key_ref {
                    cms.insert(r.name.clone());
                }
                if let Some(r) = &vf.secret_key_ref {
                    secrets.insert(r.name.clone());
                }
            }
        }
    }
    let mut src = EnvSources::default();
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for name in cms {
        if let Ok(Some(cm)) = cm_api.get_opt(&name).await {
            let mut data: BTreeMap<String, String> = cm.data.unwrap_or_default();
            for (k, v) in cm.binary_data.unwrap_or_default() {
                data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
            }
            src.config_maps.insert(name, data);
        }
    }
    let s_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for name in secrets {
        if let Ok(Some(s)) = s_api.get_opt(&name).await {
            let mut data: BTreeMap<String, String> =
                s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())).collect();
            data.extend(s.string_data.unwrap_or_default());
            src.secrets.insert(name, data);
        }
    }
    src
}

fn err(v: &Volume, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("volume {:?}: {msg}", v.name))
}

/// Create (or refresh) every volume of the Pod under `pod_dir/volumes`; returns volume name → host path.
pub fn prepare(pod: &Pod, pod_dir: &Path, src: &EnvSources) -> Result<BTreeMap<String, PathBuf>, ConfigError> {
    let mut out = BTreeMap::new();
    let base = pod_dir.join("volumes");
    let fs_group = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|c| c.fs_group).map(|g| g as u32);
    for v in pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        let dir = base.join(&v.name);
        let path = if let Some(ed) = &v.empty_dir {
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(|e| err(v, e))?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).map_err(|e| err(v, e))?;
                if ed.medium.as_deref() == Some("Memory") {
                    let size = ed.size_limit.as_ref().and_then(|q| k1s_api::validation::parse_quantity(&q.0)).map(|b| format!(",size={}", b as u64)).unwrap_or_default();
                    nix::mount::mount(Some("tmpfs"), &dir, Some("tmpfs"), nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV, Some(format!("mode=1777{size}").as_str()))
                        .map_err(|e| err(v, format!("mounting a tmpfs for medium: Memory: {e}")))?;
                }
            }
            dir
        } else if let Some(hp) = &v.host_path {
            host_path(v, &hp.path, hp.type_.as_deref().unwrap_or(""))?
        } else if let Some(cm) = &v.config_map {
            match src.config_maps.get(&cm.name) {
                Some(data) => write_files(v, &dir, data, cm.items.as_deref(), cm.default_mode)?,
                None if cm.optional == Some(true) => write_files(v, &dir, &BTreeMap::new(), None, cm.default_mode)?,
                None => return Err(err(v, format!("configmap {:?} not found", cm.name))),
            }
            dir
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            match src.secrets.get(&name) {
                Some(data) => write_files(v, &dir, data, s.items.as_deref(), s.default_mode)?,
                None if s.optional == Some(true) => write_files(v, &dir, &BTreeMap::new(), None, s.default_mode)?,
                None => return Err(err(v, format!("secret {name:?} not found"))),
            }
            dir
        } else if let Some(d) = &v.downward_api {
            let mut files = BTreeMap::new();
            let mut items = Vec::new();
            for it in d.items.iter().flatten() {
                let value = if let Some(f) = &it.field_ref {
                    match f.field_path.as_str() {
                        "metadata.labels" => map_lines(pod.metadata.labels.as_ref()),
                        "metadata.annotations" => map_lines(pod.metadata.annotations.as_ref()),
                        p => field_ref(pod, p, src).map_err(|e| err(v, e))?,
                    }
                } else if let Some(r) = &it.resource_field_ref {
                    let c = pod.spec.as_ref().and_then(|s| s.containers.iter().find(|c| Some(c.name.as_str()) == r.container_name.as_deref()));
                    match c {
                        Some(c) => crate::container::resource_ref(c, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str())).map_err(|e| err(v, e))?,
                        None => return Err(err(v, "resourceFieldRef needs a containerName of this Pod")),
                    }
                } else {
                    String::new()
                };
                files.insert(it.path.clone(), value);
                items.push(KeyToPath { key: it.path.clone(), path: it.path.clone(), mode: it.mode });
            }
            write_files(v, &dir, &files, Some(&items), d.default_mode)?;
            dir
        } else {
            let kind = serde_json::to_value(v).ok().and_then(|j| j.as_object().and_then(|o| o.keys().find(|k| *k != "name").cloned())).unwrap_or_default();
            return Err(err(v, format!("volume type {kind:?} is not supported by k1s yet (supported: emptyDir, hostPath, configMap, secret, downwardAPI)")));
        };
        if let Some(gid) = fs_group {
            if v.config_map.is_some() || v.secret.is_some() || v.downward_api.is_some() || v.empty_dir.is_some() {
                apply_fs_group(&path, gid);
            }
        }
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

/// `fsGroup`: the volume's files belong to that group and the group may read them (the kubelet's
/// SetVolumeOwnership), so a non-root user of the Pod can read its secrets.
fn apply_fs_group(dir: &Path, gid: u32) {
    let gid = nix::unistd::Gid::from_raw(gid);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let _ = nix::unistd::chown(&p, None, Some(gid));
        if let Ok(meta) = std::fs::symlink_metadata(&p) {
            let mode = meta.permissions().mode();
            let extra = if meta.is_dir() { 0o2050 } else { 0o040 };
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode((mode & 0o7777) | extra));
            if meta.is_dir() {
                stack.extend(std::fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
            }
        }
    }
}

fn map_lines(m: Option<&BTreeMap<String, String>>) -> String {
    m.map(|m| m.iter().map(|(k, v)| format!("{k}={v:?}\n")).collect()).unwrap_or_default()
}

/// hostPath with its `type` check (https://kubernetes.io/docs/concepts/storage/volumes/#hostpath).
fn host_path(v: &Volume, path: &str, ty: &str) -> Result<PathBuf, ConfigError> {
    use std::os::unix::fs::FileTypeExt;
    let p = PathBuf::from(path);
    let meta = std::fs::metadata(&p);
    let want = |ok: bool, what: &str| if ok { Ok(()) } else { Err(err(v, format!("hostPath type check failed: {path} is not {what}"))) };
    match ty {
        "" => {}
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(&p).map_err(|e| err(v, e))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).map_err(|e| err(v, e))?;
            } else {
                want(meta.as_ref().map(|m| m.is_dir()).unwrap_or(false), "a directory")?;
            }
        }
        "Directory" => want(meta.as_ref().map(|m| m.is_dir()).unwrap_or(false), "a directory")?,
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| err(v, e))?;
                }
                std::fs::File::create(&p).map_err(|e| err(v, e))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).map_err(|e| err(v, e))?;
            } else {
                want(meta.as_ref().map(|m| m.is_file()).unwrap_or(false), "a file")?;
            }
        }
        "File" => want(meta.as_ref().map(|m| m.is_file()).unwrap_or(false), "a file")?,
        "Socket" => want(meta.as_ref().map(|m| m.file_type().is_socket()).unwrap_or(false), "a socket")?,
        "CharDevice" => want(meta.as_ref().map(|m| m.file_type().is_char_device()).unwrap_or(false), "a character device")?,
        "BlockDevice" => want(meta.as_ref().map(|m| m.file_type().is_block_device()).unwrap_or(false), "a block device")?,
        other => return Err(err(v, format!("hostPath type {other:?} is not valid"))),
    }
    if ty.is_empty() && meta.is_err() {
        // No type: upstream mounts whatever is there, creating nothing; the bind mount needs a source.
        return Err(err(v, format!("hostPath {path} does not exist (set type: DirectoryOrCreate to create it)")));
    }
    Ok(p)
}

/// Files for configMap/secret/downwardAPI volumes: every key (or only `items`, at their paths) with the mode.
/// Written into a fresh directory that replaces the old one, so readers never see a half-updated set.
fn write_files(v: &Volume, dir: &Path, data: &BTreeMap<String, String>, items: Option<&[KeyToPath]>, default_mode: Option<i32>) -> Result<(), ConfigError> {
    let mode = default_mode.unwrap_or(0o644) as u32;
    let tmp = dir.with_extension("new");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| err(v, e))?;
    let entries: Vec<(String, String, u32)> = match items {
        Some(items) => {
            let mut out = Vec::new();
            for it in items {
                match data.get(&it.key) {
                    Some(val) => out.push((it.path.clone(), val.clone(), it.mode.map(|m| m as u32).unwrap_or(mode))),
                    None => return Err(err(v, format!("configuration key {:?} not found", it.key))),
                }
            }
            out
        }
        None => data.iter().map(|(k, val)| (k.clone(), val.clone(), mode)).collect(),
    };
    for (rel, val, m) in entries {
        if rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
            return Err(err(v, format!("item path {rel:?} must be relative without '..'")));
        }
        let f = tmp.join(&rel);
        if let Some(p) = f.parent() {
            std::fs::create_dir_all(p).map_err(|e| err(v, e))?;
        }
        std::fs::write(&f, val).map_err(|e| err(v, e))?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(m)).map_err(|e| err(v, e))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| err(v, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| err(v, e))?;
    Ok(())
}

/// Unmount the tmpfs of `medium: Memory` emptyDirs before the Pod's directory is removed.
pub fn unmount_all(pod_dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(pod_dir.join("volumes")) {
        for e in entries.flatten() {
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
