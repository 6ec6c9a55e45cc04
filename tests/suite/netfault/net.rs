//! A private network per test: a bridge in the test's (root) namespace and one network
//! namespace per host, each joined to the bridge by a veth pair and given an address of
//! a /24 of its own (10.77.<n>.0/24, n unique on this machine). Faults are made in the
//! network, never in a host: a partition between two hosts is a rule of the bridge (an
//! nftables `bridge` table) that drops their frames, so neither host sees an error, only
//! silence; a host unplugged is its bridge port set down; loss is the same rule with a
//! random match, and a slow link a token bucket on the host's veth.
//!
//! Everything is named `sdnf…` and deleted when the [`Net`] is dropped; what a crashed
//! run left behind (its process no longer exists) is deleted before a new net is made.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Names start with this: namespaces `sdnf-<pid>-<n>-<host>`, links `sdnf<n>b` (the
/// bridge) and `sdnf<n>h<k>` (a host's end on the bridge), the nftables table `sdnf<n>`.
const PREFIX: &str = "sdnf";

/// One allocation of a subnet at a time in this process; the next to try. Allocations
/// move on rather than take the lowest free one: a namespace deleted is torn down by the
/// kernel a little later, its links with it.
static ALLOCATE: Mutex<u32> = Mutex::new(0);

