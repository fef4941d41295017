//! Remote CAPI over TCP on 127.0.0.1: frames octet by octet against the
//! rcapid/FRITZ!Box layout, calls and data through `remote::Server`, and
//! the `capi-sim` program as a separate process.

use std::future::poll_fn;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use capi::config::{B3Mode, TransportConfig};
use capi::message::*;
use capi::remote::{self, Frame, FrameError, Mgmt, RemoteTransport, Server};
use capi::sim::{reason, Sim};
use capi::stream::{Application, CallError, Dial};
use capi::transport::{RegisterParams, Transport, TransportError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn client_frames_are_octet_exact() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let reg = remote::read_frame(&mut s).await.unwrap().unwrap();
        // REGISTER_CONF by hand: length 12; CAPI header: total length 10,
        // application id 5, command F3/FF, number 0; info 0.
        s.write_all(&[
            0x00, 0x0C, 0x0A, 0x00, 0x05, 0x00, 0xF3, 0xFF, 0x00, 0x00, 0x00, 0x00,
        ])
        .await
        .unwrap();
        let listen = remote::read_frame(&mut s).await.unwrap().unwrap();
        // DATA_B3_IND with 3 data octets after the 22-octet message, for
        // application 9 (the client rewrites it to its own).
        let mut ind = vec![0x00, 0x1B]; // 2 + 22 + 3 = 27
        ind.extend_from_slice(&[
            0x16, 0x00, 0x09, 0x00, 0x86, 0x82, 0x2A, 0x00, // header, number 42
            0x01, 0x01, 0x01, 0x00, // NCCI
            0x00, 0x00, 0x00, 0x00, // data pointer
            0x03, 0x00, 0x07, 0x00, 0x02, 0x00, // length 3, handle 7, flags M
            b'a', b'b', b'c',
        ]);
        s.write_all(&ind).await.unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        (reg, listen, rest)
    });
    let params = RegisterParams {
        max_logical_connections: 2,
        max_b_data_blocks: 7,
        max_b_data_len: 2048,
    };
    let mut t = RemoteTransport::connect(&addr, params).await.unwrap();
    assert_eq!(t.app_id(), 5, "application id from REGISTER_CONF");
    t.put_message(&Message::new(
        5,
        1,
        Params::ListenReq(ListenReq {
            controller: 1,
            info_mask: 0,
            cip_mask: 0x0004,
            cip_mask2: 0,
            calling_number: None,
            calling_subaddress: vec![],
        }),
    ))
    .unwrap();
    let m = tokio::time::timeout(T, poll_fn(|cx| t.poll_get_message(cx)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.app_id, 5);
    assert_eq!(m.number, 42);
    assert_eq!(
        m.params,
        Params::DataB3Ind(DataB3 {
            ncci: 0x0001_0101,
            handle: 7,
            flags: 2,
            data: Bytes::from_static(b"abc"),
        })
    );
    drop(t); // CAPI_RELEASE: the connection closes.
    let (reg, listen, rest) = tokio::time::timeout(T, server).await.unwrap().unwrap();
    assert_eq!(
        reg,
        [
            0x00, 0x17, // frame length 23, big-endian
            0x15, 0x00, // CAPI total length 21
            0x00, 0x00, // application id (none yet)
            0xF2, 0xFF, // REGISTER_REQ
            0x00, 0x00, // message number
            0x00, 0x00, 0x00, 0x00, // buffer
            0x00, 0x0C, // message buffer size 1024 + 1024 * 2
            0x02, 0x00, // max logical connections
            0x07, 0x00, // max B data blocks
            0x00, 0x08, // max B data length 2048
            0x02, // CAPI version 2
        ]
    );
    assert_eq!(
        listen,
        [
            0x00, 0x1C, // frame length 28
            0x1A, 0x00, 0x05, 0x00, 0x05, 0x80, 0x01, 0x00, // LISTEN_REQ, 26 octets, app 5
            0x01, 0x00, 0x00, 0x00, // controller
            0x00, 0x00, 0x00, 0x00, // info mask
            0x04, 0x00, 0x00, 0x00, // CIP mask
            0x00, 0x00, 0x00, 0x00, // CIP mask 2
            0x00, 0x00, // calling party number, subaddress: empty
        ]
    );
    assert!(rest.is_empty());
}

