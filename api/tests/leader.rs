//! Two `portico` processes on one PostgreSQL database: exactly one runs the projectors
//! (advisory lock), both serve, and when the leader dies the other takes over.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portico_store::testing::PgTestDatabase;
use serde_json::{json, Value};

struct Process {
    child: Child,
    url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(database_url: &str, data: &std::path::Path) -> Process {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Process {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn leader_flag(http: &reqwest::Client, p: &Process) -> Option<bool> {
    let r = http
        .get(format!("{}/v1/ops/projections", p.url))
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    v["leader"].as_bool()
}

async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_leads_the_projectors_and_another_takes_over_when_it_dies() {
    let Some(pg) = PgTestDatabase::create().await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let created = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["--data-dir"])
        .arg(data.path())
        .args(["firm", "create", "--name", "Acme LLP"])
        .env("DATABASE_URL", &pg.url)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stdout = String::from_utf8(created.stdout).unwrap();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("API key:"))
        .unwrap()
        .trim()
        .to_owned();

    let http = reqwest::Client::new();
    let mut a = Some(start(&pg.url, &data.path().join("a")));
    let b = start(&pg.url, &data.path().join("b"));
    let flags = until("both processes to answer with one leader", async || {
        let fa = leader_flag(&http, a.as_ref().unwrap()).await?;
        let fb = leader_flag(&http, &b).await?;
        (fa != fb).then_some((fa, fb))
    })
    .await;
    let (leader, follower) = if flags.0 {
        (a.take().unwrap(), b)
    } else {
        (b, a.take().unwrap())
    };

    // A write through the follower is projected by the leader and readable through the follower.
    let listed = add_client_and_list(&http, &follower, &key, "First Client").await;
    assert_eq!(listed[0]["name"], "First Client");

    // The leader dies; the follower takes the lock and carries on projecting.
    drop(leader);
    until("the follower to take over", async || {
        leader_flag(&http, &follower).await.filter(|l| *l)
    })
    .await;
    let listed = add_client_and_list(&http, &follower, &key, "Second Client").await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}

/// Adds a client through `p`, then lists clients through `p` once the read models have it.
async fn add_client_and_list(http: &reqwest::Client, p: &Process, key: &str, name: &str) -> Value {
    let created: Value = http
        .post(format!("{}/v1/firm/clients", p.url))
        .bearer_auth(key)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.get(format!(
        "{}/v1/firm/clients?min_position={}",
        p.url, created["position"]
    ))
    .bearer_auth(key)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}
