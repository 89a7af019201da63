//! `k1s-bench`: the API benchmark. Starts the real `k1s` binary (release build: `K1S_BIN` or
//! target/release/k1s), drives it over HTTPS on loopback with the kube crate, and prints a markdown table with
//! p50/p99 and throughput, plus the machine it ran on. Reproduce with the command in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::BodyExt;
use k1s_tests::bench::{ms, pct, rss_kb};
use k1s_tests::{Identity, Server};
use kube::Client;
use serde_json::json;
use tokio::sync::Mutex;

/// The API benchmark's pods are bound to a node that does not exist, so the agent does not run them: this
/// benchmark measures the API; `k1s-bench-pods` measures running Pods.
const ELSEWHERE: &str = "bench-elsewhere";

struct Row {
    what: String,
    p50: String,
    p99: String,
    rate: String,
    goal: String,
}

async fn send(client: &Client, req: http::Request<Vec<u8>>) -> anyhow::Result<(u16, bytes::Bytes)> {
    let resp = client.send(req.map(kube::client::Body::from)).await?;
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((code, body))
}

fn post(path: &str, body: serde_json::Value) -> http::Request<Vec<u8>> {
    http::Request::post(path).header("content-type", "application/json").body(serde_json::to_vec(&body).unwrap()).unwrap()
}

fn get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(Vec::new()).unwrap()
}

/// Run `workers` loops of `op` for `dur`; returns latencies and ops/s.
async fn load<F, Fut>(workers: usize, dur: Duration, op: F) -> anyhow::Result<(Vec<Duration>, f64)>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (op, lat) = (op.clone(), lat.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut i = 0;
            while start.elapsed() < dur {
                let t = Instant::now();
                op(w, i).await?;
                mine.push(t.elapsed());
                i += 1;
            }
            lat.lock().await.extend(mine);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let v = std::mem::take(&mut *lat.lock().await);
    let rate = v.len() as f64 / elapsed;
    Ok((v, rate))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{} cores ({cpu}), kernel {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), kernel.trim())
}

/// Start a server and time spawn → kubeconfig written → first /readyz 200.
async fn timed_start(dir: &std::path::Path, id: Identity) -> anyhow::Result<(Server, Duration)> {
    let t = Instant::now();
    let server = tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        move || Server::start_in(&dir, id, "127.0.0.1:0")
    })
    .await??;
    let client = server.client().await?;
    loop {
        if let Ok((200, _)) = send(&client, get("/readyz")).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok((server, t.elapsed()))
}

