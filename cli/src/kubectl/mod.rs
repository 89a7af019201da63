//! The everyday kubectl subset inside the `k1s` binary (`k1s kubectl …`, `k1s <verb> …`, or this binary called
//! as `kubectl`), speaking to any API server through a kubeconfig with kubectl's flags and byte-identical output.
//!
//! Built on the kube crate's client and config plus raw JSON requests: every verb works on JSON values of any
//! kind, tables come from the server (`as=Table`), so no server logic is repeated here.
//!
//! Done: `version`, `cluster-info`, `api-resources`; `get` (the server's Table, `-o wide|name|json|yaml|jsonpath=|
//! custom-columns=`, `-w` (tables, and `-o name|json|yaml|jsonpath=` object by object), `-L`, `--sort-by`, `--no-headers`, `-l`, `--field-selector`, `-A`, `--show-labels`, several kinds,
//! names); `describe` (Pod, ConfigMap, Namespace, Secret, Job, Deployment, ReplicaSet, Node with their Events, and
//! kubectl's generic describer for every other kind); `explain` (kubectl's OpenAPI v3 template: field paths,
//! `--recursive`, `--api-version`); `delete` (names, `-l`, `--all`, `-f`, `--grace-period`, `--force`,
//! `--wait`); `create -f`, `create namespace|configmap|secret generic|job`; `apply -f` (files, directories, `-`,
//! client-side with the last-applied annotation and a three-way strategic merge patch, `--server-side`); `edit`;
//! `label`; `annotate`; `logs` (`-c`, `--tail`, `--previous`, `--timestamps`, `-f`, TYPE/NAME); `exec` (`-i`, `-c`,
//! `-t` with raw mode and resize); `run` (`--image`, `--restart`, `--env`, `--labels`, `--command`, `-i --rm`, `-it`
//! on a terminal); `wait` (`--for=condition=…|delete|jsonpath=…`, `--timeout`); `port-forward` (`--address`); `cp`
//! (both ways); `debug` (ephemeral containers, profiles, `-i`, `-it` on a terminal; `--copy-to` with its flags;
//! `node/NAME`: kubectl 1.33's node debugging Pod per profile); `patch` (strategic, merge, json); `attach`; `scale`
//! (the scale subresource, `--current-replicas`, `--resource-version`); kubectl's messages for an unknown flag, an unknown shorthand, a flag without its argument and a number
//! flag given something else.
//!
//! `--sort-by` is kubectl's: one Table's rows are sorted (a field no row has prints nothing, as kubectl ignores
//! that printer error); several Tables (kinds or names) are first sorted as objects themselves, so a field of the
//! objects (`.metadata.name`) is kubectl's `couldn't find any field with path …` error; `-o name|json|…` sorts the
//! whole List across kinds, with that error when no object has the field; `get -w` sorts its first Table only.
//! Along with it, `get` keeps kubectl's ways: names carry their kind when several kinds were listed (even one with
//! nothing), a list the server refuses names the resource and selectors and the other kinds still print, `-w`
//! takes one type, and `TYPE NAME TYPE/NAME` is kubectl's error.
//!
//! Global flags `--request-timeout` (client-go's parsing and error; each raw request is bounded whole, as Go's
//! client timeout bounds kubectl's, with `timeout=` in its query; `get -w` then ends with 0 and `logs -f` with
//! `context deadline exceeded`, which kubectl sometimes follows with Go's `(Client.Timeout or context
//! cancellation while reading body)`; what the kube client requests itself — the Pod reads and websocket streams
//! of `exec`, `cp`, `port-forward`, `run -i`, `debug -i` — only in connecting, as kubectl does not cut those
//! streams either) and `--chunk-size` (`get` and
//! `describe`, before or after the verb; `get` follows the server's `continue` pages; `describe` ignores it).
//!
//! Not done (beyond what issue 11 names): `explain --output=plaintext-openapiv2`; describers of kinds k1s does not
//! serve (ServiceAccount, StatefulSet, …) and the Service describer (kubectl's reads EndpointSlices, which k1s does
//! not serve); `debug --custom` and `debug -f`.

mod api;
mod config;
mod cp;
mod debug;
mod describe;
mod edit;
mod exec;
mod explain;
mod get;
mod gosort;
mod info;
mod portforward;
mod printers;
mod runwait;
mod scale;
mod write;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

