//! `k1s-bench-stream`: the streaming benchmark. Starts the real `k1s` binary (release: `K1S_BIN` or
//! target/release/k1s) as root and measures, with the kube crate's client as a user's program would: exec
//! round trip (`true` over the WebSocket v5 protocol, request → exit status; and the exec helper alone),
//! `logs -f` throughput to one follower (a container printing 500 000 lines as fast as it can), a follower
//! catching up on a written log, and `logs -f` delivery latency (line written → line received). Prints a
//! markdown table; reproduce with the command in BENCHMARKS.md.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{AsyncBufReadExt, StreamExt};
use k1s_tests::bench::{ms, pct};
use k1s_tests::{require_root, Identity, Server};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, AttachParams, LogParams, PostParams};
use serde_json::json;

fn pod(name: &str, script: &str, restart: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": restart,
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script]}]},
    }))
    .expect("pod")
}

async fn wait_running(pods: &Api<Pod>, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = pods.get(name).await?;
        let running = p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|cs| cs.iter().all(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some()));
        if running {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "pod {name} not running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Follow a Pod's log with timestamps until it ends; each line's arrival time and text.
async fn follow(pods: &Api<Pod>, name: &str) -> anyhow::Result<Vec<(Instant, String)>> {
    let lp = LogParams { follow: true, timestamps: true, ..LogParams::default() };
    let mut lines = pods.log_stream(name, &lp).await?.lines();
    let mut out = Vec::new();
    while let Some(line) = lines.next().await {
        let line = line?;
        out.push((Instant::now(), line));
    }
    Ok(out)
}

fn written(line: &str) -> Timestamp {
    line.split_once(' ').and_then(|(ts, _)| ts.parse().ok()).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    require_root();
    let n_exec: usize = std::env::var("BENCH_EXECS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let n_lines: u64 = std::env::var("BENCH_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    let tmp = tempfile::Builder::new().prefix("k1s-bench-stream-").tempdir()?;
    let dir = tmp.path().join("data");
    let server = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || Server::start_with(&dir, Identity::unique(), "127.0.0.1:0", &[])
    })
    .await??;
    let client = server.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // (a) exec round trip: `true` in a running container, request → exit status on the error channel.
    pods.create(&PostParams::default(), &pod("sleeper", "trap 'exit 0' TERM; sleep 3600 & wait", "Always")).await?;
    wait_running(&pods, "sleeper").await?;
    let ap = AttachParams::default().stdin(false).stdout(true).stderr(true);
    let mut rtt = Vec::new();
    for i in 0..n_exec + 10 {
        let t = Instant::now();
        let mut proc = pods.exec("sleeper", ["true"], &ap).await?;
        let status = proc.take_status().context("status")?.await.context("exit status")?;
        let took = t.elapsed();
        anyhow::ensure!(status.status.as_deref() == Some("Success"), "exec true: {status:?}");
        proc.join().await?;
        // The first ones warm up (page cache, connection pool).
        if i >= 10 {
            rtt.push(took);
        }
    }

    // (a2) the exec helper alone, as the agent starts it: `k1s nsexec DIR -- true` (fork+exec of k1s, join
    // the cgroups and namespaces, fork, exec `true`, wait). The rest of the round trip is the API's part.
    let uid = pods.get("sleeper").await?.metadata.uid.context("uid")?;
    let base = dir.join("pods").join(&uid).join("containers").join("c");
    let attempt = std::fs::read_dir(&base)?.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).max().context("attempt")?;
    let cdir = base.join(attempt.to_string());
    let mut helper = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Duration>> {
        let mut v = Vec::new();
        for i in 0..n_exec + 10 {
            let t = Instant::now();
            let st = std::process::Command::new(k1s_tests::binary()).arg("nsexec").arg(&cdir).args(["--", "true"]).status()?;
            anyhow::ensure!(st.success(), "nsexec true: {st}");
            if i >= 10 {
                v.push(t.elapsed());
            }
        }
        Ok(v)
    })
    .await??;

    // (b) logs -f throughput: the follower is attached before the container starts printing.
    let script = format!("sleep 3; seq 1 {n_lines}");
    pods.create(&PostParams::default(), &pod("printer", &script, "Never")).await?;
    wait_running(&pods, "printer").await?;
    let got = follow(&pods, "printer").await?;
    let numbers: Vec<&str> = got.iter().filter_map(|(_, l)| l.split_once(' ').map(|(_, t)| t)).collect();
    let in_order = numbers.iter().enumerate().all(|(i, n)| *n == (i + 1).to_string());
    let (first, last) = (got.first().context("no line")?, got.last().context("no line")?);
    let span = last.0.duration_since(first.0);
    let follow_rate = (got.len() - 1) as f64 / span.as_secs_f64();
    let wspan = written(&last.1).duration_since(written(&first.1));
    let write_rate = (got.len() - 1) as f64 / wspan.as_secs_f64();

    // (c) catching up: the same (ended) container's log followed from the start; rotation keeps the newest
    // 10 MB plus one older file, so not all lines are there any more.
    let t = Instant::now();
    let lp = LogParams { follow: true, ..LogParams::default() };
    let mut lines = pods.log_stream("printer", &lp).await?.lines();
    let mut caught = 0u64;
    while let Some(l) = lines.next().await {
        l?;
        caught += 1;
    }
    let catch_up = t.elapsed();

    // (d) delivery latency: a line every 20 ms, the shim's stamp (taken when it reads the pipe) against the
    // arrival at the client; both on this machine's clock.
    pods.create(&PostParams::default(), &pod("ticker", "sleep 2; i=0; while [ $i -lt 300 ]; do echo $i; i=$((i+1)); usleep 20000; done", "Never")).await?;
    wait_running(&pods, "ticker").await?;
    let lp = LogParams { follow: true, timestamps: true, ..LogParams::default() };
    let mut lines = pods.log_stream("ticker", &lp).await?.lines();
    let mut lat = Vec::new();
    while let Some(l) = lines.next().await {
        let now = Timestamp::now();
        let l = l?;
        let d = now.duration_since(written(&l));
        lat.push(Duration::from_nanos(d.as_nanos().max(0) as u64));
    }

    println!("k1s-bench-stream: {} cores, kernel {}\n", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim());
    println!("| what | p50 | p99 | throughput | goal |\n|---|---|---|---|---|");
    let mut r2 = rtt.clone();
    println!("| exec round trip: `true` over WebSocket v5, request → exit status ({} runs) | {} | {} | – | p50 ≤ 10 ms |", rtt.len(), ms(pct(&mut r2, 0.5)), ms(pct(&mut rtt, 0.99)));
    let mut h2 = helper.clone();
    println!("| of which the exec helper alone: `k1s nsexec DIR -- true` spawned and waited for ({} runs) | {} | {} | – | – |", helper.len(), ms(pct(&mut h2, 0.5)), ms(pct(&mut helper, 0.99)));
    println!(
        "| `logs -f`, one follower, `seq 1 {n_lines}` ({} lines received, in order: {in_order}) | – | – | {follow_rate:.0} lines/s over {} (the shim wrote them at {write_rate:.0} lines/s) | ≥ 50 000 lines/s |",
        got.len(),
        ms(span)
    );
    println!("| `logs -f` of the ended container: catching up on {caught} lines (current + rotated file) | – | – | {:.0} lines/s in {} | – |", caught as f64 / catch_up.as_secs_f64(), ms(catch_up));
    let mut l2 = lat.clone();
    println!("| `logs -f` delivery latency, shim's stamp → client ({} lines, one per 20 ms) | {} | {} | – | ≤ 100 ms |", lat.len(), ms(pct(&mut l2, 0.5)), ms(pct(&mut lat, 0.99)));
    drop(server);
    Ok(())
}
