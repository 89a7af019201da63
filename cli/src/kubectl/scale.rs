//! `scale`: set the replicas of Deployments and ReplicaSets (any kind with a `scale` subresource) through that
//! subresource, as kubectl does (a merge patch of `spec.replicas`; with `--current-replicas` or
//! `--resource-version`, kubectl's preconditions checked against the Scale first).

use http::Method;
use serde_json::{json, Value};

use super::api;
use super::{Ctx, Fail, Out};

#[derive(clap::Args, Debug, Clone)]
pub struct ScaleArgs {
    /// TYPE NAME…, or TYPE/NAME…
    pub args: Vec<String>,
    /// The new desired number of replicas.
    #[arg(long, allow_negative_numbers = true)]
    pub replicas: Option<i64>,
    /// Precondition for the current size: scale only if the resource has this many replicas (-1: no condition).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub current_replicas: i64,
    /// Precondition for the resource version: scale only if it matches.
    #[arg(long)]
    pub resource_version: Option<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Select all resources in the namespace of the specified resource types.
    #[arg(long)]
    pub all: bool,
}

pub async fn run(ctx: &Ctx, a: &ScaleArgs, out: &mut Out) -> anyhow::Result<()> {
    let Some(replicas) = a.replicas else {
        return Err(Fail::msg("error: required flag(s) \"replicas\" not set"));
    };
    if replicas < 0 {
        return Err(Fail::msg("error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"));
    }
    let resources = ctx.resources().await?;
    let reqs = super::get::requests(&resources, &a.args)?;
    if reqs.iter().any(|r| r.names.is_empty()) && a.selector.is_none() && !a.all {
        return Err(Fail::msg("error: resource(s) were provided, but no name was specified"));
    }
    // kubectl's builder reads each named object first; none found is its `no objects passed to scale` error
    // with the reasons after it (Go's aggregate: one message as is, several in brackets).
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    for (r, name) in super::get::targets(ctx, &reqs, a.selector.as_deref()).await? {
        match api::call(&ctx.client, Method::GET, &r.item(Some(&ctx.namespace), &name), "application/json", None).await {
            Ok(_) => targets.push((r, name)),
            Err(e) => missing.push(e),
        }
    }
    if targets.is_empty() {
        let text: Vec<String> = missing.iter().map(|e| e.downcast_ref::<api::ApiError>().map_or_else(|| e.to_string(), |x| x.message.clone())).collect();
        let why = match text.len() {
            0 => String::new(),
            1 => format!(" {}", text[0]),
            _ => format!(" [{}]", text.join(", ")),
        };
        return Err(Fail::msg(format!("error: no objects passed to scale{why}")));
    }
    // The ones not found are reported after the others are scaled.
    let mut errors = missing;
    for (r, name) in targets {
        let item = format!("{}/scale", r.item(Some(&ctx.namespace), &name));
        if a.current_replicas >= 0 || a.resource_version.is_some() {
            let scale = api::call(&ctx.client, Method::GET, &item, "application/json", None).await?;
            let current = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
            if a.current_replicas >= 0 && current != a.current_replicas {
                errors.push(Fail::msg(format!("error: Expected replicas to be {}, was {current}", a.current_replicas)));
                continue;
            }
            let rv = scale.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
            if let Some(want) = a.resource_version.as_deref().filter(|w| *w != rv) {
                errors.push(Fail::msg(format!("error: Expected resource version to be {want}, was {rv}")));
                continue;
            }
        }
        let patch = serde_json::to_vec(&json!({"spec": {"replicas": replicas}}))?;
        match api::call(&ctx.client, Method::PATCH, &item, "application/json", Some(("application/merge-patch+json", patch))).await {
            Ok(_) => out.stdout(&format!("{}/{name} scaled\n", r.kind_group())),
            Err(e) => errors.push(e),
        }
    }
    super::finish(errors)
}
