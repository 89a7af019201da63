//! Static Pods end to end: files in `<data-dir>/manifests` run as Pods, visible as read-only mirror Pods that
//! come back when deleted; editing or removing the file restarts or stops the Pod; a broken file is a Node
//! event; static Pods keep running across a kill -9 of the server.

use std::time::{Duration, Instant};

use k1s_tests::{start_root, Server};
use serde_json::Value;

const WEB: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'echo v1; exec sleep 3600']
";

fn mirror(s: &Server, name: &str) -> Option<Value> {
    s.try_get_json(&["pod", &format!("{name}-{}", s.id.node_name)])
}

fn started_at(p: &Value) -> Option<String> {
    p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].as_str().map(str::to_string)
}

fn running_mirror(s: &Server, name: &str, timeout: Duration) -> Value {
    s.wait_for(&format!("mirror of {name} Running"), timeout, || {
        let p = mirror(s, name)?;
        (p["status"]["phase"] == "Running" && started_at(&p).is_some()).then_some(p)
    })
}

#[test]
fn static_pods_from_files() {
    let mut s = start_root();
    let dir = s.dir.join("manifests");
    s.wait_for("the manifest directory", Duration::from_secs(10), || dir.is_dir().then_some(()));

    let t0 = Instant::now();
    std::fs::write(dir.join("web.yaml"), WEB).unwrap();
    let m = s.wait_for("the mirror Pod", Duration::from_secs(2), || mirror(&s, "web"));
    eprintln!("mirror visible after {:?}", t0.elapsed());
    let a = &m["metadata"]["annotations"];
    assert_eq!(a["kubernetes.io/config.source"], "file");
    assert!(a["kubernetes.io/config.hash"].is_string());
    assert_eq!(a["kubernetes.io/config.mirror"], a["kubernetes.io/config.hash"]);
    assert_eq!(m["metadata"]["ownerReferences"][0]["kind"], "Node");
    assert_eq!(m["metadata"]["ownerReferences"][0]["name"], s.id.node_name.as_str());
    let m = running_mirror(&s, "web", Duration::from_secs(10));
    let started = started_at(&m).unwrap();
    let name = format!("web-{}", s.id.node_name);
    assert_eq!(s.kubectl_ok(&["logs", &name]), "v1\n");

    // Deleting the mirror does not touch the containers: the mirror comes back with the same container.
    let old_uid = m["metadata"]["uid"].clone();
    s.kubectl_ok(&["delete", "pod", &name, "--timeout=30s"]);
    let back = s.wait_for("the mirror back", Duration::from_secs(20), || {
        let p = mirror(&s, "web")?;
        (p["metadata"]["uid"] != old_uid && started_at(&p).is_some()).then_some(p)
    });
    assert_eq!(started_at(&back).unwrap(), started, "the container was not restarted");
    assert_eq!(back["status"]["containerStatuses"][0]["restartCount"], 0);

    // Its spec cannot be changed through the API (kubectl edit of the image).
    let editor = s.dir.join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/image: busybox$/image: busybox:other/' \"$1\"\n").unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["edit", "pod", &name])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "edit accepted: {err}");
    assert!(err.contains("is invalid"), "{err}");
    // kubectl edit shows the server's reasons in the copy it keeps (as comments at the top).
    let copy = err.split('"').find(|p| p.starts_with("/tmp/kubectl-edit-")).expect("kubectl kept a copy");
    let kept = std::fs::read_to_string(copy).unwrap();
    let _ = std::fs::remove_file(copy);
    assert!(kept.contains("edit that file instead") && kept.contains("web.yaml"), "{kept}");

    // A broken file is reported on the Node; the other static Pods are unaffected.
    std::fs::write(dir.join("broken.yaml"), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: broken\nspec:\n  containers:\n  - name: c\n").unwrap();
    let ev = s.wait_for("a Node event about broken.yaml", Duration::from_secs(15), || {
        let out = s.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.kind=Node,reason=FailedStaticPod", "-o", "json"]);
        out.contains("broken.yaml").then_some(out)
    });
    assert!(ev.contains("spec.containers[0].image: Required value"), "{ev}");
    assert_eq!(started_at(&mirror(&s, "web").unwrap()).unwrap(), started);

    // Static Pods survive a kill -9 of the server without a container restart.
    s.kill9();
    s.restart().unwrap();
    let after = running_mirror(&s, "web", Duration::from_secs(30));
    assert_eq!(started_at(&after).unwrap(), started, "restarted across the server restart");
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);

    // Editing the file restarts the Pod with the new spec.
    let old_hash = after["metadata"]["annotations"]["kubernetes.io/config.hash"].clone();
    std::fs::write(dir.join("web.yaml"), WEB.replace("echo v1", "echo v2")).unwrap();
    let new = s.wait_for("the new static Pod running", Duration::from_secs(20), || {
        let p = mirror(&s, "web")?;
        (p["metadata"]["annotations"]["kubernetes.io/config.hash"] != old_hash && started_at(&p).is_some()).then_some(p)
    });
    assert!(new["spec"]["containers"][0]["command"][2].as_str().unwrap().contains("echo v2"));
    s.wait_for("the new container's log", Duration::from_secs(10), || (s.kubectl_ok(&["logs", &name]) == "v2\n").then_some(()));
    let uid = new["metadata"]["annotations"]["kubernetes.io/config.hash"].as_str().unwrap().to_string();
    assert!(s.dir.join("pods").join(&uid).exists());

    // Removing the file stops the Pod and removes its mirror.
    std::fs::remove_file(dir.join("web.yaml")).unwrap();
    s.wait_for("the mirror gone", Duration::from_secs(20), || mirror(&s, "web").is_none().then_some(()));
    s.wait_for("the sandbox gone", Duration::from_secs(20), || (!s.dir.join("pods").join(&uid).exists()).then_some(()));
}
