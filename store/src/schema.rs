//! Every table of the os4x database, as versioned migrations per
//! component (`os4x_schema` keeps one version per component).
//!
//! This is the whole schema: [`crate::open`] applies all of it, so every
//! program sees the same tables whichever of them opened a database first.
//! Append new steps; never edit a released one (databases in the field
//! have run it already).

use crate::migrate::Migration;

/// One component's schema: its name in `os4x_schema` and its steps.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    pub name: &'static str,
    pub migrations: &'static [Migration],
}

impl Component {
    /// The version this build brings the component to.
    pub fn version(&self) -> u32 {
        self.migrations.last().map_or(0, |m| m.version)
    }
}

/// Every component, in the order they are migrated.
pub const ALL: &[Component] = &[PIDS, OS4X, QUEUE, ISDN_ROUTES, USERS, CLIENT, DEBUG];

/// PID bookkeeping (`os4x_pids`), read by every daemon at start and by `os4x-pidctl`.
pub const PIDS: Component = Component {
    name: "pidstore",
    migrations: &[
        // Version 1 is the table as admins of the predecessor product know it;
        // `IF NOT EXISTS` lets an existing database of that product be adopted.
        Migration {
            version: 1,
            description: "os4x_pids table",
            sql: "CREATE TABLE IF NOT EXISTS os4x_pids (
                  program  TEXT    NOT NULL,
                  serverID INTEGER NOT NULL,
                  pid      INTEGER NOT NULL DEFAULT -1,
                  PRIMARY KEY (program, serverID)
              );",
        },
        // Version 2: enough identity to tell the recorded process from a later
        // one with the same PID, and when/by whom the row was written.
        Migration {
            version: 2,
            description: "process identity columns",
            sql: "ALTER TABLE os4x_pids ADD COLUMN start_ticks   INTEGER;
              ALTER TABLE os4x_pids ADD COLUMN boot_id       TEXT;
              ALTER TABLE os4x_pids ADD COLUMN executable    TEXT;
              ALTER TABLE os4x_pids ADD COLUMN written_at    INTEGER;
              ALTER TABLE os4x_pids ADD COLUMN invocation_id TEXT;",
        },
        // Version 3: nodes sharing one database. A row per program, server
        // id and host (rows written before have host ''; the daemon on
        // that host adopts them at its next start), and a row per node with
        // its heartbeat.
        Migration {
            version: 3,
            description: "os4x_pids keyed by host too; os4x_nodes with heartbeats",
            sql: "CREATE TABLE os4x_pids_v3 (
                  program       TEXT    NOT NULL,
                  serverID      INTEGER NOT NULL,
                  host          TEXT    NOT NULL DEFAULT '',
                  pid           INTEGER NOT NULL DEFAULT -1,
                  start_ticks   INTEGER,
                  boot_id       TEXT,
                  executable    TEXT,
                  written_at    INTEGER,
                  invocation_id TEXT,
                  PRIMARY KEY (program, serverID, host)
              );
              INSERT INTO os4x_pids_v3 (program, serverID, host, pid, start_ticks, boot_id,
                  executable, written_at, invocation_id)
              SELECT program, serverID, '', pid, start_ticks, boot_id, executable, written_at,
                  invocation_id FROM os4x_pids;
              DROP TABLE os4x_pids;
              ALTER TABLE os4x_pids_v3 RENAME TO os4x_pids;
              -- One row per node (server_id): where it runs and when one of
              -- its daemons last said it is alive (database clock).
              CREATE TABLE os4x_nodes (
                  server_id    INTEGER NOT NULL,
                  host         TEXT    NOT NULL,
                  boot_id      TEXT,
                  version      TEXT,
                  started_at   INTEGER NOT NULL,
                  heartbeat_at INTEGER NOT NULL,
                  PRIMARY KEY (server_id)
              );",
        },
    ],
};

