//! `edit`: the object as YAML in `$KUBE_EDITOR`/`$EDITOR` (kubectl's header, managedFields hidden), then a
//! two-way patch of what changed (strategic merge for built-in kinds) with field manager `kubectl-edit`.

use http::Method;
use serde_json::Value;

use super::api::{self, Resource};
use super::{Ctx, Fail, Out};

const HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If an error occurs while saving this file will be
# reopened with the relevant failures.
#
";

#[derive(clap::Args, Debug, Clone)]
pub struct EditArgs {
    /// TYPE NAME or TYPE/NAME.
    pub args: Vec<String>,
}

/// The editor command kubectl runs: `$KUBE_EDITOR`, `$EDITOR`, else `vi`; through `sh -c` so that an editor
/// with arguments (`code --wait`) works.
fn editor_command(path: &std::path::Path) -> std::process::Command {
    let editor = std::env::var("KUBE_EDITOR")
        .ok()
        .filter(|e| !e.is_empty())
        .or_else(|| std::env::var("EDITOR").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| "vi".into());
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(format!("{editor} \"$1\"")).arg("sh").arg(path);
    c
}

/// Drop the `#` comment lines kubectl ignores.
fn strip_comments(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).map(|l| format!("{l}\n")).collect()
}

pub async fn run(ctx: &Ctx, a: &EditArgs, out: &mut Out) -> anyhow::Result<()> {
    let resources = ctx.resources().await?;
    let reqs = super::get::requests(&resources, &a.args)?;
    let [req] = reqs.as_slice() else { return Err(Fail::msg("error: k1s edit takes one resource type")) };
    let [name] = req.names.as_slice() else { return Err(Fail::msg("error: k1s edit takes exactly one object name (TODO: several)")) };
    let r: &Resource = req.resource;
    let ns = if r.namespaced { Some(ctx.namespace.as_str()) } else { None };
    let item = r.item(ns, name);
    let mut obj = api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
    super::get::hide_managed_fields(&mut obj);
    let original = super::printers::yaml(&obj);
    let dir = std::env::temp_dir();
    let path = dir.join(format!("kubectl-edit-{}.yaml", std::process::id()));
    std::fs::write(&path, format!("{HEADER}{original}"))?;
    let status = editor_command(&path).status();
    let edited = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    let status = status.map_err(|e| Fail::msg(format!("error: there was a problem with the editor: {e}")))?;
    if !status.success() {
        return Err(Fail::msg(format!("error: there was a problem with the editor \"{}\"", std::env::var("EDITOR").unwrap_or_else(|_| "vi".into()))));
    }
    let edited = strip_comments(&edited?);
    if edited.trim().is_empty() {
        eprintln!("Edit cancelled, saved file was empty.");
        return Ok(());
    }
    if edited == original {
        eprintln!("Edit cancelled, no changes made.");
        return Ok(());
    }
    let docs = k1s_api::yaml::documents(&edited).map_err(|e| Fail::msg(format!("error: {e}")))?;
    let [doc] = docs.as_slice() else { return Err(Fail::msg("error: the edited file must hold exactly one object")) };
    let meta = k1s_api::smp::meta_for(&r.group, &r.kind);
    let patch = super::write::three_way(Some(&obj), &doc.object, &obj, meta, &mut Vec::new());
    if patch.is_empty() {
        eprintln!("Edit cancelled, no changes made.");
        return Ok(());
    }
    let ct = if super::write::known_smp(&r.group, &r.kind) { "application/strategic-merge-patch+json" } else { "application/merge-patch+json" };
    let url = format!("{item}?fieldManager=kubectl-edit&fieldValidation=Strict");
    api::call(&ctx.client, Method::PATCH, &url, "application/json", Some((ct, serde_json::to_vec(&Value::Object(patch))?))).await?;
    out.stdout(&format!("{}/{name} edited\n", r.kind_group()));
    Ok(())
}
