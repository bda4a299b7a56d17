//! The one place where an error of the store or the bus becomes an answer: its status
//! and its body. The detail (a driver's message, SQL, a broker's reason) goes to the
//! log; the caller gets what it can act on, the same words on every endpoint.
//!
//! A store or a bus that does not answer is a 503 everywhere ("try again"); data the
//! store holds but cannot read is a 500. Errors that mean something to one endpoint
//! (a conflict not found, already decided) are matched by that endpoint first.

use poem_openapi::payload::Json;

use super::ApiError;
use crate::bus::BusError;
use crate::store::StoreError;

/// What an endpoint answers when the store or the bus fails it.
#[derive(Debug)]
pub enum Failure {
    /// 503: the store or the bus did not answer, or what was read changed meanwhile.
    Unavailable(Json<ApiError>),
    /// 500: something Tandem holds is not as it should be; the log says what.
    Internal(Json<ApiError>),
}

/// What an endpoint that only asks the bus answers when it fails.
#[derive(Debug)]
pub struct Unavailable(pub Json<ApiError>);

const STORE_UNAVAILABLE: &str = "the store is unavailable; try again";
const BUS_UNAVAILABLE: &str = "the bus is unavailable; try again";
const INTERNAL: &str = "internal error; the server's log has the detail";

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Database(_) | StoreError::Unconfirmed(_) => {
                tracing::error!(error = %err, "the store did not answer an admin request");
                Failure::Unavailable(ApiError::new(STORE_UNAVAILABLE))
            }
            StoreError::Concurrent(_) => {
                tracing::warn!(error = %err, "an admin request met a concurrent change");
                Failure::Unavailable(ApiError::new(
                    "the record changed while this was asked; try again",
                ))
            }
            StoreError::AlreadyLinked(_)
            | StoreError::NotFound(_)
            | StoreError::AlreadyDecided(_)
            | StoreError::Corrupt(_)
            | StoreError::Sealed(_) => {
                tracing::error!(error = %err, "an admin request failed inside the store");
                Failure::Internal(ApiError::new(INTERNAL))
            }
        }
    }
}

impl From<BusError> for Unavailable {
    fn from(err: BusError) -> Self {
        tracing::error!(error = %err, "the bus did not answer an admin request");
        Unavailable(ApiError::new(BUS_UNAVAILABLE))
    }
}

impl From<BusError> for Failure {
    fn from(err: BusError) -> Self {
        Failure::Unavailable(Unavailable::from(err).0)
    }
}

/// Lets an endpoint's answer be made from a [`Failure`] (its enum has `Unavailable`
/// at 503 and `Internal` at 500) or an [`Unavailable`] (only the 503).
macro_rules! answers_failures {
    ($answer:ident) => {
        impl From<$crate::api::admin::failure::Failure> for $answer {
            fn from(failure: $crate::api::admin::failure::Failure) -> Self {
                match failure {
                    $crate::api::admin::failure::Failure::Unavailable(body) => {
                        $answer::Unavailable(body)
                    }
                    $crate::api::admin::failure::Failure::Internal(body) => $answer::Internal(body),
                }
            }
        }
    };
    ($answer:ident, bus only) => {
        impl From<$crate::api::admin::failure::Unavailable> for $answer {
            fn from(failure: $crate::api::admin::failure::Unavailable) -> Self {
                $answer::Unavailable(failure.0)
            }
        }
    };
}

pub(crate) use answers_failures;

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::DbErr;

    #[test]
    fn no_driver_text_reaches_the_answer() {
        let err = StoreError::Database(DbErr::Custom(
            "error returned from database: invalid byte sequence for encoding \"UTF8\": 0x00 SELECT * FROM entity_link".into(),
        ));
        let Failure::Unavailable(body) = Failure::from(err) else {
            panic!("a database error is a 503");
        };
        assert_eq!(body.0.error, STORE_UNAVAILABLE);
        let Failure::Internal(body) = Failure::from(StoreError::Corrupt("sync_status `x`".into()))
        else {
            panic!("unreadable data is a 500");
        };
        assert!(!body.0.error.contains("sync_status"));
    }
}
