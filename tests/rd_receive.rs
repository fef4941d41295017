//! The receive daemon in process, over real sockets on 127.0.0.1, with
//! the oftp2 initiator (session + tokio driver) on the other end.

mod rd_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use oftp2::session::{Event, Origin, Receipt};
use oftp2::value::{EndFileRefusal, EndSessionReason, StartFileRefusal};
use os4x::partner::sha256_hex;
use os4x::rd::Transport;
use rd_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_file_arrives_byte_identical_with_eerp_and_action() {
    let station = Station::new("");
    let marker = station.dir.path().join("action.out");
    station.add_partner(|p| {
        p.post_receive = Some(format!(
            "printf '%s|%s|%s|%s|%s' \"$OS4X_FILE\" \"$OS4X_PARTNER\" \"$OS4X_DATASET\" \"$OS4X_BYTES\" \"$1\" > {}",
            marker.display()
        ))
    });
    let rd = start(&station, Transport::Tcp).await;
    let data = content(3_000_017, 1);
    let sent = send_tcp(rd.addr, "INVOICES.2026", data.clone(), 0).await;
    let end = sent.end.as_ref().unwrap();
    assert!(end.is_normal(), "{end}");
    assert!(sent.file_done());
    // The EERP came in the same session, after the initiator's CD.
    assert_eq!(sent.eerps(), 1, "{:?}", sent.events);
    let eerp = sent.events.iter().find_map(|e| match e {
        Event::ReceiptReceived(Receipt::Eerp(e)) => Some(e.clone()),
        _ => None,
    });
    let eerp = eerp.unwrap();
    assert_eq!(eerp.dataset_name.as_str(), "INVOICES.2026");
    assert_eq!(eerp.destination.as_str(), PARTNER);
    assert_eq!(eerp.originator.as_str(), LOCAL);

    let files = station.received_files();
    assert_eq!(files, vec![station.partner_inbox().join("INVOICES.2026")]);
    assert!(std::fs::read(&files[0]).unwrap() == data, "content differs");
    assert!(tree(&station.partner_inbox().join(".partial")).is_empty());
    assert_eq!(
        station.rows(),
        vec![(
            "received".into(),
            Some(data.len() as i64),
            Some(files[0].display().to_string())
        )]
    );
    assert_eq!(
        station.receipts(),
        vec![("INVOICES.2026".into(), "sent".into())]
    );
    {
        let conn = station.db.lock();
        let (ts, fmt, user): (String, String, String) = conn
            .query_row(
                "SELECT file_timestamp, format, user_data FROM os4x_received_files",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (ts.as_str(), fmt.as_str(), user.as_str()),
            ("202611241200000001", "U", "USR1")
        );
    }
    // The post-receive command ran with the metadata and its exit code
    // was recorded.
    let mut out = String::new();
    for _ in 0..100 {
        if let Ok(s) = std::fs::read_to_string(&marker) {
            out = s;
            let exit: Option<i64> = station
                .db
                .lock()
                .query_row("SELECT action_exit FROM os4x_received_files", [], |r| {
                    r.get(0)
                })
                .unwrap();
            if exit.is_some() {
                assert_eq!(exit, Some(0));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let path = files[0].display().to_string();
    assert_eq!(
        out,
        format!("{path}|{PARTNER}|INVOICES.2026|{}|{path}", data.len())
    );

    // The same virtual file again: refused as duplicate, nothing replaced,
    // and its EERP delivered once more.
    let again = send_tcp(rd.addr, "INVOICES.2026", content(10, 2), 0).await;
    assert!(again.events.iter().any(|e| matches!(
        e,
        Event::FileRefused {
            reason: StartFileRefusal::DuplicateFile,
            ..
        }
    )));
    assert_eq!(again.eerps(), 1);
    assert_eq!(station.received_files().len(), 1);
    assert!(std::fs::read(&files[0]).unwrap() == data);
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_action_keeps_the_file() {
    let station = Station::new("");
    station.add_partner(|p| p.post_receive = Some("exit 3".into()));
    let rd = start(&station, Transport::Tcp).await;
    let data = content(5000, 3);
    let sent = send_tcp(rd.addr, "ORDERS", data.clone(), 0).await;
    assert!(sent.end.unwrap().is_normal());
    let mut exit = None;
    for _ in 0..100 {
        exit = station
            .db
            .lock()
            .query_row("SELECT action_exit FROM os4x_received_files", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .unwrap();
        if exit.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(exit, Some(3));
    assert_eq!(
        std::fs::read(station.partner_inbox().join("ORDERS")).unwrap(),
        data
    );
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_dataset_name_twice_gets_a_second_name() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    let first = content(2000, 4);
    assert!(send_tcp(rd.addr, "DELFOR", first.clone(), 0)
        .await
        .file_done());
    // Same name, different timestamp: a different virtual file.
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let second = content(3000, 5);
    let mut file = bytes_file("DELFOR", second.clone(), 0);
    file.sfid.timestamp = "202611241300000000".parse().unwrap();
    let sent = send(tcp, PARTNER, PARTNER_PW, Some(file)).await;
    assert!(sent.file_done());
    let dir = station.partner_inbox();
    assert_eq!(std::fs::read(dir.join("DELFOR")).unwrap(), first);
    assert_eq!(
        std::fs::read(dir.join("DELFOR.202611241300000000")).unwrap(),
        second
    );
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_file_arrives_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let cert = server_cert(dir.path(), "server");
    let station = Station::new(&format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        cert.cert_pem.display(),
        cert.key_pem.display()
    ));
    station.add_partner(|p| p.tls_required = true);
    let rd = start(&station, Transport::Tls).await;
    let data = content(2_500_000, 9);
    let tls = tls_connect(rd.addr, &tls_connector(&cert.cert_der, None))
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("SECURE.EDI", data.clone(), 0)),
    )
    .await;
    assert!(sent.end.as_ref().unwrap().is_normal(), "{:?}", sent.end);
    assert_eq!(sent.eerps(), 1);
    assert!(std::fs::read(station.partner_inbox().join("SECURE.EDI")).unwrap() == data);

    // TLS 1.2 is served as well.
    let tls = tls_connect(rd.addr, &tls12_connector(&cert.cert_der))
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("TLS12", data.clone(), 0)),
    )
    .await;
    assert!(sent.end.unwrap().is_normal());
    assert!(std::fs::read(station.partner_inbox().join("TLS12")).unwrap() == data);

    // SIGHUP equivalent: a new certificate is used by new handshakes, a
    // session already running is not disturbed.
    let long = tls_connect(rd.addr, &tls_connector(&cert.cert_der, None))
        .await
        .unwrap();
    let renewed = server_cert(dir.path(), "server"); // same paths, new key
    rd.server.reload_tls();
    let sent = send(
        long,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("OLD.CERT", content(100, 1), 0)),
    )
    .await;
    assert!(sent.end.unwrap().is_normal(), "session across reload");
    assert!(
        tls_connect(rd.addr, &tls_connector(&cert.cert_der, None))
            .await
            .is_err(),
        "old certificate no longer served"
    );
    let tls = tls_connect(rd.addr, &tls_connector(&renewed.cert_der, None))
        .await
        .unwrap();
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("NEW.CERT", content(100, 2), 0)),
    )
    .await;
    assert!(sent.end.unwrap().is_normal());
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_only_partner_refused_over_tcp() {
    let station = Station::new("");
    station.add_partner(|p| p.tls_required = true);
    let rd = start(&station, Transport::Tcp).await;
    let sent = send_tcp(rd.addr, "X", content(10, 1), 0).await;
    assert_eq!(
        sent.reason(),
        Some(EndSessionReason::SecureAuthenticationRequirementsIncompatible)
    );
    assert!(station.rows().is_empty());
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_partner_are_refused() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;

    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let sent = send(
        tcp,
        PARTNER,
        "WRONG",
        Some(bytes_file("A", content(10, 1), 0)),
    )
    .await;
    let end = sent.end.unwrap();
    assert_eq!(
        (end.origin, end.reason),
        (Origin::Remote, EndSessionReason::InvalidPassword)
    );

    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let sent = send(
        tcp,
        "O0013000000STRANGER",
        PARTNER_PW,
        Some(bytes_file("A", content(10, 1), 0)),
    )
    .await;
    let end = sent.end.unwrap();
    assert_eq!(
        (end.origin, end.reason),
        (Origin::Remote, EndSessionReason::UserCodeNotKnown)
    );

    // A disabled partner is not known either.
    let store = os4x::partner::PartnerStore::new(station.db.clone());
    let mut p = store.get(PARTNER).unwrap().unwrap();
    p.enabled = false;
    store.update(&p).unwrap();
    let sent = send_tcp(rd.addr, "A", content(10, 1), 0).await;
    assert_eq!(sent.reason(), Some(EndSessionReason::UserCodeNotKnown));

    assert!(station.rows().is_empty(), "nothing stored");
    assert!(!station.inbox().exists() || tree(&station.inbox()).is_empty());
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_required() {
    let dir = tempfile::tempdir().unwrap();
    let cert = server_cert(dir.path(), "server");
    let station = Station::new(&format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        cert.cert_pem.display(),
        cert.key_pem.display()
    ));
    let good = client_cert();
    let other = client_cert();
    station.add_partner(|p| {
        p.client_cert_required = true;
        p.client_cert_sha256 = Some(sha256_hex(&good.der));
    });
    let rd = start(&station, Transport::Tls).await;

    // No client certificate: refused after the SSID.
    let tls = tls_connect(rd.addr, &tls_connector(&cert.cert_der, None))
        .await
        .unwrap();
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("A", content(10, 1), 0)),
    )
    .await;
    assert_eq!(
        sent.reason(),
        Some(EndSessionReason::SecureAuthenticationRequirementsIncompatible)
    );
    // Someone else's certificate: refused.
    let tls = tls_connect(rd.addr, &tls_connector(&cert.cert_der, Some(&other)))
        .await
        .unwrap();
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("A", content(10, 1), 0)),
    )
    .await;
    assert_eq!(
        sent.reason(),
        Some(EndSessionReason::SecureAuthenticationRequirementsIncompatible)
    );
    assert!(station.rows().is_empty());
    // The pinned certificate: accepted.
    let tls = tls_connect(rd.addr, &tls_connector(&cert.cert_der, Some(&good)))
        .await
        .unwrap();
    let data = content(70_000, 3);
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("A", data.clone(), 0)),
    )
    .await;
    assert!(sent.end.unwrap().is_normal());
    assert_eq!(
        std::fs::read(station.partner_inbox().join("A")).unwrap(),
        data
    );
    rd.stop().await;
}

