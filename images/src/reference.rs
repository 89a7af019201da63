//! Image reference normalisation as docker and Kubernetes do it (distribution/reference `ParseNormalizedNamed`
//! + `TagNameOnly`): `busybox` is `docker.io/library/busybox:latest`.

/// The parts of an image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// Registry host (with port), `docker.io` by default.
    pub domain: String,
    /// Repository path inside the registry (`library/busybox`).
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` after an `@`.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(name: &str) -> Reference {
        let name = name.trim();
        let (rest, digest) = match name.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (name, None),
        };
        // A tag is a ':' after the last '/': the ':' in "reg.io:5000/x" is a port.
        let last_slash = rest.rfind('/');
        let (repo, tag) = match rest.rfind(':') {
            Some(i) if last_slash.is_none_or(|s| i > s) => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        // The first component is a registry when it looks like a host (upstream splitDockerDomain).
        let (domain, path) = match repo.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':']) || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => ("docker.io".to_string(), repo.to_string()),
        };
        let domain = if domain == "index.docker.io" { "docker.io".to_string() } else { domain };
        let path = if domain == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path };
        Reference { domain, path, tag: tag.filter(|t| !t.is_empty()), digest }
    }

    /// `domain/path`, without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

/// Normalise an image name as Kubernetes does before asking a runtime for it: add the `docker.io` registry,
/// the `library/` namespace of official images, and `:latest` when there is neither tag nor digest.
/// `busybox` → `docker.io/library/busybox:latest`, `foo/bar:1` → `docker.io/foo/bar:1`,
/// `reg.io:5000/x` → `reg.io:5000/x:latest`, `busybox@sha256:…` keeps its digest and gets no tag.
pub fn normalize(name: &str) -> String {
    let r = Reference::parse(name);
    let mut out = r.repository();
    match (&r.tag, &r.digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = &r.digest {
        out.push('@');
        out.push_str(d);
    }
    out
}

/// Whether the reference pins a version: a digest, or a tag other than `latest`. Upstream defaults a
/// container's `imagePullPolicy` to `Always` exactly when this is false (untagged or `:latest`), and to
/// `IfNotPresent` otherwise (pkg/apis/core/v1/defaults.go, `SetDefaults_Container`).
pub fn has_tag_or_digest(name: &str) -> bool {
    let r = Reference::parse(name);
    r.digest.is_some() || r.tag.as_deref().is_some_and(|t| t != "latest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
            ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
            ("foo/bar:1", "docker.io/foo/bar:1"),
            ("foo/bar/baz", "docker.io/foo/bar/baz:latest"),
            ("reg.io:5000/x", "reg.io:5000/x:latest"),
            ("reg.io:5000/x:2", "reg.io:5000/x:2"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
            ("ghcr.io/a/b/c", "ghcr.io/a/b/c:latest"),
            (" busybox ", "docker.io/library/busybox:latest"),
            (
                "busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                "docker.io/library/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            ),
            (
                "busybox:1@sha256:2222222222222222222222222222222222222222222222222222222222222222",
                "docker.io/library/busybox:1@sha256:2222222222222222222222222222222222222222222222222222222222222222",
            ),
            (
                "reg.io:5000/x@sha256:3333333333333333333333333333333333333333333333333333333333333333",
                "reg.io:5000/x@sha256:3333333333333333333333333333333333333333333333333333333333333333",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "normalize({input:?})");
            // Normalising is idempotent.
            assert_eq!(normalize(want), want, "normalize({want:?})");
        }
    }

    #[test]
    fn pinned_versions() {
        for (input, want) in [
            ("busybox", false),
            ("busybox:latest", false),
            ("reg.io:5000/x", false),
            ("docker.io/library/busybox:latest", false),
            ("busybox:1.36", true),
            ("reg.io:5000/x:2", true),
            ("busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111", true),
        ] {
            assert_eq!(has_tag_or_digest(input), want, "has_tag_or_digest({input:?})");
        }
    }
}
