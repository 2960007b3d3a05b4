//! Invite links (single use, expiry, revocation, re-sending), login and its backoff,
//! sessions (cookie + CSRF, expiry, rotation).

use chrono::Duration;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, json_ok, TestApp, PASSWORD};
use crate::world::world;

async fn accept(app: &TestApp, token: &str) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!("/v1/portal/invites/{token}/accept"),
        None,
        Some(json!({ "password": PASSWORD, "password_confirmation": PASSWORD })),
    )
    .await
}

async fn lookup(app: &TestApp, token: &str) -> reqwest::Response {
    app.request(
        Method::GET,
        &format!("/v1/portal/invites/{token}"),
        None,
        None,
    )
    .await
}

async fn contact_id(app: &TestApp, key: &str, email: &str) -> String {
    let list = json_ok(app.get("/v1/firm/contacts", key).await, 200).await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["email"] == email)
        .unwrap()["contact_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn used_expired_revoked_and_replaced_invite_links_are_gone(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let contact = contact_id(&app, &w.firm.key, &w.email).await;

    // Replaced: re-sending kills the old link.
    let old = app.invite_token_for(&w.email);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    json_ok(
        app.post(
            &format!("/v1/firm/contacts/{contact}/invite"),
            &w.firm.key,
            json!({}),
        )
        .await,
        201,
    )
    .await;
    let new = app.invite_token_for(&w.email);
    assert_ne!(old, new);
    let body = assert_problem(lookup(&app, &old).await, 410, "invite-gone").await;
    assert_eq!(body["reason"], "superseded");

    // Revoked.
    json_ok(
        app.request(
            Method::DELETE,
            &format!("/v1/firm/contacts/{contact}/invite"),
            Some(&w.firm.key),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        assert_problem(accept(&app, &new).await, 410, "invite-gone").await["reason"],
        "revoked"
    );

    // Expired: 7 days later.
    json_ok(
        app.post(
            &format!("/v1/firm/contacts/{contact}/invite"),
            &w.firm.key,
            json!({}),
        )
        .await,
        201,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let fresh = app.invite_token_for(&w.email);
    app.clock.advance(Duration::days(7) + Duration::seconds(1));
    assert_eq!(
        assert_problem(lookup(&app, &fresh).await, 410, "invite-gone").await["reason"],
        "expired"
    );
    app.clock
        .advance(-(Duration::days(7) + Duration::seconds(1)));

    // Used: the second acceptance fails.
    json_ok(accept(&app, &fresh).await, 201).await;
    assert_eq!(
        assert_problem(accept(&app, &fresh).await, 410, "invite-gone").await["reason"],
        "used"
    );
    assert_eq!(
        assert_problem(lookup(&app, &fresh).await, 410, "invite-gone").await["reason"],
        "used"
    );

    // Unknown or malformed tokens: 404.
    assert_problem(lookup(&app, &"a".repeat(64)).await, 404, "not-found").await;
    assert_problem(lookup(&app, "short").await, 404, "not-found").await;
}

async fn weak_or_mismatched_passwords_are_refused_and_the_link_still_works(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let token = app.invite_token_for(&w.email);
    for (password, confirmation) in [
        ("short", "short"),
        ("long enough but", "different value"),
        (&*"z".repeat(20), &*"z".repeat(20)),
    ] {
        let r = app
            .request(
                Method::POST,
                &format!("/v1/portal/invites/{token}/accept"),
                None,
                Some(json!({ "password": password, "password_confirmation": confirmation })),
            )
            .await;
        assert_problem(r, 422, "validation").await;
    }
    json_ok(accept(&app, &token).await, 201).await;
}

async fn repeated_wrong_passwords_back_off_with_one_generic_message(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let mut details = Vec::new();
    for _ in 0..5 {
        let body = assert_problem(
            app.login(&s.firm_id, &w.email, "wrong password!!").await,
            401,
            "login-failed",
        )
        .await;
        details.push(body["detail"].clone());
    }
    // An unknown email gets the very same answer.
    let unknown = assert_problem(
        app.login(&s.firm_id, "nobody@client.example", "wrong password!!")
            .await,
        401,
        "login-failed",
    )
    .await;
    assert_eq!(unknown["detail"], details[0]);
    // Now even the right password waits.
    let r = app.login(&s.firm_id, &w.email, PASSWORD).await;
    assert!(r.headers().get("retry-after").is_some());
    assert_problem(r, 429, "login-backoff").await;
    // After the lock, the right password works and clears the count.
    app.clock.advance(Duration::seconds(2));
    let ok = json_ok(app.login(&s.firm_id, &w.email, PASSWORD).await, 201).await;
    assert_ne!(
        ok["session"]["token"],
        Value::from(s.token.clone()),
        "login mints a new session token"
    );
    assert_problem(
        app.login(&s.firm_id, &w.email, "wrong password!!").await,
        401,
        "login-failed",
    )
    .await;
}

async fn cookie_sessions_need_the_csrf_token_to_write_and_expire_when_idle(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let token = app.invite_token_for(&w.email);
    let r = accept(&app, &token).await;
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    let body: Value = r.json().await.unwrap();
    let csrf = body["session"]["csrf_token"].as_str().unwrap().to_owned();
    let jar = cookie.split(';').next().unwrap().to_owned();

    let read = app
        .http
        .get(app.url(&format!("/v1/portal/dashboard?min_position={}", w.position)))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let checkout = |with_csrf: bool| {
        let mut req = app
            .http
            .post(app.url("/v1/portal/checkouts"))
            .header("cookie", &jar)
            .json(&json!({ "invoice_ids": [w.invoices["INV-1"]] }));
        if with_csrf {
            req = req.header("x-csrf-token", &csrf);
        }
        req.send()
    };
    assert_problem(checkout(false).await.unwrap(), 403, "csrf").await;
    assert_eq!(checkout(true).await.unwrap().status(), 201);

    // A reloaded page reads the CSRF token of its cookie's session (never the token).
    let current = app
        .http
        .get(app.url("/v1/portal/sessions/current"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    let current = json_ok(current, 200).await;
    assert_eq!(current["csrf_token"], csrf);
    assert_eq!(current["email"], "ann@client.example");
    assert_eq!(current["name"], "Ann Lee");
    assert!(current.get("token").is_none());
    assert!(!current.to_string().contains(jar.split('=').nth(1).unwrap()));
    let anonymous = app
        .http
        .get(app.url("/v1/portal/sessions/current"))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthorized").await;

    // Idle for longer than 30 minutes: the session is over.
    app.clock.advance(Duration::minutes(31));
    let stale = app
        .http
        .get(app.url("/v1/portal/dashboard"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_problem(stale, 401, "unauthorized").await;
}

async fn a_firms_login_page_shows_its_name_logo_and_locale_and_nothing_else(app: TestApp) {
    let firm = app
        .new_firm_with("Brandt & Co", "https://cdn.example.com/brandt.png", "de-CH")
        .await;
    let w = crate::world::world_of(&app, firm, "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let brand = json_ok(
        app.request(
            Method::GET,
            &format!("/v1/portal/firms/{}", s.firm_id),
            None,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        brand,
        json!({ "name": "Brandt & Co", "logo_url": "https://cdn.example.com/brandt.png", "locale": "de-CH" })
    );
    let unknown = app
        .request(
            Method::GET,
            &format!("/v1/portal/firms/{}", uuid::Uuid::now_v7()),
            None,
            None,
        )
        .await;
    assert_problem(unknown, 404, "not-found").await;
    let garbage = app
        .request(Method::GET, "/v1/portal/firms/not-an-id", None, None)
        .await;
    assert!(garbage.status() == 404 || garbage.status() == 422);
}

/// Session fixation: a session token planted before login (chosen by an attacker, or left
/// over from an earlier session) never becomes the logged-in session.
async fn a_token_planted_before_login_is_useless_after_it(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let earlier = app.activate(&w.email).await;
    let planted = "ab".repeat(32);
    for presented in [planted.as_str(), earlier.token.as_str()] {
        let r = app
            .http
            .post(app.url("/v1/portal/sessions"))
            .header("cookie", format!("portico_session={presented}"))
            .json(&json!({ "firm_id": earlier.firm_id, "email": w.email, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        let body = json_ok(r, 201).await;
        let fresh = body["session"]["token"].as_str().unwrap();
        assert_ne!(fresh, presented, "login must mint a new token");
        assert!(cookie.contains(fresh) && !cookie.contains(presented));
    }
    let planted_use = app.get("/v1/portal/dashboard", &planted).await;
    assert_problem(planted_use, 401, "unauthorized").await;
}

async fn changing_the_password_ends_every_other_session(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let second = json_ok(app.login(&s.firm_id, &w.email, PASSWORD).await, 201).await;
    let second = second["session"]["token"].as_str().unwrap().to_owned();
    let changed = json_ok(
        app.post(
            "/v1/portal/password",
            &s.token,
            json!({ "current_password": PASSWORD, "new_password": "an even longer pass phrase" }),
        )
        .await,
        201,
    )
    .await;
    let new_token = changed["session"]["token"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/portal/dashboard", &s.token).await.status(),
        401
    );
    assert_eq!(app.get("/v1/portal/dashboard", &second).await.status(), 401);
    assert_eq!(
        app.get("/v1/portal/dashboard", new_token).await.status(),
        200
    );
    assert_problem(
        app.login(&s.firm_id, &w.email, PASSWORD).await,
        401,
        "login-failed",
    )
    .await;
    json_ok(
        app.login(&s.firm_id, &w.email, "an even longer pass phrase")
            .await,
        201,
    )
    .await;
}

async fn a_deactivated_contact_is_logged_out_and_cannot_log_in(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let contact = contact_id(&app, &w.firm.key, &w.email).await;
    let off = json_ok(
        app.post(
            &format!("/v1/firm/contacts/{contact}/deactivate"),
            &w.firm.key,
            json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        app.get("/v1/portal/dashboard", &s.token).await.status(),
        401
    );
    // Login goes through the read model: wait for it to see the deactivation.
    json_ok(
        app.get(
            &format!(
                "/v1/firm/contacts/{contact}?min_position={}",
                off["position"]
            ),
            &w.firm.key,
        )
        .await,
        200,
    )
    .await;
    assert_problem(
        app.login(&s.firm_id, &w.email, PASSWORD).await,
        401,
        "login-failed",
    )
    .await;
}

crate::on_both_backends!(
    used_expired_revoked_and_replaced_invite_links_are_gone,
    weak_or_mismatched_passwords_are_refused_and_the_link_still_works,
    repeated_wrong_passwords_back_off_with_one_generic_message,
    cookie_sessions_need_the_csrf_token_to_write_and_expire_when_idle,
    changing_the_password_ends_every_other_session,
    a_token_planted_before_login_is_useless_after_it,
    a_firms_login_page_shows_its_name_logo_and_locale_and_nothing_else,
    a_deactivated_contact_is_logged_out_and_cannot_log_in,
);
