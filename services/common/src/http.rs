//! The least HTTP the project needs without a client library: a plain GET of a monitoring or
//! metrics endpoint (nats-server's `/healthz` and `/jsz`, a service's `/metrics` and `/readyz`),
//! and a free loopback port to serve one on.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a GET may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(5);

/// GET `path` from `addr` over HTTP/1.0: the body of a 200 answer, an error otherwise.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let talk = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(TIMEOUT, talk)
        .await
        .map_err(|_| anyhow::anyhow!("{addr}{path}: no answer in {TIMEOUT:?}"))??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("{addr}{path}: not an HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    anyhow::ensure!(status.contains(" 200"), "{addr}{path}: {status}");
    Ok(body.to_string())
}

/// Where [`free_port`] looks: below Linux's ephemeral range (32768–60999), from which the kernel
/// takes the local port of every outgoing connection. A port picked there could be taken by some
/// process's connection to NATS between being picked and being bound by the server it was for.
const PICKED_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port that was free a moment ago on loopback, outside the ephemeral range where it can.
pub fn free_port() -> std::io::Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    let span = u64::from(PICKED_PORTS.end - PICKED_PORTS.start);
    for attempt in 0..64u64 {
        // RandomState is seeded afresh per process: parallel test processes pick differently.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(attempt);
        let port = PICKED_PORTS.start + (hasher.finish() % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
