//! The two 32-byte blake3 identities the cache deals in: a [`Key`] names what a stage *would*
//! produce (hash of its inputs), a [`Digest`] names what it *did* produce (Merkle hash of its
//! artifact directory). They are distinct types so one can never be passed for the other.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that is not 64 hex digits was given where a key or digest was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a cache {what}: expected 64 hex digits (a blake3 hash, as printed by `apitune plan`)"
)]
pub struct ParseIdError {
    pub input: String,
    pub what: &'static str,
}

macro_rules! blake3_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 32]);

        impl $name {
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first 12 hex digits: enough to tell entries apart in tables and logs.
            pub fn short(&self) -> String {
                self.to_string()[..12].to_string()
            }
        }

        impl From<blake3::Hash> for $name {
            fn from(hash: blake3::Hash) -> Self {
                Self(*hash.as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(blake3::Hash::from_bytes(self.0).to_hex().as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(input: &str) -> Result<Self, Self::Err> {
                // blake3 accepts upper-case hex too; the canonical spelling is lower-case, and
                // directory names are derived from it, so only that spelling is accepted.
                let is_canonical = input.len() == 64
                    && input.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                match blake3::Hash::from_hex(input) {
                    Ok(hash) if is_canonical => Ok(Self(*hash.as_bytes())),
                    _ => Err(ParseIdError { input: input.to_string(), what: $what }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

blake3_id!(
    /// Content key of a stage output: blake3 over the canonical encoding of its
    /// [`KeyManifest`](super::KeyManifest). Names the directory `artifacts/<key>/`.
    Key,
    "key"
);

blake3_id!(
    /// Merkle digest of an artifact directory (see [`digest_dir`](super::digest_dir)); downstream
    /// stages put their inputs' digests into their own keys.
    Digest,
    "digest"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_spellings() {
        let key = Key::from(blake3::hash(b"x"));
        let text = key.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Key>().unwrap(), key);
        assert_eq!(serde_json::to_string(&key).unwrap(), format!("\"{text}\""));
        assert_eq!(
            serde_json::from_str::<Key>(&format!("\"{text}\"")).unwrap(),
            key
        );
        assert!(text.to_uppercase().parse::<Key>().is_err());
        assert!(text[..63].parse::<Key>().is_err());
        assert!("zz".repeat(32).parse::<Digest>().is_err());
        let err = "nope".parse::<Digest>().unwrap_err().to_string();
        assert!(err.contains("`nope` is not a cache digest"), "{err}");
    }
}