/// Scheduling latency: a fake Ready Node (allocatable, a label) that only these Pods select, so the scheduler
/// binds them there and the real agent never runs them. Time from each create's acknowledgement to its binding
/// (spec.nodeName set) arriving on a watch: 200 Pods one after the other, then a burst of 200 from 4 clients.
async fn scheduling(client: &Client) -> anyhow::Result<Vec<Row>> {
    let node = json!({
        "metadata": {"name": "bench-sched", "labels": {"k1s.bench/pool": "sched"}},
        "status": {
            "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "100000"},
            "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "100000"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    });
    let (code, body) = send(client, post("/api/v1/nodes", node)).await?;
    anyhow::ensure!(code == 201, "create node {code}: {}", String::from_utf8_lossy(&body));
    send(client, post("/api/v1/namespaces", json!({"metadata": {"name": "sched"}}))).await?;
    let rv = {
        let (_, body) = send(client, get("/api/v1/namespaces/sched/pods")).await?;
        serde_json::from_slice::<serde_json::Value>(&body)?["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string()
    };
    // One watch; the first event of each Pod with spec.nodeName set is its binding.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch = {
        let c = client.clone();
        tokio::spawn(async move {
            let req = get(&format!("/api/v1/namespaces/sched/pods?watch=true&resourceVersion={rv}&timeoutSeconds=300"));
            let resp = c.send(req.map(kube::client::Body::from)).await?;
            let mut body = resp.into_body();
            let mut buf = Vec::new();
            let mut seen = std::collections::HashSet::new();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    buf.extend_from_slice(&data);
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let at = Instant::now();
                        let v: serde_json::Value = serde_json::from_slice(&line)?;
                        let bound = v["object"]["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
                        let name = v["object"]["metadata"]["name"].as_str().unwrap_or("").to_string();
                        if bound && seen.insert(name.clone()) {
                            let _ = tx.send((name, at));
                        }
                    }
                }
            }
            anyhow::Ok(())
        })
    };
    let pod = |name: &str| {
        json!({"metadata": {"name": name}, "spec": {"nodeSelector": {"k1s.bench/pool": "sched"},
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"], "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}})
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n = 200;

    // Sequential: create, wait for the binding, next.
    let mut seq = Vec::new();
    for i in 0..n {
        let name = format!("seq-{i}");
        let (code, body) = send(client, post("/api/v1/namespaces/sched/pods", pod(&name))).await?;
        let acked = Instant::now();
        anyhow::ensure!(code == 201, "create {code}: {}", String::from_utf8_lossy(&body));
        let (got, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await?.context("watch ended")?;
        anyhow::ensure!(got == name, "bound {got}, expected {name}");
        seq.push(at.saturating_duration_since(acked));
    }

    // Burst: 4 clients create 50 each as fast as they can.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..n / 4 {
                let name = format!("burst-{w}-{i}");
                let (code, body) = send(&c, post("/api/v1/namespaces/sched/pods", pod(&name))).await?;
                anyhow::ensure!(code == 201, "create {code}: {}", String::from_utf8_lossy(&body));
                acks.push((name, Instant::now()));
            }
            anyhow::Ok(acks)
        }));
    }
    let mut acks = std::collections::HashMap::new();
    for t in tasks {
        acks.extend(t.await??);
    }
    let mut bound = std::collections::HashMap::new();
    while bound.len() < n {
        let (name, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await?.context("watch ended")?;
        bound.insert(name, at);
    }
    let last = bound.values().max().copied().unwrap_or(start);
    let mut burst: Vec<Duration> = acks.iter().map(|(name, acked)| bound.get(name).map_or(Duration::MAX, |at| at.saturating_duration_since(*acked))).collect();
    watch.abort();
    let rate = n as f64 / last.duration_since(start).as_secs_f64();
    Ok(vec![
        Row { what: format!("scheduling: create ack → binding on a watch, sequential ({n} Pods)"), p50: ms(pct(&mut seq, 0.5)), p99: ms(pct(&mut seq, 0.99)), rate: "–".into(), goal: "p99 ≤ 5 ms".into() },
        Row {
            what: format!("scheduling: burst of {n} Pods from 4 clients, create ack → binding"),
            p50: ms(pct(&mut burst, 0.5)),
            p99: ms(pct(&mut burst, 0.99)),
            rate: format!("{rate:.0} Pods bound/s"),
            goal: "–".into(),
        },
    ])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let dur = Duration::from_secs(secs);
    let mut rows = Vec::new();
    let tmp = tempfile::Builder::new().prefix("k1s-bench-").tempdir()?;
    let dir = tmp.path().join("data");

    // Cold start: first start generates the CA and certificates; the second reuses them.
    let id = Identity::unique();
    let (mut first, cold) = timed_start(&dir, id.clone()).await?;
    first.kill9();
    drop(first);
    let mut starts = Vec::new();
    let mut server = None;
    for _ in 0..5 {
        if let Some(mut s) = server.take() {
            Server::kill9(&mut s);
            std::mem::forget(s); // keep the data dir; the last server is dropped normally below
        }
        let (s, d) = timed_start(&dir, id.clone()).await?;
        starts.push(d);
        server = Some(s);
    }
    let server = server.context("server")?;
    rows.push(Row { what: "start to /readyz, first boot (CA + certs generated)".into(), p50: ms(cold), p99: "–".into(), rate: "–".into(), goal: "≤ 200 ms".into() });
    let mut s2 = starts.clone();
    rows.push(Row { what: "start to /readyz, restart (5 runs)".into(), p50: ms(pct(&mut s2, 0.5)), p99: ms(pct(&mut s2, 0.99)), rate: "–".into(), goal: "≤ 200 ms".into() });

    let pid = server.pid().context("pid")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kb(pid);

    let client = server.client().await?;

    // GET of one object.
    send(&client, post("/api/v1/namespaces/default/pods", json!({"metadata": {"name": "target"}, "spec": {"nodeName": ELSEWHERE, "containers": [{"name": "c", "image": "busybox"}]}}))).await?;
    let c = client.clone();
    let (mut lat, rate) = load(8, dur, move |_, _| {
        let c = c.clone();
        async move {
            let (code, _) = send(&c, get("/api/v1/namespaces/default/pods/target")).await?;
            anyhow::ensure!(code == 200, "GET {code}");
            Ok(())
        }
    })
    .await?;
    rows.push(Row { what: "GET pod (8 concurrent clients)".into(), p50: ms(pct(&mut lat, 0.5)), p99: ms(pct(&mut lat, 0.99)), rate: format!("{rate:.0} GET/s"), goal: "p99 ≤ 2 ms, ≥ 5000/s".into() });

    // Durable creates, at several concurrencies (on 2 cores the clients compete with the server for CPU).
    for workers in [4usize, 16] {
        // On stderr, so a profiler can be started on the server for this phase alone (BENCHMARKS.md).
        eprintln!("k1s-bench: durable creates, {workers} clients, {secs} s, server pid {pid}");
        let c = client.clone();
        let (mut lat, rate) = load(workers, dur, move |w, i| {
            let c = c.clone();
            async move {
                let body = json!({"metadata": {"name": format!("cm-{workers}-{w}-{i}")}, "data": {"k": "v"}});
                let (code, body) = send(&c, post("/api/v1/namespaces/default/configmaps", body)).await?;
                anyhow::ensure!(code == 201, "create {code}: {}", String::from_utf8_lossy(&body));
                Ok(())
            }
        })
        .await?;
        rows.push(Row {
            what: format!("durable create configmap ({workers} concurrent clients)"),
            p50: ms(pct(&mut lat, 0.5)),
            p99: ms(pct(&mut lat, 0.99)),
            rate: format!("{rate:.0} creates/s"),
            goal: "p99 ≤ 5 ms, ≥ 2000/s".into(),
        });
    }
    eprintln!("k1s-bench: durable creates done");
    // Durable merge patches: each client patches its own ConfigMap (no conflicts), one write each.
    for w in 0..4 {
        let body = json!({"metadata": {"name": format!("patch-{w}")}, "data": {"k": "0"}});
        let (code, _) = send(&client, post("/api/v1/namespaces/default/configmaps", body)).await?;
        anyhow::ensure!(code == 201, "create patch-{w}: {code}");
    }
    let c = client.clone();
    let (mut lat, rate) = load(4, dur, move |w, i| {
        let c = c.clone();
        async move {
            let req = http::Request::patch(format!("/api/v1/namespaces/default/configmaps/patch-{w}"))
                .header("content-type", "application/merge-patch+json")
                .body(serde_json::to_vec(&json!({"data": {"k": i.to_string()}}))?)?;
            let (code, body) = send(&c, req).await?;
            anyhow::ensure!(code == 200, "patch {code}: {}", String::from_utf8_lossy(&body));
            Ok(())
        }
    })
    .await?;
    rows.push(Row {
        what: "durable merge patch configmap (4 concurrent clients)".into(),
        p50: ms(pct(&mut lat, 0.5)),
        p99: ms(pct(&mut lat, 0.99)),
        rate: format!("{rate:.0} patches/s"),
        goal: "p99 ≤ 5 ms (a durable write, as create)".into(),
    });
    let c = client.clone();
    let (mut lat1, rate1) = load(1, Duration::from_secs(2), move |_, i| {
        let c = c.clone();
        async move {
            let (code, _) = send(&c, post("/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": format!("seq-{i}")}}))).await?;
            anyhow::ensure!(code == 201);
            Ok(())
        }
    })
    .await?;
    rows.push(Row { what: "durable create configmap (1 client, sequential)".into(), p50: ms(pct(&mut lat1, 0.5)), p99: ms(pct(&mut lat1, 0.99)), rate: format!("{rate1:.0} creates/s"), goal: "–".into() });

    // LIST of 1000 pods.
    send(&client, post("/api/v1/namespaces", json!({"metadata": {"name": "list"}}))).await?;
    let mut creates = Vec::new();
    for w in 0..8 {
        let c = client.clone();
        creates.push(tokio::spawn(async move {
            for i in 0..125 {
                let pod = json!({"metadata": {"name": format!("p-{w}-{i}"), "labels": {"app": "bench", "n": i.to_string()}},
                    "spec": {"nodeName": ELSEWHERE, "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"], "env": [{"name": "A", "value": "b"}]}]}});
                send(&c, post("/api/v1/namespaces/list/pods", pod)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in creates {
        t.await??;
    }
    let mut lat = Vec::new();
    let mut size = 0;
    for _ in 0..30 {
        let t = Instant::now();
        let (code, body) = send(&client, get("/api/v1/namespaces/list/pods")).await?;
        lat.push(t.elapsed());
        anyhow::ensure!(code == 200);
        size = body.len();
    }
    rows.push(Row { what: format!("LIST 1000 pods ({} KB)", size / 1024), p50: ms(pct(&mut lat, 0.5)), p99: ms(pct(&mut lat, 0.99)), rate: "–".into(), goal: "p99 ≤ 50 ms".into() });

    // Watch fan-out: 100 watchers; time from a create's acknowledgement to its event at the last watcher.
    let watchers = 100;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String, Instant)>();
    let rv = {
        let (_, body) = send(&client, get("/api/v1/namespaces/default/events?limit=1")).await?;
        serde_json::from_slice::<serde_json::Value>(&body)?["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string()
    };
    let mut handles = Vec::new();
    for w in 0..watchers {
        let (c, tx, rv) = (client.clone(), tx.clone(), rv.clone());
        handles.push(tokio::spawn(async move {
            let req = get(&format!("/api/v1/namespaces/default/events?watch=true&resourceVersion={rv}&timeoutSeconds=60"));
            let resp = c.send(req.map(kube::client::Body::from)).await?;
            let mut body = resp.into_body();
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    buf.extend_from_slice(&data);
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let v: serde_json::Value = serde_json::from_slice(&line)?;
                        let name = v["object"]["metadata"]["name"].as_str().unwrap_or("").to_string();
                        let _ = tx.send((w, name, Instant::now()));
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sent = Vec::new();
    for i in 0..50 {
        let name = format!("ev-{i}");
        let ev = json!({"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": "x", "namespace": "default"}, "reason": "Bench", "message": "m", "type": "Normal"});
        let (code, _) = send(&client, post("/api/v1/namespaces/default/events", ev)).await?;
        anyhow::ensure!(code == 201);
        sent.push((name, Instant::now()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut last_seen: std::collections::HashMap<String, (usize, Instant)> = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while last_seen.values().filter(|(n, _)| *n == watchers).count() < sent.len() && Instant::now() < deadline {
        if let Ok(Some((_, name, at))) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            let e = last_seen.entry(name).or_insert((0, at));
            e.0 += 1;
            e.1 = e.1.max(at);
        }
    }
    let mut fan = Vec::new();
    for (name, acked) in &sent {
        let (n, at) = last_seen.get(name).copied().context("event delivered")?;
        anyhow::ensure!(n == watchers, "{name} reached {n}/{watchers} watchers");
        fan.push(at.saturating_duration_since(*acked));
    }
    for h in handles {
        h.abort();
    }
    rows.push(Row { what: format!("watch fan-out: create ack → event at all {watchers} watchers"), p50: ms(pct(&mut fan, 0.5)), p99: ms(pct(&mut fan, 0.99)), rate: "–".into(), goal: "100 watchers served".into() });

    rows.extend(scheduling(&client).await?);

    let loaded_rss = rss_kb(pid);
    rows.push(Row { what: "idle RSS of k1s server (fresh boot)".into(), p50: format!("{:.1} MB", idle_rss as f64 / 1024.0), p99: "–".into(), rate: "–".into(), goal: "≤ 30 MB".into() });
    rows.push(Row { what: "RSS after this benchmark (~1000 pods + configmaps stored)".into(), p50: format!("{:.1} MB", loaded_rss as f64 / 1024.0), p99: "–".into(), rate: "–".into(), goal: "–".into() });
    let bin = std::fs::metadata(k1s_tests::binary())?.len();
    rows.push(Row { what: "k1s binary size".into(), p50: format!("{:.1} MB", bin as f64 / 1e6), p99: "–".into(), rate: "–".into(), goal: "≤ 20 MB".into() });

    println!("k1s-bench on {} ({}s per load phase)\n", machine(), secs);
    println!("| what | p50 | p99 | throughput | goal |\n|---|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {} | {} |", r.what, r.p50, r.p99, r.rate, r.goal);
    }
    drop(server);
    Ok(())
}
