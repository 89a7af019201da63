//! Built-in images (busybox from the host's static busybox) and test fixtures. Filled by the node agent issue.
