//! A fault-injecting HTTP proxy in front of kinesalite: the producer's real
//! AWS SDK talks to it, and it fails a seeded share of the PutRecords
//! requests the way Kinesis does (whole requests throttled with
//! `ProvisionedThroughputExceededException` / `LimitExceededException`,
//! 500 / 503, a request that never gets an answer) or fails single records
//! of a request (`ProvisionedThroughputExceededException`,
//! `InternalFailure` entries in an otherwise successful answer). Failed
//! records never reach kinesalite. Every other call is passed through, so
//! with [`FaultPlan::NONE`] it is a request counter in front of any AWS
//! JSON endpoint (the Data API stand-in too): [`FaultStats::requests`].
//!
//! HTTP/1.1 only, as the SDK speaks it to a plain `http://` endpoint:
//! requests carry a Content-Length; each request is forwarded on a fresh
//! upstream connection (`Connection: close`) and answered with a
//! Content-Length.

use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Shares of PutRecords requests that get each fault (the rest pass).
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    pub seed: u64,
    pub throttle: f64,
    pub limit_exceeded: f64,
    pub server_error: f64,
    pub hang: f64,
    /// Requests of which some records fail (each with `record_failure`).
    pub partial: f64,
    pub record_failure: f64,
}

impl FaultPlan {
    /// No faults: every request passes (and is counted).
    pub const NONE: FaultPlan = FaultPlan {
        seed: 0,
        throttle: 0.0,
        limit_exceeded: 0.0,
        server_error: 0.0,
        hang: 0.0,
        partial: 0.0,
        record_failure: 0.0,
    };
}

/// What the proxy did, by kind.
#[derive(Debug, Clone, Default)]
pub struct FaultStats {
    /// Every request received, whatever its operation.
    pub requests: u64,
    pub put_requests: u64,
    pub passed: u64,
    pub throttled: u64,
    pub limit_exceeded: u64,
    pub server_errors: u64,
    pub hung: u64,
    pub partial: u64,
    pub failed_records: u64,
}

enum Fault {
    Pass,
    Error(u16, &'static str),
    Hang,
    Partial,
}

struct Shared {
    upstream: String,
    plan: FaultPlan,
    rng: Mutex<StdRng>,
    stats: Mutex<FaultStats>,
}

pub struct KinesisProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for KinesisProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KinesisProxy {
    /// Listens on a free loopback port (see [`super::ports`]), forwarding
    /// to `upstream_url` (`http://host:port`).
    pub async fn start(upstream_url: &str, plan: FaultPlan) -> KinesisProxy {
        let listener = super::ports::bind();
        listener
            .set_nonblocking(true)
            .expect("non-blocking proxy socket");
        let listener = TcpListener::from_std(listener).expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy addr"));
        let shared = Arc::new(Shared {
            upstream: upstream_url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            plan,
            rng: Mutex::new(StdRng::seed_from_u64(plan.seed)),
            stats: Mutex::new(FaultStats::default()),
        });
        let accept = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&accept)));
            }
        });
        KinesisProxy { url, shared, task }
    }

    pub fn stats(&self) -> FaultStats {
        self.shared.stats.lock().expect("stats").clone()
    }
}

