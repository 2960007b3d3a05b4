//! Invoice and submission rules, given/when/then, and the money properties.

use chrono::NaiveDate;
use proptest::prelude::*;

use crate::aggregate::{Aggregate, Scope};
use crate::error::{DomainError, Entity, InvoiceRejection, PaymentProblem};
use crate::events::Event;
use crate::firm::Firm;
use crate::ids::*;
use crate::invoice::{Invoice, InvoiceStatus, IssueInvoice};
use crate::money::{Currency, Money};
use crate::project::Project;
use crate::submission::{submit, PaymentLine};
use crate::testing::*;
use crate::values::InvoiceNumber;

struct Setup {
    firm: FirmId,
    client: ClientId,
    project: ProjectId,
}

impl Setup {
    fn new() -> Self {
        Self {
            firm: FirmId::new(),
            client: ClientId::new(),
            project: ProjectId::new(),
        }
    }

    fn scope(&self) -> Scope {
        Scope::Client {
            firm_id: self.firm,
            client_id: self.client,
        }
    }

    fn issued(&self, invoice: InvoiceId, total: &str) -> Event {
        Event::InvoiceIssued {
            firm_id: self.firm,
            client_id: self.client,
            project_id: self.project,
            invoice_id: invoice,
            number: InvoiceNumber::parse(&format!("INV-{invoice}")).unwrap(),
            issued_on: date(2026, 3, 1),
            due_on: date(2026, 3, 31),
            total: usd(total),
        }
    }

    fn submitted(
        &self,
        invoice: InvoiceId,
        payment: PaymentId,
        submission: SubmissionId,
        amount: &str,
    ) -> Event {
        Event::PaymentSubmitted {
            firm_id: self.firm,
            invoice_id: invoice,
            client_id: self.client,
            payment_id: payment,
            submission_id: submission,
            amount: usd(amount),
            method: "card".into(),
        }
    }

    fn firm(&self) -> Firm {
        Firm::replay(&[firm_registered(self.firm)])
    }

    fn project(&self) -> Project {
        Project::replay(&[Event::ProjectCreated {
            firm_id: self.firm,
            client_id: self.client,
            project_id: self.project,
            name: name("Tax return"),
        }])
    }

