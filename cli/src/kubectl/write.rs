//! The verbs that change objects (`create`, `apply`, `delete`, `label`, `annotate`) and `logs`, with kubectl's
//! requests (field managers, `fieldValidation=Strict`, Background propagation) and kubectl's result lines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use http::Method;
use serde_json::{json, Map, Value};

use super::api::{self, ApiError, Resource};
use super::{enc, finish, Ctx, Fail, Out};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One object of a manifest and where it came from (for kubectl's `error when creating "FILE"` lines).
struct Manifest {
    source: String,
    object: Value,
}

/// `-f` arguments: files, directories (their .json/.yaml/.yml files in name order, recursing with `-R`), `-`.
/// A path that does not exist fails the command before anything is sent. A document that does not parse ends its
/// file there, as kubectl's stream visitor does: the documents before it still count, later files are still read,
/// and the error comes back beside the objects (kubectl's `ContinueOnError` builder, reported after the rest).
fn read_manifests(files: &[String], recursive: bool) -> anyhow::Result<(Vec<Manifest>, Vec<anyhow::Error>)> {
    let mut paths: Vec<(String, String)> = Vec::new();
    for f in files {
        if f == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("reading standard input")?;
            paths.push(("STDIN".into(), text));
            continue;
        }
        let p = Path::new(f);
        if p.is_dir() {
            for file in dir_files(p, recursive)? {
                let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                paths.push((file.display().to_string(), text));
            }
        } else {
            let text = std::fs::read_to_string(p)
                .map_err(|_| Fail::msg(format!("error: the path \"{f}\" does not exist")))?;
            paths.push((f.clone(), text));
        }
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (source, text) in paths {
        let docs = match k1s_api::yaml::documents(&text) {
            Ok(docs) => docs,
            Err(e) => {
                // kubectl's wording around the parser's own message, which names the line.
                let msg = e.message.trim_start_matches("error: ");
                let msg = msg.split_once(": ").filter(|(head, _)| head.starts_with("line ")).map_or(msg, |(_, m)| m);
                let (line, msg) = go_yaml_error(&text, e.line, msg);
                let line = line.map(|l| format!("line {l}: ")).unwrap_or_default();
                errors.push(Fail::msg(format!("error: error parsing {source}: error converting YAML to JSON: yaml: {line}{msg}")));
                // The documents before the failing one were decoded (and acted on) before kubectl met it.
                let before = e.line.map(|l| document_start(&text, l)).unwrap_or(0);
                let head: String = text.lines().take(before.saturating_sub(1) as usize).map(|l| format!("{l}\n")).collect();
                k1s_api::yaml::documents(&head).unwrap_or_default()
            }
        };
        for d in docs {
            if !d.object.is_object() {
                errors.push(Fail::msg(format!("error: error parsing {source}: line {}: not an object", d.line)));
                break;
            }
            out.push(Manifest { source: source.clone(), object: d.object });
        }
    }
    Ok((out, errors))
}

/// The 0-based index of the `---` line that opens the document holding 1-based line `abs` (kubectl's YAMLReader
/// splits at `---` lines), plus one: the document's first line counts from there; 0 for the first document.
fn document_start(text: &str, abs: u64) -> u64 {
    text.lines().take(abs.saturating_sub(1) as usize).collect::<Vec<_>>().iter().rposition(|l| l.trim_end() == "---").map_or(0, |i| i as u64 + 1)
}

/// go-yaml v2's words and line for the commonest syntax mistakes, from our parser's (serde-saphyr's): kubectl
/// splits a file at `---` lines first, so its line counts from the document's start; go-yaml reports a parser
/// error on the line before the offending token (its 0-based mark) and a scanner error on the token's own line.
/// Messages we have not matched against kubectl keep our parser's words (with the document-relative line).
fn go_yaml_error(text: &str, line: Option<u64>, msg: &str) -> (Option<u64>, String) {
    let Some(abs) = line else { return (None, msg.to_string()) };
    let lines: Vec<&str> = text.lines().collect();
    let start = document_start(text, abs);
    let rel = abs - start;
    let (rel, msg) = if msg.starts_with("tabs disallowed within this context") {
        (rel, "found character that cannot start any token".to_string())
    } else if msg == "while parsing a block mapping, did not find expected key" {
        (rel.saturating_sub(1).max(1), "did not find expected key".to_string())
    } else if let Some(m) = msg.strip_prefix("while parsing a flow mapping, ").or_else(|| msg.strip_prefix("while parsing a flow sequence, ")) {
        (rel.saturating_sub(1).max(1), m.to_string())
    } else if let Some(close) = (msg == "illegal placement of ':' indicator").then(|| unclosed_flow(&lines[start as usize..abs as usize])).flatten() {
        // An unclosed `[` or `{`: go-yaml's parser stops at the next key, reported on the line before it.
        (rel.saturating_sub(1).max(1), format!("did not find expected ',' or '{close}'"))
    } else if msg == "simple key expected ':'" {
        (rel + 1, "could not find expected ':'".to_string())
    } else if msg == "unclosed quote" && !lines[abs as usize..].iter().any(|l| l.trim_end() == "---") {
        // The quote runs to the end of the stream: go-yaml's mark is past the last line break.
        let doc_end = text.matches('\n').count() as u64 + 1;
        (doc_end - start, "found unexpected end of stream".to_string())
    } else {
        (rel, msg.to_string())
    };
    (Some(rel), msg)
}

/// The closing bracket of the innermost flow collection these lines leave open (quotes not considered).
fn unclosed_flow(lines: &[&str]) -> Option<char> {
    let mut open = Vec::new();
    for c in lines.iter().flat_map(|l| l.chars()) {
        match c {
            '[' => open.push(']'),
            '{' => open.push('}'),
            ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

fn dir_files(dir: &Path, recursive: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let mut out = Vec::new();
    for e in entries {
        if e.is_dir() {
            if recursive {
                out.extend(dir_files(&e, true)?);
            }
        } else if e.extension().and_then(|x| x.to_str()).is_some_and(|x| matches!(x, "json" | "yaml" | "yml")) {
            out.push(e);
        }
    }
    Ok(out)
}

/// The served resource of a manifest object, by its apiVersion and kind.
fn resource_of<'a>(resources: &'a [Resource], obj: &Value) -> anyhow::Result<&'a Resource> {
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = av.rsplit_once('/').unwrap_or(("", av));
    resources
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
        .or_else(|| resources.iter().find(|r| r.group == group && r.kind == kind))
        .ok_or_else(|| {
            Fail::msg(format!(
                "error: resource mapping not found for name: \"{}\" namespace: \"{}\" from \"\": no matches for kind \"{kind}\" in version \"{av}\"\nensure CRDs are installed first",
                k1s_api::meta::name(obj),
                k1s_api::meta::namespace(obj)
            ))
        })
}

/// The namespace an object goes to: its own, else `-n`/the context's; none for cluster-scoped kinds.
fn namespace_for(ctx: &Ctx, r: &Resource, obj: &mut Value) -> Option<String> {
    if !r.namespaced {
        return None;
    }
    let ns = match k1s_api::meta::namespace(obj) {
        "" => ctx.namespace.clone(),
        ns => ns.to_string(),
    };
    // kubectl's builder sets the namespace on the object, so it is part of what apply records.
    k1s_api::meta::metadata_mut(obj).insert("namespace".into(), json!(ns));
    Some(ns)
}

/// kubectl prefixes a server error of `-f` with the operation and file.
fn with_file(e: anyhow::Error, op: &str, source: &str) -> anyhow::Error {
    match e.downcast::<ApiError>() {
        Ok(mut a) => {
            if a.reason != "Invalid" {
                a.message = format!("error when {op} \"{source}\": {}", a.message);
            }
            a.into()
        }
        Err(e) => e,
    }
}


#[derive(clap::Args, Debug, Clone)]
pub struct CreateArgs {
    /// Filename, directory, or URL to files to use to create the resource.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Process the directory used in -f, --filename recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    #[command(subcommand)]
    pub what: Option<CreateWhat>,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum CreateWhat {
    /// Create a namespace with the specified name.
    #[command(alias = "ns")]
    Namespace { name: String },
    /// Create a config map from a local file, directory or literal value.
    #[command(alias = "cm")]
    Configmap {
        name: String,
        #[arg(long)]
        from_literal: Vec<String>,
        #[arg(long)]
        from_file: Vec<String>,
    },
    /// Create a secret using a specified subcommand.
    Secret {
        #[command(subcommand)]
        kind: SecretKind,
    },
    /// Create a job with the specified name.
    Job {
        name: String,
        #[arg(long)]
        image: String,
        #[arg(last = true)]
        command: Vec<String>,
    },
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum SecretKind {
    /// Create a secret from a local file, directory, or literal value.
    Generic {
        name: String,
        #[arg(long)]
        from_literal: Vec<String>,
        #[arg(long)]
        from_file: Vec<String>,
        #[arg(long = "type")]
        type_: Option<String>,
    },
}

/// `--from-literal=k=v` and `--from-file=[key=]path` into a key → bytes map.
fn data_from(literals: &[String], files: &[String]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for l in literals {
        let (k, v) = l.split_once('=').ok_or_else(|| Fail::msg(format!("error: invalid literal source {l}, expected key=value")))?;
        out.push((k.to_string(), v.as_bytes().to_vec()));
    }
    for f in files {
        let (k, p) = match f.split_once('=') {
            Some((k, p)) => (k.to_string(), p.to_string()),
            None => (Path::new(f).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), f.clone()),
        };
        let bytes = std::fs::read(&p).map_err(|e| Fail::msg(format!("error: error reading {p}: {e}")))?;
        out.push((k, bytes));
    }
    Ok(out)
}

pub async fn create(ctx: &Ctx, a: &CreateArgs, out: &mut Out) -> anyhow::Result<()> {
    let ns = &ctx.namespace;
    let (path, body, shown) = match &a.what {
        None => return create_files(ctx, a, out).await,
        Some(CreateWhat::Namespace { name }) => (
            "/api/v1/namespaces".to_string(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": {}, "status": {}}),
            format!("namespace/{name}"),
        ),
        Some(CreateWhat::Configmap { name, from_literal, from_file }) => {
            let mut data = Map::new();
            for (k, v) in data_from(from_literal, from_file)? {
                data.insert(k, json!(String::from_utf8_lossy(&v)));
            }
            (
                format!("/api/v1/namespaces/{ns}/configmaps"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
                format!("configmap/{name}"),
            )
        }
        Some(CreateWhat::Secret { kind: SecretKind::Generic { name, from_literal, from_file, type_ } }) => {
            use base64::Engine as _;
            let mut data = Map::new();
            for (k, v) in data_from(from_literal, from_file)? {
                data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(v)));
            }
            let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data});
            if let Some(t) = type_ {
                s["type"] = json!(t);
            }
            (format!("/api/v1/namespaces/{ns}/secrets"), s, format!("secret/{name}"))
        }
        Some(CreateWhat::Job { name, image, command }) => {
            let mut c = json!({"name": name, "image": image, "resources": {}});
            if !command.is_empty() {
                c["command"] = json!(command);
            }
            (
                format!("/apis/batch/v1/namespaces/{ns}/jobs"),
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                    "spec": {"template": {"metadata": {}, "spec": {"containers": [c], "restartPolicy": "Never"}}}, "status": {}}),
                format!("job.batch/{name}"),
            )
        }
    };
    let url = format!("{path}?fieldManager=kubectl-create&fieldValidation=Strict");
    api::call(&ctx.client, Method::POST, &url, "application/json", Some(("application/json", serde_json::to_vec(&body)?))).await?;
    out.stdout(&format!("{shown} created\n"));
    Ok(())
}

