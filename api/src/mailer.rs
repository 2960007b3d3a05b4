//! Outgoing email. The default mailer writes each message to an outbox folder, one file
//! per message, for a person (or a test) to open.

use std::path::PathBuf;

use async_trait::async_trait;

#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    async fn send(&self, email: OutgoingEmail) -> std::io::Result<()>;
}

#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, email: OutgoingEmail) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let path = self.dir.join(format!("{}.eml", uuid::Uuid::now_v7()));
        let message = format!(
            "To: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
            email.to, email.subject, email.text
        );
        tokio::fs::write(&path, message).await?;
        // The message holds a one-time link: log where it is, never its content.
        tracing::info!(outbox = %path.display(), "email written to the outbox");
        Ok(())
    }
}