#[test]
fn management_frames_round_trip_and_errors_are_typed() {
    let frames = [
        Frame::Mgmt {
            app_id: 0,
            number: 3,
            body: Mgmt::GetProfileReq { controller: 2 },
        },
        Frame::Mgmt {
            app_id: 0,
            number: 3,
            body: Mgmt::GetManufacturerConf {
                text: b"AVM".to_vec(),
            },
        },
        Frame::Mgmt {
            app_id: 1,
            number: 0,
            body: Mgmt::GetVersionConf {
                version: [2, 0, 1, 2],
                text: b"x".to_vec(),
            },
        },
    ];
    for f in frames {
        let v = f.to_vec().unwrap();
        assert_eq!(usize::from(u16::from_be_bytes([v[0], v[1]])), v.len());
        assert_eq!(Frame::decode(&v).unwrap(), Some((f, v.len())));
        // Every prefix is "need more", never an error or a panic.
        for n in 0..v.len() {
            assert_eq!(Frame::decode(&v[..n]), Ok(None));
        }
    }
    // GET_PROFILE_REQ octets: header with total length 12, controller 2.
    let v = Frame::Mgmt {
        app_id: 0,
        number: 3,
        body: Mgmt::GetProfileReq { controller: 2 },
    }
    .to_vec()
    .unwrap();
    assert_eq!(v, [0, 14, 12, 0, 0, 0, 0xE0, 0xFF, 3, 0, 2, 0, 0, 0]);
    // Old libcapi20 REGISTER_REQ without the version octet: version 2.
    let old = [
        0, 22, 0, 0, 0, 0, 0xF2, 0xFF, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 7, 0, 0, 8,
    ];
    let Some((
        Frame::Mgmt {
            body:
                Mgmt::RegisterReq {
                    capi_version,
                    params,
                    ..
                },
            ..
        },
        22,
    )) = Frame::decode(&old).unwrap()
    else {
        panic!()
    };
    assert_eq!(capi_version, 2);
    assert_eq!(params.max_b_data_len, 2048);
    assert_eq!(
        Frame::decode(&[0, 5, 0, 0, 0]),
        Err(FrameError::TooShort(5))
    );
    assert_eq!(
        Frame::decode(&[0, 12, 0, 0, 0, 0, 0xF2, 0xFF, 0, 0, 0, 0]),
        Err(FrameError::MgmtTruncated { command: 0xF2 })
    );
    // A CAPI message shorter than its frame.
    let mut m = Message::new(1, 1, Params::InfoResp(Ident { id: 1 }))
        .to_vec()
        .unwrap();
    m.push(0);
    let mut f = vec![0, (m.len() + 2) as u8];
    f.extend_from_slice(&m);
    assert_eq!(
        Frame::decode(&f),
        Err(FrameError::LengthMismatch {
            frame: 15,
            message: 12
        })
    );
}

