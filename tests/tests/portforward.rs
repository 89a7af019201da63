//! `kubectl port-forward` and exec over SPDY against the real binary: a busybox httpd in a Pod, reached through
//! the forwarder on loopback (WebSocket-tunnelled SPDY, raw SPDY, and kubectl 1.27), and `kubectl.1.27 exec`,
//! which speaks only SPDY. All traffic of these tests stays on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k1s_tests::{start_root, Server};

/// The page httpd serves, and a larger deterministic body (`seq`).
const INDEX: &str = "hello-from-pod\n";
const SEQ_N: u32 = 100_000;

const WEB_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && seq 1 100000 > /www/seq.txt && exec httpd -f -p 80 -h /www"]
"#;

/// A kubectl to test with: (binary, environment, what it exercises).
type Client<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);

fn seq_body() -> String {
    (1..=SEQ_N).map(|i| format!("{i}\n")).collect()
}

/// `kubectl` (the newest, through the dispatcher) and `kubectl.1.27` beside its real path, if there.
fn kubectl_127() -> Option<PathBuf> {
    let which = Command::new("sh").args(["-c", "command -v kubectl"]).output().ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&which.stdout).trim());
    let real = std::fs::canonicalize(&path).ok()?;
    real.parent().map(|d| d.join("kubectl.1.27")).filter(|p| p.exists())
}

fn kubectl_cmd(server: &Server, bin: &str, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(bin);
    c.arg("--kubeconfig").arg(&server.kubeconfig).arg("--cache-dir").arg(server.dir.join(format!("kubectl-cache-{}", bin.replace('/', "_"))));
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn start_web(server: &Server) {
    server.apply(WEB_POD);
    server.wait_for("pod web running", Duration::from_secs(60), || {
        let p = server.try_get_json(&["pod", "web"])?;
        (p["status"]["phase"] == "Running").then_some(())
    });
    // httpd listens right after the shell starts it; wait until it answers through exec.
    server.wait_for("httpd listening", Duration::from_secs(20), || {
        let out = server.kubectl(&["exec", "web", "--", "wget", "-q", "-O", "-", "http://127.0.0.1/index.html"]);
        (out.status.success() && out.stdout == INDEX.as_bytes()).then_some(())
    });
}

/// A free loopback port (bound then released; kubectl binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `kubectl port-forward`; killed on drop. Its stderr is collected for error checks.
struct Forward {
    child: Child,
    stderr: mpsc::Receiver<String>,
    /// Every stderr line read so far: reading drains the channel, so each call sees the whole of it.
    stderr_seen: std::cell::RefCell<Vec<String>>,
}

impl Forward {
    fn start(server: &Server, bin: &str, env: &[(&str, &str)], ports: &[String]) -> Forward {
        let mut cmd = kubectl_cmd(server, bin, env);
        cmd.args(["port-forward", "pod/web"]).args(ports).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        let (out_tx, out_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let mut f = Forward { child, stderr: err_rx, stderr_seen: Default::default() };
        // kubectl prints one "Forwarding from 127.0.0.1:L -> R" per port once the upgrade succeeded.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut ready = 0;
        while ready < ports.len() {
            match out_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("Forwarding from 127.0.0.1:") => ready += 1,
                Ok(_) => {}
                Err(_) => {
                    let _ = f.child.kill();
                    let err: Vec<String> = f.stderr.try_iter().collect();
                    panic!("{bin} port-forward {ports:?} did not start: {}\n{}", err.join("\n"), server.log());
                }
            }
        }
        f
    }

    fn stderr_so_far(&self) -> String {
        let mut seen = self.stderr_seen.borrow_mut();
        seen.extend(self.stderr.try_iter());
        seen.join("\n")
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.0 to 127.0.0.1:port: (status line, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: web\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((head.lines().next().unwrap_or("").to_string(), body.to_string()))
}

fn check_forwarding(port: u16, what: &str) {
    let seq = seq_body();
    for i in 0..100 {
        let (status, body) = http_get(port, "/index.html").unwrap_or_else(|e| panic!("{what}: request {i}: {e}"));
        assert!(status.contains("200"), "{what}: request {i}: {status}");
        assert_eq!(body, INDEX, "{what}: request {i}");
    }
    let handles: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let path = if i % 2 == 0 { "/seq.txt" } else { "/index.html" };
                (i, http_get(port, path))
            })
        })
        .collect();
    for h in handles {
        let (i, r) = h.join().unwrap();
        let (status, body) = r.unwrap_or_else(|e| panic!("{what}: concurrent request {i}: {e}"));
        assert!(status.contains("200"), "{what}: concurrent request {i}: {status}");
        if i % 2 == 0 {
            assert!(body == seq, "{what}: concurrent request {i}: {} bytes, want {}", body.len(), seq.len());
        } else {
            assert_eq!(body, INDEX, "{what}: concurrent request {i}");
        }
    }
}

