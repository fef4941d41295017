//! Issue 15, inbound across nodes: two nodes' inboxes on one database and
//! one shared inbox directory. A file being received on one node is
//! refused (retry later) by the other until its lease ran out; then the
//! other resumes it from the restart offset the first recorded, and the
//! first, unable to renew, stops writing; a received file is a duplicate
//! on every node.

mod rd_support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use oftp2::session::{FileOffer, Inbox, Refusal};
use oftp2::value::{OdetteId, StartFileRefusal};
use os4x::inbox::{DiskStorage, InboxLimits, InboxStore, SessionContext};
use os4x::partner::PartnerStore;
use rd_support::*;

fn node(station: &Station, server_id: u32) -> Arc<InboxStore> {
    let inbox = InboxStore::new(
        station.db.clone(),
        Arc::new(DiskStorage),
        station.inbox(),
        OdetteId::new(LOCAL).unwrap(),
        InboxLimits::from_config(&station.config.rd),
    );
    // The shortest lease: renewal every 2 s.
    inbox.set_cluster(server_id, Duration::from_secs(6));
    inbox
}

fn session(station: &Station, inbox: &Arc<InboxStore>, no: u64) -> os4x::inbox::SessionInbox {
    let partner = PartnerStore::new(station.db.clone())
        .get(PARTNER)
        .unwrap()
        .unwrap();
    let ctx = SessionContext {
        partner: OnceLock::from(partner),
        peer: "127.0.0.1:1".into(),
        session: no,
        receipts: Mutex::default(),
    };
    inbox.session(Arc::new(ctx))
}

fn offer(
    s: &mut os4x::inbox::SessionInbox,
    restart: u64,
) -> Result<oftp2::session::Accepted, Refusal<StartFileRefusal>> {
    let mut sfid = sfid("SHARED", 300_000);
    sfid.restart_position = restart;
    let partner = OdetteId::new(PARTNER).unwrap();
    s.accept(&FileOffer {
        partner: &partner,
        sfid: &sfid,
        restart_allowed: true,
    })
}

fn expire_receiver_lease(station: &Station) {
    station
        .db
        .lock()
        .execute(
            "UPDATE os4x_received_files SET receiver_until = unixepoch() - 1",
            [],
        )
        .unwrap();
}

#[test]
fn a_file_is_received_by_one_node_at_a_time_and_resumed_by_another() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let (one, two) = (node(&station, 1), node(&station, 2));
    let data = content(300_000, 3);

    // Node 1 receives the first part, then its session breaks.
    let mut s1 = session(&station, &one, 1);
    let mut a = offer(&mut s1, 0).unwrap();
    assert_eq!(a.restart.local_offset, 0);
    a.writer.write_all(&data[..150_000]).unwrap();
    // Meanwhile node 2 is offered the same file: not now.
    let mut s2 = session(&station, &two, 1);
    let Err(refused) = offer(&mut s2, 0) else {
        panic!("refused while node 1 holds it")
    };
    assert_eq!(refused.reason, StartFileRefusal::DuplicateFile);
    assert!(refused.retry_later, "{refused:?}");
    a.writer.abort();
    drop(a);

    // The partner reconnects to node 2: it resumes where node 1 stopped.
    let mut b = offer(&mut s2, 200).unwrap();
    let at = b.restart.local_offset;
    assert!(
        (100_000..=150_000).contains(&at),
        "restart at {at} of the 150000 octets node 1 kept"
    );
    b.writer.write_all(&data[at as usize..200_000]).unwrap();

    // Node 2 stops answering the database (its lease is left to run
    // out); node 1 takes the file over once it has, and node 2's writer
    // cannot go on.
    let mut s1b = session(&station, &one, 2);
    assert!(offer(&mut s1b, 0).is_err(), "node 2's lease still holds");
    expire_receiver_lease(&station);
    let mut c = offer(&mut s1b, 250).unwrap();
    let at = c.restart.local_offset;
    assert!(at > 0, "resumed");
    // Node 2 tries to renew at its next write (2 s into the lease).
    std::thread::sleep(Duration::from_millis(2_100));
    let err = b.writer.write_all(&data[200_000..]).unwrap_err();
    assert!(err.to_string().contains("another node"), "{err}");
    assert!(b.writer.commit(Default::default()).is_err());
    drop(b); // leaves the partial file and its offset to node 1

    c.writer.write_all(&data[at as usize..]).unwrap();
    c.writer
        .commit(oftp2::record::Counts {
            records: 0,
            units: data.len() as u64,
        })
        .unwrap();
    drop(c);
    let files = station.received_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), data);

    // A received file is a duplicate on every node.
    for (inbox, no) in [(&one, 9), (&two, 9)] {
        let mut s = session(&station, inbox, no);
        let Err(r) = offer(&mut s, 0) else {
            panic!("duplicate")
        };
        assert_eq!(r.reason, StartFileRefusal::DuplicateFile);
        assert!(!r.retry_later);
    }
}
