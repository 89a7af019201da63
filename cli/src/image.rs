//! `k1s image import FILE... | ls | rm NAME...`: the local image store from the command line. Safe while a
//! server runs on the same data dir: the store's writes are atomic and its updates locked.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use k1s_images::{ImageStore, Progress};

#[derive(clap::Args, Clone, Debug)]
pub struct ImageArgs {
    /// The server's data dir; images live in <data-dir>/images.
    #[arg(long, global = true, default_value = crate::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub cmd: ImageCommand,
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum ImageCommand {
    /// Load images from `docker save` or OCI image layout archives (.tar, .tar.gz).
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List images: name, id, size.
    #[command(alias = "list")]
    Ls,
    /// Remove images by name, or by id (prefix) with all their names.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub fn run(args: &ImageArgs) -> anyhow::Result<()> {
    let root = args.data_dir.join("images");
    let store = ImageStore::open(&root).with_context(|| format!("opening the image store {}", root.display()))?;
    match &args.cmd {
        ImageCommand::Import { files } => import(&store, files),
        ImageCommand::Ls => list(&store),
        ImageCommand::Rm { names } => remove(&store, names, &args.data_dir.join("pods")),
    }
}

fn import(store: &ImageStore, files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        if let Err(e) = import_one(store, file) {
            eprintln!("error: {}: {e}", file.display());
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} archives not imported", files.len());
    }
    Ok(())
}

fn import_one(store: &ImageStore, file: &Path) -> anyhow::Result<()> {
    let mut show = |p: Progress| match p {
        Progress::Layer { index, total, digest, bytes, reused } => {
            let what = if reused { "already present" } else { "unpacked" };
            eprintln!("layer {index}/{total} {} {} {what}", short_id(&digest), human_size(bytes));
        }
        Progress::Image { name, id } if name == id => eprintln!("Loaded image ID: {id}"),
        Progress::Image { name, .. } => eprintln!("Loaded image: {name}"),
    };
    store.import_archive(file, &mut show)?;
    Ok(())
}

fn list(store: &ImageStore) -> anyhow::Result<()> {
    let mut rows = vec![["IMAGE".to_string(), "ID".to_string(), "SIZE".to_string()]];
    for img in store.list()? {
        let id = short_id(&img.id).to_string();
        let size = human_size(img.size);
        if img.names.is_empty() {
            rows.push(["<none>".into(), id, size]);
        } else {
            for name in img.names {
                rows.push([name, id.clone(), size.clone()]);
            }
        }
    }
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
    for [name, id, size] in rows {
        println!("{name:<w0$}  {id:<w1$}  {size}");
    }
    Ok(())
}

fn remove(store: &ImageStore, names: &[String], pods: &Path) -> anyhow::Result<()> {
    let mut failed = 0;
    for name in names {
        if let Err(e) = remove_one(store, name, pods) {
            eprintln!("error: {e}");
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} images not removed", names.len());
    }
    Ok(())
}

/// The Pods on this node (by their container state directories) whose containers use image `id`.
fn users_of(pods: &Path, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    for dir in k1s_agent::runtime::all_attempt_dirs(pods) {
        if let Ok(spec) = k1s_agent::runtime::spec::read_json::<k1s_agent::runtime::ContainerSpec>(&dir.join("spec.json")) {
            let who = format!("Pod {}/{} (container {})", spec.namespace, spec.pod_name, spec.container_name);
            if spec.image_id == id && !out.contains(&who) {
                out.push(who);
            }
        }
    }
    out
}

fn remove_one(store: &ImageStore, name: &str, pods: &Path) -> anyhow::Result<()> {
    let Some(img) = store.resolve(name)? else {
        bail!("image {name:?} not found in the local store; `k1s image ls` lists what is there");
    };
    // A name removes that name; an id (or prefix) removes the image under all its names.
    let by_name = img.name == name.trim() || img.name == k1s_images::normalize(name);
    let names = store.list()?.into_iter().find(|s| s.id == img.id).map(|s| s.names).unwrap_or_default();
    let untagged = if by_name { vec![img.name.clone()] } else { names.clone() };
    // The image's layers are the lower layers of running containers' root filesystems: removing them under a
    // live overlay is undefined behaviour, so an image in use stays (as docker refuses without -f).
    if !by_name || names.len() <= 1 {
        let users = users_of(pods, &img.id);
        if !users.is_empty() {
            bail!("image {name:?} is in use by {}: delete those Pods first", users.join(", "));
        }
    }
    store.remove(name)?;
    for n in untagged {
        println!("Untagged: {n}");
    }
    if store.resolve(&img.id)?.is_none() {
        println!("Deleted: {}", img.id);
    }
    Ok(())
}

/// The first 12 hex digits of a `sha256:` digest, as docker shows ids.
fn short_id(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// Decimal units with three significant digits, as `docker images` prints sizes.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        // Three significant digits: 4.26, 12.3, 123.
        let digits: String = format!("{v:.3}").chars().take(4).collect();
        format!("{}{}", digits.trim_end_matches('.'), UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_000), "1.00kB");
    }
}
