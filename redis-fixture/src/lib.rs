//! A real `redis-server` (Debian's package) for tests: started on a free port of 127.0.0.1 in a
//! temporary directory of its own, with every write fsynced to its append-only file
//! (`--save '' --appendonly yes --appendfsync always`), and stopped by its own PID. It can be
//! killed and started again on its data, or started again empty, for the fault tests.
//!
//! The binary is `redis-server` on `PATH`, or `$REDIS_SERVER`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a started server may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped, to be started again) redis-server. Dropping it kills the process
/// and removes its directory.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a new server on a free port, in a new empty directory.
    pub fn start() -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sse-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut last_error = String::new();
        // A free port can be taken by someone else before redis binds it: try a few.
        for _ in 0..5 {
            let port = free_port()?;
            let mut server = Self {
                child: None,
                port,
                dir: dir.clone(),
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(error) => {
                    last_error = error;
                    server.kill();
                    std::mem::forget(server); // keep the directory for the next try
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error)
    }

    /// `redis://127.0.0.1:PORT`, what `EVENT_LOG` takes.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILL (by its PID), and waits for it to be gone. What was fsynced stays on disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, on the data it had.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.launch()
    }

    /// Starts it again on the same port with nothing: as if it lost every write.
    pub fn restart_empty(&mut self) -> Result<(), String> {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        self.launch()
    }

    /// Sends one command (arguments without spaces) and returns the first line of the reply.
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        let mut stream = TcpStream::connect_timeout(&self.address(), Duration::from_secs(2))
            .map_err(|e| format!("redis at {}: {e}", self.address()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        Ok(line.trim_end().to_owned())
    }

    fn launch(&mut self) -> Result<(), String> {
        let binary = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let log = std::fs::File::create(self.dir.join("redis.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (scripts/test.sh installs it: apt-get install redis-server)",
                    Path::new(&binary).display()
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.command(&["PING"]).is_ok_and(|reply| reply == "+PONG") {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "redis-server exited at start ({status}): {}",
                    self.log_tail()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server did not answer PING within {} s: {}",
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.join("redis.log")) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| format!("no free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_keeps_its_data_across_a_kill_and_can_come_back_empty() {
        let mut redis = RedisServer::start().expect("redis-server starts");
        assert_eq!(redis.command(&["SET", "k", "v"]).unwrap(), "+OK");
        redis.restart().unwrap();
        assert_eq!(redis.command(&["EXISTS", "k"]).unwrap(), ":1");
        redis.restart_empty().unwrap();
        assert_eq!(redis.command(&["EXISTS", "k"]).unwrap(), ":0");
        let dir = redis.dir().to_path_buf();
        drop(redis);
        assert!(!dir.exists());
    }
}