    fn issue_cmd(&self, number: &str, total: Money) -> IssueInvoice {
        IssueInvoice {
            invoice_id: InvoiceId::new(),
            client_id: self.client,
            project_id: self.project,
            number: InvoiceNumber::parse(number).unwrap(),
            issued_on: date(2026, 3, 1),
            due_on: date(2026, 3, 31),
            total,
        }
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn pay_one(s: &Setup, invoice: &Invoice, amount: Money) -> Result<Vec<Event>, DomainError> {
    let line = PaymentLine {
        invoice,
        payment_id: PaymentId::new(),
        amount,
    };
    submit(&s.scope(), SubmissionId::new(), "card", &[line])
}

#[test]
fn issuing_reserves_the_number_in_the_firm_stream() {
    let s = Setup::new();
    let cmd = s.issue_cmd("INV-001", usd("1250.00"));
    let events = Invoice::default()
        .issue(&s.firm(), &s.project(), cmd.clone())
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        matches!(&events[0], Event::InvoiceNumberReserved { number, .. } if number.as_str() == "INV-001")
    );
    assert!(
        matches!(&events[1], Event::InvoiceIssued { invoice_id, .. } if *invoice_id == cmd.invoice_id)
    );
}

#[test]
fn invoice_numbers_are_unique_per_firm() {
    let s = Setup::new();
    let mut firm = s.firm();
    let first = Invoice::default()
        .issue(&firm, &s.project(), s.issue_cmd("INV-001", usd("10.00")))
        .unwrap();
    firm.apply(&first[0]);
    let again = Invoice::default().issue(&firm, &s.project(), s.issue_cmd("INV-001", usd("20.00")));
    assert!(
        matches!(again, Err(DomainError::DuplicateInvoiceNumber(n)) if n.as_str() == "INV-001")
    );
    // Another firm may use the same number.
    let other = Setup::new();
    assert!(Invoice::default()
        .issue(
            &other.firm(),
            &other.project(),
            other.issue_cmd("INV-001", usd("10.00"))
        )
        .is_ok());
}

#[test]
fn an_invoice_is_issued_only_on_a_project_of_its_client_with_a_positive_total() {
    let s = Setup::new();
    let mut cmd = s.issue_cmd("INV-9", usd("10.00"));
    cmd.client_id = ClientId::new();
    assert_eq!(
        Invoice::default().issue(&s.firm(), &s.project(), cmd),
        Err(DomainError::NotFound(Entity::Project))
    );
    let zero = s.issue_cmd("INV-9", usd("0.00"));
    assert_eq!(
        Invoice::default().issue(&s.firm(), &s.project(), zero),
        Err(DomainError::NotPositive)
    );
    let mut backwards = s.issue_cmd("INV-9", usd("1.00"));
    backwards.due_on = date(2026, 2, 1);
    assert_eq!(
        Invoice::default().issue(&s.firm(), &s.project(), backwards),
        Err(DomainError::DueBeforeIssue)
    );
}

#[test]
fn a_payment_must_be_positive_and_in_the_invoice_currency() {
    let s = Setup::new();
    let i = InvoiceId::new();
    let invoice = Invoice::replay(&[s.issued(i, "100.00")]);
    let rejected = |problem| {
        Err(DomainError::SubmissionRejected(vec![InvoiceRejection {
            invoice_id: i,
            problem,
        }]))
    };
    assert_eq!(
        pay_one(&s, &invoice, usd("0.00")),
        rejected(PaymentProblem::NotPositive)
    );
    let eur = Money::parse("10.00", Currency::parse("EUR").unwrap()).unwrap();
    assert_eq!(
        pay_one(&s, &invoice, eur),
        rejected(PaymentProblem::CurrencyMismatch {
            expected: "USD".into(),
            found: "EUR".into()
        })
    );
}

#[test]
fn a_payment_never_exceeds_the_balance_left_after_settled_and_pending_payments() {
    let s = Setup::new();
    let i = InvoiceId::new();
    let (p1, p2) = (PaymentId::new(), PaymentId::new());
    let history = [
        s.issued(i, "100.00"),
        s.submitted(i, p1, SubmissionId::new(), "30.00"),
        Event::PaymentSettled {
            invoice_id: i,
            payment_id: p1,
            amount: usd("30.00"),
        },
        s.submitted(i, p2, SubmissionId::new(), "50.00"),
    ];
    let invoice = Invoice::replay(&history);
    assert_eq!(invoice.balance(), Some(usd("70.00")));
    assert_eq!(invoice.available(), Some(usd("20.00")));
    assert_eq!(
        pay_one(&s, &invoice, usd("20.01")),
        Err(DomainError::SubmissionRejected(vec![InvoiceRejection {
            invoice_id: i,
            problem: PaymentProblem::ExceedsBalance {
                available: usd("20.00")
            }
        }]))
    );
    assert!(pay_one(&s, &invoice, usd("20.00")).is_ok());
}

#[test]
fn a_failed_payment_frees_its_amount_and_a_refund_owes_again() {
    let s = Setup::new();
    let i = InvoiceId::new();
    let (p1, p2) = (PaymentId::new(), PaymentId::new());
    let mut history = vec![
        s.issued(i, "100.00"),
        s.submitted(i, p1, SubmissionId::new(), "100.00"),
    ];
    let invoice = Invoice::replay(&history);
    history.extend(invoice.fail(p1, "card declined".into()).unwrap());
    let invoice = Invoice::replay(&history);
    assert_eq!(invoice.available(), Some(usd("100.00")));

    history.push(s.submitted(i, p2, SubmissionId::new(), "100.00"));
    history.extend(Invoice::replay(&history).settle(p2).unwrap());
    let invoice = Invoice::replay(&history);
    assert_eq!(invoice.status(date(2026, 3, 2)), Some(InvoiceStatus::Paid));

    history.extend(
        invoice
            .refund(&Scope::Firm(s.firm), p2, usd("40.00"))
            .unwrap(),
    );
    let invoice = Invoice::replay(&history);
    assert_eq!(invoice.balance(), Some(usd("40.00")));
    assert_eq!(invoice.status(date(2026, 3, 2)), Some(InvoiceStatus::Open));
    assert!(matches!(
        invoice.refund(&Scope::Firm(s.firm), p2, usd("60.01")),
        Err(DomainError::RefundExceedsPayment { .. })
    ));
}

#[test]
fn a_paid_or_voided_invoice_takes_no_payment() {
    let s = Setup::new();
    let i = InvoiceId::new();
    let p = PaymentId::new();
    let paid = Invoice::replay(&[
        s.issued(i, "10.00"),
        s.submitted(i, p, SubmissionId::new(), "10.00"),
        Event::PaymentSettled {
            invoice_id: i,
            payment_id: p,
            amount: usd("10.00"),
        },
    ]);
    let rejected = |problem| {
        Err(DomainError::SubmissionRejected(vec![InvoiceRejection {
            invoice_id: i,
            problem,
        }]))
    };
    assert_eq!(
        pay_one(&s, &paid, usd("1.00")),
        rejected(PaymentProblem::AlreadyPaid)
    );
    let voided = Invoice::replay(&[
        s.issued(i, "10.00"),
        Event::InvoiceVoided {
            invoice_id: i,
            reason: "issued in error".into(),
        },
    ]);
    assert_eq!(
        pay_one(&s, &voided, usd("1.00")),
        rejected(PaymentProblem::Voided)
    );
    assert_eq!(voided.status(date(2026, 3, 2)), Some(InvoiceStatus::Void));
}

#[test]
fn an_invoice_with_money_on_it_cannot_be_voided() {
    let s = Setup::new();
    let i = InvoiceId::new();
    given::<Invoice>(&[
        s.issued(i, "10.00"),
        s.submitted(i, PaymentId::new(), SubmissionId::new(), "5.00"),
    ])
    .when(|inv| inv.void(&Scope::Firm(s.firm), "oops".into()))
    .then_error(DomainError::CannotVoid("a payment is awaiting settlement"));
    given::<Invoice>(&[s.issued(i, "10.00")])
        .when(|inv| inv.void(&Scope::Firm(s.firm), "oops".into()))
        .then_events(vec![Event::InvoiceVoided {
            invoice_id: i,
            reason: "oops".into(),
        }]);
}

#[test]
fn status_is_derived_from_balance_and_today() {
    let s = Setup::new();
    let i = InvoiceId::new();
    let invoice = Invoice::replay(&[s.issued(i, "10.00")]);
    // due on 31 March: due today is still open, the day after is past due.
    assert_eq!(invoice.status(date(2026, 3, 31)), Some(InvoiceStatus::Open));
    assert_eq!(
        invoice.status(date(2026, 4, 1)),
        Some(InvoiceStatus::PastDue)
    );
    // A pending payment does not change the status.
    let pending = Invoice::replay(&[
        s.issued(i, "10.00"),
        s.submitted(i, PaymentId::new(), SubmissionId::new(), "10.00"),
    ]);
    assert_eq!(
        pending.status(date(2026, 4, 1)),
        Some(InvoiceStatus::PastDue)
    );
    assert_eq!(pending.pending(), Some(usd("10.00")));
}

#[test]
fn settling_or_failing_twice_is_refused() {
    let s = Setup::new();
    let i = InvoiceId::new();
    let p = PaymentId::new();
    let settled = [
        s.issued(i, "10.00"),
        s.submitted(i, p, SubmissionId::new(), "10.00"),
        Event::PaymentSettled {
            invoice_id: i,
            payment_id: p,
            amount: usd("10.00"),
        },
    ];
    given::<Invoice>(&settled)
        .when(|inv| inv.settle(p))
        .then_error(DomainError::PaymentNotPending(p));
    given::<Invoice>(&settled)
        .when(|inv| inv.fail(p, "late decline".into()))
        .then_error(DomainError::PaymentNotPending(p));
    given::<Invoice>(&settled)
        .when(|inv| inv.settle(PaymentId::new()))
        .then_error(DomainError::NotFound(Entity::Payment));
}

#[test]
fn a_bulk_submission_yields_one_payment_per_invoice_under_one_submission_id() {
    let s = Setup::new();
    let ids = [InvoiceId::new(), InvoiceId::new(), InvoiceId::new()];
    let invoices: Vec<Invoice> = ids
        .iter()
        .map(|i| Invoice::replay(&[s.issued(*i, "100.00")]))
        .collect();
    let submission = SubmissionId::new();
    let lines: Vec<PaymentLine> = invoices
        .iter()
        .map(|inv| PaymentLine {
            invoice: inv,
            payment_id: PaymentId::new(),
            amount: inv.balance().unwrap(),
        })
        .collect();
    let events = submit(&s.scope(), submission, "card", &lines).unwrap();
    assert_eq!(events.len(), 3);
    for (event, id) in events.iter().zip(ids) {
        assert!(
            matches!(event, Event::PaymentSubmitted { invoice_id, submission_id, .. }
            if *invoice_id == id && *submission_id == submission)
        );
        assert_eq!(event.stream_id(), crate::streams::StreamId::invoice(id));
    }
}

#[test]
fn a_bulk_submission_is_all_or_nothing_and_names_every_invoice_at_stake() {
    let s = Setup::new();
    let (a, b, c) = (InvoiceId::new(), InvoiceId::new(), InvoiceId::new());
    let pa = PaymentId::new();
    let inv_a = Invoice::replay(&[
        s.issued(a, "100.00"),
        s.submitted(a, pa, SubmissionId::new(), "100.00"),
    ]);
    let inv_b = Invoice::replay(&[s.issued(b, "100.00")]);
    let inv_c = Invoice::replay(&[s.issued(c, "50.00")]);
    let line = |invoice, amount| PaymentLine {
        invoice,
        payment_id: PaymentId::new(),
        amount: usd(amount),
    };
    let result = submit(
        &s.scope(),
        SubmissionId::new(),
        "card",
        &[
            line(&inv_a, "100.00"),
            line(&inv_b, "100.00"),
            line(&inv_c, "60.00"),
        ],
    );
    assert_eq!(
        result,
        Err(DomainError::SubmissionRejected(vec![
            InvoiceRejection {
                invoice_id: a,
                problem: PaymentProblem::ExceedsBalance {
                    available: usd("0.00")
                }
            },
            InvoiceRejection {
                invoice_id: c,
                problem: PaymentProblem::ExceedsBalance {
                    available: usd("50.00")
                }
            },
        ]))
    );
    assert_eq!(
        submit(
            &s.scope(),
            SubmissionId::new(),
            "card",
            &[line(&inv_b, "1.00"), line(&inv_b, "1.00")]
        ),
        Err(DomainError::DuplicateInvoiceInSubmission(b))
    );
    assert_eq!(
        submit(&s.scope(), SubmissionId::new(), "card", &[]),
        Err(DomainError::EmptySubmission)
    );
}

#[test]
fn the_second_of_two_racing_submissions_is_refused_once_it_sees_the_first() {
    let s = Setup::new();
    let i = InvoiceId::new();
    let history = vec![s.issued(i, "100.00")];
    let seen_by_both = Invoice::replay(&history);
    let first = pay_one(&s, &seen_by_both, usd("100.00")).unwrap();
    // The store refuses the loser's append (the invoice stream moved); it re-decides on
    // fresh state and is refused with the invoice named.
    let fresh = Invoice::replay(history.iter().chain(&first));
    assert_eq!(
        pay_one(&s, &fresh, usd("100.00")),
        Err(DomainError::SubmissionRejected(vec![InvoiceRejection {
            invoice_id: i,
            problem: PaymentProblem::ExceedsBalance {
                available: usd("0.00")
            }
        }]))
    );
}

#[test]
fn a_contact_pays_only_its_own_clients_invoices() {
    let s = Setup::new();
    let invoice = Invoice::replay(&[s.issued(InvoiceId::new(), "10.00")]);
    let stranger = Scope::Client {
        firm_id: s.firm,
        client_id: ClientId::new(),
    };
    let line = PaymentLine {
        invoice: &invoice,
        payment_id: PaymentId::new(),
        amount: usd("10.00"),
    };
    assert_eq!(
        submit(&stranger, SubmissionId::new(), "card", &[line]),
        Err(DomainError::NotFound(Entity::Invoice))
    );
    assert_eq!(
        submit(
            &Scope::Firm(FirmId::new()),
            SubmissionId::new(),
            "card",
            &[line]
        ),
        Err(DomainError::NotFound(Entity::Invoice))
    );
}

#[test]
fn an_offline_payment_is_submitted_and_settled_at_once() {
    let s = Setup::new();
    let i = InvoiceId::new();
    let invoice = Invoice::replay(&[s.issued(i, "10.00")]);
    let events = invoice
        .record_offline_payment(
            &Scope::Firm(s.firm),
            PaymentId::new(),
            SubmissionId::new(),
            usd("10.00"),
        )
        .unwrap();
    let after = Invoice::replay(std::iter::once(&s.issued(i, "10.00")).chain(&events));
    assert_eq!(after.status(date(2026, 3, 2)), Some(InvoiceStatus::Paid));
}

/// A command the property test throws at an invoice.
#[derive(Debug, Clone)]
enum Op {
    Pay(i64),
    Settle(usize),
    Fail(usize),
    Refund(usize, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0i64..15_000).prop_map(Op::Pay),
        (0usize..8).prop_map(Op::Settle),
        (0usize..8).prop_map(Op::Fail),
        ((0usize..8), (0i64..15_000)).prop_map(|(i, a)| Op::Refund(i, a)),
    ]
}

