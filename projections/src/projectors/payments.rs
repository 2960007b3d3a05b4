//! `payments`: every payment with its invoice, client, submission, amount, status
//! (submitted / settled / failed / refunded) and the time of each change — the history
//! auditors and the Wallet result page read.

use std::collections::HashMap;
use std::sync::Arc;

use portico_domain::ids::{ClientId, FirmId, InvoiceId, PaymentId, SubmissionId};
use portico_domain::Event;

use crate::db::Arg;
use crate::memory::{add, insert_new, sorted, Cell, Interner, MemoryFold, RowSink};
use crate::projector::{stmt, Envelope, Projector, Stmt, TableDef};

#[derive(Debug)]
pub struct Payments;

const TABLES: &[TableDef] = &[TableDef {
    name: "payments",
    columns: &[
        "payment_id",
        "firm_id",
        "client_id",
        "invoice_id",
        "submission_id",
        "currency",
        "amount_minor",
        "refunded_minor",
        "method",
        "status",
        "submitted_at",
        "settled_at",
        "failed_at",
        "failure_reason",
        "refunded_at",
        "actor",
    ],
    key: &["payment_id"],
}];

const DDL: &[&str] = &[
    "CREATE TABLE {payments} (
        payment_id TEXT PRIMARY KEY,
        firm_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        invoice_id TEXT NOT NULL,
        submission_id TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount_minor BIGINT NOT NULL,
        refunded_minor BIGINT NOT NULL,
        method TEXT NOT NULL,
        status TEXT NOT NULL,
        submitted_at TEXT NOT NULL,
        settled_at TEXT,
        failed_at TEXT,
        failure_reason TEXT,
        refunded_at TEXT,
        actor TEXT NOT NULL
    )",
    "CREATE INDEX {payments}_client ON {payments} (firm_id, client_id)",
    "CREATE INDEX {payments}_invoice ON {payments} (invoice_id)",
    "CREATE INDEX {payments}_submission ON {payments} (submission_id)",
];

impl Projector for Payments {
    fn name(&self) -> &'static str {
        "payments"
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
        Some(Box::<PaymentsMemory>::default())
    }

    fn apply(&self, e: &Envelope<'_>, out: &mut Vec<Stmt>) {
        let at = Arg::from(e.recorded_at);
        match e.event {
            Event::PaymentSubmitted {
                firm_id,
                invoice_id,
                client_id,
                payment_id,
                submission_id,
                amount,
                method,
            } => out.push(stmt(
                "INSERT INTO {payments} (payment_id, firm_id, client_id, invoice_id, submission_id, currency, \
                    amount_minor, refunded_minor, method, status, submitted_at, actor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, 'submitted', $9, $10)",
                vec![
                    payment_id.to_string().into(),
                    firm_id.to_string().into(),
                    client_id.to_string().into(),
                    invoice_id.to_string().into(),
                    submission_id.to_string().into(),
                    amount.currency().code().into(),
                    amount.minor_units().into(),
                    method.as_str().into(),
                    at,
                    e.metadata.actor.as_str().into(),
                ],
            )),
            Event::PaymentSettled { payment_id, .. } => out.push(stmt(
                "UPDATE {payments} SET status = 'settled', settled_at = $2 WHERE payment_id = $1",
                vec![payment_id.to_string().into(), at],
            )),
            Event::PaymentFailed {
                payment_id, reason, ..
            } => out.push(stmt(
                "UPDATE {payments} SET status = 'failed', failed_at = $2, failure_reason = $3 WHERE payment_id = $1",
                vec![payment_id.to_string().into(), at, reason.as_str().into()],
            )),
            Event::PaymentRefunded {
                payment_id, amount, ..
            } => out.push(stmt(
                "UPDATE {payments} SET refunded_minor = refunded_minor + $2, refunded_at = $3, \
                    status = CASE WHEN refunded_minor + $2 >= amount_minor THEN 'refunded' ELSE status END \
                 WHERE payment_id = $1",
                vec![payment_id.to_string().into(), amount.minor_units().into(), at],
            )),
            _ => {}
        }
    }
}

