//! Control loops that talk to the API only through kube's client: the scheduler, the Job controller (with
//! the TTL-after-finished controller) and the garbage collector. Each keeps a pure planning core, table-tested,
//! and an apply step that only makes API calls.

pub mod deployment;
pub mod gc;
mod informer;
pub mod job;
pub mod replicaset;
pub mod scheduler;
