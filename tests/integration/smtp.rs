//! A small in-process SMTP server (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) that keeps what
//! it accepts; it can be stopped (connections refused) and started again on the same port.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body), dot-stuffing undone.
    pub data: String,
}

impl ReceivedMail {
    /// The value of the first header `name` (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    /// The body with quoted-printable soft breaks and `=3D` undone, enough to search in.
    pub fn decoded(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }
}

pub struct SmtpServer {
    pub port: u16,
    pub received: Arc<Mutex<Vec<ReceivedMail>>>,
    task: Option<JoinHandle<()>>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = Some(tokio::spawn(serve(listener, received.clone())));
        Self {
            port,
            received,
            task,
        }
    }

    /// Closes the listener and every open session: the server is down.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        self.task = Some(tokio::spawn(serve(listener, self.received.clone())));
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, received: Arc<Mutex<Vec<ReceivedMail>>>) {
    // Sessions live in the set, so aborting this task closes them too.
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        sessions.spawn(session(stream, received.clone()));
    }
}

async fn session(stream: TcpStream, received: Arc<Mutex<Vec<ReceivedMail>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut from = String::new();
    let mut to = Vec::new();
    if write.write_all(b"220 test-smtp ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250 test-smtp\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = command[10..].trim().to_string();
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(command[8..].trim().to_string());
            b"250 OK\r\n"
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            b"250 OK\r\n"
        } else if upper == "DATA" {
            if write.write_all(b"354 end with .\r\n").await.is_err() {
                return;
            }
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            received.lock().unwrap().push(ReceivedMail {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            b"250 OK queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"502 not implemented\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
