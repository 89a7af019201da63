//! `kubectl logs` end to end on the real binary, as root: `-f` delivering each line as it is written and
//! ending with the container, `--previous`, `--since-time`, `--timestamps`, `-c`, `--all-containers`,
//! `logs -f job/x`, and the server's follower going away with the client.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k1s_tests::{start_root as start, Server};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

fn pod_json(s: &Server, name: &str) -> Option<Value> {
    s.try_get_json(&["pod", name])
}

fn wait_running(s: &Server, name: &str) -> Value {
    s.wait_for(&format!("pod {name} running"), Duration::from_secs(30), || {
        let p = pod_json(s, name)?;
        let cs = p["status"]["containerStatuses"].as_array()?;
        (!cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object())).then_some(p)
    })
}

/// `kubectl ARGS` with its stdout read line by line on a thread: each line with the wall-clock time it
/// reached us.
fn spawn_kubectl(s: &Server, args: &[&str]) -> (Child, mpsc::Receiver<(Timestamp, String)>) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .arg("--cache-dir")
        .arg(s.dir.join("kubectl-cache"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("kubectl runs");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send((Timestamp::now(), line)).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Wait for `child` to exit by itself within `timeout`; kill it and fail otherwise.
fn wait_exit(child: &mut Child, what: &str, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `<RFC 3339 time> <text>` as `--timestamps` prints it.
fn split_timestamp(line: &str) -> (Timestamp, &str) {
    let (ts, text) = line.split_once(' ').unwrap_or_else(|| panic!("no timestamp in {line:?}"));
    (ts.parse().unwrap_or_else(|e| panic!("{ts:?} is not an RFC 3339 time: {e}")), text)
}

/// The inotify instances the server holds: one per `logs -f` follower.
fn inotify_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:inotify"))
        .count()
}

#[test]
fn follow_delivers_each_line_within_100ms_and_ends_with_the_container() {
    let s = start();
    // A line every 200 ms for 8 s, then the container ends.
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'i=0; while [ $i -lt 40 ]; do echo tick-$i; i=$((i+1)); sleep 0.2; done']
");
    wait_running(&s, "ticker");
    // The shim stamps each line the moment it reads it from the container's pipe; --timestamps shows that
    // stamp, so "written" → "on kubectl's stdout" is measured on one clock.
    let (mut child, rx) = spawn_kubectl(&s, &["logs", "-f", "--timestamps", "ticker"]);
    let mut got = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        got.push(line);
    }
    let st = wait_exit(&mut child, "kubectl logs -f after the container ended", Duration::from_secs(10));
    assert!(st.success(), "kubectl logs -f exits 0 when the container ends: {st}");

    let texts: Vec<&str> = got.iter().map(|(_, l)| split_timestamp(l).1).collect();
    let expected: Vec<String> = (0..40).map(|i| format!("tick-{i}")).collect();
    assert_eq!(texts, expected, "every line once, in order");
    // Lines written after the stream was live (the first line's arrival): each within 100 ms.
    let live_from = got[0].0;
    let mut live = 0;
    for (arrived, line) in &got {
        let (written, text) = split_timestamp(line);
        if written <= live_from {
            continue;
        }
        live += 1;
        let late = arrived.duration_since(written);
        assert!(late.as_millis() < 100, "{text} reached kubectl {late:?} after it was written");
    }
    assert!(live >= 10, "most lines were written while following ({live} of 40)");
}

#[test]
fn previous_since_time_timestamps_and_containers() {
    let s = start();
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: crash-once
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo run-$n; if [ $n -eq 1 ]; then exit 1; fi; exec sleep 3600']
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: two
spec:
  containers:
  - name: a
    image: busybox
    command: [sh, -c, 'echo early-a; sleep 2; echo late-a; exec sleep 3600']
  - name: b
    image: busybox
    command: [sh, -c, 'echo from-b; exec sleep 3600']
");
    // --previous: the run before the restart; without it, the current run.
    s.wait_for("crash-once restarted", Duration::from_secs(40), || {
        let p = pod_json(&s, "crash-once")?;
        let cs = &p["status"]["containerStatuses"][0];
        (cs["restartCount"].as_u64()? >= 1 && cs["state"]["running"].is_object()).then_some(())
    });
    assert_eq!(s.kubectl_ok(&["logs", "crash-once"]), "run-2\n");
    assert_eq!(s.kubectl_ok(&["logs", "crash-once", "--previous"]), "run-1\n");
    // Following an ended container gives its log and ends at once.
    let (mut child, rx) = spawn_kubectl(&s, &["logs", "-f", "--previous", "crash-once"]);
    let st = wait_exit(&mut child, "kubectl logs -f --previous", Duration::from_secs(10));
    assert!(st.success());
    assert_eq!(rx.iter().map(|(_, l)| l).collect::<Vec<_>>(), ["run-1"]);

    // -c, the default container, --all-containers.
    wait_running(&s, "two");
    let late = s.wait_for("late-a written", Duration::from_secs(20), || {
        let out = s.kubectl_ok(&["logs", "two", "-c", "a", "--timestamps"]);
        out.contains("late-a").then_some(out)
    });
    assert_eq!(s.kubectl_ok(&["logs", "two", "-c", "b"]), "from-b\n");
    assert_eq!(s.kubectl_ok(&["logs", "two"]), "early-a\nlate-a\n");
    // Each container's log whole; kubectl 1.32 keeps its requests in a Go map, so the containers come in
    // either order.
    let all = s.kubectl_ok(&["logs", "two", "--all-containers"]);
    assert!(all == "early-a\nlate-a\nfrom-b\n" || all == "from-b\nearly-a\nlate-a\n", "{all:?}");

    // --timestamps: an RFC 3339 time and a space before each line, the times in order.
    let lines: Vec<(Timestamp, &str)> = late.lines().map(split_timestamp).collect();
    assert_eq!(lines.iter().map(|(_, t)| *t).collect::<Vec<_>>(), ["early-a", "late-a"]);
    let gap = lines[1].0.duration_since(lines[0].0);
    // The shim stamps a line when it reads it, which may be a little after the echo: about 2 s apart.
    assert!(gap >= k8s_openapi::jiff::SignedDuration::from_millis(1500), "about 2 s between the lines: {gap:?}");

    // --since-time: only what was written at or after it. kubectl sends whole seconds, and the lines are
    // more than 1 s apart, so the later line's own time keeps it and drops the earlier.
    let since = lines[1].0.to_string();
    assert_eq!(s.kubectl_ok(&["logs", "two", "-c", "a", &format!("--since-time={since}")]), "late-a\n");
    let before = (lines[0].0 - k8s_openapi::jiff::SignedDuration::from_secs(1)).to_string();
    assert_eq!(s.kubectl_ok(&["logs", "two", "-c", "a", &format!("--since-time={before}")]), "early-a\nlate-a\n");
}

