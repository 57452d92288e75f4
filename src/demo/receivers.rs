//! The demo's own alert receivers, in the demo process on loopback: a webhook endpoint (what an
//! on-call tool would run) and a minimal SMTP mailbox that writes each message to a file.
//!
//! The mailbox speaks just enough SMTP for one trusted local client (EHLO/HELO, MAIL, RCPT,
//! DATA, RSET, NOOP, QUIT; no TLS, no AUTH): it is the demo's mailbox, not a mail server.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One notification that reached a receiver.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `webhook` or `mailbox`.
    pub via: &'static str,
    /// `firing` or `resolved` (the webhook's `status`; the mail's subject).
    pub status: String,
    /// The alert names it carries.
    pub alerts: Vec<String>,
    /// For mail: the file it was written to.
    pub file: Option<PathBuf>,
    /// For mail: the subject line.
    pub subject: Option<String>,
}

/// Starts the webhook receiver (`POST /alerts`, Alertmanager's webhook payload) on a loopback
/// port; returns its URL.
pub async fn webhook(tx: mpsc::UnboundedSender<Delivery>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |axum::Json(payload): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let alerts = payload["alerts"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|x| x["status"] == payload["status"])
                            .filter_map(|x| x["labels"]["alertname"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let status = payload["status"].as_str().unwrap_or("?").to_string();
                let _ = tx.send(Delivery { via: "webhook", status, alerts, file: None, subject: None });
                axum::Json(serde_json::json!({"received": true}))
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/alerts"))
}

/// Starts the mailbox on a loopback port; each message is written to `dir/<n>.eml`. Returns the
/// address.
pub async fn mailbox(dir: PathBuf, tx: mpsc::UnboundedSender<Delivery>) -> anyhow::Result<SocketAddr> {
    std::fs::create_dir_all(&dir)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut count = 0usize;
        while let Ok((stream, _)) = listener.accept().await {
            // One client (anchorwatch's email receiver) at a time is plenty for the demo.
            if let Err(e) = session(stream, &dir, &mut count, &tx).await {
                tracing::debug!(error = %e, "demo mailbox: session ended");
            }
        }
    });
    Ok(addr)
}

async fn session(
    stream: TcpStream,
    dir: &std::path::Path,
    count: &mut usize,
    tx: &mpsc::UnboundedSender<Delivery>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 anchorwatch-demo mailbox ready\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_ascii_uppercase();
        let verb = command.split_whitespace().next().unwrap_or("");
        let answer: &[u8] = match verb {
            "EHLO" => b"250-anchorwatch-demo\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut message = Vec::new();
                loop {
                    line.clear();
                    if read.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // Dot-stuffing (RFC 5321 4.5.2): a leading dot was doubled by the sender.
                    message.extend_from_slice(if line.starts_with(b"..") { &line[1..] } else { &line });
                }
                *count += 1;
                let file = dir.join(format!("{:03}.eml", *count));
                std::fs::write(&file, &message)?;
                let text = String::from_utf8_lossy(&message);
                let subject = text
                    .lines()
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| l.strip_prefix("Subject: ").map(|s| s.trim().to_string()));
                let (status, alerts) = parse_subject(subject.as_deref().unwrap_or(""));
                let _ = tx.send(Delivery { via: "mailbox", status, alerts, file: Some(file), subject });
                b"250 OK: delivered to the demo mailbox\r\n"
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(answer).await?;
    }
}

/// `[FIRING:2] credit: A, B` → (`firing`, [A, B]); `[RESOLVED] credit: A` → (`resolved`, [A]).
fn parse_subject(subject: &str) -> (String, Vec<String>) {
    let status = if subject.starts_with("[RESOLVED") { "resolved" } else { "firing" }.to_string();
    let names = subject.split_once(": ").map(|(_, names)| names).unwrap_or("");
    (status, names.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn subjects_name_the_status_and_alerts() {
        assert_eq!(super::parse_subject("[FIRING:2] credit: A, B"), ("firing".into(), vec!["A".into(), "B".into()]));
        assert_eq!(super::parse_subject("[RESOLVED] credit: A"), ("resolved".into(), vec!["A".into()]));
    }
}
