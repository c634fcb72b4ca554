//! Loopback ports for the servers a test starts itself (a PostgreSQL
//! cluster, a fault proxy). Never port 0: the kernel would pick one from its
//! ephemeral range (32768-60999 here), where the source ports of outgoing
//! connections come from, and a server there can collide with them
//! (EADDRINUSE). Ports come from [`LOW`]..=[`HIGH`] instead (below 32768,
//! above 25000-25999), starting at a random offset per process and then in
//! turn, so parallel tests of one process never try the same one; a port
//! another process holds is skipped by trying to bind it.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The lowest port handed out.
pub const LOW: u16 = 26_000;
/// The highest port handed out.
pub const HIGH: u16 = 32_767;
/// Ports tried before giving up.
const ATTEMPTS: u32 = 500;

fn next_candidate() -> u16 {
    static START: OnceLock<u32> = OnceLock::new();
    static TURN: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(HIGH - LOW) + 1;
    let start = *START.get_or_init(|| rand::random::<u32>() % span);
    let turn = TURN.fetch_add(1, Ordering::Relaxed);
    LOW + u16::try_from((start + turn) % span).expect("within the span")
}

/// A listener on 127.0.0.1 at a free port of the range.
pub fn bind() -> TcpListener {
    for _ in 0..ATTEMPTS {
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, next_candidate())) {
            return listener;
        }
    }
    panic!("no free loopback port in {LOW}-{HIGH} after {ATTEMPTS} tries");
}

/// A port of the range that is free now, for a server that binds it itself
/// (PostgreSQL): another process may take it first, so the caller retries
/// with the next one when its server cannot bind.
pub fn free_port() -> u16 {
    bind().local_addr().expect("local address").port()
}
