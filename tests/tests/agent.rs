//! The node agent end to end: real Pods from stock kubectl on the real binary, as root. Each test's server has
//! its own data dir, port, bridge, Pod CIDR and cgroup parent; the harness's Drop guard (`k1s reset`) removes
//! every container, namespace, link, cgroup and mount afterwards, pass or fail.
//!
//! Network rule: traffic goes only to loopback and to Pod IPs this server assigned in namespaces it created.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use k1s_tests::{start_root as start, Server};
use serde_json::Value;


fn pod_json(s: &Server, name: &str) -> Option<Value> {
    s.try_get_json(&["pod", name])
}

fn wait_ready(s: &Server, name: &str) -> Value {
    s.wait_for(&format!("pod {name} Ready"), Duration::from_secs(30), || {
        let p = pod_json(s, name)?;
        let ready = p["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(p)
    })
}

fn wait_phase(s: &Server, name: &str, phase: &str) -> Value {
    s.wait_for(&format!("pod {name} {phase}"), Duration::from_secs(30), || pod_json(s, name).filter(|p| p["status"]["phase"] == phase))
}

fn exec(s: &Server, pod: &str, container: Option<&str>, cmd: &[&str]) -> std::process::Output {
    let mut args = vec!["exec", pod];
    if let Some(c) = container {
        args.extend(["-c", c]);
    }
    args.push("--");
    args.extend_from_slice(cmd);
    s.kubectl(&args)
}

fn exec_ok(s: &Server, pod: &str, cmd: &[&str]) -> String {
    let out = exec(s, pod, None, cmd);
    assert!(out.status.success(), "exec {cmd:?} in {pod}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An HTTP GET from the host to a Pod IP this server assigned.
fn http_get(ip: &str, port: u16, path: &str) -> std::io::Result<String> {
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().expect("pod ip");
    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n")?;
    let mut out = String::new();
    c.read_to_string(&mut out)?;
    Ok(out)
}

const SLEEPER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: sleeper
spec:
  restartPolicy: OnFailure
  containers:
  - name: main
    image: busybox
    command: [sleep, \"3600\"]
";

#[test]
fn pod_runs_with_its_own_hostname_ip_and_logs() {
    let s = start();
    // The node registers at once.
    let nodes = s.get_json(&["nodes"]);
    let node = &nodes["items"][0];
    assert_eq!(node["metadata"]["name"], s.id.node_name.as_str());
    assert!(node["status"]["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    assert!(node["status"]["nodeInfo"]["containerRuntimeVersion"].as_str().unwrap().starts_with("k1s://"));
    for k in ["cpu", "memory", "pods", "ephemeral-storage"] {
        assert!(node["status"]["allocatable"][k].is_string(), "allocatable {k}");
    }
    let lease = s.get_json(&["lease", "-n", "kube-node-lease", &s.id.node_name]);
    assert_eq!(lease["spec"]["holderIdentity"], s.id.node_name.as_str());

    s.apply(SLEEPER);
    let p = wait_ready(&s, "sleeper");
    let sleeper_uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let ip = p["status"]["podIP"].as_str().expect("podIP").to_string();
    assert!(ip.starts_with(s.id.pod_cidr.split('.').take(2).collect::<Vec<_>>().join(".").as_str()), "{ip} in {}", s.id.pod_cidr);
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["status"]["qosClass"], "BestEffort");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], true);
    assert!(cs["containerID"].as_str().unwrap().starts_with("k1s://"));
    assert!(cs["imageID"].as_str().unwrap().starts_with("sha256:"));

    assert_eq!(exec_ok(&s, "sleeper", &["hostname"]).trim(), "sleeper");
    let addr = exec_ok(&s, "sleeper", &["ip", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {ip}/")), "{addr}");
    // PID 1 of its own pid namespace, and the exit code of the command comes back.
    assert_eq!(exec_ok(&s, "sleeper", &["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]).trim(), "sleep 3600");
    let out = exec(&s, "sleeper", None, &["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    // stdin reaches the command.
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig").arg(&s.kubeconfig)
        .args(["exec", "-i", "sleeper", "--", "sh", "-c", "tr a-z A-Z"])
        .stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"hello k1s\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "HELLO K1S");

    // The image of a running Pod cannot be removed from under it.
    let rm = std::process::Command::new(k1s_tests::binary()).args(["image", "rm", "busybox", "--data-dir"]).arg(&s.dir).output().unwrap();
    assert!(!rm.status.success());
    assert!(String::from_utf8_lossy(&rm.stderr).contains("in use by Pod default/sleeper"), "{}", String::from_utf8_lossy(&rm.stderr));
    let ls = std::process::Command::new(k1s_tests::binary()).args(["image", "ls", "--data-dir"]).arg(&s.dir).output().unwrap();
    assert!(String::from_utf8_lossy(&ls.stdout).contains("docker.io/library/busybox:latest"));

    // Host to Pod over the bridge: busybox httpd in the Pod.
    exec_ok(&s, "sleeper", &["sh", "-c", "mkdir -p /www && echo served-by-sleeper > /www/index.html && httpd -p 8080 -h /www"]);
    let body = s.wait_for("httpd answers", Duration::from_secs(5), || http_get(&ip, 8080, "/index.html").ok());
    assert!(body.contains("served-by-sleeper"), "{body}");

    // A finished container's logs.
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: once
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'echo line-one; sleep 0.2; echo line-two >&2; sleep 0.2; echo line-three; exit 0']
");
    let p = wait_phase(&s, "once", "Succeeded");
    let term = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 0);
    assert_eq!(term["reason"], "Completed");
    let logs = s.kubectl_ok(&["logs", "once"]);
    // stdout and stderr are separate pipes: lines written apart in time come back in order.
    assert_eq!(logs, "line-one\nline-two\nline-three\n");
    assert_eq!(s.kubectl_ok(&["logs", "once", "--tail=1"]), "line-three\n");
    let ts = s.kubectl_ok(&["logs", "once", "--timestamps", "--tail=1"]);
    assert!(ts.ends_with("Z line-three\n") && ts.starts_with("20"), "{ts}");
    assert_eq!(s.kubectl_ok(&["logs", "once", "--limit-bytes=4"]), "line");
    assert_eq!(s.kubectl_ok(&["logs", "once", "-c", "c", "--since=1h"]).lines().count(), 3);

    // Events a user sees in describe.
    let ev = s.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=sleeper", "-o", "json"]);
    for reason in ["Pulled", "Created", "Started"] {
        assert!(ev.contains(&format!("\"reason\": \"{reason}\"")), "event {reason} missing: {ev}");
    }

    // Deletion: SIGTERM, the grace period, SIGKILL, then the object goes and the sandbox with it.
    let t0 = Instant::now();
    s.kubectl_ok(&["delete", "pod", "sleeper", "--grace-period=1"]);
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert!(pod_json(&s, "sleeper").is_none());
    // The agent removes the sandbox before it removes the object.
    assert!(!s.dir.join("pods").join(&sleeper_uid).exists(), "sandbox files left");
    assert!(!s.dir.join("run").join(&sleeper_uid).exists(), "namespaces left");
}

#[test]
fn containers_of_a_pod_share_localhost_and_an_empty_dir() {
    let s = start();
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: duo
spec:
  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: web
    image: busybox
    command: [httpd, -f, -p, '8080', -h, /shared]
    volumeMounts:
    - {name: shared, mountPath: /shared}
  - name: client
    image: busybox
    command: [sh, -c, 'echo hello-from-the-other-container > /data/index.html; until wget -qO- http://localhost:8080/index.html; do sleep 0.2; done; sleep 3600']
    volumeMounts:
    - {name: shared, mountPath: /data}
");
    wait_ready(&s, "duo");
    let logs = s.wait_for("client fetched over localhost", Duration::from_secs(20), || {
        let l = s.kubectl_ok(&["logs", "duo", "-c", "client"]);
        l.contains("hello-from-the-other-container").then_some(l)
    });
    assert!(logs.contains("hello-from-the-other-container"));
    // Both containers see one file; their hostnames are the Pod's.
    let out = exec(&s, "duo", Some("web"), &["cat", "/shared/index.html"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello-from-the-other-container");
    let out = exec(&s, "duo", Some("web"), &["hostname"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "duo");
}

fn web_pod(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: [sh, -c, 'mkdir /www; echo $POD_NAME > /www/name; exec httpd -f -p 8080 -h /www']
    env:
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
---
"
    )
}

#[test]
fn twenty_pods_get_distinct_ips_and_reach_each_other() {
    let s = start();
    let manifest: String = (0..20).map(|i| web_pod(&format!("web-{i}"))).collect();
    s.apply(&manifest);
    let pods = s.wait_for("20 pods Running", Duration::from_secs(60), || {
        let l = s.get_json(&["pods", "-l", "app=web"]);
        let items = l["items"].as_array()?.clone();
        (items.len() == 20 && items.iter().all(|p| p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string())).then_some(items)
    });
    let ips: HashSet<String> = pods.iter().map(|p| p["status"]["podIP"].as_str().unwrap().to_string()).collect();
    assert_eq!(ips.len(), 20, "every Pod has its own IP: {ips:?}");
    // Host to Pod: each answers with its own name (downward API env).
    for p in &pods {
        let (name, ip) = (p["metadata"]["name"].as_str().unwrap(), p["status"]["podIP"].as_str().unwrap());
        let body = s.wait_for(&format!("{name} serves"), Duration::from_secs(10), || http_get(ip, 8080, "/name").ok());
        assert!(body.ends_with(&format!("{name}\n")), "{name}: {body}");
    }
    // Pod to Pod over the bridge.
    let target = pods.iter().find(|p| p["metadata"]["name"] == "web-7").unwrap();
    let ip7 = target["status"]["podIP"].as_str().unwrap();
    let out = exec_ok(&s, "web-3", &["wget", "-qO-", &format!("http://{ip7}:8080/name")]);
    assert_eq!(out.trim(), "web-7");
}

#[test]
fn privileged_containers_may_change_the_network_default_ones_may_not() {
    let s = start();
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: caps
spec:
  containers:
  - name: plain
    image: busybox
    command: [sleep, '3600']
  - name: priv
    image: busybox
    command: [sleep, '3600']
    securityContext: {privileged: true}
");
    wait_ready(&s, "caps");
    // A bridge: the kernel surely has it (k1s itself needs it); dummy may be a missing module.
    let add = ["ip", "link", "add", "k1sdummy0", "type", "bridge"];
    let plain = exec(&s, "caps", Some("plain"), &add);
    assert!(!plain.status.success(), "a default container must not add links");
    assert!(String::from_utf8_lossy(&plain.stderr).contains("ermitted"), "{}", String::from_utf8_lossy(&plain.stderr));
    let priv_ = exec(&s, "caps", Some("priv"), &add);
    assert!(priv_.status.success(), "privileged: {}", String::from_utf8_lossy(&priv_.stderr));
    let links = exec(&s, "caps", Some("plain"), &["ip", "link"]);
    assert!(String::from_utf8_lossy(&links.stdout).contains("k1sdummy0"), "the Pod's containers share one netns");
    let mnt = ["sh", "-c", "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t"];
    let mount = exec(&s, "caps", Some("plain"), &mnt);
    assert!(!mount.status.success(), "a default container must not mount");
    let mount = exec(&s, "caps", Some("priv"), &mnt);
    assert!(mount.status.success(), "privileged may mount: {}", String::from_utf8_lossy(&mount.stderr));
}

#[test]
fn memory_hog_is_oom_killed() {
    let s = start();
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: busybox
    command: [sh, -c, 'x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done']
    resources:
      limits: {memory: 32Mi}
");
    let p = wait_phase(&s, "hog", "Failed");
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{p}");
    assert_eq!(t["exitCode"], 137);
    assert_eq!(p["status"]["qosClass"], "Burstable");
}

#[test]
fn restarts_back_off_and_logs_follow() {
    let s = start();
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'echo attempt-$(date +%s%N); exit 1']
---
apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done']
");
    // Restarted at once the first time, then CrashLoopBackOff with the previous run's logs available.
    let p = s.wait_for("crasher restarted and backing off", Duration::from_secs(30), || {
        let p = pod_json(&s, "crasher")?;
        let cs = &p["status"]["containerStatuses"][0];
        (cs["restartCount"].as_u64()? >= 1 && cs["state"]["waiting"]["reason"] == "CrashLoopBackOff").then_some(p)
    });
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    let prev = s.kubectl_ok(&["logs", "crasher", "--previous"]);
    assert!(prev.starts_with("attempt-"), "{prev}");
    let get = s.kubectl_ok(&["get", "pod", "crasher"]);
    assert!(get.contains("CrashLoopBackOff") || get.contains("Error"), "{get}");

    // logs -f streams lines as they are written.
    wait_ready(&s, "ticker");
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig").arg(&s.kubeconfig)
        .args(["logs", "-f", "ticker"])
        .stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let t0 = Instant::now();
    let mut got = Vec::new();
    while got.len() < 15 {
        got.push(lines.next().expect("a line").unwrap());
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(t0.elapsed() >= Duration::from_millis(500), "later lines arrived as they were written");
    let n: Vec<u64> = got.iter().map(|l| l.trim_start_matches("tick-").parse().unwrap()).collect();
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
}

#[test]
fn kill_9_of_the_server_leaves_pods_running() {
    let mut s = start();
    s.apply(SLEEPER);
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: exits-later
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'sleep 4; exit 7']
");
    s.apply(&SLEEPER.replace("name: sleeper", "name: half"));
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: done-before
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'echo finished once']
");
    let done = wait_phase(&s, "done-before", "Succeeded");
    // Its sandbox is released once it finished; give the agent a moment to do so before the kill.
    std::thread::sleep(Duration::from_millis(500));
    let before = wait_ready(&s, "sleeper");
    wait_phase(&s, "exits-later", "Running");
    let half = wait_ready(&s, "half");
    let cs = |p: &Value| p["status"]["containerStatuses"][0].clone();
    s.kill9();
    // Make "half" look as if the server died between setting its sandbox up and recording it: namespaces
    // mounted and an IP claimed, but no sandbox.json and no containers.
    let uid = half["metadata"]["uid"].as_str().expect("uid").to_string();
    let pod_dir = s.dir.join("pods").join(&uid);
    kill_pod_processes(&s, &uid, &pod_dir);
    std::fs::remove_file(pod_dir.join("sandbox.json")).expect("sandbox.json");
    std::fs::remove_dir_all(pod_dir.join("containers")).expect("containers");
    assert!(s.dir.join("run").join(&uid).join("ns").join("net").exists(), "the half-made sandbox's netns is still pinned");
    // While the server is down, one container exits; its shim records the exit.
    std::thread::sleep(Duration::from_secs(5));
    s.restart().expect("restart");
    // The half-made sandbox is released and made again: the Pod runs.
    let half = s.wait_for("the half-made Pod runs again", Duration::from_secs(30), || {
        let p = pod_json(&s, "half")?;
        let running = p["status"]["containerStatuses"][0]["state"]["running"].is_object() && p["status"]["podIP"].is_string();
        running.then_some(p)
    });
    assert!(half["status"]["podIP"].is_string());
    // A Pod that had finished before the kill stays finished: not run again, its logs kept.
    std::thread::sleep(Duration::from_secs(2));
    let still = wait_phase(&s, "done-before", "Succeeded");
    assert_eq!(cs(&still)["containerID"], cs(&done)["containerID"], "the finished Pod was not run again");
    assert_eq!(s.kubectl_ok(&["logs", "done-before"]).trim(), "finished once");
    assert_eq!(exec_ok(&s, "half", &["hostname"]).trim(), "half");
    let after = wait_ready(&s, "sleeper");
    assert_eq!(cs(&after)["containerID"], cs(&before)["containerID"], "the container was not restarted");
    assert_eq!(cs(&after)["restartCount"], 0);
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    assert_eq!(exec_ok(&s, "sleeper", &["hostname"]).trim(), "sleeper");
    let p = wait_phase(&s, "exits-later", "Failed");
    assert_eq!(cs(&p)["state"]["terminated"]["exitCode"], 7, "{p}");
}

/// Kill every process of a Pod: its containers (from the Pod's pids cgroup, v1 or v2) and their shims.
fn kill_pod_processes(s: &Server, uid: &str, pod_dir: &std::path::Path) {
    let mut pids = Vec::new();
    let parent = &s.id.cgroup_parent;
    for root in [format!("/sys/fs/cgroup/pids/{parent}/pod{uid}"), format!("/sys/fs/cgroup/{parent}/pod{uid}")] {
        let mut stack = vec![std::path::PathBuf::from(root)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                }
            }
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    let needle = pod_dir.as_os_str().as_encoded_bytes();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmd.windows(needle.len()).any(|w| w == needle) {
            pids.push(pid);
        }
    }
    assert!(!pids.is_empty(), "found the Pod's processes");
    for pid in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn missing_image_says_how_to_import_it() {
    let s = start();
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: nope
spec:
  containers:
  - name: c
    image: example.org/not/here:1.0
");
    let p = s.wait_for("ErrImagePull", Duration::from_secs(20), || {
        let p = pod_json(&s, "nope")?;
        let w = p["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        (w["reason"] == "ErrImagePull" || w["reason"] == "ImagePullBackOff").then_some(w)
    });
    assert!(p["message"].as_str().unwrap().contains("k1s image import"), "{p}");
}

#[test]
fn env_volumes_and_users_as_the_docs_describe() {
    let s = start();
    s.kubectl_ok(&["create", "configmap", "cfg", "--from-literal=greeting=hello", "--from-literal=color=blue"]);
    s.kubectl_ok(&["create", "secret", "generic", "sec", "--from-literal=password=s3cret"]);
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: cfgpod
  labels: {tier: web}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  volumes:
  - name: cfg
    configMap:
      name: cfg
      items: [{key: greeting, path: sub/greeting.txt}]
  - name: sec
    secret: {secretName: sec, defaultMode: 0400}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
  - name: scratch
    emptyDir: {medium: Memory}
  containers:
  - name: c
    image: busybox
    command: [sleep, '3600']
    workingDir: /work
    env:
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: sec, key: password}}}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: MY_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: COMBINED, value: '$(GREETING)-world'}
    envFrom:
    - {configMapRef: {name: cfg}, prefix: CFG_}
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg, readOnly: true}
    - {name: sec, mountPath: /etc/sec}
    - {name: info, mountPath: /etc/info}
    - {name: scratch, mountPath: /scratch}
    - {name: scratch, mountPath: /sub-only, subPath: part}
");
    let p = wait_ready(&s, "cfgpod");
    let ip = p["status"]["podIP"].as_str().unwrap();
    let env = exec_ok(&s, "cfgpod", &["env"]);
    for want in ["GREETING=hello", "PASSWORD=s3cret", &format!("MY_IP={ip}"), &format!("MY_NODE={}", s.id.node_name), "COMBINED=hello-world", "CFG_color=blue", "HOSTNAME=cfgpod"] {
        assert!(env.lines().any(|l| l == want), "{want} missing from env:\n{env}");
    }
    assert_eq!(exec_ok(&s, "cfgpod", &["id"]).trim(), "uid=1000 gid=3000 groups=2000");
    assert_eq!(exec_ok(&s, "cfgpod", &["pwd"]).trim(), "/work");
    assert_eq!(exec_ok(&s, "cfgpod", &["cat", "/etc/cfg/sub/greeting.txt"]), "hello");
    assert_eq!(exec_ok(&s, "cfgpod", &["cat", "/etc/info/labels"]).trim(), "tier=\"web\"");
    let perms = exec_ok(&s, "cfgpod", &["stat", "-c", "%a", "/etc/sec/password"]);
    // fsGroup: the group may read what the mode gives the owner (upstream SetVolumeOwnership).
    assert_eq!(perms.trim(), "440");
    assert_eq!(exec_ok(&s, "cfgpod", &["cat", "/etc/sec/password"]), "s3cret");
    // readOnly mounts refuse writes; the Memory emptyDir is a tmpfs; subPath shows a part of a volume.
    assert!(!exec(&s, "cfgpod", None, &["touch", "/etc/cfg/x"]).status.success());
    assert!(exec_ok(&s, "cfgpod", &["sh", "-c", "grep ' /scratch ' /proc/mounts"]).contains("tmpfs"));
    exec_ok(&s, "cfgpod", &["sh", "-c", "echo via-subpath > /sub-only/f"]);
    assert_eq!(exec_ok(&s, "cfgpod", &["cat", "/scratch/part/f"]).trim(), "via-subpath");
}

#[test]
fn reset_removes_every_container_and_what_the_node_created() {
    let mut s = start();
    s.apply(SLEEPER);
    s.apply("apiVersion: v1
kind: Pod
metadata:
  name: mem
spec:
  volumes:
  - {name: m, emptyDir: {medium: Memory}}
  containers:
  - name: c
    image: busybox
    command: [sleep, '3600']
    volumeMounts: [{name: m, mountPath: /m}]
");
    wait_ready(&s, "sleeper");
    wait_ready(&s, "mem");
    let dir = s.dir.to_str().unwrap().to_string();
    let shims = || -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&format!("shim\0{dir}"))))
            .count()
    };
    assert_eq!(shims(), 2, "one shim per container");
    // The server dies; its containers do not. `k1s reset` must remove them and everything else.
    s.kill9();
    assert_eq!(shims(), 2);
    let out = std::process::Command::new(k1s_tests::binary())
        .args(["reset", "--data-dir", &dir, "--bridge", &s.id.bridge, "--cgroup-parent", &s.id.cgroup_parent])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(shims(), 0, "shims left after reset");
    assert!(!std::path::Path::new("/sys/class/net").join(&s.id.bridge).exists(), "bridge left");
    for ctrl in ["memory", "pids", "cpu"] {
        assert!(!std::path::Path::new("/sys/fs/cgroup").join(ctrl).join(&s.id.cgroup_parent).exists(), "{ctrl} cgroup left");
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&dir), "mounts left: {mountinfo}");
    assert!(!s.dir.exists(), "data dir left");
    let links = std::process::Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&s.id.bridge));
}
