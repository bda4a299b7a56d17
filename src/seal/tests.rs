//! The envelope: each test fails if values were stored as they are, or sealed without
//! binding them to their row.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::*;
use crate::secret::Secret;

const TOKEN: &str = "xero-refresh-7f3a9c";

fn key() -> SecretsKey {
    SecretsKey::generate().expect("a key")
}

fn slot(pair: &str, token: TokenKind) -> CredentialSlot<'_> {
    CredentialSlot {
        pair,
        system: "finance",
        token,
    }
}

fn refresh(pair: &str) -> CredentialSlot<'_> {
    slot(pair, TokenKind::Refresh)
}

#[test]
fn a_sealed_token_opens_to_itself_and_holds_no_trace_of_it() {
    let ring = Keyring::new(key(), []);
    let sealed = ring
        .seal(&refresh("acme"), &Secret::new(TOKEN))
        .expect("seal");
    assert!(
        sealed.starts_with(&format!("v1:{}:", ring.current_id())),
        "{sealed}"
    );
    assert!(!sealed.contains(TOKEN));
    assert!(is_sealed(&sealed));
    let opened = ring.open(&refresh("acme"), &sealed).expect("open");
    assert_eq!(opened.token.expose(), TOKEN);
    assert_eq!(opened.kept, Kept::Current);
}

#[test]
fn each_seal_uses_a_fresh_nonce() {
    let ring = Keyring::new(key(), []);
    let a = ring.seal(&refresh("acme"), &Secret::new(TOKEN)).expect("a");
    let b = ring.seal(&refresh("acme"), &Secret::new(TOKEN)).expect("b");
    assert_ne!(a, b, "the same token sealed twice looks the same");
}

#[test]
fn another_key_cannot_open_it_and_the_error_names_the_key_id_only() {
    let writer = Keyring::new(key(), []);
    let sealed = writer
        .seal(&refresh("acme"), &Secret::new(TOKEN))
        .expect("seal");
    let reader = Keyring::new(key(), []);
    let err = reader
        .open(&refresh("acme"), &sealed)
        .expect_err("wrong key");
    assert!(
        matches!(&err, SealError::UnknownKey { key_id, .. } if key_id == writer.current_id()),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(writer.current_id().as_str()), "{message}");
    assert!(message.contains("TANDEM_SECRETS_OLD_KEYS"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
}

#[test]
fn a_wrong_key_under_the_same_id_is_refused() {
    // An envelope relabelled with the reader's key id, as a key-id collision would be.
    let reader = Keyring::new(key(), []);
    let other = Keyring::new(key(), []);
    let sealed = other
        .seal(&refresh("acme"), &Secret::new(TOKEN))
        .expect("seal");
    let relabelled = sealed.replacen(other.current_id().as_str(), reader.current_id().as_str(), 1);
    let err = reader
        .open(&refresh("acme"), &relabelled)
        .expect_err("refused");
    assert!(matches!(err, SealError::Undecryptable { .. }), "{err:?}");
    assert!(err.to_string().contains(reader.current_id().as_str()));
}

#[test]
fn a_tampered_ciphertext_is_refused() {
    let ring = Keyring::new(key(), []);
    let sealed = ring
        .seal(&refresh("acme"), &Secret::new(TOKEN))
        .expect("seal");
    let (head, body) = sealed.rsplit_once(':').expect("envelope");
    let mut bytes = STANDARD.decode(body).expect("base64");
    let last = bytes.len() - 1;
    for at in [0, 30, last] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x01;
        let tampered = format!("{head}:{}", STANDARD.encode(&flipped));
        let err = ring
            .open(&refresh("acme"), &tampered)
            .expect_err("tampered");
        assert!(matches!(err, SealError::Undecryptable { .. }), "{err:?}");
    }
    bytes.truncate(20);
    let short = format!("{head}:{}", STANDARD.encode(&bytes));
    let err = ring.open(&refresh("acme"), &short).expect_err("cut short");
    assert!(matches!(err, SealError::Malformed { .. }), "{err:?}");
}

#[test]
fn a_value_moved_to_another_row_or_token_is_refused() {
    let ring = Keyring::new(key(), []);
    let sealed = ring
        .seal(&refresh("acme"), &Secret::new(TOKEN))
        .expect("seal");
    let elsewhere = [
        refresh("globex"),
        slot("acme", TokenKind::Access),
        CredentialSlot {
            pair: "acme",
            system: "crm",
            token: TokenKind::Refresh,
        },
    ];
    for place in elsewhere {
        let err = ring.open(&place, &sealed).expect_err("moved");
        assert!(matches!(err, SealError::Undecryptable { .. }), "{err:?}");
        assert!(err.to_string().contains("copied from another row"));
    }
}

#[test]
fn an_older_key_still_reads_and_new_seals_use_the_current_key() {
    let old = key();
    let before = Keyring::new(old.clone(), []);
    let sealed = before
        .seal(&refresh("acme"), &Secret::new(TOKEN))
        .expect("seal");

    let after = Keyring::new(key(), [old.clone()]);
    let opened = after.open(&refresh("acme"), &sealed).expect("open");
    assert_eq!(opened.token.expose(), TOKEN);
    assert_eq!(opened.kept, Kept::OlderKey(old.id().clone()));

    // Rotation: sealing what was read again puts it under the current key, which the
    // old keyring alone can no longer read.
    let resealed = after.seal(&refresh("acme"), &opened.token).expect("reseal");
    assert!(resealed.starts_with(&format!("v1:{}:", after.current_id())));
    assert_eq!(
        after.open(&refresh("acme"), &resealed).expect("open").kept,
        Kept::Current
    );
    assert!(matches!(
        before.open(&refresh("acme"), &resealed),
        Err(SealError::UnknownKey { .. })
    ));
}

#[test]
fn a_plain_text_token_is_read_as_such_so_it_can_be_sealed() {
    let ring = Keyring::new(key(), []);
    let opened = ring.open(&refresh("acme"), TOKEN).expect("plain");
    assert_eq!(opened.token.expose(), TOKEN);
    assert_eq!(opened.kept, Kept::PlainText);
    assert!(!is_sealed(TOKEN));
    assert!(!is_sealed("eyJhbGciOiJSUzI1NiJ9.e30.sig"));
}

#[test]
fn an_unknown_envelope_version_is_named() {
    let ring = Keyring::new(key(), []);
    let err = ring
        .open(&refresh("acme"), "v2:0123abcd:AAAA")
        .expect_err("v2");
    assert!(err.to_string().contains("`v2`"), "{err}");
}

#[test]
fn the_keyring_drops_an_older_key_equal_to_the_current_one() {
    let current = key();
    let ring = Keyring::new(current.clone(), [current.clone(), key()]);
    assert_eq!(ring.ids().len(), 2);
    assert_eq!(&ring.ids()[0], current.id());
}
