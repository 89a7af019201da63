//! Pod lifecycle end to end, as root on the real binary: probes (readiness, liveness, startup), lifecycle hooks
//! (postStart, preStop), activeDeadlineSeconds and termination messages, asserted on what kubectl shows.
//! Probe periods are 1 s so each test takes seconds.
//!
//! Network rule: probes and the tests reach only the Pod IPs this server assigned, in namespaces it created.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k1s_tests::{start_root as start, Server};
use serde_json::Value;


fn pod_json(s: &Server, name: &str) -> Option<Value> {
    s.try_get_json(&["pod", name])
}

fn condition(p: &Value, ty: &str) -> Option<String> {
    p["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == ty).and_then(|c| c["status"].as_str()).map(String::from)
}

fn wait_pod(s: &Server, name: &str, what: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
    s.wait_for(&format!("pod {name}: {what}"), Duration::from_secs(secs), || pod_json(s, name).filter(|p| f(p)))
}

fn exec_ok(s: &Server, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    s.kubectl_ok(&args)
}

fn events(s: &Server, pod: &str) -> Vec<(String, String)> {
    let ev = s.get_json(&["events", "--field-selector", &format!("involvedObject.name={pod}")]);
    ev["items"].as_array().into_iter().flatten().map(|e| (e["reason"].as_str().unwrap_or("").to_string(), e["message"].as_str().unwrap_or("").to_string())).collect()
}

/// A host directory for a hostPath volume, removed when dropped.
struct HostDir(PathBuf);

impl HostDir {
    fn new(tag: &str) -> HostDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let p = std::env::temp_dir().join(format!("k1s-lifecycle-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        HostDir(p)
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn readiness_probe_drives_ready_both_ways() {
    let s = start();
    // busybox httpd serves /www; the readiness probe asks for /ready by port name with a header; a tcpSocket
    // liveness probe on the same port keeps passing (no restarts).
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: busybox
    command: [sh, -c, 'mkdir -p /www && httpd -p 8080 -h /www && exec sleep 3600']
    ports:
    - name: http
      containerPort: 8080
    readinessProbe:
      httpGet:
        path: /ready
        port: http
        httpHeaders:
        - name: X-Probe
          value: k1s
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      tcpSocket:
        port: 8080
      periodSeconds: 1
",
    );
    let p = wait_pod(&s, "web", "Running", 30, |p| p["status"]["phase"] == "Running");
    assert_eq!(p["status"]["containerStatuses"][0]["started"], true);
    // 404 from httpd: not ready, for several probe periods.
    std::thread::sleep(Duration::from_secs(3));
    let p = pod_json(&s, "web").unwrap();
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"), "{p}");
    assert_eq!(condition(&p, "ContainersReady").as_deref(), Some("False"));
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
    let ev = events(&s, "web");
    assert!(ev.iter().any(|(r, m)| r == "Unhealthy" && m.starts_with("Readiness probe failed: HTTP probe failed with statuscode: 404")), "{ev:?}");
    assert!(!ev.iter().any(|(r, m)| r == "Unsupported" || m.contains("not run yet")), "{ev:?}");

    exec_ok(&s, "web", &["touch", "/www/ready"]);
    let t0 = Instant::now();
    let p = wait_pod(&s, "web", "Ready", 10, |p| condition(p, "Ready").as_deref() == Some("True"));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
    assert_eq!(condition(&p, "ContainersReady").as_deref(), Some("True"));

    exec_ok(&s, "web", &["rm", "/www/ready"]);
    let p = wait_pod(&s, "web", "not Ready again", 10, |p| condition(p, "Ready").as_deref() == Some("False"));
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0, "the tcpSocket liveness probe passes");
    let table = s.kubectl_ok(&["get", "pod", "web"]);
    assert!(table.contains("0/1") && table.contains("Running"), "{table}");
}

#[test]
fn failing_liveness_probe_restarts_the_container() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: live
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'touch /tmp/alive && exec sleep 3600']
    livenessProbe:
      exec:
        command: [test, -e, /tmp/alive]
      periodSeconds: 1
      failureThreshold: 2
",
    );
    wait_pod(&s, "live", "Ready", 30, |p| condition(p, "Ready").as_deref() == Some("True"));
    // Healthy: no restart over a few periods.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pod_json(&s, "live").unwrap()["status"]["containerStatuses"][0]["restartCount"], 0);

    exec_ok(&s, "live", &["rm", "/tmp/alive"]);
    let p = wait_pod(&s, "live", "restarted", 30, |p| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1));
    let last = &p["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "sleep ignores SIGTERM as PID 1, so the grace period ends in SIGKILL: {last}");
    let ev = events(&s, "live");
    assert!(ev.iter().any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed")), "{ev:?}");
    assert!(ev.iter().any(|(r, m)| r == "Killing" && m == "Container app failed liveness probe, will be restarted"), "{ev:?}");
    // The fresh attempt has its file again (a new rootfs), is healthy and becomes Ready.
    let p = wait_pod(&s, "live", "Ready after the restart", 30, |p| condition(p, "Ready").as_deref() == Some("True"));
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 1);
}

