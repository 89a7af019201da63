//! `debug POD`: add an ephemeral container (a strategic merge patch of the `ephemeralcontainers` subresource, as
//! kubectl sends it) with kubectl's profiles, and with `-i` attach to it once it runs. `debug POD --copy-to=NAME`:
//! create a copy of the Pod with a debug container added or one of its containers changed (`-c`, `--set-image`,
//! `--share-processes`, `--same-node`, `--replace`, `--keep-*`). `debug node/NAME`: create kubectl 1.33's node
//! debugging Pod (`node-debugger-<node>-<5 random>`, its profile's host namespaces and root mount, every taint
//! tolerated). With `-i` each attaches once the container runs, or prints its log when it has already ended.
//!
//! A debug container gets `stdin` but never `stdinOnce` (kubectl sets none): when piped input ends, the container's
//! stdin stays open, as with upstream's runtimes, so `echo cmd | debug -i … -- sh` waits like stock kubectl does.

use std::time::Duration;

use http::Method;
use serde_json::{json, Value};

use super::{api, Ctx, Fail, Out};

#[derive(clap::Args, Debug, Clone)]
pub struct DebugArgs {
    /// POD or pod/POD.
    pub target: String,
    /// Container image to use for the debug container.
    #[arg(long)]
    pub image: Option<String>,
    /// Container name for the debug container (default: debugger-XXXXX).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// The container in the Pod whose process namespace to share.
    #[arg(long)]
    pub target_container: Option<String>,
    /// Keep stdin open on the container and attach to it.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a TTY for the debug container (with -i: our terminal in raw mode, its size forwarded).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Wait for the container to run, then attach (default: true with -i).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub attach: Option<bool>,
    /// Debugging profile: legacy, general, baseline, netadmin, restricted, sysadmin.
    #[arg(long, default_value = "legacy")]
    pub profile: String,
    /// Create a copy of the target Pod with this name.
    #[arg(long)]
    pub copy_to: Option<String>,
    /// With --copy-to, delete the original Pod.
    #[arg(long)]
    pub replace: bool,
    /// With --copy-to, schedule the copy on the same node.
    #[arg(long)]
    pub same_node: bool,
    /// With --copy-to, name=image pairs changing container images (`*` for every container).
    #[arg(long)]
    pub set_image: Vec<String>,
    /// With --copy-to, enable process namespace sharing in the copy (default: as the profile decides).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub share_processes: Option<bool>,
    /// With --copy-to, keep the original Pod's labels.
    #[arg(long)]
    pub keep_labels: bool,
    /// With --copy-to, keep the original Pod's annotations.
    #[arg(long)]
    pub keep_annotations: bool,
    /// With --copy-to, keep the liveness probes.
    #[arg(long)]
    pub keep_liveness: bool,
    /// With --copy-to, keep the readiness probes.
    #[arg(long)]
    pub keep_readiness: bool,
    /// With --copy-to, keep the startup probes.
    #[arg(long)]
    pub keep_startup: bool,
    /// With --copy-to, run the Pod's init containers.
    #[arg(long, num_args = 0..=1, default_value = "true", default_missing_value = "true", action = clap::ArgAction::Set)]
    pub keep_init_containers: bool,
    /// Environment variables to set in the container (KEY=VALUE, comma-separated or repeated).
    #[arg(long)]
    pub env: Vec<String>,
    /// The image pull policy for the container (Always, IfNotPresent, Never).
    #[arg(long)]
    pub image_pull_policy: Option<String>,
    /// Pass everything after -- as the container's args instead of its command.
    #[arg(long)]
    pub arguments_only: bool,
    /// Suppress informational messages.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The command (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// kubectl's `--target` is the flag name; clap keeps `target` for the Pod argument.
pub fn normalise_args(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some("--target") => "--target-container".into(),
            Some(s) if s.starts_with("--target=") => format!("--target-container={}", &s["--target=".len()..]).into(),
            _ => a,
        })
        .collect()
}

/// kubectl's generated name: `prefix` and five characters of its random alphabet (no vowels, no look-alikes).
fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0) ^ u128::from(std::process::id());
    let mut x = seed as u64 | 1;
    let mut s = String::from(prefix);
    for _ in 0..5 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
    }
    s
}