/// A partner with its own client CA: its certificates pass, certificates
/// of the global `[tls] client_ca` (valid there) do not, and the handshake
/// announces both CAs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_client_ca_replaces_the_global_one() {
    let dir = tempfile::tempdir().unwrap();
    let cert = server_cert(dir.path(), "server");
    let global = TestCa::new(dir.path(), "global");
    let own = TestCa::new(dir.path(), "partner");
    let station = Station::new(&format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nclient_ca = \"{}\"\n",
        cert.cert_pem.display(),
        cert.key_pem.display(),
        global.pem.display()
    ));
    station.add_partner(|p| {
        p.tls_required = true;
        p.client_cert_required = true;
        p.client_ca = Some(own.pem.clone());
    });
    let rd = start(&station, Transport::Tls).await;
    let refused = Some(EndSessionReason::SecureAuthenticationRequirementsIncompatible);

    // Issued by the partner's CA: accepted, the file arrives.
    let (connector, resolver) = recording_connector(&cert.cert_der, &own.issue("partner.example"));
    let tls = tls_connect(rd.addr, &connector).await.unwrap();
    let data = content(70_000, 11);
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("OWNCA", data.clone(), 0)),
    )
    .await;
    assert!(sent.end.unwrap().is_normal());
    assert_eq!(
        std::fs::read(station.partner_inbox().join("OWNCA")).unwrap(),
        data
    );
    let hints = resolver.hints.lock().unwrap().clone();
    assert!(
        hints.contains(&global.hint()) && hints.contains(&own.hint()),
        "CertificateRequest names [tls] client_ca and the partner's CA"
    );

    // Issued by the global CA, valid there: not for this partner.
    let tls = tls_connect(
        rd.addr,
        &tls_connector(&cert.cert_der, Some(&global.issue("partner.example"))),
    )
    .await
    .unwrap();
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("GLOBALCA", content(10, 1), 0)),
    )
    .await;
    assert_eq!(sent.reason(), refused);
    // The partner's CA, but expired: the validity counts too.
    let tls = tls_connect(
        rd.addr,
        &tls_connector(&cert.cert_der, Some(&own.issue_expired("partner.example"))),
    )
    .await
    .unwrap();
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("EXPIRED", content(10, 1), 0)),
    )
    .await;
    assert_eq!(sent.reason(), refused);
    assert_eq!(station.rows().len(), 1, "only the first file stored");

    // The CA is read at each SSID: without its own CA the partner falls
    // back to [tls] client_ca at once, no reload needed.
    let store = os4x::partner::PartnerStore::new(station.db.clone());
    let mut p = store.get(PARTNER).unwrap().unwrap();
    p.client_ca = None;
    store.update(&p).unwrap();
    let tls = tls_connect(
        rd.addr,
        &tls_connector(&cert.cert_der, Some(&global.issue("partner.example"))),
    )
    .await
    .unwrap();
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("GLOBALCA", content(10, 2), 0)),
    )
    .await;
    assert!(sent.end.unwrap().is_normal());
    let tls = tls_connect(
        rd.addr,
        &tls_connector(&cert.cert_der, Some(&own.issue("partner.example"))),
    )
    .await
    .unwrap();
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("OWNCA2", content(10, 3), 0)),
    )
    .await;
    assert_eq!(sent.reason(), refused, "the partner's CA no longer counts");
    assert_eq!(station.rows().len(), 2);
    rd.stop().await;
}

