//! `k1s-bench-deploy`: the Deployment benchmark. Starts the real `k1s` binary (release: `K1S_BIN` or
//! target/release/k1s) as root and measures, through a watch as a user would see it, a Deployment of 50 replicas
//! from the create request to all 50 available, then a rolling update of all 50 (an env change; maxSurge 25%,
//! maxUnavailable 25%) from the patch to the rollout's completion (`kubectl rollout status`'s test). Several
//! runs, one Deployment at a time, on a warm image; prints each run and the medians. Reproduce with the
//! command in BENCHMARKS.md.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use k1s_tests::bench::ms;
use k1s_tests::{require_root, Identity, Server};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::watcher;
use serde_json::json;

const REPLICAS: i32 = 50;
const RUNS: usize = 3;

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}]}}},
    }))
    .expect("deployment")
}

/// Upstream `kubectl rollout status`'s test: the latest generation observed, every replica updated and
/// available, no old replica left.
fn rolled_out(d: &Deployment) -> bool {
    let Some(st) = d.status.as_ref() else { return false };
    st.observed_generation >= d.metadata.generation
        && st.updated_replicas == Some(REPLICAS)
        && st.replicas == Some(REPLICAS)
        && st.available_replicas == Some(REPLICAS)
}

async fn wait_rolled_out(stream: &mut (impl futures::Stream<Item = Result<watcher::Event<Deployment>, watcher::Error>> + Unpin), what: &str) -> anyhow::Result<()> {
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(120), stream.next()).await.with_context(|| format!("{what}: not done in 120 s"))? {
        if let watcher::Event::Apply(d) = ev? {
            if rolled_out(&d) {
                return Ok(());
            }
        }
    }
    bail!("{what}: watch ended")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    require_root();
    let tmp = tempfile::Builder::new().prefix("k1s-bench-deploy-").tempdir()?;
    let dir = tmp.path().join("data");
    let server = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || Server::start_in(&dir, Identity::unique(), "127.0.0.1:0")
    })
    .await??;
    let client = server.client().await?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let (mut creates, mut rollouts) = (Vec::new(), Vec::new());
    for run in 0..=RUNS {
        let name = format!("bench-{run}");
        let mut stream = watcher(deploys.clone(), watcher::Config::default().fields(&format!("metadata.name={name}"))).boxed();
        // The watch is established before the create (its first event is the initial, empty list).
        while let Some(ev) = stream.next().await {
            if matches!(ev?, watcher::Event::InitDone) {
                break;
            }
        }
        let t0 = Instant::now();
        deploys.create(&PostParams::default(), &deployment(&name)).await?;
        wait_rolled_out(&mut stream, "create").await?;
        let created = t0.elapsed();
        let t1 = Instant::now();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "RUN", "value": run.to_string()}]}]}}}});
        deploys.patch(&name, &PatchParams::default(), &Patch::Strategic(patch)).await?;
        wait_rolled_out(&mut stream, "rolling update").await?;
        let rolled = t1.elapsed();
        // Run 0 warms the image cache and the allocator; it is reported but not counted.
        println!("run {run}: create → available {}, rolling update → complete {}{}", ms(created), ms(rolled), if run == 0 { " (warm-up, not counted)" } else { "" });
        if run > 0 {
            creates.push(created);
            rollouts.push(rolled);
        }
        let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
        deploys.delete(&name, &dp).await?;
        // Wait until its Pods are gone so runs do not overlap.
        let lp = ListParams::default().labels(&format!("app={name}"));
        let start = Instant::now();
        while !pods.list(&lp).await?.items.is_empty() {
            if start.elapsed() > Duration::from_secs(120) {
                bail!("pods of {name} not removed");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    creates.sort();
    rollouts.sort();
    println!();
    println!("| Deployment ({REPLICAS} replicas, busybox) | median | best | worst |");
    println!("|---|---|---|---|");
    for (what, t) in [("create → 50 available (watch)", &creates), ("rolling update, maxSurge 25% → complete (watch)", &rollouts)] {
        println!("| {what} | {} | {} | {} |", ms(t[t.len() / 2]), ms(t[0]), ms(t[t.len() - 1]));
    }
    drop(server);
    Ok(())
}
