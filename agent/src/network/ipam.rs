//! IP address management for the Pod CIDR: one file per allocated address under `state_dir/ipam/`.
//!
//! A claim is `open(O_CREAT|O_EXCL)` of the file named after the address, holding the Pod key: atomic, one
//! syscall on the hot path, and the directory listing *is* the persisted state, so a restarted agent (or a
//! second `Network` on the same directory) can never hand out an address that a file still claims. Files
//! are not fsync'ed: they survive a crash of the agent (the page cache is the kernel's), and after a power
//! loss every Pod netns is gone too.
//!
//! A round-robin cursor, kept in memory, moves past each allocation, so an address that was just released
//! is not handed out again until the range wraps: a torn-down Pod's veth lingers in the dying netns for
//! ~45 ms, and clients' ARP caches still point at the old MAC.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::NetworkError;

/// An IPv4 network such as `10.42.0.0/16`; host bits in the input are masked off, as `net.ParseCIDR` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: u32,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Result<Cidr, NetworkError> {
        let invalid = |reason: &str| NetworkError::InvalidCidr {
            cidr: text.to_string(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| invalid("expected ADDRESS/PREFIX, e.g. 10.42.0.0/16"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid("not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid("prefix length is not a number"))?;
        // /30 is the smallest range with a gateway and one Pod next to the network and broadcast addresses.
        if !(1..=30).contains(&prefix) {
            return Err(invalid("prefix length must be between 1 and 30"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr { network: u32::from(addr) & mask, prefix })
    }

    pub(crate) fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// The bridge's address: the first address after the network address.
    pub(crate) fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    fn broadcast(&self) -> u32 {
        self.network | (u32::MAX >> self.prefix)
    }

    /// The range handed to Pods: everything but network, gateway and broadcast.
    fn first(&self) -> u32 {
        self.network + 2
    }

    fn last(&self) -> u32 {
        self.broadcast() - 1
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.last() - self.first() + 1
    }

    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip >= self.network && ip <= self.broadcast()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

#[derive(Debug)]
pub(crate) struct Ipam {
    dir: PathBuf,
    cidr: Cidr,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    by_key: HashMap<String, Ipv4Addr>,
    /// Every claimed address, with its owner; an empty owner is a claim whose writer died before writing
    /// the key (released by `retain`).
    by_ip: HashMap<Ipv4Addr, String>,
    /// The next address to try.
    cursor: u32,
}

impl Ipam {
    /// Load the claims in `dir` (created if missing). Files that do not name an IPv4 address are ignored.
    pub(crate) fn load(dir: &Path, cidr: Cidr) -> Result<Ipam, NetworkError> {
        let err = |error| NetworkError::Ipam { path: dir.to_path_buf(), error };
        fs::create_dir_all(dir).map_err(err)?;
        let mut state = State { cursor: cidr.first(), ..State::default() };
        let mut highest = None;
        for entry in fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let key = match fs::read_to_string(entry.path()) {
                Ok(key) => key.trim().to_string(),
                // Released between read_dir and read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(NetworkError::Ipam { path: entry.path(), error: source }),
            };
            if cidr.contains(ip) {
                highest = highest.max(Some(u32::from(ip)));
            }
            if !key.is_empty() {
                state.by_key.insert(key.clone(), ip);
            }
            state.by_ip.insert(ip, key);
        }
        // Continue after the newest-looking claim rather than at the start, so an address released just
        // before a restart is not the first one handed out after it.
        if let Some(h) = highest {
            if h >= cidr.first() && h < cidr.last() {
                state.cursor = h + 1;
            }
        }
        Ok(Ipam { dir: dir.to_path_buf(), cidr, state: Mutex::new(state) })
    }

    fn path_of(&self, ip: Ipv4Addr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a pair of maps updated together under the lock; a panic elsewhere cannot leave them
        // half-updated, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address of `key`, allocating one if it has none. The flag is true when this call allocated it.
    pub(crate) fn allocate(&self, key: &str) -> Result<(Ipv4Addr, bool), NetworkError> {
        let mut st = self.lock();
        if let Some(ip) = st.by_key.get(key) {
            return Ok((*ip, false));
        }
        let (first, capacity) = (self.cidr.first(), self.cidr.capacity());
        let start = if (first..=self.cidr.last()).contains(&st.cursor) { st.cursor - first } else { 0 };
        for i in 0..capacity {
            let ip = Ipv4Addr::from(first + (start + i) % capacity);
            if st.by_ip.contains_key(&ip) {
                continue;
            }
            let path = self.path_of(ip);
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    if let Err(source) = f.write_all(key.as_bytes()) {
                        let _ = fs::remove_file(&path);
                        return Err(NetworkError::Ipam { path, error: source });
                    }
                    st.by_key.insert(key.to_string(), ip);
                    st.by_ip.insert(ip, key.to_string());
                    st.cursor = u32::from(ip) + 1;
                    return Ok((ip, true));
                }
                // Claimed by someone we did not know about (another Network on this directory): learn the
                // owner and keep looking.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path).unwrap_or_default();
                    st.by_ip.insert(ip, owner.trim().to_string());
                }
                Err(source) => return Err(NetworkError::Ipam { path, error: source }),
            }
        }
        Err(NetworkError::Exhausted { cidr: self.cidr.to_string(), capacity })
    }

    /// Release the address of `key`, if it has one. Idempotent.
    pub(crate) fn release(&self, key: &str) -> Result<Option<Ipv4Addr>, NetworkError> {
        let mut st = self.lock();
        let Some(ip) = st.by_key.remove(key) else {
            return Ok(None);
        };
        st.by_ip.remove(&ip);
        self.remove_claim(ip)?;
        Ok(Some(ip))
    }

    fn remove_claim(&self, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let path = self.path_of(ip);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(NetworkError::Ipam { path, error: e }),
            _ => Ok(()),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Ipv4Addr> {
        self.lock().by_key.get(key).copied()
    }

    /// Keep the claims of `live` keys, release every other claim; return what was kept.
    pub(crate) fn retain(&self, live: &HashSet<String>) -> Result<HashMap<String, Ipv4Addr>, NetworkError> {
        let mut st = self.lock();
        let dead: Vec<(Ipv4Addr, String)> = st
            .by_ip
            .iter()
            .filter(|(_, key)| !live.contains(*key))
            .map(|(ip, key)| (*ip, key.clone()))
            .collect();
        for (ip, key) in dead {
            self.remove_claim(ip)?;
            st.by_ip.remove(&ip);
            if st.by_key.get(&key) == Some(&ip) {
                st.by_key.remove(&key);
            }
        }
        Ok(st.by_key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_masks_and_rejects() {
        let c = Cidr::parse("10.42.7.9/16").unwrap();
        assert_eq!(c.to_string(), "10.42.0.0/16");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 42, 0, 1));
        assert_eq!(c.capacity(), 65536 - 3);
        let c = Cidr::parse("10.250.0.0/29").unwrap();
        assert_eq!(c.capacity(), 5);
        assert_eq!(Cidr::parse("10.0.0.0/30").unwrap().capacity(), 1);
        for bad in ["10.0.0.0", "10.0.0.0/31", "10.0.0.0/0", "x/8", "10.0.0.0/a", "::1/64"] {
            let e = Cidr::parse(bad).unwrap_err();
            assert!(matches!(e, NetworkError::InvalidCidr { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn ipam_round_robin_persist_and_exhaust() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ipam");
        let ipam = Ipam::load(&dir, Cidr::parse("10.9.9.0/29").unwrap()).unwrap();
        let (a, fresh) = ipam.allocate("a").unwrap();
        assert_eq!((a, fresh), (Ipv4Addr::new(10, 9, 9, 2), true));
        assert_eq!(ipam.allocate("a").unwrap(), (a, false), "a key holds one address");
        let (b, _) = ipam.allocate("b").unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 9, 9, 3));
        assert_eq!(fs::read_to_string(dir.join("10.9.9.3")).unwrap(), "b");
        // A released address is not handed out next.
        assert_eq!(ipam.release("a").unwrap(), Some(a));
        assert_eq!(ipam.release("a").unwrap(), None);
        let (c, _) = ipam.allocate("c").unwrap();
        assert_eq!(c, Ipv4Addr::new(10, 9, 9, 4));
        ipam.allocate("d").unwrap();
        ipam.allocate("e").unwrap(); // .6; the cursor wraps to .2 next
        let (f, _) = ipam.allocate("f").unwrap();
        assert_eq!(f, a, "wrapped around to the released address");
        let e = ipam.allocate("g").unwrap_err();
        assert!(e.to_string().contains("10.9.9.0/29"), "{e}");
        assert!(matches!(e, NetworkError::Exhausted { capacity: 5, .. }));

        // A second instance on the same directory sees every claim.
        let again = Ipam::load(&dir, Cidr::parse("10.9.9.0/29").unwrap()).unwrap();
        assert_eq!(again.get("b"), Some(b));
        let live: HashSet<String> = ["b", "c"].iter().map(|s| s.to_string()).collect();
        let kept = again.retain(&live).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept["c"], c);
        assert_eq!(again.get("f"), None);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        // The first instance, not told about the release, still cannot double-allocate: it learns of
        // claims when O_EXCL fails.
        let (x, _) = again.allocate("x").unwrap();
        assert!(x != b && x != c);
    }
}