#[test]
fn port_forward_over_websocket_and_spdy_with_every_kubectl() {
    let server = start_root();
    start_web(&server);
    let mut clients: Vec<Client> = vec![
        ("kubectl".into(), vec![], "newest kubectl, SPDY tunnelled in a WebSocket"),
        ("kubectl".into(), vec![("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")], "newest kubectl, raw SPDY upgrade"),
    ];
    match kubectl_127() {
        Some(p) => clients.push((p.display().to_string(), vec![], "kubectl 1.27 (SPDY only)")),
        None => eprintln!("kubectl.1.27 not found: port-forward tested with the newest kubectl only"),
    }
    for (bin, env, what) in &clients {
        let port = free_port();
        let fwd = Forward::start(&server, bin, env, &[format!("{port}:80")]);
        check_forwarding(port, what);
        // The forwarder is still up after all that, and logged each connection, no errors.
        assert!(fwd.child.id() > 0);
        let err = fwd.stderr_so_far();
        assert!(!err.contains("error"), "{what}: kubectl reported errors: {err}");
    }
}

#[test]
fn port_forward_to_a_closed_port_reports_the_error() {
    let server = start_root();
    start_web(&server);
    let mut bins = vec!["kubectl".to_string()];
    bins.extend(kubectl_127().map(|p| p.display().to_string()));
    for bin in &bins {
        let (good, bad) = (free_port(), free_port());
        let fwd = Forward::start(&server, bin, &[], &[format!("{good}:80"), format!("{bad}:81")]);
        // Nothing listens on 81 in the Pod: the local connection is closed without an answer, and kubectl
        // prints the node's error.
        let r = http_get(bad, "/");
        assert!(matches!(&r, Ok((status, body)) if status.is_empty() && body.is_empty()) || r.is_err(), "{bin}: {r:?}");
        let err = server.wait_for("kubectl to report the error", Duration::from_secs(10), || {
            let e = fwd.stderr_so_far();
            e.contains("an error occurred forwarding").then_some(e)
        });
        assert!(err.contains(&format!("{bad} -> 81")) && err.contains("error forwarding port 81 to pod") && err.contains("connection refused"), "{bin}: {err}");
        // An error from the node makes client-go close the whole connection (portforward.go
        // `handleConnection`: `pf.streamConn.Close()`), as it does against a kubelet: the newest kubectl then
        // exits with "lost connection to pod"; kubectl 1.27 stays up but cannot open streams any more (its
        // later connections fail with "use of closed network connection"), so it is only checked for the error.
        if !bin.ends_with("kubectl.1.27") {
            let mut fwd = fwd;
            let code = server.wait_for("kubectl port-forward to exit", Duration::from_secs(10), || fwd.child.try_wait().unwrap());
            assert!(!code.success(), "{bin}");
            // The reader thread may get the last line a moment after the exit.
            server.wait_for("kubectl to say it lost the connection", Duration::from_secs(5), || {
                fwd.stderr_so_far().contains("lost connection to pod").then_some(())
            });
        }
        // A new forwarder works: the server side of the failed one left nothing behind that matters.
        let port = free_port();
        let _fwd = Forward::start(&server, bin, &[], &[format!("{port}:80")]);
        let (status, body) = http_get(port, "/index.html").unwrap();
        assert!(status.contains("200") && body == INDEX, "{bin}: {status} {body}");
    }
}

