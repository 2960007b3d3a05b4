//! The invoice aggregate (`invoice-{id}`): issue, void, and the life of each payment
//! (submitted → settled | failed; settled → refunded in part or whole).
//!
//! Money rules: `balance = total − settled + refunded`; a new payment may take at most
//! `balance − pending`, so settled plus pending never exceeds the total. Status is derived
//! from the balance and an injected "today", never stored.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::aggregate::{Aggregate, Scope};
use crate::error::{DomainError, DomainResult, Entity, PaymentProblem};
use crate::events::Event;
use crate::firm::Firm;
use crate::ids::{ClientId, FirmId, InvoiceId, PaymentId, ProjectId, SubmissionId};
use crate::money::{Currency, Money};
use crate::project::Project;
use crate::values::InvoiceNumber;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Submitted,
    Settled,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub submission_id: SubmissionId,
    pub amount: Money,
    pub status: PaymentStatus,
    /// Refunded so far out of a settled payment.
    pub refunded: Money,
}

/// What the portal shows. `Void` invoices are not listed to contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStatus {
    Open,
    PastDue,
    Paid,
    Void,
}

#[derive(Debug, Clone)]
pub struct IssueInvoice {
    pub invoice_id: InvoiceId,
    pub client_id: ClientId,
    pub project_id: ProjectId,
    pub number: InvoiceNumber,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
    pub total: Money,
}

/// The facts of an issued invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub id: InvoiceId,
    pub firm_id: FirmId,
    pub client_id: ClientId,
    pub project_id: ProjectId,
    pub number: InvoiceNumber,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
    pub total: Money,
}

#[derive(Debug, Clone, Default)]
pub struct Invoice {
    pub issued: Option<Issued>,
    pub voided: bool,
    pub payments: BTreeMap<PaymentId, Payment>,
}

impl Aggregate for Invoice {
    fn apply(&mut self, event: &Event) {
        match event {
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
                self.issued = Some(Issued {
                    id: *invoice_id,
                    firm_id: *firm_id,
                    client_id: *client_id,
                    project_id: *project_id,
                    number: number.clone(),
                    issued_on: *issued_on,
                    due_on: *due_on,
                    total: *total,
                });
            }
            Event::InvoiceVoided { .. } => self.voided = true,
            Event::PaymentSubmitted {
                payment_id,
                submission_id,
                amount,
                ..
            } => {
                self.payments.insert(
                    *payment_id,
                    Payment {
                        submission_id: *submission_id,
                        amount: *amount,
                        status: PaymentStatus::Submitted,
                        refunded: Money::zero(amount.currency()),
                    },
                );
            }
            Event::PaymentSettled { payment_id, .. } => {
                self.set_status(payment_id, PaymentStatus::Settled)
            }
            Event::PaymentFailed { payment_id, .. } => {
                self.set_status(payment_id, PaymentStatus::Failed)
            }
            Event::PaymentRefunded {
                payment_id, amount, ..
            } => {
                if let Some(p) = self.payments.get_mut(payment_id) {
                    p.refunded = p.refunded.checked_add(amount).unwrap_or(p.refunded);
                }
            }
            _ => {}
        }
    }
}

impl Invoice {
    fn set_status(&mut self, payment_id: &PaymentId, status: PaymentStatus) {
        if let Some(p) = self.payments.get_mut(payment_id) {
            p.status = status;
        }
    }

