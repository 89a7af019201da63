//! `get`: the server's Table printed as kubectl's table printer does (`-o wide`, `-A`, `--show-labels`, several
//! kinds at once), or the objects as `-o name|json|yaml|jsonpath=…`.

use http::Method;
use serde_json::{json, Value};

use super::api::{self, Resource};
use super::{enc, finish, Ctx, Out};

#[derive(clap::Args, Debug, Clone)]
pub struct GetArgs {
    /// TYPE[,TYPE…] [NAME…] or TYPE/NAME…
    pub args: Vec<String>,
    /// Output format: wide, name, json, yaml, jsonpath=…
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Selector (field query) to filter on.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// List the requested object(s) across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// When printing, show all labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Labels to show as columns (`-L app,tier`).
    #[arg(short = 'L', long = "label-columns")]
    pub label_columns: Vec<String>,
    /// After listing/getting the requested object, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// If true, keep the managedFields when printing objects in JSON or YAML format.
    #[arg(long)]
    pub show_managed_fields: bool,
    /// Sort list types using this field specification (a JSONPath expression, `.metadata.name` or `{.metadata.name}`).
    #[arg(long)]
    pub sort_by: Option<String>,
}

/// `--sort-by` as kubectl's `RuntimeSort`/`TableSorter`: numbers by value, everything else by its text
/// (byte order: kubectl 1.33 puts `s-10` before `s-9`); a stable sort.
fn sort_by<T>(items: &mut [T], field: &str, obj: impl Fn(&T) -> &Value) -> anyhow::Result<()> {
    let template = if field.starts_with('{') { field.to_string() } else { format!("{{{field}}}") };
    let key = |v: &Value| super::printers::jsonpath_values(&template, v).unwrap_or_default().into_iter().next().unwrap_or(Value::Null);
    items.sort_by(|a, b| {
        let (ka, kb) = (key(obj(a)), key(obj(b)));
        match (ka.as_f64(), kb.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
            _ => {
                let text = |v: &Value| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                text(&ka).cmp(&text(&kb))
            }
        }
    });
    Ok(())
}


/// What the user asked for: a resource and either its names or the whole (selected) collection.
pub struct Request<'a> {
    pub resource: &'a Resource,
    pub names: Vec<String>,
}

/// `TYPE[,TYPE] NAME…` or `TYPE/NAME…` to requests, in the order typed; an unknown type is kubectl's error.
pub fn requests<'a>(resources: &'a [Resource], args: &[String]) -> anyhow::Result<Vec<Request<'a>>> {
    let lookup = |t: &str| {
        api::resolve(resources, t).ok_or_else(|| super::Fail::msg(format!("error: the server doesn't have a resource type \"{t}\"")))
    };
    let mut out: Vec<Request<'a>> = Vec::new();
    if args.first().is_some_and(|a| a.contains('/')) {
        for a in args {
            let (t, n) = a
                .split_once('/')
                .ok_or_else(|| super::Fail::msg("error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of 'kubectl get resource resource/<resource_name>'"))?;
            let r = lookup(t)?;
            match out.last_mut() {
                Some(last) if std::ptr::eq(last.resource, r) => last.names.push(n.to_string()),
                _ => out.push(Request { resource: r, names: vec![n.to_string()] }),
            }
        }
        return Ok(out);
    }
    let Some(types) = args.first() else {
        return Err(super::Fail::msg("You must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.\n\nerror: Required resource not specified.\nUse \"kubectl explain <resource>\" for a detailed description of that resource (e.g. kubectl explain pods).\nSee 'kubectl get -h' for help and examples"));
    };
    for t in types.split(',').filter(|t| !t.is_empty()) {
        out.push(Request { resource: lookup(t)?, names: args[1..].to_vec() });
    }
    Ok(out)
}

/// Each named object, else each object of the (selected) collection in the current namespace: (resource, name).
pub async fn targets<'a>(ctx: &Ctx, reqs: &[Request<'a>], selector: Option<&str>) -> anyhow::Result<Vec<(&'a Resource, String)>> {
    let mut out = Vec::new();
    for req in reqs {
        let r = req.resource;
        if !req.names.is_empty() {
            out.extend(req.names.iter().map(|n| (r, n.clone())));
            continue;
        }
        let ns = if r.namespaced { Some(ctx.namespace.as_str()) } else { None };
        let list = api::call(&ctx.client, Method::GET, &list_url(r, ns, selector, None, false), "application/json", None).await?;
        for item in list.get("items").and_then(Value::as_array).into_iter().flatten() {
            out.push((r, k1s_api::meta::name(item).to_string()));
        }
    }
    Ok(out)
}

