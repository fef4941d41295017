//! Partners' ISDN numbers (table `os4x_isdn_routes`, set with
//! `os4x route set --isdn-number`): whom `os4xsqd` dials, and which calls
//! `os4xrd_capi_<n>` accepts (a call whose calling number is no partner's
//! ISDN number is rejected). Both daemons read it; neither owns it.
//!
//! The table is kept beside `os4x_send_routes` rather than in it because
//! `set_route` replaces whole rows.

use os4x_store::sql::{params, OptionalExtension};
use serde::Serialize;

use crate::config::isdn::{digits, number_matches};
use crate::db::{unix_now, Db, DbError};

/// A partner's ISDN number and the controller to dial it through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsdnRoute {
    pub partner: String,
    pub number: String,
    pub controller: u32,
}

/// The ISDN routes in the os4x database.
#[derive(Debug, Clone)]
pub struct IsdnRoutes {
    db: Db,
}

impl IsdnRoutes {
    /// The routes table of `db` (the store migrated it on open).
    pub fn open(db: Db) -> Result<IsdnRoutes, DbError> {
        Ok(IsdnRoutes { db })
    }

    pub fn get(&self, partner: &str) -> Result<Option<IsdnRoute>, DbError> {
        self.db
            .lock()
            .query_row(
                "SELECT partner, number, controller FROM os4x_isdn_routes WHERE partner = ?1",
                [partner],
                |r| {
                    Ok(IsdnRoute {
                        partner: r.get(0)?,
                        number: r.get(1)?,
                        controller: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.db.error(e))
    }

    pub fn list(&self) -> Result<Vec<IsdnRoute>, DbError> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare("SELECT partner, number, controller FROM os4x_isdn_routes ORDER BY partner")
            .map_err(|e| self.db.error(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(IsdnRoute {
                    partner: r.get(0)?,
                    number: r.get(1)?,
                    controller: r.get(2)?,
                })
            })
            .map_err(|e| self.db.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db.error(e))
    }

    /// Sets (or with `None` removes) `partner`'s ISDN route.
    pub fn set(&self, partner: &str, route: Option<(&str, u32)>) -> Result<(), DbError> {
        let conn = self.db.lock();
        match route {
            Some((number, controller)) => conn.execute(
                "INSERT INTO os4x_isdn_routes (partner, number, controller, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (partner) DO UPDATE SET \
                 number = excluded.number, controller = excluded.controller, \
                 updated_at = excluded.updated_at",
                params![partner, digits(number), controller, unix_now()],
            ),
            None => conn.execute("DELETE FROM os4x_isdn_routes WHERE partner = ?1", [partner]),
        }
        .map(drop)
        .map_err(|e| self.db.error(e))
    }

    /// The partners whose ISDN number is `calling` (see
    /// [`number_matches`]).
    pub fn partners_calling_from(
        &self,
        calling: &str,
        match_digits: u32,
    ) -> Result<Vec<IsdnRoute>, DbError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|r| number_matches(calling, &r.number, match_digits))
            .collect())
    }
}