pub use config::Global;

/// The verbs `k1s <verb>` hands to this module (the server's own subcommands win over these).
pub const VERBS: &[&str] =
    &["get", "delete", "create", "apply", "label", "annotate", "logs", "exec", "run", "wait", "edit", "describe", "port-forward", "cp", "debug", "patch", "version", "cluster-info", "api-resources", "explain", "attach", "scale"];

#[derive(Parser, Debug)]
#[command(name = "kubectl", disable_version_flag = true, disable_help_subcommand = true)]
struct Kubectl {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Display one or many resources.
    Get(get::GetArgs),
    /// Delete resources by file names, resources and names, or by resources and label selector.
    Delete(write::DeleteArgs),
    /// Create a resource from a file or from stdin, or one of the generators.
    Create(write::CreateArgs),
    /// Apply a configuration to a resource by file name or stdin.
    Apply(write::ApplyArgs),
    /// Update the labels on a resource.
    Label(write::MetaArgs),
    /// Update the annotations on a resource.
    Annotate(write::MetaArgs),
    /// Print the logs for a container in a pod.
    Logs(write::LogsArgs),
    /// Execute a command in a container.
    Exec(exec::ExecArgs),
    /// Show details of a specific resource or group of resources.
    Describe(describe::DescribeArgs),
    /// Edit a resource on the server.
    Edit(edit::EditArgs),
    /// Create debugging sessions for troubleshooting workloads.
    Debug(debug::DebugArgs),
    /// Update fields of a resource.
    Patch(write::PatchArgs),
    /// Copy files and directories to and from containers.
    Cp(cp::CpArgs),
    /// Forward one or more local ports to a pod.
    PortForward(portforward::PortForwardArgs),
    /// Run a particular image on the cluster.
    Run(runwait::RunArgs),
    /// Wait for a specific condition on one or many resources.
    Wait(runwait::WaitArgs),
    /// Print the client and server version information.
    Version(info::VersionArgs),
    /// Display cluster information.
    ClusterInfo,
    /// Print the supported API resources on the server.
    ApiResources(info::ApiResourcesArgs),
    /// Get documentation for a resource.
    Explain(explain::ExplainArgs),
    /// Attach to a running container.
    Attach(exec::AttachArgs),
    /// Set a new size for a deployment or replica set.
    Scale(scale::ScaleArgs),
}

/// A failure whose text is already what kubectl prints (no `error: ` added).
#[derive(Debug)]
pub struct Fail(pub String);

impl Fail {
    pub fn msg(s: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Fail(s.into()))
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fail {}

/// An exit with this code and nothing printed (kubectl's interrupt handler: a signal ends `get -w` with 1).
#[derive(Debug)]
pub struct Silent(pub i32);

impl std::fmt::Display for Silent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Silent {}

/// The line kubectl's `CheckErr` prints for an error.
pub fn render_error(e: &anyhow::Error) -> String {
    if let Some(f) = e.downcast_ref::<Fail>() {
        return f.0.clone();
    }
    if let Some(c) = e.downcast_ref::<exec::ExitCode>() {
        return c.to_string();
    }
    if let Some(a) = e.downcast_ref::<api::ApiError>() {
        return a.to_string();
    }
    format!("error: {e:#}")
}

/// kubectl's `CheckErr` over an aggregate: every error but the last printed, the last one the verb's failure.
pub fn finish(errors: Vec<anyhow::Error>) -> anyhow::Result<()> {
    let n = errors.len();
    for (i, e) in errors.into_iter().enumerate() {
        if i + 1 == n {
            return Err(e);
        }
        eprintln!("{}", render_error(&e));
    }
    Ok(())
}

/// Standard output, written as each verb goes (kubectl streams too; a later error does not hold back rows).
pub struct Out;

impl Out {
    pub fn stdout(&mut self, s: &str) {
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(s.as_bytes());
        let _ = o.flush();
    }
}

/// What every verb gets: the connected cluster and the global flags.
pub struct Ctx {
    pub client: kube::Client,
    pub namespace: String,
    pub server_url: String,
    /// `--chunk-size` (`get`): list in pages of this many (0: whole lists); kubectl's default is 500.
    pub chunk_size: i64,
}

impl Ctx {
    pub async fn resources(&self) -> anyhow::Result<Vec<api::Resource>> {
        api::discover(&self.client).await
    }
}

/// Percent-encode a query value as Go's `url.QueryEscape` does.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// If this command line is a kubectl one, run it and return the exit code: argv[0] `kubectl`, `k1s kubectl …`,
/// or `k1s <verb> …` for a verb in [`VERBS`] (or a leading kubectl global flag).
pub fn dispatch() -> Option<i32> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.first().map(std::path::Path::new).and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("");
    let rest: Vec<OsString> = if argv0 == "kubectl" {
        args[1..].to_vec()
    } else {
        let first = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
        let global_flag = ["--kubeconfig", "--context", "-n", "--namespace", "--request-timeout", "--chunk-size"].iter().any(|f| first == *f || first.starts_with(&format!("{f}=")));
        if first == "kubectl" {
            args[2..].to_vec()
        } else if VERBS.contains(&first) || NOT_YET.contains(&first) || global_flag {
            args[1..].to_vec()
        } else {
            return None;
        }
    };
    Some(run(rest))
}

