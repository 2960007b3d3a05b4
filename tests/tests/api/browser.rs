//! The reference portal page in real Chromium, driven over WebDriver (Debian's `chromium`
//! and `chromium-driver`): every step is a click or a key press, as a client contact makes
//! it. Screenshots of each screen land in `target/portal-screenshots/`.
//!
//! Without Chromium the test prints why and skips; with `CI` set it fails instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, PASSWORD};
use crate::world::{world_of, World};

const WAIT: Duration = Duration::from_secs(20);

struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn tool(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn launch(shots: &str) -> Option<Browser> {
    let chromium = tool("PORTICO_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = tool("PORTICO_CHROMEDRIVER", "/usr/bin/chromedriver");
    if !chromium.exists() || !chromedriver.exists() {
        let reason = format!(
            "{} or {} is missing (apt-get install chromium chromium-driver)",
            chromium.display(),
            chromedriver.display()
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the browser test: {reason}"
        );
        eprintln!("skipping the browser test: {reason}");
        return None;
    }
    let port = free_port();
    let driver = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().unwrap();
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let client = loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => break client,
            Err(_) if started.elapsed() < WAIT => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("chromedriver never accepted a session: {e}"),
        }
    };
    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/portal-screenshots")
        .join(shots);
    std::fs::create_dir_all(&shots).unwrap();
    Some(Browser {
        client,
        driver,
        _profile: profile,
        shots,
    })
}

