//! Spawning the real server and talking to it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use portico_api::config::ServeConfig;
use portico_api::state::AppState;
use portico_api::Application;
use portico_domain::clock::FixedClock;
use portico_store::testing::PgTestDatabase;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const PASSWORD: &str = "a long enough pass phrase";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server with a database of its own.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub clock: Arc<FixedClock>,
    pub outbox: PathBuf,
    /// The PostgreSQL database's URL, when it runs on one.
    pub database_url: Option<String>,
    _data: tempfile::TempDir,
    _postgres: Option<PgTestDatabase>,
}

pub async fn spawn_app() -> TestApp {
    spawn_on(Backend::Sqlite)
        .await
        .expect("SQLite is always available")
}

/// `None` when the backend is PostgreSQL and no test server is configured.
pub async fn spawn_on(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}).await
}

/// The tests' settings: the test webhook secret, and payments that settle only when a
/// test sends the webhook.
fn config_in(data: &tempfile::TempDir) -> ServeConfig {
    let mut config = ServeConfig::for_data_dir(data.path().to_path_buf());
    config.webhook_secret = Some(WEBHOOK_SECRET.into());
    config.sandbox_settle_delay_ms = 3_600_000;
    config
}

pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut ServeConfig)) -> Option<TestApp> {
    let data = tempfile::tempdir().unwrap();
    let mut config = config_in(&data);
    let postgres = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let pg = PgTestDatabase::create().await?;
            config.database_url = Some(pg.url.clone());
            Some(pg)
        }
    };
    tweak(&mut config);
    Some(start(config, data, postgres).await)
}

async fn start(
    config: ServeConfig,
    data: tempfile::TempDir,
    postgres: Option<PgTestDatabase>,
) -> TestApp {
    let clock = Arc::new(FixedClock::at(Utc::now()));
    let app = Application::build_with_clock(&config, clock.clone())
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let test = TestApp {
        address,
        http: reqwest::Client::new(),
        state,
        clock,
        outbox: data.path().join("outbox"),
        database_url: config.database_url.clone(),
        _data: data,
        _postgres: postgres,
    };
    test.wait_until_ready().await;
    test
}

/// A registered firm and its API key.
#[derive(Debug, Clone)]
pub struct FirmKey {
    pub key: String,
}

/// A portal session.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub firm_id: String,
}

impl TestApp {
    /// A second server on this one's PostgreSQL database, as another replica behind the
    /// same load balancer would be (a data folder of its own); `tweak` as for
    /// [`spawn_with`].
    pub async fn replica(&self, tweak: impl FnOnce(&mut ServeConfig)) -> TestApp {
        let data = tempfile::tempdir().unwrap();
        let mut config = config_in(&data);
        config.database_url = Some(
            self.database_url
                .clone()
                .expect("replicas share a PostgreSQL database"),
        );
        tweak(&mut config);
        start(config, data, None).await
    }

    async fn wait_until_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self
                .http
                .get(format!("{}/readyz", self.address))
                .send()
                .await
            {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the server never became ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    pub async fn get(&self, path: &str, bearer: &str) -> Response {
        self.request(Method::GET, path, Some(bearer), None).await
    }

    pub async fn post(&self, path: &str, bearer: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(bearer), Some(body))
            .await
    }

    /// `POST /v1/portal/sessions`: a login.
    pub async fn login(&self, firm_id: &str, email: &str, password: &str) -> Response {
        self.request(
            Method::POST,
            "/v1/portal/sessions",
            None,
            Some(serde_json::json!({ "firm_id": firm_id, "email": email, "password": password })),
        )
        .await
    }

