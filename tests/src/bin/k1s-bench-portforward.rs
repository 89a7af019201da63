//! `k1s-bench-portforward`: port-forward throughput. Starts the real `k1s` binary (release: `K1S_BIN` or
//! target/release/k1s) as root, runs a busybox httpd Pod serving a large file from an emptyDir, and downloads it
//! through `kubectl port-forward` on loopback — SPDY tunnelled in a WebSocket (kubectl's default) and the raw
//! SPDY upgrade — printing MB/s per run and the p50. The whole path is measured as a user sees it: our client
//! → kubectl → the API server (SPDY) → the agent's connection in the Pod's netns → httpd. Reproduce with the
//! command in BENCHMARKS.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k1s_tests::{require_root, Identity, Server};

/// The served file's size (MiB): large enough that connection setup is noise.
const SIZE_MIB: u64 = 512;
const RUNS: usize = 7;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: big}
spec:
  volumes: [{name: www, emptyDir: {}}]
  containers:
  - name: main
    image: busybox
    volumeMounts: [{name: www, mountPath: /www}]
    command: ["sh", "-c", "head -c SIZE /dev/zero > /www/big.tmp && mv /www/big.tmp /www/big && exec httpd -f -p 80 -h /www"]
"#;

struct Forward(Child);

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn forward(server: &Server, env: &[(&str, &str)], port: u16) -> anyhow::Result<Forward> {
    let mut c = Command::new("kubectl");
    c.arg("--kubeconfig").arg(&server.kubeconfig).arg("--cache-dir").arg(server.dir.join("kubectl-cache"));
    c.args(["port-forward", "pod/big", &format!("{port}:80")]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().context("kubectl")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let f = Forward(child);
    match lines.next() {
        Some(Ok(l)) if l.starts_with("Forwarding from") => {}
        other => bail!("port-forward did not start: {other:?}"),
    }
    // Drain the rest of kubectl's output ("Handling connection for …") so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(f)
}

/// GET /big and count the body's bytes: (bytes, seconds).
fn download(port: u16) -> anyhow::Result<(u64, f64)> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET /big HTTP/1.0\r\nHost: big\r\n\r\n")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut head_done = false;
    let mut head = Vec::new();
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if head_done {
            total += n as u64;
        } else {
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                total += (head.len() - i - 4) as u64;
                head_done = true;
                head.clear();
            }
        }
    }
    Ok((total, t0.elapsed().as_secs_f64()))
}

fn main() -> anyhow::Result<()> {
    require_root();
    let tmp = tempfile::Builder::new().prefix("k1s-bench-pf-").tempdir()?;
    let server = Server::start_with(&tmp.path().join("data"), Identity::unique(), "127.0.0.1:0", &[])?;
    server.apply(&POD.replace("SIZE", &(SIZE_MIB << 20).to_string()));
    server.wait_for("pod big running", Duration::from_secs(60), || {
        let p = server.try_get_json(&["pod", "big"])?;
        (p["status"]["phase"] == "Running").then_some(())
    });
    // httpd starts right after the file is in place (the same shell line).
    server.wait_for("the file written", Duration::from_secs(120), || server.kubectl(&["exec", "big", "--", "test", "-f", "/www/big"]).status.success().then_some(()));
    std::thread::sleep(Duration::from_millis(500));

    println!("| transport | runs | MB/s p50 | min | max | goal |");
    println!("|---|---|---|---|---|---|");
    for (what, env) in [("WebSocket (SPDY tunnelled), kubectl default", vec![]), ("raw SPDY upgrade", vec![("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")])] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let _f = forward(&server, &env, port)?;
        let mut rates = Vec::new();
        for run in 0..RUNS {
            let (bytes, secs) = download(port)?;
            if bytes != SIZE_MIB << 20 {
                bail!("{what}: run {run}: {bytes} bytes, want {}", SIZE_MIB << 20);
            }
            let mbs = bytes as f64 / 1e6 / secs;
            eprintln!("{what}: run {run}: {bytes} bytes in {secs:.3} s = {mbs:.0} MB/s");
            rates.push(mbs);
        }
        rates.sort_by(f64::total_cmp);
        let p50 = rates[rates.len() / 2];
        println!("| {what} ({SIZE_MIB} MiB per run) | {RUNS} | {p50:.0} | {:.0} | {:.0} | ≥ 200 MB/s |", rates[0], rates[rates.len() - 1]);
    }
    Ok(())
}