    /// Issues the invoice. The number is reserved in its own reservation stream in the same
    /// append (`firm` must be folded from the firm stream and that stream),
    /// which keeps invoice numbers unique per firm.
    pub fn issue(
        &self,
        firm: &Firm,
        project: &Project,
        cmd: IssueInvoice,
    ) -> DomainResult<Vec<Event>> {
        let firm_id = firm.require()?;
        let project_id = project.require_in(&Scope::Client {
            firm_id,
            client_id: cmd.client_id,
        })?;
        if project_id != cmd.project_id {
            return Err(DomainError::NotFound(Entity::Project));
        }
        if self.issued.is_some() {
            return Err(DomainError::AlreadyExists(Entity::Invoice));
        }
        if cmd.total.is_zero() {
            return Err(DomainError::NotPositive);
        }
        if cmd.due_on < cmd.issued_on {
            return Err(DomainError::DueBeforeIssue);
        }
        let reservation = firm.reserve_invoice_number(&cmd.number, cmd.invoice_id)?;
        Ok(vec![
            reservation,
            Event::InvoiceIssued {
                firm_id,
                client_id: cmd.client_id,
                project_id,
                invoice_id: cmd.invoice_id,
                number: cmd.number,
                issued_on: cmd.issued_on,
                due_on: cmd.due_on,
                total: cmd.total,
            },
        ])
    }

    /// The issued facts when the invoice exists and is visible in `scope`.
    pub fn require_in(&self, scope: &Scope) -> DomainResult<&Issued> {
        match &self.issued {
            Some(issued) if scope.admits(issued.firm_id, Some(issued.client_id)) => Ok(issued),
            _ => Err(DomainError::NotFound(Entity::Invoice)),
        }
    }

    fn sum(&self, currency: Currency, f: impl Fn(&Payment) -> i64) -> Money {
        let minor: i64 = self.payments.values().map(f).sum();
        Money::from_minor(minor.max(0), currency).unwrap_or(Money::zero(currency))
    }

    fn currency(&self) -> Option<Currency> {
        self.issued.as_ref().map(|i| i.total.currency())
    }

    /// Settled minus refunded.
    pub fn settled(&self) -> Option<Money> {
        let c = self.currency()?;
        Some(self.sum(c, |p| match p.status {
            PaymentStatus::Settled => p.amount.minor_units() - p.refunded.minor_units(),
            _ => 0,
        }))
    }

    /// Submitted and not yet settled or failed.
    pub fn pending(&self) -> Option<Money> {
        let c = self.currency()?;
        Some(self.sum(c, |p| match p.status {
            PaymentStatus::Submitted => p.amount.minor_units(),
            _ => 0,
        }))
    }

    /// What is still owed: total − settled (refunds owe again).
    pub fn balance(&self) -> Option<Money> {
        let total = self.issued.as_ref()?.total;
        total.saturating_sub(&self.settled()?).ok()
    }

    /// What a new payment may take: balance − pending.
    pub fn available(&self) -> Option<Money> {
        self.balance()?.saturating_sub(&self.pending()?).ok()
    }

    pub fn status(&self, today: NaiveDate) -> Option<InvoiceStatus> {
        let issued = self.issued.as_ref()?;
        Some(if self.voided {
            InvoiceStatus::Void
        } else if self.balance()?.is_zero() {
            InvoiceStatus::Paid
        } else if today > issued.due_on {
            InvoiceStatus::PastDue
        } else {
            InvoiceStatus::Open
        })
    }

    /// Whether a new payment of `amount` is allowed; `Ok` carries nothing, the caller
    /// builds the event. Shared by single and bulk payments.
    pub fn check_payment(&self, amount: &Money) -> Result<(), PaymentProblem> {
        let (Some(issued), Some(balance), Some(available)) =
            (&self.issued, self.balance(), self.available())
        else {
            return Err(PaymentProblem::Voided);
        };
        if self.voided {
            return Err(PaymentProblem::Voided);
        }
        if amount.currency() != issued.total.currency() {
            return Err(PaymentProblem::CurrencyMismatch {
                expected: issued.total.currency().to_string(),
                found: amount.currency().to_string(),
            });
        }
        if amount.is_zero() {
            return Err(PaymentProblem::NotPositive);
        }
        if balance.is_zero() {
            return Err(PaymentProblem::AlreadyPaid);
        }
        if amount.minor_units() > available.minor_units() {
            return Err(PaymentProblem::ExceedsBalance { available });
        }
        Ok(())
    }

