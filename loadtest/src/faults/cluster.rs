//! A three-node NATS cluster on loopback ports, secured as in production (TLS for clients, one
//! nkey per identity, the stores encrypted), each node a real nats-server that can be killed,
//! stopped and started again on its own ports and store.
//!
//! Routes between the nodes are plain TCP on loopback: what is under test is what the cluster
//! keeps when a node goes, not the route encryption (the chart configures that: `helm/`).

use lfr_common::http::free_port;
use lfr_common::local_nats::{LocalNats, Setup};
use lfr_identity::{Credentials, ServerConfig};
use std::path::Path;

pub const NODES: usize = 3;

pub struct Cluster {
    pub nodes: Vec<LocalNats>,
    /// Whether each node is meant to be running (a killed one is not).
    up: Vec<bool>,
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
        })
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

pub fn node_name(i: usize) -> String {
    format!("n{}", i + 1)
}
