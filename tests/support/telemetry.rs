//! Reading a kinesync process's telemetry listener: its address from the
//! log, plain HTTP GETs, and samples of the Prometheus text.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::poll;

/// One HTTP answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `GET path` on `addr` (HTTP/1.1, connection closed after the answer).
pub async fn get(addr: &str, path: &str) -> Option<Answer> {
    let mut socket = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        body: body.to_owned(),
    })
}

/// The listen address a kinesync process logged into `log`.
pub async fn listen_address(log: &Path) -> String {
    poll("the telemetry listener's log line", || async {
        let text = std::fs::read_to_string(log).ok()?;
        let rest = text.split("/readyz on http://").nth(1)?;
        Some(rest.split_whitespace().next()?.to_owned())
    })
    .await
}

/// The value of sample `series` (name with its labels, as exported), if present.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}
