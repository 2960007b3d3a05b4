//! PAY NOW and PAY SELECTED: one submission pays one or more invoices of one client in
//! one currency. It yields one `PaymentSubmitted` per invoice, each for its own stream,
//! which the store appends atomically, every invoice stream at the version that was
//! decided on. A racing submission on any of the same invoices therefore conflicts, is
//! re-decided on fresh state, and is refused with the list of invoices at stake.

use std::collections::HashSet;

use crate::aggregate::Scope;
use crate::error::{DomainError, DomainResult, InvoiceRejection};
use crate::events::Event;
use crate::ids::{PaymentId, SubmissionId};
use crate::invoice::Invoice;
use crate::money::Money;
use crate::values::InvalidValue;

/// One invoice of a submission, with the amount to pay on it.
#[derive(Debug, Clone, Copy)]
pub struct PaymentLine<'a> {
    pub invoice: &'a Invoice,
    pub payment_id: PaymentId,
    pub amount: Money,
}

/// Decides a submission: all lines are accepted, or none.
pub fn submit(
    scope: &Scope,
    submission_id: SubmissionId,
    method: &str,
    lines: &[PaymentLine<'_>],
) -> DomainResult<Vec<Event>> {
    if method.is_empty()
        || method.len() > 32
        || !method
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
    {
        return Err(DomainError::Invalid(InvalidValue {
            field: "method",
            reason: "must be a short lowercase payment method name such as \"card\"",
        }));
    }
    if lines.is_empty() {
        return Err(DomainError::EmptySubmission);
    }
    let mut seen = HashSet::new();
    let mut issued = Vec::with_capacity(lines.len());
    for line in lines {
        // Tenant first: an invoice outside the scope is "not found", never "rejected".
        let invoice = line.invoice.require_in(scope)?;
        if !seen.insert(invoice.id) {
            return Err(DomainError::DuplicateInvoiceInSubmission(invoice.id));
        }
        issued.push(invoice);
    }
    let currency = lines[0].amount.currency();
    if lines.iter().any(|l| l.amount.currency() != currency) {
        return Err(DomainError::MixedCurrencies);
    }
    let rejections: Vec<InvoiceRejection> = lines
        .iter()
        .zip(&issued)
        .filter_map(|(line, invoice)| {
            line.invoice
                .check_payment(&line.amount)
                .err()
                .map(|problem| InvoiceRejection {
                    invoice_id: invoice.id,
                    problem,
                })
        })
        .collect();
    if !rejections.is_empty() {
        return Err(DomainError::SubmissionRejected(rejections));
    }
    Ok(lines
        .iter()
        .zip(issued)
        .map(|(line, invoice)| Event::PaymentSubmitted {
            firm_id: invoice.firm_id,
            invoice_id: invoice.id,
            client_id: invoice.client_id,
            payment_id: line.payment_id,
            submission_id,
            amount: line.amount,
            method: method.to_owned(),
        })
        .collect())
}
