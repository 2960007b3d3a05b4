//! `directory`: firms (profile, logo, time zone), clients, and contacts with their invite
//! and account state — what the invite page, the login lookup and the dashboard header read.

use portico_domain::Event;

use crate::db::Arg;
use crate::projector::{stmt, Envelope, Projector, Stmt, TableDef};

#[derive(Debug)]
pub struct Directory;

const TABLES: &[TableDef] = &[
    TableDef {
        name: "firms",
        columns: &[
            "firm_id",
            "name",
            "logo_url",
            "time_zone",
            "locale",
            "registered_at",
        ],
        key: &["firm_id"],
    },
    TableDef {
        name: "clients",
        columns: &["client_id", "firm_id", "name", "added_at"],
        key: &["client_id"],
    },
    TableDef {
        name: "contacts",
        columns: &[
            "contact_id",
            "firm_id",
            "client_id",
            "name",
            "email",
            "invite_id",
            "invite_expires_at",
            "invite_state",
            "invited_at",
            "has_account",
            "activated_at",
            "password_changed_at",
            "active",
        ],
        key: &["contact_id"],
    },
];

const DDL: &[&str] = &[
    "CREATE TABLE {firms} (
        firm_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        logo_url TEXT,
        time_zone TEXT NOT NULL,
        locale TEXT NOT NULL,
        registered_at TEXT NOT NULL
    )",
    "CREATE TABLE {clients} (
        client_id TEXT PRIMARY KEY,
        firm_id TEXT NOT NULL,
        name TEXT NOT NULL,
        added_at TEXT NOT NULL
    )",
    "CREATE INDEX {clients}_firm ON {clients} (firm_id)",
    "CREATE TABLE {contacts} (
        contact_id TEXT PRIMARY KEY,
        firm_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        invite_id TEXT,
        invite_expires_at TEXT,
        invite_state TEXT NOT NULL,
        invited_at TEXT,
        has_account BIGINT NOT NULL,
        activated_at TEXT,
        password_changed_at TEXT,
        active BIGINT NOT NULL
    )",
    "CREATE UNIQUE INDEX {contacts}_email ON {contacts} (firm_id, email)",
    "CREATE INDEX {contacts}_login ON {contacts} (email)",
    "CREATE INDEX {contacts}_client ON {contacts} (firm_id, client_id)",
];

impl Projector for Directory {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [TableDef] {
        TABLES
    }

    fn ddl(&self) -> &'static [&'static str] {
        DDL
    }

    fn apply(&self, e: &Envelope<'_>, out: &mut Vec<Stmt>) {
        let at = Arg::from(e.recorded_at);
        match e.event {
            Event::FirmRegistered {
                firm_id,
                name,
                logo_url,
                time_zone,
                locale,
            } => out.push(stmt(
                "INSERT INTO {firms} (firm_id, name, logo_url, time_zone, locale, registered_at) VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    firm_id.to_string().into(),
                    name.as_str().into(),
                    logo_url.as_ref().map(|u| u.to_string()).into(),
                    time_zone.name().into(),
                    locale.as_str().into(),
                    at,
                ],
            )),
            Event::FirmProfileUpdated {
                firm_id,
                name,
                logo_url,
            } => out.push(stmt(
                "UPDATE {firms} SET name = $2, logo_url = $3 WHERE firm_id = $1",
                vec![
                    firm_id.to_string().into(),
                    name.as_str().into(),
                    logo_url.as_ref().map(|u| u.to_string()).into(),
                ],
            )),
            Event::ClientAdded {
                firm_id,
                client_id,
                name,
            } => out.push(stmt(
                "INSERT INTO {clients} (client_id, firm_id, name, added_at) VALUES ($1, $2, $3, $4)",
                vec![client_id.to_string().into(), firm_id.to_string().into(), name.as_str().into(), at],
            )),
            Event::ContactAdded {
                firm_id,
                client_id,
                contact_id,
                name,
                email,
            } => out.push(stmt(
                "INSERT INTO {contacts} (contact_id, firm_id, client_id, name, email, invite_state, has_account, active) \
                 VALUES ($1, $2, $3, $4, $5, 'none', 0, 1)",
                vec![
                    contact_id.to_string().into(),
                    firm_id.to_string().into(),
                    client_id.to_string().into(),
                    name.as_str().into(),
                    email.as_str().into(),
                ],
            )),
            Event::InviteSent {
                contact_id,
                invite_id,
                expires_at,
            } => out.push(stmt(
                "UPDATE {contacts} SET invite_id = $2, invite_expires_at = $3, invite_state = 'pending', invited_at = $4 \
                 WHERE contact_id = $1",
                vec![
                    contact_id.to_string().into(),
                    invite_id.to_string().into(),
                    portico_store::hash::format_instant(*expires_at).into(),
                    at,
                ],
            )),
            Event::InviteRevoked {
                contact_id,
                invite_id,
            } => out.push(stmt(
                "UPDATE {contacts} SET invite_state = 'revoked' WHERE contact_id = $1 AND invite_id = $2",
                vec![contact_id.to_string().into(), invite_id.to_string().into()],
            )),
            Event::AccountCreated { contact_id, .. } => out.push(stmt(
                "UPDATE {contacts} SET has_account = 1, invite_state = 'used', activated_at = $2 WHERE contact_id = $1",
                vec![contact_id.to_string().into(), at],
            )),
            Event::PasswordChanged { contact_id } => out.push(stmt(
                "UPDATE {contacts} SET password_changed_at = $2 WHERE contact_id = $1",
                vec![contact_id.to_string().into(), at],
            )),
            Event::ContactDeactivated { contact_id } => out.push(stmt(
                "UPDATE {contacts} SET active = 0 WHERE contact_id = $1",
                vec![contact_id.to_string().into()],
            )),
            _ => {}
        }
    }
}