#[test]
fn startup_probe_delays_started_and_ready() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: slow
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
    startupProbe:
      exec:
        command: [test, -e, /tmp/started]
      periodSeconds: 1
      failureThreshold: 60
    readinessProbe:
      exec:
        command: ['true']
      periodSeconds: 1
",
    );
    wait_pod(&s, "slow", "Running", 30, |p| p["status"]["phase"] == "Running");
    std::thread::sleep(Duration::from_secs(3));
    let p = pod_json(&s, "slow").unwrap();
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!((cs["started"].as_bool(), cs["ready"].as_bool()), (Some(false), Some(false)), "{cs}");
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));

    exec_ok(&s, "slow", &["touch", "/tmp/started"]);
    let p = wait_pod(&s, "slow", "Ready once started", 10, |p| condition(p, "Ready").as_deref() == Some("True"));
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!((cs["started"].as_bool(), cs["ready"].as_bool(), cs["restartCount"].as_u64()), (Some(true), Some(true), Some(0)));
}

#[test]
fn post_start_and_pre_stop_hooks() {
    let s = start();
    let out = HostDir::new("hooks");
    s.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: hooks
spec:
  terminationGracePeriodSeconds: 10
  volumes:
  - name: out
    hostPath:
      path: {}
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'trap \"echo TERM >> /out/log; exit 0\" TERM; while [ ! -e /tmp/poststart ]; do sleep 0.1; done; cp /tmp/poststart /out/seen; while true; do sleep 1 & wait; done']
    volumeMounts:
    - name: out
      mountPath: /out
    lifecycle:
      postStart:
        exec:
          command: [sh, -c, 'sleep 1; echo from-poststart > /tmp/poststart']
      preStop:
        exec:
          command: [sh, -c, 'echo prestop >> /out/log']
",
        out.0.display()
    ));
    wait_pod(&s, "hooks", "Running", 30, |p| p["status"]["phase"] == "Running");
    // Running is reported only after postStart completed: its file is there already.
    assert_eq!(exec_ok(&s, "hooks", &["cat", "/tmp/poststart"]), "from-poststart\n");
    s.wait_for("the main process saw the postStart file", Duration::from_secs(10), || {
        std::fs::read_to_string(out.0.join("seen")).ok().filter(|t| t == "from-poststart\n")
    });

    s.kubectl_ok(&["delete", "pod", "hooks", "--wait=true", "--timeout=60s"]);
    let log = std::fs::read_to_string(out.0.join("log")).unwrap_or_default();
    assert_eq!(log, "prestop\nTERM\n", "preStop runs before SIGTERM");
}

#[test]
fn failing_post_start_hook_kills_the_container() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: badhook
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
    lifecycle:
      postStart:
        exec:
          command: [sh, -c, 'echo nope; exit 1']
",
    );
    wait_pod(&s, "badhook", "restarted", 30, |p| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1));
    let ev = events(&s, "badhook");
    assert!(ev.iter().any(|(r, m)| r == "FailedPostStartHook" && m.contains("nope")), "{ev:?}");
}

#[test]
fn active_deadline_fails_the_pod() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: deadline
spec:
  activeDeadlineSeconds: 3
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
",
    );
    wait_pod(&s, "deadline", "Running", 30, |p| p["status"]["phase"] == "Running");
    let p = wait_pod(&s, "deadline", "Failed", 30, |p| p["status"]["phase"] == "Failed");
    assert_eq!(p["status"]["reason"], "DeadlineExceeded");
    assert_eq!(p["status"]["message"], "Pod was active on the node longer than the specified deadline");
    assert!(p["status"]["containerStatuses"][0]["state"]["terminated"].is_object(), "{p}");
    let ev = events(&s, "deadline");
    assert!(ev.iter().any(|(r, _)| r == "DeadlineExceeded"), "{ev:?}");
}

