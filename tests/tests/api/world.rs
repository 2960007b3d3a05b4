//! A firm with one client, a contact, two projects with a team, and five invoices, built
//! through the firm API.

use std::collections::BTreeMap;

use chrono::Duration;
use serde_json::{json, Value};

use crate::helpers::{json_ok, FirmKey, TestApp};

pub struct World {
    pub firm: FirmKey,
    pub client: String,
    pub email: String,
    pub projects: [String; 2],
    /// Partner (both projects), Senior (first), Manager (second).
    pub members: [String; 3],
    /// INV-1 open, INV-2 past due, INV-3 open (second project), INV-4 paid, INV-5 open.
    pub invoices: BTreeMap<&'static str, String>,
    pub position: i64,
}

pub async fn created(app: &TestApp, key: &str, path: &str, body: Value) -> (String, i64) {
    let v = json_ok(app.post(path, key, body).await, 201).await;
    (
        v["id"].as_str().unwrap().to_owned(),
        v["position"].as_i64().unwrap(),
    )
}

pub async fn world(app: &TestApp, firm_name: &str, email: &str) -> World {
    world_of(app, app.new_firm(firm_name).await, email).await
}

/// The same world for a firm registered by the caller.
pub async fn world_of(app: &TestApp, firm: FirmKey, email: &str) -> World {
    let key = firm.key.clone();
    let (client, _) = created(
        app,
        &key,
        "/v1/firm/clients",
        json!({ "name": "Northwind Traders" }),
    )
    .await;
    let (_, contact_position) = created(
        app,
        &key,
        &format!("/v1/firm/clients/{client}/contacts"),
        json!({ "name": "Ann Lee", "email": email }),
    )
    .await;
    let (p1, _) = created(
        app,
        &key,
        "/v1/firm/projects",
        json!({ "client_id": client, "name": "2026 Audit" }),
    )
    .await;
    let (p2, _) = created(
        app,
        &key,
        "/v1/firm/projects",
        json!({ "client_id": client, "name": "Tax Advisory" }),
    )
    .await;
    let member =
        |name: &str, role: &str, email: &str| json!({ "name": name, "role": role, "email": email });
    let (partner, _) = created(
        app,
        &key,
        &format!("/v1/firm/projects/{p1}/team"),
        member("Priya Shah", "Partner", "priya@firm.example"),
    )
    .await;
    let mut again = member("Priya Shah", "Partner", "priya@firm.example");
    again["member_id"] = json!(partner);
    created(app, &key, &format!("/v1/firm/projects/{p2}/team"), again).await;
    let (senior, _) = created(
        app,
        &key,
        &format!("/v1/firm/projects/{p1}/team"),
        member("Marco Diaz", "Audit Senior", "marco@firm.example"),
    )
    .await;
    let (manager, _) = created(
        app,
        &key,
        &format!("/v1/firm/projects/{p2}/team"),
        member("Lena Kim", "Tax Manager", "lena@firm.example"),
    )
    .await;

    let today = app.clock_now().date_naive();
    let day = |d: i64| (today + Duration::days(d)).to_string();
    let mut invoices = BTreeMap::new();
    let mut position = 0;
    for (number, project, issued, due, total) in [
        ("INV-1", &p1, -3, 20, "100.00"),
        ("INV-2", &p1, -30, -1, "200.00"),
        ("INV-3", &p2, -2, 10, "300.00"),
        ("INV-4", &p2, -40, -10, "50.00"),
        ("INV-5", &p1, -1, 5, "75.00"),
    ] {
        let (id, pos) = created(
            app,
            &key,
            "/v1/firm/invoices",
            json!({ "client_id": client, "project_id": project, "number": number,
                    "issued_on": day(issued), "due_on": day(due), "currency": "USD", "total": total }),
        )
        .await;
        invoices.insert(number, id);
        position = pos;
    }
    let (_, pos) = created(
        app,
        &key,
        &format!("/v1/firm/invoices/{}/payments", invoices["INV-4"]),
        json!({ "amount": "50.00", "currency": "USD" }),
    )
    .await;
    position = position.max(pos);
    let contact_list = json_ok(
        app.get(
            &format!("/v1/firm/contacts?min_position={contact_position}"),
            &key,
        )
        .await,
        200,
    )
    .await;
    let contact = contact_list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["email"] == email)
        .unwrap()["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent = json_ok(
        app.post(
            &format!("/v1/firm/contacts/{contact}/invite"),
            &key,
            json!({}),
        )
        .await,
        201,
    )
    .await;
    position = position.max(sent["position"].as_i64().unwrap());
    World {
        firm,
        client,
        email: email.to_owned(),
        projects: [p1, p2],
        members: [partner, senior, manager],
        invoices,
        position,
    }
}
