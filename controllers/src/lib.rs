//! Control loops that talk to the API only through kube's client: the scheduler, the Job controller (with
//! the TTL-after-finished controller), the garbage collector, the ReplicaSet and Deployment controllers and
//! the deploy directory's applier. Each keeps a pure planning core, table-tested,
//! and an apply step that only makes API calls.

pub mod deploy;
pub mod deployment;
pub mod gc;
mod informer;
pub mod job;
pub mod replicaset;
pub mod scheduler;