/// pflag's `StringToString` (`--set-image`, `--env`): `k=v` pairs, comma-separated or repeated; later keys win.
fn string_to_string(flag: &str, values: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for v in values.iter().filter(|v| !v.is_empty()) {
        for pair in v.split(',') {
            let (k, val) = pair
                .split_once('=')
                .ok_or_else(|| Fail::msg(format!("invalid argument \"{v}\" for \"--{flag}\" flag: {pair} must be formatted as key=value")))?;
            out.retain(|(x, _)| x != k);
            out.push((k.to_string(), val.to_string()));
        }
    }
    Ok(out)
}

/// kubectl's `Validate`, in its order: the first rule broken is the error; it also prints the `--target` notice
/// and the legacy profile's deprecation warning.
fn validate(a: &DebugArgs, set_images: &[(String, String)], out: &mut Out) -> anyhow::Result<()> {
    let fail = |m: &str| Err(Fail::msg(format!("error: {m}")));
    if a.attach == Some(true) && a.image.is_none() && a.container.is_none() {
        return fail("you must specify --container or create a new container using --image in order to attach.");
    }
    if a.copy_to.is_some() {
        if a.image.is_none() && set_images.is_empty() && a.command.is_empty() {
            return fail("you must specify --image, --set-image or command arguments.");
        }
        if !a.command.is_empty() && a.container.is_none() && a.image.is_none() {
            return fail("you must specify an existing container or a new image when specifying args.");
        }
    } else if a.replace {
        return fail("--replace may only be used with --copy-to.");
    } else if a.same_node {
        return fail("--same-node may only be used with --copy-to.");
    } else if !set_images.is_empty() {
        return fail("--set-image may only be used with --copy-to.");
    } else if a.image.is_none() {
        return fail("you must specify --image when not using --copy-to.");
    }
    if let Some(p) = a.image_pull_policy.as_deref().filter(|p| !matches!(*p, "Always" | "IfNotPresent" | "Never" | "")) {
        return fail(&format!("invalid image pull policy: {p}"));
    }
    if let Some(t) = &a.target_container {
        if a.copy_to.is_some() {
            return fail("--target is incompatible with --copy-to. Use --share-processes instead.");
        }
        if !a.quiet {
            out.stdout(&format!(
                "Targeting container \"{t}\". If you don't see processes from this container it may be because the container runtime doesn't support this feature.\n"
            ));
        }
    }
    if a.tty && !a.stdin {
        return fail("-i/--stdin is required for containers with -t/--tty=true");
    }
    if a.profile == "legacy" {
        eprintln!("--profile=legacy is deprecated and will be removed in the future. It is recommended to explicitly specify a profile, for example \"--profile=general\".");
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, a: &DebugArgs, out: &mut Out) -> anyhow::Result<()> {
    let set_images = string_to_string("set-image", &a.set_image)?;
    let env = string_to_string("env", &a.env)?;
    if !PROFILES.contains(&a.profile.as_str()) {
        return Err(Fail::msg(format!("error: unknown profile: {}", a.profile)));
    }
    validate(a, &set_images, out)?;
    let attach = a.attach.unwrap_or(a.stdin);
    if let Some(node) = a.target.strip_prefix("node/").or_else(|| a.target.strip_prefix("nodes/")) {
        return run_node(ctx, a, node, &env, attach, out).await;
    }
    let pod = a.target.strip_prefix("pod/").or_else(|| a.target.strip_prefix("pods/")).unwrap_or(&a.target);
    let ns = &ctx.namespace;
    let item = format!("/api/v1/namespaces/{ns}/pods/{pod}");
    let source = api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
    if let Some(copy) = &a.copy_to {
        let (copied, name) = copy_with_debug_container(a, &source, copy, &set_images, &env, out)?;
        let body = serde_json::to_vec(&copied)?;
        api::call(&ctx.client, Method::POST, &format!("/api/v1/namespaces/{ns}/pods"), "application/json", Some(("application/json", body))).await?;
        if a.replace {
            let body = serde_json::to_vec(&json!({"gracePeriodSeconds": 0}))?;
            api::call(&ctx.client, Method::DELETE, &item, "application/json", Some(("application/json", body))).await?;
        }
        return match name {
            Some(name) if attach => {
                let always = copied.pointer("/spec/restartPolicy").and_then(Value::as_str).unwrap_or("Always") == "Always";
                wait_and_attach(ctx, a, copy, &name, if always { Session::Restarts } else { Session::Ends }, out).await
            }
            _ => Ok(()),
        };
    }
    let name = debug_container_name(a, &source, out);
    let mut debug = json!({"metadata": {}, "spec": {"ephemeralContainers": [container_spec(a, &name, &env)]}});
    if let Some(t) = &a.target_container {
        debug["spec"]["ephemeralContainers"][0]["targetContainerName"] = json!(t);
    }
    apply_profile(&a.profile, Style::Ephemeral, &mut debug, &name, &Keep::from(a));
    // The strategic merge patch kubectl computes between the Pod and the Pod with the container added: the
    // container alone (the list merges by name).
    let patch = json!({"spec": {"ephemeralContainers": debug["spec"]["ephemeralContainers"].clone()}});
    api::call(
        &ctx.client,
        Method::PATCH,
        &format!("{item}/ephemeralcontainers"),
        "application/json",
        Some(("application/strategic-merge-patch+json", serde_json::to_vec(&patch)?)),
    )
    .await?;
    if !attach {
        return Ok(());
    }
    wait_and_attach(ctx, a, pod, &name, Session::Ephemeral, out).await
}

const PROFILES: [&str; 6] = ["legacy", "general", "baseline", "netadmin", "restricted", "sysadmin"];

/// kubectl's `computeDebugContainerName`: `-c`, else `debugger-<5 random>` unused by any container of the Pod
/// (announced unless `--quiet`).
fn debug_container_name(a: &DebugArgs, pod: &Value, out: &mut Out) -> String {
    if let Some(n) = &a.container {
        return n.clone();
    }
    let taken = container_names(&pod["spec"]);
    let name = loop {
        let n = generated_name("debugger-");
        if !taken.contains(&n) {
            break n;
        }
    };
    if !a.quiet {
        out.stdout(&format!("Defaulting debug container name to {name}.\n"));
    }
    name
}

/// Every container name of a Pod spec: init, regular and ephemeral.
fn container_names(spec: &Value) -> Vec<String> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten())
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect()
}

