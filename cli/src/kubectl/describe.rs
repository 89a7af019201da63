//! `describe`: kubectl's describers (k8s.io/kubectl/pkg/describe) line by line into one Go tabwriter (minwidth 0,
//! padding 2), the object's Events last with their ages. Pods, ConfigMaps, Namespaces, Secrets, Jobs,
//! Deployments, ReplicaSets and Nodes have describers of their own (as in kubectl); every other kind gets
//! kubectl's generic describer (each field in key order under a `Creation Timestamp:`-style label).
//!
//! TODO: probes, envFrom, a fieldRef env value resolved from the Pod, volume types beyond emptyDir, configMap,
//! secret and hostPath, topology spread constraints, a Node's hugepage and extended resources, the exact
//! `Quantity` spelling of summed requests with mixed suffixes, and times in the client's local zone (UTC here).

use http::Method;
use serde_json::Value;

use super::api::{self, Resource};
use super::{enc, Ctx, Out};

#[derive(clap::Args, Debug, Clone)]
pub struct DescribeArgs {
    /// TYPE [NAME…] or TYPE/NAME…
    pub args: Vec<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// If true, display events related to the described object.
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub show_events: bool,
}

/// kubectl's `PrefixWriter`: two spaces per level, everything into one buffer for the tabwriter.
struct W(String);

impl W {
    fn w(&mut self, level: usize, s: &str) {
        self.0.extend(std::iter::repeat_n("  ", level));
        self.0.push_str(s);
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// `Tue, 24 Nov 2026 06:53:28 +0000` (Go's RFC1123Z) from an RFC 3339 time.
fn rfc1123z(t: &str) -> String {
    match k1s_api::meta::parse_time(t) {
        Some(ts) => ts.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string(),
        None => t.to_string(),
    }
}

/// apimachinery's `duration.HumanDuration` of the time since `t`.
pub fn human_since(t: &str) -> String {
    let Some(ts) = k1s_api::meta::parse_time(t) else { return "<unknown>".into() };
    // Go's `int(time.Since(t).Seconds())`: the whole difference, sub-second parts included, then truncated
    // (an eventTime has microseconds).
    k1s_api::tables::human_duration(k8s_openapi::jiff::Timestamp::now().duration_since(ts).as_secs())
}

fn labels_multiline(w: &mut W, title: &str, m: Option<&Value>) {
    w.w(0, &format!("{title}:\t"));
    let Some(m) = m.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        w.w(0, "<none>\n");
        return;
    };
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            w.w(0, "\t");
        }
        w.w(0, &format!("{k}={}\n", v.as_str().unwrap_or("")));
    }
}

/// `printAnnotationsMultiline`: `key: value`, kubectl's own last-applied annotation skipped, long or multi-line
/// values on their own lines, shortened to 138 characters.
fn annotations_multiline(w: &mut W, title: &str, m: Option<&Value>) {
    const MAX: usize = 140;
    w.w(0, &format!("{title}:\t"));
    let keys: Vec<(&String, &Value)> = m
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
        .collect();
    if keys.is_empty() {
        w.w(0, "<none>\n");
        return;
    }
    for (i, (k, v)) in keys.into_iter().enumerate() {
        if i > 0 {
            w.w(0, "\t");
        }
        let value = v.as_str().unwrap_or("").trim_end_matches('\n');
        if value.len() + k.len() + 2 > MAX || value.contains('\n') {
            w.w(0, &format!("{k}:\n"));
            for line in value.split('\n') {
                let short = if line.len() > MAX - 2 { format!("{}...", &line[..MAX - 2]) } else { line.to_string() };
                w.w(0, &format!("\t  {short}\n"));
            }
        } else {
            w.w(0, &format!("{k}: {value}\n"));
        }
    }
}

fn container_state(w: &mut W, name: &str, st: &Value) {
    if let Some(r) = st.get("running") {
        w.w(2, &format!("{name}:\tRunning\n"));
        w.w(3, &format!("Started:\t{}\n", rfc1123z(s(r, "/startedAt"))));
    } else if let Some(t) = st.get("terminated") {
        w.w(2, &format!("{name}:\tTerminated\n"));
        if !s(t, "/reason").is_empty() {
            w.w(3, &format!("Reason:\t{}\n", s(t, "/reason")));
        }
        if !s(t, "/message").is_empty() {
            w.w(3, &format!("Message:\t{}\n", s(t, "/message")));
        }
        w.w(3, &format!("Exit Code:\t{}\n", t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)));
        if let Some(sig) = t.get("signal").and_then(Value::as_i64).filter(|s| *s > 0) {
            w.w(3, &format!("Signal:\t{sig}\n"));
        }
        w.w(3, &format!("Started:\t{}\n", rfc1123z(s(t, "/startedAt"))));
        w.w(3, &format!("Finished:\t{}\n", rfc1123z(s(t, "/finishedAt"))));
    } else {
        w.w(2, &format!("{name}:\tWaiting\n"));
        if let Some(r) = st.pointer("/waiting/reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            w.w(3, &format!("Reason:\t{r}\n"));
        }
    }
}

