//! `invoices`: every invoice with the inputs of its status (total, settled, pending, due
//! date, voided) and the per-client summary. Status itself is derived at query time from an
//! injected "today"; nothing here depends on the clock.

use portico_domain::Event;

use crate::db::Arg;
use crate::projector::{stmt, Envelope, Projector, Stmt, TableDef};

#[derive(Debug)]
pub struct Invoices;

const TABLES: &[TableDef] = &[
    TableDef {
        name: "invoices",
        columns: &[
            "invoice_id",
            "firm_id",
            "client_id",
            "project_id",
            "project_name",
            "number",
            "currency",
            "total_minor",
            "settled_minor",
            "pending_minor",
            "issued_on",
            "due_on",
            "voided",
            "issued_at",
        ],
        key: &["invoice_id"],
    },
    TableDef {
        name: "client_summary",
        columns: &[
            "firm_id",
            "client_id",
            "currency",
            "total_invoices",
            "unpaid_count",
            "unpaid_minor",
        ],
        key: &["firm_id", "client_id", "currency"],
    },
    TableDef {
        name: "invoice_projects",
        columns: &["project_id", "name"],
        key: &["project_id"],
    },
];

const DDL: &[&str] = &[
    "CREATE TABLE {invoices} (
        invoice_id TEXT PRIMARY KEY,
        firm_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        project_id TEXT NOT NULL,
        project_name TEXT NOT NULL,
        number TEXT NOT NULL,
        currency TEXT NOT NULL,
        total_minor BIGINT NOT NULL,
        settled_minor BIGINT NOT NULL,
        pending_minor BIGINT NOT NULL,
        issued_on TEXT NOT NULL,
        due_on TEXT NOT NULL,
        voided BIGINT NOT NULL,
        issued_at TEXT NOT NULL
    )",
    "CREATE INDEX {invoices}_client ON {invoices} (firm_id, client_id, currency)",
    "CREATE UNIQUE INDEX {invoices}_number ON {invoices} (firm_id, number)",
    "CREATE TABLE {client_summary} (
        firm_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        currency TEXT NOT NULL,
        total_invoices BIGINT NOT NULL,
        unpaid_count BIGINT NOT NULL,
        unpaid_minor BIGINT NOT NULL,
        PRIMARY KEY (firm_id, client_id, currency)
    )",
    "CREATE TABLE {invoice_projects} (
        project_id TEXT PRIMARY KEY,
        name TEXT NOT NULL
    )",
];

/// Recomputes the summary row of the client and currency of invoice `$1` from the
/// client's invoices: exact by construction, whatever the event was.
const REFRESH_SUMMARY: &str = "INSERT INTO {client_summary} \
        (firm_id, client_id, currency, total_invoices, unpaid_count, unpaid_minor) \
     SELECT i.firm_id, i.client_id, i.currency, \
        (SELECT COUNT(*) FROM {invoices} x WHERE x.firm_id = i.firm_id AND x.client_id = i.client_id \
            AND x.currency = i.currency AND x.voided = 0), \
        (SELECT COUNT(*) FROM {invoices} x WHERE x.firm_id = i.firm_id AND x.client_id = i.client_id \
            AND x.currency = i.currency AND x.voided = 0 AND x.total_minor > x.settled_minor), \
        (SELECT COALESCE(SUM(x.total_minor - x.settled_minor), 0) FROM {invoices} x \
            WHERE x.firm_id = i.firm_id AND x.client_id = i.client_id \
            AND x.currency = i.currency AND x.voided = 0) \
     FROM {invoices} i WHERE i.invoice_id = $1 \
     ON CONFLICT (firm_id, client_id, currency) DO UPDATE SET \
        total_invoices = excluded.total_invoices, \
        unpaid_count = excluded.unpaid_count, \
        unpaid_minor = excluded.unpaid_minor";

impl Projector for Invoices {
    fn name(&self) -> &'static str {
        "invoices"
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
        let refresh = |invoice: String| stmt(REFRESH_SUMMARY, vec![invoice.into()]);
        match e.event {
            Event::ProjectCreated {
                project_id, name, ..
            } => out.push(stmt(
                "INSERT INTO {invoice_projects} (project_id, name) VALUES ($1, $2)",
                vec![project_id.to_string().into(), name.as_str().into()],
            )),
            Event::InvoiceIssued {
                firm_id,
                client_id,
                project_id,
                invoice_id,
                number,
                issued_on,
                due_on,
                total,
            } => {
                out.push(stmt(
                    "INSERT INTO {invoices} (invoice_id, firm_id, client_id, project_id, project_name, number, \
                        currency, total_minor, settled_minor, pending_minor, issued_on, due_on, voided, issued_at) \
                     VALUES ($1, $2, $3, $4, COALESCE((SELECT name FROM {invoice_projects} WHERE project_id = $4), ''), \
                        $5, $6, $7, 0, 0, $8, $9, 0, $10)",
                    vec![
                        invoice_id.to_string().into(),
                        firm_id.to_string().into(),
                        client_id.to_string().into(),
                        project_id.to_string().into(),
                        number.as_str().into(),
                        total.currency().code().into(),
                        total.minor_units().into(),
                        issued_on.to_string().into(),
                        due_on.to_string().into(),
                        Arg::from(e.recorded_at),
                    ],
                ));
                out.push(refresh(invoice_id.to_string()));
            }
            Event::InvoiceVoided { invoice_id, .. } => {
                out.push(stmt(
                    "UPDATE {invoices} SET voided = 1 WHERE invoice_id = $1",
                    vec![invoice_id.to_string().into()],
                ));
                out.push(refresh(invoice_id.to_string()));
            }
            Event::PaymentSubmitted {
                invoice_id, amount, ..
            } => out.push(stmt(
                "UPDATE {invoices} SET pending_minor = pending_minor + $2 WHERE invoice_id = $1",
                vec![invoice_id.to_string().into(), amount.minor_units().into()],
            )),
            Event::PaymentSettled {
                invoice_id, amount, ..
            } => {
                out.push(stmt(
                    "UPDATE {invoices} SET pending_minor = pending_minor - $2, settled_minor = settled_minor + $2 \
                     WHERE invoice_id = $1",
                    vec![invoice_id.to_string().into(), amount.minor_units().into()],
                ));
                out.push(refresh(invoice_id.to_string()));
            }
            Event::PaymentFailed {
                invoice_id, amount, ..
            } => out.push(stmt(
                "UPDATE {invoices} SET pending_minor = pending_minor - $2 WHERE invoice_id = $1",
                vec![invoice_id.to_string().into(), amount.minor_units().into()],
            )),
            Event::PaymentRefunded {
                invoice_id, amount, ..
            } => {
                out.push(stmt(
                    "UPDATE {invoices} SET settled_minor = settled_minor - $2 WHERE invoice_id = $1",
                    vec![invoice_id.to_string().into(), amount.minor_units().into()],
                ));
                out.push(refresh(invoice_id.to_string()));
            }
            _ => {}
        }
    }
}
