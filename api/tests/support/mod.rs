//! The real `portico` binary as a child process, and a portal set up over its HTTP API:
//! what the crash and database-fault tests attack.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portico_domain::Event;
use serde_json::{json, Value};

pub const WEBHOOK_SECRET: &str = "chaos-webhook-secret";
pub const PASSWORD: &str = "a long enough pass phrase";

/// A `portico` process on a data folder (and a PostgreSQL database when given).
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data: PathBuf,
    pub database_url: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn start(data: &Path, database_url: Option<&str>) -> Server {
        let mut server = Server {
            child: None,
            url: String::new(),
            data: data.to_path_buf(),
            database_url: database_url.map(str::to_owned),
        };
        server.restart();
        server
    }

    /// Starts the process again on the same data, on a new port.
    pub fn restart(&mut self) {
        self.kill();
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portico"));
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&self.data)
            .args(["--webhook-secret", WEBHOOK_SECRET])
            .args(["--sandbox-settle-delay-ms", "20"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match &self.database_url {
            Some(url) => cmd.env("DATABASE_URL", url),
            None => cmd.env_remove("DATABASE_URL"),
        };
        self.child = Some(cmd.spawn().unwrap());
        self.url = format!("http://127.0.0.1:{port}");
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn database_target(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| self.data.join("portico.db").to_string_lossy().into_owned())
    }

    /// Waits until `/readyz` answers 200 and returns its body.
    pub async fn ready(&self, http: &reqwest::Client) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await {
                if r.status() == 200 {
                    return r.json().await.unwrap();
                }
            }
            assert!(Instant::now() < deadline, "the server never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every read model has applied every event.
    pub async fn caught_up(&self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self.ready(http).await;
            if ready["lag"] == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the read models never caught up: {ready}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `portico firm create`, as an operator runs it; returns the API key.
pub fn create_firm(data: &Path, database_url: Option<&str>, name: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portico"));
    cmd.arg("--data-dir")
        .arg(data)
        .args(["firm", "create", "--name", name]);
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    } else {
        cmd.env_remove("DATABASE_URL");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("API key:"))
        .unwrap()
        .trim()
        .to_owned()
}

/// A client with a contact who has activated the portal, and a project to bill.
pub struct Portal {
    pub key: String,
    pub client_id: String,
    pub project_id: String,
    pub session: String,
}

async fn created(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    path: &str,
    body: Value,
) -> Value {
    let r = http
        .post(format!("{url}{path}"))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

pub async fn portal(http: &reqwest::Client, server: &Server, key: &str, email: &str) -> Portal {
    let url = &server.url;
    let client = created(
        http,
        url,
        key,
        "/v1/firm/clients",
        json!({ "name": "Northwind" }),
    )
    .await;
    let client_id = client["id"].as_str().unwrap().to_owned();
    let contact = created(
        http,
        url,
        key,
        &format!("/v1/firm/clients/{client_id}/contacts"),
        json!({ "name": "Ann Lee", "email": email }),
    )
    .await;
    let project = created(
        http,
        url,
        key,
        "/v1/firm/projects",
        json!({ "client_id": client_id, "name": "Audit" }),
    )
    .await;
    let contacts: Value = http
        .get(format!(
            "{url}/v1/firm/contacts?min_position={}",
            contact["position"]
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contact_id = contacts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["email"] == email)
        .unwrap()["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    created(
        http,
        url,
        key,
        &format!("/v1/firm/contacts/{contact_id}/invite"),
        json!({}),
    )
    .await;
    let token = invite_token(&server.data.join("outbox"), email);
    let accepted: Value = http
        .post(format!("{url}/v1/portal/invites/{token}/accept"))
        .json(&json!({ "password": PASSWORD, "password_confirmation": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Portal {
        key: key.to_owned(),
        client_id,
        project_id: project["id"].as_str().unwrap().to_owned(),
        session: accepted["session"]["token"].as_str().unwrap().to_owned(),
    }
}

/// The token of the newest invite email to `email` in the outbox.
pub fn invite_token(outbox: &Path, email: &str) -> String {
    let mut mails: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                std::fs::metadata(&p).unwrap().modified().unwrap(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .filter(|(_, text)| text.starts_with(&format!("To: {email}\r\n")))
        .collect();
    mails.sort_by_key(|(t, _)| *t);
    let text = &mails.last().expect("an invite email").1;
    let link = text.lines().find(|l| l.contains("/invite/")).unwrap();
    link.rsplit('/').next().unwrap().trim().to_owned()
}

/// What the log holds, read straight from the event store.
#[derive(Default)]
pub struct LogFacts {
    pub events: usize,
    /// invoice id → total in minor units.
    pub invoices: HashMap<String, i64>,
    /// payment id → (submission id, invoice id, minor units).
    pub payments: HashMap<String, (String, String, i64)>,
    pub payment_in_two_submissions: usize,
    pub failed: HashSet<String>,
    pub settled: HashSet<String>,
}

pub async fn read_log(store: &dyn portico_store::EventStore) -> LogFacts {
    let mut facts = LogFacts::default();
    let mut after = 0;
    loop {
        let batch = store.read_all(after, 1000).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.global_position;
        for e in &batch {
            facts.events += 1;
            match e.decode().unwrap() {
                Event::InvoiceIssued {
                    invoice_id, total, ..
                } => {
                    facts
                        .invoices
                        .insert(invoice_id.to_string(), total.minor_units());
                }
                Event::PaymentSubmitted {
                    payment_id,
                    submission_id,
                    invoice_id,
                    amount,
                    ..
                } => {
                    let earlier = facts.payments.insert(
                        payment_id.to_string(),
                        (
                            submission_id.to_string(),
                            invoice_id.to_string(),
                            amount.minor_units(),
                        ),
                    );
                    if earlier.is_some() {
                        facts.payment_in_two_submissions += 1;
                    }
                }
                Event::PaymentFailed { payment_id, .. } => {
                    facts.failed.insert(payment_id.to_string());
                }
                Event::PaymentSettled { payment_id, .. } => {
                    facts.settled.insert(payment_id.to_string());
                }
                _ => {}
            }
        }
    }
    facts
}
