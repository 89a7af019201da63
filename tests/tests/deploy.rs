//! The auto-deploy directory end to end, as root on the real binary with stock kubectl: a Job file dropped in
//! runs and is removed with its file; an edited file is applied again and what it no longer declares goes; a
//! broken file is a Warning event on the Node naming the file and line while other files still apply; a file
//! removed while the server is down is undeployed at the next start. The harness's Drop guard (`k1s reset`)
//! removes all kernel state afterwards, pass or fail.
//!
//! Network rule: these tests send no traffic except kubectl's to the server on loopback.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k1s_tests::{require_root, start_root, Identity, Server};
use serde_json::Value;

const JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: busybox
        command: ["sh", "-c", "echo deployed from a file"]
"#;

fn config_maps(a: &str, extra: bool) -> String {
    let mut s = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"{a}\"\n");
    if extra {
        s.push_str("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: kube-system\ndata:\n  b: x\n");
    }
    s
}

/// The deploy directory exists once the server has started its loops (just after the kubeconfig).
fn deploy_dir(s: &Server, dir: PathBuf) -> PathBuf {
    s.wait_for("the deploy directory", Duration::from_secs(10), || dir.is_dir().then_some(()));
    dir
}

/// Write like an editor that saves in place (open, truncate, write, close).
fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write a deploy file");
}

fn condition(job: &Value, ty: &str) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

fn pods_of(s: &Server, job: &str) -> usize {
    s.get_json(&["pods", "-l", &format!("job-name={job}")])["items"].as_array().map_or(0, Vec::len)
}

/// The FailedDeploy events on this server's Node.
fn deploy_events(s: &Server) -> Vec<String> {
    let sel = format!("involvedObject.kind=Node,involvedObject.name={},reason=FailedDeploy", s.id.node_name);
    let v: Value = serde_json::from_str(&s.kubectl_ok(&["get", "events", "-A", "--field-selector", &sel, "-o", "json"])).expect("events json");
    v["items"].as_array().into_iter().flatten().filter(|e| e["type"] == "Warning").filter_map(|e| e["message"].as_str().map(str::to_string)).collect()
}

#[test]
fn a_deploy_dir_job_runs_and_is_removed_with_its_file() {
    let s = start_root();
    let dir = deploy_dir(&s, s.dir.join("deploy"));

    // A Job dropped in: created with the marks naming its file, and run to completion.
    write(&dir, "hello.yaml", JOB);
    let job = s.wait_for("the deployed Job", Duration::from_secs(5), || s.try_get_json(&["job", "hello"]));
    assert_eq!(job["metadata"]["labels"]["k1s.io/deploy"], "true");
    assert_eq!(job["metadata"]["annotations"]["k1s.io/deploy-file"], "hello.yaml");
    let job = s.get_json(&["job", "hello", "--show-managed-fields"]);
    let managers: Vec<&str> = job["metadata"]["managedFields"].as_array().into_iter().flatten().filter_map(|m| m["manager"].as_str()).collect();
    assert!(managers.contains(&"k1s-deploy"), "applied by the k1s-deploy field manager: {managers:?}");
    s.wait_for("the deployed Job to complete", Duration::from_secs(60), || s.try_get_json(&["job", "hello"]).filter(|j| condition(j, "Complete")));
    assert_eq!(s.kubectl_ok(&["logs", "job/hello"]), "deployed from a file\n");

    // Two ConfigMaps in one file (one in another namespace); then an edit changes one and drops the other.
    write(&dir, "cfg.yml", &config_maps("1", true));
    s.wait_for("both ConfigMaps", Duration::from_secs(5), || {
        (s.try_get_json(&["configmap", "cfg"]).is_some() && s.try_get_json(&["-n", "kube-system", "configmap", "extra"]).is_some()).then_some(())
    });
    let t0 = Instant::now();
    write(&dir, "cfg.yml", &config_maps("2", false));
    s.wait_for("the edit applied", Duration::from_secs(5), || s.try_get_json(&["configmap", "cfg"]).filter(|c| c["data"]["a"] == "2"));
    // Well inside the 10 s rescan: inotify saw the write.
    assert!(t0.elapsed() < Duration::from_secs(4), "the edit took {:?}", t0.elapsed());
    s.wait_for("the dropped ConfigMap deleted", Duration::from_secs(5), || s.try_get_json(&["-n", "kube-system", "configmap", "extra"]).is_none().then_some(()));

    // A file that does not parse (line 4) and one with an unknown kind (its second document, line 6): both
    // are Warning events on the Node naming file and line, and a good file dropped with them still applies.
    write(&dir, "broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n");
    write(&dir, "unknown.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n");
    write(&dir, "good.json", r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "good"}, "data": {"k": "v"}}"#);
    s.wait_for("the good file applied", Duration::from_secs(5), || s.try_get_json(&["configmap", "good"]));
    s.wait_for("the good document of a file with a bad one", Duration::from_secs(5), || s.try_get_json(&["configmap", "fine"]));
    let events = s.wait_for("FailedDeploy events on the Node", Duration::from_secs(10), || {
        let ev = deploy_events(&s);
        (ev.iter().any(|m| m.starts_with("broken.yaml:4: ")) && ev.iter().any(|m| m.starts_with("unknown.yaml:6: "))).then_some(ev)
    });
    let unknown = events.iter().find(|m| m.starts_with("unknown.yaml:6: ")).expect("checked");
    assert!(unknown.contains("Widget") && unknown.contains("example.com/v1"), "{unknown}");
    let log = s.log();
    assert!(log.contains("broken.yaml:4: ") && log.contains("unknown.yaml:6: "), "the log names file and line:\n{log}");
    // A broken edit of a deployed file keeps what it made.
    write(&dir, "good.json", r#"{"apiVersion": "v1", "kind": "#);
    s.wait_for("the broken edit reported", Duration::from_secs(10), || deploy_events(&s).iter().any(|m| m.starts_with("good.json:1: ")).then_some(()));
    assert!(s.try_get_json(&["configmap", "good"]).is_some(), "a file that no longer parses keeps its objects");

    // Editor leftovers are not manifests.
    write(&dir, ".cfg.yml.swp", &config_maps("3", true));
    write(&dir, "cfg.yml~", &config_maps("4", true));

    // The Job's file removed: the Job goes, and its Pods with it (Background propagation).
    assert_eq!(pods_of(&s, "hello"), 1);
    std::fs::remove_file(dir.join("hello.yaml")).expect("remove the Job's file");
    s.wait_for("the Job deleted with its file", Duration::from_secs(5), || s.try_get_json(&["job", "hello"]).is_none().then_some(()));
    s.wait_for("the Job's Pods deleted", Duration::from_secs(30), || (pods_of(&s, "hello") == 0).then_some(()));
    assert_eq!(s.get_json(&["configmap", "cfg"])["data"]["a"], "2", "editor leftovers were not applied");
    assert!(s.try_get_json(&["-n", "kube-system", "configmap", "extra"]).is_none());
}

