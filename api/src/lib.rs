//! Everything pure about Kubernetes objects: the resource table, defaults, validation, selectors and
//! version conversion. No IO and no async: the API server calls into it, and so can any test.
//!
//! Objects are handled as `serde_json::Value` (the registry is generic over kinds); the k8s-openapi types
//! are used to check that a body decodes as its kind, and by clients.

pub mod defaults;
pub mod events;
pub mod meta;
pub mod protobuf;
pub mod quantity;
pub mod resources;
pub mod selectors;
pub mod smp;
pub mod ssa;
pub mod tables;
pub mod validation;
pub mod yaml;

pub use k8s_openapi;
pub use resources::{ResourceInfo, RESOURCES};