#[test]
fn follow_a_job_and_stop_when_kubectl_leaves() {
    let s = start();
    s.apply("apiVersion: batch/v1
kind: Job
metadata:
  name: x
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: [sh, -c, 'sleep 1; for i in 1 2 3 4 5; do echo job-line-$i; sleep 0.3; done']
---
apiVersion: v1
kind: Pod
metadata:
  name: quiet
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'echo only-line; exec sleep 3600']
");
    // logs -f job/x: kubectl finds the Job's Pod by its selector; the stream ends with the container.
    let job_pod = s.wait_for("the job's pod running", Duration::from_secs(30), || {
        let pods = s.get_json(&["pods", "-l", "job-name=x"]);
        let p = pods["items"].as_array()?.first()?.clone();
        p["status"]["containerStatuses"][0]["state"]["running"].is_object().then_some(p)
    });
    assert!(job_pod["metadata"]["name"].as_str().unwrap().starts_with("x-"));
    let (mut child, rx) = spawn_kubectl(&s, &["logs", "-f", "job/x"]);
    let st = wait_exit(&mut child, "kubectl logs -f job/x", Duration::from_secs(20));
    assert!(st.success(), "kubectl logs -f job/x: {st}");
    let lines: Vec<String> = rx.iter().map(|(_, l)| l).collect();
    assert_eq!(lines, (1..=5).map(|i| format!("job-line-{i}")).collect::<Vec<_>>());

    // -f --all-containers: both followed at once, each in its order, ending when both have ended.
    s.apply(PAIR);
    s.wait_for("both containers of pair started", Duration::from_secs(30), || {
        let p = pod_json(&s, "pair")?;
        let cs = p["status"]["containerStatuses"].as_array()?;
        (cs.len() == 2 && cs.iter().all(|c| c["state"]["running"].is_object() || c["state"]["terminated"].is_object())).then_some(())
    });
    let (mut child, rx) = spawn_kubectl(&s, &["logs", "-f", "--all-containers", "pair"]);
    let st = wait_exit(&mut child, "kubectl logs -f --all-containers", Duration::from_secs(20));
    assert!(st.success(), "kubectl logs -f --all-containers: {st}");
    let lines: Vec<String> = rx.iter().map(|(_, l)| l).collect();
    let of = |c: &str| lines.iter().filter(|l| l.starts_with(c)).cloned().collect::<Vec<_>>();
    assert_eq!((of("a-"), of("b-"), lines.len()), (vec!["a-1".to_string(), "a-2".into()], vec!["b-1".to_string(), "b-2".into()], 4), "{lines:?}");

    // A follower of a container that writes nothing more ends on the server once kubectl is gone.
    wait_running(&s, "quiet");
    let pid = s.pid().expect("server pid");
    let idle = inotify_fds(pid);
    let (mut child, rx) = spawn_kubectl(&s, &["logs", "-f", "quiet"]);
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).expect("the first line").1, "only-line");
    assert_eq!(inotify_fds(pid), idle + 1, "one inotify instance while following");
    child.kill().expect("kill kubectl");
    let _ = child.wait();
    s.wait_for("the server's follower to end", Duration::from_secs(5), || (inotify_fds(pid) == idle).then_some(()));
}

/// Two containers that each write two lines and end.
const PAIR: &str = "apiVersion: v1
kind: Pod
metadata:
  name: pair
spec:
  restartPolicy: Never
  containers:
  - name: a
    image: busybox
    command: [sh, -c, 'sleep 2; echo a-1; sleep 0.5; echo a-2']
  - name: b
    image: busybox
    command: [sh, -c, 'sleep 2; echo b-1; sleep 0.5; echo b-2']
";