    /// `DELETE /v1/portal/sessions/current`: a logout.
    pub async fn logout(&self, token: &str) -> Response {
        self.request(
            Method::DELETE,
            "/v1/portal/sessions/current",
            Some(token),
            None,
        )
        .await
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn new_firm(&self, name: &str) -> FirmKey {
        self.new_firm_with(name, "https://cdn.example.com/logo.png", "en-US")
            .await
    }

    pub async fn new_firm_with(&self, name: &str, logo_url: &str, locale: &str) -> FirmKey {
        let (_, key) = portico_api::firm::register_firm(
            &self.state.db,
            self.state.store.as_ref(),
            Utc::now(),
            name,
            Some(logo_url),
            "UTC",
            locale,
        )
        .await
        .unwrap();
        FirmKey { key: key.expose() }
    }

    /// The token of the newest invite email sent to `email`.
    pub fn invite_token_for(&self, email: &str) -> String {
        let mut messages: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&self.outbox)
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
        messages.sort_by(|a, b| a.1.cmp(&b.1));
        messages.sort_by_key(|(t, _)| *t);
        let text = &messages.last().expect("no invite email for that address").1;
        let link = text
            .lines()
            .find(|l| l.contains("/invite/"))
            .expect("the email has a link");
        link.rsplit('/').next().unwrap().trim().to_owned()
    }

    /// Accepts the newest invite of `email` and returns the session.
    pub async fn activate(&self, email: &str) -> Session {
        let token = self.invite_token_for(email);
        let r = self
            .request(
                Method::POST,
                &format!("/v1/portal/invites/{token}/accept"),
                None,
                Some(json!({ "password": PASSWORD, "password_confirmation": PASSWORD })),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        Session {
            token: body["session"]["token"].as_str().unwrap().to_owned(),
            firm_id: body["session"]["firm_id"].as_str().unwrap().to_owned(),
        }
    }

    /// Polls a submission until every payment has left `submitted`, or fails after 10 s.
    pub async fn settled_submission(&self, session: &Session, submission_id: &str) -> Value {
        for _ in 0..400 {
            let r = self
                .get(
                    &format!("/v1/wallet/submissions/{submission_id}"),
                    &session.token,
                )
                .await;
            if r.status() == StatusCode::OK {
                let body: Value = r.json().await.unwrap();
                if body["payments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|p| p["status"] != "submitted")
                {
                    return body;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("submission {submission_id} never settled");
    }

    /// Sends a gateway webhook signed with the test secret, as the gateway would.
    pub async fn webhook(&self, event: Value) -> Response {
        let body = serde_json::to_vec(&event).unwrap();
        let signature = portico_api::webhooks::sign(
            WEBHOOK_SECRET.as_bytes(),
            self.clock_now().timestamp(),
            &body,
        );
        self.http
            .post(self.url("/v1/webhooks/sandbox"))
            .header("portico-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub fn clock_now(&self) -> chrono::DateTime<Utc> {
        use portico_domain::clock::Clock;
        self.clock.now()
    }
}

/// Asserts a problem+json response with the given status and type slug.
pub async fn assert_problem(r: Response, status: u16, slug: &str) -> Value {
    assert_eq!(
        r.status().as_u16(),
        status,
        "unexpected status for {}",
        r.url()
    );
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["type"],
        format!("https://portico.dev/problems/{slug}"),
        "{body}"
    );
    assert_eq!(body["status"], status);
    body
}

pub async fn json_ok(r: Response, status: u16) -> Value {
    let code = r.status().as_u16();
    let url = r.url().to_string();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(code, status, "{url}: {body}");
    body
}

/// Runs each listed `async fn case(app: TestApp)` twice: on SQLite, and on PostgreSQL
/// when `PORTICO_TEST_POSTGRES_URL` is set (skipping with a reason otherwise; failing
/// under `CI`).
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case($crate::helpers::spawn_on($crate::helpers::Backend::Sqlite).await.unwrap()).await;
            }
        )+}
        mod postgres {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(app) = $crate::helpers::spawn_on($crate::helpers::Backend::Postgres).await {
                    super::$case(app).await;
                }
            }
        )+}
    };
}