struct Request {
    head: Vec<(String, String)>,
    request_line: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request as bytes, with `body` and `Connection: close`.
    fn encode(&self, body: &[u8]) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.request_line);
        for (k, v) in &self.head {
            if !["content-length", "connection", "transfer-encoding"]
                .contains(&k.to_ascii_lowercase().as_str())
            {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.ok()? == 0 {
        return None;
    }
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        head.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut request = Request {
        head,
        request_line: request_line.trim_end().to_owned(),
        body: Vec::new(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    request.body = vec![0; length];
    reader.read_exact(&mut request.body).await.ok()?;
    Some(request)
}

fn response(status: u16, body: &[u8], error_type: Option<&str>) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nx-amzn-requestid: proxy\r\n",
        body.len()
    );
    if let Some(kind) = error_type {
        out.push_str(&format!("x-amzn-errortype: {kind}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn error_response(status: u16, kind: &str) -> Vec<u8> {
    let body = json!({"__type": kind, "message": format!("injected by the test proxy: {kind}")});
    response(status, body.to_string().as_bytes(), Some(kind))
}

/// Forwards `raw` to the upstream; returns (status, body).
async fn forward(upstream: &str, raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut conn = TcpStream::connect(upstream).await.ok()?;
    conn.write_all(raw).await.ok()?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut body = answer[split + 4..].to_vec();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Some((status, body))
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

impl Shared {
    fn choose(&self) -> Fault {
        let p = self.plan;
        // The first requests get every fault once, whatever the seed.
        let scripted = match self.stats.lock().expect("stats").put_requests {
            1 => Some(Fault::Error(400, "ProvisionedThroughputExceededException")),
            2 => Some(Fault::Error(400, "LimitExceededException")),
            3 => Some(Fault::Error(500, "InternalFailure")),
            4 => Some(Fault::Hang),
            5 => Some(Fault::Error(503, "ServiceUnavailable")),
            6 => Some(Fault::Partial),
            _ => None,
        };
        if let Some(fault) = scripted {
            return fault;
        }
        let roll: f64 = self.rng.lock().expect("rng").gen();
        let mut edge = 0.0;
        for (share, fault) in [
            (
                p.throttle,
                Fault::Error(400, "ProvisionedThroughputExceededException"),
            ),
            (
                p.limit_exceeded,
                Fault::Error(400, "LimitExceededException"),
            ),
            (p.server_error / 2.0, Fault::Error(500, "InternalFailure")),
            (
                p.server_error / 2.0,
                Fault::Error(503, "ServiceUnavailable"),
            ),
            (p.hang, Fault::Hang),
            (p.partial, Fault::Partial),
        ] {
            edge += share;
            if roll < edge {
                return fault;
            }
        }
        Fault::Pass
    }

    fn count(&self, f: impl FnOnce(&mut FaultStats)) {
        f(&mut self.stats.lock().expect("stats"));
    }

    /// Fails some records of a PutRecords: forwards the others and merges
    /// the answers in request order.
    async fn partial(&self, request: &Request) -> Option<Vec<u8>> {
        let mut input: Value = serde_json::from_slice(&request.body).ok()?;
        let records = input.get("Records")?.as_array()?.clone();
        let mut failed: Vec<bool> = {
            let mut rng = self.rng.lock().expect("rng");
            records
                .iter()
                .map(|_| rng.gen_bool(self.plan.record_failure))
                .collect()
        };
        if let Some(first) = failed.first_mut() {
            // At least one record fails.
            *first = true;
        }
        let kept: Vec<Value> = records
            .iter()
            .zip(&failed)
            .filter(|(_, f)| !**f)
            .map(|(r, _)| r.clone())
            .collect();
        let mut accepted = Vec::new();
        if !kept.is_empty() {
            input["Records"] = Value::Array(kept);
            let raw = request.encode(input.to_string().as_bytes());
            let (status, body) = forward(&self.upstream, &raw).await?;
            if status != 200 {
                return Some(response(status, &body, None));
            }
            let answer: Value = serde_json::from_slice(&body).ok()?;
            accepted = answer.get("Records")?.as_array()?.clone();
        }
        let mut accepted = accepted.into_iter();
        let mut failures = 0;
        let entries: Vec<Value> = failed
            .iter()
            .enumerate()
            .map(|(i, failed)| {
                if *failed {
                    failures += 1;
                    let code = if i % 2 == 0 {
                        "ProvisionedThroughputExceededException"
                    } else {
                        "InternalFailure"
                    };
                    json!({"ErrorCode": code, "ErrorMessage": "injected by the test proxy"})
                } else {
                    accepted.next().unwrap_or(Value::Null)
                }
            })
            .collect();
        self.count(|s| s.failed_records += failures);
        let body = json!({"FailedRecordCount": failures, "Records": entries});
        Some(response(200, body.to_string().as_bytes(), None))
    }
}

async fn serve(socket: TcpStream, shared: Arc<Shared>) {
    let mut reader = BufReader::new(socket);
    while let Some(request) = read_request(&mut reader).await {
        shared.count(|s| s.requests += 1);
        let is_put = request
            .header("x-amz-target")
            .is_some_and(|t| t.ends_with(".PutRecords"));
        let fault = if is_put {
            shared.count(|s| s.put_requests += 1);
            shared.choose()
        } else {
            Fault::Pass
        };
        let answer = match fault {
            Fault::Pass => {
                if is_put {
                    shared.count(|s| s.passed += 1);
                }
                match forward(&shared.upstream, &request.encode(&request.body)).await {
                    Some((status, body)) => response(status, &body, None),
                    None => return,
                }
            }
            Fault::Error(status, kind) => {
                shared.count(|s| match kind {
                    "LimitExceededException" => s.limit_exceeded += 1,
                    "ProvisionedThroughputExceededException" => s.throttled += 1,
                    _ => s.server_errors += 1,
                });
                error_response(status, kind)
            }
            Fault::Hang => {
                // Never answer: hold the connection until the client gives up.
                shared.count(|s| s.hung += 1);
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink).await;
                return;
            }
            Fault::Partial => {
                shared.count(|s| s.partial += 1);
                match shared.partial(&request).await {
                    Some(answer) => answer,
                    None => return,
                }
            }
        };
        if reader.get_mut().write_all(&answer).await.is_err() {
            return;
        }
    }
}