/// kubectl's other commands: not in this subset yet. Each gets a clear error instead of a parse error.
const NOT_YET: &[&str] = &[
    "expose", "set", "rollout", "autoscale", "certificate", "top", "cordon", "uncordon", "drain", "taint", "proxy", "auth",
    "events", "diff", "replace", "kustomize", "completion", "alpha", "api-versions", "config", "plugin",
];

/// Parse and run one kubectl command line (without the program name); returns the exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    let words: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    match verb_word(&words) {
        Some(v) if NOT_YET.contains(&v) => {
            eprintln!(
                "error: \"kubectl {v}\" is not in k1s's kubectl subset yet; a stock kubectl works against this server with the same kubeconfig"
            );
            return 1;
        }
        Some(v) if !VERBS.contains(&v) && !["help", "options"].contains(&v) && !v.contains('=') => {
            // kubectl looks for a plugin first, which refuses flags before its name.
            match words.first().filter(|w| w.starts_with('-')) {
                Some(flag) => eprintln!("Error: flags cannot be placed before plugin name: {flag}"),
                None => eprintln!("Error: unknown command \"{v}\" for \"kubectl\""),
            }
            return 1;
        }
        _ => {}
    }
    let args = if args.iter().any(|a| a == "debug") { debug::normalise_args(args) } else { args };
    let args = match bool_values(args) {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return 1;
        }
    };
    let cli = match Kubectl::try_parse_from(std::iter::once(OsString::from("kubectl")).chain(args.iter().cloned())) {
        Ok(c) => c,
        Err(e) => {
            if let Some(msg) = flag_error(&e, &args) {
                eprintln!("{msg}");
                return 1;
            }
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    // `--chunk-size` is global here (cobra takes a verb's flag before the verb too), kubectl's only on these verbs.
    if cli.global.chunk_size.is_some() && !matches!(cli.verb, Verb::Get(_) | Verb::Describe(_)) {
        let words: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
        let root = <Kubectl as clap::CommandFactory>::command();
        let verb = verb_word(&words).and_then(|v| root.find_subcommand(v)).map(|c| c.get_name().to_string()).unwrap_or_default();
        eprintln!("error: unknown flag: --chunk-size\nSee 'kubectl {verb} --help' for usage.");
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let code = match rt.block_on(execute(cli)) {
        Ok(()) => 0,
        Err(e) if e.downcast_ref::<Silent>().is_some() => e.downcast_ref::<Silent>().map_or(1, |s| s.0),
        Err(e) => {
            eprintln!("{}", render_error(&e));
            // `exec` exits with the remote command's code, as kubectl does.
            e.downcast_ref::<exec::ExitCode>().map_or(1, |c| c.0)
        }
    };
    // A read of our stdin may still block (`exec -i` whose command ended first): do not wait for it.
    rt.shutdown_background();
    code
}

/// The verb of a command line: the first word that is no flag and no global flag's value.
fn verb_word<'a>(args: &[&'a str]) -> Option<&'a str> {
    let mut words = args.iter();
    while let Some(a) = words.next() {
        if *a == "--" {
            return None;
        }
        if !a.starts_with('-') {
            return Some(a);
        }
        if ["--kubeconfig", "--context", "-n", "--namespace", "--cache-dir", "-v", "--v", "--request-timeout", "--chunk-size"].contains(a) {
            words.next();
        }
    }
    None
}

