//! `kinesync health`: asks a running kinesync process's telemetry listener
//! whether it is alive (`/healthz`) or ready (`/readyz`), for a container's
//! health check (Docker `HEALTHCHECK`, the ECS task definitions) where no
//! HTTP client is installed. One plain HTTP/1.1 GET over loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest wait for the whole answer.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the probe failed, in one line.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("no kinesync telemetry listener answers on {addr}: {detail} (is the process running with telemetry.listen = \"{listen}\"?)")]
    Unreachable {
        addr: SocketAddr,
        listen: SocketAddr,
        detail: String,
    },
    #[error("{path} on {addr} answered {status}: {body}")]
    Unhealthy {
        addr: SocketAddr,
        path: &'static str,
        status: u16,
        body: String,
    },
}

/// Where to connect for a listener bound to `listen`: a wildcard address
/// (`0.0.0.0`, `::`) is reached on loopback.
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// GETs `path` (`/healthz` or `/readyz`) from the listener bound to
/// `listen`; `Ok` with the body on 200.
pub async fn probe(listen: SocketAddr, path: &'static str) -> Result<String, HealthError> {
    let addr = probe_address(listen);
    let unreachable = |detail: String| HealthError::Unreachable {
        addr,
        listen,
        detail,
    };
    let answer = tokio::time::timeout(HEALTH_TIMEOUT, get(addr, path))
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", HEALTH_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| unreachable("the answer is not HTTP".to_owned()))?;
    let body = body.trim().replace('\n', "; ");
    if status == 200 {
        Ok(body)
    } else {
        Err(HealthError::Unhealthy {
            addr,
            path,
            status,
            body,
        })
    }
}

async fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: kinesync-health\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_probed_on_loopback() {
        assert_eq!(
            probe_address("0.0.0.0:9464".parse().unwrap()),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            probe_address("[::]:9464".parse().unwrap()),
            "[::1]:9464".parse().unwrap()
        );
        assert_eq!(
            probe_address("10.0.0.5:9464".parse().unwrap()),
            "10.0.0.5:9464".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn the_probe_reads_the_listener_and_names_a_dead_one() {
        let shutdown = crate::shutdown::Shutdown::new();
        let bound = super::super::serve("127.0.0.1:0".parse().unwrap(), shutdown.clone())
            .await
            .unwrap();
        super::super::health().beat();
        let body = probe(bound, "/healthz").await.unwrap();
        assert!(body.starts_with("ok"), "{body}");
        shutdown.trigger();
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = probe(free, "/healthz").await.unwrap_err().to_string();
        assert!(
            err.contains("no kinesync telemetry listener answers"),
            "{err}"
        );
    }
}