    /// Voiding is for invoices nobody has paid anything on: refund first otherwise.
    pub fn void(&self, scope: &Scope, reason: String) -> DomainResult<Vec<Event>> {
        let issued = self.require_in(scope)?;
        if self.voided {
            return Err(DomainError::CannotVoid("it is already void"));
        }
        if self.pending().is_some_and(|p| !p.is_zero()) {
            return Err(DomainError::CannotVoid("a payment is awaiting settlement"));
        }
        if self.settled().is_some_and(|s| !s.is_zero()) {
            return Err(DomainError::CannotVoid(
                "payments have settled; refund them first",
            ));
        }
        Ok(vec![Event::InvoiceVoided {
            invoice_id: issued.id,
            reason,
        }])
    }

    /// A payment the firm received outside the portal (cheque, wire): submitted and
    /// settled at once.
    pub fn record_offline_payment(
        &self,
        scope: &Scope,
        payment_id: PaymentId,
        submission_id: SubmissionId,
        amount: Money,
    ) -> DomainResult<Vec<Event>> {
        let issued = self.require_in(scope)?;
        self.check_payment(&amount).map_err(|problem| {
            DomainError::SubmissionRejected(vec![crate::error::InvoiceRejection {
                invoice_id: issued.id,
                problem,
            }])
        })?;
        Ok(vec![
            Event::PaymentSubmitted {
                firm_id: issued.firm_id,
                invoice_id: issued.id,
                client_id: issued.client_id,
                payment_id,
                submission_id,
                amount,
                method: "offline".to_owned(),
            },
            Event::PaymentSettled {
                invoice_id: issued.id,
                payment_id,
                amount,
            },
        ])
    }

    fn pending_payment(&self, payment_id: PaymentId) -> DomainResult<(&Issued, &Payment)> {
        let issued = self
            .issued
            .as_ref()
            .ok_or(DomainError::NotFound(Entity::Invoice))?;
        let payment = self
            .payments
            .get(&payment_id)
            .ok_or(DomainError::NotFound(Entity::Payment))?;
        if payment.status != PaymentStatus::Submitted {
            return Err(DomainError::PaymentNotPending(payment_id));
        }
        Ok((issued, payment))
    }

    /// The gateway reports the payment's money arrived.
    pub fn settle(&self, payment_id: PaymentId) -> DomainResult<Vec<Event>> {
        let (issued, payment) = self.pending_payment(payment_id)?;
        Ok(vec![Event::PaymentSettled {
            invoice_id: issued.id,
            payment_id,
            amount: payment.amount,
        }])
    }

    /// The gateway reports the charge was declined; the amount is free to pay again.
    pub fn fail(&self, payment_id: PaymentId, reason: String) -> DomainResult<Vec<Event>> {
        let (issued, payment) = self.pending_payment(payment_id)?;
        Ok(vec![Event::PaymentFailed {
            invoice_id: issued.id,
            payment_id,
            amount: payment.amount,
            reason,
        }])
    }

    pub fn refund(
        &self,
        scope: &Scope,
        payment_id: PaymentId,
        amount: Money,
    ) -> DomainResult<Vec<Event>> {
        let issued = self.require_in(scope)?;
        let payment = self
            .payments
            .get(&payment_id)
            .ok_or(DomainError::NotFound(Entity::Payment))?;
        if payment.status != PaymentStatus::Settled {
            return Err(DomainError::PaymentNotSettled(payment_id));
        }
        if amount.currency() != payment.amount.currency() {
            return Err(DomainError::Money(
                crate::money::MoneyError::CurrencyMismatch {
                    expected: payment.amount.currency(),
                    found: amount.currency(),
                },
            ));
        }
        if amount.is_zero() {
            return Err(DomainError::NotPositive);
        }
        let left = payment.amount.checked_sub(&payment.refunded)?;
        if amount.minor_units() > left.minor_units() {
            return Err(DomainError::RefundExceedsPayment { left });
        }
        Ok(vec![Event::PaymentRefunded {
            invoice_id: issued.id,
            payment_id,
            amount,
        }])
    }
}