/// Runs `ip`, `nft` or `tc` and fails the test with its error output when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (install iproute2 and nftables)"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// As [`run`], ignoring failure (cleanup of what may already be gone).
fn try_run(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn nft(script: &str) {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run nft: {e} (install nftables)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft failed on {script:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A host: its namespace and address.
#[derive(Debug, Clone)]
pub struct Host {
    pub netns: String,
    pub ip: String,
    /// Its end of the veth pair on the bridge.
    port: String,
}

/// A bridge and the hosts on it; deleted when dropped.
pub struct Net {
    n: u8,
    bridge: String,
    table: String,
    hosts: BTreeMap<String, Host>,
    /// The drop rules in force, by name, as nftables rule text.
    rules: BTreeMap<String, String>,
}

impl Net {
    /// A new bridge with `hosts` on it, addressed .10, .11, … in the order given.
    pub fn new(hosts: &[&str]) -> Self {
        let mut next = ALLOCATE.lock().unwrap_or_else(|p| p.into_inner());
        remove_stale();
        let used = run("ip", &["-o", "-4", "addr", "show"]);
        let links = run("ip", &["-o", "link", "show"]);
        let namespaces = run("ip", &["netns", "list"]);
        let start = std::process::id() % 200 + *next;
        let n = (0..250u32)
            .map(|i| ((start + i) % 250 + 1) as u8)
            .find(|n| {
                !used.contains(&format!(" 10.77.{n}."))
                    && !links.contains(&format!(" {PREFIX}{n}b:"))
                    && !links.contains(&format!(" {PREFIX}{n}h"))
                    && !namespaces.contains(&format!("-{n}-"))
            })
            .expect("a free 10.77.x.0/24");
        *next += 1;
        let bridge = format!("{PREFIX}{n}b");
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        // The alias names the owner, so that a later run knows whether it is stale.
        let alias = format!("{PREFIX}-{}", std::process::id());
        run("ip", &["link", "set", &bridge, "alias", &alias]);
        let mut net = Self {
            n,
            bridge: bridge.clone(),
            table: format!("{PREFIX}{n}"),
            hosts: BTreeMap::new(),
            rules: BTreeMap::new(),
        };
        run(
            "ip",
            &["addr", "add", &format!("10.77.{n}.1/24"), "dev", &bridge],
        );
        run("ip", &["link", "set", &bridge, "up"]);
        drop(next);
        nft(&format!(
            "table bridge {t} {{\n chain forward {{\n type filter hook forward priority 0; policy accept;\n }}\n}}\n",
            t = net.table
        ));
        for (k, name) in hosts.iter().enumerate() {
            net.add_host(name, k);
        }
        net
    }

    fn add_host(&mut self, name: &str, k: usize) {
        let n = self.n;
        let netns = format!("{PREFIX}-{}-{n}-{name}", std::process::id());
        let port = format!("{PREFIX}{n}h{k}");
        let ip = format!("10.77.{n}.{}", 10 + k);
        // Known before it exists, so that a failure half-way is cleaned up too.
        let host = Host {
            netns: netns.clone(),
            ip: ip.clone(),
            port: port.clone(),
        };
        self.hosts.insert(name.to_string(), host);
        run("ip", &["netns", "add", &netns]);
        run(
            "ip",
            &[
                "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ],
        );
        run("ip", &["link", "set", &port, "master", &self.bridge, "up"]);
        run(
            "ip",
            &[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ],
        );
        run("ip", &["-n", &netns, "link", "set", "eth0", "up"]);
        run("ip", &["-n", &netns, "link", "set", "lo", "up"]);
    }

    pub fn host(&self, name: &str) -> &Host {
        &self.hosts[name]
    }

    /// Drops every frame between `a` and `b`, both ways, in the bridge: each side's packets
    /// vanish, no reset, no error (a partition).
    pub fn cut(&mut self, a: &str, b: &str) {
        self.impair(a, b, "drop");
    }

    /// Drops `percent` % of the frames between `a` and `b`, both ways, at random.
    pub fn lose(&mut self, a: &str, b: &str, percent: u32) {
        self.impair(a, b, &format!("numgen random mod 100 < {percent} drop"));
    }

    fn impair(&mut self, a: &str, b: &str, action: &str) {
        let (ia, ib) = (self.host(a).ip.clone(), self.host(b).ip.clone());
        for (from, to) in [(&ia, &ib), (&ib, &ia)] {
            let rule = format!("ip saddr {from} ip daddr {to} {action}");
            nft(&format!(
                "add rule bridge {t} forward {rule} comment \"{from}-{to}\"",
                t = self.table
            ));
            self.rules.insert(format!("{from}-{to}"), rule);
        }
    }

    /// Lifts every rule between `a` and `b` (a cut or a loss).
    pub fn heal(&mut self, a: &str, b: &str) {
        let (ia, ib) = (self.host(a).ip.clone(), self.host(b).ip.clone());
        let listing = run(
            "nft",
            &["-a", "list", "chain", "bridge", &self.table, "forward"],
        );
        for key in [format!("{ia}-{ib}"), format!("{ib}-{ia}")] {
            for line in listing
                .lines()
                .filter(|l| l.contains(&format!("\"{key}\"")))
            {
                let handle = line.rsplit("# handle ").next().unwrap().trim();
                run(
                    "nft",
                    &[
                        "delete",
                        "rule",
                        "bridge",
                        &self.table,
                        "forward",
                        "handle",
                        handle,
                    ],
                );
            }
            self.rules.remove(&key);
        }
    }

    /// Unplugs `host` (its bridge port down: nothing reaches it or leaves it) or plugs it
    /// back in.
    pub fn plug(&self, host: &str, up: bool) {
        let port = &self.host(host).port;
        run("ip", &["link", "set", port, if up { "up" } else { "down" }]);
    }

    /// Makes `host`'s link slow both ways (a token bucket of `kbit` kbit/s on each end of
    /// its veth pair: packets queue, a burst waits for the bucket) or, with `None`, fast
    /// again.
    pub fn throttle(&self, host: &str, kbit: Option<u32>) {
        let h = self.host(host);
        let ends: [&[&str]; 2] = [&[], &["-n", &h.netns]];
        for (ns, dev) in ends.iter().zip([h.port.as_str(), "eth0"]) {
            let mut args: Vec<String> = ns.iter().map(|s| s.to_string()).collect();
            match kbit {
                Some(k) => args.extend(
                    [
                        "qdisc",
                        "replace",
                        "dev",
                        dev,
                        "root",
                        "tbf",
                        "rate",
                        &format!("{k}kbit"),
                        "burst",
                        "4kb",
                        "latency",
                        "2s",
                    ]
                    .map(String::from),
                ),
                None => args.extend(["qdisc", "del", "dev", dev, "root"].map(String::from)),
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run("tc", &args);
        }
    }

    /// `ip netns exec <host's namespace>` followed by `program`.
    pub fn command(&self, host: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host(host).netns, program]);
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in self.hosts.values() {
            delete_netns(&h.netns);
            // At once: the kernel tears a deleted namespace's links down later.
            try_run("ip", &["link", "del", &h.port]);
        }
        try_run("nft", &["delete", "table", "bridge", &self.table]);
        try_run("ip", &["link", "del", &self.bridge]);
    }
}

/// Kills what still runs in a namespace, then deletes it (its veth pair goes with it).
fn delete_netns(netns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", netns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            try_run("kill", &["-KILL", pid]);
        }
    }
    try_run("ip", &["netns", "del", netns]);
}

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes the namespaces, bridges and tables a run that no longer exists left behind.
fn remove_stale() {
    let namespaces = run("ip", &["netns", "list"]);
    for ns in namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(rest) = ns.strip_prefix(&format!("{PREFIX}-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !alive(pid) {
            delete_netns(ns);
        }
    }
    let links = run("ip", &["-o", "link", "show", "type", "bridge"]);
    for line in links.lines() {
        let Some(name) = line
            .split(": ")
            .nth(1)
            .map(|n| n.split('@').next().unwrap())
        else {
            continue;
        };
        let Some(n) = name.strip_prefix(PREFIX).and_then(|r| r.strip_suffix('b')) else {
            continue;
        };
        let owner = line
            .split("alias ")
            .nth(1)
            .and_then(|a| a.trim().strip_prefix(&format!("{PREFIX}-")))
            .map(|p| p.to_string());
        if owner.as_deref().is_none_or(|p| !alive(p)) {
            try_run(
                "nft",
                &["delete", "table", "bridge", &format!("{PREFIX}{n}")],
            );
            try_run("ip", &["link", "del", name]);
        }
    }
}
