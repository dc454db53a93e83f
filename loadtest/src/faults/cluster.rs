//! A three-node NATS cluster on loopback ports, secured as in production (TLS for clients, one
//! nkey per identity, the stores encrypted), each node a real nats-server that can be killed,
//! stopped and started again on its own ports and store.
//!
//! Routes between the nodes are plain TCP on loopback: what is under test is what the cluster
//! keeps when a node goes, not the route encryption (the chart configures that: `helm/`).
//!
//! Each node's store is a small tmpfs of its own ([`STORE_DISK`]; mounted as root, or through
//! `sudo -n`), so that the `disk-full` fault can fill one node's disk and free it again
//! ([`Cluster::fill_disk`]). Where mounting is not allowed the stores are plain directories,
//! [`Cluster::disks`] says why, and that fault is reported skipped.

use lfr_common::http::free_port;
use lfr_common::local_nats::{LocalNats, Setup};
use lfr_identity::{Credentials, ServerConfig};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const NODES: usize = 3;

/// Size of each node's store disk: room for the harness's records many times over.
pub const STORE_DISK: u64 = 256 << 20;

/// The file that fills a node's disk.
const FILLER: &str = "disk-filler";

pub struct Cluster {
    pub nodes: Vec<LocalNats>,
    /// Whether each node is meant to be running (a killed one is not).
    up: Vec<bool>,
    /// Each node's store disk, once mounted; or why there are none.
    disks: Result<Vec<PathBuf>, String>,
}

impl Cluster {
    /// Start the three nodes, each with its own store under `dir`.
    pub async fn start(
        dir: &Path,
        tls: lfr_identity::tls::TlsFiles,
        credentials: Credentials,
    ) -> anyhow::Result<Cluster> {
        let secured = ServerConfig::secured(tls, credentials).render();
        let store_key = lfr_identity::server::new_store_key()?;
        let route_ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect::<Result<_, _>>()?;
        let disks = mount_disks(
            &(0..NODES)
                .map(|i| dir.join(node_name(i)))
                .collect::<Vec<_>>(),
        );
        if let Err(why) = &disks {
            tracing::warn!(%why, "the NATS stores are plain directories: no disk-full fault");
        }
        let mut nodes = Vec::new();
        for (i, own) in route_ports.iter().enumerate() {
            let routes: Vec<String> = route_ports
                .iter()
                .filter(|p| *p != own)
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            let config = format!(
                "{secured}server_name: {}\ncluster {{\n  name: lfr\n  listen: 127.0.0.1:{own}\n  routes: [{}]\n}}\n",
                node_name(i),
                routes.join(", ")
            );
            let setup = Setup {
                config,
                env: vec![(
                    lfr_identity::server::STORE_KEY_ENV.into(),
                    store_key.clone(),
                )],
                tls: true,
            };
            nodes.push(
                LocalNats::start_with(free_port()?, free_port()?, &dir.join(node_name(i)), setup)
                    .await?,
            );
        }
        Ok(Cluster {
            up: vec![true; NODES],
            nodes,
            disks,
        })
    }

    /// The nodes' store disks, or why there are none.
    pub fn disks(&self) -> Result<&[PathBuf], &str> {
        self.disks.as_deref().map_err(String::as_str)
    }

    /// Fill node `i`'s store disk to the last byte; how many bytes that took.
    pub fn fill_disk(&self, i: usize) -> anyhow::Result<u64> {
        let disk = &self.disks().map_err(|why| anyhow::anyhow!("{why}"))?[i];
        let mut file = std::fs::File::create(disk.join(FILLER))?;
        let block = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // The last partial blocks too: nothing left for the server.
        for size in [4096usize, 512, 1] {
            while file.write(&block[..size]).map(|n| n > 0).unwrap_or(false) {
                written += size as u64;
            }
        }
        Ok(written)
    }

    /// Free what [`fill_disk`](Self::fill_disk) took.
    pub fn free_disk(&self, i: usize) -> anyhow::Result<()> {
        let disk = &self.disks().map_err(|why| anyhow::anyhow!("{why}"))?[i];
        std::fs::remove_file(disk.join(FILLER))?;
        Ok(())
    }

    /// Every node's client URL, comma-separated: what the services are given, so they reconnect
    /// to a surviving node.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(LocalNats::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node of that server name (`n1`...).
    pub fn index_of(&self, server_name: &str) -> Option<usize> {
        (0..NODES).find(|i| node_name(*i) == server_name)
    }

    /// SIGKILL one node: a crash or a lost machine.
    pub async fn kill(&mut self, i: usize) {
        self.nodes[i].kill().await;
        self.up[i] = false;
    }

    /// Start a stopped or killed node again, on its ports and store.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].restart().await?;
        self.up[i] = true;
        Ok(())
    }

    /// Stop every node cleanly (SIGTERM), as a planned outage of the whole bus.
    pub async fn stop_all(&mut self) {
        for (node, up) in self.nodes.iter_mut().zip(&mut self.up) {
            node.stop().await;
            *up = false;
        }
    }

    /// Start every node that is not running. A node waits for JetStream only; the cluster's
    /// meta layer elects its leader once two are up.
    pub async fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..NODES {
            if !self.up[i] {
                self.restart(i).await?;
            }
        }
        Ok(())
    }

    /// The process ids of the running nodes.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(LocalNats::pid).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(disks) = &self.disks {
            // Lazily: a node killed on drop may still hold its files for a moment.
            for disk in disks {
                let _ = as_root("umount").arg("-l").arg(disk).status();
            }
        }
    }
}

/// A tmpfs of [`STORE_DISK`] bytes on each of `dirs`; all or none.
fn mount_disks(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut mounted = Vec::new();
    for dir in dirs {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let out = as_root("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={STORE_DISK},mode=0700,uid={uid},gid={gid}"))
            .arg("lfr-nats-store")
            .arg(dir)
            .output();
        let failed = match out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            for m in &mounted {
                let _ = as_root("umount").arg(m).status();
            }
            return Err(format!(
                "cannot mount a tmpfs for the NATS store (needs root): {why}"
            ));
        }
        mounted.push(dir.clone());
    }
    Ok(mounted)
}

/// `program` as root: directly when this is root, else through `sudo -n` (never a prompt).
fn as_root(program: &str) -> std::process::Command {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        std::process::Command::new(program)
    } else {
        let mut sudo = std::process::Command::new("sudo");
        sudo.args(["-n", program]);
        sudo
    }
}

pub fn node_name(i: usize) -> String {
    format!("n{}", i + 1)
}
