//! Child processes and the network between them: the `latchkey` binary with a clean environment,
//! `latchkey serve` children killed when the test ends, free ports, and a TCP proxy that can cut
//! a connection.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

/// A child process (a `latchkey serve`, nginx) killed when dropped, so a failing test leaves
/// nothing running.
pub(crate) struct Process(pub(crate) Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `latchkey` binary, with no `LATCHKEY_*` variable of the environment the suite runs in:
/// the suite must not depend on it.
pub(crate) fn latchkey_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("LATCHKEY_")) {
        command.env_remove(key);
    }
    command
}

/// A `latchkey serve` child process on `127.0.0.1:PORT`, configured through its environment:
/// a clean `LATCHKEY_*` environment, the operations listener off, warn-level logs, and its
/// output discarded, unless [`Serve::env`] says otherwise.
pub(crate) struct Serve(Command);

impl Serve {
    pub(crate) fn on(port: u16) -> Serve {
        let mut command = latchkey_command();
        command
            .arg("serve")
            .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_METRICS_LISTEN", "off")
            .env("LATCHKEY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Serve(command)
    }

    /// Sets (or replaces) one setting, e.g. `("LATCHKEY_DATABASE_URL", url)`.
    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Serve {
        self.0.env(key, value);
        self
    }

    /// Runs it in `dir` (relative paths in its settings are taken from there).
    pub(crate) fn current_dir(mut self, dir: &Path) -> Serve {
        self.0.current_dir(dir);
        self
    }

    pub(crate) fn spawn(mut self) -> Process {
        Process(self.0.spawn().expect("latchkey serve starts"))
    }
}

/// A loopback port nothing listens on (yet).
pub(crate) async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Forwards loopback TCP to `target` until cut; a cut drops every connection and refuses new ones.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    pub(crate) async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(Vec::new()));
        let (accepting, tracked) = (Arc::clone(&up), Arc::clone(&links));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let target = target.clone();
                tracked.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Proxy { port, up, links }
    }

    pub(crate) fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub(crate) fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
