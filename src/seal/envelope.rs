//! The envelope a sealed token is stored in: `v1:<key id>:<base64 of nonce, ciphertext
//! and tag>`, XChaCha20-Poly1305 with a random 24-byte nonce per value.
//!
//! The associated data names the row and the token (pair, system, access or refresh)
//! and the key id, so a value copied into another row, or relabelled with another key
//! id, fails authentication instead of being used.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::{CredentialSlot, KeyId, SealError, SecretsKey};
use crate::secret::Secret;

const VERSION: &str = "v1";
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;

/// Whether a stored value is an envelope (of any version) rather than a plain-text
/// token from before encryption.
pub fn is_sealed(stored: &str) -> bool {
    stored.split_once(':').is_some_and(|(version, _)| {
        version.len() > 1
            && version.starts_with('v')
            && version[1..].bytes().all(|b| b.is_ascii_digit())
    })
}

/// The key that seals new values, and older keys still accepted for reading.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: SecretsKey,
    older: Vec<SecretsKey>,
}

/// How a token read from the store was kept, which says whether it needs sealing again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// Sealed under the current key.
    Current,
    /// Sealed under an older key, still accepted for reading.
    OlderKey(KeyId),
    /// In plain text, from before encryption.
    PlainText,
}

/// A token read from the store.
#[derive(Debug)]
pub struct Opened {
    pub token: Secret,
    pub kept: Kept,
}

impl Keyring {
    /// A keyring sealing under `current`; an older key equal to it is dropped.
    pub fn new(current: SecretsKey, older: impl IntoIterator<Item = SecretsKey>) -> Self {
        let mut kept: Vec<SecretsKey> = Vec::new();
        for key in older {
            if key.id() != current.id() && kept.iter().all(|k| k.id() != key.id()) {
                kept.push(key);
            }
        }
        Self {
            current,
            older: kept,
        }
    }

    pub fn current_id(&self) -> &KeyId {
        self.current.id()
    }

    /// The ids of every key this keyring reads with, the current one first.
    pub fn ids(&self) -> Vec<KeyId> {
        std::iter::once(&self.current)
            .chain(&self.older)
            .map(|k| k.id().clone())
            .collect()
    }

    /// Seals `token` for `slot` under the current key.
    pub fn seal(&self, slot: &CredentialSlot<'_>, token: &Secret) -> Result<String, SealError> {
        let key = &self.current;
        let nonce = XNonce::try_generate().map_err(|err| SealError::Random(err.to_string()))?;
        let aad = associated_data(slot, key.id());
        let sealed = XChaCha20Poly1305::new(&key.cipher_key())
            .encrypt(
                &nonce,
                Payload {
                    msg: token.expose().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Random("the cipher refused the value".into()))?;
        let mut body = Vec::with_capacity(NONCE_BYTES + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        Ok(format!("{VERSION}:{}:{}", key.id(), STANDARD.encode(body)))
    }

    /// Reads a stored value for `slot`: an envelope under a key of this keyring, or a
    /// plain-text token from before encryption.
    pub fn open(&self, slot: &CredentialSlot<'_>, stored: &str) -> Result<Opened, SealError> {
        if !is_sealed(stored) {
            return Ok(Opened {
                token: Secret::new(stored),
                kept: Kept::PlainText,
            });
        }
        let (key_id, body) = parse(slot, stored)?;
        let candidates: Vec<&SecretsKey> = std::iter::once(&self.current)
            .chain(&self.older)
            .filter(|k| *k.id() == key_id)
            .collect();
        if candidates.is_empty() {
            return Err(SealError::UnknownKey {
                slot: slot.to_string(),
                key_id,
                known: self.ids(),
            });
        }
        let (nonce, ciphertext) = body.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| malformed(slot))?;
        let aad = associated_data(slot, &key_id);
        for key in candidates {
            let opened = XChaCha20Poly1305::new(&key.cipher_key()).decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            );
            if let Ok(plain) = opened {
                let token = String::from_utf8(plain).map_err(|_| malformed(slot))?;
                let kept = if key.id() == self.current.id() {
                    Kept::Current
                } else {
                    Kept::OlderKey(key_id)
                };
                return Ok(Opened {
                    token: Secret::new(token),
                    kept,
                });
            }
        }
        Err(SealError::Undecryptable {
            slot: slot.to_string(),
            key_id,
        })
    }
}

/// The key id and the nonce-and-ciphertext bytes of an envelope.
fn parse(slot: &CredentialSlot<'_>, stored: &str) -> Result<(KeyId, Vec<u8>), SealError> {
    let mut parts = stored.splitn(3, ':');
    let (Some(version), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(slot));
    };
    if version != VERSION {
        return Err(SealError::UnknownVersion {
            slot: slot.to_string(),
            version: version.to_string(),
        });
    }
    let key_id = KeyId::parse(key_id).ok_or_else(|| malformed(slot))?;
    let body = STANDARD.decode(body).map_err(|_| malformed(slot))?;
    if body.len() < NONCE_BYTES + TAG_BYTES {
        return Err(malformed(slot));
    }
    Ok((key_id, body))
}

fn malformed(slot: &CredentialSlot<'_>) -> SealError {
    SealError::Malformed {
        slot: slot.to_string(),
    }
}

/// What the ciphertext is bound to. Pair names hold no NUL (they are checked at load),
/// so the fields cannot run into each other.
fn associated_data(slot: &CredentialSlot<'_>, key_id: &KeyId) -> Vec<u8> {
    [
        "tandem credential",
        VERSION,
        key_id.as_str(),
        slot.pair,
        slot.system,
        slot.token.as_str(),
    ]
    .join("\0")
    .into_bytes()
}
