//! The portal's dashboard and invoices endpoints under concurrent load, against an axum
//! handler that returns a static body of the same size, measured the same way.
//! Also the Wallet: bulk payments of 1, 10 and 100 invoices.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use chrono::Utc;
use portico_api::config::ServeConfig;
use portico_api::Application;
use serde_json::{json, Value};

use crate::stats::Samples;

pub struct Load {
    pub requests: u64,
    pub secs: f64,
    pub latency: Samples,
}

impl Load {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }

    fn add(&mut self, other: Load) {
        self.requests += other.requests;
        self.secs += other.secs;
        self.latency.extend(other.latency);
    }
}

/// The static baseline and Portico, `rounds` times each in turn for `duration / rounds`:
/// this machine's speed drifts by more than the difference between runs of the same
/// code (a lone static run measured anywhere from 54,000 to 98,000 req/s within minutes),
/// so both sides are measured in the same stretches of time.
pub async fn alternating(
    baseline_url: &str,
    url: &str,
    bearer: &str,
    duration: Duration,
    rounds: u32,
) -> anyhow::Result<(Load, Load)> {
    let slice = duration / rounds.max(1);
    let empty = || Load {
        requests: 0,
        secs: 0.0,
        latency: Samples::default(),
    };
    let (mut base, mut real) = (empty(), empty());
    for _ in 0..rounds.max(1) {
        base.add(load(baseline_url, None, 64, slice).await?);
        real.add(load(url, Some(bearer), 64, slice).await?);
    }
    Ok((base, real))
}

/// `connections` tasks each send requests one after another for `duration`.
pub async fn load(
    url: &str,
    bearer: Option<&str>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, bearer) = (client.clone(), url.to_owned(), bearer.map(str::to_owned));
        tasks.push(tokio::spawn(async move {
            let mut latency = Samples::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut req = client.get(&url);
                if let Some(b) = &bearer {
                    req = req.bearer_auth(b);
                }
                let r = req.send().await?;
                anyhow::ensure!(r.status().is_success(), "{url} answered {}", r.status());
                r.bytes().await?;
                latency.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latency)
        }));
    }
    let mut latency = Samples::default();
    for t in tasks {
        latency.extend(t.await??);
    }
    Ok(Load {
        requests: latency.len() as u64,
        secs: started.elapsed().as_secs_f64(),
        latency,
    })
}