/// The debug container as kubectl writes it (Go's `Container` marshalled: `resources: {}` always; the rest
/// only when set): image, command (or args with `--arguments-only`), env, pull policy, stdin and tty.
fn container_spec(a: &DebugArgs, name: &str, env: &[(String, String)]) -> Value {
    let mut c = json!({"name": name, "resources": {}, "terminationMessagePolicy": "File"});
    if let Some(image) = &a.image {
        c["image"] = json!(image);
    }
    if !a.command.is_empty() {
        c[if a.arguments_only { "args" } else { "command" }] = json!(a.command);
    }
    set_common(&mut c, a, env);
    c
}

/// What kubectl sets on the debug container whether new or copied: env and pull policy when given, stdin and
/// tty always (false drops the key, as Go's `omitempty`).
fn set_common(c: &mut Value, a: &DebugArgs, env: &[(String, String)]) {
    if !env.is_empty() {
        c["env"] = env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    }
    if let Some(p) = a.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        c["imagePullPolicy"] = json!(p);
    }
    for (key, on) in [("stdin", a.stdin), ("tty", a.tty)] {
        match c.as_object_mut() {
            Some(m) if !on => {
                m.remove(key);
            }
            _ => c[key] = json!(true),
        }
    }
}

/// kubectl's `generatePodCopyWithDebugContainer`: the Pod's spec under a new name (labels and annotations kept,
/// ephemeral containers dropped, unscheduled unless `--same-node`), `--set-image` applied, then either the
/// container named by `-c` changed or a new debug container added, then the profile. The debug container's name
/// is `None` for a `--set-image`-only copy (nothing to attach to; the profile is not applied either, as kubectl).
fn copy_with_debug_container(
    a: &DebugArgs,
    pod: &Value,
    copy: &str,
    set_images: &[(String, String)],
    env: &[(String, String)],
    out: &mut Out,
) -> anyhow::Result<(Value, Option<String>)> {
    let mut copied = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": copy, "namespace": pod["metadata"]["namespace"]}, "spec": pod["spec"].clone()});
    for key in ["labels", "annotations"] {
        if let Some(v) = pod["metadata"].get(key) {
            copied["metadata"][key] = v.clone();
        }
    }
    let spec = copied["spec"].as_object_mut().ok_or_else(|| Fail::msg("error: the Pod has no spec"))?;
    spec.remove("ephemeralContainers");
    if let Some(share) = a.share_processes {
        spec.insert("shareProcessNamespace".into(), json!(share));
    }
    if !a.same_node {
        spec.remove("nodeName");
    }
    let image_for = |name: &str| set_images.iter().find(|(k, _)| k == name).or_else(|| set_images.iter().find(|(k, _)| k == "*")).map(|(_, v)| v);
    for c in spec.get_mut("containers").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(image) = image_for(c["name"].as_str().unwrap_or("")).filter(|i| !i.is_empty()) {
            c["image"] = json!(image);
        }
    }
    let mut name = a.container.clone().unwrap_or_default();
    if !container_names(&copied["spec"]).contains(&name) {
        if a.image.is_none() {
            if !set_images.is_empty() {
                return Ok((copied, None));
            }
            return Err(Fail::msg("error: you must specify image when creating new container"));
        }
        if name.is_empty() {
            name = debug_container_name(a, &copied, out);
        }
        let new = json!({"name": name, "resources": {}, "terminationMessagePolicy": "File"});
        match copied["spec"]["containers"].as_array_mut() {
            Some(cs) => cs.push(new),
            None => copied["spec"]["containers"] = json!([new]),
        }
    }
    let c = container_mut(&mut copied["spec"], &name, ALL_CONTAINERS).expect("the debug container was found or added");
    if !a.command.is_empty() {
        if a.arguments_only {
            c["args"] = json!(a.command);
        } else {
            c["command"] = json!(a.command);
            if let Some(m) = c.as_object_mut() {
                m.remove("args");
            }
        }
    }
    if let Some(image) = &a.image {
        c["image"] = json!(image);
    }
    set_common(c, a, env);
    apply_profile(&a.profile, Style::Copy, &mut copied, &name, &Keep::from(a));
    Ok((copied, Some(name)))
}