async fn serve(sim: Sim) -> String {
    let server = Server::bind("127.0.0.1:0", sim).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    tokio::spawn(server.serve());
    addr
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_data_through_the_remote_server() {
    let sim = Sim::new();
    sim.add_controller(&["100"], 2);
    sim.add_controller(&["200"], 2);
    let addr = serve(sim.clone()).await;
    let tc: TransportConfig = format!("remote:{addr}").parse().unwrap();
    let a = Application::start(tc.connect(RegisterParams::default()).await.unwrap());
    let mut b = Application::start(tc.connect(RegisterParams::default()).await.unwrap());
    b.listen(2, cip::mask(cip::UNRESTRICTED_DIGITAL))
        .await
        .unwrap();

    for mode in [B3Mode::Transparent, B3Mode::Iso8208] {
        let up = pattern(200_000, 1);
        let down = pattern(70_000, 2);
        // ISO 8208 carries STB-framed exchange buffers only.
        let frame = |d: &[u8]| -> Vec<u8> {
            if mode == B3Mode::Transparent {
                return d.to_vec();
            }
            let mut v = Vec::new();
            for c in d.chunks(4000) {
                let len = c.len() + 4;
                v.extend_from_slice(&[0x10, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
                v.extend_from_slice(c);
            }
            v
        };
        let (up_f, down_f) = (frame(&up), frame(&down));
        let callee = {
            let (up_f, down_f) = (up_f.clone(), down_f.clone());
            let b = &mut b;
            async move {
                let call = b.next_call().await.unwrap();
                assert_eq!(call.calling.as_deref(), Some("100"));
                let mut s = call.accept(mode.b_protocol()).await.unwrap();
                assert_eq!(s.b3_mode(), mode);
                let mut got = vec![0u8; up_f.len()];
                s.read_exact(&mut got).await.unwrap();
                assert!(got == up_f, "{mode}: caller → callee octets differ");
                s.write_all(&down_f).await.unwrap();
                s.shutdown().await.unwrap();
            }
        };
        let caller = async {
            let mut s = a
                .dial(Dial {
                    controller: 1,
                    called: "200".into(),
                    calling: Some("100".into()),
                    b_protocol: mode.b_protocol(),
                })
                .await
                .unwrap();
            s.write_all(&up_f).await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            assert!(got == down_f, "{mode}: callee → caller octets differ");
            s
        };
        let (s, ()) = tokio::time::timeout(T, async { tokio::join!(caller, callee) })
            .await
            .expect("transfer in time");
        drop(s);
    }
    // A call to a number nobody has.
    let r = a
        .dial(Dial {
            controller: 1,
            called: "999".into(),
            calling: None,
            b_protocol: B3Mode::Iso8208.b_protocol(),
        })
        .await;
    assert!(
        matches!(
            r,
            Err(CallError::Cleared {
                reason: reason::UNALLOCATED_NUMBER
            })
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn controller_query_and_refused_registration() {
    let sim = Sim::new();
    sim.add_controller(&["100"], 2);
    sim.add_controller(&["200"], 30);
    let addr = serve(sim).await;
    let r = remote::query_controller(&addr, 2).await.unwrap();
    assert_eq!(r.profile.controllers, 2);
    assert_eq!(r.profile.b_channels, 30);
    assert_eq!(
        r.profile.b3_protocols & 0b101,
        0b101,
        "transparent and ISO 8208"
    );
    assert_eq!(r.manufacturer, remote::SIM_MANUFACTURER);
    let e = remote::query_controller(&addr, 3).await.unwrap_err();
    assert!(e.to_string().contains("controller 3"), "{e}");
    // Blocks under 128 octets cannot be registered (info 0x1002).
    let e = RemoteTransport::connect(
        &addr,
        RegisterParams {
            max_b_data_len: 64,
            ..RegisterParams::default()
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("0x1002"), "{e}");
    // Nobody listening.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = free.local_addr().unwrap().to_string();
    drop(free);
    let e = RemoteTransport::connect(&gone, RegisterParams::default())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Unavailable(_)), "{e}");
    assert!("remote:nohost".parse::<TransportConfig>().is_err());
    assert!("dev/capi20".parse::<TransportConfig>().is_err());
    assert!(matches!(
        "device".parse::<TransportConfig>().unwrap(),
        TransportConfig::Device { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capi_sim_program_serves_other_processes_and_breaks_lines() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_capi-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--controller",
            "1=100:2",
            "--controller",
            "200,201:2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(T, out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = first.strip_prefix("listening ").unwrap().to_string();

    let a = Application::start(
        RemoteTransport::connect(&addr, RegisterParams::default())
            .await
            .unwrap(),
    );
    let mut b = Application::start(
        RemoteTransport::connect(&addr, RegisterParams::default())
            .await
            .unwrap(),
    );
    b.listen(2, cip::mask(cip::UNRESTRICTED_DIGITAL))
        .await
        .unwrap();
    let callee = tokio::spawn(async move {
        let call = b.next_call().await.unwrap();
        assert_eq!(call.called.as_deref(), Some("201"));
        let mut s = call.accept(B3Mode::Transparent.b_protocol()).await.unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        (buf, s.disconnect_reason(), b)
    });
    let mut s = a
        .dial(Dial {
            controller: 1,
            called: "201".into(),
            calling: Some("100".into()),
            b_protocol: B3Mode::Transparent.b_protocol(),
        })
        .await
        .unwrap();
    s.write_all(b"before the break").await.unwrap();
    s.flush().await.unwrap();
    stdin.write_all(b"status\n").await.unwrap();
    let mut status = Vec::new();
    loop {
        let l = tokio::time::timeout(T, out.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if l == "end" {
            break;
        }
        status.push(l);
    }
    assert_eq!(
        status,
        ["controller 1 channels 1/2", "controller 2 channels 1/2"]
    );
    // Let the data arrive before the line goes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stdin.write_all(b"break 1\n").await.unwrap();
    let l = tokio::time::timeout(T, out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(l, "broken 1");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut rest))
        .await
        .unwrap();
    assert_eq!(s.disconnect_reason(), Some(reason::LAYER1_ERROR));
    let (buf, why, _b) = tokio::time::timeout(T, callee).await.unwrap().unwrap();
    assert_eq!(buf, b"before the break");
    assert_eq!(why, Some(reason::LAYER1_ERROR));
    child.kill().await.unwrap();
}
