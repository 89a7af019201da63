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

/// kubectl's `RelaxedJSONPathExpression`: `a.b`, `.a.b`, `{a.b}` and `{.a.b}` all become `{.a.b}`; anything else
/// stays as typed.
fn relaxed_path(field: &str) -> String {
    let inner = field.strip_prefix('{').and_then(|f| f.strip_suffix('}')).unwrap_or(field);
    let inner = inner.strip_prefix('.').unwrap_or(inner);
    if inner.is_empty() || inner.contains(['{', '}']) {
        return field.to_string();
    }
    format!("{{.{inner}}}")
}

/// `--sort-by` as kubectl's `RuntimeSort`/`TableSorter`: the first value at `field` (relaxed) of each item, numbers
/// by value, everything else by its text (byte order: kubectl 1.33 puts `s-10` before `s-9`), with kubectl's
/// `Less`, where an item without the field is less than any other, even than another without it, under Go's
/// `sort.Sort` (ported in gosort.rs, so ties and items without the field land where kubectl puts them). No item
/// with the field is kubectl's error.
fn sort_by<T>(items: &mut Vec<T>, field: &str, obj: impl Fn(&T) -> &Value) -> anyhow::Result<()> {
    use std::cmp::Ordering;
    let keys: Vec<Option<Value>> =
        items.iter().map(|i| super::printers::jsonpath_values(field, obj(i)).unwrap_or_default().into_iter().next()).collect();
    if !items.is_empty() && keys.iter().all(Option::is_none) {
        return Err(super::Fail::msg(format!("error: couldn't find any field with path {field:?} in the list of objects")));
    }
    let cmp = |x: &Value, y: &Value| match (x.as_f64(), y.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => {
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            text(x).cmp(&text(y))
        }
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    super::gosort::sort(&mut order, |&a, &b| match (&keys[a], &keys[b]) {
        (None, _) => true,
        (_, None) => false,
        (Some(x), Some(y)) => cmp(x, y) == Ordering::Less,
    });
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(order.into_iter().filter_map(|i| slots[i].take()));
    Ok(())
}

/// kubectl's words for a list the server refused (400 or 404): the resource and the selectors lead the message.
fn list_error(e: anyhow::Error, r: &Resource, label: Option<&str>, field: Option<&str>) -> anyhow::Error {
    match e.downcast::<api::ApiError>() {
        Ok(mut a) if a.code == 400 || a.code == 404 => {
            let gvr = format!("{}/{}, Resource={}", r.group, r.version, r.name);
            let (label, field) = (label.unwrap_or(""), field.unwrap_or(""));
            a.message = if label.is_empty() && field.is_empty() {
                format!("Unable to list {gvr:?}: {}", a.message)
            } else {
                format!("Unable to find {gvr:?} that match label selector {label:?}, field selector {field:?}: {}", a.message)
            };
            a.into()
        }
        Ok(a) => a.into(),
        Err(e) => e,
    }
}

/// A list with all its pages: with `limit=`, the server's `continue` token is followed and each page's items (a
/// Table's rows) appended, as kubectl's chunked list gathers them before printing.
async fn list_all(ctx: &Ctx, url: &str, accept: &str) -> anyhow::Result<Value> {
    let mut list = api::call(&ctx.client, Method::GET, url, accept, None).await?;
    let key = if list.get("rows").is_some() { "rows" } else { "items" };
    loop {
        let token = list.pointer("/metadata/continue").and_then(Value::as_str).unwrap_or("").to_string();
        if token.is_empty() {
            return Ok(list);
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        let next = api::call(&ctx.client, Method::GET, &format!("{url}{sep}continue={}", enc(&token)), accept, None).await?;
        let more = next.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
        match list.get_mut(key).and_then(Value::as_array_mut) {
            Some(items) => items.extend(more),
            None => list[key] = Value::Array(more),
        }
        list["metadata"] = next["metadata"].clone();
    }
}

/// What the user asked for: a resource and either its names or the whole (selected) collection.
pub struct Request<'a> {
    pub resource: &'a Resource,
    pub names: Vec<String>,
}

/// `TYPE[,TYPE] NAME…` or `TYPE/NAME…` to requests, in the order typed; an unknown type is kubectl's error.
pub fn requests<'a>(resources: &'a [Resource], args: &[String]) -> anyhow::Result<Vec<Request<'a>>> {
    let unknown = |t: &str| super::Fail::msg(format!("error: the server doesn't have a resource type \"{t}\""));
    let lookup = |t: &str| api::resolve(resources, t).ok_or_else(|| unknown(t));
    let mut out: Vec<Request<'a>> = Vec::new();
    // kubectl's `hasCombinedTypeArgs`: any TYPE/NAME makes every argument one (else the error below).
    if args.iter().any(|a| a.contains('/')) {
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
    // kubectl's `SplitResourceArgument`: a type typed twice (`po,po`) counts once, `po,pods` stays two; an empty
    // one (`po,`) is the unknown type "".
    let mut seen = std::collections::HashSet::new();
    for t in types.split(',').filter(|t| seen.insert(*t)) {
        // A category (`all`, from the discovery documents' `categories`) stands for its resources in discovery
        // order, as kubectl's category expander has it, when no resource has that name.
        let members: Vec<&Resource> = match api::resolve(resources, t) {
            Some(r) => vec![r],
            None => resources.iter().filter(|r| r.categories.iter().any(|c| c == t)).collect(),
        };
        if members.is_empty() {
            return Err(unknown(t));
        }
        for resource in members {
            // Without names kubectl's builder visits each mapping once (`resourceMappings` drops a kind seen
            // before: `get po,pods` lists Pods once); with names it visits each (type, name) pair, so
            // `get po,pods a` shows `a` twice, as kubectl does.
            if args.len() == 1 && out.iter().any(|q| std::ptr::eq(q.resource, resource)) {
                continue;
            }
            out.push(Request { resource, names: args[1..].to_vec() });
        }
    }
    Ok(out)
}