#[test]
fn termination_messages_from_file_and_logs() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: bye
spec:
  restartPolicy: Never
  containers:
  - name: file
    image: busybox
    command: [sh, -c, 'echo -n goodbye > /dev/termination-log; exit 3']
  - name: custom
    image: busybox
    terminationMessagePath: /tmp/why
    command: [sh, -c, 'echo -n custom-path > /tmp/why']
  - name: logs
    image: busybox
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, 'echo first; echo last-words; exit 1']
",
    );
    let p = wait_pod(&s, "bye", "Failed", 30, |p| p["status"]["phase"] == "Failed");
    let msg = |name: &str| {
        let cs = p["status"]["containerStatuses"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
        cs["state"]["terminated"]["message"].as_str().map(String::from)
    };
    assert_eq!(msg("file").as_deref(), Some("goodbye"));
    assert_eq!(msg("custom").as_deref(), Some("custom-path"));
    assert_eq!(msg("logs").as_deref(), Some("first\nlast-words\n"));
}

#[test]
fn sidecar_runs_beside_the_main_container_and_the_pod_completes() {
    let s = start();
    // restartPolicy Never, as a Job's Pod: the sidecar starts first (its startup probe gates the next init
    // container), is restarted when it exits, and is stopped once the main container is done.
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: side
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  volumes:
  - name: shared
    emptyDir: {}
  initContainers:
  - name: proxy
    image: busybox
    restartPolicy: Always
    command: [sh, -c, 'trap \"exit 0\" TERM; sleep 1; echo up >> /shared/proxy; while [ ! -e /shared/crash ]; do sleep 0.2; done; rm /shared/crash; exit 1']
    volumeMounts:
    - name: shared
      mountPath: /shared
    startupProbe:
      exec:
        command: [test, -e, /shared/proxy]
      periodSeconds: 1
      failureThreshold: 30
  - name: check
    image: busybox
    command: [test, -e, /shared/proxy]
    volumeMounts:
    - name: shared
      mountPath: /shared
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'while [ ! -e /shared/done ]; do sleep 0.2; done; cat /shared/proxy']
    volumeMounts:
    - name: shared
      mountPath: /shared
