//! Pod networking: the bridge, one veth per Pod whose peer is born inside the Pod's netns, persisted IPAM,
//! and the Pod's own net/ipc/uts namespaces pinned as bind-mounted files.
