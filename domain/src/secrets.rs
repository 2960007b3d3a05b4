//! Bearer secrets: invite tokens, session tokens and API keys. A token is 256 random bits,
//! shown once to its holder and stored only as its SHA-256 hash. Neither the token nor its
//! hash ever goes into an event: events are forever and go to auditors.
//!
//! The domain does no I/O, so the caller supplies the random bytes (from the OS RNG).

use std::fmt;

use sha2::{Digest, Sha256};

/// Bytes of entropy in a token: 256 bits, well above the 128-bit floor.
pub const TOKEN_BYTES: usize = 32;
const _: () = assert!(TOKEN_BYTES * 8 >= 128, "tokens need at least 128 bits");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the token is malformed")]
pub struct MalformedToken;

/// A secret token. `Debug` never shows it; only [`SecretToken::expose`] does, for the one
/// response or email that hands it to its holder.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken([u8; TOKEN_BYTES]);

impl SecretToken {
    pub fn from_random_bytes(bytes: [u8; TOKEN_BYTES]) -> Self {
        Self(bytes)
    }

    /// Parses the string form a holder presents. Anything but 64 lowercase hex digits is
    /// refused before a lookup, so short or guessed tokens cost no database work.
    pub fn parse(s: &str) -> Result<Self, MalformedToken> {
        if s.len() != TOKEN_BYTES * 2 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(MalformedToken);
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| MalformedToken)?;
        Ok(Self(bytes))
    }

    /// The string to hand to the holder (64 hex digits).
    pub fn expose(&self) -> String {
        hex::encode(self.0)
    }

    /// What is stored: SHA-256 of the token bytes. A 256-bit token cannot be recovered
    /// from it, and a slow hash buys nothing at this entropy.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

/// The stored form of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(seed: u8) -> SecretToken {
        SecretToken::from_random_bytes([seed; TOKEN_BYTES])
    }

    #[test]
    fn a_token_carries_at_least_128_bits() {
        let presented = token(7).expose();
        assert!(hex::decode(&presented).unwrap().len() * 8 >= 128);
    }

    #[test]
    fn only_the_hash_is_meant_for_storage_and_it_reveals_nothing_of_the_token() {
        let t = token(7);
        let hash = t.hash().to_hex();
        assert_ne!(hash, t.expose());
        assert!(!format!("{t:?}").contains(&t.expose()));
        assert_eq!(SecretToken::parse(&t.expose()).unwrap().hash(), t.hash());
    }

    #[test]
    fn short_or_odd_tokens_are_refused() {
        assert!(SecretToken::parse("abcd").is_err());
        assert!(SecretToken::parse(&"G".repeat(64)).is_err());
        assert!(SecretToken::parse(&"A".repeat(64)).is_err());
    }
}