",
    );
    let p = wait_pod(&s, "side", "Running and Ready", 30, |p| p["status"]["phase"] == "Running" && condition(p, "Ready").as_deref() == Some("True"));
    let inits = p["status"]["initContainerStatuses"].as_array().unwrap();
    assert!(inits[0]["state"]["running"].is_object(), "{p}");
    assert_eq!((inits[0]["started"].as_bool(), inits[0]["ready"].as_bool()), (Some(true), Some(true)));
    assert_eq!(inits[1]["state"]["terminated"]["exitCode"], 0, "the init container after the sidecar saw it started");
    let table = s.kubectl_ok(&["get", "pod", "side"]);
    assert!(table.contains("2/2") && table.contains("Running"), "{table}");

    // The sidecar exits: it is restarted (even under Never) while the main container keeps running.
    exec_ok(&s, "side", &["touch", "/shared/crash"]);
    let p = wait_pod(&s, "side", "sidecar restarted", 30, |p| {
        p["status"]["initContainerStatuses"][0]["restartCount"].as_u64() >= Some(1) && p["status"]["initContainerStatuses"][0]["state"]["running"].is_object()
    });
    assert_eq!(p["status"]["initContainerStatuses"][0]["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);

    // The main container finishes: the sidecar is stopped and the Pod Succeeds.
    exec_ok(&s, "side", &["touch", "/shared/done"]);
    let p = wait_pod(&s, "side", "Succeeded", 30, |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0);
    assert!(p["status"]["initContainerStatuses"][0]["state"]["terminated"].is_object(), "the sidecar was stopped: {p}");
    assert!(s.kubectl_ok(&["logs", "side", "-c", "main"]).starts_with("up\n"), "the main container saw the sidecar's file");
}

#[test]
fn seccomp_runtime_default_blocks_a_syscall_unconfined_does_not() {
    let s = start();
    // unshare(2) of a user namespace needs no capability, but RuntimeDefault refuses unshare to containers
    // without CAP_SYS_ADMIN (containerd's profile).
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: sec
spec:
  restartPolicy: Never
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: confined
    image: busybox
    command: [sh, -c, 'if unshare -U true 2>/dev/null; then echo allowed; else echo blocked; fi; sleep 3600']
  - name: free
    image: busybox
    securityContext:
      seccompProfile:
        type: Unconfined
    command: [sh, -c, 'if unshare -U true 2>/dev/null; then echo allowed; else echo blocked; fi; sleep 3600']
",
    );
    wait_pod(&s, "sec", "Running", 30, |p| p["status"]["phase"] == "Running");
    let logs = |c: &str| s.wait_for(&format!("{c} logs"), Duration::from_secs(10), || Some(s.kubectl_ok(&["logs", "sec", "-c", c])).filter(|l| !l.is_empty()));
    assert_eq!(logs("confined"), "blocked\n");
    assert_eq!(logs("free"), "allowed\n");
    // What is exec'd into the container is filtered too.
    let out = s.kubectl(&["exec", "sec", "-c", "confined", "--", "unshare", "-U", "true"]);
    assert!(!out.status.success(), "exec under RuntimeDefault: {}", String::from_utf8_lossy(&out.stderr));
    let out = s.kubectl(&["exec", "sec", "-c", "free", "--", "unshare", "-U", "true"]);
    assert!(out.status.success(), "exec unconfined: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn host_pid_and_host_ipc_share_the_hosts_namespaces() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: hostns
spec:
  hostPID: true
  hostIPC: true
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
---
apiVersion: v1
kind: Pod
metadata:
  name: ownns
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
",
    );
    wait_pod(&s, "hostns", "Running", 30, |p| p["status"]["phase"] == "Running");
    wait_pod(&s, "ownns", "Running", 30, |p| p["status"]["phase"] == "Running");
    let host = |ns: &str| std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap().display().to_string();
    for ns in ["pid", "ipc"] {
        let inside = exec_ok(&s, "hostns", &["readlink", &format!("/proc/self/ns/{ns}")]);
        assert_eq!(inside.trim(), host(ns), "hostPID/hostIPC: the host's {ns} namespace");
        let own = exec_ok(&s, "ownns", &["readlink", &format!("/proc/self/ns/{ns}")]);
        assert_ne!(own.trim(), host(ns), "a Pod's own {ns} namespace");
    }
    // Under hostPID the container's process is not PID 1 and sees the host's processes.
    let pid1 = exec_ok(&s, "ownns", &["cat", "/proc/1/comm"]);
    assert_eq!(pid1.trim(), "sleep");
    let ps = exec_ok(&s, "hostns", &["sh", "-c", "ls /proc | grep -c '^[0-9]'"]);
    assert!(ps.trim().parse::<u32>().unwrap() > 10, "the host's processes: {ps}");

    // shareProcessNamespace: one pid namespace for the Pod, held by a pause process as PID 1; each container
    // sees the other's processes, and a container restart does not take the namespace with it.
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: shared
spec:
  shareProcessNamespace: true
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'exec sleep 3602']
  - name: side
    image: busybox
    command: [sh, -c, 'exec sleep 3603']
