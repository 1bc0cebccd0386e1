//! A small SMTP server for the tests: it speaks the protocol over TCP on loopback (EHLO, MAIL,
//! RCPT, DATA, RSET, NOOP, QUIT) and keeps every message it receives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A running SMTP server and its mailbox.
pub(crate) struct SmtpServer {
    pub(crate) port: u16,
    received: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// Listens on a free loopback port.
    pub(crate) async fn start() -> SmtpServer {
        SmtpServer::start_on(0).await
    }

    /// Listens on `port` (a port a latchkey instance was already told about).
    pub(crate) async fn start_on(port: u16) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind SMTP");
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let mailbox = Arc::clone(&received);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(converse(stream, Arc::clone(&mailbox)));
            }
        });
        SmtpServer {
            port,
            received,
            task,
        }
    }

    /// A port nothing listens on (yet).
    pub(crate) async fn free_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    /// `smtp://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message so far, as received (the text part is 8bit: links stand literally in it).
    pub(crate) fn messages(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `count` messages arrived (at most `within`), and gives them all.
    pub(crate) async fn wait_for(&self, count: usize, within: Duration) -> Vec<String> {
        let started = Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                started.elapsed() < within,
                "expected {count} mails, got {}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn converse(stream: TcpStream, mailbox: Arc<Mutex<Vec<String>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    if write
        .write_all(b"220 localhost test SMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-localhost\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "DATA" => {
                if write.write_all(b"354 end with .\r\n").await.is_err() {
                    return;
                }
                let mut message = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    message.push_str(line.strip_prefix('.').unwrap_or(&line));
                    message.push_str("\r\n");
                }
                mailbox.lock().unwrap().push(message);
                b"250 queued\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"502 not implemented\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// The first `{base}{path}?token=…` link in a mail, as a full URL.
pub(crate) fn link(message: &str, path: &str) -> String {
    let start = message
        .find(path)
        .unwrap_or_else(|| panic!("no {path} link in:\n{message}"));
    let from = message[..start].rfind("http").expect("link start");
    message[from..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

/// The token of the first `path` link in a mail.
pub(crate) fn token(message: &str, path: &str) -> String {
    link(message, path)
        .split("token=")
        .nth(1)
        .expect("token")
        .to_owned()
}

/// The 6-digit code in a reset mail.
pub(crate) fn code(message: &str) -> String {
    let at = message.find("code in the app: ").expect("a code") + "code in the app: ".len();
    message[at..at + 6].to_owned()
}