/// pflag lets a bool flag take a value (`--rm=true`, `--show-labels=false`, `-i=true`); clap's `SetTrue` flags
/// take none. Rewrite those to what clap takes (`--rm`, or nothing for false) before parsing. Only flags that are
/// bools of the command line's verb (or its sub-verbs) or global are touched, and only values pflag's
/// `strconv.ParseBool` accepts; anything else reaches clap unchanged.
fn bool_values(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let root = <Kubectl as clap::CommandFactory>::command();
    let words: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    let verb = verb_word(&words).and_then(|v| root.find_subcommand(v));
    let mut commands = vec![&root];
    if let Some(v) = verb {
        commands.push(v);
        commands.extend(v.get_subcommands());
    }
    let bool_arg = |name: &str| {
        commands.iter().flat_map(|c| c.get_arguments()).find(|a| {
            matches!(a.get_action(), clap::ArgAction::SetTrue)
                && (a.get_long() == Some(name) || (name.chars().count() == 1 && a.get_short() == name.chars().next()))
        })
    };
    let mut out = Vec::with_capacity(args.len());
    let mut rest = false;
    for arg in args {
        let flag = arg.to_str().filter(|_| !rest).and_then(|a| {
            let flag = a.strip_prefix("--").or_else(|| a.strip_prefix('-'))?;
            let (name, value) = flag.split_once('=')?;
            Some((a[..a.len() - flag.len()].to_string() + name, value, bool_arg(name)?))
        });
        let Some((flag, value, spec)) = flag else {
            rest |= arg == "--";
            out.push(arg);
            continue;
        };
        match value {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => out.push(OsString::from(flag)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => {}
            _ => {
                // pflag: `invalid argument "x" for "-A, --all-namespaces" flag: strconv.ParseBool: …`.
                let long = spec.get_long().map(|l| format!("--{l}")).unwrap_or_default();
                let name = match spec.get_short() {
                    Some(c) if !long.is_empty() => format!("-{c}, {long}"),
                    Some(c) => format!("-{c}"),
                    None => long,
                };
                let see = match verb {
                    Some(v) => format!("See 'kubectl {} --help' for usage.", v.get_name()),
                    None => "See 'kubectl --help' for usage.".to_string(),
                };
                return Err(format!(
                    "error: invalid argument {value:?} for {name:?} flag: strconv.ParseBool: parsing {value:?}: invalid syntax\n{see}"
                ));
            }
        }
    }
    Ok(out)
}

/// kubectl's (cobra and pflag's) wording for the commonest flag mistakes, in place of clap's: an unknown flag,
/// an unknown shorthand, a flag without its argument. `None` for every other parse error (clap's text stays).
fn flag_error(e: &clap::Error, args: &[OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    let root = <Kubectl as clap::CommandFactory>::command();
    let verb = verb_word(&args).and_then(|a| root.find_subcommand(a)).map(|c| c.get_name().to_string());
    let see = match &verb {
        Some(v) => format!("See 'kubectl {v} --help' for usage."),
        None => "See 'kubectl --help' for usage.".to_string(),
    };
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => return None,
    };
    match e.kind() {
        ErrorKind::UnknownArgument => {
            if let Some(long) = arg.strip_prefix("--") {
                let name = long.split('=').next().unwrap_or(long);
                return Some(format!("error: unknown flag: --{name}\n{see}"));
            }
            // `-w=x` is a bool shorthand given a value, which clap cannot say the way pflag does: its text stays.
            let c = arg.strip_prefix('-')?.chars().next().filter(|c| *c != '=')?;
            // pflag names the whole word the letter came in (`-Zx`).
            let word = args.iter().find(|a| !a.starts_with("--") && a.starts_with('-') && a[1..].contains(c)).copied().unwrap_or(&arg);
            Some(format!("error: unknown shorthand flag: '{c}' in {word}\n{see}"))
        }
        ErrorKind::ValueValidation => {
            // pflag's `invalid argument "abc" for "--tail" flag: …` with Go's strconv error for a number.
            let err = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::num::ParseIntError>())?;
            let why = match err.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
                _ => "invalid syntax",
            };
            let Some(ContextValue::String(value)) = e.get(ContextKind::InvalidValue) else { return None };
            let long = arg.strip_prefix("--")?.split(' ').next()?.to_string();
            let cmd = verb.as_deref().and_then(|v| root.find_subcommand(v));
            let spec = cmd.into_iter().flat_map(|c| c.get_arguments()).chain(root.get_arguments()).find(|a| a.get_long() == Some(long.as_str()))?;
            // kubectl's `run --port` is a string flag it converts later, with Go's Atoi and no usage line.
            if verb.as_deref() == Some("run") && long == "port" {
                return Some(format!("error: strconv.Atoi: parsing {value:?}: {why}"));
            }
            let name = match spec.get_short() {
                Some(c) => format!("-{c}, --{long}"),
                None => format!("--{long}"),
            };
            Some(format!("error: invalid argument {value:?} for {name:?} flag: strconv.ParseInt: parsing {value:?}: {why}\n{see}"))
        }
        ErrorKind::InvalidValue if matches!(e.get(ContextKind::InvalidValue), Some(ContextValue::String(v)) if v.is_empty()) => {
            // `--selector <SELECTOR>`: find the flag among the verb's and the global ones.
            let long = arg.strip_prefix("--")?.split(' ').next()?.to_string();
            let cmd = verb.as_deref().and_then(|v| root.find_subcommand(v));
            let spec = cmd.into_iter().flat_map(|c| c.get_arguments()).chain(root.get_arguments()).find(|a| a.get_long() == Some(long.as_str()))?;
            // A global flag's error comes from the root command: cobra capitalises it there (`--chunk-size` is
            // a verb's flag in kubectl).
            let prefix = if spec.is_global_set() && long != "chunk-size" { "Error" } else { "error" };
            let typed_long = args.contains(&format!("--{long}").as_str());
            match spec.get_short() {
                Some(c) if !typed_long => Some(format!("{prefix}: flag needs an argument: '{c}' in -{c}\n{see}")),
                _ => Some(format!("{prefix}: flag needs an argument: --{long}\n{see}")),
            }
        }
        _ => None,
    }
}

