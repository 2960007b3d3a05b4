//! Login backoff: failures are counted per firm and email, whether or not the email has an
//! account, so the answers (and their timing) never reveal which emails exist. From the
//! fifth failure on, the email is locked for 1, 2, 4 ... seconds, up to 15 minutes; a
//! success clears the count.

use chrono::{DateTime, Duration, Utc};
use portico_domain::ids::FirmId;
use portico_store::hash::format_instant;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const FREE_FAILURES: i64 = 5;
pub const MAX_LOCK_SECONDS: i64 = 15 * 60;

#[derive(Debug, sqlx::FromRow)]
struct Attempts {
    failures: i64,
    locked_until: Option<String>,
}

fn lock_seconds(failures: i64) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let exp = u32::try_from(failures - FREE_FAILURES)
        .unwrap_or(u32::MAX)
        .min(20);
    (1i64 << exp).min(MAX_LOCK_SECONDS)
}

/// 429 with `Retry-After` while the email is locked.
pub async fn check(
    state: &AppState,
    firm_id: FirmId,
    email: &str,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let row: Option<Attempts> = state
        .db
        .fetch_optional(
            "SELECT failures, locked_until FROM login_attempts WHERE firm_id = $1 AND email = $2",
            &[firm_id.to_string().into(), email.into()],
        )
        .await?;
    let locked_until = row
        .and_then(|r| r.locked_until)
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    match locked_until {
        Some(until) if until > now => Err(ApiError::LoginBackoff {
            retry_after: u64::try_from((until - now).num_seconds().max(1)).unwrap_or(1),
        }),
        _ => Ok(()),
    }
}

pub async fn record_failure(
    state: &AppState,
    firm_id: FirmId,
    email: &str,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let firm = firm_id.to_string();
    state
        .db
        .execute(
            "INSERT INTO login_attempts (firm_id, email, failures) VALUES ($1, $2, 1) \
             ON CONFLICT (firm_id, email) DO UPDATE SET failures = login_attempts.failures + 1",
            &[firm.clone().into(), email.into()],
        )
        .await?;
    let row: Option<Attempts> = state
        .db
        .fetch_optional(
            "SELECT failures, locked_until FROM login_attempts WHERE firm_id = $1 AND email = $2",
            &[firm.clone().into(), email.into()],
        )
        .await?;
    let lock = lock_seconds(row.map_or(0, |r| r.failures));
    if lock > 0 {
        state
            .db
            .execute(
                "UPDATE login_attempts SET locked_until = $3 WHERE firm_id = $1 AND email = $2",
                &[
                    firm.into(),
                    email.into(),
                    format_instant(now + Duration::seconds(lock)).into(),
                ],
            )
            .await?;
    }
    Ok(())
}

pub async fn clear(state: &AppState, firm_id: FirmId, email: &str) -> ApiResult<()> {
    state
        .db
        .execute(
            "DELETE FROM login_attempts WHERE firm_id = $1 AND email = $2",
            &[firm_id.to_string().into(), email.into()],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lock_seconds;

    #[test]
    fn the_lock_doubles_from_the_fifth_failure_and_is_capped() {
        assert_eq!(
            (0..5).map(lock_seconds).collect::<Vec<_>>(),
            [0, 0, 0, 0, 0]
        );
        assert_eq!(lock_seconds(5), 1);
        assert_eq!(lock_seconds(6), 2);
        assert_eq!(lock_seconds(9), 16);
        assert_eq!(lock_seconds(40), 900);
        assert_eq!(lock_seconds(i64::MAX), 900);
    }
}
