//! `k1s reset`: remove what a server of a data dir created. Later issues add pods, links and mounts;
//! today that is the data dir, the Pod cgroup parent and the bridge.

use std::path::Path;

use anyhow::{bail, Context};

use crate::ResetArgs;

pub fn run(args: &ResetArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    let db = dir.join("db");
    if db.exists() {
        // sled holds an exclusive lock on its database: if we can open it, no server is using this dir.
        match k1s_store::SledStore::open(&db, k1s_store::SledOptions::default()) {
            Ok(s) => s.close(),
            Err(e) => bail!("cannot reset {}: the database is in use or unreadable ({e}); stop the k1s server first", dir.display()),
        }
    }
    remove_cgroup_parent(&args.cgroup_parent);
    remove_bridge(&args.bridge);
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        eprintln!("removed {}", dir.display());
    }
    Ok(())
}

/// Remove `<parent>` under every cgroup hierarchy (v1 controllers and the v2 tree), children first.
fn remove_cgroup_parent(parent: &str) {
    if parent.is_empty() || parent.contains("..") {
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(parent)];
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            candidates.push(e.path().join(parent));
        }
    }
    for c in candidates.into_iter().filter(|c| c.is_dir()) {
        rmdir_tree(&c);
    }
}

/// cgroup directories are removed with rmdir (their files are virtual), deepest first.
fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => eprintln!("removed cgroup {}", dir.display()),
        Err(e) => eprintln!("could not remove cgroup {}: {e}", dir.display()),
    }
}

fn remove_bridge(name: &str) {
    if name.is_empty() || !Path::new("/sys/class/net").join(name).exists() {
        return;
    }
    match std::process::Command::new("ip").args(["link", "delete", name]).status() {
        Ok(s) if s.success() => eprintln!("removed bridge {name}"),
        _ => eprintln!("could not remove bridge {name}; remove it with: ip link delete {name}"),
    }
}