const ALL_CONTAINERS: &[&str] = &["initContainers", "containers", "ephemeralContainers"];

/// The first container of these lists with this name (kubectl's `podutils.VisitContainers` order).
fn container_mut<'a>(spec: &'a mut Value, name: &str, lists: &[&str]) -> Option<&'a mut Value> {
    let spec = spec.as_object_mut()?;
    let mut found = None;
    for (key, list) in spec.iter_mut() {
        if !lists.contains(&key.as_str()) {
            continue;
        }
        let rank = lists.iter().position(|k| k == key).unwrap_or(usize::MAX);
        if let Some(i) = list.as_array().and_then(|cs| cs.iter().position(|c| c["name"] == name)) {
            if found.as_ref().is_none_or(|(r, _, _): &(usize, _, _)| rank < *r) {
                found = Some((rank, key.clone(), i));
            }
        }
    }
    let (_, key, i) = found?;
    spec.get_mut(&key)?.get_mut(i)
}

/// How kubectl debugs: an ephemeral container in the Pod, a copy of the Pod, or a Pod on a node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Ephemeral,
    Copy,
    Node,
}

/// `--keep-*`: what a profile leaves in a copy.
struct Keep {
    labels: bool,
    annotations: bool,
    liveness: bool,
    readiness: bool,
    startup: bool,
    init_containers: bool,
}

impl From<&DebugArgs> for Keep {
    fn from(a: &DebugArgs) -> Self {
        Keep {
            labels: a.keep_labels,
            annotations: a.keep_annotations,
            liveness: a.keep_liveness,
            readiness: a.keep_readiness,
            startup: a.keep_startup,
            init_containers: a.keep_init_containers,
        }
    }
}

