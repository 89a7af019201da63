//! Which cluster the kubectl verbs talk to: the kubeconfig in kubectl's order (`--kubeconfig`, `$KUBECONFIG`,
//! `~/.kube/config`), then the local server's `<default data dir>/kubeconfig.yaml`, so that `k1s get pods` works
//! on the server's own box with no setup.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The global flags every verb takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Global {
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// If present, the namespace scope for this CLI request.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Accepted for kubectl compatibility: k1s keeps no discovery cache on disk.
    #[arg(long = "cache-dir", global = true, hide = true)]
    pub cache_dir: Option<PathBuf>,
    /// Accepted for kubectl compatibility (log verbosity); k1s logs nothing extra.
    #[arg(short = 'v', long = "v", global = true, hide = true)]
    pub verbosity: Option<u32>,
    /// The length of time to wait before giving up on a single server request. Non-zero values should contain a
    /// corresponding time unit (e.g. 1s, 2m, 3h). A value of zero means don't timeout requests.
    #[arg(long = "request-timeout", global = true, value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// `get` and `describe`: return large lists in chunks rather than all at once (0: disable chunking). kubectl's
    /// is a flag of those verbs, which cobra also takes before the verb; any other verb refuses it as kubectl does.
    #[arg(long = "chunk-size", global = true, hide = true, allow_negative_numbers = true)]
    pub chunk_size: Option<i64>,
}

/// `--request-timeout`: `None` for none, kubectl's error for a value client-go does not take.
pub fn request_timeout(global: &Global) -> anyhow::Result<Option<std::time::Duration>> {
    match global.request_timeout.as_deref().filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => parse_timeout(t).ok_or_else(|| {
            super::Fail::msg("error: Invalid timeout value. Timeout must be a single integer in seconds, or an integer followed by a corresponding time unit (e.g. 1s | 2m | 3h)")
        }),
    }
}

/// client-go's `ParseTimeout`: a non-negative integer is seconds, anything else Go's `time.ParseDuration`; `None`
/// for what neither takes. `Some(None)` when there is no timeout (zero or negative).
pub fn parse_timeout(s: &str) -> Option<Option<std::time::Duration>> {
    use std::time::Duration;
    if let Ok(i) = s.parse::<i64>() {
        if i >= 0 {
            return Some(Some(Duration::from_secs(i as u64)).filter(|d| !d.is_zero()));
        }
    }
    let nanos = go_parse_duration(s)?;
    Some((nanos > 0).then(|| Duration::from_nanos(nanos as u64)))
}

/// Go's `time.ParseDuration` in nanoseconds: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` or a lone `0`; `None` on a
/// syntax error, an unknown unit or an overflow of int64.
fn go_parse_duration(s: &str) -> Option<i128> {
    let (neg, mut s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int = &s[..int_len];
        s = &s[int_len..];
        let mut frac = "";
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac = &rest[..n];
            s = &rest[n..];
            if int.is_empty() && frac.is_empty() {
                return None;
            }
        } else if int.is_empty() {
            return None;
        }
        let unit_len = s.bytes().take_while(|b| *b != b'.' && !b.is_ascii_digit()).count();
        let unit: i128 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[unit_len..];
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok().filter(|v: &i128| *v <= i64::MAX as i128)? };
        let mut part = whole.checked_mul(unit)?;
        if !frac.is_empty() {
            // Go keeps the fraction's leading digits (up to int64) and scales them by the unit.
            let digits = &frac[..frac.len().min(18)];
            let f: i128 = digits.parse().ok()?;
            part += f * unit / 10i128.pow(digits.len() as u32);
        }
        total += part;
        if total > i64::MAX as i128 + i128::from(neg) {
            return None;
        }
    }
    Some(if neg { -total } else { total })
}

/// Go's `time.Duration.String` (`5s`, `2m0s`, `1h0m0s`, `1.5s`, `300ms`), for client-go's `?timeout=` query.
pub fn go_duration(d: std::time::Duration) -> String {
    let u = d.as_nanos();
    if u == 0 {
        return "0s".into();
    }
    let frac = |v: u128, prec: u32| -> (String, u128) {
        let p = 10u128.pow(prec);
        let (whole, f) = (v / p, v % p);
        if f == 0 {
            return (String::new(), whole);
        }
        let digits = format!("{f:0width$}", width = prec as usize);
        (format!(".{}", digits.trim_end_matches('0')), whole)
    };
    if u < 1_000_000_000 {
        let (unit, prec) = if u < 1_000 { ("ns", 0) } else if u < 1_000_000 { ("\u{b5}s", 3) } else { ("ms", 6) };
        let (f, whole) = frac(u, prec);
        return format!("{whole}{f}{unit}");
    }
    let (f, secs) = frac(u, 9);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}{f}s")
    } else if secs >= 60 {
        format!("{m}m{s}{f}s")
    } else {
        format!("{s}{f}s")
    }
}