/// A server with static bytes at `/`, for the baseline.
pub async fn static_server(body: Vec<u8>) -> anyhow::Result<String> {
    let body = Arc::new(body);
    let app = axum::Router::new().route(
        "/",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [("content-type", "application/json")],
                    body.as_ref().clone(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// A running Portico with a firm, a client with a contact logged in, two projects with a
/// team, and `invoices` invoices.
pub struct Portal {
    pub base: String,
    pub key: String,
    pub session: String,
    pub client: String,
    pub project: String,
    pub http: reqwest::Client,
    _data: tempfile::TempDir,
    counter: std::sync::atomic::AtomicU64,
}

async fn ok(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "{status}: {body}");
    Ok(body)
}

impl Portal {
    pub async fn start(database_url: Option<String>, invoices: usize) -> anyhow::Result<Portal> {
        let data = tempfile::tempdir()?;
        let mut config = ServeConfig::for_data_dir(data.path().to_path_buf());
        config.database_url = database_url;
        config.sandbox_settle_delay_ms = 3_600_000;
        let app = Application::build(&config).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        tokio::spawn(app.run_until(std::future::pending()));
        let (_, key) = portico_api::firm::register_firm(
            &state.db,
            state.store.as_ref(),
            Utc::now(),
            "Bench LLP",
            Some("https://cdn.example.com/l.png"),
            "UTC",
            "en-US",
        )
        .await?;
        let key = key.expose();
        let http = reqwest::Client::new();
        let post = |path: String, body: Value| {
            http.post(format!("{base}{path}"))
                .bearer_auth(&key)
                .json(&body)
                .send()
        };
        let client = ok(post("/v1/firm/clients".into(), json!({ "name": "Client" })).await?)
            .await?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ok(post(
            format!("/v1/firm/clients/{client}/contacts"),
            json!({ "name": "Ann", "email": "ann@bench.example" }),
        )
        .await?)
        .await?;
        let mut project = String::new();
        for p in 0..2 {
            project = ok(post(
                "/v1/firm/projects".into(),
                json!({ "client_id": client, "name": format!("Project {p}") }),
            )
            .await?)
            .await?["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for m in 0..3 {
                ok(post(format!("/v1/firm/projects/{project}/team"), json!({ "name": format!("Member {m}"), "role": "Senior", "email": format!("m{m}@firm.example") })).await?).await?;
            }
        }
        let portal = Portal {
            base,
            key,
            session: String::new(),
            client,
            project,
            http,
            _data: data,
            counter: std::sync::atomic::AtomicU64::new(0),
        };
        portal.issue(invoices).await?;
        let contacts = ok(portal
            .http
            .get(format!("{}/v1/firm/contacts?min_position=1", portal.base))
            .bearer_auth(&portal.key)
            .send()
            .await?)
        .await?;
        let contact = contacts[0]["contact_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ok(portal
            .http
            .post(format!("{}/v1/firm/contacts/{contact}/invite", portal.base))
            .bearer_auth(&portal.key)
            .json(&json!({}))
            .send()
            .await?)
        .await?;
        let outbox = std::fs::read_dir(portal._data.path().join("outbox"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("no invite email"))??;
        let text = std::fs::read_to_string(outbox.path())?;
        let token = text
            .lines()
            .find(|l| l.contains("/invite/"))
            .and_then(|l| l.rsplit('/').next())
            .unwrap_or_default()
            .trim()
            .to_owned();
        let password = "bench password long enough";
        let accepted = ok(portal
            .http
            .post(format!("{}/v1/portal/invites/{token}/accept", portal.base))
            .json(&json!({ "password": password, "password_confirmation": password }))
            .send()
            .await?)
        .await?;
        let session = accepted["session"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(Portal { session, ..portal })
    }

    /// Issues `n` invoices; returns their ids and the last position.
    pub async fn issue(&self, n: usize) -> anyhow::Result<(Vec<String>, i64)> {
        let today = Utc::now().date_naive();
        let mut ids = Vec::with_capacity(n);
        let mut position = 0;
        for _ in 0..n {
            let i = self
                .counter
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = json!({ "client_id": self.client, "project_id": self.project, "number": format!("B-{i:06}"),
                "issued_on": (today - chrono::Duration::days(30)).to_string(),
                "due_on": (today + chrono::Duration::days(i as i64 % 40 - 20)).to_string(),
                "currency": "USD", "total": "1250.00" });
            let v = ok(self
                .http
                .post(format!("{}/v1/firm/invoices", self.base))
                .bearer_auth(&self.key)
                .json(&body)
                .send()
                .await?)
            .await?;
            ids.push(v["id"].as_str().unwrap_or_default().to_owned());
            position = v["position"].as_i64().unwrap_or(0);
        }
        Ok((ids, position))
    }

    pub async fn wait_for(&self, position: i64) -> anyhow::Result<()> {
        ok(self
            .http
            .get(format!(
                "{}/v1/portal/invoices?min_position={position}",
                self.base
            ))
            .bearer_auth(&self.session)
            .send()
            .await?)
        .await?;
        Ok(())
    }

    /// One checkout of `ids` and its timed submission.
    pub async fn pay(&self, ids: &[String], position: i64) -> anyhow::Result<Duration> {
        let c = ok(self
            .http
            .post(format!("{}/v1/portal/checkouts", self.base))
            .bearer_auth(&self.session)
            .json(&json!({ "invoice_ids": ids, "min_position": position }))
            .send()
            .await?)
        .await?;
        let t = Instant::now();
        ok(self
            .http
            .post(format!(
                "{}/v1/wallet/checkouts/{}/submit",
                self.base,
                c["id"].as_str().unwrap_or_default()
            ))
            .bearer_auth(&self.session)
            .header("idempotency-key", uuid::Uuid::now_v7().to_string())
            .json(&json!({ "payment_method": { "type": "card", "token": "tok_settle_later" } }))
            .send()
            .await?)
        .await?;
        Ok(t.elapsed())
    }
}
