//! cgroup v2's device allow-list: runc's default list compiled to an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` and attached to a container's cgroup (v2 has no `devices.allow` files).
//!
//! The program is runc's (libcontainer/cgroups/devices/devicefilter): read the access type, major and minor
//! from `struct bpf_cgroup_dev_ctx`, try each allow rule in turn, return 1 (allow) on the first match and 0
//! (deny: the open or mknod fails with EPERM) when none matches. It is built by hand from the instruction
//! encoding (a few dozen instructions: no BPF toolchain, no libbpf, two raw `bpf(2)` calls), loaded once per
//! process and attached to each container cgroup with `BPF_F_ALLOW_MULTI`, so programs attached above (by
//! systemd, say) still run too and a device must pass all of them. The attachment lives as long as the
//! cgroup: nothing to pin, nothing to clean up beyond removing the cgroup.
//!
//! The kernel runs these programs for every cgroup a task is in on the unified hierarchy, also on a v1
//! hybrid machine (this one), before the v1 devices controller: that is how the root test below checks the
//! program on this machine kind, whose containers themselves get the v1 list (see `cgroup.rs`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One allow rule: device type (`'c'`, `'b'` or `'a'` for both), major and minor (-1 = any), and access
/// (`r`, `w`, `m` letters), as in the v1 `devices.allow` syntax.
pub type Rule = (char, i64, i64, &'static str);

#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error("loading the device filter (bpf BPF_PROG_LOAD): {error}{log}")]
    Load { error: std::io::Error, log: String },
    #[error("attaching the device filter to {cgroup} (bpf BPF_PROG_ATTACH): {error}")]
    Attach { cgroup: String, error: std::io::Error },
}

/// One eBPF instruction (`struct bpf_insn`): opcode, dst (low nibble) and src (high nibble) registers, offset,
/// immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (linux/bpf_common.h, linux/bpf.h): class | op | source.
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x04 | 0x70; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_K: u8 = 0x04 | 0xb0; // BPF_ALU | BPF_MOV | BPF_K
const ALU32_MOV_X: u8 = 0x04 | 0xb0 | 0x08; // BPF_ALU | BPF_MOV | BPF_X
const JNE_K: u8 = 0x05 | 0x50; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x05 | 0x50 | 0x08; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x05 | 0x90; // BPF_JMP | BPF_EXIT

// `struct bpf_cgroup_dev_ctx`: access_type (type in the low 16 bits, access in the high 16), major, minor.
const DEVCG_DEV_BLOCK: i32 = 1;
const DEVCG_DEV_CHAR: i32 = 2;
const DEVCG_ACC_MKNOD: i32 = 1;
const DEVCG_ACC_READ: i32 = 2;
const DEVCG_ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = DEVCG_ACC_MKNOD | DEVCG_ACC_READ | DEVCG_ACC_WRITE;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
}