/// Forwards one connection to `target` and cuts it after `limit` octets
/// from the client.
async fn cutting_proxy(target: std::net::SocketAddr, limit: usize) -> std::net::SocketAddr {
    proxy(target, limit, false).await
}

/// Like [`cutting_proxy`], but after `limit` octets the connection stays
/// open and silent (a stalled partner).
async fn stalling_proxy(target: std::net::SocketAddr, limit: usize) -> std::net::SocketAddr {
    proxy(target, limit, true).await
}

async fn proxy(target: std::net::SocketAddr, limit: usize, stall: bool) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = tokio::net::TcpStream::connect(target).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let back = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
        });
        let mut left = limit;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n.min(left),
            };
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            left -= n;
        }
        if stall {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        // Kill both directions at once, like a broken line.
        back.abort();
        drop((cr, sw));
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_file_then_resumed() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    let data = content(4_000_000, 11);
    let proxy = cutting_proxy(rd.addr, 1_500_000).await;
    let cut = send_tcp(proxy, "BIG.FILE", data.clone(), 0).await;
    assert!(!cut.file_done(), "must not complete: {:?}", cut.end);
    assert!(station.received_files().is_empty(), "nothing final yet");
    // Wait until the server has noticed and checkpointed.
    for _ in 0..100 {
        if rd.server.stats().active.load(Ordering::Relaxed) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(station.rows()[0].0, "partial");

    // The partner offers a restart from (at most) the whole file.
    let offer = data.len() as u64 / 1024;
    let sent = send_tcp(rd.addr, "BIG.FILE", data.clone(), offer).await;
    assert!(sent.end.as_ref().unwrap().is_normal(), "{:?}", sent.end);
    let resumed_at = sent.restart_position().unwrap();
    assert!(
        resumed_at > 1000 && resumed_at < 1500,
        "restart at {resumed_at} 1K blocks"
    );
    assert!(std::fs::read(station.partner_inbox().join("BIG.FILE")).unwrap() == data);
    assert_eq!(station.rows()[0].0, "received");
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_loses_nothing() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let disk = DiskFull::new(1_000_000);
    let rd = start_with(&station, Transport::Tcp, Arc::new(disk.clone())).await;
    let data = content(3_000_000, 12);

    // The disk fills up mid-file: EFNA, nothing reported as received.
    let sent = send_tcp(rd.addr, "FULL.DISK", data.clone(), 0).await;
    assert!(!sent.file_done());
    assert!(
        sent.events.iter().any(|e| matches!(
            e,
            Event::FileFailed {
                reason: EndFileRefusal::AccessMethodFailure,
                ..
            }
        )),
        "{:?}",
        sent.events
    );
    assert_eq!(sent.eerps(), 0);
    assert!(station.received_files().is_empty());
    assert_eq!(station.rows()[0].0, "partial");
    assert!(station.receipts().is_empty());

    // Known to be full at the start: refused with SFNA 06, retry later.
    disk.free.store(10, Ordering::SeqCst);
    let sent = send_tcp(rd.addr, "FULL.DISK", data.clone(), data.len() as u64 / 1024).await;
    assert!(sent.events.iter().any(|e| matches!(
        e,
        Event::FileRefused {
            reason: StartFileRefusal::FileSizeTooBig,
            retry_later: true,
            ..
        }
    )));

    // Space again: the restart continues from what was kept.
    disk.free.store(u64::MAX, Ordering::SeqCst);
    disk.budget.store(u64::MAX, Ordering::SeqCst);
    let sent = send_tcp(rd.addr, "FULL.DISK", data.clone(), data.len() as u64 / 1024).await;
    assert!(sent.end.as_ref().unwrap().is_normal(), "{:?}", sent.end);
    let at = sent.restart_position().unwrap();
    assert!(at > 0 && at <= 1_000_000 / 1024, "restart at {at}");
    assert!(std::fs::read(station.partner_inbox().join("FULL.DISK")).unwrap() == data);
    assert_eq!(
        station.receipts(),
        vec![("FULL.DISK".into(), "sent".into())]
    );
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_names_cannot_escape_the_inbox() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    for (i, dsn) in ["../../ESCAPE", "/ETC/PASSWD", "..", "./.HIDDEN"]
        .iter()
        .enumerate()
    {
        let sent = send_tcp(rd.addr, dsn, content(100, i as u64), 0).await;
        assert!(sent.end.unwrap().is_normal(), "{dsn}");
    }
    rd.stop().await;
    let files = tree(station.dir.path());
    let outside: Vec<_> = files
        .iter()
        .filter(|p| !p.starts_with("state"))
        .filter(|p| p.as_os_str() != "os4x.toml")
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
    let mut names: Vec<_> = station
        .received_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "%2E%2F.HIDDEN",
            "%2E.",
            "%2E.%2F..%2FESCAPE",
            "%2FETC%2FPASSWD"
        ]
    );
    assert_eq!(
        std::fs::read(station.partner_inbox().join("%2E.%2F..%2FESCAPE")).unwrap(),
        content(100, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_beyond_the_maximum_get_esid_08() {
    let station = Station::new("[rd]\nmax_sessions = 1\nidle_timeout = 5\n");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    // A connection that says nothing does not take the session slot (it
    // holds a pre-login slot until idle_timeout).
    let mut idle = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let mut ssrm = [0u8; 4];
    idle.read_exact(&mut ssrm).await.unwrap();
    let sent = send_tcp(rd.addr, "A", content(10, 1), 0).await;
    assert!(
        sent.end.unwrap().is_normal(),
        "a silent connection kept the partner out"
    );
    // A logged-in session does: while a large file is being sent, the
    // next SSID gets ESID 08.
    let addr = rd.addr;
    let big = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = sfid("BIG", 1 << 30);
        s.file_size = (1u64 << 30) / 1024;
        let file = oftp2::session::OutgoingFile {
            sfid: s,
            data: Box::new(Generated::new(1 << 30)),
        };
        send(tcp, PARTNER, PARTNER_PW, Some(file)).await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while rd.server.sessions_active() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "big session never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = send_tcp(rd.addr, "B", content(10, 1), 0).await;
    assert_eq!(sent.reason(), Some(EndSessionReason::ResourcesNotAvailable));
    big.abort();
    let _ = big.await;
    // The idle one is dropped after idle_timeout.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "idle connection closed by the server");
    // Once the big session is gone, the slot is free again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while rd.server.sessions_active() > 0 {
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = send_tcp(rd.addr, "C", content(10, 1), 0).await;
    assert!(sent.end.unwrap().is_normal());
    rd.stop().await;
}

/// Forwards one connection to `target`, passing the client's exchange
/// buffers until its first CD (`R`), then kills the connection: the file
/// is received (EFPA went back), but the turn never reaches the daemon.
async fn proxy_cut_before_cd(target: std::net::SocketAddr) -> std::net::SocketAddr {
    use bytes::BytesMut;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = tokio::net::TcpStream::connect(target).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let back = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
        });
        let mut decoder = oftp2::stb::StbDecoder::new();
        let mut buf = BytesMut::new();
        'outer: loop {
            while let Ok(Some(frame)) = decoder.decode(&mut buf) {
                if frame.first() == Some(&b'R') {
                    break 'outer;
                }
                let header = oftp2::stb::header(frame.len()).unwrap();
                if sw.write_all(&header).await.is_err() || sw.write_all(&frame).await.is_err() {
                    break 'outer;
                }
            }
            match cr.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        back.abort();
        drop((cr, sw));
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eerp_not_sendable_stays_queued_for_the_next_session() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    let data = content(150_000, 31);
    let proxy = proxy_cut_before_cd(rd.addr).await;
    let sent = send_tcp(proxy, "QUEUED.EERP", data.clone(), 0).await;
    assert!(sent.file_done(), "EFPA arrived: {:?}", sent.events);
    assert_eq!(sent.eerps(), 0);
    // Durably stored, and the receipt waits in the database.
    assert_eq!(
        std::fs::read(station.partner_inbox().join("QUEUED.EERP")).unwrap(),
        data
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rd.server.stats().active.load(Ordering::Relaxed) > 0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        station.receipts(),
        vec![("QUEUED.EERP".into(), "due".into())]
    );
    // The next session (nothing to send) gets it after its CD.
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let next = send(tcp, PARTNER, PARTNER_PW, None).await;
    assert!(next.end.as_ref().unwrap().is_normal());
    assert_eq!(next.eerps(), 1);
    assert_eq!(
        station.receipts(),
        vec![("QUEUED.EERP".into(), "sent".into())]
    );
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_file_in_two_sessions_at_once_is_refused_for_now() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    let data = content(2_000_000, 51);
    let stalled = stalling_proxy(rd.addr, 600_000).await;
    let first = tokio::spawn({
        let data = data.clone();
        async move { send_tcp(stalled, "TWICE", data, 0).await }
    });
    // Wait until the first session is writing.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while station.rows().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = send_tcp(rd.addr, "TWICE", data.clone(), 0).await;
    assert!(
        second.events.iter().any(|e| matches!(
            e,
            Event::FileRefused {
                reason: StartFileRefusal::DuplicateFile,
                retry_later: true,
                ..
            }
        )),
        "{:?}",
        second.events
    );
    first.abort();
    rd.stop().await;
    assert!(station.received_files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eerp_delivered_by_the_partner_marks_the_sent_file() {
    use oftp2::value::{OdetteId, RecordFormat, UserData};
    use os4x::queue::{NewFile, QueueStore};
    let station = Station::new("");
    station.add_partner(|_| {});
    let queue = QueueStore::open(station.db.clone()).unwrap();
    let source = station.dir.path().join("out.edi");
    std::fs::write(&source, b"UNB+UNOC:3'").unwrap();
    let entry = queue
        .enqueue(
            &NewFile {
                partner: OdetteId::new(PARTNER).unwrap(),
                source,
                dataset_name: "OUT.EDI".parse().unwrap(),
                format: RecordFormat::Unstructured,
                max_record_size: 0,
                priority: 0,
                user_data: UserData::EMPTY,
                description: String::new(),
                destination: None,
            },
            &OdetteId::new(LOCAL).unwrap(),
            &station.dir.path().join("outbox"),
        )
        .unwrap();
    assert!(queue.get(entry.id).unwrap().unwrap().delivered_at.is_none());
    // Sent by os4xsqd in an earlier session; now it awaits its EERP (a
    // receipt for a file not sent yet settles nothing).
    queue.claim_next(PARTNER, 1).unwrap().unwrap();
    queue.sent(entry.id).unwrap();
    let rd = start(&station, Transport::Tcp).await;
    let eerp = oftp2::codec::Eerp {
        dataset_name: entry.dataset_name.parse().unwrap(),
        timestamp: entry.file_timestamp.parse().unwrap(),
        user_data: UserData::EMPTY,
        destination: entry.originator.parse().unwrap(),
        originator: entry.destination.parse().unwrap(),
        hash: bytes::Bytes::new(),
        signature: bytes::Bytes::new(),
    };
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let sent = send_with_receipts(tcp, PARTNER, PARTNER_PW, None, vec![Receipt::Eerp(eerp)]).await;
    assert!(sent.end.as_ref().unwrap().is_normal(), "{:?}", sent.end);
    assert!(sent
        .events
        .iter()
        .any(|e| matches!(e, Event::ReceiptSent(Receipt::Eerp(_)))));
    let after = queue.get(entry.id).unwrap().unwrap();
    assert_eq!(after.eerp, "eerp");
    assert!(after.delivered_at.is_some());
    rd.stop().await;
}
