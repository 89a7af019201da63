//! The kubectl tier: stock kubectl — the newest on the machine (through its version dispatcher) and
//! `kubectl.1.27` — against the real binary, asserting what a user sees. kubectl is part of this machine kind;
//! where it is missing these tests fail and say what to install.

use std::path::PathBuf;
use std::process::Output;

use k1s_tests::Server;

/// The kubectl builds to test: plain `kubectl` and the oldest, `kubectl.1.27`, beside its real path.
fn kubectls() -> Vec<PathBuf> {
    let which = std::process::Command::new("sh").args(["-c", "command -v kubectl"]).output().expect("sh runs");
    assert!(
        which.status.success(),
        "kubectl is not on PATH: the kubectl test tier needs it (this machine kind ships kubectl 1.27–1.33; install kubectl to run the suite)"
    );
    let path = PathBuf::from(String::from_utf8_lossy(&which.stdout).trim());
    let real = std::fs::canonicalize(&path).unwrap_or(path.clone());
    let old = real.parent().map(|d| d.join("kubectl.1.27")).filter(|p| p.exists());
    let mut v = vec![path];
    match old {
        Some(o) => v.push(o),
        None => eprintln!("kubectl.1.27 not found beside {}: testing the newest kubectl only", real.display()),
    }
    v
}

struct Kubectl<'a> {
    bin: PathBuf,
    server: &'a Server,
    cache: PathBuf,
}

impl Kubectl<'_> {
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(&self.bin);
        c.arg("--kubeconfig").arg(&self.server.kubeconfig).arg("--cache-dir").arg(&self.cache).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.server.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .output()
            .expect("kubectl runs")
    }

    /// Run, require success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}\n{}",
            self.bin.display(),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run, require failure, return stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{} {args:?} should fail: {}", self.bin.display(), String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn write(server: &Server, name: &str, text: &str) -> String {
    let p = server.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

