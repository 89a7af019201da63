//! `explain`: kubectl 1.27+'s OpenAPI v3 explain, i.e. its `plaintext.tmpl` Go template (k8s.io/kubectl
//! pkg/explain/v2/templates) rendered by hand over the same `/openapi/v3/<group-version>` document the server
//! serves, so the text is the server's field descriptions laid out exactly as kubectl lays them out.
//!
//! Each function below is one `define` of the template, with its quirks kept on purpose (a `$ref`'s sibling
//! description is ignored, a field's line of enum values, the blank lines after `FIELD:`).

use http::Method;
use serde_json::{Map, Value};

use super::{api, Ctx, Fail, Out};

#[derive(clap::Args, Debug, Clone)]
pub struct ExplainArgs {
    /// RESOURCE[.FIELD…]
    pub resource: Vec<String>,
    /// Print the fields of fields (currently only 1 level deep).
    #[arg(long)]
    pub recursive: bool,
    /// Use the given api-version (group/version) of the resource.
    #[arg(long)]
    pub api_version: Option<String>,
    /// Format in which to render the schema: plaintext (the only one here; kubectl's legacy
    /// `plaintext-openapiv2` is not served).
    #[arg(long, default_value = "plaintext")]
    pub output: String,
}

pub async fn run(ctx: &Ctx, a: &ExplainArgs, out: &mut Out) -> anyhow::Result<()> {
    let Some(input) = a.resource.first() else {
        return Err(Fail::msg(
            "error: You must specify the type of resource to explain. Use \"kubectl api-resources\" for a complete list of supported resources.",
        ));
    };
    if a.resource.len() > 1 {
        return Err(Fail::msg("error: We accept only this format: explain RESOURCE"));
    }
    if a.output != "plaintext" {
        return Err(Fail::msg(format!("error: unrecognized format: {}", a.output)));
    }
    // `RESOURCE.field.path`: the resource is the first segment (kubectl's SplitAndParseResourceRequest).
    let mut parts = input.split('.');
    let typed = parts.next().unwrap_or_default();
    let field_path: Vec<String> = parts.map(String::from).collect();
    let resources = ctx.resources().await?;
    // kubectl prints this one without its usual `error: ` prefix.
    let r = api::resolve(&resources, typed).ok_or_else(|| Fail::msg(format!("the server doesn't have a resource type \"{typed}\"")))?;
    let (mut group, mut version) = (r.group.clone(), r.version.clone());
    if let Some(av) = &a.api_version {
        // schema.ParseGroupVersion: `v1` is the core group, `g/v` a group.
        (group, version) = match av.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), av.clone()),
        };
    }
    let gv_key = if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") };
    let index = api::call(&ctx.client, Method::GET, "/openapi/v3", "application/json", None).await?;
    let Some(url) = index
        .pointer(&format!("/paths/{}", gv_key.replace('~', "~0").replace('/', "~1")))
        .and_then(|p| p.get("serverRelativeURL"))
        .and_then(Value::as_str)
    else {
        let gv = if group.is_empty() { version.clone() } else { format!("{group}/{version}") };
        return Err(Fail::msg(format!("error: couldn't find resource for \"{gv}, Resource={}\"", r.name)));
    };
    let doc = api::call(&ctx.client, Method::GET, url, "application/json", None).await?;
    let (text, err) = render(&doc, &group, &version, &r.name, &field_path, a.recursive);
    // Go's template engine has written what it produced before a `throw`: that part reaches stdout too.
    out.stdout(&text);
    match err {
        Some(e) => Err(Fail::msg(e)),
        None => Ok(()),
    }
}