async fn create_files(ctx: &Ctx, a: &CreateArgs, out: &mut Out) -> anyhow::Result<()> {
    if a.files.is_empty() {
        return Err(Fail::msg("error: must specify one of -f and -k"));
    }
    let (manifests, mut errors) = read_manifests(&a.files, a.recursive)?;
    let resources = ctx.resources().await?;
    for mut m in manifests {
        let r = match resource_of(&resources, &m.object) {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let ns = namespace_for(ctx, r, &mut m.object);
        let url = format!("{}?fieldManager=kubectl-create&fieldValidation=Strict", r.collection(ns.as_deref()));
        let body = serde_json::to_vec(&m.object)?;
        match api::call(&ctx.client, Method::POST, &url, "application/json", Some(("application/json", body))).await {
            Ok(_) => out.stdout(&format!("{}/{} created\n", r.kind_group(), k1s_api::meta::name(&m.object))),
            Err(e) => errors.push(with_file(e, "creating", &m.source)),
        }
    }
    finish(errors)
}

#[derive(clap::Args, Debug, Clone)]
pub struct ApplyArgs {
    /// The files that contain the configurations to apply.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Process the directory used in -f, --filename recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// If true, apply runs in the server instead of the client.
    #[arg(long)]
    pub server_side: bool,
    /// If true, server-side apply will force the changes against conflicts.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Name of the manager used to track field ownership (server-side apply).
    #[arg(long, default_value = "kubectl")]
    pub field_manager: String,
}

/// Go's `json.NewEncoder(w).Encode(v)`: compact, sorted keys, HTML-escaped, a trailing newline — the form of
/// kubectl's last-applied-configuration annotation.
fn go_encode(v: &Value) -> String {
    format!("{}\n", super::printers::json_compact(v))
}

pub async fn apply(ctx: &Ctx, a: &ApplyArgs, out: &mut Out) -> anyhow::Result<()> {
    let (manifests, mut errors) = read_manifests(&a.files, a.recursive)?;
    let resources = ctx.resources().await?;
    for mut m in manifests {
        let r = match resource_of(&resources, &m.object) {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let ns = namespace_for(ctx, r, &mut m.object);
        let name = k1s_api::meta::name(&m.object).to_string();
        let shown = format!("{}/{name}", r.kind_group());
        let item = r.item(ns.as_deref(), &name);
        if a.server_side {
            let url = format!(
                "{item}?fieldManager={}&fieldValidation=Strict&force={}",
                enc(&a.field_manager),
                a.force_conflicts
            );
            let body = serde_json::to_vec(&m.object)?;
            match api::call(&ctx.client, Method::PATCH, &url, "application/json", Some(("application/apply-patch+yaml", body))).await {
                Ok(_) => out.stdout(&format!("{shown} serverside-applied\n")),
                Err(e) => errors.push(with_file(e, "patching", &m.source)),
            }
            continue;
        }
        match client_side_apply(ctx, r, &item, ns.as_deref(), m.object).await {
            Ok(word) => out.stdout(&format!("{shown} {word}\n")),
            Err(e) => errors.push(with_file(e, "applying", &m.source)),
        }
    }
    finish(errors)
}

/// kubectl's client-side apply: create with the annotation when absent, else a three-way patch between the
/// last applied configuration, the new one and the live object (`unchanged` when it comes out empty).
async fn client_side_apply(ctx: &Ctx, r: &Resource, item: &str, ns: Option<&str>, mut obj: Value) -> anyhow::Result<&'static str> {
    // GetModifiedConfiguration: the object without the annotation (annotations left as `{}`) is the annotation.
    let meta = k1s_api::meta::metadata_mut(&mut obj);
    let annots = meta.entry("annotations").or_insert_with(|| json!({}));
    if let Some(m) = annots.as_object_mut() {
        m.remove(LAST_APPLIED);
    }
    let applied = go_encode(&obj);
    k1s_api::meta::metadata_mut(&mut obj)["annotations"][LAST_APPLIED] = json!(applied);
    let live = match api::call(&ctx.client, Method::GET, item, "application/json", None).await {
        Ok(v) => Some(v),
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(|a| a.code == 404) => None,
        Err(e) => return Err(e),
    };
    let Some(live) = live else {
        let url = format!("{}?fieldManager=kubectl-client-side-apply&fieldValidation=Strict", r.collection(ns));
        api::call(&ctx.client, Method::POST, &url, "application/json", Some(("application/json", serde_json::to_vec(&obj)?))).await?;
        return Ok("created");
    };
    let original = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    let meta = k1s_api::smp::meta_for(&r.group, &r.kind);
    let patch = three_way(original.as_ref(), &obj, &live, meta, &mut Vec::new());
    if patch.is_empty() {
        return Ok("unchanged");
    }
    // Kinds without patch metadata (custom resources) get a JSON merge patch, as kubectl sends them.
    let ct = if known_smp(&r.group, &r.kind) { "application/strategic-merge-patch+json" } else { "application/merge-patch+json" };
    let url = format!("{item}?fieldManager=kubectl-client-side-apply&fieldValidation=Strict");
    api::call(&ctx.client, Method::PATCH, &url, "application/json", Some((ct, serde_json::to_vec(&Value::Object(patch))?))).await?;
    Ok("configured")
}

pub fn known_smp(group: &str, _kind: &str) -> bool {
    matches!(group, "" | "apps" | "batch" | "events.k8s.io" | "coordination.k8s.io" | "policy" | "rbac.authorization.k8s.io" | "networking.k8s.io")
}

/// `CreateThreeWayMergePatch` for maps: fields dropped since the last apply become `null`, fields whose new
/// value differs from the live one are set; lists with a merge key are patched element-wise with
/// `$setElementOrder` and `$patch: delete`, other lists are replaced whole.
pub fn three_way(
    original: Option<&Value>,
    modified: &Value,
    current: &Value,
    meta: &dyn k1s_api::smp::PatchMeta,
    path: &mut Vec<String>,
) -> Map<String, Value> {
    use k1s_api::smp::ListStrategy;
    let mut patch = Map::new();
    let empty = Map::new();
    let o = original.and_then(Value::as_object).unwrap_or(&empty);
    let m = modified.as_object().unwrap_or(&empty);
    let c = current.as_object().unwrap_or(&empty);
    for k in o.keys() {
        if !m.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    for (k, mv) in m {
        let cv = c.get(k);
        let ov = o.get(k);
        path.push(k.clone());
        match (mv, cv) {
            (_, None) => {
                patch.insert(k.clone(), mv.clone());
            }
            (Value::Object(_), Some(cv @ Value::Object(_))) => {
                let sub = three_way(ov, mv, cv, meta, path);
                if !sub.is_empty() {
                    patch.insert(k.clone(), Value::Object(sub));
                }
            }
            (Value::Array(ml), Some(Value::Array(cl))) => {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                match meta.list_strategy(&refs) {
                    ListStrategy::Merge { key } => {
                        let ol = ov.and_then(Value::as_array).cloned().unwrap_or_default();
                        let find = |l: &[Value], id: &Value| l.iter().find(|e| e.get(key) == Some(id)).cloned();
                        let mut items = Vec::new();
                        for me in ml {
                            let id = me.get(key).cloned().unwrap_or(Value::Null);
                            match find(cl, &id) {
                                None => items.push(me.clone()),
                                Some(ce) => {
                                    let oe = find(&ol, &id);
                                    let mut sub = three_way(oe.as_ref(), me, &ce, meta, path);
                                    if !sub.is_empty() {
                                        sub.insert(key.to_string(), id);
                                        items.push(Value::Object(sub));
                                    }
                                }
                            }
                        }
                        for oe in &ol {
                            let id = oe.get(key).cloned().unwrap_or(Value::Null);
                            if find(ml, &id).is_none() {
                                items.push(json!({"$patch": "delete", key: id}));
                            }
                        }
                        if !items.is_empty() {
                            let order: Vec<Value> = ml.iter().map(|e| json!({key: e.get(key).cloned().unwrap_or(Value::Null)})).collect();
                            patch.insert(format!("$setElementOrder/{k}"), Value::Array(order));
                            patch.insert(k.clone(), Value::Array(items));
                        }
                    }
                    _ => {
                        if ml != cl {
                            patch.insert(k.clone(), mv.clone());
                        }
                    }
                }
            }
            (_, Some(cv)) => {
                if mv != cv {
                    patch.insert(k.clone(), mv.clone());
                }
            }
        }
        path.pop();
    }
    patch
}

#[derive(clap::Args, Debug, Clone)]
pub struct DeleteArgs {
    /// TYPE NAME…, TYPE/NAME…
    pub args: Vec<String>,
    /// Containing the resource to delete.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete all resources, in the namespace of the specified resource types.
    #[arg(long)]
    pub all: bool,
    /// If present, list the requested object(s) across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Period of time in seconds given to the resource to terminate gracefully (-1: the object's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Immediately remove resources from the API, bypassing graceful deletion.
    #[arg(long)]
    pub force: bool,
    /// If true, resources are signaled for immediate shutdown (same as --grace-period=1).
    #[arg(long)]
    pub now: bool,
    /// If true, wait for resources to be gone before returning.
    #[arg(long, num_args = 0..=1, default_value = "true", default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    /// Treat "resource not found" as a successful delete.
    #[arg(long)]
    pub ignore_not_found: bool,
}

pub async fn delete(ctx: &Ctx, a: &DeleteArgs, out: &mut Out) -> anyhow::Result<()> {
    let resources = ctx.resources().await?;
    // (resource, namespace, name) in kubectl's order.
    let mut targets: Vec<(&Resource, Option<String>, String)> = Vec::new();
    let ns_of = |r: &Resource| if r.namespaced { Some(ctx.namespace.clone()) } else { None };
    let mut errors = Vec::new();
    if !a.files.is_empty() {
        let (manifests, unread) = read_manifests(&a.files, a.recursive)?;
        errors = unread;
        for mut m in manifests {
            let r = resource_of(&resources, &m.object)?;
            let ns = namespace_for(ctx, r, &mut m.object);
            targets.push((r, ns, k1s_api::meta::name(&m.object).to_string()));
        }
    } else {
        let reqs = super::get::requests(&resources, &a.args)?;
        for req in &reqs {
            let r = req.resource;
            if req.names.is_empty() {
                if a.selector.is_none() && !a.all {
                    return Err(Fail::msg("error: resource(s) were provided, but no name was specified"));
                }
                let ns = if a.all_namespaces { None } else { ns_of(r) };
                let url = super::get::list_url(r, ns.as_deref(), a.selector.as_deref(), None, None);
                let list = api::call(&ctx.client, Method::GET, &url, "application/json", None).await?;
                for item in list.get("items").and_then(Value::as_array).into_iter().flatten() {
                    let ns = Some(k1s_api::meta::namespace(item).to_string()).filter(|n| !n.is_empty());
                    targets.push((r, ns, k1s_api::meta::name(item).to_string()));
                }
            } else {
                for n in &req.names {
                    targets.push((r, ns_of(r), n.clone()));
                }
            }
        }
        if targets.is_empty() {
            eprintln!("No resources found");
            return Ok(());
        }
    }
    // kubectl: --now is a 1 s grace; --force with no grace is 0; a grace of 0 without --force means 1.
    let mut grace = a.grace_period;
    if a.now {
        grace = 1;
    }
    if a.force && grace < 0 {
        grace = 0;
    }
    if grace == 0 && !a.force {
        grace = 1;
    }
    if a.force && grace == 0 {
        eprintln!("Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.");
    }
    let mut body = json!({"propagationPolicy": "Background"});
    if grace >= 0 {
        body["gracePeriodSeconds"] = json!(grace);
    }
    let body = serde_json::to_vec(&body)?;
    let mut deleted = Vec::new();
    for (r, ns, name) in &targets {
        let item = r.item(ns.as_deref(), name);
        match api::call(&ctx.client, Method::DELETE, &item, "application/json", Some(("application/json", body.clone()))).await {
            Ok(_) => {
                let word = if a.force && grace == 0 { "force deleted" } else { "deleted" };
                out.stdout(&format!("{} \"{name}\" {word}\n", r.kind_group()));
                deleted.push(item);
            }
            Err(e) if a.ignore_not_found && e.downcast_ref::<ApiError>().is_some_and(|x| x.code == 404) => {}
            Err(e) => errors.push(e),
        }
    }
    if a.wait {
        // kubectl waits (for a week by default) until each object is really gone.
        for item in deleted {
            loop {
                match api::call(&ctx.client, Method::GET, &item, "application/json", None).await {
                    Err(e) if e.downcast_ref::<ApiError>().is_some_and(|x| x.code == 404) => break,
                    Err(e) => return Err(e),
                    Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }
    finish(errors)
}

#[derive(clap::Args, Debug, Clone)]
pub struct MetaArgs {
    /// TYPE NAME… KEY=VAL… KEY-…, or TYPE/NAME… KEY=VAL…
    pub args: Vec<String>,
    /// If true, allow existing keys to be overwritten.
    #[arg(long)]
    pub overwrite: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Select all resources, in the namespace of the specified resource types.
    #[arg(long)]
    pub all: bool,
}

/// `label` / `annotate` (`field` = `labels` / `annotations`): a JSON merge patch of the changed keys.
pub async fn meta(ctx: &Ctx, a: &MetaArgs, field: &str, out: &mut Out) -> anyhow::Result<()> {
    let (verb, noun) = if field == "labels" { ("labeled", "label") } else { ("annotated", "annotation") };
    let split = a.args.iter().position(|x| x.contains('=') || (x.ends_with('-') && x.len() > 1)).unwrap_or(a.args.len());
    let (objs, changes) = a.args.split_at(split);
    if changes.is_empty() {
        return Err(Fail::msg(format!("error: at least one {noun} update is required")));
    }
    let resources = ctx.resources().await?;
    let reqs = super::get::requests(&resources, objs)?;
    let targets = super::get::targets(ctx, &reqs, a.selector.as_deref()).await?;
    for (r, name) in targets {
        let item = r.item(if r.namespaced { Some(ctx.namespace.as_str()) } else { None }, &name);
        let obj = api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
        let current = obj.pointer(&format!("/metadata/{field}")).and_then(Value::as_object).cloned().unwrap_or_default();
        let mut patch = Map::new();
        for ch in changes {
            if let Some((k, v)) = ch.split_once('=') {
                match current.get(k).and_then(Value::as_str) {
                    Some(old) if old == v => {}
                    Some(old) if !a.overwrite => {
                        return Err(Fail::msg(format!("error: '{k}' already has a value ({old}), and --overwrite is false")));
                    }
                    _ => {
                        patch.insert(k.to_string(), json!(v));
                    }
                }
            } else {
                let k = ch.trim_end_matches('-');
                if current.contains_key(k) {
                    patch.insert(k.to_string(), Value::Null);
                }
            }
        }
        let shown = format!("{}/{}", r.kind_group(), k1s_api::meta::name(&obj));
        if patch.is_empty() {
            out.stdout(&format!("{shown} not {verb}\n"));
            continue;
        }
        let body = json!({"metadata": {field: patch}});
        let manager = if field == "labels" { "kubectl-label" } else { "kubectl-annotate" };
        let url = format!("{item}?fieldManager={manager}");
        api::call(&ctx.client, Method::PATCH, &url, "application/json", Some(("application/merge-patch+json", serde_json::to_vec(&body)?)))
            .await?;
        // kubectl says `unlabeled` when a label command only removed labels.
        let only_removals = field == "labels" && patch.values().all(Value::is_null);
        out.stdout(&format!("{shown} {}\n", if only_removals { "unlabeled" } else { verb }));
    }
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct PatchArgs {
    /// TYPE NAME or TYPE/NAME.
    pub args: Vec<String>,
    /// The patch to be applied to the resource JSON file.
    #[arg(short = 'p', long)]
    pub patch: String,
    /// The type of patch being provided; one of [json merge strategic].
    #[arg(long = "type", default_value = "strategic")]
    pub type_: String,
}

/// `patch`: the user's patch as given (`?fieldManager=kubectl-patch`); `patched (no change)` when the object
/// came back with the same resourceVersion.
pub async fn patch(ctx: &Ctx, a: &PatchArgs, out: &mut Out) -> anyhow::Result<()> {
    let ct = match a.type_.as_str() {
        "strategic" => "application/strategic-merge-patch+json",
        "merge" => "application/merge-patch+json",
        "json" => "application/json-patch+json",
        t => return Err(Fail::msg(format!("error: --type must be one of [json merge strategic], not \"{t}\""))),
    };
    // kubectl reads the patch as YAML (JSON is YAML).
    let body: Value = match serde_json::from_str(&a.patch) {
        Ok(v) => v,
        Err(_) => k1s_api::yaml::documents(&a.patch)
            .ok()
            .and_then(|d| d.into_iter().next())
            .map(|d| d.object)
            .ok_or_else(|| Fail::msg(format!("error: unable to parse \"{}\": yaml: did not find expected node content", a.patch)))?,
    };
    let resources = ctx.resources().await?;
    let reqs = super::get::requests(&resources, &a.args)?;
    for req in &reqs {
        let r = req.resource;
        let ns = if r.namespaced { Some(ctx.namespace.as_str()) } else { None };
        for n in &req.names {
            let item = r.item(ns, n);
            let before = api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
            let url = format!("{item}?fieldManager=kubectl-patch");
            let after = api::call(&ctx.client, Method::PATCH, &url, "application/json", Some((ct, serde_json::to_vec(&body)?))).await?;
            let rv = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
            let note = if rv(&before) == rv(&after) { " (no change)" } else { "" };
            out.stdout(&format!("{}/{n} patched{note}\n", r.kind_group()));
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct LogsArgs {
    /// POD or TYPE/NAME, then optionally the container.
    pub args: Vec<String>,
    /// Print the logs of this container.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Specify if the logs should be streamed.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines of recent log file to display (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Print the logs for the previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Include timestamps on each line in the log output.
    #[arg(long)]
    pub timestamps: bool,
    /// Selector (label query): the logs of every Pod it selects (10 lines each unless --tail says otherwise).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Prefix each log line with the log source (`[pod/NAME/CONTAINER]`).
    #[arg(long)]
    pub prefix: bool,
    /// Maximum number of concurrent logs to follow when using a selector.
    #[arg(long, default_value_t = 5)]
    pub max_log_requests: usize,
}

/// `logs job/x`: the Pod kubectl's `AttachablePodForObject` picks among the controller's: the most active by
/// `podutils.ActivePods` reversed (assigned, running, ready, ready longest, fewest restarts, oldest); `logs`
/// announces it when there were several (`attach` does not).
pub(super) async fn first_pod(ctx: &Ctx, owner: &Value, announce: bool) -> anyhow::Result<Value> {
    let labels = owner.pointer("/spec/selector/matchLabels").or_else(|| owner.pointer("/spec/selector")).and_then(Value::as_object);
    let selector: Vec<String> = labels.into_iter().flatten().filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}"))).collect();
    let url = format!("/api/v1/namespaces/{}/pods?labelSelector={}", ctx.namespace, enc(&selector.join(",")));
    let list = api::call(&ctx.client, Method::GET, &url, "application/json", None).await?;
    let mut pods = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    pods.sort_by_key(|p| std::cmp::Reverse(active_rank(p)));
    let pod = pods.first().cloned().ok_or_else(|| Fail::msg(format!("error: no pods found for {}", k1s_api::meta::name(owner))))?;
    if announce && pods.len() > 1 {
        eprintln!("Found {} pods, using pod/{}", pods.len(), k1s_api::meta::name(&pod));
    }
    Ok(pod)
}

/// `podutils.ActivePods`' order as a key (a greater key is the more active Pod): assigned, phase (Pending <
/// Unknown < Running), ready, ready for longer (an earlier `Ready` transition), fewer restarts, created earlier.
fn active_rank(p: &Value) -> (bool, u8, bool, std::cmp::Reverse<String>, std::cmp::Reverse<i64>, std::cmp::Reverse<String>) {
    let assigned = p.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let phase = match p.pointer("/status/phase").and_then(Value::as_str) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    let ready = p.pointer("/status/conditions").and_then(Value::as_array).and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let is_ready = ready.is_some_and(|c| c["status"] == "True");
    let since = ready.filter(|_| is_ready).and_then(|c| c["lastTransitionTime"].as_str()).unwrap_or("~").to_string();
    let restarts = p.pointer("/status/containerStatuses").and_then(Value::as_array).into_iter().flatten().filter_map(|c| c["restartCount"].as_i64()).max().unwrap_or(0);
    let created = p.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("~").to_string();
    (assigned, phase, is_ready, std::cmp::Reverse(since), std::cmp::Reverse(restarts), std::cmp::Reverse(created))
}

pub async fn logs(ctx: &Ctx, a: &LogsArgs, out: &mut Out) -> anyhow::Result<()> {
    let ns = &ctx.namespace;
    if a.selector.is_some() && !a.args.is_empty() {
        return Err(Fail::msg("error: only a selector (-l) or a POD name is allowed\nSee 'kubectl logs -h' for help and examples"));
    }
    let mut tail = a.tail;
    let pods = match &a.selector {
        Some(sel) => {
            let url = format!("/api/v1/namespaces/{ns}/pods?labelSelector={}", enc(sel));
            let list = api::call(&ctx.client, Method::GET, &url, "application/json", None).await?;
            let pods = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            if pods.is_empty() {
                eprintln!("No resources found in {ns} namespace.");
                return Ok(());
            }
            // kubectl's --tail default: everything for one Pod, 10 lines each for a selector.
            if tail == -1 {
                tail = 10;
            }
            pods
        }
        None => vec![logs_target(ctx, a).await?],
    };
    // (pod, container) for each stream, every container checked first, as kubectl's LogsForObject does.
    let mut streams = Vec::new();
    for pod in &pods {
        let name = k1s_api::meta::name(pod).to_string();
        let container = match a.container.clone().or_else(|| a.args.get(1).cloned()) {
            Some(c) => c,
            None => super::exec::default_container(pod, false),
        };
        let known = ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .flat_map(|k| pod["spec"].get(*k).and_then(Value::as_array).into_iter().flatten())
            .any(|c| c["name"] == container.as_str());
        if !known {
            return Err(Fail::msg(format!("error: container {container} is not valid for pod {name}")));
        }
        streams.push((name, container));
    }
    if a.follow && streams.len() > a.max_log_requests {
        return Err(Fail::msg(format!(
            "error: you are attempting to follow {} log streams, but maximum allowed concurrency is {}, use --max-log-requests to increase the limit",
            streams.len(),
            a.max_log_requests
        )));
    }
    if a.follow && streams.len() > 1 {
        // Followed streams run at once, their lines interleaved as they come (kubectl's parallel consumer).
        let all = streams.iter().map(|(pod, c)| async move { stream_log(ctx, a, tail, pod, c, &mut Out).await });
        return super::finish(futures::future::join_all(all).await.into_iter().filter_map(Result::err).collect());
    }
    for (pod, c) in &streams {
        stream_log(ctx, a, tail, pod, c, out).await?;
    }
    Ok(())
}

/// `logs POD` or `logs TYPE/NAME`: the Pod itself, or the one a controller's selector picks.
async fn logs_target(ctx: &Ctx, a: &LogsArgs) -> anyhow::Result<Value> {
    let Some(first) = a.args.first() else {
        return Err(Fail::msg("error: expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'.\nPOD or TYPE/NAME is a required argument for the logs command\nSee 'kubectl logs -h' for help and examples"));
    };
    let ns = &ctx.namespace;
    // kubectl reads the object through its resource builder, whose NotFound names the namespace.
    let get = |url: String| async move {
        api::call(&ctx.client, Method::GET, &url, "application/json", None).await.map_err(|e| match e.downcast_ref::<ApiError>() {
            Some(a) if a.code == 404 => Fail::msg(format!("error: error from server (NotFound): {} in namespace \"{ns}\"", a.message)),
            _ => e,
        })
    };
    Ok(match first.split_once('/') {
        None => get(format!("/api/v1/namespaces/{ns}/pods/{first}")).await?,
        Some((t, name)) => {
            let resources = ctx.resources().await?;
            let r = api::resolve(&resources, t).ok_or_else(|| Fail::msg(format!("error: the server doesn't have a resource type \"{t}\"")))?;
            let obj = get(r.item(Some(ns), name)).await?;
            if r.kind == "Pod" && r.group.is_empty() {
                obj
            } else {
                first_pod(ctx, &obj, true).await?
            }
        }
    })
}

/// One container's log, line by line to standard output (prefixed with `[pod/NAME/CONTAINER]` under `--prefix`).
async fn stream_log(ctx: &Ctx, a: &LogsArgs, tail: i64, pod: &str, container: &str, out: &mut Out) -> anyhow::Result<()> {
    let item = format!("/api/v1/namespaces/{}/pods/{pod}", ctx.namespace);
    let mut q = vec![format!("container={}", enc(container))];
    if a.follow {
        q.push("follow=true".into());
    }
    if a.previous {
        q.push("previous=true".into());
    }
    if tail >= 0 {
        q.push(format!("tailLines={tail}"));
    }
    if a.timestamps {
        q.push("timestamps=true".into());
    }
    let prefix = if a.prefix { format!("[pod/{pod}/{container}] ") } else { String::new() };
    let url = super::api::with_timeout_param(&format!("{item}/log?{}", q.join("&")));
    let req = http::Request::builder().method(Method::GET).uri(&url).body(Vec::new())?;
    // `--request-timeout` bounds the whole stream, as Go's client timeout does (`logs -f` too).
    let deadline = super::api::deadline();
    let until_deadline = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => futures::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    let opened = tokio::select! {
        s = ctx.client.request_stream(req) => s,
        _ = &mut until_deadline => return Err(super::api::deadline_exceeded()),
    };
    let mut stream = match opened {
        Ok(s) => s,
        Err(kube::Error::Api(s)) => {
            return Err(ApiError { code: s.code, reason: s.reason.clone(), message: s.message.clone(), status: Value::Null }.into())
        }
        Err(e) => return Err(e.into()),
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::select! {
            n = futures::AsyncBufReadExt::read_until(&mut stream, b'\n', &mut line) => n?,
            _ = &mut until_deadline => anyhow::bail!("context deadline exceeded"),
        };
        if n == 0 {
            break;
        }
        out.stdout(&format!("{prefix}{}", String::from_utf8_lossy(&line)));
    }
    Ok(())
}
