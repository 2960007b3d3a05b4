//! The domain's one error type. Each variant is a rule a caller can act on; the HTTP layer
//! maps them to problem types. `NotFound` deliberately covers both "does not exist" and
//! "belongs to another tenant", so a refusal never reveals another client's data.

use std::fmt;

use crate::ids::{InvoiceId, PaymentId};
use crate::money::{Money, MoneyError};
use crate::values::{InvalidValue, InvoiceNumber};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Firm,
    Client,
    Contact,
    Invite,
    Project,
    TeamMember,
    Invoice,
    Payment,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::Firm => "firm",
            Entity::Client => "client",
            Entity::Contact => "contact",
            Entity::Invite => "invite",
            Entity::Project => "project",
            Entity::TeamMember => "team member",
            Entity::Invoice => "invoice",
            Entity::Payment => "payment",
        })
    }
}

/// Why an invite link no longer works (HTTP 410 Gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteProblem {
    Expired,
    Revoked,
    Used,
    /// A newer invite was sent; only the newest link works.
    Superseded,
}

impl fmt::Display for InviteProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InviteProblem::Expired => "has expired",
            InviteProblem::Revoked => "was revoked",
            InviteProblem::Used => "was already used",
            InviteProblem::Superseded => "was replaced by a newer invite",
        })
    }
}

/// Why one invoice cannot take a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentProblem {
    NotPositive,
    AlreadyPaid,
    Voided,
    CurrencyMismatch {
        expected: String,
        found: String,
    },
    /// More than the balance left after settled and pending payments.
    ExceedsBalance {
        available: Money,
    },
}

impl fmt::Display for PaymentProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentProblem::NotPositive => f.write_str("the amount must be greater than zero"),
            PaymentProblem::AlreadyPaid => f.write_str("the invoice is already paid"),
            PaymentProblem::Voided => f.write_str("the invoice was voided"),
            PaymentProblem::CurrencyMismatch { expected, found } => {
                write!(f, "the invoice is billed in {expected}, not {found}")
            }
            PaymentProblem::ExceedsBalance { available } => {
                write!(
                    f,
                    "only {available} is left to pay (after pending payments)"
                )
            }
        }
    }
}

/// One invoice of a submission that cannot be paid, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRejection {
    pub invoice_id: InvoiceId,
    pub problem: PaymentProblem,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("{0} not found")]
    NotFound(Entity),
    #[error("{0} already exists")]
    AlreadyExists(Entity),
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("invoice number {0} is already used in this firm")]
    DuplicateInvoiceNumber(InvoiceNumber),
    #[error("another contact of this firm already uses this email")]
    DuplicateEmail,
    #[error("the invite link {0}")]
    Invite(InviteProblem),
    #[error("this contact already has an account")]
    AccountExists,
    #[error("this contact has no account yet")]
    NoAccount,
    #[error("this contact is deactivated")]
    ContactInactive,
    #[error("no invite is outstanding for this contact")]
    NoOutstandingInvite,
    #[error("the due date is before the issue date")]
    DueBeforeIssue,
    #[error("the amount must be greater than zero")]
    NotPositive,
    #[error("this member is already on the project team")]
    AlreadyAssigned,
    #[error("the invoice cannot be voided: {0}")]
    CannotVoid(&'static str),
    #[error("payment {0} is not awaiting settlement")]
    PaymentNotPending(PaymentId),
    #[error("payment {0} has not settled, so it cannot be refunded")]
    PaymentNotSettled(PaymentId),
    #[error("the refund is more than what is left of the payment ({left})")]
    RefundExceedsPayment { left: Money },
    #[error("a submission needs at least one invoice")]
    EmptySubmission,
    #[error("invoice {0} appears twice in one submission")]
    DuplicateInvoiceInSubmission(InvoiceId),
    #[error("one submission pays invoices of one currency")]
    MixedCurrencies,
    #[error("{} of the invoices cannot be paid as asked", .0.len())]
    SubmissionRejected(Vec<InvoiceRejection>),
}

pub type DomainResult<T> = Result<T, DomainError>;