/// The program for `rules` (default deny). Registers: r2 type, r3 access, r4 major, r5 minor; r1 (the context
/// pointer, no longer needed once they are loaded) is scratch for the access check.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for &(kind, major, minor, access) in rules {
        // Each jump goes to the start of the next rule's block: its offset is fixed once the block's length is
        // known (relative to the instruction after the jump).
        let mut block: Vec<(Insn, bool)> = Vec::new();
        match kind {
            'c' => block.push((insn(JNE_K, 2, 0, 0, DEVCG_DEV_CHAR), true)),
            'b' => block.push((insn(JNE_K, 2, 0, 0, DEVCG_DEV_BLOCK), true)),
            _ => {}
        }
        let acc = access.chars().fold(0, |a, c| {
            a | match c {
                'r' => DEVCG_ACC_READ,
                'w' => DEVCG_ACC_WRITE,
                'm' => DEVCG_ACC_MKNOD,
                _ => 0,
            }
        });
        if acc != ACC_ALL {
            // The access asked for must be a subset of the rule's: (access & allowed) == access.
            block.push((insn(ALU32_MOV_X, 1, 3, 0, 0), false));
            block.push((insn(ALU32_AND_K, 1, 0, 0, acc), false));
            block.push((insn(JNE_X, 1, 3, 0, 0), true));
        }
        if major >= 0 {
            block.push((insn(JNE_K, 4, 0, 0, major as i32), true));
        }
        if minor >= 0 {
            block.push((insn(JNE_K, 5, 0, 0, minor as i32), true));
        }
        block.push((insn(ALU32_MOV_K, 0, 0, 0, 1), false));
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        let matches_all = !block.iter().any(|&(_, jump)| jump);
        p.extend(block.into_iter().enumerate().map(|(i, (mut ins, jump))| {
            if jump {
                ins.off = (len - 1 - i) as i16;
            }
            ins
        }));
        if matches_all {
            // Nothing after a rule that allows everything can run, and the verifier refuses a program with
            // unreachable instructions (as runc, stop here).
            return p;
        }
    }
    p.push(insn(ALU32_MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The head of `union bpf_attr` for BPF_PROG_LOAD (the kernel takes a shorter attr than its own as zeros).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised repr(C) prefix of `union bpf_attr` for `cmd`, and the size
    // passed is its own; the kernel reads (and for logs writes) only within it and the buffers it points to.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as libc::c_uint) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Load `prog` as a cgroup device program. On failure it is loaded again with the verifier's log, which
/// goes into the error.
pub fn load(prog: &[Insn]) -> Result<OwnedFd, DeviceFilterError> {
    // "Apache" as runc: the program calls no helper, GPL-only or not.
    let license = c"Apache";
    let try_load = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: prog.as_ptr() as u64,
            license: license.as_ptr() as u64,
            expected_attach_type: BPF_CGROUP_DEVICE,
            ..ProgLoadAttr::default()
        };
        attr.prog_name[..8].copy_from_slice(b"k1s_devs");
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        // SAFETY: on success the kernel returned a new file descriptor that nothing else owns.
        bpf(BPF_PROG_LOAD, &mut attr).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    };
    try_load(None).map_err(|error| {
        let mut buf = vec![0u8; 64 * 1024];
        let _ = try_load(Some(&mut buf));
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let log = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        DeviceFilterError::Load { error, log: if log.is_empty() { String::new() } else { format!("; verifier: {log}") } }
    })
}

/// Attach the loaded program to the cgroup directory `cgroup` (on the unified hierarchy).
pub fn attach(prog: &OwnedFd, cgroup: &Path) -> Result<(), DeviceFilterError> {
    let err = |error| DeviceFilterError::Attach { cgroup: cgroup.display().to_string(), error };
    let dir = std::fs::File::open(cgroup).map_err(err)?;
    let mut attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop).map_err(err)
}

