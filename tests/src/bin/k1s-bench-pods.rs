//! `k1s-bench-pods`: the Pod benchmark. Starts the real `k1s` binary (release: `K1S_BIN` or
//! target/release/k1s) as root and measures, through a watch as a user would see it: Pod create → all
//! containers running (sequential, warm busybox image), a burst of 100 Pods, Pod network setup (from the
//! agent's own timing), server RSS growth per running Pod, shim RSS, and deleting the burst. Prints a
//! markdown table with p50/p99; reproduce with the command in BENCHMARKS.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k1s_tests::bench::{cpu_ms, ms, pct, rss_kb, shim_pids};
use k1s_tests::{require_root, Identity, Server};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

/// Busy CPU time of the whole machine (all cores), in ms.
fn total_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system irq softirq steal (idle and iowait excluded).
    [0usize, 1, 2, 5, 6, 7].iter().map(|i| f.get(*i).unwrap_or(&0)).sum::<u64>() * 10
}

/// Anonymous memory (heap and stacks: what the server allocates, not the binary's pages) from smaps_rollup, in KB.
fn anon_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    s.lines().find(|l| l.starts_with("Anonymous:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}]},
    }))
    .expect("pod")
}

fn running(p: &Pod) -> bool {
    let st = p.status.as_ref();
    let n = p.spec.as_ref().map(|s| s.containers.len()).unwrap_or(0);
    let cs = st.and_then(|s| s.container_statuses.as_ref());
    cs.is_some_and(|cs| cs.len() == n && cs.iter().all(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    require_root();
    // The agent logs each Pod network's setup time at debug level; we read it back from the server log.
    std::env::set_var("RUST_LOG", "info,k1s_agent::network=debug");
    let tmp = tempfile::Builder::new().prefix("k1s-bench-pods-").tempdir()?;
    let dir = tmp.path().join("data");
    let server = tokio::task::spawn_blocking({
        let dir = dir.clone();
        // 141 Pods run at once here: more than the kubelet's default of 110 the scheduler would hold to.
        // K1S_BENCH_ARGS adds server flags (e.g. "--store-cache-mb 1") to compare settings.
        let extra = std::env::var("K1S_BENCH_ARGS").unwrap_or_default();
        move || {
            let mut args = vec!["--max-pods", "250"];
            args.extend(extra.split_whitespace());
            Server::start_with(&dir, Identity::unique(), "127.0.0.1:0", &args)
        }
    })
    .await??;
    let pid = server.pid().context("pid")?;
    let client = server.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // A watch records when each Pod is first seen with all containers running.
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let w = {
        let (seen, api) = (seen.clone(), pods.clone());
        tokio::spawn(async move {
            let mut s = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = s.next().await {
                if let Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) = ev {
                    if running(&p) {
                        seen.lock().unwrap().entry(p.metadata.name.clone().unwrap_or_default()).or_insert_with(Instant::now);
                    }
                }
            }
        })
    };
    let wait_running = |names: Vec<String>, timeout: Duration| {
        let seen = seen.clone();
        async move {
            let deadline = Instant::now() + timeout;
            loop {
                {
                    let s = seen.lock().unwrap();
                    if names.iter().all(|n| s.contains_key(n)) {
                        return Ok(names.iter().map(|n| s[n]).collect::<Vec<_>>());
                    }
                }
                anyhow::ensure!(Instant::now() < deadline, "pods not running within {timeout:?}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };

    // Warm-up: the first Pod pays for page cache and the like.
    pods.create(&PostParams::default(), &pod("warm")).await?;
    wait_running(vec!["warm".into()], Duration::from_secs(30)).await?;
    let idle_rss = rss_kb(pid);
    let idle_anon = anon_kb(pid);
    if let Some(secs) = std::env::var("K1S_BENCH_HOLD_IDLE").ok().and_then(|s| s.parse().ok()) {
        eprintln!("holding {secs} s idle (1 Pod running): server pid {pid}");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }

    let mut seq = Vec::new();
    for i in 0..40 {
        let name = format!("seq-{i}");
        let t = Instant::now();
        pods.create(&PostParams::default(), &pod(&name)).await?;
        let at = wait_running(vec![name], Duration::from_secs(30)).await?;
        seq.push(at[0].duration_since(t));
    }

    let names: Vec<String> = (0..100).map(|i| format!("burst-{i}")).collect();
    let net_before_burst = server.log().lines().filter(|l| l.contains("pod network set up")).count();
    let cpu0 = (cpu_ms(pid), total_cpu_ms());
    let t = Instant::now();
    let mut creates = Vec::new();
    for chunk in names.chunks(25) {
        let (api, chunk) = (pods.clone(), chunk.to_vec());
        creates.push(tokio::spawn(async move {
            for n in chunk {
                api.create(&PostParams::default(), &pod(&n)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for c in creates {
        c.await??;
    }
    let ats = wait_running(names.clone(), Duration::from_secs(120)).await?;
    let burst = ats.iter().max().copied().unwrap_or(t).duration_since(t);
    let (server_cpu, all_cpu) = (cpu_ms(pid) - cpu0.0, total_cpu_ms() - cpu0.1);
    let running_pods = 1 + 40 + 100;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded_rss = rss_kb(pid);
    let loaded_anon = anon_kb(pid);
    // K1S_BENCH_HOLD=SECS keeps the loaded server as it is for that long (to attach a profiler or read smaps;
    // K1S_BENCH_HOLD_IDLE the same before the first measured Pod).
    if let Some(secs) = std::env::var("K1S_BENCH_HOLD").ok().and_then(|s| s.parse().ok()) {
        eprintln!("holding {secs} s with {running_pods} Pods running: server pid {pid}");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    let mut shims: Vec<u64> = shim_pids(&dir).into_iter().map(rss_kb).collect();
    shims.sort_unstable();

    let t = Instant::now();
    pods.delete_collection(&DeleteParams::default(), &ListParams::default().labels("bench=pods")).await?;
    loop {
        if pods.list(&ListParams::default().labels("bench=pods")).await?.items.is_empty() {
            break;
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "pods not deleted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let teardown = t.elapsed();
    w.abort();

    // Network setup times the agent logged (`total_us=`).
    let mut net: Vec<Duration> = server
        .log()
        .lines()
        .filter(|l| l.contains("pod network set up"))
        .filter_map(|l| l.split("total_us=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .map(Duration::from_micros)
        .collect();
    // Sequential setups (warm-up + 40) alone; during the burst a setup's time is mostly waiting for a CPU.
    let mut net_burst = net.split_off(net_before_burst.min(net.len()));

    println!("k1s-bench-pods: {} cores, kernel {}\n", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim());
    println!("| what | p50 | p99 | throughput | goal |\n|---|---|---|---|---|");
    let mut s2 = seq.clone();
    println!("| Pod create → running, sequential (40 Pods, busybox, warm) | {} | {} | – | p50 ≤ 30 ms, p99 ≤ 150 ms |", ms(pct(&mut s2, 0.5)), ms(pct(&mut seq, 0.99)));
    println!("| burst: 100 Pods created by 4 clients → all running | {} | – | {:.0} Pods/s | ≥ 100 Pods/s |", ms(burst), 100.0 / burst.as_secs_f64());
    let mut n2 = net.clone();
    println!("| Pod network setup, sequential (netns + veth + IP + routes; {} samples) | {} | {} | – | p99 ≤ 5 ms |", net.len(), ms(pct(&mut n2, 0.5)), ms(pct(&mut net, 0.99)));
    let mut nb2 = net_burst.clone();
    println!("| Pod network setup during the burst (incl. waiting for a CPU; {} samples) | {} | {} | – | – |", net_burst.len(), ms(pct(&mut nb2, 0.5)), ms(pct(&mut net_burst, 0.99)));
    println!("| CPU during the burst: k1s server / whole machine | {server_cpu} ms | {all_cpu} ms | – | – |");
    println!(
        "| server RSS growth per running Pod ({} → {} KB over {} Pods; anonymous {} → {} KB) | {:.0} KB | – | – | ≤ 100 KB |",
        idle_rss,
        loaded_rss,
        running_pods - 1,
        idle_anon,
        loaded_anon,
        (loaded_rss.saturating_sub(idle_rss)) as f64 / (running_pods - 1) as f64
    );
    let median = shims.get(shims.len() / 2).copied().unwrap_or(0);
    let max = shims.last().copied().unwrap_or(0);
    println!("| shim RSS ({} shims) | {} KB | max {} KB | – | ≤ 2 MB |", shims.len(), median, max);
    println!("| delete 141 Pods → all gone (grace 1 s, SIGTERM handled) | {} | – | {:.0} Pods/s | – |", ms(teardown), running_pods as f64 / teardown.as_secs_f64());
    drop(server);
    Ok(())
}
