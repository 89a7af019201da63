//! The node agent (our kubelet): runs Pods bound to this node as Linux containers. Filled by the node agent issue.
