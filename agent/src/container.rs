//! From a Pod's container to the runtime's `ContainerSpec`: the command line (image Entrypoint/Cmd with
//! command/args, as Kubernetes combines them), the environment (image env, `env` with `$(VAR)` expansion,
//! `valueFrom`, `envFrom`), the user, capabilities and the mounts. Pure given the resolved inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};
use k1s_images::ImageConfig;

use crate::runtime::caps;
use crate::runtime::spec::{Mount, MountKind};

/// Values a container's environment may refer to that come from outside the Pod object.
#[derive(Debug, Default, Clone)]
pub struct EnvSources {
    /// configMap name → data (absent map = not found).
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// secret name → decoded data.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub node_name: String,
}

/// A container's configuration could not be built (the kubelet's `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The command line Kubernetes runs: `command` replaces the image Entrypoint (and drops its Cmd), `args`
/// replaces the Cmd (https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/).
pub fn command_line(c: &Container, img: &ImageConfig, env: &[(String, String)]) -> Vec<String> {
    let expand_all = |v: &Vec<String>| v.iter().map(|s| expand(s, env)).collect::<Vec<_>>();
    match (&c.command, &c.args) {
        (Some(cmd), args) if !cmd.is_empty() => {
            let mut out = expand_all(cmd);
            out.extend(args.as_ref().map(expand_all).unwrap_or_default());
            out
        }
        (_, Some(args)) if !args.is_empty() => {
            let mut out = img.entrypoint.clone();
            out.extend(expand_all(args));
            out
        }
        _ => {
            let mut out = img.entrypoint.clone();
            out.extend(img.cmd.iter().cloned());
            out
        }
    }
}

/// `$(VAR)` expansion as the kubelet does it (third_party/forked/golang/expansion): defined variables are
/// replaced, `$$` escapes a `$`, undefined references stay as written.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    if let Some((_, v)) = env.iter().rev().find(|(k, _)| k == name) {
                        out.push_str(v);
                    } else {
                        out.push_str(&s[i..i + 3 + end]);
                    }
                    i += 3 + end;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn set(env: &mut Vec<(String, String)>, k: String, v: String) {
    if let Some(e) = env.iter_mut().find(|(n, _)| *n == k) {
        e.1 = v;
    } else {
        env.push((k, v));
    }
}

/// The downward API's `fieldRef` values (the env subset: `metadata.*`, `spec.*`, `status.*IP*`).
pub fn field_ref(pod: &Pod, path: &str, src: &EnvSources) -> Result<String, ConfigError> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let bracket = |prefix: &str| path.strip_prefix(prefix).and_then(|r| r.strip_suffix("']")).map(str::to_string);
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_else(|| src.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" | "status.podIPs" => src.pod_ip.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => src.host_ip.clone(),
        _ => {
            if let Some(k) = bracket("metadata.labels['") {
                m.labels.as_ref().and_then(|l| l.get(&k).cloned()).unwrap_or_default()
            } else if let Some(k) = bracket("metadata.annotations['") {
                m.annotations.as_ref().and_then(|l| l.get(&k).cloned()).unwrap_or_default()
            } else {
                return Err(ConfigError(format!("fieldRef {path:?} is not supported")));
            }
        }
    })
}

/// `resourceFieldRef` (limits.cpu, requests.memory, ...): CPU rounded up to whole cores over the divisor, as upstream.
pub fn resource_ref(c: &Container, resource: &str, divisor: Option<&str>) -> Result<String, ConfigError> {
    let (kind, name) = resource.split_once('.').ok_or_else(|| ConfigError(format!("resourceFieldRef {resource:?} is not valid")))?;
    let res = c.resources.as_ref();
    let map = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return Err(ConfigError(format!("resourceFieldRef {resource:?} is not valid"))),
    };
    let q = map.and_then(|m| m.get(name)).map(|q| q.0.clone());
    // Without a limit the node's allocatable stands in (upstream); we report the node's capacity.
    let value = match q.as_deref().and_then(k1s_api::validation::parse_quantity) {
        Some(v) => v,
        None if name == "cpu" => std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0),
        None if name == "memory" => crate::node::memory_bytes() as f64,
        None => 0.0,
    };
    let div = divisor.and_then(k1s_api::validation::parse_quantity).filter(|d| *d > 0.0).unwrap_or(1.0);
    Ok(format!("{}", (value / div).ceil() as i64))
}