/// kubectl 1.33's profiles (`profiles.go`) on the debugging Pod `pod` (`{metadata, spec}`) and its container
/// `name`: security context, capabilities, host namespaces, the node's root at `/host`, and for a copy what is
/// kept of the original (legacy drops the labels only; the others drop what `--keep-*` does not keep).
fn apply_profile(profile: &str, style: Style, pod: &mut Value, name: &str, keep: &Keep) {
    fn security_context<'a>(pod: &'a mut Value, name: &str) -> Option<&'a mut Value> {
        let c = container_mut(&mut pod["spec"], name, ALL_CONTAINERS)?;
        if !c.get("securityContext").is_some_and(Value::is_object) {
            c["securityContext"] = json!({});
        }
        c.get_mut("securityContext")
    }
    let add_caps = |pod: &mut Value, caps: &[&str]| {
        if let Some(sc) = security_context(pod, name) {
            if !sc.get("capabilities").is_some_and(Value::is_object) {
                sc["capabilities"] = json!({});
            }
            let add = &mut sc["capabilities"]["add"];
            if !add.is_array() {
                *add = json!([]);
            }
            if let Some(list) = add.as_array_mut() {
                list.extend(caps.iter().map(|c| json!(c)));
            }
        }
    };
    let clear_sc = |pod: &mut Value| {
        if let Some(m) = container_mut(&mut pod["spec"], name, ALL_CONTAINERS).and_then(Value::as_object_mut) {
            m.remove("securityContext");
        }
    };
    let host_namespaces = |pod: &mut Value| {
        for k in ["hostIPC", "hostNetwork", "hostPID"] {
            pod["spec"][k] = json!(true);
        }
    };
    let mount_root = |pod: &mut Value| {
        let volume = json!({"hostPath": {"path": "/"}, "name": "host-root"});
        match pod["spec"]["volumes"].as_array_mut() {
            Some(v) => v.push(volume),
            None => pod["spec"]["volumes"] = json!([volume]),
        }
        if let Some(c) = container_mut(&mut pod["spec"], name, &["containers"]) {
            let mount = json!({"mountPath": "/host", "name": "host-root"});
            match c["volumeMounts"].as_array_mut() {
                Some(v) => v.push(mount),
                None => c["volumeMounts"] = json!([mount]),
            }
        }
    };
    let trim_copy = |pod: &mut Value| {
        let meta = pod["metadata"].as_object_mut();
        if let Some(m) = meta {
            if !keep.labels {
                m.remove("labels");
            }
            if !keep.annotations {
                m.remove("annotations");
            }
        }
        for c in pod["spec"]["containers"].as_array_mut().into_iter().flatten() {
            if let Some(m) = c.as_object_mut() {
                for (probe, kept) in [("livenessProbe", keep.liveness), ("readinessProbe", keep.readiness), ("startupProbe", keep.startup)] {
                    if !kept {
                        m.remove(probe);
                    }
                }
            }
        }
        if !keep.init_containers {
            if let Some(spec) = pod["spec"].as_object_mut() {
                spec.remove("initContainers");
            }
        }
        if pod["spec"].get("shareProcessNamespace").is_none_or(Value::is_null) {
            pod["spec"]["shareProcessNamespace"] = json!(true);
        }
    };
    match (profile, style) {
        ("legacy", Style::Copy) => {
            if let Some(m) = pod["metadata"].as_object_mut() {
                m.remove("labels");
            }
        }
        ("legacy", Style::Node) => {
            mount_root(pod);
            host_namespaces(pod);
        }
        ("general", Style::Node) => {
            mount_root(pod);
            clear_sc(pod);
            host_namespaces(pod);
        }
        ("general", _) => {
            if style == Style::Copy {
                trim_copy(pod);
            }
            add_caps(pod, &["SYS_PTRACE"]);
        }
        ("baseline", _) => {
            clear_sc(pod);
            if style == Style::Copy {
                trim_copy(pod);
            }
        }
        ("restricted", _) => {
            clear_sc(pod);
            if let Some(sc) = security_context(pod, name) {
                sc["runAsNonRoot"] = json!(true);
                sc["capabilities"] = json!({"drop": ["ALL"]});
                sc["allowPrivilegeEscalation"] = json!(false);
                sc["seccompProfile"] = json!({"type": "RuntimeDefault"});
            }
            if style == Style::Copy {
                trim_copy(pod);
            }
        }
        ("netadmin", _) => {
            add_caps(pod, &["NET_ADMIN", "NET_RAW"]);
            match style {
                Style::Node => host_namespaces(pod),
                Style::Copy => trim_copy(pod),
                Style::Ephemeral => {}
            }
        }
        ("sysadmin", _) => {
            if let Some(sc) = security_context(pod, name) {
                sc["privileged"] = json!(true);
            }
            match style {
                Style::Node => {
                    host_namespaces(pod);
                    mount_root(pod);
                }
                Style::Copy => trim_copy(pod),
                Style::Ephemeral => {}
            }
        }
        _ => {}
    }
}