/// The collection URL with kubectl's query.
pub fn list_url(r: &Resource, ns: Option<&str>, label: Option<&str>, field: Option<&str>, limit: bool) -> String {
    let mut q = Vec::new();
    if let Some(f) = field {
        q.push(format!("fieldSelector={}", enc(f)));
    }
    if let Some(l) = label {
        q.push(format!("labelSelector={}", enc(l)));
    }
    if limit {
        q.push("limit=500".into());
    }
    let base = r.collection(ns);
    if q.is_empty() {
        base
    } else {
        format!("{base}?{}", q.join("&"))
    }
}

pub async fn run(ctx: &Ctx, a: &GetArgs, out: &mut Out) -> anyhow::Result<()> {
    let resources = ctx.resources().await?;
    let reqs = requests(&resources, &a.args)?;
    let ns = if a.all_namespaces { None } else { Some(ctx.namespace.as_str()) };
    let output = a.output.as_deref().unwrap_or("");
    let wide = output == "wide";
    if output.is_empty() || wide {
        return tables(ctx, a, &reqs, ns, wide, out).await;
    }
    // Objects: kubectl prints a single object when exactly one was named, else a List.
    let single = reqs.len() == 1 && reqs[0].names.len() == 1;
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for req in &reqs {
        let r = req.resource;
        if req.names.is_empty() {
            let url = list_url(r, ns, a.selector.as_deref(), a.field_selector.as_deref(), true);
            let list = api::call(&ctx.client, Method::GET, &url, "application/json", None).await?;
            for mut item in list.get("items").and_then(Value::as_array).cloned().unwrap_or_default() {
                // Items of a list carry no kind of their own; kubectl's decoder sets them from the list.
                item["apiVersion"] = json!(r.api_version());
                item["kind"] = json!(r.kind);
                items.push((r, item));
            }
        } else {
            for n in &req.names {
                match api::call(&ctx.client, Method::GET, &r.item(ns.or(Some(&ctx.namespace)), n), "application/json", None).await {
                    Ok(v) => items.push((r, v)),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    if let Some(f) = &a.sort_by {
        sort_by(&mut items, f, |(_, v)| v)?;
    }
    if !a.show_managed_fields {
        for (_, item) in &mut items {
            hide_managed_fields(item);
        }
    }
    if let Some(spec) = output.strip_prefix("custom-columns=") {
        out.stdout(&custom_columns(spec, items.iter().map(|(_, v)| v), a.no_headers)?);
        return finish(errors);
    }
    if output == "name" {
        for (r, item) in &items {
            out.stdout(&format!("{}/{}\n", r.kind_group(), k1s_api::meta::name(item)));
        }
    } else {
        let doc = if single && items.len() == 1 {
            items[0].1.clone()
        } else if single && items.is_empty() {
            Value::Null
        } else {
            json!({"apiVersion": "v1", "items": items.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(), "kind": "List", "metadata": {"resourceVersion": ""}})
        };
        if !doc.is_null() {
            let text = match output {
                "json" => super::printers::json(&doc),
                "yaml" => super::printers::yaml(&doc),
                o if o.starts_with("jsonpath=") => super::printers::jsonpath(&o["jsonpath=".len()..], &doc)?,
                o => {
                    return Err(super::Fail::msg(format!(
                        "error: unable to match a printer suitable for the output format \"{o}\", allowed formats are: custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml"
                    )))
                }
            };
            out.stdout(&text);
        }
    }
    finish(errors)
}

/// kubectl hides `metadata.managedFields` in yaml/json output and in `edit` (`--show-managed-fields=false`).
pub fn hide_managed_fields(obj: &mut Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
}


async fn tables(ctx: &Ctx, a: &GetArgs, reqs: &[Request<'_>], ns: Option<&str>, wide: bool, out: &mut Out) -> anyhow::Result<()> {
    // Fetch first: whether names carry their kind depends on how many kinds came back.
    let mut fetched: Vec<(&Resource, Value, Vec<Value>)> = Vec::new();
    let mut errors = Vec::new();
    let mut last_table = Value::Null;
    for req in reqs {
        let r = req.resource;
        let mut rows = Vec::new();
        let mut columns = Value::Null;
        if req.names.is_empty() {
            // --sort-by needs the objects in the rows (kubectl: `includeObject=Object`, no limit).
            let url = list_url(r, ns, a.selector.as_deref(), a.field_selector.as_deref(), a.sort_by.is_none());
            let url = if a.sort_by.is_some() { format!("{url}{}includeObject=Object", if url.contains('?') { "&" } else { "?" }) } else { url };
            let t = api::call(&ctx.client, Method::GET, &url, api::TABLE_ACCEPT, None).await?;
            columns = t["columnDefinitions"].clone();
            rows.extend(t["rows"].as_array().cloned().unwrap_or_default());
            last_table = t;
        } else {
            for n in &req.names {
                match api::call(&ctx.client, Method::GET, &r.item(ns.or(Some(&ctx.namespace)), n), api::TABLE_ACCEPT, None).await {
                    Ok(t) => {
                        columns = t["columnDefinitions"].clone();
                        rows.extend(t["rows"].as_array().cloned().unwrap_or_default());
                        last_table = t;
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        if let Some(f) = &a.sort_by {
            sort_by(&mut rows, f, |row| &row["object"])?;
        }
        if !rows.is_empty() {
            fetched.push((r, columns, rows));
        }
    }
    let with_kind = fetched.len() > 1;
    for (i, (r, columns, rows)) in fetched.iter().enumerate() {
        if i > 0 && !a.no_headers {
            out.stdout("\n");
        }
        let grid = grid(a, r, columns, rows, wide, with_kind, !a.no_headers);
        out.stdout(&super::printers::tabwrite(&grid));
    }
    if fetched.is_empty() && errors.is_empty() {
        // kubectl: `No resources found in <ns> namespace.` for namespaced kinds, `No resources found` otherwise.
        let namespaced = reqs.iter().all(|r| r.resource.namespaced);
        match ns {
            Some(ns) if namespaced => eprintln!("No resources found in {ns} namespace."),
            _ => eprintln!("No resources found"),
        }
    }
    if a.watch {
        if !errors.is_empty() {
            return finish(errors);
        }
        if let [req] = reqs {
            return watch(ctx, a, req, ns, wide, &last_table, out).await;
        }
        return Err(super::Fail::msg(format!(
            "error: watch is only supported on individual resources and resource collections, but {} resources were found",
            reqs.len()
        )));
    }
    finish(errors)
}

/// The printed cells of a Table: its columns (priority 0, or all with `-o wide`), NAMESPACE first with `-A`,
/// `-L` label columns and LABELS last, names as `kind/name` when several kinds are printed.
fn grid(a: &GetArgs, r: &Resource, columns: &Value, rows: &[Value], wide: bool, with_kind: bool, header: bool) -> Vec<Vec<String>> {
    let cols: Vec<(usize, String)> = columns
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| wide || c.get("priority").and_then(Value::as_i64).unwrap_or(0) == 0)
        .map(|(i, c)| (i, c.get("name").and_then(Value::as_str).unwrap_or("").to_uppercase()))
        .collect();
    let label_columns: Vec<&str> = a.label_columns.iter().flat_map(|l| l.split(',')).filter(|l| !l.is_empty()).collect();
    let namespace = a.all_namespaces && r.namespaced;
    let mut grid: Vec<Vec<String>> = Vec::new();
    if header {
        let mut h = Vec::new();
        if namespace {
            h.push("NAMESPACE".to_string());
        }
        h.extend(cols.iter().map(|(_, n)| n.clone()));
        // kubectl's header for `-L x.io/app` is the last path segment, uppercased.
        h.extend(label_columns.iter().map(|l| l.rsplit('/').next().unwrap_or(l).to_uppercase()));
        if a.show_labels {
            h.push("LABELS".into());
        }
        grid.push(h);
    }
    for row in rows {
        let cells = row["cells"].as_array().cloned().unwrap_or_default();
        let mut line = Vec::new();
        if namespace {
            line.push(row.pointer("/object/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string());
        }
        for (pos, (i, _)) in cols.iter().enumerate() {
            let mut cell = cell_text(cells.get(*i).unwrap_or(&Value::Null));
            if pos == 0 && with_kind {
                cell = format!("{}/{cell}", r.kind_group());
            }
            line.push(cell);
        }
        for l in &label_columns {
            let v = row.pointer("/object/metadata/labels").and_then(|m| m.get(*l)).and_then(Value::as_str).unwrap_or("");
            line.push(v.to_string());
        }
        if a.show_labels {
            line.push(labels_text(row.pointer("/object/metadata/labels")));
        }
        grid.push(line);
    }
    grid
}

/// `-w`: after the table, every change as a row, through kubectl's watch tabwriter, which remembers the
/// column widths it printed (they only grow).
async fn watch(ctx: &Ctx, a: &GetArgs, req: &Request<'_>, ns: Option<&str>, wide: bool, first: &Value, out: &mut Out) -> anyhow::Result<()> {
    let r = req.resource;
    let rv = first.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").to_string();
    let mut columns = first["columnDefinitions"].clone();
    let mut url = match req.names.as_slice() {
        [name] => format!("{}?fieldSelector={}", r.collection(ns.or(Some(&ctx.namespace))), enc(&format!("metadata.name={name}"))),
        _ => list_url(r, ns, a.selector.as_deref(), a.field_selector.as_deref(), false),
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    if !rv.is_empty() {
        url.push_str(&format!("resourceVersion={}&", enc(&rv)));
    }
    url.push_str("watch=true");
    let mut widths = tab_widths(&grid(a, r, &columns, first["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]), wide, false, !a.no_headers), &[]);
    let req = http::Request::builder().method(Method::GET).uri(&url).header("Accept", api::TABLE_ACCEPT).body(Vec::new())?;
    let mut stream = ctx.client.request_stream(req).await?;
    let mut line = Vec::new();
    // kubectl's interrupt handler: SIGINT, SIGTERM, SIGHUP or SIGQUIT end the watch with exit code 1.
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigs = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup(), SignalKind::quit()]
        .into_iter()
        .map(signal)
        .collect::<Result<Vec<_>, _>>()?;
    let stopped = async move {
        let waits = sigs.iter_mut().map(|s| Box::pin(s.recv()));
        futures::future::select_all(waits).await;
    };
    tokio::pin!(stopped);
    loop {
        line.clear();
        tokio::select! {
            _ = &mut stopped => return Err(super::Silent(1).into()),
            n = futures::AsyncBufReadExt::read_until(&mut stream, b'\n', &mut line) => {
                if n? == 0 {
                    return Ok(());
                }
            }
        }
        let Ok(ev) = serde_json::from_slice::<Value>(&line) else { continue };
        if ev["type"] == "ERROR" || ev["type"] == "BOOKMARK" {
            continue;
        }
        let t = &ev["object"];
        if t["columnDefinitions"].as_array().is_some_and(|c| !c.is_empty()) {
            columns = t["columnDefinitions"].clone();
        }
        let g = grid(a, r, &columns, t["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]), wide, false, false);
        widths = tab_widths(&g, &widths);
        out.stdout(&pad_rows(&g, &widths));
    }
}

/// Column widths as Go's tabwriter computes them (minwidth 6, padding 3), never below `remembered`.
fn tab_widths(rows: &[Vec<String>], remembered: &[usize]) -> Vec<usize> {
    let mut w: Vec<usize> = remembered.to_vec();
    for row in rows {
        for (i, c) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            if w.len() <= i {
                w.push(6);
            }
            w[i] = w[i].max(c.chars().count() + 3).max(6);
        }
    }
    w
}

fn pad_rows(rows: &[Vec<String>], widths: &[usize]) -> String {
    let mut out = String::new();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            out.push_str(c);
            if i + 1 < row.len() {
                out.extend(std::iter::repeat_n(' ', widths[i].saturating_sub(c.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

/// `-o custom-columns=HEADER:.path,…`: one column per spec, several values joined by commas, `<none>` when
/// the path finds nothing.
fn custom_columns<'v>(spec: &str, items: impl Iterator<Item = &'v Value>, no_headers: bool) -> anyhow::Result<String> {
    let mut cols = Vec::new();
    for c in spec.split(',') {
        let (h, p) = c.split_once(':').ok_or_else(|| {
            super::Fail::msg(format!("error: unexpected custom-columns spec: {c}, expected <header>:<json-path-expr>"))
        })?;
        let p = if p.starts_with('{') { p.to_string() } else { format!("{{{}}}", if p.starts_with('.') { p.to_string() } else { format!(".{p}") }) };
        cols.push((h.to_string(), p));
    }
    let mut grid = Vec::new();
    if !no_headers {
        grid.push(cols.iter().map(|(h, _)| h.clone()).collect());
    }
    for item in items {
        let mut row = Vec::new();
        for (_, p) in &cols {
            let vals = super::printers::jsonpath_values(p, item)?;
            let texts: Vec<String> = vals.iter().map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }).collect();
            row.push(if texts.is_empty() { "<none>".to_string() } else { texts.join(",") });
        }
        grid.push(row);
    }
    Ok(super::printers::tabwrite(&grid))
}

/// tableprinter's cell: strings up to their first line break (then `...`), nil as empty, others via `fmt`.
fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => match s.find(['\n', '\r', '\x0c']) {
            Some(i) => format!("{}...", &s[..i]),
            None => s.clone(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `--show-labels`: `k=v` sorted by key, comma-joined, `<none>` when empty.
pub fn labels_text(labels: Option<&Value>) -> String {
    let Some(m) = labels.and_then(Value::as_object).filter(|m| !m.is_empty()) else { return "<none>".into() };
    m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")
}