/// The container's environment, in order: image env, `envFrom`, then `env` (later wins), with expansion.
pub fn environment(pod: &Pod, c: &Container, img: &ImageConfig, src: &EnvSources, hostname: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    for kv in &img.env {
        if let Some((k, v)) = kv.split_once('=') {
            set(&mut env, k.into(), v.into());
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()));
    }
    set(&mut env, "HOSTNAME".into(), hostname.into());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    for ef in c.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        let refs = [
            ef.config_map_ref.as_ref().map(|r| (Source::ConfigMap, &src.config_maps, &r.name, r.optional)),
            ef.secret_ref.as_ref().map(|r| (Source::Secret, &src.secrets, &r.name, r.optional)),
        ];
        for (kind, maps, name, optional) in refs.into_iter().flatten() {
            if let Some(data) = kind.lookup(maps, name, optional)? {
                data.iter().for_each(|(k, v)| set(&mut env, format!("{prefix}{k}"), v.clone()));
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(vf) = &e.value_from {
            if let Some(f) = &vf.field_ref {
                field_ref(pod, &f.field_path, src)?
            } else if let Some(r) = &vf.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    Some(n) if !n.is_empty() => pod.spec.as_ref().and_then(|s| s.containers.iter().find(|x| x.name == n)).unwrap_or(c),
                    _ => c,
                };
                resource_ref(target, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()))?
            } else if let Some(r) = &vf.config_map_key_ref {
                match Source::ConfigMap.key(&src.config_maps, ns, &r.name, &r.key, r.optional)? {
                    Some(v) => v,
                    None => continue,
                }
            } else if let Some(r) = &vf.secret_key_ref {
                match Source::Secret.key(&src.secrets, ns, &r.name, &r.key, r.optional)? {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                String::new()
            }
        } else {
            expand(e.value.as_deref().unwrap_or(""), &env)
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

/// Where an env reference points: a ConfigMap or a Secret (the same rules, the kubelet's messages).
#[derive(Clone, Copy)]
enum Source {
    ConfigMap,
    Secret,
}

type Maps = BTreeMap<String, BTreeMap<String, String>>;

impl Source {
    /// The whole object's data; `None` when it is missing but optional.
    fn lookup<'a>(self, maps: &'a Maps, name: &str, optional: Option<bool>) -> Result<Option<&'a BTreeMap<String, String>>, ConfigError> {
        match maps.get(name) {
            Some(data) => Ok(Some(data)),
            None if optional == Some(true) => Ok(None),
            None => Err(ConfigError(format!("{} {name:?} not found", self.lower()))),
        }
    }

    /// One key; `None` when the object or the key is missing but optional.
    fn key(self, maps: &Maps, ns: &str, name: &str, key: &str, optional: Option<bool>) -> Result<Option<String>, ConfigError> {
        match self.lookup(maps, name, optional)?.map(|d| d.get(key)) {
            None => Ok(None),
            Some(Some(v)) => Ok(Some(v.clone())),
            Some(None) if optional == Some(true) => Ok(None),
            Some(None) => Err(ConfigError(format!("couldn't find key {key} in {} {ns}/{name}", self.title()))),
        }
    }

    fn lower(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap",
            Source::Secret => "secret",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Source::ConfigMap => "ConfigMap",
            Source::Secret => "Secret",
        }
    }
}

/// The effective security context: the container's fields over the Pod's.
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub privileged: bool,
    pub capabilities: Vec<u32>,
    pub no_new_privs: bool,
    pub readonly_rootfs: bool,
    /// `seccompProfile: RuntimeDefault` (the container's over the Pod's).
    pub seccomp_default: bool,
}

pub fn identity(pod: &Pod, c: &Container, img: &ImageConfig, layers: &[PathBuf]) -> Result<Identity, ConfigError> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc: Option<&SecurityContext> = c.security_context.as_ref();
    let (img_uid, img_gid) = image_user(&img.user, layers)?;
    let uid = sc.and_then(|s| s.run_as_user).or(psc.and_then(|p| p.run_as_user)).map(|u| u as u32).unwrap_or(img_uid);
    let gid = sc.and_then(|s| s.run_as_group).or(psc.and_then(|p| p.run_as_group)).map(|g| g as u32).unwrap_or(img_gid);
    if sc.and_then(|s| s.run_as_non_root).or(psc.and_then(|p| p.run_as_non_root)) == Some(true) && uid == 0 {
        return Err(ConfigError("container has runAsNonRoot and image will run as root".into()));
    }
    let mut groups: Vec<u32> = Vec::new();
    if let Some(p) = psc {
        groups.extend(p.supplemental_groups.iter().flatten().map(|g| *g as u32));
        if let Some(fg) = p.fs_group {
            groups.push(fg as u32);
        }
    }
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let seccomp = sc.and_then(|s| s.seccomp_profile.as_ref()).or(psc.and_then(|p| p.seccomp_profile.as_ref()));
    let seccomp_default = match seccomp.map(|p| p.type_.as_str()) {
        None | Some("Unconfined") => false,
        Some("RuntimeDefault") => true,
        Some(other) => return Err(ConfigError(format!("seccomp profile type {other:?} is not supported by k1s (RuntimeDefault and Unconfined are)"))),
    };
    let add: Vec<String> = sc.and_then(|s| s.capabilities.as_ref()).and_then(|c| c.add.clone()).unwrap_or_default();
    let drop: Vec<String> = sc.and_then(|s| s.capabilities.as_ref()).and_then(|c| c.drop.clone()).unwrap_or_default();
    Ok(Identity {
        uid,
        gid,
        groups,
        privileged,
        capabilities: caps::effective_set(&add, &drop),
        // Upstream sets no_new_privs only when allowPrivilegeEscalation is explicitly false (kuberuntime
        // security_context.go); the default (unset) allows escalation.
        no_new_privs: sc.and_then(|s| s.allow_privilege_escalation) == Some(false) && !privileged,
        readonly_rootfs: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        seccomp_default,
    })
}