",
    );
    wait_pod(&s, "shared", "Running", 30, |p| p["status"]["phase"] == "Running" && p["status"]["containerStatuses"].as_array().is_some_and(|c| c.iter().all(|c| c["ready"] == true)));
    assert_eq!(exec_ok(&s, "shared", &["cat", "/proc/1/cmdline"]).trim_end_matches('\0'), "/pause");
    let ps = s.kubectl_ok(&["exec", "shared", "-c", "side", "--", "ps", "-o", "args"]);
    assert!(ps.contains("sleep 3602") && ps.contains("sleep 3603"), "one pid namespace: {ps}");
    let (a, b) = (exec_ok(&s, "shared", &["readlink", "/proc/self/ns/pid"]), s.kubectl_ok(&["exec", "shared", "-c", "side", "--", "readlink", "/proc/self/ns/pid"]));
    assert_eq!(a, b);
    // PID 1 (pause) ignores what the Pod sends it; the app's sleep goes, killed from the other container
    // (a command exec'd in `app` itself would die with it).
    s.kubectl_ok(&["exec", "shared", "-c", "side", "--", "sh", "-c", "kill 1; for p in /proc/[0-9]*; do [ \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" = 'sleep 3602 ' ] && kill ${p#/proc/}; done; true"]);
    wait_pod(&s, "shared", "app restarted", 30, |p| p["status"]["containerStatuses"][0]["restartCount"] == 1 && p["status"]["containerStatuses"][0]["ready"] == true);
    let ps = s.kubectl_ok(&["exec", "shared", "-c", "side", "--", "ps", "-o", "args"]);
    assert!(ps.contains("sleep 3602") && ps.contains("sleep 3603"), "the namespace outlived the restart: {ps}");
}

fn table_status(s: &Server, pod: &str) -> String {
    let t = s.kubectl_ok(&["get", "pod", pod, "--no-headers"]);
    t.split_whitespace().nth(2).unwrap_or("").to_string()
}

#[test]
fn init_containers_in_order_and_their_failures() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: inits
spec:
  volumes:
  - name: work
    emptyDir: {}
  initContainers:
  - name: first
    image: busybox
    command: [sh, -c, 'sleep 2; echo one > /work/f']
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: busybox
    command: [sh, -c, 'echo two >> /work/f']
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'cat /work/f; exec sleep 3600']
    volumeMounts: [{name: work, mountPath: /work}]
---
apiVersion: v1
kind: Pod
metadata:
  name: initfail
spec:
  restartPolicy: Never
  initContainers:
  - name: check
    image: busybox
    command: [sh, -c, 'exit 3']
  containers:
  - name: main
    image: busybox
    command: [sleep, '3600']
---
apiVersion: v1
kind: Pod
metadata:
  name: initloop
spec:
  initContainers:
  - name: check
    image: busybox
    command: [sh, -c, 'exit 1']
  containers:
  - name: main
    image: busybox
    command: [sleep, '3600']
",
    );
    s.wait_for("Init:0/2", Duration::from_secs(20), || Some(()).filter(|_| table_status(&s, "inits") == "Init:0/2"));
    wait_pod(&s, "inits", "Running", 30, |p| p["status"]["phase"] == "Running");
    assert_eq!(s.wait_for("main's logs", Duration::from_secs(10), || Some(s.kubectl_ok(&["logs", "inits"])).filter(|l| !l.is_empty())), "one\ntwo\n");

    // Never + a failing init container: the Pod fails and the main container never runs.
    let p = wait_pod(&s, "initfail", "Failed", 30, |p| p["status"]["phase"] == "Failed");
    assert_eq!(p["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 3);
    assert!(p["status"]["containerStatuses"][0]["state"]["waiting"].is_object(), "main never ran: {p}");
    assert_eq!(table_status(&s, "initfail"), "Init:Error");

    // Always + a failing init container: retried with back-off, shown as Init:CrashLoopBackOff.
    s.wait_for("Init:CrashLoopBackOff", Duration::from_secs(30), || Some(()).filter(|_| table_status(&s, "initloop") == "Init:CrashLoopBackOff"));
    let p = pod_json(&s, "initloop").unwrap();
    assert!(p["status"]["initContainerStatuses"][0]["restartCount"].as_u64() >= Some(1));
    assert_eq!(p["status"]["initContainerStatuses"][0]["lastState"]["terminated"]["exitCode"], 1);
    assert!(p["status"]["containerStatuses"][0]["state"]["waiting"].is_object(), "main never ran: {p}");
}

#[test]
fn security_context_refuses_root_and_drops_capabilities() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: nonroot
spec:
  securityContext:
    runAsNonRoot: true
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
---
apiVersion: v1
kind: Pod
metadata:
  name: caps
spec:
  containers:
  - name: dropped
    image: busybox
    command: [sh, -c, 'touch /tmp/x; if chown 1 /tmp/x 2>/dev/null; then echo chown-ok; else echo chown-denied; fi; exec sleep 3600']
    securityContext:
      capabilities:
        drop: [CHOWN]
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
  - name: default
    image: busybox
    command: [sh, -c, 'touch /tmp/x; if chown 1 /tmp/x 2>/dev/null; then echo chown-ok; else echo chown-denied; fi; exec sleep 3600']
",
    );
    let p = wait_pod(&s, "nonroot", "CreateContainerConfigError", 30, |p| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError");
    assert_eq!(p["status"]["containerStatuses"][0]["state"]["waiting"]["message"], "container has runAsNonRoot and image will run as root");

    wait_pod(&s, "caps", "Running", 30, |p| p["status"]["phase"] == "Running");
    let logs = |c: &str| s.wait_for(&format!("{c} logs"), Duration::from_secs(10), || Some(s.kubectl_ok(&["logs", "caps", "-c", c])).filter(|l| !l.is_empty()));
    // readOnlyRootFilesystem: /tmp is on the root filesystem, so touch fails and chown has nothing to change.
    assert!(logs("dropped").contains("chown-denied"));
    assert_eq!(logs("default"), "chown-ok\n");
    let status = s.kubectl_ok(&["exec", "caps", "-c", "dropped", "--", "cat", "/proc/self/status"]);
    let field = |name: &str| status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).unwrap_or("").to_string();
    assert_eq!(field("NoNewPrivs:"), "1");
    let cap_bnd = u64::from_str_radix(&field("CapBnd:"), 16).unwrap();
    assert_eq!(cap_bnd & 1, 0, "CAP_CHOWN (bit 0) is gone from the bounding set: {cap_bnd:x}");
    let out = s.kubectl(&["exec", "caps", "-c", "dropped", "--", "touch", "/new-file"]);
    assert!(!out.status.success(), "the root filesystem is read-only");
}