proptest! {
    /// For any sequence of commands, applying only what the domain accepts: settled plus
    /// pending never exceeds the total, and no balance goes negative.
    #[test]
    fn accepted_commands_never_overpay(total in 1i64..10_000, ops in prop::collection::vec(op(), 0..40)) {
        let s = Setup::new();
        let usd_c = Currency::parse("USD").unwrap();
        let i = InvoiceId::new();
        let mut history = vec![Event::InvoiceIssued {
            firm_id: s.firm, client_id: s.client, project_id: s.project, invoice_id: i,
            number: InvoiceNumber::parse("P-1").unwrap(),
            issued_on: date(2026, 1, 1), due_on: date(2026, 1, 31),
            total: Money::from_minor(total, usd_c).unwrap(),
        }];
        let mut payments: Vec<PaymentId> = Vec::new();
        for op in ops {
            let invoice = Invoice::replay(&history);
            let pick = |n: usize| payments.get(n % payments.len().max(1)).copied();
            let decided = match op {
                Op::Pay(minor) => pay_one(&s, &invoice, Money::from_minor(minor, usd_c).unwrap()),
                Op::Settle(n) => match pick(n) { Some(p) => invoice.settle(p), None => continue },
                Op::Fail(n) => match pick(n) { Some(p) => invoice.fail(p, "declined".into()), None => continue },
                Op::Refund(n, minor) => match pick(n) {
                    Some(p) => invoice.refund(&Scope::Firm(s.firm), p, Money::from_minor(minor, usd_c).unwrap()),
                    None => continue,
                },
            };
            if let Ok([Event::PaymentSubmitted { payment_id, .. }]) = decided.as_deref() {
                payments.push(*payment_id);
            }
            if let Ok(events) = decided {
                history.extend(events);
            }
            let invoice = Invoice::replay(&history);
            let settled = invoice.settled().unwrap().minor_units();
            let pending = invoice.pending().unwrap().minor_units();
            prop_assert!(settled + pending <= total, "settled {settled} + pending {pending} > total {total}");
            prop_assert!(settled >= 0 && pending >= 0);
            prop_assert_eq!(invoice.balance().unwrap().minor_units(), total - settled);
            // Brute force: recompute from the events alone.
            let mut brute_settled = 0i64;
            for e in &history {
                match e {
                    Event::PaymentSettled { amount, .. } => brute_settled += amount.minor_units(),
                    Event::PaymentRefunded { amount, .. } => brute_settled -= amount.minor_units(),
                    _ => {}
                }
            }
            prop_assert_eq!(brute_settled, settled);
        }
    }
}