/// The image's `User` (`uid`, `uid:gid`, `name`, `name:group`), names looked up in the image's /etc files.
fn image_user(user: &str, layers: &[PathBuf]) -> Result<(u32, u32), ConfigError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let lookup = |file: &str, name: &str| -> Option<(u32, u32)> {
        // The topmost layer that has the file wins.
        let text = layers.iter().rev().find_map(|l| std::fs::read_to_string(l.join(file)).ok())?;
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() >= 4 && f[0] == name).then(|| (f[2].parse().ok(), f[3].parse().ok())).and_then(|(a, b)| Some((a?, b?)))
        })
    };
    let (uid, mut gid) = match u.parse::<u32>() {
        Ok(n) => (n, 0),
        Err(_) => lookup("etc/passwd", u).ok_or_else(|| ConfigError(format!("unable to find user {u}: no matching entries in passwd file")))?,
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup("etc/group", g).map(|(id, _)| id).ok_or_else(|| ConfigError(format!("unable to find group {g}")))?,
        };
    }
    Ok((uid, gid))
}

/// The kubelet's OOM score policy (pkg/kubelet/qos/policy.go): Guaranteed -997, BestEffort 1000, Burstable
/// by the share of the node's memory the container requests, kept within 2..=999 so it always ranks between.
pub fn oom_score_adj(qos: &str, memory_request: u64, memory_capacity: u64) -> i32 {
    match qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let share = if memory_capacity == 0 { 0 } else { (1000u128 * u128::from(memory_request) / u128::from(memory_capacity)) as i64 };
            let adj = 1000 - share;
            if adj < 3 {
                2
            } else if adj >= 1000 {
                999
            } else {
                adj as i32
            }
        }
    }
}

/// The Pod cgroup's memory limit as the kubelet computes it (cm/helpers_linux.go ResourceConfigForPod): the
/// Pod-level `resources.limits.memory` when set, else — only when every container has a memory limit — the
/// larger of (main containers + sidecars) and each init container with the sidecars started before it, plus
/// the Pod's overhead.
pub fn pod_memory_limit(spec: &k8s_openapi::api::core::v1::PodSpec) -> Option<i64> {
    let q = |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| -> Option<i64> {
        m.and_then(|m| m.get("memory")).and_then(|q| k1s_api::validation::parse_quantity(&q.0)).map(|b| b as i64)
    };
    if let Some(l) = q(spec.resources.as_ref().and_then(|r| r.limits.as_ref())) {
        return Some(l);
    }
    let limit = |c: &Container| q(c.resources.as_ref().and_then(|r| r.limits.as_ref()));
    let mut sidecars = 0i64;
    let mut init_peak = 0i64;
    for c in spec.init_containers.iter().flatten() {
        let l = limit(c)?;
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars += l;
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(sidecars + l);
        }
    }
    let mut main = sidecars;
    for c in &spec.containers {
        main += limit(c)?;
    }
    Some(main.max(init_peak) + q(spec.overhead.as_ref()).unwrap_or(0))
}