#[test]
fn qos_class_sets_the_oom_score() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: guaranteed
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'cat /proc/self/oom_score_adj; exec sleep 3600']
    resources:
      limits: {cpu: 100m, memory: 64Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: burstable
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'cat /proc/self/oom_score_adj; exec sleep 3600']
    resources:
      requests: {memory: 1Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: besteffort
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'cat /proc/self/oom_score_adj; exec sleep 3600']
",
    );
    // Lowering a score needs a host that allows it (some sandboxes refuse even root): Guaranteed gets -997
    // where it can, and never more than it inherited.
    let inherited: i32 = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap().trim().parse().unwrap();
    let can_lower = std::process::Command::new("sh").args(["-c", "echo -997 > /proc/self/oom_score_adj"]).status().unwrap().success();
    let guaranteed = if can_lower { -997 } else { inherited };
    for (pod, qos, adj) in [("guaranteed", "Guaranteed", guaranteed), ("burstable", "Burstable", 999), ("besteffort", "BestEffort", 1000)] {
        let p = wait_pod(&s, pod, "Running", 30, |p| p["status"]["phase"] == "Running");
        assert_eq!(p["status"]["qosClass"], qos);
        let got = s.wait_for(&format!("{pod} logs"), Duration::from_secs(10), || s.kubectl_ok(&["logs", pod]).trim().parse::<i32>().ok());
        assert_eq!(got, adj, "{pod}: the container's oom_score_adj");
        assert_eq!(pod_json(&s, pod).unwrap()["status"]["containerStatuses"][0]["restartCount"], 0);
    }
}

#[test]
fn pod_cgroup_gets_the_pods_memory_limit() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: limited
spec:
  containers:
  - name: a
    image: busybox
    command: [sleep, '3600']
    resources:
      limits: {memory: 64Mi}
  - name: b
    image: busybox
    command: [sleep, '3600']
    resources:
      limits: {memory: 32Mi}
",
    );
    let p = wait_pod(&s, "limited", "Running", 30, |p| p["status"]["phase"] == "Running");
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let pod_cg = format!("{}/pod{uid}", s.id.cgroup_parent);
    let limit = [format!("/sys/fs/cgroup/memory/{pod_cg}/memory.limit_in_bytes"), format!("/sys/fs/cgroup/{pod_cg}/memory.max")]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .expect("the Pod's memory cgroup");
    assert_eq!(limit.trim(), (96u64 << 20).to_string(), "64Mi + 32Mi");
}