/// The whole template: its output so far and the error it threw, if any.
pub fn render(doc: &Value, group: &str, version: &str, resource: &str, field_path: &[String], recursive: bool) -> (String, Option<String>) {
    let prefix = if group.is_empty() { "/api".to_string() } else { format!("/apis/{group}") };
    let search = [
        format!("{prefix}/{version}/{resource}"),
        format!("{prefix}/{version}/{resource}/{{name}}"),
        format!("{prefix}/{version}/namespaces/{{namespace}}/{resource}"),
        format!("{prefix}/{version}/namespaces/{{namespace}}/{resource}/{{name}}"),
    ];
    let mut gvk = None;
    'paths: for p in &search {
        let Some(item) = doc.get("paths").and_then(|ps| ps.get(p)) else { continue };
        for m in ["get", "post", "put", "patch", "delete"] {
            if let Some(g) = item.get(m).and_then(|op| op.get("x-kubernetes-group-version-kind")).filter(|g| truthy(g)) {
                gvk = Some(g.clone());
                break 'paths;
            }
        }
    }
    let Some(gvk) = gvk else {
        return (String::new(), Some(format!("error: GVR ({group}/{version}, Resource={resource}) not found in OpenAPI schema")));
    };
    let mut out = String::new();
    let g = |k: &str| gvk.get(k).map(go_print).unwrap_or_default();
    if truthy(gvk.get("group").unwrap_or(&Value::Null)) {
        out.push_str(&format!("GROUP:      {}\n", g("group")));
    }
    out.push_str(&format!("KIND:       {}\n", g("kind")));
    out.push_str(&format!("VERSION:    {}\n\n", g("version")));
    let r = Render { doc };
    // The `schema` define: the first schema (in key order) whose GVK list holds this GVK.
    let mut schemas: Vec<(&String, &Value)> = doc.pointer("/components/schemas").and_then(Value::as_object).into_iter().flatten().collect();
    schemas.sort_by(|a, b| a.0.cmp(b.0));
    let found =
        schemas.into_iter().find(|(_, s)| s.get("x-kubernetes-group-version-kind").and_then(Value::as_array).is_some_and(|l| l.contains(&gvk)));
    let Some((_, schema)) = found else {
        return (out, Some(format!("error: GVK {} not found in OpenAPI schema", go_map(&gvk))));
    };
    let body = r.output(schema, &[], field_path, recursive);
    if body.is_empty() {
        let last = field_path.last().cloned().unwrap_or_default();
        return (out, Some(format!("error: field \"{last}\" does not exist")));
    }
    out.push_str(&body);
    out.push('\n');
    (out, None)
}

/// Go template truthiness: false, 0, nil, and empty strings, maps and lists are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// How Go's `{{ . }}` prints a decoded JSON value.
fn go_print(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        Value::Object(_) => go_map(v),
        other => other.to_string(),
    }
}

fn go_map(v: &Value) -> String {
    let mut keys: Vec<(&String, &Value)> = v.as_object().into_iter().flatten().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    format!("map[{}]", keys.iter().map(|(k, v)| format!("{k}:{}", go_print(v))).collect::<Vec<_>>().join(" "))
}

fn get<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get(k).filter(|x| truthy(x))
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `additionalProperties` that is a schema (not the boolean form).
fn additional(v: &Value) -> Option<&Value> {
    get(v, "additionalProperties").filter(|a| !a.is_boolean())
}

/// sprig-like `indent` as kubectl defines it: the pad before the text and after every newline.
fn indent(n: usize, s: &str) -> String {
    let pad = " ".repeat(n);
    format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
}

/// kubectl's `wrap`: mitchellh/go-wordwrap's `WrapString` (breaks at white space, keeps the text's own newlines,
/// never splits a word longer than the limit).
pub fn wrap(lim: usize, s: &str) -> String {
    let mut buf = String::with_capacity(s.len());
    let mut current = 0usize;
    let (mut word, mut space) = (String::new(), String::new());
    let (mut word_len, mut space_len) = (0usize, 0usize);
    for c in s.chars() {
        if c == '\n' {
            // Trailing spaces go only when they fit; the line count restarts either way.
            if !word.is_empty() || current + space_len <= lim {
                buf.push_str(&space);
            }
            buf.push_str(&word);
            word.clear();
            word_len = 0;
            space.clear();
            space_len = 0;
            buf.push(c);
            current = 0;
        } else if c.is_whitespace() && c != '\u{a0}' {
            if space.is_empty() || !word.is_empty() {
                current += space_len + word_len;
                buf.push_str(&space);
                buf.push_str(&word);
                space.clear();
                space_len = 0;
                word.clear();
                word_len = 0;
            }
            space.push(c);
            space_len += 1;
        } else {
            word.push(c);
            word_len += 1;
            if current + space_len + word_len > lim && word_len < lim {
                buf.push('\n');
                current = 0;
                space.clear();
                space_len = 0;
            }
        }
    }
    if word.is_empty() {
        if current + space_len <= lim {
            buf.push_str(&space);
        }
    } else {
        buf.push_str(&space);
        buf.push_str(&word);
    }
    buf
}

struct Render<'a> {
    doc: &'a Value,
}

