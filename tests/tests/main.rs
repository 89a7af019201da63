//! The one integration test binary: the in-process API suite and the end-to-end suite on the real binary.

mod agent;
mod api;
mod churn;
mod deploy;
mod e2e;
mod gc;
mod hardening;
mod interactive;
mod jobs;
mod kubectl;
mod kubectl_golden;
mod lifecycle;
mod logs;
mod portforward;
mod reliability;
mod replication;
mod scheduler;
mod static_pods;