/// Payments, folded in memory for a rebuild (see [`crate::memory`]).
#[derive(Debug, Default)]
pub struct PaymentsMemory {
    payments: HashMap<PaymentId, Box<PaymentRow>>,
    shared: Interner,
}

#[derive(Debug)]
struct PaymentRow {
    firm_id: FirmId,
    client_id: ClientId,
    invoice_id: InvoiceId,
    submission_id: SubmissionId,
    currency: &'static str,
    amount_minor: i64,
    refunded_minor: i64,
    method: Arc<str>,
    status: &'static str,
    submitted_at: Box<str>,
    settled_at: Option<Box<str>>,
    failed_at: Option<Box<str>>,
    failure_reason: Option<Arc<str>>,
    refunded_at: Option<Box<str>>,
    actor: Arc<str>,
}

impl MemoryFold for PaymentsMemory {
    fn apply(&mut self, e: &Envelope<'_>) -> Result<(), String> {
        let at = || Some(Box::<str>::from(e.recorded_at));
        match e.event {
            Event::PaymentSubmitted {
                firm_id,
                invoice_id,
                client_id,
                payment_id,
                submission_id,
                amount,
                method,
            } => {
                let row = PaymentRow {
                    firm_id: *firm_id,
                    client_id: *client_id,
                    invoice_id: *invoice_id,
                    submission_id: *submission_id,
                    currency: amount.currency().code(),
                    amount_minor: amount.minor_units(),
                    refunded_minor: 0,
                    method: self.shared.get(method),
                    status: "submitted",
                    submitted_at: e.recorded_at.into(),
                    settled_at: None,
                    failed_at: None,
                    failure_reason: None,
                    refunded_at: None,
                    actor: self.shared.get(&e.metadata.actor),
                };
                insert_new(&mut self.payments, "payments", *payment_id, Box::new(row))?;
            }
            Event::PaymentSettled { payment_id, .. } => {
                if let Some(p) = self.payments.get_mut(payment_id) {
                    p.status = "settled";
                    p.settled_at = at();
                }
            }
            Event::PaymentFailed {
                payment_id, reason, ..
            } => {
                if let Some(p) = self.payments.get_mut(payment_id) {
                    p.status = "failed";
                    p.failed_at = at();
                    p.failure_reason = Some(self.shared.get(reason));
                }
            }
            Event::PaymentRefunded {
                payment_id, amount, ..
            } => {
                if let Some(p) = self.payments.get_mut(payment_id) {
                    add(&mut p.refunded_minor, amount.minor_units())?;
                    p.refunded_at = at();
                    if p.refunded_minor >= p.amount_minor {
                        p.status = "refunded";
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn rows(&self, table: &str, sink: &mut RowSink<'_>) -> Result<(), String> {
        if table != "payments" {
            return Err(format!("payments has no table {table}"));
        }
        sorted(&self.payments, sink, |id, p, sink| {
            sink(&[
                Cell::Id(id.as_uuid()),
                Cell::Id(p.firm_id.as_uuid()),
                Cell::Id(p.client_id.as_uuid()),
                Cell::Id(p.invoice_id.as_uuid()),
                Cell::Id(p.submission_id.as_uuid()),
                Cell::Text(p.currency),
                Cell::Int(p.amount_minor),
                Cell::Int(p.refunded_minor),
                Cell::Text(&p.method),
                Cell::Text(p.status),
                Cell::Text(&p.submitted_at),
                Cell::opt(p.settled_at.as_deref()),
                Cell::opt(p.failed_at.as_deref()),
                Cell::opt(p.failure_reason.as_deref()),
                Cell::opt(p.refunded_at.as_deref()),
                Cell::Text(&p.actor),
            ])
        })
    }
}