/// kubectl 1.33's node debugging Pod: `node-debugger-<node>-<5 random>`, pinned to the node, never restarted,
/// every taint tolerated, the profile's host namespaces and root mount. With `-i`, attach once it runs.
async fn run_node(ctx: &Ctx, a: &DebugArgs, node: &str, env: &[(String, String)], attach: bool, out: &mut Out) -> anyhow::Result<()> {
    api::call(&ctx.client, Method::GET, &format!("/api/v1/nodes/{node}"), "application/json", None).await?;
    let pod = generated_name(&format!("node-debugger-{node}-"));
    let container = a.container.clone().unwrap_or_else(|| "debugger".to_string());
    if !a.quiet {
        out.stdout(&format!("Creating debugging pod {pod} with container {container} on node {node}.\n"));
    }
    let mut body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "spec": {
        "containers": [container_spec(a, &container, env)], "nodeName": node, "restartPolicy": "Never", "tolerations": [{"operator": "Exists"}]}});
    apply_profile(&a.profile, Style::Node, &mut body, &container, &Keep::from(a));
    let ns = &ctx.namespace;
    api::call(&ctx.client, Method::POST, &format!("/api/v1/namespaces/{ns}/pods"), "application/json", Some(("application/json", serde_json::to_vec(&body)?)))
        .await?;
    if !attach {
        return Ok(());
    }
    wait_and_attach(ctx, a, &pod, &container, Session::Ends, out).await
}

/// What kubectl's attach says when a terminal session ends: an ephemeral container may be reattached, a
/// container that restarts resumed; a Pod that never restarts gets no line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Session {
    Ephemeral,
    Restarts,
    Ends,
}

/// kubectl's `handleAttachPod`: wait until the container runs or has ended (any of the Pod's container lists),
/// then attach as `kubectl attach` does, or, if it has already ended, print its log instead.
async fn wait_and_attach(ctx: &Ctx, a: &DebugArgs, pod: &str, name: &str, session: Session, out: &mut Out) -> anyhow::Result<()> {
    let ns = &ctx.namespace;
    let item = format!("/api/v1/namespaces/{ns}/pods/{pod}");
    let ended = loop {
        let p = api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
        let status = ["initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"]
            .iter()
            .flat_map(|k| p["status"].get(*k).and_then(Value::as_array).into_iter().flatten())
            .find(|s| s["name"] == name)
            .cloned();
        if let Some(s) = status {
            if s.pointer("/state/terminated").is_some() {
                break true;
            }
            if s.pointer("/state/running").is_some() {
                break false;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if ended {
        let log = api::call_text(&ctx.client, Method::GET, &format!("{item}/log?container={}", super::enc(name)), "*/*", None).await?;
        out.stdout(&log);
        return Ok(());
    }
    let tty = super::exec::attach_stdio(ctx, pod, name, a.stdin, a.tty, a.quiet).await?;
    if tty && a.stdin && !a.quiet {
        match session {
            Session::Ephemeral => out.stdout(&format!("Session ended, the ephemeral container will not be restarted but may be reattached using 'kubectl attach {pod} -c {name} -i -t' if it is still running\n")),
            Session::Restarts => out.stdout(&format!("Session ended, resume using 'kubectl attach {pod} -c {name} -i -t' command when the pod is running\n")),
            Session::Ends => {}
        }
    }
    Ok(())
}
