//! Interactive kubectl, end to end on real containers: `exec -it` on a terminal with window resize, exec exit
//! codes, `attach` to a container's own stdio, `run -i --rm`, `cp` both ways, and ephemeral containers
//! (`kubectl debug`), driven by stock kubectl and by the kube crate.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k1s_tests::{on_terminal, start_root, Server};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, Patch, PatchParams};

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn wait_running(s: &Server, pod: &str) {
    s.wait_for(&format!("{pod} Running and Ready"), Duration::from_secs(30), || {
        let p = s.try_get_json(&["pod", pod])?;
        let ready = p["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
        (p["status"]["phase"] == "Running" && ready).then_some(())
    });
}

/// A kubectl command line for this server, as one shell string (for `script`).
fn kubectl_line(s: &Server, args: &str) -> String {
    format!("kubectl --kubeconfig {} --cache-dir {} {args}", s.kubeconfig.display(), s.dir.join("kubectl-cache").display())
}


const SLEEPER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: term
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
";

#[test]
fn exec_on_a_terminal_with_exit_codes_and_the_kube_client() {
    let s = start_root();
    s.apply(SLEEPER);
    wait_running(&s, "term");

    // A real terminal from the container's own devpts, sized as the user's window.
    let out = on_terminal(&format!("stty cols 123 rows 45; {}", kubectl_line(&s, "exec -it term -- sh -c 'tty; stty size'")), "");
    let o = text(&out);
    assert!(out.status.success(), "{o}");
    assert!(o.contains("/dev/pts/"), "tty names a pts: {o}");
    assert!(o.contains("45 123"), "the window size reached the terminal: {o}");

    // Typing into an interactive shell, and its exit code.
    let out = on_terminal(&kubectl_line(&s, "exec -it term -- sh"), "echo $((6*7))\nexit 4\n");
    assert!(text(&out).contains("42"), "{}", text(&out));

    for (cmd, code) in [("exit 0", 0), ("exit 3", 3), ("kill -9 $$", 137)] {
        let out = s.kubectl(&["exec", "term", "--", "sh", "-c", cmd]);
        assert_eq!(out.status.code(), Some(code), "{cmd}: {}", text(&out));
        if code != 0 {
            assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("command terminated with exit code {code}")), "{}", text(&out));
        }
    }

    // The kube crate over WebSocket: separate stdout and stderr, then the status with the exit code.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pods: Api<Pod> = Api::namespaced(s.client().await.unwrap(), "default");
        let mut p = pods.exec("term", ["sh", "-c", "echo out; echo err >&2; exit 5"], &AttachParams::default().stderr(true)).await.unwrap();
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut p.stdout().unwrap(), &mut out).await.unwrap();
        let mut err = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut p.stderr().unwrap(), &mut err).await.unwrap();
        let status = p.take_status().unwrap().await.unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
        assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(status.details.unwrap().causes.unwrap()[0].message.as_deref(), Some("5"));
    });
}

#[test]
fn a_session_outlives_a_minute() {
    let s = start_root();
    s.apply(SLEEPER);
    wait_running(&s, "term");
    // Past client-go's 61 s read deadline, which only pongs renew.
    let out = s.kubectl(&["exec", "term", "--", "sh", "-c", "sleep 70; echo still-here"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still-here\n");
}

#[test]
fn attach_and_run_interactively() {
    let s = start_root();
    // The container's own stdin: kept open for attach, closed after the first session under stdinOnce.
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    stdin: true
    stdinOnce: true
    command: [sh, -c, 'read line; echo got:$line; cat; echo eof-seen']
",
    );
    wait_running(&s, "reader");
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["attach", "-i", "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\nmore\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let o = text(&out);
    assert!(out.status.success(), "{o}");
    assert!(o.contains("got:hello\nmore\neof-seen"), "stdin reached the container, then its EOF: {o}");
    s.wait_for("reader Succeeded", Duration::from_secs(20), || (s.try_get_json(&["pod", "reader"])?["status"]["phase"] == "Succeeded").then_some(()));

    // The kube crate attaches over WebSocket as well.
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: reader2
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    stdin: true
    stdinOnce: true
    command: [sh, -c, 'read line; echo kube:$line']
",
    );
    wait_running(&s, "reader2");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pods: Api<Pod> = Api::namespaced(s.client().await.unwrap(), "default");
        let mut a = pods.attach("reader2", &AttachParams::default().stdin(true).stderr(false)).await.unwrap();
        let mut stdin = a.stdin().unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stdin, b"via-ws\n").await.unwrap();
        drop(stdin);
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut a.stdout().unwrap(), &mut out).await.unwrap();
        assert_eq!(out, "kube:via-ws\n");
        let status = a.take_status().unwrap().await.unwrap();
        assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");
    });

    // A terminal container: attach -it types into its shell.
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    stdin: true
    tty: true
    command: [sh]