#[test]
fn a_file_removed_while_the_server_is_down_is_undeployed_at_restart() {
    require_root();
    let data = tempfile::Builder::new().prefix("k1s-test-").tempdir().expect("tempdir");
    let custom = data.path().join("auto");
    let flag = custom.to_str().expect("utf-8 path").to_string();
    let mut s = Server::start_with(data.path(), Identity::unique(), "127.0.0.1:0", &["--deploy-path", &flag]).expect("server starts");
    let dir = deploy_dir(&s, custom);
    assert!(!s.dir.join("deploy").exists(), "--deploy-path replaces the default directory");

    write(&dir, "keep.yaml", &config_maps("1", false));
    // The ConfigMap comes before the Namespace it lives in: order in a file does not matter.
    write(&dir, "gone.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: team-cfg\n  namespace: deployed-team\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: deployed-team\n");
    s.wait_for("both files applied", Duration::from_secs(5), || {
        (s.try_get_json(&["configmap", "cfg"]).is_some() && s.try_get_json(&["-n", "deployed-team", "configmap", "team-cfg"]).is_some()).then_some(())
    });
    assert_eq!(deploy_events(&s), Vec::<String>::new(), "no error for a Namespace declared after its objects");

    // While the server is down: one file removed, the other edited.
    s.kill9();
    std::fs::remove_file(dir.join("gone.yaml")).expect("remove a file");
    write(&dir, "keep.yaml", &config_maps("2", false));
    s.restart().expect("restart");

    s.wait_for("the removed file's Namespace deleted", Duration::from_secs(20), || s.try_get_json(&["namespace", "deployed-team"]).is_none().then_some(()));
    s.wait_for("the edit made while down applied", Duration::from_secs(5), || s.try_get_json(&["configmap", "cfg"]).filter(|c| c["data"]["a"] == "2"));
    // An object the user made by hand, without the deploy label, is never the deploy directory's to delete.
    s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: by-hand\n");
    std::fs::remove_file(dir.join("keep.yaml")).expect("remove the last file");
    s.wait_for("the last file's ConfigMap deleted", Duration::from_secs(5), || s.try_get_json(&["configmap", "cfg"]).is_none().then_some(()));
    assert!(s.try_get_json(&["configmap", "by-hand"]).is_some());
    drop(s);
    drop(data);
}
