//! HTTPS: a CA and serving certificate generated on first start and reused after, the admin token, and the
//! accept loop (rustls with the ring provider; hyper serving axum with upgrades and graceful shutdown).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::{self, Tokens};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generating certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("loading certificates from {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_path_buf(), source }
}

/// The server's credentials, as files under `<data-dir>/pki`.
#[derive(Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The admin bearer token (also in the kubeconfig).
    pub token: String,
}

/// Write a file readable by root only (keys and tokens), atomically.
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

impl Pki {
    /// Load the CA, serving certificate and token from `dir`, creating what is missing. The serving
    /// certificate is re-issued (by the same CA) when the SANs it needs changed, e.g. a new listen address.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Pki, TlsError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let _ = fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
        if !ca_crt.exists() || !ca_key.exists() {
            let key = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(rcgen::DnType::CommonName, "k1s-ca");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign, rcgen::KeyUsagePurpose::DigitalSignature];
            params.not_after = rcgen::date_time_ymd(expiry_year(10), 1, 1);
            let cert = params.self_signed(&key)?;
            write_private(&ca_key, key.serialize_pem().as_bytes())?;
            fs::write(&ca_crt, cert.pem()).map_err(io(&ca_crt))?;
        }
        let ca_pem = fs::read_to_string(&ca_crt).map_err(io(&ca_crt))?;
        let ca_key_pem = fs::read_to_string(&ca_key).map_err(io(&ca_key))?;

        let (crt, key, sans_file) = (dir.join("server.crt"), dir.join("server.key"), dir.join("server.sans"));
        let want = sans.join("\n");
        let have = fs::read_to_string(&sans_file).unwrap_or_default();
        if !crt.exists() || !key.exists() || have != want {
            let ca_key = rcgen::KeyPair::from_pem(&ca_key_pem)?;
            let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
            let server_key = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::new(sans.to_vec())?;
            params.distinguished_name.push(rcgen::DnType::CommonName, "k1s-apiserver");
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            params.not_after = rcgen::date_time_ymd(expiry_year(10), 1, 1);
            let cert = params.signed_by(&server_key, &issuer)?;
            write_private(&key, server_key.serialize_pem().as_bytes())?;
            fs::write(&crt, cert.pem()).map_err(io(&crt))?;
            fs::write(&sans_file, &want).map_err(io(&sans_file))?;
        }
        let token_path = dir.join("admin.token");
        if !token_path.exists() {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).map_err(|e| TlsError::Load { path: token_path.clone(), message: e.to_string() })?;
            let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
            write_private(&token_path, token.as_bytes())?;
        }
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca_pem,
            cert_pem: fs::read_to_string(&crt).map_err(io(&crt))?,
            key_pem: fs::read_to_string(&key).map_err(io(&key))?,
            token: fs::read_to_string(&token_path).map_err(io(&token_path))?.trim().to_string(),
        })
    }

    /// The rustls server configuration (HTTP/2 and HTTP/1.1 by ALPN).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let load = |message: String| TlsError::Load { path: self.dir.clone(), message };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| load(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| load(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Certificates expire `years` from now (rounded to a year start; an edge box may go years without a visit).
fn expiry_year(years: i32) -> i32 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    1970 + (secs / 31_556_952) as i32 + years
}

/// Serve `app` over HTTPS with bearer-token auth until `shutdown` turns true, then give open connections
/// (watches end on the same signal) a moment to finish.
pub async fn serve(listener: TcpListener, app: Router, config: Arc<rustls::ServerConfig>, tokens: Tokens, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let app = app.layer(axum::middleware::from_fn_with_state(tokens, auth::require));
    let acceptor = TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, app) = (acceptor.clone(), app.clone());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(t)) => t,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(2)) => tracing::info!("closing connections still open after 2s"),
    }
}