const JOB: &str = "apiVersion: batch/v1
kind: Job
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
      - name: hello
        image: busybox
        command: [\"echo\", \"Hello world from a Kubernetes Job\"]
      restartPolicy: Never
";

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: web
    image: busybox
    command: [\"sleep\", \"3600\"]
";

/// A student's paste from a blog: `image` one level too high, and a typo.
const BAD_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: bad
spec:
  image: busybox
  containers:
  - name: c
    image: busybox
    restartPolicyy: Never
";

fn header(table: &str) -> Vec<&str> {
    table.lines().next().unwrap_or("").split_whitespace().collect()
}

#[test]
fn kubectl_everyday_commands() {
    for bin in kubectls() {
        let server = Server::start().unwrap();
        let k = Kubectl { bin: bin.clone(), server: &server, cache: server.dir.join("kcache") };
        let who = bin.display().to_string();

        // version / api-resources / explain
        let v = k.ok(&["version"]);
        assert!(v.contains("Server Version") && v.contains("v1.33.0+k1s"), "{who}: {v}");
        let res = k.ok(&["api-resources"]);
        for kind in ["Pod", "Namespace", "Node", "Event", "ConfigMap", "Secret", "Job", "Lease"] {
            assert!(res.contains(kind), "{who}: {kind} in api-resources:\n{res}");
        }
        // kubectl 1.27 needs OpenAPI v2 (protobuf, /openapi/v2) to explain.
        let ex = k.ok(&["explain", "pod.spec.containers"]);
        assert!(ex.contains("List of containers belonging to the pod"), "{who}: {ex}");

        // get with Table columns
        let ns = k.ok(&["get", "namespaces"]);
        assert_eq!(header(&ns), ["NAME", "STATUS", "AGE"], "{who}: {ns}");
        assert!(ns.lines().any(|l| l.starts_with("kube-system") && l.contains("Active")), "{ns}");

        // apply: create, unchanged; create -f with strict validation. kubectl 1.27 finds the fieldValidation
        // parameter through OpenAPI v2 (protobuf), later ones through v3; both then send fieldValidation=Strict.
        let validate = "--validate=strict";
        let job = write(&server, "job.yaml", JOB);
        assert!(k.ok(&["apply", validate, "-f", &job]).contains("job.batch/hello created"), "{who}");
        assert!(k.ok(&["apply", validate, "-f", &job]).contains("job.batch/hello unchanged"), "{who}");
        let changed = write(&server, "job2.yaml", &JOB.replace("name: hello\nspec", "name: hello\n  labels:\n    tier: batch\nspec"));
        assert!(k.ok(&["apply", validate, "-f", &changed]).contains("job.batch/hello configured"), "{who}");
        let last = k.ok(&["get", "job", "hello", "-o", "jsonpath={.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}"]);
        assert!(last.contains("\"tier\":\"batch\""), "{who}: last-applied kept: {last}");
        let jobs = k.ok(&["get", "jobs"]);
        assert_eq!(header(&jobs), ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], "{who}: {jobs}");
        let pod = write(&server, "pod.yaml", POD);
        assert!(k.ok(&["create", validate, "-f", &pod]).contains("pod/web created"), "{who}");
        let err = k.fails(&["create", validate, "-f", &pod]);
        assert!(err.contains("AlreadyExists") && err.contains("\"web\" already exists"), "{who}: {err}");
        let bad = write(&server, "bad.yaml", BAD_POD);
        let err = k.fails(&["apply", "--validate=strict", "-f", &bad]);
        assert!(err.contains("unknown field \"spec.image\""), "{who}: {err}");
        assert!(err.contains("spec.containers[*].image"), "{who}: the error says where image belongs: {err}");
        assert!(err.contains("spec.containers[0].restartPolicyy"), "{who}: {err}");

        // run; get in several forms
        assert!(k.ok(&["run", "jumpod", "--image=busybox", "--", "sleep", "3600"]).contains("pod/jumpod created"));
        let pods = k.ok(&["get", "pods"]);
        assert_eq!(header(&pods), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], "{who}: {pods}");
        // The node agent runs it at once: a user sees it starting or already running.
        assert!(pods.lines().any(|l| l.starts_with("jumpod") && ["Pending", "ContainerCreating", "Running"].iter().any(|s| l.contains(s))), "{pods}");
        k.ok(&["wait", "--for=condition=Ready", "pod/jumpod", "--timeout=30s"]);
        let wide = k.ok(&["get", "pods", "-o", "wide"]);
        assert_eq!(header(&wide)[5..], ["IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"], "{who}: {wide}");
        let all = k.ok(&["get", "pods", "-A"]);
        assert!(all.lines().any(|l| l.starts_with("default") && l.contains("jumpod")), "{who}: namespace column: {all}");
        let labels = k.ok(&["get", "pods", "--show-labels"]);
        assert!(labels.contains("run=jumpod") && labels.contains("app=web"), "{who}: {labels}");
        assert_eq!(k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]).trim(), "pod/web");
        assert_eq!(k.ok(&["get", "pods", "--field-selector", "metadata.name=jumpod", "-o", "name"]).trim(), "pod/jumpod");
        // (The Job applied above runs a Pod too; `-l '!job-name'` leaves it out.)
        let sorted = k.ok(&["get", "pods", "-l", "!job-name", "--sort-by=.metadata.name", "-o", "name"]);
        assert_eq!(sorted.lines().collect::<Vec<_>>(), ["pod/jumpod", "pod/web"], "{who}");
        let json = k.ok(&["get", "pod", "jumpod", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["spec"]["containers"][0]["args"], serde_json::json!(["sleep", "3600"]), "kubectl run puts words after -- into args");
        assert_eq!(v["spec"]["restartPolicy"], "Always");
        assert!(k.ok(&["get", "pod", "jumpod", "-o", "yaml"]).contains("resourceVersion:"));
        assert!(k.ok(&["get", "pod", "jumpod", "-o", "jsonpath={.status.phase}"]).contains("Running"));
        let err = k.fails(&["get", "pods", "--field-selector", "spec.bogus=x"]);
        assert!(err.contains("field label not supported: spec.bogus"), "{who}: {err}");

        // server-side apply: create, re-apply, a conflicting manager, then --force-conflicts
        let cm = write(&server, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  mode: fast\n");
        assert!(k.ok(&["apply", validate, "--server-side", "-f", &cm]).contains("configmap/app serverside-applied"), "{who}");
        assert!(k.ok(&["apply", validate, "--server-side", "-f", &cm]).contains("configmap/app serverside-applied"), "{who}");
        let cm2 = write(&server, "cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  mode: slow\n");
        let err = k.fails(&["apply", validate, "--server-side", "--field-manager=other", "-f", &cm2]);
        assert!(err.contains("Apply failed with 1 conflict: conflict with \"kubectl\"") && err.contains(".data.mode"), "{who}: {err}");
        k.ok(&["apply", validate, "--server-side", "--field-manager=other", "--force-conflicts", "-f", &cm2]);
        assert_eq!(k.ok(&["get", "cm", "app", "-o", "jsonpath={.data.mode}"]), "slow");

        // replace -f: a PUT of the whole manifest, defaulted like a create (an image change is an allowed pod
        // update; `:latest` keeps the defaulted imagePullPolicy, which upstream would refuse to change)
        // The pod is bound by now, and spec.nodeName is immutable: the manifest names the node, as `kubectl get
        // -o yaml` output would.
        let replaced = write(
            &server,
            "replace.yaml",
            &POD.replace("image: busybox", "image: busybox:latest").replace("spec:\n", &format!("spec:\n  nodeName: {}\n", server.id.node_name)),
        );
        assert!(k.ok(&["replace", validate, "-f", &replaced]).contains("pod/web replaced"), "{who}");
        assert_eq!(k.ok(&["get", "pod", "web", "-o", "jsonpath={.spec.containers[0].image}"]), "busybox:latest");

        // typed-client creates send protobuf bodies
        assert!(k.ok(&["create", "namespace", "team"]).contains("namespace/team created"), "{who}");
        assert!(k.ok(&["create", "configmap", "cfg", "--from-literal=a=b"]).contains("configmap/cfg created"), "{who}");
        assert_eq!(k.ok(&["get", "configmap", "cfg", "-o", "jsonpath={.data.a}"]), "b");
        assert!(k.ok(&["create", "secret", "generic", "sec", "--from-literal=k=v"]).contains("secret/sec created"), "{who}");
        assert_eq!(k.ok(&["get", "secret", "sec", "-o", "jsonpath={.data.k}"]), "dg==");
        assert!(k.ok(&["create", "job", "hi", "--image=busybox", "--", "echo", "hi"]).contains("job.batch/hi created"), "{who}");
        let hi: serde_json::Value = serde_json::from_str(&k.ok(&["get", "job", "hi", "-o", "json"])).unwrap();
        assert_eq!(hi["spec"]["template"]["spec"]["containers"][0]["command"], serde_json::json!(["echo", "hi"]));
        assert_eq!(hi["spec"]["template"]["spec"]["restartPolicy"], "Never");

        // label / annotate / patch (strategic merge is kubectl patch's default)
        assert!(k.ok(&["label", "pod", "web", "tier=front"]).contains("labeled"));
        // kubectl 1.27 prints "pod/web annotate", later ones "pod/web annotated".
        assert!(k.ok(&["annotate", "pod", "web", "note=hi"]).contains("pod/web annotate"));
        assert!(k.ok(&["patch", "pod", "web", "--type=merge", "-p", r#"{"metadata":{"labels":{"x":"1"}}}"#]).contains("patched"));
        assert!(k.ok(&["patch", "pod", "web", "--type=json", "-p", r#"[{"op":"add","path":"/metadata/labels/y","value":"2"}]"#]).contains("patched"));
        let smp = r#"{"spec":{"containers":[{"name":"web","image":"busybox:1.36"}]}}"#;
        assert!(k.ok(&["patch", "pod", "web", "-p", smp]).contains("patched"), "{who}");
        let c: serde_json::Value = serde_json::from_str(&k.ok(&["get", "pod", "web", "-o", "jsonpath={.spec.containers}"])).unwrap();
        assert_eq!(c[0]["image"], "busybox:1.36", "{who}: image patched");
        assert_eq!(c[0]["command"], serde_json::json!(["sleep", "3600"]), "{who}: merged by name, command kept");
        let l = k.ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.labels}"]);
        for want in ["tier", "x", "y"] {
            assert!(l.contains(want), "{who}: {want} in {l}");
        }

        // cluster-info lists kube-system services; wait on a jsonpath that already holds
        assert!(k.ok(&["cluster-info"]).contains("is running at"), "{who}");
        k.ok(&["wait", "--for=jsonpath={.status.phase}=Running", "pod/jumpod", "--timeout=10s"]);
        let err = k.fails(&["create", "service", "clusterip", "svc1", "--tcp=80:80"]);
        assert!(err.contains("not supported by this k1s version yet"), "{who}: {err}");

        // edit with a scripted editor (kubectl runs $EDITOR on a temp file)
        let editor = write(&server, "editor.sh", "#!/bin/sh\nsed -i 's/^  a: b$/  a: edited/' \"$1\"\n");
        std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let out = k.command(&["edit", validate, "configmap", "cfg"]).env("EDITOR", &editor).output().unwrap();
        assert!(out.status.success(), "{who}: edit: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("configmap/cfg edited"), "{who}: {}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(k.ok(&["get", "configmap", "cfg", "-o", "jsonpath={.data.a}"]), "edited");

        // get NAME -w: the current row, then a row per change
        let mut watch = k.command(&["get", "pod", "jumpod", "-w"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        k.ok(&["label", "pod", "jumpod", "watched=yes"]);
        std::thread::sleep(std::time::Duration::from_millis(700));
        let _ = watch.kill();
        let out = watch.wait_with_output().unwrap();
        let rows = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("jumpod")).count();
        assert!(rows >= 2, "{who}: get -w shows the pod and its change:\n{}", String::from_utf8_lossy(&out.stdout));

        // wait for a condition: the scheduler has bound the pod; binding it again is a conflict, as upstream
        assert!(k.ok(&["wait", "--for=condition=PodScheduled", "pod/jumpod", "--timeout=10s"]).contains("condition met"), "{who}");
        let binding = write(&server, "binding.json", r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"jumpod"},"target":{"apiVersion":"v1","kind":"Node","name":"node-a"}}"#);
        let err = k.fails(&["create", "--raw", "/api/v1/namespaces/default/pods/jumpod/binding", "-f", &binding]);
        assert!(err.contains("is already assigned to node"), "{who}: {err}");

        // dry run on the server: nothing stored
        let dry = write(&server, "dry.yaml", &POD.replace("name: web", "name: dry"));
        assert!(k.ok(&["apply", validate, "--dry-run=server", "-f", &dry]).contains("(server dry run)"), "{who}");
        assert!(k.fails(&["get", "pod", "dry"]).contains("NotFound"), "{who}");

        // describe a job and a namespace
        let dj = k.ok(&["describe", "job", "hello"]);
        assert!(dj.contains("Name:") && dj.contains("hello") && dj.contains("Completions:") && dj.contains("Pod Template:"), "{who}: {dj}");
        let dn = k.ok(&["describe", "namespace", "default"]);
        assert!(dn.contains("Status:") && dn.contains("Active"), "{who}: {dn}");

        // a bound pod waits for its node on a normal delete; --grace-period=0 --force removes it at once
        let forced = k.run(&["delete", "pod", "jumpod", "--grace-period=0", "--force"]);
        assert!(forced.status.success(), "{who}: {}", String::from_utf8_lossy(&forced.stderr));
        assert!(String::from_utf8_lossy(&forced.stdout).contains("force deleted"), "{who}");
        assert!(k.fails(&["get", "pod", "jumpod"]).contains("NotFound"), "{who}");

        // nodes: created as the agent will register them; get and describe show upstream's sections
        let node = write(&server, "node.json", r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-a","labels":{"node-role.kubernetes.io/control-plane":""}},
            "status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"ready","lastHeartbeatTime":"2026-01-01T00:00:00Z","lastTransitionTime":"2026-01-01T00:00:00Z"}],
            "addresses":[{"type":"InternalIP","address":"10.0.0.5"},{"type":"Hostname","address":"node-a"}],
            "capacity":{"cpu":"2","memory":"4Gi","pods":"110"},"allocatable":{"cpu":"2","memory":"4Gi","pods":"110"},
            "nodeInfo":{"kubeletVersion":"v1.33.0+k1s","osImage":"Debian GNU/Linux 12 (bookworm)","kernelVersion":"6.1.0","containerRuntimeVersion":"k1s://0.1.0",
                        "machineID":"","systemUUID":"","bootID":"","kubeProxyVersion":"","operatingSystem":"linux","architecture":"amd64"}}}"#);
        k.ok(&["create", validate, "-f", &node]);
        let nodes = k.ok(&["get", "nodes", "-o", "wide"]);
        assert_eq!(header(&nodes)[..5], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], "{who}: {nodes}");
        assert!(nodes.lines().any(|l| l.starts_with("node-a") && l.contains("Ready") && l.contains("control-plane") && l.contains("10.0.0.5")), "{who}: {nodes}");
        let dn = k.ok(&["describe", "node", "node-a"]);
        for section in ["Conditions:", "Addresses:", "Capacity:", "Allocatable:", "System Info:", "Non-terminated Pods:"] {
            assert!(dn.contains(section), "{who}: {section} in describe node:\n{dn}");
        }

        // custom columns and explain of another kind
        let cc = k.ok(&["get", "pods", "-o", "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image"]);
        assert!(cc.lines().any(|l| l.starts_with("web") && l.contains("busybox:1.36")), "{who}: {cc}");
        assert!(k.ok(&["explain", "job.spec"]).contains("completions"), "{who}");

        // more of what students paste: each rejected with the field named
        let bad_name = write(&server, "bad-name.yaml", &POD.replace("name: web\n  labels", "name: Web_Server\n  labels"));
        let err = k.fails(&["apply", validate, "-f", &bad_name]);
        assert!(err.contains("metadata.name: Invalid value: \"Web_Server\""), "{who}: {err}");
        let no_image = write(&server, "no-image.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: noimg\nspec:\n  containers:\n  - name: c\n");
        let err = k.fails(&["apply", validate, "-f", &no_image]);
        assert!(err.contains("spec.containers[0].image: Required value"), "{who}: {err}");
        let always_job = write(&server, "always-job.yaml", &JOB.replace("name: hello", "name: always").replace("restartPolicy: Never", "restartPolicy: Always"));
        let err = k.fails(&["apply", validate, "-f", &always_job]);
        assert!(err.contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\""), "{who}: {err}");

        // describe, delete --wait, wait --for=delete
        let d = k.ok(&["describe", "pod", "web"]);
        assert!(d.contains("Name:") && d.contains("web") && d.contains("Containers:"), "{who}: {d}");
        // `sleep` ignores SIGTERM (as PID 1 it has no handler), so a short grace period keeps this quick.
        assert!(k.ok(&["delete", "pod", "web", "--grace-period=1"]).contains("pod \"web\" deleted"), "{who}");
        k.ok(&["wait", "--for=delete", "pod/web", "--timeout=10s"]);
        assert!(k.fails(&["get", "pod", "web"]).contains("NotFound"));
        // delete by label, then everything
        k.ok(&["run", "a1", "--image=busybox", "--labels=grp=x"]);
        k.ok(&["run", "a2", "--image=busybox", "--labels=grp=x"]);
        k.ok(&["run", "b1", "--image=busybox"]);
        let by_label = k.ok(&["delete", "pods", "-l", "grp=x"]);
        assert!(by_label.contains("\"a1\" deleted") && by_label.contains("\"a2\" deleted") && !by_label.contains("b1"), "{who}: {by_label}");
        assert!(k.ok(&["delete", "pods", "--all"]).contains("\"b1\" deleted"), "{who}");
        assert!(String::from_utf8_lossy(&k.run(&["get", "pods"]).stderr).contains("No resources found"));
    }
}

/// `debug node/NAME` (issue 11): the Pod k1s creates is the one stock kubectl creates — the same spec for each
/// profile (host namespaces, the root filesystem at /host, nodeName, restartPolicy Never, every taint tolerated),
/// the name `node-debugger-<node>-<5 random>` and kubectl's messages and exit code; a missing node is the same
/// error. The random suffix is the one part compared by shape only.
#[test]
fn debug_node_creates_kubectls_pod() {
    let server = k1s_tests::start_root();
    let node = server.id.node_name.clone();
    let k1s = |args: &[&str]| {
        std::process::Command::new(k1s_tests::binary()).arg("kubectl").arg("--kubeconfig").arg(&server.kubeconfig).args(args).output().expect("k1s runs")
    };
    let only_pod = |who: &str| -> serde_json::Value {
        let list = server.get_json(&["pods"]);
        let items = list["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "{who}: one debugging Pod: {list}");
        let pod = items[0].clone();
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
        let suffix = name.strip_prefix(&format!("node-debugger-{node}-")).unwrap_or_else(|| panic!("{who}: Pod name {name}"));
        assert!(suffix.len() == 5 && suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{who}: {name}");
        server.kubectl_ok(&["delete", "pod", &name, "--grace-period=0", "--force"]);
        pod
    };
    let target = format!("node/{node}");
    for profile in ["legacy", "general", "baseline", "netadmin", "restricted", "sysadmin"] {
        let args = ["debug", target.as_str(), "--image=busybox", &format!("--profile={profile}")];
        let want_out = server.kubectl(&args);
        let want = only_pod("kubectl");
        let got_out = k1s(&args);
        let got = only_pod("k1s");
        let name = |p: &serde_json::Value| p["metadata"]["name"].as_str().unwrap_or("").to_string();
        let text = |o: &std::process::Output, p: &serde_json::Value| {
            (String::from_utf8_lossy(&o.stdout).replace(&name(p), "NAME"), String::from_utf8_lossy(&o.stderr).into_owned(), o.status.code())
        };
        assert_eq!(text(&got_out, &got), text(&want_out, &want), "{profile}: what the client prints");
        assert!(String::from_utf8_lossy(&want_out.stdout).starts_with("Creating debugging pod node-debugger-"), "{want_out:?}");
        assert_eq!(got["spec"], want["spec"], "{profile}: the Pod's spec");
        assert_eq!(got["metadata"].get("labels"), want["metadata"].get("labels"), "{profile}");
        assert_eq!(got["metadata"].get("annotations"), want["metadata"].get("annotations"), "{profile}");
    }
    let args = ["debug", "node/nope", "--image=busybox", "--profile=general"];
    let (want, got) = (server.kubectl(&args), k1s(&args));
    assert_eq!((got.stdout, got.stderr, got.status.code()), (want.stdout, want.stderr, want.status.code()), "a missing node");
}

const DEBUG_SOURCE: &str = "apiVersion: v1
kind: Pod
metadata:
  name: src
  labels: {app: web}
  annotations: {team: edge}
spec:
  initContainers:
  - name: init
    image: busybox
    command: [sh, -c, \"true\"]
  containers:
  - name: app
    image: busybox
    command: [sleep, \"3600\"]
    livenessProbe: {exec: {command: [\"true\"]}, periodSeconds: 30}
    readinessProbe: {exec: {command: [\"true\"]}}
    startupProbe: {exec: {command: [\"true\"]}}
  - name: side
    image: busybox
    command: [sleep, \"3600\"]
    securityContext: {runAsUser: 0}
";

/// `debug POD --copy-to` (issue 11): the copy k1s creates is the one stock kubectl creates — for each profile, for
/// `--set-image`, for a changed container (`-c app -- cmd`), for the `--keep-*`, `--share-processes`,
/// `--same-node`, `--arguments-only`, `--env` and pull-policy flags, for a generated container name and for
/// `--replace` — with kubectl's output and exit code, and kubectl's errors for misused flags. With `-i` both
/// attach to the copy's debug container: what is piped in reaches it and its answer comes back.
#[test]
fn debug_copy_creates_kubectls_pod() {
    let server = k1s_tests::start_root();
    // Stock kubectl or `k1s kubectl`, with `input` piped in.
    let client = |k1s: bool, args: &[&str], input: &str| {
        use std::io::Write;
        let mut cmd = if k1s { std::process::Command::new(k1s_tests::binary()) } else { std::process::Command::new("kubectl") };
        if k1s {
            cmd.arg("kubectl");
        }
        let mut child = cmd
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the client runs");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let k1s = |args: &[&str], input: &str| client(true, args, input);
    let kubectl = |args: &[&str], input: &str| client(false, args, input);
    server.apply(DEBUG_SOURCE);
    let running = |name: &str| {
        server.wait_for(&format!("{name} running"), std::time::Duration::from_secs(60), || {
            let p = server.try_get_json(&["pod", name])?;
            (p["status"]["phase"] == "Running").then_some(())
        })
    };
    running("src");
    // The copy (None when none was made), then it is gone again, and `src` is back if `--replace` removed it.
    let take_copy = |who: &str| -> Option<serde_json::Value> {
        let copy = server.try_get_json(&["pod", "cp"]);
        if copy.is_some() {
            server.kubectl_ok(&["delete", "pod", "cp", "--grace-period=0", "--force"]);
            server.wait_for(&format!("{who}: copy gone"), std::time::Duration::from_secs(30), || server.try_get_json(&["pod", "cp"]).is_none().then_some(()));
        }
        if server.try_get_json(&["pod", "src"]).is_none() {
            server.apply(DEBUG_SOURCE);
            running("src");
        }
        copy
    };
    let mut cases: Vec<Vec<&str>> = Vec::new();
    for profile in ["--profile=legacy", "--profile=general", "--profile=baseline", "--profile=netadmin", "--profile=restricted", "--profile=sysadmin"] {
        cases.push(vec!["debug", "src", "--copy-to=cp", "--image=busybox", "-c", "dbg", profile, "--", "sleep", "3600"]);
    }
    cases.extend([
        vec!["debug", "src", "--copy-to=cp", "--set-image=*=busybox:1.36,side=busybox", "--profile=general"],
        vec!["debug", "src", "--copy-to=cp", "-c", "app", "--profile=general", "--env=A=1", "--", "sh", "-c", "sleep 3600"],
        vec![
            "debug", "src", "--copy-to=cp", "-c", "dbg", "--image=busybox", "--keep-labels", "--keep-annotations", "--keep-liveness",
            "--keep-init-containers=false", "--share-processes=false", "--same-node", "--arguments-only", "--image-pull-policy=IfNotPresent",
            "--profile=netadmin", "--", "x",
        ],
        vec!["debug", "pod/src", "--copy-to=cp", "--image=busybox", "--profile=general", "--", "sleep", "3600"],
        vec!["debug", "src", "--copy-to=cp", "--image=busybox", "-c", "dbg", "--replace", "--profile=sysadmin", "--", "sleep", "3600"],
        // kubectl's errors, in its order.
        vec!["debug", "src", "--copy-to=cp", "--profile=general"],
        vec!["debug", "src", "--copy-to=cp", "--profile=general", "--", "sh"],
        vec!["debug", "src", "--image=busybox", "--replace", "--profile=general"],
        vec!["debug", "src", "--image=busybox", "--same-node", "--profile=general"],
        vec!["debug", "src", "--set-image=app=busybox", "--profile=general"],
        vec!["debug", "src", "--copy-to=cp", "--image=busybox", "--target=app", "--profile=general"],
        vec!["debug", "src", "--copy-to=cp", "--image=busybox", "--image-pull-policy=Sometimes", "--profile=general"],
        vec!["debug", "src", "--copy-to=cp", "--image=busybox", "-t", "--profile=general"],
        vec!["debug", "nope", "--copy-to=cp", "--image=busybox", "--profile=general"],
        vec!["debug", "src", "--copy-to=cp", "--profile=bogus", "--image=busybox"],
    ]);
    for args in &cases {
        let src_kept = || server.try_get_json(&["pod", "src"]).is_some();
        let want_out = kubectl(args, "");
        let want_kept = src_kept();
        let want = take_copy("kubectl");
        let got_out = k1s(args, "");
        let got_kept = src_kept();
        let got = take_copy("k1s");
        assert_eq!(got_kept, want_kept, "{args:?}: the original kept (--replace deletes it)");
        // A generated container name differs by its random part only.
        let debugger = |p: &Option<serde_json::Value>| {
            let names = p.as_ref().map(|p| p["spec"]["containers"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
            names.iter().filter_map(|c| c["name"].as_str().filter(|n| n.starts_with("debugger-")).map(String::from)).next()
        };
        let text = |o: &std::process::Output, p: &Option<serde_json::Value>| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            if let Some(d) = debugger(p) {
                s = s.replace(&d, "debugger-XXXXX");
            }
            (s, String::from_utf8_lossy(&o.stderr).into_owned(), o.status.code())
        };
        assert_eq!(text(&got_out, &got), text(&want_out, &want), "{args:?}: what the client prints");
        assert_eq!(got.is_some(), want.is_some(), "{args:?}: a copy made");
        let (Some(mut got), Some(mut want)) = (got, want) else { continue };
        for p in [&mut got, &mut want] {
            let d = debugger(&Some(p.clone()));
            if !args.contains(&"--same-node") {
                // Scheduled by the server after creation: present or not by when it was read.
                p["spec"].as_object_mut().unwrap().remove("nodeName");
            }
            if let Some(d) = d {
                let text = serde_json::to_string(&p["spec"]).unwrap().replace(&d, "debugger-XXXXX");
                p["spec"] = serde_json::from_str(&text).unwrap();
            }
        }
        assert_eq!(got["spec"], want["spec"], "{args:?}: the copy's spec");
        assert_eq!(got["metadata"].get("labels"), want["metadata"].get("labels"), "{args:?}");
        assert_eq!(got["metadata"].get("annotations"), want["metadata"].get("annotations"), "{args:?}");
    }
    // -i: attach to the copy's debug container once it runs; the piped line reaches it and its answer comes back.
    let args = ["debug", "src", "--copy-to=cp", "--image=busybox", "-c", "dbg", "-i", "--profile=general", "--", "sh", "-c", "read x; echo got $x"];
    for who in ["kubectl", "k1s"] {
        let out = if who == "k1s" { k1s(&args, "hi\n") } else { kubectl(&args, "hi\n") };
        take_copy(who);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "got hi\n", "{who}: {out:?}");
        assert_eq!(out.status.code(), Some(0), "{who}: {out:?}");
    }
}

/// A command kubectl does not have is kubectl's error (its plugin lookup's, when a flag comes first); one of
/// kubectl's that k1s's subset lacks says so and what to use instead. Nothing reaches a server.
#[test]
fn unknown_and_unsupported_commands() {
    let first_line = |o: &std::process::Output| (String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").to_string(), o.status.code());
    for args in [&["zzzqq"][..], &["--kubeconfig=/nonexistent", "zzzqq"], &["zzzqq", "--kubeconfig=/nonexistent"]] {
        let want = std::process::Command::new("kubectl").args(args).output().expect("kubectl runs");
        let got = std::process::Command::new(k1s_tests::binary()).arg("kubectl").args(args).output().expect("k1s runs");
        assert_eq!(first_line(&got), first_line(&want), "{args:?}");
    }
    let got = std::process::Command::new(k1s_tests::binary()).args(["rollout", "status", "deploy/web"]).output().expect("k1s runs");
    assert_eq!(
        first_line(&got),
        ("error: \"kubectl rollout\" is not in k1s's kubectl subset yet; a stock kubectl works against this server with the same kubeconfig".to_string(), Some(1))
    );
}
