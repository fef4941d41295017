//! The os4x database as the daemons use it: the store crate opens it
//! (with every table's migrations); this module re-exports its handle.

pub use os4x_store::{unix_now, Db, DbError, Location, SqlError};

#[cfg(test)]
mod tests {
    use super::*;
    use os4x_store::migrate;

    const COMPONENT: &str = os4x_store::schema::OS4X.name;
    const MIGRATIONS: &[migrate::Migration] = os4x_store::schema::OS4X.migrations;

    /// A database made by a build that knew only version 1 gains the
    /// per-partner client CA column and keeps its partners.
    #[test]
    fn version_1_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = os4x_store::testing::database_for(dir.path());
        {
            let mut conn = os4x_store::connect_unmigrated(&path).unwrap();
            migrate::apply(&mut conn, COMPONENT, &MIGRATIONS[..1]).unwrap();
            conn.execute(
                "INSERT INTO os4x_partners (odette_id, password_in, password_out, \
                 created_at, updated_at) VALUES ('O0013000000OLD', 'A', 'B', 0, 0)",
                [],
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        let p = crate::partner::PartnerStore::new(db.clone())
            .get("O0013000000OLD")
            .unwrap()
            .unwrap();
        assert_eq!(p.client_ca, None);
        let version = migrate::version(&db.lock(), COMPONENT).unwrap();
        assert_eq!(version, MIGRATIONS.len() as u32);
    }

    /// Version 3 rebuilds `os4x_received_files` (new state `rejected`):
    /// rows and the receipts that point at them survive, and partners get
    /// the plain security defaults.
    #[test]
    fn version_2_database_keeps_received_files_and_gains_security() {
        let dir = tempfile::tempdir().unwrap();
        let path = os4x_store::testing::database_for(dir.path());
        {
            let mut conn = os4x_store::connect_unmigrated(&path).unwrap();
            migrate::apply(&mut conn, COMPONENT, &MIGRATIONS[..2]).unwrap();
            conn.execute_batch(
                "INSERT INTO os4x_partners (odette_id, password_in, password_out, created_at, \
                 updated_at) VALUES ('O0013000000OLD', 'A', 'B', 0, 0);
                 INSERT INTO os4x_received_files (id, partner, dataset_name, file_timestamp, \
                 originator, destination, format, max_record_size, file_size_1k, state, \
                 partial_path, final_path, started_at) VALUES (7, 'O0013000000OLD', 'DSN', \
                 '202401010000000000', 'O0013000000OLD', 'O0013000000ME', 'U', 0, 1, \
                 'received', '/p', '/f', 1);
                 INSERT INTO os4x_receipts_due (received_id, partner, dataset_name, \
                 file_timestamp, destination, originator, created_at) VALUES (7, \
                 'O0013000000OLD', 'DSN', '202401010000000000', 'O0013000000OLD', \
                 'O0013000000ME', 1);",
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        let p = crate::partner::PartnerStore::new(db.clone())
            .get("O0013000000OLD")
            .unwrap()
            .unwrap();
        assert_eq!(p.certificate, None);
        assert_eq!(p.security, crate::partner::SecurityPolicy::default());
        let conn = db.lock();
        let (state, final_path): (String, String) = conn
            .query_row(
                "SELECT state, final_path FROM os4x_received_files WHERE id = 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((state.as_str(), final_path.as_str()), ("received", "/f"));
        let joined: i64 = conn
            .query_row(
                "SELECT count(*) FROM os4x_receipts_due d JOIN os4x_received_files f \
                 ON f.id = d.received_id",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(joined, 1);
        conn.execute(
            "UPDATE os4x_received_files SET state = 'rejected' WHERE id = 7",
            [],
        )
        .unwrap();
        assert!(conn
            .execute(
                "UPDATE os4x_received_files SET state = 'bogus' WHERE id = 7",
                []
            )
            .is_err());
    }
}
