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

/// A port that was free a moment ago on loopback.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
