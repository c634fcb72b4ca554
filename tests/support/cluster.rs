//! A throwaway PostgreSQL cluster of its own, for tests that need server
//! settings the shared test cluster must not have (e.g. `wal_level =
//! replica`). Started from the binaries on PATH (deploy/local/test puts
//! PostgreSQL's first), as the `postgres` user when the tests run as root,
//! stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct ThrowawayCluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

/// `name` found on PATH.
fn on_path(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{name} is not on PATH (run the tests through deploy/local/test)")
        })
}

/// Runs `script` with sh, as `postgres` when we are root (initdb refuses root).
fn run_as_owner(script: &str) -> std::process::Output {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut command = if root {
        let mut c = Command::new("su");
        c.args(["postgres", "-s", "/bin/sh", "-c", script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    };
    command.output().expect("run sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl ThrowawayCluster {
    /// initdb + start with `settings` appended to postgresql.conf.
    pub fn start(name: &str, settings: &str) -> ThrowawayCluster {
        let bin = on_path("initdb")
            .parent()
            .map(Path::to_path_buf)
            .expect("bin dir");
        let dir =
            std::env::temp_dir().join(format!("kinesync-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let _ = Command::new("chown").args(["postgres"]).arg(&dir).output();
        let port = free_port();
        let data = dir.join("data");
        let out = run_as_owner(&format!(
            "'{bin}/initdb' -D '{data}' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >'{dir}/initdb.log' 2>&1 \
             && printf \"%s\\n\" \"listen_addresses = '127.0.0.1'\" \"port = {port}\" \"unix_socket_directories = '{data}'\" \"fsync = off\" >> '{data}/postgresql.conf' \
             && printf '%s\\n' \"{settings}\" >> '{data}/postgresql.conf' \
             && '{bin}/pg_ctl' -D '{data}' -l '{dir}/postgres.log' -w -t 60 start",
            bin = bin.display(),
            data = data.display(),
            dir = dir.display(),
        ));
        assert!(
            out.status.success(),
            "throwaway cluster did not start: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
        );
        ThrowawayCluster { dir, bin, port }
    }

    /// A URL for `database` as the postgres superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let _ = run_as_owner(&format!(
            "'{}/pg_ctl' -D '{}/data' -m immediate -w stop",
            self.bin.display(),
            self.dir.display()
        ));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
