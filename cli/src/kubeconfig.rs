//! The kubeconfig the server writes for kubectl and other clients (YAML is a superset of what we emit).

use std::path::Path;

use base64::Engine as _;

/// Render a kubeconfig for `server` (an https URL) trusting `ca_pem` and authenticating with `token`.
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: k1s
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: k1s-admin
  user:
    token: {token}
contexts:
- name: k1s
  context:
    cluster: k1s
    user: k1s-admin
    namespace: default
current-context: k1s
preferences: {{}}
"
    )
}

/// Write it with mode 0600 (it holds the admin credential), atomically.
pub fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    k1s_apiserver::tls::write_private(path, contents.as_bytes())?;
    Ok(())
}