/// A hostNetwork Pod shares the host's netns: its loopback is the host's, dialled without entering a netns.
#[test]
fn port_forward_to_a_host_network_pod() {
    let server = start_root();
    let pod_port = free_port();
    server.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  hostNetwork: true\n  containers:\n  - name: main\n    image: busybox\n    command: [\"sh\", \"-c\", \"mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 127.0.0.1:{pod_port} -h /www\"]\n"
    ));
    server.wait_for("pod web running", Duration::from_secs(60), || {
        let p = server.try_get_json(&["pod", "web"])?;
        (p["status"]["phase"] == "Running").then_some(())
    });
    server.wait_for("httpd listening on the host's loopback", Duration::from_secs(20), || http_get(pod_port, "/index.html").ok().filter(|(_, b)| b == INDEX));
    let port = free_port();
    let _fwd = Forward::start(&server, "kubectl", &[], &[format!("{port}:{pod_port}")]);
    for _ in 0..10 {
        let (status, body) = http_get(port, "/index.html").unwrap();
        assert!(status.contains("200") && body == INDEX, "{status} {body}");
    }
}

#[test]
fn port_forward_refuses_a_pod_that_is_not_running() {
    let server = start_root();
    server.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: done}\nspec:\n  restartPolicy: Never\n  containers: [{name: main, image: busybox, command: [\"true\"]}]\n");
    server.wait_for("pod done succeeded", Duration::from_secs(60), || {
        let p = server.try_get_json(&["pod", "done"])?;
        (p["status"]["phase"] == "Succeeded").then_some(())
    });
    let out = server.kubectl(&["port-forward", "pod/done", &format!("{}:80", free_port())]);
    assert!(!out.status.success());
    // kubectl checks the phase itself first.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Running") || err.contains("not running"), "{err}");
}

/// `kubectl exec` over SPDY: kubectl 1.27 (SPDY only) and the newest with WebSockets switched off.
#[test]
fn exec_over_spdy() {
    let server = start_root();
    start_web(&server);
    let mut clients: Vec<(String, Vec<(&str, &str)>)> = vec![("kubectl".into(), vec![("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")])];
    match kubectl_127() {
        Some(p) => clients.push((p.display().to_string(), vec![])),
        None => eprintln!("kubectl.1.27 not found: exec over SPDY tested with the newest kubectl only"),
    }
    for (bin, env) in &clients {
        let run = |args: &[&str], stdin: Option<&[u8]>| {
            let mut c = kubectl_cmd(&server, bin, env);
            c.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            let mut w = child.stdin.take().unwrap();
            if let Some(data) = stdin {
                w.write_all(data).unwrap();
            }
            drop(w);
            child.wait_with_output().unwrap()
        };
        let o = run(&["exec", "web", "--", "sh", "-c", "echo out; echo err >&2"], None);
        assert!(o.status.success(), "{bin}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n", "{bin}");
        assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n", "{bin}");

        let o = run(&["exec", "web", "--", "sh", "-c", "echo partial; exit 3"], None);
        assert_eq!(o.status.code(), Some(3), "{bin}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "partial\n");
        assert!(String::from_utf8_lossy(&o.stderr).contains("command terminated with exit code 3"), "{bin}: {}", String::from_utf8_lossy(&o.stderr));

        let o = run(&["exec", "-i", "web", "--", "cat"], Some(b"hello\nworld\n"));
        assert!(o.status.success(), "{bin}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "hello\nworld\n", "{bin}");

        // A large output arrives whole before the status.
        let o = run(&["exec", "web", "--", "sh", "-c", "seq 1 100000; exit 1"], None);
        assert_eq!(o.status.code(), Some(1));
        assert!(o.stdout == seq_body().as_bytes(), "{bin}: {} bytes", o.stdout.len());

        // With a terminal (under script(1), which gives kubectl one): the command sees a pty.
        if Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success()) {
            let mut kc = vec![bin.clone(), "--kubeconfig".into(), server.kubeconfig.display().to_string(), "--cache-dir".into(), server.dir.join("kubectl-cache-tty").display().to_string()];
            kc.extend(["exec", "-it", "web", "--", "tty"].map(String::from));
            let mut c = Command::new("script");
            c.args(["-qec", &kc.join(" "), "/dev/null"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            for (k, v) in env {
                c.env(k, v);
            }
            let o = c.output().unwrap();
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(o.status.success() && out.contains("/dev/pts/"), "{bin}: tty exec over SPDY: {out} {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

/// `kubectl attach -i` over SPDY (kubectl 1.27, and the newest with WebSockets off): the container's stdin gets
/// what is piped, then EOF (stdinOnce), and its output comes back.
#[test]
fn attach_over_spdy() {
    let server = start_root();
    let mut clients: Vec<(String, Vec<(&str, &str)>)> = vec![("kubectl".into(), vec![("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")])];
    clients.extend(kubectl_127().map(|p| (p.display().to_string(), vec![])));
    for (i, (bin, env)) in clients.iter().enumerate() {
        let name = format!("reader{i}");
        server.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: app\n    image: busybox\n    stdin: true\n    stdinOnce: true\n    command: [sh, -c, 'read line; echo got:$line; cat; echo eof-seen']\n"
        ));
        server.wait_for("the reader running", Duration::from_secs(60), || {
            let p = server.try_get_json(&["pod", &name])?;
            (p["status"]["phase"] == "Running").then_some(())
        });
        let mut c = kubectl_cmd(&server, bin, env);
        c.args(["attach", "-i", &name]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"hello\nmore\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let o = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{bin}: {o} {}", String::from_utf8_lossy(&out.stderr));
        assert!(o.contains("got:hello\nmore\neof-seen"), "{bin}: {o}");
    }
}

/// A forwarder idle for longer than client-go's 60 s read deadlines still works: the WebSocket's pings are
/// answered (the tunnel's deadline is renewed by pongs) and SPDY PINGs are echoed.
#[test]
fn port_forward_survives_a_long_idle_period() {
    let server = start_root();
    start_web(&server);
    let (ws, spdy) = (free_port(), free_port());
    let _a = Forward::start(&server, "kubectl", &[], &[format!("{ws}:80")]);
    let _b = Forward::start(&server, "kubectl", &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")], &[format!("{spdy}:80")]);
    std::thread::sleep(Duration::from_secs(70));
    for port in [ws, spdy] {
        let (status, body) = http_get(port, "/index.html").unwrap();
        assert!(status.contains("200") && body == INDEX, "{status} {body}");
    }
}

/// The WebSocket channel protocol (`v4.channel.k8s.io`, no SPDY): the kube crate's port-forward, and so the
/// built-in `k1s port-forward`, which uses it. A closed port's error arrives on its error channel.
#[test]
fn port_forward_over_the_websocket_channel_protocol() {
    let server = start_root();
    start_web(&server);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use k8s_openapi::api::core::v1::Pod;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let pods: kube::Api<Pod> = kube::Api::namespaced(server.client().await.unwrap(), "default");
        let mut pf = pods.portforward("web", &[80, 81]).await.expect("the channel protocol upgrades");
        let mut s = pf.take_stream(80).unwrap();
        s.write_all(b"GET /index.html HTTP/1.0\r\nHost: web\r\n\r\n").await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.") && text.ends_with(INDEX), "{text}");
        let err = pf.take_error(81).unwrap().await.expect("an error for the closed port");
        assert!(err.starts_with("error forwarding port 81 to pod web_default, uid "), "{err}");
        // The Pod side ended (HTTP/1.0), so the server closed the WebSocket, as the kubelet does once every
        // port's forward is done: that close is what ended the stream above. (kube's `join` then reports
        // sending its own close too late; that is the client's view of the same end.)
        drop(s);
        drop(pf);
    });
    let k1s = k1s_tests::binary().display().to_string();
    let port = free_port();
    let _f = Forward::start(&server, &k1s, &[], &[format!("{port}:80")]);
    check_forwarding(port, "k1s port-forward");
}
