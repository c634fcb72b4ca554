//! A throwaway PostgreSQL cluster of one test's own, for faults that would
//! disturb the shared one (a server restart). Uses `initdb` and `pg_ctl`
//! of the stack's PostgreSQL version: from `$KS_PG_BIN` (deploy/local/lib.sh
//! exports it, for any `KINESYNC_LOCAL_PG_VERSION`), else from PATH; as root,
//! runs them as the `postgres` user, as deploy/local/lib.sh does. Stopped
//! (immediate mode) and removed when dropped.

use std::path::PathBuf;
use std::process::Command;

pub struct Cluster {
    /// `postgres://postgres@127.0.0.1:<port>` (no database).
    pub url: String,
    data: PathBuf,
    home: PathBuf,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Tries to start a cluster on this many ports before failing the test.
const START_ATTEMPTS: usize = 5;

/// Runs a shell command line as the cluster's owner; fails the test on error.
fn run(line: &str) {
    let output = owner_shell(line);
    assert!(
        output.status.success(),
        "{line} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a shell command line as the cluster's owner; whether it succeeded.
fn try_run(line: &str) -> bool {
    owner_shell(line).status.success()
}

fn owner_shell(line: &str) -> std::process::Output {
    if is_root() {
        Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", line])
            .output()
    } else {
        Command::new("sh").args(["-c", line]).output()
    }
    .unwrap_or_else(|e| panic!("cannot run {line}: {e}"))
}

fn tool(name: &str) -> String {
    if let Some(dir) = std::env::var_os("KS_PG_BIN").filter(|d| !d.is_empty()) {
        let path = PathBuf::from(dir).join(name);
        assert!(
            path.exists(),
            "{} does not exist: KS_PG_BIN must be the server binaries' directory (deploy/local/test sets it)",
            path.display()
        );
        return path.display().to_string();
    }
    let output = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "{name} is not on PATH: run the tests with deploy/local/test, which puts the PostgreSQL server binaries there"
    );
    path
}

impl Cluster {
    /// initdb + start, with logical replication enabled.
    pub fn start(name: &str) -> Cluster {
        Cluster::start_with(name, "")
    }

    /// Like [`start`](Self::start), with `settings` (postgresql.conf lines)
    /// after the defaults, e.g. `wal_level = replica`.
    pub fn start_with(name: &str, settings: &str) -> Cluster {
        let (initdb, pg_ctl) = (tool("initdb"), tool("pg_ctl"));
        let home = std::env::temp_dir().join(format!("kinesync-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).expect("cluster dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&home)
                .status()
                .expect("chown");
            assert!(status.success(), "chown {home:?} failed");
        }
        let data = home.join("data");
        run(&format!(
            "'{initdb}' -D '{}' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >'{}/initdb.log' 2>&1",
            data.display(),
            home.display()
        ));
        // The port is given on the command line (pg_ctl restart reuses it).
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             wal_level = logical\nmax_replication_slots = 8\nmax_wal_senders = 8\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\ntimezone = 'UTC'\n{settings}\n",
            data.display()
        );
        run(&format!(
            "printf '%s' \"{conf}\" >> '{}/postgresql.conf'",
            data.display()
        ));
        let mut cluster = Cluster {
            url: String::new(),
            data,
            home,
        };
        // A port free a moment ago may be taken by another process before
        // the server binds it: then try the next one.
        for _ in 0..START_ATTEMPTS {
            let port = super::ports::free_port();
            if try_run(&cluster.pg_ctl_line(&pg_ctl, &format!("-o '-p {port}' start"))) {
                cluster.url = format!("postgres://postgres@127.0.0.1:{port}");
                return cluster;
            }
            let log =
                std::fs::read_to_string(cluster.home.join("postgres.log")).unwrap_or_default();
            assert!(
                log.contains("could not bind") || log.contains("already in use"),
                "PostgreSQL did not start:\n{log}"
            );
        }
        panic!("PostgreSQL found no free port in {START_ATTEMPTS} tries");
    }

    fn pg_ctl_line(&self, pg_ctl: &str, action: &str) -> String {
        format!(
            "'{pg_ctl}' -D '{}' -l '{}/postgres.log' -w -t {} {action} >/dev/null",
            self.data.display(),
            self.home.display(),
            super::DEADLINE.as_secs()
        )
    }

    /// Runs `pg_ctl <action>`, waiting up to [`super::DEADLINE`]; fails the
    /// test with the end of the server log.
    fn pg_ctl(&self, pg_ctl: &str, action: &str) {
        let line = self.pg_ctl_line(pg_ctl, action);
        if !try_run(&line) {
            let log = std::fs::read_to_string(self.home.join("postgres.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!("{line} failed; the server log ends:\n{}", tail.join("\n"));
        }
    }

    /// Runs `pg_ctl <action>` off the async runtime: `stop` takes the
    /// server down with its data kept, until [`Cluster::start_again`].
    async fn pg_ctl_blocking(&self, action: String) {
        let pg_ctl = tool("pg_ctl");
        let data = self.data.clone();
        let home = self.home.clone();
        tokio::task::spawn_blocking(move || {
            let cluster = Cluster {
                url: String::new(),
                data,
                home,
            };
            cluster.pg_ctl(&pg_ctl, &action);
            std::mem::forget(cluster);
        })
        .await
        .expect("pg_ctl task");
    }

    pub async fn stop(&self) {
        self.pg_ctl_blocking("-m fast stop".to_owned()).await;
    }

    /// Starts a stopped cluster again on its port.
    pub async fn start_again(&self) {
        let port = self.url.rsplit(':').next().unwrap_or_default().to_owned();
        self.pg_ctl_blocking(format!("-o '-p {port}' start")).await;
    }

    /// `pg_ctl restart -m fast`: every session is terminated, the server
    /// shuts down cleanly and starts again (blocking until it accepts
    /// connections).
    pub async fn restart(&self) {
        self.pg_ctl_blocking("-m fast restart".to_owned()).await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let line = format!(
            "'{}' -D '{}' -m immediate -w stop >/dev/null 2>&1",
            tool("pg_ctl"),
            self.data.display()
        );
        let _ = if is_root() {
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", &line])
                .status()
        } else {
            Command::new("sh").args(["-c", &line]).status()
        };
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
