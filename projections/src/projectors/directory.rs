//! `directory`: firms (profile, logo, time zone), clients, and contacts with their invite
//! and account state — what the invite page, the login lookup and the dashboard header read.

use std::collections::HashMap;

use portico_domain::ids::{ClientId, ContactId, FirmId, InviteId};
use portico_domain::Event;

use crate::db::Arg;
use crate::memory::{insert_new, sorted, Cell, MemoryFold, RowSink};
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

    fn memory(&self) -> Option<Box<dyn MemoryFold>> {
        Some(Box::<DirectoryMemory>::default())
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

/// The directory's rows, folded in memory for a rebuild (see [`crate::memory`]).
#[derive(Debug, Default)]
pub struct DirectoryMemory {
    firms: HashMap<FirmId, FirmRow>,
    clients: HashMap<ClientId, ClientRow>,
    contacts: HashMap<ContactId, Box<ContactRow>>,
}

#[derive(Debug)]
struct FirmRow {
    name: Box<str>,
    logo_url: Option<Box<str>>,
    time_zone: Box<str>,
    locale: Box<str>,
    registered_at: Box<str>,
}

#[derive(Debug)]
struct ClientRow {
    firm_id: FirmId,
    name: Box<str>,
    added_at: Box<str>,
}

#[derive(Debug)]
struct ContactRow {
    firm_id: FirmId,
    client_id: ClientId,
    name: Box<str>,
    email: Box<str>,
    invite_id: Option<InviteId>,
    invite_expires_at: Option<Box<str>>,
    invite_state: &'static str,
    invited_at: Option<Box<str>>,
    has_account: bool,
    activated_at: Option<Box<str>>,
    password_changed_at: Option<Box<str>>,
    active: bool,
}

impl MemoryFold for DirectoryMemory {
    fn apply(&mut self, e: &Envelope<'_>) -> Result<(), String> {
        let at = || Box::<str>::from(e.recorded_at);
        match e.event {
            Event::FirmRegistered {
                firm_id,
                name,
                logo_url,
                time_zone,
                locale,
            } => {
                let row = FirmRow {
                    name: name.as_str().into(),
                    logo_url: logo_url.as_ref().map(|u| u.to_string().into()),
                    time_zone: time_zone.name().into(),
                    locale: locale.as_str().into(),
                    registered_at: at(),
                };
                insert_new(&mut self.firms, "firms", *firm_id, row)?;
            }
            Event::FirmProfileUpdated {
                firm_id,
                name,
                logo_url,
            } => {
                if let Some(f) = self.firms.get_mut(firm_id) {
                    f.name = name.as_str().into();
                    f.logo_url = logo_url.as_ref().map(|u| u.to_string().into());
                }
            }
            Event::ClientAdded {
                firm_id,
                client_id,
                name,
            } => {
                let row = ClientRow {
                    firm_id: *firm_id,
                    name: name.as_str().into(),
                    added_at: at(),
                };
                insert_new(&mut self.clients, "clients", *client_id, row)?;
            }
            Event::ContactAdded {
                firm_id,
                client_id,
                contact_id,
                name,
                email,
            } => {
                let row = ContactRow {
                    firm_id: *firm_id,
                    client_id: *client_id,
                    name: name.as_str().into(),
                    email: email.as_str().into(),
                    invite_id: None,
                    invite_expires_at: None,
                    invite_state: "none",
                    invited_at: None,
                    has_account: false,
                    activated_at: None,
                    password_changed_at: None,
                    active: true,
                };
                insert_new(&mut self.contacts, "contacts", *contact_id, Box::new(row))?;
            }
            Event::InviteSent {
                contact_id,
                invite_id,
                expires_at,
            } => {
                if let Some(c) = self.contacts.get_mut(contact_id) {
                    c.invite_id = Some(*invite_id);
                    c.invite_expires_at =
                        Some(portico_store::hash::format_instant(*expires_at).into());
                    c.invite_state = "pending";
                    c.invited_at = Some(at());
                }
            }
            Event::InviteRevoked {
                contact_id,
                invite_id,
            } => {
                if let Some(c) = self.contacts.get_mut(contact_id) {
                    if c.invite_id == Some(*invite_id) {
                        c.invite_state = "revoked";
                    }
                }
            }
            Event::AccountCreated { contact_id, .. } => {
                if let Some(c) = self.contacts.get_mut(contact_id) {
                    c.has_account = true;
                    c.invite_state = "used";
                    c.activated_at = Some(at());
                }
            }
            Event::PasswordChanged { contact_id } => {
                if let Some(c) = self.contacts.get_mut(contact_id) {
                    c.password_changed_at = Some(at());
                }
            }
            Event::ContactDeactivated { contact_id } => {
                if let Some(c) = self.contacts.get_mut(contact_id) {
                    c.active = false;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn rows(&self, table: &str, sink: &mut RowSink<'_>) -> Result<(), String> {
        match table {
            "firms" => sorted(&self.firms, sink, |id, f, sink| {
                sink(&[
                    Cell::Id(id.as_uuid()),
                    Cell::Text(&f.name),
                    Cell::opt(f.logo_url.as_deref()),
                    Cell::Text(&f.time_zone),
                    Cell::Text(&f.locale),
                    Cell::Text(&f.registered_at),
                ])
            }),
            "clients" => sorted(&self.clients, sink, |id, c, sink| {
                sink(&[
                    Cell::Id(id.as_uuid()),
                    Cell::Id(c.firm_id.as_uuid()),
                    Cell::Text(&c.name),
                    Cell::Text(&c.added_at),
                ])
            }),
            "contacts" => sorted(&self.contacts, sink, |id, c, sink| {
                sink(&[
                    Cell::Id(id.as_uuid()),
                    Cell::Id(c.firm_id.as_uuid()),
                    Cell::Id(c.client_id.as_uuid()),
                    Cell::Text(&c.name),
                    Cell::Text(&c.email),
                    c.invite_id.map_or(Cell::Null, |i| Cell::Id(i.as_uuid())),
                    Cell::opt(c.invite_expires_at.as_deref()),
                    Cell::Text(c.invite_state),
                    Cell::opt(c.invited_at.as_deref()),
                    c.has_account.into(),
                    Cell::opt(c.activated_at.as_deref()),
                    Cell::opt(c.password_changed_at.as_deref()),
                    c.active.into(),
                ])
            }),
            other => Err(format!("directory has no table {other}")),
        }
    }
}