async fn execute(cli: Kubectl) -> anyhow::Result<()> {
    let mut out = Out;
    // `version` prints the client line even when no server answers.
    if let Verb::Version(a) = &cli.verb {
        return info::version(&cli.global, a, &mut out).await;
    }
    let cluster = config::connect(&cli.global).await?;
    let ctx = Ctx {
        client: cluster.client,
        namespace: cluster.namespace,
        server_url: cluster.server_url,
        chunk_size: cli.global.chunk_size.unwrap_or(500),
    };
    match &cli.verb {
        Verb::Get(a) => get::run(&ctx, a, &mut out).await,
        Verb::Delete(a) => write::delete(&ctx, a, &mut out).await,
        Verb::Create(a) => write::create(&ctx, a, &mut out).await,
        Verb::Apply(a) => write::apply(&ctx, a, &mut out).await,
        Verb::Label(a) => write::meta(&ctx, a, "labels", &mut out).await,
        Verb::Annotate(a) => write::meta(&ctx, a, "annotations", &mut out).await,
        Verb::Logs(a) => write::logs(&ctx, a, &mut out).await,
        Verb::Exec(a) => exec::run(&ctx, a).await,
        Verb::Describe(a) => describe::run(&ctx, a, &mut out).await,
        Verb::Edit(a) => edit::run(&ctx, a, &mut out).await,
        Verb::Debug(a) => debug::run(&ctx, a, &mut out).await,
        Verb::Patch(a) => write::patch(&ctx, a, &mut out).await,
        Verb::Cp(a) => cp::run(&ctx, a, &mut out).await,
        Verb::PortForward(a) => portforward::run(&ctx, a, &mut out).await,
        Verb::Run(a) => runwait::run(&ctx, a, &mut out).await,
        Verb::Wait(a) => runwait::wait(&ctx, a, &mut out).await,
        Verb::ClusterInfo => info::cluster_info(&ctx, &mut out).await,
        Verb::ApiResources(a) => info::api_resources(&ctx, a, &mut out).await,
        Verb::Explain(a) => explain::run(&ctx, a, &mut out).await,
        Verb::Attach(a) => exec::attach(&ctx, a, &mut out).await,
        Verb::Scale(a) => scale::run(&ctx, a, &mut out).await,
        Verb::Version(_) => unreachable!("handled above"),
    }
}
