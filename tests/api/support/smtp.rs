//! The mail the tests receive. A small SMTP server: it speaks the protocol over TCP on loopback
//! (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and keeps every message it receives, as a [`Mail`]
//! that gives its recipient, subject, link tokens and reset code in one call. And the `.eml`
//! files of `--mail-dir`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How long a test waits for a mail before it fails.
const MAIL_WAIT: Duration = Duration::from_secs(15);

/// A running SMTP server and its mailbox.
pub(crate) struct SmtpServer {
    pub(crate) port: u16,
    received: Arc<Mutex<Vec<Mail>>>,
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

    /// `smtp://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail so far, in the order they arrived.
    pub(crate) fn mails(&self) -> Vec<Mail> {
        self.received.lock().unwrap().clone()
    }

    /// Every mail to `to` so far, in the order they arrived.
    pub(crate) fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| m.to() == to).collect()
    }

    /// Waits until `count` mails arrived (whoever they are to), and gives them all.
    pub(crate) async fn wait_for_mails(&self, count: usize) -> Vec<Mail> {
        let started = Instant::now();
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                started.elapsed() < MAIL_WAIT,
                "expected {count} mails, got {}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the `nth` mail to `to` (1 is the first one to that address), and gives it.
    pub(crate) async fn wait_for_mail_to(&self, to: &str, nth: usize) -> Mail {
        assert!(nth >= 1, "the first mail is the 1st");
        let started = Instant::now();
        loop {
            let mut mails = self.mails_to(to);
            if mails.len() >= nth {
                return mails.swap_remove(nth - 1);
            }
            assert!(
                started.elapsed() < MAIL_WAIT,
                "expected {nth} mails to {to}, got {}; every mail so far: {:?}",
                mails.len(),
                self.mails()
                    .iter()
                    .map(|m| (m.to(), m.subject()))
                    .collect::<Vec<_>>()
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

async fn converse(stream: TcpStream, mailbox: Arc<Mutex<Vec<Mail>>>) {
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
                mailbox.lock().unwrap().push(Mail(message));
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

/// One mail as received: headers, then the MIME parts (the text part is 8bit: links stand
/// literally in it). Also made from any text that holds a mail's body (`Mail::from`).
#[derive(Clone, Debug)]
pub(crate) struct Mail(String);

impl From<String> for Mail {
    fn from(text: String) -> Mail {
        Mail(text)
    }
}

impl fmt::Display for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Mail {
    pub(crate) fn contains(&self, text: &str) -> bool {
        self.0.contains(text)
    }

    /// The value of header `name` (unfolded), or "" when the mail has none.
    pub(crate) fn header(&self, name: &str) -> String {
        let head = self.0.split("\r\n\r\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            match value {
                Some(ref mut folded) if line.starts_with([' ', '\t']) => {
                    folded.push(' ');
                    folded.push_str(line.trim());
                }
                Some(_) => break,
                None => {
                    if let Some((key, rest)) = line.split_once(':')
                        && key.eq_ignore_ascii_case(name)
                    {
                        value = Some(rest.trim().to_owned());
                    }
                }
            }
        }
        value.unwrap_or_default()
    }

    /// The address in the `To` header.
    pub(crate) fn to(&self) -> String {
        let to = self.header("To");
        match (to.find('<'), to.rfind('>')) {
            (Some(from), Some(end)) if from < end => to[from + 1..end].to_owned(),
            _ => to,
        }
    }

    pub(crate) fn subject(&self) -> String {
        self.header("Subject")
    }

    /// The first `…/confirm-email?token=…` link, as a full URL.
    pub(crate) fn confirm_link(&self) -> String {
        self.link(CONFIRM_LINK)
    }

    /// The token of the first confirmation link.
    pub(crate) fn confirm_token(&self) -> String {
        token_of(&self.confirm_link())
    }

    /// The first `…/reset-password?token=…` link, as a full URL.
    pub(crate) fn reset_link(&self) -> String {
        self.link(RESET_LINK)
    }

    /// The token of the first reset link.
    pub(crate) fn reset_token(&self) -> String {
        token_of(&self.reset_link())
    }

    /// The token of the first sign-in link.
    pub(crate) fn login_token(&self) -> String {
        token_of(&self.link(LOGIN_LINK))
    }

    /// The token of the first invitation link.
    pub(crate) fn invitation_token(&self) -> String {
        token_of(&self.link(INVITATION_LINK))
    }

    /// The token of the first email-change confirmation link.
    pub(crate) fn email_change_token(&self) -> String {
        token_of(&self.link(EMAIL_CHANGE_LINK))
    }

    /// The token of the first link that undoes an email change.
    pub(crate) fn revert_token(&self) -> String {
        token_of(&self.link(REVERT_LINK))
    }

    /// The 6-digit code of a reset or sign-in mail.
    pub(crate) fn reset_code(&self) -> String {
        let at = self
            .0
            .find(CODE)
            .unwrap_or_else(|| panic!("no code in:\n{self}"))
            + CODE.len();
        self.0[at..at + 6].to_owned()
    }

    /// The first `{base}{path}` link, as a full URL.
    fn link(&self, path: &str) -> String {
        let start = self
            .0
            .find(path)
            .unwrap_or_else(|| panic!("no {path} link in:\n{self}"));
        let from = self.0[..start].rfind("http").expect("link start");
        self.0[from..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
            .next()
            .unwrap()
            .to_owned()
    }
}

const CONFIRM_LINK: &str = "/confirm-email?token=";
const RESET_LINK: &str = "/reset-password?token=";
const LOGIN_LINK: &str = "/email-login?token=";
const INVITATION_LINK: &str = "/accept-invitation?token=";
const EMAIL_CHANGE_LINK: &str = "/confirm-email-change?token=";
const REVERT_LINK: &str = "/revert-email-change?token=";
const CODE: &str = "code in the app: ";

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).expect("token").to_owned()
}

/// Waits for the first non-empty `.eml` file in `dir` (`--mail-dir`), and gives its path.
pub(crate) async fn wait_for_eml(dir: &Path) -> PathBuf {
    let started = Instant::now();
    loop {
        let found = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "eml"));
        if let Some(file) = found.filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0)) {
            return file;
        }
        assert!(started.elapsed() < MAIL_WAIT, "no .eml file written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