impl<'a> Render<'a> {
    /// `resolveRef`: a `#/components/schemas/X` reference inside the document.
    fn resolve(&self, r: Option<&Value>) -> Option<&'a Value> {
        let r = r?.as_str()?;
        let frag = r.strip_prefix('#')?;
        let mut cur = self.doc;
        for k in frag.split('/').filter(|k| !k.is_empty()) {
            cur = cur.get(k).filter(|v| v.is_object())?;
        }
        Some(cur)
    }

    /// `or (resolveRef $ref) $schema` (an empty resolved map counts as absent).
    fn resolved<'b>(&self, schema: &'b Value) -> &'b Value
    where
        'a: 'b,
    {
        self.resolve(schema.get("$ref")).filter(|v| truthy(v)).unwrap_or(schema)
    }

    /// The `output` define.
    fn output(&self, schema: &Value, history: &[String], path: &[String], recursive: bool) -> String {
        let ref_string = str_of(schema, "$ref").to_string();
        let mut next = history.to_vec();
        next.push(ref_string.clone());
        let resolved = self.resolved(schema);
        if path.is_empty() {
            let mut out = String::from("DESCRIPTION:\n");
            let d = self.description(resolved);
            out.push_str(&indent(4, &wrap(76, if d.is_empty() { "<empty>" } else { &d })));
            out.push('\n');
            let docs = external_docs(resolved);
            if !docs.is_empty() {
                out.push('\n');
                out.push_str(&docs);
            }
            let fields = self.field_list(resolved, 1, &[], recursive);
            if !fields.is_empty() {
                out.push_str("FIELDS:\n");
                out.push_str(&fields);
            }
            return out;
        }
        if !ref_string.is_empty() && history.contains(&ref_string) {
            return String::new();
        }
        if let Some(sub) = get(resolved, "properties").and_then(|p| get(p, &path[0])) {
            let mut out = String::new();
            if path.len() == 1 {
                out.push_str(&format!("FIELD: {} <{}>\n", path[0], self.type_guess(sub)));
                out.push_str(&extract_enum(sub, true, -1, 0));
                out.push_str("\n\n");
            }
            out.push_str(&self.output(sub, &[], &path[1..], recursive));
            return out;
        }
        if let Some(items) = get(resolved, "items") {
            return self.output(items, &next, path, recursive);
        }
        if let Some(add) = additional(resolved) {
            return self.output(add, &next, path, recursive);
        }
        for sub in get(resolved, "allOf").and_then(Value::as_array).into_iter().flatten() {
            let o = self.output(sub, &next, path, recursive);
            if !o.is_empty() {
                return o;
            }
        }
        String::new()
    }

    /// The `fieldList` define.
    fn field_list(&self, schema: &Value, level: usize, history: &[String], recursive: bool) -> String {
        let ref_string = str_of(schema, "$ref").to_string();
        if !ref_string.is_empty() && history.contains(&ref_string) {
            return String::new();
        }
        let mut next = history.to_vec();
        next.push(ref_string);
        let resolved = self.resolved(schema);
        let mut out = String::new();
        if let Some(props) = get(resolved, "properties").and_then(Value::as_object) {
            let mut keys: Vec<(&String, &Value)> = props.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            for (k, v) in keys {
                out.push_str(&self.field_detail(k, resolved, recursive, level));
                if recursive {
                    out.push_str(&self.field_list(v, level + 1, &next, recursive));
                }
            }
        }
        for a in get(resolved, "allOf").and_then(Value::as_array).into_iter().flatten() {
            out.push_str(&self.field_list(a, level, &next, recursive));
        }
        if let Some(items) = get(resolved, "items") {
            out.push_str(&self.field_list(items, level, &next, recursive));
        }
        if let Some(add) = additional(resolved) {
            out.push_str(&self.field_list(add, level, &next, recursive));
        }
        out
    }

    /// The `fieldDetail` define: one field of `schema`.
    fn field_detail(&self, name: &str, schema: &Value, short: bool, level: usize) -> String {
        let ia = level * 2;
        let empty = Value::Object(Map::new());
        let field = schema.pointer(&format!("/properties/{}", name.replace('~', "~0").replace('/', "~1"))).unwrap_or(&empty);
        let mut out = format!("{}\t<{}>", indent(ia, name), self.type_guess(field));
        if schema.get("required").and_then(Value::as_array).is_some_and(|r| r.iter().any(|x| x == name)) {
            out.push_str(" -required-");
        }
        out.push_str(&extract_enum(field, false, 4, ia));
        out.push('\n');
        if !short {
            let d = str_of(field, "description");
            out.push_str(&indent(ia + 2, &wrap(78 - ia, if d.is_empty() { "<no description>" } else { d })));
            out.push('\n');
            if let Some(docs) = get(field, "externalDocs") {
                out.push('\n');
                out.push_str(&indent(ia + 2, "EXTERNAL DOCS:"));
                out.push('\n');
                if let Some(d) = get(docs, "description") {
                    out.push_str(&indent(ia + 4, &wrap(76 - ia, &go_print(d))));
                    out.push('\n');
                }
                if let Some(u) = get(docs, "url") {
                    out.push_str(&indent(ia + 4, &format!("URL: {}", go_print(u))));
                    out.push('\n');
                }
            }
            out.push('\n');
        }
        out
    }

    /// The `description` define: the schema's own and those of its allOf, items and map values.
    fn description(&self, schema: &Value) -> String {
        let s = self.resolved(schema);
        if !truthy(s) {
            return String::new();
        }
        let mut out = String::new();
        if let Some(d) = get(s, "description") {
            out.push_str(&go_print(d));
            out.push('\n');
        }
        for a in get(s, "allOf").and_then(Value::as_array).into_iter().flatten() {
            out.push_str(&self.description(a));
        }
        if let Some(items) = get(s, "items") {
            out.push_str(&self.description(items));
        }
        if let Some(add) = additional(s) {
            out.push_str(&self.description(add));
        }
        out
    }

    /// The `typeGuess` define: `string`, `[]Container`, `map[string]string`, `Object`…
    fn type_guess(&self, s: &Value) -> String {
        if let Some(items) = get(s, "items") {
            return format!("[]{}", self.type_guess(items));
        }
        if let Some(add) = additional(s) {
            return format!("map[string]{}", self.type_guess(add));
        }
        if let Some(all) = get(s, "allOf").and_then(Value::as_array).filter(|a| a.len() == 1) {
            if get(s, "properties").is_none() {
                return self.type_guess(&all[0]);
            }
        }
        if let Some(r) = get(s, "$ref") {
            let ref_schema = self.resolve(Some(r)).filter(|v| truthy(v));
            let ty = ref_schema.and_then(|x| get(x, "type"));
            return match ty {
                Some(t) if t.as_str() != Some("object") => go_print(t),
                _ => {
                    let r = go_print(r);
                    let name = r.rsplit('/').next().unwrap_or("");
                    let last = name.rsplit('.').next().unwrap_or("");
                    if last.is_empty() {
                        "Object".into()
                    } else {
                        last.to_string()
                    }
                }
            };
        }
        match get(s, "type") {
            Some(t) if t.as_str() == Some("object") => "Object".into(),
            Some(t) => go_print(t),
            None => "Object".into(),
        }
    }
}

