//! Calls through the simulated exchange: the CAPI message sequences at the
//! transport level, and byte streams through `Application`.

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use capi::message::*;
use capi::sim::{reason, Sim};
use capi::stream::{Application, CallError, Dial};
use capi::transport::{RegisterParams, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(20);

async fn get<X: Transport>(t: &mut X) -> Message {
    tokio::time::timeout(T, poll_fn(|cx| t.poll_get_message(cx)))
        .await
        .expect("message within time")
        .unwrap()
}

fn put<X: Transport>(t: &mut X, number: u16, p: Params) {
    let id = t.app_id();
    t.put_message(&Message::new(id, number, p)).unwrap();
}

/// Two controllers on one exchange, an application on each, B side listening.
async fn pair(b_channels: usize) -> (Sim, Application, Application) {
    let sim = Sim::new();
    sim.add_controller(&["100"], b_channels);
    sim.add_controller(&["200", "201"], b_channels);
    let a = Application::start(sim.register(RegisterParams::default()));
    let b = Application::start(sim.register(RegisterParams::default()));
    b.listen(2, cip::mask(cip::UNRESTRICTED_DIGITAL))
        .await
        .unwrap();
    (sim, a, b)
}

fn dial(to: &str) -> Dial {
    Dial {
        controller: 1,
        called: to.into(),
        calling: Some("100".into()),
        b_protocol: BProtocol::x75_transparent(),
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

#[tokio::test]
async fn message_sequence_of_a_call_with_data() {
    let sim = Sim::new();
    sim.add_controller(&["100"], 2);
    sim.add_controller(&["200"], 2);
    let params = RegisterParams {
        max_b_data_len: 16,
        ..Default::default()
    };
    let mut a = sim.register(params);
    let mut b = sim.register(params);
    put(
        &mut b,
        1,
        Params::ListenReq(ListenReq {
            controller: 2,
            info_mask: 0,
            cip_mask: cip::mask(cip::UNRESTRICTED_DIGITAL),
            cip_mask2: 0,
            calling_number: None,
            calling_subaddress: vec![],
        }),
    );
    let m = get(&mut b).await;
    assert_eq!(m.number, 1);
    assert_eq!(
        m.params,
        Params::ListenConf(ListenConf {
            controller: 2,
            info: 0
        })
    );
    put(
        &mut a,
        7,
        Params::ConnectReq(ConnectReq {
            controller: 1,
            cip: cip::UNRESTRICTED_DIGITAL,
            called_number: Some(CalledPartyNumber::new("200")),
            calling_number: Some(CallingPartyNumber::new("100")),
            called_subaddress: vec![],
            calling_subaddress: vec![],
            b_protocol: Some(BProtocol::x75_transparent()),
            bc: vec![],
            llc: vec![],
            hlc: vec![],
            additional_info: vec![],
        }),
    );
    let m = get(&mut a).await;
    assert_eq!(m.number, 7, "CONF echoes the request's number");
    let Params::ConnectConf(ConnectConf { plci: pa, info: 0 }) = m.params else {
        panic!("{m:?}")
    };
    assert_eq!(controller_of(pa), 1);
    let m = get(&mut b).await;
    let Params::ConnectInd(ind) = m.params else {
        panic!("{m:?}")
    };
    assert_eq!(controller_of(ind.plci), 2);
    assert_eq!(ind.calling_number.unwrap().digits, b"100");
    assert_eq!(ind.called_number.unwrap().digits, b"200");
    let pb = ind.plci;
    put(
        &mut b,
        m.number,
        Params::ConnectResp(ConnectResp {
            plci: pb,
            reject: 0,
            b_protocol: Some(BProtocol::x75_transparent()),
            connected_number: None,
            connected_subaddress: vec![],
            llc: vec![],
            additional_info: vec![],
        }),
    );
    for (t, plci) in [(&mut a, pa), (&mut b, pb)] {
        let m = get(t).await;
        let Params::ConnectActiveInd(c) = &m.params else {
            panic!("{m:?}")
        };
        assert_eq!(c.plci, plci);
        put(t, m.number, Params::ConnectActiveResp(Ident { id: plci }));
    }
    put(
        &mut a,
        8,
        Params::ConnectB3Req(IdentNcpi {
            id: pa,
            ncpi: vec![],
        }),
    );
    let m = get(&mut a).await;
    let Params::ConnectB3Conf(IdentInfo { id: na, info: 0 }) = m.params else {
        panic!("{m:?}")
    };
    assert_eq!(plci_of(na), pa);
    let m = get(&mut b).await;
    let Params::ConnectB3Ind(IdentNcpi { id: nb, .. }) = m.params else {
        panic!("{m:?}")
    };
    put(
        &mut b,
        m.number,
        Params::ConnectB3Resp(ConnectB3Resp {
            ncci: nb,
            reject: 0,
            ncpi: vec![],
        }),
    );
    for (t, ncci) in [(&mut a, na), (&mut b, nb)] {
        let m = get(t).await;
        assert_eq!(
            m.params,
            Params::ConnectB3ActiveInd(IdentNcpi {
                id: ncci,
                ncpi: vec![]
            })
        );
    }
    // A block above the receiver's registered maximum is refused.
    put(
        &mut a,
        9,
        Params::DataB3Req(DataB3 {
            ncci: na,
            handle: 1,
            flags: 0,
            data: Bytes::from(vec![0u8; 17]),
        }),
    );
    assert_eq!(
        get(&mut a).await.params,
        Params::DataB3Conf(DataB3Conf {
            ncci: na,
            handle: 1,
            info: 0x300C
        })
    );
    // Window: 7 blocks reach B without responses; the 8th waits for a RESP,
    // and its CONF with it.
    for h in 0..8u16 {
        put(
            &mut a,
            10 + h,
            Params::DataB3Req(DataB3 {
                ncci: na,
                handle: 100 + h,
                flags: 0,
                data: Bytes::from(vec![h as u8; 16]),
            }),
        );
    }
    let mut ind_handles = Vec::new();
    for h in 0..7u16 {
        let m = get(&mut b).await;
        let Params::DataB3Ind(d) = m.params else {
            panic!("{m:?}")
        };
        assert_eq!(d.data, vec![h as u8; 16]);
        ind_handles.push(d.handle);
        let m = get(&mut a).await;
        assert!(
            matches!(m.params, Params::DataB3Conf(DataB3Conf { handle, info: 0, .. }) if handle == 100 + h)
        );
    }
    assert_eq!(sim.exchange().pending(b.app_id()), 0, "8th block held back");
    put(
        &mut b,
        50,
        Params::DataB3Resp(DataB3Resp {
            ncci: nb,
            handle: ind_handles[0],
        }),
    );
    let m = get(&mut b).await;
    assert!(matches!(&m.params, Params::DataB3Ind(d) if d.data[..] == [7u8; 16][..]));
    // A clears: B3 first, then the call, on both sides.
    put(
        &mut a,
        60,
        Params::DisconnectReq(DisconnectReq {
            plci: pa,
            additional_info: vec![],
        }),
    );
    assert!(matches!(get(&mut a).await.params, Params::DataB3Conf(_)));
    assert_eq!(
        get(&mut a).await.params,
        Params::DisconnectConf(IdentInfo { id: pa, info: 0 })
    );
    assert!(matches!(get(&mut a).await.params, Params::DisconnectB3Ind(d) if d.ncci == na));
    assert_eq!(
        get(&mut a).await.params,
        Params::DisconnectInd(DisconnectInd {
            plci: pa,
            reason: 0
        })
    );
    assert!(matches!(get(&mut b).await.params, Params::DisconnectB3Ind(d) if d.ncci == nb));
    assert_eq!(
        get(&mut b).await.params,
        Params::DisconnectInd(DisconnectInd {
            plci: pb,
            reason: reason::NORMAL_CLEARING
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_and_move_data_both_ways() {
    let (_sim, a, mut b) = pair(2).await;
    let to_b = pattern(1_000_003, 1);
    let to_a = pattern(333_333, 2);
    let (tb, ta) = (to_b.clone(), to_a.clone());
    let callee = tokio::spawn(async move {
        let call = b.next_call().await.unwrap();
        assert_eq!(call.calling.as_deref(), Some("100"));
        assert_eq!(call.called.as_deref(), Some("201"));
        let mut s = call.accept(BProtocol::x75_transparent()).await.unwrap();
        let (mut r, mut w) = tokio::io::split(&mut s);
        let send = async {
            w.write_all(&ta).await.unwrap();
        };
        let recv = async {
            let mut got = vec![0u8; tb.len()];
            r.read_exact(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(send, recv);
        assert!(got == tb, "callee received what the caller sent");
        // Caller hangs up; we see end of stream.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        s.disconnect_reason()
    });
    let mut s = tokio::time::timeout(T, a.dial(dial("201")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.info().called.as_deref(), Some("201"));
    let (mut r, mut w) = tokio::io::split(&mut s);
    let send = async {
        w.write_all(&to_b).await.unwrap();
    };
    let recv = async {
        let mut got = vec![0u8; to_a.len()];
        r.read_exact(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::time::timeout(T, async { tokio::join!(send, recv) })
        .await
        .unwrap();
    assert!(got == to_a, "caller received what the callee sent");
    s.shutdown().await.unwrap();
    let reason = tokio::time::timeout(T, callee).await.unwrap().unwrap();
    assert_eq!(reason, Some(reason::NORMAL_CLEARING));
}

#[tokio::test]
async fn callee_hangs_up() {
    let (_sim, a, mut b) = pair(2).await;
    let callee = tokio::spawn(async move {
        let call = b.next_call().await.unwrap();
        let mut s = call.accept(BProtocol::x75_transparent()).await.unwrap();
        s.write_all(b"BYE").await.unwrap();
        s.shutdown().await.unwrap();
        // Keep the application alive until the caller has read.
        tokio::time::sleep(Duration::from_millis(200)).await;
        b
    });
    let mut s = a.dial(dial("200")).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got, b"BYE",
        "data sent before the hang-up arrives, then EOF"
    );
    assert_eq!(s.disconnect_reason(), Some(reason::NORMAL_CLEARING));
    drop(callee.await.unwrap());
}

#[tokio::test]
async fn rejected_call() {
    let (_sim, a, mut b) = pair(2).await;
    tokio::spawn(async move {
        while let Some(call) = b.next_call().await {
            call.reject(reason::CALL_REJECTED).unwrap();
        }
    });
    let err = tokio::time::timeout(T, a.dial(dial("200")))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, CallError::Cleared { reason: 0x3495 }),
        "{err}"
    );
    assert!(err.to_string().contains("call rejected"), "{err}");
}

#[tokio::test]
async fn busy_unallocated_and_unanswered() {
    let (sim, a, mut b) = pair(1).await;
    let held = tokio::spawn(async move {
        let call = b.next_call().await.unwrap();
        let s = call.accept(BProtocol::x75_transparent()).await.unwrap();
        (b, s)
    });
    let _first = a.dial(dial("200")).await.unwrap();
    let (_b, _s) = held.await.unwrap();
    // Controller 1 has its only B channel in use: a third controller calls B.
    sim.add_controller(&["300"], 2);
    sim.add_controller(&["400"], 2);
    let c = Application::start(sim.register(RegisterParams::default()));
    let busy = c
        .dial(Dial {
            controller: 3,
            ..dial("200")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(busy, CallError::Cleared { reason: 0x3491 }),
        "{busy}"
    );
    let nobody = c
        .dial(Dial {
            controller: 3,
            ..dial("999")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(nobody, CallError::Cleared { reason: 0x3481 }),
        "{nobody}"
    );
    // Controller 4's number, but nobody listens there.
    let unanswered = c
        .dial(Dial {
            controller: 3,
            ..dial("400")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(unanswered, CallError::Cleared { reason: 0x3492 }),
        "{unanswered}"
    );
}

#[tokio::test]
async fn broken_line_ends_both_streams() {
    let (sim, a, mut b) = pair(2).await;
    let callee = tokio::spawn(async move {
        let call = b.next_call().await.unwrap();
        let mut s = call.accept(BProtocol::x75_transparent()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        (buf, s.disconnect_reason(), b)
    });
    let mut s = a.dial(dial("200")).await.unwrap();
    s.write_all(b"PARTIAL").await.unwrap();
    s.flush().await.unwrap();
    // Let the block cross before the line fails.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.exchange().break_line(1), 1);
    let mut rest = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.disconnect_reason(), Some(reason::LAYER1_ERROR));
    let (got, why, mut b) = tokio::time::timeout(T, callee).await.unwrap().unwrap();
    assert_eq!(got, b"PARTIAL");
    assert_eq!(why, Some(reason::LAYER1_ERROR));
    // The channels are free again: the next call gets through.
    let callee = tokio::spawn(async move {
        let call = b.next_call().await.unwrap();
        let mut s = call.accept(BProtocol::x75_transparent()).await.unwrap();
        s.write_all(b"AGAIN").await.unwrap();
        s.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let mut s = tokio::time::timeout(T, a.dial(dial("201")))
        .await
        .unwrap()
        .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"AGAIN");
    callee.await.unwrap();
}

#[tokio::test]
async fn absent_capi_device_is_reported_unavailable() {
    let dir = std::env::temp_dir().join(format!("capi-absent-{}", std::process::id()));
    let err = capi::device::DeviceTransport::open(&dir.join("capi20"), RegisterParams::default())
        .unwrap_err();
    assert!(
        matches!(&err, capi::transport::TransportError::Unavailable(m) if m.contains("does not exist")),
        "{err}"
    );
    // A file that is not a CAPI device: registration fails cleanly.
    let f = std::env::temp_dir().join(format!("capi-not-a-device-{}", std::process::id()));
    std::fs::write(&f, b"").unwrap();
    let err = capi::device::DeviceTransport::open(&f, RegisterParams::default()).unwrap_err();
    std::fs::remove_file(&f).unwrap();
    assert!(
        matches!(&err, capi::transport::TransportError::Unavailable(m) if m.contains("CAPI_REGISTER")),
        "{err}"
    );
}
