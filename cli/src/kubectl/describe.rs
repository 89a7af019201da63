//! `describe` for Pods, ConfigMaps and Namespaces: kubectl's describers (k8s.io/kubectl/pkg/describe) line by line
//! into one Go tabwriter (minwidth 0, padding 2), the object's Events last with their ages.
//!
//! TODO: the other kinds (kubectl's generic describer), probes, env valueFrom, volume types beyond emptyDir,
//! configMap, secret and hostPath, and times in the client's local zone (printed in UTC here).

use http::Method;
use serde_json::Value;

use super::api::{self, Resource};
use super::{enc, Ctx, Fail, Out};

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

fn containers(w: &mut W, label: &str, specs: &[Value], statuses: &[Value]) {
    w.w(0, &format!("{label}:\n"));
    for c in specs {
        let name = s(c, "/name");
        let st = statuses.iter().find(|x| s(x, "/name") == name);
        w.w(1, &format!("{name}:\n"));
        if let Some(st) = st {
            w.w(2, &format!("Container ID:\t{}\n", s(st, "/containerID")));
        }
        w.w(2, &format!("Image:\t{}\n", s(c, "/image")));
        if let Some(st) = st {
            w.w(2, &format!("Image ID:\t{}\n", s(st, "/imageID")));
        }
        let ports: Vec<&Value> = c.get("ports").and_then(Value::as_array).into_iter().flatten().collect();
        let port = |p: &Value, field: &str| format!("{}/{}", p.get(field).and_then(Value::as_i64).unwrap_or(0), p.get("protocol").and_then(Value::as_str).unwrap_or("TCP"));
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

fn volumes(w: &mut W, vols: &[Value]) {
    if vols.is_empty() {
        w.w(0, "Volumes:\t<none>\n");
        return;
    }
    w.w(0, "Volumes:\n");
    for v in vols {
        w.w(1, &format!("{}:\n", s(v, "/name")));
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

fn tolerations(w: &mut W, tols: &[Value]) {
    w.w(0, "Tolerations:\t");
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
        containers(&mut w, "Init Containers", &arr("/spec/initContainers"), &arr("/status/initContainerStatuses"));
    }
    containers(&mut w, "Containers", &arr("/spec/containers"), &arr("/status/containerStatuses"));
    let conds = arr("/status/conditions");
    if !conds.is_empty() {
        w.w(0, "Conditions:\n  Type\tStatus\n");
        for c in conds {
            w.w(1, &format!("{} \t{} \n", s(&c, "/type"), s(&c, "/status")));
        }
    }
    volumes(&mut w, &arr("/spec/volumes"));
    w.w(0, &format!("QoS Class:\t{}\n", qos(pod)));
    labels_multiline(&mut w, "Node-Selectors", pod.pointer("/spec/nodeSelector"));
    tolerations(&mut w, &arr("/spec/tolerations"));
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
            let url = super::get::list_url(r, ns, a.selector.as_deref(), None, false);
            let list = api::call(&ctx.client, Method::GET, &url, "application/json", None).await?;
            for mut item in list.get("items").and_then(Value::as_array).cloned().unwrap_or_default() {
                item["kind"] = Value::String(r.kind.clone());
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
        // kubectl's namespace describer shows no events.
        let evs = if a.show_events && r.kind != "Namespace" { Some(object_events(ctx, obj).await?) } else { None };
        let text = match (r.group.as_str(), r.kind.as_str()) {
            ("", "Pod") => describe_pod(obj, evs.as_deref()),
            ("", "ConfigMap") => describe_configmap(obj, evs.as_deref()),
            ("", "Namespace") => describe_namespace(ctx, obj).await?,
            (_, kind) => return Err(Fail::msg(format!("error: k1s describe does not describe {kind} yet (TODO)"))),
        };
        out.stdout(&text);
    }
    super::finish(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_as_apimachinery() {
        for (secs, want) in [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (9 * 3600, "9h"), (50 * 3600, "2d2h")] {
            assert_eq!(k1s_api::tables::human_duration(secs), want);
        }
    }
}