#[test]
fn http_and_sleep_pre_stop_hooks() {
    let s = start();
    let out = HostDir::new("httphook");
    s.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: httphook
spec:
  terminationGracePeriodSeconds: 6
  volumes:
  - name: out
    hostPath:
      path: {}
  containers:
  - name: web
    image: busybox
    # A CGI script records the preStop GET (with its header) in the hostPath.
    command: [sh, -c, 'mkdir -p /www/cgi-bin && printf \"#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho \\\"stop \\$HTTP_X_HOOK\\\" > /out/prestop\\n\" > /www/cgi-bin/stop && chmod +x /www/cgi-bin/stop && exec httpd -f -p 8080 -h /www']
    volumeMounts:
    - name: out
      mountPath: /out
    lifecycle:
      preStop:
        httpGet:
          path: /cgi-bin/stop
          port: 8080
          httpHeaders:
          - name: X-Hook
            value: k1s
  - name: sleeper
    image: busybox
    command: [sh, -c, 'trap \"date +%s > /out/term; exit 0\" TERM; while true; do sleep 1 & wait; done']
    volumeMounts:
    - name: out
      mountPath: /out
    lifecycle:
      preStop:
        sleep:
          seconds: 3
",
        out.0.display()
    ));
    wait_pod(&s, "httphook", "Running", 30, |p| p["status"]["phase"] == "Running");
    std::thread::sleep(Duration::from_secs(1));
    let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    s.kubectl_ok(&["delete", "pod", "httphook", "--wait=true", "--timeout=60s"]);
    assert_eq!(std::fs::read_to_string(out.0.join("prestop")).unwrap_or_default(), "stop k1s\n", "the preStop httpGet reached the container");
    let term: u64 = std::fs::read_to_string(out.0.join("term")).unwrap().trim().parse().unwrap();
    assert!(term >= t0 + 2, "SIGTERM came after the 3 s preStop sleep: delete at {t0}, TERM at {term}");
}

/// A grpc.health.v1 server on loopback (HTTP/2 without TLS, through axum): SERVING while `serving` is set.
fn grpc_health_server(serving: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let check = move || {
                let status = if serving.load(std::sync::atomic::Ordering::SeqCst) { 1u8 } else { 2u8 };
                async move {
                    // A framed HealthCheckResponse { status } (field 1, varint).
                    ([(http::header::CONTENT_TYPE, "application/grpc")], vec![0u8, 0, 0, 0, 2, 0x08, status])
                }
            };
            let router = axum::Router::new().route("/grpc.health.v1.Health/Check", axum::routing::post(check));
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let _ = axum::serve(listener, router).await;
        });
    });
    port
}

#[test]
fn grpc_readiness_probe_on_a_host_network_pod() {
    let s = start();
    let serving = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = grpc_health_server(serving.clone());
    // hostNetwork: the Pod's "IP" is the host, so the probe goes to loopback, where the test serves.
    s.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: grpc
spec:
  hostNetwork: true
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
    readinessProbe:
      grpc:
        port: {port}
      periodSeconds: 1
      failureThreshold: 1
"
    ));
    wait_pod(&s, "grpc", "Running", 30, |p| p["status"]["phase"] == "Running");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(condition(&pod_json(&s, "grpc").unwrap(), "Ready").as_deref(), Some("False"));
    let ev = events(&s, "grpc");
    assert!(ev.iter().any(|(r, m)| r == "Unhealthy" && m.contains("NOT_SERVING")), "{ev:?}");
    serving.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_pod(&s, "grpc", "Ready", 10, |p| condition(p, "Ready").as_deref() == Some("True"));
    serving.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_pod(&s, "grpc", "not Ready", 10, |p| condition(p, "Ready").as_deref() == Some("False"));
}

/// An exec probe that times out does not leave its command running in the container (upstream's prober
/// gives up on it; k1s kills it with the exec helper), and the failure says so.
#[test]
fn a_timed_out_exec_probe_leaves_nothing_running() {
    let s = start();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: slowprobe
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, '3600']
    readinessProbe:
      exec:
        command: [sleep, '77']
      timeoutSeconds: 1
      periodSeconds: 1
",
    );
    wait_pod(&s, "slowprobe", "a probe attempt or three", 30, |p| p["status"]["phase"] == "Running");
    s.wait_for("an Unhealthy event about the timeout", Duration::from_secs(20), || {
        events(&s, "slowprobe").into_iter().find(|(r, m)| r == "Unhealthy" && m.contains("timed out after 1s"))
    });
    std::thread::sleep(Duration::from_secs(3));
    // Each attempt runs at most 1 s: at most one is alive at any moment, not one per period.
    let ps = exec_ok(&s, "slowprobe", &["ps", "-o", "args"]);
    let running = ps.lines().filter(|l| l.trim() == "sleep 77").count();
    assert!(running <= 1, "timed-out probe commands pile up: {ps}");
    assert_eq!(pod_json(&s, "slowprobe").unwrap()["status"]["containerStatuses"][0]["ready"], false);
}