/// The `externalDocs` define.
fn external_docs(s: &Value) -> String {
    let Some(docs) = get(s, "externalDocs") else { return String::new() };
    let mut out = String::from("EXTERNAL DOCS:\n");
    if let Some(d) = get(docs, "description") {
        out.push_str(&indent(4, &wrap(76, &go_print(d))));
        out.push('\n');
    }
    if let Some(u) = get(docs, "url") {
        out.push_str(&indent(4, &format!("URL: {}", go_print(u))));
        out.push('\n');
    }
    out
}

/// The `extractEnum` define: `ENUM:` lines under a `FIELD:`, or one `enum: a, b, ....` line under a field.
fn extract_enum(s: &Value, long: bool, limit: i64, indent_amount: usize) -> String {
    let Some(values) = get(s, "enum").and_then(Value::as_array) else { return String::new() };
    let mut out = if long { "ENUM:".to_string() } else { format!("\n{}enum: ", " ".repeat(indent_amount)) };
    for (i, e) in values.iter().enumerate() {
        if limit > -1 && i as i64 >= limit {
            out.push_str(", ....");
            break;
        }
        if i > 0 && !long {
            out.push_str(", ");
        } else if long {
            out.push_str("\n    ");
        }
        if e.as_str() == Some("") {
            out.push_str("\"\"");
        } else {
            out.push_str(&go_print(e));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_newlines_and_long_words() {
        assert_eq!(wrap(10, "aaa bbb ccc ddd"), "aaa bbb\nccc ddd");
        assert_eq!(wrap(5, "a\nb c"), "a\nb c");
        assert_eq!(wrap(4, "abcdefgh ij"), "abcdefgh\nij");
        assert_eq!(wrap(76, "x\n"), "x\n");
    }
}
