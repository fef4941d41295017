//! The Linux CAPI 2.0 device `/dev/capi20` (kernel `capi` module with an
//! ISDN controller driver).
//!
//! One open file is one registered application: `CAPI_REGISTER` is an
//! ioctl on it, each `write` is one message, each `read` returns one
//! message; `DATA_B3` data follows the message in the same `write`/`read`,
//! which is exactly how [`crate::message`] lays them out.
//!
//! Hosts without the device (no `capi` module, no card — most of them
//! today) get [`TransportError::Unavailable`] with a hint, never a panic.
//!
//! Tested here only for the "absent" case; the I/O path follows the kernel
//! interface (`drivers/isdn/capi/capi.c`) but has not been run against a
//! real controller.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;

use crate::message::Message;
use crate::transport::{RegisterParams, Transport, TransportError};

/// The usual device path.
pub const DEVICE: &str = "/dev/capi20";

/// `struct capi_register_params` of `<linux/capi.h>`.
#[repr(C)]
struct CapiRegisterParams {
    level3cnt: u32,
    datablkcnt: u32,
    datablklen: u32,
}

/// `CAPI_REGISTER = _IOW('C', 0x01, struct capi_register_params)`.
const CAPI_REGISTER: libc::c_ulong = (1 << 30)
    | ((std::mem::size_of::<CapiRegisterParams>() as libc::c_ulong) << 16)
    | ((b'C' as libc::c_ulong) << 8)
    | 0x01;

/// An application registered through `/dev/capi20`.
#[derive(Debug)]
pub struct DeviceTransport {
    fd: AsyncFd<File>,
    app_id: u16,
    params: RegisterParams,
    buf: Vec<u8>,
}

impl DeviceTransport {
    /// Opens `path` (normally [`DEVICE`]) and registers an application.
    /// Needs a tokio runtime with I/O enabled.
    pub fn open(path: &Path, params: RegisterParams) -> Result<Self, TransportError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => TransportError::Unavailable(format!(
                    "{} does not exist: this host has no CAPI device (load the kernel \
                     'capi' module and a controller driver, or use the remote-CAPI or \
                     simulator transport)",
                    path.display()
                )),
                ErrorKind::PermissionDenied => TransportError::Unavailable(format!(
                    "{}: permission denied; give the daemon's user access to the device \
                     (group of {})",
                    path.display(),
                    path.display()
                )),
                _ => TransportError::Unavailable(format!("{}: {e}", path.display())),
            })?;
        let mut rp = CapiRegisterParams {
            level3cnt: u32::from(params.max_logical_connections),
            datablkcnt: u32::from(params.max_b_data_blocks),
            datablklen: u32::from(params.max_b_data_len),
        };
        // SAFETY: CAPI_REGISTER reads a `struct capi_register_params`, which
        // `rp` is (repr(C), three u32), valid for the duration of the call.
        let r = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                CAPI_REGISTER as _,
                &mut rp as *mut CapiRegisterParams,
            )
        };
        if r < 0 {
            return Err(TransportError::Unavailable(format!(
                "CAPI_REGISTER on {} failed: {}; is a controller driver loaded?",
                path.display(),
                std::io::Error::last_os_error()
            )));
        }
        let app_id = u16::try_from(r).map_err(|_| {
            TransportError::Unavailable(format!("CAPI_REGISTER returned application id {r}"))
        })?;
        Ok(DeviceTransport {
            // SAFETY: a `File` owns its descriptor: it stays open and the
            // same for as long as the `File` lives inside the `AsyncFd`.
            fd: unsafe { AsyncFd::register(file) }.map_err(std::io::Error::from)?,
            app_id,
            params,
            buf: vec![0; 65_536 + 128],
        })
    }
}

impl Transport for DeviceTransport {
    fn app_id(&self) -> u16 {
        self.app_id
    }

    fn params(&self) -> RegisterParams {
        self.params
    }

    fn put_message(&mut self, msg: &Message) -> Result<(), TransportError> {
        let bytes = msg.to_vec()?;
        match self.fd.get_ref().write(&bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(_) => Err(TransportError::Io(ErrorKind::WriteZero.into())),
            // The kernel queue for the controller is full (CAPI info 0x1103).
            Err(e) if e.kind() == ErrorKind::WouldBlock => Err(TransportError::QueueFull),
            Err(e) => Err(e.into()),
        }
    }

    fn poll_get_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, TransportError>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let buf = &mut self.buf;
            match guard.try_io(|f| f.get_ref().read(buf)) {
                Ok(Ok(0)) => return Poll::Ready(Err(TransportError::Closed)),
                Ok(Ok(n)) => {
                    let slice = self.buf.get(..n).unwrap_or(&[]);
                    return Poll::Ready(Message::decode(slice).map(|(m, _)| m).map_err(Into::into));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e.into())),
                Err(_would_block) => continue,
            }
        }
    }
}
