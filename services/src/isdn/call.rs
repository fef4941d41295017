//! An ISDN call as the OFTP session's byte stream: a [`B3Stream`] whose
//! end, when the network or the partner cleared the call abnormally, is an
//! I/O error naming the CAPI/Q.850 reason (layer 1 failure, …) instead of
//! a bare end of stream, so session logs and queue errors tell the admin
//! what happened on the line.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use capi::stream::{describe_reason, B3Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// See the module docs.
#[derive(Debug)]
pub struct CallStream(pub B3Stream);

impl CallStream {
    /// The reason the call was cleared, when it was not a normal clearing.
    pub fn abnormal_reason(&self) -> Option<u16> {
        // 0: normal; 0x3490: Q.850 16, normal call clearing.
        self.0
            .disconnect_reason()
            .filter(|r| !matches!(r, 0 | 0x3490))
    }

    fn cleared_error(&self, kind: io::ErrorKind) -> Option<io::Error> {
        let r = self.abnormal_reason()?;
        Some(io::Error::new(
            kind,
            format!(
                "ISDN call cleared: reason 0x{r:04X} ({})",
                describe_reason(r)
            ),
        ))
    }
}

impl AsyncRead for CallStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                match self.cleared_error(io::ErrorKind::ConnectionAborted) {
                    Some(e) => Poll::Ready(Err(e)),
                    None => Poll::Ready(Ok(())),
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.cleared_error(e.kind()).unwrap_or(e))),
            other => other,
        }
    }
}

impl AsyncWrite for CallStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.0).poll_write(cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.cleared_error(e.kind()).unwrap_or(e))),
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