/// The mounts of one container: its volumeMounts (resolved to host paths by the volume manager) and the
/// Pod's /etc files (unless the container mounts its own over them).
pub fn mounts(c: &Container, volumes: &BTreeMap<String, PathBuf>, etc_dir: &Path) -> Result<Vec<Mount>, ConfigError> {
    let mut out = Vec::new();
    for vm in c.volume_mounts.iter().flatten() {
        let base = volumes.get(&vm.name).ok_or_else(|| {
            ConfigError(format!("volumeMounts[{}]: no volume named {:?} in the Pod's spec.volumes", vm.mount_path, vm.name))
        })?;
        let mut src = base.clone();
        if let Some(sp) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sp.starts_with('/') || sp.split('/').any(|c| c == "..") {
                return Err(ConfigError(format!("subPath {sp:?} must be a relative path without '..'")));
            }
            src = base.join(sp);
            if !src.exists() {
                // The kubelet creates a missing subPath as a directory; it gets the volume's mode and group, so
                // whoever may write the volume may write the subPath (an emptyDir is 0777).
                std::fs::create_dir_all(&src).map_err(|e| ConfigError(format!("creating subPath {}: {e}", src.display())))?;
                if let Ok(meta) = std::fs::metadata(base) {
                    use std::os::unix::fs::MetadataExt;
                    let _ = std::fs::set_permissions(&src, meta.permissions());
                    let _ = nix::unistd::chown(&src, None, Some(nix::unistd::Gid::from_raw(meta.gid())));
                }
            }
        }
        out.push(Mount { destination: vm.mount_path.clone(), kind: MountKind::Bind(src), readonly: vm.read_only.unwrap_or(false) });
    }
    let own = |p: &str| out.iter().any(|m: &Mount| m.destination.trim_end_matches('/') == p);
    let mut etc = Vec::new();
    for (file, path) in [("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"), ("resolv.conf", "/etc/resolv.conf")] {
        if !own(path) {
            etc.push(Mount { destination: path.into(), kind: MountKind::Bind(etc_dir.join(file)), readonly: false });
        }
    }
    etc.extend(out);
    Ok(etc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn pod_memory_limit_as_the_kubelet() {
        use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let mem = |v: &str| Some(ResourceRequirements { limits: Some([("memory".to_string(), Quantity(v.into()))].into()), ..Default::default() });
        let c = |name: &str, limit: Option<&str>, always: bool| Container {
            name: name.into(),
            resources: limit.and_then(mem),
            restart_policy: always.then(|| "Always".to_string()),
            ..Default::default()
        };
        let spec = |inits: Vec<Container>, mains: Vec<Container>| PodSpec { init_containers: Some(inits), containers: mains, ..Default::default() };
        assert_eq!(pod_memory_limit(&spec(vec![], vec![c("a", Some("100"), false), c("b", Some("50"), false)])), Some(150));
        assert_eq!(pod_memory_limit(&spec(vec![], vec![c("a", Some("100"), false), c("b", None, false)])), None, "one unlimited container: no Pod limit");
        assert_eq!(pod_memory_limit(&spec(vec![c("i", Some("500"), false)], vec![c("a", Some("100"), false)])), Some(500), "a bigger init container");
        assert_eq!(pod_memory_limit(&spec(vec![c("s", Some("30"), true), c("i", Some("100"), false)], vec![c("a", Some("100"), false)])), Some(130), "sidecar beside both");
        let mut pod_level = spec(vec![], vec![c("a", None, false)]);
        pod_level.resources = mem("64Mi");
        assert_eq!(pod_memory_limit(&pod_level), Some(64 << 20), "pod-level resources");
    }

    #[test]
    fn oom_score_by_qos_class() {
        let gi: u64 = 1 << 30;
        let cases = [
            ("Guaranteed", gi, 4 * gi, -997),
            ("BestEffort", 0, 4 * gi, 1000),
            ("Burstable", gi, 4 * gi, 750),
            ("Burstable", 0, 4 * gi, 999),
            ("Burstable", 4 * gi, 4 * gi, 2),
            ("Burstable", 8 * gi, 4 * gi, 2),
        ];
        for (qos, req, cap, want) in cases {
            assert_eq!(oom_score_adj(qos, req, cap), want, "{qos} {req}/{cap}");
        }
    }

    #[test]
    fn expansion_as_upstream() {
        let e = env(&[("A", "1"), ("B", "two")]);
        assert_eq!(expand("$(A)-$(B)", &e), "1-two");
        assert_eq!(expand("$(C)", &e), "$(C)");
        assert_eq!(expand("$$(A)", &e), "$(A)");
        assert_eq!(expand("a$b$(A", &e), "a$b$(A");
        assert_eq!(expand("ünï$(A)", &e), "ünï1");
    }

    #[test]
    fn command_and_args_combine_as_kubernetes() {
        let img = ImageConfig { entrypoint: vec!["/ep".into()], cmd: vec!["c1".into()], ..Default::default() };
        let c = |cmd: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
            name: "x".into(),
            command: cmd.map(|v| v.into_iter().map(String::from).collect()),
            args: args.map(|v| v.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        let e = env(&[("X", "42")]);
        assert_eq!(command_line(&c(None, None), &img, &e), vec!["/ep", "c1"]);
        assert_eq!(command_line(&c(Some(vec!["sh"]), None), &img, &e), vec!["sh"]);
        assert_eq!(command_line(&c(None, Some(vec!["a", "$(X)"])), &img, &e), vec!["/ep", "a", "42"]);
        assert_eq!(command_line(&c(Some(vec!["sh"]), Some(vec!["-c", "x"])), &img, &e), vec!["sh", "-c", "x"]);
    }
}