",
    );
    wait_running(&s, "shell");
    let out = on_terminal(&kubectl_line(&s, "attach -it shell"), "echo $((7*6))-$(tty)\nexit 0\n");
    let o = text(&out);
    assert!(o.contains("42-/dev/pts/0"), "{o}");
    s.wait_for("shell Succeeded", Duration::from_secs(20), || (s.try_get_json(&["pod", "shell"])?["status"]["phase"] == "Succeeded").then_some(()));

    // The same through k1s's own attach, to a container that restarts: kubectl's resume hint after the session.
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: shell2
spec:
  containers:
  - name: app
    image: busybox
    stdin: true
    tty: true
    command: [sh]
",
    );
    wait_running(&s, "shell2");
    let line = format!("{} kubectl --kubeconfig {} attach -it shell2", k1s_tests::binary().display(), s.kubeconfig.display());
    let o = text(&on_terminal(&line, "echo $((7*6))-$(tty)\nexit 0\n"));
    assert!(o.contains("42-/dev/pts/0"), "{o}");
    assert!(o.contains("Session ended, resume using 'kubectl attach shell2 -c app -i -t' command when the pod is running"), "{o}");

    // kubectl run -i --rm: the output, the container's exit code, and the Pod removed afterwards.
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["run", "once", "-i", "--rm", "--restart=Never", "--image=busybox", "--", "sh", "-c", "read x; echo got:$x; exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // kubectl reads stdin only once attached; the Pod must be running first.
    std::thread::sleep(Duration::from_secs(2));
    stdin.write_all(b"hi\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let o = text(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("got:hi"), "{o}");
    assert_eq!(out.status.code(), Some(3), "{o}");
    s.wait_for("the run Pod removed", Duration::from_secs(20), || s.try_get_json(&["pod", "once"]).is_none().then_some(()));
}

#[test]
fn cp_both_ways() {
    let s = start_root();
    s.apply(SLEEPER);
    wait_running(&s, "term");
    let local = s.dir.join("cp");
    std::fs::create_dir_all(local.join("tree/sub")).unwrap();
    std::fs::write(local.join("one.txt"), "first file\n").unwrap();
    std::fs::write(local.join("tree/a.txt"), "a\n").unwrap();
    std::fs::write(local.join("tree/sub/b.txt"), "b\n").unwrap();
    let l = |p: &str| local.join(p).display().to_string();

    s.kubectl_ok(&["cp", &l("one.txt"), "term:/tmp/one.txt"]);
    assert_eq!(s.kubectl_ok(&["exec", "term", "--", "cat", "/tmp/one.txt"]), "first file\n");
    s.kubectl_ok(&["cp", &l("tree"), "term:/tmp/tree"]);
    assert_eq!(s.kubectl_ok(&["exec", "term", "--", "cat", "/tmp/tree/sub/b.txt"]), "b\n");

    s.kubectl_ok(&["exec", "term", "--", "sh", "-c", "mkdir -p /data/d && echo from-pod > /data/d/x && echo top > /data/top"]);
    s.kubectl_ok(&["cp", "term:/data/top", &l("top")]);
    assert_eq!(std::fs::read_to_string(local.join("top")).unwrap(), "top\n");
    s.kubectl_ok(&["cp", "term:/data/d", &l("d")]);
    assert_eq!(std::fs::read_to_string(local.join("d/x")).unwrap(), "from-pod\n");
}

#[test]
fn debug_with_ephemeral_containers() {
    let s = start_root();
    s.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: target
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'exec sleep 3601']
",
    );
    wait_running(&s, "target");

    // Non-interactive: the ephemeral container runs beside the target, in its pid namespace.
    let out = s.kubectl(&["debug", "target", "--image=busybox", "--target=app", "--container=dbg", "--", "sleep", "3600"]);
    assert!(out.status.success(), "{}", text(&out));
    s.wait_for("dbg running", Duration::from_secs(20), || {
        let p = s.try_get_json(&["pod", "target"])?;
        let st = p["status"]["ephemeralContainerStatuses"].as_array()?.iter().find(|c| c["name"] == "dbg")?.clone();
        st["state"]["running"].is_object().then_some(())
    });
    let ps = s.kubectl_ok(&["exec", "target", "-c", "dbg", "--", "ps", "-o", "args"]);
    assert!(ps.contains("sleep 3601"), "the target's processes are visible: {ps}");
    let p = s.get_json(&["pod", "target"]);
    let st = p["status"]["ephemeralContainerStatuses"][0].clone();
    assert_eq!((st["ready"].clone(), st["restartCount"].clone()), (false.into(), 0.into()));
    assert!(st["imageID"].as_str().unwrap().starts_with("sha256:"), "{st}");

    // Interactive, as the docs show it: a shell that sees the target's processes.
    let out = on_terminal(&kubectl_line(&s, "debug -it target --image=busybox --target=app --container=shell -- sh"), "ps -o args | grep -c 'sleep 360[1]'\nexit\n");
    let o = text(&out);
    assert!(o.contains("\n1\r\n") || o.contains("\r\n1\r\n"), "ps in the debug shell shows the target's sleep: {o}");

    // Ephemeral containers may only be added.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pods: Api<Pod> = Api::namespaced(s.client().await.unwrap(), "default");
        let remove = serde_json::json!({"spec": {"ephemeralContainers": []}});
        let err = pods.patch_subresource("ephemeralcontainers", "target", &PatchParams::default(), &Patch::Merge(remove)).await.unwrap_err();
        let kube::Error::Api(e) = err else { panic!("{err}") };
        assert_eq!(e.code, 422, "{}", e.message);
        assert!(e.message.contains("existing ephemeral containers \"dbg\" may not be removed"), "{}", e.message);
        // GET and PUT of the subresource: the whole Pod; a PUT may add one.
        let mut pod: Pod = pods.get_subresource("ephemeralcontainers", "target").await.unwrap();
        let ecs = pod.spec.as_mut().unwrap().ephemeral_containers.as_mut().unwrap();
        assert!(ecs.iter().any(|e| e.name == "dbg"));
        let mut added = ecs[0].clone();
        added.name = "put".into();
        added.target_container_name = None;
        ecs.push(added);
        let put: Pod = pods.replace_subresource("ephemeralcontainers", "target", &kube::api::PostParams::default(), &pod).await.unwrap();
        assert!(put.spec.unwrap().ephemeral_containers.unwrap().iter().any(|e| e.name == "put"));
        let bad = serde_json::json!({"spec": {"ephemeralContainers": [{"name": "p", "image": "busybox", "ports": [{"containerPort": 80}]}]}});
        let err = pods.patch_subresource("ephemeralcontainers", "target", &PatchParams::default(), &Patch::Strategic(bad)).await.unwrap_err();
        let kube::Error::Api(e) = err else { panic!("{err}") };
        assert!(e.message.contains("spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container"), "{}", e.message);
    });

    // --copy-to: a copy of the Pod with the debug container added, running.
    let out = s.kubectl(&["debug", "target", "--copy-to=target-copy", "--image=busybox", "--container=extra", "--", "sleep", "3600"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_running(&s, "target-copy");
    let names: Vec<String> = s.get_json(&["pod", "target-copy"])["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["app", "extra"]);
}
