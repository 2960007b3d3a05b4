//! Validated values that commands carry: parse once at the boundary, then trust the type.
//! Events deserialize these without re-validating: an event is a recorded fact, and a rule
//! tightened later must not make history unreadable.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub reason: &'static str,
}

fn invalid(field: &'static str, reason: &'static str) -> InvalidValue {
    InvalidValue { field, reason }
}

macro_rules! string_value {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_value!(
    /// A display name (firm, client, contact, project, member, role): trimmed, 1–200 chars.
    Name
);
string_value!(
    /// An email address, lower-cased so uniqueness per firm ignores case.
    Email
);
string_value!(
    /// An invoice number as the firm prints it, unique per firm: 1–64 visible characters.
    InvoiceNumber
);
string_value!(
    /// An absolute `https://` (or `http://`) URL, e.g. the firm's logo.
    Url
);

string_value!(
    /// A BCP 47 language tag such as `en-US` or `de-CH`, in canonical case: how the portal
    /// formats the firm's dates and amounts.
    Locale
);

impl Locale {
    /// What firms registered before locales existed format with.
    pub const DEFAULT: &'static str = "en-US";

    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let bad = || invalid("locale", "must be a language tag such as en-US or de-CH");
        let trimmed = s.trim();
        if trimmed.is_empty() || trimmed.len() > 35 {
            return Err(bad());
        }
        let id: unic_langid::LanguageIdentifier = trimmed.parse().map_err(|_| bad())?;
        // Registered languages have two- or three-letter subtags (ISO 639); "und" is none.
        if id.language.is_empty() || !(2..=3).contains(&id.language.as_str().len()) {
            return Err(bad());
        }
        Ok(Self(id.to_string()))
    }

    pub fn default_locale() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl Name {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, InvalidValue> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(invalid(field, "must not be empty"));
        }
        if trimmed.chars().count() > 200 {
            return Err(invalid(field, "must be at most 200 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(invalid(field, "must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

impl Email {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let email = s.trim().to_lowercase();
        let bad = || invalid("email", "must be an address like name@example.com");
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(bad());
        }
        Ok(Self(email))
    }
}

impl InvoiceNumber {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let n = s.trim();
        if n.is_empty() || n.chars().count() > 64 {
            return Err(invalid("number", "must be 1 to 64 characters"));
        }
        if n.chars().any(|c| c.is_control()) {
            return Err(invalid("number", "must not contain control characters"));
        }
        Ok(Self(n.to_owned()))
    }
}

impl Url {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, InvalidValue> {
        let u = s.trim();
        let rest = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"))
            .ok_or_else(|| invalid(field, "must be an absolute http(s) URL"))?;
        if rest.is_empty()
            || u.len() > 2048
            || u.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                field,
                "must be an absolute http(s) URL of at most 2048 characters",
            ));
        }
        Ok(Self(u.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_are_language_tags_in_canonical_case() {
        assert_eq!(Locale::parse("en-us").unwrap().as_str(), "en-US");
        assert_eq!(Locale::parse(" de-CH ").unwrap().as_str(), "de-CH");
        assert_eq!(Locale::parse("fr").unwrap().as_str(), "fr");
        for bad in [
            "",
            "english",
            "en_US!",
            "e",
            "und",
            "12-34",
            &"x".repeat(40),
        ] {
            assert!(Locale::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@ex..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Name::parse("name", "  Acme LLP ").unwrap().as_str(),
            "Acme LLP"
        );
        assert!(Name::parse("name", "   ").is_err());
        assert!(Name::parse("name", &"x".repeat(201)).is_err());
        assert!(Name::parse("name", "bell\u{7}").is_err());
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(Url::parse("logo_url", "https://cdn.example.com/logo.png").is_ok());
        assert!(Url::parse("logo_url", "javascript:alert(1)").is_err());
        assert!(Url::parse("logo_url", "https://").is_err());
    }
}
