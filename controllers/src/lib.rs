//! Control loops that talk to the API only through kube's client: for now the binder that schedules every
//! unbound Pod onto the one node (the scheduler issue replaces it with fit checks: resources, nodeSelector,
//! taints).

pub mod binder;
