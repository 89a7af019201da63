//! Authentication: every request carries the admin bearer token, except health checks and `/version`
//! (upstream serves those to anonymous clients too, and load balancers and kubectl's dispatcher probe them).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header;

use crate::error::ApiError;

/// The accepted bearer tokens.
#[derive(Clone)]
pub struct Tokens(Arc<Vec<String>>);

impl Tokens {
    pub fn new(tokens: Vec<String>) -> Self {
        Tokens(Arc::new(tokens))
    }

    fn accepts(&self, presented: &str) -> bool {
        self.0.iter().any(|t| constant_time_eq(t.as_bytes(), presented.as_bytes()))
    }
}

/// Compare without an early exit, so response timing does not reveal how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Paths anyone may read.
pub fn is_anonymous(path: &str) -> bool {
    matches!(path, "/version" | "/livez" | "/readyz" | "/healthz")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
        || path.starts_with("/healthz/")
}

/// axum middleware: 401 `Status` without a valid `Authorization: Bearer` token.
pub async fn require(State(tokens): State<Tokens>, req: Request, next: Next) -> Response {
    if is_anonymous(req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        Some(t) if tokens.accepts(t) => next.run(req).await,
        _ => ApiError::unauthorized().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = Tokens::new(vec!["abc".into()]);
        assert!(t.accepts("abc"));
        assert!(!t.accepts("abd"));
        assert!(!t.accepts("ab"));
        assert!(is_anonymous("/readyz"));
        assert!(!is_anonymous("/api"));
    }
}