/// `describeContainers`; `space` is the Pod template's indent (`"  "`), which also moves each name one column.
fn containers(w: &mut W, label: &str, specs: &[Value], statuses: &[Value], space: &str) {
    w.w(0, &format!("{space}{label}:{}\n", if specs.is_empty() { " <none>" } else { "" }));
    let name_indent = if space.is_empty() { "" } else { " " };
    for c in specs {
        let name = s(c, "/name");
        let st = statuses.iter().find(|x| s(x, "/name") == name);
        w.w(1, &format!("{name_indent}{name}:\n"));
        if let Some(st) = st {
            w.w(2, &format!("Container ID:\t{}\n", s(st, "/containerID")));
        }
        w.w(2, &format!("Image:\t{}\n", s(c, "/image")));
        if let Some(st) = st {
            w.w(2, &format!("Image ID:\t{}\n", s(st, "/imageID")));
        }
        let ports: Vec<&Value> = c.get("ports").and_then(Value::as_array).into_iter().flatten().collect();
        let port = |p: &Value, field: &str| {
            format!("{}/{}", p.get(field).and_then(Value::as_i64).unwrap_or(0), p.get("protocol").and_then(Value::as_str).unwrap_or("TCP"))
        };
        let cp: Vec<String> = ports.iter().map(|p| port(p, "containerPort")).collect();
        let hp: Vec<String> = ports.iter().map(|p| port(p, "hostPort")).collect();
        let none = |v: &[String]| if v.is_empty() { "<none>".to_string() } else { v.join(", ") };
        w.w(2, &format!("{}:\t{}\n", if cp.len() > 1 { "Ports" } else { "Port" }, none(&cp)));
        w.w(2, &format!("{}:\t{}\n", if hp.len() > 1 { "Host Ports" } else { "Host Port" }, none(&hp)));
        if let Some(rp) = c.get("restartPolicy").and_then(Value::as_str) {
            w.w(2, &format!("Restart Policy:\t{rp}\n"));
        }
        for (field, title) in [("command", "Command"), ("args", "Args")] {
            let items: Vec<&str> = c.get(field).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            if !items.is_empty() {
                w.w(2, &format!("{title}:\n"));
                for item in items {
                    for line in item.split('\n') {
                        w.w(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(st) = st {
            container_state(w, "State", st.get("state").unwrap_or(&Value::Null));
            if st.pointer("/lastState/terminated").is_some() {
                container_state(w, "Last State", &st["lastState"]);
            }
            w.w(2, &format!("Ready:\t{}\n", if st.get("ready").and_then(Value::as_bool).unwrap_or(false) { "True" } else { "False" }));
            w.w(2, &format!("Restart Count:\t{}\n", st.get("restartCount").and_then(Value::as_i64).unwrap_or(0)));
        }
        for (field, title) in [("limits", "Limits"), ("requests", "Requests")] {
            if let Some(m) = c.pointer(&format!("/resources/{field}")).and_then(Value::as_object).filter(|m| !m.is_empty()) {
                w.w(2, &format!("{title}:\n"));
                for (k, v) in m {
                    w.w(3, &format!("{k}:\t{}\n", v.as_str().map(String::from).unwrap_or_else(|| v.to_string())));
                }
            }
        }
        let env: Vec<&Value> = c.get("env").and_then(Value::as_array).into_iter().flatten().collect();
        w.w(2, &format!("Environment:{}\n", if env.is_empty() { "\t<none>" } else { "" }));
        for e in env {
            let name = s(e, "/name");
            if let Some(v) = e.get("value").and_then(Value::as_str).or(if e.get("valueFrom").is_none() { Some("") } else { None }) {
                for (i, line) in v.split('\n').enumerate() {
                    if i == 0 {
                        w.w(3, &format!("{name}:\t{line}\n"));
                    } else {
                        w.w(3, &format!("\t{line}\n"));
                    }
                }
            } else if let Some(r) = e.pointer("/valueFrom/fieldRef") {
                w.w(3, &format!("{name}:\t ({}:{})\n", s(r, "/apiVersion"), s(r, "/fieldPath")));
            } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
                let opt = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
                w.w(3, &format!("{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {opt}\n", s(r, "/key"), s(r, "/name")));
            } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
                let opt = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
                w.w(3, &format!("{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {opt}\n", s(r, "/key"), s(r, "/name")));
            }
        }
        let mut mounts: Vec<&Value> = c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten().collect();
        mounts.sort_by(|a, b| s(a, "/mountPath").cmp(s(b, "/mountPath")));
        w.w(2, &format!("Mounts:{}\n", if mounts.is_empty() { "\t<none>" } else { "" }));
        for m in mounts {
            let mut flags = vec![if m.get("readOnly").and_then(Value::as_bool).unwrap_or(false) { "ro".to_string() } else { "rw".to_string() }];
            if !s(m, "/subPath").is_empty() {
                flags.push(format!("path={:?}", s(m, "/subPath")));
            }
            w.w(3, &format!("{} from {} ({})\n", s(m, "/mountPath"), s(m, "/name"), flags.join(",")));
        }
    }
}

fn volumes(w: &mut W, vols: &[Value], space: &str) {
    if vols.is_empty() {
        w.w(0, &format!("{space}Volumes:\t<none>\n"));
        return;
    }
    w.w(0, &format!("{space}Volumes:\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    for v in vols {
        w.w(1, &format!("{name_indent}{}:\n", s(v, "/name")));
        if let Some(e) = v.get("emptyDir") {
            w.w(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n");
            w.w(2, &format!("Medium:\t{}\n", s(e, "/medium")));
            w.w(2, &format!("SizeLimit:\t{}\n", e.get("sizeLimit").and_then(Value::as_str).unwrap_or("<unset>")));
        } else if let Some(c) = v.get("configMap") {
            w.w(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n");
            w.w(2, &format!("Name:\t{}\n", s(c, "/name")));
            w.w(2, &format!("Optional:\t{}\n", c.get("optional").and_then(Value::as_bool).unwrap_or(false)));
        } else if let Some(c) = v.get("secret") {
            w.w(2, "Type:\tSecret (a volume populated by a Secret)\n");
            w.w(2, &format!("SecretName:\t{}\n", s(c, "/secretName")));
            w.w(2, &format!("Optional:\t{}\n", c.get("optional").and_then(Value::as_bool).unwrap_or(false)));
        } else if let Some(h) = v.get("hostPath") {
            w.w(2, "Type:\tHostPath (bare host directory volume)\n");
            w.w(2, &format!("Path:\t{}\n", s(h, "/path")));
            w.w(2, &format!("HostPathType:\t{}\n", s(h, "/type")));
        } else {
            w.w(2, "<unknown>\n");
        }
    }
}

fn tolerations(w: &mut W, title: &str, tols: &[Value]) {
    w.w(0, &format!("{title}:\t"));
    if tols.is_empty() {
        w.w(0, "<none>\n");
        return;
    }
    let mut tols: Vec<&Value> = tols.iter().collect();
    tols.sort_by(|a, b| s(a, "/key").cmp(s(b, "/key")));
    for (i, t) in tols.into_iter().enumerate() {
        if i > 0 {
            w.w(0, "\t");
        }
        let (key, value, effect) = (s(t, "/key"), s(t, "/value"), s(t, "/effect"));
        let mut line = key.to_string();
        if !value.is_empty() {
            line.push_str(&format!("={value}"));
        }
        if !effect.is_empty() {
            line.push_str(&format!(":{effect}"));
        }
        if s(t, "/operator") == "Exists" && value.is_empty() {
            line.push_str(if key.is_empty() && effect.is_empty() { "op=Exists" } else { " op=Exists" });
        }
        if let Some(secs) = t.get("tolerationSeconds").and_then(Value::as_i64) {
            line.push_str(&format!(" for {secs}s"));
        }
        w.w(0, &format!("{line}\n"));
    }
}

/// The Pod's QoS class: `status.qosClass`, else computed from requests and limits.
fn qos(pod: &Value) -> String {
    if let Some(q) = pod.pointer("/status/qosClass").and_then(Value::as_str) {
        return q.to_string();
    }
    let cs: Vec<&Value> = pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten().collect();
    let any = cs.iter().any(|c| {
        c.pointer("/resources/requests").and_then(Value::as_object).is_some_and(|m| !m.is_empty())
            || c.pointer("/resources/limits").and_then(Value::as_object).is_some_and(|m| !m.is_empty())
    });
    if !any {
        return "BestEffort".into();
    }
    let guaranteed = cs.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = c.pointer(&format!("/resources/limits/{r}"));
            l.is_some() && c.pointer(&format!("/resources/requests/{r}")).is_none_or(|q| Some(q) == l)
        })
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }.into()
}

fn events(w: &mut W, evs: &[Value]) -> String {
    // kubectl flushes the tabwriter before the events table: it aligns on its own.
    if evs.is_empty() {
        w.w(0, "Events:\t<none>\n");
        return String::new();
    }
    let mut evs: Vec<&Value> = evs.iter().collect();
    let last = |e: &Value| s(e, "/lastTimestamp").to_string();
    evs.sort_by_key(|a| last(a));
    let mut t = W(String::new());
    t.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    t.w(1, "----\t------\t----\t----\t-------\n");
    for e in evs {
        let first = match s(e, "/eventTime") {
            "" => human_since(s(e, "/firstTimestamp")),
            t => human_since(t),
        };
        let count = e.get("count").and_then(Value::as_i64).unwrap_or(0);
        let interval = if let Some(series) = e.get("series").filter(|v| !v.is_null()) {
            format!("{} (x{} over {first})", human_since(s(series, "/lastObservedTime")), series.get("count").and_then(Value::as_i64).unwrap_or(0))
        } else if count > 1 {
            format!("{} (x{count} over {first})", human_since(s(e, "/lastTimestamp")))
        } else {
            first
        };
        let source = match s(e, "/source/component") {
            "" => s(e, "/reportingComponent"),
            c => c,
        };
        t.w(1, &format!("{}\t{}\t{interval}\t{source}\t{}\n", s(e, "/type"), s(e, "/reason"), s(e, "/message").trim()));
    }
    t.0
}

fn describe_pod(pod: &Value, evs: Option<&[Value]>) -> String {
    let mut w = W(String::new());
    w.w(0, &format!("Name:\t{}\n", s(pod, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(pod, "/metadata/namespace")));
    if let Some(p) = pod.pointer("/spec/priority").and_then(Value::as_i64) {
        w.w(0, &format!("Priority:\t{p}\n"));
    }
    if !s(pod, "/spec/priorityClassName").is_empty() {
        w.w(0, &format!("Priority Class Name:\t{}\n", s(pod, "/spec/priorityClassName")));
    }
    if !s(pod, "/spec/runtimeClassName").is_empty() {
        w.w(0, &format!("Runtime Class Name:\t{}\n", s(pod, "/spec/runtimeClassName")));
    }
    if !s(pod, "/spec/serviceAccountName").is_empty() {
        w.w(0, &format!("Service Account:\t{}\n", s(pod, "/spec/serviceAccountName")));
    }
    match s(pod, "/spec/nodeName") {
        "" => w.w(0, "Node:\t<none>\n"),
        n => w.w(0, &format!("Node:\t{n}/{}\n", s(pod, "/status/hostIP"))),
    }
    if !s(pod, "/status/startTime").is_empty() {
        w.w(0, &format!("Start Time:\t{}\n", rfc1123z(s(pod, "/status/startTime"))));
    }
    labels_multiline(&mut w, "Labels", pod.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", pod.pointer("/metadata/annotations"));
    if !s(pod, "/metadata/deletionTimestamp").is_empty() {
        w.w(0, &format!("Status:\tTerminating (lasts {})\n", human_since(s(pod, "/metadata/deletionTimestamp"))));
        if let Some(g) = pod.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64) {
            w.w(0, &format!("Termination Grace Period:\t{g}s\n"));
        }
    } else {
        w.w(0, &format!("Status:\t{}\n", s(pod, "/status/phase")));
    }
    if !s(pod, "/status/reason").is_empty() {
        w.w(0, &format!("Reason:\t{}\n", s(pod, "/status/reason")));
    }
    if !s(pod, "/status/message").is_empty() {
        w.w(0, &format!("Message:\t{}\n", s(pod, "/status/message")));
    }
    if let Some(sp) = pod.pointer("/spec/securityContext/seccompProfile") {
        w.w(0, &format!("SeccompProfile:\t{}\n", s(sp, "/type")));
        if !s(sp, "/localhostProfile").is_empty() {
            w.w(0, &format!("LocalhostProfile:\t{}\n", s(sp, "/localhostProfile")));
        }
    }
    w.w(0, &format!("IP:\t{}\n", s(pod, "/status/podIP")));
    let ips: Vec<&Value> = pod.pointer("/status/podIPs").and_then(Value::as_array).into_iter().flatten().collect();
    if ips.is_empty() {
        w.w(0, "IPs:\t<none>\n");
    } else {
        w.w(0, "IPs:\n");
        for ip in ips {
            w.w(1, &format!("IP:\t{}\n", s(ip, "/ip")));
        }
    }
    let owner = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|o| o.get("controller").and_then(Value::as_bool).unwrap_or(false));
    if let Some(o) = owner {
        w.w(0, &format!("Controlled By:\t{}/{}\n", s(o, "/kind"), s(o, "/name")));
    }
    if !s(pod, "/status/nominatedNodeName").is_empty() {
        w.w(0, &format!("NominatedNodeName:\t{}\n", s(pod, "/status/nominatedNodeName")));
    }
    let arr = |p: &str| pod.pointer(p).and_then(Value::as_array).cloned().unwrap_or_default();
    if !arr("/spec/initContainers").is_empty() {
        containers(&mut w, "Init Containers", &arr("/spec/initContainers"), &arr("/status/initContainerStatuses"), "");
    }
    containers(&mut w, "Containers", &arr("/spec/containers"), &arr("/status/containerStatuses"), "");
    let conds = arr("/status/conditions");
    if !conds.is_empty() {
        w.w(0, "Conditions:\n  Type\tStatus\n");
        for c in conds {
            w.w(1, &format!("{} \t{} \n", s(&c, "/type"), s(&c, "/status")));
        }
    }
    volumes(&mut w, &arr("/spec/volumes"), "");
    w.w(0, &format!("QoS Class:\t{}\n", qos(pod)));
    labels_multiline(&mut w, "Node-Selectors", pod.pointer("/spec/nodeSelector"));
    tolerations(&mut w, "Tolerations", &arr("/spec/tolerations"));
    finish(w, evs)
}

/// The tabwriter over what was written, then the separately flushed events table.
fn finish(mut w: W, evs: Option<&[Value]>) -> String {
    let table = match evs {
        Some(evs) => events(&mut w, evs),
        None => String::new(),
    };
    let mut out = super::printers::tabwriter(&w.0, 0, 2);
    out.push_str(&super::printers::tabwriter(&table, 0, 2));
    out
}

fn describe_configmap(cm: &Value, evs: Option<&[Value]>) -> String {
    let mut w = W(String::new());
    w.w(0, &format!("Name:\t{}\n", s(cm, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(cm, "/metadata/namespace")));
    labels_multiline(&mut w, "Labels", cm.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", cm.pointer("/metadata/annotations"));
    w.w(0, "\nData\n====\n");
    for (k, v) in cm.get("data").and_then(Value::as_object).into_iter().flatten() {
        w.w(0, &format!("{k}:\n----\n{}\n\n", v.as_str().unwrap_or("")));
    }
    w.w(0, "\nBinaryData\n====\n");
    for (k, v) in cm.get("binaryData").and_then(Value::as_object).into_iter().flatten() {
        use base64::Engine as _;
        let n = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).map(|b| b.len()).unwrap_or(0);
        w.w(0, &format!("{k}: {n} bytes\n"));
    }
    w.w(0, "\n");
    finish(w, evs)
}

async fn describe_namespace(ctx: &Ctx, ns: &Value) -> anyhow::Result<String> {
    let mut w = W(String::new());
    let name = s(ns, "/metadata/name");
    w.w(0, &format!("Name:\t{name}\n"));
    labels_multiline(&mut w, "Labels", ns.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", ns.pointer("/metadata/annotations"));
    w.w(0, &format!("Status:\t{}\n", s(ns, "/status/phase")));
    // kubectl lists quotas and limit ranges where the server serves them, and says nothing where it does not.
    let quotas = api::call(&ctx.client, Method::GET, &format!("/api/v1/namespaces/{name}/resourcequotas"), "application/json", None).await;
    if let Ok(q) = quotas {
        if q.get("items").and_then(Value::as_array).is_none_or(|i| i.is_empty()) {
            w.w(0, "\nNo resource quota.\n");
        }
    }
    let limits = api::call(&ctx.client, Method::GET, &format!("/api/v1/namespaces/{name}/limitranges"), "application/json", None).await;
    if let Ok(l) = limits {
        if l.get("items").and_then(Value::as_array).is_none_or(|i| i.is_empty()) {
            w.w(0, "\nNo LimitRange resource.\n");
        }
    }
    Ok(finish(w, None))
}

fn arr<'a>(v: &'a Value, ptr: &str) -> Vec<&'a Value> {
    v.pointer(ptr).and_then(Value::as_array).into_iter().flatten().collect()
}

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key, `k=v`, `k in (a,b)`, `k`, `!k`.
fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|v| v.is_object()) else { return String::new() };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel.get("matchLabels").and_then(Value::as_object).into_iter().flatten() {
        reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for e in arr(sel, "/matchExpressions") {
        let key = s(e, "/key");
        let mut values: Vec<&str> = arr(e, "/values").into_iter().filter_map(Value::as_str).collect();
        values.sort();
        let text = match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter().map(|r| r.1).collect::<Vec<_>>().join(",")
}

/// `printController`: `Kind/name` of the controlling owner.
fn controller_of(obj: &Value) -> Option<String> {
    arr(obj, "/metadata/ownerReferences")
        .into_iter()
        .find(|o| o.get("controller").and_then(Value::as_bool).unwrap_or(false))
        .map(|o| format!("{}/{}", s(o, "/kind"), s(o, "/name")))
}

/// An IntOrString as Go's `intstr.String()` prints it.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// `DescribePodTemplate`.
fn pod_template(w: &mut W, t: Option<&Value>) {
    w.w(0, "Pod Template:\n");
    let Some(t) = t else {
        w.w(1, "<unset>");
        return;
    };
    labels_multiline(w, "  Labels", t.pointer("/metadata/labels"));
    if t.pointer("/metadata/annotations").and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
        annotations_multiline(w, "  Annotations", t.pointer("/metadata/annotations"));
    }
    if !s(t, "/spec/serviceAccountName").is_empty() {
        w.w(1, &format!("Service Account:\t{}\n", s(t, "/spec/serviceAccountName")));
    }
    let list = |p: &str| t.pointer(p).and_then(Value::as_array).cloned().unwrap_or_default();
    if !list("/spec/initContainers").is_empty() {
        containers(w, "Init Containers", &list("/spec/initContainers"), &[], "  ");
    }
    containers(w, "Containers", &list("/spec/containers"), &[], "  ");
    volumes(w, &list("/spec/volumes"), "  ");
    if !s(t, "/spec/priorityClassName").is_empty() {
        w.w(1, &format!("Priority Class Name:\t{}\n", s(t, "/spec/priorityClassName")));
    }
    labels_multiline(w, "  Node-Selectors", t.pointer("/spec/nodeSelector"));
    tolerations(w, "  Tolerations", &list("/spec/tolerations"));
}

/// `Type Status Reason` conditions of a workload.
fn workload_conditions(w: &mut W, obj: &Value) {
    let conds = arr(obj, "/status/conditions");
    if !conds.is_empty() {
        w.w(0, "Conditions:\n  Type\tStatus\tReason\n");
        w.w(1, "----\t------\t------\n");
        for c in conds {
            w.w(1, &format!("{} \t{}\t{}\n", s(c, "/type"), s(c, "/status"), s(c, "/reason")));
        }
    }
}

fn describe_job(job: &Value, evs: Option<&[Value]>) -> String {
    let mut w = W(String::new());
    w.w(0, &format!("Name:\t{}\n", s(job, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(job, "/metadata/namespace")));
    w.w(0, &format!("Selector:\t{}\n", selector_string(job.pointer("/spec/selector"))));
    labels_multiline(&mut w, "Labels", job.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", job.pointer("/metadata/annotations"));
    if let Some(c) = controller_of(job) {
        w.w(0, &format!("Controlled By:\t{c}\n"));
    }
    let num = |p: &str| job.pointer(p).and_then(Value::as_i64);
    if let Some(p) = num("/spec/parallelism") {
        w.w(0, &format!("Parallelism:\t{p}\n"));
    }
    match num("/spec/completions") {
        Some(c) => w.w(0, &format!("Completions:\t{c}\n")),
        None => w.w(0, "Completions:\t<unset>\n"),
    }
    if !s(job, "/spec/completionMode").is_empty() {
        w.w(0, &format!("Completion Mode:\t{}\n", s(job, "/spec/completionMode")));
    }
    if let Some(b) = job.pointer("/spec/suspend").and_then(Value::as_bool) {
        w.w(0, &format!("Suspend:\t{b}\n"));
    }
    if let Some(b) = num("/spec/backoffLimit") {
        w.w(0, &format!("Backoff Limit:\t{b}\n"));
    }
    if let Some(t) = num("/spec/ttlSecondsAfterFinished") {
        w.w(0, &format!("TTL Seconds After Finished:\t{t}\n"));
    }
    let (start, done) = (s(job, "/status/startTime"), s(job, "/status/completionTime"));
    if !start.is_empty() {
        w.w(0, &format!("Start Time:\t{}\n", rfc1123z(start)));
    }
    if !done.is_empty() {
        w.w(0, &format!("Completed At:\t{}\n", rfc1123z(done)));
    }
    if let (Some(a), Some(b)) = (k1s_api::meta::parse_time(start), k1s_api::meta::parse_time(done)) {
        w.w(0, &format!("Duration:\t{}\n", k1s_api::tables::human_duration(b.duration_since(a).as_secs())));
    }
    if let Some(d) = num("/spec/activeDeadlineSeconds") {
        w.w(0, &format!("Active Deadline Seconds:\t{d}s\n"));
    }
    let (active, ok, failed) = (int(job, "/status/active"), int(job, "/status/succeeded"), int(job, "/status/failed"));
    match num("/status/ready") {
        Some(r) => w.w(0, &format!("Pods Statuses:\t{active} Active ({r} Ready) / {ok} Succeeded / {failed} Failed\n")),
        None => w.w(0, &format!("Pods Statuses:\t{active} Active / {ok} Succeeded / {failed} Failed\n")),
    }
    if s(job, "/spec/completionMode") == "Indexed" {
        let idx = s(job, "/status/completedIndexes");
        // capIndexesListOrNone: cut at the first comma after 50 characters.
        let shown = if idx.is_empty() {
            "<none>".to_string()
        } else {
            match idx.get(50..).and_then(|rest| rest.find(',')) {
                Some(i) => format!("{}...", &idx[..50 + i + 1]),
                None => idx.to_string(),
            }
        };
        w.w(0, &format!("Completed Indexes:\t{shown}\n"));
    }
    pod_template(&mut w, job.pointer("/spec/template"));
    finish(w, evs)
}

/// The template without the `pod-template-hash` label (deploymentutil's `EqualIgnoreHash`).
fn template_without_hash(t: Option<&Value>) -> Value {
    let mut t = t.cloned().unwrap_or(Value::Null);
    if let Some(l) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        l.remove("pod-template-hash");
        if l.is_empty() {
            t["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
    t
}

fn describe_deployment(d: &Value, rss: &[Value], evs: Option<&[Value]>) -> String {
    let mut w = W(String::new());
    w.w(0, &format!("Name:\t{}\n", s(d, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(d, "/metadata/namespace")));
    w.w(0, &format!("CreationTimestamp:\t{}\n", rfc1123z(s(d, "/metadata/creationTimestamp"))));
    labels_multiline(&mut w, "Labels", d.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", d.pointer("/metadata/annotations"));
    w.w(0, &format!("Selector:\t{}\n", selector_string(d.pointer("/spec/selector"))));
    w.w(
        0,
        &format!(
            "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
            int(d, "/spec/replicas"),
            int(d, "/status/updatedReplicas"),
            int(d, "/status/replicas"),
            int(d, "/status/availableReplicas"),
            int(d, "/status/unavailableReplicas")
        ),
    );
    w.w(0, &format!("StrategyType:\t{}\n", s(d, "/spec/strategy/type")));
    w.w(0, &format!("MinReadySeconds:\t{}\n", int(d, "/spec/minReadySeconds")));
    if let Some(ru) = d.pointer("/spec/strategy/rollingUpdate").filter(|v| v.is_object()) {
        w.w(
            0,
            &format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
                int_or_string(ru.get("maxUnavailable")),
                int_or_string(ru.get("maxSurge"))
            ),
        );
    }
    pod_template(&mut w, d.pointer("/spec/template"));
    workload_conditions(&mut w, d);
    // deploymentutil: the ReplicaSets this Deployment controls, oldest first; the new one has its template.
    let uid = s(d, "/metadata/uid");
    let mut owned: Vec<&Value> = rss
        .iter()
        .filter(|rs| {
            arr(rs, "/metadata/ownerReferences").iter().any(|o| o.get("controller").and_then(Value::as_bool) == Some(true) && s(o, "/uid") == uid)
        })
        .collect();
    owned.sort_by(|a, b| {
        (s(a, "/metadata/creationTimestamp"), s(a, "/metadata/name")).cmp(&(s(b, "/metadata/creationTimestamp"), s(b, "/metadata/name")))
    });
    let want = template_without_hash(d.pointer("/spec/template"));
    let new = owned.iter().position(|rs| template_without_hash(rs.pointer("/spec/template")) == want);
    let line = |list: Vec<&Value>| {
        let items: Vec<String> = list
            .iter()
            .map(|rs| format!("{} ({}/{} replicas created)", s(rs, "/metadata/name"), int(rs, "/status/replicas"), int(rs, "/spec/replicas")))
            .collect();
        if items.is_empty() {
            "<none>".to_string()
        } else {
            items.join(", ")
        }
    };
    if !owned.is_empty() {
        let old: Vec<&Value> = owned.iter().enumerate().filter(|(i, _)| Some(*i) != new).map(|(_, r)| *r).collect();
        w.w(0, &format!("OldReplicaSets:\t{}\n", line(old)));
        w.w(0, &format!("NewReplicaSet:\t{}\n", line(new.map(|i| vec![owned[i]]).unwrap_or_default())));
    }
    finish(w, evs)
}

fn describe_replicaset(rs: &Value, pods: &[Value], evs: Option<&[Value]>) -> String {
    let mut w = W(String::new());
    w.w(0, &format!("Name:\t{}\n", s(rs, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(rs, "/metadata/namespace")));
    let sel = selector_string(rs.pointer("/spec/selector"));
    w.w(0, &format!("Selector:\t{}\n", if sel.is_empty() { "<none>" } else { &sel }));
    labels_multiline(&mut w, "Labels", rs.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", rs.pointer("/metadata/annotations"));
    if let Some(c) = controller_of(rs) {
        w.w(0, &format!("Controlled By:\t{c}\n"));
    }
    w.w(0, &format!("Replicas:\t{} current / {} desired\n", int(rs, "/status/replicas"), int(rs, "/spec/replicas")));
    // getPodStatusForController: only the Pods this ReplicaSet controls.
    let uid = s(rs, "/metadata/uid");
    let mut counts = [0; 4];
    for p in pods {
        let owned =
            arr(p, "/metadata/ownerReferences").iter().any(|o| o.get("controller").and_then(Value::as_bool) == Some(true) && s(o, "/uid") == uid);
        if !owned {
            continue;
        }
        match s(p, "/status/phase") {
            "Running" => counts[0] += 1,
            "Pending" => counts[1] += 1,
            "Succeeded" => counts[2] += 1,
            "Failed" => counts[3] += 1,
            _ => {}
        }
    }
    w.w(0, &format!("Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed\n", counts[0], counts[1], counts[2], counts[3]));
    pod_template(&mut w, rs.pointer("/spec/template"));
    workload_conditions(&mut w, rs);
    finish(w, evs)
}

fn describe_secret(secret: &Value) -> String {
    use base64::Engine as _;
    let mut w = W(String::new());
    w.w(0, &format!("Name:\t{}\n", s(secret, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(secret, "/metadata/namespace")));
    labels_multiline(&mut w, "Labels", secret.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", secret.pointer("/metadata/annotations"));
    let ty = s(secret, "/type");
    w.w(0, &format!("\nType:\t{ty}\n"));
    w.w(0, "\nData\n====\n");
    // Only a Secret's sizes are shown (a service account token is the exception kubectl makes).
    for (k, v) in secret.get("data").and_then(Value::as_object).into_iter().flatten() {
        let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).unwrap_or_default();
        if k == "token" && ty == "kubernetes.io/service-account-token" {
            w.w(0, &format!("{k}:\t{}\n", String::from_utf8_lossy(&bytes)));
        } else {
            w.w(0, &format!("{k}:\t{} bytes\n", bytes.len()));
        }
    }
    finish(w, None)
}

/// fatih/camelcase's `Split`: runs of lower case, upper case, digits and the rest, an upper-case letter that
/// starts a lower-case run moved into it (`APIVersion` → `API`, `Version`).
fn camel_split(s: &str) -> Vec<String> {
    let class = |c: char| {
        if c.is_lowercase() {
            1
        } else if c.is_uppercase() {
            2
        } else if c.is_ascii_digit() {
            3
        } else {
            4
        }
    };
    let mut runs: Vec<Vec<char>> = Vec::new();
    let mut last = 0;
    for c in s.chars() {
        let k = class(c);
        match runs.last_mut() {
            Some(r) if k == last => r.push(c),
            _ => runs.push(vec![c]),
        }
        last = k;
    }
    for i in 0..runs.len().saturating_sub(1) {
        if runs[i].first().is_some_and(|c| c.is_uppercase()) && runs[i + 1].first().is_some_and(|c| c.is_lowercase()) {
            let moved = runs[i].pop().expect("non-empty run");
            runs[i + 1].insert(0, moved);
        }
    }
    runs.into_iter().filter(|r| !r.is_empty()).map(|r| r.into_iter().collect()).collect()
}

/// `smartLabelFor`: `creationTimestamp` → `Creation Timestamp`, common acronyms upper case; a name with
/// characters other than letters and `-` is left as it is.
fn smart_label(field: &str) -> String {
    if field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    camel_split(field)
        .into_iter()
        .filter(|p| p != "_")
        .map(|p| {
            if ["API", "URL", "UID", "OSB", "GUID"].contains(&p.to_uppercase().as_str()) {
                p.to_uppercase()
            } else {
                // strings.Title: the first letter upper case.
                let mut cs = p.chars();
                cs.next().map(|f| f.to_uppercase().chain(cs).collect()).unwrap_or_default()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Go's `%v` of a decoded JSON scalar (numbers are float64 there: `%g` with the shortest digits, exponent form
/// from 1e+06 and below 1e-04).
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f != 0.0 && f.is_finite() => {
                let e = format!("{f:e}");
                let (m, exp) = e.split_once('e').unwrap_or((&e, "0"));
                let exp: i32 = exp.parse().unwrap_or(0);
                if !(-4..6).contains(&exp) {
                    format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
                } else {
                    format!("{f}")
                }
            }
            Some(_) => "0".into(),
            None => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// `printUnstructuredContent`: every field in key order, maps and lists nested a level deeper.
fn unstructured(w: &mut W, level: usize, content: &serde_json::Map<String, Value>, prefix: &str, skip: &[&str]) {
    let mut keys: Vec<&String> = content.keys().collect();
    keys.sort();
    for field in keys {
        let value = &content[field];
        let path = format!("{prefix}.{field}");
        if skip.contains(&path.as_str()) {
            continue;
        }
        match value {
            Value::Object(m) => {
                w.w(level, &format!("{}:\n", smart_label(field)));
                unstructured(w, level + 1, m, &path, skip);
            }
            Value::Array(items) => {
                w.w(level, &format!("{}:\n", smart_label(field)));
                for child in items {
                    match child {
                        Value::Object(m) => unstructured(w, level + 1, m, &path, skip),
                        other => w.w(level + 1, &format!("{}\n", go_value(other))),
                    }
                }
            }
            other => w.w(level, &format!("{}:\t{}\n", smart_label(field), go_value(other))),
        }
    }
}

/// kubectl's generic describer, for a kind it has no describer of its own for.
fn describe_generic(obj: &Value, evs: Option<&[Value]>) -> String {
    let mut w = W(String::new());
    w.w(0, &format!("Name:\t{}\n", s(obj, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(obj, "/metadata/namespace")));
    labels_multiline(&mut w, "Labels", obj.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", obj.pointer("/metadata/annotations"));
    if let Some(m) = obj.as_object() {
        let skip = [".metadata.managedFields", ".metadata.name", ".metadata.namespace", ".metadata.labels", ".metadata.annotations"];
        unstructured(&mut w, 0, m, "", &skip);
    }
    finish(w, evs)
}

/// The sum of several quantities the way they usually read: one value as written, values with one suffix
/// added up in it, else CPU in milli-cores and the rest in bytes. (Upstream's `Quantity.String()` of a sum
/// has more cases; they differ only in spelling for mixed suffixes.)
fn quantity_sum(values: &[String], cpu: bool) -> String {
    match values {
        [] => return "0".into(),
        [one] => return one.clone(),
        _ => {}
    }
    let split = |v: &str| {
        let i = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
        (v[..i].parse::<i64>().ok(), v[i..].to_string())
    };
    let parts: Vec<(Option<i64>, String)> = values.iter().map(|v| split(v)).collect();
    if parts.iter().all(|(n, suf)| n.is_some() && *suf == parts[0].1) {
        return format!("{}{}", parts.iter().filter_map(|p| p.0).sum::<i64>(), parts[0].1);
    }
    if cpu {
        let m: i64 = values.iter().filter_map(|v| k1s_api::quantity::scaled(v, 3)).sum();
        if m % 1000 == 0 {
            (m / 1000).to_string()
        } else {
            format!("{m}m")
        }
    } else {
        values.iter().filter_map(|v| k1s_api::quantity::scaled(v, 0)).sum::<i64>().to_string()
    }
}

/// `resourcehelper.PodRequests`/`PodLimits` for one resource: the containers' sum, at least each init
/// container's, as written (`None` when no container sets it).
fn pod_resource(pod: &Value, kind: &str, name: &str) -> Vec<String> {
    let cs: Vec<String> = arr(pod, "/spec/containers")
        .into_iter()
        .filter_map(|c| c.pointer(&format!("/resources/{kind}/{name}")).and_then(Value::as_str).map(String::from))
        .collect();
    let exp = if name == "cpu" { 3 } else { 0 };
    let total: i64 = cs.iter().filter_map(|v| k1s_api::quantity::scaled(v, exp)).sum();
    for ic in arr(pod, "/spec/initContainers") {
        if let Some(v) = ic.pointer(&format!("/resources/{kind}/{name}")).and_then(Value::as_str) {
            if k1s_api::quantity::scaled(v, exp).unwrap_or(0) > total {
                return vec![v.to_string()];
            }
        }
    }
    cs
}

fn percent(v: &str, of: Option<&str>, cpu: bool) -> i64 {
    let exp = if cpu { 3 } else { 0 };
    let total = of.and_then(|t| k1s_api::quantity::scaled(t, exp)).unwrap_or(0);
    if total == 0 {
        return 0;
    }
    (k1s_api::quantity::scaled(v, exp).unwrap_or(0) as f64 / total as f64 * 100.0) as i64
}

async fn describe_node(ctx: &Ctx, node: &Value, evs: Option<&[Value]>) -> anyhow::Result<String> {
    let name = s(node, "/metadata/name");
    let mut w = W(String::new());
    w.w(0, &format!("Name:\t{name}\n"));
    // findNodeRoles: `node-role.kubernetes.io/<role>` labels and `kubernetes.io/role`.
    let mut roles: Vec<String> = Vec::new();
    for (k, v) in node.pointer("/metadata/labels").and_then(Value::as_object).into_iter().flatten() {
        if let Some(r) = k.strip_prefix("node-role.kubernetes.io/").filter(|r| !r.is_empty()) {
            roles.push(r.to_string());
        } else if k == "kubernetes.io/role" && v.as_str().is_some_and(|v| !v.is_empty()) {
            roles.push(v.as_str().unwrap_or("").to_string());
        }
    }
    roles.sort();
    roles.dedup();
    w.w(0, &format!("Roles:\t{}\n", if roles.is_empty() { "<none>".to_string() } else { roles.join(",") }));
    labels_multiline(&mut w, "Labels", node.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", node.pointer("/metadata/annotations"));
    w.w(0, &format!("CreationTimestamp:\t{}\n", rfc1123z(s(node, "/metadata/creationTimestamp"))));
    let taints = arr(node, "/spec/taints");
    if taints.is_empty() {
        w.w(0, "Taints:\t<none>\n");
    } else {
        for (i, t) in taints.iter().enumerate() {
            let v = s(t, "/value");
            let text =
                if v.is_empty() { format!("{}:{}", s(t, "/key"), s(t, "/effect")) } else { format!("{}={v}:{}", s(t, "/key"), s(t, "/effect")) };
            w.w(0, &format!("{}\t{text}\n", if i == 0 { "Taints:" } else { "" }));
        }
    }
    w.w(0, &format!("Unschedulable:\t{}\n", node.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false)));
    let lease_url = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}");
    match api::call(&ctx.client, Method::GET, &lease_url, "application/json", None).await {
        Ok(lease) => {
            let or_unset = |p: &str, time: bool| match s(&lease, p) {
                "" => "<unset>".to_string(),
                v if time => rfc1123z(v),
                v => v.to_string(),
            };
            w.w(0, "Lease:\n");
            w.w(1, &format!("HolderIdentity:\t{}\n", or_unset("/spec/holderIdentity", false)));
            w.w(1, &format!("AcquireTime:\t{}\n", or_unset("/spec/acquireTime", true)));
            w.w(1, &format!("RenewTime:\t{}\n", or_unset("/spec/renewTime", true)));
        }
        Err(e) => {
            let msg = e.downcast_ref::<api::ApiError>().map(|a| a.message.clone()).unwrap_or_else(|| e.to_string());
            w.w(0, &format!("Lease:\tFailed to get lease: {msg}\n"));
        }
    }
    let conds = arr(node, "/status/conditions");
    if !conds.is_empty() {
        w.w(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n");
        w.w(1, "----\t------\t-----------------\t------------------\t------\t-------\n");
        for c in conds {
            w.w(
                1,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}\n",
                    s(c, "/type"),
                    s(c, "/status"),
                    rfc1123z(s(c, "/lastHeartbeatTime")),
                    rfc1123z(s(c, "/lastTransitionTime")),
                    s(c, "/reason"),
                    s(c, "/message")
                ),
            );
        }
    }
    w.w(0, "Addresses:\n");
    for a in arr(node, "/status/addresses") {
        w.w(1, &format!("{}:\t{}\n", s(a, "/type"), s(a, "/address")));
    }
    for (field, title) in [("capacity", "Capacity"), ("allocatable", "Allocatable")] {
        if let Some(m) = node.pointer(&format!("/status/{field}")).and_then(Value::as_object).filter(|m| !m.is_empty()) {
            w.w(0, &format!("{title}:\n"));
            for (k, v) in m {
                w.w(0, &format!("  {k}:\t{}\n", v.as_str().unwrap_or("")));
            }
        }
    }
    w.w(0, "System Info:\n");
    for (field, title) in [
        ("machineID", "Machine ID"),
        ("systemUUID", "System UUID"),
        ("bootID", "Boot ID"),
        ("kernelVersion", "Kernel Version"),
        ("osImage", "OS Image"),
        ("operatingSystem", "Operating System"),
        ("architecture", "Architecture"),
        ("containerRuntimeVersion", "Container Runtime Version"),
        ("kubeletVersion", "Kubelet Version"),
        // kubectl 1.32 still prints the deprecated field.
        ("kubeProxyVersion", "Kube-Proxy Version"),
    ] {
        w.w(0, &format!("  {title}:\t{}\n", s(node, &format!("/status/nodeInfo/{field}"))));
    }
    if !s(node, "/spec/podCIDR").is_empty() {
        w.w(0, &format!("PodCIDR:\t{}\n", s(node, "/spec/podCIDR")));
    }
    let cidrs: Vec<&str> = arr(node, "/spec/podCIDRs").into_iter().filter_map(Value::as_str).collect();
    if !cidrs.is_empty() {
        w.w(0, &format!("PodCIDRs:\t{}\n", cidrs.join(",")));
    }
    if !s(node, "/spec/providerID").is_empty() {
        w.w(0, &format!("ProviderID:\t{}\n", s(node, "/spec/providerID")));
    }
    let sel = format!("spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed");
    let pods = api::call(&ctx.client, Method::GET, &format!("/api/v1/pods?fieldSelector={}&limit=500", enc(&sel)), "application/json", None).await?;
    let pods: Vec<Value> = pods.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    let alloc_field =
        if node.pointer("/status/allocatable").and_then(Value::as_object).is_some_and(|m| !m.is_empty()) { "allocatable" } else { "capacity" };
    let alloc = |r: &str| node.pointer(&format!("/status/{alloc_field}/{r}")).and_then(Value::as_str);
    w.w(0, &format!("Non-terminated Pods:\t({} in total)\n", pods.len()));
    w.w(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n");
    w.w(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n");
    let mut totals: std::collections::BTreeMap<(&str, &str), Vec<String>> = Default::default();
    for p in &pods {
        let mut cells = Vec::new();
        for (kind, res) in [("requests", "cpu"), ("limits", "cpu"), ("requests", "memory"), ("limits", "memory")] {
            let v = quantity_sum(&pod_resource(p, kind, res), res == "cpu");
            cells.push(format!("{v} ({}%)", percent(&v, alloc(res), res == "cpu")));
        }
        for (kind, res) in [
            ("requests", "cpu"),
            ("limits", "cpu"),
            ("requests", "memory"),
            ("limits", "memory"),
            ("requests", "ephemeral-storage"),
            ("limits", "ephemeral-storage"),
        ] {
            let v = pod_resource(p, kind, res);
            if !v.is_empty() {
                totals.entry((kind, res)).or_default().push(quantity_sum(&v, res == "cpu"));
            }
        }
        w.w(
            1,
            &format!(
                "{}\t{}\t\t{}\t{}\n",
                s(p, "/metadata/namespace"),
                s(p, "/metadata/name"),
                cells.join("\t"),
                human_since(s(p, "/metadata/creationTimestamp"))
            ),
        );
    }
    w.w(0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n");
    w.w(1, "Resource\tRequests\tLimits\n");
    w.w(1, "--------\t--------\t------\n");
    for res in ["cpu", "memory", "ephemeral-storage"] {
        let cpu = res == "cpu";
        let r = quantity_sum(totals.get(&("requests", res)).map(Vec::as_slice).unwrap_or_default(), cpu);
        let l = quantity_sum(totals.get(&("limits", res)).map(Vec::as_slice).unwrap_or_default(), cpu);
        w.w(1, &format!("{res}\t{r} ({}%)\t{l} ({}%)\n", percent(&r, alloc(res), cpu), percent(&l, alloc(res), cpu)));
    }
    Ok(finish(w, evs))
}

async fn object_events(ctx: &Ctx, obj: &Value) -> anyhow::Result<Vec<Value>> {
    let sel = format!(
        "involvedObject.name={},involvedObject.namespace={},involvedObject.kind={},involvedObject.uid={}",
        s(obj, "/metadata/name"),
        s(obj, "/metadata/namespace"),
        s(obj, "/kind"),
        s(obj, "/metadata/uid")
    );
    let url = match s(obj, "/metadata/namespace") {
        "" => format!("/api/v1/events?fieldSelector={}&limit=500", enc(&sel)),
        ns => format!("/api/v1/namespaces/{ns}/events?fieldSelector={}&limit=500", enc(&sel)),
    };
    let list = api::call(&ctx.client, Method::GET, &url, "application/json", None).await?;
    Ok(list.get("items").and_then(Value::as_array).cloned().unwrap_or_default())
}

pub async fn run(ctx: &Ctx, a: &DescribeArgs, out: &mut Out) -> anyhow::Result<()> {
    let resources = ctx.resources().await?;
    let reqs = super::get::requests(&resources, &a.args)?;
    let mut objects: Vec<(&Resource, Value)> = Vec::new();
    let mut errors = Vec::new();
    for req in &reqs {
        let r = req.resource;
        let ns = if r.namespaced { Some(ctx.namespace.as_str()) } else { None };
        if req.names.is_empty() {
            let url = super::get::list_url(r, ns, a.selector.as_deref(), None, None);
            let list = api::call(&ctx.client, Method::GET, &url, "application/json", None).await?;
            for mut item in list.get("items").and_then(Value::as_array).cloned().unwrap_or_default() {
                // A list's items carry neither: kubectl describes each as fetched on its own.
                item["kind"] = Value::String(r.kind.clone());
                item["apiVersion"] = Value::String(r.api_version());
                objects.push((r, item));
            }
        } else {
            for n in &req.names {
                match api::call(&ctx.client, Method::GET, &r.item(ns, n), "application/json", None).await {
                    Ok(v) => objects.push((r, v)),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    if objects.is_empty() && errors.is_empty() {
        let ns = &ctx.namespace;
        eprintln!("No resources found in {ns} namespace.");
    }
    for (i, (r, obj)) in objects.iter().enumerate() {
        if i > 0 {
            out.stdout("\n\n");
        }
        // kubectl's Namespace and Secret describers show no events.
        let quiet = r.group.is_empty() && (r.kind == "Namespace" || r.kind == "Secret");
        let mut evs = if a.show_events && !quiet { Some(object_events(ctx, obj).await?) } else { None };
        if let (Some(list), true) = (evs.as_mut(), r.group.is_empty() && r.kind == "Node") {
            // A node's events name it by UID (controllers) or by name (the kubelet): kubectl asks for both.
            let mut by_name = obj.clone();
            by_name["metadata"]["uid"] = Value::String(s(obj, "/metadata/name").to_string());
            list.extend(object_events(ctx, &by_name).await?);
        }
        let ns = s(obj, "/metadata/namespace");
        let text = match (r.group.as_str(), r.kind.as_str()) {
            ("", "Pod") => describe_pod(obj, evs.as_deref()),
            ("", "ConfigMap") => describe_configmap(obj, evs.as_deref()),
            ("", "Namespace") => describe_namespace(ctx, obj).await?,
            ("", "Secret") => describe_secret(obj),
            ("batch", "Job") => describe_job(obj, evs.as_deref()),
            ("apps", "Deployment") => {
                let url = format!("/apis/apps/v1/namespaces/{ns}/replicasets?labelSelector={}", enc(&selector_string(obj.pointer("/spec/selector"))));
                let list = api::call(&ctx.client, Method::GET, &url, "application/json", None).await?;
                describe_deployment(obj, list.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default(), evs.as_deref())
            }
            ("apps", "ReplicaSet") => {
                let url = format!("/api/v1/namespaces/{ns}/pods?labelSelector={}", enc(&selector_string(obj.pointer("/spec/selector"))));
                let list = api::call(&ctx.client, Method::GET, &url, "application/json", None).await?;
                describe_replicaset(obj, list.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default(), evs.as_deref())
            }
            ("", "Node") => describe_node(ctx, obj, evs.as_deref()).await?,
            _ => describe_generic(obj, evs.as_deref()),
        };
        out.stdout(&text);
    }
    super::finish(errors)
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_durations_as_apimachinery() {
        for (secs, want) in [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (9 * 3600, "9h"), (50 * 3600, "2d2h")] {
            assert_eq!(k1s_api::tables::human_duration(secs), want);
        }
    }
}
