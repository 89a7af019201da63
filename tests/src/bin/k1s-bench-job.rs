//! `k1s-bench-job`: the Job benchmark. Starts the real `k1s` binary (release: `K1S_BIN` or target/release/k1s)
//! as root and measures, through a watch as a user would see it, a Job of 200 completions with parallelism 20
//! running `true`: from the create request to the Complete condition. Several runs, one Job at a time, on a
//! warm image; prints each run and the median. Reproduce with the command in BENCHMARKS.md.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use k1s_tests::bench::ms;
use k1s_tests::{require_root, Identity, Server};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::watcher;
use serde_json::json;

const COMPLETIONS: i32 = 200;
const PARALLELISM: i32 = 20;
const RUNS: usize = 3;

fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"completions": COMPLETIONS, "parallelism": PARALLELISM, "template": {"spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}},
    }))
    .expect("job")
}

fn complete(j: &Job) -> bool {
    j.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    require_root();
    let tmp = tempfile::Builder::new().prefix("k1s-bench-job-").tempdir()?;
    let dir = tmp.path().join("data");
    let server = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || Server::start_in(&dir, Identity::unique(), "127.0.0.1:0")
    })
    .await??;
    let client = server.client().await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let mut times = Vec::new();
    for run in 0..=RUNS {
        let name = format!("bench-{run}");
        let mut stream = watcher(jobs.clone(), watcher::Config::default().fields(&format!("metadata.name={name}"))).boxed();
        // The watch is established before the create (its first event is the initial, empty list).
        while let Some(ev) = stream.next().await {
            if matches!(ev?, watcher::Event::InitDone) {
                break;
            }
        }
        let t0 = Instant::now();
        jobs.create(&PostParams::default(), &job(&name)).await?;
        let mut done = None;
        while let Some(ev) = tokio::time::timeout(Duration::from_secs(120), stream.next()).await.context("job did not finish in 120 s")? {
            if let watcher::Event::Apply(j) = ev? {
                if complete(&j) {
                    done = Some((t0.elapsed(), j));
                    break;
                }
            }
        }
        let Some((took, j)) = done else { bail!("watch ended") };
        let st = j.status.unwrap_or_default();
        if st.succeeded != Some(COMPLETIONS) {
            bail!("run {run}: {:?} succeeded, {:?} failed", st.succeeded, st.failed);
        }
        // Run 0 warms the image cache and the allocator; it is reported but not counted.
        println!("run {run}: {}{}", ms(took), if run == 0 { " (warm-up, not counted)" } else { "" });
        if run > 0 {
            times.push(took);
        }
        let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
        jobs.delete(&name, &dp).await?;
        // Wait until its Pods are gone so runs do not overlap.
        let lp = ListParams::default().labels(&format!("job-name={name}"));
        let start = Instant::now();
        while !pods.list(&lp).await?.items.is_empty() {
            if start.elapsed() > Duration::from_secs(120) {
                bail!("pods of {name} not removed");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    times.sort();
    println!();
    println!("| Job ({COMPLETIONS} completions, parallelism {PARALLELISM}, `true`) | median | best | worst |");
    println!("|---|---|---|---|");
    println!("| create → Complete (watch) | {} | {} | {} |", ms(times[times.len() / 2]), ms(times[0]), ms(times[times.len() - 1]));
    drop(server);
    Ok(())
}