/// The default list's program, loaded once per process (every container gets the same one).
pub fn default_program(rules: &[Rule]) -> Result<&'static OwnedFd, DeviceFilterError> {
    static PROG: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if let Some(fd) = PROG.get() {
        return Ok(fd);
    }
    let fd = load(&program(rules))?;
    Ok(PROG.get_or_init(|| fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel would answer for (type, access, major, minor), by interpreting the instructions
    /// `program` emits (only those).
    fn run(prog: &[Insn], ty: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access as u32) << 16) | ty as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = ctx[i.off as usize / 4] as u64;
                }
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU32_MOV_K => r[dst] = i.imm as u32 as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                JNE_K if r[dst] != i.imm as u32 as u64 => pc += i.off as usize,
                JNE_X if r[dst] != r[src] => pc += i.off as usize,
                JNE_K | JNE_X => {}
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    const R: i32 = DEVCG_ACC_READ;
    const W: i32 = DEVCG_ACC_WRITE;
    const M: i32 = DEVCG_ACC_MKNOD;
    const C: i32 = DEVCG_DEV_CHAR;
    const B: i32 = DEVCG_DEV_BLOCK;

    #[test]
    fn the_default_list_allows_what_runc_allows_and_nothing_else() {
        let prog = program(&crate::runtime::cgroup::DEFAULT_DEVICES);
        let cases = [
            // (type, access, major, minor, allowed)
            (C, R | W, 1, 3, true),  // /dev/null
            (C, R, 1, 9, true),      // /dev/urandom
            (C, R | W, 5, 2, true),  // /dev/ptmx
            (C, R | W, 136, 7, true), // /dev/pts/7
            (C, R | W, 5, 1, true),  // /dev/console
            (C, M, 1, 1, true),      // mknod of any char device
            (B, M, 8, 0, true),      // and of any block device
            (C, R, 1, 1, false),     // /dev/mem
            (C, R | M, 1, 1, false), // more than mknod of it
            (B, R, 8, 0, false),     // /dev/sda
            (C, W, 10, 200, false),  // /dev/net/tun
            (C, R, 1, 11, false),    // /dev/kmsg
            (C, R, 137, 0, false),   // next to the pts major
        ];
        for (ty, acc, major, minor, allowed) in cases {
            assert_eq!(run(&prog, ty, acc, major, minor) == 1, allowed, "type {ty} access {acc} {major}:{minor}");
        }
    }

    #[test]
    fn jumps_land_on_the_next_rule_and_rules_without_fields_skip_their_checks() {
        let prog = program(&[('a', -1, -1, "rwm"), ('c', 1, 3, "r")]);
        // Prologue (6), then only "return 1" (2): the verifier refuses the unreachable rest.
        assert_eq!(prog.len(), 8);
        assert_eq!(run(&prog, B, R | W | M, 259, 1), 1);
        let prog = program(&[('c', 1, -1, "r"), ('b', -1, 3, "w")]);
        assert_eq!(run(&prog, C, R, 1, 42), 1);
        assert_eq!(run(&prog, C, W, 1, 42), 0);
        assert_eq!(run(&prog, B, W, 9, 3), 1);
        assert_eq!(run(&prog, B, R, 9, 3), 0);
        assert_eq!(run(&prog, C, W, 9, 3), 0);
    }

    /// The cgroup2 mount: /sys/fs/cgroup on v2, /sys/fs/cgroup/unified on a v1 hybrid machine.
    fn cgroup2_mount() -> std::path::PathBuf {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info.lines().find(|l| l.split(" - ").nth(1).is_some_and(|t| t.starts_with("cgroup2 "))).expect("a cgroup2 mount");
        line.split(' ').nth(4).unwrap().into()
    }

    /// A cgroup on the unified hierarchy for one test, removed on drop.
    struct TestCgroup(std::path::PathBuf);

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    /// Open a device node as a shell moved into `cgroup`: "ok", or the exit code that says which open failed.
    fn opens(cgroup: &Path, allowed: &Path, denied: &Path) -> i32 {
        let st = std::process::Command::new("/bin/sh")
            .args(["-c", r#"echo $$ > "$1/cgroup.procs" || exit 3; true < "$2" || exit 4; true < "$3" || exit 5"#, "sh"])
            .args([cgroup, allowed, denied])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        st.code().unwrap()
    }

    /// Loaded into this kernel and attached to a cgroup, the default list lets a process in it open /dev/null
    /// and not /dev/kmsg (EPERM); the same opens from a sibling cgroup without the program both work. On a v1
    /// hybrid machine this runs on the unified hierarchy, which the kernel checks before the v1 controller.
    #[test]
    fn loaded_into_the_kernel_it_denies_what_the_list_does_not_name() {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        assert!(nix::unistd::geteuid().is_root(), "this test loads a BPF program and makes cgroups: run the tests as root");
        let nodes = tempfile::tempdir().unwrap();
        let (null, kmsg) = (nodes.path().join("null"), nodes.path().join("kmsg"));
        mknod(&null, SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(1, 3)).unwrap();
        mknod(&kmsg, SFlag::S_IFCHR, Mode::from_bits_truncate(0o600), makedev(1, 11)).unwrap();
        let root = cgroup2_mount();
        let id = std::process::id();
        let filtered = TestCgroup(root.join(format!("k1s-test-devfilter-{id}")));
        let plain = TestCgroup(root.join(format!("k1s-test-devplain-{id}")));
        std::fs::create_dir(&filtered.0).unwrap();
        std::fs::create_dir(&plain.0).unwrap();
        let prog = load(&program(&crate::runtime::cgroup::DEFAULT_DEVICES)).unwrap();
        attach(&prog, &filtered.0).unwrap();
        drop(prog); // the cgroup holds the program now
        assert_eq!(opens(&plain.0, &null, &kmsg), 0, "without the program both nodes open");
        assert_eq!(opens(&filtered.0, &null, &kmsg), 5, "with it /dev/null opens and /dev/kmsg does not");
    }
}
