//! Linux capability names and numbers (linux/capability.h), the containerd default set, and the syscalls
//! that apply a set (bounding-set drops, capset).

/// Index = capability number.
pub const NAMES: [&str; 41] = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
];

/// containerd's default set (oci/spec.go `defaultUnixCaps`), which Kubernetes containers get unless privileged,
/// without MKNOD (as podman's default): containerd's device cgroup refuses to open a node made with it, and k1s
/// has no device cgroup, so with MKNOD a container could open any host device (the disk, /dev/kmsg).
pub const DEFAULT: [&str; 13] = [
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
];

/// A capability number from a Kubernetes name (`NET_ADMIN` or `CAP_NET_ADMIN`, any case).
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// The set a container gets: the default set, plus `add`, minus `drop` (`ALL` drops or adds everything), as
/// the CRI runtimes compute it.
pub fn effective_set(add: &[String], drop: &[String]) -> Vec<u32> {
    let all: Vec<u32> = (0..NAMES.len() as u32).collect();
    let mut set: Vec<u32> = if add.iter().any(|a| a.eq_ignore_ascii_case("ALL")) {
        all.clone()
    } else {
        let mut s: Vec<u32> = DEFAULT.iter().filter_map(|n| number(n)).collect();
        s.extend(add.iter().filter_map(|n| number(n)));
        s
    };
    if drop.iter().any(|d| d.eq_ignore_ascii_case("ALL")) {
        // `drop: [ALL]` with `add: [X]` keeps exactly X (the usual hardening idiom).
        set = add.iter().filter_map(|n| number(n)).collect();
    } else {
        let dropped: Vec<u32> = drop.iter().filter_map(|n| number(n)).collect();
        set.retain(|c| !dropped.contains(c));
    }
    set.sort_unstable();
    set.dedup();
    set
}

/// The highest capability the running kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

/// Drop every capability not in `keep` from the bounding set (needs CAP_SETPCAP, which root has).
pub fn drop_bounding(keep: &[u32], last: u32) -> std::io::Result<()> {
    for cap in 0..=last {
        if !keep.contains(&cap) {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Set effective, permitted and inheritable to exactly `keep` (capset, version 3: two 32-bit words).
pub fn set_process_caps(keep: &[u32]) -> std::io::Result<()> {
    let mut data = [CapData::default(); 2];
    for &c in keep {
        let (word, bit) = ((c / 32) as usize, c % 32);
        if word < 2 {
            data[word].effective |= 1 << bit;
            data[word].permitted |= 1 << bit;
            data[word].inheritable |= 1 << bit;
        }
    }
    let mut header = CapHeader { version: 0x2008_0522, pid: 0 };
    // SAFETY: header and data are valid for the duration of the call and laid out as the kernel expects.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sets() {
        assert_eq!(number("NET_ADMIN"), Some(12));
        assert_eq!(number("cap_sys_admin"), Some(21));
        assert_eq!(number("NOPE"), None);
        let d = effective_set(&[], &[]);
        assert_eq!(d.len(), 13);
        assert!(!d.contains(&12));
        assert!(!d.contains(&27), "no MKNOD: without a device cgroup a node opens the host's device");
        let added = effective_set(&["NET_ADMIN".into()], &["KILL".into()]);
        assert!(added.contains(&12) && !added.contains(&5));
        assert_eq!(effective_set(&["NET_BIND_SERVICE".into()], &["ALL".into()]), vec![10]);
        assert_eq!(effective_set(&["ALL".into()], &[]).len(), 41);
    }
}
