//! The key that seals credentials: 32 random bytes, read from settings as base64 or
//! hex, and known in envelopes and messages only by its id.

use std::fmt;

use base64::Engine as _;
use chacha20poly1305::aead::{Generate, Key};
use chacha20poly1305::XChaCha20Poly1305;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::SealError;

/// The length of a key, in bytes.
pub const KEY_BYTES: usize = 32;

/// What a key looks like, for messages about a malformed one.
pub const KEY_FORMAT: &str = "32 random bytes written as base64 (44 characters) or hex \
     (64 characters); generate one with `openssl rand -base64 32`";

/// A short public name for a key, derived from it: envelopes carry it so a reader knows
/// which key to use, and errors name it so a person knows which key is missing. It is
/// a truncated SHA-256 of a 256-bit random key, so it tells nothing about the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// A key id as written in an envelope: eight lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 8
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One key. Its bytes are wiped when it is dropped, and its `Debug` shows only its id.
#[derive(Clone)]
pub struct SecretsKey {
    bytes: Zeroizing<[u8; KEY_BYTES]>,
    id: KeyId,
}

/// Why a key from the settings is not usable; never holds the text that was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {KEY_FORMAT}; the value given {found}")]
pub struct KeyFormatError {
    found: String,
}

impl SecretsKey {
    /// Reads a key written as hex (64 digits) or base64 (standard or URL-safe, padded
    /// or not). Surrounding whitespace is ignored, since key files end with a newline.
    pub fn parse(text: &str) -> Result<Self, KeyFormatError> {
        let text = text.trim();
        let decoded = if text.len() == 2 * KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            hex::decode(text).ok()
        } else {
            decode_base64(text)
        };
        let Some(decoded) = decoded.map(Zeroizing::new) else {
            return Err(KeyFormatError {
                found: format!("is {} characters of neither", text.chars().count()),
            });
        };
        let bytes: [u8; KEY_BYTES] = decoded.as_slice().try_into().map_err(|_| KeyFormatError {
            found: format!("decodes to {} bytes", decoded.len()),
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, SealError> {
        let key = Key::<XChaCha20Poly1305>::try_generate()
            .map_err(|err| SealError::Random(err.to_string()))?;
        let mut bytes = [0u8; KEY_BYTES];
        bytes.copy_from_slice(&key);
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let digest = Sha256::new()
            .chain_update(b"tandem secrets key id\0")
            .chain_update(bytes.as_slice())
            .finalize();
        let id = KeyId(hex::encode(&digest[..4]));
        Self { bytes, id }
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The key as base64, for writing a key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.bytes.as_slice()))
    }

    pub(super) fn cipher_key(&self) -> Key<XChaCha20Poly1305> {
        Key::<XChaCha20Poly1305>::from(*self.bytes)
    }
}

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretsKey({})", self.id)
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn hex_and_base64_of_the_same_bytes_are_the_same_key() {
        let from_hex = SecretsKey::parse(HEX).expect("hex");
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(HEX).expect("hex"));
        let from_b64 = SecretsKey::parse(&format!("{b64}\n")).expect("base64 with a newline");
        assert_eq!(from_hex.id(), from_b64.id());
        assert_eq!(from_hex.to_base64().as_str(), b64);
    }

    #[test]
    fn a_wrong_length_or_alphabet_is_refused_without_echoing_the_value() {
        for bad in ["", "c2hvcnQ=", &HEX[..62], "not a key at all, clearly!"] {
            let err = SecretsKey::parse(bad).expect_err(bad).to_string();
            assert!(err.contains("openssl rand -base64 32"), "{err}");
            assert!(bad.is_empty() || !err.contains(bad), "{err} echoes {bad}");
        }
        let short = SecretsKey::parse("c2hvcnQ=")
            .expect_err("5 bytes")
            .to_string();
        assert!(short.contains("decodes to 5 bytes"), "{short}");
    }

    #[test]
    fn ids_differ_between_keys_and_debug_shows_only_the_id() {
        let a = SecretsKey::generate().expect("a");
        let b = SecretsKey::generate().expect("b");
        assert_ne!(a.id(), b.id());
        assert_eq!(format!("{a:?}"), format!("SecretsKey({})", a.id()));
        assert!(KeyId::parse(a.id().as_str()).is_some());
        assert!(!format!("{a:?}").contains(a.to_base64().as_str()));
    }
}
