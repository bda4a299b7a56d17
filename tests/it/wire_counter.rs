//! The PostgreSQL wire counter counts what it should: known sequences, by hand over a
//! raw socket, through a bare sqlx connection, and through a sea-orm pool.

use crate::support::{self, pg_wire::PgWire, pg_wire::TripKind};

use sea_orm::sqlx::{Connection as _, PgConnection};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, Statement, TransactionTrait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use TripKind::*;

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads server messages until one of type `until`.
async fn read_until(stream: &mut TcpStream, until: u8) {
    loop {
        let kind = stream.read_u8().await.expect("server message");
        let len = stream.read_u32().await.expect("length") as usize;
        let mut body = vec![0; len - 4];
        stream.read_exact(&mut body).await.expect("body");
        assert_ne!(
            kind,
            b'E',
            "server error: {}",
            String::from_utf8_lossy(&body)
        );
        if kind == until {
            return;
        }
    }
}

/// A client written by hand: startup, a simple query, then Parse and Describe with a
/// Flush it waits on, then the Sync that ends them.
#[tokio::test]
async fn counts_a_hand_written_exchange() {
    let db = support::TestDatabase::create().await;
    let wire = PgWire::start().await;
    let url = wire.url(&db.url);
    let addr = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(addr, _)| addr.to_string())
        .expect("proxy address");
    let database = url.rsplit('/').next().expect("database name");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut startup = 196_608u32.to_be_bytes().to_vec();
    for part in ["user", "postgres", "database", database] {
        startup.extend_from_slice(part.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut packet = (startup.len() as u32 + 4).to_be_bytes().to_vec();
    packet.extend_from_slice(&startup);
    stream.write_all(&packet).await.expect("startup");
    read_until(&mut stream, b'Z').await;

    stream
        .write_all(&message(b'Q', b"SELECT 1\0"))
        .await
        .expect("query");
    read_until(&mut stream, b'Z').await;

    let mut batch = message(b'P', b"\0SELECT 2\0\0\0");
    batch.extend(message(b'D', b"S\0"));
    batch.extend(message(b'H', b""));
    stream.write_all(&batch).await.expect("parse");
    read_until(&mut stream, b'T').await;
    stream.write_all(&message(b'S', b"")).await.expect("sync");
    read_until(&mut stream, b'Z').await;
    stream
        .write_all(&message(b'X', b""))
        .await
        .expect("terminate");

    let report = wire.take().await;
    println!("{report}");
    assert_eq!(report.kinds(), vec![Connect, Query, Flush, Prepare]);
    assert_eq!(
        report.statements(),
        vec!["SELECT 1", "SELECT 2", "SELECT 2"]
    );
    assert_eq!((report.queries(), report.syncs()), (1, 1));
}

/// A bare sqlx connection prepares a statement once, then only executes it; BEGIN and
/// COMMIT are simple queries.
#[tokio::test]
async fn counts_a_bare_sqlx_connection() {
    let db = support::TestDatabase::create().await;
    let wire = PgWire::start().await;
    let mut conn = PgConnection::connect(&wire.url(&db.url))
        .await
        .expect("connect");
    assert_eq!(wire.take().await.kinds(), vec![Connect]);

    for _ in 0..2 {
        sea_orm::sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .expect("select");
    }
    let report = wire.take().await;
    println!("{report}");
    assert_eq!(report.kinds(), vec![Prepare, Execute, Execute]);
    assert_eq!(report.statements(), vec!["SELECT 1"; 3]);

    let mut txn = conn.begin().await.expect("begin");
    for _ in 0..2 {
        sea_orm::sqlx::query("SELECT 1")
            .execute(&mut *txn)
            .await
            .expect("select");
    }
    txn.commit().await.expect("commit");
    let report = wire.take().await;
    println!("{report}");
    assert_eq!(report.kinds(), vec![Query, Execute, Execute, Query]);
    assert_eq!(
        report.statements(),
        vec!["BEGIN", "SELECT 1", "SELECT 1", "COMMIT"]
    );
    let _ = conn.close().await;
}

/// Through a sea-orm pool with sqlx's defaults: a check before each use and a ping at
/// each give-back. One `SELECT 1` costs four round trips the first time and three
/// after; a transaction of two statements six.
#[tokio::test]
async fn counts_a_sea_orm_pool_with_pings() {
    let db = support::TestDatabase::create().await;
    let wire = PgWire::start().await;
    let mut options = ConnectOptions::new(wire.url(&db.url));
    options
        .max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    let pool = Database::connect(options).await.expect("connect");
    let report = wire.take().await;
    println!("{report}");
    // The pool tries its first connection and gives it back.
    assert_eq!(report.kinds(), vec![Connect, GiveBackPing]);

    let select = || Statement::from_string(pool.get_database_backend(), "SELECT 1");
    pool.query_one(select()).await.expect("select");
    let first = wire.take().await;
    pool.query_one(select()).await.expect("select");
    let second = wire.take().await;
    println!("{first}{second}");
    assert_eq!(
        first.kinds(),
        vec![CheckPing, Prepare, Execute, GiveBackPing]
    );
    assert_eq!(second.kinds(), vec![CheckPing, Execute, GiveBackPing]);
    assert_eq!((second.round_trips(), second.waited()), (3, 2));

    let txn = pool.begin().await.expect("begin");
    txn.query_one(select()).await.expect("select");
    txn.query_one(select()).await.expect("select");
    txn.commit().await.expect("commit");
    let report = wire.take().await;
    println!("{report}");
    assert_eq!(
        report.kinds(),
        vec![CheckPing, Query, Execute, Execute, Query, GiveBackPing]
    );
    assert_eq!((report.queries(), report.syncs()), (2, 4));
    pool.close().await.expect("close");
}

/// Without the check before use, a statement is one round trip waited for and the
/// give-back ping sqlx sends from its own task.
#[tokio::test]
async fn counts_a_sea_orm_pool_without_the_check_before_use() {
    let db = support::TestDatabase::create().await;
    let wire = PgWire::start().await;
    let mut options = ConnectOptions::new(wire.url(&db.url));
    options
        .max_connections(1)
        .min_connections(1)
        .test_before_acquire(false)
        .sqlx_logging(false);
    let pool = Database::connect(options).await.expect("connect");
    let select = || Statement::from_string(pool.get_database_backend(), "SELECT 1");
    pool.query_one(select())
        .await
        .expect("warm the statement cache");
    wire.take().await;

    pool.query_one(select()).await.expect("select");
    let report = wire.take().await;
    println!("{report}");
    assert_eq!(report.kinds(), vec![Execute, GiveBackPing]);
    assert_eq!(report.waited(), 1);

    // A reset forgets; a snapshot does not.
    pool.query_one(select()).await.expect("select");
    wire.quiet().await;
    assert_eq!(wire.snapshot().round_trips(), 2);
    assert_eq!(wire.snapshot().round_trips(), 2);
    wire.reset();
    assert_eq!(wire.snapshot().round_trips(), 0);
    pool.close().await.expect("close");
}
