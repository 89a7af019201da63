//! `seccompProfile: RuntimeDefault`: a classic-BPF seccomp filter that answers EPERM to the syscalls
//! containerd's default profile (contrib/seccomp/seccomp_default.go) leaves out, and allows the rest. The
//! default profile is an allowlist; k1s keeps its effect as a denylist of what it refuses, which is short,
//! reviewable and needs no dependency. The CAP_SYS_ADMIN group (mount, unshare, setns, ...) stays allowed when
//! the container has that capability, as containerd's profile allows it then. x86_64 and aarch64 only.

/// Syscalls containerd's default profile refuses to every container.
const DENIED: &[libc::c_long] = &[
    libc::SYS_acct,
    libc::SYS_add_key,
    libc::SYS_bpf,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_settime,
    libc::SYS_delete_module,
    libc::SYS_finit_module,
    libc::SYS_get_mempolicy,
    libc::SYS_init_module,
    libc::SYS_kcmp,
    libc::SYS_kexec_file_load,
    libc::SYS_kexec_load,
    libc::SYS_keyctl,
    libc::SYS_mbind,
    libc::SYS_move_pages,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_perf_event_open,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_quotactl,
    libc::SYS_reboot,
    libc::SYS_request_key,
    libc::SYS_set_mempolicy,
    libc::SYS_settimeofday,
    libc::SYS_swapoff,
    libc::SYS_swapon,
    libc::SYS_userfaultfd,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_nfsservctl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ustat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_sysfs,
    #[cfg(target_arch = "x86_64")]
    libc::SYS__sysctl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_lookup_dcookie,
];

/// Allowed by containerd's profile only with CAP_SYS_ADMIN.
const SYS_ADMIN: &[libc::c_long] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_pivot_root,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_lookup_dcookie,
    libc::SYS_quotactl,
    libc::SYS_setdomainname,
    libc::SYS_sethostname,
];

const CAP_SYS_ADMIN: u32 = 21;

// Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// offsetof(struct seccomp_data, nr) and (…, arch).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The RuntimeDefault filter for a container with these capabilities.
pub fn runtime_default(capabilities: &[u32]) -> Vec<libc::sock_filter> {
    let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let mut denied: Vec<libc::c_long> = DENIED.to_vec();
    if !capabilities.contains(&CAP_SYS_ADMIN) {
        denied.extend_from_slice(SYS_ADMIN);
    }
    denied.sort_unstable();
    denied.dedup();
    // Another architecture's syscall numbers mean other syscalls: refuse them all (as containerd's profile,
    // which lists only the native ones).
    let mut prog = vec![stmt(BPF_LD_W_ABS, OFF_ARCH), jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0), stmt(BPF_RET_K, eperm), stmt(BPF_LD_W_ABS, OFF_NR)];
    #[cfg(target_arch = "x86_64")]
    {
        // The x32 ABI (numbers with bit 30 set) reaches the same kernel entry points under other numbers.
        prog.push(jump(BPF_JGE_K, 0x4000_0000, 0, 1));
        prog.push(stmt(BPF_RET_K, eperm));
    }
    for nr in denied {
        prog.push(jump(BPF_JEQ_K, nr as u32, 0, 1));
        prog.push(stmt(BPF_RET_K, eperm));
    }
    prog.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    prog
}

/// Install a filter on the calling thread (and what it execs). Needs CAP_SYS_ADMIN or no_new_privs: the
/// container's init calls it while it is still root with every capability.
pub fn install(prog: &[libc::sock_filter]) -> std::io::Result<()> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies the program.
    let rc = unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const libc::sock_fprog) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_admin_group_follows_the_capability() {
        let without = runtime_default(&[]);
        let with = runtime_default(&[CAP_SYS_ADMIN]);
        let denies = |p: &[libc::sock_filter], nr: libc::c_long| p.iter().any(|f| f.code == BPF_JEQ_K && f.k == nr as u32 && f.jt == 0);
        assert!(denies(&without, libc::SYS_unshare) && denies(&without, libc::SYS_keyctl));
        assert!(!denies(&with, libc::SYS_unshare) && denies(&with, libc::SYS_keyctl));
        assert!(!denies(&without, libc::SYS_read));
        assert_eq!(without.last().map(|f| f.k), Some(SECCOMP_RET_ALLOW));
        assert!(without.len() < 256, "a short program");
    }
}