/// The kubeconfig files in kubectl's precedence order; `$KUBECONFIG` may list several (merged, first wins).
pub fn kubeconfig_paths(global: &Global, data_dir: &Path) -> Vec<PathBuf> {
    if let Some(p) = &global.kubeconfig {
        return vec![p.clone()];
    }
    if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let paths: Vec<PathBuf> = std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()).collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".kube/config");
        if p.exists() {
            return vec![p];
        }
    }
    vec![data_dir.join("kubeconfig.yaml")]
}

/// A connected client plus what the verbs need from the kubeconfig.
pub struct Cluster {
    pub client: kube::Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// The server URL as the kubeconfig names it (`cluster-info` prints it).
    pub server_url: String,
}

pub async fn connect(global: &Global) -> anyhow::Result<Cluster> {
    let paths = kubeconfig_paths(global, Path::new(crate::DEFAULT_DATA_DIR));
    let mut merged: Option<Kubeconfig> = None;
    for p in &paths {
        // `$KUBECONFIG` entries that do not exist are skipped, as kubectl does; an explicit file must exist.
        if global.kubeconfig.is_none() && !p.exists() && paths.len() > 1 {
            continue;
        }
        // kubectl's wording: a missing file is a failed stat, an unreadable one a failed load.
        if !p.exists() {
            return Err(super::Fail::msg(format!("error: stat {}: no such file or directory", p.display())));
        }
        let kc = Kubeconfig::read_from(p)
            .map_err(|e| super::Fail::msg(format!("error: error loading config file \"{}\": {}", p.display(), std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string()))))?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m.merge(kc)?,
        });
    }
    let kc = merged.context("no kubeconfig found")?;
    if let Some(ctx) = &global.context {
        if !kc.contexts.iter().any(|c| &c.name == ctx) {
            return Err(super::Fail::msg(format!("Error in configuration: context was not found for specified context: {ctx}")));
        }
    }
    let opts = KubeConfigOptions { context: global.context.clone(), cluster: None, user: None };
    let mut config = kube::Config::from_custom_kubeconfig(kc, &opts).await?;
    // kubectl's own client timeout is none; kube's default read timeout would cut `logs -f` and `get -w`.
    config.read_timeout = None;
    // `--request-timeout`, checked where client-go checks it (after the context). The raw requests of the verbs
    // are bounded whole (see `api::call_text`); the kube client's own (`exec`, `cp`, `port-forward`, `run`,
    // `debug`) are bounded in connecting, as kubectl's streams are not cut either.
    if let Some(t) = request_timeout(global)? {
        super::api::set_request_timeout(t);
        config.connect_timeout = Some(t);
    }
    let server_url = config.cluster_url.to_string().trim_end_matches('/').to_string();
    let namespace = global.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)?;
    Ok(Cluster { client, namespace, server_url })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_then_the_data_dir_is_the_last_resort() {
        let g = Global { kubeconfig: Some("/x/k".into()), ..Default::default() };
        assert_eq!(kubeconfig_paths(&g, Path::new("/d")), vec![PathBuf::from("/x/k")]);
    }

    #[test]
    fn request_timeouts_parse_and_print_as_client_go_does() {
        use std::time::Duration;
        assert_eq!(parse_timeout("5"), Some(Some(Duration::from_secs(5))));
        assert_eq!(parse_timeout("0"), Some(None));
        assert_eq!(parse_timeout("0s"), Some(None));
        assert_eq!(parse_timeout("-1s"), Some(None));
        assert_eq!(parse_timeout("1.5s"), Some(Some(Duration::from_millis(1500))));
        assert_eq!(parse_timeout("1h2m"), Some(Some(Duration::from_secs(3720))));
        assert_eq!(parse_timeout(".5ms"), Some(Some(Duration::from_micros(500))));
        for bad in ["-1", "abc", "1x", "5 s", "", ".s", "1.", "s", "9999999999999999999s"] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
        assert_eq!(parse_timeout("1."), None);
        let s = |d: Duration| go_duration(d);
        assert_eq!(s(Duration::from_secs(5)), "5s");
        assert_eq!(s(Duration::from_secs(120)), "2m0s");
        assert_eq!(s(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(s(Duration::from_millis(1500)), "1.5s");
        assert_eq!(s(Duration::from_millis(300)), "300ms");
        assert_eq!(s(Duration::from_micros(1)), "1\u{b5}s");
        assert_eq!(s(Duration::from_nanos(1)), "1ns");
    }
}
