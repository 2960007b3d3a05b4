//! Passwords: argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane), 12 to 128
//! characters. Hashing runs on the blocking pool: it is meant to be slow.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{ApiError, ApiResult};

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 128;

fn hasher() -> ApiResult<Argon2<'static>> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The password rules, with a message a person can act on.
pub fn check_policy(password: &str, email: &str) -> ApiResult<()> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(ApiError::validation(format!(
            "the password needs at least {MIN_LEN} characters"
        )));
    }
    if len > MAX_LEN {
        return Err(ApiError::validation(format!(
            "the password can have at most {MAX_LEN} characters"
        )));
    }
    if password.trim().to_lowercase() == email.to_lowercase() {
        return Err(ApiError::validation("the password must not be your email"));
    }
    let first = password.chars().next();
    if password.chars().all(|c| Some(c) == first) {
        return Err(ApiError::validation(
            "the password must not repeat one character",
        ));
    }
    Ok(())
}

pub async fn hash(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// Whether `password` matches `stored`. With `stored = None` (no such account) the same
/// work is done anyway, so timing does not reveal which emails have accounts.
pub async fn verify(password: String, stored: Option<String>) -> ApiResult<bool> {
    tokio::task::spawn_blocking(move || {
        let argon = hasher()?;
        match stored {
            Some(phc) => {
                let parsed =
                    PasswordHash::new(&phc).map_err(|e| ApiError::Internal(e.to_string()))?;
                Ok(argon.verify_password(password.as_bytes(), &parsed).is_ok())
            }
            None => {
                let salt = SaltString::generate(&mut OsRng);
                let _ = argon.hash_password(password.as_bytes(), &salt);
                Ok(false)
            }
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_is_argon2id_at_owasp_parameters() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery".into(), Some(h.clone()))
            .await
            .unwrap());
        assert!(!verify("correct horse batterx".into(), Some(h))
            .await
            .unwrap());
        assert!(!verify("anything".into(), None).await.unwrap());
    }

    #[test]
    fn the_policy_names_what_is_wrong() {
        assert!(check_policy("short", "a@b.co").is_err());
        assert!(check_policy(&"x".repeat(129), "a@b.co").is_err());
        assert!(check_policy("aaaaaaaaaaaaaaa", "a@b.co").is_err());
        assert!(check_policy("ann@client.example", "ann@client.example").is_err());
        assert!(check_policy("a long enough pass phrase", "a@b.co").is_ok());
        assert!(check_policy(&"ab".repeat(64), "a@b.co").is_ok());
    }
}
