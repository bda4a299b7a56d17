//! Credentials are sealed in their row: the contract on both backends. Each check reads
//! the raw row, so it fails if tokens were stored as they are.

use chrono::Utc;
use sea_orm::{ConnectionTrait, Statement};
use tandem::domain::{PairId, System};
use tandem::seal::{Keyring, SealError, SecretsKey, KEY_MISSING};
use tandem::secret::Secret;
use tandem::store::CredentialStore;
use tandem::store::{Credential, SeaStore, StoreError};

use super::{acme, Backend};

const ACCESS: &str = "access-token-5d2e81c4";
const REFRESH: &str = "refresh-token-a97f03be";

fn credential(access: &str, refresh: &str) -> Credential {
    Credential {
        access_token: Some(Secret::new(access)),
        refresh_token: Some(Secret::new(refresh)),
        expires_at: Some(Utc::now()),
        rotated_at: None,
    }
}

/// The raw `access_token` and `refresh_token` of one row, as the database holds them.
async fn raw_row(store: &SeaStore, pair: &str, system: &str) -> (String, String) {
    let db = store.connection();
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT access_token, refresh_token FROM credential \
                 WHERE pair = '{pair}' AND system = '{system}'"
            ),
        ))
        .await
        .expect("query")
        .expect("the row");
    (
        row.try_get("", "access_token").expect("access"),
        row.try_get("", "refresh_token").expect("refresh"),
    )
}

