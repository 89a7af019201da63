//! The node agent (our kubelet): runs the Pods bound to this node as Linux containers.
//!
//! Code map: [`network`] (bridge, veth, IPAM, the Pod's namespaces), [`runtime`] (the shim, container init,
//! cgroups, rootfs, state files), [`plan`] (the pure `compute_pod_actions`), [`pods`] (the sync loop and pod
//! workers), [`status`] (the one pod-status writer), [`node`] (Node registration and Lease), [`logs`], [`exec`].

pub mod network;