impl Browser {
    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for el in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(el.text().await.unwrap_or_default());
        }
        out
    }

    /// Waits until `check` holds for the texts of every `css` match.
    async fn until_texts(&self, css: &str, what: &str, check: impl Fn(&[String]) -> bool) {
        let started = Instant::now();
        loop {
            let texts = self.texts(css).await;
            if check(&texts) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "{what}: `{css}` still reads {texts:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }
}

async fn setup(app: &TestApp) -> World {
    let logo = app.url("/demo/logo.svg");
    let firm = app
        .new_firm_with("Harbor & Vale Advisory", &logo, "en-GB")
        .await;
    world_of(app, firm, "ann@northwind.example").await
}

/// en-GB's medium date: `3 Dec 2026`.
fn en_gb(date: chrono::NaiveDate) -> String {
    date.format("%-d %b %Y").to_string()
}

#[tokio::test]
async fn a_contact_activates_filters_the_team_pays_two_invoices_and_sees_a_decline() {
    let Some(browser) = launch("journey").await else {
        return;
    };
    let app = spawn_app().await;
    let w = setup(&app).await;
    let token = app.invite_token_for(&w.email);

    // Activation: logo, name, the invited email pre-filled and locked.
    browser.goto(&app.url(&format!("/invite/{token}"))).await;
    let username = browser.find("#username").await;
    assert_eq!(
        username.prop("value").await.unwrap().as_deref(),
        Some("ann@northwind.example")
    );
    assert!(username.attr("readonly").await.unwrap().is_some());
    assert_eq!(browser.text(".firm-name").await, "Harbor & Vale Advisory");
    assert!(browser
        .find(".card-brand img")
        .await
        .attr("src")
        .await
        .unwrap()
        .unwrap()
        .ends_with("/demo/logo.svg"));
    browser.shot("01-activation").await;

    // A weak password is refused by the server with a message the contact can act on.
    browser.type_into("#password", "aaaaaaaaaaaa").await;
    browser
        .type_into("#password-confirmation", "aaaaaaaaaaaa")
        .await;
    browser.click("#create-account").await;
    browser
        .until_texts(".alert", "weak password message", |t| {
            t.iter()
                .any(|m| m.contains("must not repeat one character"))
        })
        .await;
    browser.shot("02-activation-weak-password").await;

    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#password-confirmation", PASSWORD).await;
    browser.click("#create-account").await;

    // Dashboard: every unpaid invoice, the team of all projects.
    browser.find("#unpaid-invoices").await;
    assert_eq!(
        browser.path().await,
        "/dashboard",
        "the token left the address bar"
    );
    let numbers = browser.texts("#unpaid-invoices tbody th").await;
    let mut sorted = numbers.clone();
    sorted.sort();
    assert_eq!(sorted, ["INV-1", "INV-2", "INV-3", "INV-5"]);
    assert_eq!(
        browser.text("#tab-dashboard").await,
        "DASHBOARD",
        "the tabs are at the top"
    );
    assert_eq!(
        browser
            .find("#tab-dashboard")
            .await
            .attr("aria-current")
            .await
            .unwrap()
            .as_deref(),
        Some("page")
    );
    let inv1_row = format!(
        "#unpaid-invoices tr[data-invoice=\"{}\"]",
        w.invoices["INV-1"]
    );
    let row = browser.text(&inv1_row).await;
    assert!(
        row.contains("US$100.00"),
        "amount in the firm's locale: {row}"
    );
    let due = app.clock_now().date_naive() + chrono::Duration::days(20);
    assert!(
        row.contains(&en_gb(due)),
        "date in the firm's locale: {row}"
    );
    browser
        .until_texts("#team .member-name", "all jobs' team", |t| t.len() == 3)
        .await;
    browser.shot("03-dashboard").await;

    // Filter the team by project: Tax Advisory has Priya and Lena.
    browser
        .find("#project-filter")
        .await
        .select_by_label("Tax Advisory")
        .await
        .unwrap();
    browser
        .until_texts("#team .member-name", "Tax Advisory's team", |t| {
            let mut names = t.to_vec();
            names.sort();
            names == ["Lena Kim", "Priya Shah"]
        })
        .await;
    browser.shot("04-team-filtered").await;

    // PAY SELECTED on two invoices.
    browser
        .click(&format!("#select-{}", w.invoices["INV-1"]))
        .await;
    browser
        .click(&format!("#select-{}", w.invoices["INV-3"]))
        .await;
    assert_eq!(browser.text("#pay-selected").await, "PAY SELECTED (2)");
    browser.click("#pay-selected").await;

    // Wallet: both invoices, their amounts and the total; pay with the approving card.
    browser.find("#wallet-lines").await;
    assert!(browser.path().await.starts_with("/wallet/"));
    let mut lines = browser.texts("#wallet-lines tbody th").await;
    lines.sort();
    assert_eq!(lines, ["INV-1", "INV-3"]);
    assert_eq!(browser.text("#wallet-total").await, "US$400.00");
    browser.shot("05-wallet").await;
    browser.click("#method-tok_succeed").await;
    browser.click("#pay").await;
    browser
        .until_texts("#result-list .result-status", "both settle", |t| {
            t.len() == 2 && t.iter().all(|s| s == "Paid")
        })
        .await;
    browser.shot("06-wallet-paid").await;

    // Invoices: statuses and the summary reflect the payment.
    browser.click("#tab-invoices").await;
    browser.find("#all-invoices").await;
    let status_of = |number: &'static str| {
        format!(
            "#all-invoices tr[data-invoice=\"{}\"] .status",
            w.invoices[number]
        )
    };
    assert_eq!(browser.text(&status_of("INV-1")).await, "Paid");
    assert_eq!(browser.text(&status_of("INV-3")).await, "Paid");
    assert_eq!(browser.text(&status_of("INV-2")).await, "Past due");
    assert_eq!(browser.text(&status_of("INV-5")).await, "Open");
    assert_eq!(browser.text("#summary-total").await, "5");
    assert_eq!(browser.text("#summary-unpaid").await, "2");
    assert_eq!(browser.text("#summary-overdue").await, "1");
    assert_eq!(browser.text("#summary .unpaid-amount").await, "US$275.00");
    browser.shot("07-invoices").await;

    // PAY NOW on one invoice with a card the gateway declines.
    browser.click("#tab-dashboard").await;
    browser
        .click(&format!(
            "button.pay-now[data-invoice=\"{}\"]",
            w.invoices["INV-5"]
        ))
        .await;
    browser.find("#wallet-lines").await;
    assert_eq!(browser.text("#wallet-total").await, "US$75.00");
    browser.click("#method-tok_decline").await;
    browser.click("#pay").await;
    browser
        .until_texts("#result-list .result-status", "the decline", |t| {
            t == ["Declined"]
        })
        .await;
    browser.shot("08-wallet-declined").await;
    browser.click("#tab-invoices").await;
    browser.find("#all-invoices").await;
    assert_eq!(browser.text(&status_of("INV-5")).await, "Open");
    assert_eq!(browser.text("#summary-unpaid").await, "2");

    // A card that settles later: the Wallet shows it processing, the invoice is pending.
    browser.click("#tab-dashboard").await;
    browser
        .click(&format!(
            "button.pay-now[data-invoice=\"{}\"]",
            w.invoices["INV-2"]
        ))
        .await;
    browser.find("#wallet-lines").await;
    browser.click("#method-tok_settle_later").await;
    browser.click("#pay").await;
    browser
        .until_texts("#result-list .result-status", "the pending charge", |t| {
            t == ["Processing"]
        })
        .await;
    browser.click("#tab-invoices").await;
    browser.find("#all-invoices").await;
    assert_eq!(browser.text(&status_of("INV-2")).await, "Payment pending");
    browser.shot("09-invoices-pending").await;

    // Phone width: one column, nothing wider than the screen.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.click("#tab-dashboard").await;
    browser.find("#unpaid-invoices").await;
    let fits = browser
        .client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        fits,
        Value::Bool(true),
        "the dashboard overflows a phone screen"
    );
    browser.shot("10-dashboard-phone").await;
    browser.client.set_window_size(1280, 900).await.unwrap();

    // Log out, then log in again with the keyboard.
    browser.click("#logout").await;
    browser.find("#log-in").await;
    assert_eq!(browser.path().await, "/login");
    browser.shot("11-login").await;
    browser.type_into("#email", &w.email).await;
    browser
        .type_into("#password", &format!("{PASSWORD}\u{E007}"))
        .await;
    browser.find("#unpaid-invoices").await;

    // The invite link is single-use; the page says so.
    browser.goto(&app.url(&format!("/invite/{token}"))).await;
    let problem = browser.text("#invite-problem").await;
    assert!(problem.contains("already used"), "{problem}");
    browser.shot("12-invite-used").await;

    browser.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/login",
        "/dashboard",
        "/invoices",
        "/invite/abc",
        "/wallet/x",
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["referrer-policy"], "no-referrer");
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<script>") && html.contains("<script type=\"module\" src="),
            "no inline script"
        );
    }
    let js = app
        .http
        .get(app.url("/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
}