async fn execute(store: &SeaStore, sql: &str) {
    let db = store.connection();
    db.execute(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect(sql);
}

fn envelope_prefix(key: &SecretsKey) -> String {
    format!("v1:{}:", key.id())
}

pub(super) async fn credentials_are_sealed_in_their_row(b: &Backend) {
    b.store
        .save_credential(&acme(), System::Finance, &credential(ACCESS, REFRESH))
        .await
        .expect("save");
    let (access, refresh) = raw_row(&b.store, "acme", "finance").await;
    for stored in [&access, &refresh] {
        assert!(stored.starts_with(&envelope_prefix(&b.key)), "{stored}");
        assert!(
            !stored.contains(ACCESS) && !stored.contains(REFRESH),
            "{stored}"
        );
    }
    let read = b
        .other_process()
        .await
        .credential(&acme(), System::Finance)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(read.access_token.as_ref().map(Secret::expose), Some(ACCESS));
    assert_eq!(
        read.refresh_token.as_ref().map(Secret::expose),
        Some(REFRESH)
    );
}

pub(super) async fn a_credential_copied_to_another_row_is_refused(b: &Backend) {
    let s = &b.store;
    let globex = PairId::new("globex");
    s.save_credential(&acme(), System::Finance, &credential(ACCESS, REFRESH))
        .await
        .expect("save acme");
    s.save_credential(
        &globex,
        System::Finance,
        &credential("g-access", "g-refresh"),
    )
    .await
    .expect("save globex");
    // Someone with write access to the database copies acme's refresh token into
    // globex's row, and acme's access token into acme's own refresh token.
    let (access, refresh) = raw_row(s, "acme", "finance").await;
    execute(
        s,
        &format!("UPDATE credential SET refresh_token = '{refresh}' WHERE pair = 'globex'"),
    )
    .await;
    let err = s
        .credential(&globex, System::Finance)
        .await
        .expect_err("a token moved to another pair");
    assert!(
        matches!(err, StoreError::Sealed(SealError::Undecryptable { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("pair `globex` finance"), "{err}");
    execute(
        s,
        &format!("UPDATE credential SET refresh_token = '{access}' WHERE pair = 'acme'"),
    )
    .await;
    let err = s
        .credential(&acme(), System::Finance)
        .await
        .expect_err("an access token moved to the refresh token");
    assert!(err.to_string().contains("refresh token"), "{err}");
    assert!(!err.to_string().contains(ACCESS), "{err}");
}

pub(super) async fn plain_text_credentials_are_sealed_when_first_read(b: &Backend) {
    // A row as the store kept it before encryption.
    use sea_orm::{ActiveValue::Set, EntityTrait};
    entity::credential::Entity::insert(entity::credential::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        pair: Set("acme".into()),
        system: Set("crm".into()),
        access_token: Set(Some(ACCESS.into())),
        refresh_token: Set(Some(REFRESH.into())),
        expires_at: Set(None),
        rotated_at: Set(None),
        updated_at: Set(Utc::now()),
    })
    .exec_without_returning(b.store.connection())
    .await
    .expect("a plain-text row");
    let read = b
        .store
        .credential(&acme(), System::Crm)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        read.refresh_token.as_ref().map(Secret::expose),
        Some(REFRESH)
    );
    let (access, refresh) = raw_row(&b.store, "acme", "crm").await;
    for stored in [&access, &refresh] {
        assert!(stored.starts_with(&envelope_prefix(&b.key)), "{stored}");
    }
    assert!(!access.contains(ACCESS) && !refresh.contains(REFRESH));
    let again = b
        .other_process()
        .await
        .credential(&acme(), System::Crm)
        .await
        .expect("read sealed")
        .expect("there");
    assert_eq!(
        again.access_token.as_ref().map(Secret::expose),
        Some(ACCESS)
    );
}

pub(super) async fn rotation_seals_every_credential_under_the_new_key(b: &Backend) {
    b.store
        .save_credential(&acme(), System::Finance, &credential(ACCESS, REFRESH))
        .await
        .expect("save");
    b.store
        .save_credential(&acme(), System::Crm, &credential("crm-a", "crm-r"))
        .await
        .expect("save");
    let new = SecretsKey::generate().expect("key");
    let rotated = b
        .with_keys(Some(Keyring::new(new.clone(), [b.key.clone()])))
        .await;
    let report = rotated.reseal_credentials().await.expect("reseal");
    assert_eq!((report.resealed, report.current), (2, 0), "{report:?}");
    let report = rotated.reseal_credentials().await.expect("again");
    assert_eq!((report.resealed, report.current), (0, 2), "{report:?}");
    let (access, refresh) = raw_row(&b.store, "acme", "finance").await;
    assert!(access.starts_with(&envelope_prefix(&new)), "{access}");
    assert!(refresh.starts_with(&envelope_prefix(&new)), "{refresh}");

    // The new key alone reads everything; the old key alone no longer does.
    let only_new = b.with_keys(Some(Keyring::new(new.clone(), []))).await;
    let read = only_new
        .credential(&acme(), System::Finance)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        read.refresh_token.as_ref().map(Secret::expose),
        Some(REFRESH)
    );
    let only_old = b.with_keys(Some(Keyring::new(b.key.clone(), []))).await;
    let err = only_old
        .credential(&acme(), System::Finance)
        .await
        .expect_err("the retired key");
    assert!(err.to_string().contains(new.id().as_str()), "{err}");
}

pub(super) async fn a_missing_or_wrong_key_is_named_and_no_token_is_shown(b: &Backend) {
    b.store
        .save_credential(&acme(), System::Finance, &credential(ACCESS, REFRESH))
        .await
        .expect("save");

    let keyless = b.with_keys(None).await;
    let err = keyless
        .credential(&acme(), System::Finance)
        .await
        .expect_err("no key");
    assert_eq!(err.to_string(), KEY_MISSING);
    let err = keyless.reseal_credentials().await.expect_err("no key");
    assert_eq!(err.to_string(), KEY_MISSING);
    let err = keyless
        .save_credential(&acme(), System::Crm, &credential(ACCESS, REFRESH))
        .await
        .expect_err("nothing is written without a key");
    assert!(err.to_string().contains("TANDEM_SECRETS_KEY"), "{err}");
    assert!(keyless
        .credential(&acme(), System::Crm)
        .await
        .expect("read")
        .is_none());

    let wrong = SecretsKey::generate().expect("key");
    let wrong_store = b.with_keys(Some(Keyring::new(wrong.clone(), []))).await;
    let err = wrong_store
        .credential(&acme(), System::Finance)
        .await
        .expect_err("wrong key")
        .to_string();
    // A pass over the store reports the row it cannot open and leaves it as it is.
    let report = wrong_store.reseal_credentials().await.expect("a report");
    assert_eq!(report.unreadable.len(), 1, "{report:?}");
    assert_eq!(report.unreadable[0].pair, acme());
    assert_eq!(
        raw_row(&b.store, "acme", "finance").await.0[..12],
        envelope_prefix(&b.key)
    );
    assert!(err.contains(&format!("key id `{}`", b.key.id())), "{err}");
    assert!(err.contains(wrong.id().as_str()), "{err}");
    for secret in [ACCESS, REFRESH] {
        assert!(!err.contains(secret), "{err}");
    }
    assert!(!err.contains(b.key.to_base64().as_str()), "{err}");
}