/// kubectl's builder for `-w` takes one type (`SingleResourceType`), checked before any request: counted by the
/// type words as typed (`po,pods` is two, `po,po` one), TYPE/NAME arguments by their kinds.
fn single_type(args: &[String], reqs: &[Request<'_>]) -> anyhow::Result<()> {
    let same = |x: &Resource, y: &Resource| x.group == y.group && x.kind == y.kind;
    let words = || args.first().map(|t| t.split(',').collect::<std::collections::HashSet<_>>().len()).unwrap_or(0);
    let combined = args.iter().any(|x| x.contains('/'));
    if (!combined && words() > 1) || reqs.iter().any(|q| !same(q.resource, reqs[0].resource)) {
        return Err(super::Fail::msg("error: you may only specify a single resource type"));
    }
    Ok(())
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
        let list = api::call(&ctx.client, Method::GET, &list_url(r, ns, selector, None, None), "application/json", None).await?;
        for item in list.get("items").and_then(Value::as_array).into_iter().flatten() {
            out.push((r, k1s_api::meta::name(item).to_string()));
        }
    }
    Ok(out)
}

/// The collection URL with kubectl's query (`limit`: the chunk size, none when 0).
pub fn list_url(r: &Resource, ns: Option<&str>, label: Option<&str>, field: Option<&str>, limit: Option<i64>) -> String {
    let mut q = Vec::new();
    if let Some(f) = field {
        q.push(format!("fieldSelector={}", enc(f)));
    }
    if let Some(l) = label {
        q.push(format!("labelSelector={}", enc(l)));
    }
    if let Some(n) = limit.filter(|n| *n != 0) {
        q.push(format!("limit={n}"));
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
    if a.watch && (matches!(output, "name" | "json" | "yaml") || output.starts_with("jsonpath=")) {
        return watch_objects(ctx, a, &reqs, ns, output, out).await;
    }
    // Objects: kubectl prints a single object when exactly one was named, else a List.
    let single = reqs.len() == 1 && reqs[0].names.len() == 1;
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for req in &reqs {
        let r = req.resource;
        if req.names.is_empty() {
            // kubectl lists whole when sorting.
            let limit = if a.sort_by.is_some() { None } else { Some(ctx.chunk_size) };
            let url = list_url(r, ns, a.selector.as_deref(), a.field_selector.as_deref(), limit);
            let list = match list_all(ctx, &url, "application/json").await {
                Ok(list) => list,
                Err(e) => {
                    errors.push(list_error(e, r, a.selector.as_deref(), a.field_selector.as_deref()));
                    continue;
                }
            };
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
    // kubectl's SortingPrinter sorts a List (not one named object); its error is the verb's last.
    if let Some(f) = a.sort_by.as_deref().filter(|_| !single) {
        if let Err(e) = sort_by(&mut items, &relaxed_path(f), |(_, v)| v) {
            errors.push(e);
            return finish(errors);
        }
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

/// One object as `-o name|json|yaml|jsonpath=` prints it.
fn print_object(output: &str, r: &Resource, item: &Value) -> anyhow::Result<String> {
    Ok(match output {
        "name" => format!("{}/{}\n", r.kind_group(), k1s_api::meta::name(item)),
        "json" => super::printers::json(item),
        "yaml" => super::printers::yaml(item),
        o => super::printers::jsonpath(o.strip_prefix("jsonpath=").unwrap_or(o), item)?,
    })
}

/// `get -w -o name|json|yaml|jsonpath=`: kubectl prints each object of the first list on its own (no List), then
/// the object of every watch event, until a signal ends it with 1 (or `--request-timeout` with 0).
async fn watch_objects(ctx: &Ctx, a: &GetArgs, reqs: &[Request<'_>], ns: Option<&str>, output: &str, out: &mut Out) -> anyhow::Result<()> {
    single_type(&a.args, reqs)?;
    let Some(req) = reqs.first() else { return Ok(()) };
    let r = req.resource;
    let item_ns = ns.or(Some(&ctx.namespace));
    let (first, rv) = match req.names.as_slice() {
        [] => {
            let url = list_url(r, ns, a.selector.as_deref(), a.field_selector.as_deref(), Some(ctx.chunk_size));
            let list = list_all(ctx, &url, "application/json").await.map_err(|e| list_error(e, r, a.selector.as_deref(), a.field_selector.as_deref()))?;
            let rv = list.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").to_string();
            let mut items = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            for item in &mut items {
                item["apiVersion"] = json!(r.api_version());
                item["kind"] = json!(r.kind);
            }
            (items, rv)
        }
        names => {
            let mut items = Vec::new();
            for name in names {
                items.push(api::call(&ctx.client, Method::GET, &r.item(item_ns, name), "application/json", None).await?);
            }
            let rv = items[0].pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").to_string();
            (items, rv)
        }
    };
    // kubectl's YAML printer opens every document after its first with `---`.
    let mut printed = 0usize;
    let mut print = |out: &mut Out, item: &Value| -> anyhow::Result<()> {
        let sep = if output == "yaml" && printed > 0 { "---\n" } else { "" };
        printed += 1;
        out.stdout(&format!("{sep}{}", print_object(output, r, item)?));
        Ok(())
    };
    for mut item in first {
        if !a.show_managed_fields {
            hide_managed_fields(&mut item);
        }
        print(out, &item)?;
    }
    // kubectl prints several named objects, then refuses to watch them.
    if req.names.len() > 1 {
        return Err(super::Fail::msg("error: you may only watch a single resource or type of resource at a time"));
    }
    let url = watch_url(a, req, ns, item_ns, &rv);
    let until_deadline = until_deadline();
    tokio::pin!(until_deadline);
    let request = http::Request::builder().method(Method::GET).uri(&url).header("Accept", "application/json").body(Vec::new())?;
    let mut stream = tokio::select! {
        s = ctx.client.request_stream(request) => s?,
        _ = &mut until_deadline => return Err(api::deadline_exceeded()),
    };
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
    let mut line = Vec::new();
    loop {
        line.clear();
        tokio::select! {
            _ = &mut stopped => return Err(super::Silent(1).into()),
            _ = &mut until_deadline => return Ok(()),
            n = futures::AsyncBufReadExt::read_until(&mut stream, b'\n', &mut line) => {
                if n? == 0 {
                    return Ok(());
                }
            }
        }
        let Ok(mut ev) = serde_json::from_slice::<Value>(&line) else { continue };
        if ev["type"] == "ERROR" || ev["type"] == "BOOKMARK" {
            continue;
        }
        if !a.show_managed_fields {
            hide_managed_fields(&mut ev["object"]);
        }
        print(out, &ev["object"])?;
    }
}

/// kubectl hides `metadata.managedFields` in yaml/json output and in `edit` (`--show-managed-fields=false`).
pub fn hide_managed_fields(obj: &mut Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
}


/// One Table as kubectl's `get` holds it: one per collection, one per named object.
struct Info<'r> {
    r: &'r Resource,
    /// The Table without its rows.
    table: Value,
    rows: Vec<Value>,
}

async fn tables(ctx: &Ctx, a: &GetArgs, reqs: &[Request<'_>], ns: Option<&str>, wide: bool, out: &mut Out) -> anyhow::Result<()> {
    // Fetch first: whether names carry their kind depends on the kinds that came back.
    let mut infos: Vec<Info> = Vec::new();
    let mut errors = Vec::new();
    let mut last_table = Value::Null;
    let same = |x: &Resource, y: &Resource| x.group == y.group && x.kind == y.kind;
    if a.watch {
        single_type(&a.args, reqs)?;
    }
    let sort = a.sort_by.as_deref();
    if a.watch && sort.is_some() {
        eprintln!("warning: --watch requested, --sort-by will be ignored for watch events received");
    }
    // --sort-by needs the objects in the rows (kubectl: `includeObject=Object`, no limit).
    let object = |url: String| if sort.is_some() { format!("{url}{}includeObject=Object", if url.contains('?') { "&" } else { "?" }) } else { url };
    let info = |r, mut t: Value, last_table: &mut Value| {
        if a.watch {
            *last_table = t.clone();
        }
        let rows = match t.get_mut("rows").map(Value::take) {
            Some(Value::Array(rows)) => rows,
            _ => Vec::new(),
        };
        Info { r, table: t, rows }
    };
    for req in reqs {
        let r = req.resource;
        if req.names.is_empty() {
            let limit = if sort.is_some() { None } else { Some(ctx.chunk_size) };
            let url = object(list_url(r, ns, a.selector.as_deref(), a.field_selector.as_deref(), limit));
            match list_all(ctx, &url, api::TABLE_ACCEPT).await {
                Ok(t) => infos.push(info(r, t, &mut last_table)),
                Err(e) => errors.push(list_error(e, r, a.selector.as_deref(), a.field_selector.as_deref())),
            }
        } else {
            for n in &req.names {
                match api::call(&ctx.client, Method::GET, &object(r.item(ns.or(Some(&ctx.namespace)), n)), api::TABLE_ACCEPT, None).await {
                    Ok(t) => infos.push(info(r, t, &mut last_table)),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    let with_kind = infos.iter().any(|i| !same(i.r, infos[0].r));
    if let Some(f) = sort {
        let field = relaxed_path(f);
        // kubectl's RuntimeSorter: several Tables are sorted as objects themselves (a Table has no `.metadata.name`:
        // kubectl's error), one is left as it is.
        if infos.len() > 1 && !a.watch {
            sort_by(&mut infos, &field, |i| &i.table)?;
        }
        // Then its SortingPrinter sorts each Table's rows; `get` ignores that printer's error (no row has the
        // field): such a Table prints nothing. `get -w` prints the first Table through it and fails.
        for info in &mut infos {
            if info.rows.len() > 1 {
                if let Err(e) = sort_by(&mut info.rows, &field, |row| &row["object"]) {
                    if a.watch {
                        let why = e.to_string();
                        let why = why.trim_start_matches("error: ");
                        return Err(super::Fail::msg(format!("error: unable to output the provided object: {why}")));
                    }
                    info.rows.clear();
                }
            }
        }
    }
    // Consecutive Tables of one kind share a printer: one header, one set of column widths.
    let mut blocks: Vec<(&Resource, &Value, Vec<Value>)> = Vec::new();
    for info in &infos {
        match blocks.last_mut() {
            Some((r, columns, rows)) if same(r, info.r) => {
                if rows.is_empty() {
                    *columns = &info.table["columnDefinitions"];
                }
                rows.extend(info.rows.iter().cloned());
            }
            _ => blocks.push((info.r, &info.table["columnDefinitions"], info.rows.clone())),
        }
    }
    let mut printed = false;
    for (r, columns, rows) in blocks.iter().filter(|(_, _, rows)| !rows.is_empty()) {
        if printed && !a.no_headers {
            out.stdout("\n");
        }
        let grid = grid(a, r, columns, rows, wide, with_kind, !a.no_headers);
        out.stdout(&super::printers::tabwrite(&grid));
        printed = true;
    }
    if !printed && errors.is_empty() {
        // kubectl: `No resources found in <ns> namespace.` for namespaced kinds, `No resources found` otherwise.
        let namespaced = infos.iter().all(|i| i.r.namespaced);
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
            if req.names.len() > 1 {
                return Err(super::Fail::msg("error: you may only watch a single resource or type of resource at a time"));
            }
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
/// The watch request of `get -w`: one named object by field selector (in `item_ns`), or the list's selectors,
/// from `rv` on.
fn watch_url(a: &GetArgs, req: &Request<'_>, ns: Option<&str>, item_ns: Option<&str>, rv: &str) -> String {
    let r = req.resource;
    let mut url = match req.names.as_slice() {
        [name] => format!("{}?fieldSelector={}", r.collection(item_ns), enc(&format!("metadata.name={name}"))),
        _ => list_url(r, ns, a.selector.as_deref(), a.field_selector.as_deref(), None),
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    if !rv.is_empty() {
        url.push_str(&format!("resourceVersion={}&", enc(rv)));
    }
    url.push_str("watch=true");
    api::with_timeout_param(&url)
}

/// Resolves at `--request-timeout`'s deadline, never without one.
async fn until_deadline() {
    match api::deadline() {
        Some(d) => tokio::time::sleep_until(d).await,
        None => futures::future::pending().await,
    }
}

async fn watch(ctx: &Ctx, a: &GetArgs, req: &Request<'_>, ns: Option<&str>, wide: bool, first: &Value, out: &mut Out) -> anyhow::Result<()> {
    let r = req.resource;
    let rv = first.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").to_string();
    let mut columns = first["columnDefinitions"].clone();
    let url = watch_url(a, req, ns, ns.or(Some(&ctx.namespace)), &rv);
    // `--request-timeout` bounds the whole watch, as Go's client timeout does; kubectl ends it quietly with 0.
    let until_deadline = until_deadline();
    tokio::pin!(until_deadline);
    let mut widths = tab_widths(&grid(a, r, &columns, first["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]), wide, false, !a.no_headers), &[]);
    let req = http::Request::builder().method(Method::GET).uri(&url).header("Accept", api::TABLE_ACCEPT).body(Vec::new())?;
    let mut stream = tokio::select! {
        s = ctx.client.request_stream(req) => s?,
        _ = &mut until_deadline => return Err(api::deadline_exceeded()),
    };
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
            _ = &mut until_deadline => return Ok(()),
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