/// Partners, received files, receipts due, post-receive actions.
pub const OS4X: Component = Component {
    name: "os4x",
    migrations: &[
    Migration {
        version: 1,
        description: "partners, received files, receipts due",
        sql: "
CREATE TABLE os4x_partners (
    odette_id            TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    name                 TEXT NOT NULL DEFAULT '',
    -- SSIDPSWD the partner must send us / we send the partner.
    password_in          TEXT NOT NULL,
    password_out         TEXT NOT NULL,
    direction            TEXT NOT NULL DEFAULT 'both'
                         CHECK (direction IN ('both', 'send', 'receive')),
    tls_required         INTEGER NOT NULL DEFAULT 0,
    client_cert_required INTEGER NOT NULL DEFAULT 0,
    -- Lowercase hex SHA-256 of the partner's TLS client certificate (DER).
    client_cert_sha256   TEXT,
    post_receive         TEXT,
    enabled              INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE TABLE os4x_received_files (
    id               INTEGER PRIMARY KEY,
    partner          TEXT NOT NULL,
    dataset_name     TEXT NOT NULL,
    file_timestamp   TEXT NOT NULL,
    originator       TEXT NOT NULL,
    destination      TEXT NOT NULL,
    user_data        TEXT NOT NULL DEFAULT '',
    format           TEXT NOT NULL,
    max_record_size  INTEGER NOT NULL,
    file_size_1k     INTEGER NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    -- 'partial': being received or interrupted (restartable);
    -- 'received': durably stored at final_path.
    state            TEXT NOT NULL CHECK (state IN ('partial', 'received')),
    partial_path     TEXT NOT NULL,
    final_path       TEXT,
    -- Local octets durably written when the transfer was interrupted.
    restart_offset   INTEGER NOT NULL DEFAULT 0,
    records          INTEGER,
    units            INTEGER,
    peer             TEXT,
    started_at       INTEGER NOT NULL,
    received_at      INTEGER,
    action_exit      INTEGER,
    action_at        INTEGER,
    UNIQUE (partner, dataset_name, file_timestamp, originator, destination)
);
CREATE INDEX os4x_received_files_received_at ON os4x_received_files (received_at);
CREATE TABLE os4x_receipts_due (
    id               INTEGER PRIMARY KEY,
    received_id      INTEGER REFERENCES os4x_received_files (id),
    -- The partner the receipt is routed through (the session partner).
    partner          TEXT NOT NULL,
    kind             TEXT NOT NULL DEFAULT 'EERP' CHECK (kind IN ('EERP', 'NERP')),
    dataset_name     TEXT NOT NULL,
    file_timestamp   TEXT NOT NULL,
    user_data        TEXT NOT NULL DEFAULT '',
    -- EERPDEST: the file's originator; EERPORIG: its final destination.
    destination      TEXT NOT NULL,
    originator       TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'due' CHECK (state IN ('due', 'sent')),
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER
);
CREATE INDEX os4x_receipts_due_partner ON os4x_receipts_due (partner, state);
",
    },
    Migration {
        version: 2,
        description: "per-partner client certificate CA",
        sql: "
-- Absolute path of a PEM bundle of CA certificates the partner's TLS client
-- certificate must chain to (instead of [tls] client_ca). Read by the TLS
-- receive daemon at every SSID of that partner.
ALTER TABLE os4x_partners ADD COLUMN client_ca TEXT;
",
    },
    Migration {
        version: 3,
        description: "OFTP2 security: partner certificates and policies, signed receipts, NERPs, rejected files",
        sql: "
-- Absolute path of the partner's certificate (PEM or DER), read at session
-- time: signatures on its files and receipts, encryption to it, secure
-- authentication.
ALTER TABLE os4x_partners ADD COLUMN certificate TEXT;
-- Outgoing file services for this partner (RFC 5024 section 6) and SFIDCIPH.
ALTER TABLE os4x_partners ADD COLUMN sign_files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_partners ADD COLUMN encrypt_files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_partners ADD COLUMN compress_files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_partners ADD COLUMN signed_eerp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_partners ADD COLUMN cipher_suite INTEGER NOT NULL DEFAULT 2;
-- SSIDAUTH: secure authentication (AUCH/AURP) with this partner.
ALTER TABLE os4x_partners ADD COLUMN secure_auth INTEGER NOT NULL DEFAULT 0;
-- Incoming files from this partner must be signed / encrypted (else SFNA
-- 20 / 17).
ALTER TABLE os4x_partners ADD COLUMN require_signed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_partners ADD COLUMN require_encrypted INTEGER NOT NULL DEFAULT 0;

-- Received files gain the state 'rejected' (transferred, but the file
-- services failed: bad signature, cannot decrypt...; a NERP is due and
-- nothing was delivered), and receipts due carry EERPHSH/NERPHSH, the
-- file's cipher suite, whether the partner asked for a signed receipt
-- (SFIDSIGN) and, for NERPs, reason and text. SQLite cannot change a CHECK
-- constraint, so both tables are rebuilt. Foreign keys are enforced (the
-- bundled SQLite's default), so the child table is rebuilt to point at the
-- new parent before the old parent is dropped; the renames carry the
-- reference over (SQLite >= 3.26).
CREATE TABLE os4x_received_files_v3 (
    id               INTEGER PRIMARY KEY,
    partner          TEXT NOT NULL,
    dataset_name     TEXT NOT NULL,
    file_timestamp   TEXT NOT NULL,
    originator       TEXT NOT NULL,
    destination      TEXT NOT NULL,
    user_data        TEXT NOT NULL DEFAULT '',
    format           TEXT NOT NULL,
    max_record_size  INTEGER NOT NULL,
    file_size_1k     INTEGER NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL CHECK (state IN ('partial', 'received', 'rejected')),
    partial_path     TEXT NOT NULL,
    final_path       TEXT,
    restart_offset   INTEGER NOT NULL DEFAULT 0,
    records          INTEGER,
    units            INTEGER,
    peer             TEXT,
    started_at       INTEGER NOT NULL,
    received_at      INTEGER,
    action_exit      INTEGER,
    action_at        INTEGER,
    -- What the file services found: e.g. 'decrypted, signature verified (CN=...)'.
    security         TEXT,
    -- Why a file was rejected.
    security_error   TEXT,
    UNIQUE (partner, dataset_name, file_timestamp, originator, destination)
);
INSERT INTO os4x_received_files_v3 (id, partner, dataset_name, file_timestamp, originator,
    destination, user_data, format, max_record_size, file_size_1k, description, state,
    partial_path, final_path, restart_offset, records, units, peer, started_at, received_at,
    action_exit, action_at)
SELECT id, partner, dataset_name, file_timestamp, originator, destination, user_data, format,
    max_record_size, file_size_1k, description, state, partial_path, final_path, restart_offset,
    records, units, peer, started_at, received_at, action_exit, action_at
FROM os4x_received_files;
CREATE TABLE os4x_receipts_due_v3 (
    id               INTEGER PRIMARY KEY,
    received_id      INTEGER REFERENCES os4x_received_files_v3 (id),
    partner          TEXT NOT NULL,
    kind             TEXT NOT NULL DEFAULT 'EERP' CHECK (kind IN ('EERP', 'NERP')),
    dataset_name     TEXT NOT NULL,
    file_timestamp   TEXT NOT NULL,
    user_data        TEXT NOT NULL DEFAULT '',
    destination      TEXT NOT NULL,
    originator       TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'due' CHECK (state IN ('due', 'sent')),
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    file_hash        BLOB,
    cipher_suite     INTEGER NOT NULL DEFAULT 0,
    signed           INTEGER NOT NULL DEFAULT 0,
    nerp_reason      INTEGER,
    nerp_text        TEXT
);
INSERT INTO os4x_receipts_due_v3 (id, received_id, partner, kind, dataset_name, file_timestamp,
    user_data, destination, originator, state, created_at, sent_at)
SELECT id, received_id, partner, kind, dataset_name, file_timestamp, user_data, destination,
    originator, state, created_at, sent_at
FROM os4x_receipts_due;
DROP TABLE os4x_receipts_due;
DROP TABLE os4x_received_files;
ALTER TABLE os4x_received_files_v3 RENAME TO os4x_received_files;
ALTER TABLE os4x_receipts_due_v3 RENAME TO os4x_receipts_due;
CREATE INDEX os4x_received_files_received_at ON os4x_received_files (received_at);
CREATE INDEX os4x_receipts_due_partner ON os4x_receipts_due (partner, state);
",
    },
    Migration {
        version: 4,
        description: "hardening: allowed originators, receipt forwarders, inbox quota, durable post-receive actions",
        sql: "
-- Odette IDs (space separated) this partner may name as SFIDORIG besides
-- itself; NULL: only itself.
ALTER TABLE os4x_partners ADD COLUMN originators TEXT;
-- Odette IDs (space separated) of other partners that may deliver EERPs
-- and NERPs for files we sent to this partner; NULL: none.
ALTER TABLE os4x_partners ADD COLUMN receipts_via TEXT;
-- Octets this partner's inbox directory may hold (received files not yet
-- taken away plus partial files); NULL: no quota.
ALTER TABLE os4x_partners ADD COLUMN inbox_quota INTEGER;
-- The post-receive command of a received file: 'pending' (queued, also
-- across a restart), 'running', 'done'; NULL: none configured.
ALTER TABLE os4x_received_files ADD COLUMN action_state TEXT
    CHECK (action_state IN ('pending', 'running', 'done'));
-- The daemon running it ('<boot id>:<pid>:<start ticks>'): a 'running'
-- action whose daemon is gone is run again.
ALTER TABLE os4x_received_files ADD COLUMN action_owner TEXT;
CREATE INDEX os4x_received_files_action ON os4x_received_files (action_state);
",
    },
    Migration {
        version: 5,
        description: "received files: the node receiving a partial file holds a lease on it",
        sql: "
-- Which session of which node is writing the partial file right now
-- ('<server_id>:<pid>:<session>'), and until when (the database's clock,
-- Unix seconds) without renewal. Another node offered the same file
-- refuses it (retry later) until the lease ran out, then resumes it from
-- the recorded restart offset.
ALTER TABLE os4x_received_files ADD COLUMN receiver TEXT;
ALTER TABLE os4x_received_files ADD COLUMN receiver_until INTEGER;
",
    },
],
};

/// The send queue of `os4xsqd`.
pub const QUEUE: Component = Component {
    name: "os4x-queue",
    migrations: &[
        Migration {
            version: 1,
            description: "send queue and partner send settings",
            sql: "
CREATE TABLE os4x_send_queue (
    id               INTEGER PRIMARY KEY,
    partner          TEXT NOT NULL COLLATE NOCASE,
    dataset_name     TEXT NOT NULL,
    -- CCYYMMDDHHMMSScccc, fixed at enqueue time (the virtual file's id).
    file_timestamp   TEXT NOT NULL,
    user_data        TEXT NOT NULL DEFAULT '',
    originator       TEXT NOT NULL,
    destination      TEXT NOT NULL,
    format           TEXT NOT NULL,
    max_record_size  INTEGER NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    priority         INTEGER NOT NULL DEFAULT 0,
    source_path      TEXT NOT NULL,
    outbox_path      TEXT NOT NULL,
    size             INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN
                     ('queued', 'sending', 'sent-awaiting-eerp', 'delivered', 'failed',
                      'retry', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- server_id of the os4xsqd that claimed it (state `sending`).
    owner            INTEGER,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    -- Virtual File octets the partner may hold from earlier attempts;
    -- the next SFID offers the restart position they amount to.
    sent_units       INTEGER NOT NULL DEFAULT 0,
    eerp             TEXT NOT NULL DEFAULT 'none' CHECK (eerp IN
                     ('none', 'awaiting', 'overdue', 'eerp', 'nerp')),
    eerp_text        TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    delivered_at     INTEGER
);
CREATE INDEX os4x_send_queue_due ON os4x_send_queue (state, partner, next_attempt_at);
CREATE INDEX os4x_send_queue_vfile ON os4x_send_queue (dataset_name, file_timestamp);
CREATE TABLE os4x_send_routes (
    partner          TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    host             TEXT NOT NULL,
    port             INTEGER NOT NULL,
    tls              INTEGER NOT NULL DEFAULT 0,
    -- PEM file of the CAs the partner's server certificate must chain to
    -- (none: the system's default roots are not used, a CA or pin is required).
    tls_ca_file      TEXT,
    -- Lowercase hex SHA-256 of the partner's server certificate (DER).
    tls_pin_sha256   TEXT,
    max_sessions     INTEGER NOT NULL DEFAULT 1,
    max_attempts     INTEGER NOT NULL DEFAULT 10,
    retry_base       INTEGER NOT NULL DEFAULT 60,
    retry_max        INTEGER NOT NULL DEFAULT 3600,
    -- Seconds between polls; NULL: never poll.
    poll_interval    INTEGER,
    eerp_timeout     INTEGER NOT NULL DEFAULT 86400,
    -- Partner-level backoff after failed connections.
    failures         INTEGER NOT NULL DEFAULT 0,
    next_session_at  INTEGER NOT NULL DEFAULT 0,
    last_session_at  INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL
);
",
        },
        Migration {
            version: 2,
            description: "send queue: claims per session",
            sql: "
-- The session that claimed an entry last: a session does not take an
-- entry back that it already tried (e.g. refused with retry later).
ALTER TABLE os4x_send_queue ADD COLUMN claim_token INTEGER;
",
        },
        Migration {
            version: 3,
            description: "send queue: file services and receipt verification",
            sql: "
-- The file as transmitted after signing/compression/encryption (written
-- once, so every attempt and restart sends the same octets), its hash
-- (EERPHSH must match it) and SFIDCIPH / SFIDSIGN as sent.
ALTER TABLE os4x_send_queue ADD COLUMN protected_path TEXT;
ALTER TABLE os4x_send_queue ADD COLUMN file_hash BLOB;
ALTER TABLE os4x_send_queue ADD COLUMN cipher_suite INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_send_queue ADD COLUMN signed_eerp INTEGER NOT NULL DEFAULT 0;
-- The services applied: 's' signed, 'c' compressed, 'e' encrypted (the
-- SFID fields of every later attempt, whatever the partner's policy is by
-- then).
ALTER TABLE os4x_send_queue ADD COLUMN file_services TEXT;
-- What the check of the received EERP/NERP found: 'unsigned', 'valid'
-- or 'invalid', with the signer or the error.
ALTER TABLE os4x_send_queue ADD COLUMN receipt_verification TEXT;
ALTER TABLE os4x_send_queue ADD COLUMN receipt_verification_text TEXT;
",
        },
        Migration {
            version: 4,
            description: "send queue: leases for nodes sharing the queue",
            sql: "
-- Until when (the database's clock, Unix seconds) the claim of an entry in
-- `sending` holds. The holder renews it while it sends and stops sending
-- before it runs out; after that any node may take the entry over.
ALTER TABLE os4x_send_queue ADD COLUMN lease_until INTEGER;
-- Which daemon of the owning node claimed it ('os4xsqd' or 'os4xrd'), so
-- a restarted os4xsqd takes back its own claims at once and leaves the
-- receive daemon's alone.
ALTER TABLE os4x_send_queue ADD COLUMN claimed_by TEXT;
CREATE INDEX os4x_send_queue_lease ON os4x_send_queue (state, lease_until);
",
        },
    ],
};

/// ISDN routes (numbers per partner).
pub const ISDN_ROUTES: Component = Component {
    name: "os4x-isdn",
    migrations: &[Migration {
        version: 1,
        description: "ISDN numbers of partners",
        sql: "
CREATE TABLE os4x_isdn_routes (
    partner     TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    -- Digits to dial; calls presenting this number are the partner's.
    number      TEXT NOT NULL,
    -- [[isdn.controller]] number to dial through.
    controller  INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL
);
",
    }],
};

/// Users of `os4xclientd` and `os4x-web`.
pub const USERS: Component = Component {
    name: "os4x_users",
    migrations: &[Migration {
        version: 1,
        description: "users of os4xclientd and the web UI",
        sql: "
CREATE TABLE os4x_users (
    name           TEXT PRIMARY KEY NOT NULL,
    -- argon2id PHC string
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    -- unix time; 0 when not locked
    locked_until   INTEGER NOT NULL DEFAULT 0,
    last_login_at  INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
",
    }],
};

/// Client job acknowledgements of `os4xclientd`.
pub const CLIENT: Component = Component {
    name: "os4x_client",
    migrations: &[Migration {
        version: 1,
        description: "acknowledgements of received files by clients",
        sql: "
CREATE TABLE os4x_received_acks (
    received_id INTEGER PRIMARY KEY NOT NULL,
    acked_by    TEXT NOT NULL,
    acked_at    INTEGER NOT NULL
);
",
    }],
};

/// The runtime debug switch (`os4x debug on|off`).
pub const DEBUG: Component = Component {
    name: "os4x_debug",
    migrations: &[Migration {
        version: 1,
        description: "debug forwarding switch",
        sql: "
CREATE TABLE os4x_debug_switch (
    server_id  INTEGER NOT NULL,
    -- a program name, or '*' for all programs
    program    TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (server_id, program)
);
",
    }],
};
